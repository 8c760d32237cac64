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

use sluice_wal_core::Durable;

use super::frame::{batch_frame_header, RELOCATED_BATCH};
use super::{batches_in, BatchEntry, Chunk, Log, PartitionKey};
use crate::error::BrokerError;
use crate::frames::FrameOwner;

/// On a full disk, what copying forward must leave of the segment being
/// written (for the frames of retention and DeleteRecords).
const FULL_DISK_MARGIN: u64 = 64 << 10;

/// Bytes copied before the index is pointed at them (and the copies'
/// memory freed).
const COPY_CHUNK_BYTES: usize = 16 << 20;

/// Chunk spans read at once while cleaning.
const CHUNK_READS_IN_FLIGHT: usize = 8;

/// Another user of the shard's WAL (the group coordinator), reached
/// through its shard-local cell.
pub trait WalUser {
    /// Its frame owner, borrowed for one synchronous step.
    fn frames(&self) -> RefMut<'_, dyn FrameOwner>;
}

/// A chunk's batches written again at the head, not yet durable.
struct CopiedChunk {
    key: PartitionKey,
    /// The chunk as it was when read.
    old: Chunk,
    /// Each batch at its new position, with the segment it is in.
    copies: Vec<(BatchEntry, u64)>,
    /// Resolves when the last copy (so every copy) is durable.
    durable: Durable,
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
    pub(super) fn frames(&self) -> RefMut<'_, dyn FrameOwner> {
        RefMut::map(self.state.borrow_mut(), |s| s as &mut dyn FrameOwner)
    }

    /// Bytes still live in the log: every batch served, with its frame.
    pub fn live_bytes(&self) -> u64 {
        let state = self.state.borrow();
        state
            .partitions
            .values()
            .map(|p| p.bytes + 64 * p.batches)
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
        let _exclusive = self.maintenance.acquire_permit(1).await;
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
        let chunks = self.state.borrow().chunks_below(position);
        if let Some(left) = self.wal.headroom() {
            let fresh: u64 = live.iter().map(|(_, f)| f.payload.len() as u64 + 64).sum();
            let batches: u64 = chunks
                .iter()
                .map(|(_, c)| u64::from(c.bytes) + 64 * u64::from(c.batches))
                .sum();
            if fresh + batches + FULL_DISK_MARGIN > left {
                return Ok(false);
            }
        }
        let mut fresh = Vec::new();
        for (owner, frame) in live {
            let appended = self.wal.submit(frame.frame_type, &[&frame.payload])?;
            fresh.push((
                owner,
                frame.frame_type,
                Bytes::from(frame.payload),
                appended,
            ));
        }
        self.repoint(others, fresh, done).await?;
        // Batches are immutable: each chunk's span is read (several at
        // once), its batches copied in one step (so they stay a run), and
        // the chunk replaced by its copies once they are durable.
        let mut copied: Vec<CopiedChunk> = Vec::new();
        let mut copied_bytes = 0;
        for window in chunks.chunks(CHUNK_READS_IN_FLIGHT) {
            let reads: Vec<_> = window
                .iter()
                .map(|(_, c)| {
                    let (wal, c) = (self.wal.clone(), *c);
                    glommio::spawn_local(async move { wal.read_span(c.position, c.end()).await })
                })
                .collect();
            for ((key, chunk), read) in window.iter().zip(reads) {
                let span = read.await?;
                let header = batch_frame_header(key);
                let mut copies = Vec::with_capacity(chunk.batches as usize);
                let mut last = None;
                // Batches the log start passed (or a deleted partition's) are
                // not copied.
                let log_start = self
                    .state
                    .borrow()
                    .partitions
                    .get(key)
                    .map_or(i64::MAX, |p| p.log_start);
                for (entry, batch) in batches_in(&span, key, chunk, log_start)? {
                    let appended = self.wal.submit(RELOCATED_BATCH.id, &[&header, &batch])?;
                    copied_bytes += batch.len();
                    done.frames_copied += 1;
                    done.bytes_copied += batch.len() as u64;
                    copies.push((
                        BatchEntry {
                            position: appended.position,
                            ..entry
                        },
                        appended.segment,
                    ));
                    last = Some(appended.durable);
                }
                if let Some(durable) = last {
                    copied.push(CopiedChunk {
                        key: *key,
                        old: *chunk,
                        copies,
                        durable,
                    });
                }
            }
            if copied_bytes >= COPY_CHUNK_BYTES {
                self.replace_chunks(std::mem::take(&mut copied)).await?;
                copied_bytes = 0;
            }
        }
        self.replace_chunks(copied).await?;
        Ok(true)
    }

    /// Waits until the copies are durable, then points the index at them.
    async fn replace_chunks(&self, copied: Vec<CopiedChunk>) -> Result<(), BrokerError> {
        for CopiedChunk {
            key,
            old,
            copies,
            durable,
        } in copied
        {
            durable.await?;
            if let Some(p) = self.state.borrow_mut().partitions.get_mut(&key) {
                p.replace_chunk(&old, &copies);
            }
        }
        Ok(())
    }

    /// Waits until the restated frames are durable, then repoints their
    /// owners.
    async fn repoint(
        &self,
        others: &[&dyn WalUser],
        fresh: Vec<(usize, u8, Bytes, sluice_wal_core::Appended)>,
        done: &mut Reclaimed,
    ) -> Result<(), BrokerError> {
        for (owner, frame_type, payload, appended) in fresh {
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
