//! Checkpoints: what replay of a shard's WAL up to a position rebuilds,
//! written now and then and at a clean stop, so that a restart replays
//! only the WAL after it.
//!
//! Each WAL owner writes its own section ([`FrameOwner::snapshot`]) and
//! reads it back ([`FrameOwner::restore`]) before the frames after the
//! position are replayed on top. A checkpoint holds the sparse index, not
//! the data: the batches stay in the WAL, so a checkpoint is small (about
//! 1 MiB per GB of log) and the segments it points into are kept by the
//! cleaner's usual rules.
//!
//! File `shard-N/checkpoints/<position, 20 digits>.ckpt`:
//!
//! ```text
//! magic "SLUICECP" (8) | version (u16) | shard (u32) | position (u64)
//! | sections (u32) | per section: owner (u8, its first frame type), length (u64), bytes
//! | crc32c of everything before it (u32)
//! ```
//!
//! All integers little-endian. It is written under a temporary name,
//! synced, renamed and the directory synced (a crash leaves the old one or
//! the new one), and only once the WAL is durable up to its position. The
//! two newest are kept: an invalid one (checksum, version, position beyond
//! the log, a segment it points to gone) is reported and the one before it,
//! or a full replay, used instead; never a loss.

use std::path::{Path, PathBuf};

use crate::frames::FrameOwner;
use crate::shard_id::ShardId;

const MAGIC: &[u8; 8] = b"SLUICECP";
const VERSION: u16 = 1;
const SUFFIX: &str = ".ckpt";
/// Checkpoints kept: the newest, and one to fall back to.
const KEPT: usize = 2;

/// The checkpoint directory of `shard`.
pub fn dir(data_dir: &Path, shard: ShardId) -> PathBuf {
    data_dir.join(format!("shard-{shard}")).join("checkpoints")
}

/// A checkpoint read back and checked.
#[derive(Debug)]
pub struct Checkpoint {
    /// Replay goes on from this WAL position.
    pub position: u64,
    /// Each owner's section, by owner id.
    pub sections: Vec<(u8, Vec<u8>)>,
}

impl Checkpoint {
    /// The section of the owner whose first frame type is `owner`.
    pub fn section(&self, owner: u8) -> Option<&[u8]> {
        self.sections
            .iter()
            .find(|(id, _)| *id == owner)
            .map(|(_, bytes)| &bytes[..])
    }
}

/// The id a section of `owner` is stored under.
pub fn owner_id(owner: &dyn FrameOwner) -> u8 {
    owner.frame_types().first().map_or(0, |t| t.id)
}

/// The checkpoint of `shard` at `position` holding each owner's snapshot.
pub fn encode(shard: ShardId, position: u64, owners: &[&dyn FrameOwner]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(shard.index() as u32).to_le_bytes());
    out.extend_from_slice(&position.to_le_bytes());
    out.extend_from_slice(&(owners.len() as u32).to_le_bytes());
    for owner in owners {
        let section = owner.snapshot();
        out.push(owner_id(*owner));
        out.extend_from_slice(&(section.len() as u64).to_le_bytes());
        out.extend_from_slice(&section);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Reads a checkpoint of `shard` back; `Err` says why it cannot be used.
pub fn decode(bytes: &[u8], shard: ShardId) -> Result<Checkpoint, String> {
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return Err("shorter than a checkpoint".into());
    };
    if crc32c::crc32c(body) != u32::from_le_bytes(*crc) {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader::new(body);
    if r.bytes(8)? != MAGIC {
        return Err("not a checkpoint (magic)".into());
    }
    let version = r.u16()?;
    if version != VERSION {
        return Err(format!("version {version}, this broker reads {VERSION}"));
    }
    let of = r.u32()?;
    if of as usize != shard.index() {
        return Err(format!("a checkpoint of shard {of}, not {shard}"));
    }
    let position = r.u64()?;
    let count = r.u32()?;
    let mut sections = Vec::new();
    for _ in 0..count {
        let owner = r.u8()?;
        let len = r.u64()?;
        let len = usize::try_from(len).map_err(|_| "section length".to_string())?;
        sections.push((owner, r.bytes(len)?.to_vec()));
    }
    if !r.is_empty() {
        return Err("bytes after the last section".into());
    }
    Ok(Checkpoint { position, sections })
}

/// The checkpoint files in `dir`, newest first, with their positions.
pub fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let position = name.to_str()?.strip_suffix(SUFFIX)?.parse().ok()?;
            Some((position, e.path()))
        })
        .collect();
    found.sort_by_key(|(position, _)| std::cmp::Reverse(*position));
    found
}

/// Reads and checks the checkpoint at `path`.
pub fn read(path: &Path, shard: ShardId) -> Result<Checkpoint, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading it: {e}"))?;
    let checkpoint = decode(&bytes, shard)?;
    let named: Option<u64> = path
        .file_name()
        .and_then(|n| n.to_str()?.strip_suffix(SUFFIX)?.parse().ok());
    if named != Some(checkpoint.position) {
        return Err(format!(
            "its name says another position than its content ({})",
            checkpoint.position
        ));
    }
    Ok(checkpoint)
}

/// Installs `bytes` as the checkpoint at `position` (blocking: call it on
/// a helper thread) and removes all but the newest [`KEPT`], and any
/// temporary file a crash left behind.
pub fn install(dir: &Path, position: u64, bytes: &[u8]) -> Result<(), String> {
    if !dir.is_dir() {
        sluice_wal_core::segment::create_dir_durably(dir)
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let path = dir.join(format!("{position:020}{SUFFIX}"));
    crate::layout::write_durably(&path, bytes)?;
    // Temporary files a crash left in the middle of an install.
    let stray = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tmp"));
    let old = list(dir).into_iter().skip(KEPT).map(|(_, p)| p);
    for old in stray.chain(old).collect::<Vec<_>>() {
        if let Err(e) = std::fs::remove_file(&old) {
            tracing::warn!(file = %old.display(), error = %e, "old checkpoint not removed");
        }
    }
    Ok(())
}

/// Little-endian reads of a checkpoint section; running out is an error.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err(format!(
                "truncated: {n} bytes wanted, {} left",
                self.bytes.len()
            ));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.bytes(N)?.try_into().expect("N bytes"))
    }

    /// A u8.
    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    /// A u16.
    pub fn u16(&mut self) -> Result<u16, String> {
        self.array().map(u16::from_le_bytes)
    }

    /// An i16.
    pub fn i16(&mut self) -> Result<i16, String> {
        self.array().map(i16::from_le_bytes)
    }

    /// A u32.
    pub fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    /// An i32.
    pub fn i32(&mut self) -> Result<i32, String> {
        self.array().map(i32::from_le_bytes)
    }

    /// A u64.
    pub fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    /// An i64.
    pub fn i64(&mut self) -> Result<i64, String> {
        self.array().map(i64::from_le_bytes)
    }

    /// A count of items each at least `min_len` bytes long, checked
    /// against what is left (a corrupt count must not allocate).
    pub fn count(&mut self, min_len: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_len.max(1)) > self.bytes.len() {
            return Err(format!("a count of {n} does not fit what is left"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_and_damage_is_refused() {
        let shard = ShardId::new(1);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&4096u64.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.push(7);
        bytes.extend_from_slice(&3u64.to_le_bytes());
        bytes.extend_from_slice(b"abc");
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let c = decode(&bytes, shard).unwrap();
        assert_eq!((c.position, c.section(7)), (4096, Some(&b"abc"[..])));
        assert!(decode(&bytes, ShardId::new(0))
            .unwrap_err()
            .contains("shard 1"));
        for at in [0, 9, 20, 30, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert!(decode(&bad, shard).is_err(), "flip at {at}");
        }
        assert!(decode(&bytes[..bytes.len() - 3], shard).is_err());
    }

    #[test]
    fn the_newest_two_are_kept_and_half_installed_ones_go() {
        let dir = std::env::temp_dir().join(format!("sluice-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for position in [10u64, 30, 20] {
            install(&dir, position, b"x").unwrap();
        }
        std::fs::write(dir.join("00000000000000000040.tmp"), b"half").unwrap();
        install(&dir, 35, b"x").unwrap();
        let kept: Vec<u64> = list(&dir).into_iter().map(|(p, _)| p).collect();
        assert_eq!(kept, [35, 30]);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            2,
            "the stray .tmp is gone"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
