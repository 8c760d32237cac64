//! The WAL's users. A shard's WAL holds frames of several owners (the
//! log's record batches, the group coordinator's records, anything later);
//! wal-core knows only a type byte. Each owner declares its frame types
//! ([`FrameOwner::frame_types`]) and recovery hands every frame to the
//! owner registered for its type ([`FrameOwners`]).
//!
//! The same trait is the seam for reclaiming space (retention over a WAL
//! that mixes partitions, as raft-engine's purge does): each owner says the
//! lowest WAL position it still needs, and what is still live below a
//! position, so that those frames can be written again at the head and the
//! old segments deleted.
//!
//! A new frame type: pick a free id (wal-core reserves 0 and 1; see
//! [`FrameOwners::register`] for what is taken), declare it next to its
//! owner as a [`FrameType`], return it from the owner's `frame_types`, and
//! register the owner in `recovery.rs`.

use sluice_wal_core::RecoveredFrame;

use crate::metadata::Metadata;

/// A frame type of the WAL and the name recovery logs for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameType {
    /// The type byte wal-core stores.
    pub id: u8,
    /// What the frames are, for logs and `sluice wal inspect`.
    pub name: &'static str,
}

/// A fresh frame stating the current value of what older frames below a
/// WAL position held (a group's offsets: copying an old commit frame would
/// bring back values that later frames replaced), to be appended at the
/// head before that part of the WAL is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFrame {
    /// Its frame type.
    pub frame_type: u8,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// A user of the shard's WAL.
pub trait FrameOwner {
    /// The frame types it writes and replays.
    fn frame_types(&self) -> &'static [FrameType];

    /// Applies one recovered frame of one of its types, in WAL order.
    fn replay(&mut self, frame: &RecoveredFrame<'_>, metadata: &Metadata);

    /// The lowest WAL position of a frame it still needs; `None` when it
    /// needs none.
    fn lowest_needed_position(&self) -> Option<u64>;

    /// What it still needs below `position`: once these are appended at the
    /// head (and [`FrameOwner::relocated`] told), it needs nothing below.
    fn live_below(&self, position: u64) -> Vec<LiveFrame>;

    /// A frame from [`FrameOwner::live_below`] now lives at `position`
    /// (its type and payload as appended there).
    fn relocated(&mut self, frame_type: u8, payload: &[u8], position: u64);

    /// Its state as replaying every frame handed to the WAL so far would
    /// rebuild it, for a checkpoint (`checkpoint.rs`); taken in one
    /// synchronous step with the WAL's end position.
    fn snapshot(&self) -> Vec<u8>;

    /// Loads a [`FrameOwner::snapshot`] before the frames after it are
    /// replayed; what `metadata` no longer has is left out, as replay
    /// would. `Err` says why the snapshot cannot be used.
    fn restore(&mut self, snapshot: &[u8], metadata: &Metadata) -> Result<(), String>;
}

/// The owners of one shard's frames during recovery, by frame type.
pub struct FrameOwners<'a> {
    owners: Vec<&'a mut dyn FrameOwner>,
    /// Frames whose type no owner registered (logged, skipped).
    pub unknown: u64,
}

impl<'a> FrameOwners<'a> {
    /// Ids wal-core keeps for itself (invalid, padding).
    const RESERVED: [u8; 2] = [
        sluice_wal_core::format::FRAME_TYPE_INVALID,
        sluice_wal_core::format::FRAME_TYPE_PADDING,
    ];

    /// No owners yet.
    pub fn new() -> FrameOwners<'a> {
        FrameOwners {
            owners: Vec::new(),
            unknown: 0,
        }
    }

    /// Adds an owner; refuses a frame type that is reserved or taken.
    pub fn register(&mut self, owner: &'a mut dyn FrameOwner) -> Result<(), String> {
        for t in owner.frame_types() {
            if Self::RESERVED.contains(&t.id) {
                return Err(format!(
                    "frame type {} ({}) is reserved by the WAL",
                    t.id, t.name
                ));
            }
            if let Some(taken) = self.frame_type(t.id) {
                return Err(format!(
                    "frame type {} ({}) is already registered for {}",
                    t.id, t.name, taken.name
                ));
            }
        }
        self.owners.push(owner);
        Ok(())
    }

    /// The registered frame type with this id.
    pub fn frame_type(&self, id: u8) -> Option<FrameType> {
        self.owners
            .iter()
            .flat_map(|o| o.frame_types())
            .find(|t| t.id == id)
            .copied()
    }

    /// Hands a recovered frame to its owner.
    pub fn replay(&mut self, frame: &RecoveredFrame<'_>, metadata: &Metadata) {
        let owner = self
            .owners
            .iter_mut()
            .find(|o| o.frame_types().iter().any(|t| t.id == frame.frame_type));
        match owner {
            Some(owner) => owner.replay(frame, metadata),
            None => {
                self.unknown += 1;
                tracing::warn!(
                    position = frame.position,
                    frame_type = frame.frame_type,
                    "unknown WAL frame type skipped"
                );
            }
        }
    }

    /// The lowest position any owner still needs.
    pub fn lowest_needed_position(&self) -> Option<u64> {
        self.owners
            .iter()
            .filter_map(|o| o.lowest_needed_position())
            .min()
    }
}

impl Default for FrameOwners<'_> {
    fn default() -> Self {
        FrameOwners::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps the position of every frame it replays as live.
    struct Keeper(&'static [FrameType], Vec<u64>);

    impl FrameOwner for Keeper {
        fn frame_types(&self) -> &'static [FrameType] {
            self.0
        }
        fn replay(&mut self, frame: &RecoveredFrame<'_>, _: &Metadata) {
            self.1.push(frame.position);
        }
        fn lowest_needed_position(&self) -> Option<u64> {
            self.1.iter().min().copied()
        }
        fn live_below(&self, position: u64) -> Vec<LiveFrame> {
            self.1
                .iter()
                .filter(|p| **p < position)
                .map(|&position| LiveFrame {
                    frame_type: 2,
                    payload: position.to_le_bytes().to_vec(),
                })
                .collect()
        }
        fn relocated(&mut self, _: u8, _: &[u8], _: u64) {}
        fn snapshot(&self) -> Vec<u8> {
            Vec::new()
        }
        fn restore(&mut self, _: &[u8], _: &Metadata) -> Result<(), String> {
            Ok(())
        }
    }

    const A: &[FrameType] = &[FrameType { id: 2, name: "a" }];
    const B: &[FrameType] = &[FrameType { id: 3, name: "b" }];
    const A_AGAIN: &[FrameType] = &[FrameType {
        id: 2,
        name: "a again",
    }];
    const PADDING: &[FrameType] = &[FrameType {
        id: 1,
        name: "padding",
    }];

    fn frame(position: u64, frame_type: u8) -> RecoveredFrame<'static> {
        RecoveredFrame {
            position,
            segment: 0,
            frame_type,
            payload: b"",
        }
    }

    #[test]
    fn frames_go_to_their_owner_and_unknown_types_are_counted() {
        let (mut a, mut b) = (Keeper(A, vec![]), Keeper(B, vec![]));
        let mut owners = FrameOwners::new();
        owners.register(&mut a).unwrap();
        owners.register(&mut b).unwrap();
        let metadata = Metadata::default();
        for (position, t) in [(4096, 2), (4112, 3), (4128, 9), (4144, 2)] {
            owners.replay(&frame(position, t), &metadata);
        }
        assert_eq!(owners.unknown, 1);
        assert_eq!(owners.lowest_needed_position(), Some(4096));
        drop(owners);
        assert_eq!(a.1, [4096, 4144]);
        assert_eq!(b.1, [4112]);
    }

    #[test]
    fn taken_and_reserved_types_are_refused() {
        let (mut a, mut again, mut pad) = (
            Keeper(A, vec![]),
            Keeper(A_AGAIN, vec![]),
            Keeper(PADDING, vec![]),
        );
        let mut owners = FrameOwners::new();
        owners.register(&mut a).unwrap();
        assert!(owners.register(&mut again).unwrap_err().contains("already"));
        assert!(owners.register(&mut pad).unwrap_err().contains("reserved"));
    }
}
