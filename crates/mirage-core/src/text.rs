//! Attacker bytes as JSON text.
//!
//! Events are JSON, and JSON strings must be UTF-8, but attackers send
//! arbitrary bytes. Valid UTF-8 is kept as it is; every byte that is not part
//! of a valid UTF-8 sequence is written as `\xNN` (like Python's
//! `backslashreplace`). A literal backslash is left alone, so the mapping is
//! readable rather than reversible: where exact bytes matter, `payload`
//! events carry base64 and a sha256.

use serde::{Deserialize, Serialize};

/// Text taken from attacker bytes, escaped and capped at a length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct BytesText(pub String);

impl BytesText {
    /// Escape `bytes` (see the module docs), keeping at most `cap` input bytes.
    ///
    /// Returns the text and whether the input was cut.
    pub fn capped(bytes: &[u8], cap: usize) -> (Self, bool) {
        let cut = bytes.len() > cap;
        let take = if cut { &bytes[..cap] } else { bytes };
        (BytesText(escape_bytes(take)), cut)
    }

    /// Escape all of `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        BytesText(escape_bytes(bytes))
    }

    /// The escaped text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for BytesText {
    fn from(s: &str) -> Self {
        BytesText(s.to_owned())
    }
}

impl std::fmt::Display for BytesText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Escape bytes that are not valid UTF-8 as `\xNN`; keep valid UTF-8 as is.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_utf8_is_kept() {
        assert_eq!(escape_bytes("héllo *1\r\n".as_bytes()), "héllo *1\r\n");
    }

    #[test]
    fn invalid_bytes_are_escaped() {
        assert_eq!(escape_bytes(b"a\xff\xfeb\xc3"), "a\\xff\\xfeb\\xc3");
    }

    #[test]
    fn capped_reports_cut() {
        let (t, cut) = BytesText::capped(b"abcdef", 3);
        assert_eq!(t.as_str(), "abc");
        assert!(cut);
        let (t, cut) = BytesText::capped(b"abc", 3);
        assert_eq!(t.as_str(), "abc");
        assert!(!cut);
    }
}
