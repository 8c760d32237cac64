//! The controller: the only code that changes topic metadata. It runs on
//! shard 0 (other shards call it there), one change at a time; each change
//! is persisted durably and then installed on every shard before the
//! request that caused it is answered. Its state on that shard (the change
//! lock, the producer-id block) is `state`; producer ids are
//! `producer_ids`.

pub mod producer_ids;
pub mod state;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::BrokerError;
use crate::metadata::{self, invalid_config, invalid_topic_name, Metadata, Topic};
use crate::shard::Shard;
use crate::shard_id::ShardId;

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partition count (-1: the broker default).
    pub partitions: i32,
    /// Replication factor (-1: default; only 1 is possible on one broker).
    pub replication_factor: i16,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
}

/// Creates topics (on the controller); one result per topic, in order.
pub async fn create_topics(
    shard: Rc<Shard>,
    topics: Vec<NewTopic>,
    validate_only: bool,
) -> Vec<Result<Arc<Topic>, BrokerError>> {
    let Ok(_permit) = shard.controller().lock.acquire_permit(1).await else {
        return topics.iter().map(|_| Err(shutting_down())).collect();
    };
    let mut next = (*shard.metadata()).clone();
    let mut results = Vec::with_capacity(topics.len());
    for t in topics {
        let result = check_new_topic(&shard, &next, &t).map(|partitions| {
            let start = crate::util::fnv1a(t.name.as_bytes()) as usize % shard.count();
            Arc::new(Topic {
                name: t.name.clone(),
                id: metadata::new_topic_id(),
                partitions: (0..partitions)
                    .map(|p| ShardId::new((start + p) % shard.count()))
                    .collect(),
                configs: t.configs.clone(),
            })
        });
        if let Ok(topic) = &result {
            if !validate_only {
                next.topics.insert(topic.name.clone(), topic.clone());
            }
        }
        results.push(result);
    }
    if !validate_only && results.iter().any(Result::is_ok) {
        if let Err(e) = publish(&shard, next).await {
            return results.iter().map(|_| Err(storage_error(&e))).collect();
        }
        for topic in results.iter().flatten() {
            tracing::info!(
                topic = topic.name,
                partitions = topic.partitions.len(),
                "topic created"
            );
        }
    }
    results
}

fn check_new_topic(shard: &Shard, metadata: &Metadata, t: &NewTopic) -> Result<usize, BrokerError> {
    if let Some(why) = invalid_topic_name(&t.name) {
        return Err(BrokerError::InvalidTopic(why));
    }
    if metadata.topics.contains_key(&t.name) {
        return Err(BrokerError::TopicAlreadyExists(format!(
            "topic '{}' already exists",
            t.name
        )));
    }
    let partitions = if t.partitions == -1 {
        shard.config().default_partitions
    } else {
        t.partitions
    };
    let partitions = check_partition_count(shard, metadata, &t.name, 0, partitions)?;
    if t.replication_factor != -1 && t.replication_factor != 1 {
        return Err(BrokerError::InvalidReplicationFactor(format!(
            "replication factor {} is larger than the 1 broker available",
            t.replication_factor
        )));
    }
    for (k, v) in &t.configs {
        if let Some(why) = invalid_config(k, v) {
            return Err(BrokerError::InvalidConfig(why));
        }
    }
    Ok(partitions)
}

/// Largest partition count of one topic.
pub const MAX_PARTITIONS_PER_TOPIC: usize = 100_000;

/// A topic's new partition count, checked against what it has (`current`),
/// the per-topic limit and the broker's total (`--max-partitions`). The
/// count comes off the wire: it may be negative or huge.
fn check_partition_count(
    shard: &Shard,
    metadata: &Metadata,
    topic: &str,
    current: usize,
    count: i32,
) -> Result<usize, BrokerError> {
    let wanted = usize::try_from(count)
        .ok()
        .filter(|&n| n > current && (1..=MAX_PARTITIONS_PER_TOPIC).contains(&n));
    let Some(wanted) = wanted else {
        return Err(BrokerError::InvalidPartitions(format!(
            "topic '{topic}': the partition count must be more than {current} and at most {MAX_PARTITIONS_PER_TOPIC}, got {count}"
        )));
    };
    let total: usize = metadata.topics.values().map(|t| t.partitions.len()).sum();
    let limit = shard.config().max_partitions;
    if total - current + wanted > limit {
        return Err(BrokerError::InvalidPartitions(format!(
            "topic '{topic}': the broker holds {total} partitions and allows {limit} \
             (--max-partitions); {wanted} for this topic would pass that"
        )));
    }
    Ok(wanted)
}

/// What to delete: a name or an id.
#[derive(Debug, Clone)]
pub enum TopicRef {
    /// By name.
    Name(String),
    /// By topic id.
    Id([u8; 16]),
}

/// Deletes topics (on the controller); one result per topic, in order.
pub async fn delete_topics(
    shard: Rc<Shard>,
    topics: Vec<TopicRef>,
) -> Vec<Result<Arc<Topic>, BrokerError>> {
    let Ok(_permit) = shard.controller().lock.acquire_permit(1).await else {
        return topics.iter().map(|_| Err(shutting_down())).collect();
    };
    let mut next = (*shard.metadata()).clone();
    let mut results = Vec::with_capacity(topics.len());
    for t in topics {
        let found = match &t {
            TopicRef::Name(name) => next.topics.get(name).cloned().ok_or_else(|| {
                BrokerError::UnknownTopicOrPartition(format!("topic '{name}' does not exist"))
            }),
            TopicRef::Id(id) => next.by_id(id).cloned().ok_or(BrokerError::UnknownTopicId),
        };
        if let Ok(topic) = &found {
            next.topics.remove(&topic.name);
        }
        results.push(found);
    }
    if results.iter().any(Result::is_ok) {
        if let Err(e) = publish(&shard, next).await {
            return results.iter().map(|_| Err(storage_error(&e))).collect();
        }
        for topic in results.iter().flatten() {
            tracing::info!(topic = topic.name, "topic deleted");
        }
    }
    results
}

/// Raises partition counts (on the controller); one result per topic.
pub async fn create_partitions(
    shard: Rc<Shard>,
    topics: Vec<(String, i32)>,
    validate_only: bool,
) -> Vec<Result<(), BrokerError>> {
    let Ok(_permit) = shard.controller().lock.acquire_permit(1).await else {
        return topics.iter().map(|_| Err(shutting_down())).collect();
    };
    let mut next = (*shard.metadata()).clone();
    let mut results = Vec::with_capacity(topics.len());
    for (name, count) in topics {
        let result = match next.topics.get(&name).cloned() {
            None => Err(BrokerError::UnknownTopicOrPartition(format!(
                "topic '{name}' does not exist"
            ))),
            Some(t) => check_partition_count(&shard, &next, &name, t.partitions.len(), count).map(
                |count| {
                    let mut grown = (*t).clone();
                    let start = crate::util::fnv1a(name.as_bytes()) as usize % shard.count();
                    grown.partitions = (0..count)
                        .map(|p| ShardId::new((start + p) % shard.count()))
                        .collect();
                    if !validate_only {
                        next.topics.insert(name.clone(), Arc::new(grown));
                    }
                },
            ),
        };
        results.push(result);
    }
    if !validate_only && results.iter().any(Result::is_ok) {
        if let Err(e) = publish(&shard, next).await {
            return results.iter().map(|_| Err(storage_error(&e))).collect();
        }
    }
    results
}

/// One change of a topic config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// Set the override to this value.
    Set(String),
    /// Remove the override (back to the default).
    Delete,
    /// Add these entries to a list config.
    Append(String),
    /// Remove these entries from a list config.
    Subtract(String),
}

/// Config changes of one topic.
#[derive(Debug, Clone)]
pub struct TopicConfigChanges {
    /// The topic.
    pub topic: String,
    /// Start from no overrides (AlterConfigs) instead of the current ones
    /// (IncrementalAlterConfigs).
    pub replace: bool,
    /// Changes in order.
    pub changes: Vec<(String, ConfigChange)>,
}

/// Topic configs whose value is a comma-separated list (APPEND and
/// SUBTRACT apply to them only).
const LIST_CONFIGS: &[&str] = &["cleanup.policy"];

/// The overrides `changes` leave on a topic that has `current`.
fn changed_configs(
    current: &BTreeMap<String, String>,
    t: &TopicConfigChanges,
) -> Result<BTreeMap<String, String>, BrokerError> {
    let mut next = if t.replace {
        BTreeMap::new()
    } else {
        current.clone()
    };
    let invalid = |why: String| Err(BrokerError::InvalidConfig(why));
    for (key, change) in &t.changes {
        let list = LIST_CONFIGS.contains(&key.as_str());
        let entries = |v: &str| -> Vec<String> {
            v.split(',')
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect()
        };
        // A list is changed from its value in force: the override, else
        // Kafka's default (as Kafka's APPEND and SUBTRACT do).
        let current = || {
            let default = metadata::TOPIC_DEFAULTS
                .iter()
                .find(|(k, _)| k == key)
                .map_or("", |(_, v)| *v);
            entries(next.get(key).map_or(default, String::as_str))
        };
        let value = match change {
            ConfigChange::Set(v) => Some(v.clone()),
            ConfigChange::Delete => None,
            ConfigChange::Append(_) | ConfigChange::Subtract(_) if !list => {
                return invalid(format!(
                    "'{key}' is not a list: it cannot be appended to or subtracted from"
                ));
            }
            ConfigChange::Append(v) => {
                let mut all = current();
                for e in entries(v) {
                    if !all.contains(&e) {
                        all.push(e);
                    }
                }
                Some(all.join(","))
            }
            ConfigChange::Subtract(v) => {
                let gone = entries(v);
                let all: Vec<String> = current()
                    .into_iter()
                    .filter(|e| !gone.contains(e))
                    .collect();
                (!all.is_empty()).then(|| all.join(","))
            }
        };
        match value {
            Some(v) => {
                if let Some(why) = invalid_config(key, &v) {
                    return invalid(why);
                }
                next.insert(key.clone(), v);
            }
            None if !metadata::known_config(key) => {
                return invalid(format!("unknown topic config '{key}'"));
            }
            None => {
                next.remove(key);
            }
        }
    }
    Ok(next)
}

/// Changes topic configs (on the controller): one result per topic, in
/// order; the new overrides are durable before the answer.
pub async fn alter_configs(
    shard: Rc<Shard>,
    alters: Vec<TopicConfigChanges>,
    validate_only: bool,
) -> Vec<Result<(), BrokerError>> {
    let Ok(_permit) = shard.controller().lock.acquire_permit(1).await else {
        return alters.iter().map(|_| Err(shutting_down())).collect();
    };
    let mut next = (*shard.metadata()).clone();
    let mut results = Vec::with_capacity(alters.len());
    for t in &alters {
        let result = match next.topics.get(&t.topic).cloned() {
            None => Err(BrokerError::UnknownTopicOrPartition(format!(
                "topic '{}' does not exist",
                t.topic
            ))),
            Some(topic) => changed_configs(&topic.configs, t).map(|configs| {
                if !validate_only {
                    let mut changed = (*topic).clone();
                    changed.configs = configs;
                    next.topics.insert(t.topic.clone(), Arc::new(changed));
                }
            }),
        };
        results.push(result);
    }
    if !validate_only && results.iter().any(Result::is_ok) {
        if let Err(e) = publish(&shard, next).await {
            return results.iter().map(|_| Err(storage_error(&e))).collect();
        }
        for (t, r) in alters.iter().zip(&results) {
            if r.is_ok() {
                tracing::info!(
                    topic = t.topic,
                    changes = t.changes.len(),
                    "topic configs changed"
                );
            }
        }
    }
    results
}

/// Makes sure the named topics exist, creating missing ones with the
/// default partition count when auto-creation is on. Returns the current
/// metadata afterwards.
pub async fn ensure_topics(shard: &Rc<Shard>, names: Vec<String>) -> Arc<Metadata> {
    let metadata = shard.metadata();
    let missing: Vec<NewTopic> = names
        .into_iter()
        .filter(|n| !metadata.topics.contains_key(n) && invalid_topic_name(n).is_none())
        .map(|name| NewTopic {
            name,
            partitions: -1,
            replication_factor: -1,
            configs: BTreeMap::new(),
        })
        .collect();
    if missing.is_empty() || !shard.config().auto_create_topics {
        return metadata;
    }
    // Racing creators get TOPIC_ALREADY_EXISTS, which is fine here.
    let _ = shard
        .call(ShardId::CONTROLLER, move |s| {
            create_topics(s, missing, false)
        })
        .await;
    shard.metadata()
}

/// Persists `next` and installs it on every shard.
async fn publish(shard: &Rc<Shard>, next: Metadata) -> Result<(), String> {
    // Writing and syncing the file blocks: on the executor's helper thread,
    // so the shard goes on serving meanwhile (the change lock keeps changes
    // in order).
    let next = Arc::new(next);
    let (data_dir, snapshot) = (shard.config().data_dir.clone(), next.clone());
    glommio::executor()
        .spawn_blocking(move || metadata::persist(&data_dir, &snapshot))
        .await?;
    for target in (0..shard.count()).map(ShardId::new) {
        let snapshot = next.clone();
        shard
            .call(target, move |s| async move { s.apply_metadata(snapshot) })
            .await
            .ok_or_else(|| format!("shard {target} has stopped"))?;
    }
    Ok(())
}

fn storage_error(e: &str) -> BrokerError {
    tracing::error!(error = e, "metadata change failed");
    BrokerError::Storage(e.to_string())
}

fn shutting_down() -> BrokerError {
    BrokerError::ShuttingDown
}
