//! Secret variables at exec: each secret in the new program's environment that its parent did
//! not hold already is a read of that secret, by that exec. (The parent's own were read when it
//! was started; its children simply inherit them.)
use std::sync::Arc;

use super::{Access, Correlator};
use crate::{
    catalog::{self, Catalog, shape},
    decode::Exec,
    record::{CredentialRef, Record},
    vocab::{Hook, Lifetime},
};

/// How long a secret variable lives, as its shape says; for AWS's secret key, as the access
/// key id beside it says (`AKIA` long-term, `ASIA` temporary).
fn env_lifetime(e: &Exec, name: &str, value: &str) -> Option<Lifetime> {
    let own = shape::of(value).map(|(_, lifetime)| lifetime);
    let key_id = || {
        name.starts_with("AWS_")
            .then(|| e.env.get("AWS_ACCESS_KEY_ID"))
            .flatten()
            .and_then(shape::of)
            .map(|(_, lifetime)| lifetime)
    };
    own.or_else(key_id)
}

impl Correlator {
    /// The new program goes to the tracker; the secret variables its parent did not hold are
    /// its reads.
    pub(super) fn on_exec(&mut self, e: &Exec, catalog: &mut Catalog, out: &mut Vec<Record>) {
        let policy = Arc::clone(&self.policy);
        let inherited = self
            .tracker
            .get(e.ppid)
            .filter(|p| p.key.pid != e.pid)
            .map(|p| p.env_secrets.clone())
            .unwrap_or_default();
        let mut secrets = Vec::new();
        let mut fresh = Vec::new();
        for (name, value) in &e.env.0 {
            let Some(kind) = policy.secret_variable(name) else {
                continue;
            };
            let print = catalog.learn_variable(name, value);
            secrets.push(print);
            if !inherited.contains(&print) {
                fresh.push((name.clone(), kind, print, env_lifetime(e, name, value)));
            }
        }
        self.tracker.on_exec(e, &policy, catalog.tools(), secrets);
        if let Some(key) = self.tracker.get(e.pid).map(|p| p.key) {
            self.process_refs.remove(&key); // a new program image, a new record
        }
        if fresh.is_empty() {
            return;
        }
        let process = self.tracker.get(e.pid).expect("just added").clone();
        let process_ref = self.process_ref(&process, catalog.secrets(), false);
        for (name, kind, print, lifetime) in fresh {
            let id = catalog::env_credential_id(&name, print);
            let path = format!("env:{name}");
            let facts = policy.credential_facts(kind, &path);
            // A tool server started with the token its MCP configuration gives it: the tool's
            // credential, in the tool's context and scope.
            let tool = catalog.tool_secret(print);
            let mut scope = facts.scope;
            if let Some(tool) = tool {
                scope.extend(&tool.scope);
            }
            let credential = Arc::new(CredentialRef {
                identity: catalog.secrets().identity(&id, Some(print)),
                id,
                kind: tool.map_or(kind, |t| t.kind),
                path,
                owner: Some(process.originating_uid()),
                context: tool.and_then(|t| t.context.clone()).or(facts.context),
                scope,
                readers: facts.readers,
                fingerprint: Some(print),
                fingerprints: vec![print],
                lifetime,
                parts: Vec::new(),
            });
            self.remember_env_credential(print, &credential);
            let access = Access {
                hook: Hook::Environment,
                enforcement: None,
                enforcement_rule: None,
                boot_ns: e.boot_ns,
            };
            self.record_read(&process, credential, process_ref.clone(), access, out);
        }
    }
}
