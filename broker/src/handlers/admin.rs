//! Admin APIs: CreateTopics, DeleteTopics, CreatePartitions (all changed by
//! the controller on shard 0) and DescribeCluster. Configs are `configs`.

use sluice_protocol::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use sluice_protocol::kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use sluice_protocol::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use sluice_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use sluice_protocol::kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest,
    DescribeClusterResponse, TopicName,
};
use sluice_protocol::kafka_protocol::ResponseError;

use crate::authorizer::{op, resource, CLUSTER_NAME};
use crate::context::RequestContext;
use crate::controller::{self, NewTopic, TopicRef};
use crate::error::BrokerError;
use crate::handlers::where_allowed;
use crate::handlers::NODE_ID;
use crate::metadata::{str_bytes, TOPIC_DEFAULTS};
use crate::shard_id::ShardId;

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
    let may_create_any = ctx.allows_cluster(op::CREATE);
    let refuse = |t: &NewTopic| {
        (!may_create_any && !ctx.allows(op::CREATE, resource::TOPIC, &t.name)).then(|| {
            BrokerError::TopicAuthorizationFailed(format!("may not create topic '{}'", t.name))
        })
    };
    let results = where_allowed(topics, refuse, |topics| async move {
        shard
            .call(ShardId::CONTROLLER, move |s| {
                controller::create_topics(s, topics, validate_only)
            })
            .await
            .unwrap_or_default()
    })
    .await;
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
                                .filter_map(|(k, _)| {
                                    let (value, source) =
                                        super::configs::topic_config(ctx.shard.config(), topic, k)?;
                                    Some(
                                        CreatableTopicConfigs::default()
                                            .with_name(str_bytes(k))
                                            .with_value(Some(str_bytes(&value)))
                                            .with_config_source(source),
                                    )
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
    let metadata = shard.metadata();
    let refuse = |r: &TopicRef| {
        let name = match r {
            TopicRef::Name(n) => Some(n.as_str()),
            TopicRef::Id(id) => metadata.by_id(id).map(|t| &*t.name),
        };
        name.filter(|n| !ctx.allows(op::DELETE, resource::TOPIC, n))
            .map(|n| BrokerError::TopicAuthorizationFailed(format!("may not delete topic '{n}'")))
    };
    let results = where_allowed(refs, refuse, |refs| async move {
        shard
            .call(ShardId::CONTROLLER, move |s| {
                controller::delete_topics(s, refs)
            })
            .await
            .unwrap_or_default()
    })
    .await;
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
    let refuse = |(name, _): &(String, i32)| {
        (!ctx.allows(op::ALTER, resource::TOPIC, name))
            .then(|| BrokerError::TopicAuthorizationFailed(format!("may not alter topic '{name}'")))
    };
    let results = where_allowed(asks, refuse, |asks| async move {
        shard
            .call(ShardId::CONTROLLER, move |s| {
                controller::create_partitions(s, asks, validate_only)
            })
            .await
            .unwrap_or_default()
    })
    .await;
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

/// Answers DescribeCluster: this one broker, which is also the controller.
pub fn describe_cluster(
    ctx: &RequestContext,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let (host, port) = ctx.advertised();
    if !ctx.allows_cluster(op::DESCRIBE) {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes(
                "the principal may not describe the cluster",
            )));
    }
    let operations = ctx.authorized_operations(
        request.include_cluster_authorized_operations,
        resource::CLUSTER,
        CLUSTER_NAME,
    );
    DescribeClusterResponse::default()
        .with_cluster_authorized_operations(operations)
        .with_cluster_id(str_bytes(ctx.shard.cluster_id()))
        .with_controller_id(BrokerId(NODE_ID))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(NODE_ID))
            .with_host(str_bytes(host))
            .with_port(port)])
}
