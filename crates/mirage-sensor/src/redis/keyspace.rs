//! The honeypot's keyspace: 16 databases of string keys with TTLs, shared by
//! every client or kept per source address, bounded in keys and bytes.
//!
//! Attackers write keys to see whether the server is "real" (and to plant
//! cron lines or SSH keys), so the keyspace has to behave: what one command
//! writes the next one reads, TTLs run out, FLUSHALL empties. It must also
//! never grow without bound, so the whole store (all scopes together) has a
//! key cap and a byte cap; a write beyond them gets the reply Redis would
//! give but is not kept.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Number of databases, as Redis's default `databases 16`.
pub const DATABASES: usize = 16;

/// A stored value and when it expires (unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The string value.
    pub value: Vec<u8>,
    /// Expiry time in unix milliseconds, if any.
    pub expires_at: Option<u64>,
}

/// Server-side state one scope (all clients, or one source address) sees:
/// its databases plus the settings attackers change (CONFIG SET, SLAVEOF).
#[derive(Debug, Default)]
pub struct ScopeState {
    dbs: Vec<BTreeMap<Vec<u8>, Entry>>,
    /// CONFIG SET values that differ from the defaults.
    pub config: BTreeMap<String, String>,
    /// Master set by SLAVEOF/REPLICAOF (host, port).
    pub master: Option<(String, u16)>,
    /// Unix seconds of the last SAVE/BGSAVE (0: never, use server start).
    pub last_save: u64,
    /// Writes since the last save (`rdb_changes_since_last_save`).
    pub dirty: u64,
    /// Keys that expired (`expired_keys`).
    pub expired: u64,
    /// Lookups that found a key / did not.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
}

/// Every scope plus the global caps.
#[derive(Debug)]
pub struct Keyspaces {
    inner: Mutex<Inner>,
    per_source: bool,
    max_keys: usize,
    max_bytes: u64,
}

#[derive(Debug, Default)]
struct Inner {
    scopes: HashMap<Option<IpAddr>, ScopeState>,
    keys: usize,
    bytes: u64,
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn entry_bytes(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl Keyspaces {
    /// A store holding at most `max_keys` keys and `max_bytes` bytes of keys
    /// and values in total; `per_source` gives every source address its own
    /// scope.
    pub fn new(per_source: bool, max_keys: usize, max_bytes: u64) -> Arc<Self> {
        Arc::new(Keyspaces {
            inner: Mutex::new(Inner::default()),
            per_source,
            max_keys,
            max_bytes,
        })
    }

    /// The scope a client from `ip` uses.
    pub fn scope_of(&self, ip: IpAddr) -> Option<IpAddr> {
        self.per_source.then_some(ip)
    }

    /// Lock the store for one command. Commands are short and never await
    /// while holding it.
    pub fn lock(&self, scope: Option<IpAddr>) -> ScopeGuard<'_> {
        let guard = match self.inner.lock() {
            Ok(g) => g,
            // A panic while holding the lock cannot leave the maps invalid
            // for our purposes (counters may be off); keep serving.
            Err(p) => p.into_inner(),
        };
        ScopeGuard {
            guard,
            scope,
            max_keys: self.max_keys,
            max_bytes: self.max_bytes,
        }
    }

    /// Keys and bytes held across all scopes.
    pub fn usage(&self) -> (usize, u64) {
        let g = self.lock(None);
        (g.guard.keys, g.guard.bytes)
    }
}

/// The store locked, seen through one scope.
pub struct ScopeGuard<'a> {
    guard: MutexGuard<'a, Inner>,
    scope: Option<IpAddr>,
    max_keys: usize,
    max_bytes: u64,
}

impl ScopeGuard<'_> {
    /// This scope's state (created empty on first use).
    pub fn state(&mut self) -> &mut ScopeState {
        let s = self.guard.scopes.entry(self.scope).or_default();
        if s.dbs.len() != DATABASES {
            s.dbs = vec![BTreeMap::new(); DATABASES];
        }
        s
    }

    /// Remove `key` from `db` if its TTL has passed; true if it was removed.
    fn expire_one(&mut self, db: usize, key: &[u8], now: u64) -> bool {
        let st = self.state();
        let Some(map) = st.dbs.get_mut(db) else {
            return false;
        };
        let expired = map
            .get(key)
            .is_some_and(|e| e.expires_at.is_some_and(|t| t <= now));
        if expired && let Some(e) = map.remove(key) {
            st.expired += 1;
            let b = entry_bytes(key, &e.value);
            self.guard.keys = self.guard.keys.saturating_sub(1);
            self.guard.bytes = self.guard.bytes.saturating_sub(b);
        }
        expired
    }

    /// Drop every expired key of `db` (before listing or counting).
    pub fn purge(&mut self, db: usize) {
        let now = now_ms();
        let dead: Vec<Vec<u8>> = self
            .state()
            .dbs
            .get(db)
            .map(|m| {
                m.iter()
                    .filter(|(_, e)| e.expires_at.is_some_and(|t| t <= now))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        for k in dead {
            self.expire_one(db, &k, now);
        }
    }

    /// The live entry for `key`, counting a hit or a miss.
    pub fn get(&mut self, db: usize, key: &[u8]) -> Option<Entry> {
        self.expire_one(db, key, now_ms());
        let st = self.state();
        let e = st.dbs.get(db).and_then(|m| m.get(key)).cloned();
        if e.is_some() {
            st.hits += 1;
        } else {
            st.misses += 1;
        }
        e
    }

    /// Whether `key` exists (no hit/miss accounting, like EXISTS/TYPE).
    pub fn exists(&mut self, db: usize, key: &[u8]) -> bool {
        self.expire_one(db, key, now_ms());
        self.state()
            .dbs
            .get(db)
            .is_some_and(|m| m.contains_key(key))
    }

    /// The expiry of a live key: `None` when missing, `Some(None)` when it
    /// has no TTL.
    pub fn expiry(&mut self, db: usize, key: &[u8]) -> Option<Option<u64>> {
        self.expire_one(db, key, now_ms());
        self.state()
            .dbs
            .get(db)
            .and_then(|m| m.get(key))
            .map(|e| e.expires_at)
    }

    /// Store `key`; beyond the caps the write is dropped silently (the
    /// caller still answers as Redis would). Returns whether it was stored.
    pub fn set(&mut self, db: usize, key: &[u8], value: Vec<u8>, expires_at: Option<u64>) -> bool {
        self.expire_one(db, key, now_ms());
        let (max_keys, max_bytes) = (self.max_keys, self.max_bytes);
        let (keys, bytes) = (self.guard.keys, self.guard.bytes);
        let st = self.state();
        st.dirty += 1;
        let Some(map) = st.dbs.get_mut(db) else {
            return false;
        };
        let old = map.get(key).map(|e| entry_bytes(key, &e.value));
        let new = entry_bytes(key, &value);
        let new_keys = if old.is_some() { keys } else { keys + 1 };
        let new_bytes = bytes - old.unwrap_or(0) + new;
        if new_keys > max_keys || new_bytes > max_bytes {
            return false;
        }
        map.insert(key.to_vec(), Entry { value, expires_at });
        self.guard.keys = new_keys;
        self.guard.bytes = new_bytes;
        true
    }

    /// Set or clear the expiry of an existing key; false if missing.
    pub fn set_expiry(&mut self, db: usize, key: &[u8], expires_at: Option<u64>) -> bool {
        self.expire_one(db, key, now_ms());
        let st = self.state();
        match st.dbs.get_mut(db).and_then(|m| m.get_mut(key)) {
            Some(e) => {
                e.expires_at = expires_at;
                st.dirty += 1;
                true
            }
            None => false,
        }
    }

    /// Delete `key`; true if it existed.
    pub fn del(&mut self, db: usize, key: &[u8]) -> bool {
        if self.expire_one(db, key, now_ms()) {
            return false;
        }
        let st = self.state();
        let Some(e) = st.dbs.get_mut(db).and_then(|m| m.remove(key)) else {
            return false;
        };
        st.dirty += 1;
        self.guard.keys = self.guard.keys.saturating_sub(1);
        self.guard.bytes = self.guard.bytes.saturating_sub(entry_bytes(key, &e.value));
        true
    }

    /// Live keys of `db`, in key order.
    pub fn keys(&mut self, db: usize) -> Vec<Vec<u8>> {
        self.purge(db);
        self.state()
            .dbs
            .get(db)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Live key count of `db`.
    pub fn dbsize(&mut self, db: usize) -> usize {
        self.purge(db);
        self.state().dbs.get(db).map_or(0, BTreeMap::len)
    }

    /// Per database: (keys, keys with a TTL), for INFO keyspace.
    pub fn db_stats(&mut self) -> Vec<(usize, usize)> {
        (0..DATABASES)
            .map(|db| {
                self.purge(db);
                let m = self.state().dbs.get(db).cloned().unwrap_or_default();
                (
                    m.len(),
                    m.values().filter(|e| e.expires_at.is_some()).count(),
                )
            })
            .collect()
    }

    /// Empty one database, or all when `db` is `None`.
    pub fn flush(&mut self, db: Option<usize>) {
        let st = self.state();
        let mut freed_keys = 0usize;
        let mut freed_bytes = 0u64;
        for (i, m) in st.dbs.iter_mut().enumerate() {
            if db.is_none_or(|d| d == i) {
                freed_keys += m.len();
                freed_bytes += m.iter().map(|(k, e)| entry_bytes(k, &e.value)).sum::<u64>();
                m.clear();
            }
        }
        st.dirty += freed_keys as u64;
        self.guard.keys = self.guard.keys.saturating_sub(freed_keys);
        self.guard.bytes = self.guard.bytes.saturating_sub(freed_bytes);
    }

    /// Every live string value of every database (what an RDB would hold),
    /// at most `cap` of them.
    pub fn all_values(&mut self, cap: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let now = now_ms();
        self.state()
            .dbs
            .iter()
            .flat_map(|m| m.iter())
            .filter(|(_, e)| e.expires_at.is_none_or(|t| t > now))
            .take(cap)
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_drop_writes_but_keep_counts_right() {
        let ks = Keyspaces::new(false, 2, 1000);
        let mut g = ks.lock(None);
        assert!(g.set(0, b"a", b"1".to_vec(), None));
        assert!(g.set(0, b"b", b"2".to_vec(), None));
        assert!(
            !g.set(0, b"c", b"3".to_vec(), None),
            "third key over the cap"
        );
        assert!(
            g.set(0, b"a", b"11".to_vec(), None),
            "overwrite is not a new key"
        );
        assert_eq!(g.keys(0), vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(g.del(0, b"a"));
        assert!(g.set(0, b"c", b"3".to_vec(), None));
        drop(g);
        assert_eq!(ks.usage(), (2, 4));
    }

    #[test]
    fn byte_cap_counts_keys_and_values() {
        let ks = Keyspaces::new(false, 100, 10);
        let mut g = ks.lock(None);
        assert!(g.set(0, b"k", vec![b'x'; 9], None));
        assert!(!g.set(0, b"j", vec![b'x'; 1], None));
        assert!(g.set(0, b"k", vec![b'x'; 2], None), "shrinking fits");
        assert!(g.set(3, b"j", vec![b'x'; 6], None));
        g.flush(None);
        drop(g);
        assert_eq!(ks.usage(), (0, 0));
    }

    #[test]
    fn ttl_expires_and_frees() {
        let ks = Keyspaces::new(false, 10, 100);
        let mut g = ks.lock(None);
        g.set(0, b"gone", b"v".to_vec(), Some(now_ms() - 1));
        g.set(0, b"kept", b"v".to_vec(), Some(now_ms() + 60_000));
        assert!(g.get(0, b"gone").is_none());
        assert!(g.get(0, b"kept").is_some());
        assert_eq!(g.dbsize(0), 1);
        assert_eq!(g.state().expired, 1);
        drop(g);
        assert_eq!(ks.usage(), (1, 5));
    }

    #[test]
    fn per_source_scopes_are_separate() {
        let ks = Keyspaces::new(true, 10, 100);
        let a = ks.scope_of("10.0.0.1".parse().unwrap());
        let b = ks.scope_of("10.0.0.2".parse().unwrap());
        ks.lock(a).set(0, b"k", b"v".to_vec(), None);
        assert!(ks.lock(b).get(0, b"k").is_none());
        assert!(ks.lock(a).get(0, b"k").is_some());
        let shared = Keyspaces::new(false, 10, 100);
        assert_eq!(shared.scope_of("10.0.0.1".parse().unwrap()), None);
    }
}
