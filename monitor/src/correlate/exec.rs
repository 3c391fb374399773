//! An exec: the new program is attributed (context, agent), and the secret variables in its
//! environment that its parent did not hold already are reads of those secrets.
use std::sync::Arc;

use super::Correlator;
use crate::{
    catalog::{self, Catalog},
    decode::Exec,
    policy::ProcessFacts,
    process::attribution::{self, Candidate},
    record::{CredentialRef, Record},
    vocab::Hook,
};

impl Correlator {
    /// Attributes the new program, and reads the secret variables its parent did not hold.
    pub(super) fn on_exec(&mut self, e: &Exec, catalog: &mut Catalog, out: &mut Vec<Record>) {
        let policy = Arc::clone(&self.policy);
        let cgroup = policy
            .matches_cgroups()
            .then(|| self.tracker.cgroup_of(e.pid))
            .flatten();
        let candidate = Candidate {
            pid: e.pid,
            originating_uid: e.loginuid.unwrap_or(e.uid),
            facts: ProcessFacts {
                comm: &e.comm,
                exe: &e.filename,
                argv: &e.argv,
                cgroup: cgroup.as_deref(),
            },
            label: e.env.get(&policy.context.label),
        };
        let parent = self.tracker.get(e.ppid).filter(|p| p.key.pid != e.pid);
        let decided = attribution::attribute(&policy, &candidate, parent);
        let inherited = parent.map(|p| p.env_secrets.clone()).unwrap_or_default();
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
        self.tracker.on_exec(e, decided, secrets);
        if let Some(key) = self.tracker.get(e.pid).map(|p| p.key) {
            self.process_refs.remove(&key); // a new program image, a new record
        }
        if fresh.is_empty() {
            return;
        }
        let process = self.tracker.get(e.pid).expect("just added").clone();
        let process_ref = self.process_ref(&process, catalog.secrets());
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
