//! A credential's scope: the endpoints it is meant for, by host name, address block and port.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::types::{Cidr, Glob};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<Glob>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<Cidr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Whether an address no name was learned for may be inside a scope written in names (policy:
    /// `unnamed = "allow"`). By default it is outside: with no verified DNS answer and no TLS
    /// server name, a connection to a bare address is not to any host the scope names.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_unnamed: bool,
}

/// Whether an endpoint is inside a scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Inside,
    Outside,
    /// The scope names hosts, the endpoint's name is not known, and the scope allows that
    /// (`allow_unnamed`): neither in nor out can be said.
    Unknown,
    /// The credential has no scope at all.
    Unscoped,
}

impl Scope {
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.cidrs.is_empty() && self.ports.is_empty()
    }

    /// Adds what `other` allows, without repeats (and its leniency with unnamed addresses).
    pub fn extend(&mut self, other: &Scope) {
        self.allow_unnamed |= other.allow_unnamed;
        for h in &other.hosts {
            if !self.hosts.contains(h) {
                self.hosts.push(h.clone());
            }
        }
        for c in &other.cidrs {
            if !self.cidrs.contains(c) {
                self.cidrs.push(*c);
            }
        }
        for p in &other.ports {
            if !self.ports.contains(p) {
                self.ports.push(*p);
            }
        }
    }

    /// Adds host names from the credential file itself. They are what the file's owner wrote,
    /// so they are literals, never patterns: `machine *` in a netrc names a host called `*`,
    /// and cannot widen the credential's scope to every host.
    pub fn add_hosts<'a>(&mut self, hosts: impl IntoIterator<Item = &'a str>) {
        for host in hosts {
            let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
            if host.is_empty() {
                continue;
            }
            let glob =
                Glob::new(&glob::Pattern::escape(&host)).expect("an escaped pattern is valid");
            if let Ok(cidr) = host.parse::<Cidr>() {
                if !self.cidrs.contains(&cidr) {
                    self.cidrs.push(cidr);
                }
            } else if !self.hosts.contains(&glob) {
                self.hosts.push(glob);
            }
        }
    }

    pub fn check(&self, ip: Option<IpAddr>, port: u16, host: Option<&str>) -> Verdict {
        if self.is_empty() {
            return Verdict::Unscoped;
        }
        if !self.ports.is_empty() && !self.ports.contains(&port) {
            return Verdict::Outside;
        }
        if self.hosts.is_empty() && self.cidrs.is_empty() {
            return Verdict::Inside;
        }
        if ip.is_some_and(|ip| self.cidrs.iter().any(|c| c.contains(ip))) {
            return Verdict::Inside;
        }
        match host {
            Some(host) => {
                let host = host.trim_end_matches('.').to_ascii_lowercase();
                if self.hosts.iter().any(|g| g.matches(&host)) {
                    Verdict::Inside
                } else {
                    Verdict::Outside
                }
            }
            None if self.hosts.is_empty() || !self.allow_unnamed => Verdict::Outside,
            None => Verdict::Unknown,
        }
    }
}

/// A scope written out, for tests (patterns that do not parse fail the test).
#[cfg(test)]
pub fn scope(hosts: &[&str], cidrs: &[&str], ports: &[u16]) -> Scope {
    Scope {
        hosts: hosts.iter().map(|h| Glob::new(h).unwrap()).collect(),
        cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
        ports: ports.to_vec(),
        allow_unnamed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_and_ports_decide_together() {
        let s = scope(&["*.github.com"], &["140.82.112.0/20"], &[443]);
        let ip = |s: &str| Some(s.parse().unwrap());
        assert_eq!(s.check(ip("140.82.112.3"), 443, None), Verdict::Inside);
        assert_eq!(s.check(ip("140.82.112.3"), 80, None), Verdict::Outside);
        assert_eq!(
            s.check(ip("1.2.3.4"), 443, Some("api.github.com")),
            Verdict::Inside
        );
        assert_eq!(
            s.check(ip("1.2.3.4"), 443, Some("evil.example")),
            Verdict::Outside
        );
        // No name learned for the address: outside a scope written in names, unless it allows that.
        assert_eq!(s.check(ip("1.2.3.4"), 443, None), Verdict::Outside);
        let lenient = Scope {
            allow_unnamed: true,
            ..s.clone()
        };
        assert_eq!(lenient.check(ip("1.2.3.4"), 443, None), Verdict::Unknown);
        assert_eq!(
            scope(&[], &["10.0.0.0/8"], &[]).check(ip("1.2.3.4"), 1, None),
            Verdict::Outside
        );
        assert_eq!(
            Scope::default().check(ip("1.2.3.4"), 1, None),
            Verdict::Unscoped
        );
    }

    #[test]
    fn hosts_from_files_become_names_or_addresses() {
        let mut s = Scope::default();
        s.add_hosts(["GitHub.com.", "10.0.0.7", ""]);
        assert_eq!(s.hosts.len(), 1);
        assert_eq!(s.cidrs.len(), 1);
        assert_eq!(s.check(None, 443, Some("github.com")), Verdict::Inside);
        // A file's hosts are literals: `machine *` does not let the credential go anywhere.
        let mut s = Scope::default();
        s.add_hosts(["*", "*.github.com"]);
        assert_eq!(s.check(None, 443, Some("evil.example")), Verdict::Outside);
        assert_eq!(s.check(None, 443, Some("api.github.com")), Verdict::Outside);
        assert_eq!(s.check(None, 443, Some("*")), Verdict::Inside);
    }
}
