//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3) and by
//! timestamp: the first *record* at or after the asked time, as Kafka
//! answers. The index finds the first batch whose max timestamp qualifies;
//! that one batch is then decoded (decompressed if need be: ListOffsets is
//! not the produce/fetch hot path) to find the record.

use std::rc::Rc;

use sluice_protocol::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use sluice_protocol::kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use sluice_protocol::kafka_protocol::ResponseError;

use sluice_protocol::kafka_protocol::records::RecordBatchDecoder;
use sluice_protocol::kafka_protocol::records::TimestampType;
use sluice_protocol::RecordBatch;

use crate::partition::PartitionKey;
use crate::router::{scatter_slots, Slot};
use crate::shard::Shard;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// (offset, timestamp) for one partition and query, on its owner.
async fn answer(shard: &Shard, key: &PartitionKey, ts: i64) -> Result<(i64, i64), i16> {
    let batch = {
        let partitions = shard.partitions.borrow();
        let p = partitions
            .get(key)
            .ok_or(ResponseError::UnknownTopicOrPartition.code())?;
        match ts {
            LATEST => return Ok((p.high_watermark, -1)),
            EARLIEST => return Ok((p.log_start, -1)),
            MAX_TIMESTAMP => return Ok(p.max_timestamp().unwrap_or((-1, -1))),
            t if t < 0 => return Err(ResponseError::InvalidRequest.code()),
            t => match p.batch_for_time(t) {
                Some(batch) => batch,
                None => return Ok((-1, -1)),
            },
        }
    };
    let bytes = shard.batch_bytes(key, &batch).await.map_err(|why| {
        tracing::error!(error = why, "ListOffsets read failed");
        ResponseError::KafkaStorageError.code()
    })?;
    Ok(first_record_at(bytes, ts).unwrap_or((batch.base_offset, batch.max_timestamp)))
}

/// Offset and timestamp of the first record of `batch` stamped at or after
/// `ts`. With LogAppendTime every record carries the batch's max timestamp.
fn first_record_at(mut batch: bytes::Bytes, ts: i64) -> Option<(i64, i64)> {
    let header = RecordBatch::parse(&batch).ok()?;
    if header.timestamp_type() == TimestampType::LogAppend {
        return Some((header.base_offset(), header.max_timestamp()));
    }
    let set = RecordBatchDecoder::decode(&mut batch).ok()?;
    set.records
        .iter()
        .find(|r| r.timestamp >= ts)
        .map(|r| (r.offset, r.timestamp))
}

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
        |s: Rc<Shard>, queries: Vec<(PartitionKey, i64)>| async move {
            let mut answers = Vec::with_capacity(queries.len());
            for (key, ts) in queries {
                answers.push(answer(&s, &key, ts).await);
            }
            answers
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
