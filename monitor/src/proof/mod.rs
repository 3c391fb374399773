//! Proof of use: the credentials a request carries. Two sources: the head of a plain HTTP/1
//! request (the first segment the connection sent, from the kernel's egress program), and the
//! first writes a process makes into a TLS connection before encryption (uprobes on the TLS
//! libraries; writes.rs puts them together), HTTP/1 or HTTP/2. The request is parsed for its
//! credential-bearing parts (carried.rs), and each is known by its fingerprint only.
//!
//! The plaintext never leaves this module: no log, no record, no `Debug`. What comes out is the
//! request's method and path (the query dropped), its host, and fingerprints.
mod carried;
mod http1;
mod http2;
mod writes;

pub use writes::TlsWrites;

use crate::{
    fingerprint::Fingerprint,
    record::{CredentialRef, Proof, Record, RequestRef},
    redact::Secrets,
};

/// A request's head, as far as proof goes.
#[derive(Clone)]
pub struct Sent {
    pub request: RequestRef,
    /// Fingerprints of the credential-bearing values it carried.
    pub prints: Vec<Fingerprint>,
}

/// The credentials a plain HTTP/1 request head carries (the first segment the kernel's egress
/// program saw), by fingerprint; None when `head` is not a request head (what the kernel sends
/// starts like one, and may still not be).
pub fn inspect(head: &[u8], secrets: &Secrets) -> Option<Sent> {
    http1::parse(head, secrets)
}

/// Overwrites bytes that may hold a secret before their memory is reused. Volatile, so the
/// writes are not optimized away as dead stores to memory about to be freed.
pub fn wipe(bytes: &mut [u8]) {
    for byte in bytes.iter_mut() {
        // SAFETY: a valid, exclusively borrowed byte.
        unsafe { std::ptr::write_volatile(byte, 0) };
    }
}

/// The records of a connection whose request carried `sent`: when it carried a credential they
/// use, those uses are proven (`proof: sent`, with the request) and the connection's other
/// uses are dropped, since the request says which credential went there; when it carried none
/// they use, they stay as they were (inferred). Returns whether a use was proven.
pub fn apply(records: Vec<Record>, sent: &Sent) -> (Vec<Record>, bool) {
    let carried = |c: &CredentialRef| c.fingerprints.iter().any(|f| sent.prints.contains(f));
    let proven = records
        .iter()
        .any(|r| matches!(r, Record::CredentialUse { credential, .. } if carried(credential)));
    if !proven {
        return (records, false);
    }
    let records = records
        .into_iter()
        .filter_map(|mut record| {
            if let Record::CredentialUse {
                credential,
                proof,
                request,
                ..
            } = &mut record
            {
                if !carried(credential) {
                    return None;
                }
                *proof = Proof::Sent;
                *request = Some(sent.request.clone());
            }
            Some(record)
        })
        .collect();
    (records, true)
}

#[cfg(test)]
mod tests;
