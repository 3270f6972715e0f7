//! A fast path for mirage event lines: one scan over a top-level JSON
//! object that picks out the fields the report needs without building
//! anything.
//!
//! It checks the object's structure (keys, separators, balanced nesting to
//! a depth limit, terminated strings, literal and number characters) and
//! the UTF-8 of the fields it returns, but not every detail of the
//! grammar inside values it skips. Lines it cannot handle exactly (escaped
//! characters in a needed field, tcppc-go sessions) are handed to the full
//! serde parser ([`Scan::Slow`]).

/// The fields of a mirage event line, as string contents without escapes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fields<'a> {
    /// `ts`.
    pub ts: Option<&'a str>,
    /// `src_ip`.
    pub src_ip: Option<&'a str>,
    /// `src_port`.
    pub src_port: Option<u16>,
    /// `dst_ip`.
    pub dst_ip: Option<&'a str>,
    /// `dst_port`.
    pub dst_port: Option<u16>,
    /// `service`.
    pub service: Option<&'a str>,
    /// `session`.
    pub session: Option<&'a str>,
    /// `kind`.
    pub kind: Option<&'a str>,
    /// `data_b64` (bytes: base64 decoding checks them, so no UTF-8 check).
    pub data_b64: Option<&'a [u8]>,
    /// `raw` (command line).
    pub raw: Option<&'a str>,
    /// `username`.
    pub username: Option<&'a str>,
    /// `password`.
    pub password: Option<&'a str>,
    /// `reason`.
    pub reason: Option<&'a str>,
    /// `summary`.
    pub summary: Option<&'a str>,
}

/// Outcome of a fast scan.
#[derive(Debug)]
pub enum Scan<'a> {
    /// The fields.
    Done(Fields<'a>),
    /// Valid-looking, but needs the full parser.
    Slow,
    /// Not a JSON object.
    Invalid,
}

const MAX_DEPTH: usize = 64;

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// After an opening quote: the content and whether it has escapes.
    #[inline]
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.i;
        let mut escaped = false;
        loop {
            let rest = self.b.get(self.i..)?;
            let p = memchr::memchr2(b'"', b'\\', rest)?;
            self.i += p;
            if self.b.get(self.i) == Some(&b'"') {
                let s = self.b.get(start..self.i)?;
                self.i += 1;
                return Some((s, escaped));
            }
            escaped = true;
            self.i += 2;
        }
    }

    fn skip_nested(&mut self) -> Option<()> {
        let mut stack = [0u8; MAX_DEPTH];
        let mut depth = 0usize;
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'{' | b'[' => {
                    *stack.get_mut(depth)? = if c == b'{' { b'}' } else { b']' };
                    depth += 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if stack.get(depth) != Some(&c) {
                        return None;
                    }
                    if depth == 0 {
                        return Some(());
                    }
                }
                b'"' => {
                    self.string()?;
                }
                _ => {}
            }
        }
    }

    fn scalar(&mut self) -> &'a [u8] {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.') {
                self.i += 1;
            } else {
                break;
            }
        }
        &self.b[start..self.i]
    }
}

fn port(v: &[u8]) -> Result<Option<u16>, ()> {
    if v == b"null" {
        return Ok(None);
    }
    if v.is_empty() || v.len() > 5 || !v.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    let n: u32 = v.iter().fold(0, |a, &d| a * 10 + u32::from(d - b'0'));
    u16::try_from(n).map(Some).map_err(|_| ())
}

fn scalar_ok(v: &[u8]) -> bool {
    match v.first() {
        Some(b't') => v == b"true",
        Some(b'f') => v == b"false",
        Some(b'n') => v == b"null",
        Some(c) if c.is_ascii_digit() || *c == b'-' => v
            .iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')),
        _ => false,
    }
}

/// Scan one line (see the module docs).
pub fn scan(line: &[u8]) -> Scan<'_> {
    match scan_inner(line) {
        Ok(f) => Scan::Done(f),
        Err(true) => Scan::Slow,
        Err(false) => Scan::Invalid,
    }
}

/// `Err(true)`: use the slow path; `Err(false)`: invalid.
fn scan_inner(line: &[u8]) -> Result<Fields<'_>, bool> {
    let mut c = Cursor { b: line, i: 0 };
    let mut f = Fields::default();
    c.ws();
    if c.peek() != Some(b'{') {
        return Err(false);
    }
    c.i += 1;
    c.ws();
    if c.peek() == Some(b'}') {
        c.i += 1;
    } else {
        loop {
            if c.peek() != Some(b'"') {
                return Err(false);
            }
            c.i += 1;
            let (key, key_escaped) = c.string().ok_or(false)?;
            if key_escaped {
                return Err(true);
            }
            c.ws();
            if c.peek() != Some(b':') {
                return Err(false);
            }
            c.i += 1;
            c.ws();
            let slot: Option<&mut Option<&str>> = match key {
                b"ts" => Some(&mut f.ts),
                b"src_ip" => Some(&mut f.src_ip),
                b"dst_ip" => Some(&mut f.dst_ip),
                b"service" => Some(&mut f.service),
                b"session" => Some(&mut f.session),
                b"kind" => Some(&mut f.kind),
                b"raw" => Some(&mut f.raw),
                b"username" => Some(&mut f.username),
                b"password" => Some(&mut f.password),
                b"reason" => Some(&mut f.reason),
                b"summary" => Some(&mut f.summary),
                b"flow" | b"payloads" | b"timestamp" => return Err(true),
                _ => None,
            };
            match c.peek() {
                Some(b'"') => {
                    c.i += 1;
                    let (s, escaped) = c.string().ok_or(false)?;
                    if key == b"data_b64" {
                        if escaped {
                            return Err(true);
                        }
                        f.data_b64 = Some(s);
                    } else if let Some(slot) = slot {
                        if escaped {
                            return Err(true);
                        }
                        *slot = Some(std::str::from_utf8(s).map_err(|_| false)?);
                    } else if matches!(key, b"src_port" | b"dst_port") {
                        return Err(false);
                    }
                }
                Some(b'{' | b'[') => {
                    if slot.is_some() || matches!(key, b"src_port" | b"dst_port" | b"data_b64") {
                        return Err(false);
                    }
                    c.skip_nested().ok_or(false)?;
                }
                Some(_) => {
                    let v = c.scalar();
                    if !scalar_ok(v) {
                        return Err(false);
                    }
                    match key {
                        b"src_port" => f.src_port = port(v).map_err(|_| false)?,
                        b"dst_port" => f.dst_port = port(v).map_err(|_| false)?,
                        b"data_b64" if v == b"null" => f.data_b64 = None,
                        b"data_b64" => return Err(false),
                        _ => {
                            if let Some(slot) = slot {
                                if v != b"null" {
                                    return Err(false);
                                }
                                *slot = None;
                            }
                        }
                    }
                }
                None => return Err(false),
            }
            c.ws();
            match c.peek() {
                Some(b',') => {
                    c.i += 1;
                    c.ws();
                }
                Some(b'}') => {
                    c.i += 1;
                    break;
                }
                _ => return Err(false),
            }
        }
    }
    c.ws();
    if c.i != line.len() {
        return Err(false);
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(s: &str) -> Fields<'_> {
        match scan(s.as_bytes()) {
            Scan::Done(f) => f,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn picks_fields() {
        let f = fields(
            r#"{"schema":1,"ts":"2026-11-21T11:09:34Z","src_ip":"1.2.3.4","src_port":5,"dst_port":null,"args":["a",{"b":[1,"]"]}],"ok":true,"x":-1.5e3,"kind":"command","raw":"GET a"}"#,
        );
        assert_eq!(f.ts, Some("2026-11-21T11:09:34Z"));
        assert_eq!(f.src_ip, Some("1.2.3.4"));
        assert_eq!(f.src_port, Some(5));
        assert_eq!(f.dst_port, None);
        assert_eq!(f.kind, Some("command"));
        assert_eq!(f.raw, Some("GET a"));
        assert!(matches!(scan(b" {} "), Scan::Done(_)));
    }

    #[test]
    fn escapes_and_tcppc_go_slow() {
        assert!(matches!(scan(br#"{"raw":"a\"b"}"#), Scan::Slow));
        assert!(matches!(
            scan(br#"{"other":"a\"b","ts":"x"}"#),
            Scan::Done(_)
        ));
        assert!(matches!(scan(br#"{"flow":{}}"#), Scan::Slow));
    }

    #[test]
    fn rejects_broken_objects() {
        for bad in [
            &br#"{"ts":"2026"#[..],
            br#"{"ts":"a",}"#,
            br#"{"ts" "a"}"#,
            br#"{"a":[1,2}"#,
            br#"{"a":{"b":1]}"#,
            br#"{"dst_port":70000}"#,
            br#"{"dst_port":"80"}"#,
            br#"{"src_port":-1}"#,
            br#"{"ts":5}"#,
            br#"{"a":tru}"#,
            br#"{"a":1} x"#,
            br#"{"a":"\"#,
            b"{\"ts\":\"\xff\"}",
            br#"[1]"#,
            b"",
        ] {
            assert!(
                matches!(scan(bad), Scan::Invalid),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(matches!(scan(deep.as_bytes()), Scan::Invalid));
    }
}
