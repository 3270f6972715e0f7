//! `mirage agent` from the command line: one-line configuration errors with
//! exit code 2, `--print-config`, and a real run that ships a log line and
//! stops cleanly on SIGTERM.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mirage_proto::syslog::{FrameDecoder, FrameEvent, parse};

fn mirage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mirage"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `mirage agent --config` on `text`; returns the exit code and stderr.
fn with_config(dir: &Path, text: &str) -> (Option<i32>, String, String) {
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    let o = mirage(&["agent", "--config", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    (o.status.code(), err, path.display().to_string())
}

#[test]
fn unknown_key_in_a_source_is_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err, path) = with_config(
        dir.path(),
        "[[sources]]\nname = \"auth\"\nkind = \"file\"\nservice = \"ssh\"\npathz = [\"/var/log/auth.log\"]\n",
    );
    assert_eq!(code, Some(2));
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("{path}:5:1")), "{err}");
    assert!(err.contains("pathz"), "{err}");
}

#[test]
fn bad_values_name_file_and_key_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err, path) = with_config(
        dir.path(),
        "[[sources]]\nname = \"auth\"\nkind = \"file\"\nservice = \"ssh\"\npaths = [\"/a\"]\nunits = [\"ssh\"]\n",
    );
    assert_eq!(code, Some(2));
    assert_eq!(
        err.trim_end(),
        format!(
            "mirage: {path}: key 'sources[0].units': only for kind = \"journald\", not \"file\""
        )
    );
    let (code, err, path) = with_config(dir.path(), "[output]\ntransport = \"carrier-pigeon\"\n");
    assert_eq!(code, Some(2));
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("{path}:2:")) && err.contains("output.transport"),
        "{err}"
    );
    let (code, err, _) = with_config(dir.path(), "[agent]\nheartbeat_secs = 0\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("agent.heartbeat_secs"), "{err}");
}

#[test]
fn missing_config_file_and_unusable_tls_files_exit_2() {
    let o = mirage(&["agent", "--config", "/nonexistent/agent.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/agent.toml"));

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (code, err, _) = with_config(
        dir.path(),
        &format!(
            "sources = []\n[agent]\nstate_dir = \"{}\"\n[output]\ntransport = \"tls\"\n[output.tls]\nca_file = \"{}/no-ca.pem\"\n",
            state.display(),
            dir.path().display()
        ),
    );
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("output.tls") && err.contains("no-ca.pem"),
        "{err}"
    );
}

#[test]
fn print_config_shows_the_default_and_hides_passwords() {
    let o = mirage(&["agent", "--print-config"]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let parsed = mirage_config::AgentConfig::parse(&text, "printed").unwrap();
    assert_eq!(parsed, mirage_config::AgentConfig::default());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "[[sources]]\nname = \"r\"\nkind = \"redis_monitor\"\nservice = \"redis\"\npassword = \"hunter2\"\n",
    )
    .unwrap();
    let o = mirage(&[
        "agent",
        "--config",
        path.to_str().unwrap(),
        "--print-config",
    ]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        !text.contains("hunter2") && text.contains("<redacted>"),
        "{text}"
    );
}

/// Frames (app, message) received on `listener`, collected by a thread.
fn receive(listener: TcpListener) -> Arc<Mutex<Vec<(String, String)>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { return };
            let g = g.clone();
            std::thread::spawn(move || {
                let mut dec = FrameDecoder::new(64 * 1024);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16 * 1024];
                while let Ok(n) = s.read(&mut chunk) {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let mut at = 0;
                    while let Ok((used, ev)) = dec.decode(&buf[at..]) {
                        if used == 0 {
                            break;
                        }
                        if let Some(FrameEvent::Frame { data, .. }) = ev
                            && let Ok(m) = parse(data)
                        {
                            g.lock().unwrap().push((
                                m.app_name.unwrap_or_default().to_owned(),
                                String::from_utf8_lossy(m.message).into_owned(),
                            ));
                        }
                        at += used;
                    }
                    buf.drain(..at);
                }
            });
        }
    });
    got
}

#[test]
fn agent_ships_a_line_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got = receive(listener);
    let log = dir.path().join("auth.log");
    std::fs::write(
        &log,
        "Nov 21 11:09:34 vm1 sshd[7]: Invalid user cli from 192.0.2.1 port 9\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nstate_dir = \"{}\"\nheartbeat_secs = 1\n[output]\naddress = \"{addr}\"\ntransport = \"tcp\"\n\
             [[sources]]\nname = \"auth\"\nkind = \"file\"\nservice = \"ssh\"\npaths = [\"{}\"]\nread_from = \"start\"\n",
            state.display(),
            log.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mirage"))
        .args(["agent", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !got
        .lock()
        .unwrap()
        .iter()
        .any(|(app, m)| app == "sshd" && m.contains("Invalid user cli"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no line: {:?}",
            got.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    while !got
        .lock()
        .unwrap()
        .iter()
        .any(|(app, _)| app == "mirage-agent")
    {
        assert!(start.elapsed() < Duration::from_secs(20), "no heartbeat");
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "agent did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    // The checkpoint covers the line, and the agent id was kept.
    let ckpt = std::fs::read_to_string(state.join("sources/auth.file.json")).unwrap();
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(ckpt.contains(&format!("\"offset\": {size}")), "{ckpt}");
    assert!(state.join("agent-id").is_file());
}
