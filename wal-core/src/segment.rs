//! Segment files: listing a WAL directory, creating a segment durably, and
//! syncing the directory so a new or removed file survives a crash.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{Directory, DmaFile, OpenOptions};

use crate::error::{Result, WalError};
use crate::format::{encode_segment_header, segment_file_name, BLOCK, SEGMENT_HEADER_LEN};

/// A segment file as found in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// WAL position of the file's first byte.
    pub base: u64,
    /// Full path.
    pub path: PathBuf,
    /// File length in bytes.
    pub len: u64,
}

/// `dir` as an absolute path: glommio opens files and directories relative
/// to no directory, so a relative path fails with EBADF.
pub fn absolute(dir: &Path) -> Result<PathBuf> {
    std::path::absolute(dir).map_err(|e| WalError::io(format!("resolving {}", dir.display()), e))
}

/// Lists the segment files of `dir` in position order. Other files are left
/// alone (and not reported: operators may keep notes next to the log).
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| WalError::io(format!("listing {}", dir.display()), e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(base) = name
            .to_str()
            .and_then(crate::format::parse_segment_file_name)
        else {
            continue;
        };
        let len = entry
            .metadata()
            .map_err(|e| WalError::io(format!("stat {}", entry.path().display()), e))?
            .len();
        segments.push(SegmentFile {
            base,
            path: entry.path(),
            len,
        });
    }
    segments.sort_by_key(|s| s.base);
    Ok(segments)
}

/// Makes glommio's poll-ring probe see a real read before any segment is
/// opened on this thread.
///
/// glommio decides once per thread and device whether polled I/O works, by
/// reading the first direct-I/O file opened there. An empty file (a segment
/// just created) reads "successfully" without reaching the device, which
/// wrongly enables the poll ring; every read after that fails with
/// EOPNOTSUPP on devices without polling. A probe file with data settles it.
pub async fn probe_device(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    thread_local! {
        static PROBED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let dev = std::fs::metadata(dir)
        .map_err(|e| WalError::io(format!("stat {}", dir.display()), e))?
        .dev();
    if PROBED.with(|p| p.borrow().contains(&dev)) {
        return Ok(());
    }
    let path = dir.join(".direct-io-probe");
    let what = || format!("probing direct I/O with {}", path.display());
    if let Err(e) = std::fs::write(&path, [0u8; BLOCK as usize]) {
        let _ = std::fs::remove_file(&path);
        return Err(WalError::io(what(), e));
    }
    let opened = DmaFile::open(&path).await;
    let _ = std::fs::remove_file(&path);
    opened
        .map_err(|e| WalError::io(what(), e))?
        .close()
        .await
        .map_err(|e| WalError::io(what(), e))?;
    PROBED.with(|p| p.borrow_mut().push(dev));
    Ok(())
}

/// Makes directory entries (created, truncated or removed files) durable.
pub async fn sync_dir(dir: &Path) -> Result<()> {
    let what = || format!("syncing directory {}", dir.display());
    let d = Directory::open(dir)
        .await
        .map_err(|e| WalError::io(what(), e))?;
    d.sync().await.map_err(|e| WalError::io(what(), e))?;
    d.close().await.map_err(|e| WalError::io(what(), e))?;
    Ok(())
}

/// Creates the directory `dir` and its missing parents, syncing
/// each parent that gained an entry: a new directory entry survives a power
/// cut only once its parent is synced, and a WAL directory lost that way
/// would take every acknowledged frame in it along. Blocking: for start-up.
pub fn create_dir_durably(dir: &Path) -> Result<()> {
    let dir = &absolute(dir)?;
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    std::fs::create_dir_all(dir)
        .map_err(|e| WalError::io(format!("creating {}", dir.display()), e))?;
    for parent in missing.iter().filter_map(|created| created.parent()) {
        sync_dir_blocking(parent)?;
    }
    Ok(())
}

/// Where recovery moves bytes it takes out of the log, so none is destroyed.
pub const DAMAGED_DIR: &str = "damaged";

/// Saves bytes `from..` of the segment at `path` into the WAL directory's
/// [`DAMAGED_DIR`] (durably) before the caller cuts them off, unless they
/// are all zero (nothing was there). Returns the copy's path, if made.
pub fn save_tail_aside(dir: &Path, path: &Path, from: u64) -> Result<Option<PathBuf>> {
    use std::io::{Read, Seek, SeekFrom};
    let failed = |what: &str, e| WalError::io(format!("{what} {}", path.display()), e);
    let mut file = std::fs::File::open(path).map_err(|e| failed("opening", e))?;
    file.seek(SeekFrom::Start(from))
        .map_err(|e| failed("seeking in", e))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)
        .map_err(|e| failed("reading", e))?;
    if tail.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let aside = damaged_dir(dir)?.join(format!("{name}.from-{from}"));
    write_durably(&aside, &tail)?;
    Ok(Some(aside))
}

/// Moves the whole segment at `path` into [`DAMAGED_DIR`] (a rename, synced).
pub fn move_aside(dir: &Path, path: &Path) -> Result<PathBuf> {
    let name = path.file_name().unwrap_or_default();
    let aside = damaged_dir(dir)?.join(name);
    std::fs::rename(path, &aside)
        .map_err(|e| WalError::io(format!("moving {} aside", path.display()), e))?;
    sync_dir_blocking(dir)?;
    sync_dir_blocking(aside.parent().unwrap_or(dir))?;
    Ok(aside)
}

fn damaged_dir(dir: &Path) -> Result<PathBuf> {
    let aside = dir.join(DAMAGED_DIR);
    create_dir_durably(&aside)?;
    Ok(aside)
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let failed = |what: &str, e| WalError::io(format!("{what} {}", path.display()), e);
    let mut f = std::fs::File::create(path).map_err(|e| failed("creating", e))?;
    f.write_all(bytes).map_err(|e| failed("writing", e))?;
    f.sync_all().map_err(|e| failed("syncing", e))?;
    sync_dir_blocking(path.parent().unwrap_or(Path::new("/")))
}

fn sync_dir_blocking(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WalError::io(format!("syncing directory {}", dir.display()), e))
}

/// Opens an existing segment for reading and writing.
pub async fn open_segment(path: &Path) -> Result<Rc<DmaFile>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(path)
        .await
        .map_err(|e| WalError::io(format!("opening {}", path.display()), e))?;
    check_alignment(&file, path)?;
    Ok(Rc::new(file))
}

/// Opens an existing segment read-only.
pub async fn open_segment_read(path: &Path) -> Result<Rc<DmaFile>> {
    let file = DmaFile::open(path)
        .await
        .map_err(|e| WalError::io(format!("opening {}", path.display()), e))?;
    check_alignment(&file, path)?;
    Ok(Rc::new(file))
}

fn check_alignment(file: &DmaFile, path: &Path) -> Result<()> {
    if !BLOCK.is_multiple_of(file.alignment()) {
        return Err(WalError::Invalid(format!(
            "{} needs {}-byte direct I/O alignment; the WAL writes {}-byte blocks",
            path.display(),
            file.alignment(),
            BLOCK
        )));
    }
    Ok(())
}

/// Spare segments (`spare-N.wal.tmp`): created and given their disk space
/// ahead of need, and renamed into place at a roll, so running out of
/// space is found before a frame is assigned to a segment that cannot be
/// created (which would poison the log), not by a failed write. Each has a
/// name of its own: a spare still waiting for its roll must never be
/// opened again under a name another spare is made with.
pub const SPARE_PREFIX: &str = "spare-";
/// The spare segments' suffix (not a segment's, so recovery skips them).
pub const SPARE_SUFFIX: &str = ".wal.tmp";

/// Whether `name` is a spare segment's file name.
pub fn is_spare(name: &str) -> bool {
    name.starts_with(SPARE_PREFIX) && name.ends_with(SPARE_SUFFIX)
}

/// Removes spare segments left by an earlier run (they hold only their
/// reservation); returns how many.
pub fn remove_spares(dir: &Path) -> Result<usize> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| WalError::io(format!("listing {}", dir.display()), e))?;
    let mut removed = 0;
    for entry in entries.flatten() {
        if entry.file_name().to_str().is_some_and(is_spare) {
            std::fs::remove_file(entry.path())
                .map_err(|e| WalError::io(format!("removing {}", entry.path().display()), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Creates spare segment number `n` in `dir` with `size` bytes reserved
/// for it (fallocate, keeping its length at 0, so recovery reads only what
/// was written); returns it and its path.
pub async fn prepare_spare(dir: &Path, size: u64, n: u64) -> Result<(Rc<DmaFile>, PathBuf)> {
    let path = dir.join(format!("{SPARE_PREFIX}{n}{SPARE_SUFFIX}"));
    let what = || format!("preparing the spare segment {}", path.display());
    let file = open_new(&path, what).await?;
    if let Err(e) = file.pre_allocate(size, true).await {
        let e: std::io::Error = e.into();
        if e.kind() == std::io::ErrorKind::Unsupported {
            // A file system without fallocate: the spare still does its
            // renaming, without a reservation.
            tracing::warn!(path = %path.display(), "no fallocate here: the next segment's space is not reserved");
        } else {
            let _ = std::fs::remove_file(&path);
            return Err(WalError::io(what(), e));
        }
    }
    Ok((Rc::new(file), path))
}

/// Makes the spare the segment starting at `base`: header written and
/// synced, renamed to its segment name, the directory synced. Only then may
/// frames be written to it.
pub async fn install_spare(
    dir: &Path,
    (spare, from): (Rc<DmaFile>, PathBuf),
    base: u64,
) -> Result<Rc<DmaFile>> {
    let path = dir.join(segment_file_name(base));
    let what = || format!("installing {} as {}", from.display(), path.display());
    write_header(&spare, base, &path, what).await?;
    std::fs::rename(&from, &path).map_err(|e| WalError::io(what(), e))?;
    sync_dir(dir).await?;
    Ok(spare)
}

/// Opens `path` anew (created or emptied) for direct I/O.
async fn open_new(path: &Path, what: impl Fn() -> String) -> Result<DmaFile> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(path)
        .await
        .map_err(|e| WalError::io(what(), e))?;
    check_alignment(&file, path)?;
    Ok(file)
}

/// Writes the header of the segment starting at `base` (to be `path`)
/// into `file` and syncs it.
async fn write_header(
    file: &DmaFile,
    base: u64,
    path: &Path,
    what: impl Fn() -> String,
) -> Result<()> {
    let mut block = file.alloc_dma_buffer(SEGMENT_HEADER_LEN as usize);
    encode_segment_header(base, block.as_bytes_mut());
    let written = file
        .write_at(block, 0)
        .await
        .map_err(|e| WalError::io(what(), e))?;
    if written as u64 != SEGMENT_HEADER_LEN {
        return Err(WalError::Failed(format!(
            "short write of the header of {}",
            path.display()
        )));
    }
    file.fdatasync().await.map_err(|e| WalError::io(what(), e))
}

/// Creates the segment starting at `base` in `dir`: writes its header,
/// syncs the file and the directory. Only then may frames be written to it.
pub async fn create_segment(dir: &Path, base: u64) -> Result<Rc<DmaFile>> {
    let path = dir.join(segment_file_name(base));
    let what = || format!("creating segment {}", path.display());
    let file = open_new(&path, what).await?;
    write_header(&file, base, &path, what).await?;
    sync_dir(dir).await?;
    Ok(Rc::new(file))
}
