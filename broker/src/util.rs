//! Small helpers every part of the broker shares: wall-clock milliseconds
//! (Kafka's timestamps), the stable FNV-1a hash that spreads topics and
//! groups over shards, and the conversions of wire integers (a count, a
//! size or a time from a request may be negative or huge; `as` would wrap
//! -1 into `usize::MAX`).

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// FNV-1a of `bytes`: stable across runs and builds, so what it places on
/// a shard stays there after a restart (the shard count is fixed too).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A size or count from the wire: negative is 0.
pub fn wire_len(value: i32) -> usize {
    usize::try_from(value).unwrap_or(0)
}

/// Milliseconds from the wire, at most `max_ms`: negative is 0.
pub fn wire_millis(value: i32, max_ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(value).unwrap_or(0).min(max_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_integers_never_wrap() {
        for v in [i32::MIN, -2, -1, 0, 1, 4096, i32::MAX] {
            let len = wire_len(v);
            assert_eq!(len, if v < 0 { 0 } else { v as usize });
            let ms = wire_millis(v, 30_000).as_millis();
            assert!(ms <= 30_000);
            assert_eq!(ms, (v.max(0) as u128).min(30_000));
        }
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
