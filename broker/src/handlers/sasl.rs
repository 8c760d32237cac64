//! SASL authentication (SaslHandshake, SaslAuthenticate, with KIP-368's
//! re-authentication) and the SCRAM credential APIs (KIP-554:
//! DescribeUserScramCredentials, AlterUserScramCredentials).
//!
//! The connection hands these requests over one at a time and closes it
//! after an answer that marks the session failed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_protocol::kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use sluice_protocol::kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use sluice_protocol::kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};

use sluice_protocol::kafka_protocol::ResponseError;

use crate::authorizer::op;
use crate::context::RequestContext;
use crate::error::BrokerError;
use crate::metadata::str_bytes;
use crate::security::sasl::{enabled, SaslMechanism, Step};
use crate::security::{self, CredentialAction, CredentialChange};
use crate::shard_id::ShardId;

fn mechanisms(ctx: &RequestContext) -> Vec<SaslMechanism> {
    // Checked at start-up.
    enabled(&ctx.shard.config().sasl_enabled_mechanisms).unwrap_or_default()
}

/// SaslHandshake: picks the mechanism of the exchange that follows.
pub fn handshake(ctx: &RequestContext, request: SaslHandshakeRequest) -> SaslHandshakeResponse {
    let offered = mechanisms(ctx);
    let names = offered.iter().map(|m| str_bytes(m.name())).collect();
    let response = SaslHandshakeResponse::default().with_mechanisms(names);
    let session = &ctx.session;
    let reauth = ctx.shard.config().connections_max_reauth_ms > 0;
    let mut auth = session.auth.borrow_mut();
    let refuse = |e: BrokerError| response.clone().with_error_code(e.code());
    if !session.listener.protocol.sasl() {
        return refuse(BrokerError::IllegalSaslState(
            "SASL is not enabled on this listener".into(),
        ));
    }
    if auth.principal().is_some() && !reauth {
        return refuse(BrokerError::IllegalSaslState(
            "already authenticated".into(),
        ));
    }
    let chosen = SaslMechanism::parse(request.mechanism.as_str()).filter(|m| offered.contains(m));
    let Some(mechanism) = chosen else {
        tracing::warn!(
            peer = session.peer_text(),
            mechanism = request.mechanism.as_str(),
            "closing connection: SASL mechanism not enabled"
        );
        auth.failed = true;
        return refuse(BrokerError::UnsupportedSaslMechanism(String::new()));
    };
    match auth.start(mechanism) {
        Ok(()) => response,
        Err(e) => {
            auth.failed = true;
            refuse(e)
        }
    }
}

/// SaslAuthenticate: one token of the exchange. A failure is answered
/// after `--connection-failed-authentication-delay-ms` and closes the
/// connection.
pub async fn authenticate(
    ctx: &RequestContext,
    request: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let store = ctx.shard.security();
    let session = &ctx.session;
    let config = ctx.shard.config();
    let (step, mechanism, named) = {
        let mut auth = session.auth.borrow_mut();
        if auth.principal().is_some() && auth.mechanism().is_none() {
            // An authenticated connection (a listener without SASL, or no
            // re-authentication started): refused, as Kafka does, and the
            // connection goes on.
            let e = BrokerError::IllegalSaslState(
                "SaslAuthenticate without a SASL handshake in progress".into(),
            );
            return SaslAuthenticateResponse::default()
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(&e.to_string())));
        }
        let mechanism = auth.mechanism();
        let named = auth.user_so_far().map(str::to_string);
        (auth.step(&request.auth_bytes, &store), mechanism, named)
    };
    let mechanism = mechanism.map_or("none", SaslMechanism::name);
    let error = match step {
        Ok(Step::Continue(reply)) => {
            return SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(reply));
        }
        Ok(Step::Done { user, reply }) => {
            let principal = format!("User:{user}");
            let mut auth = session.auth.borrow_mut();
            match auth.principal() {
                Some(before) if before != principal => BrokerError::SaslAuthenticationFailed(
                    format!("re-authentication as {principal} on a connection of {before}"),
                ),
                _ => {
                    let lifetime = config.connections_max_reauth_ms;
                    let expires =
                        (lifetime > 0).then(|| Instant::now() + Duration::from_millis(lifetime));
                    tracing::debug!(
                        peer = session.peer_text(),
                        principal,
                        mechanism,
                        "authenticated"
                    );
                    auth.authenticated_as(principal, expires);
                    return SaslAuthenticateResponse::default()
                        .with_auth_bytes(Bytes::from(reply))
                        .with_session_lifetime_ms(lifetime as i64);
                }
            }
        }
        Err(e) => e,
    };
    session.auth.borrow_mut().failed = true;
    let message = match &error {
        BrokerError::SaslAuthenticationFailed(why) => {
            ctx.shard.metrics().failed_authentication();
            tracing::warn!(
                peer = session.peer_text(),
                listener = session.listener.name,
                mechanism,
                user = named.as_deref().unwrap_or(""),
                reason = why.as_str(),
                "authentication failed"
            );
            glommio::timer::sleep(Duration::from_millis(
                config.connection_failed_authentication_delay_ms,
            ))
            .await;
            // What Kafka tells the client; the reason stays in the log.
            format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
            )
        }
        other => other.to_string(),
    };
    SaslAuthenticateResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(str_bytes(&message)))
}

/// DescribeUserScramCredentials: every user's mechanisms and iterations
/// (never a salt or key), or the named users'.
pub fn describe_credentials(
    ctx: &RequestContext,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !ctx.allows_cluster(op::DESCRIBE) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes(
                "the principal may not describe credentials (DESCRIBE on the cluster)",
            )));
    }
    let store = ctx.shard.security();
    let names: Vec<String> = match request.users {
        None => store.users.keys().cloned().collect(),
        Some(users) => users.iter().map(|u| u.name.to_string()).collect(),
    };
    let results = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(name));
            let error = if names[..i].contains(name) || names[i + 1..].contains(name) {
                Some(BrokerError::DuplicateResource(format!(
                    "user '{name}' is asked for more than once"
                )))
            } else if !store.users.contains_key(name) {
                Some(BrokerError::ResourceNotFound(format!(
                    "user '{name}' has no credentials"
                )))
            } else {
                None
            };
            match error {
                Some(e) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.to_string()))),
                None => result.with_credential_infos(
                    store.users[name]
                        .iter()
                        .map(|(m, c)| {
                            CredentialInfo::default()
                                .with_mechanism(m.kafka_type())
                                .with_iterations(c.iterations as i32)
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// AlterUserScramCredentials: upserts (from the client's salted password)
/// and deletions, made durable by the controller.
pub async fn alter_credentials(
    ctx: &RequestContext,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let deletions = request.deletions.into_iter().map(|d| CredentialChange {
        user: d.name.to_string(),
        mechanism: d.mechanism,
        action: CredentialAction::Delete,
    });
    let upsertions = request.upsertions.into_iter().map(|u| CredentialChange {
        user: u.name.to_string(),
        mechanism: u.mechanism,
        action: CredentialAction::Upsert {
            iterations: u.iterations,
            salt: u.salt.to_vec(),
            salted_password: u.salted_password.to_vec(),
        },
    });
    let changes: Vec<CredentialChange> = deletions.chain(upsertions).collect();
    let results = if ctx.allows_cluster(op::ALTER) {
        ctx.shard
            .call(ShardId::CONTROLLER, move |s| {
                security::alter_credentials(s, changes)
            })
            .await
            .unwrap_or_default()
    } else {
        let mut users: Vec<String> = Vec::new();
        for c in changes {
            if !users.contains(&c.user) {
                users.push(c.user);
            }
        }
        users
            .into_iter()
            .map(|u| {
                let e = BrokerError::ClusterAuthorizationFailed(
                    "the principal may not alter credentials (ALTER on the cluster)".into(),
                );
                (u, Err(e))
            })
            .collect()
    };
    AlterUserScramCredentialsResponse::default().with_results(
        results
            .into_iter()
            .map(|(user, result)| {
                let r = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
                match result {
                    Ok(()) => r,
                    Err(e) => r
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(&e.to_string()))),
                }
            })
            .collect(),
    )
}
