#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mirage_proto::sftp::fuzz_parse(data));
