//! Fetch: read stored batches from the fetch buffer (recent data) or the
//! WAL by direct I/O (older data), and long-poll for `min_bytes` until
//! `max_wait_ms`, woken by new data on the owning shards.
//!
//! Byte limits as KIP-74 sets them: partitions in request order, each read
//! up to the smaller of its own limit and what is left of the request's
//! `max_bytes` (itself capped by `--fetch-max-bytes` and a quarter of the
//! shard's memory budget); only the first batch
//! of the first non-empty partition may pass a limit, and later partitions
//! are cut to whole batches that fit instead of being dropped. The limit
//! holds while reading, on every owner, so a fetch never holds more than
//! its budget. A partition named twice is answered once, as Kafka does.
//!
//! `isolation.level=read_committed` (isolation level 1) reads stop at each
//! partition's last stable offset and carry the aborted transactions of
//! what was read, so the consumer drops their records; read_uncommitted
//! reads up to the high watermark, as before.
//!
//! Incremental fetch sessions (KIP-227, v7+) are `crate::fetch_sessions`:
//! a continued session's request is widened to all its partitions before
//! the read, and its answer narrowed to the partitions with news after.

use std::time::Instant;

use bytes::Bytes;
use sluice_protocol::kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use sluice_protocol::kafka_protocol::messages::{
    FetchRequest, FetchResponse, ProducerId, TopicName,
};

use crate::authorizer::{op, resource};
use crate::context::RequestContext;
use crate::error::BrokerError;
use crate::fetch_sessions::Plan;
use crate::log::{AbortedTxn, Fetched, PartitionKey, ReadRange};
use crate::router::{scatter_slots, Slot};
use crate::shard_id::ShardId;
use crate::util::{wire_len, wire_millis};

/// What one partition of the response carries.
#[derive(Debug, Clone)]
struct PartitionRead {
    error: Option<BrokerError>,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start: i64,
    records: Bytes,
    aborted: Option<Vec<AbortedTxn>>,
}

impl PartitionRead {
    fn of(read: Result<Fetched, BrokerError>) -> PartitionRead {
        match read {
            Ok(f) => PartitionRead {
                error: None,
                high_watermark: f.high_watermark,
                last_stable_offset: f.last_stable_offset,
                log_start: f.log_start,
                records: f.records,
                aborted: f.aborted,
            },
            Err(e) => PartitionRead {
                error: Some(e),
                high_watermark: -1,
                last_stable_offset: -1,
                log_start: -1,
                records: Bytes::new(),
                aborted: None,
            },
        }
    }
}

/// Answers a Fetch request.
pub async fn handle(ctx: &RequestContext, mut request: FetchRequest) -> FetchResponse {
    let (shard, version) = (&ctx.shard, ctx.version());
    let plan = if version >= 7 {
        match shard.fetch_sessions().borrow_mut().begin(&mut request) {
            Ok(plan) => plan,
            Err(code) => return FetchResponse::default().with_error_code(code),
        }
    } else {
        Plan::Sessionless
    };
    let deadline = Instant::now() + wire_millis(request.max_wait_ms, 30_000);
    let by_id = version >= 13;
    // Before v3 a request has no limit of its own.
    let asked = if version >= 3 {
        wire_len(request.max_bytes)
    } else {
        usize::MAX
    };
    // The read and its copy in the answer are held against the shard's
    // memory budget while the request's own bytes are held too: a limit
    // past a quarter of the budget could wait for it forever.
    let max_bytes = asked
        .min(shard.config().fetch_max_bytes)
        .min((shard.memory().limit() / 4).max(1));
    let committed = version >= 4 && request.isolation_level == 1;
    let metadata = shard.metadata();
    let mut slots: Vec<Slot<ReadRange, BrokerError>> = Vec::new();
    let mut named = std::collections::HashSet::new();
    for (ti, topic) in request.topics.iter().enumerate() {
        let found = if by_id {
            metadata.by_id(topic.topic_id.as_bytes()).cloned()
        } else {
            metadata.topics.get(topic.topic.0.as_str()).cloned()
        };
        // By id from v13, by name before: borrowed, nothing allocated per
        // partition on the fetch path.
        let asked = (topic.topic_id, topic.topic.0.as_str());
        let name = found.as_ref().map_or(asked.1, |t| &*t.name);
        let readable = (by_id && found.is_none()) || ctx.allows(op::READ, resource::TOPIC, name);
        for p in &topic.partitions {
            if !named.insert((asked, p.partition)) {
                continue;
            }
            let slot = match &found {
                _ if !readable => Err(BrokerError::TopicAuthorizationFailed(format!(
                    "may not read topic '{name}'"
                ))),
                None if by_id => Err(BrokerError::UnknownTopicId),
                None => Err(BrokerError::UnknownTopicOrPartition("unknown topic".into())),
                Some(t) => match t.owner(p.partition) {
                    None => Err(BrokerError::UnknownTopicOrPartition(
                        "unknown partition".into(),
                    )),
                    Some(owner) => Ok((
                        owner,
                        ReadRange {
                            key: PartitionKey::new(t.id, p.partition),
                            offset: p.fetch_offset,
                            max_bytes: wire_len(p.partition_max_bytes),
                            first_batch_always: true,
                            committed,
                        },
                    )),
                },
            };
            slots.push(Slot {
                topic: ti,
                partition: p.partition,
                target: slot,
            });
        }
    }
    let min_bytes = wire_len(request.min_bytes);
    // A partition refused before reaching an owner answers at once, as
    // every error does.
    let refused = slots.iter().any(|s| s.target.is_err());
    let read = || {
        let slots = &slots;
        async move {
            scatter_slots(
                shard,
                slots,
                move |s, ranges: Vec<ReadRange>| async move {
                    let log = s.log().clone();
                    log.read_all(&ranges, max_bytes)
                        .await
                        .into_iter()
                        .map(PartitionRead::of)
                        .collect::<Vec<_>>()
                },
                |_| PartitionRead::of(Err(BrokerError::ShuttingDown)),
            )
            .await
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| PartitionRead::of(Err(e))))
            .collect::<Vec<PartitionRead>>()
        }
    };
    // Reads hold twice the request's byte limit from the shard's memory
    // budget (what is read, and its copy in the encoded response), waiting
    // for it when the budget is spent; waits for new data hold nothing. Long poll: until min_bytes are there or max_wait passes,
    // wait for the high watermark of any asked partition to move past what
    // was seen, on whichever owner it moves first, then read them all again.
    let read_budget = max_bytes.saturating_mul(2);
    let mut reading = shard.memory().reserve(read_budget).await;
    let mut data = read().await;
    loop {
        let bytes: usize = data.iter().map(|d| d.records.len()).sum();
        let waits: Vec<(ShardId, (PartitionKey, i64))> = slots
            .iter()
            .zip(&data)
            .filter_map(|(slot, d)| {
                let (owner, range) = slot.target.as_ref().ok()?;
                let visible = if committed {
                    d.last_stable_offset
                } else {
                    d.high_watermark
                };
                Some((*owner, (range.key, range.offset.max(visible))))
            })
            .collect();
        if min_bytes == 0
            || bytes >= min_bytes
            || refused
            || data.iter().any(|d| d.error.is_some())
            || waits.is_empty()
            || Instant::now() >= deadline
        {
            break;
        }
        drop((reading, data));
        wait_for_data(ctx, waits, committed, deadline).await;
        reading = shard.memory().reserve(read_budget).await;
        data = read().await;
    }
    // Each owner kept to the request's limit; together they may not.
    let mut budget = max_bytes;
    let mut first = true;
    for d in &mut data {
        if d.records.is_empty() {
            continue;
        }
        if !first && d.records.len() > budget {
            d.records = whole_batches_within(&d.records, budget);
        }
        budget = budget.saturating_sub(d.records.len());
        first = false;
    }

    let mut topics: Vec<FetchableTopicResponse> = request
        .topics
        .iter()
        .map(|t| {
            FetchableTopicResponse::default()
                .with_topic(if by_id {
                    TopicName::default()
                } else {
                    t.topic.clone()
                })
                .with_topic_id(t.topic_id)
        })
        .collect();
    for (slot, d) in slots.iter().zip(data) {
        let aborted = d.aborted.map(|list| {
            list.into_iter()
                .map(|a| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(a.producer_id))
                        .with_first_offset(a.first_offset)
                })
                .collect()
        });
        topics[slot.topic].partitions.push(
            PartitionData::default()
                .with_partition_index(slot.partition)
                .with_error_code(BrokerError::code_of(d.error.as_ref()))
                .with_high_watermark(d.high_watermark)
                .with_last_stable_offset(d.last_stable_offset)
                .with_log_start_offset(d.log_start)
                .with_aborted_transactions(aborted)
                .with_records(Some(d.records)),
        );
    }
    shard
        .fetch_sessions()
        .borrow_mut()
        .finish(plan, &mut topics);
    FetchResponse::default()
        .with_session_id(plan.session_id())
        .with_responses(topics)
}

/// The longest prefix of `records` (stored batches, back to back) made of
/// whole batches and at most `limit` bytes long.
fn whole_batches_within(records: &Bytes, limit: usize) -> Bytes {
    let mut end = 0;
    while let Some(len) = sluice_protocol::record_batch::stored_batch_len(&records[end..]) {
        if end + len > limit {
            break;
        }
        end += len;
    }
    records.slice(..end)
}

/// Waits until the high watermark of any `(partition, seen)` moves past
/// `seen` on its owner, or the deadline passes.
async fn wait_for_data(
    ctx: &RequestContext,
    waits: Vec<(ShardId, (PartitionKey, i64))>,
    committed: bool,
    deadline: Instant,
) {
    let mut owners: Vec<ShardId> = waits.iter().map(|(o, _)| *o).collect();
    owners.sort_unstable();
    owners.dedup();
    let (tx, rx) = flume::bounded::<()>(owners.len());
    for owner in owners {
        let mine: Vec<(PartitionKey, i64)> = waits
            .iter()
            .filter(|(o, _)| *o == owner)
            .map(|(_, w)| *w)
            .collect();
        let (shard, tx) = (ctx.shard.clone(), tx.clone());
        glommio::spawn_local(async move {
            shard
                .call(owner, move |s| async move {
                    s.log()
                        .wait_for_data(&mine, committed, deadline, &s.lifecycle().shutdown)
                        .await
                })
                .await;
            let _ = tx.send(());
        })
        .detach();
    }
    let _ = rx.recv_async().await;
}
