//! The `http` service: a fake web site behind an nginx or Apache face.
//!
//! Pages come from the configured `root` directory (read once at start,
//! bounded, so no request ever touches the file system) or from built-in
//! templates: an intranet home page and a login form on every configured
//! login path. A POST to a login path is an `auth.attempt` (`http-form`)
//! answered with "Invalid username or password"; a Basic `Authorization`
//! header anywhere is an `auth.attempt` (`http-basic`), and the configured
//! Basic paths answer 401 with the realm. Everything else is the server's
//! own 404/405 page.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use mirage_config::HttpConfig;
use mirage_proto::http::{HttpLimits, Request, form_pairs, percent_decode};
use serde_json::{Map, json};

use super::response::{Flavor, Page, Writer};
use super::{Answer, Conn, CoreLimits, Credential, HttpApp};

/// Largest file loaded from `root`.
pub const MAX_FILE: u64 = 1024 * 1024;
/// Most bytes loaded from `root` in all.
pub const MAX_SITE: u64 = 16 * 1024 * 1024;
/// Most files loaded from `root`.
pub const MAX_FILES: usize = 4096;

/// One file of the site.
#[derive(Debug, Clone)]
struct File {
    body: Vec<u8>,
    content_type: &'static str,
    modified: DateTime<Utc>,
}

/// The fake site.
pub struct Site {
    cfg: HttpConfig,
    writer: Writer,
    files: HashMap<String, File>,
}

const INDEX: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<title>Intranet</title>
<style>body{font-family:Arial,Helvetica,sans-serif;margin:40px;color:#333}a{color:#0b5394}</style>
</head>
<body>
<h1>Intranet portal</h1>
<p>This system is for authorised staff only.</p>
<ul>
<li><a href=\"/login\">Sign in</a></li>
<li><a href=\"/admin\">Administration</a></li>
</ul>
</body>
</html>
";

fn login_page(action: &str, error: bool) -> String {
    let action = html_escape(action);
    let msg = if error {
        "<p class=\"error\">Invalid username or password.</p>\n"
    } else {
        ""
    };
    format!(
        "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<title>Sign in</title>
<style>body{{font-family:Arial,Helvetica,sans-serif;background:#f3f3f3}}form{{width:300px;margin:80px auto;padding:24px;background:#fff;border:1px solid #ddd}}input{{display:block;width:100%;margin:8px 0;padding:6px}}.error{{color:#b00}}</style>
</head>
<body>
<form id=\"login\" method=\"post\" action=\"{action}\">
<h2>Sign in</h2>
{msg}<label for=\"username\">Username</label>
<input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\">
<label for=\"password\">Password</label>
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\">
<input type=\"submit\" value=\"Sign in\">
</form>
</body>
</html>
"
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" => "application/javascript",
        "json" => "application/json",
        "txt" => "text/plain",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "xml" => "text/xml",
        _ => "application/octet-stream",
    }
}

/// Load `root` into memory: regular files only (symlinks are not
/// followed), within the caps.
fn load_root(root: &Path) -> anyhow::Result<HashMap<String, File>> {
    let mut files = HashMap::new();
    let mut total = 0u64;
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let url = format!("{prefix}/{name}");
            if ft.is_dir() {
                stack.push((entry.path(), url));
            } else if ft.is_file() {
                let meta = entry.metadata()?;
                if meta.len() > MAX_FILE
                    || total + meta.len() > MAX_SITE
                    || files.len() >= MAX_FILES
                {
                    tracing::warn!(file = %entry.path().display(), "skipped: over the site size caps");
                    continue;
                }
                let body = std::fs::read(entry.path())?;
                total += body.len() as u64;
                let modified = meta
                    .modified()
                    .map(DateTime::<Utc>::from)
                    .unwrap_or_else(|_| Utc::now());
                files.insert(
                    url,
                    File {
                        content_type: content_type(&name),
                        body,
                        modified,
                    },
                );
            }
        }
    }
    Ok(files)
}

impl Site {
    /// Build from configuration, loading `root` if set.
    pub fn new(cfg: HttpConfig) -> anyhow::Result<Site> {
        let flavor = if cfg.flavor == "apache" {
            Flavor::Apache
        } else {
            Flavor::Nginx
        };
        let writer = Writer {
            flavor,
            server: cfg.effective_server_header().to_owned(),
        };
        // Built-in pages look a few days old, not born at start.
        let started = Utc::now() - chrono::Duration::days(3);
        let files = if cfg.root.as_os_str().is_empty() {
            let mut m = HashMap::new();
            m.insert(
                "/index.html".to_owned(),
                File {
                    body: INDEX.as_bytes().to_vec(),
                    content_type: "text/html",
                    modified: started,
                },
            );
            m
        } else {
            load_root(&cfg.root)
                .map_err(|e| anyhow::anyhow!("services.http.root {}: {e}", cfg.root.display()))?
        };
        Ok(Site { cfg, writer, files })
    }

    fn error(
        &self,
        status: u16,
        req: &Request,
        keep: bool,
        conn: &Conn,
        extra: Vec<(&str, String)>,
    ) -> Answer {
        let host = req
            .header("host")
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .unwrap_or_else(|| conn.local.ip().to_string());
        let host = host.split(':').next().unwrap_or("").to_owned();
        let body =
            self.writer
                .error_body(status, &req.method, &html_escape(&host), conn.local.port());
        let mut page = Page::new(status, self.writer.error_type(), &body);
        page.extra = extra;
        Answer {
            bytes: self.writer.write(&page, keep, req.method == "HEAD"),
            status,
            ..Answer::default()
        }
    }

    fn is_login(&self, path: &str) -> bool {
        self.cfg.login_paths.iter().any(|p| p == path)
    }

    fn basic_protected(&self, path: &str) -> bool {
        self.cfg
            .basic_auth_paths
            .iter()
            .any(|p| path.starts_with(p.as_str()) || path == p.trim_end_matches('/'))
    }
}

/// Credentials from `Authorization: Basic …`.
fn basic_credential(req: &Request, path: &str) -> Option<Credential> {
    let v = req.header("authorization")?;
    let v = v.trim_ascii();
    if v.len() < 6 || !v[..6].eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(v[6..].trim_ascii())
        .ok()?;
    let (user, pass) = match decoded.iter().position(|&b| b == b':') {
        Some(i) => (decoded[..i].to_vec(), decoded[i + 1..].to_vec()),
        None => (decoded, Vec::new()),
    };
    let mut details = Map::new();
    details.insert("path".into(), json!(path));
    Some(Credential {
        method: "http-basic",
        username: user,
        password: pass,
        details,
    })
}

const USER_FIELDS: &[&[u8]] = &[
    b"username",
    b"user",
    b"login",
    b"email",
    b"log",
    b"usr",
    b"name",
    b"user_login",
    b"uname",
];
const PASS_FIELDS: &[&[u8]] = &[
    b"password",
    b"pass",
    b"pwd",
    b"passwd",
    b"user_password",
    b"pw",
];

/// Credentials from a posted form (urlencoded, or multipart read loosely).
fn form_credential(req: &Request, path: &str) -> Option<Credential> {
    let pairs = form_pairs(&req.body, 64);
    let find = |names: &[&[u8]]| {
        names.iter().find_map(|n| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(k, v)| (k.clone(), v.clone()))
        })
    };
    let user = find(USER_FIELDS);
    let pass = find(PASS_FIELDS);
    if user.is_none() && pass.is_none() {
        return None;
    }
    let mut details = Map::new();
    details.insert("path".into(), json!(path));
    let fields: Vec<String> = pairs
        .iter()
        .take(16)
        .map(|(k, _)| String::from_utf8_lossy(&k[..k.len().min(64)]).into_owned())
        .collect();
    details.insert("fields".into(), json!(fields));
    Some(Credential {
        method: "http-form",
        username: user.map(|u| u.1).unwrap_or_default(),
        password: pass.map(|p| p.1).unwrap_or_default(),
        details,
    })
}

impl HttpApp for Site {
    fn service(&self) -> &str {
        "http"
    }

    fn limits(&self) -> CoreLimits {
        CoreLimits {
            parse: HttpLimits {
                max_head: self.cfg.max_header_bytes,
                max_headers: self.cfg.max_headers,
                max_body: self.cfg.max_body_bytes,
            },
            body_capture: self.cfg.body_capture_bytes,
            request_timeout: std::time::Duration::from_secs(self.cfg.request_timeout_secs),
            keepalive_requests: self.cfg.keepalive_requests,
        }
    }

    fn handle(&self, req: &Request, keep: bool, conn: &Conn) -> Answer {
        let raw_path = req.path();
        // Absolute-form targets (proxy probes) are served by their path.
        let raw_path = match raw_path.windows(3).position(|w| w == b"://") {
            Some(i) => {
                let rest = &raw_path[i + 3..];
                rest.iter()
                    .position(|&b| b == b'/')
                    .map_or(&b"/"[..], |j| &rest[j..])
            }
            None => raw_path,
        };
        let path = String::from_utf8_lossy(&percent_decode(raw_path)).into_owned();
        let head = req.method == "HEAD";
        let get = req.method == "GET" || head;
        let basic = basic_credential(req, &path);
        let mut answer = if self.basic_protected(&path) {
            let realm = format!("Basic realm=\"{}\"", self.cfg.basic_auth_realm);
            self.error(401, req, keep, conn, vec![("WWW-Authenticate", realm)])
        } else if self.is_login(&path) {
            if get {
                let body = login_page(&path, false);
                let page = Page::new(200, "text/html; charset=UTF-8", body.as_bytes());
                Answer {
                    bytes: self.writer.write(&page, keep, head),
                    status: 200,
                    ..Answer::default()
                }
            } else if req.method == "POST" {
                let cred = form_credential(req, &path);
                let body = login_page(&path, true);
                let page = Page::new(200, "text/html; charset=UTF-8", body.as_bytes());
                Answer {
                    bytes: self.writer.write(&page, keep, false),
                    status: 200,
                    credentials: cred.into_iter().collect(),
                    ..Answer::default()
                }
            } else {
                self.error(405, req, keep, conn, Vec::new())
            }
        } else {
            let lookup = if path.ends_with('/') {
                format!("{path}index.html")
            } else {
                path.clone()
            };
            // Paths with dot-dot segments never match a loaded file.
            match self.files.get(&lookup) {
                Some(f) if get => {
                    let mut page = Page::new(200, f.content_type, &f.body);
                    page.modified = Some(f.modified);
                    Answer {
                        bytes: self.writer.write(&page, keep, head),
                        status: 200,
                        ..Answer::default()
                    }
                }
                Some(_) => self.error(405, req, keep, conn, Vec::new()),
                None if !path.ends_with('/')
                    && self.files.contains_key(&format!("{path}/index.html")) =>
                {
                    let host = req
                        .header("host")
                        .map(|h| String::from_utf8_lossy(h).into_owned())
                        .unwrap_or_else(|| conn.local.to_string());
                    let loc = format!("http://{host}{path}/");
                    self.error(301, req, keep, conn, vec![("Location", loc)])
                }
                None => self.error(404, req, keep, conn, Vec::new()),
            }
        };
        answer.credentials.extend(basic);
        answer
    }

    fn refuse(&self, status: u16, conn: &Conn) -> Vec<u8> {
        let host = conn.local.ip().to_string();
        let body = self
            .writer
            .error_body(status, "GET", &host, conn.local.port());
        let page = Page::new(status, self.writer.error_type(), &body);
        self.writer.write(&page, false, false)
    }
}
