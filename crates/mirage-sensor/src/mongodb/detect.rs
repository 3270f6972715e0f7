//! Recognising what attackers do to exposed MongoDB servers.
//!
//! The classic campaign (since 2017, still running): list the databases,
//! dump or just drop them, then insert one document — the ransom note —
//! into a new database or collection (`README`, `READ__ME_TO_RECOVER_YOUR_DATA`,
//! `WARNING`), naming a bitcoin address and an e-mail or Tox contact.
//! [`ransom_indicators`] scores a document for those traits.

use mirage_proto::mongodb::{Document, Value};

/// Words a ransom note uses, matched in lower-cased text.
const WORDS: &[&str] = &[
    "backup",
    "recover",
    "restore",
    "ransom",
    "bitcoin",
    "btc",
    "monero",
    "xmr",
    "your data",
    "your database",
    "pay",
    "tox",
    "decrypt",
    "dumped",
    "leaked",
];

/// What in a document looks like a ransom note: matched words, bitcoin
/// addresses and e-mail addresses (each list capped).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RansomIndicators {
    /// Ransom words found.
    pub words: Vec<String>,
    /// Bitcoin addresses found.
    pub btc_addresses: Vec<String>,
    /// E-mail addresses found.
    pub emails: Vec<String>,
}

impl RansomIndicators {
    /// Strong enough to call the document a ransom note: a payment means (a
    /// bitcoin address or the word bitcoin/BTC/monero) together with a way
    /// to get the data back or a contact.
    pub fn is_note(&self) -> bool {
        let pay = !self.btc_addresses.is_empty()
            || self
                .words
                .iter()
                .any(|w| matches!(w.as_str(), "bitcoin" | "btc" | "monero" | "xmr"));
        let recover = self.words.iter().any(|w| {
            matches!(
                w.as_str(),
                "backup" | "recover" | "restore" | "decrypt" | "your data" | "your database"
            )
        });
        pay && (recover || !self.emails.is_empty())
    }
}

/// Every string in `doc` (keys and values), joined, at most `cap` bytes.
fn texts(doc: &Document, out: &mut String, cap: usize) {
    for (k, v) in &doc.0 {
        if out.len() >= cap {
            return;
        }
        out.push_str(k);
        out.push(' ');
        value_texts(v, out, cap);
    }
}

fn value_texts(v: &Value, out: &mut String, cap: usize) {
    match v {
        Value::String(s) | Value::Symbol(s) => {
            let room = cap.saturating_sub(out.len());
            let mut end = s.len().min(room);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            out.push_str(&s[..end]);
            out.push(' ');
        }
        Value::Document(d) => texts(d, out, cap),
        Value::Array(a) => {
            for x in a {
                if out.len() >= cap {
                    return;
                }
                value_texts(x, out, cap);
            }
        }
        _ => {}
    }
}

/// Score a document for ransom-note traits.
pub fn ransom_indicators(doc: &Document) -> RansomIndicators {
    let mut text = String::new();
    texts(doc, &mut text, 64 * 1024);
    let lower = text.to_lowercase();
    let mut ind = RansomIndicators::default();
    for w in WORDS {
        let found = if w.len() <= 3 {
            // Short words only as whole words ("btc", "pay" not in "payload"…).
            lower
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|t| t == *w)
        } else {
            lower.contains(w)
        };
        if found {
            ind.words.push((*w).to_owned());
        }
    }
    for token in text.split(|c: char| c.is_whitespace() || ",;:()[]<>\"'".contains(c)) {
        let t = token.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if ind.btc_addresses.len() < 4 && is_btc_address(t) {
            ind.btc_addresses.push(t.to_owned());
        }
        if ind.emails.len() < 4 && is_email(t) {
            ind.emails.push(t.to_owned());
        }
    }
    ind
}

/// A legacy (base58, 1… or 3…) or bech32 (bc1…) bitcoin address, by shape.
pub fn is_btc_address(t: &str) -> bool {
    let b = t.as_bytes();
    if let Some(rest) = t.strip_prefix("bc1").or_else(|| t.strip_prefix("BC1")) {
        return (25..=62).contains(&rest.len())
            && (rest
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
                || rest
                    .bytes()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
    }
    (26..=35).contains(&b.len())
        && matches!(b[0], b'1' | b'3')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() && !matches!(c, b'0' | b'O' | b'I' | b'l'))
        && b.iter().any(|c| c.is_ascii_alphabetic())
}

/// `local@domain.tld`, by shape.
pub fn is_email(t: &str) -> bool {
    let Some((local, domain)) = t.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._%+-".contains(&c))
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
}

/// Server-side JavaScript in a command: `$where`, `$function`,
/// `$accumulator`, or code values (`mapReduce` functions are taken by the
/// caller, as `map` is an ordinary field name elsewhere). Returns the first
/// piece of code found.
pub fn javascript(doc: &Document, depth: usize) -> Option<String> {
    if depth > 16 {
        return None;
    }
    for (k, v) in &doc.0 {
        match (k.as_str(), v) {
            ("$where", Value::String(s)) => {
                return Some(s.clone());
            }
            (_, Value::JavaScript(s)) | (_, Value::JavaScriptWithScope { code: s, .. }) => {
                return Some(s.clone());
            }
            ("$function" | "$accumulator", Value::Document(d)) => {
                return d
                    .0
                    .iter()
                    .find_map(|(_, v)| match v {
                        Value::String(s) | Value::JavaScript(s) => Some(s.clone()),
                        _ => None,
                    })
                    .or(Some(String::new()));
            }
            (_, Value::Document(d)) => {
                if let Some(c) = javascript(d, depth + 1) {
                    return Some(c);
                }
            }
            (_, Value::Array(a)) => {
                for x in a {
                    if let Value::Document(d) = x
                        && let Some(c) = javascript(d, depth + 1)
                    {
                        return Some(c);
                    }
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_world_notes_are_recognised() {
        // Shapes of notes seen in the wild (addresses and contacts made up).
        let note = Document::new()
            .with("content", "All your data is backed up. You must pay 0.015 BTC to 1Kz6v4B5CawcnL8jrUvHsvzQv5Yq4fbsSv to recover it. After paying, send an email with your IP to recover@dbrecovery.example")
            .with("_id", Value::ObjectId([1; 12]));
        let ind = ransom_indicators(&note);
        assert!(ind.is_note(), "{ind:?}");
        assert_eq!(
            ind.btc_addresses,
            vec!["1Kz6v4B5CawcnL8jrUvHsvzQv5Yq4fbsSv"]
        );
        assert_eq!(ind.emails, vec!["recover@dbrecovery.example"]);
        let note2 = Document::new().with(
            "readme",
            Document::new()
                .with("msg", "Your DB is Backed up at our servers, to restore send 0.01 BTC to the address bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")
                .with("contact", "tox: 2A3B…"),
        );
        assert!(ransom_indicators(&note2).is_note());
        // An ordinary customer record is not a note.
        let plain = Document::new()
            .with("name", "Jane")
            .with("email", "jane@shop.example")
            .with("payload", "backup of settings");
        assert!(!ransom_indicators(&plain).is_note());
    }

    #[test]
    fn address_shapes() {
        assert!(is_btc_address("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"));
        assert!(!is_btc_address("30000000000000000000000000000"));
        assert!(!is_btc_address("hello"));
        assert!(is_email("a.b@c.io"));
        assert!(!is_email("@c.io") && !is_email("a@b"));
    }

    #[test]
    fn javascript_is_found() {
        let c = Document::new()
            .with("find", "c")
            .with("filter", Document::new().with("$where", "sleep(5000)"));
        assert_eq!(javascript(&c, 0).as_deref(), Some("sleep(5000)"));
        assert_eq!(javascript(&Document::new().with("find", "c"), 0), None);
        // A field named like a mapReduce option is data, not code.
        let doc = Document::new().with("insert", "c").with(
            "documents",
            vec![Value::Document(Document::new().with("map", "world"))],
        );
        assert_eq!(javascript(&doc, 0), None);
    }
}
