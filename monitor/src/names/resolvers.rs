//! The DNS servers whose answers name endpoints: those the host's administrator set. A process
//! can ask any server it likes (`dig @203.0.113.9 api.github.com`), and a server it chose can
//! answer anything, so its answer is no evidence of a name; only answers from these servers
//! name addresses.
//!
//! The administrator's servers are those in `/etc/resolv.conf` and, for named network
//! namespaces, `/etc/netns/*/resolv.conf` (both root's to write), and those policy lists. The
//! files change (DHCP, a namespace added): an answer from a server not yet known reads them
//! again, at most once per `RESCAN_NS`.
use std::{
    collections::HashSet,
    fs,
    io::Read as _,
    net::IpAddr,
    path::{Path, PathBuf},
};

use crate::policy::Cidr;

/// The least time between two reads of the resolv.conf files, so a stream of answers from a
/// server nobody set costs four reads a second at most.
const RESCAN_NS: u64 = 250_000_000;
/// Bytes read of one resolv.conf, and namespaces read: the files are root's, but bounded all
/// the same.
const MAX_FILE: u64 = 64 * 1024;
const MAX_NAMESPACES: usize = 256;

pub struct Resolvers {
    listed: Vec<Cidr>,
    /// Where the resolv.conf files are (`/etc`), or None to read none (tests).
    etc: Option<PathBuf>,
    from_files: HashSet<IpAddr>,
    /// When the files were last read (boot ns), if ever.
    read_at: Option<u64>,
}

impl Resolvers {
    /// The servers the host's resolv.conf files name, and `listed`.
    pub fn system(listed: Vec<Cidr>) -> Self {
        Self::with_files(listed, Path::new("/etc"))
    }

    /// The servers `etc/resolv.conf` and `etc/netns/*/resolv.conf` name, and `listed`.
    pub fn with_files(listed: Vec<Cidr>, etc: &Path) -> Self {
        let mut resolvers = Self {
            listed,
            etc: Some(etc.to_path_buf()),
            from_files: HashSet::new(),
            read_at: None,
        };
        resolvers.read_files();
        resolvers
    }

    /// Only `listed`, no files (`replay`, which sees no DNS, and tests).
    pub fn only(listed: Vec<Cidr>) -> Self {
        Self {
            listed,
            etc: None,
            from_files: HashSet::new(),
            read_at: None,
        }
    }

    /// Whether answers from `server` name addresses.
    pub fn trusts(&mut self, server: IpAddr, now_ns: u64) -> bool {
        let server = server.to_canonical();
        if self.known(server) {
            return true;
        }
        if self
            .read_at
            .is_some_and(|at| now_ns.saturating_sub(at) < RESCAN_NS)
        {
            return false;
        }
        self.read_files();
        self.read_at = Some(now_ns);
        self.known(server)
    }

    /// The servers trusted now, for the log at start.
    pub fn describe(&self) -> String {
        let mut servers: Vec<String> = self.from_files.iter().map(IpAddr::to_string).collect();
        servers.sort();
        servers.extend(self.listed.iter().map(Cidr::to_string));
        if servers.is_empty() {
            "none".into()
        } else {
            servers.join(", ")
        }
    }

    /// The servers trusted now, as address blocks (for the kernel: enforcement learns scope
    /// names' addresses from their answers).
    pub fn trusted(&self) -> Vec<Cidr> {
        let mut servers: Vec<IpAddr> = self.from_files.iter().copied().collect();
        servers.sort();
        servers
            .into_iter()
            .map(Cidr::host)
            .chain(self.listed.iter().copied())
            .collect()
    }

    /// Reads the resolv.conf files again.
    pub fn reread(&mut self) {
        self.read_files();
    }

    fn known(&self, server: IpAddr) -> bool {
        self.from_files.contains(&server) || self.listed.iter().any(|c| c.contains(server))
    }

    fn read_files(&mut self) {
        let Some(etc) = &self.etc else {
            return;
        };
        let mut files = vec![etc.join("resolv.conf")];
        if let Ok(dir) = fs::read_dir(etc.join("netns")) {
            files.extend(
                dir.flatten()
                    .take(MAX_NAMESPACES)
                    .map(|entry| entry.path().join("resolv.conf")),
            );
        }
        self.from_files = files
            .iter()
            .filter_map(|file| read_bounded(file))
            .flat_map(|text| nameservers(&text))
            .collect();
    }
}

fn read_bounded(path: &Path) -> Option<String> {
    let mut text = String::new();
    fs::File::open(path)
        .ok()?
        .take(MAX_FILE)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The `nameserver` addresses of a resolv.conf (an IPv6 address may carry `%zone`).
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let address = words.next()?;
            let address = address.split_once('%').map_or(address, |(a, _)| a);
            address.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_are_read_and_the_rest_ignored() {
        let text = "# comment\nsearch example.test\nnameserver 127.0.0.53\nnameserver   fe80::1%eth0\n\
                    nameserver not-an-address\noptions edns0\nnameserver\n";
        assert_eq!(
            nameservers(text),
            [
                "127.0.0.53".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn servers_from_files_and_policy_are_trusted_and_a_new_namespace_is_read_again() {
        let etc = std::env::temp_dir().join(format!("kt-resolvers-{}", std::process::id()));
        let _ = fs::remove_dir_all(&etc);
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("resolv.conf"), "nameserver 10.0.0.2\n").unwrap();
        let mut r = Resolvers::with_files(vec!["172.17.0.0/16".parse().unwrap()], &etc);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(r.trusts(ip("10.0.0.2"), 0));
        assert!(
            r.trusts(ip("::ffff:10.0.0.2"), 0),
            "IPv4-mapped is the same server"
        );
        assert!(r.trusts(ip("172.17.0.11"), 0));
        assert!(!r.trusts(ip("203.0.113.9"), 0));

        fs::create_dir_all(etc.join("netns/kt")).unwrap();
        fs::write(etc.join("netns/kt/resolv.conf"), "nameserver 10.77.0.1\n").unwrap();
        assert!(
            !r.trusts(ip("10.77.0.1"), RESCAN_NS / 2),
            "read again only after RESCAN_NS"
        );
        assert!(r.trusts(ip("10.77.0.1"), RESCAN_NS * 2));
        assert!(!r.trusts(ip("203.0.113.9"), RESCAN_NS * 4));
        assert_eq!(r.describe(), "10.0.0.2, 10.77.0.1, 172.17.0.0/16");
        fs::remove_dir_all(&etc).unwrap();
    }
}
