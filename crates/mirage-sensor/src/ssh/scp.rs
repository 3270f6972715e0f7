//! The receiving side of the classic scp protocol (`scp -t DIR`, what
//! `scp -O` and most bots speak): `C<mode> <size> <name>\n` headers, the
//! file bytes, a NUL after each, `D`/`E` for directories and `T` for
//! times, each acknowledged with NUL. Sans-IO and bounded.

/// Largest file accepted; bigger gets scp's error and the transfer ends.
pub const MAX_SCP_FILE: u64 = 16 * 1024 * 1024;
/// Longest header line.
const MAX_HEADER: usize = 4096;

/// A file received completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The name from the header (as sent).
    pub name: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

#[derive(Debug)]
enum State {
    Header(Vec<u8>),
    Data {
        name: String,
        left: u64,
        data: Vec<u8>,
    },
    Trailer {
        name: String,
        data: Vec<u8>,
    },
    Done,
}

/// One scp sink.
#[derive(Debug)]
pub struct ScpSink {
    state: State,
}

/// What a chunk of input produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScpStep {
    /// Bytes to send back (acknowledgements, errors).
    pub reply: Vec<u8>,
    /// Files completed.
    pub files: Vec<Received>,
    /// The transfer is over (error or protocol violation).
    pub finished: bool,
}

impl Default for ScpSink {
    fn default() -> Self {
        ScpSink {
            state: State::Header(Vec::new()),
        }
    }
}

impl ScpSink {
    /// The first byte the sink sends (ready).
    pub const READY: &'static [u8] = b"\0";

    /// Feed bytes from the client.
    pub fn feed(&mut self, mut input: &[u8]) -> ScpStep {
        let mut step = ScpStep::default();
        while !input.is_empty() {
            match &mut self.state {
                State::Done => {
                    step.finished = true;
                    return step;
                }
                State::Header(line) => {
                    let Some(&b) = input.first() else { break };
                    input = &input[1..];
                    if b != b'\n' {
                        if line.len() >= MAX_HEADER {
                            step.reply
                                .extend_from_slice(b"\x02scp: protocol error: header too long\n");
                            self.state = State::Done;
                            step.finished = true;
                            return step;
                        }
                        line.push(b);
                        continue;
                    }
                    let l = std::mem::take(line);
                    match l.first() {
                        Some(b'C') => {
                            let text = String::from_utf8_lossy(&l[1..]).into_owned();
                            let mut parts = text.splitn(3, ' ');
                            let (_mode, size, name) = (parts.next(), parts.next(), parts.next());
                            let (Some(size), Some(name)) =
                                (size.and_then(|s| s.parse::<u64>().ok()), name)
                            else {
                                step.reply
                                    .extend_from_slice(b"\x02scp: protocol error: bad mode\n");
                                self.state = State::Done;
                                step.finished = true;
                                return step;
                            };
                            if size > MAX_SCP_FILE {
                                step.reply.extend_from_slice(
                                    format!("\x01scp: {name}: No space left on device\n")
                                        .as_bytes(),
                                );
                                self.state = State::Done;
                                step.finished = true;
                                return step;
                            }
                            step.reply.push(0);
                            let name = name.rsplit('/').next().unwrap_or(name).to_owned();
                            self.state = if size == 0 {
                                State::Trailer {
                                    name,
                                    data: Vec::new(),
                                }
                            } else {
                                State::Data {
                                    name,
                                    left: size,
                                    data: Vec::new(),
                                }
                            };
                        }
                        Some(b'D' | b'E' | b'T') => step.reply.push(0),
                        Some(1 | 2) => {
                            // A warning or error from the source: nothing to answer.
                        }
                        _ => {
                            step.reply.extend_from_slice(
                                b"\x02scp: protocol error: expected control record\n",
                            );
                            self.state = State::Done;
                            step.finished = true;
                            return step;
                        }
                    }
                }
                State::Data { name, left, data } => {
                    let n = (*left).min(input.len() as u64) as usize;
                    data.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::Trailer {
                            name: std::mem::take(name),
                            data: std::mem::take(data),
                        };
                    }
                }
                State::Trailer { name, data } => {
                    input = &input[1..];
                    step.files.push(Received {
                        name: std::mem::take(name),
                        data: std::mem::take(data),
                    });
                    step.reply.push(0);
                    self.state = State::Header(Vec::new());
                }
            }
        }
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receives_files_in_pieces() {
        let mut s = ScpSink::default();
        let r = s.feed(b"T1 0 1 0\nC0644 5 x.sh\nhel");
        assert_eq!(r.reply, b"\0\0");
        let r = s.feed(b"lo\0D0755 0 d\nC0600 0 empty\n\0E\n");
        assert_eq!(r.files.len(), 2);
        assert_eq!(
            r.files[0],
            Received {
                name: "x.sh".into(),
                data: b"hello".to_vec()
            }
        );
        assert_eq!(r.files[1].data, b"");
        assert_eq!(r.reply, b"\0\0\0\0\0");
        let r = ScpSink::default().feed(b"C0644 99999999999 big\n");
        assert!(r.finished && r.reply.starts_with(b"\x01scp: big"));
        assert!(ScpSink::default().feed(b"junk\n").finished);
    }
}
