//! Finding known secrets inside an argument without keeping their values. Each known secret is
//! kept as a keyed polynomial rolling hash (mod 2^61-1, with a base random per run) by length;
//! an argument's prefix hashes are computed once, every window of a known length is then one
//! multiplication and one lookup away, and only a window whose rolling hash is known is
//! confirmed with the keyed fingerprint. Before, every window of every known length was
//! fingerprinted: with a few dozen lengths, tens of thousands of keyed BLAKE3 hashes for one
//! long argument, and a process choosing its variables chose how many.
use std::collections::BTreeMap;

use foldhash::HashMap;

const MODULUS: u64 = (1 << 61) - 1;

fn mul(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    let sum = (product as u64 & MODULUS) + (product >> 61) as u64;
    if sum >= MODULUS { sum - MODULUS } else { sum }
}

fn add(a: u64, b: u64) -> u64 {
    let sum = a + b;
    if sum >= MODULUS { sum - MODULUS } else { sum }
}

fn sub(a: u64, b: u64) -> u64 {
    if a >= b { a - b } else { a + MODULUS - b }
}

pub struct Matcher {
    base: u64,
    /// `base` to the power of each length up to the longest searched.
    powers: Vec<u64>,
    /// Rolling hashes of the known secrets, by length, with how many secrets share each.
    by_len: BTreeMap<usize, HashMap<u64, u32>>,
}

impl Matcher {
    /// `seed` picks the base (from the run's random fingerprint key); `longest` bounds the
    /// lengths searched.
    pub fn new(seed: u64, longest: usize) -> Self {
        let base = 256 + seed % (MODULUS - 512);
        let mut powers = vec![1u64; longest + 1];
        for i in 1..=longest {
            powers[i] = mul(powers[i - 1], base);
        }
        Self {
            base,
            powers,
            by_len: BTreeMap::new(),
        }
    }

    pub fn hash(&self, bytes: &[u8]) -> u64 {
        bytes
            .iter()
            .fold(0, |h, &b| add(mul(h, self.base), u64::from(b) + 1))
    }

    /// Searches for a secret of `len` bytes with rolling hash `hash` from now on.
    pub fn insert(&mut self, len: usize, hash: u64) {
        if len < self.powers.len() {
            *self.by_len.entry(len).or_default().entry(hash).or_default() += 1;
        }
    }

    pub fn remove(&mut self, len: usize, hash: u64) {
        let Some(hashes) = self.by_len.get_mut(&len) else {
            return;
        };
        if let Some(count) = hashes.get_mut(&hash) {
            *count -= 1;
            if *count == 0 {
                hashes.remove(&hash);
            }
        }
        if hashes.is_empty() {
            self.by_len.remove(&len);
        }
    }

    /// The windows of `text` that `confirm` accepts, among those whose rolling hash is a known
    /// secret's: longest first, then left to right, never overlapping one already taken.
    pub fn find(&self, text: &str, confirm: impl Fn(&str) -> bool) -> Vec<(usize, usize)> {
        if self.by_len.is_empty() {
            return Vec::new();
        }
        let bytes = text.as_bytes();
        let mut prefix = Vec::with_capacity(bytes.len() + 1);
        prefix.push(0u64);
        for &b in bytes {
            let last = *prefix.last().unwrap_or(&0);
            prefix.push(add(mul(last, self.base), u64::from(b) + 1));
        }
        let mut taken: Vec<(usize, usize)> = Vec::new();
        for (&len, hashes) in self.by_len.iter().rev() {
            let mut start = 0;
            while start + len <= bytes.len() {
                let end = start + len;
                let window = sub(prefix[end], mul(prefix[start], self.powers[len]));
                let free = || !taken.iter().any(|&(s, e)| start < e && s < end);
                if hashes.contains_key(&window)
                    && text.is_char_boundary(start)
                    && text.is_char_boundary(end)
                    && free()
                    && confirm(&text[start..end])
                {
                    taken.push((start, end));
                    start = end;
                } else {
                    start += 1;
                }
            }
        }
        taken.sort_unstable();
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_hash_like_the_whole_value() {
        let m = Matcher::new(12345, 64);
        let text = "xx-s3cret-yy";
        let whole = m.hash(b"s3cret");
        let mut m = m;
        m.insert(6, whole);
        assert_eq!(m.find(text, |_| true), vec![(3, 9)]);
        assert_eq!(
            m.find(text, |_| false),
            vec![],
            "a window must be confirmed"
        );
        m.remove(6, whole);
        assert_eq!(m.find(text, |_| true), vec![]);
    }

    #[test]
    fn longer_matches_win_and_matches_do_not_overlap() {
        let mut m = Matcher::new(99, 64);
        let long = m.hash(b"abcdefgh");
        let short = m.hash(b"cdef");
        m.insert(8, long);
        m.insert(4, short);
        assert_eq!(m.find("abcdefgh cdef", |_| true), vec![(0, 8), (9, 13)]);
    }
}
