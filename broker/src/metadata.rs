//! Cluster metadata: topics, their ids, partitions and owning shards, and
//! topic configs. Changed only by the controller (shard 0), persisted
//! durably (write temp, fsync, rename, fsync dir), and published to every
//! shard as an immutable snapshot, so readers never lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;

use crate::layout::{write_durably, TOPICS_FILE};
use crate::shard_id::ShardId;

/// A partition: its topic's id and its index in the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionKey {
    /// Topic id (UUID bytes).
    pub topic_id: [u8; 16],
    /// Partition index.
    pub partition: i32,
}

impl PartitionKey {
    /// Partition `partition` of topic `topic_id`.
    pub fn new(topic_id: [u8; 16], partition: i32) -> PartitionKey {
        PartitionKey {
            topic_id,
            partition,
        }
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// Topic name.
    pub name: String,
    /// Topic id (UUID bytes).
    pub id: [u8; 16],
    /// Owning shard of each partition, by partition index.
    pub partitions: Vec<ShardId>,
    /// Config overrides (`retention.ms=...`); defaults are not stored.
    pub configs: BTreeMap<String, String>,
}

impl Topic {
    /// The topic id as kafka-protocol's UUID type.
    pub fn uuid(&self) -> uuid::Uuid {
        uuid::Uuid::from_bytes(self.id)
    }

    /// The value of a config: the override or Kafka's default.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.configs.get(key).map(String::as_str).or_else(|| {
            TOPIC_DEFAULTS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
        })
    }

    /// The owner of partition `index`, if the topic has it.
    pub fn owner(&self, index: i32) -> Option<ShardId> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .copied()
    }

    /// Whether the broker stamps batches with its own time.
    pub fn log_append_time(&self) -> bool {
        self.config("message.timestamp.type") == Some("LogAppendTime")
    }
}

/// Topic configs Sluice knows, with Kafka's default values.
pub const TOPIC_DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("delete.retention.ms", "86400000"),
    ("file.delete.delay.ms", "60000"),
    ("flush.messages", "9223372036854775807"),
    ("flush.ms", "9223372036854775807"),
    ("index.interval.bytes", "4096"),
    ("local.retention.bytes", "-2"),
    ("local.retention.ms", "-2"),
    ("max.compaction.lag.ms", "9223372036854775807"),
    ("max.message.bytes", "1048588"),
    ("message.downconversion.enable", "true"),
    ("message.format.version", "3.0-IV1"),
    ("message.timestamp.after.max.ms", "9223372036854775807"),
    ("message.timestamp.before.max.ms", "9223372036854775807"),
    ("message.timestamp.difference.max.ms", "9223372036854775807"),
    ("message.timestamp.type", "CreateTime"),
    ("min.cleanable.dirty.ratio", "0.5"),
    ("min.compaction.lag.ms", "0"),
    ("min.insync.replicas", "1"),
    ("preallocate", "false"),
    ("remote.storage.enable", "false"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "1073741824"),
    ("segment.index.bytes", "10485760"),
    ("segment.jitter.ms", "0"),
    ("segment.ms", "604800000"),
    ("unclean.leader.election.enable", "false"),
];

/// An immutable snapshot of all topics.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// Topics by name.
    pub topics: BTreeMap<String, Arc<Topic>>,
}

impl Metadata {
    /// The topic with this id.
    pub fn by_id(&self, id: &[u8; 16]) -> Option<&Arc<Topic>> {
        self.topics.values().find(|t| &t.id == id)
    }

    /// The shard that owns a partition, if its topic (still) has it.
    pub fn owner(&self, key: &PartitionKey) -> Option<ShardId> {
        self.by_id(&key.topic_id)?.owner(key.partition)
    }
}

/// Why a topic name is not legal (Kafka's rules), or `None` if it is.
pub fn invalid_topic_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("topic name '{name}' is not allowed"));
    }
    if name.len() > 249 {
        return Some("topic name is longer than 249 characters".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Some(format!(
            "topic name '{name}' has characters other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    None
}

/// Whether `key` is a topic config Kafka knows (and Sluice accepts).
pub fn known_config(key: &str) -> bool {
    TOPIC_DEFAULTS.iter().any(|(k, _)| *k == key)
}

/// Longest config value kept: what a DescribeConfigs answer of the old
/// versions (16-bit string lengths) can carry. A longer one, once set,
/// made every such answer about the topic unencodable (found by the
/// request fuzzer).
pub const MAX_CONFIG_VALUE: usize = i16::MAX as usize;

/// Why a config override is refused, or `None`.
pub fn invalid_config(key: &str, value: &str) -> Option<String> {
    if !known_config(key) {
        return Some(format!("unknown topic config '{key}'"));
    }
    if value.len() > MAX_CONFIG_VALUE {
        return Some(format!(
            "the value of '{key}' is longer than {MAX_CONFIG_VALUE} bytes, more than every client can read back"
        ));
    }
    let list = key == "cleanup.policy";
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || (c == ',' && !list) || c == '=')
    {
        return Some(format!("config value '{value}' for '{key}' is not allowed"));
    }
    if list
        && !value
            .split(',')
            .all(|policy| policy == "delete" || policy == "compact")
    {
        return Some("cleanup.policy is a list of delete and compact".into());
    }
    if key == "message.timestamp.type" && value != "CreateTime" && value != "LogAppendTime" {
        return Some("message.timestamp.type must be CreateTime or LogAppendTime".into());
    }
    if (key == "retention.ms" || key == "retention.bytes")
        && !value.parse::<i64>().is_ok_and(|v| v >= -1)
    {
        return Some(format!(
            "{key} must be a whole number of at least -1 (no limit)"
        ));
    }
    None
}

/// A fresh random topic id.
pub fn new_topic_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut id));
    if filled.is_err() {
        // Fall back to time and address entropy; ids only need to be unique here.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        id = (t ^ (&id as *const _ as u128)).to_le_bytes();
    }
    id[6] = (id[6] & 0x0f) | 0x40; // version 4
    id[8] = (id[8] & 0x3f) | 0x80; // RFC 4122 variant
    id
}

/// A topic id as 32 hex digits.
pub fn hex(id: &[u8; 16]) -> String {
    id.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(id)
}

/// Reads the topics file of `data_dir` (empty metadata if there is none).
pub fn load(data_dir: &Path, shards: usize) -> Result<Metadata, String> {
    let path = data_dir.join(TOPICS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Metadata::default()),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let mut metadata = Metadata::default();
    for (n, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("{} line {}: {why}", path.display(), n + 1);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, id, partitions, configs] = fields[..] else {
            return Err(bad("expected 4 tab-separated fields"));
        };
        let id = unhex(id).ok_or_else(|| bad("bad topic id"))?;
        let partitions = partitions
            .split(',')
            .map(|s| {
                s.parse::<usize>()
                    .ok()
                    .filter(|s| *s < shards)
                    .map(ShardId::new)
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("bad partition shard list"))?;
        let configs = configs
            .split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect::<Option<BTreeMap<_, _>>>()
            .ok_or_else(|| bad("bad config list"))?;
        let topic = Topic {
            name: name.to_string(),
            id,
            partitions,
            configs,
        };
        metadata.topics.insert(topic.name.clone(), Arc::new(topic));
    }
    Ok(metadata)
}

/// Writes the topics file durably: temp file, fsync, rename, fsync dir.
pub fn persist(data_dir: &Path, metadata: &Metadata) -> Result<(), String> {
    let mut text = String::from("# name\tid\tshard of each partition\tconfig overrides\n");
    for t in metadata.topics.values() {
        let shards: Vec<String> = t.partitions.iter().map(|s| s.to_string()).collect();
        let configs: Vec<String> = t.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            text,
            "{}\t{}\t{}\t{}",
            t.name,
            hex(&t.id),
            shards.join(","),
            configs.join(",")
        );
    }
    write_durably(&data_dir.join(TOPICS_FILE), text.as_bytes())
}

/// A `StrBytes` from a `&str` (kafka-protocol's string type).
pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_are_checked() {
        assert!(invalid_config("retention.ms", "1000").is_none());
        assert!(invalid_config("retention.ms", "-2").is_some());
        assert!(invalid_config("retention.ms", "soon").is_some());
        assert!(invalid_config("no.such", "1").is_some());
        assert!(invalid_config("cleanup.policy", "compact,delete").is_none());
        assert!(invalid_config("cleanup.policy", "compact,shred").is_some());
        let long = "x".repeat(MAX_CONFIG_VALUE + 1);
        assert!(invalid_config("message.format.version", &long).is_some());
        assert!(invalid_config("message.format.version", &long[1..]).is_none());
    }

    #[test]
    fn topics_round_trip_through_the_file() {
        let dir = std::env::temp_dir().join(format!("sluice-meta-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut m = Metadata::default();
        for (name, parts) in [("a", [0, 1, 0].as_slice()), ("b.c_d-e", &[1])] {
            let mut configs = BTreeMap::new();
            configs.insert("retention.ms".to_string(), "1000".to_string());
            let t = Topic {
                name: name.into(),
                id: new_topic_id(),
                partitions: parts.iter().copied().map(ShardId::new).collect(),
                configs,
            };
            m.topics.insert(name.into(), Arc::new(t));
        }
        persist(&dir, &m).unwrap();
        let back = load(&dir, 2).unwrap();
        assert_eq!(back.topics, m.topics);
        assert!(
            load(&dir, 1).is_err(),
            "a shard beyond the count is refused"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(invalid_topic_name("orders.v1_x-y").is_none());
        for bad in ["", ".", "..", "a b", "a/b", "ü", &"x".repeat(250)] {
            assert!(invalid_topic_name(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn ids_are_v4_and_hex_round_trips() {
        let id = new_topic_id();
        assert_eq!(id[6] >> 4, 4);
        assert_eq!(unhex(&hex(&id)), Some(id));
        assert_ne!(new_topic_id(), id);
    }
}
