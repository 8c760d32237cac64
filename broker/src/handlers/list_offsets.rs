//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3) and by
//! timestamp. By timestamp answers the first batch whose max timestamp is at
//! or after the asked time (batches are never decompressed, so the answer
//! is batch-precise; consumers skip the records before it).

use std::rc::Rc;

use sluice_protocol::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use sluice_protocol::kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use sluice_protocol::kafka_protocol::ResponseError;

use crate::partition::PartitionKey;
use crate::router::{scatter_slots, Slot};
use crate::shard::Shard;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// Answers a ListOffsets request.
pub async fn handle(
    shard: &Rc<Shard>,
    request: ListOffsetsRequest,
    _version: i16,
) -> ListOffsetsResponse {
    let metadata = shard.metadata();
    let mut slots: Vec<Slot<(PartitionKey, i64), i16>> = Vec::new();
    for (ti, topic) in request.topics.iter().enumerate() {
        let found = metadata.topics.get(topic.name.0.as_str());
        for p in &topic.partitions {
            let slot = match found
                .and_then(|t| t.partitions.get(p.partition_index as usize).map(|o| (t, o)))
            {
                Some((t, owner)) if p.partition_index >= 0 => {
                    Ok((*owner, ((t.id, p.partition_index), p.timestamp)))
                }
                _ => Err(ResponseError::UnknownTopicOrPartition.code()),
            };
            slots.push(Slot {
                topic: ti,
                partition: p.partition_index,
                target: slot,
            });
        }
    }
    let answers = scatter_slots(
        shard,
        &slots,
        |s: Rc<Shard>, qs: Vec<(PartitionKey, i64)>| async move {
            let partitions = s.partitions.borrow();
            qs.iter()
                .map(|(key, ts)| {
                    let Some(p) = partitions.get(key) else {
                        return Err(ResponseError::UnknownTopicOrPartition.code());
                    };
                    Ok(match *ts {
                        LATEST => (p.high_watermark, -1),
                        EARLIEST => (p.log_start, -1),
                        MAX_TIMESTAMP => p.max_timestamp().unwrap_or((-1, -1)),
                        t if t >= 0 => p.offset_for_time(t).unwrap_or((-1, -1)),
                        _ => return Err(ResponseError::InvalidRequest.code()),
                    })
                })
                .collect::<Vec<_>>()
        },
        |_| Err(ResponseError::KafkaStorageError.code()),
    )
    .await;
    let mut topics: Vec<ListOffsetsTopicResponse> = request
        .topics
        .iter()
        .map(|t| ListOffsetsTopicResponse::default().with_name(t.name.clone()))
        .collect();
    for (slot, answer) in slots.iter().zip(answers) {
        let r = ListOffsetsPartitionResponse::default().with_partition_index(slot.partition);
        topics[slot.topic]
            .partitions
            .push(match answer.and_then(|a| a) {
                Ok((offset, timestamp)) => r.with_offset(offset).with_timestamp(timestamp),
                Err(code) => r.with_error_code(code),
            });
    }
    ListOffsetsResponse::default().with_topics(topics)
}
