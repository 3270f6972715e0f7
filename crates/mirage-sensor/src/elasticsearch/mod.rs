//! The `elasticsearch` service: the REST API that scanners fingerprint and
//! exploit kits drive, on the shared HTTP core ([`crate::http`]).
//!
//! `GET /` prints the banner exactly as Elasticsearch pretty-prints it for
//! the configured 7.x/8.x version; `_cat/indices` (text and JSON),
//! `_cluster/health`, `_nodes`, `_search` and `/{index}/_search` answer in
//! Elasticsearch's shapes; index creation and deletion and document writes
//! go into a small per-sensor store with caps on indices, documents and
//! bytes. From 7.14 every response carries `X-elastic-product:
//! Elasticsearch`, which the official clients check. Script payloads (the
//! MVEL `script_fields` of CVE-2014-3120 and the Groovy sandbox escape of
//! CVE-2015-1427) are `attack` events; nothing is ever executed.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use base64::Engine as _;
use mirage_config::ElasticsearchConfig;
use mirage_proto::http::{HttpLimits, Request, form_pairs, percent_decode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::{Answer, Conn, CoreLimits, Finding, HttpApp};

/// Build facts printed in the banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// `build_hash`.
    pub hash: String,
    /// `build_date`.
    pub date: String,
    /// `build_type`.
    pub kind: &'static str,
    /// `lucene_version`.
    pub lucene: &'static str,
    /// `minimum_wire_compatibility_version`.
    pub wire: &'static str,
    /// `minimum_index_compatibility_version`.
    pub index: &'static str,
}

/// Build facts for `version`: the released values for the versions listed,
/// plausible ones (a stable hash of the version) for the rest.
pub fn build_for(version: &str, major: u32, minor: u32) -> Build {
    let known: &[(&str, &str, &str, &str)] = &[
        (
            "7.10.2",
            "747e1cc71def077253878a59143c1f785afa92b9",
            "2021-01-13T00:42:12.435326Z",
            "8.7.0",
        ),
        (
            "7.17.9",
            "ef48222227ee6b9e70e502f0f0daa52435ee634d",
            "2023-01-31T05:34:43.305517834Z",
            "8.11.1",
        ),
    ];
    let (wire, index) = if major >= 8 {
        ("7.17.0", "7.0.0")
    } else {
        ("6.8.0", "6.0.0-beta1")
    };
    if let Some((_, h, d, l)) = known.iter().find(|k| k.0 == version) {
        return Build {
            hash: (*h).into(),
            date: (*d).into(),
            kind: "deb",
            lucene: l,
            wire,
            index,
        };
    }
    let digest = Sha256::digest(version.as_bytes());
    let lucene = match (major, minor) {
        (7, 0..=9) => "8.6.2",
        (7, 10..=12) => "8.7.0",
        (7, 13..=15) => "8.9.0",
        (7, _) => "8.11.1",
        (8, 0..=9) => "9.4.2",
        (8, 10..=12) => "9.8.0",
        _ => "9.10.0",
    };
    Build {
        hash: mirage_core::event::hex(&digest[..20]),
        date: "2023-11-11T10:05:59.421038163Z".into(),
        kind: if major >= 8 { "docker" } else { "deb" },
        lucene,
        wire,
        index,
    }
}

#[derive(Debug)]
struct Index {
    uuid: String,
    docs: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Default)]
struct Store {
    indices: BTreeMap<String, Index>,
    docs: usize,
    bytes: usize,
    next_id: u64,
}

/// The Elasticsearch app.
pub struct Elasticsearch {
    cfg: ElasticsearchConfig,
    banner: Vec<u8>,
    build: Build,
    node_id: String,
    product_header: bool,
    major: u32,
    store: Mutex<Store>,
    started: Instant,
}

fn b64id(seed: &[u8]) -> String {
    let d = Sha256::digest(seed);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d[..16])
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An Elasticsearch error body.
fn es_error(kind: &str, reason: &str, status: u16, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut cause = serde_json::Map::new();
    cause.insert("type".into(), json!(kind));
    cause.insert("reason".into(), json!(reason));
    for (k, v) in extra {
        cause.insert((*k).into(), json!(v));
    }
    // Field order as Elasticsearch writes it: type, reason, then the rest.
    let mut c = format!("{{\"type\":{},\"reason\":{}", json!(kind), json!(reason));
    for (k, v) in extra {
        c.push_str(&format!(",{}:{}", json!(k), json!(v)));
    }
    c.push('}');
    format!(
        "{{\"error\":{{\"root_cause\":[{c}],{}}},\"status\":{status}}}",
        &c[1..c.len() - 1]
    )
    .into_bytes()
}

fn not_found(index: &str) -> (u16, Vec<u8>) {
    (
        404,
        es_error(
            "index_not_found_exception",
            &format!("no such index [{index}]"),
            404,
            &[
                ("resource.type", "index_or_alias"),
                ("resource.id", index),
                ("index_uuid", "_na_"),
                ("index", index),
            ],
        ),
    )
}

fn valid_index_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && n != "."
        && n != ".."
        && !n.starts_with(['_', '-', '+'])
        && !n
            .chars()
            .any(|c| c.is_ascii_uppercase() || "\\/*?\"<>| ,#:".contains(c) || c.is_control())
}

/// Script payloads in a search request: CVE-2014-3120 (MVEL in
/// `script_fields`) and CVE-2015-1427 (Groovy sandbox escape).
pub fn script_findings(req: &Request) -> Vec<Finding> {
    let mut hay = req.body.to_ascii_lowercase();
    if let Some(q) = req.query() {
        hay.extend_from_slice(&percent_decode(q).to_ascii_lowercase());
    }
    let has = |n: &str| hay.windows(n.len()).any(|w| w == n.as_bytes());
    if !has("script") {
        return Vec::new();
    }
    let dangerous = [
        "java.lang",
        "runtime",
        ".exec(",
        "processbuilder",
        "import java",
        "getclass",
        "forname",
        "system.getproperty",
        "new java",
        ".execute()",
        "java.io",
    ];
    if !dangerous.iter().any(|d| has(d)) {
        return Vec::new();
    }
    let (cve, summary) = if has("groovy") || has("forname") || has("getclass") {
        (
            "CVE-2015-1427",
            "Groovy sandbox escape in a search script (CVE-2015-1427)",
        )
    } else if has("script_fields") || has("mvel") {
        (
            "CVE-2014-3120",
            "MVEL dynamic script in a search (CVE-2014-3120)",
        )
    } else {
        ("", "Java code in a search script")
    };
    let mut f = Finding::new("elasticsearch.script_rce", summary, "body", &req.body);
    if !cve.is_empty() {
        f.evidence.insert("cve".into(), json!(cve));
    }
    vec![f]
}

impl Elasticsearch {
    /// Build from configuration; `sensor` seeds the cluster and node ids.
    pub fn new(cfg: ElasticsearchConfig, sensor: &str) -> Elasticsearch {
        let (major, minor, _) = cfg.version_tuple();
        let build = build_for(&cfg.version, major, minor);
        let cluster_uuid = if cfg.cluster_uuid.is_empty() {
            b64id(format!("cluster:{sensor}:{}", cfg.cluster_name).as_bytes())
        } else {
            cfg.cluster_uuid.clone()
        };
        let node_id = b64id(format!("node:{sensor}:{}", cfg.node_name).as_bytes());
        let banner = format!(
            "{{\n  \"name\" : \"{}\",\n  \"cluster_name\" : \"{}\",\n  \"cluster_uuid\" : \"{}\",\n  \"version\" : {{\n    \"number\" : \"{}\",\n    \"build_flavor\" : \"default\",\n    \"build_type\" : \"{}\",\n    \"build_hash\" : \"{}\",\n    \"build_date\" : \"{}\",\n    \"build_snapshot\" : false,\n    \"lucene_version\" : \"{}\",\n    \"minimum_wire_compatibility_version\" : \"{}\",\n    \"minimum_index_compatibility_version\" : \"{}\"\n  }},\n  \"tagline\" : \"You Know, for Search\"\n}}\n",
            cfg.node_name,
            cfg.cluster_name,
            cluster_uuid,
            cfg.version,
            build.kind,
            build.hash,
            build.date,
            build.lucene,
            build.wire,
            build.index
        )
        .into_bytes();
        Elasticsearch {
            product_header: (major, minor) >= (7, 14),
            major,
            banner,
            build,
            node_id,
            cfg,
            store: Mutex::new(Store::default()),
            started: Instant::now(),
        }
    }

    /// The `GET /` body.
    pub fn banner(&self) -> &[u8] {
        &self.banner
    }

    fn write(&self, req_minor: u8, status: u16, ctype: &str, body: &[u8], head: bool) -> Vec<u8> {
        let reason = match status {
            200 => "OK",
            201 => "Created",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            413 => "Request Entity Too Large",
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            _ => "Unknown",
        };
        let mut o = Vec::with_capacity(160 + body.len());
        o.extend_from_slice(format!("HTTP/1.{req_minor} {status} {reason}\r\n").as_bytes());
        if self.product_header {
            o.extend_from_slice(b"X-elastic-product: Elasticsearch\r\n");
        }
        o.extend_from_slice(
            format!(
                "content-type: {ctype}\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        if !head {
            o.extend_from_slice(body);
        }
        o
    }

    fn type_field(&self) -> &'static str {
        if self.major >= 8 {
            ""
        } else {
            "\"_type\":\"_doc\","
        }
    }

    fn cat_indices(&self, req: &Request) -> (u16, &'static str, Vec<u8>) {
        let params = form_pairs(req.query().unwrap_or_default(), 16);
        let json_fmt = params.iter().any(|(k, v)| k == b"format" && v == b"json");
        let verbose = params.iter().any(|(k, _)| k == b"v");
        let st = lock(&self.store);
        let rows: Vec<[String; 10]> = st
            .indices
            .iter()
            .map(|(name, ix)| {
                let size: usize = ix.docs.values().map(|d| d.len()).sum::<usize>() + 225;
                let size = format!("{:.1}kb", size as f64 / 1024.0);
                [
                    "yellow".into(),
                    "open".into(),
                    name.clone(),
                    ix.uuid.clone(),
                    "1".into(),
                    "1".into(),
                    ix.docs.len().to_string(),
                    "0".into(),
                    size.clone(),
                    size,
                ]
            })
            .collect();
        const COLS: [&str; 10] = [
            "health",
            "status",
            "index",
            "uuid",
            "pri",
            "rep",
            "docs.count",
            "docs.deleted",
            "store.size",
            "pri.store.size",
        ];
        if json_fmt {
            let items: Vec<String> = rows
                .iter()
                .map(|r| {
                    let fields: Vec<String> = COLS
                        .iter()
                        .zip(r.iter())
                        .map(|(c, v)| format!("{}:{}", json!(c), json!(v)))
                        .collect();
                    format!("{{{}}}", fields.join(","))
                })
                .collect();
            return (
                200,
                "application/json; charset=UTF-8",
                format!("[{}]", items.join(",")).into_bytes(),
            );
        }
        // Columns padded to their widest cell, as _cat does.
        let mut all: Vec<Vec<String>> = Vec::new();
        if verbose {
            all.push(COLS.iter().map(|c| c.to_string()).collect());
        }
        all.extend(rows.iter().map(|r| r.to_vec()));
        let mut widths = [0usize; 10];
        for r in &all {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.len());
            }
        }
        let mut out = String::new();
        for r in &all {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
                .collect();
            out.push_str(line.join(" ").trim_end());
            out.push('\n');
        }
        (200, "text/plain; charset=UTF-8", out.into_bytes())
    }

    fn cluster_health(&self) -> Vec<u8> {
        let n = lock(&self.store).indices.len();
        let status = if n == 0 { "green" } else { "yellow" };
        let pct = if n == 0 { "100.0" } else { "50.0" };
        format!(
            "{{\"cluster_name\":{},\"status\":\"{status}\",\"timed_out\":false,\"number_of_nodes\":1,\"number_of_data_nodes\":1,\"active_primary_shards\":{n},\"active_shards\":{n},\"relocating_shards\":0,\"initializing_shards\":0,\"unassigned_shards\":{n},\"delayed_unassigned_shards\":0,\"number_of_pending_tasks\":0,\"number_of_in_flight_fetch\":0,\"task_max_waiting_in_queue_millis\":0,\"active_shards_percent_as_number\":{pct}}}",
            json!(self.cfg.cluster_name)
        )
        .into_bytes()
    }

    fn nodes(&self, conn: &Conn) -> Vec<u8> {
        let ip = conn.local.ip().to_string();
        let uptime = self.started.elapsed().as_millis() as u64;
        format!(
            "{{\"_nodes\":{{\"total\":1,\"successful\":1,\"failed\":0}},\"cluster_name\":{cn},\"nodes\":{{\"{id}\":{{\"name\":{name},\"transport_address\":\"{ip}:9300\",\"host\":\"{ip}\",\"ip\":\"{ip}\",\"version\":\"{v}\",\"build_flavor\":\"default\",\"build_type\":\"{bt}\",\"build_hash\":\"{bh}\",\"total_indexing_buffer\":103795916,\"roles\":[\"data\",\"data_cold\",\"data_content\",\"data_frozen\",\"data_hot\",\"data_warm\",\"ingest\",\"master\",\"ml\",\"remote_cluster_client\",\"transform\"],\"attributes\":{{\"ml.machine_memory\":\"4127137792\",\"xpack.installed\":\"true\",\"ml.max_jvm_size\":\"1037959168\"}},\"settings\":{{\"cluster\":{{\"name\":{cn}}},\"node\":{{\"name\":{name}}},\"path\":{{\"logs\":\"/var/log/elasticsearch\",\"home\":\"/usr/share/elasticsearch\",\"data\":\"/var/lib/elasticsearch\"}},\"network\":{{\"host\":\"0.0.0.0\"}}}},\"os\":{{\"refresh_interval_in_millis\":1000,\"name\":\"Linux\",\"pretty_name\":\"Debian GNU/Linux 12 (bookworm)\",\"arch\":\"amd64\",\"version\":\"6.1.0-26-amd64\",\"available_processors\":2,\"allocated_processors\":2}},\"process\":{{\"refresh_interval_in_millis\":1000,\"id\":{pid},\"mlockall\":false}},\"jvm\":{{\"pid\":{pid},\"version\":\"19.0.2\",\"vm_name\":\"OpenJDK 64-Bit Server VM\",\"vm_vendor\":\"Oracle Corporation\",\"start_time_in_millis\":{start},\"mem\":{{\"heap_init_in_bytes\":1038090240,\"heap_max_in_bytes\":1038090240}}}}}}}}}}",
            cn = json!(self.cfg.cluster_name),
            id = self.node_id,
            name = json!(self.cfg.node_name),
            v = self.cfg.version,
            bt = self.build.kind,
            bh = self.build.hash,
            pid = 800 + std::process::id() % 3000,
            start = chrono::Utc::now().timestamp_millis() as u64 - uptime - 86_400_000,
        )
        .into_bytes()
    }

    fn search(&self, index: Option<&str>) -> (u16, Vec<u8>) {
        let st = lock(&self.store);
        let targets: Vec<(&String, &Index)> = match index {
            None | Some("_all") | Some("*") => st.indices.iter().collect(),
            Some(i) => match st.indices.get_key_value(i) {
                Some(x) => vec![x],
                None => {
                    drop(st);
                    return not_found(i);
                }
            },
        };
        let total: usize = targets.iter().map(|(_, ix)| ix.docs.len()).sum();
        let shards = targets.len();
        let mut hits = Vec::new();
        for (name, ix) in &targets {
            for (id, src) in ix.docs.iter() {
                if hits.len() >= 10 {
                    break;
                }
                hits.push(format!(
                    "{{\"_index\":{},{}\"_id\":{},\"_score\":1.0,\"_source\":{}}}",
                    json!(name),
                    self.type_field(),
                    json!(id),
                    String::from_utf8_lossy(src)
                ));
            }
        }
        let max_score = if total > 0 { "1.0" } else { "null" };
        (
            200,
            format!(
                "{{\"took\":{},\"timed_out\":false,\"_shards\":{{\"total\":{shards},\"successful\":{shards},\"skipped\":0,\"failed\":0}},\"hits\":{{\"total\":{{\"value\":{total},\"relation\":\"eq\"}},\"max_score\":{max_score},\"hits\":[{}]}}}}",
                1 + total % 7,
                hits.join(",")
            )
            .into_bytes(),
        )
    }

    fn create_index(&self, name: &str) -> (u16, Vec<u8>) {
        if !valid_index_name(name) {
            return (
                400,
                es_error(
                    "invalid_index_name_exception",
                    &format!("Invalid index name [{name}], must be lowercase"),
                    400,
                    &[("index_uuid", "_na_"), ("index", name)],
                ),
            );
        }
        let mut st = lock(&self.store);
        if let Some(ix) = st.indices.get(name) {
            let uuid = ix.uuid.clone();
            return (
                400,
                es_error(
                    "resource_already_exists_exception",
                    &format!("index [{name}/{uuid}] already exists"),
                    400,
                    &[("index_uuid", &uuid), ("index", name)],
                ),
            );
        }
        if st.indices.len() >= self.cfg.max_indices {
            return (
                400,
                es_error(
                    "validation_exception",
                    "Validation Failed: 1: this action would add [2] shards, but this cluster currently has [1000]/[1000] maximum normal shards open;",
                    400,
                    &[],
                ),
            );
        }
        let uuid = b64id(format!("{name}:{}", st.next_id).as_bytes());
        st.next_id += 1;
        st.indices.insert(
            name.to_owned(),
            Index {
                uuid,
                docs: BTreeMap::new(),
            },
        );
        (
            200,
            format!(
                "{{\"acknowledged\":true,\"shards_acknowledged\":true,\"index\":{}}}",
                json!(name)
            )
            .into_bytes(),
        )
    }

    fn put_doc(&self, index: &str, id: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
        if serde_json::from_slice::<serde_json::Map<String, Value>>(body).is_err() {
            return (
                400,
                es_error("mapper_parsing_exception", "failed to parse", 400, &[]),
            );
        }
        if !lock(&self.store).indices.contains_key(index) {
            // Writes create the index, as with default settings.
            let (s, b) = self.create_index(index);
            if s != 200 {
                return (s, b);
            }
        }
        let mut st = lock(&self.store);
        let id = match id {
            Some(i) => i.to_owned(),
            None => {
                st.next_id += 1;
                b64id(format!("doc:{}", st.next_id).as_bytes())[..20].to_owned()
            }
        };
        let old = st
            .indices
            .get(index)
            .and_then(|ix| ix.docs.get(&id))
            .map(|d| d.len());
        let grow = body.len().saturating_sub(old.unwrap_or(0));
        if (old.is_none() && st.docs >= self.cfg.max_documents)
            || st.bytes + grow > self.cfg.max_store_bytes
        {
            return (
                429,
                es_error(
                    "es_rejected_execution_exception",
                    "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=0, max_coordinating_and_primary_bytes=0]",
                    429,
                    &[],
                ),
            );
        }
        let body = body.trim_ascii().to_vec();
        let Some(ix) = st.indices.get_mut(index) else {
            return not_found(index);
        };
        let version = ix.docs.len() as u64 % 3 + 1;
        let seq = ix.docs.len();
        let prev = ix.docs.insert(id.clone(), body);
        let new_len = ix.docs[&id].len();
        st.bytes = st.bytes - prev.as_ref().map_or(0, |p| p.len()) + new_len;
        if prev.is_none() {
            st.docs += 1;
        }
        let (status, result) = if prev.is_some() {
            (200, "updated")
        } else {
            (201, "created")
        };
        (
            status,
            format!(
                "{{\"_index\":{},{}\"_id\":{},\"_version\":{version},\"result\":\"{result}\",\"_shards\":{{\"total\":2,\"successful\":1,\"failed\":0}},\"_seq_no\":{seq},\"_primary_term\":1}}",
                json!(index),
                self.type_field(),
                json!(id)
            )
            .into_bytes(),
        )
    }

    fn route(&self, req: &Request, conn: &Conn) -> (u16, &'static str, Vec<u8>) {
        const JSON: &str = "application/json; charset=UTF-8";
        let path = String::from_utf8_lossy(&percent_decode(req.path())).into_owned();
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let m = req.method.as_str();
        let read = m == "GET" || m == "HEAD";
        let no_handler = || {
            (
                400,
                JSON,
                format!(
                    "{{\"error\":\"no handler found for uri [{}] and method [{}]\"}}",
                    path.replace('"', "\\\""),
                    m.replace('"', "")
                )
                .into_bytes(),
            )
        };
        match (segs.as_slice(), m) {
            ([], _) if read => (200, JSON, self.banner.clone()),
            (["_cat", "indices", ..], _) if read => self.cat_indices(req),
            (["_cluster", "health", ..], _) if read => (200, JSON, self.cluster_health()),
            (["_nodes", ..], _) if read => (200, JSON, self.nodes(conn)),
            (["_search"], "GET" | "POST") => {
                let (s, b) = self.search(None);
                (s, JSON, b)
            }
            ([index, "_search"], "GET" | "POST") => {
                let (s, b) = self.search(Some(index));
                (s, JSON, b)
            }
            ([index], "PUT") => {
                let (s, b) = self.create_index(index);
                (s, JSON, b)
            }
            ([index], "DELETE") => {
                let mut st = lock(&self.store);
                match st.indices.remove(*index) {
                    Some(ix) => {
                        st.docs -= ix.docs.len();
                        st.bytes -= ix.docs.values().map(|d| d.len()).sum::<usize>();
                        (200, JSON, b"{\"acknowledged\":true}".to_vec())
                    }
                    None => {
                        drop(st);
                        let (s, b) = not_found(index);
                        (s, JSON, b)
                    }
                }
            }
            ([index], _) if read && !index.starts_with('_') => {
                let st = lock(&self.store);
                match st.indices.get(*index) {
                    Some(ix) => {
                        let body = format!(
                            "{{{}:{{\"aliases\":{{}},\"mappings\":{{}},\"settings\":{{\"index\":{{\"routing\":{{\"allocation\":{{\"include\":{{\"_tier_preference\":\"data_content\"}}}}}},\"number_of_shards\":\"1\",\"provided_name\":{},\"creation_date\":\"1700000000000\",\"number_of_replicas\":\"1\",\"uuid\":\"{}\",\"version\":{{\"created\":\"7170999\"}}}}}}}}}}",
                            json!(index),
                            json!(index),
                            ix.uuid
                        );
                        (200, JSON, body.into_bytes())
                    }
                    None => {
                        drop(st);
                        let (s, b) = not_found(index);
                        (s, JSON, b)
                    }
                }
            }
            ([index, "_doc"], "POST") if !index.starts_with('_') => {
                let (s, b) = self.put_doc(index, None, &req.body);
                (s, JSON, b)
            }
            ([index, "_doc" | "_create", id], "PUT" | "POST") if !index.starts_with('_') => {
                let (s, b) = self.put_doc(index, Some(id), &req.body);
                (s, JSON, b)
            }
            ([index, "_doc", id], _) if read => {
                let st = lock(&self.store);
                let Some(ix) = st.indices.get(*index) else {
                    drop(st);
                    let (s, b) = not_found(index);
                    return (s, JSON, b);
                };
                let body = match ix.docs.get(*id) {
                    Some(src) => format!(
                        "{{\"_index\":{},{}\"_id\":{},\"_version\":1,\"_seq_no\":0,\"_primary_term\":1,\"found\":true,\"_source\":{}}}",
                        json!(index),
                        self.type_field(),
                        json!(id),
                        String::from_utf8_lossy(src)
                    ),
                    None => format!(
                        "{{\"_index\":{},{}\"_id\":{},\"found\":false}}",
                        json!(index),
                        self.type_field(),
                        json!(id)
                    ),
                };
                let status = if ix.docs.contains_key(*id) { 200 } else { 404 };
                (status, JSON, body.into_bytes())
            }
            _ => no_handler(),
        }
    }
}

impl HttpApp for Elasticsearch {
    fn service(&self) -> &str {
        "elasticsearch"
    }

    fn limits(&self) -> CoreLimits {
        CoreLimits {
            parse: HttpLimits {
                max_head: self.cfg.max_header_bytes,
                max_headers: self.cfg.max_headers,
                max_body: self.cfg.max_body_bytes,
            },
            body_capture: self.cfg.body_capture_bytes,
            request_timeout: std::time::Duration::from_secs(self.cfg.request_timeout_secs),
            keepalive_requests: 10_000,
        }
    }

    fn handle(&self, req: &Request, _keep: bool, conn: &Conn) -> Answer {
        let (status, ctype, body) = self.route(req, conn);
        let findings = if req.path().ends_with(b"_search") {
            script_findings(req)
        } else {
            Vec::new()
        };
        Answer {
            bytes: self.write(req.minor, status, ctype, &body, req.method == "HEAD"),
            status,
            close: false,
            credentials: Vec::new(),
            findings,
        }
    }

    fn refuse(&self, status: u16, _conn: &Conn) -> Vec<u8> {
        let body = es_error(
            "illegal_argument_exception",
            "invalid HTTP request",
            status,
            &[],
        );
        self.write(1, status, "application/json; charset=UTF-8", &body, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirage_proto::http::parse_request;

    #[test]
    fn banner_matches_nmap_shape() {
        let es = Elasticsearch::new(ElasticsearchConfig::default(), "s");
        let b = String::from_utf8(es.banner().to_vec()).unwrap();
        assert!(b.starts_with("{\n  \"name\" : \"es01\",\n  \"cluster_name\" : \"elasticsearch\",\n  \"cluster_uuid\" : \""));
        assert!(b.contains("\"number\" : \"7.10.2\",\n    \"build_flavor\" : \"default\""));
        assert!(b.ends_with("  \"tagline\" : \"You Know, for Search\"\n}\n"));
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["version"]["lucene_version"], "8.7.0");
    }

    #[test]
    fn groovy_payload_is_cve_2015_1427() {
        let body = br#"{"size":1,"script_fields":{"lupin":{"lang":"groovy","script":"java.lang.Math.class.forName(\"java.lang.Runtime\").getRuntime().exec(\"id\").getText()"}}}"#;
        let raw = [
            format!(
                "POST /_search HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
            body,
        ]
        .concat();
        let (req, _) = parse_request(&raw, &HttpLimits::default())
            .unwrap()
            .unwrap();
        let f = script_findings(&req);
        assert_eq!(f[0].evidence["cve"], "CVE-2015-1427");
    }

    #[test]
    fn errors_have_elasticsearch_shape() {
        let (_, b) = not_found("x");
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v["error"]["root_cause"][0]["type"],
            "index_not_found_exception"
        );
        assert_eq!(v["error"]["index"], "x");
        assert_eq!(v["status"], 404);
    }
}
