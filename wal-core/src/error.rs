//! The WAL's error type. Every corruption names the file and byte offset.

use std::fmt;
use std::path::PathBuf;

/// Errors of the write-ahead log.
#[derive(Debug)]
pub enum WalError {
    /// An I/O operation failed; `what` says which one and on which file.
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Invalid data where valid data must be: names the file and byte offset.
    Corruption {
        /// The segment file.
        file: PathBuf,
        /// Byte offset inside the file.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// An earlier write or sync failed. The log accepts nothing more, since
    /// the kernel may have dropped the dirty data (a failed fsync is never
    /// retried).
    Failed(String),
    /// The caller asked for something the log cannot do (frame too large,
    /// reserved frame type, read of a position that is not durable).
    Invalid(String),
    /// The disk has no room for the next segment: the frame was not
    /// taken, nothing changed, and appends go on once space is freed.
    NoSpace(String),
    /// The log was closed.
    Closed,
}

impl WalError {
    pub(crate) fn io(what: impl Into<String>, source: impl Into<std::io::Error>) -> WalError {
        WalError::Io {
            what: what.into(),
            source: source.into(),
        }
    }
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io { what, source } => {
                write!(f, "WAL I/O error while {what}: {source}")?;
                if source.kind() == std::io::ErrorKind::StorageFull {
                    write!(f, " (the disk is full: free space on it and start again)")?;
                }
                Ok(())
            }
            WalError::Corruption {
                file,
                offset,
                reason,
            } => write!(
                f,
                "WAL corruption in {} at byte offset {offset}: {reason}",
                file.display()
            ),
            WalError::Failed(why) => write!(f, "WAL failed earlier and accepts no writes: {why}"),
            WalError::Invalid(why) => write!(f, "invalid WAL request: {why}"),
            WalError::NoSpace(why) => write!(
                f,
                "the disk is full: no room for the next WAL segment ({why}); appends resume once space is freed"
            ),
            WalError::Closed => write!(f, "WAL is closed"),
        }
    }
}

impl std::error::Error for WalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WalError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, WalError>;
