//! The fake data: configured databases plus what clients write, in memory,
//! one store per sensor (so a ransom bot that checks its work from a new
//! connection sees its note), bounded by bytes and by the number of
//! databases and collections. Past a bound, writes are answered as usual
//! but not kept.

use std::collections::BTreeMap;

use mirage_config::MongodbConfig;
use mirage_proto::mongodb::{Document, Value};

/// Most databases held (configured ones included).
pub const MAX_DATABASES: usize = 256;
/// Most collections held in all.
pub const MAX_COLLECTIONS: usize = 2048;
/// Longest database or collection name kept.
pub const MAX_NAME: usize = 120;

/// One database.
#[derive(Debug, Default)]
pub struct Db {
    /// Configured `sizeOnDisk`, or 0 for databases clients created.
    pub base_size: u64,
    /// Collections and their documents.
    pub colls: BTreeMap<String, Vec<Document>>,
}

/// All databases.
#[derive(Debug)]
pub struct Store {
    /// By name.
    pub dbs: BTreeMap<String, Db>,
    bytes: usize,
    max_bytes: usize,
}

/// Databases every mongod has, with the sizes a fresh 6.0 reports.
pub const SYSTEM_DBS: &[(&str, u64)] = &[("admin", 40960), ("config", 61440), ("local", 73728)];

impl Store {
    /// The configured databases.
    pub fn new(cfg: &MongodbConfig) -> Store {
        let mut dbs = BTreeMap::new();
        for db in &cfg.databases {
            let mut d = Db {
                base_size: db.size_on_disk,
                ..Db::default()
            };
            for c in &db.collections {
                let docs = c
                    .documents
                    .iter()
                    .filter_map(|t| super::ejson::parse_document(t))
                    .collect();
                d.colls.insert(c.name.clone(), docs);
            }
            dbs.insert(db.name.clone(), d);
        }
        Store {
            dbs,
            bytes: 0,
            max_bytes: usize::try_from(cfg.max_store_bytes).unwrap_or(usize::MAX),
        }
    }

    fn collections(&self) -> usize {
        self.dbs.values().map(|d| d.colls.len()).sum()
    }

    /// The documents of `db.coll`, if it exists.
    pub fn docs(&self, db: &str, coll: &str) -> Option<&Vec<Document>> {
        self.dbs.get(db)?.colls.get(coll)
    }

    /// Make sure `db.coll` exists; false when a bound stops it.
    pub fn ensure(&mut self, db: &str, coll: &str) -> bool {
        if db.len() > MAX_NAME || coll.len() > MAX_NAME {
            return false;
        }
        if !self.dbs.contains_key(db) && self.dbs.len() >= MAX_DATABASES {
            return false;
        }
        let full = self.collections() >= MAX_COLLECTIONS;
        let d = self.dbs.entry(db.to_owned()).or_default();
        if !d.colls.contains_key(coll) {
            if full {
                return false;
            }
            d.colls.insert(coll.to_owned(), Vec::new());
        }
        true
    }

    /// Add a document; false when not kept.
    pub fn insert(&mut self, db: &str, coll: &str, doc: Document) -> bool {
        let size = doc.to_bytes().len();
        if self.bytes + size > self.max_bytes || !self.ensure(db, coll) {
            return false;
        }
        if let Some(c) = self.dbs.get_mut(db).and_then(|d| d.colls.get_mut(coll)) {
            c.push(doc);
            self.bytes += size;
            return true;
        }
        false
    }

    /// Mutable documents of `db.coll`.
    pub fn docs_mut(&mut self, db: &str, coll: &str) -> Option<&mut Vec<Document>> {
        self.dbs.get_mut(db)?.colls.get_mut(coll)
    }

    /// Drop a collection; whether it existed.
    pub fn drop_collection(&mut self, db: &str, coll: &str) -> bool {
        let Some(d) = self.dbs.get_mut(db) else {
            return false;
        };
        let gone = d.colls.remove(coll).is_some();
        if d.colls.is_empty() && d.base_size == 0 {
            self.dbs.remove(db);
        }
        gone
    }

    /// Drop a database; whether it existed.
    pub fn drop_database(&mut self, db: &str) -> bool {
        self.dbs.remove(db).is_some()
    }

    /// `sizeOnDisk` of a database as listDatabases reports it.
    pub fn size_on_disk(&self, db: &str) -> u64 {
        let Some(d) = self.dbs.get(db) else {
            return 0;
        };
        if d.base_size > 0 {
            return d.base_size;
        }
        // WiredTiger: a 4 KiB-rounded file per collection and per index.
        let data: u64 = d
            .colls
            .values()
            .flatten()
            .map(|doc| doc.to_bytes().len() as u64)
            .sum();
        8192 + d.colls.len() as u64 * 8192 + data.div_ceil(4096) * 4096
    }
}

/// Whether `doc` matches `filter`: top-level (and dotted) equality, and the
/// operators `$eq`, `$ne`, `$in`, `$nin`, `$exists`; other operators match
/// everything (answers stay plausible, nothing is evaluated).
pub fn matches(doc: &Document, filter: &Document) -> bool {
    filter.0.iter().all(|(k, want)| {
        if k.starts_with('$') {
            return true;
        }
        let have = lookup(doc, k);
        match want {
            Value::Document(ops) if ops.first().is_some_and(|(o, _)| o.starts_with('$')) => {
                ops.0.iter().all(|(op, arg)| match op.as_str() {
                    "$eq" => have.is_some_and(|h| same(h, arg)),
                    "$ne" => !have.is_some_and(|h| same(h, arg)),
                    "$in" => match arg {
                        Value::Array(a) => have.is_some_and(|h| a.iter().any(|x| same(h, x))),
                        _ => false,
                    },
                    "$nin" => match arg {
                        Value::Array(a) => !have.is_some_and(|h| a.iter().any(|x| same(h, x))),
                        _ => true,
                    },
                    "$exists" => have.is_some() == arg.truthy(),
                    _ => true,
                })
            }
            _ => have.is_some_and(|h| {
                same(h, want) || matches!(h, Value::Array(a) if a.iter().any(|x| same(x, want)))
            }),
        }
    })
}

fn lookup<'a>(doc: &'a Document, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = doc.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_document()?.get(p)?;
    }
    Some(cur)
}

/// BSON equality with numbers compared by value across types.
pub fn same(a: &Value, b: &Value) -> bool {
    let num = |v: &Value| match *v {
        Value::Int32(i) => Some(f64::from(i)),
        Value::Int64(i) => Some(i as f64),
        Value::Double(d) => Some(d),
        _ => None,
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let d = Document::new()
            .with("a", 1)
            .with("s", "x")
            .with("o", Document::new().with("b", 2.0))
            .with("tags", vec![Value::from("t1"), Value::from("t2")]);
        assert!(matches(&d, &Document::new()));
        assert!(matches(&d, &Document::new().with("a", 1.0)));
        assert!(matches(&d, &Document::new().with("o.b", 2)));
        assert!(matches(&d, &Document::new().with("tags", "t2")));
        assert!(!matches(&d, &Document::new().with("s", "y")));
        assert!(matches(
            &d,
            &Document::new().with(
                "a",
                Document::new().with("$in", vec![Value::Int32(3), Value::Int64(1)])
            )
        ));
        assert!(matches(
            &d,
            &Document::new().with("zz", Document::new().with("$exists", false))
        ));
        assert!(!matches(
            &d,
            &Document::new().with("a", Document::new().with("$ne", 1))
        ));
    }

    #[test]
    fn bounds_hold() {
        let cfg = MongodbConfig {
            max_store_bytes: 100,
            ..MongodbConfig::default()
        };
        let mut s = Store::new(&cfg);
        assert!(s.docs("shop", "customers").is_some_and(|d| d.len() == 2));
        assert!(s.insert("x", "c", Document::new().with("a", "b")));
        assert!(!s.insert("x", "c", Document::new().with("a", "b".repeat(200))));
        assert!(!s.ensure(&"n".repeat(200), "c"));
        assert!(s.size_on_disk("x") >= 8192);
        assert!(s.drop_collection("x", "c"));
        assert!(!s.dbs.contains_key("x"));
    }
}
