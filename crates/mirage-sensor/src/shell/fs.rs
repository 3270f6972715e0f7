//! A per-session virtual filesystem of a plausible Debian 12 host.
//!
//! Every session starts from the same small tree (system files bots read:
//! `/etc/passwd`, `/etc/os-release`, `/proc/cpuinfo`, `/proc/meminfo`,
//! home directories) and changes only its own copy. Writes are bounded per
//! file and per session; nothing touches the real disk (files worth
//! keeping go to the quarantine through the shell's effects).

use std::collections::BTreeMap;

/// Largest file the session may create, in bytes.
pub const MAX_FILE: usize = 1024 * 1024;
/// Most bytes all written files of a session may hold.
pub const MAX_WRITTEN: usize = 4 * 1024 * 1024;
/// Most nodes (files and directories) in one session's tree.
pub const MAX_NODES: usize = 4096;

/// A file or a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file with its contents and permission bits.
    File {
        /// The contents.
        data: Vec<u8>,
        /// Permission bits (0o644, 0o755, …).
        mode: u32,
    },
}

/// Why a filesystem operation failed, as coreutils words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsError {
    /// ENOENT.
    NotFound,
    /// ENOTDIR.
    NotDir,
    /// EISDIR.
    IsDir,
    /// EEXIST.
    Exists,
    /// ENOSPC (a session cap).
    NoSpace,
    /// EACCES.
    Denied,
}

impl FsError {
    /// strerror text.
    pub fn text(self) -> &'static str {
        match self {
            FsError::NotFound => "No such file or directory",
            FsError::NotDir => "Not a directory",
            FsError::IsDir => "Is a directory",
            FsError::Exists => "File exists",
            FsError::NoSpace => "No space left on device",
            FsError::Denied => "Permission denied",
        }
    }
}

/// The session's tree: absolute normalized path -> node.
#[derive(Debug, Clone)]
pub struct Vfs {
    nodes: BTreeMap<String, Node>,
    written: usize,
}

/// `/proc/cpuinfo` of a 2-vCPU KVM guest.
fn cpuinfo() -> String {
    let mut s = String::new();
    for n in 0..2 {
        s.push_str(&format!(
            "processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n\
model name\t: Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz\nstepping\t: 7\nmicrocode\t: 0x5003604\n\
cpu MHz\t\t: 2095.076\ncache size\t: 36608 KB\nphysical id\t: 0\nsiblings\t: 2\ncore id\t\t: {n}\n\
cpu cores\t: 2\napicid\t\t: {n}\ninitial apicid\t: {n}\nfpu\t\t: yes\nfpu_exception\t: yes\n\
cpuid level\t: 13\nwp\t\t: yes\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge \
mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc \
rep_good nopl xtopology cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 \
x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm \
3dnowprefetch cpuid_fault invpcid_single ssbd ibrs ibpb stibp ibrs_enhanced fsgsbase \
tsc_adjust bmi1 avx2 smep bmi2 erms invpcid avx512f avx512dq rdseed adx smap clflushopt clwb \
avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves arat avx512_vnni md_clear \
arch_capabilities\nbugs\t\t: spectre_v1 spectre_v2 spec_store_bypass swapgs taa mmio_stale_data \
retbleed eibrs_pbrsb gds bhi\nbogomips\t: 4190.15\nclflush size\t: 64\ncache_alignment\t: 64\n\
address sizes\t: 46 bits physical, 48 bits virtual\npower management:\n\n"
        ));
    }
    s
}

const MEMINFO: &str = "MemTotal:        4014284 kB\nMemFree:          211408 kB\n\
MemAvailable:    2871196 kB\nBuffers:          151920 kB\nCached:          2530464 kB\n\
SwapCached:          364 kB\nActive:          1419952 kB\nInactive:        1946220 kB\n\
Active(anon):     598612 kB\nInactive(anon):   199140 kB\nActive(file):     821340 kB\n\
Inactive(file):  1747080 kB\nUnevictable:           0 kB\nMlocked:               0 kB\n\
SwapTotal:        998396 kB\nSwapFree:         993020 kB\nDirty:               108 kB\n\
Writeback:             0 kB\nAnonPages:        683448 kB\nMapped:           262116 kB\n\
Shmem:            113932 kB\nKReclaimable:     299560 kB\nSlab:             376456 kB\n\
SReclaimable:     299560 kB\nSUnreclaim:        76896 kB\nKernelStack:        4672 kB\n\
PageTables:        11236 kB\nCommitLimit:     3005536 kB\nCommitted_AS:    2329132 kB\n\
VmallocTotal:   34359738367 kB\nVmallocUsed:       22796 kB\nVmallocChunk:          0 kB\n\
HugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n";

const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n\
HOME_URL=\"https://www.debian.org/\"\nSUPPORT_URL=\"https://www.debian.org/support\"\n\
BUG_REPORT_URL=\"https://bugs.debian.org/\"\n";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
bin:x:2:2:bin:/bin:/usr/sbin/nologin\nsys:x:3:3:sys:/dev:/usr/sbin/nologin\n\
sync:x:4:65534:sync:/bin:/bin/sync\ngames:x:5:60:games:/usr/games:/usr/sbin/nologin\n\
man:x:6:12:man:/var/cache/man:/usr/sbin/nologin\nlp:x:7:7:lp:/var/spool/lpd:/usr/sbin/nologin\n\
mail:x:8:8:mail:/var/mail:/usr/sbin/nologin\nnews:x:9:9:news:/var/spool/news:/usr/sbin/nologin\n\
uucp:x:10:10:uucp:/var/spool/uucp:/usr/sbin/nologin\nproxy:x:13:13:proxy:/bin:/usr/sbin/nologin\n\
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
backup:x:34:34:backup:/var/backups:/usr/sbin/nologin\n\
list:x:38:38:Mailing List Manager:/var/list:/usr/sbin/nologin\nirc:x:39:39:ircd:/run/ircd:/usr/sbin/nologin\n\
_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin\n\
messagebus:x:100:107::/nonexistent:/usr/sbin/nologin\n\
sshd:x:101:65534::/run/sshd:/usr/sbin/nologin\n";

const MOUNTS: &str = "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n\
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n\
udev /dev devtmpfs rw,nosuid,relatime,size=1985060k,nr_inodes=496265,mode=755,inode64 0 0\n\
devpts /dev/pts devpts rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=000 0 0\n\
tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=401432k,mode=755,inode64 0 0\n\
/dev/sda1 / ext4 rw,relatime,errors=remount-ro 0 0\n\
tmpfs /dev/shm tmpfs rw,nosuid,nodev,inode64 0 0\n";

impl Vfs {
    /// The starting tree for a host called `hostname` with the logged-in
    /// `user` (a home directory is made for a user that is not root).
    pub fn debian(hostname: &str, user: &str) -> Vfs {
        let mut v = Vfs {
            nodes: BTreeMap::new(),
            written: 0,
        };
        for d in [
            "/",
            "/bin",
            "/boot",
            "/dev",
            "/dev/shm",
            "/etc",
            "/etc/ssh",
            "/etc/cron.d",
            "/etc/init.d",
            "/home",
            "/lib",
            "/media",
            "/mnt",
            "/opt",
            "/proc",
            "/root",
            "/root/.ssh",
            "/run",
            "/sbin",
            "/srv",
            "/sys",
            "/tmp",
            "/usr",
            "/usr/bin",
            "/usr/lib",
            "/usr/local",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/share",
            "/var",
            "/var/log",
            "/var/tmp",
            "/var/www",
            "/var/spool",
            "/var/spool/cron",
            "/var/spool/cron/crontabs",
        ] {
            v.nodes.insert(d.into(), Node::Dir);
        }
        let mut file = |p: &str, data: &[u8], mode: u32| {
            v.nodes.insert(
                p.into(),
                Node::File {
                    data: data.to_vec(),
                    mode,
                },
            );
        };
        let mut passwd = PASSWD.to_owned();
        if user != "root" && !user.is_empty() {
            passwd.push_str(&format!("{user}:x:1000:1000:,,,:/home/{user}:/bin/bash\n"));
        }
        file("/etc/passwd", passwd.as_bytes(), 0o644);
        file("/etc/group", b"root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\nsudo:x:27:\nusers:x:100:\nnogroup:x:65534:\n", 0o644);
        file("/etc/shadow", b"", 0o640);
        file("/etc/hostname", format!("{hostname}\n").as_bytes(), 0o644);
        file(
            "/etc/hosts",
            format!("127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n").as_bytes(),
            0o644,
        );
        file("/etc/os-release", OS_RELEASE.as_bytes(), 0o644);
        file("/etc/debian_version", b"12.8\n", 0o644);
        file("/etc/issue", b"Debian GNU/Linux 12 \\n \\l\n\n", 0o644);
        file("/etc/issue.net", b"Debian GNU/Linux 12\n", 0o644);
        file("/etc/resolv.conf", b"nameserver 10.0.0.2\n", 0o644);
        file("/etc/crontab", b"SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n\n17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n", 0o644);
        file("/etc/ssh/sshd_config", b"Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n", 0o644);
        file("/proc/cpuinfo", cpuinfo().as_bytes(), 0o444);
        file("/proc/meminfo", MEMINFO.as_bytes(), 0o444);
        file("/proc/mounts", MOUNTS.as_bytes(), 0o444);
        file("/proc/version", b"Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)\n", 0o444);
        file("/proc/uptime", b"3127481.54 6190353.12\n", 0o444);
        file("/proc/loadavg", b"0.08 0.03 0.01 1/163 41733\n", 0o444);
        file("/root/.bashrc", b"# ~/.bashrc: executed by bash(1) for non-login shells.\n\nexport LS_OPTIONS='--color=auto'\neval \"$(dircolors)\"\nalias ls='ls $LS_OPTIONS'\n", 0o644);
        file("/root/.profile", b"# ~/.profile: executed by Bourne-compatible login shells.\n\nif [ \"$BASH\" ]; then\n  if [ -f ~/.bashrc ]; then\n    . ~/.bashrc\n  fi\nfi\n\nmesg n 2> /dev/null || true\n", 0o644);
        file("/root/.ssh/authorized_keys", b"", 0o600);
        for b in [
            "bash", "busybox", "cat", "chmod", "cp", "dd", "echo", "ls", "mkdir", "mv", "ps", "rm",
            "sh", "sleep", "uname",
        ] {
            file(&format!("/bin/{b}"), b"\x7fELF\x02\x01\x01", 0o755);
        }
        for b in [
            "wget", "curl", "perl", "python3", "crontab", "nproc", "free", "id", "w",
        ] {
            file(&format!("/usr/bin/{b}"), b"\x7fELF\x02\x01\x01", 0o755);
        }
        if user != "root" && !user.is_empty() {
            v.nodes.insert(format!("/home/{user}"), Node::Dir);
            v.nodes.insert(format!("/home/{user}/.ssh"), Node::Dir);
            v.nodes.insert(
                format!("/home/{user}/.bashrc"),
                Node::File {
                    data: b"# ~/.bashrc: executed by bash(1) for non-login shells.\n".to_vec(),
                    mode: 0o644,
                },
            );
        }
        v
    }

    /// Make `path` absolute against `cwd` and resolve `.`, `..` and `//`.
    pub fn resolve(cwd: &str, path: &str, home: &str) -> String {
        let joined = if let Some(rest) = path.strip_prefix('~') {
            if rest.is_empty() || rest.starts_with('/') {
                format!("{home}{rest}")
            } else {
                path.to_owned()
            }
        } else if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("{cwd}/{path}")
        };
        let joined = if joined.starts_with('/') {
            joined
        } else {
            format!("{cwd}/{joined}")
        };
        let mut parts: Vec<&str> = Vec::new();
        for p in joined.split('/') {
            match p {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        let mut out = String::with_capacity(joined.len());
        for p in parts {
            out.push('/');
            out.push_str(p);
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    fn parent(path: &str) -> &str {
        match path.rfind('/') {
            Some(0) | None => "/",
            Some(i) => &path[..i],
        }
    }

    /// The node at an absolute path.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// True when `path` is a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        matches!(self.nodes.get(path), Some(Node::Dir))
    }

    /// A file's contents.
    pub fn read(&self, path: &str) -> Result<&[u8], FsError> {
        match self.nodes.get(path) {
            Some(Node::File { data, .. }) => Ok(data),
            Some(Node::Dir) => Err(FsError::IsDir),
            None if self.parent_missing(path) => Err(FsError::NotFound),
            None => Err(FsError::NotFound),
        }
    }

    fn parent_missing(&self, path: &str) -> bool {
        !self.is_dir(Self::parent(path))
    }

    /// Write (or append to) a file; the parent must be a directory.
    pub fn write(&mut self, path: &str, data: &[u8], append: bool) -> Result<(), FsError> {
        if path.starts_with("/proc/") || path.starts_with("/sys/") {
            return Err(FsError::Denied);
        }
        match self.nodes.get(Self::parent(path)) {
            Some(Node::Dir) => {}
            Some(Node::File { .. }) => return Err(FsError::NotDir),
            None => return Err(FsError::NotFound),
        }
        if self.written.saturating_add(data.len()) > MAX_WRITTEN {
            return Err(FsError::NoSpace);
        }
        let exists = self.nodes.contains_key(path);
        if !exists && self.nodes.len() >= MAX_NODES {
            return Err(FsError::NoSpace);
        }
        match self.nodes.get_mut(path) {
            Some(Node::Dir) => return Err(FsError::IsDir),
            Some(Node::File { data: old, .. }) => {
                if !append {
                    old.clear();
                }
                if old.len() + data.len() > MAX_FILE {
                    return Err(FsError::NoSpace);
                }
                old.extend_from_slice(data);
            }
            None => {
                if data.len() > MAX_FILE {
                    return Err(FsError::NoSpace);
                }
                self.nodes.insert(
                    path.to_owned(),
                    Node::File {
                        data: data.to_vec(),
                        mode: 0o644,
                    },
                );
            }
        }
        self.written += data.len();
        Ok(())
    }

    /// Create a directory (`parents`: like `mkdir -p`).
    pub fn mkdir(&mut self, path: &str, parents: bool) -> Result<(), FsError> {
        if self.nodes.contains_key(path) {
            return if parents && self.is_dir(path) {
                Ok(())
            } else {
                Err(FsError::Exists)
            };
        }
        let parent = Self::parent(path).to_owned();
        if !self.is_dir(&parent) {
            if parents && !self.nodes.contains_key(&parent) {
                self.mkdir(&parent, true)?;
            } else {
                return Err(FsError::NotFound);
            }
        }
        if self.nodes.len() >= MAX_NODES {
            return Err(FsError::NoSpace);
        }
        self.nodes.insert(path.to_owned(), Node::Dir);
        Ok(())
    }

    /// Remove a file, or a directory with everything under it (`recursive`).
    pub fn remove(&mut self, path: &str, recursive: bool) -> Result<(), FsError> {
        match self.nodes.get(path) {
            None => Err(FsError::NotFound),
            Some(Node::Dir) if !recursive => Err(FsError::IsDir),
            Some(Node::Dir) => {
                if path == "/" {
                    return Err(FsError::Denied);
                }
                let prefix = format!("{path}/");
                self.nodes
                    .retain(|k, _| k != path && !k.starts_with(&prefix));
                Ok(())
            }
            Some(Node::File { .. }) => {
                self.nodes.remove(path);
                Ok(())
            }
        }
    }

    /// Set a file's permission bits (`+x` style handled by the caller).
    pub fn mode(&self, path: &str) -> Option<u32> {
        match self.nodes.get(path)? {
            Node::Dir => Some(0o755),
            Node::File { mode, .. } => Some(*mode),
        }
    }

    /// Change a file's permission bits.
    pub fn set_mode(&mut self, path: &str, new: u32) -> Result<(), FsError> {
        match self.nodes.get_mut(path) {
            None => Err(FsError::NotFound),
            Some(Node::Dir) => Ok(()),
            Some(Node::File { mode, .. }) => {
                *mode = new & 0o7777;
                Ok(())
            }
        }
    }

    /// Move a file or a directory (with everything under it) to `to`,
    /// replacing a file there when `replace` (POSIX rename) and failing
    /// with `Exists` otherwise (SFTP v3 rename).
    pub fn rename(&mut self, from: &str, to: &str, replace: bool) -> Result<(), FsError> {
        if from == "/" || to == "/" || to.starts_with(&format!("{from}/")) {
            return Err(FsError::Denied);
        }
        if !self.nodes.contains_key(from) {
            return Err(FsError::NotFound);
        }
        if !self.is_dir(Self::parent(to)) {
            return Err(FsError::NotFound);
        }
        match self.nodes.get(to) {
            Some(Node::Dir) => return Err(FsError::Exists),
            Some(Node::File { .. }) if !replace => return Err(FsError::Exists),
            _ => {}
        }
        let prefix = format!("{from}/");
        let moved: Vec<String> = self
            .nodes
            .range(from.to_owned()..)
            // Keys starting with `from` are contiguous (`/a-b` may sit
            // between `/a` and `/a/c`).
            .take_while(|(k, _)| k.starts_with(from))
            .filter(|(k, _)| k.as_str() == from || k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in moved {
            if let Some(n) = self.nodes.remove(&k) {
                self.nodes.insert(format!("{to}{}", &k[from.len()..]), n);
            }
        }
        Ok(())
    }

    /// Names directly under a directory, sorted.
    pub fn list(&self, dir: &str) -> Result<Vec<(String, &Node)>, FsError> {
        match self.nodes.get(dir) {
            None => return Err(FsError::NotFound),
            Some(Node::File { .. }) => return Err(FsError::NotDir),
            Some(Node::Dir) => {}
        }
        let prefix = if dir == "/" {
            "/".to_owned()
        } else {
            format!("{dir}/")
        };
        Ok(self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|(k, n)| (k[prefix.len()..].to_owned(), n))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_normalizes() {
        assert_eq!(Vfs::resolve("/tmp", "y.sh", "/root"), "/tmp/y.sh");
        assert_eq!(
            Vfs::resolve("/tmp", "../etc//passwd", "/root"),
            "/etc/passwd"
        );
        assert_eq!(Vfs::resolve("/", "..", "/root"), "/");
        assert_eq!(Vfs::resolve("/tmp", "~/.ssh", "/root"), "/root/.ssh");
    }

    #[test]
    fn write_read_list_remove_with_caps() {
        let mut v = Vfs::debian("h", "root");
        v.write("/tmp/a", b"x", false).unwrap();
        v.write("/tmp/a", b"y", true).unwrap();
        assert_eq!(v.read("/tmp/a").unwrap(), b"xy");
        assert_eq!(v.write("/nope/a", b"x", false), Err(FsError::NotFound));
        assert_eq!(
            v.write("/tmp/big", &vec![0; MAX_FILE + 1], false),
            Err(FsError::NoSpace)
        );
        assert!(v.list("/tmp").unwrap().iter().any(|(n, _)| n == "a"));
        v.mkdir("/tmp/d/e", true).unwrap();
        v.rename("/tmp/d", "/tmp/f", false).unwrap();
        assert!(v.is_dir("/tmp/f/e") && v.get("/tmp/d/e").is_none());
        assert_eq!(v.rename("/tmp/a", "/tmp/f", true), Err(FsError::Exists));
        v.rename("/tmp/f", "/tmp/d", false).unwrap();
        v.remove("/tmp/d", true).unwrap();
        assert!(v.get("/tmp/d/e").is_none());
        assert!(
            std::str::from_utf8(v.read("/proc/cpuinfo").unwrap())
                .unwrap()
                .contains("model name")
        );
    }
}
