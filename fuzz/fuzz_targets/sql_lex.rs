#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mirage_proto::sql_lex::fuzz_sql_lex(data));
