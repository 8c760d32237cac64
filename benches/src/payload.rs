//! The payload header every sluice-bench message carries, so a consumer can
//! check order and measure end-to-end latency without trusting the broker.
//!
//! Layout (big-endian): producer id u64, sequence u64, send time u64 (ns
//! since the Unix epoch; the scheduled time in open-loop mode), then filler
//! up to `--size`. The producer id is `run id << 16 | thread index`, so runs
//! that share a topic never look like one producer going backwards.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of header at the start of every payload.
pub const HEADER_LEN: usize = 24;

/// What a payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub producer: u64,
    pub sequence: u64,
    pub sent_unix_nanos: u64,
}

/// A producer id unique to this run and thread.
pub fn producer_id(run_id: u64, thread: u32) -> u64 {
    (run_id << 16) | u64::from(thread & 0xffff)
}

/// A run id from the clock: differs between runs started a microsecond apart.
pub fn new_run_id() -> u64 {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    micros & ((1 << 48) - 1)
}

/// A payload buffer of `size` bytes with recognisable filler; only the
/// header is rewritten per message.
pub fn new_buffer(size: usize) -> Vec<u8> {
    (0..size.max(HEADER_LEN)).map(|i| (i % 251) as u8).collect()
}

/// Writes `header` into the first [`HEADER_LEN`] bytes of `buf`.
///
/// `buf` must be at least `HEADER_LEN` long (`new_buffer` guarantees it).
pub fn encode(buf: &mut [u8], header: Header) {
    buf[0..8].copy_from_slice(&header.producer.to_be_bytes());
    buf[8..16].copy_from_slice(&header.sequence.to_be_bytes());
    buf[16..24].copy_from_slice(&header.sent_unix_nanos.to_be_bytes());
}

/// Reads the header, or `None` when the payload is too short to be ours.
pub fn decode(payload: &[u8]) -> Option<Header> {
    let word = |i: usize| -> Option<u64> {
        Some(u64::from_be_bytes(payload.get(i..i + 8)?.try_into().ok()?))
    };
    Some(Header {
        producer: word(0)?,
        sequence: word(8)?,
        sent_unix_nanos: word(16)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = new_buffer(100);
        assert_eq!(buf.len(), 100);
        let h = Header {
            producer: producer_id(0xabcdef, 3),
            sequence: u64::MAX - 1,
            sent_unix_nanos: 1_795_000_000_123_456_789,
        };
        encode(&mut buf, h);
        assert_eq!(decode(&buf), Some(h));
        assert_eq!(&buf[0..8], &(0xabcdef_u64 << 16 | 3).to_be_bytes());
        assert_eq!(&buf[8..16], &(u64::MAX - 1).to_be_bytes());
        // filler beyond the header is untouched
        assert_eq!(buf[HEADER_LEN], (HEADER_LEN % 251) as u8);
    }

    #[test]
    fn short_payloads_are_not_ours() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0; HEADER_LEN - 1]), None);
        assert!(decode(&[0; HEADER_LEN]).is_some());
        assert_eq!(new_buffer(3).len(), HEADER_LEN);
    }

    #[test]
    fn producer_ids_differ_per_thread_and_run() {
        assert_ne!(producer_id(1, 0), producer_id(1, 1));
        assert_ne!(producer_id(1, 0), producer_id(2, 0));
    }
}
