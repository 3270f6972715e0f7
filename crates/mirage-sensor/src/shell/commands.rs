//! What each emulated command prints, as on a Debian 12 host (or BusyBox
//! for the IoT flavour). Unknown commands get bash's exact
//! `command not found`; downloaders record the URL and fail without
//! touching the network.

use serde_json::{Map, Value};

use super::fs::{FsError, Node, Vfs};
use super::{Flavor, Io, Shell};

const KERNEL: &str = "6.1.0-28-amd64";
const KVERSION: &str = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)";
const BUSYBOX_BANNER: &str = "BusyBox v1.35.0 (Debian 1:1.35.0-4+b3) multi-call binary.";

/// Applets the emulated BusyBox answers to (others: `applet not found`).
const APPLETS: &[&str] = &[
    "cat", "chmod", "cp", "cd", "echo", "free", "ftpget", "id", "ls", "mkdir", "mv", "nproc", "ps",
    "pwd", "rm", "sh", "sleep", "tftp", "touch", "uname", "wget", "whoami", "grep", "wc", "head",
    "df", "kill", "true", "false", "hostname", "which", "dd",
];

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn basename(b: &[u8]) -> &[u8] {
    match b.iter().rposition(|&c| c == b'/') {
        Some(i) => &b[i + 1..],
        None => b,
    }
}

/// Run `argv` (non-empty); returns the exit status.
pub fn run(sh: &mut Shell, argv: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    let name = argv[0].as_slice();
    // A path to a file in the session (./y.sh, /tmp/x): "execute" it.
    if name.contains(&b'/') && !is_system_binary(name) {
        return exec_file(sh, name, io);
    }
    let args = &argv[1..];
    match basename(name) {
        b"busybox" => busybox(sh, args, stdin, io),
        cmd => builtin(sh, cmd, args, stdin, io).unwrap_or_else(|| not_found(sh, name, io)),
    }
}

fn is_system_binary(name: &[u8]) -> bool {
    let n = s(name);
    [
        "/bin/",
        "/usr/bin/",
        "/sbin/",
        "/usr/sbin/",
        "/usr/local/bin/",
    ]
    .iter()
    .any(|p| n.starts_with(p) && !n[p.len()..].contains('/'))
        && APPLETS
            .iter()
            .chain(
                [
                    "busybox", "uname", "bash", "crontab", "curl", "chpasswd", "w", "uptime",
                ]
                .iter(),
            )
            .any(|a| n.ends_with(&format!("/{a}")))
}

fn not_found(sh: &Shell, name: &[u8], io: &mut Io) -> i32 {
    match sh.profile.flavor {
        Flavor::Bash => io.err(format!(
            "{}{}: command not found\n",
            sh.err_prefix(),
            s(name)
        )),
        Flavor::Busybox => io.err(format!("{}{}: not found\n", sh.err_prefix(), s(name))),
    }
    127
}

fn exec_file(sh: &mut Shell, name: &[u8], io: &mut Io) -> i32 {
    let path = sh.path(name);
    let mut ev = Map::new();
    ev.insert("path".into(), Value::String(path.clone()));
    match sh.fs.get(&path) {
        None => {
            io.err(format!(
                "{}{}: No such file or directory\n",
                sh.err_prefix(),
                s(name)
            ));
            127
        }
        Some(Node::Dir) => {
            io.err(format!("{}{}: Is a directory\n", sh.err_prefix(), s(name)));
            126
        }
        Some(Node::File { mode, .. }) if mode & 0o111 == 0 => {
            io.err(format!(
                "{}{}: Permission denied\n",
                sh.err_prefix(),
                s(name)
            ));
            sh.attack("shell.execute", format!("tried to run {path}"), ev);
            126
        }
        Some(Node::File { .. }) => {
            sh.attack("shell.execute", format!("ran {path}"), ev);
            0
        }
    }
}

fn busybox(sh: &mut Shell, args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    let Some(applet) = args.first() else {
        io.out(format!(
            "{BUSYBOX_BANNER}\nBusyBox is copyrighted by many authors between 1998-2015.\n\
Licensed under GPLv2. See source distribution for detailed\ncopyright notices.\n\n\
Usage: busybox [function [arguments]...]\n   or: busybox --list[-full]\n   or: busybox --show SCRIPT\n\
   or: busybox --install [-s] [DIR]\n   or: function [arguments]...\n\n\
\tBusyBox is a multi-call binary that combines many common Unix\n\
\tutilities into a single executable.  Most people will create a\n\
\tlink to busybox for each function they wish to use and BusyBox\n\
\twill act like whatever it was invoked as.\n\nCurrently defined functions:\n\t{}\n",
            APPLETS.join(", ")
        ));
        return 0;
    };
    let name = s(applet);
    if APPLETS.contains(&name.as_str()) {
        return builtin(sh, applet, &args[1..], stdin, io).unwrap_or(0);
    }
    let mut ev = Map::new();
    ev.insert("applet".into(), Value::String(name.clone()));
    sh.attack(
        "shell.busybox_probe",
        format!("busybox called with unknown applet '{name}' (a check for a real busybox)"),
        ev,
    );
    io.err(format!("{name}: applet not found\n"));
    127
}

/// Known commands; `None` when `cmd` is not one.
fn builtin(sh: &mut Shell, cmd: &[u8], args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> Option<i32> {
    let st = match cmd {
        b"true" | b":" | b"sleep" | b"unset" | b"alias" | b"ulimit" | b"trap" | b"set" => 0,
        b"false" => 1,
        b"exit" | b"logout" => {
            sh.set_exit();
            0
        }
        b"echo" => echo(args, io),
        b"printf" => {
            if let Some(f) = args.first() {
                io.out(unescape(f));
            }
            0
        }
        b"uname" => uname(sh, args, io),
        b"id" => id(sh, args, io),
        b"whoami" => {
            io.out(format!("{}\n", sh.profile.user));
            0
        }
        b"hostname" => {
            io.out(format!("{}\n", sh.profile.hostname));
            0
        }
        b"pwd" => {
            io.out(format!("{}\n", sh.cwd));
            0
        }
        b"cd" => cd(sh, args, io),
        b"ls" | b"dir" => ls(sh, args, io),
        b"cat" => cat(sh, args, stdin, io),
        b"export" => {
            for a in args {
                let a = s(a);
                if let Some((k, v)) = a.split_once('=') {
                    sh.env.insert(k.to_owned(), v.as_bytes().to_vec());
                }
            }
            0
        }
        b"env" | b"printenv" => {
            for (k, v) in &sh.env {
                io.out(format!("{k}={}\n", s(v)));
            }
            0
        }
        b"history" => {
            for (i, l) in sh.history.iter().enumerate() {
                io.out(format!("{:>5}  {}\n", i + 1, s(l)));
            }
            0
        }
        b"nproc" => {
            io.out("2\n");
            0
        }
        b"free" => free(args, io),
        b"df" => {
            io.out("Filesystem      Size  Used Avail Use% Mounted on\nudev            1.9G     0  1.9G   0% /dev\n\
tmpfs           393M  584K  392M   1% /run\n/dev/sda1        39G  4.8G   32G  14% /\n\
tmpfs           1.9G     0  1.9G   0% /dev/shm\ntmpfs           5.0M     0  5.0M   0% /run/lock\n");
            0
        }
        b"uptime" => {
            io.out(format!(
                " {} up 36 days,  4:44,  1 user,  load average: 0.08, 0.03, 0.01\n",
                clock()
            ));
            0
        }
        b"w" => {
            io.out(format!(
                " {} up 36 days,  4:44,  1 user,  load average: 0.08, 0.03, 0.01\n\
USER     TTY      FROM             LOGIN@   IDLE   JCPU   PCPU WHAT\n\
{:<8} pts/0    {:<16} {}    0.00s  0.01s  0.00s w\n",
                clock(),
                sh.profile.user,
                sh.profile.client_ip,
                &clock()[..5]
            ));
            0
        }
        b"who" => {
            io.out(format!(
                "{:<8} pts/0        2026-01-01 00:00 ({})\n",
                sh.profile.user, sh.profile.client_ip
            ));
            0
        }
        b"ps" => {
            io.out(ps(args));
            0
        }
        b"ifconfig" => {
            io.out(IFCONFIG);
            0
        }
        b"ip" => {
            match args.first().map(|a| a.as_slice()) {
                Some(b"a" | b"addr" | b"address") => io.out(IP_ADDR),
                Some(b"r" | b"route") => io.out("default via 10.0.0.1 dev ens18 onlink \n10.0.0.0/24 dev ens18 proto kernel scope link src 10.0.0.17 \n"),
                _ => io.out("Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }\n"),
            }
            0
        }
        b"crontab" => crontab(sh, args, stdin, io),
        b"chmod" => chmod(sh, args, io),
        b"mkdir" => mkdir(sh, args, io),
        b"rm" => rm(sh, args, io),
        b"touch" => {
            for a in args.iter().filter(|a| !a.starts_with(b"-")) {
                let p = sh.path(a);
                if sh.fs.get(&p).is_none()
                    && let Err(e) = sh.fs.write(&p, b"", false)
                {
                    io.err(format!("touch: cannot touch '{}': {}\n", s(a), e.text()));
                    return Some(1);
                }
            }
            0
        }
        b"cp" | b"mv" => cp_mv(sh, cmd == b"mv", args, io),
        b"wget" | b"curl" | b"tftp" | b"ftpget" => download(sh, cmd, args, io),
        b"chpasswd" | b"passwd" => {
            let mut ev = Map::new();
            ev.insert("input".into(), Value::String(s(stdin)));
            sh.attack(
                "shell.password_change",
                "tried to change a password".into(),
                ev,
            );
            if cmd == b"passwd" {
                io.err(
                    "passwd: Authentication token manipulation error\npasswd: password unchanged\n",
                );
                1
            } else {
                0
            }
        }
        b"which" | b"command" => {
            let mut st = 0;
            for a in args.iter().filter(|a| !a.starts_with(b"-")) {
                let n = s(a);
                if let Some(p) = ["/usr/bin/", "/bin/"]
                    .iter()
                    .map(|d| format!("{d}{n}"))
                    .find(|p| sh.fs.get(p).is_some())
                {
                    io.out(format!("{p}\n"));
                } else {
                    st = 1;
                }
            }
            st
        }
        b"grep" => grep(sh, args, stdin, io),
        b"wc" => wc(sh, args, stdin, io),
        b"head" => head(sh, args, stdin, io),
        b"kill" | b"pkill" | b"killall" => 0,
        b"dd" => {
            io.err("0+0 records in\n0+0 records out\n0 bytes copied, 5.4e-05 s, 0.0 kB/s\n");
            0
        }
        b"lscpu" => {
            io.out("Architecture:            x86_64\n  CPU op-mode(s):        32-bit, 64-bit\n  Address sizes:         46 bits physical, 48 bits virtual\n  Byte Order:            Little Endian\nCPU(s):                  2\n  On-line CPU(s) list:   0,1\nVendor ID:               GenuineIntel\n  Model name:            Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz\n");
            0
        }
        _ => return None,
    };
    Some(st)
}

fn clock() -> String {
    chrono::Utc::now().format("%H:%M:%S").to_string()
}

/// The logged-in user's groups as (gid, name), primary first: root alone,
/// any other user as Debian's first user (uid 1000 and the desktop groups).
fn id_groups(user: &str) -> Vec<(u32, String)> {
    if user == "root" {
        return vec![(0, "root".into())];
    }
    let mut g = vec![(1000, user.to_owned())];
    for (gid, name) in [
        (24, "cdrom"),
        (25, "floppy"),
        (29, "audio"),
        (30, "dip"),
        (44, "video"),
        (46, "plugdev"),
        (100, "users"),
        (106, "netdev"),
    ] {
        g.push((gid, name.into()));
    }
    g
}

/// coreutils `id` for the logged-in user: the full line, or `-u`, `-g`,
/// `-G` with `-n` (names) and `-r` (ignored: real = effective here), and
/// coreutils' messages for what it refuses.
fn id(sh: &Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let user = sh.profile.user.as_str();
    let uid = if user == "root" { 0 } else { 1000 };
    let mut flags = String::new();
    for a in args {
        match a.as_slice() {
            b"--user" => flags.push('u'),
            b"--group" => flags.push('g'),
            b"--groups" => flags.push('G'),
            b"--name" => flags.push('n'),
            b"--real" => flags.push('r'),
            a if a.len() > 1 && a.first() == Some(&b'-') => flags.push_str(&s(&a[1..])),
            a if s(a) == user => {}
            a => {
                // coreutils quotes the name with U+2018/U+2019 in a UTF-8 locale.
                io.err(format!("id: \u{2018}{}\u{2019}: no such user\n", s(a)));
                return 1;
            }
        }
    }
    if let Some(bad) = flags.chars().find(|c| !"ugGnr".contains(*c)) {
        io.err(format!(
            "id: invalid option -- '{bad}'\nTry 'id --help' for more information.\n"
        ));
        return 1;
    }
    let groups = id_groups(user);
    let picked: Vec<(u32, String)> = match flags.chars().filter(|c| "ugG".contains(*c)).count() {
        0 if flags.is_empty() => {
            let line = |v: &[(u32, String)]| {
                v.iter()
                    .map(|(n, name)| format!("{n}({name})"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            io.out(format!(
                "uid={uid}({user}) gid={} groups={}\n",
                line(&groups[..1]),
                line(&groups)
            ));
            return 0;
        }
        0 => {
            io.err("id: cannot print only names or real IDs in default format\n");
            return 1;
        }
        1 if flags.contains('u') => vec![(uid, user.to_owned())],
        1 if flags.contains('g') => groups[..1].to_vec(),
        1 => groups,
        _ => {
            io.err("id: cannot print \"only\" of more than one choice\n");
            return 1;
        }
    };
    let names = flags.contains('n');
    let shown: Vec<String> = picked
        .into_iter()
        .map(|(n, name)| if names { name } else { n.to_string() })
        .collect();
    io.out(format!("{}\n", shown.join(" ")));
    0
}

/// `echo -e` escapes.
fn unescape(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            i += 1;
            match b[i] {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'\\' => out.push(b'\\'),
                b'a' => out.push(7),
                b'e' => out.push(0x1b),
                b'x' => {
                    let hex: Vec<u8> = b[i + 1..]
                        .iter()
                        .take(2)
                        .take_while(|c| c.is_ascii_hexdigit())
                        .copied()
                        .collect();
                    if hex.is_empty() {
                        out.extend_from_slice(b"\\x");
                    } else {
                        out.push(u8::from_str_radix(&s(&hex), 16).unwrap_or(0));
                        i += hex.len();
                    }
                }
                b'0' => {
                    let oct: Vec<u8> = b[i + 1..]
                        .iter()
                        .take(3)
                        .take_while(|c| (b'0'..=b'7').contains(c))
                        .copied()
                        .collect();
                    out.push(
                        u32::from_str_radix(
                            if oct.is_empty() {
                                "0"
                            } else {
                                std::str::from_utf8(&oct).unwrap_or("0")
                            },
                            8,
                        )
                        .unwrap_or(0) as u8,
                    );
                    i += oct.len();
                }
                c => {
                    out.push(b'\\');
                    out.push(c);
                }
            }
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    out
}

fn echo(args: &[Vec<u8>], io: &mut Io) -> i32 {
    let mut newline = true;
    let mut escapes = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a.len() > 1 && a[0] == b'-' && a[1..].iter().all(|c| matches!(c, b'n' | b'e' | b'E')) {
            newline &= !a.contains(&b'n');
            escapes = a.contains(&b'e');
            i += 1;
        } else {
            break;
        }
    }
    for (j, a) in args[i..].iter().enumerate() {
        if j > 0 {
            io.out(" ");
        }
        if escapes {
            io.out(unescape(a));
        } else {
            io.out(a);
        }
    }
    if newline {
        io.out("\n");
    }
    0
}

fn uname(sh: &Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let mut flags = String::new();
    for a in args {
        match a.as_slice() {
            b"--all" => flags.push('a'),
            a if a.first() == Some(&b'-') => flags.push_str(&s(&a[1..])),
            a => {
                io.err(format!(
                    "uname: extra operand '{}'\nTry 'uname --help' for more information.\n",
                    s(a)
                ));
                return 1;
            }
        }
    }
    if let Some(bad) = flags.chars().find(|c| !"asnrvmpio".contains(*c)) {
        io.err(format!(
            "uname: invalid option -- '{bad}'\nTry 'uname --help' for more information.\n"
        ));
        return 1;
    }
    if flags.is_empty() {
        flags.push('s');
    }
    let (machine, os) = match sh.profile.flavor {
        Flavor::Bash => ("x86_64", "GNU/Linux"),
        Flavor::Busybox => ("armv7l", "GNU/Linux"),
    };
    let all = flags.contains('a');
    let mut parts: Vec<String> = Vec::new();
    let on = |c: char| all || flags.contains(c);
    if on('s') {
        parts.push("Linux".into());
    }
    if on('n') {
        parts.push(sh.profile.hostname.clone());
    }
    if on('r') {
        parts.push(KERNEL.into());
    }
    if on('v') {
        parts.push(KVERSION.into());
    }
    if on('m') {
        parts.push(machine.into());
    }
    if !all && flags.contains('p') {
        parts.push("unknown".into());
    }
    if !all && flags.contains('i') {
        parts.push("unknown".into());
    }
    if on('o') {
        parts.push(os.into());
    }
    io.out(format!("{}\n", parts.join(" ")));
    0
}

fn cd(sh: &mut Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let target = match args.first() {
        None => sh.home.clone(),
        Some(a) if a.as_slice() == b"-" => sh.cwd.clone(),
        Some(a) => sh.path(a),
    };
    match sh.fs.get(&target) {
        Some(Node::Dir) => {
            sh.cwd = target.clone();
            sh.env.insert("PWD".into(), target.into_bytes());
            0
        }
        Some(_) => {
            io.err(format!(
                "{}cd: {}: Not a directory\n",
                sh.err_prefix(),
                s(&args[0])
            ));
            1
        }
        None => {
            io.err(format!(
                "{}cd: {}: No such file or directory\n",
                sh.err_prefix(),
                s(args.first().map_or(&b""[..], |a| a))
            ));
            1
        }
    }
}

fn ls(sh: &Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let flags: String = args
        .iter()
        .filter(|a| a.starts_with(b"-"))
        .map(|a| s(&a[1..]))
        .collect();
    let long = flags.contains('l');
    let all = flags.contains('a');
    let mut targets: Vec<&[u8]> = args
        .iter()
        .filter(|a| !a.starts_with(b"-"))
        .map(|a| a.as_slice())
        .collect();
    if targets.is_empty() {
        targets.push(b".");
    }
    let mut st = 0;
    let many = targets.len() > 1;
    for t in targets {
        let p = sh.path(t);
        match sh.fs.get(&p) {
            None => {
                io.err(format!(
                    "ls: cannot access '{}': No such file or directory\n",
                    s(t)
                ));
                st = 2;
            }
            Some(n @ Node::File { .. }) => {
                if long {
                    io.out(format!("{} {}\n", long_line(n), s(t)));
                } else {
                    io.out(format!("{}\n", s(t)));
                }
            }
            Some(Node::Dir) => {
                if many {
                    io.out(format!("{}:\n", s(t)));
                }
                let mut entries = sh.fs.list(&p).unwrap_or_default();
                if !all {
                    entries.retain(|(n, _)| !n.starts_with('.'));
                }
                if long {
                    io.out(format!("total {}\n", entries.len() * 4));
                    if all {
                        io.out(format!(
                            "{} .\n{} ..\n",
                            long_line(&Node::Dir),
                            long_line(&Node::Dir)
                        ));
                    }
                    for (name, n) in &entries {
                        io.out(format!("{} {name}\n", long_line(n)));
                    }
                } else {
                    let mut names: Vec<String> = entries.into_iter().map(|(n, _)| n).collect();
                    if all {
                        names.insert(0, "..".into());
                        names.insert(0, ".".into());
                    }
                    if !names.is_empty() {
                        io.out(format!("{}\n", names.join("  ")));
                    }
                }
            }
        }
    }
    st
}

fn long_line(n: &Node) -> String {
    let (kind, mode, size) = match n {
        Node::Dir => ('d', 0o755, 4096),
        Node::File { data, mode } => ('-', *mode, data.len()),
    };
    let mut perms = String::new();
    for shift in [6, 3, 0] {
        let b = (mode >> shift) & 7;
        perms.push(if b & 4 != 0 { 'r' } else { '-' });
        perms.push(if b & 2 != 0 { 'w' } else { '-' });
        perms.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    format!("{kind}{perms} 1 root root {size:>5} Nov 14 09:12")
}

fn cat(sh: &Shell, args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    let files: Vec<&Vec<u8>> = args
        .iter()
        .filter(|a| !a.starts_with(b"-") || a.len() == 1)
        .collect();
    if files.is_empty() {
        io.out(stdin);
        return 0;
    }
    let mut st = 0;
    for f in files {
        if f.as_slice() == b"-" {
            io.out(stdin);
            continue;
        }
        match sh.fs.read(&sh.path(f)) {
            Ok(d) => io.out(d),
            Err(e) => {
                io.err(format!("cat: {}: {}\n", s(f), e.text()));
                st = 1;
            }
        }
    }
    st
}

fn input(sh: &Shell, files: &[&Vec<u8>], stdin: &[u8], cmd: &str, io: &mut Io) -> Option<Vec<u8>> {
    if files.is_empty() {
        return Some(stdin.to_vec());
    }
    let mut out = Vec::new();
    for f in files {
        match sh.fs.read(&sh.path(f)) {
            Ok(d) => out.extend_from_slice(d),
            Err(e) => {
                io.err(format!("{cmd}: {}: {}\n", s(f), e.text()));
                return None;
            }
        }
    }
    Some(out)
}

fn grep(sh: &Shell, args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    let flags: String = args
        .iter()
        .filter(|a| a.starts_with(b"-"))
        .map(|a| s(&a[1..]))
        .collect();
    let rest: Vec<&Vec<u8>> = args.iter().filter(|a| !a.starts_with(b"-")).collect();
    let Some((pat, files)) = rest.split_first() else {
        io.err(
            "Usage: grep [OPTION]... PATTERNS [FILE]...\nTry 'grep --help' for more information.\n",
        );
        return 2;
    };
    let Some(text) = input(sh, files, stdin, "grep", io) else {
        return 2;
    };
    let ci = flags.contains('i');
    let pat = if ci {
        pat.to_ascii_lowercase()
    } else {
        pat.to_vec()
    };
    let mut n = 0;
    for line in text.split_inclusive(|&b| b == b'\n') {
        let hay = if ci {
            line.to_ascii_lowercase()
        } else {
            line.to_vec()
        };
        let hit = pat.is_empty() || hay.windows(pat.len()).any(|w| w == pat.as_slice());
        if hit != flags.contains('v') {
            n += 1;
            if !flags.contains('c') {
                io.out(line);
                if !line.ends_with(b"\n") {
                    io.out("\n");
                }
            }
        }
    }
    if flags.contains('c') {
        io.out(format!("{n}\n"));
    }
    if n > 0 { 0 } else { 1 }
}

fn wc(sh: &Shell, args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    let flags: String = args
        .iter()
        .filter(|a| a.starts_with(b"-"))
        .map(|a| s(&a[1..]))
        .collect();
    let files: Vec<&Vec<u8>> = args.iter().filter(|a| !a.starts_with(b"-")).collect();
    let Some(text) = input(sh, &files, stdin, "wc", io) else {
        return 1;
    };
    let lines = text.iter().filter(|&&b| b == b'\n').count();
    let words = text
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .count();
    let mut parts = Vec::new();
    if flags.is_empty() || flags.contains('l') {
        parts.push(lines);
    }
    if flags.is_empty() || flags.contains('w') {
        parts.push(words);
    }
    if flags.is_empty() || flags.contains('c') {
        parts.push(text.len());
    }
    let w = if parts.len() == 1 && files.is_empty() {
        1
    } else {
        7
    };
    let line: Vec<String> = parts.iter().map(|n| format!("{n:>w$}")).collect();
    io.out(
        format!("{}\n", line.join(" ").trim_start_matches(' ').to_owned()).replace("\n\n", "\n"),
    );
    0
}

fn head(sh: &Shell, args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    let mut n = 10usize;
    let mut files = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a.as_slice() == b"-n" {
            n = args
                .get(i + 1)
                .and_then(|v| s(v).parse().ok())
                .unwrap_or(10);
            i += 1;
        } else if a.starts_with(b"-") {
            n = s(&a[1..]).parse().unwrap_or(10);
        } else {
            files.push(a);
        }
        i += 1;
    }
    let Some(text) = input(sh, &files, stdin, "head", io) else {
        return 1;
    };
    for line in text.split_inclusive(|&b| b == b'\n').take(n) {
        io.out(line);
    }
    0
}

fn free(args: &[Vec<u8>], io: &mut Io) -> i32 {
    let human = args.iter().any(|a| a.as_slice() == b"-h");
    let mega = args.iter().any(|a| a.as_slice() == b"-m");
    if human {
        io.out(
            "               total        used        free      shared  buff/cache   available\n\
Mem:           3.7Gi       672Mi       201Mi       108Mi       2.9Gi       2.7Gi\n\
Swap:          952Mi       5.1Mi       946Mi\n",
        );
    } else if mega {
        io.out(
            "               total        used        free      shared  buff/cache   available\n\
Mem:            3828         672         201         108        2934        2738\n\
Swap:            952           5         946\n",
        );
    } else {
        io.out(
            "               total        used        free      shared  buff/cache   available\n\
Mem:         3920196      688476      206452      111264     3004464     2803900\n\
Swap:         974996        5248      969748\n",
        );
    }
    0
}

fn ps(args: &[Vec<u8>]) -> &'static str {
    if args.is_empty() {
        return "    PID TTY          TIME CMD\n  41733 pts/0    00:00:00 bash\n  41801 pts/0    00:00:00 ps\n";
    }
    "USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND\n\
root           1  0.0  0.3 168436 12968 ?        Ss   Oct16   1:12 /sbin/init\n\
root           2  0.0  0.0      0     0 ?        S    Oct16   0:00 [kthreadd]\n\
root         312  0.0  0.4  48084 17920 ?        Ss   Oct16   0:41 /lib/systemd/systemd-journald\n\
root         341  0.0  0.1  26296  6528 ?        Ss   Oct16   0:02 /lib/systemd/systemd-udevd\n\
root         502  0.0  0.0   6608  2688 ?        Ss   Oct16   0:09 /usr/sbin/cron -f\n\
message+     503  0.0  0.1   9128  4864 ?        Ss   Oct16   0:06 /usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only\n\
root         511  0.0  0.1  25388  7680 ?        Ss   Oct16   0:05 /lib/systemd/systemd-logind\n\
root         602  0.0  0.2  15432  9344 ?        Ss   Oct16   0:31 sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups\n\
root         610  0.0  0.0   5876  1024 tty1     Ss+  Oct16   0:00 /sbin/agetty -o -p -- \\u --noclear - linux\n\
root       41730  0.0  0.2  17740 11008 ?        Ss   18:02   0:00 sshd: root@pts/0\n\
root       41733  0.0  0.1   7968  4736 pts/0    Ss   18:02   0:00 -bash\n\
root       41801  0.0  0.1  11084  4480 pts/0    R+   18:04   0:00 ps aux\n"
}

const IFCONFIG: &str = "ens18: flags=4163<UP,BROADCAST,RUNNING,MULTICAST>  mtu 1500\n\
        inet 10.0.0.17  netmask 255.255.255.0  broadcast 10.0.0.255\n\
        inet6 fe80::5054:ff:fe3a:7c19  prefixlen 64  scopeid 0x20<link>\n\
        ether 52:54:00:3a:7c:19  txqueuelen 1000  (Ethernet)\n\
        RX packets 48213377  bytes 9412983114 (8.7 GiB)\n\
        RX errors 0  dropped 0  overruns 0  frame 0\n\
        TX packets 31207761  bytes 5180045338 (4.8 GiB)\n\
        TX errors 0  dropped 0 overruns 0  carrier 0  collisions 0\n\n\
lo: flags=73<UP,LOOPBACK,RUNNING>  mtu 65536\n\
        inet 127.0.0.1  netmask 255.0.0.0\n\
        inet6 ::1  prefixlen 128  scopeid 0x10<host>\n\
        loop  txqueuelen 1000  (Local Loopback)\n\
        RX packets 2150  bytes 187912 (183.5 KiB)\n\
        RX errors 0  dropped 0  overruns 0  frame 0\n\
        TX packets 2150  bytes 187912 (183.5 KiB)\n\
        TX errors 0  dropped 0 overruns 0  carrier 0  collisions 0\n\n";

const IP_ADDR: &str = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000\n\
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n\
    inet 127.0.0.1/8 scope host lo\n       valid_lft forever preferred_lft forever\n\
    inet6 ::1/128 scope host noprefixroute \n       valid_lft forever preferred_lft forever\n\
2: ens18: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP group default qlen 1000\n\
    link/ether 52:54:00:3a:7c:19 brd ff:ff:ff:ff:ff:ff\n    altname enp0s18\n\
    inet 10.0.0.17/24 brd 10.0.0.255 scope global ens18\n       valid_lft forever preferred_lft forever\n\
    inet6 fe80::5054:ff:fe3a:7c19/64 scope link \n       valid_lft forever preferred_lft forever\n";

fn crontab(sh: &mut Shell, args: &[Vec<u8>], stdin: &[u8], io: &mut Io) -> i32 {
    let user = sh.profile.user.clone();
    let spool = format!("/var/spool/cron/crontabs/{user}");
    match args.first().map(|a| a.as_slice()) {
        Some(b"-l") => match sh.fs.read(&spool) {
            Ok(d) if !d.is_empty() => {
                io.out(d);
                0
            }
            _ => {
                io.err(format!("no crontab for {user}\n"));
                1
            }
        },
        Some(b"-r") => {
            let _ = sh.fs.remove(&spool, false);
            0
        }
        Some(b"-e") => {
            io.err("no crontab for root - using an empty one\ncrontab: installing new crontab\n");
            0
        }
        Some(f) => {
            let data = if f == b"-" {
                stdin.to_vec()
            } else {
                match sh.fs.read(&sh.path(f)) {
                    Ok(d) => d.to_vec(),
                    Err(_) => {
                        io.err(format!("{}: No such file or directory\n", s(f)));
                        return 1;
                    }
                }
            };
            match sh.write_file(spool.as_bytes(), &data, false) {
                Ok(()) => 0,
                Err(m) => {
                    io.err(m);
                    1
                }
            }
        }
        None => {
            let data = stdin.to_vec();
            let _ = sh.write_file(spool.as_bytes(), &data, false);
            0
        }
    }
}

fn chmod(sh: &mut Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let rest: Vec<&Vec<u8>> = args
        .iter()
        .filter(|a| {
            !(a.starts_with(b"-") && a.len() > 1 && a[1].is_ascii_alphabetic() && a[1] != b'x')
        })
        .collect();
    let Some((mode, files)) = rest.split_first() else {
        io.err("chmod: missing operand\nTry 'chmod --help' for more information.\n");
        return 1;
    };
    if files.is_empty() {
        io.err(format!(
            "chmod: missing operand after '{}'\nTry 'chmod --help' for more information.\n",
            s(mode)
        ));
        return 1;
    }
    let mut st = 0;
    for f in files {
        let p = sh.path(f);
        let Some(old) = sh.fs.mode(&p) else {
            io.err(format!(
                "chmod: cannot access '{}': No such file or directory\n",
                s(f)
            ));
            st = 1;
            continue;
        };
        let m = s(mode);
        let new = if let Ok(n) = u32::from_str_radix(&m, 8) {
            n
        } else if m.contains('+') && m.contains('x') {
            old | 0o111
        } else if m.contains('-') && m.contains('x') {
            old & !0o111
        } else {
            old
        };
        let _ = sh.fs.set_mode(&p, new);
    }
    st
}

fn mkdir(sh: &mut Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let parents = args.iter().any(|a| a.as_slice() == b"-p");
    let mut st = 0;
    for a in args.iter().filter(|a| !a.starts_with(b"-")) {
        if let Err(e) = sh.fs.mkdir(&sh.path(a), parents) {
            io.err(format!(
                "mkdir: cannot create directory '{}': {}\n",
                s(a),
                e.text()
            ));
            st = 1;
        }
    }
    st
}

fn rm(sh: &mut Shell, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let flags: String = args
        .iter()
        .filter(|a| a.starts_with(b"-"))
        .map(|a| s(&a[1..]))
        .collect();
    let rec = flags.contains('r') || flags.contains('R');
    let force = flags.contains('f');
    let mut st = 0;
    for a in args.iter().filter(|a| !a.starts_with(b"-")) {
        match sh.fs.remove(&sh.path(a), rec) {
            Ok(()) => {}
            Err(FsError::NotFound) if force => {}
            Err(FsError::IsDir) => {
                io.err(format!("rm: cannot remove '{}': Is a directory\n", s(a)));
                st = 1;
            }
            Err(e) => {
                io.err(format!("rm: cannot remove '{}': {}\n", s(a), e.text()));
                st = 1;
            }
        }
    }
    st
}

fn cp_mv(sh: &mut Shell, mv: bool, args: &[Vec<u8>], io: &mut Io) -> i32 {
    let cmd = if mv { "mv" } else { "cp" };
    let files: Vec<&Vec<u8>> = args.iter().filter(|a| !a.starts_with(b"-")).collect();
    let [src, dst] = files.as_slice() else {
        io.err(format!(
            "{cmd}: missing file operand\nTry '{cmd} --help' for more information.\n"
        ));
        return 1;
    };
    let sp = sh.path(src);
    let data = match sh.fs.read(&sp) {
        Ok(d) => d.to_vec(),
        Err(e) => {
            io.err(format!("{cmd}: cannot stat '{}': {}\n", s(src), e.text()));
            return 1;
        }
    };
    let mode = sh.fs.mode(&sp).unwrap_or(0o644);
    let mut dp = sh.path(dst);
    if sh.fs.is_dir(&dp) {
        let name = sp.rsplit('/').next().unwrap_or("");
        dp = Vfs::resolve(&dp, name, &sh.home);
    }
    if let Err(m) = sh.write_file(dp.as_bytes(), &data, false) {
        io.err(m);
        return 1;
    }
    let _ = sh.fs.set_mode(&dp, mode);
    if mv {
        let _ = sh.fs.remove(&sp, false);
    }
    0
}

/// wget/curl/tftp/ftpget: record the URL, never fetch, fail like a host
/// whose outbound traffic is blocked.
fn download(sh: &mut Shell, cmd: &[u8], args: &[Vec<u8>], io: &mut Io) -> i32 {
    let tool = s(cmd);
    let words: Vec<String> = args.iter().map(|a| s(a)).collect();
    let url = match tool.as_str() {
        "tftp" | "ftpget" => {
            // tftp -g -r FILE HOST / ftpget HOST LOCAL REMOTE
            let host = words.iter().rfind(|w| !w.starts_with('-')).cloned();
            let remote = words
                .iter()
                .position(|w| w == "-r")
                .and_then(|i| words.get(i + 1).cloned());
            match (tool.as_str(), host, remote) {
                ("tftp", Some(h), Some(r)) => Some(format!("tftp://{h}/{r}")),
                ("tftp", Some(h), None) => Some(format!("tftp://{h}/")),
                ("ftpget", _, _) => {
                    let pos: Vec<&String> = words.iter().filter(|w| !w.starts_with('-')).collect();
                    pos.first()
                        .map(|h| format!("ftp://{h}/{}", pos.get(2).map_or("", |r| r.as_str())))
                }
                _ => None,
            }
        }
        _ => words
            .iter()
            .find(|w| {
                w.contains("://") || (!w.starts_with('-') && w.contains('.') && w.contains('/'))
            })
            .cloned(),
    };
    let Some(url) = url else {
        match tool.as_str() {
            "wget" => io.err("wget: missing URL\nUsage: wget [OPTION]... [URL]...\n\nTry `wget --help' for more options.\n"),
            "curl" => io.err("curl: try 'curl --help' or 'curl --manual' for more information\n"),
            _ => io.err(format!("Usage: {tool} [OPTIONS] HOST [PORT]\n")),
        }
        return 1;
    };
    let mut ev = Map::new();
    ev.insert("url".into(), Value::String(url.clone()));
    ev.insert("tool".into(), Value::String(tool.clone()));
    sh.attack("shell.download", format!("{tool} {url}"), ev);
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(&url)
        .split(['/', ':'])
        .next()
        .unwrap_or("")
        .to_owned();
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    match tool.as_str() {
        "wget" => {
            io.err(format!(
                "--{}--  {url}\n",
                chrono::Utc::now().format("%Y-%m-%d %H:%M:%S")
            ));
            if is_ip {
                let port = url
                    .split("://")
                    .nth(1)
                    .and_then(|r| r.split('/').next())
                    .and_then(|hp| hp.split_once(':'))
                    .map_or("80".to_owned(), |(_, p)| p.to_owned());
                io.err(format!(
                    "Connecting to {host}:{port}... failed: Connection refused.\n"
                ));
            } else {
                io.err(format!("Resolving {host} ({host})... failed: Temporary failure in name resolution.\nwget: unable to resolve host address \u{2018}{host}\u{2019}\n"));
            }
            4
        }
        "curl" => {
            if is_ip {
                io.err(format!("curl: (7) Failed to connect to {host} port 80 after 0 ms: Couldn't connect to server\n"));
                7
            } else {
                io.err(format!("curl: (6) Could not resolve host: {host}\n"));
                6
            }
        }
        "tftp" => {
            io.err("tftp: timeout\n");
            1
        }
        _ => {
            io.err(format!(
                "ftpget: can't connect to remote host ({host}): Connection refused\n"
            ));
            1
        }
    }
}
