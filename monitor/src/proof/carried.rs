//! The credential-bearing parts of one request, whatever its HTTP version: the `Authorization`
//! header (Bearer, token, Basic, AWS SigV4's access key id), the common API-key headers, token
//! query parameters (a presigned URL's `X-Amz-Credential` too) and URL userinfo. Each value is
//! kept as its fingerprint only.
use super::Sent;
use crate::{
    catalog::{contents::percent_decoded, shape},
    fingerprint::Fingerprint,
    record::RequestRef,
    redact::Secrets,
};

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

/// The signing scheme of AWS SigV4, whose `Credential=` starts with the access key id.
const SIGV4: &str = "AWS4-HMAC-SHA256";

/// What one request carried so far. Not `Debug`: nothing in it is plaintext, but nothing needs
/// printing either.
pub struct Carried<'a> {
    secrets: &'a Secrets,
    prints: Vec<Fingerprint>,
    host: Option<String>,
}

impl<'a> Carried<'a> {
    pub fn new(secrets: &'a Secrets) -> Self {
        Self {
            secrets,
            prints: Vec::new(),
            host: None,
        }
    }

    fn value(&mut self, value: &str) {
        if !value.is_empty() {
            self.prints.push(self.secrets.fingerprint(value));
        }
    }

    /// One header; `name` in lower case (HTTP/2 sends it so; HTTP/1's is lowered by the
    /// caller). `:authority` is HTTP/2's `Host`.
    pub fn header(&mut self, name: &str, value: &str) {
        let value = value.trim();
        match name {
            "host" | ":authority" => {
                let host = value.rsplit_once('@').map_or(value, |(_, h)| h);
                let host = match host.rsplit_once(':') {
                    Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
                    _ => host,
                };
                self.host = Some(host.to_ascii_lowercase());
            }
            "authorization" | "proxy-authorization" => match value.split_once(' ') {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => {
                    if let Some(pair) =
                        shape::base64(rest.trim()).and_then(|b| String::from_utf8(b).ok())
                    {
                        self.userinfo(&pair);
                    }
                }
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case(SIGV4) => {
                    for part in rest.split(',') {
                        if let Some(credential) = part.trim().strip_prefix("Credential=") {
                            self.access_key_id(credential);
                        }
                    }
                }
                Some((_, credentials)) => self.value(credentials.trim()),
                None => self.value(value),
            },
            _ if KEY_HEADERS.contains(&name) => self.value(value),
            _ => {}
        }
    }

    /// A request target's query string.
    pub fn query(&mut self, query: &str) {
        for pair in query.split('&') {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if name == "x-amz-credential" {
                self.access_key_id(&percent_decoded(value));
            } else if KEY_PARAMETERS.contains(&name.as_str()) {
                self.value(&percent_decoded(value));
            }
        }
    }

    /// `user:password` (Basic, or a URL's userinfo): the pair, the password alone, and the
    /// user alone (a token as the user name).
    pub fn userinfo(&mut self, pair: &str) {
        self.value(pair);
        if let Some((user, password)) = pair.split_once(':') {
            self.value(user);
            self.value(password);
        }
    }

    /// SigV4's `Credential=<key id>/<date>/<region>/<service>/aws4_request`: the key id.
    fn access_key_id(&mut self, credential: &str) {
        let id = credential.split('/').next().unwrap_or_default();
        self.value(id);
    }

    /// The request, with `path` redacted as a command line is (a token in `/bot<token>/...`).
    pub fn finish(self, method: &str, path: &str) -> Sent {
        let path = self
            .secrets
            .redact_argv(&[path.to_owned()], false)
            .pop()
            .unwrap_or_default();
        Sent {
            request: RequestRef {
                method: method.to_owned(),
                host: self.host,
                path,
            },
            prints: self.prints,
        }
    }
}

/// A request target split into its path and what it carries: the query's and, for an
/// absolute URI (to a proxy), the userinfo's credentials; a host named there too.
pub fn target<'t>(target: &'t str, carried: &mut Carried) -> &'t str {
    let (rest, query) = target.split_once('?').unwrap_or((target, ""));
    carried.query(query);
    let Some((_, after_scheme)) = rest.split_once("://") else {
        return rest;
    };
    let (authority, path) = after_scheme
        .find('/')
        .map_or((after_scheme, "/"), |at| after_scheme.split_at(at));
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        carried.userinfo(&percent_decoded(userinfo));
    }
    if carried.host.is_none() {
        carried.header("host", authority);
    }
    path
}
