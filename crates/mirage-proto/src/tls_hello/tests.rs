//! Unit tests over hellos built here; real clients' hellos, checked
//! against tshark and a second JA4 implementation, are in
//! `tests/tls_fixtures.rs`.

use super::*;

fn vec8(body: &[u8]) -> Vec<u8> {
    let mut v = vec![body.len() as u8];
    v.extend_from_slice(body);
    v
}

fn vec16(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn u16s(vals: &[u16]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_be_bytes()).collect()
}

fn sni(name: &[u8]) -> (u16, Vec<u8>) {
    let mut entry = vec![0u8];
    entry.extend(vec16(name));
    (ext::SERVER_NAME, vec16(&entry))
}

fn alpn(protos: &[&[u8]]) -> (u16, Vec<u8>) {
    let list: Vec<u8> = protos.iter().flat_map(|p| vec8(p)).collect();
    (ext::ALPN, vec16(&list))
}

/// A ClientHello handshake message (header included).
fn message(legacy: u16, ciphers: &[u16], exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = legacy.to_be_bytes().to_vec();
    body.extend([7u8; 32]);
    body.extend(vec8(&[9u8; 32]));
    body.extend(vec16(&u16s(ciphers)));
    body.extend(vec8(&[0]));
    let e: Vec<u8> = exts
        .iter()
        .flat_map(|(t, d)| {
            let mut x = t.to_be_bytes().to_vec();
            x.extend(vec16(d));
            x
        })
        .collect();
    body.extend(vec16(&e));
    let mut msg = vec![1u8, 0, (body.len() >> 8) as u8, body.len() as u8];
    msg.extend(body);
    msg
}

/// `msg` in handshake records of at most `chunk` bytes each.
fn records(msg: &[u8], chunk: usize) -> Vec<u8> {
    msg.chunks(chunk)
        .flat_map(|c| {
            let mut r = vec![0x16, 0x03, 0x01];
            r.extend(vec16(c));
            r
        })
        .collect()
}

/// The example of FoxIO's `technical_details/JA4.md`: its ciphers,
/// extensions (in its order) and signature algorithms, with GREASE added
/// where Chrome puts it.
fn spec_example() -> Vec<u8> {
    let ciphers = [
        0x1a1a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
        0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
    ];
    let sigs = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ];
    let order = [
        0x2a2a, 0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023,
        0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015, 0x3a3a,
    ];
    let exts: Vec<(u16, Vec<u8>)> = order
        .iter()
        .map(|&t| match t {
            ext::SERVER_NAME => sni(b"Example.COM"),
            ext::ALPN => alpn(&[b"h2", b"http/1.1"]),
            ext::SIGNATURE_ALGORITHMS => (t, vec16(&u16s(&sigs))),
            ext::SUPPORTED_VERSIONS => (t, vec8(&u16s(&[0x5a5a, 0x0304, 0x0303]))),
            ext::SUPPORTED_GROUPS => (t, vec16(&u16s(&[0x4a4a, 0x001d, 0x0017, 0x0018]))),
            ext::EC_POINT_FORMATS => (t, vec8(&[0])),
            _ => (t, Vec::new()),
        })
        .collect();
    records(&message(0x0303, &ciphers, &exts), 16384)
}

#[test]
fn ja4_matches_the_spec_example() {
    let h = parse_client_hello(&spec_example()).unwrap();
    assert_eq!(h.ja4(), "t13d1516h2_8daaf6152771_e5627efa2ab1");
    assert_eq!(
        h.ja4_r(),
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_\
         0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_\
         0403,0804,0401,0503,0805,0501,0806,0601"
    );
    assert_eq!(h.sni(), Some("example.com"));
    assert_eq!(h.server_name_raw(), Some(&b"Example.COM"[..]));
    assert_eq!(h.alpn(), ["h2", "http/1.1"]);
    assert_eq!(h.record_version, 0x0301);
    assert_eq!(h.supported_versions, [0x5a5a, 0x0304, 0x0303]);
    assert_eq!(h.extensions.len(), 18, "GREASE kept in the raw list");
}

#[test]
fn ja3_drops_grease_and_keeps_wire_order() {
    let h = parse_client_hello(&spec_example()).unwrap();
    assert_eq!(
        h.ja3_string(),
        "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,\
         27-0-51-16-17513-23-45-13-5-35-18-43-65281-11-10-21,29-23-24,0"
    );
    // The MD5 itself is checked against tshark in tests/tls_fixtures.rs.
    assert_eq!(h.ja3_hash().len(), 32);
}

#[test]
fn hello_split_over_records_parses_the_same() {
    let whole = spec_example();
    let expect = parse_client_hello(&whole).unwrap();
    let msg = &whole[5..];
    for chunk in [1000, 100, 7] {
        let split = records(msg, chunk);
        if split.len() > MAX_WIRE_LEN || msg.len().div_ceil(chunk) > MAX_RECORDS {
            assert!(matches!(
                parse_client_hello(&split),
                Err(HelloError::Invalid(_))
            ));
            continue;
        }
        let h = parse_client_hello(&split).unwrap();
        assert_eq!(h.ja4(), expect.ja4());
        assert_eq!(h.wire_len, split.len());
        for cut in 0..split.len() {
            assert_eq!(
                parse_client_hello(&split[..cut]),
                Err(HelloError::Incomplete),
                "chunk {chunk} cut {cut}"
            );
        }
    }
}

#[test]
fn trailing_bytes_after_the_records_are_ignored() {
    let mut buf = spec_example();
    let len = buf.len();
    buf.extend_from_slice(b"\x17\x03\x03\x00\x05early");
    let h = parse_client_hello(&buf).unwrap();
    assert_eq!(h.wire_len, len);
}

#[test]
fn refuses_what_is_not_a_hello() {
    let bad = |b: &[u8]| match parse_client_hello(b) {
        Err(HelloError::Invalid(why)) => why,
        other => panic!("{other:?} for {b:02x?}"),
    };
    bad(b"GET / HTTP/1.1\r\n");
    bad(b"\x16\x02");
    bad(b"\x16\x03\x05");
    bad(b"\x80\x2e\x01\x00\x02"); // SSLv2-style hello
    bad(b"\x16\x03\x01\x00\x00"); // empty record
    bad(b"\x16\x03\x01\x40\x01"); // record over 2^14
    bad(b"\x16\x03\x01\x00\x04\x02\x00\x00\x00"); // a ServerHello
    // A declared 64 KiB hello is refused before its bytes arrive.
    assert_eq!(
        bad(b"\x16\x03\x01\x00\x04\x01\x01\x00\x00"),
        "ClientHello too large"
    );
    // An alert record in the middle of a fragmented hello.
    let msg = &spec_example()[5..];
    let mut split = records(&msg[..10], 10);
    split.extend_from_slice(b"\x15\x03\x01\x00\x02\x02\x28");
    assert_eq!(bad(&split), "other record inside the ClientHello");
    // A record that goes on after the hello ends.
    let mut long = msg.to_vec();
    long.extend_from_slice(b"\x14\x00\x00\x00");
    assert_eq!(
        bad(&records(&long, 16384)),
        "data after the ClientHello in its record"
    );
    // A byte after the extension block.
    let mut m = message(0x0303, &[0x1301], &[sni(b"a.test")]);
    m.push(0);
    m[3] += 1;
    assert_eq!(bad(&records(&m, 16384)), "bytes after the extensions");
    // An extension whose length overruns the block.
    let mut m = message(0x0303, &[0x1301], &[(0x0017, vec![])]);
    let n = m.len();
    m[n - 1] = 9;
    assert_eq!(bad(&records(&m, 16384)), "truncated extension");
}

#[test]
fn short_prefixes_ask_for_more() {
    for p in [
        &b""[..],
        b"\x16",
        b"\x16\x03",
        b"\x16\x03\x01\x02",
        b"\x16\x03\x01\x00\x10\x01\x00",
    ] {
        assert_eq!(
            parse_client_hello(p),
            Err(HelloError::Incomplete),
            "{p:02x?}"
        );
    }
    assert!(looks_like_tls(b"\x16\x03\x01"));
    assert!(looks_like_tls(b"\x16\x03\x04\x00"));
    assert!(!looks_like_tls(b"\x16\x03\x05"));
    assert!(!looks_like_tls(b"\x16\x03"));
    assert!(!looks_like_tls(b"GET"));
}

#[test]
fn hostile_server_names_are_not_names() {
    let name_of = |raw: &[u8]| {
        let m = message(0x0303, &[0x1301], &[sni(raw)]);
        let h = parse_client_hello(&records(&m, 16384)).unwrap();
        assert!(h.ja4().starts_with("t12d"), "SNI presence is what counts");
        assert!(h.server_name_raw().unwrap().len() <= MAX_SNI_RAW);
        h.sni().map(str::to_owned)
    };
    assert_eq!(
        name_of(b"WWW.Example.test.").as_deref(),
        Some("www.example.test")
    );
    assert_eq!(
        name_of(b"_dmarc.x-y.test").as_deref(),
        Some("_dmarc.x-y.test")
    );
    assert_eq!(name_of(b"10.0.0.1").as_deref(), Some("10.0.0.1"));
    for bad in [
        &b"a..b"[..],
        b".",
        b"",
        b"a b.test",
        b"evil.test\0.good.test",
        b"\xff\xfe.test",
        b"*.test",
        b"../../etc/passwd",
        b"<script>.test",
    ] {
        assert_eq!(name_of(bad), None, "{bad:02x?}");
    }
    assert_eq!(name_of(&[b'a'; 64]), None, "label over 63");
    let long: Vec<u8> = [b"a".repeat(60), b".".to_vec()].concat().repeat(5);
    assert_eq!(name_of(&long), None, "name over 253");
    assert_eq!(name_of(&[b'x'; 4000]), None);
}

#[test]
fn alpn_characters_follow_the_spec_table() {
    let ja4_alpn = |v: &[u8]| {
        let m = message(0x0303, &[0x1301], &[alpn(&[v, b"h2"])]);
        let h = parse_client_hello(&records(&m, 16384)).unwrap();
        h.ja4()[8..10].to_owned()
    };
    // The examples of technical_details/JA4.md, "ALPN Extension Value".
    assert_eq!(ja4_alpn(b"h2"), "h2");
    assert_eq!(ja4_alpn(b"http/1.1"), "h1");
    assert_eq!(ja4_alpn(b"a"), "aa");
    assert_eq!(ja4_alpn(&[0xab]), "ab");
    assert_eq!(ja4_alpn(&[0x20]), "20");
    assert_eq!(ja4_alpn(&[0xab, 0xcd]), "ad");
    assert_eq!(ja4_alpn(&[0x20, 0x61]), "21");
    assert_eq!(ja4_alpn(&[0x30, 0xab]), "3b");
    assert_eq!(ja4_alpn(&[0x61, 0x20]), "60");
    assert_eq!(ja4_alpn(&[0x30, 0x31, 0xab, 0xcd]), "3d");
    assert_eq!(ja4_alpn(&[0x30, 0xab, 0xcd, 0x31]), "01");
    assert_eq!(ja4_alpn(b""), "00");
    let m = message(0x0303, &[0x1301], &[]);
    assert_eq!(
        &parse_client_hello(&records(&m, 16384)).unwrap().ja4()[8..10],
        "00"
    );
}

#[test]
fn version_and_empty_lists() {
    // No extensions at all (an SSL 3.0-era hello): version from the
    // hello, `i`, and JA4's zero hashes.
    let mut m = message(0x0301, &[], &[]);
    let n = m.len();
    m.truncate(n - 2);
    m[3] -= 2;
    let h = parse_client_hello(&records(&m, 16384)).unwrap();
    assert_eq!(h.ja4(), "t10i000000_000000000000_000000000000");
    assert_eq!(h.ja3_string(), "769,,,,");
    // supported_versions holding only GREASE: unknown.
    let m = message(
        0x0303,
        &[0x1301],
        &[(ext::SUPPORTED_VERSIONS, vec8(&u16s(&[0x0a0a])))],
    );
    let h = parse_client_hello(&records(&m, 16384)).unwrap();
    assert!(h.ja4().starts_with("t00i0101"), "{}", h.ja4());
    // More than 99 ciphers count as 99.
    let many: Vec<u16> = (1..=150).collect();
    let h = parse_client_hello(&records(&message(0x0303, &many, &[]), 16384)).unwrap();
    assert!(h.ja4().starts_with("t12i9900"));
}

#[test]
fn grease_values() {
    let all: Vec<u16> = (0..=u16::MAX).filter(|v| is_grease(*v)).collect();
    assert_eq!(all.len(), 16);
    assert_eq!(all[0], 0x0a0a);
    assert_eq!(all[15], 0xfafa);
}

/// Replays the committed fuzz corpus (and any crash inputs saved there).
#[test]
fn fuzz_corpus_replays() {
    crate::replay_fuzz_corpus("tls_hello", fuzz_parse);
}

proptest::proptest! {
    #[test]
    fn never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        fuzz_parse(&data);
    }

    #[test]
    fn mutated_hellos_never_panic(pos in 0usize..400, byte in proptest::prelude::any::<u8>(), cut in 0usize..400) {
        let mut b = spec_example();
        let p = pos % b.len();
        b[p] = byte;
        b.truncate(b.len() - cut.min(b.len()));
        fuzz_parse(&b);
    }
}
