//! What a secret's shape says of it: the service it is for, and whether it lives long (a key
//! or a personal token, good until revoked) or briefly (a session, an installation token, an
//! OAuth access token that expires). Prefixes are the services' own, documented:
//! AWS access key ids (docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html:
//! AKIA long-term, ASIA temporary), GitHub tokens (github.blog 2021-04-05 "Behind GitHub's new
//! authentication token formats": ghp_/github_pat_ personal, gho_ OAuth, ghu_ user-to-server,
//! ghs_ server-to-server, ghr_ refresh), Anthropic (sk-ant-api keys, sk-ant-oat OAuth access,
//! sk-ant-ort OAuth refresh), OpenAI (sk-...), Hugging Face (hf_), npm (npm_), PyPI (pypi-),
//! DigitalOcean (dop_v1_), GitLab (glpat-), Slack (xox?-). A JWT says when it expires itself.
use crate::vocab::{Kind, Lifetime};

/// The kind (when the shape names a service keytrail has a kind for) and the lifetime of a
/// secret, when its shape says; None when it says nothing.
pub fn of(secret: &str) -> Option<(Option<Kind>, Lifetime)> {
    use Lifetime::{Long, Short};
    let secret = secret.trim();
    let prefixed: &[(&str, Option<Kind>, Lifetime)] = &[
        ("AKIA", Some(Kind::Aws), Long),
        ("ASIA", Some(Kind::Aws), Short),
        ("ghp_", Some(Kind::Github), Long),
        ("github_pat_", Some(Kind::Github), Long),
        ("ghr_", Some(Kind::Github), Long),
        ("gho_", Some(Kind::Github), Short),
        ("ghu_", Some(Kind::Github), Short),
        ("ghs_", Some(Kind::Github), Short),
        ("sk-ant-oat", Some(Kind::Anthropic), Short),
        ("sk-ant-ort", Some(Kind::Anthropic), Long),
        ("sk-ant-", Some(Kind::Anthropic), Long),
        ("sk-", Some(Kind::Openai), Long),
        ("hf_", Some(Kind::Huggingface), Long),
        ("npm_", Some(Kind::Npm), Long),
        ("pypi-", Some(Kind::Pypi), Long),
        ("dop_v1_", Some(Kind::Digitalocean), Long),
        ("glpat-", None, Long),
        ("xoxb-", None, Long),
        ("xoxp-", None, Long),
    ];
    if let Some((_, kind, lifetime)) = prefixed
        .iter()
        .find(|(prefix, ..)| secret.starts_with(prefix) && secret.len() > prefix.len() + 8)
    {
        return Some((*kind, *lifetime));
    }
    jwt_lifetime(secret).map(|lifetime| (None, lifetime))
}

/// A JWT lives as long as its claims say: short when it expires (`exp`) within a week of being
/// issued (`iat`, or when there is none), long past that or when it never expires.
fn jwt_lifetime(secret: &str) -> Option<Lifetime> {
    const WEEK_S: f64 = 7.0 * 24.0 * 3600.0;
    let mut parts = secret.split('.');
    let (Some(header), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if !header.starts_with("eyJ") || payload.len() > 8192 {
        return None;
    }
    let claims: serde_json::Value = serde_json::from_slice(&base64(payload)?).ok()?;
    let claim = |name: &str| claims.get(name).and_then(serde_json::Value::as_f64);
    Some(match (claim("exp"), claim("iat")) {
        (Some(exp), Some(iat)) if exp - iat > WEEK_S => Lifetime::Long,
        (Some(_), _) => Lifetime::Short,
        (None, _) => Lifetime::Long,
    })
}

/// Base64 in either alphabet (standard, as Basic credentials use, or URL-safe, as JWTs do),
/// padding ignored; None on any other byte.
pub fn base64(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut held = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        held += 6;
        if held >= 8 {
            held -= 8;
            out.push((bits >> held) as u8);
            bits &= (1 << held) - 1;
        }
    }
    Some(out)
}

/// A credential's lifetime from all its secrets: long when any is (a refresh token keeps an
/// OAuth file alive however short its access token), short when all that say are short.
pub fn lifetime_of<'a>(secrets: impl IntoIterator<Item = &'a String>) -> Option<Lifetime> {
    let mut found = None;
    for secret in secrets {
        match of(secret).map(|(_, l)| l) {
            Some(Lifetime::Long) => return Some(Lifetime::Long),
            Some(Lifetime::Short) => found = Some(Lifetime::Short),
            None => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_say_service_and_lifetime() {
        use Lifetime::{Long, Short};
        let cases = [
            ("AKIAIOSFODNN7EXAMPLE", Some((Some(Kind::Aws), Long))),
            ("ASIAIOSFODNN7EXAMPLE", Some((Some(Kind::Aws), Short))),
            ("ghp_0123456789abcdefghij", Some((Some(Kind::Github), Long))),
            (
                "ghs_0123456789abcdefghij",
                Some((Some(Kind::Github), Short)),
            ),
            (
                "sk-ant-api03-0123456789ab",
                Some((Some(Kind::Anthropic), Long)),
            ),
            (
                "sk-ant-oat01-0123456789ab",
                Some((Some(Kind::Anthropic), Short)),
            ),
            ("sk-proj-0123456789abcdef", Some((Some(Kind::Openai), Long))),
            (
                "hf_0123456789abcdefghij",
                Some((Some(Kind::Huggingface), Long)),
            ),
            ("wJalrXUtnFEMI/K7MDENG", None),
            ("ghp_short", None),
        ];
        for (secret, expected) in cases {
            assert_eq!(of(secret), expected, "{secret}");
        }
    }

    #[test]
    fn a_jwt_says_its_lifetime_in_its_claims() {
        let jwt = |claims: &str| {
            let b64 = |s: &str| {
                const A: &[u8] =
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                let mut out = String::new();
                for chunk in s.as_bytes().chunks(3) {
                    let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b))
                        << (8 * (3 - chunk.len()));
                    for i in 0..=chunk.len() {
                        out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                    }
                }
                out
            };
            format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64(claims))
        };
        assert_eq!(
            of(&jwt(r#"{"iat":1000,"exp":4600}"#)),
            Some((None, Lifetime::Short))
        );
        assert_eq!(
            of(&jwt(r#"{"iat":1000,"exp":99999999}"#)),
            Some((None, Lifetime::Long))
        );
        assert_eq!(of(&jwt(r#"{"sub":"x"}"#)), Some((None, Lifetime::Long)));
        assert_eq!(of("eyJ.not-base64!.x"), None);
    }
}
