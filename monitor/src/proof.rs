//! Proof of use: the credentials a request carries. The head of a plain HTTP/1 request (the
//! first segment the connection sent, at most `PAYLOAD_LEN` bytes, from the kernel's egress
//! program) is parsed for its credential-bearing parts (the `Authorization` header, the common
//! API-key headers, token query parameters), and each is known by its fingerprint only.
//!
//! The plaintext never leaves this module: no log, no record, no `Debug`. What comes out is the
//! request line's method and path (the query dropped), the `Host` header, and fingerprints.
use crate::{
    catalog::shape,
    fingerprint::Fingerprint,
    record::{CredentialRef, Proof, Record, RequestRef},
    redact::Secrets,
};

/// A request's head, as far as proof goes.
pub struct Sent {
    pub request: RequestRef,
    /// Fingerprints of the credential-bearing values it carried.
    pub prints: Vec<Fingerprint>,
}

/// Headers whose whole value is a credential.
const KEY_HEADERS: &[&str] = &[
    "x-api-key",
    "api-key",
    "x-auth-token",
    "private-token",
    "x-goog-api-key",
    "x-vault-token",
];

/// Query parameters whose value is a credential.
const KEY_PARAMETERS: &[&str] = &[
    "token",
    "access_token",
    "api_key",
    "apikey",
    "key",
    "password",
    "private_token",
];

/// The credentials an HTTP/1 request head carries, by fingerprint; None when `head` is not a
/// request head (what the kernel sends starts like one, and may still not be).
pub fn inspect(head: &[u8], secrets: &Secrets) -> Option<Sent> {
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
    let mut values: Vec<&str> = Vec::new();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    for pair in query.split('&') {
        if let Some((name, value)) = pair.split_once('=')
            && KEY_PARAMETERS.contains(&name.to_ascii_lowercase().as_str())
        {
            values.push(value);
        }
    }
    let mut host = None;
    let mut basic = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "host" {
            host = Some(
                value
                    .rsplit_once(':')
                    .map_or(value, |(h, _)| h)
                    .to_ascii_lowercase(),
            );
        } else if name == "authorization" || name == "proxy-authorization" {
            match value.split_once(' ') {
                Some((scheme, credentials)) if scheme.eq_ignore_ascii_case("basic") => {
                    basic.extend(shape::base64(credentials.trim()));
                }
                Some((_, credentials)) => values.push(credentials.trim()),
                None => values.push(value),
            }
        } else if KEY_HEADERS.contains(&name.as_str()) {
            values.push(value);
        }
    }
    // Basic: `user:password`, the password alone, and the whole (a token as the user name).
    let basic: Vec<String> = basic
        .iter()
        .filter_map(|b| String::from_utf8(b.clone()).ok())
        .collect();
    let mut prints: Vec<Fingerprint> = values.iter().map(|v| secrets.fingerprint(v)).collect();
    for pair in &basic {
        prints.push(secrets.fingerprint(pair));
        if let Some((user, password)) = pair.split_once(':') {
            prints.push(secrets.fingerprint(user));
            prints.push(secrets.fingerprint(password));
        }
    }
    // A path can hold a secret too (`/bot<token>/sendMessage`): what the record keeps of it is
    // redacted as a command line is, known secrets and secret shapes alike.
    let path = secrets
        .redact_argv(&[path.to_owned()], false)
        .pop()
        .unwrap_or_default();
    Some(Sent {
        request: RequestRef {
            method: method.to_owned(),
            host,
            path,
        },
        prints,
    })
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
mod tests {
    use super::*;
    use crate::fingerprint::Fingerprinter;

    #[test]
    fn a_request_head_gives_its_line_host_and_credentials_by_fingerprint() {
        let secrets = Secrets::new(Fingerprinter::with_key(3));
        let head = b"GET /repos/o/r?page=2&access_token=tok-query-1 HTTP/1.1\r\nHost: api.example.com:8080\r\n\
                     Authorization: Bearer tok-bearer-2\r\nX-Api-Key: tok-key-3\r\n\
                     Proxy-Authorization: Basic dXNlcjpwYXNzLXdvcmQtNA==\r\n\r\nbody";
        let sent = inspect(head, &secrets).unwrap();
        assert_eq!(sent.request.method, "GET");
        assert_eq!(sent.request.path, "/repos/o/r", "the query is dropped");
        assert_eq!(sent.request.host.as_deref(), Some("api.example.com"));
        for value in [
            "tok-query-1",
            "tok-bearer-2",
            "tok-key-3",
            "pass-word-4",
            "user:pass-word-4",
        ] {
            assert!(sent.prints.contains(&secrets.fingerprint(value)), "{value}");
        }
        assert!(inspect(b"SSH-2.0-OpenSSH_9.2\r\n", &secrets).is_none());
        // A known secret in the path is not kept.
        let mut secrets = secrets;
        secrets.learn(
            "bot-secret-123456789",
            crate::redact::Origin::CredentialFile,
            |_| "f".into(),
        );
        let sent = inspect(
            b"POST /botbot-secret-123456789/send HTTP/1.1\r\n\r\n",
            &secrets,
        )
        .unwrap();
        assert!(
            !sent.request.path.contains("bot-secret-123456789"),
            "{}",
            sent.request.path
        );
        assert!(inspect(b"GET / HTTP/2\r\n", &secrets).is_none());
        // Cut by the kernel inside a character: what came is still read.
        let mut cut = b"POST /x HTTP/1.1\r\nAuthorization: token tok-5\xe2\x82".to_vec();
        cut.truncate(cut.len());
        assert!(inspect(&cut, &secrets).is_some());
    }
}
