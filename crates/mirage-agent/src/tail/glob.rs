//! The small wildcard matcher used for `paths` like `/var/log/auth.log*`.
//!
//! Only `*` (any run of bytes) and `?` (one byte) in the file-name component
//! are supported; that covers log-file patterns without a dependency, and
//! matching bytes keeps non-UTF-8 file names working.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Whether `s` contains a wildcard this module understands.
pub(crate) fn has_wildcard(s: &OsStr) -> bool {
    s.as_bytes().iter().any(|&b| b == b'*' || b == b'?')
}

/// Whether `name` matches `pattern` (`*` and `?` wildcards, byte-wise).
///
/// Iterative with single backtrack point, so the cost is O(len(name) *
/// len(pattern)) at worst and never exponential.
pub(crate) fn matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The regular files (following symlinks) in the pattern's directory whose
/// names match, sorted so discovery order is stable between polls.
pub(crate) fn expand(pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name_pat)) = (pattern.parent(), pattern.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        // A directory that does not exist yet is like a file that does not
        // exist yet: nothing to follow until it appears.
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| matches(name_pat.as_bytes(), e.file_name().as_bytes()))
        .map(|e| e.path())
        .filter(|p| p.metadata().map(|m| m.is_file()).unwrap_or(false))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches(b"auth.log*", b"auth.log"));
        assert!(matches(b"auth.log*", b"auth.log.1"));
        assert!(!matches(b"auth.log*", b"xauth.log"));
        assert!(matches(b"*.log", b"mysql.log"));
        assert!(!matches(b"*.log", b"mysql.log.1"));
        assert!(matches(b"a?c", b"abc"));
        assert!(!matches(b"a?c", b"ac"));
        assert!(matches(b"*a*b*", b"xxaxxbxx"));
        assert!(!matches(b"*a*b", b"xxaxxbxxc"));
        assert!(matches(b"*", b""));
        assert!(!matches(b"", b"x"));
    }
}
