//! Per-key sliding windows and the bounded table that holds them.
//!
//! A count threshold "N events within W" keeps only the newest N event
//! times of a key, sorted: it fires when it holds N and the newest minus the
//! oldest is at most W. That is an exact sliding window over event times
//! (not fixed buckets, not wall clock) in O(N) memory per key, and it
//! tolerates events arriving slightly out of order.
//!
//! A distinct threshold "N distinct values of F within W" keeps, per value,
//! the newest time it was seen, at most N values: entries older than W
//! before the key's newest time are dropped, and at N values it fires.
//!
//! [`KeyTable`] bounds the number of keys: it is an LRU list in a slab
//! (O(1) touch, insert and evict). At the cap, the key updated least
//! recently goes; since events arrive roughly in time order, that is the
//! key whose window is oldest, the one least likely to fire.

use std::hash::BuildHasher;

use hashbrown::HashTable;

const NIL: u32 = u32::MAX;

/// The window of one key.
#[derive(Debug, Clone)]
pub(crate) enum Window {
    /// Newest event times, ascending, at most `count`.
    Count(Vec<i64>),
    /// (value, newest time) pairs, at most `count`.
    Distinct(Vec<(Box<str>, i64)>),
}

impl Window {
    /// Record an event at `t` (with `value` for distinct windows) and say
    /// whether the threshold is reached.
    pub(crate) fn add(&mut self, t: i64, value: Option<&str>, count: u32, window: i64) -> bool {
        let count = count as usize;
        match self {
            Window::Count(times) => {
                let at = times.partition_point(|&x| x <= t);
                times.insert(at, t);
                if times.len() > count {
                    times.remove(0);
                }
                times.len() == count
                    && times
                        .last()
                        .zip(times.first())
                        .is_some_and(|(l, f)| l.saturating_sub(*f) <= window)
            }
            Window::Distinct(values) => {
                let Some(value) = value else {
                    return false;
                };
                match values.iter_mut().find(|(v, _)| &**v == value) {
                    Some((_, seen)) => *seen = (*seen).max(t),
                    None => values.push((value.into(), t)),
                }
                let newest = values.iter().map(|(_, s)| *s).max().unwrap_or(t);
                values.retain(|(_, s)| newest.saturating_sub(*s) <= window);
                if values.len() > count {
                    // Drop the oldest (only reachable with out-of-order
                    // input: in order, reaching `count` fires first).
                    if let Some(i) = values
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (_, s))| *s)
                        .map(|(i, _)| i)
                    {
                        values.swap_remove(i);
                    }
                }
                values.len() >= count
            }
        }
    }

    /// Events (or distinct values) currently held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        match self {
            Window::Count(t) => t.len(),
            Window::Distinct(v) => v.len(),
        }
    }
}

/// Key bytes kept inside the slot itself; longer keys go to `Slot::heap`.
const INLINE_KEY: usize = 51;
/// `Slot::inline_len` of a key kept in `Slot::heap`.
const HEAP_KEY: u8 = u8::MAX;

/// One key and its window. The first cache line holds what a lookup and
/// the LRU list touch (hash, links, a short key's bytes), so the common
/// lookup reads one line of the slot instead of the slot plus a separate
/// heap block for the key.
#[derive(Debug)]
#[repr(C, align(64))]
struct Slot {
    /// The high half of the key's hash (see [`Bucket`]), so evicting a
    /// key needs neither its text nor a rehash.
    hash: u32,
    prev: u32,
    next: u32,
    /// Length of a key held in `inline`, or [`HEAP_KEY`].
    inline_len: u8,
    inline: [u8; INLINE_KEY],
    /// A key longer than [`INLINE_KEY`]. A freed slot keeps the buffer
    /// for the next long key.
    heap: Vec<u8>,
    window: Window,
}

impl Slot {
    fn key(&self) -> &[u8] {
        if self.inline_len == HEAP_KEY {
            &self.heap
        } else {
            &self.inline[..usize::from(self.inline_len)]
        }
    }

    fn set_key(&mut self, key: &[u8]) {
        match self.inline.get_mut(..key.len()) {
            Some(dst) => {
                dst.copy_from_slice(key);
                // Fits: at most INLINE_KEY < HEAP_KEY.
                self.inline_len = key.len() as u8;
            }
            None => {
                self.heap.clear();
                self.heap.extend_from_slice(key);
                self.inline_len = HEAP_KEY;
            }
        }
    }
}

/// What the hash table holds per key: the slot index and the high half of
/// the key's hash, so growing the table and evicting a key need neither
/// the key's text nor its slot.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    slot: u32,
    hash: u32,
}

/// The table hash of a key, rebuilt from the 32 bits a [`Bucket`] keeps:
/// hashbrown takes its 7-bit tag from the top bits and the position from
/// the low bits, so both come from the same well-mixed 32 bits.
fn table_hash(h: u32) -> u64 {
    (u64::from(h) << 32) | u64::from(h)
}

/// Keys to windows, at most `cap` of them, least recently updated evicted
/// first.
///
/// Keys are attacker-chosen (addresses, user names), so the hash is
/// randomly seeded per table (hash flooding cannot be precomputed), but
/// fast: `foldhash` rather than SipHash. Each key is hashed once per
/// lookup and its text lives only in its slot; freed slots keep their
/// window buffers, so at the cap an eviction plus an insertion allocates
/// nothing.
pub(crate) struct KeyTable {
    map: HashTable<Bucket>,
    hasher: foldhash::fast::RandomState,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Most recently updated.
    head: u32,
    /// Least recently updated.
    tail: u32,
    cap: usize,
    pub(crate) evictions: u64,
}

impl std::fmt::Debug for KeyTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyTable")
            .field("len", &self.map.len())
            .field("cap", &self.cap)
            .field("evictions", &self.evictions)
            .finish()
    }
}

impl KeyTable {
    pub(crate) fn new(cap: usize) -> Self {
        KeyTable {
            map: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            // Slot indices are u32 (NIL excluded): far more keys than
            // memory could hold anyway.
            cap: cap.clamp(1, (NIL - 1) as usize),
            evictions: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn unlink(&mut self, i: u32) {
        let s = &self.slots[i as usize];
        let (prev, next) = (s.prev, s.next);
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }

    fn push_front(&mut self, i: u32) {
        let head = self.head;
        let s = &mut self.slots[i as usize];
        s.prev = NIL;
        s.next = head;
        if head != NIL {
            self.slots[head as usize].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    fn hash(&self, key: &str) -> u32 {
        (self.hasher.hash_one(key) >> 32) as u32
    }

    fn find(&self, hash: u32, key: &str) -> Option<u32> {
        let slots = &self.slots;
        self.map
            .find(table_hash(hash), |b| {
                b.hash == hash && slots[b.slot as usize].key() == key.as_bytes()
            })
            .map(|b| b.slot)
    }

    /// The window of `key`, created with `make` if new; marks it most
    /// recently used. Evicts the least recently used key at the cap.
    #[cfg(test)]
    pub(crate) fn entry(&mut self, key: &str, make: impl FnOnce() -> Window) -> &mut Window {
        self.entry_with(key, |w| *w = make())
    }

    /// The window of `key`; marks it most recently used. A new key gets a
    /// window recycled from a freed slot (or an empty count window) that
    /// `init` must reset to a fresh one, reusing its buffers when it can.
    /// Evicts the least recently used key at the cap.
    pub(crate) fn entry_with(&mut self, key: &str, init: impl FnOnce(&mut Window)) -> &mut Window {
        let hash = self.hash(key);
        if let Some(i) = self.find(hash, key) {
            if self.head != i {
                self.unlink(i);
                self.push_front(i);
            }
            return &mut self.slots[i as usize].window;
        }
        if self.map.len() >= self.cap && self.tail != NIL {
            let old = self.tail;
            self.remove_slot(old);
            self.evictions += 1;
        }
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    hash: 0,
                    prev: NIL,
                    next: NIL,
                    inline_len: 0,
                    inline: [0; INLINE_KEY],
                    heap: Vec::new(),
                    window: Window::Count(Vec::new()),
                });
                // Below NIL: the cap bounds the slots.
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[i as usize];
        slot.set_key(key.as_bytes());
        slot.hash = hash;
        init(&mut slot.window);
        self.map
            .insert_unique(table_hash(hash), Bucket { slot: i, hash }, |b| {
                table_hash(b.hash)
            });
        self.push_front(i);
        &mut self.slots[i as usize].window
    }

    fn remove_slot(&mut self, i: u32) {
        self.unlink(i);
        let hash = self.slots[i as usize].hash;
        if let Ok(e) = self.map.find_entry(table_hash(hash), |b| b.slot == i) {
            e.remove();
        }
        // Keep the buffers for reuse, but not the old contents.
        let slot = &mut self.slots[i as usize];
        slot.inline_len = 0;
        slot.heap.clear();
        match &mut slot.window {
            Window::Count(t) => t.clear(),
            Window::Distinct(v) => v.clear(),
        }
        self.free.push(i);
    }

    /// Forget `key` (after it fired).
    pub(crate) fn remove(&mut self, key: &str) {
        let hash = self.hash(key);
        if let Some(i) = self.find(hash, key) {
            self.remove_slot(i);
        }
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.find(self.hash(key), key).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn count_window_edges() {
        let w = 120 * S;
        let mut win = Window::Count(Vec::new());
        for i in 0..4 {
            assert!(!win.add(i * 30 * S, None, 5, w));
        }
        // Fifth at exactly 120 s after the first: inclusive.
        assert!(win.add(120 * S, None, 5, w));
        let mut win = Window::Count(Vec::new());
        for t in [0, 30, 60, 90] {
            assert!(!win.add(t * S, None, 5, w));
        }
        assert!(!win.add(121 * S, None, 5, w));
        // It slides: one more inside the window of the last four fires.
        assert!(win.add(122 * S, None, 5, w));
    }

    #[test]
    fn out_of_order_is_sorted() {
        let mut win = Window::Count(Vec::new());
        for t in [50, 10, 40, 20] {
            assert!(!win.add(t * S, None, 5, 60 * S));
        }
        assert!(win.add(30 * S, None, 5, 60 * S));
    }

    #[test]
    fn distinct_window() {
        let mut win = Window::Distinct(Vec::new());
        assert!(!win.add(0, Some("22"), 3, 10 * S));
        assert!(!win.add(S, Some("22"), 3, 10 * S));
        assert!(!win.add(2 * S, Some("23"), 3, 10 * S));
        // 80 arrives after "22" last seen at 1 s: 12 s - 1 s > 10 s, so 22 left.
        assert!(!win.add(12 * S, Some("80"), 3, 10 * S));
        assert_eq!(win.len(), 2);
        assert!(win.add(12 * S, Some("443"), 3, 10 * S));
    }

    #[test]
    fn lru_evicts_least_recent() {
        let mut t = KeyTable::new(2);
        t.entry("a", || Window::Count(Vec::new()));
        t.entry("b", || Window::Count(Vec::new()));
        t.entry("a", || Window::Count(Vec::new()));
        t.entry("c", || Window::Count(Vec::new()));
        assert!(t.contains("a") && t.contains("c") && !t.contains("b"));
        assert_eq!(t.evictions, 1);
        t.remove("a");
        assert_eq!(t.len(), 1);
        t.entry("d", || Window::Count(Vec::new()));
        t.entry("e", || Window::Count(Vec::new()));
        assert!(t.contains("d") && t.contains("e") && !t.contains("c"));
        assert_eq!(t.slots.len(), 2, "slots are reused");
    }

    /// A tiny deterministic generator, so the randomised tests below need
    /// no seed plumbing.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn lru_matches_a_model() {
        // Reference: a vector ordered most recent first.
        let mut t = KeyTable::new(50);
        let mut model: Vec<String> = Vec::new();
        let mut evictions = 0;
        let mut st = 0x2545_F491_4F6C_DD1D;
        for n in 0..50_000u32 {
            let r = xorshift(&mut st);
            // Short and long (heap) keys, some with multi-byte text.
            let key = match r % 3 {
                0 => format!("k{}", (r >> 8) % 120),
                1 => format!("{}|é|{}", (r >> 8) % 120, "x".repeat(60)),
                _ => format!("{}", (r >> 8) % 80),
            };
            // One step in eleven forgets a key (as after it fired).
            let forget = r % 11;
            if forget == 0 {
                t.remove(&key);
                model.retain(|k| *k != key);
            } else {
                let w = t.entry(&key, || Window::Count(Vec::new()));
                w.add(i64::from(n), None, 3, 10);
                match model.iter().position(|k| *k == key) {
                    Some(p) => {
                        let k = model.remove(p);
                        model.insert(0, k);
                    }
                    None => {
                        if model.len() >= 50 {
                            model.pop();
                            evictions += 1;
                        }
                        model.insert(0, key.clone());
                    }
                }
            }
            assert_eq!(t.len(), model.len());
            assert_eq!(t.evictions, evictions);
        }
        for k in &model {
            assert!(t.contains(k), "{k}");
        }
        let mut order = Vec::new();
        let mut i = t.head;
        while i != NIL {
            let s = &t.slots[i as usize];
            order.push(String::from_utf8(s.key().to_vec()).unwrap());
            i = s.next;
        }
        assert_eq!(order, model);
    }
}
