//! Secret variables at exec: each secret in the new program's environment that its parent did
//! not hold already is a read of that secret, by that exec. (The parent's own were read when it
//! was started; its children simply inherit them.)
use std::sync::Arc;

use super::Correlator;
use crate::{
    catalog::{self, Catalog},
    decode::Exec,
    record::{CredentialRef, Record},
    vocab::Hook,
};

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
                fresh.push((name.clone(), kind, print));
            }
        }
        self.tracker.on_exec(e, &policy, secrets);
        if let Some(key) = self.tracker.get(e.pid).map(|p| p.key) {
            self.process_refs.remove(&key); // a new program image, a new record
        }
        if fresh.is_empty() {
            return;
        }
        let process = self.tracker.get(e.pid).expect("just added").clone();
        let process_ref = self.process_ref(&process, catalog.secrets(), false);
        for (name, kind, print) in fresh {
            let id = catalog::env_credential_id(&name, print);
            let path = format!("env:{name}");
            let facts = policy.credential_facts(kind, &path);
            let credential = Arc::new(CredentialRef {
                identity: catalog.secrets().identity(&id, Some(print)),
                id,
                kind,
                path,
                owner: Some(process.originating_uid()),
                context: facts.context,
                scope: facts.scope,
                readers: facts.readers,
                fingerprint: Some(print),
            });
            let hook = Hook::Environment;
            self.record_read(
                &process,
                credential,
                process_ref.clone(),
                hook,
                e.boot_ns,
                out,
            );
        }
    }
}
