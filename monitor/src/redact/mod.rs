//! Known secrets and redaction. keytrail learns secrets (from credential files and secret
//! environment variables) only as fingerprints; a process's arguments are printed with every
//! known secret (found by fingerprint) and everything that looks like one (shapes.rs) replaced
//! by `[REDACTED]`.
use std::collections::{HashMap, VecDeque};

mod matcher;
mod shapes;

use self::matcher::Matcher;
use crate::fingerprint::{Fingerprint, Fingerprinter};

pub const REDACTED: &str = "[REDACTED]";
/// What the last argument of a command line the kernel cut short is shown as.
pub const CUT: &str = "[CUT]";

/// Secrets shorter than this are not learned: too many innocent words would match.
const MIN_SECRET_LEN: usize = 6;
/// Values longer than this are fingerprinted whole but not searched for inside arguments.
const MAX_SEARCHED_LEN: usize = 256;
/// Most secrets learned from environment variables kept at once; the oldest learned are
/// forgotten first (counted). Secrets from credential files are the catalog's, and kept: a
/// process that execs with ever new `*_TOKEN` values cannot grow keytrail without bound.
const MAX_VARIABLE_SECRETS: usize = 4096;

/// Where a secret was learned.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    CredentialFile,
    Variable,
}

struct Known {
    /// The credential it was first seen in.
    first_seen_in: String,
    /// Seen in a credential file: never forgotten, even when a variable held it first.
    from_file: bool,
    /// Its length and rolling hash, when it is searched for inside arguments.
    searched: Option<(usize, u64)>,
}

pub struct Secrets {
    printer: Fingerprinter,
    known: HashMap<Fingerprint, Known>,
    matcher: Matcher,
    /// Secrets learned from variables, oldest first.
    variables: VecDeque<Fingerprint>,
    /// Secrets from variables forgotten to stay within `MAX_VARIABLE_SECRETS`.
    forgotten: u64,
}

impl Secrets {
    pub fn new(printer: Fingerprinter) -> Self {
        let seed = u64::from_le_bytes(printer.of(b"keytrail rolling hash base").to_bytes());
        Self {
            printer,
            known: HashMap::new(),
            matcher: Matcher::new(seed, MAX_SEARCHED_LEN),
            variables: VecDeque::new(),
            forgotten: 0,
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
        origin: Origin,
        credential: impl FnOnce(Fingerprint) -> String,
    ) -> Fingerprint {
        let print = self.fingerprint(value);
        if value.len() < MIN_SECRET_LEN {
            return print;
        }
        if let Some(known) = self.known.get_mut(&print) {
            known.from_file |= origin == Origin::CredentialFile;
            return print;
        }
        let searched = (value.len() <= MAX_SEARCHED_LEN)
            .then(|| (value.len(), self.matcher.hash(value.as_bytes())));
        if let Some((len, hash)) = searched {
            self.matcher.insert(len, hash);
        }
        self.known.insert(
            print,
            Known {
                first_seen_in: credential(print),
                from_file: origin == Origin::CredentialFile,
                searched,
            },
        );
        if origin == Origin::Variable {
            self.variables.push_back(print);
            if self.variables.len() > MAX_VARIABLE_SECRETS
                && let Some(oldest) = self.variables.pop_front()
            {
                self.forget(oldest);
            }
        }
        print
    }

    /// Forgets a secret learned from a variable, unless a credential file holds it too.
    fn forget(&mut self, print: Fingerprint) {
        if self.known.get(&print).is_some_and(|k| k.from_file) {
            return;
        }
        if let Some(known) = self.known.remove(&print) {
            if let Some((len, hash)) = known.searched {
                self.matcher.remove(len, hash);
            }
            self.forgotten += 1;
        }
    }

    /// Secrets from variables forgotten so far, oldest first, to stay bounded.
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }

    /// Changes whenever a secret is learned: redaction done before may have missed one.
    pub fn generation(&self) -> u64 {
        self.known.len() as u64 + self.forgotten
    }

    /// The credential a secret was first seen in.
    pub fn first_seen_in(&self, print: Fingerprint) -> Option<&str> {
        self.known.get(&print).map(|k| k.first_seen_in.as_str())
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
        let found = self.matcher.find(arg, |window| {
            self.known.contains_key(&self.fingerprint(window))
        });
        let mut text = String::with_capacity(arg.len());
        let mut at = 0;
        for (start, end) in found {
            text.push_str(&arg[at..start]);
            text.push_str(REDACTED);
            at = end;
        }
        text.push_str(&arg[at..]);
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
        s.learn("s3cr3t-value-42", Origin::CredentialFile, |_| {
            "generic:/tmp/t".into()
        });
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
        let a = s.learn("same-token-1", Origin::CredentialFile, |_| {
            "netrc:/a".into()
        });
        let b = s.learn("same-token-1", Origin::Variable, |_| {
            "env:GITHUB_TOKEN".into()
        });
        assert_eq!(a, b);
        assert_eq!(s.first_seen_in(a), Some("netrc:/a"));
    }

    #[test]
    fn variable_secrets_are_bounded_and_file_secrets_kept() {
        let mut s = Secrets::new(Fingerprinter::with_key(3));
        // Seen in a variable first (the seed reads environments before the catalog), then in
        // a file: a file's secret all the same, never forgotten.
        s.learn("file-secret-0001", Origin::Variable, |_| {
            "env:GH_TOKEN".into()
        });
        s.learn("file-secret-0001", Origin::CredentialFile, |_| {
            "netrc:/a".into()
        });
        for i in 0..MAX_VARIABLE_SECRETS + 10 {
            s.learn(&format!("variable-secret-{i:06}"), Origin::Variable, |_| {
                "env:X_TOKEN".into()
            });
        }
        assert_eq!(s.forgotten(), 10);
        assert_eq!(s.known.len(), MAX_VARIABLE_SECRETS + 1);
        let out = s.redact_argv(
            &argv(&[
                "x",
                "file-secret-0001",
                "variable-secret-000000",
                "variable-secret-004105",
            ]),
            false,
        );
        assert_eq!(out[1], REDACTED, "a file's secret is never forgotten");
        assert_eq!(
            out[2], "variable-secret-000000",
            "the oldest variable's was forgotten"
        );
        assert_eq!(out[3], REDACTED);
    }

    #[test]
    fn secrets_of_every_length_are_found_in_a_long_argument() {
        let mut s = Secrets::new(Fingerprinter::with_key(5));
        for len in MIN_SECRET_LEN..=MAX_SEARCHED_LEN {
            s.learn(
                &format!("{}Z", "s".repeat(len - 1)),
                Origin::Variable,
                |_| "env:B".into(),
            );
        }
        let secret = format!("{}Z", "s".repeat(99));
        let arg = format!("{}{secret}{}", "a".repeat(2000), "b".repeat(2000));
        let out = s.redact_argv(&argv(&["x", &arg]), false);
        assert_eq!(
            out[1],
            format!("{}{REDACTED}{}", "a".repeat(2000), "b".repeat(2000))
        );
    }
}
