//! mirage-proto: codecs and parsers for the protocols mirage speaks.
//!
//! Pure functions over byte slices: no sockets, no tokio, no allocation ahead
//! of bytes actually received, a hard limit on every length, count and depth.
//! Attackers write the input, so every parser here has a fuzz target in
//! `fuzz/` and a property test beside it.
#![forbid(unsafe_code)]
// The panic-freedom lint set (issue 19): no parser may index, slice, cast
// or do arithmetic in a way that can panic, wrap or truncate unnoticed on
// attacker input, and CI's `clippy -D warnings` enforces it. Tests are
// exempt; the few scoped `#[allow]`s in the modules say why each cannot
// fail.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::cast_possible_truncation,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]
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

/// How many bytes of `whole` come before `rest`, a suffix of it (what a
/// parser that walks by splitting reports as consumed). Saturating: for a
/// suffix it is the plain difference, and it needs no `#[allow]`.
pub(crate) fn offset_of(whole: &[u8], rest: &[u8]) -> usize {
    whole.len().saturating_sub(rest.len())
}

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
