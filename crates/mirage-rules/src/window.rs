//! Per-key sliding windows and the bounded table that holds them.
//!
//! A count threshold "N events within W" keeps only the newest N event
//! times of a key, sorted: it fires when it holds N and the newest minus the
//! oldest is at most W. That is an exact sliding window over event times
//! (not fixed buckets, not wall clock) in O(N) memory per key, and it
//! tolerates events arriving slightly out of order.
//!
//! A distinct threshold "N distinct values of F within W" keeps, per value,
//! the newest time it was seen, at most N values: entries older than W
//! before the key's newest time are dropped, and at N values it fires.
//!
//! [`KeyTable`] bounds the number of keys: it is an LRU list in a slab
//! (O(1) touch, insert and evict). At the cap, the key updated least
//! recently goes; since events arrive roughly in time order, that is the
//! key whose window is oldest, the one least likely to fire.

use std::collections::HashMap;

const NIL: usize = usize::MAX;

/// The window of one key.
#[derive(Debug, Clone)]
pub(crate) enum Window {
    /// Newest event times, ascending, at most `count`.
    Count(Vec<i64>),
    /// (value, newest time) pairs, at most `count`.
    Distinct(Vec<(Box<str>, i64)>),
}

impl Window {
    /// Record an event at `t` (with `value` for distinct windows) and say
    /// whether the threshold is reached.
    pub(crate) fn add(&mut self, t: i64, value: Option<&str>, count: u32, window: i64) -> bool {
        let count = count as usize;
        match self {
            Window::Count(times) => {
                let at = times.partition_point(|&x| x <= t);
                times.insert(at, t);
                if times.len() > count {
                    times.remove(0);
                }
                times.len() == count
                    && times
                        .last()
                        .zip(times.first())
                        .is_some_and(|(l, f)| l.saturating_sub(*f) <= window)
            }
            Window::Distinct(values) => {
                let Some(value) = value else {
                    return false;
                };
                match values.iter_mut().find(|(v, _)| &**v == value) {
                    Some((_, seen)) => *seen = (*seen).max(t),
                    None => values.push((value.into(), t)),
                }
                let newest = values.iter().map(|(_, s)| *s).max().unwrap_or(t);
                values.retain(|(_, s)| newest.saturating_sub(*s) <= window);
                if values.len() > count {
                    // Drop the oldest (only reachable with out-of-order
                    // input: in order, reaching `count` fires first).
                    if let Some(i) = values
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (_, s))| *s)
                        .map(|(i, _)| i)
                    {
                        values.swap_remove(i);
                    }
                }
                values.len() >= count
            }
        }
    }

    /// Events (or distinct values) currently held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        match self {
            Window::Count(t) => t.len(),
            Window::Distinct(v) => v.len(),
        }
    }
}

#[derive(Debug)]
struct Slot {
    key: Box<str>,
    window: Window,
    prev: usize,
    next: usize,
}

/// Keys to windows, at most `cap` of them, least recently updated evicted
/// first.
#[derive(Debug)]
pub(crate) struct KeyTable {
    map: HashMap<Box<str>, usize>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Most recently updated.
    head: usize,
    /// Least recently updated.
    tail: usize,
    cap: usize,
    pub(crate) evictions: u64,
}

impl KeyTable {
    pub(crate) fn new(cap: usize) -> Self {
        KeyTable {
            map: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            cap: cap.max(1),
            evictions: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.slots[i].prev, self.slots[i].next);
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next].prev = prev;
        }
    }

    fn push_front(&mut self, i: usize) {
        self.slots[i].prev = NIL;
        self.slots[i].next = self.head;
        if self.head != NIL {
            self.slots[self.head].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    /// The window of `key`, created with `make` if new; marks it most
    /// recently used. Evicts the least recently used key at the cap.
    pub(crate) fn entry(&mut self, key: &str, make: impl FnOnce() -> Window) -> &mut Window {
        if let Some(&i) = self.map.get(key) {
            if self.head != i {
                self.unlink(i);
                self.push_front(i);
            }
            return &mut self.slots[i].window;
        }
        if self.map.len() >= self.cap && self.tail != NIL {
            let old = self.tail;
            self.remove_slot(old);
            self.evictions += 1;
        }
        let key: Box<str> = key.into();
        let slot = Slot {
            key: key.clone(),
            window: make(),
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.map.insert(key, i);
        self.push_front(i);
        &mut self.slots[i].window
    }

    fn remove_slot(&mut self, i: usize) {
        self.unlink(i);
        let key = std::mem::take(&mut self.slots[i].key);
        self.slots[i].window = Window::Count(Vec::new());
        self.map.remove(&key);
        self.free.push(i);
    }

    /// Forget `key` (after it fired).
    pub(crate) fn remove(&mut self, key: &str) {
        if let Some(&i) = self.map.get(key) {
            self.remove_slot(i);
        }
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn count_window_edges() {
        let w = 120 * S;
        let mut win = Window::Count(Vec::new());
        for i in 0..4 {
            assert!(!win.add(i * 30 * S, None, 5, w));
        }
        // Fifth at exactly 120 s after the first: inclusive.
        assert!(win.add(120 * S, None, 5, w));
        let mut win = Window::Count(Vec::new());
        for t in [0, 30, 60, 90] {
            assert!(!win.add(t * S, None, 5, w));
        }
        assert!(!win.add(121 * S, None, 5, w));
        // It slides: one more inside the window of the last four fires.
        assert!(win.add(122 * S, None, 5, w));
    }

    #[test]
    fn out_of_order_is_sorted() {
        let mut win = Window::Count(Vec::new());
        for t in [50, 10, 40, 20] {
            assert!(!win.add(t * S, None, 5, 60 * S));
        }
        assert!(win.add(30 * S, None, 5, 60 * S));
    }

    #[test]
    fn distinct_window() {
        let mut win = Window::Distinct(Vec::new());
        assert!(!win.add(0, Some("22"), 3, 10 * S));
        assert!(!win.add(S, Some("22"), 3, 10 * S));
        assert!(!win.add(2 * S, Some("23"), 3, 10 * S));
        // 80 arrives after "22" last seen at 1 s: 12 s - 1 s > 10 s, so 22 left.
        assert!(!win.add(12 * S, Some("80"), 3, 10 * S));
        assert_eq!(win.len(), 2);
        assert!(win.add(12 * S, Some("443"), 3, 10 * S));
    }

    #[test]
    fn lru_evicts_least_recent() {
        let mut t = KeyTable::new(2);
        t.entry("a", || Window::Count(Vec::new()));
        t.entry("b", || Window::Count(Vec::new()));
        t.entry("a", || Window::Count(Vec::new()));
        t.entry("c", || Window::Count(Vec::new()));
        assert!(t.contains("a") && t.contains("c") && !t.contains("b"));
        assert_eq!(t.evictions, 1);
        t.remove("a");
        assert_eq!(t.len(), 1);
        t.entry("d", || Window::Count(Vec::new()));
        t.entry("e", || Window::Count(Vec::new()));
        assert!(t.contains("d") && t.contains("e") && !t.contains("c"));
        assert_eq!(t.slots.len(), 2, "slots are reused");
    }
}
