//! Replays the `report_line` fuzz target's seeds, and deterministic
//! mutations of them (bit flips, truncations, splices, repeated bytes),
//! through `mirage_report::fuzz_line`: none may panic.

use std::path::Path;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/report_line");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("seed corpus")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(seeds.len() >= 5, "seed corpus missing");
    seeds
}

#[test]
fn seeds_and_mutations_never_panic() {
    let seeds = seeds();
    for s in &seeds {
        mirage_report::fuzz_line(s);
    }
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for _ in 0..3000 {
        let mut d = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            if d.is_empty() {
                break;
            }
            let at = rng.below(d.len());
            match rng.below(5) {
                0 => d[at] ^= 1 << rng.below(8),
                1 => d.truncate(at),
                2 => {
                    let other = &seeds[rng.below(seeds.len())];
                    let from = rng.below(other.len());
                    d.splice(at..at, other[from..].iter().copied().take(40));
                }
                3 => d.insert(at, [b'"', b'\\', b'{', b'[', b'\n', 0xff][rng.below(6)]),
                _ => {
                    let b = d[at];
                    d.splice(at..at, std::iter::repeat_n(b, rng.below(200)));
                }
            }
        }
        mirage_report::fuzz_line(&d);
    }
}
