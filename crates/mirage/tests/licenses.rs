//! Every dependency's licence must be satisfiable from deny.toml's allowlist
//! (no GPL/AGPL). Runs `cargo metadata`, so it checks the real dependency
//! graph without needing cargo-deny installed.

use std::process::Command;

/// Does the SPDX expression `expr` hold with only `allowed` licences?
/// Handles AND, OR, WITH and parentheses; `/` is the old spelling of OR.
fn satisfiable(expr: &str, allowed: &[String]) -> bool {
    let spaced = expr
        .replace('(', " ( ")
        .replace(')', " ) ")
        .replace('/', " OR ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut pos = 0;
    parse_or(&tokens, &mut pos, allowed)
}

fn parse_or(t: &[&str], pos: &mut usize, allowed: &[String]) -> bool {
    let mut ok = parse_and(t, pos, allowed);
    while t.get(*pos) == Some(&"OR") {
        *pos += 1;
        let rhs = parse_and(t, pos, allowed);
        ok = ok || rhs;
    }
    ok
}

fn parse_and(t: &[&str], pos: &mut usize, allowed: &[String]) -> bool {
    let mut ok = parse_atom(t, pos, allowed);
    while t.get(*pos) == Some(&"AND") {
        *pos += 1;
        let rhs = parse_atom(t, pos, allowed);
        ok = ok && rhs;
    }
    ok
}

fn parse_atom(t: &[&str], pos: &mut usize, allowed: &[String]) -> bool {
    match t.get(*pos) {
        Some(&"(") => {
            *pos += 1;
            let ok = parse_or(t, pos, allowed);
            *pos += 1; // ")"
            ok
        }
        Some(id) => {
            *pos += 1;
            let mut name = id.to_string();
            if t.get(*pos) == Some(&"WITH") {
                name = format!("{name} WITH {}", t.get(*pos + 1).unwrap_or(&""));
                *pos += 2;
            }
            allowed.contains(&name)
        }
        None => false,
    }
}

#[test]
fn spdx_evaluation() {
    let allowed = vec!["MIT".to_string(), "Apache-2.0".to_string()];
    assert!(satisfiable("MIT OR GPL-3.0", &allowed));
    assert!(!satisfiable("MIT AND GPL-3.0", &allowed));
    assert!(satisfiable("(MIT OR Apache-2.0) AND Apache-2.0", &allowed));
    assert!(satisfiable("MIT/Apache-2.0", &allowed));
    assert!(!satisfiable("AGPL-3.0-only", &allowed));
}

#[test]
fn all_dependencies_are_allowed() {
    let root = mirage_testkit::repo_root();
    let deny: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("deny.toml")).unwrap()).unwrap();
    let allowed: Vec<String> = deny["licenses"]["allow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(
        !allowed.iter().any(|l| l.contains("GPL")),
        "deny.toml must not allow GPL/AGPL"
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut bad = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        if p["source"].is_null() {
            continue; // our own crates
        }
        match p["license"].as_str() {
            Some(l) if satisfiable(l, &allowed) => {}
            other => bad.push(format!("{name} {}: {other:?}", p["version"])),
        }
    }
    assert!(
        bad.is_empty(),
        "licences not in deny.toml's allowlist:\n{}",
        bad.join("\n")
    );
}
