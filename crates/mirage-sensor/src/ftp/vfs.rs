//! The virtual file tree an FTP session sees.
//!
//! Every session starts from a copy of the configured tree; uploads, MKD,
//! DELE, RMD and renames change only that copy, so one attacker never sees
//! another's files and nothing touches the real disk (uploaded bytes go to
//! the quarantine, and a bounded amount is kept in memory so that a client
//! that reads back what it wrote gets it). Paths are normalised here
//! (`.`, `..`, `~`, repeated slashes) and capped in length and depth.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// Longest normalised path, in bytes.
pub const MAX_PATH: usize = 1024;
/// Deepest path, in components.
pub const MAX_DEPTH: usize = 32;
/// Most entries one session's tree may hold.
pub const MAX_NODES: usize = 1024;

/// A file or a directory.
#[derive(Debug, Clone)]
pub struct Node {
    /// Directory, or file with its size and (when known) content.
    pub kind: Kind,
    /// Modification time.
    pub mtime: DateTime<Utc>,
    /// Owner and group shown by LIST (numeric, as vsftpd shows them).
    pub owner: u32,
}

/// What a node is.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A file: its size, and its bytes when the session can read it back.
    File {
        /// Size in bytes.
        size: u64,
        /// Content, if kept.
        data: Option<Arc<[u8]>>,
    },
}

/// A tree: absolute normalised path (`/`, `/pub`, `/pub/README`) to node.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

impl Tree {
    /// A tree holding `dirs` and `files` (relative paths), all dated `mtime`.
    pub fn new<'a>(
        dirs: impl IntoIterator<Item = &'a str>,
        files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        mtime: DateTime<Utc>,
    ) -> Tree {
        let mut t = Tree {
            nodes: BTreeMap::new(),
        };
        t.nodes.insert("/".into(), dir_node(mtime, 0));
        for d in dirs {
            if let Some(p) = resolve("/", d.as_bytes()) {
                t.mkdirs(&p, mtime);
            }
        }
        for (path, data) in files {
            if let Some(p) = resolve("/", path.as_bytes()) {
                t.mkdirs(parent(&p), mtime);
                t.nodes.insert(
                    p,
                    Node {
                        kind: Kind::File {
                            size: data.len() as u64,
                            data: Some(Arc::from(data)),
                        },
                        mtime,
                        owner: 0,
                    },
                );
            }
        }
        t
    }

    fn mkdirs(&mut self, path: &str, mtime: DateTime<Utc>) {
        let mut cur = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur.push('/');
            cur.push_str(part);
            self.nodes
                .entry(cur.clone())
                .or_insert_with(|| dir_node(mtime, 0));
        }
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// True when `path` is a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        matches!(
            self.get(path),
            Some(Node {
                kind: Kind::Dir,
                ..
            })
        )
    }

    /// The direct children of directory `path`, sorted by name.
    pub fn children(&self, path: &str) -> Vec<(&str, &Node)> {
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|(k, n)| (&k[prefix.len()..], n))
            .collect()
    }

    /// Add or replace a node whose parent is a directory. False when the
    /// parent is missing or the tree is full.
    pub fn put(&mut self, path: &str, node: Node) -> bool {
        if path == "/" || !self.is_dir(parent(path)) {
            return false;
        }
        if !self.nodes.contains_key(path) && self.nodes.len() >= MAX_NODES {
            return false;
        }
        self.nodes.insert(path.to_owned(), node);
        true
    }

    /// Remove a file (DELE). False when it is not a file.
    pub fn remove_file(&mut self, path: &str) -> bool {
        if matches!(
            self.get(path),
            Some(Node {
                kind: Kind::File { .. },
                ..
            })
        ) {
            self.nodes.remove(path);
            return true;
        }
        false
    }

    /// Remove an empty directory (RMD). False when it is not one.
    pub fn remove_dir(&mut self, path: &str) -> bool {
        if path != "/" && self.is_dir(path) && self.children(path).is_empty() {
            self.nodes.remove(path);
            return true;
        }
        false
    }

    /// Move `from` (and everything under it) to `to`. False when `from` is
    /// missing, `to`'s parent is not a directory, or `to` is under `from`.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        if from == "/"
            || to == "/"
            || !self.nodes.contains_key(from)
            || !self.is_dir(parent(to))
            || to.starts_with(&format!("{from}/"))
        {
            return false;
        }
        let prefix = format!("{from}/");
        let moved: Vec<String> = self
            .nodes
            .keys()
            .filter(|k| *k == from || k.starts_with(&prefix))
            .cloned()
            .collect();
        for k in moved {
            if let Some(n) = self.nodes.remove(&k) {
                let new = format!("{to}{}", &k[from.len()..]);
                self.nodes.insert(new, n);
            }
        }
        true
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when only the root is there.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }
}

fn dir_node(mtime: DateTime<Utc>, owner: u32) -> Node {
    Node {
        kind: Kind::Dir,
        mtime,
        owner,
    }
}

/// The parent of a normalised absolute path (`/` for top-level entries).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a normalised path.
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Resolve `arg` (attacker bytes) against `cwd` into a normalised absolute
/// path; `None` when it is too long, too deep or not UTF-8 text.
pub fn resolve(cwd: &str, arg: &[u8]) -> Option<String> {
    let arg = std::str::from_utf8(arg).ok()?;
    if arg.len() > MAX_PATH || arg.contains('\0') {
        return None;
    }
    let arg = arg.strip_prefix('~').unwrap_or(arg);
    let mut parts: Vec<&str> = Vec::new();
    let start = if arg.starts_with('/') || arg.is_empty() && cwd.is_empty() {
        ""
    } else {
        cwd
    };
    for part in start.split('/').chain(arg.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => {
                parts.push(p);
                if parts.len() > MAX_DEPTH {
                    return None;
                }
            }
        }
    }
    let out = format!("/{}", parts.join("/"));
    (out.len() <= MAX_PATH).then_some(out)
}

/// One `ls -l` line as vsftpd prints it (no line ending).
pub fn list_line(name: &str, node: &Node, now: DateTime<Utc>) -> String {
    let (perms, links, size) = match &node.kind {
        Kind::Dir => ("drwxr-xr-x", 2, 4096),
        Kind::File { size, .. } => ("-rw-r--r--", 1, *size),
    };
    // Like ls: times within six months show the time, older ones the year.
    let recent = (now - node.mtime).num_days().abs() < 182;
    let date = if recent {
        node.mtime.format("%b %d %H:%M")
    } else {
        node.mtime.format("%b %d  %Y")
    };
    format!(
        "{perms} {links:>4} {owner:<8} {owner:<8} {size:>8} {date} {name}",
        owner = node.owner
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Tree {
        let t0 = DateTime::parse_from_rfc3339("2026-10-15T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Tree::new(["upload"], [("pub/README", b"hello\n".as_slice())], t0)
    }

    #[test]
    fn paths_normalise_and_stay_inside() {
        assert_eq!(resolve("/pub", b"../etc/./passwd").unwrap(), "/etc/passwd");
        assert_eq!(resolve("/pub", b"../../../..").unwrap(), "/");
        assert_eq!(resolve("/pub", b"/a//b/").unwrap(), "/a/b");
        assert_eq!(resolve("/pub", b"").unwrap(), "/pub");
        assert_eq!(resolve("/pub", b"~/x").unwrap(), "/x");
        assert_eq!(resolve("/", b"\xff"), None);
        assert_eq!(resolve("/", "a/".repeat(40).as_bytes()), None);
    }

    #[test]
    fn listing_looks_like_vsftpd() {
        let t = tree();
        let now = DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let names: Vec<&str> = t.children("/").iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["pub", "upload"]);
        let (name, node) = t.children("/pub")[0];
        assert_eq!(
            list_line(name, node, now),
            "-rw-r--r--    1 0        0               6 Oct 15 12:00 README"
        );
        let old = now + chrono::Duration::days(400);
        assert!(list_line(name, node, old).ends_with("Oct 15  2026 README"));
    }

    #[test]
    fn changes_are_checked() {
        let mut t = tree();
        let now = Utc::now();
        assert!(!t.put("/nodir/x", dir_node(now, 0)));
        assert!(t.put("/upload/x", dir_node(now, 0)));
        assert!(!t.remove_dir("/upload"));
        assert!(t.rename("/upload", "/up2"));
        assert!(t.is_dir("/up2/x"));
        assert!(!t.rename("/up2", "/up2/x/y"));
        assert!(t.remove_dir("/up2/x") && t.remove_dir("/up2"));
        assert!(t.remove_file("/pub/README") && !t.remove_file("/pub"));
    }
}
