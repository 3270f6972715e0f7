#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mirage_proto::relp::fuzz_relp(data));
