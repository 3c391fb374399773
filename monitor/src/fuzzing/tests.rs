//! A bounded fuzzing run on every `cargo test`: real inputs (events as the kernel programs
//! encode them, DNS messages hickory writes, OpenSSL's ClientHello, the default policy, a
//! recorded scenario), mutated a few thousand times each, fed to the entry points. A failure
//! names the case; `cargo fuzz` (fuzz/) goes on from here for as long as one likes.
use std::panic::{AssertUnwindSafe, catch_unwind};

use monitor_common::{AccessHook, EventKind};

use crate::{
    decode::encode,
    testing::{Rng, dns_answer, dns_query},
};

/// Bytes mutations like to meet: lengths at their edges, JSON and TOML punctuation.
const INTERESTING: &[u8] = b"\x00\xff\x7f\x80\x01\n\"{}[]=:,\\.#";

/// One to four random edits of `seed`: a byte set or a bit flipped, a cut, an insert, a run
/// of bytes copied elsewhere, or a length-like pair of bytes.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if at < v.len() => v[at] = rng.next() as u8,
            1 if at < v.len() => v[at] ^= 1 << rng.below(8),
            2 => v.truncate(at),
            3 => v.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            4 if !v.is_empty() => {
                let from = rng.below(v.len());
                let run: Vec<u8> = v[from..v.len().min(from + 1 + rng.below(64))].to_vec();
                v.splice(at..at, run);
            }
            _ => {
                let pair = *rng.pick(&[&[0xff, 0xff], &[0, 0], &[0x80, 0], &[0, 1]]);
                let end = (at + 2).min(v.len());
                v.splice(at..end, pair.iter().copied());
            }
        }
    }
    v
}

/// Runs `target` on `cases` mutations of the seeds; a panic names the case and its bytes.
fn fuzz(name: &str, target: fn(&[u8]), seeds: &[Vec<u8>], cases: usize) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for seed in seeds {
        target(seed);
    }
    for case in 0..cases {
        let input = mutate(&mut rng, &seeds[case % seeds.len()]);
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            panic!(
                "{name}: case {case} panicked on {} bytes: {input:02x?}",
                input.len()
            );
        }
    }
}

/// Payloads in the framing of `super::names`.
fn framed(payloads: &[(u8, u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (head, seq, data) in payloads {
        out.extend([*head, *seq, data.len() as u8]);
        out.extend_from_slice(data);
    }
    out
}

const HELLO: &[u8] = include_bytes!("../names/testdata/client_hello_openssl.bin");

#[test]
fn kernel_events_never_panic_the_decoder() {
    let seeds = [
        encode::exec(
            10,
            1,
            "python3",
            "/usr/bin/python3",
            &["python3", "-c", "x"],
        ),
        encode::exec_with_env(11, 1, "sh", "/bin/sh", &["sh"], b"A=1\0B_TOKEN=2\0", 0),
        encode::file_access(12, 8, 99, AccessHook::Read),
        encode::connect4(13, [10, 0, 0, 1], 443),
        encode::payload(
            EventKind::DnsAnswer,
            14,
            1,
            17,
            0,
            &dns_answer(1, "a.test.", [1; 4]),
        ),
        encode::payload(EventKind::TlsHello, 15, 2, 6, 7, HELLO),
    ];
    fuzz("decode", super::decode, &seeds, 50_000);
}

#[test]
fn packets_never_panic_name_learning() {
    let query = dns_query(7, "api.github.com.");
    let answer = dns_answer(7, "api.github.com.", [10, 0, 0, 10]);
    let tcp_query = [&(query.len() as u16).to_be_bytes()[..], &query].concat();
    let tcp_answer = [&(answer.len() as u16).to_be_bytes()[..], &answer].concat();
    let (hello_a, hello_b) = HELLO.split_at(240);
    let seeds = [
        framed(&[(0, 0, &query), (1, 0, &answer)]),
        framed(&[
            (0x80, 0, &tcp_query),
            (0x81, 1, &tcp_answer[..9]),
            (0x81, 1, &tcp_answer[9..]),
        ]),
        framed(&[
            (0x82, 0, hello_a),
            (0x82, 15, &hello_b[..hello_b.len().min(255)]),
        ]),
    ];
    fuzz("names", super::names, &seeds, 30_000);
    fuzz("tls_hello", super::tls_hello, &[HELLO.to_vec()], 30_000);
}

#[test]
fn credential_files_never_panic_their_readers() {
    let seeds: Vec<Vec<u8>> = [
        r#"{"mcpServers":{"github":{"command":"npx","args":["-y","s"],"env":{"GITHUB_TOKEN":"ghp_aaaaaaaaaaaaaaaaaaaa"}},"r":{"url":"https://h.example/mcp","headers":{"Authorization":"Bearer tok-123456"}}},"projects":{"/p":{"mcpServers":{}}}}"#,
        r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-x","refreshToken":"sk-ant-ort01-y"}}"#,
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = abcdefgh\n",
        "db.example:5432:app:app:pa\\:ss\n*:*:*:ro:ro-pass\n",
        "<settings><servers><server><password>p4ssword</password></server></servers></settings>",
        "access-token: dop_v1_aaaaaaaaaaaa\nauth-contexts:\n  w: dop_v1_bbbbbbbbbbbb\n",
        "[mcp_servers.s]\ncommand = \"s\"\nenv = { K_TOKEN = \"tok-abcdef\" }\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("credential_file", super::credential_file, &seeds, 3_000);
}

#[test]
fn request_heads_never_panic_proof() {
    let seeds = [
        b"GET /a?token=tok-1&x=2 HTTP/1.1\r\nHost: h.example:8080\r\nAuthorization: Basic dXNlcjpwYXNz\r\nX-Api-Key: k-123456\r\n\r\n".to_vec(),
        b"POST /v1 HTTP/1.0\r\nAuthorization: Bearer abc.def.ghi\r\n\r\n{}".to_vec(),
        // An HTTP/2 preface, SETTINGS, and HEADERS (GET /, indexed) across two writes.
        b"\x1aPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x02\x01\x05\x00\x00\x00\x01\x82\x84".to_vec(),
    ];
    fuzz("http_request", super::http_request, &seeds, 10_000);
}

#[test]
fn policy_files_never_panic_the_parser() {
    fuzz(
        "policy",
        super::policy,
        &[crate::policy::DEFAULT_TEXT.as_bytes().to_vec()],
        10_000,
    );
}

#[test]
fn recordings_never_panic_replay() {
    let recording = include_str!("../rules/scenarios/cross-context-handoff/events.ndjson");
    fuzz(
        "replay",
        super::replay,
        &[recording.as_bytes().to_vec()],
        5_000,
    );
}
