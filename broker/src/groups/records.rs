//! The group records a coordinator shard keeps in its WAL (frame type
//! [`GROUP_RECORD`]): committed offsets, their tombstones,
//! group tombstones and the last generation of each group. Recovery replays
//! them in WAL order, so the last record for a key wins.
//!
//! Layout (big-endian): format version (u8, 1), record kind (u8), group id
//! (u16 length + UTF-8), then the kind's body:
//!
//! | kind | body |
//! | --- | --- |
//! | 1 offset commit | u32 count, then per partition: topic (u16 + UTF-8), topic id (16), partition (i32), offset (i64), leader epoch (i32), metadata (i32 length, -1 null, + UTF-8), commit time ms (i64) |
//! | 2 offset delete | u32 count, then per partition: topic (u16 + UTF-8), partition (i32) |
//! | 3 group delete | nothing: the group and all its offsets are gone |
//! | 4 generation | generation (i32), protocol type (i16 length, -1 null, + UTF-8) |
//! | 5 transactional offset commit | producer id (i64), then as kind 1: held until the transaction ends |
//! | 6 transaction end | producer id (i64), committed (u8): the producer's held offsets become committed, or are dropped |

use crate::frames::FrameType;

/// The WAL frame type of group records.
pub const GROUP_RECORD: FrameType = FrameType {
    id: 3,
    name: "group record",
};

/// Version of the record layout, first byte of every group frame payload.
const FORMAT_VERSION: u8 = 1;

const KIND_OFFSET_COMMIT: u8 = 1;
const KIND_OFFSET_DELETE: u8 = 2;
const KIND_GROUP_DELETE: u8 = 3;
const KIND_GENERATION: u8 = 4;
const KIND_TXN_COMMIT: u8 = 5;
const KIND_TXN_END: u8 = 6;

/// One committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRecord {
    /// Topic name (offsets are keyed by name, as in Kafka).
    pub topic: String,
    /// Id of the topic when committed: a recreated topic of the same name
    /// does not inherit the offsets of the deleted one.
    pub topic_id: [u8; 16],
    /// Partition index.
    pub partition: i32,
    /// The committed offset (the next one to consume).
    pub offset: i64,
    /// Leader epoch sent with the commit (-1: none).
    pub leader_epoch: i32,
    /// Client metadata string.
    pub metadata: Option<String>,
    /// Broker time of the commit, ms since the epoch (offset retention).
    pub commit_timestamp: i64,
}

/// A record of the group log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    /// Offsets committed by one OffsetCommit request.
    Commit {
        /// Group id.
        group: String,
        /// The committed offsets.
        offsets: Vec<OffsetRecord>,
    },
    /// Offsets removed (OffsetDelete, retention).
    DeleteOffsets {
        /// Group id.
        group: String,
        /// Topic name and partition of each removed offset.
        partitions: Vec<(String, i32)>,
    },
    /// The group and all its offsets removed (DeleteGroups, clean-up).
    DeleteGroup {
        /// Group id.
        group: String,
    },
    /// Offsets committed by a transaction (TxnOffsetCommit), held until
    /// it ends.
    TxnCommit {
        /// Group id.
        group: String,
        /// The transaction's producer.
        producer_id: i64,
        /// The offsets.
        offsets: Vec<OffsetRecord>,
    },
    /// The transaction of `producer_id` ended: its held offsets become
    /// the committed ones (`committed`) or are dropped.
    TxnEnd {
        /// Group id.
        group: String,
        /// The transaction's producer.
        producer_id: i64,
        /// Committed, not aborted.
        committed: bool,
    },
    /// A rebalance completed: generation ids keep growing across restarts.
    Generation {
        /// Group id.
        group: String,
        /// The new generation id.
        generation: i32,
        /// The group's protocol type ("consumer", "connect", ...).
        protocol_type: Option<String>,
    },
}

impl GroupRecord {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            GroupRecord::Commit { group, .. }
            | GroupRecord::TxnCommit { group, .. }
            | GroupRecord::TxnEnd { group, .. }
            | GroupRecord::DeleteOffsets { group, .. }
            | GroupRecord::DeleteGroup { group }
            | GroupRecord::Generation { group, .. } => group,
        }
    }

    /// The frame payload. Strings longer than their length field are cut
    /// by the caller's validation (group ids, topic names, metadata).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let kind = match self {
            GroupRecord::Commit { .. } => KIND_OFFSET_COMMIT,
            GroupRecord::DeleteOffsets { .. } => KIND_OFFSET_DELETE,
            GroupRecord::DeleteGroup { .. } => KIND_GROUP_DELETE,
            GroupRecord::Generation { .. } => KIND_GENERATION,
            GroupRecord::TxnCommit { .. } => KIND_TXN_COMMIT,
            GroupRecord::TxnEnd { .. } => KIND_TXN_END,
        };
        out.push(FORMAT_VERSION);
        out.push(kind);
        put_short_str(&mut out, self.group());
        match self {
            GroupRecord::Commit { offsets, .. } => put_offsets(&mut out, offsets),
            GroupRecord::TxnCommit {
                producer_id,
                offsets,
                ..
            } => {
                out.extend_from_slice(&producer_id.to_be_bytes());
                put_offsets(&mut out, offsets);
            }
            GroupRecord::TxnEnd {
                producer_id,
                committed,
                ..
            } => {
                out.extend_from_slice(&producer_id.to_be_bytes());
                out.push(u8::from(*committed));
            }
            GroupRecord::DeleteOffsets { partitions, .. } => {
                out.extend_from_slice(&(partitions.len() as u32).to_be_bytes());
                for (topic, partition) in partitions {
                    put_short_str(&mut out, topic);
                    out.extend_from_slice(&partition.to_be_bytes());
                }
            }
            GroupRecord::DeleteGroup { .. } => {}
            GroupRecord::Generation {
                generation,
                protocol_type,
                ..
            } => {
                out.extend_from_slice(&generation.to_be_bytes());
                match protocol_type {
                    None => out.extend_from_slice(&(-1i16).to_be_bytes()),
                    Some(p) => put_short_str(&mut out, p),
                }
            }
        }
        out
    }

    /// Parses a frame payload; the error says what is wrong with it.
    pub fn decode(payload: &[u8]) -> Result<GroupRecord, String> {
        let mut r = Reader(payload);
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(format!("unknown group record format version {version}"));
        }
        let kind = r.u8()?;
        let group = r.short_str()?;
        let record = match kind {
            KIND_OFFSET_COMMIT => GroupRecord::Commit {
                group,
                offsets: r.offsets()?,
            },
            KIND_TXN_COMMIT => GroupRecord::TxnCommit {
                group,
                producer_id: r.i64()?,
                offsets: r.offsets()?,
            },
            KIND_TXN_END => GroupRecord::TxnEnd {
                group,
                producer_id: r.i64()?,
                committed: r.u8()? != 0,
            },
            KIND_OFFSET_DELETE => {
                let count = r.u32()? as usize;
                let mut partitions = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    let topic = r.short_str()?;
                    partitions.push((topic, r.i32()?));
                }
                GroupRecord::DeleteOffsets { group, partitions }
            }
            KIND_GROUP_DELETE => GroupRecord::DeleteGroup { group },
            KIND_GENERATION => {
                let generation = r.i32()?;
                let len = i16::from_be_bytes(r.take(2)?.try_into().map_err(|_| "short")?);
                let protocol_type = if len < 0 {
                    None
                } else {
                    Some(utf8(r.take(len as usize)?)?)
                };
                GroupRecord::Generation {
                    group,
                    generation,
                    protocol_type,
                }
            }
            other => return Err(format!("unknown group record kind {other}")),
        };
        if !r.0.is_empty() {
            return Err(format!("{} trailing bytes after a group record", r.0.len()));
        }
        Ok(record)
    }
}

/// A list of offsets: u32 count, then each as kind 1 describes.
fn put_offsets(out: &mut Vec<u8>, offsets: &[OffsetRecord]) {
    out.extend_from_slice(&(offsets.len() as u32).to_be_bytes());
    for o in offsets {
        put_short_str(out, &o.topic);
        out.extend_from_slice(&o.topic_id);
        out.extend_from_slice(&o.partition.to_be_bytes());
        out.extend_from_slice(&o.offset.to_be_bytes());
        out.extend_from_slice(&o.leader_epoch.to_be_bytes());
        match &o.metadata {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(m) => {
                out.extend_from_slice(&(m.len() as i32).to_be_bytes());
                out.extend_from_slice(m.as_bytes());
            }
        }
        out.extend_from_slice(&o.commit_timestamp.to_be_bytes());
    }
}

fn put_short_str(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "string is not UTF-8".to_string())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// A list of offsets as [`put_offsets`] writes it.
    fn offsets(&mut self) -> Result<Vec<OffsetRecord>, String> {
        let count = self.u32()? as usize;
        let mut offsets = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let topic = self.short_str()?;
            let topic_id: [u8; 16] = self.take(16)?.try_into().map_err(|_| "short id")?;
            let partition = self.i32()?;
            let offset = self.i64()?;
            let leader_epoch = self.i32()?;
            let len = self.i32()?;
            let metadata = if len < 0 {
                None
            } else {
                Some(utf8(self.take(len as usize)?)?)
            };
            let commit_timestamp = self.i64()?;
            offsets.push(OffsetRecord {
                topic,
                topic_id,
                partition,
                offset,
                leader_epoch,
                metadata,
                commit_timestamp,
            });
        }
        Ok(offsets)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "group record ends early: wanted {n} bytes, {} left",
                self.0.len()
            ));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        self.take(N)?
            .try_into()
            .map_err(|_| "short field".to_string())
    }

    fn short_str(&mut self) -> Result<String, String> {
        let len = u16::from_be_bytes(self.array()?) as usize;
        utf8(self.take(len)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<GroupRecord> {
        vec![
            GroupRecord::Commit {
                group: "g1".into(),
                offsets: vec![
                    OffsetRecord {
                        topic: "orders".into(),
                        topic_id: [7; 16],
                        partition: 3,
                        offset: 42,
                        leader_epoch: -1,
                        metadata: None,
                        commit_timestamp: 1_700_000_000_000,
                    },
                    OffsetRecord {
                        topic: "t.x-y_z".into(),
                        topic_id: [1; 16],
                        partition: 0,
                        offset: i64::MAX,
                        leader_epoch: 5,
                        metadata: Some("käse".into()),
                        commit_timestamp: 0,
                    },
                ],
            },
            GroupRecord::DeleteOffsets {
                group: String::new(),
                partitions: vec![("a".into(), 1), ("b".into(), 2)],
            },
            GroupRecord::DeleteGroup {
                group: "gone".into(),
            },
            GroupRecord::Generation {
                group: "g".into(),
                generation: 9,
                protocol_type: Some("consumer".into()),
            },
            GroupRecord::Generation {
                group: "g".into(),
                generation: 0,
                protocol_type: None,
            },
            GroupRecord::TxnCommit {
                group: "g".into(),
                producer_id: 12,
                offsets: vec![OffsetRecord {
                    topic: "in".into(),
                    topic_id: [2; 16],
                    partition: 1,
                    offset: 77,
                    leader_epoch: -1,
                    metadata: Some(String::new()),
                    commit_timestamp: 5,
                }],
            },
            GroupRecord::TxnEnd {
                group: "g".into(),
                producer_id: 12,
                committed: true,
            },
        ]
    }

    #[test]
    fn records_round_trip() {
        for record in samples() {
            let bytes = record.encode();
            assert_eq!(GroupRecord::decode(&bytes).unwrap(), record);
        }
    }

    #[test]
    fn every_truncation_and_garbage_is_an_error_not_a_panic() {
        for record in samples() {
            let bytes = record.encode();
            for cut in 0..bytes.len() {
                assert!(GroupRecord::decode(&bytes[..cut]).is_err(), "cut {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(GroupRecord::decode(&longer).is_err());
        }
        assert!(GroupRecord::decode(&[2, 1, 0, 0]).is_err());
        assert!(GroupRecord::decode(&[1, 99, 0, 0]).is_err());
    }
}
