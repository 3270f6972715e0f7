//! `mirage sensor` with no arguments: the embedded default config, standard
//! ports, fallback ports, events in `./mirage-data`. Runs in a private
//! network namespace (needs root, as CI has) so it can take port 6379
//! without touching the machine's own services.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Netns, of_kind, read_events, wait_ping};

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn no_arguments_runs_the_embedded_default() {
    let ns = Netns::new();
    let cwd = tempfile::tempdir().unwrap();
    let child = ns
        .cmd(env!("CARGO_BIN_EXE_mirage"))
        .arg("sensor")
        .current_dir(cwd.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ping(&ns, 6379);
    stop(child);
    let events = read_events(&cwd.path().join("mirage-data"));
    let cmds = of_kind(&events, "command");
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0]["command"], "ping");
    assert_eq!(cmds[0]["dst_port"], 6379);
}

#[test]
fn standard_port_taken_falls_back_to_16379() {
    let ns = Netns::new();
    let cwd = tempfile::tempdir().unwrap();
    // Something else already has 0.0.0.0:6379.
    let squatter = mirage_testkit::KillOnDrop::spawn(ns.cmd("python3").args([
        "-c",
        "import socket,time\ns=socket.socket(); s.bind(('0.0.0.0',6379)); s.listen()\ntime.sleep(60)",
    ]));
    // Wait until it really listens (Python's start-up takes longer than
    // any fixed sleep on a loaded machine).
    let start = std::time::Instant::now();
    while !ns
        .cmd("ss")
        .args(["-Hltn", "sport = :6379"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "squatter never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let child = ns
        .cmd(env!("CARGO_BIN_EXE_mirage"))
        .arg("sensor")
        .current_dir(cwd.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ping(&ns, 16379);
    stop(child);
    drop(squatter);
    let events = read_events(&cwd.path().join("mirage-data"));
    assert!(
        of_kind(&events, "command")
            .iter()
            .all(|e| e["dst_port"] == 16379)
    );
}
