//! `unexpected-reader`: a process outside the credential's allowed readers reads it. Readers
//! match on comm, exe or the exe's file name.
use super::rule::{Access, Evidence, Rule, finding};
use crate::{
    record::Finding,
    vocab::{Hook, RuleId},
};

pub struct UnexpectedReader;

impl Rule for UnexpectedReader {
    fn id(&self) -> RuleId {
        RuleId::UnexpectedReader
    }

    fn on_access(&mut self, a: &Access, _: &dyn Evidence, found: &mut Vec<Finding>) {
        if a.hook == Hook::Environment {
            return; // being started with a variable is not reading it
        }
        let (credential, process) = (a.credential, a.process);
        let readers = &credential.readers;
        let base = process.exe.rsplit('/').next().unwrap_or_default();
        if readers.is_empty()
            || readers
                .iter()
                .any(|g| g.matches(&process.comm) || g.matches(&process.exe) || g.matches(base))
        {
            return;
        }
        let allowed: Vec<&str> = readers.iter().map(|g| g.as_str()).collect();
        found.push(finding(
            self.id(),
            format!(
                "{} (pid {}) read {} credential {}, which only {} may read",
                process.comm,
                process.pid,
                credential.kind,
                credential.path,
                allowed.join(", ")
            ),
            credential,
            process,
            None,
            vec![a.record.clone()],
        ));
    }
}
