//! A TLS connection's first writes (the kernel reports up to `TLS_WRITES` per connection, each
//! cut at `PAYLOAD_LEN` bytes), put together into the request they start.
//!
//! HTTP/1: each write that starts a request is read alone (a client that retries with
//! credentials after a 401 on the same connection writes a second head). HTTP/2: the writes
//! are joined until the first HEADERS frame is whole (the preface and SETTINGS often come in
//! a write of their own). Anything else is another protocol, and is dropped at once.
use foldhash::HashMap;

use super::{Sent, http1, http2, wipe};
use crate::redact::Secrets;

/// Connections whose HTTP/2 request is being put together, at most; past it, the oldest is
/// dropped.
const MAX_STREAMS: usize = 1024;
/// Bytes kept per connection, at most.
const MAX_BYTES: usize = 16 * 1024;
/// How long a connection's writes wait for the rest of its request.
const WAIT_NS: u64 = 10_000_000_000;

/// An HTTP/2 connection's bytes so far; wiped when dropped.
struct Stream {
    bytes: Vec<u8>,
    next_write: u32,
    since_ns: u64,
}

impl Drop for Stream {
    fn drop(&mut self) {
        wipe(&mut self.bytes);
    }
}

#[derive(Default)]
pub struct TlsWrites {
    streams: HashMap<u64, Stream>,
}

impl TlsWrites {
    /// The write number `index` into connection `cookie`: the request it completes, if any.
    pub fn on_write(
        &mut self,
        cookie: u64,
        index: u32,
        data: &[u8],
        at_ns: u64,
        secrets: &Secrets,
    ) -> Option<Sent> {
        if data.is_empty() {
            return None; // the kernel could not copy the caller's buffer
        }
        if let Some(stream) = self.streams.get_mut(&cookie) {
            if stream.next_write != index || stream.bytes.len() + data.len() > MAX_BYTES {
                self.streams.remove(&cookie); // a write lost on the way: the frames are broken
                return None;
            }
            stream.bytes.extend_from_slice(data);
            stream.next_write += 1;
            return match http2::parse(&stream.bytes, secrets) {
                http2::Parsed::NeedMore => None,
                http2::Parsed::Not => {
                    self.streams.remove(&cookie);
                    None
                }
                http2::Parsed::Request(sent) => {
                    self.streams.remove(&cookie);
                    Some(sent)
                }
            };
        }
        let preface = http2::PREFACE.starts_with(&data[..data.len().min(http2::PREFACE.len())]);
        if !preface {
            // HTTP/1 (or another protocol, which gives nothing).
            return http1::starts_request(data)
                .then(|| http1::parse(data, secrets))
                .flatten();
        }
        if index != 0 {
            return None; // a preface that does not come first is not one
        }
        match http2::parse(data, secrets) {
            http2::Parsed::Request(sent) => Some(sent),
            http2::Parsed::Not => None,
            http2::Parsed::NeedMore => {
                if self.streams.len() >= MAX_STREAMS
                    && let Some(oldest) = self
                        .streams
                        .iter()
                        .min_by_key(|(_, s)| s.since_ns)
                        .map(|(c, _)| *c)
                {
                    self.streams.remove(&oldest);
                }
                self.streams.insert(
                    cookie,
                    Stream {
                        bytes: data.to_vec(),
                        next_write: index + 1,
                        since_ns: at_ns,
                    },
                );
                None
            }
        }
    }

    /// Drops connections whose request did not come whole in time.
    pub fn sweep(&mut self, now_ns: u64) {
        self.streams
            .retain(|_, s| now_ns.saturating_sub(s.since_ns) < WAIT_NS);
    }
}
