//! A network namespace of a test's own: loopback up and holding the addresses the test serves
//! (this kernel has no dummy interfaces; loopback takes any address), and its own resolv.conf (which `ip netns exec` mounts over /etc/resolv.conf
//! for the programs it runs). keytrail's hooks are on the cgroup, so they see inside it.
use std::{
    fs,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{KillOnDrop, TestUser, WAIT, run};

pub struct Netns {
    pub name: String,
    etc: PathBuf,
}

impl Netns {
    /// `addrs` are `ADDRESS/PREFIX`; `nameserver` goes in the namespace's resolv.conf.
    pub fn create(tag: &str, addrs: &[&str], nameserver: &str) -> Self {
        let name = format!("kt-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self {
            etc: PathBuf::from("/etc/netns").join(&name),
            name,
        };
        ns.ip(&["link", "set", "lo", "up"]);
        for addr in addrs {
            let mut args = vec!["addr", "add", addr, "dev", "lo"];
            if addr.contains(':') {
                args.push("nodad"); // usable at once, not after duplicate detection
            }
            ns.ip(&args);
        }
        fs::create_dir_all(&ns.etc).unwrap();
        fs::write(
            ns.etc.join("resolv.conf"),
            format!("nameserver {nameserver}\noptions timeout:2 attempts:2\n"),
        )
        .unwrap();
        ns
    }

    fn ip(&self, args: &[&str]) {
        run(Command::new("ip").args(["-n", &self.name]).args(args));
    }

    /// `program` run as root inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// `program` run as `user` inside the namespace. Every step execs, so the child's pid is
    /// the program's.
    pub fn command_as(&self, user: &TestUser, program: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name, "setpriv"])
            .arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .args(["--clear-groups", "env"])
            .arg(format!("HOME={}", user.home.display()))
            .arg(program)
            .current_dir(&user.home);
        command
    }
}

impl Netns {
    /// dnsmasq answering from `records` on 10.77.0.1 (the namespace's resolver, by the tests'
    /// convention) inside the namespace, and nothing else.
    pub fn dnsmasq(&self, records: &[&str]) -> KillOnDrop {
        self.dnsmasq_on("10.77.0.1", records)
    }

    /// dnsmasq answering from `records` on `address` inside the namespace.
    pub fn dnsmasq_on(&self, address: &str, records: &[&str]) -> KillOnDrop {
        KillOnDrop(
            self.command("dnsmasq")
                .args([
                    "--keep-in-foreground",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    "--user=root",
                ])
                .arg(format!("--listen-address={address}"))
                .arg(format!(
                    "--pid-file=/tmp/{}.{address}.dnsmasq.pid",
                    self.name
                ))
                .args(records)
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq (apt install dnsmasq-base)"),
        )
    }

    /// Waits until `name` resolves inside the namespace (dnsmasq has started listening).
    pub fn wait_until_resolves(&self, name: &str) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let ok = self
                .command("getent")
                .args(["hosts", name])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{name} did not resolve in {} within {WAIT:?}", self.name);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = fs::remove_dir_all(&self.etc);
    }
}
