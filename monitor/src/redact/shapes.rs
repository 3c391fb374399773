//! Secrets found by their shape, without knowing them: what a command line holds where a
//! secret goes. Each shape is a rule of its own below; `redact` applies them all.
//! - the argument after a secret flag (`--password X`, `--token X`), and the password of
//!   `-u user:pw` / `--user user:pw` (curl, wget) and `sshpass -p X`;
//! - a secret attached to its flag (`--token=X`, `-pX` for the mysql tools, `-uuser:pw`);
//! - header arguments with a secret-sounding name (`Authorization:Bearer x`, `X-Api-Key: k`);
//! - URL userinfo (`https://x-access-token:ghp_...@github.com`, `postgres://app:pw@db`);
//! - `key=value` pairs with a secret-sounding key, alone or in lists and query strings
//!   (`?password=`, `a=1&token=2`, `user=a password=b`), and JSON `"key": "value"` pairs;
//! - the word after `Bearer`, `Basic` or `token`, and tokens with well-known prefixes (`ghp_`,
//!   `AKIA`, ...).
//!
//! It errs on the side of redacting: a port after `sshpass -p` hides nothing anyone needs.
use super::REDACTED;

/// Key or header names that say their value is a secret.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "token",
    "secret",
    "apikey",
    "api_key",
    "api-key",
    "auth",
    "cookie",
    "credential",
    "signature",
    "sig",
    "private",
    "session",
    "key",
];

/// Prefixes of well-known token formats, with at least 8 more characters after them.
const PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghs_",
    "ghu_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "sk-",
    "npm_",
    "pypi-",
    "AKIA",
    "ASIA",
    "hvs.",
];

/// Programs whose `-p` takes a password (the next argument, or attached for the mysql tools).
const PASSWORD_NEXT_P: &[&str] = &["sshpass"];
const PASSWORD_ATTACHED_P: &[&str] = &[
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mariadb",
    "mariadb-dump",
];
/// Programs whose `-u`/`--user` takes `user:password`.
const USER_PASSWORD: &[&str] = &["curl", "wget"];

fn secret_word(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// Redacts secret shapes in `argv` (argv[0] is the program).
pub fn redact(argv: &mut [String]) {
    let program = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_owned())
        .unwrap_or_default();
    let program = program.as_str();
    let mut next = Next::Plain;
    for arg in argv.iter_mut().skip(1) {
        let this = std::mem::replace(&mut next, Next::Plain);
        match this {
            // Whatever follows a secret flag, even what looks like a flag: a password may start
            // with `-`.
            Next::Secret => {
                *arg = REDACTED.to_owned();
                continue;
            }
            Next::UserPassword => {
                *arg = redact_after_colon(arg);
                continue;
            }
            _ => {}
        }
        let attached = redact_attached(program, arg);
        if attached != *arg {
            *arg = attached;
            continue;
        }
        next = flag_takes(program, arg);
        if next == Next::Plain {
            *arg = redact_text(arg);
        }
    }
}

/// What the argument after a flag is.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Plain,
    Secret,
    UserPassword,
}

/// Words that say a secret follows them (`Authorization: Bearer TOKEN`).
const AUTH_SCHEMES: &[&str] = &["bearer", "basic", "token", "digest", "negotiate"];

fn flag_takes(program: &str, arg: &str) -> Next {
    // An auth scheme as the last word of an argument: the next argument is its secret.
    let last_word = arg.rsplit([' ', ':']).next().unwrap_or(arg);
    if AUTH_SCHEMES.contains(&last_word.to_ascii_lowercase().as_str()) {
        return Next::Secret;
    }
    if USER_PASSWORD.contains(&program) && matches!(arg, "-u" | "--user" | "--proxy-user") {
        return Next::UserPassword;
    }
    if PASSWORD_NEXT_P.contains(&program) && arg == "-p" {
        return Next::Secret;
    }
    let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
        return Next::Plain;
    };
    if !name.contains('=') && name.len() > 1 && secret_word(name) {
        Next::Secret
    } else {
        Next::Plain
    }
}

/// A secret attached to its flag: `-pSECRET` (mysql tools), `-uuser:pw` (curl).
fn redact_attached(program: &str, arg: &str) -> String {
    if PASSWORD_ATTACHED_P.contains(&program)
        && let Some(rest) = arg.strip_prefix("-p")
        && !rest.is_empty()
    {
        return format!("-p{REDACTED}");
    }
    if USER_PASSWORD.contains(&program)
        && let Some(rest) = arg.strip_prefix("-u")
        && rest.contains(':')
    {
        return format!("-u{}", redact_after_colon(rest));
    }
    arg.to_owned()
}

fn redact_after_colon(text: &str) -> String {
    match text.split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        None => text.to_owned(),
    }
}

/// The shapes that can sit anywhere in one argument.
fn redact_text(arg: &str) -> String {
    if let Some(header) = redact_header(arg) {
        return header;
    }
    let text = redact_userinfo(arg);
    let text = redact_json_pairs(&text);
    redact_words(&text)
}

/// `Name: value` or `Name:value` with a secret-sounding header name: the whole value goes.
fn redact_header(arg: &str) -> Option<String> {
    let (name, value) = arg.split_once(':')?;
    let is_header_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !is_header_name || value.trim().is_empty() || value.starts_with("//") || !secret_word(name) {
        return None;
    }
    // The scheme (`Bearer`, `Basic`, ...) is kept: it says what kind of secret was there.
    let trimmed = value.trim_start();
    let lead = &value[..value.len() - trimmed.len()];
    let scheme = trimmed
        .split_once(' ')
        .map(|(scheme, _)| scheme)
        .filter(|s| AUTH_SCHEMES.contains(&s.to_ascii_lowercase().as_str()))
        .map(|s| format!("{s} "))
        .unwrap_or_default();
    Some(format!("{name}:{lead}{scheme}{REDACTED}"))
}

/// `scheme://userinfo@host`: the password, or a lone user that may be a token, goes. The
/// userinfo runs to the last `@` of the URL when a `:` comes before any `/` (a password may hold
/// a raw `/`), else to an `@` before the first `/`.
fn redact_userinfo(arg: &str) -> String {
    let words: Vec<String> = arg.split(' ').map(redact_url_userinfo).collect();
    words.join(" ")
}

fn redact_url_userinfo(word: &str) -> String {
    let Some(at) = word.find("://") else {
        return word.to_owned();
    };
    let (scheme, url) = word.split_at(at + 3);
    let colon = url.find(':');
    let slash = url.find(['/', '?', '#']);
    let userinfo_end = match (colon, slash) {
        (Some(c), Some(s)) if c < s => url.rfind('@'),
        (_, Some(s)) => url[..s].rfind('@'),
        (_, None) => url.rfind('@'),
    };
    let Some(end) = userinfo_end else {
        return word.to_owned();
    };
    let userinfo = match url[..end].split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        None => REDACTED.to_owned(),
    };
    format!("{scheme}{userinfo}{}", &url[end..])
}

/// JSON `"key": "value"` pairs with a secret-sounding key.
fn redact_json_pairs(text: &str) -> String {
    if !text.contains('"') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // A quoted key, a colon, a quoted value.
    while let Some(open) = rest.find('"') {
        let Some(close) = rest[open + 1..].find('"').map(|i| open + 1 + i) else {
            break;
        };
        let key = &rest[open + 1..close];
        let after_key = &rest[close + 1..];
        let trimmed = after_key.trim_start();
        let value = trimmed
            .strip_prefix(':')
            .map(str::trim_start)
            .and_then(|v| v.strip_prefix('"'))
            .and_then(|v| v.find('"').map(|end| (v, end)));
        match value {
            Some((v, end)) if secret_word(key) => {
                let value_start = text.len() - v.len(); // offset of the value in `text`
                let consumed = text.len() - rest.len();
                out.push_str(&text[consumed..value_start]);
                out.push_str(REDACTED);
                rest = &v[end..];
            }
            _ => {
                out.push_str(&rest[..=close]);
                rest = &rest[close + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Words separated by spaces: `key=value` pairs (in query strings and lists too), the word
/// after an auth scheme, and tokens with well-known prefixes.
fn redact_words(text: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut after_scheme = false;
    for word in text.split(' ') {
        let redacted = if after_scheme && !word.is_empty() {
            REDACTED.to_owned()
        } else {
            redact_pairs(word)
        };
        let last = word.rsplit(':').next().unwrap_or(word).to_ascii_lowercase();
        after_scheme = AUTH_SCHEMES.contains(&last.as_str());
        words.push(redacted);
    }
    words.join(" ")
}

/// One word: `k=v` pairs separated by `&`, `;`, `,` or `?` (a query string, a list) each with
/// its value redacted when its key sounds secret; a known token prefix redacts the whole part.
fn redact_pairs(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut part_start = 0;
    for (i, c) in word.char_indices().chain([(word.len(), '&')]) {
        if !matches!(c, '&' | ';' | ',' | '?') {
            continue;
        }
        out.push_str(&redact_part(&word[part_start..i.min(word.len())]));
        if i < word.len() {
            out.push(c);
        }
        part_start = i + c.len_utf8();
    }
    out
}

fn redact_part(part: &str) -> String {
    if let Some((key, value)) = part.split_once(['=', ':'])
        && !value.is_empty()
        && !(part.as_bytes()[key.len()] == b':' && value.starts_with("//")) // a URL's scheme
        && secret_word(key.rsplit(['/', '.']).next().unwrap_or(key))
    {
        let separator = &part[key.len()..key.len() + 1];
        return format!("{key}{separator}{REDACTED}");
    }
    if PREFIXES
        .iter()
        .any(|p| part.starts_with(p) && part.len() >= p.len() + 8)
    {
        return REDACTED.to_owned();
    }
    part.to_owned()
}

#[cfg(test)]
mod tests;
