//! COMMAND, COMMAND DOCS and CONFIG GET data, captured from a real Redis
//! 7.0.15 (see `data/README.md`) and reshaped for older versions.
//!
//! redis-cli asks for COMMAND DOCS at start-up and scanners fingerprint the
//! COMMAND table, so these replies must be the real ones, not a sketch. For
//! 5.x/6.x the 7.0 table is filtered by each command's `since` version and
//! cut to the older entry shape (6 fields in 5.x, 7 with ACL categories in
//! 6.x): close to the real thing, though flags changed slightly over time.

use std::collections::BTreeMap;

use mirage_proto::resp::{ReplyWriter, Value, parse_value};

use super::version::Version;

const COMMAND_7_0_15: &[u8] = include_bytes!("data/command-7.0.15.resp");
const DOCS_7_0_15: &[u8] = include_bytes!("data/command-docs-7.0.15.resp");
const CONFIG_7_0_15: &str = include_str!("data/config-7.0.15.tsv");

/// One CONFIG parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigParam {
    /// Default value as CONFIG GET prints it.
    pub value: String,
    /// Cannot be changed at run time.
    pub immutable: bool,
    /// Refused by CONFIG SET unless `enable-protected-configs` (7.0+).
    pub protected: bool,
}

/// The version-specific tables, built once per emulator.
#[derive(Debug)]
pub struct Catalog {
    /// Encoded COMMAND reply entries, by lower-case name.
    commands: BTreeMap<String, Vec<u8>>,
    /// Encoded COMMAND DOCS (name, doc) pairs, by name (7.0+ only).
    docs: BTreeMap<String, Vec<u8>>,
    /// CONFIG parameters by name.
    pub config: BTreeMap<String, ConfigParam>,
}

fn version_of(s: &[u8]) -> Option<(u32, u32, u32)> {
    let s = std::str::from_utf8(s).ok()?;
    let mut it = s.split('.').map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

fn encode(v: &Value) -> Vec<u8> {
    let mut w = ReplyWriter::new(false);
    v.encode(&mut w);
    w.take()
}

impl Catalog {
    /// Build the tables for `version`.
    pub fn new(version: &Version) -> anyhow::Result<Self> {
        let (docs_val, _) = parse_value(DOCS_7_0_15)
            .map_err(|e| anyhow::anyhow!("embedded COMMAND DOCS: {e}"))?
            .ok_or_else(|| anyhow::anyhow!("embedded COMMAND DOCS truncated"))?;
        let (cmds_val, _) = parse_value(COMMAND_7_0_15)
            .map_err(|e| anyhow::anyhow!("embedded COMMAND: {e}"))?
            .ok_or_else(|| anyhow::anyhow!("embedded COMMAND truncated"))?;
        let Value::Array(doc_items) = docs_val else {
            anyhow::bail!("embedded COMMAND DOCS is not an array");
        };
        // name -> (since, encoded pair)
        let mut since = BTreeMap::new();
        let mut docs = BTreeMap::new();
        let mut it = doc_items.into_iter();
        while let (Some(name), Some(doc)) = (it.next(), it.next()) {
            let Some(n) = name
                .as_bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
            else {
                continue;
            };
            if let Value::Array(fields) = &doc {
                let mut f = fields.iter();
                while let (Some(k), Some(v)) = (f.next(), f.next()) {
                    if k.as_bytes() == Some(b"since")
                        && let Some(t) = v.as_bytes().and_then(version_of)
                    {
                        since.insert(n.clone(), t);
                    }
                }
            }
            let mut pair = encode(&name);
            pair.extend(encode(&doc));
            docs.insert(n, pair);
        }
        let Value::Array(entries) = cmds_val else {
            anyhow::bail!("embedded COMMAND is not an array");
        };
        let mut commands = BTreeMap::new();
        for e in entries {
            let Value::Array(fields) = &e else { continue };
            let Some(name) = fields
                .first()
                .and_then(Value::as_bytes)
                .map(|b| String::from_utf8_lossy(b).into_owned())
            else {
                continue;
            };
            if since.get(&name).is_some_and(|s| *s > version.tuple) {
                continue;
            }
            let shaped = match version.major() {
                0..=5 => Value::Array(fields.iter().take(6).cloned().collect()),
                6 => Value::Array(fields.iter().take(7).cloned().collect()),
                _ => e.clone(),
            };
            commands.insert(name, encode(&shaped));
        }
        if !version.is_seven() {
            docs.clear();
        }
        let mut config = BTreeMap::new();
        for line in CONFIG_7_0_15.lines() {
            let mut parts = line.splitn(3, '\t');
            let (Some(name), Some(flags), Some(value)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            config.insert(
                name.to_owned(),
                ConfigParam {
                    value: value.to_owned(),
                    immutable: flags.contains('I'),
                    protected: flags.contains('P'),
                },
            );
        }
        Ok(Catalog {
            commands,
            docs,
            config,
        })
    }

    /// COMMAND: every entry.
    pub fn command_all(&self, w: &mut ReplyWriter) {
        w.array(self.commands.len());
        for e in self.commands.values() {
            w.raw(e);
        }
    }

    /// COMMAND COUNT.
    pub fn command_count(&self) -> usize {
        self.commands.len()
    }

    /// COMMAND INFO name...: the entry or a null per name.
    pub fn command_info(&self, names: &[Vec<u8>], w: &mut ReplyWriter) {
        w.array(names.len());
        for n in names {
            let key = String::from_utf8_lossy(n).to_ascii_lowercase();
            match self.commands.get(&key) {
                Some(e) => w.raw(e),
                None => w.null_array(),
            }
        }
    }

    /// COMMAND DOCS [name...]: a map of the named (or all) commands.
    pub fn command_docs(&self, names: &[Vec<u8>], w: &mut ReplyWriter) {
        let picked: Vec<&Vec<u8>> = if names.is_empty() {
            self.docs.values().collect()
        } else {
            names
                .iter()
                .filter_map(|n| {
                    self.docs
                        .get(&String::from_utf8_lossy(n).to_ascii_lowercase())
                })
                .collect()
        };
        w.map(picked.len());
        for p in picked {
            if w.resp3() {
                // The stored pair is RESP2: the doc's field list is a flat
                // array there and a map in RESP3.
                if let Ok(Some((Value::Bulk(name), used))) = parse_value(p) {
                    w.bulk(&name);
                    if let Ok(Some((Value::Array(f), _))) = parse_value(&p[used..]) {
                        let mut it = f.into_iter();
                        let mut pairs = Vec::new();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            pairs.push((k, v));
                        }
                        Value::Map(pairs).encode(w);
                    }
                    continue;
                }
            }
            w.raw(p);
        }
    }

    /// Whether `name` (lower case) is a command of this version.
    pub fn has_command(&self, name: &str) -> bool {
        self.commands.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_has_the_full_table() {
        let c = Catalog::new(&Version::new((7, 0, 15))).unwrap();
        assert_eq!(c.command_count(), 240);
        let mut w = ReplyWriter::new(false);
        c.command_all(&mut w);
        // Re-encoding the parsed capture gives the capture's bytes back
        // (in another order).
        assert_eq!(w.len(), COMMAND_7_0_15.len());
        let mut w = ReplyWriter::new(false);
        c.command_docs(&[], &mut w);
        assert_eq!(w.len(), DOCS_7_0_15.len());
        assert!(c.config["dir"].protected);
        assert!(c.config["databases"].immutable);
    }

    #[test]
    fn older_versions_lose_newer_commands() {
        let c = Catalog::new(&Version::new((5, 0, 7))).unwrap();
        assert!(!c.has_command("hello"));
        assert!(!c.has_command("getdel"));
        assert!(c.has_command("get"));
        let mut w = ReplyWriter::new(false);
        c.command_info(&[b"get".to_vec()], &mut w);
        assert!(w.as_bytes().starts_with(b"*1\r\n*6\r\n$3\r\nget\r\n:2\r\n"));
        let six = Catalog::new(&Version::new((6, 0, 9))).unwrap();
        assert!(six.has_command("hello"));
        assert!(!six.has_command("getdel"));
    }
}
