//! Group offsets: OffsetCommit (answered once its record is durable),
//! OffsetFetch and OffsetDelete. The coordinator side is
//! `GroupService::{commit_offsets, fetch_offsets, delete_offsets}`.
//!
//! OffsetFetch with `require_stable` (v7+, KIP-447: read_committed
//! consumers) answers UNSTABLE_OFFSET_COMMIT for a partition whose
//! transactional offsets are not yet committed or aborted, and the
//! consumer asks again.

use sluice_protocol::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use sluice_protocol::kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use sluice_protocol::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use sluice_protocol::kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};

use super::{not_coordinator, on_coordinator, opt_text, text, MAX_GROUP_ID};
use crate::authorizer::{op, resource};
use crate::context::RequestContext;
use crate::error::BrokerError;
use crate::groups::service::{GroupOffsets, OffsetCommit, PartitionResults};
use crate::handlers::transactions::may_read_group;
use crate::metadata::str_bytes;
use crate::shard::Shard;

/// The topics of an OffsetCommit or TxnOffsetCommit request as the
/// coordinator takes them (their types differ, their fields do not).
macro_rules! commit_topics {
    ($topics:expr) => {
        $topics
            .iter()
            .map(|t| {
                let partitions = t.partitions.iter().map(|p| {
                    let metadata = p.committed_metadata.as_ref();
                    let (offset, epoch) = (p.committed_offset, p.committed_leader_epoch);
                    $crate::groups::service::PartitionCommit::of(
                        p.partition_index,
                        offset,
                        epoch,
                        metadata,
                    )
                });
                (t.name.0.to_string(), partitions.collect())
            })
            .collect()
    };
}
pub(crate) use commit_topics;

/// Each topic of an OffsetCommit, TxnOffsetCommit or OffsetDelete request
/// with its partition indexes, in request order: the shape of the answer.
macro_rules! request_shape {
    ($topics:expr) => {
        $topics
            .iter()
            .map(|t| {
                let partitions = t.partitions.iter().map(|p| p.partition_index);
                (t.name.clone(), partitions.collect())
            })
            .collect()
    };
}
pub(crate) use request_shape;

/// A result per partition as error codes.
fn codes(results: PartitionResults) -> Vec<Vec<i16>> {
    results
        .into_iter()
        .map(|t| {
            t.iter()
                .map(|r| BrokerError::code_of(r.as_ref().err()))
                .collect()
        })
        .collect()
}

/// Which topics of an answer's `shape` the principal may not do
/// `operation` to.
fn denied_topics(
    ctx: &RequestContext,
    shape: &[(TopicName, Vec<i32>)],
    operation: i8,
) -> Vec<bool> {
    shape
        .iter()
        .map(|(name, _)| !ctx.allows(operation, resource::TOPIC, name))
        .collect()
}

/// Codes for every topic of `shape`: TOPIC_AUTHORIZATION_FAILED for the
/// denied ones, the next of `allowed` (the answers for the others, in
/// order) for the rest.
fn with_denied(
    shape: &[(TopicName, Vec<i32>)],
    denied: &[bool],
    allowed: Vec<Vec<i16>>,
) -> Vec<Vec<i16>> {
    let refused = BrokerError::TopicAuthorizationFailed(String::new()).code();
    let mut allowed = allowed.into_iter();
    shape
        .iter()
        .zip(denied)
        .map(|((_, ps), denied)| match denied {
            true => vec![refused; ps.len()],
            false => allowed
                .next()
                .unwrap_or_else(|| vec![not_coordinator(); ps.len()]),
        })
        .collect()
}

/// OffsetCommit: checks membership and generation, writes one WAL record
/// for the request's offsets and answers once it is durable. Topics the
/// principal may not READ are answered TOPIC_AUTHORIZATION_FAILED and not
/// committed; a group it may not READ, GROUP_AUTHORIZATION_FAILED.
pub async fn offset_commit(
    ctx: &RequestContext,
    mut request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group = text(&request.group_id.0);
    // Per partition in request order: the error code.
    let shape: Vec<(TopicName, Vec<i32>)> = request_shape!(request.topics);
    let denied = denied_topics(ctx, &shape, op::READ);
    let mut is_denied = denied.iter();
    request.topics.retain(|_| is_denied.next() == Some(&false));
    let codes: Vec<Vec<i16>> = if group.is_empty() || group.len() > MAX_GROUP_ID {
        let code = BrokerError::InvalidGroupId.code();
        shape.iter().map(|(_, ps)| vec![code; ps.len()]).collect()
    } else if let Err(e) = may_read_group(ctx, &group) {
        shape
            .iter()
            .map(|(_, ps)| vec![e.code(); ps.len()])
            .collect()
    } else {
        let fallback: Vec<Vec<i16>> = request
            .topics
            .iter()
            .map(|t| vec![not_coordinator(); t.partitions.len()])
            .collect();
        let commit = OffsetCommit {
            member_id: text(&request.member_id),
            instance_id: opt_text(&request.group_instance_id),
            generation: request.generation_id_or_member_epoch,
            topics: commit_topics!(request.topics),
        };
        let committed = on_coordinator(&ctx.shard, &group.clone(), move |s| async move {
            let metadata = s.metadata();
            codes(
                s.groups()
                    .commit_offsets(&metadata, group, commit, None)
                    .await,
            )
        })
        .await
        .unwrap_or(fallback);
        with_denied(&shape, &denied, committed)
    };
    let topics = shape
        .into_iter()
        .zip(codes)
        .map(|((name, partitions), codes)| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .zip(codes)
                        .map(|(p, code)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// The committed offsets of `group` for `topics` (`None`: all), from its
/// coordinator.
async fn fetch_offsets(
    shard: &std::rc::Rc<Shard>,
    group: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<(GroupOffsets, Unstable), i16> {
    on_coordinator(shard, &group.clone(), move |s| async move {
        let unstable = if require_stable {
            s.groups().unstable(&group)
        } else {
            Unstable::new()
        };
        (s.groups().fetch_offsets(&group, topics), unstable)
    })
    .await
    .ok_or_else(not_coordinator)
}

/// Partitions whose transactional offsets are pending.
type Unstable = std::collections::HashSet<(String, i32)>;

/// UNSTABLE_OFFSET_COMMIT for a pending partition, else 0.
fn stability(unstable: &Unstable, topic: &str, partition: i32) -> i16 {
    if unstable.contains(&(topic.to_string(), partition)) {
        BrokerError::UnstableOffsetCommit.code()
    } else {
        0
    }
}

/// OffsetFetch: one group (v1-7) or several (v8+).
pub async fn offset_fetch(
    ctx: &RequestContext,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let (shard, version) = (&ctx.shard, ctx.version());
    let meta = |m: Option<String>| Some(str_bytes(m.as_deref().unwrap_or("")));
    // A group the principal may not DESCRIBE is refused whole; a topic it
    // may not DESCRIBE is left out of "all topics" and answered
    // TOPIC_AUTHORIZATION_FAILED when named.
    let require_stable = request.require_stable;
    let fetch = |group: String, topics: Option<Vec<(String, Vec<i32>)>>| async move {
        if !ctx.allows(op::DESCRIBE, resource::GROUP, &group) {
            return Err(BrokerError::GroupAuthorizationFailed(String::new()).code());
        }
        let all = topics.is_none();
        let (mut found, unstable) = fetch_offsets(shard, group, topics, require_stable).await?;
        let refused = BrokerError::TopicAuthorizationFailed(String::new()).code();
        found.retain_mut(|(topic, partitions)| {
            if ctx.allows(op::DESCRIBE, resource::TOPIC, topic) {
                return true;
            }
            for p in partitions.iter_mut() {
                p.1 = -1;
                p.3 = None;
            }
            !all
        });
        let denied: std::collections::HashSet<String> = found
            .iter()
            .filter(|(t, _)| !ctx.allows(op::DESCRIBE, resource::TOPIC, t))
            .map(|(t, _)| t.clone())
            .collect();
        Ok((found, unstable, denied, refused))
    };
    let code = |denied: &std::collections::HashSet<String>,
                refused: i16,
                unstable: &Unstable,
                topic: &str,
                p: i32| {
        if denied.contains(topic) {
            refused
        } else {
            stability(unstable, topic, p)
        }
    };
    if version < 8 {
        let topics = request.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        let mut response = OffsetFetchResponse::default();
        let group = text(&request.group_id.0);
        match fetch(group, topics).await {
            Ok((found, unstable, denied, refused)) => {
                response = response.with_topics(
                    found
                        .into_iter()
                        .map(|(topic, partitions)| {
                            OffsetFetchResponseTopic::default()
                                .with_name(TopicName(str_bytes(&topic)))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(p, offset, epoch, m)| {
                                            OffsetFetchResponsePartition::default()
                                                .with_error_code(code(
                                                    &denied, refused, &unstable, &topic, p,
                                                ))
                                                .with_partition_index(p)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(meta(m))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            }
            Err(code) if version >= 2 => response = response.with_error_code(code),
            Err(_) => {}
        }
        return response;
    }
    let mut groups = Vec::with_capacity(request.groups.len());
    // A group named twice is answered once (no answer multiplied by repeats).
    let mut named = std::collections::HashSet::new();
    for g in request.groups {
        if !named.insert(g.group_id.clone()) {
            continue;
        }
        let topics = g.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        let mut out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
        match fetch(text(&g.group_id.0), topics).await {
            Ok((found, unstable, denied, refused)) => {
                out = out.with_topics(
                    found
                        .into_iter()
                        .map(|(topic, partitions)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(str_bytes(&topic)))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(p, offset, epoch, m)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_error_code(code(
                                                    &denied, refused, &unstable, &topic, p,
                                                ))
                                                .with_partition_index(p)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(meta(m))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            }
            Err(code) => out = out.with_error_code(code),
        }
        groups.push(out);
    }
    OffsetFetchResponse::default().with_groups(groups)
}

/// OffsetDelete: removes offsets of partitions the group does not consume.
pub async fn offset_delete(
    ctx: &RequestContext,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group = text(&request.group_id.0);
    if !ctx.allows(op::DELETE, resource::GROUP, &group) {
        return OffsetDeleteResponse::default()
            .with_error_code(BrokerError::GroupAuthorizationFailed(String::new()).code());
    }
    let shape: Vec<(TopicName, Vec<i32>)> = request_shape!(request.topics);
    let denied = denied_topics(ctx, &shape, op::READ);
    let asked: Vec<(String, Vec<i32>)> = shape
        .iter()
        .zip(&denied)
        .filter(|(_, denied)| !**denied)
        .map(|((name, partitions), _)| (name.0.to_string(), partitions.clone()))
        .collect();
    let outcome = on_coordinator(&ctx.shard, &group.clone(), move |s| async move {
        let metadata = s.metadata();
        s.groups()
            .delete_offsets(&metadata, group, &asked)
            .await
            .map(codes)
            .map_err(|e| e.code())
    })
    .await
    .unwrap_or_else(|| Err(not_coordinator()));
    let codes = match outcome {
        Ok(codes) => with_denied(&shape, &denied, codes),
        Err(code) => return OffsetDeleteResponse::default().with_error_code(code),
    };
    let topics = shape
        .into_iter()
        .zip(codes)
        .map(|((name, partitions), codes)| {
            OffsetDeleteResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .zip(codes)
                        .map(|(p, code)| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
