//! Run set-up: the working topics (created if missing, four partitions
//! each), their topic ids from Metadata, and a real producer id from
//! InitProducerId; all through valid requests the broker must answer.

use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreateTopicsRequest, InitProducerIdRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::batches;
use crate::conn::Conn;
use crate::context::{Context, Topic, PARTITIONS, TOPICS};

const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Kafka's TOPIC_ALREADY_EXISTS: a rerun against the same broker.
const TOPIC_ALREADY_EXISTS: i16 = 36;

pub fn setup(addr: &str) -> Result<Context, String> {
    let mut conn =
        Conn::connect(addr, CALL_TIMEOUT).map_err(|e| format!("connecting to {addr}: {e}"))?;
    let mut create = CreateTopicsRequest::default();
    create.timeout_ms = 10_000;
    create.topics = TOPICS
        .iter()
        .map(|name| {
            let mut t = CreatableTopic::default();
            t.name = TopicName(StrBytes::from_static_str(name));
            t.num_partitions = PARTITIONS;
            t.replication_factor = 1;
            t
        })
        .collect();
    let created = conn.call(5, 1, &create, CALL_TIMEOUT)?;
    for t in &created.topics {
        if t.error_code != 0 && t.error_code != TOPIC_ALREADY_EXISTS {
            return Err(format!("creating {}: error {}", t.name.0, t.error_code));
        }
    }

    // Topic ids, waiting (bounded) for every topic to show in Metadata.
    let deadline = Instant::now() + CALL_TIMEOUT;
    let topics = loop {
        let mut metadata = MetadataRequest::default();
        metadata.allow_auto_topic_creation = false;
        metadata.topics = Some(
            TOPICS
                .iter()
                .map(|name| {
                    let mut t = MetadataRequestTopic::default();
                    t.name = Some(TopicName(StrBytes::from_static_str(name)));
                    t
                })
                .collect(),
        );
        let answer = conn.call(12, 2, &metadata, CALL_TIMEOUT)?;
        let found: Vec<Topic> = answer
            .topics
            .iter()
            .filter(|t| t.error_code == 0 && !t.topic_id.is_nil())
            .filter_map(|t| {
                t.name.as_ref().map(|n| Topic {
                    name: n.0.to_string(),
                    id: t.topic_id,
                })
            })
            .collect();
        if found.len() == TOPICS.len() {
            break found;
        }
        if Instant::now() >= deadline {
            return Err(format!("working topics not all in Metadata: {answer:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };

    let mut init = InitProducerIdRequest::default();
    init.transaction_timeout_ms = 60_000;
    let producer = conn.call(4, 3, &init, CALL_TIMEOUT)?;
    let (producer_id, producer_epoch) = if producer.error_code == 0 {
        (producer.producer_id.0, producer.producer_epoch)
    } else {
        (1000, 0)
    };
    Ok(Context {
        topics,
        producer_id,
        producer_epoch,
        batches: batches::valid_set(producer_id, producer_epoch),
        bomb: batches::zstd_bomb(),
        members: Default::default(),
    })
}
