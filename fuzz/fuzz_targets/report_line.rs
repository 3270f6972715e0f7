#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mirage_report::fuzz_line(data));
