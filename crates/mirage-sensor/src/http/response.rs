//! Response heads and error pages as nginx 1.22 and Apache 2.4 write them:
//! the same header order and casing, the same `Date` format and the same
//! error-page bodies (nginx's `ngx_http_special_response.c` pages, Apache's
//! `ap_send_error_response` pages), checked against Debian 12's packages.

use chrono::{DateTime, Utc};

/// Which server the head imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// nginx (Debian 12: 1.22.1).
    Nginx,
    /// Apache httpd (Debian 12: 2.4.62).
    Apache,
}

/// The reason phrase the flavour writes in the status line.
pub fn reason(flavor: Flavor, status: u16) -> &'static str {
    match (flavor, status) {
        (_, 200) => "OK",
        (_, 301) => "Moved Permanently",
        (_, 302) => "Found",
        (_, 304) => "Not Modified",
        (_, 400) => "Bad Request",
        (_, 401) => "Unauthorized",
        (_, 403) => "Forbidden",
        (_, 404) => "Not Found",
        (Flavor::Nginx, 405) => "Not Allowed",
        (Flavor::Apache, 405) => "Method Not Allowed",
        (_, 408) => "Request Time-out",
        (Flavor::Nginx, 413) => "Request Entity Too Large",
        (Flavor::Apache, 413) => "Request Entity Too Large",
        (Flavor::Nginx, 414) => "Request-URI Too Large",
        (Flavor::Apache, 414) => "Request-URI Too Long",
        (_, 500) => "Internal Server Error",
        (_, 501) => "Not Implemented",
        (_, 505) => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// `Date` header value (IMF-fixdate).
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// A response to write.
#[derive(Debug, Clone)]
pub struct Page<'a> {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<&'a str>,
    /// Body (not written for HEAD, but counted in Content-Length).
    pub body: &'a [u8],
    /// `Last-Modified` and `ETag` for a static file.
    pub modified: Option<DateTime<Utc>>,
    /// Extra headers (Location, WWW-Authenticate, Set-Cookie, Allow …).
    pub extra: Vec<(&'a str, String)>,
}

impl<'a> Page<'a> {
    /// A page with a status, type and body.
    pub fn new(status: u16, content_type: &'a str, body: &'a [u8]) -> Self {
        Page {
            status,
            content_type: Some(content_type),
            body,
            modified: None,
            extra: Vec::new(),
        }
    }
}

/// Settings every response of one site shares.
#[derive(Debug, Clone)]
pub struct Writer {
    /// Flavour.
    pub flavor: Flavor,
    /// `Server` header value and error-page signature.
    pub server: String,
}

impl Writer {
    /// Write `page` as the whole response. `keep_alive` picks the
    /// `Connection` header; `head` omits the body.
    pub fn write(&self, page: &Page<'_>, keep_alive: bool, head: bool) -> Vec<u8> {
        let now = Utc::now();
        let mut o = Vec::with_capacity(256 + page.body.len());
        let st = page.status;
        let push = |o: &mut Vec<u8>, n: &str, v: &str| {
            o.extend_from_slice(n.as_bytes());
            o.extend_from_slice(b": ");
            o.extend_from_slice(v.as_bytes());
            o.extend_from_slice(b"\r\n");
        };
        o.extend_from_slice(format!("HTTP/1.1 {st} {}\r\n", reason(self.flavor, st)).as_bytes());
        let len = page.body.len().to_string();
        let etag = page
            .modified
            .map(|m| format!("\"{:x}-{:x}\"", m.timestamp(), page.body.len()));
        match self.flavor {
            Flavor::Nginx => {
                push(&mut o, "Server", &self.server);
                push(&mut o, "Date", &http_date(now));
                if let Some(ct) = page.content_type {
                    push(&mut o, "Content-Type", ct);
                }
                push(&mut o, "Content-Length", &len);
                if let Some(m) = page.modified {
                    push(&mut o, "Last-Modified", &http_date(m));
                }
                push(
                    &mut o,
                    "Connection",
                    if keep_alive { "keep-alive" } else { "close" },
                );
                for (n, v) in &page.extra {
                    push(&mut o, n, v);
                }
                if let Some(e) = &etag {
                    push(&mut o, "ETag", e);
                    push(&mut o, "Accept-Ranges", "bytes");
                }
            }
            Flavor::Apache => {
                push(&mut o, "Date", &http_date(now));
                push(&mut o, "Server", &self.server);
                for (n, v) in &page.extra {
                    push(&mut o, n, v);
                }
                if let Some(m) = page.modified {
                    push(&mut o, "Last-Modified", &http_date(m));
                }
                if let Some(e) = &etag {
                    push(&mut o, "ETag", e);
                    push(&mut o, "Accept-Ranges", "bytes");
                }
                push(&mut o, "Content-Length", &len);
                if keep_alive {
                    push(&mut o, "Keep-Alive", "timeout=5, max=100");
                    push(&mut o, "Connection", "Keep-Alive");
                } else {
                    push(&mut o, "Connection", "close");
                }
                if let Some(ct) = page.content_type {
                    push(&mut o, "Content-Type", ct);
                }
            }
        }
        o.extend_from_slice(b"\r\n");
        if !head {
            o.extend_from_slice(page.body);
        }
        o
    }

    /// The flavour's built-in error page for `status`. `method` and `host`
    /// fill Apache's texts.
    pub fn error_body(&self, status: u16, method: &str, host: &str, port: u16) -> Vec<u8> {
        match self.flavor {
            Flavor::Nginx => {
                let title = match status {
                    401 => "401 Authorization Required".to_owned(),
                    s => format!("{s} {}", reason(Flavor::Nginx, s)),
                };
                format!(
                    "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>{}</center>\r\n</body>\r\n</html>\r\n",
                    self.server
                )
                .into_bytes()
            }
            Flavor::Apache => {
                let r = reason(Flavor::Apache, status);
                let text = match status {
                    400 => "<p>Your browser sent a request that this server could not understand.<br />\n</p>".to_owned(),
                    401 => "<p>This server could not verify that you\nare authorized to access the document\nrequested.  Either you supplied the wrong\ncredentials (e.g., bad password), or your\nbrowser doesn't understand how to supply\nthe credentials required.</p>".to_owned(),
                    403 => "<p>You don't have permission to access this resource.</p>".to_owned(),
                    404 => "<p>The requested URL was not found on this server.</p>".to_owned(),
                    405 => format!("<p>The requested method {method} is not allowed for this URL.</p>"),
                    413 => format!("The requested resource does not allow request data with {method} requests, or the amount of data provided in\nthe request exceeds the capacity limit.\n"),
                    _ => "<p>The server encountered an internal error or\nmisconfiguration and was unable to complete\nyour request.</p>".to_owned(),
                };
                format!(
                    "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{status} {r}</title>\n</head><body>\n<h1>{r}</h1>\n{text}\n<hr>\n<address>{} Server at {host} Port {port}</address>\n</body></html>\n",
                    self.server
                )
                .into_bytes()
            }
        }
    }

    /// The content type of error pages.
    pub fn error_type(&self) -> &'static str {
        match self.flavor {
            Flavor::Nginx => "text/html",
            Flavor::Apache => "text/html; charset=iso-8859-1",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_404_is_byte_exact() {
        let w = Writer {
            flavor: Flavor::Nginx,
            server: "nginx/1.22.1".into(),
        };
        let body = w.error_body(404, "GET", "h", 80);
        assert_eq!(
            body,
            b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n"
        );
        let r = w.write(&Page::new(404, w.error_type(), &body), true, false);
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\nServer: nginx/1.22.1\r\nDate: "));
        assert!(text.contains(" GMT\r\nContent-Type: text/html\r\nContent-Length: 153\r\nConnection: keep-alive\r\n\r\n<html>"));
    }
}
