use super::*;

/// The first bytes `openssl s_client -servername api.github.com` (OpenSSL 3.0) sent.
const OPENSSL_HELLO: &[u8] = include_bytes!("../testdata/client_hello_openssl.bin");

#[test]
fn a_recorded_client_hello_names_its_server() {
    assert_eq!(
        server_name(OPENSSL_HELLO),
        Hello::ServerName("api.github.com".into())
    );
}

#[test]
fn every_cut_of_a_hello_is_incomplete_or_already_named() {
    for len in 0..OPENSSL_HELLO.len() {
        match server_name(&OPENSSL_HELLO[..len]) {
            Hello::Incomplete | Hello::ServerName(_) => {}
            other => panic!("cut at {len}: {other:?}"),
        }
    }
}

#[test]
fn other_protocols_and_corruptions_do_not_name_anything_wrongly() {
    assert_eq!(server_name(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
    assert_eq!(server_name(b"SSH-2.0-OpenSSH_9.2\r\n"), Hello::NotTls);
    // A complete record whose inner lengths run past its end.
    assert_eq!(
        server_name(b"\x16\x03\x01\x00\x06\x01\x00\x00\xff\x03\x03"),
        Hello::NotTls
    );
    for i in 0..OPENSSL_HELLO.len() {
        let mut bad = OPENSSL_HELLO.to_vec();
        bad[i] ^= 0x5a;
        if let Hello::ServerName(name) = server_name(&bad) {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            );
        }
    }
}

#[test]
fn names_with_other_characters_are_refused() {
    assert_eq!(
        valid_host(b"API.GitHub.com."),
        Some("api.github.com".into())
    );
    assert_eq!(valid_host(b"evil\ncom"), None);
    assert_eq!(valid_host(b""), None);
    assert_eq!(valid_host(&[b'a'; 300]), None);
}
