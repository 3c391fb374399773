//! The shapes on the arguments the review found printed in clear, and on generated secrets in
//! generated argument shapes.
use super::*;
use crate::testing::Rng;

fn redacted(args: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    redact(&mut argv);
    argv
}

#[test]
fn the_shapes_the_review_found_are_redacted() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "git",
                "clone",
                "https://x-access-token:ghp_abcdefgh12345678@github.com/o/r",
            ],
            "ghp_abcdefgh12345678",
        ),
        (&["psql", "postgres://app:pw-4412@db:5432/app"], "pw-4412"),
        (
            &["git", "clone", "https://tok4412tok4412@github.com/o/r"],
            "tok4412tok4412",
        ),
        (
            &["curl", "https://api.example/x?password=pw4412&z=1"],
            "pw4412",
        ),
        (
            &["curl", "https://api.example/x?a=1&token=tk4412"],
            "tk4412",
        ),
        (&["curl", "-u", "alice:pw4412", "https://x"], "pw4412"),
        (&["curl", "-ualice:pw4412", "https://x"], "pw4412"),
        (&["sshpass", "-p", "pw4412", "ssh", "host"], "pw4412"),
        (&["mysql", "-ppw4412", "-u", "root"], "pw4412"),
        (&["curl", "-H", "Authorization:Bearer bt4412"], "bt4412"),
        (&["curl", "-H", "Authorization: Bearer bt4412"], "bt4412"),
        (&["curl", "-H", "X-Api-Key: ak4412"], "ak4412"),
        (
            &[
                "tool",
                r#"{"user":"a","password":"pw4412","token":"tk4412"}"#,
            ],
            "pw4412",
        ),
        (
            &[
                "tool",
                r#"{"user":"a","password":"pw4412","token":"tk4412"}"#,
            ],
            "tk4412",
        ),
        (
            &["env", "user=a", "password=pw4412", "token=tk4412"],
            "tk4412",
        ),
        (&["tool", "a=1,password=pw4412,b=2"], "pw4412"),
        (
            &["env", "DATABASE_URL=postgres://app:pw4412@db/app"],
            "pw4412",
        ),
        (&["wget", "--password=pw4412", "https://x"], "pw4412"),
    ];
    for (args, secret) in cases {
        let out = redacted(args).join(" ");
        assert!(!out.contains(secret), "{secret} left in {out}");
        assert!(out.contains(REDACTED), "{out}");
    }
    // What is not a secret stays readable.
    assert_eq!(
        redacted(&[
            "curl",
            "-v",
            "https://api.example:8443/path?page=2",
            "host:8080"
        ]),
        [
            "curl",
            "-v",
            "https://api.example:8443/path?page=2",
            "host:8080"
        ]
    );
    assert_eq!(
        redacted(&["postgres://app:pw4412@db/app"])[0],
        "postgres://app:pw4412@db/app",
        "argv[0] is the program, never redacted"
    );
}

/// A secret: letters, digits and the punctuation tokens carry, 10-40 characters.
fn secret(rng: &mut Rng) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./+";
    let len = 10 + rng.below(31);
    (0..len)
        .map(|_| CHARS[rng.below(CHARS.len())] as char)
        .collect()
}

#[test]
fn generated_secrets_in_generated_shapes_never_come_out() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..5000 {
        let secret = secret(&mut rng);
        let key = rng.pick(&[
            "password",
            "token",
            "api_key",
            "secret",
            "PASSWORD",
            "access_token",
        ]);
        let header = rng.pick(&[
            "Authorization",
            "X-Api-Key",
            "Proxy-Authorization",
            "Cookie",
        ]);
        let scheme = rng.pick(&["https", "http", "postgres", "mysql", "redis", "amqp"]);
        let args: Vec<String> = match rng.next() % 12 {
            0 => vec!["tool".into(), format!("--{key}"), secret.clone()],
            1 => vec!["tool".into(), format!("--{key}={secret}")],
            2 => vec!["curl".into(), "-H".into(), format!("{header}: {secret}")],
            3 => vec![
                "curl".into(),
                "-H".into(),
                format!("{header}:Bearer {secret}"),
            ],
            4 => vec![
                "x".into(),
                format!("{scheme}://user:{secret}@host.example/db"),
            ],
            5 => vec![
                "x".into(),
                format!("https://h.example/p?a=1&{key}={secret}&b=2"),
            ],
            6 => vec!["curl".into(), "-u".into(), format!("user:{secret}")],
            7 => vec!["sshpass".into(), "-p".into(), secret.clone(), "ssh".into()],
            8 => vec!["mysql".into(), format!("-p{secret}")],
            9 => vec!["x".into(), format!(r#"{{"id":1,"{key}":"{secret}"}}"#)],
            10 => vec!["env".into(), "a=1".into(), format!("{key}={secret}")],
            _ => vec![
                "x".into(),
                "Authorization:".into(),
                "Bearer".into(),
                secret.clone(),
            ],
        };
        let mut argv = args.clone();
        redact(&mut argv);
        assert!(
            !argv.join(" ").contains(&secret),
            "case {case}: {secret} left in {argv:?} (from {args:?})"
        );
    }
}
