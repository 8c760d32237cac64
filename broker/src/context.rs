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

use crate::listeners::Listener;
use crate::security::sasl::Authentication;
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

    /// The client id of the header ("" when null).
    pub fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }
}
