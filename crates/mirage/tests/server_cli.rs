//! `mirage server`'s command-line contract: config errors exit 2 with one
//! line naming file and key; operators add, list and delete decisions, and
//! the running server's rule engine follows those changes.

mod common;

use std::process::Command;
use std::time::Duration;

use common::server::MirageServer;

fn mirage(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mirage"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn config_errors_are_one_line_naming_file_and_key_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("s.toml");
    std::fs::write(
        &cfg,
        "[syslog]\nmax_connections = 10\nlisten = [\"not an address\"]\n",
    )
    .unwrap();
    let out = mirage(&["server", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("s.toml:3:") && err.contains("syslog.listen"),
        "{err}"
    );

    std::fs::write(&cfg, "[rules]\nwhitelist = [\"10.0.0.0/99\"]\n").unwrap();
    let out = mirage(&["server", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key 'rules.whitelist'"), "{err}");

    // A rule file that does not compile stops the start with its position.
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"x\"\nfields = { nope = \"a\" }\n",
    )
    .unwrap();
    std::fs::write(&cfg, format!("[rules]\nfile = \"{}\"\n", rules.display())).unwrap();
    let data = dir.path().join("data");
    let out = mirage(&[
        "server",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--syslog",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rules.toml:3:"), "{err}");
    assert!(err.contains("unknown field"), "{err}");

    // Operator commands on a directory without a database.
    let out = mirage(&[
        "server",
        "decisions",
        "list",
        "--data-dir",
        dir.path().join("none").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no server database"));

    let out = mirage(&["server", "--print-config"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        mirage_config::SERVER_EXAMPLE_TOML
    );
}

#[test]
fn operator_decisions_reach_the_running_engine() {
    let dir = tempfile::tempdir().unwrap();
    let server = MirageServer::start("", dir.path());
    let send = |ip: &str, n: u16| {
        server.send_failures(ip, n);
    };

    // A manual decision, listed with its TTL.
    let out = server.cli(&[
        "decisions",
        "add",
        "192.0.2.40",
        "--type",
        "deceive",
        "--ttl",
        "2h",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = server.wait_decision("192.0.2.40", Duration::from_secs(5));
    assert_eq!(d["origin"], "cli");
    assert_eq!(d["rule"], "manual");
    assert!(
        (7000..=7200).contains(&d["ttl_secs"].as_u64().unwrap()),
        "{d}"
    );
    // Give the server its one-second look at the change log.
    std::thread::sleep(Duration::from_millis(1500));
    // The engine knows it: 5 failures renew the operator's decision
    // (extended to the brute-force rule's 4h, and credited to that rule)
    // instead of adding the rule's own decision beside it.
    send("192.0.2.40", 5);
    let d = server.wait_for("the renewal", Duration::from_secs(10), || {
        server
            .decisions()
            .into_iter()
            .find(|d| d["ip"] == "192.0.2.40" && d["ttl_secs"].as_u64().unwrap() > 7200)
    });
    assert_eq!(d["rule"], "ssh-bruteforce-account", "{d}");
    let made: Vec<_> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["change"].as_str().unwrap(), c["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(
        made,
        [("made", "manual"), ("renewed", "ssh-bruteforce-account")],
        "{d}"
    );
    assert_eq!(server.decisions().len(), 1);

    // Deleted: the engine forgets it too, so the next 5 failures decide
    // anew (had the engine kept it, they would only renew it silently).
    let out = server.cli(&["decisions", "delete", "192.0.2.40"]);
    assert!(out.status.success());
    assert!(!server.decisions().iter().any(|d| d["ip"] == "192.0.2.40"));
    std::thread::sleep(Duration::from_millis(1500));
    send("192.0.2.40", 5);
    let d = server.wait_decision("192.0.2.40", Duration::from_secs(10));
    assert_eq!(d["origin"], "engine", "{d}");
    assert_eq!(d["rule"], "ssh-bruteforce-account");

    let out = server.cli(&["decisions", "delete", "192.0.2.99"]);
    assert_eq!(out.status.code(), Some(1));
    let out = server.cli(&["decisions", "add", "192.0.2.41", "--ttl", "soon"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Every operator subcommand, with the arguments it needs (none of them
/// names a data directory).
const OPERATOR_COMMANDS: &[&[&str]] = &[
    &["decisions", "list"],
    &["decisions", "add", "192.0.2.50", "--ttl", "1h"],
    &["decisions", "delete", "192.0.2.50"],
    &["events"],
    &["agents"],
    &["agents", "revoke", "web1"],
    &["agents", "set", "web1", "--mode", "firewall"],
    &["alerts"],
    &["tokens", "create"],
    &["tokens", "list"],
    &["tokens", "revoke", "0123456789ab"],
    &["pin"],
];

fn mirage_in(cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mirage"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

#[test]
fn operator_commands_use_the_servers_database_and_never_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    let db = cwd.join("mirage-data/mirage.db");

    // No server ran here: each command refuses with one line naming the
    // file it looked for and how to name another, and creates nothing.
    for cmd in OPERATOR_COMMANDS {
        let args: Vec<&str> = ["server"].iter().chain(cmd.iter()).copied().collect();
        let out = mirage_in(&cwd, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{cmd:?}: {err}");
        assert!(
            err.contains(&format!("no server database at {}", db.display()))
                && err.contains("--data-dir"),
            "{cmd:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{cmd:?}");
        assert!(
            !cwd.join("mirage-data").exists(),
            "{cmd:?} created the data directory"
        );
    }

    // `mirage server` with the default data directory still makes it at
    // first start.
    let syslog = format!("127.0.0.1:{}", mirage_testkit::free_port());
    let _server = mirage_testkit::KillOnDrop::spawn(
        Command::new(env!("CARGO_BIN_EXE_mirage"))
            .args(["server", "--syslog", &syslog])
            .current_dir(&cwd)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    mirage_testkit::wait_for_port(syslog.parse().unwrap(), Duration::from_secs(20));
    assert!(db.is_file(), "mirage server made no {}", db.display());

    // Now the commands find it: stdout is the command's output alone (a
    // token a script can take), stderr says which database was used.
    let out = mirage_in(&cwd, &["server", "tokens", "create"]);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(token.lines().count(), 1, "{token}");
    assert!(token.contains('.'), "a token with its pin: {token}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim(), format!("mirage: using {}", db.display()));
    let out = mirage_in(&cwd, &["server", "tokens", "list", "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let id = &mirage_server::policy::token_hash(&token)[..mirage_store::TOKEN_ID_LEN];
    assert!(listed.iter().any(|t| t["id"] == id), "{listed:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&db.display().to_string()),
        "{out:?}"
    );
}
