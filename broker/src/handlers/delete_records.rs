//! DeleteRecords: moves partitions' log starts, durably, as Kafka's
//! `AdminClient.deleteRecords` asks (offset -1: the high watermark). The
//! answer is each partition's new low watermark (its log start); the space
//! comes back when the cleaner reclaims the segments.

use std::rc::Rc;

use sluice_protocol::kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use sluice_protocol::kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::authorizer::{op, resource};
use crate::context::RequestContext;
use crate::error::BrokerError;
use crate::log::PartitionKey;
use crate::router::{allowed_slot, scatter_slots, Slot};
use crate::shard::Shard;

/// Offset -1: everything below the high watermark.
const HIGH_WATERMARK: i64 = -1;

/// The new log start of one partition, on its owner.
async fn delete_below(shard: &Shard, key: &PartitionKey, offset: i64) -> Result<i64, BrokerError> {
    let log = shard.log();
    let offset = match offset {
        HIGH_WATERMARK => log.offsets(key)?.high_watermark,
        o => o,
    };
    log.trim_log_start(key, offset).await
}

/// Answers a DeleteRecords request.
pub async fn handle(ctx: &RequestContext, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let shard = &ctx.shard;
    let metadata = shard.metadata();
    let slots: Vec<Slot<(PartitionKey, i64), BrokerError>> = request
        .topics
        .iter()
        .enumerate()
        .flat_map(|(ti, t)| t.partitions.iter().map(move |p| (ti, t.name.0.as_str(), p)))
        .map(|(ti, name, p)| {
            let allowed = ctx.allows(op::DELETE, resource::TOPIC, name);
            allowed_slot(allowed, &metadata, ti, name, p.partition_index, p.offset)
        })
        .collect();
    let answers = scatter_slots(
        shard,
        &slots,
        |s: Rc<Shard>, items: Vec<(PartitionKey, i64)>| async move {
            let mut answers = Vec::with_capacity(items.len());
            for (key, offset) in items {
                answers.push(delete_below(&s, &key, offset).await);
            }
            answers
        },
        |_| Err(BrokerError::ShuttingDown),
    )
    .await;
    let mut topics: Vec<DeleteRecordsTopicResult> = request
        .topics
        .iter()
        .map(|t| DeleteRecordsTopicResult::default().with_name(t.name.clone()))
        .collect();
    for (slot, answer) in slots.iter().zip(answers) {
        let r = DeleteRecordsPartitionResult::default().with_partition_index(slot.partition);
        topics[slot.topic]
            .partitions
            .push(match answer.and_then(|a| a) {
                Ok(low_watermark) => r.with_low_watermark(low_watermark),
                Err(e) => r.with_low_watermark(-1).with_error_code(e.code()),
            });
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
