//! Unit tests of the MongoDB codec: framing, sections, limits, BSON round
//! trips, Extended JSON, and the fuzz corpus replay.

use super::*;
use proptest::prelude::*;

/// nmap's `mongodb` probe (nmap-service-probes): OP_QUERY on `test.$cmd`
/// with `{serverStatus: 1.0}`.
const NMAP_PROBE: &[u8] = b"\x41\0\0\0\x3a\x30\0\0\xff\xff\xff\xff\xd4\x07\0\0\0\0\0\0test.$cmd\0\0\0\0\0\xff\xff\xff\xff\x1b\0\0\0\x01serverStatus\0\0\0\0\0\0\0\xf0\x3f\0";

fn msg(flags: u32, sections: &[u8]) -> Vec<u8> {
    let mut out = vec![0; 4];
    out.extend_from_slice(&7i32.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&opcode::MSG.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(sections);
    let n = out.len() as u32;
    out[..4].copy_from_slice(&n.to_le_bytes());
    out
}

fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
    let l = Limits::default();
    let h = next_message(bytes, l.max_message).unwrap().unwrap();
    parse_message(&h, bytes, &l)
}

#[test]
fn nmap_probe_is_an_op_query_for_server_status() {
    let Message::Query(q) = parse(NMAP_PROBE).unwrap() else {
        panic!()
    };
    assert_eq!(q.collection, "test.$cmd");
    assert_eq!(q.database(), "test");
    assert_eq!(q.n_return, -1);
    assert_eq!(q.command(), Document::new().with("serverStatus", 1.0));
}

#[test]
fn framing_waits_then_checks_length_first() {
    assert_eq!(next_message(&NMAP_PROBE[..3], 1024), Ok(None));
    assert_eq!(next_message(&NMAP_PROBE[..20], 1024), Ok(None));
    assert!(next_message(NMAP_PROBE, 1024).unwrap().is_some());
    // A declared 2 GiB or a negative length is refused at once.
    assert!(next_message(&[0xff, 0xff, 0xff, 0x7f], 1 << 20).is_err());
    assert!(next_message(&[0xff, 0xff, 0xff, 0xff], 1 << 20).is_err());
    assert!(next_message(&[15, 0, 0, 0], 1 << 20).is_err());
    assert_eq!(
        next_message(&[0, 0, 0, 1], 1024).unwrap_err().to_string(),
        "recv(): message msgLen 16777216 is invalid. Min 16 Max: 1024"
    );
}

#[test]
fn op_msg_body_sequence_and_checksum() {
    let body = Document::new().with("insert", "c").with("$db", "x");
    let d1 = Document::new().with("a", 1);
    let d2 = Document::new().with("b", "two");
    let mut seq = b"documents\0".to_vec();
    seq.extend(d1.to_bytes());
    seq.extend(d2.to_bytes());
    let mut sections = vec![0];
    sections.extend(body.to_bytes());
    sections.push(1);
    sections.extend(((seq.len() + 4) as i32).to_le_bytes());
    sections.extend(seq);
    sections.extend([1, 2, 3, 4]);
    let m = msg(msg_flags::CHECKSUM_PRESENT, &sections);
    let Message::Msg(op) = parse(&m).unwrap() else {
        panic!()
    };
    assert_eq!(op.checksum, Some(0x04030201));
    assert_eq!(op.sequences[0].1, vec![d1.clone(), d2.clone()]);
    let cmd = op.command();
    assert_eq!(
        cmd.get("documents"),
        Some(&Value::Array(vec![
            Value::Document(d1),
            Value::Document(d2)
        ]))
    );
    assert_eq!(
        relaxed_ejson(&cmd, 4096).0,
        r#"{"insert":"c","$db":"x","documents":[{"a":1},{"b":"two"}]}"#
    );
}

#[test]
fn op_msg_errors() {
    let body = Document::new().with("ping", 1).to_bytes();
    let mut s = vec![0];
    s.extend(&body);
    // Unknown required flag bit.
    assert!(matches!(
        parse(&msg(1 << 3, &s)),
        Err(ParseError::IllegalFlags(_))
    ));
    // Exhaust is optional: accepted.
    assert!(parse(&msg(msg_flags::EXHAUST_ALLOWED, &s)).is_ok());
    // Two bodies, none, unknown kind.
    let mut two = s.clone();
    two.extend(&s);
    assert!(matches!(
        parse(&msg(0, &two)),
        Err(ParseError::BodyCount(2))
    ));
    assert!(matches!(parse(&msg(0, &[])), Err(ParseError::BodyCount(0))));
    assert!(matches!(
        parse(&msg(0, &[9])),
        Err(ParseError::SectionKind(9))
    ));
    // A sequence whose size runs past the message.
    let mut bad = s.clone();
    bad.extend([1, 0xff, 0, 0, 0]);
    assert!(parse(&msg(0, &bad)).is_err());
    // Too many sections.
    let mut many = s.clone();
    for _ in 0..100 {
        many.extend([1, 6, 0, 0, 0, b'x', 0]);
    }
    assert!(matches!(
        parse(&msg(0, &many)),
        Err(ParseError::TooManySections)
    ));
}

#[test]
fn bson_round_trips_every_type() {
    let d = Document::new()
        .with("d", 1.5)
        .with("s", "héllo")
        .with("o", Document::new().with("x", Value::Null))
        .with("a", vec![Value::Int32(1), Value::from("two")])
        .with(
            "b",
            Value::Binary {
                subtype: 4,
                bytes: vec![1, 2, 3],
            },
        )
        .with("u", Value::Undefined)
        .with("id", Value::ObjectId([0xab; 12]))
        .with("t", true)
        .with("dt", Value::DateTime(1_700_000_000_123))
        .with(
            "re",
            Value::Regex {
                pattern: "^a".into(),
                options: "i".into(),
            },
        )
        .with(
            "p",
            Value::DbPointer {
                ns: "db.c".into(),
                id: [1; 12],
            },
        )
        .with("js", Value::JavaScript("f()".into()))
        .with("sym", Value::Symbol("s".into()))
        .with(
            "jss",
            Value::JavaScriptWithScope {
                code: "x".into(),
                scope: Document::new().with("x", 1),
            },
        )
        .with("i", 7)
        .with("ts", Value::Timestamp { t: 5, i: 6 })
        .with("l", 1i64 << 40)
        .with(
            "dec",
            Value::Decimal128(*b"\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\x40\x30"),
        )
        .with("min", Value::MinKey)
        .with("max", Value::MaxKey);
    let bytes = d.to_bytes();
    let (back, used) = parse_document(&bytes, &Limits::default()).unwrap();
    assert_eq!(used, bytes.len());
    assert_eq!(back, d);
    let (j, cut) = relaxed_ejson(&d, 100_000);
    assert!(!cut);
    assert_eq!(
        j,
        concat!(
            r#"{"d":1.5,"s":"héllo","o":{"x":null},"a":[1,"two"],"#,
            r#""b":{"$binary":{"base64":"AQID","subType":"04"}},"u":{"$undefined":true},"#,
            r#""id":{"$oid":"abababababababababababab"},"t":true,"dt":{"$date":"2023-11-14T22:13:20.123Z"},"#,
            r#""re":{"$regularExpression":{"pattern":"^a","options":"i"}},"#,
            r#""p":{"$dbPointer":{"$ref":"db.c","$id":{"$oid":"010101010101010101010101"}}},"#,
            r#""js":{"$code":"f()"},"sym":{"$symbol":"s"},"jss":{"$code":"x","$scope":{"x":1}},"#,
            r#""i":7,"ts":{"$timestamp":{"t":5,"i":6}},"l":1099511627776,"#,
            r#""dec":{"$numberDecimal":"1"},"min":{"$minKey":1},"max":{"$maxKey":1}}"#
        )
    );
}

#[test]
fn ejson_is_capped_and_escaped() {
    let d = Document::new()
        .with("k\"", "a\nb")
        .with("x", "y".repeat(100));
    assert_eq!(
        relaxed_ejson(&d, 1000).0,
        format!("{{\"k\\\"\":\"a\\nb\",\"x\":\"{}\"}}", "y".repeat(100))
    );
    let (s, cut) = relaxed_ejson(&d, 20);
    assert!(cut && s.len() <= 23, "{s}");
    let d = Document::new()
        .with("n", f64::NAN)
        .with("i", f64::NEG_INFINITY)
        .with("z", 2.0);
    assert_eq!(
        relaxed_ejson(&d, 1000).0,
        r#"{"n":{"$numberDouble":"NaN"},"i":{"$numberDouble":"-Infinity"},"z":2.0}"#
    );
    let d = Document::new().with("old", Value::DateTime(-1));
    assert_eq!(
        relaxed_ejson(&d, 1000).0,
        r#"{"old":{"$date":{"$numberLong":"-1"}}}"#
    );
}

#[test]
fn decimal128_strings() {
    let dec =
        |hi: u64, lo: u64| decimal128(&((u128::from(hi) << 64) | u128::from(lo)).to_le_bytes());
    assert_eq!(dec(0x3040_0000_0000_0000, 0), "0");
    assert_eq!(dec(0x3040_0000_0000_0000, 12345), "12345");
    assert_eq!(dec(0x303c_0000_0000_0000, 12345), "123.45");
    assert_eq!(dec(0xb040_0000_0000_0000, 1), "-1");
    assert_eq!(dec(0x3042_0000_0000_0000, 1), "1E+1");
    assert_eq!(dec(0x7c00_0000_0000_0000, 0), "NaN");
    assert_eq!(dec(0xf800_0000_0000_0000, 0), "-Infinity");
}

#[test]
fn limits_hold() {
    // Nesting deeper than the limit.
    let mut d = Document::new().with("x", 1);
    for _ in 0..150 {
        d = Document::new().with("a", d);
    }
    let bytes = d.to_bytes();
    assert_eq!(
        parse_document(&bytes, &Limits::default()),
        Err(BsonError::TooDeep(100))
    );
    // Too many elements.
    let mut wide = Document::new();
    for i in 0..50 {
        wide.push(&i.to_string(), Value::Null);
    }
    let l = Limits {
        max_elements: 10,
        ..Limits::default()
    };
    assert_eq!(
        parse_document(&wide.to_bytes(), &l),
        Err(BsonError::TooManyElements)
    );
    // Sizes that lie.
    let mut b = Document::new().with("s", "abc").to_bytes();
    b[0] = 200;
    assert!(matches!(
        parse_document(&b, &Limits::default()),
        Err(BsonError::BadSize(200))
    ));
    let mut b = Document::new().with("s", "abc").to_bytes();
    b[7] = 0x7f; // the string length
    assert!(parse_document(&b, &Limits::default()).is_err());
    let mut b = Document::new().with("s", "abc").to_bytes();
    b[4] = 0x42; // unknown type
    assert_eq!(
        parse_document(&b, &Limits::default()),
        Err(BsonError::BadType(0x42))
    );
    assert!(parse_document(&[5, 0, 0, 0, 1], &Limits::default()).is_err());
    assert!(parse_document(&[5, 0, 0, 0, 0], &Limits::default()).is_ok());
}

#[test]
fn replies_frame_correctly() {
    let body = Document::new().with("ok", 1.0);
    let r = encode_op_msg(5, 7, 0, &body);
    let h = next_message(&r, 1024).unwrap().unwrap();
    assert_eq!(
        (h.length, h.request_id, h.response_to, h.op_code),
        (r.len(), 5, 7, opcode::MSG)
    );
    let Message::Msg(m) = parse_message(&h, &r, &Limits::default()).unwrap() else {
        panic!()
    };
    assert_eq!(m.body, body);
    let r = encode_op_reply(5, 7, REPLY_AWAIT_CAPABLE, std::slice::from_ref(&body));
    assert_eq!(&r[12..16], &[1, 0, 0, 0]);
    assert_eq!(&r[16..20], &[8, 0, 0, 0]);
    assert_eq!(&r[32..36], &[1, 0, 0, 0]);
    assert_eq!(
        parse_document(&r[36..], &Limits::default()).unwrap().0,
        body
    );
}

#[test]
fn iso_dates() {
    assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(iso8601(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
}

/// Replays the committed fuzz corpus (and any crash inputs saved there).
#[test]
fn fuzz_corpus_replays() {
    crate::replay_fuzz_corpus("mongodb", fuzz_parse);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_parse(&data);
    }

    #[test]
    fn mutated_messages_never_panic(i in 0usize..64, b in any::<u8>()) {
        let mut m = NMAP_PROBE.to_vec();
        let at = i % m.len();
        m[at] = b;
        fuzz_parse(&m);
    }
}
