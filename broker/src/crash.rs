//! Crash-only: whatever leaves the broker unable to keep its promises ends
//! the whole process with a non-zero status and one clear log line.
//!
//! A panic on one shard would otherwise leave a half-alive broker: its
//! listener still accepting into a backlog nobody reads, every call to it
//! hanging, and SIGTERM reporting a clean stop. A poisoned WAL would answer
//! KAFKA_STORAGE_ERROR forever. Recovery is safe, so a supervisor's restart
//! is the repair; staying up is the failure to avoid.

use std::io::Write;

/// Exit status after a panic (Rust's own convention for a panicked main).
pub const PANIC_STATUS: i32 = 101;
/// Exit status after [`fatal`]: a condition the broker cannot serve through.
pub const FATAL_STATUS: i32 = 70;

/// Makes every panic, on any thread, end the process once it is reported.
/// glommio does not unwind a panicking task into anything that could
/// notice, so the process must not outlive the shard.
pub fn install_panic_hook() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            "a panic stops the broker (crash-only; recovery at the next start is safe)"
        );
        exit_now(PANIC_STATUS)
    }));
}

/// Ends the process at once with [`FATAL_STATUS`] after logging `why`.
/// For states memory can no longer be trusted in: a failed WAL write or
/// sync, a metadata file whose directory entry may not be durable.
pub fn fatal(why: &str) -> ! {
    tracing::error!(
        error = why,
        "stopping the broker (crash-only; recovery at the next start is safe)"
    );
    exit_now(FATAL_STATUS)
}

/// `_exit`: no destructors and no draining on other threads, which may be
/// the ones in a bad state. Everything acknowledged is already durable.
fn exit_now(status: i32) -> ! {
    let _ = std::io::stderr().flush();
    // SAFETY: _exit has no preconditions and never returns.
    unsafe { libc::_exit(status) }
}

/// A fault a test injects through the `SLUICE_FAIL_POINT` environment
/// variable, read once at start-up; these are how the black-box tests prove
/// the broker stops instead of staying half alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// `shard-panic:SHARD:MS`: a task on that shard panics MS ms after start.
    ShardPanic { shard: usize, after_ms: u64 },
    /// `wal-fail:SHARD:MS`: that shard's WAL fails MS ms after start, as it
    /// does when a write or fdatasync returns an error.
    WalFail { shard: usize, after_ms: u64 },
    /// `dir-sync-fail:SHARD:MS`: from MS ms after start, every directory
    /// sync after a metadata rename fails, as it does on a failing disk.
    DirSyncFail { shard: usize, after_ms: u64 },
    /// `recovery-delay:SHARD:MS`: that shard waits MS ms before it recovers
    /// (a long recovery, for `/ready`).
    RecoveryDelay { shard: usize, after_ms: u64 },
    /// `txn-decided-exit:SHARD:STAGE`: the process exits at once, as on
    /// `kill -9`, when that shard's transaction coordinator has made a
    /// commit or abort decision durable (stage 0) or has also written
    /// every marker of it (stage 1): the decision must be carried out
    /// after the restart.
    TxnDecidedExit { shard: usize, stage: u64 },
}

/// The shard and stage of the `txn-decided-exit` fail point, if set
/// (shard + 1, so 0 means unset).
static TXN_DECIDED_EXIT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Arms the `txn-decided-exit` fail point.
pub fn exit_when_txn_decided(shard: usize, stage: u64) {
    let armed = ((shard as u64 + 1) << 8) | (stage & 0xff);
    TXN_DECIDED_EXIT.store(armed, std::sync::atomic::Ordering::Relaxed);
}

/// A transaction coordinator on `shard` reached `stage` of carrying out
/// a decision: ends the process at once if the fail point says so.
pub fn txn_decided(shard: usize, stage: u64) {
    let armed = TXN_DECIDED_EXIT.load(std::sync::atomic::Ordering::Relaxed);
    if armed != 0 && armed == ((shard as u64 + 1) << 8) | stage {
        eprintln!("fail point: exiting after a transaction decision (stage {stage})");
        // No destructors, no flush: what is durable is what kill -9 leaves.
        unsafe { libc::_exit(137) };
    }
}

/// Set by the `dir-sync-fail` fail point.
static DIR_SYNC_FAILS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every later directory sync fail (the `dir-sync-fail` fail point).
pub fn fail_dir_syncs() {
    DIR_SYNC_FAILS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether a fail point makes directory syncs fail.
pub fn dir_syncs_fail() -> bool {
    DIR_SYNC_FAILS.load(std::sync::atomic::Ordering::Relaxed)
}

impl FailPoint {
    /// The fail point named in the environment, if any.
    pub fn from_env() -> Result<Option<FailPoint>, String> {
        match std::env::var("SLUICE_FAIL_POINT") {
            Ok(text) => FailPoint::parse(&text).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn parse(text: &str) -> Result<FailPoint, String> {
        let bad = || format!("SLUICE_FAIL_POINT: cannot read '{text}'");
        let mut fields = text.split(':');
        let (kind, shard, after_ms) = (fields.next(), fields.next(), fields.next());
        let shard = shard.and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let after_ms = after_ms.and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        match kind {
            Some("shard-panic") => Ok(FailPoint::ShardPanic { shard, after_ms }),
            Some("wal-fail") => Ok(FailPoint::WalFail { shard, after_ms }),
            Some("dir-sync-fail") => Ok(FailPoint::DirSyncFail { shard, after_ms }),
            Some("recovery-delay") => Ok(FailPoint::RecoveryDelay { shard, after_ms }),
            Some("txn-decided-exit") => Ok(FailPoint::TxnDecidedExit {
                shard,
                stage: after_ms,
            }),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_points_parse() {
        assert_eq!(
            FailPoint::parse("shard-panic:1:250"),
            Ok(FailPoint::ShardPanic {
                shard: 1,
                after_ms: 250
            })
        );
        assert_eq!(
            FailPoint::parse("wal-fail:0:0"),
            Ok(FailPoint::WalFail {
                shard: 0,
                after_ms: 0
            })
        );
        assert_eq!(
            FailPoint::parse("dir-sync-fail:0:5"),
            Ok(FailPoint::DirSyncFail {
                shard: 0,
                after_ms: 5
            })
        );
        assert_eq!(
            FailPoint::parse("recovery-delay:1:3000"),
            Ok(FailPoint::RecoveryDelay {
                shard: 1,
                after_ms: 3000
            })
        );
        assert_eq!(
            FailPoint::parse("txn-decided-exit:1:0"),
            Ok(FailPoint::TxnDecidedExit { shard: 1, stage: 0 })
        );
        assert!(FailPoint::parse("wal-fail:x:1").is_err());
        assert!(FailPoint::parse("sleep:0:1").is_err());
    }
}
