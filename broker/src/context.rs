//! What every handler gets besides its request: the shard it runs on, the
//! request header (client id, correlation id, API version), and the
//! connection's session. Authentication state, the principal for
//! authorization, per-API metrics and quotas belong here as they come.

use std::net::SocketAddr;
use std::rc::Rc;

use sluice_protocol::RequestHeader;

use crate::shard::Shard;

/// One connection's state that outlives its requests.
#[derive(Debug)]
pub struct Session {
    /// The client's address, if the socket knew it.
    pub peer: Option<SocketAddr>,
}

impl Session {
    /// A session for a connection from `peer`.
    pub fn new(peer: Option<SocketAddr>) -> Session {
        Session { peer }
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

    /// The client id of the header ("" when null).
    pub fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }
}
