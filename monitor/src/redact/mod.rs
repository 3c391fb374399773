//! Known secrets and redaction. keytrail learns secrets (from credential files and secret
//! environment variables) only as fingerprints; a process's arguments are printed with every
//! known secret (found by fingerprint) and everything that looks like one (shapes.rs) replaced
//! by `[REDACTED]`.
use std::collections::{BTreeSet, HashMap};

mod shapes;

use crate::fingerprint::{Fingerprint, Fingerprinter};

pub const REDACTED: &str = "[REDACTED]";
/// What the last argument of a command line the kernel cut short is shown as.
pub const CUT: &str = "[CUT]";

/// Secrets shorter than this are not learned: too many innocent words would match.
const MIN_SECRET_LEN: usize = 6;
/// Values longer than this are fingerprinted whole but not searched for inside arguments.
const MAX_SEARCHED_LEN: usize = 256;

pub struct Secrets {
    printer: Fingerprinter,
    /// Each known secret's fingerprint, and the credential it was first seen in.
    known: HashMap<Fingerprint, String>,
    /// Lengths of the known secrets, to search arguments for them by fingerprint.
    lengths: BTreeSet<usize>,
}

impl Secrets {
    pub fn new(printer: Fingerprinter) -> Self {
        Self {
            printer,
            known: HashMap::new(),
            lengths: BTreeSet::new(),
        }
    }

    pub fn fingerprint(&self, value: &str) -> Fingerprint {
        self.printer.of(value.as_bytes())
    }

    /// Remembers the fingerprint of `value` and returns it; when it is new, `credential` names
    /// the credential it was first seen in (given the fingerprint, which env ids contain).
    pub fn learn(
        &mut self,
        value: &str,
        credential: impl FnOnce(Fingerprint) -> String,
    ) -> Fingerprint {
        let print = self.fingerprint(value);
        if value.len() >= MIN_SECRET_LEN {
            self.known.entry(print).or_insert_with(|| credential(print));
            if value.len() <= MAX_SEARCHED_LEN {
                self.lengths.insert(value.len());
            }
        }
        print
    }

    /// The credential a secret was first seen in.
    /// How many secrets are known: redaction done with fewer may have missed one.
    pub fn generation(&self) -> usize {
        self.known.len()
    }

    pub fn first_seen_in(&self, print: Fingerprint) -> Option<&str> {
        self.known.get(&print).map(String::as_str)
    }

    /// The identity of credential `id` holding a secret with `fingerprint`: the credential its
    /// secret was first seen in, the same for every copy of one secret; else `id` itself.
    pub fn identity(&self, id: &str, fingerprint: Option<Fingerprint>) -> String {
        fingerprint
            .and_then(|f| self.first_seen_in(f))
            .unwrap_or(id)
            .to_owned()
    }

    /// `argv` with known secrets and secret-looking values (shapes.rs) replaced. When the
    /// kernel cut the command line short (`cut`), its last argument is shown as `[CUT]`: it may
    /// be the start of a secret, which no fingerprint can recognise.
    pub fn redact_argv(&self, argv: &[String], cut: bool) -> Vec<String> {
        let mut out: Vec<String> = argv.iter().map(|a| self.redact_known(a)).collect();
        if cut && let Some(last) = out.last_mut() {
            *last = CUT.to_owned();
        }
        shapes::redact(&mut out);
        out
    }

    fn redact_known(&self, arg: &str) -> String {
        let mut text = arg.to_owned();
        for &len in self.lengths.iter().rev() {
            let mut start = 0;
            while start + len <= text.len() {
                let end = start + len;
                if text.is_char_boundary(start)
                    && text.is_char_boundary(end)
                    && self
                        .known
                        .contains_key(&self.fingerprint(&text[start..end]))
                {
                    text.replace_range(start..end, REDACTED);
                    start += REDACTED.len();
                } else {
                    start += 1;
                }
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn known_secrets_are_redacted_wherever_they_sit() {
        let mut s = Secrets::new(Fingerprinter::with_key(7));
        s.learn("s3cr3t-value-42", |_| "generic:/tmp/t".into());
        let out = s.redact_argv(
            &argv(&[
                "curl",
                "-H",
                "X-Api: s3cr3t-value-42",
                "https://x/?k=s3cr3t-value-42&z",
                "s3cr3t-value-4",
            ]),
            false,
        );
        assert_eq!(out[2], "X-Api: [REDACTED]");
        assert_eq!(out[3], "https://x/?k=[REDACTED]&z");
        assert_eq!(out[4], "s3cr3t-value-4", "a different value stays");
        assert!(!out.join(" ").contains("s3cr3t-value-42"));
    }

    #[test]
    fn secret_shapes_are_redacted_without_knowing_them() {
        let s = Secrets::new(Fingerprinter::with_key(7));
        let out = s.redact_argv(
            &argv(&[
                "tool",
                "--password",
                "hunter2hunter2",
                "--token=abc123",
                "Authorization: Bearer eyJhbGciOi",
                "ghp_0123456789abcdef",
                "--verbose",
                "file.txt",
            ]),
            false,
        );
        assert_eq!(
            out,
            argv(&[
                "tool",
                "--password",
                "[REDACTED]",
                "--token=[REDACTED]",
                "Authorization: Bearer [REDACTED]",
                "[REDACTED]",
                "--verbose",
                "file.txt",
            ])
        );
    }

    #[test]
    fn the_cut_last_argument_of_a_long_command_line_is_not_shown() {
        let s = Secrets::new(Fingerprinter::with_key(7));
        let out = s.redact_argv(&argv(&["tool", "--verbose", "kt-secret-cut-he"]), true);
        assert_eq!(out, argv(&["tool", "--verbose", CUT]));
        let out = s.redact_argv(&argv(&["tool", "file.txt"]), false);
        assert_eq!(out, argv(&["tool", "file.txt"]));
    }

    #[test]
    fn the_first_credential_a_secret_was_seen_in_is_kept() {
        let mut s = Secrets::new(Fingerprinter::with_key(7));
        let a = s.learn("same-token-1", |_| "netrc:/a".into());
        let b = s.learn("same-token-1", |_| "env:GITHUB_TOKEN".into());
        assert_eq!(a, b);
        assert_eq!(s.first_seen_in(a), Some("netrc:/a"));
    }
}
