#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mirage_proto::tls_hello::fuzz_parse(data));
