//! Telnet command and option parsing for the Telnet honeypot (RFC 854/855), sans-IO and bounded:
//! the data stream is separated from `IAC` commands, option requests are
//! answered so negotiation always terminates (an option we did not ask
//! for is refused, one we asked for is acknowledged silently), and a
//! subnegotiation keeps at most [`MAX_SB`] bytes.

/// Interpret as command.
pub const IAC: u8 = 255;
/// DONT.
pub const DONT: u8 = 254;
/// DO.
pub const DO: u8 = 253;
/// WONT.
pub const WONT: u8 = 252;
/// WILL.
pub const WILL: u8 = 251;
/// Subnegotiation begin.
pub const SB: u8 = 250;
/// Subnegotiation end.
pub const SE: u8 = 240;
/// ECHO option.
pub const ECHO: u8 = 1;
/// SUPPRESS-GO-AHEAD.
pub const SGA: u8 = 3;
/// TERMINAL-TYPE.
pub const TTYPE: u8 = 24;
/// NAWS (window size).
pub const NAWS: u8 = 31;
/// TERMINAL-SPEED.
pub const TSPEED: u8 = 32;
/// X-DISPLAY-LOCATION.
pub const XDISPLOC: u8 = 35;
/// LINEMODE (RFC 1184).
pub const LINEMODE: u8 = 34;
/// NEW-ENVIRON.
pub const NEW_ENVIRON: u8 = 39;

/// Most bytes kept of one subnegotiation.
pub const MAX_SB: usize = 512;

/// What the client said besides data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelnetEvent {
    /// `IAC WILL/WONT/DO/DONT opt`.
    Option {
        /// WILL, WONT, DO or DONT.
        verb: u8,
        /// The option.
        opt: u8,
    },
    /// `IAC SB opt … IAC SE` (content capped at [`MAX_SB`]).
    Sub {
        /// The option.
        opt: u8,
        /// Its bytes (IAC IAC undoubled).
        data: Vec<u8>,
    },
    /// Another command (NOP, AYT, BRK, IP, …).
    Command(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    Iac,
    Verb(u8),
    SbOpt,
    Sb(u8),
    SbIac(u8),
}

/// The parser and option state of one connection.
#[derive(Debug)]
pub struct TelnetParser {
    state: State,
    sb: Vec<u8>,
    /// Options we sent DO for (the client may enable them).
    asked_do: u64,
    /// Options we sent WILL for.
    asked_will: u64,
}

/// The result of feeding bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Application data.
    pub data: Vec<u8>,
    /// Commands seen.
    pub events: Vec<TelnetEvent>,
    /// Bytes to send back (refusals).
    pub reply: Vec<u8>,
}

fn bit(opt: u8) -> u64 {
    1u64 << (opt % 64)
}

impl TelnetParser {
    /// A parser that already asked the client `DO` for `dos` and offered
    /// `WILL` for `wills`.
    pub fn new(dos: &[u8], wills: &[u8]) -> TelnetParser {
        TelnetParser {
            state: State::Data,
            sb: Vec::new(),
            asked_do: dos.iter().filter(|&&o| o < 64).fold(0, |a, &o| a | bit(o)),
            asked_will: wills
                .iter()
                .filter(|&&o| o < 64)
                .fold(0, |a, &o| a | bit(o)),
        }
    }

    /// Note that we (later) asked for an option.
    pub fn asked(&mut self, verb: u8, opt: u8) {
        if opt < 64 {
            match verb {
                DO => self.asked_do |= bit(opt),
                WILL => self.asked_will |= bit(opt),
                _ => {}
            }
        }
    }

    /// Forget that we asked for an option (the window for the answer has
    /// passed): a later offer is refused like any unsolicited one.
    pub fn forget(&mut self, verb: u8, opt: u8) {
        if opt < 64 {
            match verb {
                DO => self.asked_do &= !bit(opt),
                WILL => self.asked_will &= !bit(opt),
                _ => {}
            }
        }
    }

    /// Feed received bytes.
    pub fn feed(&mut self, input: &[u8]) -> Parsed {
        let mut out = Parsed::default();
        for &b in input {
            self.state = match self.state {
                State::Data if b == IAC => State::Iac,
                State::Data => {
                    out.data.push(b);
                    State::Data
                }
                State::Iac => match b {
                    IAC => {
                        out.data.push(IAC);
                        State::Data
                    }
                    WILL | WONT | DO | DONT => State::Verb(b),
                    SB => State::SbOpt,
                    c => {
                        out.events.push(TelnetEvent::Command(c));
                        State::Data
                    }
                },
                State::Verb(verb) => {
                    self.answer(verb, b, &mut out.reply);
                    out.events.push(TelnetEvent::Option { verb, opt: b });
                    State::Data
                }
                State::SbOpt => {
                    self.sb.clear();
                    State::Sb(b)
                }
                State::Sb(opt) if b == IAC => State::SbIac(opt),
                State::Sb(opt) => {
                    if self.sb.len() < MAX_SB {
                        self.sb.push(b);
                    }
                    State::Sb(opt)
                }
                State::SbIac(opt) => match b {
                    SE => {
                        out.events.push(TelnetEvent::Sub {
                            opt,
                            data: std::mem::take(&mut self.sb),
                        });
                        State::Data
                    }
                    IAC => {
                        if self.sb.len() < MAX_SB {
                            self.sb.push(IAC);
                        }
                        State::Sb(opt)
                    }
                    // A protocol error: end the subnegotiation here.
                    _ => State::Data,
                },
            };
        }
        out
    }

    /// Refuse what we did not ask for; acknowledge nothing we did (the
    /// request itself was the question), so no option loops.
    fn answer(&mut self, verb: u8, opt: u8, reply: &mut Vec<u8>) {
        let asked = |mask: u64| opt < 64 && mask & bit(opt) != 0;
        match verb {
            WILL if !asked(self.asked_do) => reply.extend_from_slice(&[IAC, DONT, opt]),
            DO if !asked(self.asked_will) => reply.extend_from_slice(&[IAC, WONT, opt]),
            WONT if asked(self.asked_do) => {
                self.asked_do &= !bit(opt);
            }
            DONT if asked(self.asked_will) => {
                self.asked_will &= !bit(opt);
            }
            _ => {}
        }
    }
}

/// Fuzz entry: feed the bytes in two chunks to parsers in two states.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_parse(data: &[u8]) {
    for (dos, wills) in [(&[][..], &[][..]), (&[TTYPE, NAWS][..], &[ECHO, SGA][..])] {
        let mut p = TelnetParser::new(dos, wills);
        let (a, b) = data.split_at(data.len() / 2);
        let (mut total, mut replies) = (0usize, 0usize);
        for part in [a, b] {
            let r = p.feed(part);
            total = total.saturating_add(r.data.len());
            // Each 3-byte refusal answers a 3-byte request (which may span chunks).
            replies = replies.saturating_add(r.reply.len());
            assert!(replies <= data.len());
            for e in &r.events {
                if let TelnetEvent::Sub { data, .. } = e {
                    assert!(data.len() <= MAX_SB);
                }
            }
        }
        assert!(total <= data.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays the committed fuzz corpus.
    #[test]
    fn fuzz_corpus_replays() {
        crate::replay_fuzz_corpus("telnet", fuzz_parse);
    }

    #[test]
    fn separates_data_commands_and_subnegotiation() {
        let mut p = TelnetParser::new(&[TTYPE], &[ECHO]);
        let r = p.feed(&[
            b'a', IAC, WILL, TTYPE, IAC, DO, ECHO, IAC, DO, 99, b'b', IAC, IAC,
        ]);
        assert_eq!(r.data, vec![b'a', b'b', IAC]);
        assert_eq!(r.reply, vec![IAC, WONT, 99]);
        assert_eq!(r.events.len(), 3);
        let r = p.feed(&[IAC, SB, TTYPE, 0, b'x', b't', IAC]);
        assert!(r.events.is_empty());
        // The pending IAC and this one are a literal 255 inside the SB.
        let r = p.feed(&[IAC]);
        assert!(r.events.is_empty());
        let r = p.feed(&[IAC, SE, b'z']);
        assert_eq!(
            r.events,
            vec![TelnetEvent::Sub {
                opt: TTYPE,
                data: vec![0, b'x', b't', IAC]
            }]
        );
        assert_eq!(r.data, b"z");
    }

    #[test]
    fn unsolicited_will_is_refused_and_sb_is_capped() {
        let mut p = TelnetParser::new(&[], &[]);
        assert_eq!(p.feed(&[IAC, WILL, NAWS]).reply, vec![IAC, DONT, NAWS]);
        let mut q = TelnetParser::new(&[LINEMODE], &[]);
        q.forget(DO, LINEMODE);
        assert_eq!(
            q.feed(&[IAC, WILL, LINEMODE]).reply,
            vec![IAC, DONT, LINEMODE]
        );
        let mut big = vec![IAC, SB, 1];
        big.extend(std::iter::repeat_n(7, 10_000));
        big.extend_from_slice(&[IAC, SE]);
        let r = p.feed(&big);
        let TelnetEvent::Sub { data, .. } = &r.events[0] else {
            panic!()
        };
        assert_eq!(data.len(), MAX_SB);
    }
}
