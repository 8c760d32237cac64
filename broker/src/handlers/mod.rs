//! Request handlers, one file per Kafka API family. Each translates its
//! Kafka request into calls on the owning shard's log, group service or
//! the controller, and builds the response struct; this module encodes it
//! with the right header version. Domain errors ([`crate::error::BrokerError`])
//! become Kafka error codes here, at the handler boundary.
//!
//! A new API: add it to `supported_apis!` (protocol/src/versions.rs), give
//! it a file here (or a function in its family's file) taking the
//! [`RequestContext`], and a line in [`handle`].

pub mod acls;
pub mod admin;
pub mod configs;
pub mod delete_records;
mod error_codes;
pub mod fetch;
pub mod groups;
pub mod list_offsets;
pub mod log_dirs;
pub mod metadata;
pub mod produce;
pub mod producer_id;
pub mod sasl;
pub mod transactions;

use bytes::BytesMut;
use error_codes::ErrorCodes;
use sluice_protocol::kafka_protocol::protocol::{Encodable, HeaderVersion};
use sluice_protocol::{frame, versions, Request};

use crate::context::RequestContext;

/// What goes back on the connection for one request.
pub enum Reply {
    /// A response frame.
    Frame(BytesMut),
    /// No response (produce with acks=0).
    Nothing,
    /// The response could not be encoded: close the connection.
    Close,
}

/// Bytes the response to `request` may take beyond what the request
/// itself holds in the budget, for the APIs whose answer can be far larger
/// than their question (a Metadata of every topic, a DescribeConfigs of
/// thousands of topics, a DescribeLogDirs of every partition). It is
/// reserved before the answer is built, so building such answers waits
/// for the memory budget instead of growing past it. Other answers grow
/// with their request.
pub fn response_estimate(ctx: &RequestContext, request: &Request) -> usize {
    const PER_TOPIC: usize = 128;
    const PER_PARTITION: usize = 48;
    const PER_CONFIG: usize = 128;
    // Every request passes here: the metadata snapshot is taken only by
    // the APIs that look at it.
    let topic_size = |metadata: &crate::metadata::Metadata, name: &str| {
        metadata.topics.get(name).map_or(PER_TOPIC, |t| {
            PER_TOPIC + t.partitions.len() * PER_PARTITION
        })
    };
    let everything = || -> usize {
        let metadata = ctx.shard.metadata();
        metadata
            .topics
            .keys()
            .map(|n| topic_size(&metadata, n))
            .sum()
    };
    match request {
        Request::Metadata(r) => match &r.topics {
            // v0 asks for every topic with an empty list.
            None => everything(),
            Some(topics) if topics.is_empty() && ctx.version() == 0 => everything(),
            Some(topics) => {
                let metadata = ctx.shard.metadata();
                topics
                    .iter()
                    .map(|t| {
                        t.name
                            .as_ref()
                            .map_or(PER_TOPIC, |n| topic_size(&metadata, n.0.as_str()))
                    })
                    .sum()
            }
        },
        Request::DescribeConfigs(r) => {
            let per_config = PER_CONFIG * if r.include_synonyms { 3 } else { 1 };
            r.resources.len() * crate::metadata::TOPIC_DEFAULTS.len() * per_config
        }
        Request::DescribeLogDirs(r) => match &r.topics {
            None => everything(),
            Some(topics) => topics
                .iter()
                .map(|t| PER_TOPIC + t.partitions.len() * PER_PARTITION)
                .sum(),
        },
        _ => 0,
    }
}

/// Handles one decoded request.
pub async fn handle(ctx: &RequestContext, request: Request) -> Reply {
    match request {
        Request::ApiVersions(_) => encode(ctx, &versions::api_versions_response()),
        Request::Metadata(r) => encode(ctx, &metadata::handle(ctx, r).await),
        Request::Produce(r) => match produce::handle(ctx, r).await {
            Some(response) => encode(ctx, &response),
            None => Reply::Nothing,
        },
        Request::Fetch(r) => encode(ctx, &fetch::handle(ctx, r).await),
        Request::ListOffsets(r) => encode(ctx, &list_offsets::handle(ctx, r).await),
        Request::CreateTopics(r) => encode(ctx, &admin::create_topics(ctx, r).await),
        Request::DeleteTopics(r) => encode(ctx, &admin::delete_topics(ctx, r).await),
        Request::CreatePartitions(r) => encode(ctx, &admin::create_partitions(ctx, r).await),
        Request::DescribeConfigs(r) => encode(ctx, &configs::describe_configs(ctx, r)),
        Request::AlterConfigs(r) => encode(ctx, &configs::alter_configs(ctx, r).await),
        Request::IncrementalAlterConfigs(r) => {
            encode(ctx, &configs::incremental_alter_configs(ctx, r).await)
        }
        Request::DescribeCluster(r) => encode(ctx, &admin::describe_cluster(ctx, r)),
        Request::DeleteRecords(r) => encode(ctx, &delete_records::handle(ctx, r).await),
        Request::DescribeLogDirs(r) => encode(ctx, &log_dirs::handle(ctx, r).await),
        Request::InitProducerId(r) => encode(ctx, &producer_id::handle(ctx, r).await),
        Request::FindCoordinator(r) => encode(ctx, &groups::membership::find_coordinator(ctx, r)),
        Request::JoinGroup(r) => encode(ctx, &groups::membership::join_group(ctx, r).await),
        Request::SyncGroup(r) => encode(ctx, &groups::membership::sync_group(ctx, r).await),
        Request::Heartbeat(r) => encode(ctx, &groups::membership::heartbeat(ctx, r).await),
        Request::LeaveGroup(r) => encode(ctx, &groups::membership::leave_group(ctx, r).await),
        Request::OffsetCommit(r) => encode(ctx, &groups::offsets::offset_commit(ctx, r).await),
        Request::OffsetFetch(r) => encode(ctx, &groups::offsets::offset_fetch(ctx, r).await),
        Request::OffsetDelete(r) => encode(ctx, &groups::offsets::offset_delete(ctx, r).await),
        Request::ListGroups(r) => encode(ctx, &groups::admin::list_groups(ctx, r).await),
        Request::DescribeGroups(r) => encode(ctx, &groups::admin::describe_groups(ctx, r).await),
        Request::DeleteGroups(r) => encode(ctx, &groups::admin::delete_groups(ctx, r).await),
        Request::AddPartitionsToTxn(r) => encode(ctx, &transactions::add_partitions(ctx, r).await),
        Request::AddOffsetsToTxn(r) => encode(ctx, &transactions::add_offsets(ctx, r).await),
        Request::EndTxn(r) => encode(ctx, &transactions::end_txn(ctx, r).await),
        Request::TxnOffsetCommit(r) => encode(ctx, &transactions::txn_offset_commit(ctx, r).await),
        Request::DescribeTransactions(r) => {
            encode(ctx, &transactions::describe_transactions(ctx, r).await)
        }
        Request::ListTransactions(r) => encode(ctx, &transactions::list_transactions(ctx, r).await),
        Request::DescribeProducers(r) => {
            encode(ctx, &transactions::describe_producers(ctx, r).await)
        }
        Request::SaslHandshake(r) => encode(ctx, &sasl::handshake(ctx, r)),
        Request::SaslAuthenticate(r) => encode(ctx, &sasl::authenticate(ctx, r).await),
        Request::DescribeUserScramCredentials(r) => {
            encode(ctx, &sasl::describe_credentials(ctx, r))
        }
        Request::AlterUserScramCredentials(r) => {
            encode(ctx, &sasl::alter_credentials(ctx, r).await)
        }
        Request::CreateAcls(r) => encode(ctx, &acls::create_acls(ctx, r).await),
        Request::DescribeAcls(r) => encode(ctx, &acls::describe_acls(ctx, r)),
        Request::DeleteAcls(r) => encode(ctx, &acls::delete_acls(ctx, r).await),
    }
}

/// Encodes an answer, counting its non-zero error codes first.
fn encode<R: Encodable + HeaderVersion + ErrorCodes>(ctx: &RequestContext, response: &R) -> Reply {
    let header = &ctx.header;
    let metrics = ctx.shard.metrics();
    response.each_error_code(&mut |code| {
        if code != 0 {
            metrics.error(header.api_key, code);
        }
    });
    let mut out = BytesMut::new();
    match frame::write_response(
        &mut out,
        header.correlation_id,
        header.api_version,
        response,
    ) {
        Ok(()) => Reply::Frame(out),
        Err(e) => {
            tracing::error!(
                api_key = header.api_key,
                api_version = header.api_version,
                error = %e,
                "cannot encode response; closing the connection"
            );
            Reply::Close
        }
    }
}

/// Runs `work` on the items the principal may touch and answers the others
/// with the error `refuse` gives them, keeping the items' order: a request
/// naming resources one by one (topics to create, groups to delete) is
/// answered per resource, as Kafka's authorizer does.
pub async fn where_allowed<T, X, Fut>(
    items: Vec<T>,
    refuse: impl Fn(&T) -> Option<crate::error::BrokerError>,
    work: impl FnOnce(Vec<T>) -> Fut,
) -> Vec<Result<X, crate::error::BrokerError>>
where
    Fut: std::future::Future<Output = Vec<Result<X, crate::error::BrokerError>>>,
{
    let verdicts: Vec<Option<crate::error::BrokerError>> = items.iter().map(refuse).collect();
    let permitted: Vec<T> = items
        .into_iter()
        .zip(&verdicts)
        .filter(|(_, refused)| refused.is_none())
        .map(|(item, _)| item)
        .collect();
    let mut done = work(permitted).await.into_iter();
    verdicts
        .into_iter()
        .map(|refused| match refused {
            Some(e) => Err(e),
            None => done.next().unwrap_or_else(|| {
                Err(crate::error::BrokerError::Storage(
                    "the controller did not answer".into(),
                ))
            }),
        })
        .collect()
}

/// The broker's own node id: Sluice is a one-broker cluster.
pub const NODE_ID: i32 = 0;
