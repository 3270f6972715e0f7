//! The MongoDB honeypot driven by real clients through the real binary:
//! mongosh (npm, installed by `scripts/install-test-deps.sh` under
//! `.npm-tools/`), pymongo and nmap -sV, plus hostile input. Every command
//! must land in the JSONL as relaxed Extended JSON, logins must fail with
//! mongod's exact error, and a ransom sequence must be recognised.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sensor, of_kind, read_events};
use mirage_proto::mongodb::{self as proto, Document, Limits, Value};
use serde_json::Value as Json;

fn mongo_sensor(config: &str) -> Sensor {
    Sensor::start("mongodb", config, tempfile::tempdir().unwrap())
}

/// mongosh from `.npm-tools/` (pinned in scripts/install-test-deps.sh).
fn mongosh_path() -> PathBuf {
    let p = mirage_testkit::repo_root().join(".npm-tools/node_modules/.bin/mongosh");
    assert!(
        p.is_file(),
        "test needs mongosh at {}: run `bash scripts/install-test-deps.sh` first",
        p.display()
    );
    p
}

/// Run mongosh --quiet URI --eval SCRIPT; returns (success, stdout, stderr).
fn mongosh(uri: &str, script: &str) -> (bool, String, String) {
    let out = Command::new(mongosh_path())
        .args(["--quiet", "--norc", uri, "--eval", script])
        .env("MONGOSH_NO_UPDATE_CHECK", "1")
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn commands<'a>(events: &'a [Json], name: &str) -> Vec<&'a Json> {
    of_kind(events, "command")
        .into_iter()
        .filter(|e| e["command"] == name)
        .collect()
}

/// mongosh: listDatabases, `show dbs`, `db.version()`, insertOne and find
/// work, and each command is recorded with the client's address.
#[test]
fn mongosh_lists_inserts_and_finds() {
    let mut s = mongo_sensor("");
    let uri = format!("mongodb://127.0.0.1:{}/", s.port());
    let (ok, out, err) = mongosh(
        &uri,
        r#"const r = db.adminCommand({listDatabases: 1});
print("DBS " + r.databases.map(d => d.name).join(","));
print("VERSION " + db.version());
const x = db.getSiblingDB("x");
const ins = x.c.insertOne({hello: "world", n: 42});
print("ACK " + ins.acknowledged);
printjson(x.c.find({hello: "world"}).toArray());
print("SHOP " + db.getSiblingDB("shop").customers.countDocuments());"#,
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("DBS admin,config,local,shop"), "{out}");
    assert!(out.contains("VERSION 6.0.19"), "{out}");
    assert!(out.contains("ACK true"), "{out}");
    assert!(
        out.contains("hello: 'world'") && out.contains("n: 42"),
        "{out}"
    );
    assert!(out.contains("SHOP 2"), "{out}");
    let (ok, out, err) = mongosh(&uri, "show dbs");
    assert!(ok, "{err}");
    // mongosh prints sizes from listDatabases; `x` now exists.
    assert!(out.contains("shop") && out.contains("176.00 KiB"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("x ")), "{out}");

    s.stop();
    let events = read_events(&s.event_dir());
    let list = commands(&events, "listdatabases");
    assert!(!list.is_empty());
    assert_eq!(list[0]["args"][0], "admin");
    let raw: Json = serde_json::from_str(list[0]["raw"].as_str().unwrap()).unwrap();
    assert_eq!(raw["listDatabases"], 1);
    let insert = commands(&events, "insert");
    assert_eq!(insert.len(), 1);
    assert_eq!(insert[0]["args"], serde_json::json!(["x", "c"]));
    let raw: Json = serde_json::from_str(insert[0]["raw"].as_str().unwrap()).unwrap();
    assert_eq!(raw["documents"][0]["hello"], "world");
    assert!(raw["documents"][0]["_id"]["$oid"].is_string(), "{raw}");
    for e in of_kind(&events, "command") {
        assert_eq!(e["src_ip"], "127.0.0.1");
        assert_eq!(e["service"], "mongodb");
        assert_eq!(e["dst_port"], s.port());
    }
    // The handshake (legacy OP_QUERY isMaster) names the client.
    let hello = commands(&events, "ismaster");
    assert!(
        hello[0]["raw"].as_str().unwrap().contains("mongosh"),
        "{hello:?}"
    );
    assert!(of_kind(&events, "protocol.error").is_empty());
    assert_eq!(
        of_kind(&events, "session.connect").len(),
        of_kind(&events, "session.close").len()
    );
}

/// A login with a user name and password fails as on mongod, and the
/// attempt (user, mechanism, SCRAM proof) is recorded.
#[test]
fn mongosh_login_fails_like_mongod() {
    let mut s = mongo_sensor("");
    let uri = format!(
        "mongodb://root:hunter2@127.0.0.1:{}/?authSource=admin",
        s.port()
    );
    let (ok, out, err) = mongosh(&uri, "db.version()");
    assert!(!ok);
    assert!(
        format!("{out}{err}").contains("MongoServerError: Authentication failed."),
        "{out}\n{err}"
    );
    s.stop();
    let events = read_events(&s.event_dir());
    let attempts = of_kind(&events, "auth.attempt");
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    let a = attempts[0];
    assert_eq!(a["username"], "root");
    assert_eq!(a["method"], "SCRAM-SHA-256");
    assert_eq!(a["result"], "failure");
    assert_eq!(a["details"]["database"], "admin");
    // Speculative authentication inside the handshake, then saslContinue.
    assert_eq!(a["details"]["speculative"], true);
    assert!(a["details"]["client_proof"].as_str().unwrap().len() >= 40);
    assert_eq!(a["details"]["iterations"], 15000);
    let cont = commands(&events, "saslcontinue");
    assert_eq!(cont.len(), 1);
    assert_eq!(cont[0]["error"], true);
}

/// pymongo: server_info, list_database_names, CRUD, a failed SCRAM-SHA-1
/// login, and the classic ransom sequence (drop everything, insert a note).
#[test]
fn pymongo_crud_and_ransom_note() {
    let mut s = mongo_sensor("");
    let script = format!(
        r#"
import pymongo
from pymongo.errors import OperationFailure
c = pymongo.MongoClient("127.0.0.1", {port}, serverSelectionTimeoutMS=10000, directConnection=True)
info = c.server_info()
assert info["version"] == "6.0.19", info
assert info["versionArray"] == [6, 0, 19, 0], info
names = c.list_database_names()
assert names == ["admin", "config", "local", "shop"], names
shop = c["shop"]
assert sorted(shop.list_collection_names()) == ["customers", "orders"]
assert shop.customers.find_one({{"name": "Jane Wilson"}})["email"] == "jwilson@shop.example"
c.t.items.insert_one({{"k": 1}})
c.t.items.insert_many([{{"k": 2}}, {{"k": 3}}])
assert c.t.items.count_documents({{}}) == 3
assert c.t.items.update_one({{"k": 2}}, {{"$set": {{"v": "x"}}}}).modified_count == 1
assert c.t.items.find_one({{"k": 2}})["v"] == "x"
assert c.t.items.delete_one({{"k": 1}}).deleted_count == 1
c.t.items.drop()
assert "t" not in c.list_database_names()
# The ransom bot: drop every collection, then leave a note.
for coll in shop.list_collection_names():
    shop.drop_collection(coll)
c["READ__ME_TO_RECOVER_YOUR_DATA"]["README"].insert_one({{
    "content": "All your data is backed up. You must pay 0.0075 BTC to 1Kz6v4B5CawcnL8jrUvHsvzQv5Yq4fbsSv "
               "to recover it. After paying, email your server IP to dbrestore@protonmail.example",
}})
try:
    bad = pymongo.MongoClient("127.0.0.1", {port}, username="admin", password="admin",
                              authMechanism="SCRAM-SHA-1", serverSelectionTimeoutMS=10000,
                              directConnection=True)
    bad.admin.command("ping")
    raise SystemExit("login accepted")
except OperationFailure as e:
    assert e.code == 18 and "Authentication failed." in str(e), e.details
print("DONE")
"#,
        port = s.port()
    );
    let out = Command::new(mirage_testkit::venv_python())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("DONE"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s.stop();
    let events = read_events(&s.event_dir());
    let attacks = of_kind(&events, "attack");
    let destroy: Vec<&&Json> = attacks
        .iter()
        .filter(|e| e["technique"] == "mongodb.destroy")
        .collect();
    let drops: Vec<&str> = destroy
        .iter()
        .map(|e| e["evidence"]["namespace"].as_str().unwrap())
        .collect();
    assert!(
        drops.contains(&"shop.customers") && drops.contains(&"shop.orders"),
        "{drops:?}"
    );
    let ransom = attacks
        .iter()
        .find(|e| e["technique"] == "mongodb.ransom")
        .expect("ransom recognised");
    assert_eq!(
        ransom["evidence"]["namespace"],
        "READ__ME_TO_RECOVER_YOUR_DATA.README"
    );
    assert_eq!(
        ransom["evidence"]["btc_addresses"],
        serde_json::json!(["1Kz6v4B5CawcnL8jrUvHsvzQv5Yq4fbsSv"])
    );
    assert_eq!(
        ransom["evidence"]["emails"],
        serde_json::json!(["dbrestore@protonmail.example"])
    );
    assert_eq!(ransom["evidence"]["after_destroy"], true);
    assert!(
        ransom["evidence"]["destroyed"]
            .as_array()
            .unwrap()
            .contains(&Json::from("shop.customers"))
    );
    assert!(
        ransom["tags"]
            .as_array()
            .unwrap()
            .contains(&Json::from("ransom"))
    );
    // pymongo's writes use OP_MSG document sequences: the documents are in
    // the recorded command all the same.
    let inserts = commands(&events, "insert");
    assert!(
        inserts
            .iter()
            .any(|e| e["raw"].as_str().unwrap().contains("\"k\":2")),
        "{inserts:?}"
    );
    let a = of_kind(&events, "auth.attempt");
    let admin: Vec<&&Json> = a.iter().filter(|e| e["username"] == "admin").collect();
    assert_eq!(admin.len(), 1, "{a:#?}");
    assert_eq!(admin[0]["method"], "SCRAM-SHA-1");
    assert_eq!(admin[0]["details"]["iterations"], 10000);
}

/// nmap's version detection names MongoDB and the configured version. Its
/// `mongodb` probe (an OP_QUERY serverStatus) is only sent to port 27017
/// at the default intensity, so the scan runs in a private namespace there.
#[test]
fn nmap_identifies_mongodb_with_configured_version() {
    for version in ["6.0.19", "7.0.14"] {
        let config = format!("[services.mongodb]\nversion = \"{version}\"\n");
        let line = common::nmap_standard_port("mongodb", 27017, &config);
        assert!(line.contains("open") && line.contains("mongodb"), "{line}");
        assert!(line.contains(&format!("MongoDB {version}")), "{line}");
    }
}

/// One OP_QUERY `admin.$cmd` command (what old drivers and scanners send).
fn op_query(cmd: &Document) -> Vec<u8> {
    let mut m = vec![0; 4];
    m.extend(1i32.to_le_bytes());
    m.extend(0i32.to_le_bytes());
    m.extend(proto::opcode::QUERY.to_le_bytes());
    m.extend(0i32.to_le_bytes());
    m.extend(b"admin.$cmd\0");
    m.extend(0i32.to_le_bytes());
    m.extend((-1i32).to_le_bytes());
    cmd.encode(&mut m);
    let n = m.len() as u32;
    m[..4].copy_from_slice(&n.to_le_bytes());
    m
}

/// One OP_MSG with `sections` (kinds and bytes as given).
fn op_msg(flags: u32, sections: &[u8]) -> Vec<u8> {
    let mut m = vec![0; 4];
    m.extend(9i32.to_le_bytes());
    m.extend(0i32.to_le_bytes());
    m.extend(proto::opcode::MSG.to_le_bytes());
    m.extend(flags.to_le_bytes());
    m.extend(sections);
    let n = m.len() as u32;
    m[..4].copy_from_slice(&n.to_le_bytes());
    m
}

fn read_reply(c: &mut TcpStream) -> Option<Vec<u8>> {
    let mut h = [0u8; 4];
    c.read_exact(&mut h).ok()?;
    let len = u32::from_le_bytes(h) as usize;
    let mut m = h.to_vec();
    m.resize(len, 0);
    c.read_exact(&mut m[4..]).ok()?;
    Some(m)
}

/// The reply document of an OP_REPLY or OP_MSG.
fn reply_doc(m: &[u8]) -> Document {
    let op = i32::from_le_bytes(m[12..16].try_into().unwrap());
    let at = if op == proto::opcode::REPLY { 36 } else { 21 };
    proto::parse_document(&m[at..], &Limits::default())
        .unwrap()
        .0
}

/// isMaster over OP_QUERY on a fresh connection, as a scanner does it.
fn legacy_hello(addr: SocketAddr) -> Document {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(&op_query(&Document::new().with("isMaster", 1)))
        .unwrap();
    reply_doc(&read_reply(&mut c).expect("a reply"))
}

/// Send `bytes` on a new connection; everything the server sent until it
/// closed (or 3 s passed).
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = c.write_all(bytes);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    out
}

/// The hello reply over legacy OP_QUERY: mongod 6.0's fields in mongod's
/// order, OP_REPLY with the AwaitCapable flag; 7.0 raises maxWireVersion.
#[test]
fn legacy_is_master_reply_fields() {
    for (version, wire) in [("6.0.19", 17), ("7.0.14", 21)] {
        let s = mongo_sensor(&format!("[services.mongodb]\nversion = \"{version}\"\n"));
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(&op_query(
            &Document::new().with("isMaster", 1).with("helloOk", true),
        ))
        .unwrap();
        let m = read_reply(&mut c).unwrap();
        assert_eq!(&m[8..12], &1i32.to_le_bytes(), "responseTo");
        assert_eq!(&m[12..16], &1i32.to_le_bytes(), "OP_REPLY");
        assert_eq!(&m[16..20], &8i32.to_le_bytes(), "AwaitCapable");
        let d = reply_doc(&m);
        let keys: Vec<&str> = d.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "helloOk",
                "ismaster",
                "topologyVersion",
                "maxBsonObjectSize",
                "maxMessageSizeBytes",
                "maxWriteBatchSize",
                "localTime",
                "logicalSessionTimeoutMinutes",
                "connectionId",
                "minWireVersion",
                "maxWireVersion",
                "readOnly",
                "ok"
            ]
        );
        assert_eq!(d.get("maxWireVersion"), Some(&Value::Int32(wire)));
        assert_eq!(d.get("maxBsonObjectSize"), Some(&Value::Int32(16_777_216)));
        assert_eq!(
            d.get("maxMessageSizeBytes"),
            Some(&Value::Int32(48_000_000))
        );
        assert_eq!(d.get("ok"), Some(&Value::Double(1.0)));
        // An unknown command over OP_MSG: mongod's CommandNotFound.
        let mut sec = vec![0];
        Document::new()
            .with("frobnicate", 1)
            .with("$db", "admin")
            .encode(&mut sec);
        c.write_all(&op_msg(0, &sec)).unwrap();
        let d = reply_doc(&read_reply(&mut c).unwrap());
        assert_eq!(
            d,
            Document::new()
                .with("ok", 0.0)
                .with("errmsg", "no such command: 'frobnicate'")
                .with("code", 59)
                .with("codeName", "CommandNotFound")
        );
    }
}

/// Bad input: oversized and negative lengths, bogus BSON, deep nesting,
/// too many sections, unknown opcodes, HTTP, and many half-open
/// connections. Nothing panics, each is a protocol.error, and a hello
/// still works afterwards.
#[test]
fn hostile_input_leaves_sensor_responsive() {
    mirage_net::raise_fd_limit().unwrap();
    let mut s = mongo_sensor("[limits]\nmax_connections_per_ip = 3000\n");
    let addr = s.addr;
    // A declared 2 GiB message, and a negative one: closed at once.
    assert!(exchange(addr, b"\xff\xff\xff\x7fAAAAAAAAAAAA").is_empty());
    assert!(exchange(addr, b"\xf0\xff\xff\xffAAAAAAAAAAAA").is_empty());
    // A declared 5 MiB message (over the 4 MiB default limit).
    assert!(exchange(addr, &(5u32 << 20).to_le_bytes()).is_empty());
    // Bogus BSON in a well-framed OP_MSG: an InvalidBSON error reply.
    let r = exchange(
        addr,
        &op_msg(0, &[0, 0x0e, 0, 0, 0, 0x42, b'a', 0, 1, 2, 3, 4, 5, 6, 0]),
    );
    let d = reply_doc(&r);
    assert_eq!(d.get("code"), Some(&Value::Int32(22)), "{d:?}");
    // 500 levels of nesting, built by hand (the encoder would recurse).
    let depth = 500;
    let mut doc = Vec::new();
    for _ in 0..depth {
        doc.extend([0, 0, 0, 0, 3, b'a', 0]);
    }
    doc.extend([5, 0, 0, 0, 0]);
    doc.extend(std::iter::repeat_n(0, depth));
    // Patch the lengths from the inside out.
    for i in (0..depth).rev() {
        let start = i * 7;
        let len = doc.len() - start - i;
        doc[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    }
    let mut sec = vec![0];
    sec.extend(&doc);
    let d = reply_doc(&exchange(addr, &op_msg(0, &sec)));
    assert!(
        d.get("errmsg")
            .and_then(Value::as_str)
            .unwrap_or("")
            .contains("nested"),
        "{d:?}"
    );
    // Many sections.
    let mut sec = vec![0];
    Document::new()
        .with("ping", 1)
        .with("$db", "a")
        .encode(&mut sec);
    for _ in 0..1000 {
        sec.extend([1, 6, 0, 0, 0, b'x', 0]);
    }
    assert!(
        reply_doc(&exchange(addr, &op_msg(0, &sec)))
            .get("errmsg")
            .is_some()
    );
    // Unknown required flag bits, an unknown opcode, HTTP, random bytes.
    assert!(
        reply_doc(&exchange(addr, &op_msg(1 << 5, &sec[..30])))
            .get("errmsg")
            .is_some()
    );
    let mut other = op_query(&Document::new().with("isMaster", 1));
    other[12..16].copy_from_slice(&9999i32.to_le_bytes());
    assert!(exchange(addr, &other).is_empty());
    let http = exchange(addr, b"GET / HTTP/1.0\r\n\r\n");
    assert!(
        String::from_utf8_lossy(&http).contains("trying to access MongoDB over HTTP"),
        "{http:?}"
    );
    // 1,500 half-open connections: some with nothing, some with half a header.
    let mut idle = Vec::with_capacity(1500);
    for i in 0..1500 {
        let mut c = TcpStream::connect(addr).unwrap();
        if i % 2 == 0 {
            let _ = c.write_all(&[0x40, 0, 0, 0, 1, 2]);
        }
        idle.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let d = legacy_hello(addr);
    assert_eq!(d.get("ismaster"), Some(&Value::Bool(true)));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    s.assert_peak_rss_under(128, "1500 half-open + hostile");
    drop(idle);
    let events = s.stop_after_hostile_input();
    let errors = of_kind(&events, "protocol.error");
    let texts: Vec<&str> = errors
        .iter()
        .map(|e| e["error"].as_str().unwrap())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("msgLen 2147483647 is invalid")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("Unrecognized BSON type")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("nested object depth")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("unsupported opcode 9999")),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t.contains("HTTP")), "{texts:?}");
    assert!(errors.len() >= 8, "{texts:?}");
    assert_eq!(
        of_kind(&events, "session.connect").len(),
        of_kind(&events, "session.close").len()
    );
}
