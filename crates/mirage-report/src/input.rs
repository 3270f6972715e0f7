//! Inputs: files, directories of them, gzip, standard input, cut into
//! newline-aligned chunks for the worker threads.
//!
//! Memory stays flat whatever the input size: the reader holds one chunk
//! (4 MiB, or twice the line limit) while a bounded channel holds a few
//! more. A line longer than a whole chunk is never buffered: the reader
//! skips to its end and passes on only its length, so a worker reports it
//! as skipped ("line too long") with its line number.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

/// Where lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Standard input.
    Stdin,
    /// A file (plain or gzip, told apart by its first bytes).
    File(PathBuf),
}

impl Source {
    /// Name as reported.
    pub fn name(&self) -> String {
        match self {
            Source::Stdin => "-".to_owned(),
            Source::File(p) => p.display().to_string(),
        }
    }
}

/// A newline-aligned piece of one input.
#[derive(Debug)]
pub struct Chunk {
    /// Index of the input in the list of sources.
    pub input: u32,
    /// Sequence number within that input.
    pub seq: u64,
    /// Whole lines, each ending in `\n` except possibly the input's last.
    pub data: Vec<u8>,
    /// When set, this chunk stands for one line of this many bytes that was
    /// too long to hold; `data` is empty.
    pub oversize: Option<u64>,
    /// When set, the input ended in undecodable data (a truncated or
    /// corrupt gzip stream); counted as one skipped line after the last.
    pub corrupt: bool,
}

/// File names taken from directories: event files and logs, plain or gzip.
fn wanted(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let base = name.strip_suffix(".gz").unwrap_or(&name);
    !name.starts_with('.')
        && (base.ends_with(".jsonl") || base.ends_with(".json") || base.ends_with(".log"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() && wanted(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Expand the command line's paths: `-` is standard input, a directory
/// contributes its `*.jsonl`, `*.json`, `*.log` files (and their `.gz`),
/// recursively in name order. No paths means standard input.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<Source>, String> {
    if paths.is_empty() {
        return Ok(vec![Source::Stdin]);
    }
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(Source::Stdin);
        } else if p.is_dir() {
            let mut files = Vec::new();
            walk(p, &mut files).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            out.extend(files.into_iter().map(Source::File));
        } else if p.is_file() {
            out.push(Source::File(p.clone()));
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    Ok(out)
}

/// Total bytes of the file inputs (as stored, so compressed for gzip), or
/// `None` when standard input is among them.
pub fn total_size(sources: &[Source]) -> Option<u64> {
    let mut total = 0u64;
    for s in sources {
        match s {
            Source::Stdin => return None,
            Source::File(p) => total += std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        }
    }
    Some(total)
}

struct Counting<R> {
    inner: R,
    progress: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

fn open(source: &Source, progress: &ProgressBar) -> io::Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = match source {
        Source::Stdin => Box::new(io::stdin()),
        Source::File(p) => Box::new(File::open(p)?),
    };
    let mut buffered = BufReader::with_capacity(
        256 * 1024,
        Counting {
            inner: raw,
            progress: progress.clone(),
        },
    );
    let head = buffered.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buffered)))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Read one source into chunks handed to `send`; stops early when `send`
/// returns false.
pub fn read_source(
    source: &Source,
    input: u32,
    max_line: usize,
    progress: &ProgressBar,
    send: &mut dyn FnMut(Chunk) -> bool,
) -> io::Result<()> {
    let mut r = open(source, progress)?;
    chunk_reader(&mut r, input, max_line, send)
}

/// The chunking loop, over any reader (see the module docs).
pub fn chunk_reader(
    r: &mut dyn Read,
    input: u32,
    max_line: usize,
    send: &mut dyn FnMut(Chunk) -> bool,
) -> io::Result<()> {
    let mut last_seq = 0u64;
    let mut corrupt = false;
    let go_on = chunk_loop(
        r,
        input,
        max_line,
        &mut |c: Chunk| {
            last_seq = c.seq + 1;
            send(c)
        },
        &mut corrupt,
    )?;
    if corrupt && go_on {
        send(Chunk {
            input,
            seq: last_seq,
            data: Vec::new(),
            oversize: None,
            corrupt: true,
        });
    }
    Ok(())
}

/// Returns whether the receiver still wants chunks.
fn chunk_loop(
    r: &mut dyn Read,
    input: u32,
    max_line: usize,
    send: &mut dyn FnMut(Chunk) -> bool,
    corrupt_out: &mut bool,
) -> io::Result<bool> {
    let chunk_size = (4 << 20).max(max_line.saturating_mul(2)).max(2);
    let mut buf = vec![0u8; chunk_size];
    let mut len = 0usize;
    let mut seq = 0u64;
    let mut eof = false;
    let mut discarding: Option<u64> = None;
    let corrupt = corrupt_out;
    let mut emit = |data: Vec<u8>, oversize: Option<u64>, seq: &mut u64| {
        let c = Chunk {
            input,
            seq: *seq,
            data,
            oversize,
            corrupt: false,
        };
        *seq += 1;
        send(c)
    };
    loop {
        while len < chunk_size && !eof {
            match r.read(&mut buf[len..]) {
                Ok(0) => eof = true,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::InvalidData
                            | io::ErrorKind::InvalidInput
                            | io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    // Keep what decoded; the rest of this input is lost.
                    *corrupt = true;
                    eof = true;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(skipped) = discarding {
            match memchr::memchr(b'\n', &buf[..len]) {
                Some(p) => {
                    discarding = None;
                    buf.copy_within(p + 1..len, 0);
                    len -= p + 1;
                    if !emit(Vec::new(), Some(skipped + p as u64), &mut seq) {
                        return Ok(false);
                    }
                }
                None => {
                    discarding = Some(skipped + len as u64);
                    len = 0;
                    if eof {
                        let total = discarding.take().unwrap_or(0);
                        return Ok(emit(Vec::new(), Some(total), &mut seq));
                    }
                }
            }
            continue;
        }
        if len == 0 {
            return Ok(true);
        }
        let cut = if eof {
            Some(len)
        } else {
            memchr::memrchr(b'\n', &buf[..len]).map(|p| p + 1)
        };
        match cut {
            Some(cut) => {
                let mut next = vec![0u8; chunk_size];
                next[..len - cut].copy_from_slice(&buf[cut..len]);
                let mut data = std::mem::replace(&mut buf, next);
                data.truncate(cut);
                len -= cut;
                if !emit(data, None, &mut seq) {
                    return Ok(false);
                }
            }
            None => {
                // A full buffer without a newline: one line longer than any
                // limit we hold in memory.
                discarding = Some(len as u64);
                len = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8], max_line: usize) -> Vec<(Vec<u8>, Option<u64>)> {
        let mut out = Vec::new();
        let mut r = data;
        chunk_reader(&mut r, 0, max_line, &mut |c| {
            assert!(!c.corrupt);
            out.push((c.data, c.oversize));
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn small_input_is_one_chunk() {
        assert_eq!(chunks(b"a\nb\nc", 10), vec![(b"a\nb\nc".to_vec(), None)]);
        assert_eq!(chunks(b"", 10), vec![]);
    }

    #[test]
    fn oversize_line_is_measured_not_held() {
        let mut data = b"first\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 9 << 20));
        data.extend(b"\nlast\n");
        let got = chunks(&data, 1024);
        let lines: Vec<_> = got
            .iter()
            .map(|(d, o)| (String::from_utf8_lossy(d).into_owned(), *o))
            .collect();
        assert_eq!(
            lines,
            vec![
                ("first\n".to_owned(), None),
                (String::new(), Some(9 << 20)),
                ("last\n".to_owned(), None)
            ]
        );
    }

    #[test]
    fn truncated_gzip_keeps_what_decoded() {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for i in 0..20_000 {
            writeln!(enc, "line {i}").unwrap();
        }
        let gz = enc.finish().unwrap();
        let cut = &gz[..gz.len() / 2];
        let mut r = flate2::bufread::MultiGzDecoder::new(cut);
        let (mut lines, mut corrupt) = (0, 0);
        chunk_reader(&mut r, 0, 1024, &mut |c| {
            lines += c.data.iter().filter(|&&b| b == b'\n').count();
            corrupt += usize::from(c.corrupt);
            true
        })
        .unwrap();
        assert!(lines > 1000 && lines < 20_000, "{lines}");
        assert_eq!(corrupt, 1);
    }

    #[test]
    fn directory_filter() {
        assert!(wanted(Path::new("events-2026-01-01.jsonl")));
        assert!(wanted(Path::new("x/events.jsonl.gz")));
        assert!(wanted(Path::new("kern.log")));
        assert!(!wanted(Path::new("notes.txt")));
        assert!(!wanted(Path::new(".hidden.jsonl")));
    }
}
