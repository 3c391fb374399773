//! What a credential file says about itself: the hosts it names (its scope) and its secret
//! values (fingerprinted by the caller, then dropped). Parsers are deliberately small: each
//! reads only the fields that name hosts or hold secrets, and skips what it does not know.
mod formats;
pub mod mcp;

use self::mcp::ToolServer;
use super::{Kind, shape};
use crate::vocab::Lifetime;

/// Deliberately not `Debug`: it holds secret values.
#[derive(Default)]
pub struct Contents {
    pub hosts: Vec<String>,
    /// Secret values. Never printed, logged or stored: fingerprint them and drop them.
    pub secrets: Vec<String>,
    /// Values that are not secret but name the credential where it is used: an AWS access key
    /// id, which a SigV4 signature carries in the clear instead of the secret (proof of use).
    pub identifiers: Vec<String>,
    /// The tool servers an MCP configuration defines, with the secrets it gives each, and how
    /// many more it defines than are read (`mcp::MAX_SERVERS`).
    pub tools: Vec<ToolServer>,
    pub tools_dropped: usize,
    /// How long the credential lives: from its secrets' shapes, or from what else the file
    /// says (an OAuth refresh token, an AWS access key id).
    pub lifetime: Option<Lifetime>,
}

impl Contents {
    fn host(&mut self, url_or_host: &str) {
        if let Some(h) = host_of(url_or_host) {
            self.hosts.push(h);
        }
    }

    fn secret(&mut self, value: &str) {
        let value = value.trim().trim_matches('"').trim_matches('\'');
        if value.len() >= 6 {
            self.secrets.push(value.to_owned());
        }
    }

    /// What the file says of its lifetime besides its secrets' shapes: long wins.
    fn lives(&mut self, lifetime: Option<Lifetime>) {
        if self.lifetime != Some(Lifetime::Long) {
            self.lifetime = lifetime.or(self.lifetime);
        }
    }
}

pub fn inspect(kind: Kind, text: &str) -> Contents {
    let mut c = Contents::default();
    match kind {
        Kind::Aws => {
            key_values(text, &mut c, |k| {
                matches!(k, "aws_secret_access_key" | "aws_session_token")
            });
            // The key id says whether the key is long-term (AKIA) or temporary (ASIA).
            for line in text.lines() {
                if let Some((key, id)) = line.split_once('=')
                    && key.trim().eq_ignore_ascii_case("aws_access_key_id")
                {
                    c.lives(shape::of(id).map(|(_, lifetime)| lifetime));
                    let id = id.trim();
                    if !id.is_empty() {
                        c.identifiers.push(id.to_owned());
                    }
                }
            }
        }
        Kind::Netrc => netrc(text, &mut c),
        Kind::Git => {
            // git-credential-store writes `scheme://user:password@host` with every field
            // percent-encoded: a port is `host%3a8443`, a password `p%40ss`. Split first (the
            // encoded fields hold no raw `@` or `:`), then decode each.
            for line in text.lines() {
                if let Some((_, after)) = line.trim().split_once("://")
                    && let Some((userinfo, host)) = after.rsplit_once('@')
                {
                    c.host(&percent_decoded(host));
                    let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
                    c.secret(&percent_decoded(password));
                }
            }
        }
        Kind::Kube => yaml_like(
            text,
            &mut c,
            &["server"],
            &[
                "token",
                "client-key-data",
                "password",
                "refresh-token",
                "id-token",
            ],
        ),
        Kind::Github => {
            // gh's hosts.yml: top-level keys are hosts.
            for line in text.lines() {
                if !line.starts_with([' ', '\t', '#'])
                    && let Some(host) = line.trim().strip_suffix(':')
                {
                    c.host(host);
                }
            }
            yaml_like(text, &mut c, &[], &["oauth_token"]);
        }
        Kind::Docker | Kind::Gcp => json(text, &mut c),
        Kind::Npm => {
            for line in text.lines().map(str::trim) {
                let Some((key, value)) = line.split_once('=') else {
                    continue;
                };
                let key = key.trim();
                if key == "registry" || key.ends_with(":registry") {
                    c.host(value);
                }
                if let Some(scope) = key.strip_prefix("//") {
                    c.host(scope);
                }
                if key.ends_with("_authToken")
                    || key.ends_with("_auth")
                    || key.ends_with("_password")
                {
                    c.secret(value);
                }
            }
        }
        Kind::Pypi => {
            key_values(text, &mut c, |k| k == "password");
            for line in text.lines() {
                if let Some(("repository", url)) = line
                    .split_once(['=', ':'])
                    .map(|(k, v)| (k.trim(), v.trim()))
                {
                    c.host(url);
                }
            }
        }
        Kind::Dotenv => key_values(text, &mut c, |_| true),
        Kind::Anthropic | Kind::Openai | Kind::Gemini => {
            if text.trim_start().starts_with('{') {
                formats::json_tokens(text, &mut c, &[]);
            } else {
                // Gemini CLI's ~/.gemini/.env (gemini-cli packages/cli/src/config/settings.ts).
                key_values(text, &mut c, |k| {
                    k.ends_with("api_key") || k.ends_with("_token")
                });
            }
        }
        Kind::Copilot => formats::json_tokens(text, &mut c, &[""]),
        Kind::Terraform => formats::json_tokens(text, &mut c, &["credentials"]),
        Kind::Aider => formats::aider(text, &mut c),
        Kind::Mcp => mcp::mcp(text, &mut c),
        Kind::Cargo => formats::cargo(text, &mut c),
        Kind::Rubygems => formats::rubygems(text, &mut c),
        Kind::Maven => formats::maven(text, &mut c),
        Kind::Gradle => formats::properties(text, &mut c),
        Kind::Helm => formats::helm(text, &mut c),
        Kind::Postgres => formats::pgpass(text, &mut c),
        Kind::Mysql | Kind::Databricks | Kind::Oci => formats::ini(text, &mut c),
        Kind::Digitalocean => formats::doctl(text, &mut c),
        // Hugging Face's token file is the token alone; its stored_tokens is INI.
        Kind::Huggingface if text.contains("hf_token") => formats::ini(text, &mut c),
        // Whole-file secrets: a key, a token.
        Kind::Ssh | Kind::Vault | Kind::Azure | Kind::Huggingface | Kind::Generic => c.secret(text),
    }
    let from_secrets = shape::lifetime_of(&c.secrets);
    c.lives(from_secrets);
    c.hosts.sort();
    c.hosts.dedup();
    c
}

/// `%XX` escapes decoded (bytes that are not UTF-8 afterwards are replaced); a `%` not followed
/// by two hex digits stays as it is.
pub(crate) fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `key = value` / `key: value` / `KEY=value` lines; values of keys `secret` picks are secrets.
fn key_values(text: &str, c: &mut Contents, secret: impl Fn(&str) -> bool) {
    for line in text.lines().map(str::trim) {
        let line = line.strip_prefix("export ").unwrap_or(line);
        if line.starts_with(['#', ';', '[']) {
            continue;
        }
        if let Some((key, value)) = line.split_once(['=', ':'])
            && secret(&key.trim().to_ascii_lowercase())
        {
            c.secret(value);
        }
    }
}

/// netrc: whitespace-separated tokens, `machine NAME ... password SECRET`.
fn netrc(text: &str, c: &mut Contents) {
    let mut tokens = text.split_whitespace();
    while let Some(token) = tokens.next() {
        match token {
            "machine" => {
                if let Some(host) = tokens.next() {
                    c.host(host);
                }
            }
            "password" | "account" => {
                if let Some(secret) = tokens.next() {
                    c.secret(secret);
                }
            }
            _ => {}
        }
    }
}

/// Flat reading of YAML: `key: value` wherever it is indented.
fn yaml_like(text: &str, c: &mut Contents, host_keys: &[&str], secret_keys: &[&str]) {
    for line in text.lines() {
        let line = line.trim().trim_start_matches("- ");
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if host_keys.contains(&key.trim()) {
            c.host(value.trim());
        } else if secret_keys.contains(&key.trim()) {
            c.secret(value);
        }
    }
}

/// docker's config.json (`auths` keys are registries) and gcloud's JSON credentials.
fn json(text: &str, c: &mut Contents) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return c.secret(text); // not JSON after all: the whole file is the secret
    };
    if let Some(auths) = value.get("auths").and_then(|a| a.as_object()) {
        for (registry, entry) in auths {
            c.host(registry);
            for key in ["auth", "identitytoken", "password"] {
                if let Some(s) = entry.get(key).and_then(|v| v.as_str()) {
                    c.secret(s);
                }
            }
        }
    }
    for key in ["private_key", "refresh_token", "client_secret"] {
        if let Some(s) = value.get(key).and_then(|v| v.as_str()) {
            c.secret(s);
        }
    }
}

/// The host of a URL or of a bare `host[:port][/path]`, lowercased; `None` when there is none.
pub fn host_of(text: &str) -> Option<String> {
    let text = text.trim().trim_matches('"').trim_matches('\'');
    let rest = text.split_once("://").map_or(text, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty() && !host.contains(char::is_whitespace)).then_some(host)
}

#[cfg(test)]
mod tests;
