use super::*;
use crate::testing::{dns_answer as answer_to, dns_query as query};

const HELLO: &[u8] = include_bytes!("testdata/client_hello_openssl.bin");

fn answer(question: &str, ip: [u8; 4]) -> Vec<u8> {
    answer_to(1, question, ip)
}

fn payload(kind: PayloadKind, protocol: Protocol, seq: u32, data: &[u8]) -> Payload {
    Payload {
        kind,
        pid: 42,
        cookie: 9,
        protocol,
        seq,
        total_len: data.len(),
        data: data.to_vec(),
        peer: Some(crate::decode::encode::SERVER.into()),
        boot_ns: 1_000,
    }
}

#[test]
fn udp_answers_name_addresses_and_bad_packets_are_counted() {
    let mut n = Namer::new(crate::testing::resolvers());
    let udp = |data: &[u8]| payload(PayloadKind::DnsAnswer, Protocol::Udp, 0, data);
    let asked = |data: &[u8]| payload(PayloadKind::DnsQuery, Protocol::Udp, 0, data);
    n.on_payload(&asked(&query(1, "api.github.com.")));
    n.on_payload(&udp(&answer("api.github.com.", [10, 0, 0, 10])));
    n.on_payload(&udp(b"\xde\xad"));
    let mut cut = udp(&answer("x.example.", [10, 0, 0, 11])[..20]);
    cut.total_len = 3000;
    n.on_payload(&cut);
    let ip = "10.0.0.10".parse().unwrap();
    assert_eq!(
        n.lookup(ip, &[42], 2_000).as_deref(),
        Some("api.github.com")
    );
    assert_eq!(
        n.counts,
        NameCounts {
            dns_answers: 1,
            dns_malformed: 1,
            dns_truncated: 1,
            ..NameCounts::default()
        }
    );
}

/// A process can ask a server of its own choosing (`dig @203.0.113.9 api.github.com`) and get
/// any address it likes for the name: such an answer names nothing, whichever query it
/// answers. (That an answer comes from the server asked, the kernel checks, before NAT.)
#[test]
fn answers_from_a_server_the_host_did_not_set_name_nothing() {
    let mut n = Namer::new(crate::testing::resolvers());
    let chosen: IpAddr = "203.0.113.9".parse().unwrap();
    let from = |kind, server: IpAddr, data: &[u8]| Payload {
        peer: Some(server),
        ..payload(kind, Protocol::Udp, 0, data)
    };
    n.on_payload(&from(
        PayloadKind::DnsQuery,
        chosen,
        &query(1, "api.github.com."),
    ));
    n.on_payload(&from(
        PayloadKind::DnsAnswer,
        chosen,
        &answer("api.github.com.", [10, 0, 0, 66]),
    ));
    let trusted: IpAddr = crate::decode::encode::SERVER.into();
    n.on_payload(&from(
        PayloadKind::DnsQuery,
        trusted,
        &query(1, "api.github.com."),
    ));
    n.on_payload(&from(
        PayloadKind::DnsAnswer,
        chosen,
        &answer("api.github.com.", [10, 0, 0, 67]),
    ));
    let ip = |s: &str| s.parse().unwrap();
    assert_eq!(n.lookup(ip("10.0.0.66"), &[42], 2_000), None);
    assert_eq!(n.lookup(ip("10.0.0.67"), &[42], 2_000), None);
    assert_eq!(
        n.counts,
        NameCounts {
            dns_untrusted: 2,
            ..NameCounts::default()
        }
    );
    n.on_payload(&from(
        PayloadKind::DnsQuery,
        trusted,
        &query(1, "api.github.com."),
    ));
    n.on_payload(&from(
        PayloadKind::DnsAnswer,
        trusted,
        &answer("api.github.com.", [10, 0, 0, 10]),
    ));
    assert_eq!(
        n.lookup(ip("10.0.0.10"), &[42], 2_000).as_deref(),
        Some("api.github.com")
    );
}

#[test]
fn tcp_answers_are_put_together_from_segments() {
    let mut n = Namer::new(crate::testing::resolvers());
    let message = answer("registry.npmjs.org.", [10, 0, 0, 12]);
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&message);
    framed.extend_from_slice(&framed.clone()); // two messages back to back
    let (a, b) = framed.split_at(7);
    let tcp = |seq, data: &[u8]| payload(PayloadKind::DnsAnswer, Protocol::Tcp, seq, data);
    // Three queries: two in one segment (as glibc writes A and AAAA), one with its length
    // prefix in a segment of its own.
    let q = query(1, "registry.npmjs.org.");
    let mut prefixed = (q.len() as u16).to_be_bytes().to_vec();
    prefixed.extend_from_slice(&q);
    let two = [prefixed.clone(), prefixed.clone()].concat();
    n.on_payload(&payload(PayloadKind::DnsQuery, Protocol::Tcp, 1, &two));
    let alone = &prefixed[..2];
    n.on_payload(&payload(PayloadKind::DnsQuery, Protocol::Tcp, 1, alone));
    n.on_payload(&payload(PayloadKind::DnsQuery, Protocol::Tcp, 3, &q));
    n.on_payload(&tcp(100, a));
    assert_eq!(n.counts.dns_answers, 0);
    n.on_payload(&tcp(100, a)); // a retransmit
    n.on_payload(&tcp(107, b));
    assert_eq!(n.counts.dns_answers, 2);
    assert_eq!(n.queries[&9].len(), 1, "one query left unanswered");
    assert_eq!(n.counts.dns_malformed, 0);
    let ip = "10.0.0.12".parse().unwrap();
    assert_eq!(
        n.lookup(ip, &[42], 2_000).as_deref(),
        Some("registry.npmjs.org")
    );
    assert!(n.dns_streams.is_empty());
}

#[test]
fn a_hello_split_in_two_segments_settles_with_its_name() {
    let mut n = Namer::new(crate::testing::resolvers());
    let tls = |seq, data: &[u8]| payload(PayloadKind::TlsHello, Protocol::Tcp, seq, data);
    assert_eq!(n.on_payload(&tls(5, &HELLO[..60])), None);
    assert_eq!(
        n.on_payload(&tls(65, &HELLO[60..])),
        Some(Settled {
            cookie: 9,
            server_name: Some("api.github.com".into())
        })
    );
    // Two segments and still incomplete: settled without a name.
    assert_eq!(n.on_payload(&tls(5, &HELLO[..30])), None);
    assert_eq!(
        n.on_payload(&tls(35, &HELLO[30..60])),
        Some(Settled {
            cookie: 9,
            server_name: None
        })
    );
    assert_eq!(n.counts.tls_server_names, 1);
    assert_eq!(n.counts.tls_unnamed, 1);
}

#[test]
fn an_answer_counts_only_for_a_query_its_socket_sent() {
    let mut n = Namer::new(crate::testing::resolvers());
    let udp = |kind, data: &[u8]| payload(kind, Protocol::Udp, 0, data);
    n.on_payload(&udp(PayloadKind::DnsQuery, &query(77, "api.github.com.")));
    // Spoofed: the wrong id, then the wrong question, then another socket.
    n.on_payload(&udp(
        PayloadKind::DnsAnswer,
        &answer_to(78, "api.github.com.", [6, 6, 6, 6]),
    ));
    n.on_payload(&udp(
        PayloadKind::DnsAnswer,
        &answer_to(77, "evil.example.", [6, 6, 6, 7]),
    ));
    let mut elsewhere = udp(
        PayloadKind::DnsAnswer,
        &answer_to(77, "api.github.com.", [6, 6, 6, 8]),
    );
    elsewhere.cookie = 10;
    n.on_payload(&elsewhere);
    assert_eq!(n.counts.dns_unmatched, 3);
    for ip in ["6.6.6.6", "6.6.6.7", "6.6.6.8"] {
        assert_eq!(n.lookup(ip.parse().unwrap(), &[42], 2_000), None, "{ip}");
    }
    // The real answer counts once; a replay of it answers nothing.
    let real = answer_to(77, "api.github.com.", [140, 82, 112, 3]);
    n.on_payload(&udp(PayloadKind::DnsAnswer, &real));
    n.on_payload(&udp(PayloadKind::DnsAnswer, &real));
    assert_eq!((n.counts.dns_answers, n.counts.dns_unmatched), (1, 4));
    let named = n.lookup("140.82.112.3".parse().unwrap(), &[42], 2_000);
    assert_eq!(named.as_deref(), Some("api.github.com"));
}

#[test]
fn unfinished_dns_over_tcp_is_bounded_in_bytes_over_all_streams() {
    let mut n = Namer::new(crate::testing::resolvers());
    // Each stream announces a 65,535-byte message and sends 1,200 bytes of it, never the rest.
    let mut start = vec![0xff, 0xff];
    start.extend_from_slice(&[0u8; 1198]);
    let streams = MAX_DNS_TCP_HELD / start.len() + 100;
    for cookie in 0..streams as u64 {
        let mut p = payload(PayloadKind::DnsAnswer, Protocol::Tcp, 1, &start);
        p.cookie = cookie;
        n.on_payload(&p);
    }
    let held: usize = n.dns_streams.values().map(|(s, _)| s.bytes().len()).sum();
    assert!(held <= MAX_DNS_TCP_HELD, "{held} bytes held");
    assert!(n.counts.dns_truncated >= 100, "{:?}", n.counts);
    // Streams that never finish do not lock out a new one, and they age out.
    let message = answer("registry.npmjs.org.", [10, 0, 0, 12]);
    let mut whole = (message.len() as u16).to_be_bytes().to_vec();
    whole.extend_from_slice(&message);
    let mut fresh = payload(PayloadKind::DnsAnswer, Protocol::Tcp, 1, &whole);
    fresh.cookie = 1 << 40;
    n.on_payload(&fresh);
    assert_eq!(n.counts.dns_unmatched, 1, "parsed (no query was sent)");
    n.sweep(1_000 + DNS_WAIT_NS);
    assert!(n.dns_streams.is_empty());
}
