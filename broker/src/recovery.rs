//! Recovery of one shard: open its WAL and hand every frame to the owner of
//! its type — the log (record batches, log starts) and the group
//! coordinator (group records). A new WAL user is registered here.

use sluice_wal_core::{RecoveryMode, Wal, WalOptions};

use crate::config::ServeArgs;
use crate::frames::FrameOwners;
use crate::groups::Coordinator;
use crate::layout;
use crate::log::LogState;
use crate::metadata::Metadata;
use crate::shard_id::ShardId;

/// A shard's WAL, opened, and the state its frames rebuilt.
pub struct Recovered {
    /// The WAL, ready for appends.
    pub wal: Wal,
    /// Partitions and idempotent producers.
    pub log: LogState,
    /// Consumer groups and committed offsets.
    pub groups: Coordinator,
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

/// Opens shard `shard`'s WAL, replaying every frame into its owner.
pub async fn recover(
    shard: ShardId,
    args: &ServeArgs,
    metadata: &Metadata,
) -> Result<Recovered, String> {
    let wal_dir = layout::wal_dir(&args.data_dir, shard);
    let mut log = LogState::new(shard);
    let mut groups = Coordinator::default();
    let mut owners = FrameOwners::new();
    owners.register(&mut log)?;
    owners.register(&mut groups)?;
    let (wal, report) = Wal::open(&wal_dir, wal_options(args), |frame| {
        owners.replay(&frame, metadata)
    })
    .await
    .map_err(|e| format!("recovering {}: {e}", wal_dir.display()))?;
    let unknown = owners.unknown;
    drop(owners);
    log.skipped_invalid += unknown;
    tracing::info!(
        shard = shard.index(),
        frames = report.frames,
        bytes = report.bytes_scanned,
        segments = report.segments.len(),
        skipped_corrupt_bytes = report.skipped_bytes(),
        seconds = report.seconds,
        "WAL recovered"
    );
    log.finish_replay();
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
    Ok(Recovered { wal, log, groups })
}
