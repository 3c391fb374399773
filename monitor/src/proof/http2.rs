//! HTTP/2 over TLS: the connection preface, then frames; the first request is the first
//! HEADERS frame (with its CONTINUATIONs), its header block compressed with HPACK.
//!
//! The first header block of a connection is decoded with a fresh decoder, as the server's
//! would: HPACK's dynamic table starts empty, so nothing before it is needed.
use std::borrow::Cow;

use super::{
    Sent,
    carried::{self, Carried},
};
use crate::redact::Secrets;

/// What every HTTP/2 connection's client sends first (RFC 9113, 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Largest header block decoded: the kernel reports a few KiB per connection anyway.
const MAX_BLOCK: usize = 16 * 1024;
/// Headers of a block looked at, and bytes of their values: HPACK lets a few bytes stand for
/// a 4 KiB header already in its table, so a block of references would otherwise make every
/// one a keyed hash of 4 KiB.
const MAX_HEADERS: usize = 64;
const MAX_VALUE_BYTES: usize = 16 * 1024;

/// What a connection's first bytes say so far.
pub enum Parsed {
    /// The first request.
    Request(Sent),
    /// An HTTP/2 connection whose first request has not come whole yet.
    NeedMore,
    /// Not HTTP/2, or broken: nothing will come of more bytes.
    Not,
}

/// Reads the first request from the client's first bytes (`bytes` starts with the preface).
pub fn parse(bytes: &[u8], secrets: &Secrets) -> Parsed {
    let Some(mut rest) = bytes.strip_prefix(PREFACE) else {
        return if PREFACE.starts_with(bytes) {
            Parsed::NeedMore
        } else {
            Parsed::Not
        };
    };
    let mut block: Vec<u8> = Vec::new();
    let mut in_headers = false;
    loop {
        let Some(header) = rest.get(..FRAME_HEADER) else {
            return Parsed::NeedMore;
        };
        let len =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let (kind, flags) = (header[3], header[4]);
        let Some(payload) = rest.get(FRAME_HEADER..FRAME_HEADER + len) else {
            return Parsed::NeedMore;
        };
        rest = &rest[FRAME_HEADER + len..];
        match kind {
            HEADERS if !in_headers => {
                let Some(fragment) = headers_fragment(payload, flags) else {
                    return Parsed::Not;
                };
                block.extend_from_slice(fragment);
            }
            CONTINUATION if in_headers => block.extend_from_slice(payload),
            // Between HEADERS and its last CONTINUATION nothing else may come.
            _ if in_headers => return Parsed::Not,
            _ => continue, // SETTINGS, WINDOW_UPDATE, PRIORITY before the request
        }
        if block.len() > MAX_BLOCK {
            return Parsed::Not;
        }
        if flags & END_HEADERS != 0 {
            let parsed = request(&block, secrets);
            super::wipe(&mut block);
            return parsed.map_or(Parsed::Not, Parsed::Request);
        }
        in_headers = true;
    }
}

/// A HEADERS frame's header block fragment: without padding and priority fields.
fn headers_fragment(payload: &[u8], flags: u8) -> Option<&[u8]> {
    let mut start = 0;
    let mut end = payload.len();
    if flags & PADDED != 0 {
        let pad = usize::from(*payload.first()?);
        start += 1;
        end = end.checked_sub(pad)?;
    }
    if flags & PRIORITY != 0 {
        start += 5;
    }
    payload.get(start..end)
}

/// The request a whole header block describes.
fn request(block: &[u8], secrets: &Secrets) -> Option<Sent> {
    let mut carried = Carried::new(secrets);
    let mut method = None;
    let mut target = None;
    let mut decoder = loona_hpack::Decoder::new();
    decoder.set_max_allowed_table_size(4096);
    let (mut headers, mut bytes) = (0, 0);
    decoder
        .decode_with_cb(block, |name: Cow<[u8]>, value: Cow<[u8]>| {
            headers += 1;
            bytes += value.len();
            if headers > MAX_HEADERS || bytes > MAX_VALUE_BYTES {
                return;
            }
            let (Ok(name), Ok(value)) = (std::str::from_utf8(&name), std::str::from_utf8(&value))
            else {
                return;
            };
            match name {
                ":method" => method = Some(value.to_owned()),
                ":path" => target = Some(value.to_owned()),
                _ => carried.header(&name.to_ascii_lowercase(), value),
            }
        })
        .ok()?;
    let method = method?;
    let target = target.unwrap_or_else(|| "/".into());
    let path = carried::target(&target, &mut carried).to_owned();
    Some(carried.finish(&method, &path))
}
