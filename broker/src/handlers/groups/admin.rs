//! Group administration: ListGroups (every shard's groups), DescribeGroups
//! and DeleteGroups.

use sluice_protocol::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use sluice_protocol::kafka_protocol::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use sluice_protocol::kafka_protocol::messages::list_groups_response::ListedGroup;
use sluice_protocol::kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse,
};

use super::{not_coordinator, on_coordinator, text};
use crate::authorizer::{op, resource, NOT_ASKED};
use crate::context::RequestContext;
use crate::error::BrokerError;
use crate::metadata::str_bytes;
use crate::shard_id::ShardId;

/// ListGroups: the groups of every shard.
pub async fn list_groups(ctx: &RequestContext, request: ListGroupsRequest) -> ListGroupsResponse {
    let (shard, version) = (&ctx.shard, ctx.version());
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    if !types.is_empty() && !types.iter().any(|t| t == "classic") {
        return ListGroupsResponse::default();
    }
    let mut listed = Vec::new();
    let mut error = 0;
    for target in (0..shard.count()).map(ShardId::new) {
        let part = shard
            .call(target, |s| async move { s.groups().list() })
            .await;
        match part {
            Some(part) => listed.extend(part),
            None => error = BrokerError::CoordinatorNotAvailable(String::new()).code(),
        }
    }
    listed.sort();
    // Without DESCRIBE on the cluster, only the groups the principal may
    // DESCRIBE are listed, as Kafka does.
    let all = ctx.allows_cluster(op::DESCRIBE);
    let groups = listed
        .into_iter()
        .filter(|(_, _, state)| states.is_empty() || states.contains(&state.to_lowercase()))
        .filter(|(id, _, _)| all || ctx.allows(op::DESCRIBE, resource::GROUP, id))
        .map(|(id, protocol_type, state)| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&id)))
                .with_protocol_type(str_bytes(&protocol_type));
            if version >= 4 {
                g = g.with_group_state(str_bytes(state));
            }
            if version >= 5 {
                g = g.with_group_type(str_bytes("classic"));
            }
            g
        })
        .collect();
    ListGroupsResponse::default()
        .with_error_code(error)
        .with_groups(groups)
}

/// DescribeGroups: state, protocol, members and (when stable) assignments.
pub async fn describe_groups(
    ctx: &RequestContext,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = ctx.version();
    let mut described = Vec::with_capacity(request.groups.len());
    // A group named twice is described once, as Kafka does: a description
    // can be large, and a request of repeats must not multiply it.
    let mut named = std::collections::HashSet::new();
    for id in request.groups {
        if !named.insert(id.0.clone()) {
            continue;
        }
        let group = text(&id.0);
        if !ctx.allows(op::DESCRIBE, resource::GROUP, &group) {
            described.push(
                DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(BrokerError::GroupAuthorizationFailed(String::new()).code())
                    .with_authorized_operations(NOT_ASKED),
            );
            continue;
        }
        let operations = ctx.authorized_operations(
            version >= 3 && request.include_authorized_operations,
            resource::GROUP,
            &group,
        );
        let found = on_coordinator(&ctx.shard, &group.clone(), move |s| async move {
            s.groups().describe(&group)
        })
        .await;
        let d = match found {
            Some(Some(g)) => {
                let members: Vec<DescribedGroupMember> = g
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut d = DescribedGroupMember::default()
                            .with_member_id(str_bytes(&m.id))
                            .with_client_id(str_bytes(&m.client_id))
                            .with_client_host(str_bytes(&m.client_host));
                        if version >= 4 {
                            d = d.with_group_instance_id(m.instance_id.as_deref().map(str_bytes));
                        }
                        if let Some((metadata, assignment)) = m.stable {
                            d = d
                                .with_member_metadata(metadata)
                                .with_member_assignment(assignment);
                        }
                        d
                    })
                    .collect();
                DescribedGroup::default()
                    .with_group_state(str_bytes(g.state))
                    .with_protocol_type(str_bytes(&g.protocol_type))
                    .with_protocol_data(str_bytes(&g.protocol))
                    .with_members(members)
            }
            Some(None) if version >= 6 => DescribedGroup::default()
                .with_error_code(BrokerError::GroupIdNotFound.code())
                .with_error_message(Some(str_bytes("group does not exist")))
                .with_group_state(str_bytes("Dead")),
            Some(None) => DescribedGroup::default().with_group_state(str_bytes("Dead")),
            None => DescribedGroup::default().with_error_code(not_coordinator()),
        };
        described.push(d.with_group_id(id).with_authorized_operations(operations));
    }
    DescribeGroupsResponse::default().with_groups(described)
}

/// Groups of one DeleteGroups deleted at once.
const DELETIONS_AT_ONCE: usize = 256;

/// DeleteGroups: empty groups only; a durable tombstone each.
pub async fn delete_groups(
    ctx: &RequestContext,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    // Deletions run a chunk at a time, so one WAL flush carries many
    // tombstones: one at a time, a request naming thousands of groups
    // took seconds (found by the request fuzzer).
    let mut results = Vec::with_capacity(request.groups_names.len());
    for chunk in request.groups_names.chunks(DELETIONS_AT_ONCE) {
        let deleting: Vec<_> = chunk
            .iter()
            .map(|id| {
                let (shard, group) = (ctx.shard.clone(), text(&id.0));
                let allowed = ctx.allows(op::DELETE, resource::GROUP, &group);
                glommio::spawn_local(async move {
                    if !allowed {
                        return BrokerError::GroupAuthorizationFailed(String::new()).code();
                    }
                    on_coordinator(&shard, &group.clone(), move |s| async move {
                        BrokerError::code_of(s.groups().delete_group(group).await.err().as_ref())
                    })
                    .await
                    .unwrap_or_else(not_coordinator)
                })
            })
            .collect();
        for (id, deleted) in chunk.iter().zip(deleting) {
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id.clone())
                    .with_error_code(deleted.await),
            );
        }
    }
    DeleteGroupsResponse::default().with_results(results)
}
