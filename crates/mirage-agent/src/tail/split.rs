//! Cutting a byte stream into lines with a hard length cap.
//!
//! Pure and I/O-free so the awkward cases (a line split across reads, a line
//! of exactly the cap, a never-ending line) are unit-tested directly. Memory
//! is bounded by the cap: an over-long line is delivered truncated as soon as
//! the cap is reached, and its remainder is skipped up to the next newline.

/// A line cut from the stream, with the positions needed to acknowledge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawLine {
    /// Offset of the line's first byte.
    pub offset: u64,
    /// Content without the `\n`.
    pub bytes: Vec<u8>,
    /// Offset to resume at once this line is acknowledged.
    pub end: u64,
    /// Whether resuming at `end` lands inside this (truncated) line.
    pub mid_line: bool,
    /// Longer than the cap; `bytes` holds its head only.
    pub truncated: bool,
    /// No newline: the file ended (rotated away or truncated) mid-line.
    pub unterminated: bool,
}

#[derive(Debug)]
pub(crate) struct Splitter {
    max: usize,
    /// Bytes of the line being assembled (never more than `max`).
    buf: Vec<u8>,
    /// Offset of `buf[0]`.
    line_start: u64,
    /// Inside an over-long line whose head was already delivered.
    discarding: bool,
}

impl Splitter {
    /// A splitter whose next byte is at `offset`; `mid_line` resumes inside an
    /// over-long line (skip to the next newline).
    pub fn new(max: usize, offset: u64, mid_line: bool) -> Self {
        Self {
            max,
            buf: Vec::new(),
            line_start: offset,
            discarding: mid_line,
        }
    }

    /// Feeds `chunk`, which starts at byte `offset` of the file (the byte
    /// right after everything fed before).
    pub fn feed(&mut self, chunk: &[u8], offset: u64, out: &mut Vec<RawLine>) {
        let mut i = 0usize;
        while i < chunk.len() {
            let rest = &chunk[i..];
            let here = offset + i as u64;
            match rest.iter().position(|&b| b == b'\n') {
                Some(j) => {
                    let end = here + j as u64 + 1;
                    if !self.discarding {
                        let room = self.max - self.buf.len();
                        let take = j.min(room);
                        self.buf.extend_from_slice(&rest[..take]);
                        out.push(RawLine {
                            offset: self.line_start,
                            bytes: std::mem::take(&mut self.buf),
                            end,
                            mid_line: false,
                            truncated: j > room,
                            unterminated: false,
                        });
                    }
                    self.discarding = false;
                    self.line_start = end;
                    i += j + 1;
                }
                None => {
                    if !self.discarding {
                        let room = self.max - self.buf.len();
                        if rest.len() <= room {
                            self.buf.extend_from_slice(rest);
                        } else {
                            // Deliver the head now rather than buffer an
                            // unbounded line; the resume point is the first
                            // skipped byte, flagged as mid-line.
                            self.buf.extend_from_slice(&rest[..room]);
                            out.push(RawLine {
                                offset: self.line_start,
                                bytes: std::mem::take(&mut self.buf),
                                end: here + room as u64,
                                mid_line: true,
                                truncated: true,
                                unterminated: false,
                            });
                            self.discarding = true;
                        }
                    }
                    i = chunk.len();
                }
            }
        }
    }

    /// The held partial line, if any, as a final unterminated line ending at
    /// `end` (the file's last byte): used when a file will never grow again.
    pub fn flush(&mut self, end: u64) -> Option<RawLine> {
        // A skipped tail of a truncated line has nothing left to deliver.
        self.discarding = false;
        let offset = self.line_start;
        self.line_start = end;
        if self.buf.is_empty() {
            return None;
        }
        Some(RawLine {
            offset,
            bytes: std::mem::take(&mut self.buf),
            end,
            mid_line: false,
            truncated: false,
            unterminated: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(max: usize, chunks: &[&[u8]]) -> Vec<RawLine> {
        let mut s = Splitter::new(max, 0, false);
        let mut out = Vec::new();
        let mut off = 0u64;
        for c in chunks {
            s.feed(c, off, &mut out);
            off += c.len() as u64;
        }
        out
    }

    #[test]
    fn lines_across_chunks() {
        let out = run(100, &[b"ab", b"c\nde", b"\n\nf"]);
        let got: Vec<_> = out
            .iter()
            .map(|l| (l.offset, l.bytes.clone(), l.end))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, b"abc".to_vec(), 4),
                (4, b"de".to_vec(), 7),
                (7, b"".to_vec(), 8)
            ]
        );
    }

    #[test]
    fn exactly_the_cap_is_not_truncated() {
        let out = run(3, &[b"abc", b"\n"]);
        assert_eq!(out.len(), 1);
        assert!(!out[0].truncated);
        assert_eq!(out[0].bytes, b"abc");
    }

    #[test]
    fn long_line_truncated_once_then_skipped() {
        let out = run(3, &[b"abcd", b"efgh", b"ij\nxy\n"]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].bytes, b"abc");
        assert!(out[0].truncated && out[0].mid_line);
        assert_eq!(out[0].end, 3);
        assert_eq!((out[1].offset, out[1].bytes.as_slice()), (11, &b"xy"[..]));
        assert!(!out[1].truncated);
    }

    #[test]
    fn long_line_with_newline_in_same_chunk() {
        let out = run(3, &[b"abcdef\nok\n"]);
        assert_eq!(out[0].bytes, b"abc");
        assert!(out[0].truncated && !out[0].mid_line);
        assert_eq!(out[0].end, 7);
        assert_eq!(out[1].bytes, b"ok");
    }

    #[test]
    fn resume_mid_line_skips_to_newline() {
        let mut s = Splitter::new(3, 3, true);
        let mut out = Vec::new();
        s.feed(b"defgh\nok\n", 3, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].offset, out[0].bytes.as_slice()), (9, &b"ok"[..]));
    }

    #[test]
    fn flush_partial() {
        let mut s = Splitter::new(10, 0, false);
        let mut out = Vec::new();
        s.feed(b"a\nbc", 0, &mut out);
        let last = s.flush(4).expect("partial");
        assert_eq!(
            (last.offset, last.bytes.as_slice(), last.end),
            (2, &b"bc"[..], 4)
        );
        assert!(last.unterminated);
        assert!(s.flush(4).is_none());
    }
}
