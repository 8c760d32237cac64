//! What a principal may do with a resource, in Kafka's ACL model
//! (operations per resource type, `AclOperation` codes). No authorizer is
//! configured yet, so everything is allowed; answers that list a
//! principal's authorized operations (KIP-430: Metadata, DescribeCluster,
//! DescribeGroups, when asked) list every operation of the resource type,
//! as Kafka does without an authorizer.

/// Kafka's `AclOperation` codes used here.
mod op {
    pub const READ: u8 = 3;
    pub const WRITE: u8 = 4;
    pub const CREATE: u8 = 5;
    pub const DELETE: u8 = 6;
    pub const ALTER: u8 = 7;
    pub const DESCRIBE: u8 = 8;
    pub const CLUSTER_ACTION: u8 = 9;
    pub const DESCRIBE_CONFIGS: u8 = 10;
    pub const ALTER_CONFIGS: u8 = 11;
    pub const IDEMPOTENT_WRITE: u8 = 12;
}

/// The operations of a topic (Kafka's `AclEntry.supportedOperations`).
pub const TOPIC_OPERATIONS: &[u8] = &[
    op::READ,
    op::WRITE,
    op::CREATE,
    op::DESCRIBE,
    op::DELETE,
    op::ALTER,
    op::DESCRIBE_CONFIGS,
    op::ALTER_CONFIGS,
];

/// The operations of the cluster.
pub const CLUSTER_OPERATIONS: &[u8] = &[
    op::CREATE,
    op::CLUSTER_ACTION,
    op::DESCRIBE_CONFIGS,
    op::ALTER_CONFIGS,
    op::IDEMPOTENT_WRITE,
    op::ALTER,
    op::DESCRIBE,
];

/// The operations of a consumer group.
pub const GROUP_OPERATIONS: &[u8] = &[op::READ, op::DESCRIBE, op::DELETE];

/// "Not asked for": what an authorized-operations field holds when the
/// request did not ask (Kafka's `Integer.MIN_VALUE`).
pub const NOT_ASKED: i32 = i32::MIN;

/// The authorized-operations field for `operations`: bit `code` set for
/// each operation allowed, or [`NOT_ASKED`].
pub fn authorized(asked: bool, operations: &[u8]) -> i32 {
    if !asked {
        return NOT_ASKED;
    }
    operations.iter().fold(0, |bits, code| bits | 1 << code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_of_the_type_is_allowed_without_an_authorizer() {
        // librdkafka's test 0081 expects 8 topic and 7 cluster operations.
        assert_eq!(authorized(true, TOPIC_OPERATIONS).count_ones(), 8);
        assert_eq!(authorized(true, CLUSTER_OPERATIONS).count_ones(), 7);
        assert_eq!(authorized(true, GROUP_OPERATIONS), 1 << 3 | 1 << 6 | 1 << 8);
        assert_eq!(authorized(false, TOPIC_OPERATIONS), i32::MIN);
    }
}
