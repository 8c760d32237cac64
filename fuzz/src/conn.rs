//! One blocking TCP connection to the broker, reading response frames
//! against a deadline, so no wait in the fuzzer is unbounded.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request};

use crate::mutate;

/// Largest response frame accepted (a Metadata answer for many topics is
/// big, but never this big).
const MAX_RESPONSE: usize = 256 << 20;
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a read ended with.
#[derive(Debug)]
pub enum Read {
    /// A whole response frame (size prefix removed).
    Frame(Vec<u8>),
    /// The broker closed (or reset) the connection.
    Closed,
    /// Nothing complete arrived before the deadline.
    Timeout,
    /// A size prefix no response can have.
    BadFrame(i32),
}

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn connect(addr: &str, timeout: Duration) -> std::io::Result<Conn> {
        let mut last =
            std::io::Error::new(ErrorKind::NotFound, format!("{addr} resolves to nothing"));
        for sa in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&sa, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                    return Ok(Conn {
                        stream,
                        buf: Vec::new(),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next response frame, or why there is none by `deadline`.
    pub fn read(&mut self, deadline: Instant) -> Read {
        let mut chunk = [0u8; 64 << 10];
        loop {
            if self.buf.len() >= 4 {
                let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                if size < 4 || size as usize > MAX_RESPONSE {
                    return Read::BadFrame(size);
                }
                let end = 4 + size as usize;
                if self.buf.len() >= end {
                    let frame = self.buf[4..end].to_vec();
                    self.buf.drain(..end);
                    return Read::Frame(frame);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Read::Timeout;
            }
            // A zero timeout means "block forever" to the OS: never pass it.
            let wait = (deadline - now).max(Duration::from_millis(1));
            if self.stream.set_read_timeout(Some(wait)).is_err() {
                return Read::Closed;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Read::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Read::Closed,
            }
        }
    }

    /// Sends `request` and decodes its response (for setup and the final
    /// check, where the broker is expected to behave).
    pub fn call<R: Request + Encodable>(
        &mut self,
        version: i16,
        correlation_id: i32,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, String> {
        self.write(&request_frame(version, correlation_id, request)?)
            .map_err(|e| format!("writing {:?} v{version}: {e}", R::KEY))?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.read(deadline) {
                Read::Frame(f) => {
                    let mut f = Bytes::from(f);
                    let hv = <R::Response as HeaderVersion>::header_version(version);
                    let header = ResponseHeader::decode(&mut f, hv)
                        .map_err(|e| format!("response header: {e}"))?;
                    if header.correlation_id != correlation_id {
                        continue;
                    }
                    return R::Response::decode(&mut f, version).map_err(|e| {
                        format!("decoding the {:?} v{version} response: {e}", R::KEY)
                    });
                }
                other => return Err(format!("{:?} v{version}: {other:?}", R::KEY)),
            }
        }
    }
}

/// A whole, valid request frame for `request` at `version`.
pub fn request_frame<R: Request + Encodable>(
    version: i16,
    correlation_id: i32,
    request: &R,
) -> Result<Vec<u8>, String> {
    let hv = sluice_protocol::header::header_version(R::KEY, version);
    let header = mutate::header(R::KEY, version, correlation_id, Some(b"sluice-fuzz"), hv);
    let mut body = bytes::BytesMut::new();
    request
        .encode(&mut body, version)
        .map_err(|e| format!("encoding {:?} v{version}: {e}", R::KEY))?;
    Ok(mutate::frame(&header, &body))
}
