//! wal-core: the direct-I/O write-ahead log of one Sluice shard.
//!
//! It knows nothing of Kafka: frames are typed, opaque payloads. The log
//! lives in a directory of segments ([`format`]), takes appends with group
//! commit ([`writer`]), recovers every frame on open ([`recovery`]) and reads
//! frames back by position ([`reader`]). Everything runs inside one glommio
//! executor.

pub mod buffer_pool;
pub mod error;
pub mod format;
pub mod histogram;
pub mod reader;
pub mod recovery;
pub mod segment;
pub mod writer;

pub use error::{Result, WalError};
pub use reader::{FrameSpan, ReadFrame, SpanFrame};
pub use recovery::{
    scan, scan_from, RecoveredFrame, RecoveryMode, RecoveryReport, SegmentReport, SkippedRange,
    TornTail,
};
pub use writer::{Appended, Durable, Wal, WalOptions, WalStats};
