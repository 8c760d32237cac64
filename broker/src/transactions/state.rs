//! The transactions one shard coordinates, as plain state: per
//! transactional id its producer id and epoch, its state, the partitions
//! and groups in its open transaction, and its timeout (Kafka's
//! `TransactionMetadata`). Every change is one record in the shard's WAL
//! (frame type [`TXN_RECORD`]) stating the whole entry, as Kafka's
//! `__transaction_state` does; replay keeps the last one per id. No I/O:
//! `service.rs` writes the records and runs the protocol.
//!
//! Record layout (little-endian): format version (u8, 1), transactional
//! id (u16 length + UTF-8), producer id (i64), epoch (i16), timeout ms
//! (i32), state (u8), start time ms (i64), update time ms (i64),
//! partitions (u32 count; topic as u16 length + UTF-8, partition i32),
//! groups (u32 count; u16 length + UTF-8).

use std::collections::{BTreeSet, HashMap};

use sluice_wal_core::RecoveredFrame;

use crate::checkpoint::Reader;
use crate::frames::{FrameOwner, FrameType, LiveFrame};
use crate::metadata::Metadata;

/// The WAL frame type of transaction records.
pub const TXN_RECORD: FrameType = FrameType {
    id: 6,
    name: "transaction record",
};

const FORMAT_VERSION: u8 = 1;

/// A transaction's state, as Kafka names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// No transaction open.
    Empty,
    /// Partitions or groups were added; records may be written.
    Ongoing,
    /// Commit decided: markers are being written.
    PrepareCommit,
    /// Abort decided: markers are being written.
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction aborted.
    CompleteAbort,
}

impl TxnState {
    /// Kafka's name of the state (DescribeTransactions, ListTransactions).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    fn to_u8(self) -> u8 {
        self as u8
    }

    fn from_u8(v: u8) -> Result<TxnState, String> {
        Ok(match v {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            other => return Err(format!("unknown transaction state {other}")),
        })
    }

    /// Whether a decision is being carried out (markers being written).
    pub fn preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// The transactional id.
    pub id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its current epoch: older ones are fenced.
    pub epoch: i16,
    /// `transaction.timeout.ms` the producer asked for.
    pub timeout_ms: i32,
    /// Where its transaction is.
    pub state: TxnState,
    /// When the open transaction started (ms since the epoch; -1: none).
    pub started_ms: i64,
    /// When the state last changed.
    pub updated_ms: i64,
    /// Partitions in the open transaction (topic, partition).
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups whose offsets are in the open transaction.
    pub groups: BTreeSet<String>,
}

impl Txn {
    /// An entry with no transaction open, as InitProducerId leaves it.
    pub fn empty(id: &str, producer_id: i64, epoch: i16, timeout_ms: i32, now_ms: i64) -> Txn {
        Txn {
            id: id.to_string(),
            producer_id,
            epoch,
            timeout_ms,
            state: TxnState::Empty,
            started_ms: -1,
            updated_ms: now_ms,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
        }
    }

    /// The record stating this entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.id.len());
        out.push(FORMAT_VERSION);
        put_str(&mut out, &self.id);
        out.extend_from_slice(&self.producer_id.to_le_bytes());
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.timeout_ms.to_le_bytes());
        out.push(self.state.to_u8());
        out.extend_from_slice(&self.started_ms.to_le_bytes());
        out.extend_from_slice(&self.updated_ms.to_le_bytes());
        out.extend_from_slice(&(self.partitions.len() as u32).to_le_bytes());
        for (topic, partition) in &self.partitions {
            put_str(&mut out, topic);
            out.extend_from_slice(&partition.to_le_bytes());
        }
        out.extend_from_slice(&(self.groups.len() as u32).to_le_bytes());
        for g in &self.groups {
            put_str(&mut out, g);
        }
        out
    }

    /// Parses a record; the error says what is wrong with it.
    pub fn decode(payload: &[u8]) -> Result<Txn, String> {
        let mut r = Reader::new(payload);
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(format!("unknown transaction record version {version}"));
        }
        let id = get_str(&mut r)?;
        let producer_id = r.i64()?;
        let epoch = r.i16()?;
        let timeout_ms = r.i32()?;
        let state = TxnState::from_u8(r.u8()?)?;
        let started_ms = r.i64()?;
        let updated_ms = r.i64()?;
        let mut partitions = BTreeSet::new();
        for _ in 0..r.count(6)? {
            let topic = get_str(&mut r)?;
            partitions.insert((topic, r.i32()?));
        }
        let mut groups = BTreeSet::new();
        for _ in 0..r.count(2)? {
            groups.insert(get_str(&mut r)?);
        }
        if !r.is_empty() {
            return Err("bytes after a transaction record".into());
        }
        Ok(Txn {
            id,
            producer_id,
            epoch,
            timeout_ms,
            state,
            started_ms,
            updated_ms,
            partitions,
            groups,
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn get_str(r: &mut Reader<'_>) -> Result<String, String> {
    let len = r.u16()? as usize;
    String::from_utf8(r.bytes(len)?.to_vec()).map_err(|_| "string is not UTF-8".to_string())
}

/// The transactions one shard coordinates, with the WAL position of the
/// record that states each.
#[derive(Debug, Default)]
pub struct TxnCoordinator {
    /// Entries by transactional id, with their record's position.
    pub txns: HashMap<String, (Txn, u64)>,
    /// Records that did not parse in replay (logged, skipped).
    pub invalid: u64,
}

impl TxnCoordinator {
    /// An entry's new value was written at `position`.
    pub fn apply(&mut self, txn: Txn, position: u64) {
        self.txns.insert(txn.id.clone(), (txn, position));
    }

    /// The entry of `id`.
    pub fn get(&self, id: &str) -> Option<&Txn> {
        self.txns.get(id).map(|(t, _)| t)
    }

    fn replay_record(&mut self, position: u64, payload: &[u8]) {
        match Txn::decode(payload) {
            Ok(txn) => self.apply(txn, position),
            Err(e) => {
                self.invalid += 1;
                tracing::error!(
                    position,
                    error = e,
                    "transaction record does not parse; skipped"
                );
            }
        }
    }
}

impl FrameOwner for TxnCoordinator {
    fn frame_types(&self) -> &'static [FrameType] {
        &[TXN_RECORD]
    }

    fn replay(&mut self, frame: &RecoveredFrame<'_>, _metadata: &Metadata) {
        self.replay_record(frame.position, frame.payload);
    }

    fn lowest_needed_position(&self) -> Option<u64> {
        self.txns.values().map(|(_, at)| *at).min()
    }

    fn live_below(&self, position: u64) -> Vec<LiveFrame> {
        self.txns
            .values()
            .filter(|(_, at)| *at < position)
            .map(|(t, _)| LiveFrame {
                frame_type: TXN_RECORD.id,
                payload: t.encode(),
            })
            .collect()
    }

    fn relocated(&mut self, _frame_type: u8, payload: &[u8], position: u64) {
        let Ok(txn) = Txn::decode(payload) else {
            return;
        };
        if let Some((now, at)) = self.txns.get_mut(&txn.id) {
            if *now == txn {
                *at = (*at).max(position);
            }
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.txns.len() as u32).to_le_bytes());
        for (t, at) in self.txns.values() {
            let bytes = t.encode();
            out.extend_from_slice(&at.to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    fn restore(&mut self, snapshot: &[u8], _metadata: &Metadata) -> Result<(), String> {
        let mut r = Reader::new(snapshot);
        for _ in 0..r.count(12)? {
            let at = r.u64()?;
            let len = r.u32()? as usize;
            let txn = Txn::decode(r.bytes(len)?).map_err(|e| format!("transaction: {e}"))?;
            self.apply(txn, at);
        }
        if !r.is_empty() {
            return Err("bytes after the transactions' section".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(id: &str, epoch: i16, state: TxnState) -> Txn {
        Txn {
            id: id.into(),
            producer_id: 7,
            epoch,
            timeout_ms: 60_000,
            state,
            started_ms: 1,
            updated_ms: 2,
            partitions: [("t".to_string(), 0), ("u".to_string(), 3)].into(),
            groups: ["g".to_string()].into(),
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_an_error() {
        let t = txn("app-1", 3, TxnState::PrepareCommit);
        let bytes = t.encode();
        assert_eq!(Txn::decode(&bytes), Ok(t));
        for cut in 0..bytes.len() {
            assert!(Txn::decode(&bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert!(Txn::decode(&bad).is_err());
    }

    #[test]
    fn replay_keeps_the_last_record_and_restates_live_ones() {
        let mut c = TxnCoordinator::default();
        c.replay_record(100, &txn("a", 0, TxnState::Ongoing).encode());
        c.replay_record(200, &txn("a", 0, TxnState::PrepareCommit).encode());
        c.replay_record(300, &txn("b", 4, TxnState::Empty).encode());
        c.replay_record(400, b"junk");
        assert_eq!(c.invalid, 1);
        assert_eq!(c.get("a").unwrap().state, TxnState::PrepareCommit);
        assert_eq!(c.lowest_needed_position(), Some(200));
        assert!(c.live_below(200).is_empty());
        let live = c.live_below(250);
        assert_eq!(live.len(), 1);
        c.relocated(TXN_RECORD.id, &live[0].payload, 1000);
        assert_eq!(c.lowest_needed_position(), Some(300));

        let snapshot = c.snapshot();
        let mut back = TxnCoordinator::default();
        back.restore(&snapshot, &Metadata::default()).unwrap();
        assert_eq!(back.get("a"), c.get("a"));
        assert_eq!(back.get("b").unwrap().epoch, 4);
        assert!(TxnCoordinator::default()
            .restore(&snapshot[..snapshot.len() - 1], &Metadata::default())
            .is_err());
    }
}
