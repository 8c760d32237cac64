//! What a run knows about the broker it fuzzes: the topics it created (with
//! their ids, for the versions that name topics by id), a real producer id,
//! the record batches it draws from, and the group members the broker
//! admitted. Built once by [`crate::setup`]; only the members change
//! afterwards (behind a lock), so workers share it freely.

use std::collections::VecDeque;
use std::sync::Mutex;

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

/// A member id the broker handed out in a JoinGroup answer.
#[derive(Debug, Clone)]
pub struct Member {
    pub group: String,
    pub member_id: String,
    /// The generation it joined (-1: still pending, MEMBER_ID_REQUIRED).
    pub generation: i32,
}

/// Members remembered; older ones are forgotten (they expire anyway).
const MEMBERS: usize = 64;

#[derive(Debug)]
pub struct Context {
    pub topics: Vec<Topic>,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub batches: Vec<Bytes>,
    pub bomb: Bytes,
    /// Real members, so Heartbeat, SyncGroup, LeaveGroup and OffsetCommit
    /// reach past UNKNOWN_MEMBER_ID. Requests that use one depend on what
    /// the broker answered before, so they replay only approximately.
    pub members: Mutex<VecDeque<Member>>,
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
            members: Mutex::new(VecDeque::new()),
        }
    }

    /// Remembers a member the broker admitted (or asked to rejoin with).
    pub fn learn(&self, member: Member) {
        if let Ok(mut members) = self.members.lock() {
            members.retain(|m| m.group != member.group || m.member_id != member.member_id);
            members.push_back(member);
            if members.len() > MEMBERS {
                members.pop_front();
            }
        }
    }

    /// One remembered member, chosen by `pick`.
    pub fn member(&self, pick: u64) -> Option<Member> {
        let members = self.members.lock().ok()?;
        if members.is_empty() {
            return None;
        }
        members.get((pick % members.len() as u64) as usize).cloned()
    }

    /// A churn topic name (`fz-new-N`).
    pub fn churn_topic(n: u64) -> String {
        format!("fz-new-{}", n % CHURN_TOPICS as u64)
    }
}
