//! The file system through the kernel: O_DIRECT files, fallocate,
//! fdatasync, rename and directory fsync on a real mount, then a cut and a
//! reboot. Needs root and /dev/fuse, like the broker's power-loss test.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;

use sluice_powerloss::PowerLossMount;

fn mountpoint(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("powerloss")
        .join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create mount point");
    dir
}

#[test]
fn synced_direct_io_survives_a_cut_and_the_rest_does_not() {
    let dir = mountpoint("direct");
    let mut fs = PowerLossMount::mount(&dir).expect("mount (needs root and /dev/fuse)");
    let root = dir.clone();

    // A segment as the WAL makes one: O_DIRECT, preallocated, synced, its
    // directory synced.
    let seg_path = root.join("seg.wal");
    let seg = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .custom_flags(libc::O_DIRECT)
        .open(&seg_path)
        .expect("O_DIRECT open on FUSE");
    // SAFETY: plain fallocate on an open fd.
    let rc = unsafe { libc::fallocate(seg.as_raw_fd(), 0, 0, 1 << 20) };
    assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
    // Direct I/O wants a 4 KiB-aligned buffer: one inside a larger Vec.
    let mut buf = vec![0u8; 8192];
    let off = buf.as_ptr().align_offset(4096);
    buf[off..off + 4096].fill(b'A');
    seg.write_all_at(&buf[off..off + 4096], 0)
        .expect("direct write");
    seg.sync_data().expect("fdatasync");
    File::open(&root)
        .unwrap()
        .sync_all()
        .expect("directory fsync");
    buf[off..off + 4096].fill(b'B');
    seg.write_all_at(&buf[off..off + 4096], 4096)
        .expect("direct write, not synced");

    // Metadata as the broker writes it: tmp, fsync, rename, but the
    // directory is not synced after the rename.
    std::fs::write(root.join("meta"), b"old").unwrap();
    File::open(root.join("meta")).unwrap().sync_all().unwrap();
    File::open(&root).unwrap().sync_all().unwrap();
    let mut tmp = File::create(root.join("meta.tmp")).unwrap();
    tmp.write_all(b"new").unwrap();
    tmp.sync_all().unwrap();
    drop(tmp);
    std::fs::rename(root.join("meta.tmp"), root.join("meta")).unwrap();
    // A file never synced anywhere.
    std::fs::write(root.join("scratch"), b"x").unwrap();

    let switch = fs.switch();
    let report = switch.cut();
    assert!(fs.is_cut());
    assert!(
        std::fs::read(root.join("meta")).is_err(),
        "reads fail while the power is off"
    );
    drop(seg);
    let dropped = fs.reboot().expect("reboot").expect("a cut happened");
    assert_eq!(dropped, report);
    assert!(report.files_rewound >= 1 && report.dirs_rewound >= 1);

    let mut seg = File::open(&seg_path).expect("segment survives");
    assert_eq!(seg.metadata().unwrap().len(), 1 << 20, "preallocated size");
    let mut back = Vec::new();
    seg.read_to_end(&mut back).unwrap();
    assert!(back[..4096].iter().all(|b| *b == b'A'), "synced block");
    assert!(back[4096..].iter().all(|b| *b == 0), "unsynced block gone");
    assert_eq!(std::fs::read(root.join("meta")).unwrap(), b"old");
    assert!(!root.join("meta.tmp").exists());
    assert!(!root.join("scratch").exists());

    drop(seg);
    drop(fs);
    std::fs::remove_dir(&dir).expect("unmounted: the mount point is an empty directory again");
}
