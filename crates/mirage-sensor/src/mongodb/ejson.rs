//! Relaxed Extended JSON text (the configured fake documents) to BSON.
//!
//! Only what a config file needs: plain JSON plus `$oid`, `$date` (ISO-8601
//! or `$numberLong`), `$numberLong`, `$numberInt` and `$numberDouble`.

use mirage_proto::mongodb::{Document, Value};
use serde_json::Value as Json;

/// Parse one JSON object into a document; `None` when it is not an object.
pub fn parse_document(text: &str) -> Option<Document> {
    match serde_json::from_str::<Json>(text).ok()? {
        Json::Object(m) => Some(object(&m)),
        _ => None,
    }
}

fn object(m: &serde_json::Map<String, Json>) -> Document {
    Document(m.iter().map(|(k, v)| (k.clone(), value(v))).collect())
}

fn value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) if i32::try_from(i).is_ok() => Value::Int32(i as i32),
            Some(i) => Value::Int64(i),
            None => Value::Double(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(value).collect()),
        Json::Object(m) => special(m).unwrap_or_else(|| Value::Document(object(m))),
    }
}

fn special(m: &serde_json::Map<String, Json>) -> Option<Value> {
    if m.len() != 1 {
        return None;
    }
    let (k, v) = m.iter().next()?;
    match (k.as_str(), v) {
        ("$oid", Json::String(h)) if h.len() == 24 => {
            let mut id = [0u8; 12];
            for (i, b) in id.iter_mut().enumerate() {
                *b = u8::from_str_radix(h.get(i * 2..i * 2 + 2)?, 16).ok()?;
            }
            Some(Value::ObjectId(id))
        }
        ("$date", Json::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| Value::DateTime(d.timestamp_millis())),
        ("$date", Json::Object(inner)) => match inner.get("$numberLong") {
            Some(Json::String(n)) => n.parse().ok().map(Value::DateTime),
            _ => None,
        },
        ("$date", Json::Number(n)) => n.as_i64().map(Value::DateTime),
        ("$numberLong", Json::String(n)) => n.parse().ok().map(Value::Int64),
        ("$numberInt", Json::String(n)) => n.parse().ok().map(Value::Int32),
        ("$numberDouble", Json::String(n)) => n.parse().ok().map(Value::Double),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specials_and_plain_json() {
        let d = parse_document(
            r#"{"_id": {"$oid": "65a1c2d3e4f5a6b7c8d9e0f1"}, "n": 1, "big": 10000000000, "f": 1.5,
                "t": {"$date": "2024-01-12T09:30:00Z"}, "l": {"$numberLong": "7"}, "a": [null, true], "o": {"x": "y"}}"#,
        )
        .unwrap();
        assert_eq!(d.get("n"), Some(&Value::Int32(1)));
        assert_eq!(d.get("big"), Some(&Value::Int64(10_000_000_000)));
        assert_eq!(d.get("f"), Some(&Value::Double(1.5)));
        assert_eq!(d.get("t"), Some(&Value::DateTime(1_705_051_800_000)));
        assert_eq!(d.get("l"), Some(&Value::Int64(7)));
        assert!(matches!(d.get("_id"), Some(Value::ObjectId(id)) if id[0] == 0x65));
        assert!(parse_document("[1]").is_none());
    }
}
