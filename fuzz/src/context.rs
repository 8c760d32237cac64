//! What a run knows about the broker it fuzzes: the topics it created (with
//! their ids, for the versions that name topics by id), a real producer id,
//! and the record batches it draws from. Built once by [`crate::setup`];
//! read-only afterwards, so workers share it freely.

use bytes::Bytes;
use uuid::Uuid;

use crate::batches;

/// Partitions of each working topic (requests use 0..PARTITIONS, and
/// hostile ones anything).
pub const PARTITIONS: i32 = 4;
/// Working topics: created at start, never deleted by valid requests.
pub const TOPICS: &[&str] = &["fz-t0", "fz-t1", "fz-t2", "fz-t3"];
/// Topics valid CreateTopics / DeleteTopics / CreatePartitions churn: a
/// small fixed set, so a long run cannot pile up topics.
pub const CHURN_TOPICS: usize = 8;

#[derive(Debug, Clone)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
}

#[derive(Debug, Clone)]
pub struct Context {
    pub topics: Vec<Topic>,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub batches: Vec<Bytes>,
    pub bomb: Bytes,
}

impl Context {
    /// A context with made-up ids, for building requests without a broker.
    pub fn offline() -> Context {
        Context {
            topics: TOPICS
                .iter()
                .enumerate()
                .map(|(i, name)| Topic {
                    name: name.to_string(),
                    id: Uuid::from_u128(i as u128 + 1),
                })
                .collect(),
            producer_id: 1000,
            producer_epoch: 0,
            batches: batches::valid_set(1000, 0),
            // The real bomb takes a moment to compress; offline requests
            // only need its place.
            bomb: batches::encode(
                1,
                kafka_protocol::records::Compression::Zstd,
                (-1, -1, -1),
                1,
            ),
        }
    }

    /// A churn topic name (`fz-new-N`).
    pub fn churn_topic(n: u64) -> String {
        format!("fz-new-{}", n % CHURN_TOPICS as u64)
    }
}
