//! Record batches for Produce: valid magic v2 batches built with
//! kafka-protocol's `RecordBatchEncoder` (every codec, plain and
//! idempotent), and hostile ones made from them: a header field overwritten
//! and the CRC-32C fixed so the batch passes the checksum, bytes flipped
//! without fixing it, truncations, and a zstd decompression bomb.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::knobs::I64S;
use crate::rng::Rng;

/// Bytes of a magic v2 batch header (the records start here).
pub const HEADER: usize = 61;
/// Where the CRC sits, and where the bytes it covers start.
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;

/// Header fields of a v2 batch: (name, offset, width).
const FIELDS: &[(&str, usize, usize)] = &[
    ("base-offset", 0, 8),
    ("batch-length", 8, 4),
    ("leader-epoch", 12, 4),
    ("magic", 16, 1),
    ("attributes", 21, 2),
    ("last-offset-delta", 23, 4),
    ("base-timestamp", 27, 8),
    ("max-timestamp", 35, 8),
    ("producer-id", 43, 8),
    ("producer-epoch", 51, 2),
    ("base-sequence", 53, 4),
    ("record-count", 57, 4),
];

/// One batch of `count` records from `producer` (id, epoch, first
/// sequence; -1s for none) compressed with `compression`.
pub fn encode(
    count: usize,
    compression: Compression,
    producer: (i64, i16, i32),
    value_len: usize,
) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let mut headers = IndexMap::new();
            if i % 2 == 1 {
                headers.insert(
                    StrBytes::from_static_str("fz"),
                    Some(Bytes::from_static(b"h")),
                );
            }
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: producer.0,
                producer_epoch: producer.1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch whenever offset - sequence
                // changes; consecutive sequences keep it to one (a first
                // sequence of -1 gives the batch base sequence -1).
                sequence: producer.2 + i as i32,
                timestamp: 1_700_000_000_000 + i as i64,
                key: (i % 3 != 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; value_len])),
                headers,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    // Encoding owned, well-formed records into memory cannot fail; an
    // empty batch is the fallback rather than a panic.
    let _ = RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    );
    buf.freeze()
}

/// The valid batches a run draws from.
pub fn valid_set(producer_id: i64, producer_epoch: i16) -> Vec<Bytes> {
    let none = (-1, -1, -1);
    vec![
        encode(1, Compression::None, none, 16),
        encode(3, Compression::None, none, 100),
        encode(4, Compression::Gzip, none, 64),
        encode(4, Compression::Snappy, none, 64),
        encode(4, Compression::Lz4, none, 64),
        encode(4, Compression::Zstd, none, 64),
        encode(2, Compression::None, (producer_id, producer_epoch, 0), 32),
    ]
}

/// One record of 64 MiB of zeros, zstd-compressed to a few KB: what a
/// decompressing broker must bound.
pub fn zstd_bomb() -> Bytes {
    encode(1, Compression::Zstd, (-1, -1, -1), 64 << 20)
}

/// Recomputes the CRC-32C of a v2 batch in place (no-op if too short).
pub fn resign(batch: &mut [u8]) {
    if batch.len() >= HEADER {
        let crc = crc32c::crc32c(&batch[CRC_FROM..]);
        batch[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_be_bytes());
    }
}

/// A hostile variant of `valid`: the bytes and the kind of damage.
pub fn hostile(rng: &mut Rng, valid: &Bytes, bomb: &Bytes) -> (Bytes, String) {
    let mut b = valid.to_vec();
    let kind = match rng.below(8) {
        0..=2 if b.len() >= HEADER => {
            let (name, at, width) = *rng.pick(FIELDS);
            let v = *rng.pick(I64S);
            b[at..at + width].copy_from_slice(&v.to_be_bytes()[8 - width..]);
            resign(&mut b);
            format!("{name}-resigned")
        }
        3 if b.len() > HEADER => {
            // Damage inside the records (compressed or not), CRC fixed.
            let at = HEADER + rng.below((b.len() - HEADER) as u64) as usize;
            b[at] ^= 1 + rng.below(255) as u8;
            resign(&mut b);
            "records-resigned".to_string()
        }
        4 => {
            let at = rng.below(b.len() as u64) as usize;
            b[at] ^= 0x55;
            "crc-mismatch".to_string()
        }
        5 => {
            b.truncate(rng.below(b.len() as u64) as usize);
            "truncated".to_string()
        }
        6 => {
            // Two batches back to back, both claiming base offset 0.
            b.extend_from_slice(valid);
            "two-batches".to_string()
        }
        _ => return (bomb.clone(), "zstd-bomb".to_string()),
    };
    (Bytes::from(b), kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn valid_batches_decode_and_resigned_ones_pass_the_crc() {
        for batch in valid_set(1000, 0) {
            let mut buf = batch.clone();
            let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
            assert_eq!(sets.len(), 1, "one batch each");
            let crc = u32::from_be_bytes(batch[CRC_AT..CRC_FROM].try_into().unwrap());
            assert_eq!(crc, crc32c::crc32c(&batch[CRC_FROM..]));
        }
        let mut rng = Rng::new(9);
        let valid = valid_set(1, 0).remove(1);
        let bomb = Bytes::from_static(b"bomb");
        for _ in 0..200 {
            let (b, kind) = hostile(&mut rng, &valid, &bomb);
            if kind.ends_with("-resigned") {
                let crc = u32::from_be_bytes(b[CRC_AT..CRC_FROM].try_into().unwrap());
                assert_eq!(crc, crc32c::crc32c(&b[CRC_FROM..]), "{kind}");
            }
        }
    }
}
