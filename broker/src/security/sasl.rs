//! One connection's authentication: who it is (its principal), and where
//! its SASL exchange stands (SaslHandshake picks a mechanism; each
//! SaslAuthenticate carries one token of it). PLAIN checks the password
//! against the SCRAM credentials; SCRAM runs `scram`'s exchange.

use std::time::Instant;

use super::scram::{self, Mechanism};
use super::store::Store;
use crate::error::BrokerError;

/// A SASL mechanism the broker offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// PLAIN (RFC 4616): user and password in one token.
    Plain,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    Scram(Mechanism),
}

impl SaslMechanism {
    /// Its SASL name.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
        }
    }

    /// The mechanism of a SASL name.
    pub fn parse(name: &str) -> Option<SaslMechanism> {
        if name == "PLAIN" {
            return Some(SaslMechanism::Plain);
        }
        Mechanism::from_name(name).map(SaslMechanism::Scram)
    }
}

/// The mechanisms of `--sasl-enabled-mechanisms`.
pub fn enabled(list: &str) -> Result<Vec<SaslMechanism>, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let m = SaslMechanism::parse(name).ok_or_else(|| {
            format!(
                "--sasl-enabled-mechanisms: '{name}' is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
            )
        })?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err("--sasl-enabled-mechanisms names no mechanism".into());
    }
    Ok(out)
}

/// Where a SASL exchange stands.
#[derive(Debug, Default)]
enum Stage {
    /// No handshake yet (or the last exchange finished).
    #[default]
    Idle,
    /// SaslHandshake chose the mechanism; its first token is next.
    Chosen(SaslMechanism),
    /// SCRAM's server-first message went out; the client-final is next.
    ScramSent(Box<scram::Exchange>),
}

/// What one SaslAuthenticate token led to.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes and wait for the next token.
    Continue(Vec<u8>),
    /// Authenticated as this user; send these bytes (maybe empty).
    Done {
        /// The user name.
        user: String,
        /// The last message of the mechanism.
        reply: Vec<u8>,
    },
}

/// One connection's authentication state.
#[derive(Debug)]
pub struct Authentication {
    /// `User:name` once authenticated (at once on listeners without SASL).
    principal: Option<String>,
    stage: Stage,
    /// When the SASL session ends (KIP-368), if it does.
    pub expires: Option<Instant>,
    /// The exchange failed: the answer is the connection's last.
    pub failed: bool,
}

/// The principal of a connection nobody authenticated (Kafka's).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

impl Authentication {
    /// A connection that starts as `principal`, or that must authenticate
    /// (`None`).
    pub fn new(principal: Option<String>) -> Authentication {
        Authentication {
            principal,
            stage: Stage::Idle,
            expires: None,
            failed: false,
        }
    }

    /// The principal, once authenticated.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// Whether requests other than ApiVersions and SASL may be served: the
    /// connection is authenticated and its session has not expired.
    pub fn authenticated(&self, now: Instant) -> bool {
        self.principal.is_some() && self.expires.is_none_or(|at| now < at)
    }

    /// SaslHandshake chose `mechanism`: its first token is next.
    pub fn start(&mut self, mechanism: SaslMechanism) -> Result<(), BrokerError> {
        if !matches!(self.stage, Stage::Idle) {
            return Err(BrokerError::IllegalSaslState(
                "a SASL handshake is already in progress".into(),
            ));
        }
        self.stage = Stage::Chosen(mechanism);
        Ok(())
    }

    /// The mechanism of the exchange in progress.
    pub fn mechanism(&self) -> Option<SaslMechanism> {
        match &self.stage {
            Stage::Idle => None,
            Stage::Chosen(m) => Some(*m),
            Stage::ScramSent(e) => Some(SaslMechanism::Scram(e.mechanism())),
        }
    }

    /// The user named so far in the exchange, for logs.
    pub fn user_so_far(&self) -> Option<&str> {
        match &self.stage {
            Stage::ScramSent(e) => Some(&e.user),
            _ => None,
        }
    }

    /// Takes one SaslAuthenticate token. An error ends the exchange: the
    /// caller answers it and closes the connection.
    pub fn step(&mut self, token: &[u8], store: &Store) -> Result<Step, BrokerError> {
        let failed = |why: String| BrokerError::SaslAuthenticationFailed(why);
        match std::mem::take(&mut self.stage) {
            Stage::Idle => Err(BrokerError::IllegalSaslState(
                "SaslAuthenticate before SaslHandshake".into(),
            )),
            Stage::Chosen(SaslMechanism::Plain) => {
                let (user, password) = plain_token(token).map_err(failed)?;
                if store.check_password(&user, &password) {
                    Ok(Step::Done {
                        user,
                        reply: Vec::new(),
                    })
                } else {
                    Err(failed(format!("wrong password or unknown user '{user}'")))
                }
            }
            Stage::Chosen(SaslMechanism::Scram(m)) => {
                let (exchange, reply) =
                    scram::server_first(m, token, |user| store.credential(user, m).cloned())
                        .map_err(|e| failed(e.0))?;
                self.stage = Stage::ScramSent(Box::new(exchange));
                Ok(Step::Continue(reply))
            }
            Stage::ScramSent(exchange) => {
                let user = exchange.user.clone();
                let reply = exchange.client_final(token).map_err(|e| failed(e.0))?;
                Ok(Step::Done { user, reply })
            }
        }
    }

    /// The exchange authenticated `principal` until `expires`.
    pub fn authenticated_as(&mut self, principal: String, expires: Option<Instant>) {
        self.principal = Some(principal);
        self.expires = expires;
    }
}

/// PLAIN's token: `authzid NUL user NUL password`, the authzid empty or
/// the user.
fn plain_token(token: &[u8]) -> Result<(String, String), String> {
    let text = std::str::from_utf8(token).map_err(|_| "the PLAIN token is not UTF-8")?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the PLAIN token is not authzid NUL user NUL password".into());
    };
    if user.is_empty() || password.is_empty() {
        return Err("the PLAIN token has an empty user or password".into());
    }
    if !authzid.is_empty() && authzid != user {
        return Err(format!(
            "user '{user}' may not act as authorization id '{authzid}'"
        ));
    }
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        let mut store = Store::default();
        store.users.entry("alice".into()).or_default().insert(
            Mechanism::Sha256,
            scram::Credential::from_password(Mechanism::Sha256, "secret", 4096),
        );
        store
    }

    #[test]
    fn plain_checks_the_password_and_the_token_shape() {
        let store = store();
        let mut auth = Authentication::new(None);
        assert!(!auth.authenticated(Instant::now()));
        assert!(matches!(
            auth.step(b"\0alice\0secret", &store),
            Err(BrokerError::IllegalSaslState(_))
        ));
        for (token, ok) in [
            (&b"\0alice\0secret"[..], true),
            (b"alice\0alice\0secret", true),
            (b"\0alice\0wrong", false),
            (b"\0bob\0secret", false),
            (b"bob\0alice\0secret", false),
            (b"\0alice", false),
            (b"\0alice\0secret\0more", false),
            (b"\0\0secret", false),
        ] {
            let mut auth = Authentication::new(None);
            auth.start(SaslMechanism::Plain).unwrap();
            let result = auth.step(token, &store);
            assert_eq!(
                matches!(result, Ok(Step::Done { ref user, .. }) if user == "alice"),
                ok,
                "{token:?}: {result:?}"
            );
        }
    }

    #[test]
    fn enabled_mechanisms_are_parsed() {
        assert_eq!(
            enabled("PLAIN, SCRAM-SHA-512").unwrap(),
            [
                SaslMechanism::Plain,
                SaslMechanism::Scram(Mechanism::Sha512)
            ]
        );
        assert!(enabled("GSSAPI").is_err());
        assert!(enabled("").is_err());
    }

    #[test]
    fn a_session_expires() {
        let mut auth = Authentication::new(None);
        let now = Instant::now();
        auth.authenticated_as(
            "User:a".into(),
            Some(now + std::time::Duration::from_secs(1)),
        );
        assert!(auth.authenticated(now));
        assert!(!auth.authenticated(now + std::time::Duration::from_secs(2)));
    }
}
