//! Fetch: read stored batches from the fetch buffer (recent data) or the
//! WAL by direct I/O (older data), honouring partition and request byte
//! limits (at least one whole batch), and long-polling for `min_bytes`
//! until `max_wait_ms`, woken by new data on the owning shards.
//!
//! Sessionless full fetches only: the answer always carries session id 0.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sluice_protocol::kafka_protocol::messages::fetch_response::{
    FetchableTopicResponse, PartitionData,
};
use sluice_protocol::kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use sluice_protocol::kafka_protocol::ResponseError;

use crate::controller::Refusal;
use crate::partition::PartitionKey;
use crate::router::{scatter_slots, Slot};
use crate::shard::Shard;

/// WAL reads of one partition's fetch in flight at once.
const READS_IN_FLIGHT: usize = 32;

/// One partition's read, sent to its owner.
#[derive(Clone)]
struct Read {
    key: PartitionKey,
    offset: i64,
    max_bytes: usize,
}

/// What the owner read.
#[derive(Debug, Clone)]
struct Data {
    error: Option<i16>,
    high_watermark: i64,
    log_start: i64,
    records: Bytes,
}

impl Data {
    fn error(code: i16) -> Data {
        Data {
            error: Some(code),
            high_watermark: -1,
            log_start: -1,
            records: Bytes::new(),
        }
    }
}

/// Answers a Fetch request.
pub async fn handle(shard: &Rc<Shard>, request: FetchRequest, version: i16) -> FetchResponse {
    let deadline =
        Instant::now() + Duration::from_millis(request.max_wait_ms.clamp(0, 30_000) as u64);
    let by_id = version >= 13;
    let metadata = shard.metadata();
    let mut slots: Vec<Slot<Read, i16>> = Vec::new();
    for (ti, topic) in request.topics.iter().enumerate() {
        let found = if by_id {
            metadata.by_id(topic.topic_id.as_bytes()).cloned()
        } else {
            metadata.topics.get(topic.topic.0.as_str()).cloned()
        };
        for p in &topic.partitions {
            let slot = match &found {
                None if by_id => Err(ResponseError::UnknownTopicId.code()),
                None => Err(ResponseError::UnknownTopicOrPartition.code()),
                Some(t) => match t
                    .partitions
                    .get(p.partition as usize)
                    .filter(|_| p.partition >= 0)
                {
                    None => Err(ResponseError::UnknownTopicOrPartition.code()),
                    Some(owner) => Ok((
                        *owner,
                        Read {
                            key: (t.id, p.partition),
                            offset: p.fetch_offset,
                            max_bytes: p.partition_max_bytes.max(0) as usize,
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
    let gone = |_: &Read| Data::error(ResponseError::KafkaStorageError.code());
    let read = || async {
        scatter_slots(shard, &slots, read_on_owner, gone)
            .await
            .into_iter()
            .map(|r| r.unwrap_or_else(Data::error))
            .collect::<Vec<Data>>()
    };
    let mut data = read().await;
    let min_bytes = request.min_bytes.max(0) as usize;
    // Long poll: until min_bytes are there or max_wait passes, wait for the
    // high watermark of any asked partition to move past what was seen.
    loop {
        let bytes: usize = data.iter().map(|d| d.records.len()).sum();
        let waits: Vec<(usize, (PartitionKey, i64))> = slots
            .iter()
            .zip(&data)
            .filter_map(|(slot, d)| {
                let (owner, read) = slot.target.as_ref().ok()?;
                Some((*owner, (read.key, read.offset.max(d.high_watermark))))
            })
            .collect();
        if min_bytes == 0
            || bytes >= min_bytes
            || data.iter().any(|d| d.error.is_some())
            || waits.is_empty()
            || Instant::now() >= deadline
        {
            break;
        }
        wait_for_data(shard, waits, deadline).await;
        data = read().await;
    }

    // The request-wide byte limit: keep whole partitions while they fit,
    // and always the first non-empty one.
    let mut budget = request.max_bytes.max(0) as usize;
    let mut first = true;
    for d in &mut data {
        if d.records.is_empty() {
            continue;
        }
        if d.records.len() > budget && !first {
            d.records = Bytes::new();
            continue;
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
        topics[slot.topic].partitions.push(
            PartitionData::default()
                .with_partition_index(slot.partition)
                .with_error_code(d.error.unwrap_or(0))
                .with_high_watermark(d.high_watermark)
                .with_last_stable_offset(d.high_watermark)
                .with_log_start_offset(d.log_start)
                .with_records(Some(d.records)),
        );
    }
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(topics)
}

/// On the owning shard: the stored batches from each read's offset.
async fn read_on_owner(shard: Rc<Shard>, reads: Vec<Read>) -> Vec<Data> {
    let mut out = Vec::with_capacity(reads.len());
    for read in reads {
        out.push(
            read_partition(&shard, &read)
                .await
                .unwrap_or_else(|(code, why)| {
                    if code == ResponseError::KafkaStorageError.code() {
                        tracing::error!(error = why, "fetch read failed");
                    }
                    Data::error(code)
                }),
        );
    }
    out
}

async fn read_partition(shard: &Rc<Shard>, read: &Read) -> Result<Data, Refusal> {
    // Which batches, decided without awaiting.
    let (batches, high_watermark, log_start) = {
        let partitions = shard.partitions.borrow();
        let p = partitions.get(&read.key).ok_or((
            ResponseError::UnknownTopicOrPartition.code(),
            "partition is not on this shard".to_string(),
        ))?;
        if read.offset < p.log_start || read.offset > p.high_watermark {
            return Err((
                ResponseError::OffsetOutOfRange.code(),
                format!(
                    "offset {} outside [{}, {}]",
                    read.offset, p.log_start, p.high_watermark
                ),
            ));
        }
        let mut batches = Vec::new();
        let mut total = 0usize;
        for entry in &p.index[p.batch_at(read.offset)..] {
            if entry.base_offset >= p.high_watermark
                || (total > 0 && total + entry.size as usize > read.max_bytes)
            {
                break;
            }
            total += entry.size as usize;
            batches.push(*entry);
        }
        (batches, p.high_watermark, p.log_start)
    };
    let mut records = BytesMut::new();
    let mut single = None;
    // Batches not in the fetch buffer are read from the WAL up to
    // READS_IN_FLIGHT at a time (each read alone waits for the disk).
    for window in batches.chunks(READS_IN_FLIGHT) {
        let reads: Vec<_> = window
            .iter()
            .map(|entry| {
                shard.buffered_batch(&read.key, entry).ok_or_else(|| {
                    let (shard, key, entry) = (shard.clone(), read.key, *entry);
                    glommio::spawn_local(async move { shard.read_batch(&key, &entry).await })
                })
            })
            .collect();
        for r in reads {
            let bytes = match r {
                Ok(bytes) => bytes,
                Err(reading) => reading
                    .await
                    .map_err(|why| (ResponseError::KafkaStorageError.code(), why))?,
            };
            if batches.len() == 1 {
                single = Some(bytes);
            } else {
                records.extend_from_slice(&bytes);
            }
        }
    }
    Ok(Data {
        error: None,
        high_watermark,
        log_start,
        records: single.unwrap_or_else(|| records.freeze()),
    })
}

/// Waits until the high watermark of any `(partition, seen)` moves past
/// `seen` on its owner, or the deadline passes.
async fn wait_for_data(
    shard: &Rc<Shard>,
    waits: Vec<(usize, (PartitionKey, i64))>,
    deadline: Instant,
) {
    let mut owners: Vec<usize> = waits.iter().map(|(o, _)| *o).collect();
    owners.sort_unstable();
    owners.dedup();
    let (tx, rx) = flume::bounded::<()>(owners.len());
    for owner in owners {
        let mine: Vec<(PartitionKey, i64)> = waits
            .iter()
            .filter(|(o, _)| *o == owner)
            .map(|(_, w)| *w)
            .collect();
        let (shard, tx) = (shard.clone(), tx.clone());
        glommio::spawn_local(async move {
            shard
                .call(owner, move |s| wait_on_owner(s, mine, deadline))
                .await;
            let _ = tx.send(());
        })
        .detach();
    }
    let _ = rx.recv_async().await;
}

async fn wait_on_owner(shard: Rc<Shard>, waits: Vec<(PartitionKey, i64)>, deadline: Instant) {
    let stop = shard.shutdown.generation();
    loop {
        let generation = shard.data_arrived.generation();
        let ready = {
            let partitions = shard.partitions.borrow();
            waits
                .iter()
                .any(|(key, seen)| partitions.get(key).is_none_or(|p| p.high_watermark > *seen))
        };
        let now = Instant::now();
        if ready || now >= deadline || shard.shutdown.generation() != stop {
            return;
        }
        // Shutting down ends the wait: the fetch answers with what it has.
        futures_lite::future::or(
            futures_lite::future::or(
                shard.data_arrived.changed(generation),
                shard.shutdown.changed(stop),
            ),
            glommio::timer::sleep(deadline - now),
        )
        .await;
    }
}
