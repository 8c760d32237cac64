//! Produce: validate each batch (magic v2, CRC-32C), give it offsets, hand
//! it to the owning shard's WAL, and answer only once it is durable
//! (acks=1 and acks=-1; acks=0 is never waited for and gets no response).
//!
//! On the owning shard, offsets are assigned in the same synchronous step
//! that hands the batch to the WAL, so WAL order and offset order agree;
//! the high watermark moves only after the WAL says the batch is durable.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use sluice_protocol::kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};

use crate::authorizer::{op, resource};
use crate::context::RequestContext;
use crate::controller::ensure_topics;
use crate::error::BrokerError;
use crate::log::{AppendConfig, PartitionKey};
use crate::metadata::{str_bytes, Topic};
use crate::router::{scatter_slots, Slot};
use crate::shard::Shard;

/// One partition's batch of a produce request, sent to its owner.
#[derive(Clone)]
struct PartitionBatch {
    topic: Arc<Topic>,
    partition: i32,
    records: Option<Bytes>,
    acks: i16,
}

/// What the owner answers for one partition.
#[derive(Debug, Clone)]
struct PartitionAnswer {
    error: Option<BrokerError>,
    base_offset: i64,
    log_append_time: i64,
    log_start: i64,
}

impl PartitionAnswer {
    fn refused(error: BrokerError) -> PartitionAnswer {
        PartitionAnswer {
            error: Some(error),
            base_offset: -1,
            log_append_time: -1,
            log_start: -1,
        }
    }
}

/// Answers a Produce request; `None` for acks=0.
pub async fn handle(ctx: &RequestContext, request: ProduceRequest) -> Option<ProduceResponse> {
    let (shard, version) = (&ctx.shard, ctx.version());
    let acks = request.acks;
    let by_id = version >= 13;
    let names: Vec<String> = if by_id {
        Vec::new()
    } else {
        request
            .topic_data
            .iter()
            .map(|t| t.name.0.to_string())
            // Auto-created only for a principal that may create it.
            .filter(|n| {
                ctx.allows(op::WRITE, resource::TOPIC, n)
                    && (ctx.allows_cluster(op::CREATE)
                        || ctx.allows(op::CREATE, resource::TOPIC, n))
            })
            .collect()
    };
    let metadata = ensure_topics(shard, names).await;
    // A transactional producer must be allowed its id.
    let txn_refused = request
        .transactional_id
        .as_ref()
        .and_then(|id| super::transactions::may_write_txn(ctx, id).err());

    // Every partition in request order: its owner and part, or an error now.
    let mut slots: Vec<Slot<PartitionBatch, BrokerError>> = Vec::new();
    for (ti, topic) in request.topic_data.iter().enumerate() {
        let found = if by_id {
            metadata.by_id(topic.topic_id.as_bytes()).cloned()
        } else {
            metadata.topics.get(topic.name.0.as_str()).cloned()
        };
        let name = match (&found, by_id) {
            (Some(t), _) => Some(&*t.name),
            (None, false) => Some(topic.name.0.as_str()),
            (None, true) => None,
        };
        let topic_refused = name
            .filter(|n| !ctx.allows(op::WRITE, resource::TOPIC, n))
            .map(|n| BrokerError::TopicAuthorizationFailed(format!("may not write topic '{n}'")));
        for p in &topic.partition_data {
            let slot = if !matches!(acks, -1..=1) {
                Err(BrokerError::InvalidRequiredAcks(acks))
            } else if let Some(e) = txn_refused.clone().or_else(|| topic_refused.clone()) {
                Err(e)
            } else {
                match &found {
                    None if by_id => Err(BrokerError::UnknownTopicId),
                    None => Err(BrokerError::UnknownTopicOrPartition("unknown topic".into())),
                    Some(t) => match t.owner(p.index) {
                        None => Err(BrokerError::UnknownTopicOrPartition(
                            "unknown partition".into(),
                        )),
                        Some(owner) => Ok((
                            owner,
                            PartitionBatch {
                                topic: t.clone(),
                                partition: p.index,
                                records: p.records.clone(),
                                acks,
                            },
                        )),
                    },
                }
            };
            slots.push(Slot {
                topic: ti,
                partition: p.index,
                target: slot,
            });
        }
    }
    let answers = scatter_slots(shard, &slots, append_on_owner, |_| {
        PartitionAnswer::refused(BrokerError::Storage("shard stopped".into()))
    })
    .await;
    if acks == 0 {
        return None;
    }
    let mut responses: Vec<TopicProduceResponse> = request
        .topic_data
        .iter()
        .map(|t| {
            TopicProduceResponse::default()
                .with_name(if by_id {
                    TopicName::default()
                } else {
                    t.name.clone()
                })
                .with_topic_id(t.topic_id)
        })
        .collect();
    for (slot, answer) in slots.iter().zip(answers) {
        let answer = answer.unwrap_or_else(PartitionAnswer::refused);
        let index = slot.partition;
        let mut r = PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(answer.base_offset)
            .with_log_append_time_ms(answer.log_append_time)
            .with_log_start_offset(answer.log_start);
        if let Some(error) = answer.error {
            r = r.with_error_code(error.code());
            if version >= 8 {
                r = r.with_error_message(Some(str_bytes(&error.to_string())));
            }
        }
        responses[slot.topic].partition_responses.push(r);
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// On the owning shard: append every batch (in order, without awaiting,
/// so offsets follow WAL order), then wait until each is durable (acks=0:
/// without waiting).
async fn append_on_owner(shard: Rc<Shard>, batches: Vec<PartitionBatch>) -> Vec<PartitionAnswer> {
    let log = shard.log();
    let appended: Vec<_> = batches
        .iter()
        .map(|b| {
            let key = PartitionKey::new(b.topic.id, b.partition);
            let records = b.records.as_deref().unwrap_or_default();
            log.append(key, records, AppendConfig::of(&b.topic))
        })
        .collect();
    let mut answers = Vec::with_capacity(batches.len());
    for (batch, appending) in batches.iter().zip(appended) {
        let appending = match appending {
            Err(e) => {
                answers.push(PartitionAnswer::refused(e));
                continue;
            }
            Ok(a) => a,
        };
        let answer = PartitionAnswer {
            error: None,
            base_offset: appending.base_offset,
            log_append_time: appending.log_append_time,
            log_start: appending.log_start,
        };
        if batch.acks == 0 {
            let log = log.clone();
            glommio::spawn_local(async move { log.wait_durable(appending).await }).detach();
            answers.push(answer);
        } else {
            answers.push(match log.wait_durable(appending).await {
                Ok(()) => answer,
                Err(e) => PartitionAnswer::refused(e),
            });
        }
    }
    answers
}
