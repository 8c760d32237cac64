//! A FUSE file system that tells a synced write from one still "in the
//! page cache", for power-loss tests.
//!
//! `kill -9` keeps everything a process wrote, synced or not: the kernel
//! still has it. A power cut keeps only what an fsync/fdatasync made
//! durable. [`PowerLossMount`] mounts an in-memory file system on a
//! directory; a program (the broker) works on it as on any other; the test
//! calls [`PowerSwitch::cut`] at any moment, which forgets every write and
//! every directory change not yet synced (rules in [`state`]) and refuses
//! all later requests, kills the program, then [`PowerLossMount::reboot`]s
//! (unmount, mount afresh on what survived) and starts the program again.
//!
//! Mounting uses the kernel's mount(2) directly, which needs root (and
//! /dev/fuse); without root fuser falls back to `fusermount3`.

pub mod fs;
mod mount;
pub mod state;

pub use mount::{PowerLossMount, PowerSwitch};
pub use state::{Counters, CutReport};
