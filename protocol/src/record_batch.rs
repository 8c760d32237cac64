//! Zero-copy views over Kafka record batches (magic v2), their validation,
//! and the only two rewrites the broker makes before storing them.
//!
//! Sluice stores batches as the client sent them. A batch is checked the way
//! Kafka's broker checks it (`DefaultRecordBatch.ensureValid`,
//! `ProduceRequest.validateRecords`, `LogValidator.validateBatch`) using the
//! header alone: records are never parsed and compressed payloads are never
//! decompressed. Layout (offsets in bytes from the batch start):
//!
//! ```text
//!  0 base offset i64       8 batch length i32      12 partition leader epoch i32
//! 16 magic i8             17 crc u32 (CRC-32C of bytes 21..end)
//! 21 attributes i16       23 last offset delta i32 27 base timestamp i64
//! 35 max timestamp i64    43 producer id i64       51 producer epoch i16
//! 53 base sequence i32    57 record count i32      61 records
//! ```

use kafka_protocol::records::{Compression, TimestampType};

use crate::error::BatchError;

/// Base offset and batch length, which precede what `batch length` counts.
pub const LOG_OVERHEAD: usize = 12;
/// Size of a v2 batch header; the smallest valid batch (no records).
pub const RECORD_BATCH_OVERHEAD: usize = 61;

const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_FLAG: i16 = 0x08;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;
const DELETE_HORIZON_FLAG: i16 = 0x40;

/// A validated v2 batch: header complete, magic 2, CRC matching, codec known,
/// count and last offset delta consistent.
///
/// Invariant: `bytes` is exactly one batch and at least
/// [`RECORD_BATCH_OVERHEAD`] long, so every fixed-offset read is in bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordBatch<'a> {
    bytes: &'a [u8],
    compression: Compression,
}

impl<'a> RecordBatch<'a> {
    /// Validates the batch at the start of `buf` (trailing bytes are left to
    /// the caller, see [`batches`]) and returns a view of exactly its bytes.
    pub fn parse(buf: &'a [u8]) -> Result<Self, BatchError> {
        let truncated = |needed| BatchError::Truncated {
            needed,
            available: buf.len(),
        };
        if buf.len() < LOG_OVERHEAD {
            return Err(truncated(LOG_OVERHEAD));
        }
        let batch_length = i32_at(buf, BATCH_LENGTH);
        // Magic must be inside the batch before it can be read (Kafka's
        // HEADER_SIZE_UP_TO_MAGIC); legacy v0/v1 sets are shorter than 61.
        let Some(size) = usize::try_from(batch_length)
            .ok()
            .filter(|len| *len > MAGIC - LOG_OVERHEAD)
            .map(|len| LOG_OVERHEAD + len)
        else {
            return Err(BatchError::TooSmall { batch_length });
        };
        if buf.len() < size {
            return Err(truncated(size));
        }
        let bytes = &buf[..size];
        let magic = bytes[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::Magic(magic));
        }
        if size < RECORD_BATCH_OVERHEAD {
            return Err(BatchError::TooSmall { batch_length });
        }
        let stored = u32::from_be_bytes(array_at(bytes, CRC));
        let computed = crc32c::crc32c(&bytes[ATTRIBUTES..]);
        if stored != computed {
            return Err(BatchError::Crc { stored, computed });
        }
        let attributes = i16_at(bytes, ATTRIBUTES);
        let compression = match attributes & COMPRESSION_MASK {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            codec => return Err(BatchError::Compression(codec as u8)),
        };
        let batch = RecordBatch { bytes, compression };
        let (count, last_offset_delta) = (batch.record_count(), batch.last_offset_delta());
        if count < 0 {
            return Err(BatchError::Count(count));
        }
        // Offsets within a batch strictly increase, so the last delta is at
        // least count - 1 (more only after compaction removed records).
        if last_offset_delta < 0 || last_offset_delta < count - 1 {
            return Err(BatchError::OffsetDelta {
                last_offset_delta,
                count,
            });
        }
        Ok(batch)
    }

    /// The batch's bytes, exactly as sent: what the WAL stores and fetch serves.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Total size in bytes, [`LOG_OVERHEAD`] included.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Offset of the first record (0 from a producer; assigned by the broker).
    pub fn base_offset(&self) -> i64 {
        i64::from_be_bytes(array_at(self.bytes, 0))
    }

    /// Offset of the last record: base offset + last offset delta.
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .wrapping_add(i64::from(self.last_offset_delta()))
    }

    /// Bytes after the length field: [`Self::size`] minus [`LOG_OVERHEAD`].
    pub fn batch_length(&self) -> i32 {
        i32_at(self.bytes, BATCH_LENGTH)
    }

    /// Leader epoch the batch was written under (-1 from most producers).
    pub fn partition_leader_epoch(&self) -> i32 {
        i32_at(self.bytes, PARTITION_LEADER_EPOCH)
    }

    /// The stored CRC-32C (already checked against the bytes).
    pub fn crc(&self) -> u32 {
        u32::from_be_bytes(array_at(self.bytes, CRC))
    }

    /// Raw attributes: codec, timestamp type, transactional, control bits.
    pub fn attributes(&self) -> i16 {
        i16_at(self.bytes, ATTRIBUTES)
    }

    /// Codec of the records payload; Sluice passes it through, never decodes.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Whether the max timestamp is the client's (create) or the broker's.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & TIMESTAMP_TYPE_FLAG != 0 {
            TimestampType::LogAppend
        } else {
            TimestampType::Creation
        }
    }

    /// Part of a transaction (readers with read_committed need this).
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_FLAG != 0
    }

    /// A transaction marker, written by brokers only.
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_FLAG != 0
    }

    /// Offset of the last record relative to the base offset.
    pub fn last_offset_delta(&self) -> i32 {
        i32_at(self.bytes, LAST_OFFSET_DELTA)
    }

    /// Timestamp of the first record (record timestamps are deltas from it).
    pub fn base_timestamp(&self) -> i64 {
        i64::from_be_bytes(array_at(self.bytes, BASE_TIMESTAMP))
    }

    /// Largest record timestamp, or the broker's time for LogAppendTime.
    pub fn max_timestamp(&self) -> i64 {
        i64::from_be_bytes(array_at(self.bytes, MAX_TIMESTAMP))
    }

    /// Idempotent/transactional producer id, -1 if none.
    pub fn producer_id(&self) -> i64 {
        i64::from_be_bytes(array_at(self.bytes, PRODUCER_ID))
    }

    /// Epoch of the producer id, -1 if none.
    pub fn producer_epoch(&self) -> i16 {
        i16_at(self.bytes, PRODUCER_EPOCH)
    }

    /// Sequence of the first record, for duplicate detection; -1 if none.
    pub fn base_sequence(&self) -> i32 {
        i32_at(self.bytes, BASE_SEQUENCE)
    }

    /// Number of records the header claims (not counted: payload unread).
    pub fn record_count(&self) -> i32 {
        i32_at(self.bytes, RECORD_COUNT)
    }
}

/// Size of the batch at the start of `buf`, from its length field alone,
/// if `buf` holds that much: for walking batches the broker stored and
/// validated already (cutting a fetch answer at a batch boundary), where
/// [`RecordBatch::parse`]'s checksum would be work for nothing.
pub fn stored_batch_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    let size = usize::try_from(i32_at(buf, BATCH_LENGTH)).ok()? + LOG_OVERHEAD;
    (size <= buf.len()).then_some(size)
}

/// Iterator over concatenated batches (a fetch response's or a WAL frame's
/// `records`); yields each batch or the first error, then stops.
#[derive(Debug, Clone)]
pub struct RecordBatches<'a> {
    rest: &'a [u8],
}

/// Iterates the batches in `records`, validating each.
pub fn batches(records: &[u8]) -> RecordBatches<'_> {
    RecordBatches { rest: records }
}

impl<'a> Iterator for RecordBatches<'a> {
    type Item = Result<RecordBatch<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match RecordBatch::parse(self.rest) {
            Ok(batch) => {
                self.rest = &self.rest[batch.size()..];
                Some(Ok(batch))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Validates the `records` of one produce partition as Kafka does for a
/// client append: exactly one batch, structurally valid, at least one record,
/// last offset delta = count - 1, not a control batch, and a sequence for any
/// producer id. On error nothing of it may be stored.
pub fn produce_batch(records: &[u8]) -> Result<RecordBatch<'_>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::NoBatch);
    }
    let batch = RecordBatch::parse(records)?;
    let rest = &records[batch.size()..];
    if !rest.is_empty() {
        // A whole second batch breaks Kafka's one-batch rule; a partial one
        // is damage.
        RecordBatch::parse(rest)?;
        return Err(BatchError::MultipleBatches);
    }
    let (count, last_offset_delta) = (batch.record_count(), batch.last_offset_delta());
    if count == 0 {
        return Err(BatchError::Count(count));
    }
    if last_offset_delta != count - 1 {
        return Err(BatchError::OffsetDelta {
            last_offset_delta,
            count,
        });
    }
    if batch.is_control() {
        return Err(BatchError::ControlBatch);
    }
    if batch.producer_id() >= 0 && batch.base_sequence() < 0 {
        return Err(BatchError::Sequence {
            producer_id: batch.producer_id(),
            base_sequence: batch.base_sequence(),
        });
    }
    Ok(batch)
}

/// Writes the broker-assigned base offset into the batch at the start of
/// `batch`. Only bytes 0..8 change, and the CRC starts at byte 21, so it
/// stays valid without being recomputed.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) -> Result<(), BatchError> {
    if batch.len() < RECORD_BATCH_OVERHEAD {
        return Err(BatchError::Truncated {
            needed: RECORD_BATCH_OVERHEAD,
            available: batch.len(),
        });
    }
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
    Ok(())
}

/// Stamps the batch at the start of `batch` with the broker's append time, as
/// Kafka's broker does for a LogAppendTime topic
/// (`DefaultRecordBatch.setMaxTimestamp(LOG_APPEND_TIME, now)`): sets the
/// timestamp-type bit (other attributes rebuilt from codec, transactional,
/// control and delete-horizon bits), sets the max timestamp, and recomputes
/// the CRC. The base timestamp is left alone, as Kafka leaves it; readers
/// take every record's timestamp from the max timestamp for such batches.
///
/// The batch is validated first, so a corrupt batch is never re-signed with a
/// fresh CRC.
pub fn set_log_append_time(batch: &mut [u8], timestamp: i64) -> Result<(), BatchError> {
    let size = RecordBatch::parse(batch)?.size();
    let batch = &mut batch[..size];
    let kept = COMPRESSION_MASK | TRANSACTIONAL_FLAG | CONTROL_FLAG | DELETE_HORIZON_FLAG;
    let attributes = (i16_at(batch, ATTRIBUTES) & kept) | TIMESTAMP_TYPE_FLAG;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// What a transaction marker says: the transaction's records are
/// committed or aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    /// The transaction was aborted (control record type 0).
    Abort,
    /// The transaction was committed (control record type 1).
    Commit,
}

/// A transaction marker as Kafka writes it (`EndTransactionMarker`): a
/// transactional control batch of one record whose key is version 0 and
/// the control type, and whose value is version 0 and the coordinator
/// epoch. Base offset 0 (the log gives it its offset), base sequence -1.
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    control: ControlType,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Vec<u8> {
    let kind: i16 = match control {
        ControlType::Abort => 0,
        ControlType::Commit => 1,
    };
    // One record: length, attributes, timestamp delta, offset delta, key
    // (4 bytes), value (6 bytes), no headers; varints are zigzag, and all
    // of these fit one byte.
    let mut record = vec![0u8, 0, 0, 4 << 1];
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&kind.to_be_bytes());
    record.push(6 << 1);
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&coordinator_epoch.to_be_bytes());
    record.push(0);
    let mut batch = vec![0u8; RECORD_BATCH_OVERHEAD];
    batch.push((record.len() as u8) << 1);
    batch.extend_from_slice(&record);
    let length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    batch[MAGIC] = 2;
    let attributes = TRANSACTIONAL_FLAG | CONTROL_FLAG;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[BASE_TIMESTAMP..BASE_TIMESTAMP + 8].copy_from_slice(&timestamp.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&timestamp.to_be_bytes());
    batch[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&producer_epoch.to_be_bytes());
    batch[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&(-1i32).to_be_bytes());
    batch[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&1i32.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

impl RecordBatch<'_> {
    /// The marker a control batch holds: the type in its first record's
    /// key. `None` for a batch that is not a control batch, or whose first
    /// record does not have the key a marker has.
    pub fn control_type(&self) -> Option<ControlType> {
        if !self.is_control() {
            return None;
        }
        let mut at = RECORD_BATCH_OVERHEAD;
        let bytes = self.bytes;
        // length, attributes (one byte), timestamp delta, offset delta.
        varint(bytes, &mut at)?;
        at += 1;
        varint(bytes, &mut at)?;
        varint(bytes, &mut at)?;
        if varint(bytes, &mut at)? < 4 {
            return None;
        }
        let key = bytes.get(at..at + 4)?;
        match i16::from_be_bytes([key[2], key[3]]) {
            0 => Some(ControlType::Abort),
            1 => Some(ControlType::Commit),
            _ => None,
        }
    }
}

/// A zigzag varint at `*at` (at most 10 bytes), moving `*at` past it.
fn varint(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    None
}

/// `N` bytes at `at`; callers only pass offsets inside a checked header.
fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

fn i16_at(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(array_at(bytes, at))
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(array_at(bytes, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A marker we write parses as a valid batch, reads back its type,
    /// and decodes with kafka-protocol as the control record Kafka writes.
    #[test]
    fn control_batches_are_valid_markers() {
        for (control, kind) in [(ControlType::Commit, 1i16), (ControlType::Abort, 0)] {
            let mut bytes = control_batch(42, 3, control, 7, 1_700_000_000_000);
            set_base_offset(&mut bytes, 99).unwrap();
            let batch = RecordBatch::parse(&bytes).unwrap();
            assert!(batch.is_control() && batch.is_transactional());
            assert_eq!(batch.control_type(), Some(control));
            assert_eq!(
                (
                    batch.producer_id(),
                    batch.producer_epoch(),
                    batch.base_sequence()
                ),
                (42, 3, -1)
            );
            assert_eq!((batch.base_offset(), batch.last_offset()), (99, 99));
            let mut buf = Bytes::from(bytes.clone());
            let set = RecordBatchDecoder::decode(&mut buf).unwrap();
            let record = &set.records[0];
            assert!(record.control);
            let key = record.key.as_ref().unwrap();
            assert_eq!(&key[..], &[0, 0, 0, kind as u8][..]);
            let value = record.value.as_ref().unwrap();
            assert_eq!(&value[..], &[0, 0, 0, 0, 0, 7][..]);
            // A client's produce of a control batch is refused.
            assert!(matches!(
                produce_batch(&bytes),
                Err(BatchError::ControlBatch)
            ));
        }
    }
    use crate::XorShift;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{
        Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    };

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn record(offset: i64, timestamp: i64) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 4000,
            producer_epoch: 3,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: 100 + offset as i32,
            timestamp,
            key: Some(Bytes::from(format!("key-{offset}"))),
            value: Some(Bytes::from(vec![offset as u8; 50])),
            headers: IndexMap::new(),
        }
    }

    /// One batch of `n` records with timestamps 1000, 1010, ...
    fn encode(n: i64, compression: Compression) -> Vec<u8> {
        let records: Vec<_> = (0..n).map(|i| record(i, 1000 + 10 * i)).collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        buf.to_vec()
    }

    /// Recomputes the CRC after a test edits a CRC-covered field.
    fn resign(batch: &mut [u8]) {
        let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
        batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Vec<Record> {
        let mut buf = Bytes::copy_from_slice(bytes);
        RecordBatchDecoder::decode(&mut buf).unwrap().records
    }

    #[test]
    fn every_codec_validates_and_exposes_header_fields() {
        for codec in CODECS {
            let bytes = encode(5, codec);
            let batch = RecordBatch::parse(&bytes).unwrap();
            assert_eq!(batch.size(), bytes.len());
            assert_eq!(batch.as_bytes(), &bytes[..]);
            assert_eq!(batch.batch_length() as usize, bytes.len() - LOG_OVERHEAD);
            assert_eq!(batch.compression(), codec);
            assert_eq!(batch.base_offset(), 0);
            assert_eq!(batch.last_offset_delta(), 4);
            assert_eq!(batch.last_offset(), 4);
            assert_eq!(batch.record_count(), 5);
            assert_eq!(batch.partition_leader_epoch(), -1);
            assert_eq!(batch.base_timestamp(), 1000);
            assert_eq!(batch.max_timestamp(), 1040);
            assert_eq!(batch.timestamp_type(), TimestampType::Creation);
            assert_eq!(batch.producer_id(), 4000);
            assert_eq!(batch.producer_epoch(), 3);
            assert_eq!(batch.base_sequence(), 100);
            assert!(!batch.is_transactional());
            assert!(!batch.is_control());
            assert_eq!(batch.attributes(), codec as i16);
            assert_eq!(batch.crc(), crc32c::crc32c(&bytes[ATTRIBUTES..]));
            assert_eq!(produce_batch(&bytes), Ok(batch));
        }
    }

    #[test]
    fn transactional_and_control_bits_are_exposed() {
        let mut r = record(0, 1);
        r.transactional = true;
        r.control = true;
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, [&r], &options).unwrap();
        let batch = RecordBatch::parse(&buf).unwrap();
        assert!(batch.is_transactional());
        assert!(batch.is_control());
        assert_eq!(produce_batch(&buf), Err(BatchError::ControlBatch));
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        for codec in [Compression::None, Compression::Lz4] {
            let bytes = encode(3, codec);
            for at in 0..bytes.len() {
                for bit in 0..8 {
                    let mut bad = bytes.clone();
                    bad[at] ^= 1 << bit;
                    let result = RecordBatch::parse(&bad);
                    match at {
                        // Base offset and leader epoch are outside the CRC by
                        // design: the broker rewrites them.
                        0..8 | 12..16 => assert!(result.is_ok()),
                        8..12 => assert!(result.is_err(), "length byte {at}"),
                        MAGIC => assert!(matches!(result, Err(BatchError::Magic(_)))),
                        _ => assert!(
                            matches!(result, Err(BatchError::Crc { .. })),
                            "byte {at} bit {bit}: {result:?}"
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn stored_batch_len_walks_whole_batches_only() {
        let (a, b) = (encode(3, Compression::None), encode(5, Compression::Lz4));
        let both = [a.clone(), b.clone()].concat();
        assert_eq!(stored_batch_len(&both), Some(a.len()));
        assert_eq!(stored_batch_len(&both[a.len()..]), Some(b.len()));
        // A batch cut short, a header cut short, a negative length.
        assert_eq!(stored_batch_len(&both[a.len()..both.len() - 1]), None);
        assert_eq!(stored_batch_len(&a[..LOG_OVERHEAD - 1]), None);
        let mut negative = a.clone();
        negative[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(stored_batch_len(&negative), None);
    }

    #[test]
    fn truncated_batch_is_refused() {
        let bytes = encode(3, Compression::None);
        for len in 0..bytes.len() {
            let err = RecordBatch::parse(&bytes[..len]).unwrap_err();
            assert!(matches!(err, BatchError::Truncated { .. }), "{len}: {err}");
            assert_eq!(err.error_code(), 2);
        }
    }

    #[test]
    fn short_batch_length_is_too_small() {
        let mut bytes = encode(1, Compression::None);
        for batch_length in [-1, 0, 4, 48] {
            bytes[8..12].copy_from_slice(&i32::to_be_bytes(batch_length));
            assert_eq!(
                RecordBatch::parse(&bytes),
                Err(BatchError::TooSmall { batch_length })
            );
        }
    }

    #[test]
    fn legacy_magic_is_refused() {
        let mut bytes = encode(2, Compression::None);
        for magic in [0, 1, 3] {
            bytes[MAGIC] = magic;
            assert_eq!(
                RecordBatch::parse(&bytes),
                Err(BatchError::Magic(magic as i8))
            );
        }
        // A real v1 message set: offset, size, crc, magic 1, attributes,
        // timestamp, null key, 3-byte value.
        let mut v1 = Vec::new();
        v1.extend_from_slice(&0i64.to_be_bytes());
        v1.extend_from_slice(&25i32.to_be_bytes());
        v1.extend_from_slice(&[0, 0, 0, 0, 1, 0]);
        v1.extend_from_slice(&7i64.to_be_bytes());
        v1.extend_from_slice(&(-1i32).to_be_bytes());
        v1.extend_from_slice(&3i32.to_be_bytes());
        v1.extend_from_slice(b"abc");
        assert_eq!(RecordBatch::parse(&v1), Err(BatchError::Magic(1)));
        assert_eq!(produce_batch(&v1).unwrap_err().error_code(), 87);
    }

    #[test]
    fn count_and_offset_delta_are_checked() {
        let good = encode(3, Compression::None);
        let with = |count: i32, delta: i32| {
            let mut b = good.clone();
            b[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&count.to_be_bytes());
            b[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].copy_from_slice(&delta.to_be_bytes());
            resign(&mut b);
            b
        };
        assert_eq!(RecordBatch::parse(&with(-1, 2)), Err(BatchError::Count(-1)));
        let short_delta = BatchError::OffsetDelta {
            last_offset_delta: 1,
            count: 3,
        };
        assert_eq!(RecordBatch::parse(&with(3, 1)), Err(short_delta));
        assert!(RecordBatch::parse(&with(3, -1)).is_err());
        // Compaction can leave gaps or an empty batch: valid to read...
        assert!(RecordBatch::parse(&with(3, 5)).is_ok());
        assert!(RecordBatch::parse(&with(0, 2)).is_ok());
        // ...but a producer must send dense, non-empty batches.
        let gap = BatchError::OffsetDelta {
            last_offset_delta: 5,
            count: 3,
        };
        assert_eq!(produce_batch(&with(3, 5)), Err(gap));
        assert_eq!(produce_batch(&with(0, 2)), Err(BatchError::Count(0)));
    }

    #[test]
    fn unknown_codec_and_missing_sequence_are_refused() {
        let mut bytes = encode(1, Compression::None);
        bytes[ATTRIBUTES + 1] |= 0x07;
        resign(&mut bytes);
        assert_eq!(RecordBatch::parse(&bytes), Err(BatchError::Compression(7)));

        let mut bytes = encode(1, Compression::None);
        bytes[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&(-1i32).to_be_bytes());
        resign(&mut bytes);
        assert!(RecordBatch::parse(&bytes).is_ok());
        assert_eq!(
            produce_batch(&bytes),
            Err(BatchError::Sequence {
                producer_id: 4000,
                base_sequence: -1
            })
        );
    }

    #[test]
    fn base_offset_rewrite_changes_only_the_first_eight_bytes() {
        for codec in CODECS {
            let original = encode(4, codec);
            let mut bytes = original.clone();
            set_base_offset(&mut bytes, 1_234_567).unwrap();
            assert_ne!(bytes[..8], original[..8]);
            assert_eq!(bytes[8..], original[8..]);
            let batch = RecordBatch::parse(&bytes).unwrap();
            assert_eq!(batch.base_offset(), 1_234_567);
            assert_eq!(batch.last_offset(), 1_234_570);
            let offsets: Vec<_> = decode(&bytes).iter().map(|r| r.offset).collect();
            assert_eq!(offsets, [1_234_567, 1_234_568, 1_234_569, 1_234_570]);
        }
        assert!(set_base_offset(&mut [0; 60], 1).is_err());
    }

    #[test]
    fn log_append_time_rewrite_is_kafkas() {
        for codec in CODECS {
            let original = encode(3, codec);
            let mut bytes = original.clone();
            set_log_append_time(&mut bytes, 9_999_999).unwrap();

            let batch = RecordBatch::parse(&bytes).unwrap();
            assert_eq!(batch.timestamp_type(), TimestampType::LogAppend);
            assert_eq!(batch.max_timestamp(), 9_999_999);
            assert_eq!(
                batch.base_timestamp(),
                1000,
                "Kafka keeps the first timestamp"
            );
            assert_eq!(batch.compression(), codec);
            // Payload (compressed or not) is untouched.
            assert_eq!(bytes[RECORD_COUNT..], original[RECORD_COUNT..]);

            // kafka-protocol's decoder checks the new CRC and sees the type.
            let mut buf = Bytes::from(bytes.clone());
            let info = RecordBatchDecoder::decode_batch_info(&mut buf).unwrap();
            assert_eq!(info[0].timestamp_type, TimestampType::LogAppend);
            for r in decode(&bytes) {
                assert_eq!(r.timestamp_type, TimestampType::LogAppend);
            }
        }
    }

    #[test]
    fn log_append_time_never_re_signs_a_corrupt_batch() {
        let mut bytes = encode(2, Compression::None);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let before = bytes.clone();
        assert!(matches!(
            set_log_append_time(&mut bytes, 5),
            Err(BatchError::Crc { .. })
        ));
        assert_eq!(bytes, before);
    }

    #[test]
    fn concatenated_batches_iterate_in_order() {
        let mut records = Vec::new();
        for (n, codec) in [
            (1, Compression::None),
            (4, Compression::Zstd),
            (2, Compression::Gzip),
        ] {
            let mut batch = encode(n, codec);
            set_base_offset(&mut batch, records.len() as i64).unwrap();
            records.extend_from_slice(&batch);
        }
        let counts: Vec<_> = batches(&records)
            .map(|b| {
                let b = b.unwrap();
                (b.record_count(), b.compression())
            })
            .collect();
        assert_eq!(
            counts,
            [
                (1, Compression::None),
                (4, Compression::Zstd),
                (2, Compression::Gzip)
            ]
        );
        let total: usize = batches(&records).map(|b| b.unwrap().size()).sum();
        assert_eq!(total, records.len());
        assert_eq!(produce_batch(&records), Err(BatchError::MultipleBatches));
        assert_eq!(produce_batch(&[]), Err(BatchError::NoBatch));

        // A partial trailing batch ends the iteration with an error.
        let first = encode(1, Compression::None);
        let mut partial = first.clone();
        partial.extend_from_slice(&first[..30]);
        let results: Vec<_> = batches(&partial).collect();
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(BatchError::Truncated { .. })));
        assert!(matches!(
            produce_batch(&partial),
            Err(BatchError::Truncated { .. })
        ));
    }

    fn exercise(bytes: &mut [u8]) {
        for batch in batches(bytes).flatten() {
            let _ = (batch.last_offset(), batch.timestamp_type());
        }
        let _ = produce_batch(bytes);
        let _ = set_log_append_time(bytes, 1);
        let _ = set_base_offset(bytes, i64::MAX);
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let template = encode(3, Compression::Snappy);
        for i in 0..5000 {
            // Half pure noise, half a valid batch with random damage.
            let mut bytes = if i % 2 == 0 {
                let len = rng.below(200);
                (0..len).map(|_| rng.next() as u8).collect::<Vec<_>>()
            } else {
                let mut b = template.clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(b.len());
                    b[at] = rng.next() as u8;
                }
                b.truncate(rng.below(b.len() + 1));
                // Re-sign some so the checks behind the CRC see damage too.
                if i % 4 == 3 && b.len() >= RECORD_BATCH_OVERHEAD {
                    resign(&mut b);
                }
                b
            };
            exercise(&mut bytes);
        }
    }
}
