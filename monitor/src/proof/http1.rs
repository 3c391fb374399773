//! HTTP/1 request heads: the request line and the header lines up to the blank line.
use super::{
    Sent,
    carried::{self, Carried},
};
use crate::redact::Secrets;

/// Whether `bytes` start like an HTTP/1 request: an upper-case method and a space.
pub fn starts_request(bytes: &[u8]) -> bool {
    let method = bytes.iter().take_while(|b| b.is_ascii_uppercase()).count();
    (3..=7).contains(&method) && bytes.get(method) == Some(&b' ')
}

/// The request `head` is, with what it carries; None when it is not an HTTP/1 request head.
/// A head cut short (the kernel keeps `PAYLOAD_LEN` bytes) is read as far as it goes.
pub fn parse(head: &[u8], secrets: &Secrets) -> Option<Sent> {
    let text = std::str::from_utf8(head).ok().or_else(|| {
        // Cut inside a character at the kernel's limit: the valid part.
        let valid = std::str::from_utf8(head).err()?.valid_up_to();
        std::str::from_utf8(&head[..valid]).ok()
    })?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, target, version) = (
        request_line.next()?,
        request_line.next()?,
        request_line.next()?,
    );
    if !version.starts_with("HTTP/1.")
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
    {
        return None;
    }
    let mut carried = Carried::new(secrets);
    let path = carried::target(target, &mut carried);
    for line in lines.take_while(|l| !l.is_empty()) {
        if let Some((name, value)) = line.split_once(':') {
            carried.header(&name.trim().to_ascii_lowercase(), value);
        }
    }
    Some(carried.finish(method, path))
}
