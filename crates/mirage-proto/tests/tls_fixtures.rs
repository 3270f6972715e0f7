//! Real clients' ClientHellos (curl, openssl s_client, Python's ssl,
//! headless Chromium; see `tests/data/tls/README.md`) against independent
//! implementations: JA3 from tshark (Wireshark's TLS dissector), JA4 from
//! the ja4plus package. The values those tools gave when the fixtures were
//! captured are in `NAME.json`; when the tools are installed (CI installs
//! them) they are also run now on the same bytes, through
//! `tests/data/tls/reference.py`.

use std::path::{Path, PathBuf};
use std::process::Command;

use mirage_proto::tls_hello::{ClientHello, parse_client_hello};
use serde_json::Value;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls")
}

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    v.sort();
    assert!(v.len() >= 7, "fixtures missing: {v:?}");
    v
}

/// Compare every key the reference produced with our value for it.
fn check(name: &str, h: &ClientHello, reference: &Value, source: &str) -> usize {
    let ours = serde_json::json!({
        "ja3": h.ja3_hash(),
        "ja3_full": h.ja3_string(),
        "ja4": h.ja4(),
        "ja4_r": h.ja4_r(),
        "sni_tshark": h.sni(),
        "alpn_tshark": h.alpn(),
    });
    let mut compared = 0;
    for (key, want) in ours.as_object().unwrap() {
        if let Some(got) = reference.get(key) {
            assert_eq!(got, want, "{name}: {key} differs from {source}");
            compared += 1;
        }
    }
    compared
}

#[test]
fn fingerprints_match_the_recorded_reference_values() {
    for bin in fixtures() {
        let name = bin.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&bin).unwrap();
        let h = parse_client_hello(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            h.wire_len,
            bytes.len(),
            "{name}: the client sent only its hello"
        );
        let recorded: Value =
            serde_json::from_slice(&std::fs::read(bin.with_extension("json")).unwrap()).unwrap();
        assert_eq!(
            check(&name, &h, &recorded, "the recorded values"),
            6,
            "{name}"
        );
    }
}

fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

#[test]
fn fingerprints_match_the_reference_tools_run_now() {
    let mut compared = 0;
    for bin in fixtures() {
        let name = bin.file_stem().unwrap().to_string_lossy().into_owned();
        let out = Command::new(python())
            .arg(data_dir().join("reference.py"))
            .arg(&bin)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let live: Value = serde_json::from_slice(&out.stdout).unwrap();
        let h = parse_client_hello(&std::fs::read(&bin).unwrap()).unwrap();
        compared += check(&name, &h, &live, "tshark/ja4plus now");
    }
    if compared == 0 {
        eprintln!("tshark and ja4plus not installed: only the recorded values were compared");
    } else if std::env::var_os("CI").is_some() {
        // CI installs both tools (scripts/install-test-deps.sh): all six
        // values of every fixture must have been checked live.
        assert_eq!(compared, 6 * fixtures().len());
    }
}
