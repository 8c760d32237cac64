//! Who a client is: TLS (`tls`), SASL authentication (`sasl`, with SCRAM's
//! exchange in `scram`), and the durable store of SCRAM credentials and
//! ACLs (`store`), which the controller changes (here) and every shard
//! reads; the ACLs' model and decisions are `crate::authorizer`'s.

pub mod sasl;
pub mod scram;
pub mod store;
pub mod tls;

use std::rc::Rc;
use std::sync::Arc;

use crate::authorizer::{Acl, AclFilter};
use crate::error::BrokerError;
use crate::shard::Shard;
use crate::shard_id::ShardId;
use scram::{Credential, Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use store::Store;

/// One change of AlterUserScramCredentials.
#[derive(Debug, Clone)]
pub struct CredentialChange {
    /// The user.
    pub user: String,
    /// The mechanism's number (1: SCRAM-SHA-256, 2: SCRAM-SHA-512).
    pub mechanism: i8,
    /// What to do.
    pub action: CredentialAction,
}

/// Set or remove a credential.
#[derive(Debug, Clone)]
pub enum CredentialAction {
    /// Set it from the client's salted password.
    Upsert {
        /// PBKDF2 iterations.
        iterations: i32,
        /// The salt.
        salt: Vec<u8>,
        /// Hi(password, salt, iterations).
        salted_password: Vec<u8>,
    },
    /// Remove it.
    Delete,
}

/// Applies credential changes (on the controller); one result per user,
/// in the order users first appear. A user's changes apply together or
/// not at all; a user and mechanism named twice fails as Kafka's
/// DUPLICATE_RESOURCE. The store is durable and on every shard before
/// the answer.
pub async fn alter_credentials(
    shard: Rc<Shard>,
    changes: Vec<CredentialChange>,
) -> Vec<(String, Result<(), BrokerError>)> {
    let mut users: Vec<String> = Vec::new();
    for c in &changes {
        if !users.contains(&c.user) {
            users.push(c.user.clone());
        }
    }
    let Ok(_permit) = shard.controller().lock.acquire_permit(1).await else {
        return users
            .into_iter()
            .map(|u| (u, Err(BrokerError::ShuttingDown)))
            .collect();
    };
    let mut next = (*shard.security()).clone();
    let mut results = Vec::with_capacity(users.len());
    for user in users {
        let mine: Vec<&CredentialChange> = changes.iter().filter(|c| c.user == user).collect();
        let twice = mine
            .iter()
            .enumerate()
            .any(|(i, a)| mine[..i].iter().any(|b| b.mechanism == a.mechanism));
        let result = if twice {
            Err(BrokerError::DuplicateResource(format!(
                "a credential of user '{user}' is changed twice in one request"
            )))
        } else {
            let mut changed = next.clone();
            mine.iter()
                .try_for_each(|c| apply(&mut changed, c))
                .map(|()| next = changed)
        };
        results.push((user, result));
    }
    if results.iter().any(|(_, r)| r.is_ok()) {
        if let Err(e) = publish(&shard, next).await {
            tracing::error!(error = e, "credential change failed");
            return results
                .into_iter()
                .map(|(u, _)| (u, Err(BrokerError::Storage(e.clone()))))
                .collect();
        }
        for (user, result) in &results {
            if result.is_ok() {
                tracing::info!(user, "SCRAM credentials changed");
            }
        }
    }
    results
}

/// Most users the store holds: it is rewritten whole on every change.
pub const MAX_USERS: usize = 10_000;
/// Most ACLs the store holds, for the same reason.
pub const MAX_ACLS: usize = 10_000;

/// CreateAcls on the controller: one result per ACL, in order. An invalid
/// ACL is refused with INVALID_REQUEST and the others still created; one
/// already there is created again without error, as Kafka does. Durable
/// and on every shard before the answer.
pub async fn create_acls(shard: Rc<Shard>, acls: Vec<Acl>) -> Vec<Result<(), BrokerError>> {
    let Ok(_permit) = shard.controller().lock.acquire_permit(1).await else {
        return acls
            .iter()
            .map(|_| Err(BrokerError::ShuttingDown))
            .collect();
    };
    let mut next = (*shard.security()).clone();
    let results: Vec<Result<(), BrokerError>> = acls
        .into_iter()
        .map(|acl| {
            if let Some(why) = acl.invalid() {
                return Err(BrokerError::InvalidRequest(why));
            }
            if !next.acls.contains(&acl) && next.acls.len() >= MAX_ACLS {
                return Err(BrokerError::InvalidRequest(format!(
                    "the broker holds {MAX_ACLS} ACLs, its most"
                )));
            }
            tracing::info!(acl = ?acl, "ACL created");
            next.acls.insert(acl);
            Ok(())
        })
        .collect();
    let changed = results.iter().any(Result::is_ok);
    publish_acls(&shard, next, changed, results).await
}

/// Publishes `next` if `changed`; when that fails every result becomes the
/// storage error.
async fn publish_acls<T>(
    shard: &Rc<Shard>,
    next: Store,
    changed: bool,
    results: Vec<Result<T, BrokerError>>,
) -> Vec<Result<T, BrokerError>> {
    if !changed {
        return results;
    }
    match publish(shard, next).await {
        Ok(()) => results,
        Err(e) => {
            tracing::error!(error = e, "changing ACLs failed");
            results
                .into_iter()
                .map(|_| Err(BrokerError::Storage(e.clone())))
                .collect()
        }
    }
}

/// DeleteAcls on the controller: per filter, the ACLs it matched and
/// removed (an ACL two filters match is reported by the first).
pub async fn delete_acls(
    shard: Rc<Shard>,
    filters: Vec<AclFilter>,
) -> Vec<Result<Vec<Acl>, BrokerError>> {
    let Ok(_permit) = shard.controller().lock.acquire_permit(1).await else {
        return filters
            .iter()
            .map(|_| Err(BrokerError::ShuttingDown))
            .collect();
    };
    let mut next = (*shard.security()).clone();
    let results: Vec<Result<Vec<Acl>, BrokerError>> = filters
        .iter()
        .map(|filter| {
            if let Some(why) = filter.invalid() {
                return Err(BrokerError::InvalidRequest(why));
            }
            let matched: Vec<Acl> = next
                .acls
                .iter()
                .filter(|a| filter.matches(a))
                .cloned()
                .collect();
            for acl in &matched {
                tracing::info!(acl = ?acl, "ACL deleted");
                next.acls.remove(acl);
            }
            Ok(matched)
        })
        .collect();
    let changed = results
        .iter()
        .any(|r| r.as_ref().is_ok_and(|m| !m.is_empty()));
    publish_acls(&shard, next, changed, results).await
}

fn apply(store: &mut Store, change: &CredentialChange) -> Result<(), BrokerError> {
    let Some(mechanism) = Mechanism::from_kafka_type(change.mechanism) else {
        return Err(BrokerError::UnsupportedSaslMechanism(format!(
            "unknown SCRAM mechanism {}",
            change.mechanism
        )));
    };
    if change.user.is_empty() {
        return Err(BrokerError::UnacceptableCredential(
            "the user name is empty".into(),
        ));
    }
    match &change.action {
        CredentialAction::Delete => {
            let removed = store
                .users
                .get_mut(&change.user)
                .and_then(|credentials| credentials.remove(&mechanism));
            if removed.is_none() {
                return Err(BrokerError::ResourceNotFound(format!(
                    "user '{}' has no {} credential",
                    change.user,
                    mechanism.name()
                )));
            }
            if store.users.get(&change.user).is_some_and(|c| c.is_empty()) {
                store.users.remove(&change.user);
            }
        }
        CredentialAction::Upsert {
            iterations,
            salt,
            salted_password,
        } => {
            if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(iterations) {
                return Err(BrokerError::UnacceptableCredential(format!(
                    "iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, got {iterations}"
                )));
            }
            if salt.is_empty() || salted_password.is_empty() {
                return Err(BrokerError::UnacceptableCredential(
                    "the salt and the salted password must not be empty".into(),
                ));
            }
            if !store.users.contains_key(&change.user) && store.users.len() >= MAX_USERS {
                return Err(BrokerError::UnacceptableCredential(format!(
                    "the broker holds credentials of {MAX_USERS} users, its most"
                )));
            }
            let credential = Credential::from_salted(
                mechanism,
                salt.clone(),
                salted_password,
                *iterations as u32,
            );
            store
                .users
                .entry(change.user.clone())
                .or_default()
                .insert(mechanism, credential);
        }
    }
    Ok(())
}

/// Persists `next` and installs it on every shard.
async fn publish(shard: &Rc<Shard>, next: Store) -> Result<(), String> {
    let next = Arc::new(next);
    let (data_dir, snapshot) = (shard.config().data_dir.clone(), next.clone());
    glommio::executor()
        .spawn_blocking(move || store::persist(&data_dir, &snapshot))
        .await?;
    for target in (0..shard.count()).map(ShardId::new) {
        let snapshot = next.clone();
        shard
            .call(target, move |s| async move { s.apply_security(snapshot) })
            .await
            .ok_or_else(|| format!("shard {target} has stopped"))?;
    }
    Ok(())
}

/// `sluice scram-credential`: sets a user's SCRAM credential in a data
/// directory whose broker is not running (the first user, before any
/// client can authenticate to add one); the broker reads it at start.
pub fn bootstrap(
    data_dir: &std::path::Path,
    user: &str,
    password: &str,
    mechanisms: &[Mechanism],
    iterations: u32,
) -> Result<(), String> {
    if user.is_empty() || password.is_empty() {
        return Err("the user and the password must not be empty".into());
    }
    if !(MIN_ITERATIONS as u32..=MAX_ITERATIONS as u32).contains(&iterations) {
        return Err(format!(
            "iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"
        ));
    }
    sluice_wal_core::segment::create_dir_durably(data_dir)
        .map_err(|e| format!("creating data directory: {e}"))?;
    let _lock = crate::layout::lock_data_dir(data_dir)?;
    let mut store = store::load(data_dir)?;
    let credentials = store.users.entry(user.to_string()).or_default();
    for m in mechanisms {
        credentials.insert(*m, Credential::from_password(*m, password, iterations));
    }
    store::persist(data_dir, &store)
}
