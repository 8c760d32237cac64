//! Mounting, the power switch and the reboot.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, Config, MountOption};

use crate::fs::PowerLossFs;
use crate::state::{Counters, CutReport, State};

/// The file system mounted on a directory; unmounted on drop (its content
/// lives in memory and is gone then).
pub struct PowerLossMount {
    state: Arc<Mutex<State>>,
    mountpoint: PathBuf,
    session: Option<BackgroundSession>,
}

/// Cuts the power of one [`PowerLossMount`]; cheap to clone and usable from
/// any thread (a producer's delivery callback, say).
#[derive(Clone)]
pub struct PowerSwitch {
    state: Arc<Mutex<State>>,
}

impl PowerSwitch {
    /// The power cut: from this instant only synced data exists, and every
    /// request fails with EIO until [`PowerLossMount::reboot`]. Cutting an
    /// already cut file system changes nothing.
    pub fn cut(&self) -> CutReport {
        lock(&self.state).cut()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().expect("power-loss state poisoned")
}

fn mount_session(state: &Arc<Mutex<State>>, mountpoint: &Path) -> io::Result<BackgroundSession> {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("sluice-powerloss".into()),
        MountOption::Subtype("sluice-powerloss".into()),
        // The kernel checks permissions from our attributes; `access` is
        // then never asked.
        MountOption::DefaultPermissions,
    ];
    fuser::spawn_mount(PowerLossFs::new(state.clone()), mountpoint, &config)
}

impl PowerLossMount {
    /// Mounts an empty file system on `mountpoint` (an existing directory).
    pub fn mount(mountpoint: &Path) -> io::Result<PowerLossMount> {
        let state = Arc::new(Mutex::new(State::new()));
        let session = mount_session(&state, mountpoint)?;
        Ok(PowerLossMount {
            state,
            mountpoint: mountpoint.to_path_buf(),
            session: Some(session),
        })
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    pub fn switch(&self) -> PowerSwitch {
        PowerSwitch {
            state: self.state.clone(),
        }
    }

    /// Whether the power is off (cut, not yet rebooted).
    pub fn is_cut(&self) -> bool {
        lock(&self.state).is_frozen()
    }

    pub fn counters(&self) -> Counters {
        lock(&self.state).counters()
    }

    /// After a cut, once every process that used the file system is gone:
    /// unmounts (dropping whatever the kernel cached of the old boot) and
    /// mounts the surviving state afresh with the power on. Returns what
    /// the cut dropped (None if there was no cut).
    ///
    /// A process still holding a file there keeps the old mount busy: a
    /// killed process's io_uring is torn down asynchronously, so busy is
    /// retried for a while before it is an error.
    pub fn reboot(&mut self) -> io::Result<Option<CutReport>> {
        if let Some(session) = self.session.take() {
            unmount(&self.mountpoint)?;
            // Unmounted: the session's loop has ended, and its own unmount
            // finds nothing left to do.
            let _ = session.umount_and_join();
        }
        let report = lock(&self.state).thaw();
        self.session = Some(mount_session(&self.state, &self.mountpoint)?);
        Ok(report)
    }
}

/// umount(2), retrying EBUSY for up to 10 s.
fn unmount(mountpoint: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // SAFETY: umount2 with a valid NUL-terminated path.
        if unsafe { libc::umount2(path.as_ptr(), 0) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EBUSY) || Instant::now() >= deadline {
            return Err(io::Error::new(
                err.kind(),
                format!("unmounting {}: {err}", mountpoint.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for PowerLossMount {
    /// Never leaves a mount behind: if a file is still open there, the
    /// mount is detached (it goes away when the last file closes).
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            if unmount(&self.mountpoint).is_err() {
                use std::os::unix::ffi::OsStrExt;
                if let Ok(path) = std::ffi::CString::new(self.mountpoint.as_os_str().as_bytes()) {
                    // SAFETY: umount2 with a valid NUL-terminated path.
                    unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
                }
            }
            let _ = session.umount_and_join();
        }
    }
}
