//! Kafka wire protocol for Sluice, on top of the `kafka-protocol` crate.
//!
//! One file per idea: [`frame`] cuts the byte stream into size-prefixed
//! frames and writes response frames, [`header`] reads the request header,
//! [`versions`] is the table of implemented APIs (what ApiVersions advertises
//! and what [`Request`] decodes), [`record_batch`] validates and rewrites
//! magic v2 record batches without decompressing them, and [`error`] says
//! what went wrong and which Kafka error code a bad batch earns.
//!
//! A connection's read loop is: [`frame::split`] → [`header::parse`] →
//! [`Request::decode`], answering [`ProtocolError::UnsupportedVersion`] with
//! [`versions::write_unsupported`] and closing on any other error.

pub mod error;
pub mod frame;
pub mod header;
pub mod record_batch;
pub mod versions;

pub use error::{BatchError, ProtocolError};
pub use header::RequestHeader;
pub use record_batch::RecordBatch;
pub use versions::{Request, SUPPORTED_APIS};

/// The `kafka-protocol` this crate speaks, so handlers build responses from
/// exactly the message types [`Request`] decodes.
pub use kafka_protocol;

/// xorshift64: deterministic, dependency-free randomness for the tests that
/// feed garbage to every parser.
#[cfg(test)]
pub(crate) struct XorShift(pub(crate) u64);

#[cfg(test)]
impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
