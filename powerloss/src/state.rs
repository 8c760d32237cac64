//! The file system's state, kept twice: as the running program sees it
//! (`live`) and as a power cut would leave it (`durable`).
//!
//! The rules are the strict reading of POSIX that a careful storage engine
//! must assume, not what one kernel file system happens to do:
//! - a file's content and size become durable only when an fsync or
//!   fdatasync of that file completes (both are treated alike: fdatasync
//!   must persist the size whenever the data needs it, and a WAL cares for
//!   nothing else); preallocation (fallocate) is size like any other;
//! - a directory entry (created, removed, renamed) becomes durable only
//!   when an fsync of that directory completes, each directory on its own:
//!   a rename between two directories needs both synced;
//! - a write that returned but was not synced is simply forgotten: no
//!   partial survival, which is the harshest choice for the acknowledged
//!   data and the easiest to reason about.
//!
//! [`State::cut`] is the power cut: it rewinds everything to the durable
//! state at once and freezes the file system, so no request that arrives
//! afterwards (a write, a sync, even a read) can change or observe it; the
//! process using it is killed meanwhile, and [`State::thaw`] is the reboot.
//! Nothing here touches FUSE, so the rules are unit-tested directly.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::sync::Arc;

/// Contents are stored in chunks shared between the live and the durable
/// copy (copy-on-write), so a sync costs a map clone, not a data copy.
const CHUNK: u64 = 32 * 1024;

/// The inode number FUSE gives the root directory.
pub const ROOT: u64 = 1;

/// An error answered to the kernel (a positive errno).
pub type Errno = i32;

/// A file's bytes: its size and the chunks written so far (a missing chunk
/// reads as zeros, like a hole or a preallocated extent).
#[derive(Clone, Default, Debug)]
struct Content {
    size: u64,
    chunks: BTreeMap<u64, Arc<Vec<u8>>>,
}

impl Content {
    fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        let end = self.size.min(offset.saturating_add(len as u64));
        if offset >= end {
            return Vec::new();
        }
        let mut out = vec![0u8; (end - offset) as usize];
        let mut pos = offset;
        while pos < end {
            let index = pos / CHUNK;
            let within = (pos % CHUNK) as usize;
            let n = ((CHUNK - pos % CHUNK).min(end - pos)) as usize;
            if let Some(chunk) = self.chunks.get(&index) {
                let at = (pos - offset) as usize;
                out[at..at + n].copy_from_slice(&chunk[within..within + n]);
            }
            pos += n as u64;
        }
        out
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let mut pos = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let index = pos / CHUNK;
            let within = (pos % CHUNK) as usize;
            let n = (CHUNK as usize - within).min(rest.len());
            let chunk = self
                .chunks
                .entry(index)
                .or_insert_with(|| Arc::new(vec![0u8; CHUNK as usize]));
            // Copies the chunk only if the durable copy still shares it.
            Arc::make_mut(chunk)[within..within + n].copy_from_slice(&rest[..n]);
            pos += n as u64;
            rest = &rest[n..];
        }
        self.size = self.size.max(offset + data.len() as u64);
    }

    /// Zeros `offset..offset + len` without changing the size.
    fn zero(&mut self, offset: u64, len: u64) {
        let end = offset.saturating_add(len);
        let mut pos = offset;
        while pos < end {
            let index = pos / CHUNK;
            let within = (pos % CHUNK) as usize;
            let n = (CHUNK - pos % CHUNK).min(end - pos) as usize;
            if let Some(chunk) = self.chunks.get_mut(&index) {
                if within == 0 && n == CHUNK as usize {
                    self.chunks.remove(&index);
                } else {
                    Arc::make_mut(chunk)[within..within + n].fill(0);
                }
            }
            pos += n as u64;
        }
    }

    fn set_size(&mut self, size: u64) {
        if size < self.size {
            // Bytes past the new end must read as zeros if the file grows
            // again, as on a real file system.
            self.zero(size, self.size - size);
            let first_unused = size.div_ceil(CHUNK);
            self.chunks.split_off(&first_unused);
        }
        self.size = size;
    }

    /// Chunks whose live and durable versions differ.
    fn chunks_differing(&self, durable: &Content) -> usize {
        let mut n = 0;
        for (index, chunk) in &self.chunks {
            match durable.chunks.get(index) {
                Some(d) if Arc::ptr_eq(d, chunk) => {}
                _ => n += 1,
            }
        }
        n + durable
            .chunks
            .keys()
            .filter(|k| !self.chunks.contains_key(k))
            .count()
    }
}

/// A directory's entries: name → inode.
type Entries = BTreeMap<OsString, u64>;

/// What an inode is, with its live and durable versions.
#[derive(Debug)]
enum Body {
    File { live: Content, durable: Content },
    Dir { live: Entries, durable: Entries },
}

#[derive(Debug)]
struct Node {
    body: Body,
    perm: u16,
}

/// Whether an inode is a file or a directory (all this file system has).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// What `stat` needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
}

/// What a power cut threw away: the evidence that a test cut while there
/// was something to lose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Files whose content or size went back to their last sync.
    pub files_rewound: usize,
    /// Chunks (32 KiB) of those files whose unsynced bytes were dropped.
    pub chunks_dropped: usize,
    /// Directories whose entries went back to their last sync.
    pub dirs_rewound: usize,
    /// Inodes no durable entry reaches any more: created but never made
    /// durable in their directory, or replaced (rename over) or removed
    /// before the cut.
    pub inodes_forgotten: usize,
}

/// Counts of the requests that decide durability, for the test's output.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub writes: u64,
    pub bytes_written: u64,
    pub file_syncs: u64,
    pub dir_syncs: u64,
    /// Requests refused because the power was off.
    pub refused: u64,
}

/// The whole file system.
#[derive(Debug)]
pub struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// Power is off: every request fails with EIO until [`State::thaw`].
    frozen: bool,
    /// What the cut that froze it dropped.
    last_cut: Option<CutReport>,
    counters: Counters,
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

impl State {
    /// An empty file system whose root directory is durable (it is the
    /// mount point: nothing creates it).
    pub fn new() -> State {
        let root = Node {
            body: Body::Dir {
                live: Entries::new(),
                durable: Entries::new(),
            },
            perm: 0o755,
        };
        State {
            nodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
            frozen: false,
            last_cut: None,
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Fails every request while the power is off, counting it.
    fn powered(&mut self) -> Result<(), Errno> {
        if self.frozen {
            self.counters.refused += 1;
            return Err(libc::EIO);
        }
        Ok(())
    }

    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    fn entries_mut(&mut self, dir: u64) -> Result<&mut Entries, Errno> {
        match &mut self.node_mut(dir)?.body {
            Body::Dir { live, .. } => Ok(live),
            Body::File { .. } => Err(libc::ENOTDIR),
        }
    }

    fn entries(&self, dir: u64) -> Result<&Entries, Errno> {
        match &self.node(dir)?.body {
            Body::Dir { live, .. } => Ok(live),
            Body::File { .. } => Err(libc::ENOTDIR),
        }
    }

    fn content_mut(&mut self, ino: u64) -> Result<&mut Content, Errno> {
        match &mut self.node_mut(ino)?.body {
            Body::File { live, .. } => Ok(live),
            Body::Dir { .. } => Err(libc::EISDIR),
        }
    }

    pub fn attr(&mut self, ino: u64) -> Result<Attr, Errno> {
        self.powered()?;
        let node = self.node(ino)?;
        let (kind, size) = match &node.body {
            Body::File { live, .. } => (Kind::File, live.size),
            Body::Dir { live, .. } => (Kind::Dir, live.len() as u64),
        };
        Ok(Attr {
            ino,
            kind,
            size,
            perm: node.perm,
        })
    }

    pub fn lookup(&mut self, parent: u64, name: &OsStr) -> Result<Attr, Errno> {
        self.powered()?;
        let ino = *self.entries(parent)?.get(name).ok_or(libc::ENOENT)?;
        self.attr(ino)
    }

    /// Creates a file or directory `name` in `parent` (live only).
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        kind: Kind,
        perm: u16,
    ) -> Result<Attr, Errno> {
        self.powered()?;
        if self.entries(parent)?.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let body = match kind {
            Kind::File => Body::File {
                live: Content::default(),
                durable: Content::default(),
            },
            Kind::Dir => Body::Dir {
                live: Entries::new(),
                durable: Entries::new(),
            },
        };
        self.nodes.insert(ino, Node { body, perm });
        self.entries_mut(parent)?.insert(name.to_owned(), ino);
        self.attr(ino)
    }

    /// Removes the entry `name` (a file if `dir` is false, else an empty
    /// directory). The inode stays until a cut finds nothing durable
    /// pointing at it: an open file outlives its name, and a durable entry
    /// may still bring it back.
    pub fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        self.powered()?;
        let ino = *self.entries(parent)?.get(name).ok_or(libc::ENOENT)?;
        match (&self.node(ino)?.body, dir) {
            (Body::Dir { live, .. }, true) if !live.is_empty() => return Err(libc::ENOTEMPTY),
            (Body::Dir { .. }, false) => return Err(libc::EISDIR),
            (Body::File { .. }, true) => return Err(libc::ENOTDIR),
            _ => {}
        }
        self.entries_mut(parent)?.remove(name);
        Ok(())
    }

    /// rename(2), with RENAME_NOREPLACE; other flags are refused.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), Errno> {
        self.powered()?;
        let ino = *self.entries(parent)?.get(name).ok_or(libc::ENOENT)?;
        self.entries(new_parent)?;
        if let Some(&target) = self.entries(new_parent)?.get(new_name) {
            if target == ino {
                return Ok(());
            }
            if no_replace {
                return Err(libc::EEXIST);
            }
            let moving_dir = matches!(self.node(ino)?.body, Body::Dir { .. });
            match &self.node(target)?.body {
                Body::Dir { .. } if !moving_dir => return Err(libc::EISDIR),
                Body::Dir { live, .. } if !live.is_empty() => return Err(libc::ENOTEMPTY),
                Body::File { .. } if moving_dir => return Err(libc::ENOTDIR),
                _ => {}
            }
        }
        self.entries_mut(parent)?.remove(name);
        self.entries_mut(new_parent)?
            .insert(new_name.to_owned(), ino);
        Ok(())
    }

    /// Entries of a directory, with `.` and `..` left to the caller.
    pub fn list(&mut self, dir: u64) -> Result<Vec<(OsString, u64, Kind)>, Errno> {
        self.powered()?;
        let entries = self.entries(dir)?;
        let mut out = Vec::with_capacity(entries.len());
        for (name, &ino) in entries {
            let kind = match self.node(ino)?.body {
                Body::File { .. } => Kind::File,
                Body::Dir { .. } => Kind::Dir,
            };
            out.push((name.clone(), ino, kind));
        }
        Ok(out)
    }

    pub fn read(&mut self, ino: u64, offset: u64, len: usize) -> Result<Vec<u8>, Errno> {
        self.powered()?;
        match &self.node(ino)?.body {
            Body::File { live, .. } => Ok(live.read(offset, len)),
            Body::Dir { .. } => Err(libc::EISDIR),
        }
    }

    /// A write that returned: in the "page cache" until the file is synced.
    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<(), Errno> {
        self.powered()?;
        self.content_mut(ino)?.write(offset, data);
        self.counters.writes += 1;
        self.counters.bytes_written += data.len() as u64;
        Ok(())
    }

    /// truncate/ftruncate.
    pub fn set_size(&mut self, ino: u64, size: u64) -> Result<(), Errno> {
        self.powered()?;
        self.content_mut(ino)?.set_size(size);
        Ok(())
    }

    pub fn set_perm(&mut self, ino: u64, perm: u16) -> Result<(), Errno> {
        self.powered()?;
        self.node_mut(ino)?.perm = perm;
        Ok(())
    }

    /// fallocate(2): plain preallocation (extends the size unless
    /// KEEP_SIZE), PUNCH_HOLE and ZERO_RANGE; other modes are refused.
    pub fn fallocate(&mut self, ino: u64, offset: u64, len: u64, mode: i32) -> Result<(), Errno> {
        self.powered()?;
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let content = self.content_mut(ino)?;
        let end = offset.checked_add(len).ok_or(libc::EFBIG)?;
        match mode & !libc::FALLOC_FL_KEEP_SIZE {
            0 => {}
            libc::FALLOC_FL_PUNCH_HOLE if keep_size => content.zero(offset, len),
            libc::FALLOC_FL_ZERO_RANGE => content.zero(offset, len),
            _ => return Err(libc::EOPNOTSUPP),
        }
        if !keep_size && end > content.size {
            content.size = end;
        }
        Ok(())
    }

    /// fsync/fdatasync of a file, or fsync of a directory: everything the
    /// program sees of this one inode becomes what a cut leaves.
    pub fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        self.powered()?;
        match &mut self.node_mut(ino)?.body {
            Body::File { live, durable } => {
                *durable = live.clone();
                self.counters.file_syncs += 1;
            }
            Body::Dir { live, durable } => {
                *durable = live.clone();
                self.counters.dir_syncs += 1;
            }
        }
        Ok(())
    }

    /// The power cut: every inode goes back to its durable version, inodes
    /// no durable entry reaches are forgotten, and the file system refuses
    /// every request until [`State::thaw`].
    pub fn cut(&mut self) -> CutReport {
        if let Some(report) = &self.last_cut {
            return report.clone(); // already off
        }
        self.frozen = true;
        let mut report = CutReport::default();
        for node in self.nodes.values_mut() {
            match &mut node.body {
                Body::File { live, durable } => {
                    let chunks = live.chunks_differing(durable);
                    if chunks > 0 || live.size != durable.size {
                        report.files_rewound += 1;
                        report.chunks_dropped += chunks;
                    }
                    *live = durable.clone();
                }
                Body::Dir { live, durable } => {
                    if live != durable {
                        report.dirs_rewound += 1;
                    }
                    *live = durable.clone();
                }
            }
        }
        let mut reachable = std::collections::HashSet::from([ROOT]);
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if let Some(Node {
                body: Body::Dir { live, .. },
                ..
            }) = self.nodes.get(&ino)
            {
                for &child in live.values() {
                    if reachable.insert(child) {
                        stack.push(child);
                    }
                }
            }
        }
        let before = self.nodes.len();
        self.nodes.retain(|ino, _| reachable.contains(ino));
        report.inodes_forgotten = before - self.nodes.len();
        self.last_cut = Some(report.clone());
        report
    }

    /// Power back on (after the processes of the old boot are gone and the
    /// file system was mounted afresh); returns what the cut dropped.
    pub fn thaw(&mut self) -> Option<CutReport> {
        self.frozen = false;
        self.last_cut.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn file(st: &mut State, dir: u64, n: &str) -> u64 {
        st.create(dir, name(n), Kind::File, 0o644).unwrap().ino
    }

    fn read_all(st: &mut State, ino: u64) -> Vec<u8> {
        let size = st.attr(ino).unwrap().size;
        st.read(ino, 0, size as usize).unwrap()
    }

    fn cut_and_thaw(st: &mut State) -> CutReport {
        let report = st.cut();
        assert_eq!(st.thaw(), Some(report.clone()));
        report
    }

    #[test]
    fn unsynced_writes_are_forgotten_synced_ones_kept() {
        let mut st = State::new();
        let f = file(&mut st, ROOT, "wal");
        st.sync(ROOT).unwrap();
        st.write(f, 0, b"synced").unwrap();
        st.sync(f).unwrap();
        st.write(f, 6, b"+lost").unwrap();
        st.write(f, 0, b"S").unwrap();
        let report = cut_and_thaw(&mut st);
        assert_eq!(report.files_rewound, 1);
        assert_eq!(read_all(&mut st, f), b"synced");
    }

    #[test]
    fn a_file_without_a_synced_directory_entry_disappears() {
        let mut st = State::new();
        let f = file(&mut st, ROOT, "segment");
        st.write(f, 0, b"data").unwrap();
        st.sync(f).unwrap();
        let report = cut_and_thaw(&mut st);
        assert_eq!(report.inodes_forgotten, 1);
        assert_eq!(st.lookup(ROOT, name("segment")), Err(libc::ENOENT));
    }

    #[test]
    fn rename_is_durable_only_after_the_directory_sync() {
        let mut st = State::new();
        let old = file(&mut st, ROOT, "meta");
        st.write(old, 0, b"old").unwrap();
        st.sync(old).unwrap();
        st.sync(ROOT).unwrap();
        let tmp = file(&mut st, ROOT, "meta.tmp");
        st.write(tmp, 0, b"new").unwrap();
        st.sync(tmp).unwrap();
        st.rename(ROOT, name("meta.tmp"), ROOT, name("meta"), false)
            .unwrap();
        cut_and_thaw(&mut st);
        let meta = st.lookup(ROOT, name("meta")).unwrap().ino;
        assert_eq!(read_all(&mut st, meta), b"old");
        assert_eq!(st.lookup(ROOT, name("meta.tmp")), Err(libc::ENOENT));

        let tmp = file(&mut st, ROOT, "meta.tmp");
        st.write(tmp, 0, b"new").unwrap();
        st.sync(tmp).unwrap();
        st.rename(ROOT, name("meta.tmp"), ROOT, name("meta"), false)
            .unwrap();
        st.sync(ROOT).unwrap();
        cut_and_thaw(&mut st);
        let meta = st.lookup(ROOT, name("meta")).unwrap().ino;
        assert_eq!(read_all(&mut st, meta), b"new");
    }

    #[test]
    fn preallocation_counts_only_once_synced() {
        let mut st = State::new();
        let f = file(&mut st, ROOT, "seg");
        st.sync(ROOT).unwrap();
        st.fallocate(f, 0, 1 << 20, 0).unwrap();
        cut_and_thaw(&mut st);
        assert_eq!(st.attr(f).unwrap().size, 0);
        st.fallocate(f, 0, 1 << 20, 0).unwrap();
        st.sync(f).unwrap();
        st.write(f, 4096, &[7u8; 4096]).unwrap();
        cut_and_thaw(&mut st);
        assert_eq!(st.attr(f).unwrap().size, 1 << 20);
        assert!(read_all(&mut st, f).iter().all(|b| *b == 0));
    }

    #[test]
    fn a_frozen_file_system_refuses_everything_and_changes_nothing() {
        let mut st = State::new();
        let f = file(&mut st, ROOT, "f");
        st.sync(ROOT).unwrap();
        st.cut();
        assert_eq!(st.write(f, 0, b"late"), Err(libc::EIO));
        assert_eq!(st.sync(f), Err(libc::EIO));
        assert_eq!(st.read(f, 0, 4), Err(libc::EIO));
        assert_eq!(st.counters().refused, 3);
        st.thaw();
        assert_eq!(st.attr(f).unwrap().size, 0);
    }

    #[test]
    fn content_spanning_chunks_reads_back_and_truncates_to_zeros() {
        let mut st = State::new();
        let f = file(&mut st, ROOT, "big");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        st.write(f, 1000, &data).unwrap();
        assert_eq!(st.read(f, 1000, data.len()).unwrap(), data);
        st.set_size(f, 40_000).unwrap();
        st.set_size(f, 50_000).unwrap();
        let back = st.read(f, 0, 50_000).unwrap();
        assert_eq!(&back[1000..40_000], &data[..39_000]);
        assert!(back[40_000..].iter().all(|b| *b == 0));
    }
}
