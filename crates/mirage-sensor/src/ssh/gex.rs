//! Diffie-Hellman group exchange answered as OpenSSH's sshd answers it:
//! primes from an OpenSSH moduli file, the size picked by sshd's rule, and
//! sshd's fallback groups when the file has none that fit.
//!
//! russh's default answer (RFC 3526 group 16 for a client that prefers
//! 2048 bits) differs from sshd's (a 2048-bit prime from
//! `/etc/ssh/moduli`), and `ssh-audit` reports the group size, so the
//! default alone tells the honeypot apart.

use std::io::Read;
use std::path::Path;

use russh::kex::dh::groups::{DH_GROUP14, DH_GROUP16, DH_GROUP18, DhGroup, DhGroupUInt};

/// sshd's bounds on what a client may ask for (`DH_GRP_MIN`, `DH_GRP_MAX`).
const GROUP_MIN_BITS: usize = 2048;
const GROUP_MAX_BITS: usize = 8192;
/// Debian's file is about 570 KB; anything far larger is not a moduli file.
const MAX_FILE_BYTES: u64 = 8 << 20;
/// Moduli kept in memory: Debian ships about 420.
const MAX_PRIMES: usize = 4096;
/// moduli(5): type 2 is a safe prime; tests bit 0x01 marks a composite,
/// 0x02 only sieved (not a primality test).
const TYPE_SAFE: u32 = 2;
const TESTS_COMPOSITE: u32 = 0x01;
const TESTS_SIEVE: u32 = 0x02;

/// One usable prime of the moduli file.
struct Modulus {
    bits: usize,
    group: DhGroup,
}

/// The primes group exchange may answer with.
pub struct Moduli {
    primes: Vec<Modulus>,
}

impl Moduli {
    /// Read `path` as sshd does. A missing, unreadable or oversized file
    /// gives an empty list (every request then gets sshd's fallback); lines
    /// sshd would skip are skipped.
    pub fn load(path: &Path) -> Moduli {
        let mut text = String::new();
        let read = std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES).read_to_string(&mut text));
        if let Err(e) = read {
            tracing::info!(path = %path.display(), error = %e, "no SSH moduli file; group exchange uses sshd's fallback groups");
            return Moduli { primes: Vec::new() };
        }
        let primes: Vec<Modulus> = text
            .lines()
            .filter_map(parse_line)
            .take(MAX_PRIMES)
            .collect();
        if primes.is_empty() {
            tracing::info!(path = %path.display(), "no usable prime in the SSH moduli file; group exchange uses sshd's fallback groups");
        }
        Moduli { primes }
    }

    /// The group for a client's `SSH_MSG_KEX_DH_GEX_REQUEST` (min,
    /// preferred, max in bits), or None where sshd disconnects ("bad
    /// parameters"). Among primes within [min, max], sshd takes the
    /// smallest size above the preferred one, else the largest below it,
    /// and one prime of that size at random.
    pub fn choose(&self, min: usize, want: usize, max: usize) -> Option<DhGroup> {
        let min = min.max(GROUP_MIN_BITS);
        let max = max.min(GROUP_MAX_BITS);
        let want = want.clamp(GROUP_MIN_BITS, GROUP_MAX_BITS);
        if max < min || want < min || max < want {
            return None;
        }
        let mut best = 0;
        for m in self.primes.iter().filter(|m| (min..=max).contains(&m.bits)) {
            if (m.bits > want && m.bits < best) || (m.bits > best && best < want) {
                best = m.bits;
            }
        }
        let fitting: Vec<&Modulus> = self.primes.iter().filter(|m| m.bits == best).collect();
        if fitting.is_empty() {
            return Some(fallback(max));
        }
        let pick = rand::random_range(0..fitting.len());
        fitting.get(pick).map(|m| m.group.clone())
    }
}

/// sshd's `dh_new_group_fallback`: the RFC 3526 group for the client's
/// maximum.
fn fallback(max: usize) -> DhGroup {
    if max < 3072 {
        DH_GROUP14
    } else if max < 6144 {
        DH_GROUP16
    } else {
        DH_GROUP18
    }
}

/// One line of moduli(5): `time type tests trials size generator modulus`,
/// size being the bit length minus one. None for comments and for lines
/// sshd's `parse_prime` refuses.
fn parse_line(line: &str) -> Option<Modulus> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let f: Vec<&str> = line.split_whitespace().collect();
    let [_time, kind, tests, _trials, size, generator, modulus] = f.as_slice() else {
        return None;
    };
    let kind: u32 = kind.parse().ok()?;
    let tests: u32 = tests.parse().ok()?;
    if kind != TYPE_SAFE || tests & TESTS_COMPOSITE != 0 || tests & !TESTS_SIEVE == 0 {
        return None;
    }
    let bits = size.parse::<usize>().ok()?.checked_add(1)?;
    let prime = hex_bytes(modulus)?;
    let generator = hex_bytes(generator)?;
    if bit_length(&prime) != bits || bit_length(&generator) < 2 {
        return None;
    }
    Some(Modulus {
        bits,
        group: DhGroup {
            prime: DhGroupUInt::Owned(prime),
            generator: DhGroupUInt::Owned(generator),
        },
    })
}

/// Big-endian bytes of a hex number (an odd digit count is left-padded).
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s
        .chars()
        .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect::<Option<_>>()?;
    if digits.is_empty() {
        return None;
    }
    let pad = digits.len() % 2;
    let mut out = Vec::with_capacity(digits.len() / 2 + pad);
    let mut padded = std::iter::repeat_n(0, pad).chain(digits);
    while let (Some(hi), Some(lo)) = (padded.next(), padded.next()) {
        out.push((hi << 4) | lo);
    }
    Some(out)
}

/// Bits from the highest set bit down (0 for zero).
fn bit_length(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i) * 8 - be[i].leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prime line with `bits` bits (the value need not be prime for the
    /// choice; sshd does not re-test either).
    fn line(bits: usize, tests: u32) -> String {
        let mut hex = String::from("F");
        hex.push_str(&"0".repeat(bits / 4 - 2));
        hex.push('7');
        format!("20220714110715 2 {tests} 100 {} 2 {hex}", bits - 1)
    }

    fn moduli(sizes: &[usize]) -> Moduli {
        let text: Vec<String> = sizes.iter().map(|&b| line(b, 6)).collect();
        Moduli {
            primes: text.iter().filter_map(|l| parse_line(l)).collect(),
        }
    }

    fn size(g: Option<DhGroup>) -> Option<usize> {
        g.map(|g| bit_length(&g.prime))
    }

    #[test]
    fn picks_as_sshd_does() {
        let m = moduli(&[2048, 3072, 4096, 6144, 8192]);
        // ssh-audit and OpenSSH's client: 2048 <= 2048..8192 -> 2048.
        assert_eq!(size(m.choose(2048, 2048, 8192)), Some(2048));
        // Preferred in between: the next size up.
        assert_eq!(size(m.choose(2048, 3500, 8192)), Some(4096));
        assert_eq!(size(m.choose(2048, 8192, 8192)), Some(8192));
        // Requests below sshd's floor are raised to it.
        assert_eq!(size(m.choose(1024, 1024, 8192)), Some(2048));
        // Nothing above the preferred size within max: the largest below.
        let small = moduli(&[2048, 3072]);
        assert_eq!(size(small.choose(2048, 4096, 8192)), Some(3072));
        // Bad parameters: sshd disconnects.
        assert!(m.choose(4096, 2048, 3072).is_none());
        assert!(m.choose(2048, 2048, 1024).is_none());
    }

    #[test]
    fn falls_back_to_rfc3526_groups_like_sshd() {
        let empty = Moduli { primes: Vec::new() };
        assert_eq!(size(empty.choose(2048, 2048, 2048)), Some(2048));
        assert_eq!(size(empty.choose(2048, 2048, 4096)), Some(4096));
        assert_eq!(size(empty.choose(2048, 2048, 8192)), Some(8192));
        // Primes exist, none within the client's range.
        let big = moduli(&[8192]);
        assert_eq!(size(big.choose(2048, 2048, 4096)), Some(4096));
    }

    #[test]
    fn lines_sshd_refuses_are_skipped() {
        assert!(parse_line(&line(2048, 6)).is_some());
        assert!(parse_line("# comment").is_none());
        assert!(parse_line(&line(2048, 7)).is_none(), "composite");
        assert!(parse_line(&line(2048, 2)).is_none(), "sieved only");
        assert!(parse_line(&line(2048, 6).replacen(" 2 ", " 1 ", 1)).is_none());
        // Declared size disagrees with the modulus.
        assert!(parse_line(&line(2048, 6).replace(" 2047 ", " 3071 ")).is_none());
        assert!(parse_line("1 2 6 100 2047 2 XYZ").is_none());
        assert!(parse_line("1 2 6").is_none());
        // Generator 1 or 0.
        assert!(parse_line(&line(2048, 6).replace(" 2 F", " 1 F")).is_none());
    }
}
