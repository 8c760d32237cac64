//! Retention: each partition's log start moves past the batches its topic
//! no longer keeps (`retention.ms`: a batch goes once its newest timestamp
//! is older; `retention.bytes`: the oldest go while what stays is at least
//! that much), with the broker's defaults (`--log-retention-ms`,
//! `--log-retention-bytes`) for topics that set neither. The move is a
//! log-start frame, durable before it counts; the space comes back when
//! the cleaner ([`super::cleaner`]) reclaims the segments.

use crate::config::ServeArgs;
use crate::error::BrokerError;
use crate::metadata::{Metadata, Topic};

use super::{Log, PartitionKey};

/// What a topic keeps; `None`: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// retention.ms.
    pub ms: Option<i64>,
    /// retention.bytes.
    pub bytes: Option<u64>,
}

/// A configured limit: -1 (or any negative) is none.
fn limit(value: i64) -> Option<i64> {
    (value >= 0).then_some(value)
}

impl Retention {
    /// The broker's defaults.
    pub fn defaults(args: &ServeArgs) -> Retention {
        Retention {
            ms: limit(args.log_retention_ms),
            bytes: limit(args.log_retention_bytes).map(|b| b as u64),
        }
    }

    /// `topic`'s retention: its overrides, else `defaults`.
    pub fn of(topic: &Topic, defaults: Retention) -> Retention {
        let set = |key: &str| topic.configs.get(key).and_then(|v| v.parse::<i64>().ok());
        Retention {
            ms: set("retention.ms").map_or(defaults.ms, limit),
            bytes: set("retention.bytes").map_or(defaults.bytes, |b| limit(b).map(|b| b as u64)),
        }
    }
}

impl Log {
    /// Moves the log start of every partition of this shard past what its
    /// topic no longer keeps, durably; returns the partitions moved.
    pub async fn enforce_retention(
        &self,
        metadata: &Metadata,
        defaults: Retention,
        now_ms: i64,
    ) -> Result<usize, BrokerError> {
        let mut due: Vec<(PartitionKey, i64)> = Vec::new();
        {
            let state = self.state.borrow();
            for topic in metadata.topics.values() {
                let retention = Retention::of(topic, defaults);
                if retention == Retention::default() {
                    continue;
                }
                let min_timestamp = retention.ms.map(|ms| now_ms.saturating_sub(ms));
                for (index, owner) in topic.partitions.iter().enumerate() {
                    if *owner != self.shard {
                        continue;
                    }
                    let key = PartitionKey::new(topic.id, index as i32);
                    let start = state
                        .partitions
                        .get(&key)
                        .and_then(|p| p.retention_log_start(min_timestamp, retention.bytes));
                    if let Some(start) = start {
                        due.push((key, start));
                    }
                }
            }
        }
        // Every move is handed to the WAL first, so one flush makes them
        // all durable.
        let mut last = None;
        for (key, start) in &due {
            if let Some(durable) = self.submit_log_start(key, *start)? {
                last = Some(durable);
            }
        }
        if let Some(durable) = last {
            durable.await?;
        }
        if !due.is_empty() {
            tracing::info!(
                shard = self.shard.index(),
                partitions = due.len(),
                "retention moved log starts"
            );
        }
        Ok(due.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_overrides_win_and_minus_one_is_no_limit() {
        let defaults = Retention {
            ms: Some(1_000),
            bytes: None,
        };
        let mut topic = Topic {
            name: "t".into(),
            id: [1; 16],
            partitions: vec![],
            configs: Default::default(),
        };
        assert_eq!(Retention::of(&topic, defaults), defaults);
        topic.configs.insert("retention.ms".into(), "-1".into());
        topic.configs.insert("retention.bytes".into(), "500".into());
        assert_eq!(
            Retention::of(&topic, defaults),
            Retention {
                ms: None,
                bytes: Some(500)
            }
        );
    }
}
