//! DNS answers: which addresses a response gives for the name that was asked. Parsing is
//! hickory-proto's; this module only follows CNAME chains back to the question, so an address
//! is named the way the process asked for it (api.github.com, not the CDN name it aliases).
use std::{
    collections::{HashMap, hash_map::Entry},
    net::IpAddr,
};

use hickory_proto::{
    op::{Message, MessageType},
    rr::{Name, RData},
};

/// One address a response gave, under the name asked for, valid for `ttl` seconds (the least
/// of the TTLs along its CNAME chain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub addr: IpAddr,
    pub name: String,
    pub ttl: u32,
}

/// What a query asked, and what an answer must repeat to count: its id and its one question
/// (name, record type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    pub name: String,
    pub record_type: u16,
}

/// The addresses a response gave, and the question it answers.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub question: Question,
    pub answers: Vec<Answer>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("not a DNS message: {0}")]
    Malformed(String),
    #[error("a DNS query, not a response")]
    NotResponse,
    #[error("a DNS response, not a query")]
    NotQuery,
    #[error("a DNS message with {0} questions (one is the rule)")]
    Questions(usize),
}

/// The question of a DNS message (exactly one, as resolvers send).
fn question_of(message: &Message) -> Result<Question, DnsError> {
    match message.queries.as_slice() {
        [q] => Ok(Question {
            id: message.metadata.id,
            name: normalize(q.name()),
            record_type: u16::from(q.query_type()),
        }),
        other => Err(DnsError::Questions(other.len())),
    }
}

/// The question of a query a process sent.
pub fn query(bytes: &[u8]) -> Result<Question, DnsError> {
    let message = Message::from_vec(bytes).map_err(|e| DnsError::Malformed(e.to_string()))?;
    if message.metadata.message_type != MessageType::Query {
        return Err(DnsError::NotQuery);
    }
    question_of(&message)
}

/// Host names as scopes are written: lower case, no trailing dot, IDNs in their ASCII form.
pub fn normalize(name: &Name) -> String {
    let mut text = name.to_ascii().to_ascii_lowercase();
    if text.len() > 1 && text.ends_with('.') {
        text.pop();
    }
    text
}

/// How many CNAME hops are followed: real chains are short, and a loop must end.
const MAX_CHAIN: usize = 16;

/// The address records of a DNS response, each under the question name its chain starts at,
/// and the question it answers.
pub fn answers(bytes: &[u8]) -> Result<Response, DnsError> {
    let message = Message::from_vec(bytes).map_err(|e| DnsError::Malformed(e.to_string()))?;
    if message.metadata.message_type != MessageType::Response {
        return Err(DnsError::NotResponse);
    }
    let question = question_of(&message)?;
    // Owner name -> (question it answers, least TTL on the way).
    let mut leads_to: HashMap<String, (String, u32)> = message
        .queries
        .iter()
        .map(|q| (normalize(q.name()), (normalize(q.name()), u32::MAX)))
        .collect();
    // CNAME records may come in any order: follow them until nothing new is learned.
    for _ in 0..MAX_CHAIN {
        let mut learned = false;
        for record in &message.answers {
            let RData::CNAME(target) = &record.data else {
                continue;
            };
            let Some((question, ttl)) = leads_to.get(&normalize(&record.name)).cloned() else {
                continue;
            };
            if let Entry::Vacant(slot) = leads_to.entry(normalize(&target.0)) {
                slot.insert((question, ttl.min(record.ttl)));
                learned = true;
            }
        }
        if !learned {
            break;
        }
    }
    let answers = message
        .answers
        .iter()
        .filter_map(|record| {
            let addr = match &record.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                _ => return None,
            };
            let owner = normalize(&record.name);
            // An address not linked to the question still names its owner.
            let (name, ttl) = leads_to.get(&owner).cloned().unwrap_or((owner, u32::MAX));
            Some(Answer {
                addr,
                name,
                ttl: ttl.min(record.ttl),
            })
        })
        .collect();
    Ok(Response { question, answers })
}

#[cfg(test)]
mod tests;
