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

use sluice_protocol::kafka_protocol::records::RecordBatchDecoder;
use sluice_protocol::kafka_protocol::records::TimestampType;
use sluice_protocol::RecordBatch;

use crate::context::RequestContext;
use crate::error::BrokerError;
use crate::log::PartitionKey;
use crate::router::{scatter_slots, Slot};
use crate::shard::Shard;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// (offset, timestamp) for one partition and query, on its owner.
async fn answer(shard: &Shard, key: &PartitionKey, ts: i64) -> Result<(i64, i64), BrokerError> {
    let log = shard.log();
    let offsets = log.offsets(key)?;
    match ts {
        LATEST => return Ok((offsets.high_watermark, -1)),
        EARLIEST => return Ok((offsets.log_start, -1)),
        MAX_TIMESTAMP => return Ok(offsets.max_timestamp.unwrap_or((-1, -1))),
        t if t < 0 => {
            return Err(BrokerError::InvalidRequest(format!(
                "timestamp {t} is not a time or a known query"
            )))
        }
        _ => {}
    }
    let found = log.batch_for_time(key, ts).await.inspect_err(|e| {
        if let BrokerError::Storage(why) = e {
            tracing::error!(error = why, "ListOffsets read failed");
        }
    })?;
    Ok(match found {
        Some((batch, bytes)) => {
            first_record_at(bytes, ts).unwrap_or((batch.base_offset, batch.max_timestamp))
        }
        None => (-1, -1),
    })
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
pub async fn handle(ctx: &RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let shard = &ctx.shard;
    let metadata = shard.metadata();
    let mut slots: Vec<Slot<(PartitionKey, i64), BrokerError>> = Vec::new();
    for (ti, topic) in request.topics.iter().enumerate() {
        let found = metadata.topics.get(topic.name.0.as_str());
        for p in &topic.partitions {
            let slot = match found.and_then(|t| Some((t, t.owner(p.partition_index)?))) {
                Some((t, owner)) => Ok((
                    owner,
                    (PartitionKey::new(t.id, p.partition_index), p.timestamp),
                )),
                None => Err(BrokerError::UnknownTopicOrPartition(
                    "unknown partition".into(),
                )),
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
        |_| Err(BrokerError::ShuttingDown),
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
                Err(e) => r.with_error_code(e.code()),
            });
    }
    ListOffsetsResponse::default().with_topics(topics)
}
