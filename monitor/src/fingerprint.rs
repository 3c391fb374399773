//! Fingerprints: a keyed hash of a secret value, so the same secret in two files or in an
//! environment variable is known to be one credential, without keeping the value. The key is
//! random per run and lives only in memory, so a fingerprint cannot be tested against guesses
//! by anyone who reads keytrail's output. With a fleet key (a root-only file, the same on every
//! host, never sent), the key is derived from it instead, so that hosts, and runs, give one
//! secret the same fingerprint; it can still not be tested without the file.
use std::{fmt, io::Read};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

/// A fleet key file's bytes: at least a 256-bit key's, and no more than is read.
const MIN_FLEET_KEY: usize = 32;
const MAX_FLEET_KEY: u64 = 4096;

/// 64 bits of a keyed BLAKE3 hash: plenty to tell secrets apart on one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 8]);

pub struct Fingerprinter {
    key: [u8; 32],
}

impl Fingerprinter {
    /// A fresh key from the kernel's random source.
    pub fn random() -> std::io::Result<Self> {
        let mut key = [0; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        Ok(Self { key })
    }

    /// The key derived from the fleet key file at `path`: a regular file, root's, readable by
    /// root only (mode 0600 or stricter), of at least 32 bytes (`head -c 32 /dev/urandom`).
    /// The error names the file and what is wrong; it never holds the file's bytes.
    pub fn from_fleet_key(path: &std::path::Path) -> Result<Self, String> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let what = |why: String| format!("fleet key {}: {why}", path.display());
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| what(e.to_string()))?;
        let meta = file.metadata().map_err(|e| what(e.to_string()))?;
        if !meta.is_file() {
            return Err(what("not a regular file".into()));
        }
        if meta.uid() != 0 || meta.mode() & 0o077 != 0 {
            return Err(what(format!(
                "must be root's and readable by root only (it is uid {}, mode {:04o}): chown \
                 root: and chmod 0600 it",
                meta.uid(),
                meta.mode() & 0o7777
            )));
        }
        let mut material = Vec::new();
        file.by_ref()
            .take(MAX_FLEET_KEY)
            .read_to_end(&mut material)
            .map_err(|e| what(e.to_string()))?;
        if material.len() < MIN_FLEET_KEY {
            return Err(what(format!(
                "holds {} bytes, fewer than {MIN_FLEET_KEY}: make one with `head -c 32 /dev/urandom`",
                material.len()
            )));
        }
        let key = blake3::derive_key("keytrail 2026-12 fleet fingerprint key", &material);
        material.fill(0);
        Ok(Self { key })
    }

    /// For tests: a fixed key.
    #[cfg(test)]
    pub fn with_key(byte: u8) -> Self {
        Self { key: [byte; 32] }
    }

    pub fn of(&self, secret: &[u8]) -> Fingerprint {
        let hash = blake3::keyed_hash(&self.key, secret);
        let mut short = [0; 8];
        short.copy_from_slice(&hash.as_bytes()[..8]);
        Fingerprint(short)
    }
}

impl Fingerprint {
    pub fn to_bytes(self) -> [u8; 8] {
        self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("a fingerprint is 16 hex digits, not `{}`", s.escape_debug());
        // Hex digits first: slicing a string of 16 bytes that are not all ASCII would cut a
        // character in two.
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0; 8];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_secret_same_print_and_keys_differ() {
        let a = Fingerprinter::with_key(1);
        let b = Fingerprinter::with_key(2);
        assert_eq!(a.of(b"ghp_x"), a.of(b"ghp_x"));
        assert_ne!(a.of(b"ghp_x"), a.of(b"ghp_y"));
        assert_ne!(a.of(b"ghp_x"), b.of(b"ghp_x"));
        let printed = a.of(b"ghp_x").to_string();
        assert_eq!(printed.len(), 16);
        assert_eq!(printed.parse::<Fingerprint>().unwrap(), a.of(b"ghp_x"));
        // 16 bytes, not 16 hex digits: an error, not a panic on a character boundary.
        for bad in ["éééééééé", "0123456789abcdeg", "+123456789abcdef"] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_fleet_key_gives_the_same_print_on_every_host_and_is_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::testing::scratch_dir("fleet-key");
        let key = dir.join("fleet.key");
        std::fs::write(&key, [7u8; 32]).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (one, two) = (
            Fingerprinter::from_fleet_key(&key).unwrap(),
            Fingerprinter::from_fleet_key(&key).unwrap(),
        );
        assert_eq!(one.of(b"ghp_x"), two.of(b"ghp_x"), "two hosts, one key");
        assert_ne!(
            one.of(b"ghp_x"),
            Fingerprinter::random().unwrap().of(b"ghp_x")
        );
        // Readable by others, too short, a link, or not root's: refused, and said why.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Fingerprinter::from_fleet_key(&key).err().unwrap();
        assert!(
            err.contains("mode 0644") && err.contains("fleet.key"),
            "{err}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&key, Some(1000), None).unwrap();
        assert!(
            Fingerprinter::from_fleet_key(&key)
                .err()
                .unwrap()
                .contains("uid 1000")
        );
        std::os::unix::fs::chown(&key, Some(0), None).unwrap();
        let short = dir.join("short.key");
        std::fs::write(&short, b"0123456789").unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            Fingerprinter::from_fleet_key(&short)
                .err()
                .unwrap()
                .contains("10 bytes")
        );
        let link = dir.join("link.key");
        std::os::unix::fs::symlink(&key, &link).unwrap();
        assert!(Fingerprinter::from_fleet_key(&link).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
