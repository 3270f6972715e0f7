//! Distinct counting with bounded memory: exact below a configurable
//! cardinality, a HyperLogLog sketch above it.
//!
//! Values are first mixed into 64-bit hashes ([`hash_u128`]); the exact set
//! stores those hashes, so below the threshold a count is exact unless two of
//! the values collide in 64 bits (probability about n²/2⁶⁵: below 10⁻⁸ for a
//! million values). Above the threshold the set turns into a HyperLogLog with
//! 2^p one-byte registers, whose relative standard error is 1.04/√(2^p):
//! 0.81 % at the default p = 14 (16 KiB per sketch), so about 98 % of
//! estimates fall within ±1.6 %. Switching only above the threshold keeps the
//! estimator out of its small-range bias (the threshold should be at least
//! 5·2^p; the default 100 000 is above 5·16 384).

use std::hash::{BuildHasherDefault, Hasher};

use hashbrown::HashSet;

/// Hasher for values that are already well-mixed 64-bit hashes: passes
/// them through instead of hashing them again.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type HashSet64 = HashSet<u64, BuildHasherDefault<PassThrough>>;

/// Mix a value into a 64-bit hash (murmur3's finaliser over both halves):
/// deterministic, so sketches built by different threads merge.
pub fn hash_u128(v: u128) -> u64 {
    fn fmix(mut k: u64) -> u64 {
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    }
    fmix(fmix(v as u64 ^ 0x9e37_79b9_7f4a_7c15) ^ (v >> 64) as u64)
}

/// Sketch configuration: when to switch and how precise the sketch is.
#[derive(Debug, Clone, Copy)]
pub struct SketchConfig {
    /// Exact counting up to this many distinct values.
    pub threshold: usize,
    /// HyperLogLog precision p (2^p registers), 4..=18.
    pub precision: u8,
}

impl SketchConfig {
    /// Relative standard error of the sketch: 1.04/√(2^p).
    pub fn relative_error(&self) -> f64 {
        1.04 / f64::from(1u32 << self.precision).sqrt()
    }
}

/// A HyperLogLog sketch (Flajolet et al. 2007) over 64-bit hashes, with
/// linear counting for small cardinalities.
#[derive(Debug, Clone)]
pub struct HyperLogLog {
    p: u8,
    registers: Box<[u8]>,
}

impl HyperLogLog {
    /// An empty sketch with 2^p registers.
    pub fn new(p: u8) -> Self {
        let p = p.clamp(4, 18);
        HyperLogLog {
            p,
            registers: vec![0u8; 1 << p].into_boxed_slice(),
        }
    }

    /// Add one hashed value.
    pub fn insert(&mut self, hash: u64) {
        let idx = (hash >> (64 - self.p)) as usize;
        let rest = (hash << self.p) | (1 << (self.p - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        if let Some(r) = self.registers.get_mut(idx)
            && rank > *r
        {
            *r = rank;
        }
    }

    /// Union with another sketch of the same precision.
    pub fn merge(&mut self, other: &HyperLogLog) {
        for (a, b) in self.registers.iter_mut().zip(other.registers.iter()) {
            *a = (*a).max(*b);
        }
    }

    /// Estimated number of distinct values.
    pub fn estimate(&self) -> u64 {
        let m = self.registers.len() as f64;
        let alpha = match self.registers.len() {
            16 => 0.673,
            32 => 0.697,
            64 => 0.709,
            _ => 0.7213 / (1.0 + 1.079 / m),
        };
        let mut sum = 0.0;
        let mut zeros = 0usize;
        for &r in self.registers.iter() {
            sum += 1.0 / (1u64 << r) as f64;
            if r == 0 {
                zeros += 1;
            }
        }
        let raw = alpha * m * m / sum;
        let est = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        est.round() as u64
    }
}

/// A set that counts distinct values exactly up to a threshold, then
/// approximately (see the module docs for the error).
#[derive(Debug, Clone)]
pub enum DistinctSet {
    /// Exact: the hashes seen.
    Exact(HashSet64),
    /// Approximate: a sketch.
    Sketch(HyperLogLog),
}

impl Default for DistinctSet {
    fn default() -> Self {
        DistinctSet::Exact(HashSet64::default())
    }
}

impl DistinctSet {
    /// Add a hashed value.
    #[inline]
    pub fn insert(&mut self, hash: u64, cfg: &SketchConfig) {
        match self {
            DistinctSet::Exact(set) => {
                set.insert(hash);
                if set.len() > cfg.threshold {
                    self.switch_to_sketch(cfg);
                }
            }
            DistinctSet::Sketch(h) => h.insert(hash),
        }
    }

    fn switch_to_sketch(&mut self, cfg: &SketchConfig) {
        if let DistinctSet::Exact(set) = self {
            let mut h = HyperLogLog::new(cfg.precision);
            for &v in set.iter() {
                h.insert(v);
            }
            *self = DistinctSet::Sketch(h);
        }
    }

    /// Union `other` into `self`.
    pub fn merge(&mut self, other: DistinctSet, cfg: &SketchConfig) {
        match other {
            DistinctSet::Exact(o) => {
                for v in o {
                    self.insert(v, cfg);
                }
            }
            DistinctSet::Sketch(o) => {
                self.switch_to_sketch(cfg);
                if let DistinctSet::Sketch(h) = self {
                    h.merge(&o);
                }
            }
        }
    }

    /// The count, and whether it is an estimate.
    pub fn count(&self) -> (u64, bool) {
        match self {
            DistinctSet::Exact(s) => (s.len() as u64, false),
            DistinctSet::Sketch(h) => (h.estimate(), true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_below_threshold() {
        let cfg = SketchConfig {
            threshold: 1000,
            precision: 12,
        };
        let mut s = DistinctSet::default();
        for i in 0..900u128 {
            s.insert(hash_u128(i % 450), &cfg);
        }
        assert_eq!(s.count(), (450, false));
    }

    #[test]
    fn sketch_error_is_within_bounds() {
        let cfg = SketchConfig {
            threshold: 100_000,
            precision: 14,
        };
        for n in [200_000u128, 1_000_000] {
            let mut s = DistinctSet::default();
            for i in 0..n {
                s.insert(hash_u128(i * 7919), &cfg);
            }
            let (est, approx) = s.count();
            assert!(approx);
            let err = (est as f64 - n as f64).abs() / n as f64;
            // 3 standard errors.
            assert!(
                err < 3.0 * cfg.relative_error(),
                "n={n} est={est} err={err}"
            );
        }
    }

    #[test]
    fn merge_of_halves_equals_whole() {
        let cfg = SketchConfig {
            threshold: 10_000,
            precision: 12,
        };
        let (mut a, mut b, mut whole) = (
            DistinctSet::default(),
            DistinctSet::default(),
            DistinctSet::default(),
        );
        for i in 0..50_000u128 {
            let h = hash_u128(i);
            whole.insert(h, &cfg);
            if i % 2 == 0 { &mut a } else { &mut b }.insert(h, &cfg);
        }
        a.merge(b, &cfg);
        assert_eq!(a.count(), whole.count());
        // Exact halves merged stay exact.
        let (mut c, mut d) = (DistinctSet::default(), DistinctSet::default());
        for i in 0..100u128 {
            c.insert(hash_u128(i), &cfg);
            d.insert(hash_u128(i + 50), &cfg);
        }
        c.merge(d, &cfg);
        assert_eq!(c.count(), (150, false));
    }
}
