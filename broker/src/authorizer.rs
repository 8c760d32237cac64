//! What a principal may do with a resource, in Kafka's ACL model: an ACL
//! allows or denies a principal (or `User:*`) from a host (or `*`) an
//! operation on resources of one type named literally (or `*`) or by
//! prefix. The ACLs live in the security store (`security::store`), are
//! changed by CreateAcls and DeleteAcls on the controller and read by
//! every shard from its snapshot.
//!
//! The decision is Kafka's (`AclAuthorizer`/`StandardAuthorizer`): super
//! users may do everything; with no ACL on the resource at all, the
//! answer is `--allow-everyone-if-no-acl-found`; a matching DENY wins;
//! otherwise a matching ALLOW of the operation, or of one implying it
//! (READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
//! DESCRIBE_CONFIGS; ALL implies everything), allows. With no authorizer
//! configured (`--authorizer none`, the default, as in Kafka) everything
//! is allowed, and answers listing authorized operations (KIP-430) list
//! every operation of the resource type.

use serde::{Deserialize, Serialize};

/// Kafka's `AclOperation` codes.
pub mod op {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
}

/// Kafka's `ResourceType` codes (the ones with resources here).
pub mod resource {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
}

/// Kafka's `PatternType` codes.
pub mod pattern {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// Kafka's `AclPermissionType` codes.
pub mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// The cluster resource's one name.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal name, principal or host matching every one.
pub const WILDCARD: &str = "*";
/// The principal matching every user.
pub const ANY_USER: &str = "User:*";

/// The operations of a topic (Kafka's `AclEntry.supportedOperations`).
pub const TOPIC_OPERATIONS: &[i8] = &[
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
pub const CLUSTER_OPERATIONS: &[i8] = &[
    op::CREATE,
    op::CLUSTER_ACTION,
    op::DESCRIBE_CONFIGS,
    op::ALTER_CONFIGS,
    op::IDEMPOTENT_WRITE,
    op::ALTER,
    op::DESCRIBE,
];

/// The operations of a consumer group.
pub const GROUP_OPERATIONS: &[i8] = &[op::READ, op::DESCRIBE, op::DELETE];

/// The operations of a transactional id.
const TRANSACTIONAL_ID_OPERATIONS: &[i8] = &[op::DESCRIBE, op::WRITE];

/// "Not asked for": what an authorized-operations field holds when the
/// request did not ask (Kafka's `Integer.MIN_VALUE`).
pub const NOT_ASKED: i32 = i32::MIN;

/// One ACL. Ordered by resource first, so a resource's ACLs are
/// neighbours in the store's set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Acl {
    pub resource_type: i8,
    pub pattern_type: i8,
    pub resource_name: String,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

impl Acl {
    /// Why this ACL cannot be created, if it cannot (Kafka's
    /// `AclControlManager.validateNewAcl`, answered as INVALID_REQUEST).
    pub fn invalid(&self) -> Option<String> {
        let concrete_type = [
            resource::TOPIC,
            resource::GROUP,
            resource::CLUSTER,
            resource::TRANSACTIONAL_ID,
        ];
        if !concrete_type.contains(&self.resource_type) {
            return Some(format!(
                "resource type {} is not one of topic (2), group (3), cluster (4), transactional id (5)",
                self.resource_type
            ));
        }
        if ![pattern::LITERAL, pattern::PREFIXED].contains(&self.pattern_type) {
            return Some(format!(
                "pattern type {} is not literal (3) or prefixed (4)",
                self.pattern_type
            ));
        }
        if !(op::ALL..=op::IDEMPOTENT_WRITE).contains(&self.operation) {
            return Some(format!("operation {} is not one of 2-12", self.operation));
        }
        if ![permission::DENY, permission::ALLOW].contains(&self.permission) {
            return Some(format!(
                "permission type {} is not deny (2) or allow (3)",
                self.permission
            ));
        }
        if self.resource_name.is_empty() {
            return Some("the resource name is empty".into());
        }
        if self.resource_type == resource::CLUSTER && self.resource_name != CLUSTER_NAME {
            return Some(format!("the cluster resource is named '{CLUSTER_NAME}'"));
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => {
                return Some(format!(
                    "principal '{}' is not TYPE:NAME (User:alice)",
                    self.principal
                ))
            }
        }
        if self.host.is_empty() {
            return Some("the host is empty (use '*' for any)".into());
        }
        None
    }

    /// Whether this ACL is on resource `name` of type `resource_type`.
    fn covers(&self, resource_type: i8, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                pattern::LITERAL => self.resource_name == name || self.resource_name == WILDCARD,
                pattern::PREFIXED => name.starts_with(&self.resource_name),
                _ => false,
            }
    }

    /// Whether this ACL speaks of `principal` connecting from `host`.
    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == ANY_USER)
            && (self.host == host || self.host == WILDCARD)
    }
}

/// A filter of DescribeAcls and DeleteAcls.
#[derive(Debug, Clone)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilter {
    /// Why this filter matches nothing by construction, if it does
    /// (INVALID_REQUEST, as Kafka answers).
    pub fn invalid(&self) -> Option<String> {
        if self.resource_type < resource::ANY || self.resource_type > 7 {
            return Some(format!("unknown resource type {}", self.resource_type));
        }
        if !(pattern::ANY..=pattern::PREFIXED).contains(&self.pattern_type) {
            return Some(format!("unknown pattern type {}", self.pattern_type));
        }
        if !(op::ANY..=14).contains(&self.operation) {
            return Some(format!("unknown operation {}", self.operation));
        }
        if !(permission::ANY..=permission::ALLOW).contains(&self.permission) {
            return Some(format!("unknown permission type {}", self.permission));
        }
        None
    }

    /// Whether `acl` matches: each field equal, or the filter's ANY/null;
    /// a MATCH pattern takes every ACL that would apply to the named
    /// resource (literal, wildcard and prefixes of it).
    pub fn matches(&self, acl: &Acl) -> bool {
        let resource = match (self.pattern_type, &self.resource_name) {
            (pattern::MATCH, Some(name)) => {
                acl.resource_type == self.resource_type && acl.covers(acl.resource_type, name)
            }
            (pattern::MATCH, None) => true,
            (p, name) => {
                (p == pattern::ANY || p == acl.pattern_type)
                    && name.as_ref().is_none_or(|n| *n == acl.resource_name)
            }
        };
        resource
            && (self.resource_type == resource::ANY || self.resource_type == acl.resource_type)
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == op::ANY || self.operation == acl.operation)
            && (self.permission == permission::ANY || self.permission == acl.permission)
    }
}

/// The authorizer's settings (`--authorizer`, `--super-users`,
/// `--allow-everyone-if-no-acl-found`).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// ACLs are enforced.
    pub enabled: bool,
    /// Principals allowed everything.
    pub super_users: Vec<String>,
    /// A resource with no ACL at all is open to everyone.
    pub allow_if_no_acl: bool,
}

impl Settings {
    /// The settings `--authorizer`, `--super-users` and
    /// `--allow-everyone-if-no-acl-found` give.
    pub fn of(args: &crate::config::ServeArgs) -> Result<Settings, String> {
        Settings::parse(
            &args.authorizer,
            &args.super_users,
            args.allow_everyone_if_no_acl_found,
        )
    }

    /// From the flags; `authorizer` is `none` or `acl`, `super_users`
    /// Kafka's `User:a;User:b`.
    pub fn parse(
        authorizer: &str,
        super_users: &str,
        allow_if_no_acl: bool,
    ) -> Result<Settings, String> {
        let enabled = match authorizer {
            "none" | "" => false,
            "acl" => true,
            other => return Err(format!("--authorizer {other}: expected none or acl")),
        };
        let super_users: Vec<String> = super_users
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if let Some(bad) = super_users.iter().find(|p| !p.contains(':')) {
            return Err(format!(
                "--super-users: '{bad}' is not a principal (User:NAME)"
            ));
        }
        Ok(Settings {
            enabled,
            super_users,
            allow_if_no_acl,
        })
    }
}

/// One decision's inputs: who asks, from where, under which ACLs.
pub struct Authorizer<'a> {
    pub settings: &'a Settings,
    pub acls: &'a std::collections::BTreeSet<Acl>,
    pub principal: &'a str,
    pub host: &'a str,
}

impl Authorizer<'_> {
    /// Whether the principal may do `operation` on resource `name` of
    /// type `resource_type`.
    pub fn allows(&self, operation: i8, resource_type: i8, name: &str) -> bool {
        if !self.settings.enabled
            || self
                .settings
                .super_users
                .iter()
                .any(|s| s == self.principal)
        {
            return true;
        }
        let mut on_resource = self
            .acls
            .iter()
            .filter(|a| a.covers(resource_type, name))
            .peekable();
        if on_resource.peek().is_none() {
            return self.settings.allow_if_no_acl;
        }
        let mut allowed = false;
        for acl in on_resource.filter(|a| a.applies_to(self.principal, self.host)) {
            let same = acl.operation == operation || acl.operation == op::ALL;
            if acl.permission == permission::DENY && same {
                return false;
            }
            if acl.permission == permission::ALLOW && (same || implies(acl.operation, operation)) {
                allowed = true;
            }
        }
        allowed
    }

    /// Whether the principal may do `operation` on some resource of the
    /// type (Kafka's `authorizeByResourceType`, for idempotent producers
    /// without IDEMPOTENT_WRITE: WRITE on any topic will do): an ALLOW of
    /// it on any resource of the type that no DENY of the same pattern
    /// takes back.
    pub fn allows_any(&self, operation: i8, resource_type: i8) -> bool {
        if !self.settings.enabled
            || self
                .settings
                .super_users
                .iter()
                .any(|s| s == self.principal)
        {
            return true;
        }
        let mine = |permission: i8| {
            self.acls.iter().filter(move |a| {
                a.resource_type == resource_type
                    && a.permission == permission
                    && a.applies_to(self.principal, self.host)
                    && (a.operation == operation || a.operation == op::ALL)
            })
        };
        let denied_everything = mine(permission::DENY).any(|d| {
            d.pattern_type == pattern::LITERAL && d.resource_name == WILDCARD
                || d.pattern_type == pattern::PREFIXED && d.resource_name.is_empty()
        });
        !denied_everything
            && mine(permission::ALLOW).any(|a| {
                !mine(permission::DENY).any(|d| {
                    d.pattern_type == a.pattern_type && d.resource_name == a.resource_name
                        || d.pattern_type == pattern::PREFIXED
                            && a.resource_name.starts_with(&d.resource_name)
                })
            })
    }

    /// The authorized-operations field (KIP-430) of resource `name` of
    /// `resource_type`: bit `code` set for each of the type's operations
    /// allowed, or [`NOT_ASKED`].
    pub fn operations(&self, asked: bool, resource_type: i8, name: &str) -> i32 {
        if !asked {
            return NOT_ASKED;
        }
        let operations = match resource_type {
            resource::TOPIC => TOPIC_OPERATIONS,
            resource::GROUP => GROUP_OPERATIONS,
            resource::CLUSTER => CLUSTER_OPERATIONS,
            _ => TRANSACTIONAL_ID_OPERATIONS,
        };
        operations
            .iter()
            .filter(|o| self.allows(**o, resource_type, name))
            .fold(0, |bits, code| bits | 1 << code)
    }
}

/// Whether an ALLOW of `granted` allows `asked` too.
fn implies(granted: i8, asked: i8) -> bool {
    match asked {
        op::DESCRIBE => [op::READ, op::WRITE, op::DELETE, op::ALTER].contains(&granted),
        op::DESCRIBE_CONFIGS => granted == op::ALTER_CONFIGS,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn acl(rt: i8, pt: i8, name: &str, who: &str, operation: i8, permission: i8) -> Acl {
        Acl {
            resource_type: rt,
            pattern_type: pt,
            resource_name: name.into(),
            principal: who.into(),
            host: WILDCARD.into(),
            operation,
            permission,
        }
    }

    fn check(
        acls: &BTreeSet<Acl>,
        settings: &Settings,
        who: &str,
    ) -> impl Fn(i8, i8, &str) -> bool {
        let (acls, settings, who) = (acls.clone(), settings.clone(), who.to_string());
        move |o, rt, name| {
            Authorizer {
                settings: &settings,
                acls: &acls,
                principal: &who,
                host: "10.0.0.1",
            }
            .allows(o, rt, name)
        }
    }

    #[test]
    fn every_operation_of_the_type_is_allowed_without_an_authorizer() {
        // librdkafka's test 0081 expects 8 topic and 7 cluster operations.
        let (settings, acls) = (Settings::default(), BTreeSet::new());
        let a = Authorizer {
            settings: &settings,
            acls: &acls,
            principal: "User:ANONYMOUS",
            host: "",
        };
        assert_eq!(a.operations(true, resource::TOPIC, "t").count_ones(), 8);
        assert_eq!(
            a.operations(true, resource::CLUSTER, CLUSTER_NAME)
                .count_ones(),
            7
        );
        assert_eq!(
            a.operations(true, resource::GROUP, "g"),
            1 << 3 | 1 << 6 | 1 << 8
        );
        assert_eq!(a.operations(false, resource::TOPIC, "t"), i32::MIN);
    }

    #[test]
    fn kafkas_rules_decide() {
        let settings = Settings {
            enabled: true,
            super_users: vec!["User:root".into()],
            allow_if_no_acl: false,
        };
        let acls: BTreeSet<Acl> = [
            acl(
                resource::TOPIC,
                pattern::LITERAL,
                "orders",
                "User:bob",
                op::READ,
                permission::ALLOW,
            ),
            acl(
                resource::TOPIC,
                pattern::PREFIXED,
                "logs-",
                "User:bob",
                op::WRITE,
                permission::ALLOW,
            ),
            acl(
                resource::TOPIC,
                pattern::LITERAL,
                "logs-secret",
                "User:bob",
                op::ALL,
                permission::DENY,
            ),
            acl(
                resource::TOPIC,
                pattern::LITERAL,
                WILDCARD,
                ANY_USER,
                op::DESCRIBE,
                permission::ALLOW,
            ),
            acl(
                resource::GROUP,
                pattern::LITERAL,
                "g",
                "User:bob",
                op::ALL,
                permission::ALLOW,
            ),
        ]
        .into_iter()
        .collect();
        let bob = check(&acls, &settings, "User:bob");
        assert!(bob(op::READ, resource::TOPIC, "orders"));
        assert!(!bob(op::WRITE, resource::TOPIC, "orders"));
        assert!(bob(op::WRITE, resource::TOPIC, "logs-app"));
        assert!(
            bob(op::DESCRIBE, resource::TOPIC, "logs-app"),
            "implied by WRITE"
        );
        assert!(!bob(op::WRITE, resource::TOPIC, "logs-secret"), "DENY wins");
        assert!(
            !bob(op::DESCRIBE, resource::TOPIC, "logs-secret"),
            "DENY ALL"
        );
        assert!(bob(op::READ, resource::GROUP, "g") && bob(op::DELETE, resource::GROUP, "g"));
        assert!(!bob(op::READ, resource::GROUP, "h"), "no ACL: denied");
        assert!(!bob(op::CREATE, resource::CLUSTER, CLUSTER_NAME));
        let carol = check(&acls, &settings, "User:carol");
        assert!(
            carol(op::DESCRIBE, resource::TOPIC, "orders"),
            "User:* and *"
        );
        assert!(!carol(op::READ, resource::TOPIC, "orders"));
        let root = check(&acls, &settings, "User:root");
        assert!(root(op::ALTER, resource::CLUSTER, CLUSTER_NAME));
        let open = Settings {
            allow_if_no_acl: true,
            ..settings.clone()
        };
        let carol = check(&acls, &open, "User:carol");
        assert!(carol(op::READ, resource::GROUP, "h"), "no ACL at all: open");
        assert!(!carol(op::READ, resource::GROUP, "g"), "ACLs there: closed");
        let a = Authorizer {
            settings: &settings,
            acls: &acls,
            principal: "User:bob",
            host: "10.0.0.1",
        };
        assert!(a.allows_any(op::WRITE, resource::TOPIC));
        assert!(!a.allows_any(op::WRITE, resource::TRANSACTIONAL_ID));
        let topic_ops = a.operations(true, resource::TOPIC, "orders");
        assert_eq!(topic_ops, 1 << op::READ | 1 << op::DESCRIBE);
    }

    #[test]
    fn filters_match_as_kafkas() {
        let a = acl(
            resource::TOPIC,
            pattern::PREFIXED,
            "logs-",
            "User:bob",
            op::WRITE,
            permission::ALLOW,
        );
        let any = AclFilter {
            resource_type: resource::ANY,
            resource_name: None,
            pattern_type: pattern::ANY,
            principal: None,
            host: None,
            operation: op::ANY,
            permission: permission::ANY,
        };
        assert!(any.matches(&a));
        let by_match = AclFilter {
            resource_type: resource::TOPIC,
            resource_name: Some("logs-app".into()),
            pattern_type: pattern::MATCH,
            ..any.clone()
        };
        assert!(by_match.matches(&a));
        let literal = AclFilter {
            pattern_type: pattern::LITERAL,
            ..by_match.clone()
        };
        assert!(!literal.matches(&a));
        let wrong_user = AclFilter {
            principal: Some("User:eve".into()),
            ..any.clone()
        };
        assert!(!wrong_user.matches(&a));
        assert!(a.invalid().is_none());
        let bad = Acl {
            principal: "bob".into(),
            ..a.clone()
        };
        assert!(bad.invalid().is_some());
        let cluster = Acl {
            resource_type: resource::CLUSTER,
            pattern_type: pattern::LITERAL,
            resource_name: "other".into(),
            ..a
        };
        assert!(cluster.invalid().is_some());
    }
}
