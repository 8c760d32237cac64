//! Request handlers, one file per Kafka API family. Each builds the
//! response struct; this module encodes it with the right header version.
//! Errors are mapped to Kafka error codes here, at the handler boundary.

pub mod admin;
pub mod fetch;
pub mod groups;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
pub mod producer_id;

use std::rc::Rc;

use bytes::BytesMut;
use sluice_protocol::kafka_protocol::protocol::{Encodable, HeaderVersion};
use sluice_protocol::{frame, versions, Request, RequestHeader};

use crate::shard::Shard;

/// What goes back on the connection for one request.
pub enum Reply {
    /// A response frame.
    Frame(BytesMut),
    /// No response (produce with acks=0).
    Nothing,
    /// The response could not be encoded: close the connection.
    Close,
}

/// Handles one decoded request.
pub async fn handle(shard: &Rc<Shard>, header: &RequestHeader, request: Request) -> Reply {
    let v = header.api_version;
    match request {
        Request::ApiVersions(_) => encode(header, &versions::api_versions_response()),
        Request::Metadata(r) => encode(header, &metadata::handle(shard, r, v).await),
        Request::Produce(r) => match produce::handle(shard, r, v).await {
            Some(response) => encode(header, &response),
            None => Reply::Nothing,
        },
        Request::Fetch(r) => encode(header, &fetch::handle(shard, r, v).await),
        Request::ListOffsets(r) => encode(header, &list_offsets::handle(shard, r, v).await),
        Request::CreateTopics(r) => encode(header, &admin::create_topics(shard, r, v).await),
        Request::DeleteTopics(r) => encode(header, &admin::delete_topics(shard, r, v).await),
        Request::CreatePartitions(r) => encode(header, &admin::create_partitions(shard, r).await),
        Request::DescribeConfigs(r) => encode(header, &admin::describe_configs(shard, r, v)),
        Request::DescribeCluster(r) => encode(header, &admin::describe_cluster(shard, r)),
        Request::InitProducerId(r) => encode(header, &producer_id::handle(shard, r).await),
        Request::FindCoordinator(r) => encode(header, &groups::find_coordinator(shard, r, v)),
        Request::JoinGroup(r) => {
            let client_id = header.client_id.as_deref().unwrap_or("").to_string();
            encode(header, &groups::join_group(shard, r, v, client_id).await)
        }
        Request::SyncGroup(r) => encode(header, &groups::sync_group(shard, r, v).await),
        Request::Heartbeat(r) => encode(header, &groups::heartbeat(shard, r).await),
        Request::LeaveGroup(r) => encode(header, &groups::leave_group(shard, r, v).await),
        Request::OffsetCommit(r) => encode(header, &groups::offset_commit(shard, r).await),
        Request::OffsetFetch(r) => encode(header, &groups::offset_fetch(shard, r, v).await),
        Request::ListGroups(r) => encode(header, &groups::list_groups(shard, r, v).await),
        Request::DescribeGroups(r) => encode(header, &groups::describe_groups(shard, r, v).await),
        Request::DeleteGroups(r) => encode(header, &groups::delete_groups(shard, r).await),
        Request::OffsetDelete(r) => encode(header, &groups::offset_delete(shard, r).await),
    }
}

fn encode<R: Encodable + HeaderVersion>(header: &RequestHeader, response: &R) -> Reply {
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

/// The broker's own node id: Sluice is a one-broker cluster.
pub const NODE_ID: i32 = 0;
