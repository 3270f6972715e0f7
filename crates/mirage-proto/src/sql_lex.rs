//! MySQL's lexical rules for the MySQL honeypot: quotes and their escapes,
//! back-quoted identifiers, `#`, `-- ` and `/* */` comments, executable
//! `/*! … */` comments (their content is tokenized, as MySQL runs it), hex
//! literals, system and user variables, operators.
//!
//! Attackers write the query text, so the tokenizer has hard limits (at
//! most [`MAX_TOKENS`] tokens, every token a span of the input) and a fuzz
//! target ([`fuzz_sql_lex`]).

/// Most tokens looked at in one query; the rest is kept in the event's raw
/// text but not interpreted.
pub const MAX_TOKENS: usize = 16 * 1024;

/// A lexical token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A bare word (keyword or identifier), as written.
    Word(String),
    /// A back-quoted identifier.
    Ident(String),
    /// A quoted string, unescaped.
    Str(Vec<u8>),
    /// A number, as written.
    Num(String),
    /// A hex literal (`0x…`, `X'…'`), decoded.
    Hex(Vec<u8>),
    /// `@@[scope.]name`, the name lower-cased.
    SysVar(String),
    /// `@name`.
    UserVar(String),
    /// Punctuation or an operator.
    Op(String),
}

/// A token and where it sits in the query text.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Byte offset of its start.
    pub start: usize,
    /// Byte offset just past its end.
    pub end: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Decode hex digits (an odd count takes a leading 0), as MySQL reads
/// `0x…` and `UNHEX()`; other bytes count as 0.
pub fn unhex(s: &[u8]) -> Vec<u8> {
    let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
    let mut out = Vec::with_capacity(s.len() / 2 + 1);
    let mut i = 0;
    if s.len() % 2 == 1 {
        out.push(digit(s[0]));
        i = 1;
    }
    while i + 1 < s.len() {
        out.push(digit(s[i]) << 4 | digit(s[i + 1]));
        i += 2;
    }
    out
}

/// Split `sql` into tokens (at most [`MAX_TOKENS`]), skipping comments and
/// whitespace. `/*! … */` comments are executable in MySQL: their content
/// is tokenized.
pub fn tokenize(sql: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0usize;
    let n = sql.len();
    let at = |j: usize| sql.get(j).copied().unwrap_or(0);
    while i < n && out.len() < MAX_TOKENS {
        let c = sql[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c => i += 1,
            b'#' => {
                while i < n && sql[i] != b'\n' {
                    i += 1;
                }
            }
            b'-' if at(i + 1) == b'-' && matches!(at(i + 2), b' ' | b'\t' | b'\r' | b'\n' | 0) => {
                while i < n && sql[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if at(i + 1) == b'*' => {
                if at(i + 2) == b'!' {
                    // Executable comment: skip the marker and version digits;
                    // the closing `*/` is skipped where it is met.
                    i += 3;
                    while i < n && sql[i].is_ascii_digit() {
                        i += 1;
                    }
                } else {
                    i += 2;
                    while i < n && !(sql[i] == b'*' && at(i + 1) == b'/') {
                        i += 1;
                    }
                    i = (i + 2).min(n);
                }
            }
            b'*' if at(i + 1) == b'/' => i += 2,
            b'\'' | b'"' => {
                let q = c;
                let mut s = Vec::new();
                i += 1;
                while i < n {
                    let b = sql[i];
                    if b == b'\\' && i + 1 < n {
                        // MySQL keeps the backslash of \% and \_ (LIKE escapes).
                        let e = sql[i + 1];
                        if e == b'%' || e == b'_' {
                            s.push(b'\\');
                        }
                        s.push(match e {
                            b'0' => 0,
                            b'b' => 8,
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'Z' => 26,
                            o => o,
                        });
                        i += 2;
                    } else if b == q && at(i + 1) == q {
                        s.push(q);
                        i += 2;
                    } else if b == q {
                        i += 1;
                        break;
                    } else {
                        s.push(b);
                        i += 1;
                    }
                }
                out.push(Token {
                    tok: Tok::Str(s),
                    start,
                    end: i,
                });
            }
            b'`' => {
                let mut s = Vec::new();
                i += 1;
                while i < n {
                    if sql[i] == b'`' && at(i + 1) == b'`' {
                        s.push(b'`');
                        i += 2;
                    } else if sql[i] == b'`' {
                        i += 1;
                        break;
                    } else {
                        s.push(sql[i]);
                        i += 1;
                    }
                }
                out.push(Token {
                    tok: Tok::Ident(String::from_utf8_lossy(&s).into_owned()),
                    start,
                    end: i,
                });
            }
            b'0' if matches!(at(i + 1), b'x' | b'X') && at(i + 2).is_ascii_hexdigit() => {
                i += 2;
                let s = i;
                while i < n && sql[i].is_ascii_hexdigit() {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Hex(unhex(&sql[s..i])),
                    start,
                    end: i,
                });
            }
            b'x' | b'X' if at(i + 1) == b'\'' => {
                i += 2;
                let s = i;
                while i < n && sql[i] != b'\'' {
                    i += 1;
                }
                let v = unhex(&sql[s..i]);
                i = (i + 1).min(n);
                out.push(Token {
                    tok: Tok::Hex(v),
                    start,
                    end: i,
                });
            }
            b'0'..=b'9' | b'.' if c != b'.' || at(i + 1).is_ascii_digit() => {
                while i < n && (sql[i].is_ascii_digit() || sql[i] == b'.') {
                    i += 1;
                }
                if matches!(at(i), b'e' | b'E')
                    && (at(i + 1).is_ascii_digit()
                        || (matches!(at(i + 1), b'+' | b'-') && at(i + 2).is_ascii_digit()))
                {
                    i += 2;
                    while i < n && sql[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                // `123abc` is an identifier.
                let word = i < n && is_word_byte(sql[i]);
                while i < n && is_word_byte(sql[i]) {
                    i += 1;
                }
                let text = String::from_utf8_lossy(&sql[start..i]).into_owned();
                let tok = if word {
                    Tok::Word(text)
                } else {
                    Tok::Num(text)
                };
                out.push(Token { tok, start, end: i });
            }
            b'@' => {
                let sys = at(i + 1) == b'@';
                i += if sys { 2 } else { 1 };
                let s = i;
                while i < n && (is_word_byte(sql[i]) || sql[i] == b'.') {
                    i += 1;
                }
                let name = String::from_utf8_lossy(&sql[s..i]).to_ascii_lowercase();
                let tok = if sys {
                    let name = name
                        .strip_prefix("session.")
                        .or_else(|| name.strip_prefix("global."))
                        .or_else(|| name.strip_prefix("local."))
                        .unwrap_or(&name)
                        .to_owned();
                    Tok::SysVar(name)
                } else {
                    Tok::UserVar(name)
                };
                out.push(Token { tok, start, end: i });
            }
            _ if is_word_byte(c) => {
                while i < n && is_word_byte(sql[i]) {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Word(String::from_utf8_lossy(&sql[start..i]).into_owned()),
                    start,
                    end: i,
                });
            }
            _ => {
                let two = [c, at(i + 1)];
                let op: &[u8] = match &two {
                    b"<=" | b">=" | b"<>" | b"!=" | b":=" | b"||" | b"&&" | b"<<" | b">>" => {
                        &sql[i..i + 2]
                    }
                    _ => &sql[i..i + 1],
                };
                i += op.len();
                out.push(Token {
                    tok: Tok::Op(String::from_utf8_lossy(op).into_owned()),
                    start,
                    end: i,
                });
            }
        }
    }
    out
}

/// The fuzz target: tokenize arbitrary bytes; never panics, stays within
/// [`MAX_TOKENS`], and every token is an ordered span of the input.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_sql_lex(data: &[u8]) {
    let toks = tokenize(data);
    assert!(toks.len() <= MAX_TOKENS);
    let mut last = 0;
    for t in &toks {
        assert!(t.start <= t.end && t.end <= data.len(), "{t:?}");
        assert!(t.start >= last, "tokens out of order: {t:?}");
        last = t.start;
    }
    let _ = unhex(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_comments_and_hex() {
        let t = tokenize(b"SELECT 'a''b' 0x41 @@version /*!50000 UNION*/ -- x\n#y\n`c`");
        let toks: Vec<&Tok> = t.iter().map(|t| &t.tok).collect();
        assert_eq!(toks[0], &Tok::Word("SELECT".into()));
        assert_eq!(toks[1], &Tok::Str(b"a'b".to_vec()));
        assert_eq!(toks[2], &Tok::Hex(b"A".to_vec()));
        assert_eq!(toks[3], &Tok::SysVar("version".into()));
        assert!(toks.contains(&&Tok::Word("UNION".into())), "{toks:?}");
        assert_eq!(toks.last(), Some(&&Tok::Ident("c".into())), "{toks:?}");
        assert!(
            !toks
                .iter()
                .any(|t| matches!(t, Tok::Word(w) if w == "x" || w == "y"))
        );
        assert_eq!(unhex(b"abc"), [0x0a, 0xbc]);
    }

    #[test]
    fn token_cap_holds() {
        let many = ",".repeat(MAX_TOKENS * 2);
        assert_eq!(tokenize(many.as_bytes()).len(), MAX_TOKENS);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            fuzz_sql_lex(&data);
        }
    }

    /// Replays the committed fuzz corpus.
    #[test]
    fn fuzz_corpus_replays() {
        crate::replay_fuzz_corpus("sql_lex", fuzz_sql_lex);
    }
}
