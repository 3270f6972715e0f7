//! mirage-proto: codecs and parsers for the protocols mirage speaks.
//!
//! Pure functions over byte slices: no sockets, no tokio, no allocation ahead
//! of bytes actually received, a hard limit on every length, count and depth.
//! Attackers write the input, so every parser here has a fuzz target in
//! `fuzz/` and a property test beside it.
#![forbid(unsafe_code)]
pub mod detect;
pub mod ftp;
pub mod http;
pub mod mongodb;
pub mod mysql;
pub mod nflog;
pub mod relp;
pub mod resp;
pub mod rsync;
pub mod sftp;
pub mod shell;
pub mod sql_lex;
pub mod syslog;
pub mod telnet;
pub mod tls_hello;

/// Runs `target` on every file of the committed fuzz corpus
/// `fuzz/corpus/NAME`, which must not be empty: each parser's unit tests
/// replay the inputs its fuzz target starts from.
#[cfg(test)]
pub(crate) fn replay_fuzz_corpus(name: &str, target: impl Fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        target(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n > 0, "fuzz/corpus/{name} is empty");
}
