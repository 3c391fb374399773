//! The files of agents and of more developer tools, as their tools write them. Each reader
//! names where the format is documented or read by its tool; like the readers in `contents`,
//! each takes only the fields that name hosts or hold secrets.
use serde_json::Value;

use super::{Contents, key_values, yaml_like};

/// Keys whose string values are secrets, in the JSON files below.
const JSON_SECRETS: &[&str] = &[
    // Claude Code, ~/.claude/.credentials.json: claudeAiOauth.{accessToken, refreshToken}
    // and mcpOAuth entries (code.claude.com/docs/en/authentication); ~/.claude.json may hold
    // primaryApiKey.
    "accessToken",
    "refreshToken",
    "primaryApiKey",
    // Codex CLI, $CODEX_HOME/auth.json: OPENAI_API_KEY and tokens.{id_token, access_token,
    // refresh_token} (openai/codex codex-rs/login/src/auth/storage.rs); its MCP OAuth file
    // .credentials.json, the same names. Gemini CLI, ~/.gemini/oauth_creds.json (google-auth
    // Credentials: access_token, refresh_token; gemini-cli code_assist/oauth2.ts).
    "OPENAI_API_KEY",
    "id_token",
    "access_token",
    "refresh_token",
    // GitHub Copilot, ~/.config/github-copilot/{hosts,apps}.json: "<host>[:<app>]".oauth_token
    // (zed-industries/zed crates/copilot; zbirenbaum/copilot.lua lua/copilot/auth).
    "oauth_token",
    // Terraform, ~/.terraform.d/credentials.tfrc.json: credentials."<host>".token
    // (developer.hashicorp.com/terraform/cli/commands/login).
    "token",
];

/// Keys whose string values are URLs or hosts.
const JSON_HOSTS: &[&str] = &["server_url", "serverUrl", "url", "httpUrl"];

/// Every string under a key of `JSON_SECRETS` as a secret, every `JSON_HOSTS` value as a host,
/// at any depth; and the keys of the objects under `host_maps` (Copilot's top level, Terraform's
/// `credentials`) as hosts, cut at a `:` (Copilot's `github.com:Iv1...`).
pub fn json_tokens(text: &str, c: &mut Contents, host_maps: &[&str]) {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return;
    };
    walk(&value, c, 0);
    for key in host_maps {
        let map = if key.is_empty() {
            value.as_object()
        } else {
            value.get(key).and_then(Value::as_object)
        };
        for name in map.into_iter().flat_map(|m| m.keys()) {
            c.host(name.split(':').next().unwrap_or(name));
        }
    }
}

/// JSON nests no deeper than this in the files above; deeper is not followed (a hostile file
/// cannot recurse keytrail's stack away).
const MAX_DEPTH: usize = 16;

fn walk(value: &Value, c: &mut Contents, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::String(s) if JSON_SECRETS.contains(&key.as_str()) => {
                        c.secret(s);
                        // An OAuth refresh token keeps the login alive however short-lived
                        // its access token is.
                        if key.to_ascii_lowercase().starts_with("refresh") {
                            c.lives(Some(crate::vocab::Lifetime::Long));
                        }
                    }
                    Value::String(s) if JSON_HOSTS.contains(&key.as_str()) => c.host(s),
                    _ => walk(v, c, depth + 1),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, c, depth + 1)),
        _ => {}
    }
}

/// RubyGems, ~/.gem/credentials (YAML): `:rubygems_api_key: KEY` for rubygems.org, and
/// `https://host: KEY` for other hosts (rubygems lib/rubygems/config_file.rb).
pub fn rubygems(text: &str, c: &mut Contents) {
    for line in text.lines().map(str::trim) {
        let line = line.strip_prefix(':').unwrap_or(line);
        // A host key holds a `:` of its own (`https://host`): split at the last `: `.
        let Some((key, value)) = line.rsplit_once(": ") else {
            continue;
        };
        let key = key.trim().trim_matches(['"', '\'']);
        if key == "rubygems_api_key" {
            c.secret(value);
        } else if key.starts_with("http") {
            c.host(key);
            c.secret(value);
        }
    }
}

/// Maven, ~/.m2/settings.xml: `<server>` entries' `<password>` and `<passphrase>`
/// (maven.apache.org/settings.html); servers are named by id, not host.
pub fn maven(text: &str, c: &mut Contents) {
    for tag in ["password", "passphrase"] {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut rest = text;
        while let Some(start) = rest.find(&open) {
            let after = &rest[start + open.len()..];
            let Some(end) = after.find(&close) else {
                break;
            };
            c.secret(&after[..end]);
            rest = &after[end + close.len()..];
        }
    }
}

/// Java properties whose names end like a secret's: Gradle's `<repo>Password`,
/// `<repo>Token`, ... in ~/.gradle/gradle.properties
/// (docs.gradle.org/current/samples/sample_publishing_credentials.html).
pub fn properties(text: &str, c: &mut Contents) {
    key_values(text, c, |key| {
        [
            "password",
            "token",
            "secret",
            "secretkey",
            "apikey",
            "authheadervalue",
        ]
        .iter()
        .any(|end| key.ends_with(end))
    });
}

/// ~/.pgpass: `hostname:port:database:username:password`, `\` escaping `:` and `\`, `*` any
/// (postgresql.org/docs/current/libpq-pgpass.html).
pub fn pgpass(text: &str, c: &mut Contents) {
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(ch) = chars.next() {
            match ch {
                '\\' => field.extend(chars.next()),
                ':' => fields.push(std::mem::take(&mut field)),
                _ => field.push(ch),
            }
        }
        fields.push(field);
        if let [host, _port, _db, _user, password] = fields.as_slice() {
            if host != "*" {
                c.host(host);
            }
            c.secret(password);
        }
    }
}

/// INI files with a host and secrets per section: ~/.my.cnf (`host`, `password`;
/// dev.mysql.com/doc/refman/en/option-files.html), ~/.databrickscfg (`host`, `token`,
/// `password`, `client_secret`; docs.databricks.com/dev-tools/auth/config-profiles.html),
/// ~/.oci/config (`pass_phrase`; the key itself is a file of its own,
/// docs.oracle.com/iaas/Content/API/Concepts/sdkconfig.htm), Hugging Face's `stored_tokens`
/// (`hf_token`; huggingface_hub constants.py).
pub fn ini(text: &str, c: &mut Contents) {
    for line in text.lines().map(str::trim) {
        if let Some((key, value)) = line.split_once('=')
            && key.trim() == "host"
        {
            c.host(value);
        }
    }
    key_values(text, c, |key| {
        matches!(
            key,
            "password" | "token" | "client_secret" | "pass_phrase" | "hf_token"
        )
    });
}

/// doctl, ~/.config/doctl/config.yaml: `access-token`, and `auth-contexts` of `name: token`
/// (digitalocean/doctl commands/auth.go); `api-url` names the host.
pub fn doctl(text: &str, c: &mut Contents) {
    yaml_like(text, c, &["api-url"], &["access-token"]);
    let mut in_contexts = false;
    for line in text.lines() {
        if !line.starts_with([' ', '\t']) {
            in_contexts = line.trim_end() == "auth-contexts:";
        } else if in_contexts && let Some((_, token)) = line.split_once(':') {
            c.secret(token);
        }
    }
}

/// aider, ~/.aider.conf.yml: keys named like its flags, `openai-api-key`, `anthropic-api-key`,
/// and `api-key` entries `provider=KEY` (Aider-AI/aider aider/args.py).
pub fn aider(text: &str, c: &mut Contents) {
    yaml_like(
        text,
        c,
        &["openai-api-base"],
        &["openai-api-key", "anthropic-api-key"],
    );
    for line in text.lines().map(str::trim) {
        let entry = line
            .strip_prefix("- ")
            .or_else(|| line.strip_prefix("api-key:"))
            .map(str::trim);
        if let Some((_, key)) = entry.and_then(|e| e.split_once('=')) {
            c.secret(key);
        }
    }
}

/// Helm's repositories.yaml: `url` and `password` per repository (helm pkg/repo/chartrepo.go);
/// its registry/config.json is docker's format.
pub fn helm(text: &str, c: &mut Contents) {
    if text.trim_start().starts_with('{') {
        super::json(text, c);
    } else {
        yaml_like(text, c, &["url"], &["password"]);
    }
}

/// cargo, $CARGO_HOME/credentials.toml: `token` under `[registry]` and `[registries.NAME]`
/// (doc.rust-lang.org/cargo/commands/cargo-login.html).
pub fn cargo(text: &str, c: &mut Contents) {
    key_values(text, c, |key| key == "token");
}
