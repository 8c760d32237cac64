//! Configs: DescribeConfigs (topic and broker resources, with the source
//! of every value and, when asked, its synonyms), and AlterConfigs and
//! IncrementalAlterConfigs for topic configs, which the controller
//! validates (INVALID_CONFIG for an unknown key or a bad value) and
//! persists with the topic's metadata before answering.
//!
//! A topic config's value comes from the topic's override, else from the
//! broker's flag where one stands for it (`retention.ms` from
//! `--log-retention-ms`, `retention.bytes` from `--log-retention-bytes`),
//! else Kafka's default.

use std::collections::{BTreeMap, HashSet};

use sluice_protocol::kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use sluice_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use sluice_protocol::kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use sluice_protocol::kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol::ResponseError;

use crate::authorizer::{op, resource};
use crate::config::ServeArgs;
use crate::context::RequestContext;
use crate::controller::{self, ConfigChange, TopicConfigChanges};
use crate::error::BrokerError;
use crate::handlers::NODE_ID;
use crate::metadata::{str_bytes, Topic, TOPIC_DEFAULTS};
use crate::shard::Shard;
use crate::shard_id::ShardId;

/// Kafka's ConfigSource values.
pub const SOURCE_TOPIC: i8 = 1;
/// A broker config set at start (flags, config file).
pub const SOURCE_STATIC_BROKER: i8 = 4;
/// Kafka's default.
pub const SOURCE_DEFAULT: i8 = 5;
/// Kafka's ConfigResource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// The broker config that stands for a topic config, with its value here,
/// when it differs from Kafka's default.
fn broker_synonym(args: &ServeArgs, key: &str) -> Option<(&'static str, String)> {
    match key {
        "retention.ms" => Some(("log.retention.ms", args.log_retention_ms.to_string())),
        "retention.bytes" => Some(("log.retention.bytes", args.log_retention_bytes.to_string())),
        _ => None,
    }
}

/// Every value a topic config has, most specific first: (config name,
/// value, source). The first is the one in force.
pub fn topic_config_chain(args: &ServeArgs, topic: &Topic, key: &str) -> Vec<(String, String, i8)> {
    let mut chain = Vec::new();
    if let Some(v) = topic.configs.get(key) {
        chain.push((key.to_string(), v.clone(), SOURCE_TOPIC));
    }
    let default = TOPIC_DEFAULTS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string());
    if let Some((name, value)) = broker_synonym(args, key) {
        if default.as_deref() != Some(value.as_str()) {
            chain.push((name.to_string(), value, SOURCE_STATIC_BROKER));
        }
    }
    if let Some(v) = default {
        chain.push((key.to_string(), v, SOURCE_DEFAULT));
    }
    chain
}

/// The value of a topic config in force and its source.
pub fn topic_config(args: &ServeArgs, topic: &Topic, key: &str) -> Option<(String, i8)> {
    topic_config_chain(args, topic, key)
        .into_iter()
        .next()
        .map(|(_, v, source)| (v, source))
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
    m.insert("log.retention.ms", c.log_retention_ms.to_string());
    m.insert("log.retention.bytes", c.log_retention_bytes.to_string());
    m.insert(
        "log.retention.check.interval.ms",
        c.log_retention_check_interval_ms.to_string(),
    );
    m.insert("log.segment.bytes", (c.wal_segment_mib << 20).to_string());
    m.insert("group.max.size", c.group_max_size.to_string());
    m.insert("min.insync.replicas", "1".to_string());
    m
}

/// Answers DescribeConfigs for topic and broker resources.
pub fn describe_configs(
    ctx: &RequestContext,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let shard = &ctx.shard;
    let args = shard.config();
    let metadata = shard.metadata();
    let synonyms = request.include_synonyms;
    // A resource named twice is described once: a request of repeats must
    // not multiply the answer (the class the fuzzer found in Metadata).
    let mut named = HashSet::new();
    let results = request
        .resources
        .iter()
        .filter(|res| named.insert((res.resource_type, res.resource_name.clone())))
        .map(|res| {
            // No list and an empty list both ask for every key, as in
            // Kafka's ConfigHelper.
            let wanted = |k: &str| {
                res.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.is_empty() || keys.iter().any(|w| w.as_str() == k))
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
            if let Some(e) = refusal(
                ctx,
                res.resource_type,
                &res.resource_name,
                op::DESCRIBE_CONFIGS,
            ) {
                return r
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.to_string())));
            }
            match res.resource_type {
                RESOURCE_TOPIC => match metadata.topics.get(res.resource_name.as_str()) {
                    Some(topic) => r.with_configs(
                        TOPIC_DEFAULTS
                            .iter()
                            .filter(|(k, _)| wanted(k))
                            .map(|(k, _)| {
                                let chain = topic_config_chain(args, topic, k);
                                let (_, value, source) = &chain[0];
                                let e = entry(k, value, *source);
                                if !synonyms {
                                    return e;
                                }
                                e.with_synonyms(
                                    chain
                                        .iter()
                                        .map(|(name, value, source)| {
                                            DescribeConfigsSynonym::default()
                                                .with_name(str_bytes(name))
                                                .with_value(Some(str_bytes(value)))
                                                .with_source(*source)
                                        })
                                        .collect(),
                                )
                            })
                            .collect(),
                    ),
                    None => r
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message(Some(str_bytes("unknown topic"))),
                },
                RESOURCE_BROKER if is_this_broker(&res.resource_name) => r.with_configs(
                    broker_configs(shard)
                        .iter()
                        .filter(|(k, _)| wanted(k))
                        .map(|(k, v)| entry(k, v, SOURCE_STATIC_BROKER).with_read_only(true))
                        .collect(),
                ),
                _ => r
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes("unsupported resource"))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn is_this_broker(name: &StrBytes) -> bool {
    name.is_empty() || name.as_str() == NODE_ID.to_string()
}

/// One resource of an alter request, as the controller sees it (or why it
/// is refused before reaching it).
type Asked = Result<TopicConfigChanges, BrokerError>;

/// Sends the topic changes to the controller; one result per resource.
async fn alter(
    ctx: &RequestContext,
    asked: Vec<Asked>,
    validate_only: bool,
) -> Vec<Result<(), BrokerError>> {
    let changes: Vec<TopicConfigChanges> = asked.iter().flatten().cloned().collect();
    let mut done = ctx
        .shard
        .call(ShardId::CONTROLLER, move |s| {
            controller::alter_configs(s, changes, validate_only)
        })
        .await
        .unwrap_or_default()
        .into_iter();
    asked
        .into_iter()
        .map(|a| a.and_then(|_| done.next().unwrap_or(Err(BrokerError::ShuttingDown))))
        .collect()
}

/// Why the principal may not do `operation` (DESCRIBE_CONFIGS or
/// ALTER_CONFIGS) to a topic's or the broker's configs, if it may not.
fn refusal(
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    operation: i8,
) -> Option<BrokerError> {
    match resource_type {
        RESOURCE_TOPIC if !ctx.allows(operation, resource::TOPIC, name) => {
            Some(BrokerError::TopicAuthorizationFailed(format!(
                "may not use the configs of topic '{name}'"
            )))
        }
        RESOURCE_BROKER if !ctx.allows_cluster(operation) => Some(
            BrokerError::ClusterAuthorizationFailed("may not use the broker's configs".into()),
        ),
        _ => None,
    }
}

/// Whether the principal may alter the configs of the resource, and
/// whether they can be altered at all (only topics' can).
fn alterable(ctx: &RequestContext, resource_type: i8, name: &str) -> Result<(), BrokerError> {
    if let Some(e) = refusal(ctx, resource_type, name, op::ALTER_CONFIGS) {
        return Err(e);
    }
    if resource_type != RESOURCE_TOPIC {
        return Err(not_a_topic(resource_type));
    }
    Ok(())
}

/// A resource other than a topic (broker configs are set by flags).
fn not_a_topic(resource_type: i8) -> BrokerError {
    match resource_type {
        RESOURCE_BROKER => BrokerError::InvalidConfig(
            "broker configs are set by flags or the config file, not at run time".into(),
        ),
        t => BrokerError::InvalidRequest(format!("resource type {t} has no configs here")),
    }
}

/// Answers AlterConfigs: each topic's overrides become exactly the ones
/// given (a null value is no override).
pub async fn alter_configs(
    ctx: &RequestContext,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let asked: Vec<Asked> = request
        .resources
        .iter()
        .map(|res| {
            alterable(ctx, res.resource_type, &res.resource_name)?;
            Ok(TopicConfigChanges {
                topic: res.resource_name.to_string(),
                replace: true,
                changes: res
                    .configs
                    .iter()
                    .map(|c| {
                        let change = match &c.value {
                            Some(v) => ConfigChange::Set(v.to_string()),
                            None => ConfigChange::Delete,
                        };
                        (c.name.to_string(), change)
                    })
                    .collect(),
            })
        })
        .collect();
    let results = alter(ctx, asked, request.validate_only).await;
    let responses = request
        .resources
        .iter()
        .zip(results)
        .map(|(res, result)| {
            let r = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            match result {
                Ok(()) => r,
                Err(e) => r
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.to_string()))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// Answers IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT
/// (the last two on list configs) applied to each topic's overrides.
pub async fn incremental_alter_configs(
    ctx: &RequestContext,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let asked: Vec<Asked> = request
        .resources
        .iter()
        .map(|res| {
            alterable(ctx, res.resource_type, &res.resource_name)?;
            let changes = res
                .configs
                .iter()
                .map(|c| {
                    let name = c.name.to_string();
                    let value = c.value.as_ref().map(|v| v.to_string());
                    let change = match (c.config_operation, value) {
                        (OP_SET, Some(v)) => ConfigChange::Set(v),
                        (OP_DELETE, _) => ConfigChange::Delete,
                        (OP_APPEND, Some(v)) => ConfigChange::Append(v),
                        (OP_SUBTRACT, Some(v)) => ConfigChange::Subtract(v),
                        (op, v) => {
                            return Err(BrokerError::InvalidConfig(format!(
                                "operation {op} on '{name}' with value {v:?} is not one Kafka knows"
                            )))
                        }
                    };
                    Ok((name, change))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(TopicConfigChanges {
                topic: res.resource_name.to_string(),
                replace: false,
                changes,
            })
        })
        .collect();
    let results = alter(ctx, asked, request.validate_only).await;
    let responses = request
        .resources
        .iter()
        .zip(results)
        .map(|(res, result)| {
            let r = IncrementalResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            match result {
                Ok(()) => r,
                Err(e) => r
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.to_string()))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
