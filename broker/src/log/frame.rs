//! The log's WAL frames.
//!
//! | type | payload |
//! | --- | --- |
//! | 2 record batch | topic id (16 bytes), partition (i32, big-endian), then the batch exactly as served to consumers |
//! | 4 log start | topic id (16), partition (i32), the partition's new log start offset (i64) |
//! | 5 relocated batch | as a record batch: a batch the cleaner copied forward from an older segment |
//!
//! A record batch is always newer than every frame before it, so replay
//! appends it; a relocated batch is older than frames before it, so replay
//! puts it in its place by offset (and it replaces its original, if that
//! is still there).

use crate::frames::FrameType;

use super::partition::PartitionKey;

/// A record batch of one partition.
pub const RECORD_BATCH: FrameType = FrameType {
    id: 2,
    name: "record batch",
};
/// A partition's log start offset moved (the log was trimmed).
pub const LOG_START: FrameType = FrameType {
    id: 4,
    name: "log start",
};
/// A record batch copied forward by the cleaner (same payload).
pub const RELOCATED_BATCH: FrameType = FrameType {
    id: 5,
    name: "relocated batch",
};
/// Bytes before the batch in a record-batch frame.
pub const BATCH_FRAME_HEADER: usize = 20;

/// The header of a record-batch frame.
pub fn batch_frame_header(key: &PartitionKey) -> [u8; BATCH_FRAME_HEADER] {
    let mut h = [0u8; BATCH_FRAME_HEADER];
    h[..16].copy_from_slice(&key.topic_id);
    h[16..].copy_from_slice(&key.partition.to_be_bytes());
    h
}

/// Splits a record-batch frame payload into its partition and batch bytes.
pub fn parse_batch_frame(payload: &[u8]) -> Option<(PartitionKey, &[u8])> {
    let key = parse_key(payload)?;
    Some((key, &payload[BATCH_FRAME_HEADER..]))
}

/// The payload of a log-start frame.
pub fn encode_log_start(key: &PartitionKey, log_start: i64) -> [u8; BATCH_FRAME_HEADER + 8] {
    let mut out = [0u8; BATCH_FRAME_HEADER + 8];
    out[..BATCH_FRAME_HEADER].copy_from_slice(&batch_frame_header(key));
    out[BATCH_FRAME_HEADER..].copy_from_slice(&log_start.to_be_bytes());
    out
}

/// The partition and log start offset of a log-start frame.
pub fn parse_log_start(payload: &[u8]) -> Option<(PartitionKey, i64)> {
    let key = parse_key(payload)?;
    let offset: [u8; 8] = payload.get(BATCH_FRAME_HEADER..)?.try_into().ok()?;
    Some((key, i64::from_be_bytes(offset)))
}

fn parse_key(payload: &[u8]) -> Option<PartitionKey> {
    let topic_id: [u8; 16] = payload.get(..16)?.try_into().ok()?;
    let partition: [u8; 4] = payload.get(16..BATCH_FRAME_HEADER)?.try_into().ok()?;
    Some(PartitionKey::new(topic_id, i32::from_be_bytes(partition)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_short_ones_are_refused() {
        let key = PartitionKey::new([9; 16], -3);
        let mut batch = batch_frame_header(&key).to_vec();
        batch.extend_from_slice(b"batch");
        assert_eq!(parse_batch_frame(&batch), Some((key, &b"batch"[..])));
        assert_eq!(parse_batch_frame(&batch[..19]), None);
        let start = encode_log_start(&key, 42);
        assert_eq!(parse_log_start(&start), Some((key, 42)));
        assert_eq!(parse_log_start(&start[..27]), None);
    }
}
