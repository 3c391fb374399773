//! Record times: wall-clock nanoseconds since the Unix epoch, kept as a number from the kernel's
//! clock to the sink, and written as RFC 3339 (UTC, microseconds) only when a record is printed.
//! Stages compare and subtract times; none of them formats or parses text.
use std::{
    fmt,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_ns: u64,
}

impl Timestamp {
    pub const fn from_unix_ns(unix_ns: u64) -> Self {
        Self { unix_ns }
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_ns(self) -> u64 {
        self.unix_ns
    }

    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// How long after `earlier` this is; zero when it is not after it.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.unix_ns.saturating_sub(earlier.unix_ns))
    }

    fn system_time(self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.unix_ns)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let since_epoch = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        Self::from_unix_ns(u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_rfc3339_micros(self.system_time()).fmt(f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// RFC 3339, as keytrail writes it; the weak form (`2026-11-23 13:54:09`, no zone: UTC) is taken
/// too, for hand-written streams. Anything else is an error naming the text.
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text)
            .or_else(|_| humantime::parse_rfc3339_weak(&text))
            .map(Self::from)
            .map_err(|e| D::Error::custom(format!("invalid time `{text}`: {e} (RFC 3339)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339_at_microseconds() {
        let t = Timestamp::from_unix_ns(1_763_905_649_482_434_000);
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(text, "\"2025-11-23T13:47:29.482434Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&text).unwrap(), t);
        let weak: Timestamp = serde_json::from_str("\"2025-11-23 13:47:29\"").unwrap();
        assert_eq!(t.since(weak), Duration::from_nanos(482_434_000));
        assert_eq!(weak.since(t), Duration::ZERO);
        let err = serde_json::from_str::<Timestamp>("\"yesterday\"").unwrap_err();
        assert!(err.to_string().contains("yesterday"), "{err}");
    }
}
