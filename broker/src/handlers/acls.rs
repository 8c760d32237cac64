//! The ACL APIs: CreateAcls, DescribeAcls and DeleteAcls (Kafka's model,
//! `crate::authorizer`). Creating and deleting needs ALTER on the cluster,
//! describing DESCRIBE on it (CLUSTER_AUTHORIZATION_FAILED otherwise); the
//! controller makes changes durable and publishes them to every shard
//! before the answer.

use sluice_protocol::kafka_protocol::messages::create_acls_response::AclCreationResult;
use sluice_protocol::kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use sluice_protocol::kafka_protocol::messages::describe_acls_response::{
    AclDescription, DescribeAclsResource,
};
use sluice_protocol::kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use sluice_protocol::kafka_protocol::ResponseError;

use crate::authorizer::{op, Acl, AclFilter};
use crate::context::RequestContext;
use crate::error::BrokerError;
use crate::metadata::str_bytes;
use crate::security;
use crate::shard_id::ShardId;

/// The filter of a DescribeAcls request or of a DeleteAcls filter (two
/// types with the same fields).
macro_rules! acl_filter {
    ($f:expr) => {
        AclFilter {
            resource_type: $f.resource_type_filter,
            resource_name: $f.resource_name_filter.map(|s| s.to_string()),
            pattern_type: $f.pattern_type_filter,
            principal: $f.principal_filter.map(|s| s.to_string()),
            host: $f.host_filter.map(|s| s.to_string()),
            operation: $f.operation,
            permission: $f.permission_type,
        }
    };
}

const DENIED: &str = "the principal may not manage ACLs (ALTER on the cluster)";

/// `change` on the controller, or `count` refusals when `denied`.
async fn on_controller<T, F, Fut>(
    ctx: &RequestContext,
    count: usize,
    denied: bool,
    change: F,
) -> Vec<Result<T, BrokerError>>
where
    T: Send + 'static,
    F: FnOnce(std::rc::Rc<crate::shard::Shard>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Vec<Result<T, BrokerError>>> + 'static,
{
    if denied {
        return (0..count)
            .map(|_| Err(BrokerError::ClusterAuthorizationFailed(DENIED.into())))
            .collect();
    }
    ctx.shard
        .call(ShardId::CONTROLLER, change)
        .await
        .unwrap_or_else(|| (0..count).map(|_| Err(BrokerError::ShuttingDown)).collect())
}

/// CreateAcls: each ACL created, or why not.
pub async fn create_acls(ctx: &RequestContext, request: CreateAclsRequest) -> CreateAclsResponse {
    let denied = !ctx.allows_cluster(op::ALTER);
    let acls: Vec<Acl> = request
        .creations
        .into_iter()
        .map(|c| Acl {
            resource_type: c.resource_type,
            pattern_type: c.resource_pattern_type,
            resource_name: c.resource_name.to_string(),
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: c.operation,
            permission: c.permission_type,
        })
        .collect();
    let count = acls.len();
    let results = on_controller(ctx, count, denied, move |s| security::create_acls(s, acls)).await;
    CreateAclsResponse::default().with_results(
        results
            .into_iter()
            .map(|r| match r {
                Ok(()) => AclCreationResult::default(),
                Err(e) => AclCreationResult::default()
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.to_string()))),
            })
            .collect(),
    )
}

/// DescribeAcls: the ACLs the filter matches, grouped by resource.
pub fn describe_acls(ctx: &RequestContext, request: DescribeAclsRequest) -> DescribeAclsResponse {
    if !ctx.allows_cluster(op::DESCRIBE) {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes(
                "the principal may not describe ACLs (DESCRIBE on the cluster)",
            )));
    }
    let filter = acl_filter!(request);
    if let Some(why) = filter.invalid() {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(str_bytes(&why)));
    }
    let store = ctx.shard.security();
    // The set is ordered by resource first: a resource's ACLs are adjacent.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for acl in store.acls.iter().filter(|a| filter.matches(a)) {
        let same = resources.last().is_some_and(|r| {
            r.resource_type == acl.resource_type
                && r.pattern_type == acl.pattern_type
                && *r.resource_name == *acl.resource_name
        });
        if !same {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(acl.resource_type)
                    .with_resource_name(str_bytes(&acl.resource_name))
                    .with_pattern_type(acl.pattern_type),
            );
        }
        if let Some(r) = resources.last_mut() {
            r.acls.push(
                AclDescription::default()
                    .with_principal(str_bytes(&acl.principal))
                    .with_host(str_bytes(&acl.host))
                    .with_operation(acl.operation)
                    .with_permission_type(acl.permission),
            );
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

/// DeleteAcls: per filter, the ACLs removed.
pub async fn delete_acls(ctx: &RequestContext, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let filters: Vec<AclFilter> = request
        .filters
        .into_iter()
        .map(|f| acl_filter!(f))
        .collect();
    let count = filters.len();
    let denied = !ctx.allows_cluster(op::ALTER);
    let results = on_controller(ctx, count, denied, move |s| {
        security::delete_acls(s, filters)
    })
    .await;
    DeleteAclsResponse::default().with_filter_results(
        results
            .into_iter()
            .map(|r| match r {
                Ok(matched) => DeleteAclsFilterResult::default().with_matching_acls(
                    matched
                        .into_iter()
                        .map(|a| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(a.resource_type)
                                .with_resource_name(str_bytes(&a.resource_name))
                                .with_pattern_type(a.pattern_type)
                                .with_principal(str_bytes(&a.principal))
                                .with_host(str_bytes(&a.host))
                                .with_operation(a.operation)
                                .with_permission_type(a.permission)
                        })
                        .collect(),
                ),
                Err(e) => DeleteAclsFilterResult::default()
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.to_string()))),
            })
            .collect(),
    )
}
