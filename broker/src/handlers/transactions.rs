//! Transaction APIs: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and
//! TxnOffsetCommit for producers; DescribeTransactions, ListTransactions
//! and DescribeProducers for admin tools. (InitProducerId with a
//! transactional id is in `producer_id.rs`.)
//!
//! Each transactional request runs on the id's coordinator shard
//! (`transactions::coordinator_shard`) as one call of its `TxnService`;
//! TxnOffsetCommit runs on the group's coordinator, which holds the
//! offsets until the transaction ends. PRODUCER_FENCED goes to versions
//! that predate it as INVALID_PRODUCER_EPOCH, as Kafka answers.

use std::future::Future;
use std::rc::Rc;

use sluice_protocol::kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use sluice_protocol::kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use sluice_protocol::kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState,
};
use sluice_protocol::kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
use sluice_protocol::kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use sluice_protocol::kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

use crate::authorizer::{op, resource};
use crate::context::RequestContext;
use crate::error::BrokerError;
use crate::groups::service::OffsetCommit;
use crate::handlers::groups::offsets::{commit_topics, request_shape};
use crate::log::PartitionKey;
use crate::metadata::str_bytes;
use crate::router::{allowed_slot, scatter_slots};
use crate::shard::Shard;
use crate::transactions::coordinator_shard;

/// The code of `e` for a request of `version`, where PRODUCER_FENCED is
/// known from version `fenced_since` on.
pub fn code_for(e: &BrokerError, version: i16, fenced_since: i16) -> i16 {
    match e {
        BrokerError::ProducerFenced if version < fenced_since => {
            BrokerError::InvalidProducerEpoch(String::new()).code()
        }
        e => e.code(),
    }
}

/// Runs `f` on the coordinator shard of transactional id `id`.
pub async fn on_txn_coordinator<R, F, Fut>(
    shard: &Rc<Shard>,
    id: &str,
    f: F,
) -> Result<R, BrokerError>
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<R, BrokerError>> + 'static,
    R: Send + 'static,
{
    shard
        .call(coordinator_shard(id, shard.count()), f)
        .await
        .unwrap_or(Err(BrokerError::NotCoordinator))
}

/// Longest transactional id or group id kept: answers that carry them
/// (ListGroups v0-2, DescribeGroups) encode them with a 15-bit length, so
/// one longer name would break those answers for every client.
const MAX_NAME: usize = i16::MAX as usize;

/// A transactional id as the request carries it, refused when empty or
/// too long.
pub fn transactional_id(id: &TransactionalId) -> Result<String, BrokerError> {
    match id.0.as_str() {
        "" => Err(BrokerError::InvalidRequest("empty transactional id".into())),
        id if id.len() > MAX_NAME => Err(BrokerError::InvalidRequest(
            "transactional id longer than 32767 bytes".into(),
        )),
        id => Ok(id.to_string()),
    }
}

/// WRITE on transactional id `id`, or TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
pub fn may_write_txn(ctx: &RequestContext, id: &str) -> Result<(), BrokerError> {
    if ctx.allows(op::WRITE, resource::TRANSACTIONAL_ID, id) {
        Ok(())
    } else {
        Err(BrokerError::TransactionalIdAuthorizationFailed(format!(
            "may not use transactional id '{id}'"
        )))
    }
}

/// READ on group `group`, or GROUP_AUTHORIZATION_FAILED.
pub fn may_read_group(ctx: &RequestContext, group: &str) -> Result<(), BrokerError> {
    if ctx.allows(op::READ, resource::GROUP, group) {
        Ok(())
    } else {
        Err(BrokerError::GroupAuthorizationFailed(format!(
            "may not use group '{group}'"
        )))
    }
}

/// A group id of a transaction, refused when empty or too long.
fn group_id(group: &str) -> Result<String, BrokerError> {
    if group.is_empty() || group.len() > MAX_NAME {
        return Err(BrokerError::InvalidGroupId);
    }
    Ok(group.to_string())
}

/// AddPartitionsToTxn (v0-3: one transaction per request, as clients
/// send it).
pub async fn add_partitions(
    ctx: &RequestContext,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let version = ctx.version();
    let topics = request.v3_and_below_topics;
    let asked: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    let (pid, epoch) = (
        request.v3_and_below_producer_id.0,
        request.v3_and_below_producer_epoch,
    );
    let count = asked.len();
    // A topic the producer may not WRITE fails the whole request: it
    // answers TOPIC_AUTHORIZATION_FAILED, the others OPERATION_NOT_ATTEMPTED.
    let topic_denied: Vec<bool> = asked
        .iter()
        .map(|(t, _)| !ctx.allows(op::WRITE, resource::TOPIC, t))
        .collect();
    let results: Vec<Result<(), BrokerError>> =
        match transactional_id(&request.v3_and_below_transactional_id)
            .and_then(|id| may_write_txn(ctx, &id).map(|()| id))
        {
            Err(e) => vec![Err(e); count],
            Ok(_) if topic_denied.iter().any(|d| *d) => topic_denied
                .iter()
                .zip(&asked)
                .map(|(denied, (t, _))| {
                    Err(if *denied {
                        BrokerError::TopicAuthorizationFailed(format!("may not write topic '{t}'"))
                    } else {
                        BrokerError::OperationNotAttempted
                    })
                })
                .collect(),
            Ok(id) => {
                let asked = asked.clone();
                on_txn_coordinator(&ctx.shard, &id.clone(), move |s| async move {
                    let svc = s.transactions().clone();
                    svc.add_partitions(&s, &id, pid, epoch, asked).await
                })
                .await
                .unwrap_or_else(|e| vec![Err(e); count])
            }
        };
    let mut results = results.into_iter();
    let by_topic = topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = results.next().unwrap_or(Ok(()));
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(r.err().map_or(0, |e| code_for(&e, version, 2)))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name)
                .with_results_by_partition(partitions)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(by_topic)
}

/// AddOffsetsToTxn: the group joins the transaction.
pub async fn add_offsets(
    ctx: &RequestContext,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let version = ctx.version();
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    let group =
        group_id(request.group_id.0.as_str()).and_then(|g| may_read_group(ctx, &g).map(|()| g));
    let id = transactional_id(&request.transactional_id)
        .and_then(|id| may_write_txn(ctx, &id).map(|()| id));
    let result = match (id, group) {
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(id), Ok(group)) => {
            on_txn_coordinator(&ctx.shard, &id.clone(), move |s| async move {
                s.transactions().add_offsets(&id, pid, epoch, group).await
            })
            .await
        }
    };
    AddOffsetsToTxnResponse::default()
        .with_error_code(result.err().map_or(0, |e| code_for(&e, version, 2)))
}

/// EndTxn: commit or abort, answered once carried out.
pub async fn end_txn(ctx: &RequestContext, request: EndTxnRequest) -> EndTxnResponse {
    let version = ctx.version();
    let (pid, epoch, commit) = (
        request.producer_id.0,
        request.producer_epoch,
        request.committed,
    );
    let id = transactional_id(&request.transactional_id)
        .and_then(|id| may_write_txn(ctx, &id).map(|()| id));
    let result = match id {
        Err(e) => Err(e),
        Ok(id) => {
            on_txn_coordinator(&ctx.shard, &id.clone(), move |s| async move {
                let svc = s.transactions().clone();
                svc.end_txn(&s, &id, pid, epoch, commit).await
            })
            .await
        }
    };
    EndTxnResponse::default().with_error_code(result.err().map_or(0, |e| code_for(&e, version, 2)))
}

/// TxnOffsetCommit: the offsets are written by the group's coordinator,
/// held for the producer's transaction.
pub async fn txn_offset_commit(
    ctx: &RequestContext,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let version = ctx.version();
    let group = request.group_id.0.to_string();
    let producer_id = request.producer_id.0;
    let shape: Vec<(TopicName, Vec<i32>)> = request_shape!(request.topics);
    let all = |e: BrokerError| -> Vec<Vec<Result<(), BrokerError>>> {
        shape
            .iter()
            .map(|(_, ps)| vec![Err(e.clone()); ps.len()])
            .collect()
    };
    let txn_id = transactional_id(&request.transactional_id);
    let results = if let Err(e) = group_id(&group) {
        all(e)
    } else if let Err(e) = txn_id.and_then(|id| may_write_txn(ctx, &id)) {
        all(e)
    } else if let Err(e) = may_read_group(ctx, &group) {
        all(e)
    } else if shape
        .iter()
        .any(|(t, _)| !ctx.allows(op::READ, resource::TOPIC, t))
    {
        shape
            .iter()
            .map(|(t, ps)| {
                let e = if ctx.allows(op::READ, resource::TOPIC, t) {
                    BrokerError::OperationNotAttempted
                } else {
                    BrokerError::TopicAuthorizationFailed(format!("may not read topic '{}'", t.0))
                };
                vec![Err(e); ps.len()]
            })
            .collect()
    } else {
        let commit = OffsetCommit {
            member_id: request.member_id.to_string(),
            instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            generation: request.generation_id,
            topics: commit_topics!(request.topics),
        };
        let owner = crate::groups::coordinator_shard(&group, ctx.shard.count());
        ctx.shard
            .call(owner, move |s| async move {
                let metadata = s.metadata();
                s.groups()
                    .commit_offsets(&metadata, group, commit, Some(producer_id))
                    .await
            })
            .await
            .unwrap_or_else(|| all(BrokerError::NotCoordinator))
    };
    let topics = shape
        .into_iter()
        .zip(results)
        .map(|((name, partitions), results)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .zip(results)
                        .map(|(p, r)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(r.err().map_or(0, |e| code_for(&e, version, 3)))
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// DescribeTransactions: each id's state, from its coordinator.
pub async fn describe_transactions(
    ctx: &RequestContext,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        let name = id.0.to_string();
        let found = if ctx.allows(op::DESCRIBE, resource::TRANSACTIONAL_ID, &name) {
            on_txn_coordinator(&ctx.shard, &name.clone(), move |s| async move {
                s.transactions()
                    .get(&name)
                    .ok_or(BrokerError::TransactionalIdNotFound)
            })
            .await
        } else {
            Err(BrokerError::TransactionalIdAuthorizationFailed(format!(
                "may not describe transactional id '{name}'"
            )))
        };
        let state = TransactionState::default().with_transactional_id(id);
        states.push(match found {
            Err(e) => state.with_error_code(e.code()),
            Ok(t) => {
                let mut topics: Vec<TopicData> = Vec::new();
                for (topic, p) in &t.partitions {
                    match topics.last_mut() {
                        Some(last) if last.topic.0.as_str() == topic => last.partitions.push(*p),
                        _ => topics.push(
                            TopicData::default()
                                .with_topic(TopicName(str_bytes(topic)))
                                .with_partitions(vec![*p]),
                        ),
                    }
                }
                state
                    .with_transaction_state(str_bytes(t.state.name()))
                    .with_transaction_timeout_ms(t.timeout_ms)
                    .with_transaction_start_time_ms(t.started_ms)
                    .with_producer_id(ProducerId(t.producer_id))
                    .with_producer_epoch(t.epoch)
                    .with_topics(topics)
            }
        });
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions: every shard's transactions, filtered by state,
/// producer id and (v1+) how long they have been open.
pub async fn list_transactions(
    ctx: &RequestContext,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    const STATES: [&str; 6] = [
        "Empty",
        "Ongoing",
        "PrepareCommit",
        "PrepareAbort",
        "CompleteCommit",
        "CompleteAbort",
    ];
    let states: Vec<String> = request
        .state_filters
        .iter()
        .map(|s| s.to_string())
        .collect();
    let unknown: Vec<_> = request
        .state_filters
        .iter()
        .filter(|s| !STATES.contains(&s.as_str()))
        .cloned()
        .collect();
    let pids: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let min_open_ms = request.duration_filter;
    let now = crate::util::now_ms();
    let mut listed = Vec::new();
    for index in 0..ctx.shard.count() {
        let all = ctx
            .shard
            .call(crate::shard_id::ShardId::new(index), |s| async move {
                s.transactions().all()
            })
            .await
            .unwrap_or_default();
        for t in all {
            let open_long_enough =
                min_open_ms < 0 || (t.started_ms >= 0 && now - t.started_ms >= min_open_ms);
            if (states.is_empty() || states.iter().any(|s| s == t.state.name()))
                && (pids.is_empty() || pids.contains(&t.producer_id))
                && open_long_enough
                && ctx.allows(op::DESCRIBE, resource::TRANSACTIONAL_ID, &t.id)
            {
                listed.push(
                    Listed::default()
                        .with_transactional_id(TransactionalId(str_bytes(&t.id)))
                        .with_producer_id(ProducerId(t.producer_id))
                        .with_transaction_state(str_bytes(t.state.name())),
                );
            }
        }
    }
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}

/// DescribeProducers: the producers each partition knows, with the start
/// of their open transaction there.
pub async fn describe_producers(
    ctx: &RequestContext,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let metadata = ctx.shard.metadata();
    let slots: Vec<_> = request
        .topics
        .iter()
        .enumerate()
        .flat_map(|(ti, t)| {
            let metadata = &metadata;
            t.partition_indexes.iter().map(move |p| {
                let name = t.name.0.as_str();
                let allowed = ctx.allows(op::READ, resource::TOPIC, name);
                allowed_slot(allowed, metadata, ti, name, *p, ())
            })
        })
        .collect();
    let answers = scatter_slots(
        &ctx.shard,
        &slots,
        |s: Rc<Shard>, keys: Vec<(PartitionKey, ())>| async move {
            keys.into_iter()
                .map(|(key, ())| s.log().producers_of(&key))
                .collect::<Vec<_>>()
        },
        |_| Err(BrokerError::ShuttingDown),
    )
    .await;
    let mut topics: Vec<TopicResponse> = request
        .topics
        .iter()
        .map(|t| TopicResponse::default().with_name(t.name.clone()))
        .collect();
    for (slot, answer) in slots.iter().zip(answers) {
        let r = PartitionResponse::default().with_partition_index(slot.partition);
        topics[slot.topic]
            .partitions
            .push(match answer.and_then(|a| a) {
                Err(e) => r
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.to_string()))),
                Ok(producers) => r.with_active_producers(
                    producers
                        .into_iter()
                        .map(|p| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(p.producer_id))
                                .with_producer_epoch(i32::from(p.epoch))
                                .with_last_sequence(p.last_sequence)
                                .with_last_timestamp(-1)
                                .with_coordinator_epoch(0)
                                .with_current_txn_start_offset(p.txn_start_offset)
                        })
                        .collect(),
                ),
            });
    }
    DescribeProducersResponse::default().with_topics(topics)
}
