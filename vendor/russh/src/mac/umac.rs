//! UMAC (RFC 4418) as OpenSSH uses it: `umac-64@openssh.com`,
//! `umac-128@openssh.com` and their `-etm` forms, the first MACs in
//! OpenSSH's default list.
//!
//! Added for mirage (see `PATCH.md`). OpenSSH keys UMAC-AES-128 with the
//! 16-byte integrity key, MACs the packet alone (the sequence number is not
//! hashed, unlike HMAC) and passes the sequence number as the 8-byte
//! big-endian nonce. The UMAC itself is purecrypto's.

use purecrypto::mac::{Umac64, Umac128};

use super::{Mac, MacAlgorithm};

const KEY_LEN: usize = 16;

/// Which UMAC and whether it authenticates the encrypted packet.
pub struct UmacAlgorithm {
    pub(crate) tag_len: usize,
    pub(crate) etm: bool,
}

/// The keyed state, cloned for each packet so that the key schedule (the
/// expensive part) runs once per key exchange.
enum Keyed {
    Short(Umac64),
    Long(Umac128),
}

struct UmacMac {
    keyed: Keyed,
    etm: bool,
}

fn nonce(sequence_number: u32) -> [u8; 8] {
    u64::from(sequence_number).to_be_bytes()
}

impl MacAlgorithm for UmacAlgorithm {
    fn key_len(&self) -> usize {
        KEY_LEN
    }

    fn make_mac(&self, mac_key: &[u8]) -> Box<dyn Mac + Send> {
        let mut key = [0u8; KEY_LEN];
        // russh derives exactly key_len() bytes; a shorter key would be a bug
        // in the caller, and zero-padding it keeps the packet path panic-free.
        let n = mac_key.len().min(KEY_LEN);
        key[..n].copy_from_slice(&mac_key[..n]);
        let keyed = if self.tag_len == 8 {
            Keyed::Short(Umac64::new(&key))
        } else {
            Keyed::Long(Umac128::new(&key))
        };
        Box::new(UmacMac {
            keyed,
            etm: self.etm,
        })
    }
}

impl Mac for UmacMac {
    fn mac_len(&self) -> usize {
        match self.keyed {
            Keyed::Short(_) => 8,
            Keyed::Long(_) => 16,
        }
    }

    fn is_etm(&self) -> bool {
        self.etm
    }

    fn compute(&self, sequence_number: u32, payload: &[u8], output: &mut [u8]) {
        let n = nonce(sequence_number);
        match &self.keyed {
            Keyed::Short(k) => {
                let mut m = k.clone();
                m.update(payload);
                output.copy_from_slice(&m.finalize(&n));
            }
            Keyed::Long(k) => {
                let mut m = k.clone();
                m.update(payload);
                output.copy_from_slice(&m.finalize(&n));
            }
        }
    }

    fn verify(&self, sequence_number: u32, payload: &[u8], mac: &[u8]) -> bool {
        let n = nonce(sequence_number);
        match &self.keyed {
            Keyed::Short(k) => {
                let mut m = k.clone();
                m.update(payload);
                m.verify(&n, mac)
            }
            Keyed::Long(k) => {
                let mut m = k.clone();
                m.update(payload);
                m.verify(&n, mac)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_verifies_and_a_changed_packet_or_sequence_number_does_not() {
        for (tag_len, etm) in [(8, false), (16, false), (8, true), (16, true)] {
            let mac = UmacAlgorithm { tag_len, etm }.make_mac(&[7u8; 16]);
            assert_eq!(mac.mac_len(), tag_len);
            assert_eq!(mac.is_etm(), etm);
            let mut tag = vec![0u8; tag_len];
            mac.compute(3, b"packet", &mut tag);
            assert!(mac.verify(3, b"packet", &tag));
            assert!(!mac.verify(4, b"packet", &tag));
            assert!(!mac.verify(3, b"packeu", &tag));
            assert!(!mac.verify(3, b"packet", &tag[..tag_len - 1]));
        }
    }

    /// RFC 4418 appendix: key "abcdefghijklmnop", nonce "bcdefghi",
    /// message "" gives UMAC-64 tag 6E155FAD26900BE1 (and the 128-bit one
    /// 32FEDB100C79AD58F07FF7643CC60465). Pins that the nonce is used as
    /// given, which is what OpenSSH relies on.
    #[test]
    fn rfc4418_vectors_for_the_empty_message() {
        let key = *b"abcdefghijklmnop";
        let n = *b"bcdefghi";
        let t64 = Umac64::compute(&key, b"", &n);
        assert_eq!(t64, [0x6E, 0x15, 0x5F, 0xAD, 0x26, 0x90, 0x0B, 0xE1]);
        let t128 = Umac128::compute(&key, b"", &n);
        assert_eq!(
            t128,
            [
                0x32, 0xFE, 0xDB, 0x10, 0x0C, 0x79, 0xAD, 0x58, 0xF0, 0x7F, 0xF7, 0x64, 0x3C, 0xC6,
                0x04, 0x65
            ]
        );
    }
}
