//! Power cuts, not just `kill -9`: the broker runs on a FUSE file system
//! (`sluice-powerloss`) that forgets, at the cut, every write not followed
//! by a completed fsync/fdatasync of its file and every directory change
//! not followed by an fsync of its directory. `kill -9` cannot tell a
//! synced write from one still in the page cache; this can.
//!
//! A cut (from a printed seed) rewinds the file system to its durable
//! state and makes it refuse every later request, so no late write lands,
//! and the broker is SIGKILLed at the same moment. Then the file system is
//! mounted afresh on what survived, the broker restarts on it, and what it
//! acknowledged must be there: [`produce`] cuts while a producer streams
//! (messages), [`topics`] while topics are being created (metadata
//! replaced by rename), [`cleaning`] while retention and the cleaner delete
//! segments and copy live frames forward. Several cuts on the same data each, so later
//! recoveries start from state that already lost its unsynced parts.
//!
//! Needs root and /dev/fuse (the file system mounts with mount(2) itself).
//! [`harness`] and [`verify`] are the black-box suite's.

#[allow(dead_code)]
#[path = "../blackbox/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../blackbox/verify.rs"]
mod verify;

mod cleaning;
mod produce;
mod topics;

use std::path::{Path, PathBuf};

use sluice_powerloss::PowerLossMount;

use harness::DataDir;

/// The mounted file system on its mount point. If the test fails, what
/// survived is copied to `<mount point>-survivor` (the mount's content
/// lives in memory and goes with it) for `sluice wal inspect`.
pub struct Disk {
    pub fs: PowerLossMount,
    _mount_point: DataDir,
}

impl Disk {
    pub fn mount(name: &str) -> Disk {
        let mount_point = DataDir::new(name);
        let fs = PowerLossMount::mount(mount_point.path()).unwrap_or_else(|e| {
            panic!("mounting the power-loss file system (root and /dev/fuse needed): {e}")
        });
        Disk {
            fs,
            _mount_point: mount_point,
        }
    }

    /// The broker's data directory, made durably like an operator would
    /// (mkdir, fsync of the parent) so that only the broker's own files
    /// are on trial.
    pub fn data_dir(&self) -> PathBuf {
        let root = self.fs.mountpoint();
        let data = root.join("data");
        std::fs::create_dir(&data).expect("mkdir data");
        std::fs::File::open(root)
            .and_then(|d| d.sync_all())
            .expect("fsync the mount root");
        data
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if self.fs.is_cut() {
            let _ = self.fs.reboot();
        }
        let from = self.fs.mountpoint().to_path_buf();
        let to = PathBuf::from(format!("{}-survivor", from.display()));
        match copy_tree(&from, &to) {
            Ok(()) => eprintln!("[powerloss] what survived is in {}", to.display()),
            Err(e) => eprintln!("[powerloss] copying what survived failed: {e}"),
        }
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
