//! The fuzzer's only source of randomness: a seeded xorshift64, so a run is
//! reproducible from its seed and one request from (seed, index).

/// xorshift64 seeded through splitmix64 (close seeds give unrelated
/// sequences).
#[derive(Debug, Clone)]
pub struct Rng(u64);

/// splitmix64's finaliser: spreads `x` over all 64 bits.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // xorshift never leaves 0; `| 1` keeps it out.
        Rng(mix(seed) | 1)
    }

    /// The generator of request `index` of run `seed`: independent of the
    /// requests before it, so one request can be replayed alone.
    pub fn for_request(seed: u64, index: u64) -> Rng {
        Rng::new(mix(seed) ^ mix(index.wrapping_add(0x5EED)))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A value in `lo..=hi`.
    pub fn between(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi as i128 - lo as i128 + 1) as u128;
        (lo as i128 + (self.next_u64() as u128 % span) as i128) as i64
    }

    /// True with probability `n` in `d`.
    pub fn chance(&mut self, n: u64, d: u64) -> bool {
        self.below(d) < n
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_requests_are_independent() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut r1 = Rng::for_request(7, 10);
        let mut r2 = Rng::for_request(7, 11);
        assert_ne!(r1.next_u64(), r2.next_u64());
        assert_eq!(
            Rng::for_request(7, 10).next_u64(),
            Rng::for_request(7, 10).next_u64()
        );
    }

    #[test]
    fn between_stays_in_range_at_the_extremes() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            let v = rng.between(i64::MIN, i64::MAX);
            let _ = v;
            let w = rng.between(-3, 3);
            assert!((-3..=3).contains(&w));
        }
    }
}
