//! `unexpected-reader`: a process outside the credential's allowed readers reads it.
//!
//! A reader is allowed when a reader pattern matches the executable it runs (the resolved path,
//! or that file's name) and that executable is root's: a copy of python named `git` in a home
//! directory, or a symlink named `git` to python, is not git. The comm, which a process sets for
//! itself, does not count. Where the executable's owner is not known (a recorded stream from
//! before, a process gone before it could be looked at), comm and the exec'd name are all there
//! is, and they are used.
use super::rule::{Access, Evidence, Rule, finding};
use crate::{
    record::Finding,
    vocab::{Enforced, Hook, RuleId},
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
        let allowed = match process.exe_owner {
            Some(owner) => {
                owner == 0
                    && readers
                        .iter()
                        .any(|g| g.matches(&process.exe) || g.matches(base))
            }
            None => readers
                .iter()
                .any(|g| g.matches(&process.comm) || g.matches(&process.exe) || g.matches(base)),
        };
        // The kernel's judgement wins: it refuses by the executable's identity, resolved from
        // the program directories (read_denial.rs), where this rule matches names; an open it
        // refused is reported whatever the names say.
        // A refusal for its context (cross_context.rs) came before its program was judged: a
        // refused open read nothing, and a dry run's read is judged by names below.
        let by_context = a.enforcement_rule == Some(RuleId::CrossContextReuse);
        if by_context && a.enforcement == Some(Enforced::Denied) {
            return;
        }
        let enforcement = a.enforcement.filter(|_| !by_context);
        let refused = enforcement.is_some();
        if readers.is_empty() || (allowed && !refused) {
            return;
        }
        let allowed: Vec<&str> = readers.iter().map(|g| g.as_str()).collect();
        let mut found_one = finding(
            self.id(),
            format!(
                "{} (pid {}) {} {} credential {}, which only {} may read",
                process.comm,
                process.pid,
                match (a.hook, enforcement) {
                    (Hook::Move, Some(Enforced::Denied)) => "was refused moving",
                    (Hook::Move, _) => "moved",
                    (_, Some(Enforced::Denied)) => "was refused opening",
                    _ => "read",
                },
                credential.kind,
                credential.path,
                allowed.join(", ")
            ),
            credential,
            process,
            None,
            vec![a.record.clone()],
        );
        // Refused at open (or would have been): said in the finding as for a connect.
        found_one.action = enforcement.into();
        found.push(found_one);
    }
}
