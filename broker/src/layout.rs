//! The data directory's layout, in one place:
//!
//! ```text
//! DIR/cluster            shard count and cluster id, written once
//! DIR/topics             topics, their ids, partition -> shard, configs
//! DIR/producer_ids       the first producer id not yet handed out
//! DIR/security.json      SCRAM credentials (salted and hashed)
//! DIR/lock               held (flock) by the broker using the directory
//! DIR/shard-N/wal/       shard N's WAL segments (wal-core)
//! ```
//!
//! Small files are replaced whole and durably ([`write_durably`]); the
//! WAL manages its own directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::shard_id::ShardId;

/// How the directory was created: `shards=N`, `cluster_id=...`.
pub const CLUSTER_FILE: &str = "cluster";
/// The topics (see `metadata`).
pub const TOPICS_FILE: &str = "topics";
/// SCRAM credentials (see `security::store`).
pub const SECURITY_FILE: &str = "security.json";
/// The producer-id counter (see `controller::producer_ids`).
pub const PRODUCER_IDS_FILE: &str = "producer_ids";

/// Locked with `flock` for the broker's whole life, so a second broker on
/// the same directory is refused at once. The kernel drops the lock when
/// the process dies, however it dies.
pub const LOCK_FILE: &str = "lock";

/// Takes the data directory's lock, or says who holds it. The returned
/// file holds the lock until the process exits.
pub fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => format!(
                "data directory {} is in use by another running broker",
                data_dir.display()
            ),
            _ => format!("locking {}: {e}", path.display()),
        });
    }
    Ok(file)
}

/// The WAL directory of `shard`.
pub fn wal_dir(data_dir: &Path, shard: ShardId) -> PathBuf {
    data_dir.join(format!("shard-{shard}")).join("wal")
}

/// Whether `dir` looks like a data directory (rather than one WAL).
pub fn is_data_dir(dir: &Path) -> bool {
    dir.join(CLUSTER_FILE).exists()
}

/// Every shard's WAL directory under a data directory, in shard order.
pub fn wal_dirs(data_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data_dir)
        .map_err(|e| format!("reading {}: {e}", data_dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("wal"))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new
/// content, never a mix: temp file, fsync, rename, fsync the directory.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let fail = |what: &str, e: std::io::Error| format!("{what} {}: {e}", path.display());
    let mut f = std::fs::File::create(&tmp).map_err(|e| fail("creating", e))?;
    f.write_all(bytes).map_err(|e| fail("writing", e))?;
    f.sync_all().map_err(|e| fail("syncing", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| fail("renaming", e))?;
    // From here the new content is visible but may not survive a power
    // cut, and the caller may already act on it: memory and disk could
    // disagree after a failed directory sync, so the process stops and the
    // next start reads what the disk really kept.
    let dir = path.parent().unwrap_or(Path::new("."));
    let synced = std::fs::File::open(dir).and_then(|d| match crate::crash::dir_syncs_fail() {
        true => Err(std::io::Error::other("fail point: directory sync failed")),
        false => d.sync_all(),
    });
    if let Err(e) = synced {
        crate::crash::fatal(&fail("syncing the directory of", e));
    }
    Ok(())
}
