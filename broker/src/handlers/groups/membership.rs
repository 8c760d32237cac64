//! Group membership: FindCoordinator, JoinGroup, SyncGroup, Heartbeat and
//! LeaveGroup. The state machine is `crate::groups::state`; its calls run on
//! the coordinator shard through `GroupService`.

use bytes::Bytes;
use sluice_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator as FoundCoordinator;
use sluice_protocol::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use sluice_protocol::kafka_protocol::messages::leave_group_response::MemberResponse;
use sluice_protocol::kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest,
    SyncGroupResponse,
};

use super::{not_coordinator, on_coordinator, opt_text, text, MAX_GROUP_ID, MAX_GROUP_NAME};
use crate::authorizer::{op, resource};
use crate::context::RequestContext;
use crate::error::BrokerError;
use crate::groups::state::{JoinRequest, JoinResult, SyncResult};
use crate::handlers::transactions::may_read_group;
use crate::handlers::NODE_ID;
use crate::metadata::str_bytes;
use crate::util::wire_millis;

/// Kafka's group.min.session.timeout.ms and group.max.session.timeout.ms.
const SESSION_TIMEOUT_MS: std::ops::RangeInclusive<i32> = 6_000..=1_800_000;

/// FindCoordinator: every group and transactional id is coordinated by
/// this broker.
pub fn find_coordinator(
    ctx: &RequestContext,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let version = ctx.version();
    let (host, port) = ctx.advertised();
    // Groups and transactional ids: this broker coordinates all, for a
    // principal that may DESCRIBE the group or id.
    let answer = |key_type: i8, key: &str| -> Result<(), BrokerError> {
        match key_type {
            0 if !ctx.allows(op::DESCRIBE, resource::GROUP, key) => Err(
                BrokerError::GroupAuthorizationFailed(format!("may not use group '{key}'")),
            ),
            1 if !ctx.allows(op::DESCRIBE, resource::TRANSACTIONAL_ID, key) => {
                Err(BrokerError::TransactionalIdAuthorizationFailed(format!(
                    "may not use transactional id '{key}'"
                )))
            }
            0 | 1 => Ok(()),
            _ => Err(BrokerError::InvalidRequest("unknown key type".into())),
        }
    };
    if version < 4 {
        let mut r = FindCoordinatorResponse::default();
        match answer(request.key_type, &request.key) {
            Ok(()) => {
                r = r
                    .with_node_id(BrokerId(NODE_ID))
                    .with_host(str_bytes(host))
                    .with_port(port);
            }
            Err(e) => {
                r = r
                    .with_error_code(e.code())
                    .with_node_id(BrokerId(-1))
                    .with_port(-1);
                if version >= 1 {
                    r = r.with_error_message(Some(str_bytes(&e.to_string())));
                }
            }
        }
        return r;
    }
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| {
            let refused = answer(request.key_type, &key);
            let c = FoundCoordinator::default().with_key(key);
            match refused {
                Ok(()) => c
                    .with_node_id(BrokerId(NODE_ID))
                    .with_host(str_bytes(host))
                    .with_port(port),
                Err(e) => c
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.to_string())))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            }
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}

fn join_response(version: i16, r: JoinResult) -> JoinGroupResponse {
    // Before v7 the protocol name is not nullable.
    let empty = (version < 7).then(|| str_bytes(""));
    let members = r
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let m = JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&id))
                .with_metadata(metadata);
            if version >= 5 {
                m.with_group_instance_id(instance.as_deref().map(str_bytes))
            } else {
                m
            }
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_error_code(BrokerError::code_of(r.error.as_ref()))
        .with_generation_id(r.generation)
        .with_protocol_name(r.protocol_name.as_deref().map(str_bytes).or(empty))
        .with_leader(str_bytes(&r.leader))
        .with_member_id(str_bytes(&r.member_id))
        .with_members(members);
    if version >= 7 {
        response = response.with_protocol_type(r.protocol_type.as_deref().map(str_bytes));
    }
    response
}

/// JoinGroup: waits on the coordinator until the join phase completes.
pub async fn join_group(ctx: &RequestContext, request: JoinGroupRequest) -> JoinGroupResponse {
    let version = ctx.version();
    let group = text(&request.group_id.0);
    let fail = |error: BrokerError| {
        join_response(
            version,
            JoinResult {
                error: Some(error),
                generation: -1,
                member_id: text(&request.member_id),
                ..JoinResult::default()
            },
        )
    };
    if group.is_empty() || group.len() > MAX_GROUP_ID {
        return fail(BrokerError::InvalidGroupId);
    }
    if let Err(e) = may_read_group(ctx, &group) {
        return fail(e);
    }
    if !SESSION_TIMEOUT_MS.contains(&request.session_timeout_ms) {
        return fail(BrokerError::InvalidSessionTimeout);
    }
    let names = [&request.protocol_type, &request.member_id]
        .into_iter()
        .chain(request.group_instance_id.as_ref())
        .chain(request.protocols.iter().map(|p| &p.name));
    if names.into_iter().any(|n| n.len() > MAX_GROUP_NAME) {
        return fail(BrokerError::InvalidRequest(format!(
            "group names longer than {MAX_GROUP_NAME} bytes cannot be described to every client"
        )));
    }
    let session = wire_millis(request.session_timeout_ms, u64::MAX);
    let rebalance = if version >= 1 {
        wire_millis(request.rebalance_timeout_ms, u64::MAX)
    } else {
        session
    };
    let join = JoinRequest {
        member_id: text(&request.member_id),
        instance_id: opt_text(&request.group_instance_id),
        client_id: ctx.client_id().to_string(),
        client_host: String::new(),
        session_timeout: session,
        rebalance_timeout: rebalance,
        protocol_type: text(&request.protocol_type),
        protocols: request
            .protocols
            .iter()
            // Copied: the group keeps it, and a slice would keep the whole
            // request buffer alive with it.
            .map(|p| (text(&p.name), Bytes::copy_from_slice(&p.metadata)))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let key = group.clone();
    let result = on_coordinator(&ctx.shard, &key, move |s| async move {
        s.groups().join(&group, join).await
    })
    .await;
    match result {
        Some(r) => join_response(version, r),
        None => fail(BrokerError::NotCoordinator),
    }
}

/// SyncGroup: the leader's assignment is handed to every member.
pub async fn sync_group(ctx: &RequestContext, request: SyncGroupRequest) -> SyncGroupResponse {
    let version = ctx.version();
    let group = text(&request.group_id.0);
    if let Err(e) = may_read_group(ctx, &group) {
        return SyncGroupResponse::default().with_error_code(e.code());
    }
    let result = on_coordinator(&ctx.shard, &group.clone(), move |s| async move {
        s.groups()
            .sync(
                &group,
                &text(&request.member_id),
                request.group_instance_id.as_deref(),
                request.generation_id,
                (
                    request.protocol_type.as_deref(),
                    request.protocol_name.as_deref(),
                ),
                request
                    .assignments
                    .into_iter()
                    .map(|a| (text(&a.member_id), Bytes::copy_from_slice(&a.assignment)))
                    .collect(),
            )
            .await
    })
    .await
    .unwrap_or_else(|| SyncResult {
        error: Some(BrokerError::NotCoordinator),
        ..SyncResult::default()
    });
    let mut response = SyncGroupResponse::default()
        .with_error_code(BrokerError::code_of(result.error.as_ref()))
        .with_assignment(result.assignment);
    if version >= 5 {
        response = response
            .with_protocol_type(result.protocol_type.as_deref().map(str_bytes))
            .with_protocol_name(result.protocol_name.as_deref().map(str_bytes));
    }
    response
}

/// Heartbeat: keeps the session alive and says when to rejoin.
pub async fn heartbeat(ctx: &RequestContext, request: HeartbeatRequest) -> HeartbeatResponse {
    let group = text(&request.group_id.0);
    if let Err(e) = may_read_group(ctx, &group) {
        return HeartbeatResponse::default().with_error_code(e.code());
    }
    let code = on_coordinator(&ctx.shard, &group.clone(), move |s| async move {
        let result = s.groups().heartbeat(
            &group,
            &request.member_id,
            request.group_instance_id.as_deref(),
            request.generation_id,
        );
        BrokerError::code_of(result.err().as_ref())
    })
    .await
    .unwrap_or_else(not_coordinator);
    HeartbeatResponse::default().with_error_code(code)
}

/// LeaveGroup: one member (v0-2) or a batch (v3+).
pub async fn leave_group(ctx: &RequestContext, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let version = ctx.version();
    let group = text(&request.group_id.0);
    if let Err(e) = may_read_group(ctx, &group) {
        return LeaveGroupResponse::default().with_error_code(e.code());
    }
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| (text(&m.member_id), opt_text(&m.group_instance_id)))
            .collect()
    } else {
        vec![(text(&request.member_id), None)]
    };
    let asked = leaving.clone();
    let codes = on_coordinator(&ctx.shard, &group.clone(), move |s| async move {
        s.groups()
            .leave(&group, &leaving)
            .iter()
            .map(|r| BrokerError::code_of(r.as_ref().err()))
            .collect::<Vec<i16>>()
    })
    .await
    .unwrap_or_else(|| vec![not_coordinator(); asked.len()]);
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(0));
    }
    let members = asked
        .into_iter()
        .zip(codes)
        .map(|((id, instance), code)| {
            MemberResponse::default()
                .with_member_id(str_bytes(&id))
                .with_group_instance_id(instance.as_deref().map(str_bytes))
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
