//! Proof of use on requests as clients write them: HTTP/1 heads, HTTP/2 frames with HPACK
//! (encoded here as a client's encoder would), SigV4, presigned URLs and userinfo, and a TLS
//! connection's writes put together.
use loona_hpack::Encoder;

use super::*;
use crate::fingerprint::Fingerprinter;

fn secrets() -> Secrets {
    Secrets::new(Fingerprinter::with_key(3))
}

/// An HTTP/2 client's first bytes: the preface and SETTINGS, then HEADERS for `headers`,
/// its block split into a HEADERS frame (padded, with priority) and a CONTINUATION.
fn h2_request(headers: &[(&str, &str)]) -> (Vec<u8>, Vec<u8>) {
    let mut first = http2_preface_and_settings();
    let block = Encoder::new().encode(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    let (a, b) = block.split_at(block.len() / 2);
    // HEADERS: PADDED | PRIORITY, 2 bytes of padding, 5 of priority.
    let mut payload = vec![2];
    payload.extend([0, 0, 0, 0, 16]);
    payload.extend(a);
    payload.extend([0, 0]);
    let mut second = frame(0x1, 0x8 | 0x20, 1, &payload);
    second.extend(frame(0x9, 0x4, 1, b));
    // The preface write ends with the first half of the request: a frame split across writes.
    let cut = second.len() / 3;
    first.extend(&second[..cut]);
    (first, second[cut..].to_vec())
}

fn http2_preface_and_settings() -> Vec<u8> {
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]));
    bytes.extend(frame(0x8, 0, 0, &[0, 1, 0, 0]));
    bytes
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

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

#[test]
fn an_http2_request_across_writes_gives_its_authority_path_and_credentials() {
    let secrets = secrets();
    let (first, second) = h2_request(&[
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "api.example.com:8443"),
        (":path", "/v1/chat?api_key=tok-h2-query"),
        ("authorization", "Bearer tok-h2-bearer"),
        ("x-api-key", "tok-h2-key"),
    ]);
    let mut writes = TlsWrites::default();
    assert!(
        writes.on_write(7, 0, &first, 1, &secrets).is_none(),
        "not whole yet"
    );
    let sent = writes
        .on_write(7, 1, &second, 2, &secrets)
        .expect("the request");
    assert_eq!(sent.request.method, "POST");
    assert_eq!(sent.request.host.as_deref(), Some("api.example.com"));
    assert_eq!(sent.request.path, "/v1/chat");
    for value in ["tok-h2-query", "tok-h2-bearer", "tok-h2-key"] {
        assert!(sent.prints.contains(&secrets.fingerprint(value)), "{value}");
    }
    // A write lost on the way (the index jumps): nothing is made of the rest.
    let mut writes = TlsWrites::default();
    assert!(writes.on_write(8, 0, &first, 1, &secrets).is_none());
    assert!(writes.on_write(8, 2, &second, 2, &secrets).is_none());
    // Whole in one write.
    let mut whole = first.clone();
    whole.extend(&second);
    assert!(
        TlsWrites::default()
            .on_write(9, 0, &whole, 1, &secrets)
            .is_some()
    );
}

#[test]
fn http1_writes_are_read_each_so_a_retry_after_401_is_seen() {
    let secrets = secrets();
    let mut writes = TlsWrites::default();
    let first = writes
        .on_write(
            3,
            0,
            b"GET /repo/info/refs HTTP/1.1\r\nHost: git.example\r\n\r\n",
            1,
            &secrets,
        )
        .unwrap();
    assert!(first.prints.is_empty());
    let retry = writes
        .on_write(
            3,
            1,
            b"GET /repo/info/refs HTTP/1.1\r\nHost: git.example\r\nAuthorization: Basic Ym90OnRvay1naXQ=\r\n\r\n",
            2,
            &secrets,
        )
        .unwrap();
    assert!(retry.prints.contains(&secrets.fingerprint("tok-git")));
    // Another protocol over TLS gives nothing, and is not kept.
    assert!(
        writes
            .on_write(4, 0, b"\x00\x01binary", 1, &secrets)
            .is_none()
    );
    assert!(
        writes
            .on_write(4, 1, b"GET / HTTP/1.1\r\n\r\n", 1, &secrets)
            .is_some()
    );
}

#[test]
fn sigv4_presigned_urls_and_userinfo_carry_what_names_the_credential() {
    let secrets = secrets();
    let head = b"POST / HTTP/1.1\r\nHost: sts.amazonaws.com\r\nAuthorization: AWS4-HMAC-SHA256 \
                 Credential=AKIAKTTEST00000000001/20261202/us-east-1/sts/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=0123abcd\r\n\r\n";
    let sent = inspect(head, &secrets).unwrap();
    assert_eq!(sent.prints, [secrets.fingerprint("AKIAKTTEST00000000001")]);
    let presigned = b"GET /bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAKTTEST00000000002%2F20261202%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=ff HTTP/1.1\r\n\r\n";
    let sent = inspect(presigned, &secrets).unwrap();
    assert_eq!(sent.prints, [secrets.fingerprint("AKIAKTTEST00000000002")]);
    assert_eq!(sent.request.path, "/bucket/key");
    let proxied = b"GET http://bot:tok-userinfo@registry.example/v2/ HTTP/1.1\r\n\r\n";
    let sent = inspect(proxied, &secrets).unwrap();
    assert!(sent.prints.contains(&secrets.fingerprint("tok-userinfo")));
    assert_eq!(sent.request.host.as_deref(), Some("registry.example"));
    assert_eq!(sent.request.path, "/v2/");
}

#[test]
fn broken_http2_is_nothing_and_no_panic() {
    let secrets = secrets();
    let mut bytes = http2_preface_and_settings();
    // A HEADERS frame whose padding is longer than the frame.
    bytes.extend(frame(0x1, 0x8 | 0x4, 1, &[200, 1, 2]));
    assert!(
        TlsWrites::default()
            .on_write(1, 0, &bytes, 1, &secrets)
            .is_none()
    );
    // A header block that is not HPACK.
    let mut bytes = http2_preface_and_settings();
    bytes.extend(frame(0x1, 0x4, 1, &[0xff, 0xff, 0xff, 0xff, 0xff]));
    assert!(
        TlsWrites::default()
            .on_write(1, 0, &bytes, 1, &secrets)
            .is_none()
    );
    // Every cut of a good request.
    let (first, second) = h2_request(&[(":method", "GET"), (":path", "/")]);
    let mut whole = first;
    whole.extend(second);
    for cut in 0..whole.len() {
        let _ = TlsWrites::default().on_write(1, 0, &whole[..cut], 1, &secrets);
    }
}
