//! Redis's glob matching (`stringmatchlen`), used by KEYS, SCAN MATCH and
//! CONFIG GET: `*`, `?`, `[abc]`, `[^a-z]`, and `\` escapes.

/// Whether `s` matches `pat`. Depth-limited (Redis 7.0.15 caps nesting the
/// same way) so a pattern of many `*` cannot take exponential time.
pub fn matches(pat: &[u8], s: &[u8], nocase: bool) -> bool {
    let mut skip = false;
    inner(pat, s, nocase, &mut skip, 0)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

fn inner(mut p: &[u8], mut s: &[u8], nocase: bool, skip: &mut bool, depth: usize) -> bool {
    if depth > 1000 {
        return false;
    }
    while let Some(&c) = p.first() {
        if *skip {
            return false;
        }
        match c {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if inner(&p[1..], s, nocase, skip, depth + 1) {
                        return true;
                    }
                    if *skip {
                        return false;
                    }
                    s = &s[1..];
                }
                // Nothing after the star matched anywhere: no later star
                // can do better (Redis's `skipLongerMatches`).
                *skip = true;
                return false;
            }
            b'?' => {
                if s.is_empty() {
                    return false;
                }
                s = &s[1..];
            }
            b'[' => {
                p = &p[1..];
                let not = p.first() == Some(&b'^');
                if not {
                    p = &p[1..];
                }
                let Some(&sc) = s.first() else { return false };
                let mut hit = false;
                loop {
                    match p.first() {
                        Some(b'\\') if p.len() >= 2 => {
                            p = &p[1..];
                            if eq(p[0], sc, nocase) {
                                hit = true;
                            }
                        }
                        Some(b']') => break,
                        None => {
                            // Unterminated class: Redis treats the end as `]`.
                            break;
                        }
                        Some(&a) if p.len() >= 3 && p[1] == b'-' => {
                            let (mut lo, mut hi) = (a, p[2]);
                            if lo > hi {
                                std::mem::swap(&mut lo, &mut hi);
                            }
                            let (c2, lo2, hi2) = if nocase {
                                (
                                    sc.to_ascii_lowercase(),
                                    lo.to_ascii_lowercase(),
                                    hi.to_ascii_lowercase(),
                                )
                            } else {
                                (sc, lo, hi)
                            };
                            if c2 >= lo2 && c2 <= hi2 {
                                hit = true;
                            }
                            p = &p[2..];
                        }
                        Some(&a) => {
                            if eq(a, sc, nocase) {
                                hit = true;
                            }
                        }
                    }
                    if !p.is_empty() {
                        p = &p[1..];
                    }
                }
                if not {
                    hit = !hit;
                }
                if !hit {
                    return false;
                }
                s = &s[1..];
                if p.is_empty() {
                    // Ran off the pattern inside the class.
                    return s.is_empty();
                }
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                let Some(&sc) = s.first() else { return false };
                if !eq(p[0], sc, nocase) {
                    return false;
                }
                s = &s[1..];
            }
            _ => {
                let Some(&sc) = s.first() else { return false };
                if !eq(c, sc, nocase) {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches(b"*", b"anything", false));
        assert!(matches(b"h?llo", b"hello", false));
        assert!(matches(b"h[ae]llo", b"hallo", false));
        assert!(!matches(b"h[^e]llo", b"hello", false));
        assert!(matches(b"h[a-b]llo", b"hbllo", false));
        assert!(matches(b"*max*", b"maxmemory", false));
        assert!(matches(b"MAXMEM*", b"maxmemory", true));
        assert!(!matches(b"a*b", b"acd", false));
        assert!(matches(b"a\\*", b"a*", false));
        assert!(!matches(b"", b"a", false));
        let evil = "*a".repeat(30) + "b";
        assert!(!matches(evil.as_bytes(), "a".repeat(60).as_bytes(), false));
    }
}
