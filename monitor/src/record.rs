//! What keytrail prints: the records of the JSON contract (PRODUCT.md). Both sinks print these.
use serde::Serialize;

use crate::{
    catalog::{Credential, Kind},
    decode::{Hook, Protocol},
    process::Process,
};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CredentialRef {
    pub id: String,
    pub kind: Kind,
    pub path: String,
}

impl From<&Credential> for CredentialRef {
    fn from(c: &Credential) -> Self {
        Self {
            id: c.id.clone(),
            kind: c.kind,
            path: c.path.display().to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessRef {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub exe: String,
    pub uid: u32,
    pub loginuid: Option<u32>,
    /// The unit of authorization; on the embedded default the originating user and session.
    pub context: String,
}

impl From<&Process> for ProcessRef {
    fn from(p: &Process) -> Self {
        let session = p
            .sessionid
            .map_or_else(|| "none".to_owned(), |s| s.to_string());
        Self {
            pid: p.key.pid,
            ppid: p.ppid,
            comm: p.comm.clone(),
            exe: p.exe.clone(),
            uid: p.uid,
            loginuid: p.loginuid,
            context: format!("uid:{}/session:{session}", p.originating_uid()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct EndpointRef {
    pub ip: String,
    pub port: u16,
    pub protocol: Protocol,
    /// The host name, where one was learned (not yet: DNS and TLS names come later).
    pub host: Option<String>,
}

/// How a credential reached the process that used it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The process read it, then connected.
    Read,
    /// The process already held the connection when it read the credential (ssh).
    HeldConnection,
    /// An ancestor read it; the process inherited it (a script reads a token, runs curl).
    Ancestor,
    /// A descendant in the same session read it and handed it up (git's credential helper).
    Descendant,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HookReport {
    /// What the hook is for: process, credential-read, credential-open, connect.
    pub purpose: &'static str,
    /// The hook attached, e.g. `tracepoint/filemap/mm_filemap_get_pages`.
    pub hook: String,
    /// The hook that was preferred and refused, when this one is its fallback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instead_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Ready {
        time: String,
        version: &'static str,
        hooks: Vec<HookReport>,
        credentials: usize,
        processes: usize,
    },
    CredentialAccess {
        time: String,
        credential: CredentialRef,
        process: ProcessRef,
        hook: Hook,
    },
    Connection {
        time: String,
        process: ProcessRef,
        endpoint: EndpointRef,
    },
    CredentialUse {
        time: String,
        credential: CredentialRef,
        process: ProcessRef,
        endpoint: EndpointRef,
        via: Via,
        /// The process that read the credential.
        reader: ProcessRef,
    },
    Stats {
        time: String,
        events: u64,
        dropped: u64,
        findings: u64,
        /// Of `dropped`: lost because the ring buffer was full.
        ringbuf_full: u64,
        /// Of `dropped`: bytes from the kernel that did not decode.
        undecodable: u64,
    },
}
