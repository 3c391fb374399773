//! Fingerprints: a keyed hash of a secret value, so the same secret in two files or in an
//! environment variable is known to be one credential, without keeping the value. The key is
//! random per run and lives only in memory, so a fingerprint cannot be tested against guesses
//! by anyone who reads keytrail's output.
use std::{fmt, io::Read};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

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
}
