//! Reclaiming space from a WAL that mixes partitions, as raft-engine's
//! purge and BookKeeper's entry-log compaction do. Every WAL user says the
//! lowest position it still needs and what is live below a position
//! ([`FrameOwner`]).
//!
//! - Segments wholly below the lowest needed position are deleted, oldest
//!   first (a prefix: recovery refuses a hole).
//! - When the WAL is still larger than 1.5 x its live bytes + 2 segments,
//!   the oldest segment is cleaned: its live frames are written again at
//!   the head (a batch as a relocated batch, a group's offsets or a log
//!   start stated afresh), the owners are told their new positions once
//!   the copies are durable, and the segment is deleted. A pass copies a
//!   bounded number of bytes, so the cleaner's I/O stays a share of the
//!   shard's.
//!
//! A crash at any moment loses nothing and duplicates nothing: the old
//! segment goes only after its copies are durable, and replay keeps one
//! of a batch and its copy (the later), while restated values equal the
//! ones they restate.

use std::cell::RefMut;

use bytes::Bytes;

use super::{Log, READS_IN_FLIGHT};
use crate::error::BrokerError;
use crate::frames::{FrameOwner, LiveFrame};

/// On a full disk, what copying forward must leave of the segment being
/// written (for the frames of retention and DeleteRecords).
const FULL_DISK_MARGIN: u64 = 64 << 10;

/// Copies of stored frames held in memory at once while cleaning.
const COPY_CHUNK_BYTES: usize = 16 << 20;

/// Another user of the shard's WAL (the group coordinator), reached
/// through its shard-local cell.
pub trait WalUser {
    /// Its frame owner, borrowed for one synchronous step.
    fn frames(&self) -> RefMut<'_, dyn FrameOwner>;
}

/// What one pass of the cleaner did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reclaimed {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Segments cleaned (live frames copied forward) before deletion.
    pub segments_cleaned: usize,
    /// Frames copied forward.
    pub frames_copied: usize,
    /// Bytes copied forward.
    pub bytes_copied: u64,
}

impl Log {
    /// Its own frames (partitions and log starts) as a frame owner.
    fn frames(&self) -> RefMut<'_, dyn FrameOwner> {
        RefMut::map(self.state.borrow_mut(), |s| s as &mut dyn FrameOwner)
    }

    /// Bytes still live in the log: every batch served, with its frame.
    pub fn live_bytes(&self) -> u64 {
        let state = self.state.borrow();
        state
            .partitions
            .values()
            .map(|p| p.bytes + 64 * p.index.len() as u64)
            .sum()
    }

    /// One pass: deletes what nothing needs, then cleans the oldest
    /// segments while the WAL is over its bound, until `max_copied` bytes
    /// were copied (a mostly dead segment costs little to clean; a live
    /// one costs its size).
    pub async fn reclaim(
        &self,
        others: &[&dyn WalUser],
        max_copied: u64,
    ) -> Result<Reclaimed, BrokerError> {
        let mut done = Reclaimed {
            segments_deleted: self.delete_unneeded(others).await?,
            ..Reclaimed::default()
        };
        // With the disk full, copying is allowed only into what is left of the
        // segment being written (see `copy_forward`).
        while done.bytes_copied < max_copied && self.over_bound() {
            let segments = self.wal.segments();
            // The oldest segment, never the one being written (nor, while
            // a roll is pending, the one before it).
            let [oldest, next, _, ..] = segments[..] else {
                break;
            };
            if self.cleaner_stuck_at.get() == Some(oldest) {
                break;
            }
            if !self.copy_forward(others, next, &mut done).await? {
                break;
            }
            done.segments_cleaned += 1;
            done.segments_deleted += self.delete_unneeded(others).await?;
            if self.wal.segments().first() == Some(&oldest) {
                // An owner still needs the segment after saying what was
                // live in it: copying it again would only pile up copies.
                tracing::error!(
                    shard = self.shard.index(),
                    segment = oldest,
                    "a cleaned segment is still needed; the cleaner leaves it"
                );
                self.cleaner_stuck_at.set(Some(oldest));
                break;
            }
            glommio::yield_if_needed().await;
        }
        if done != Reclaimed::default() {
            tracing::info!(
                shard = self.shard.index(),
                segments_deleted = done.segments_deleted,
                segments_cleaned = done.segments_cleaned,
                frames_copied = done.frames_copied,
                bytes_copied = done.bytes_copied,
                wal_bytes = self.wal.disk_bytes(),
                live_bytes = self.live_bytes(),
                "WAL space reclaimed"
            );
        }
        Ok(done)
    }

    /// Whether the WAL is larger than 1.5 x live + 2 segments.
    fn over_bound(&self) -> bool {
        let live = self.live_bytes();
        let bound = live + live / 2 + 2 * self.wal.segment_size();
        self.wal.disk_bytes() > bound
    }

    /// Deletes the segments below the lowest position anyone needs.
    async fn delete_unneeded(&self, others: &[&dyn WalUser]) -> Result<usize, BrokerError> {
        let lowest = others
            .iter()
            .filter_map(|o| o.frames().lowest_needed_position())
            .chain(self.frames().lowest_needed_position())
            .min();
        // Nothing needed: everything written so far may go (the segment
        // being written always stays).
        let below = lowest.unwrap_or(self.wal.stats().durable_position);
        Ok(self.wal.delete_segments_below(below).await?)
    }

    /// Writes every frame live below `position` again at the head and,
    /// once durable, tells its owner where it is now. On a full disk, only
    /// if the copies fit in what is left of the segment being written
    /// (they free a whole segment); returns whether it copied.
    async fn copy_forward(
        &self,
        others: &[&dyn WalUser],
        position: u64,
        done: &mut Reclaimed,
    ) -> Result<bool, BrokerError> {
        // Restated values are computed and handed to the WAL in one
        // synchronous step, so nothing newer can come between.
        let mut live = Vec::new();
        let owners = std::iter::once(self.frames()).chain(others.iter().map(|o| o.frames()));
        for (owner, frames) in owners.enumerate() {
            live.extend(frames.live_below(position).into_iter().map(|f| (owner, f)));
        }
        if let Some(left) = self.wal.headroom() {
            let needed: u64 = live
                .iter()
                .map(|(_, f)| match f {
                    LiveFrame::Stored { bytes, .. } => bytes + 64,
                    LiveFrame::Fresh { payload, .. } => payload.len() as u64 + 64,
                })
                .sum();
            if needed + FULL_DISK_MARGIN > left {
                return Ok(false);
            }
        }
        let mut stored: Vec<(usize, u64, u8)> = Vec::new();
        let mut fresh = Vec::new();
        for (owner, frame) in live {
            match frame {
                LiveFrame::Stored {
                    position, copy_as, ..
                } => stored.push((owner, position, copy_as)),
                LiveFrame::Fresh {
                    frame_type,
                    payload,
                } => {
                    let appended = self.wal.submit(frame_type, &[&payload])?;
                    fresh.push((owner, frame_type, Bytes::from(payload), appended));
                }
            }
        }
        self.repoint(others, fresh, done).await?;
        // Stored frames are immutable: read (several at once), copy,
        // repoint, a chunk at a time.
        stored.sort_by_key(|s| s.1);
        let mut chunk: Vec<(usize, u8, Bytes, sluice_wal_core::Appended)> = Vec::new();
        let mut chunk_bytes = 0;
        for window in stored.chunks(READS_IN_FLIGHT) {
            let reads: Vec<_> = window
                .iter()
                .map(|&(_, at, _)| {
                    let wal = self.wal.clone();
                    glommio::spawn_local(async move {
                        wal.read(at)
                            .await
                            .map(|frame| Bytes::copy_from_slice(frame.payload()))
                    })
                })
                .collect();
            for (&(owner, _, copy_as), read) in window.iter().zip(reads) {
                let payload = read.await?;
                chunk_bytes += payload.len();
                let appended = self.wal.submit(copy_as, &[&payload])?;
                chunk.push((owner, copy_as, payload, appended));
            }
            if chunk_bytes >= COPY_CHUNK_BYTES {
                self.repoint(others, std::mem::take(&mut chunk), done)
                    .await?;
                chunk_bytes = 0;
            }
        }
        self.repoint(others, chunk, done).await?;
        Ok(true)
    }

    /// Waits until the copies are durable, then repoints their owners.
    async fn repoint(
        &self,
        others: &[&dyn WalUser],
        chunk: Vec<(usize, u8, Bytes, sluice_wal_core::Appended)>,
        done: &mut Reclaimed,
    ) -> Result<(), BrokerError> {
        for (owner, frame_type, payload, appended) in chunk {
            appended.durable.await?;
            self.relocated(others, owner, frame_type, &payload, appended.position);
            done.frames_copied += 1;
            done.bytes_copied += payload.len() as u64;
        }
        Ok(())
    }

    fn relocated(
        &self,
        others: &[&dyn WalUser],
        owner: usize,
        frame_type: u8,
        payload: &[u8],
        position: u64,
    ) {
        match owner {
            0 => self.frames().relocated(frame_type, payload, position),
            n => others[n - 1]
                .frames()
                .relocated(frame_type, payload, position),
        }
    }
}
