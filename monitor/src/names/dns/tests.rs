use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::{
    op::{Message, OpCode, Query},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, AAAA, CNAME},
    },
};

use super::*;

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn response(question: &str, answers: Vec<Record>) -> Vec<u8> {
    let mut m = Message::response(7, OpCode::Query);
    m.add_query(Query::query(name(question), RecordType::A));
    m.add_answers(answers);
    m.to_vec().unwrap()
}

fn a(owner: &str, ttl: u32, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(Ipv4Addr::from(ip))))
}

fn cname(owner: &str, ttl: u32, target: &str) -> Record {
    Record::from_rdata(name(owner), ttl, RData::CNAME(CNAME(name(target))))
}

#[test]
fn addresses_are_named_by_the_question_through_cname_chains() {
    // Out of order on purpose: the A record first, the chain after it.
    let bytes = response(
        "API.GitHub.com.",
        vec![
            a("edge.cdn.example.", 60, [10, 0, 0, 10]),
            cname("api.github.com.", 300, "gh.cdn.example."),
            cname("gh.cdn.example.", 20, "edge.cdn.example."),
            Record::from_rdata(
                name("edge.cdn.example."),
                90,
                RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
            ),
        ],
    );
    let got = answers(&bytes).unwrap().answers;
    assert_eq!(
        got,
        vec![
            Answer {
                addr: "10.0.0.10".parse().unwrap(),
                name: "api.github.com".into(),
                ttl: 20,
            },
            Answer {
                addr: "::1".parse().unwrap(),
                name: "api.github.com".into(),
                ttl: 20,
            },
        ]
    );
}

#[test]
fn an_address_outside_the_chain_keeps_its_own_name_and_loops_end() {
    let bytes = response(
        "a.example.",
        vec![
            cname("a.example.", 60, "b.example."),
            cname("b.example.", 60, "a.example."),
            a("other.example.", 60, [10, 0, 0, 1]),
        ],
    );
    let got = answers(&bytes).unwrap().answers;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "other.example");
}

#[test]
fn queries_garbage_and_cut_messages_are_errors_not_panics() {
    let mut query = Message::query();
    query.add_query(Query::query(name("a.example."), RecordType::A));
    assert_eq!(
        answers(&query.to_vec().unwrap()),
        Err(DnsError::NotResponse)
    );
    assert!(matches!(
        answers(b"\x00\x07\x81\x80\x00\x01\x00\x01"),
        Err(DnsError::Malformed(_))
    ));
    let whole = response("a.example.", vec![a("a.example.", 60, [10, 0, 0, 1])]);
    for len in 0..whole.len() {
        assert!(answers(&whole[..len]).is_err(), "a cut at {len} parsed");
    }
    // Every single-byte corruption: an answer or an error, never a panic.
    for i in 0..whole.len() {
        let mut bad = whole.clone();
        bad[i] ^= 0xff;
        let _ = answers(&bad);
    }
}
