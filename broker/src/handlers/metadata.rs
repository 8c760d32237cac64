//! Metadata: brokers, topics, partitions and their (only) leader. Missing
//! topics are auto-created when allowed (and, under an authorizer, when
//! the principal may CREATE them). Listing every topic leaves out those
//! the principal may not DESCRIBE; a topic named and not allowed is
//! answered TOPIC_AUTHORIZATION_FAILED, as Kafka does.

use sluice_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use sluice_protocol::kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, TopicName,
};
use sluice_protocol::kafka_protocol::ResponseError;

use crate::authorizer::{op, resource, CLUSTER_NAME};
use crate::context::RequestContext;
use crate::controller::ensure_topics;
use crate::handlers::NODE_ID;
use crate::metadata::{invalid_topic_name, str_bytes, Topic};

/// A topic asked for that is not there: error code, name and id as asked.
type Unknown = (i16, Option<TopicName>, uuid::Uuid);

/// Answers a Metadata request.
pub async fn handle(ctx: &RequestContext, request: MetadataRequest) -> MetadataResponse {
    let (shard, version) = (&ctx.shard, ctx.version());
    let (host, port) = ctx.advertised();
    let mut response = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(NODE_ID))
            .with_host(str_bytes(host))
            .with_port(port)])
        .with_cluster_id(Some(str_bytes(shard.cluster_id())))
        .with_controller_id(BrokerId(NODE_ID));

    let metadata = shard.metadata();
    let describable =
        |t: &&std::sync::Arc<Topic>| ctx.allows(op::DESCRIBE, resource::TOPIC, &t.name);
    let denied = ResponseError::TopicAuthorizationFailed.code();
    // v0 has no null: an empty list means all topics.
    let every = request
        .topics
        .as_ref()
        .is_none_or(|list| list.is_empty() && version == 0);
    let topics: Vec<Result<std::sync::Arc<Topic>, Unknown>> = match request.topics {
        Some(mut list) if !every => {
            // A topic named twice is answered once, as Kafka does: the fuzzer
            // made a 110 KB request of repeats ask for a 269 MB answer.
            let mut named = std::collections::HashSet::new();
            list.retain(|t| named.insert((t.name.clone(), t.topic_id)));
            let auto_create = version < 4 || request.allow_auto_topic_creation;
            let may_create = ctx.allows_cluster(op::CREATE);
            let names: Vec<String> = list
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .filter(|n| may_create || ctx.allows(op::CREATE, resource::TOPIC, n))
                .collect();
            let metadata = if auto_create {
                ensure_topics(shard, names).await
            } else {
                metadata
            };
            list.into_iter()
                .map(|t| match &t.name {
                    Some(name) if !ctx.allows(op::DESCRIBE, resource::TOPIC, name) => {
                        Err((denied, t.name.clone(), t.topic_id))
                    }
                    Some(name) => {
                        let n = name.0.to_string();
                        metadata.topics.get(&n).cloned().ok_or_else(|| {
                            let code = if invalid_topic_name(&n).is_some() {
                                ResponseError::InvalidTopicException.code()
                            } else {
                                ResponseError::UnknownTopicOrPartition.code()
                            };
                            (code, t.name.clone(), t.topic_id)
                        })
                    }
                    None => match metadata.by_id(t.topic_id.as_bytes()) {
                        Some(topic) if describable(&topic) => Ok(topic.clone()),
                        Some(_) => Err((denied, None, t.topic_id)),
                        None => Err((ResponseError::UnknownTopicId.code(), None, t.topic_id)),
                    },
                })
                .collect()
        }
        _ => metadata
            .topics
            .values()
            .filter(describable)
            .cloned()
            .map(Ok)
            .collect(),
    };
    let topic_operations = version >= 8 && request.include_topic_authorized_operations;
    if (8..=10).contains(&version) {
        response.cluster_authorized_operations = ctx.authorized_operations(
            request.include_cluster_authorized_operations,
            resource::CLUSTER,
            CLUSTER_NAME,
        );
    }
    response.topics = topics
        .into_iter()
        .map(|t| match t {
            Ok(topic) => describe(&topic).with_topic_authorized_operations(
                ctx.authorized_operations(topic_operations, resource::TOPIC, &topic.name),
            ),
            Err((code, name, id)) => MetadataResponseTopic::default()
                .with_error_code(code)
                .with_name(name)
                .with_topic_id(id),
        })
        .collect();
    response
}

fn describe(topic: &Topic) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&topic.name))))
        .with_topic_id(topic.uuid())
        .with_partitions(
            (0..topic.partitions.len() as i32)
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(BrokerId(NODE_ID))
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![BrokerId(NODE_ID)])
                        .with_isr_nodes(vec![BrokerId(NODE_ID)])
                })
                .collect(),
        )
}
