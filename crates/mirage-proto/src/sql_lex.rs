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
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
            .unwrap_or(0)
    };
    // Pairs counted from the end leave the odd digit, if any, in front.
    let (odd, pairs) = s.as_rchunks::<2>();
    let mut out = Vec::with_capacity(s.len().div_ceil(2));
    out.extend(odd.iter().map(|&c| digit(c)));
    out.extend(pairs.iter().map(|&[hi, lo]| digit(hi) << 4 | digit(lo)));
    out
}

/// The tokenizer's position in the query text. Reads past the end find
/// nothing (`get`) or 0 (`at`); moves stop at the end.
struct Cursor<'a> {
    sql: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    /// The byte `k` ahead of the position, if there is one.
    fn get(&self, k: usize) -> Option<u8> {
        self.sql.get(self.i..)?.get(k).copied()
    }

    /// The byte `k` ahead of the position, or 0 past the end.
    fn at(&self, k: usize) -> u8 {
        self.get(k).unwrap_or(0)
    }

    /// Move `k` bytes on, or to the end if fewer are left (where an
    /// unterminated `/* …` or `X'…` ends).
    fn bump(&mut self, k: usize) {
        // Never saturates: a slice is at most isize::MAX bytes long.
        self.i = self.i.saturating_add(k).min(self.sql.len());
    }

    /// Move past the bytes `keep` accepts.
    fn skip_while(&mut self, keep: impl Fn(u8) -> bool) {
        let rest = self.sql.get(self.i..).unwrap_or_default();
        self.bump(rest.iter().take_while(|&&b| keep(b)).count());
    }

    /// The text from `start` up to the position.
    fn since(&self, start: usize) -> &'a [u8] {
        self.sql.get(start..self.i).unwrap_or_default()
    }
}

/// Split `sql` into tokens (at most [`MAX_TOKENS`]), skipping comments and
/// whitespace. `/*! … */` comments are executable in MySQL: their content
/// is tokenized.
pub fn tokenize(sql: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut cur = Cursor { sql, i: 0 };
    while let Some(c) = cur.get(0)
        && out.len() < MAX_TOKENS
    {
        let start = cur.i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c => cur.bump(1),
            b'#' => cur.skip_while(|b| b != b'\n'),
            b'-' if cur.at(1) == b'-' && matches!(cur.at(2), b' ' | b'\t' | b'\r' | b'\n' | 0) => {
                cur.skip_while(|b| b != b'\n');
            }
            b'/' if cur.at(1) == b'*' => {
                if cur.at(2) == b'!' {
                    // Executable comment: skip the marker and version digits;
                    // the closing `*/` is skipped where it is met.
                    cur.bump(3);
                    cur.skip_while(|b| b.is_ascii_digit());
                } else {
                    cur.bump(2);
                    while let Some(b) = cur.get(0)
                        && !(b == b'*' && cur.at(1) == b'/')
                    {
                        cur.bump(1);
                    }
                    cur.bump(2);
                }
            }
            b'*' if cur.at(1) == b'/' => cur.bump(2),
            b'\'' | b'"' => {
                let q = c;
                let mut s = Vec::new();
                cur.bump(1);
                while let Some(b) = cur.get(0) {
                    if b == b'\\'
                        && let Some(e) = cur.get(1)
                    {
                        // MySQL keeps the backslash of \% and \_ (LIKE escapes).
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
                        cur.bump(2);
                    } else if b == q && cur.at(1) == q {
                        s.push(q);
                        cur.bump(2);
                    } else if b == q {
                        cur.bump(1);
                        break;
                    } else {
                        s.push(b);
                        cur.bump(1);
                    }
                }
                out.push(Token {
                    tok: Tok::Str(s),
                    start,
                    end: cur.i,
                });
            }
            b'`' => {
                let mut s = Vec::new();
                cur.bump(1);
                while let Some(b) = cur.get(0) {
                    if b == b'`' && cur.at(1) == b'`' {
                        s.push(b'`');
                        cur.bump(2);
                    } else if b == b'`' {
                        cur.bump(1);
                        break;
                    } else {
                        s.push(b);
                        cur.bump(1);
                    }
                }
                out.push(Token {
                    tok: Tok::Ident(String::from_utf8_lossy(&s).into_owned()),
                    start,
                    end: cur.i,
                });
            }
            b'0' if matches!(cur.at(1), b'x' | b'X') && cur.at(2).is_ascii_hexdigit() => {
                cur.bump(2);
                let s = cur.i;
                cur.skip_while(|b| b.is_ascii_hexdigit());
                out.push(Token {
                    tok: Tok::Hex(unhex(cur.since(s))),
                    start,
                    end: cur.i,
                });
            }
            b'x' | b'X' if cur.at(1) == b'\'' => {
                cur.bump(2);
                let s = cur.i;
                cur.skip_while(|b| b != b'\'');
                let v = unhex(cur.since(s));
                cur.bump(1);
                out.push(Token {
                    tok: Tok::Hex(v),
                    start,
                    end: cur.i,
                });
            }
            b'0'..=b'9' | b'.' if c != b'.' || cur.at(1).is_ascii_digit() => {
                cur.skip_while(|b| b.is_ascii_digit() || b == b'.');
                if matches!(cur.at(0), b'e' | b'E')
                    && (cur.at(1).is_ascii_digit()
                        || (matches!(cur.at(1), b'+' | b'-') && cur.at(2).is_ascii_digit()))
                {
                    cur.bump(2);
                    cur.skip_while(|b| b.is_ascii_digit());
                }
                // `123abc` is an identifier.
                let word = cur.get(0).is_some_and(is_word_byte);
                cur.skip_while(is_word_byte);
                let text = String::from_utf8_lossy(cur.since(start)).into_owned();
                let tok = if word {
                    Tok::Word(text)
                } else {
                    Tok::Num(text)
                };
                out.push(Token {
                    tok,
                    start,
                    end: cur.i,
                });
            }
            b'@' => {
                let sys = cur.at(1) == b'@';
                cur.bump(if sys { 2 } else { 1 });
                let s = cur.i;
                cur.skip_while(|b| is_word_byte(b) || b == b'.');
                let name = String::from_utf8_lossy(cur.since(s)).to_ascii_lowercase();
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
                out.push(Token {
                    tok,
                    start,
                    end: cur.i,
                });
            }
            _ if is_word_byte(c) => {
                cur.skip_while(is_word_byte);
                out.push(Token {
                    tok: Tok::Word(String::from_utf8_lossy(cur.since(start)).into_owned()),
                    start,
                    end: cur.i,
                });
            }
            _ => {
                let two = [c, cur.at(1)];
                let len = match &two {
                    b"<=" | b">=" | b"<>" | b"!=" | b":=" | b"||" | b"&&" | b"<<" | b">>" => 2,
                    _ => 1,
                };
                cur.bump(len);
                out.push(Token {
                    tok: Tok::Op(String::from_utf8_lossy(cur.since(start)).into_owned()),
                    start,
                    end: cur.i,
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
