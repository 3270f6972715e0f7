//! The line editor of an interactive terminal (SSH pty, Telnet): echo,
//! backspace, Ctrl-C, Ctrl-D, Ctrl-U, CR/LF/CR-NUL line ends, and escape
//! sequences (arrow keys) swallowed. Bounded by [`MAX_LINE`].

use super::parse::MAX_LINE;

/// What a chunk of input produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Edited {
    /// Bytes to echo back to the terminal.
    pub echo: Vec<u8>,
    /// Complete lines, in order.
    pub lines: Vec<Vec<u8>>,
    /// Ctrl-C was pressed on a line (the line is dropped).
    pub interrupted: bool,
    /// Ctrl-D on an empty line.
    pub eof: bool,
}

/// Editing state.
#[derive(Debug, Default)]
pub struct LineEditor {
    buf: Vec<u8>,
    /// Inside an escape sequence: 1 after ESC, 2 after ESC [.
    esc: u8,
    last_cr: bool,
    /// Echo typed characters (off while a password is typed).
    pub echo: bool,
}

impl LineEditor {
    /// An editor that echoes.
    pub fn new() -> LineEditor {
        LineEditor {
            echo: true,
            ..LineEditor::default()
        }
    }

    /// Feed input bytes.
    pub fn feed(&mut self, input: &[u8]) -> Edited {
        let mut out = Edited::default();
        for &b in input {
            if self.esc == 1 {
                self.esc = if b == b'[' || b == b'O' { 2 } else { 0 };
                continue;
            }
            if self.esc == 2 {
                if (0x40..=0x7e).contains(&b) {
                    self.esc = 0;
                }
                continue;
            }
            let after_cr = std::mem::take(&mut self.last_cr);
            match b {
                b'\r' | b'\n' => {
                    if b == b'\n' && after_cr {
                        continue;
                    }
                    self.last_cr = b == b'\r';
                    out.echo.extend_from_slice(b"\r\n");
                    out.lines.push(std::mem::take(&mut self.buf));
                }
                0 if after_cr => {}
                0x03 => {
                    self.buf.clear();
                    out.echo.extend_from_slice(b"^C\r\n");
                    out.interrupted = true;
                    out.lines.push(Vec::new());
                }
                0x04 => {
                    if self.buf.is_empty() {
                        out.eof = true;
                        return out;
                    }
                }
                0x15 => {
                    if self.echo {
                        for _ in 0..self.buf.len() {
                            out.echo.extend_from_slice(b"\x08 \x08");
                        }
                    }
                    self.buf.clear();
                }
                0x7f | 0x08 => {
                    if self.buf.pop().is_some() && self.echo {
                        out.echo.extend_from_slice(b"\x08 \x08");
                    }
                }
                0x1b => self.esc = 1,
                b'\t' => {}
                b if b < 0x20 => {}
                b => {
                    if self.buf.len() < MAX_LINE {
                        self.buf.push(b);
                        if self.echo {
                            out.echo.push(b);
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_and_splits_lines() {
        let mut e = LineEditor::new();
        let r = e.feed(b"lsx\x7f -a\r\nid\x1b[A\r");
        assert_eq!(r.lines, vec![b"ls -a".to_vec(), b"id".to_vec()]);
        assert!(r.echo.starts_with(b"lsx\x08 \x08 -a\r\n"));
        let r = e.feed(b"\n\x04");
        assert!(r.lines.is_empty() && r.eof);
        e.echo = false;
        let r = e.feed(b"secret\r\0");
        assert_eq!(r.lines, vec![b"secret".to_vec()]);
        assert_eq!(r.echo, b"\r\n");
    }
}
