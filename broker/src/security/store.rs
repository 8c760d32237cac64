//! The security store: SCRAM credentials by user, salted and hashed,
//! never a password, and the ACLs. Changed only by the controller (shard 0), persisted
//! durably (`security.json`, replaced whole as the topics file is) and
//! published to every shard as an immutable snapshot, as topic metadata
//! is; authentication reads the snapshot without locks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::scram::{Credential, Mechanism};
use crate::authorizer::Acl;
use crate::layout::{write_durably, SECURITY_FILE};

/// One snapshot of the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    /// Each user's SCRAM credentials, by mechanism.
    #[serde(default)]
    pub users: BTreeMap<String, BTreeMap<Mechanism, Credential>>,
    /// The ACLs (CreateAcls), enforced when `--authorizer acl`.
    #[serde(default)]
    pub acls: BTreeSet<Acl>,
}

impl Store {
    /// The credential of `user` for `mechanism`.
    pub fn credential(&self, user: &str, mechanism: Mechanism) -> Option<&Credential> {
        self.users.get(user)?.get(&mechanism)
    }

    /// Whether `password` is `user`'s, by any of the user's credentials
    /// (SASL PLAIN).
    pub fn check_password(&self, user: &str, password: &str) -> bool {
        self.users.get(user).is_some_and(|credentials| {
            // The first one decides: they were all made from one password,
            // unless an operator set them apart on purpose.
            credentials
                .iter()
                .next()
                .is_some_and(|(m, c)| c.matches_password(*m, password))
        })
    }
}

/// Reads the store of `data_dir` (empty if there is none).
pub fn load(data_dir: &Path) -> Result<Store, String> {
    let path = data_dir.join(SECURITY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a security store: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Store::default()),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// Writes the store durably: temp file, fsync, rename, fsync dir.
pub fn persist(data_dir: &Path, store: &Store) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(store).map_err(|e| e.to_string())?;
    write_durably(&data_dir.join(SECURITY_FILE), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_round_trips_and_keeps_no_password() {
        let dir = std::env::temp_dir().join(format!("sluice-security-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(load(&dir).unwrap(), Store::default());
        let mut store = Store::default();
        let user = store.users.entry("alice".into()).or_default();
        for m in Mechanism::ALL {
            user.insert(m, Credential::from_password(m, "wonderland-secret", 4096));
        }
        persist(&dir, &store).unwrap();
        let text = std::fs::read_to_string(dir.join(SECURITY_FILE)).unwrap();
        assert!(text.contains("SCRAM-SHA-512") && !text.contains("wonderland-secret"));
        let back = load(&dir).unwrap();
        assert_eq!(back, store);
        assert!(back.check_password("alice", "wonderland-secret"));
        assert!(!back.check_password("alice", "wonderland"));
        assert!(!back.check_password("bob", "wonderland-secret"));
        std::fs::write(dir.join(SECURITY_FILE), b"{ not json").unwrap();
        assert!(load(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
