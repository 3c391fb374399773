//! The server name (SNI) in a TLS ClientHello: the name the client means, whatever told it the
//! address (/etc/hosts, a cache, DNS over HTTPS). RFC 8446 4.1.2 and RFC 6066 3.

/// What the first bytes of a connection say.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    ServerName(String),
    /// A complete ClientHello without a (valid) server name.
    NoServerName,
    /// A ClientHello so far, cut before its end: more bytes may come.
    Incomplete,
    /// Not a ClientHello, or lengths that contradict each other.
    NotTls,
}

const HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 0x01;
const SERVER_NAME: u16 = 0;
const HOST_NAME: u8 = 0;
/// The longest DNS name.
const MAX_NAME: usize = 253;

/// Reads forward through bytes; running out is `None`.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
    /// A vector with a 1- or 2-byte length prefix.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n.into())
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n.into())
    }
}

/// The server name of the ClientHello at the start of `bytes` (the first TLS record).
pub fn server_name(bytes: &[u8]) -> Hello {
    let mut record = Cursor(bytes);
    let (Some(kind), Some(_version), Some(len)) = (record.u8(), record.u16(), record.u16()) else {
        return Hello::Incomplete;
    };
    if kind != HANDSHAKE || bytes.get(5).is_some_and(|&t| t != CLIENT_HELLO) {
        return Hello::NotTls;
    }
    let complete = record.0.len() >= usize::from(len);
    let body = &record.0[..record.0.len().min(usize::from(len))];
    match parse_hello(body) {
        Some(Some(name)) => Hello::ServerName(name),
        Some(None) => Hello::NoServerName,
        None if complete => Hello::NotTls,
        None => Hello::Incomplete,
    }
}

/// `None`: the bytes ran out. `Some(None)`: parsed, no usable name.
fn parse_hello(body: &[u8]) -> Option<Option<String>> {
    let mut c = Cursor(body);
    let _handshake_type = c.u8()?;
    let whole = c.u24()? <= body.len() - 4;
    let _client_version = c.u16()?;
    let _random = c.take(32)?;
    let _session_id = c.vec8()?;
    let _cipher_suites = c.vec16()?;
    let _compression = c.vec8()?;
    if c.0.is_empty() {
        // No extensions at all (TLS 1.0 without any), or cut just before them.
        return whole.then_some(None);
    }
    let mut extensions = Cursor(c.vec16()?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vec16()?;
        if kind == SERVER_NAME {
            return Some(host_name(data));
        }
    }
    Some(None)
}

fn host_name(data: &[u8]) -> Option<String> {
    let mut list = Cursor(Cursor(data).vec16()?);
    while !list.0.is_empty() {
        let kind = list.u8()?;
        let name = list.vec16()?;
        if kind == HOST_NAME {
            return valid_host(name);
        }
    }
    None
}

/// A name printed in records comes from any process on the host: only DNS characters pass.
fn valid_host(name: &[u8]) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    ok.then(|| {
        let text = String::from_utf8_lossy(name).to_ascii_lowercase();
        text.trim_end_matches('.').to_owned()
    })
}

#[cfg(test)]
mod tests;
