//! Admin APIs: CreateTopics, DeleteTopics, CreatePartitions (all changed by
//! the controller on shard 0), DescribeConfigs (topic and broker resources
//! with Kafka's default values) and DescribeCluster.

use std::collections::BTreeMap;

use sluice_protocol::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use sluice_protocol::kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use sluice_protocol::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use sluice_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use sluice_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use sluice_protocol::kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse, TopicName,
};
use sluice_protocol::kafka_protocol::ResponseError;

use crate::context::RequestContext;
use crate::controller::{self, NewTopic, TopicRef};
use crate::handlers::NODE_ID;
use crate::metadata::{str_bytes, TOPIC_DEFAULTS};
use crate::shard::Shard;
use crate::shard_id::ShardId;

/// Kafka's ConfigSource values.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
/// Kafka's ConfigResource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Answers CreateTopics.
pub async fn create_topics(
    ctx: &RequestContext,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let (shard, version) = (&ctx.shard, ctx.version());
    let topics: Vec<NewTopic> = request
        .topics
        .iter()
        .map(|t| NewTopic {
            name: t.name.0.to_string(),
            partitions: if t.assignments.is_empty() {
                t.num_partitions
            } else {
                t.assignments.len() as i32
            },
            replication_factor: if t.assignments.is_empty() {
                t.replication_factor
            } else {
                -1
            },
            configs: t
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect(),
        })
        .collect();
    let validate_only = request.validate_only;
    let results = shard
        .call(ShardId::CONTROLLER, move |s| {
            controller::create_topics(s, topics, validate_only)
        })
        .await
        .unwrap_or_default();
    let topics = request
        .topics
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let r = CreatableTopicResult::default().with_name(t.name.clone());
            match results.get(i) {
                Some(Ok(topic)) => {
                    let mut r = r
                        .with_topic_id(topic.uuid())
                        .with_num_partitions(topic.partitions.len() as i32)
                        .with_replication_factor(1);
                    if version >= 5 {
                        r = r.with_configs(Some(
                            TOPIC_DEFAULTS
                                .iter()
                                .map(|(k, _)| {
                                    let overridden = topic.configs.contains_key(*k);
                                    CreatableTopicConfigs::default()
                                        .with_name(str_bytes(k))
                                        .with_value(topic.config(k).map(str_bytes))
                                        .with_config_source(if overridden {
                                            SOURCE_TOPIC
                                        } else {
                                            SOURCE_DEFAULT
                                        })
                                })
                                .collect(),
                        ));
                    }
                    r
                }
                Some(Err(e)) => r
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.to_string())))
                    .with_configs(None),
                None => r
                    .with_error_code(ResponseError::KafkaStorageError.code())
                    .with_configs(None),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// Answers DeleteTopics (by name before v6, by name or id from v6).
pub async fn delete_topics(
    ctx: &RequestContext,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let (shard, version) = (&ctx.shard, ctx.version());
    let refs: Vec<TopicRef> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| match &t.name {
                Some(name) => TopicRef::Name(name.0.to_string()),
                None => TopicRef::Id(*t.topic_id.as_bytes()),
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| TopicRef::Name(n.0.to_string()))
            .collect()
    };
    let asked = refs.clone();
    let results = shard
        .call(ShardId::CONTROLLER, move |s| {
            controller::delete_topics(s, refs)
        })
        .await
        .unwrap_or_default();
    let responses = asked
        .iter()
        .enumerate()
        .map(|(i, asked)| {
            let r = match asked {
                TopicRef::Name(n) => {
                    DeletableTopicResult::default().with_name(Some(TopicName(str_bytes(n))))
                }
                TopicRef::Id(id) => {
                    DeletableTopicResult::default().with_topic_id(uuid::Uuid::from_bytes(*id))
                }
            };
            match results.get(i) {
                Some(Ok(topic)) => r
                    .with_name(Some(TopicName(str_bytes(&topic.name))))
                    .with_topic_id(if version >= 6 {
                        topic.uuid()
                    } else {
                        uuid::Uuid::nil()
                    }),
                Some(Err(e)) => {
                    let r = r.with_error_code(e.code());
                    if version >= 5 {
                        r.with_error_message(Some(str_bytes(&e.to_string())))
                    } else {
                        r
                    }
                }
                None => r.with_error_code(ResponseError::KafkaStorageError.code()),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Answers CreatePartitions.
pub async fn create_partitions(
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let shard = &ctx.shard;
    let asks: Vec<(String, i32)> = request
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.count))
        .collect();
    let validate_only = request.validate_only;
    let results = shard
        .call(ShardId::CONTROLLER, move |s| {
            controller::create_partitions(s, asks, validate_only)
        })
        .await
        .unwrap_or_default();
    let results = request
        .topics
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match results.get(i) {
                Some(Ok(())) => r,
                Some(Err(e)) => r
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.to_string()))),
                None => r.with_error_code(ResponseError::KafkaStorageError.code()),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

/// Broker configs reported by DescribeConfigs, with their values here.
fn broker_configs(shard: &Shard) -> BTreeMap<&'static str, String> {
    let c = shard.config();
    let mut m = BTreeMap::new();
    m.insert(
        "auto.create.topics.enable",
        c.auto_create_topics.to_string(),
    );
    m.insert("broker.id", NODE_ID.to_string());
    m.insert("num.partitions", c.default_partitions.to_string());
    m.insert("default.replication.factor", "1".to_string());
    m.insert("offsets.topic.replication.factor", "1".to_string());
    m.insert("socket.request.max.bytes", c.max_request_bytes.to_string());
    m.insert("message.max.bytes", "1048588".to_string());
    m.insert("log.retention.hours", "168".to_string());
    m.insert("log.segment.bytes", (c.wal_segment_mib << 20).to_string());
    m.insert("min.insync.replicas", "1".to_string());
    m
}

/// Answers DescribeConfigs for topic and broker resources.
pub fn describe_configs(
    ctx: &RequestContext,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let shard = &ctx.shard;
    let metadata = shard.metadata();
    // A resource named twice is described once: a request of repeats must
    // not multiply the answer (the class the fuzzer found in Metadata).
    let mut named = std::collections::HashSet::new();
    let results = request
        .resources
        .iter()
        .filter(|res| named.insert((res.resource_type, res.resource_name.clone())))
        .map(|res| {
            let wanted = |k: &str| {
                res.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|w| w.as_str() == k))
            };
            let r = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let entry = |k: &str, v: &str, source: i8| {
                DescribeConfigsResourceResult::default()
                    .with_name(str_bytes(k))
                    .with_value(Some(str_bytes(v)))
                    .with_config_source(source)
                    .with_documentation(None)
            };
            match res.resource_type {
                RESOURCE_TOPIC => match metadata.topics.get(res.resource_name.as_str()) {
                    Some(topic) => r.with_configs(
                        TOPIC_DEFAULTS
                            .iter()
                            .filter(|(k, _)| wanted(k))
                            .map(|(k, default)| match topic.configs.get(*k) {
                                Some(v) => entry(k, v, SOURCE_TOPIC),
                                None => entry(k, default, SOURCE_DEFAULT),
                            })
                            .collect(),
                    ),
                    None => r
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message(Some(str_bytes("unknown topic"))),
                },
                RESOURCE_BROKER
                    if res.resource_name.is_empty()
                        || res.resource_name.as_str() == NODE_ID.to_string() =>
                {
                    r.with_configs(
                        broker_configs(shard)
                            .iter()
                            .filter(|(k, _)| wanted(k))
                            .map(|(k, v)| entry(k, v, SOURCE_STATIC_BROKER).with_read_only(true))
                            .collect(),
                    )
                }
                _ => r
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes("unsupported resource"))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Answers DescribeCluster: this one broker, which is also the controller.
pub fn describe_cluster(
    ctx: &RequestContext,
    _request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let (host, port) = ctx.shard.config().advertised();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(ctx.shard.cluster_id()))
        .with_controller_id(BrokerId(NODE_ID))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(NODE_ID))
            .with_host(str_bytes(&host))
            .with_port(port)])
}
