//! What every handler gets besides its request: the shard it runs on, the
//! request header (client id, correlation id, API version), and the
//! connection's session: the listener it came in on and its
//! authentication (the principal for authorization). Per-API metrics and
//! quotas belong here as they come.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use sluice_protocol::RequestHeader;

use crate::authorizer::{resource, Authorizer, CLUSTER_NAME};
use crate::listeners::Listener;
use crate::security::sasl::{Authentication, ANONYMOUS};
use crate::shard::Shard;

/// One connection's state that outlives its requests.
#[derive(Debug)]
pub struct Session {
    /// The client's address, if the socket knew it.
    pub peer: Option<SocketAddr>,
    /// The listener the connection came in on.
    pub listener: Arc<Listener>,
    /// Who the client is, and its SASL exchange.
    pub auth: RefCell<Authentication>,
}

impl Session {
    /// A session for a connection from `peer` on `listener`, authenticated
    /// as `principal` already (`None`: SASL must authenticate it).
    pub fn new(
        peer: Option<SocketAddr>,
        listener: Arc<Listener>,
        principal: Option<String>,
    ) -> Session {
        Session {
            peer,
            listener,
            auth: RefCell::new(Authentication::new(principal)),
        }
    }

    /// The client's address as text ("" if unknown), for logs.
    pub fn peer_text(&self) -> String {
        self.peer.map(|a| a.to_string()).unwrap_or_default()
    }
}

/// One request's context.
pub struct RequestContext {
    /// The shard that accepted the connection.
    pub shard: Rc<Shard>,
    /// The request header.
    pub header: RequestHeader,
    /// The connection's session.
    pub session: Rc<Session>,
}

impl RequestContext {
    /// The request's API version.
    pub fn version(&self) -> i16 {
        self.header.api_version
    }

    /// The host and port this client is told to use: its listener's
    /// advertised address.
    pub fn advertised(&self) -> (&str, i32) {
        let listener = &self.session.listener;
        (&listener.advertised_host, listener.advertised_port)
    }

    /// Whether the client's principal may do `operation` on resource
    /// `name` of `resource_type` (`crate::authorizer`; always, with no
    /// authorizer configured).
    pub fn allows(&self, operation: i8, resource_type: i8, name: &str) -> bool {
        !self.shard.authorization().enabled
            || self.authorizer(|a| a.allows(operation, resource_type, name))
    }

    /// Whether the principal may do `operation` on the cluster.
    pub fn allows_cluster(&self, operation: i8) -> bool {
        self.allows(operation, resource::CLUSTER, CLUSTER_NAME)
    }

    /// Whether the principal may do `operation` on some resource of
    /// `resource_type`.
    pub fn allows_any(&self, operation: i8, resource_type: i8) -> bool {
        !self.shard.authorization().enabled
            || self.authorizer(|a| a.allows_any(operation, resource_type))
    }

    /// The authorized-operations field (KIP-430) of a resource.
    pub fn authorized_operations(&self, asked: bool, resource_type: i8, name: &str) -> i32 {
        self.authorizer(|a| a.operations(asked, resource_type, name))
    }

    fn authorizer<R>(&self, decide: impl FnOnce(&Authorizer) -> R) -> R {
        let store = self.shard.security();
        let auth = self.session.auth.borrow();
        let host = self
            .session
            .peer
            .map(|p| p.ip().to_string())
            .unwrap_or_default();
        decide(&Authorizer {
            settings: self.shard.authorization(),
            acls: &store.acls,
            principal: auth.principal().unwrap_or(ANONYMOUS),
            host: &host,
        })
    }

    /// The client id of the header ("" when null).
    pub fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }
}
