//! Recovery of one shard: load its newest checkpoint, open its WAL and
//! hand every frame after the checkpoint to the owner of its type — the
//! log (record batches, log starts), the group coordinator (group
//! records) and the transaction coordinator (transaction records). A new
//! WAL user is registered here.

use std::path::{Path, PathBuf};

use sluice_wal_core::{scan_from, RecoveredFrame, RecoveryMode, Wal, WalOptions};

use crate::checkpoint;
use crate::config::ServeArgs;
use crate::frames::{FrameOwner, FrameOwners};
use crate::groups::Coordinator;
use crate::layout;
use crate::log::LogState;
use crate::metadata::Metadata;
use crate::shard_id::ShardId;
use crate::transactions::TxnCoordinator;

/// A shard's WAL, opened, and the state its frames rebuilt.
pub struct Recovered {
    /// The WAL, ready for appends.
    pub wal: Wal,
    /// Partitions and idempotent producers.
    pub log: LogState,
    /// Consumer groups and committed offsets.
    pub groups: Coordinator,
    /// Transactions.
    pub txns: TxnCoordinator,
    /// WAL position of the checkpoint recovery started from (0: none).
    pub checkpoint: u64,
    /// What the WAL scan did.
    pub stats: crate::metrics::RecoveryStats,
}

/// The WAL options `sluice serve` runs with.
pub fn wal_options(args: &ServeArgs) -> WalOptions {
    WalOptions {
        segment_size: args.wal_segment_mib.max(1) << 20,
        max_flushes_in_flight: args.wal_flushes_in_flight.max(1),
        max_frame_len: args.max_request_bytes + 64,
        recovery_mode: if args.skip_corruption {
            RecoveryMode::SkipCorruption
        } else {
            RecoveryMode::Strict
        },
        ..WalOptions::default()
    }
}

/// Opens shard `shard`'s WAL: loads the newest valid checkpoint and
/// replays the frames after it into their owners. A checkpoint that cannot
/// be used (damaged, beyond the log, pointing at a segment that is gone)
/// is reported and the one before it, or a full replay, used instead.
pub async fn recover(
    shard: ShardId,
    args: &ServeArgs,
    metadata: &Metadata,
) -> Result<Recovered, String> {
    let wal_dir = layout::wal_dir(&args.data_dir, shard);
    let mut checkpoints = checkpoint::list(&checkpoint::dir(&args.data_dir, shard)).into_iter();
    let mut wal: Option<Wal> = None;
    loop {
        let (from, mut log, mut groups, mut txns) =
            next_checkpoint(&mut checkpoints, shard, metadata);
        let mut owners = FrameOwners::new();
        owners.register(&mut log)?;
        owners.register(&mut groups)?;
        owners.register(&mut txns)?;
        let mut progress = Progress::new(shard, &wal_dir, from);
        let visit = |frame: RecoveredFrame<'_>| {
            progress.at(frame.position);
            owners.replay(&frame, metadata)
        };
        let replayed = if wal.is_some() {
            // Opened (its tail repaired) by a try with a checkpoint that
            // then proved unusable: read again, from further back.
            scan_from(&wal_dir, wal_options(args).recovery_mode, from, visit).await
        } else {
            Wal::open_from(&wal_dir, wal_options(args), from, visit)
                .await
                .map(|(opened, report)| {
                    wal = Some(opened);
                    report
                })
        };
        let report = match replayed {
            Ok(report) => report,
            Err(e) if from > 0 => {
                tracing::error!(shard = shard.index(), from, error = %e, "checkpoint not used");
                continue;
            }
            Err(e) => return Err(format!("recovering {}: {e}", wal_dir.display())),
        };
        let unknown = owners.unknown;
        drop(owners);
        log.skipped_invalid += unknown;
        tracing::info!(
            shard = shard.index(),
            checkpoint = from,
            frames = report.frames,
            bytes = report.bytes_scanned,
            segments = report.segments.len(),
            skipped_corrupt_bytes = report.skipped_bytes(),
            seconds = report.seconds,
            "WAL recovered"
        );
        log.finish_replay();
        let opened = wal.as_ref().expect("the WAL was opened");
        if from > 0 {
            // A checkpoint and the WAL after it that do not fit together
            // (a chunk in a segment that is gone, offsets missing) are not
            // trusted: a full replay judges the WAL alone.
            let fits =
                points_into(&log, &opened.segments()).and_then(|()| match log.gaps.first() {
                    Some(gap) => Err(gap.clone()),
                    None => Ok(()),
                });
            if let Err(why) = fits {
                tracing::error!(shard = shard.index(), from, why, "checkpoint not used");
                continue;
            }
        }
        log.log_replay(metadata);
        if !log.gaps.is_empty() {
            if !args.skip_corruption {
                return Err(format!(
                    "offsets are missing in {}: {}. Nothing was served; `sluice wal inspect` shows \
                     the log, and --skip-corruption starts with what is there",
                    wal_dir.display(),
                    log.gaps.join("; ")
                ));
            }
            tracing::error!(
                shard = shard.index(),
                gaps = log.gaps.len(),
                "serving partitions with offset gaps (--skip-corruption)"
            );
        }
        return Ok(Recovered {
            wal: wal.take().expect("the WAL was opened"),
            log,
            groups,
            txns,
            checkpoint: from,
            stats: crate::metrics::RecoveryStats {
                seconds: report.seconds,
                bytes: report.bytes_scanned,
                frames: report.frames,
                checkpoint: from,
            },
        });
    }
}

/// Logs a long replay's progress every [`PROGRESS_EVERY`]: bytes replayed
/// of those to replay, the rate, and the time left at that rate.
struct Progress {
    shard: ShardId,
    from: u64,
    total: u64,
    started: std::time::Instant,
    next: std::time::Instant,
    frames: u64,
    check_at: u64,
}

/// How often a replay says how far it is.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Progress {
    fn new(shard: ShardId, wal_dir: &Path, from: u64) -> Progress {
        let end = sluice_wal_core::segment::list_segments(wal_dir)
            .ok()
            .and_then(|s| s.last().map(|l| l.base + l.len))
            .unwrap_or(0);
        let now = std::time::Instant::now();
        Progress {
            shard,
            from,
            total: end.saturating_sub(from),
            started: now,
            next: now + PROGRESS_EVERY,
            frames: 0,
            check_at: from,
        }
    }

    /// A frame at `position` was replayed.
    fn at(&mut self, position: u64) {
        // The clock is read every 1,024 frames or 64 MiB, whichever
        // comes first.
        self.frames += 1;
        if !self.frames.is_multiple_of(1024) && position < self.check_at {
            return;
        }
        self.check_at = position + (64 << 20);
        let now = std::time::Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + PROGRESS_EVERY;
        let done = position.saturating_sub(self.from);
        let seconds = now.duration_since(self.started).as_secs_f64();
        let rate = done as f64 / seconds.max(1e-9);
        tracing::info!(
            shard = self.shard.index(),
            replayed_bytes = done,
            of_bytes = self.total,
            mb_per_s = (rate / 1e6).round(),
            seconds_left = (self.total.saturating_sub(done) as f64 / rate.max(1.0)).round(),
            "recovering"
        );
    }
}

/// The next checkpoint of `checkpoints` (newest first) that reads back
/// and restores, with the state it holds; else a full replay's start.
fn next_checkpoint(
    checkpoints: &mut impl Iterator<Item = (u64, PathBuf)>,
    shard: ShardId,
    metadata: &Metadata,
) -> Owners {
    for (_, path) in checkpoints.by_ref() {
        match load(&path, shard, metadata) {
            Ok(loaded) => {
                tracing::info!(shard = shard.index(), checkpoint = %path.display(), "checkpoint loaded");
                return loaded;
            }
            Err(why) => {
                tracing::error!(shard = shard.index(), checkpoint = %path.display(), why, "checkpoint not used")
            }
        }
    }
    (
        0,
        LogState::new(shard),
        Coordinator::default(),
        TxnCoordinator::default(),
    )
}

/// A checkpoint's position and the owners' state it holds.
pub type Owners = (u64, LogState, Coordinator, TxnCoordinator);

/// Reads the checkpoint at `path` into fresh owners.
pub fn load(path: &Path, shard: ShardId, metadata: &Metadata) -> Result<Owners, String> {
    restore(&checkpoint::read(path, shard)?, shard, metadata)
}

/// The owners' state a checkpoint read back holds, with its position.
pub fn restore(
    c: &checkpoint::Checkpoint,
    shard: ShardId,
    metadata: &Metadata,
) -> Result<Owners, String> {
    let mut log = LogState::new(shard);
    let mut groups = Coordinator::default();
    let mut txns = TxnCoordinator::default();
    for owner in [&mut log as &mut dyn FrameOwner, &mut groups, &mut txns] {
        let id = checkpoint::owner_id(owner);
        let section = c
            .section(id)
            .ok_or_else(|| format!("no section of the owner of frame type {id}"))?;
        owner
            .restore(section, metadata)
            .map_err(|e| format!("section of the owner of frame type {id}: {e}"))?;
    }
    Ok((c.position, log, groups, txns))
}

/// Whether every chunk of the index lies in a segment that is there.
pub fn points_into(log: &LogState, segments: &[u64]) -> Result<(), String> {
    for (key, p) in &log.partitions {
        if let Some(c) = p
            .chunks
            .iter()
            .find(|c| segments.binary_search(&c.segment).is_err())
        {
            return Err(format!(
                "offsets {}..{} of partition {} are in the segment at {}, which is gone",
                c.base_offset, c.last_offset, key.partition, c.segment
            ));
        }
    }
    Ok(())
}
