//! Entry points for fuzzing. Each hands bytes that a process on the host can shape to one of
//! keytrail's parsers, which must return whatever the bytes are: never panic, never run away.
//! `fuzz/` runs them under libFuzzer (`cargo fuzz run NAME`, see its README); the unit tests
//! below run each on a few thousand mutations of real inputs on every test run.
use std::{
    io,
    path::Path,
    sync::{Arc, LazyLock},
};

use crate::{
    decode::{Payload, PayloadKind},
    names::{Namer, Resolvers},
    policy::Policy,
    sink::{self, Format},
    vocab::Protocol,
};

/// One kernel event's bytes, as a ring buffer gives them.
pub fn decode(bytes: &[u8]) {
    let _ = crate::decode::decode(bytes);
}

/// Packets on watched sockets, as name learning takes them: `bytes` is cut into payloads, each
/// a header byte (what and how: DNS query or answer, or TLS; UDP or TCP), a byte of sequence
/// number and a byte of length, then that many bytes. One socket, so TCP streams and queries
/// meet their answers.
pub fn names(bytes: &[u8]) {
    let mut namer = Namer::new(Resolvers::only(vec![
        "0.0.0.0/0".parse().expect("a block"),
        "::/0".parse().expect("a block"),
    ]));
    let mut rest = bytes;
    let mut at_ns = 0;
    while let [head, seq, len, tail @ ..] = rest {
        let data = &tail[..usize::from(*len).min(tail.len())];
        rest = &tail[data.len()..];
        at_ns += 1_000_000;
        namer.on_payload(&Payload {
            kind: match head % 3 {
                0 => PayloadKind::DnsQuery,
                1 => PayloadKind::DnsAnswer,
                _ => PayloadKind::TlsHello,
            },
            pid: 7,
            cookie: 1,
            protocol: if head & 0x80 == 0 {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            seq: u32::from(*seq) * 16,
            // Sometimes more than the kernel kept, as for a cut packet.
            total_len: data.len() + usize::from(head & 0x40 != 0) * 1000,
            data: data.to_vec(),
            peer: Some([127, 0, 0, 53].into()),
            boot_ns: at_ns,
        });
    }
    namer.sweep(at_ns + 60_000_000_000);
}

/// The first bytes of a TCP connection, as a TLS ClientHello.
pub fn tls_hello(bytes: &[u8]) {
    let _ = crate::names::server_name(bytes);
}

/// A credential file, as each kind's reader takes it (a workspace's files may come from any
/// repository an agent cloned).
pub fn credential_file(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for kind in crate::vocab::ALL_KINDS {
        let _ = crate::catalog::contents::inspect(*kind, &text);
    }
}

/// The first segment of a plain HTTP connection, as proof of use reads it; and the same bytes
/// as a TLS connection's first writes (HTTP/1 or HTTP/2 with HPACK), cut in two where the
/// first byte says.
pub fn http_request(bytes: &[u8]) {
    static SECRETS: LazyLock<crate::redact::Secrets> = LazyLock::new(|| {
        crate::redact::Secrets::new(
            crate::fingerprint::Fingerprinter::random().expect("/dev/urandom"),
        )
    });
    let _ = crate::proof::inspect(bytes, &SECRETS);
    let cut = bytes
        .first()
        .map_or(0, |b| usize::from(*b).min(bytes.len()));
    let (first, second) = bytes.split_at(cut);
    let mut writes = crate::proof::TlsWrites::default();
    let _ = writes.on_write(1, 0, first, 1, &SECRETS);
    let _ = writes.on_write(1, 1, second, 2, &SECRETS);
}

/// A policy file (`--config`, `check-config`).
pub fn policy(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = Policy::parse(text, Path::new("<fuzz>"));
    }
}

/// A recording (`replay`), against the embedded default policy.
pub fn replay(bytes: &[u8]) {
    static POLICY: LazyLock<Arc<Policy>> = LazyLock::new(|| Arc::new(Policy::embedded()));
    let mut sink = sink::for_format(Format::Json, Box::new(io::sink()), false);
    let _ = crate::replay::replay(bytes, Path::new("<fuzz>"), Arc::clone(&POLICY), &mut *sink);
}

#[cfg(test)]
mod tests;
