//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3) and by
//! timestamp: the first *record* at or after the asked time, as Kafka
//! answers. The index finds the first batch whose max timestamp qualifies;
//! that one batch's records are then read as a stream (`record_stream`:
//! decompressed piece by piece, capped, stopping at the record). A batch
//! that cannot be read to the answer within the cap answers with its own
//! first offset, never later than the right record.
//!
//! With isolation level read_committed (v2 and later), latest is the last
//! stable offset: the end of what a read_committed consumer can read.

use std::rc::Rc;

use sluice_protocol::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use sluice_protocol::kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::authorizer::{op, resource};
use crate::context::RequestContext;
use crate::error::BrokerError;
use crate::log::PartitionKey;
use crate::record_stream;
use crate::router::{allowed_slot, scatter_slots, Slot};
use crate::shard::Shard;

/// One partition's question: a timestamp (or LATEST, EARLIEST,
/// MAX_TIMESTAMP) and whether the asker reads committed only.
type Query = (i64, bool);

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// (offset, timestamp) for one partition and query, on its owner.
async fn answer(
    shard: &Shard,
    key: &PartitionKey,
    (ts, committed): Query,
) -> Result<(i64, i64), BrokerError> {
    let log = shard.log();
    let offsets = log.offsets(key)?;
    match ts {
        LATEST if committed => return Ok((offsets.last_stable_offset, -1)),
        LATEST => return Ok((offsets.high_watermark, -1)),
        EARLIEST => return Ok((offsets.log_start, -1)),
        MAX_TIMESTAMP => return Ok(log.max_timestamp(key).await?.unwrap_or((-1, -1))),
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
    let Some((batch, bytes)) = found else {
        return Ok((-1, -1));
    };
    let whole_batch = (batch.base_offset, batch.max_timestamp);
    Ok(
        match record_stream::first_record_at(&bytes, ts, record_stream::MAX_DECOMPRESSED) {
            Ok(Some(found)) => found,
            Ok(None) => whole_batch,
            Err(why) => {
                tracing::debug!(error = why, "ListOffsets answered with the whole batch");
                whole_batch
            }
        },
    )
}

/// Answers a ListOffsets request.
pub async fn handle(ctx: &RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let shard = &ctx.shard;
    let metadata = shard.metadata();
    let committed = ctx.version() >= 2 && request.isolation_level == 1;
    let slots: Vec<Slot<(PartitionKey, Query), BrokerError>> = request
        .topics
        .iter()
        .enumerate()
        .flat_map(|(ti, t)| t.partitions.iter().map(move |p| (ti, t.name.0.as_str(), p)))
        .map(|(ti, name, p)| {
            allowed_slot(
                ctx.allows(op::DESCRIBE, resource::TOPIC, name),
                &metadata,
                ti,
                name,
                p.partition_index,
                (p.timestamp, committed),
            )
        })
        .collect();
    let answers = scatter_slots(
        shard,
        &slots,
        |s: Rc<Shard>, queries: Vec<(PartitionKey, Query)>| async move {
            let mut answers = Vec::with_capacity(queries.len());
            for (key, query) in queries {
                answers.push(answer(&s, &key, query).await);
                // A request may ask thousands: let the shard serve others.
                glommio::yield_if_needed().await;
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
