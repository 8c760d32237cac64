//! Produce: validate each batch (magic v2, CRC-32C), give it offsets, hand
//! it to the owning shard's WAL, and answer only once it is durable
//! (acks=1 and acks=-1; acks=0 is never waited for and gets no response).
//!
//! On the owning shard, offsets are assigned in the same synchronous step
//! that hands the batch to the WAL, so WAL order and offset order agree;
//! the high watermark moves only after the WAL says the batch is durable.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use sluice_protocol::kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use sluice_protocol::kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use sluice_protocol::kafka_protocol::ResponseError;
use sluice_protocol::record_batch::{produce_batch, set_base_offset, set_log_append_time};
use wal_core::Durable;

use crate::controller::{ensure_topics, Refusal};
use crate::metadata::{str_bytes, Topic};
use crate::partition::{BatchEntry, PartitionKey};
use crate::producers::{Check, ProducerBatch};
use crate::router::{scatter_slots, Slot};
use crate::shard::{batch_frame_header, Shard, FRAME_RECORD_BATCH};

/// One partition's part of a produce request, sent to its owner.
#[derive(Clone)]
struct Part {
    topic: Arc<Topic>,
    partition: i32,
    records: Option<Bytes>,
    acks: i16,
}

/// What the owner answers for one partition.
#[derive(Debug, Clone)]
struct Outcome {
    error: Option<Refusal>,
    base_offset: i64,
    log_append_time: i64,
    log_start: i64,
}

impl Outcome {
    fn refused(error: Refusal) -> Outcome {
        Outcome {
            error: Some(error),
            base_offset: -1,
            log_append_time: -1,
            log_start: -1,
        }
    }
}

/// Answers a Produce request; `None` for acks=0.
pub async fn handle(
    shard: &Rc<Shard>,
    request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let by_id = version >= 13;
    let names: Vec<String> = if by_id {
        Vec::new()
    } else {
        request
            .topic_data
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    let metadata = ensure_topics(shard, names).await;

    // Every partition in request order: its owner and part, or an error now.
    let mut slots: Vec<Slot<Part, Refusal>> = Vec::new();
    for (ti, topic) in request.topic_data.iter().enumerate() {
        let found = if by_id {
            metadata.by_id(topic.topic_id.as_bytes()).cloned()
        } else {
            metadata.topics.get(topic.name.0.as_str()).cloned()
        };
        for p in &topic.partition_data {
            let slot = if !matches!(acks, -1..=1) {
                Err((
                    ResponseError::InvalidRequiredAcks.code(),
                    format!("acks must be -1, 0 or 1, got {acks}"),
                ))
            } else {
                match &found {
                    None if by_id => Err((
                        ResponseError::UnknownTopicId.code(),
                        "unknown topic id".into(),
                    )),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition.code(),
                        "unknown topic".into(),
                    )),
                    Some(t) => match t.partitions.get(p.index as usize).filter(|_| p.index >= 0) {
                        None => Err((
                            ResponseError::UnknownTopicOrPartition.code(),
                            "unknown partition".into(),
                        )),
                        Some(owner) => Ok((
                            *owner,
                            Part {
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
    let outcomes = scatter_slots(shard, &slots, append_on_owner, |_| {
        Outcome::refused((
            ResponseError::KafkaStorageError.code(),
            "shard stopped".into(),
        ))
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
    for (slot, outcome) in slots.iter().zip(outcomes) {
        let outcome = outcome.unwrap_or_else(Outcome::refused);
        let index = slot.partition;
        let mut r = PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(outcome.base_offset)
            .with_log_append_time_ms(outcome.log_append_time)
            .with_log_start_offset(outcome.log_start);
        if let Some((code, message)) = outcome.error {
            r = r.with_error_code(code);
            if version >= 8 {
                r = r.with_error_message(Some(str_bytes(&message)));
            }
        }
        responses[slot.topic].partition_responses.push(r);
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// On the owning shard: append every part (in order), then wait until each
/// is durable and move the high watermarks (acks=0: without waiting).
async fn append_on_owner(shard: Rc<Shard>, parts: Vec<Part>) -> Vec<Outcome> {
    let submitted: Vec<Result<Submitted, Refusal>> =
        parts.iter().map(|p| submit(&shard, p)).collect();
    let mut outcomes = Vec::with_capacity(parts.len());
    for (part, s) in parts.iter().zip(submitted) {
        let s = match s {
            Err(e) => {
                outcomes.push(Outcome::refused(e));
                continue;
            }
            Ok(s) => s,
        };
        let outcome = Outcome {
            error: None,
            base_offset: s.base_offset,
            log_append_time: s.log_append_time,
            log_start: s.log_start,
        };
        if part.acks == 0 {
            glommio::spawn_local(commit(shard.clone(), s)).detach();
            outcomes.push(outcome);
        } else {
            outcomes.push(match commit(shard.clone(), s).await {
                Ok(()) => outcome,
                Err(e) => Outcome::refused(e),
            });
        }
    }
    outcomes
}

/// A batch handed to the WAL (or found there already), not yet durable.
struct Submitted {
    key: PartitionKey,
    base_offset: i64,
    next_offset: i64,
    log_append_time: i64,
    log_start: i64,
    /// `None` for a retried batch of an idempotent producer that is stored
    /// already: it is acknowledged once everything before now is durable.
    durable: Option<Durable>,
}

/// Validates the batch, assigns its offsets and hands it to the WAL. No
/// await: offsets and WAL positions are given out in one step.
fn submit(shard: &Shard, part: &Part) -> Result<Submitted, Refusal> {
    let key = (part.topic.id, part.partition);
    let records = part.records.as_deref().unwrap_or_default();
    let batch = produce_batch(records).map_err(|e| (e.error_code(), e.to_string()))?;
    let max_bytes: usize = part
        .topic
        .config("max.message.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_048_588);
    if batch.size() > max_bytes {
        return Err((
            ResponseError::MessageTooLarge.code(),
            format!(
                "batch of {} bytes exceeds max.message.bytes {max_bytes}",
                batch.size()
            ),
        ));
    }
    let count = i64::from(batch.last_offset_delta()) + 1;
    let max_timestamp = batch.max_timestamp();
    let mut partitions = shard.partitions.borrow_mut();
    let partition = partitions.get_mut(&key).ok_or((
        ResponseError::UnknownTopicOrPartition.code(),
        "partition is not on this shard".to_string(),
    ))?;
    let producer = ProducerBatch::of(&batch);
    if let Some(pb) = &producer {
        if batch.is_transactional() {
            return Err((
                ResponseError::InvalidTxnState.code(),
                "transactions are not supported".to_string(),
            ));
        }
        let check = shard.producers.borrow().check(key, pb)?;
        if let Check::Duplicate { base_offset } = check {
            tracing::debug!(
                producer_id = pb.pid,
                first_seq = pb.first_seq,
                base_offset,
                "duplicate batch answered with its offsets"
            );
            return Ok(Submitted {
                key,
                base_offset,
                next_offset: base_offset,
                log_append_time: -1,
                log_start: partition.log_start,
                durable: None,
            });
        }
    }
    let mut bytes = BytesMut::from(batch.as_bytes());
    let base_offset = partition.log_end;
    let corrupt = |e: sluice_protocol::BatchError| (e.error_code(), e.to_string());
    set_base_offset(&mut bytes, base_offset).map_err(corrupt)?;
    let (log_append_time, max_timestamp) = if part.topic.log_append_time() {
        let now = now_ms();
        set_log_append_time(&mut bytes, now).map_err(corrupt)?;
        (now, now)
    } else {
        (-1, max_timestamp)
    };
    let bytes = bytes.freeze();
    let appended = shard
        .wal
        .submit(FRAME_RECORD_BATCH, &[&batch_frame_header(&key), &bytes])
        .map_err(|e| (ResponseError::KafkaStorageError.code(), e.to_string()))?;
    partition.push(BatchEntry {
        base_offset,
        last_offset: base_offset + count - 1,
        position: appended.position,
        size: bytes.len() as u32,
        max_timestamp,
    });
    let log_start = partition.log_start;
    drop(partitions);
    if let Some(pb) = &producer {
        shard
            .producers
            .borrow_mut()
            .record(key, pb, base_offset, Instant::now());
    }
    shard
        .fetch_buffer
        .borrow_mut()
        .insert(key, base_offset, bytes);
    Ok(Submitted {
        key,
        base_offset,
        next_offset: base_offset + count,
        log_append_time,
        log_start,
        durable: Some(appended.durable),
    })
}

/// Waits until the batch is durable, then moves the high watermark.
async fn commit(shard: Rc<Shard>, s: Submitted) -> Result<(), Refusal> {
    let durable = match s.durable {
        Some(durable) => durable.await,
        None => shard.wal.sync().await,
    };
    durable.map_err(|e| (ResponseError::KafkaStorageError.code(), e.to_string()))?;
    let moved = shard
        .partitions
        .borrow_mut()
        .get_mut(&s.key)
        .is_some_and(|p| p.advance_high_watermark(s.next_offset));
    if moved {
        shard.data_arrived.notify();
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
