//! Kernel timestamps (ns since boot, suspend included) to wall-clock record times.
use std::time::{Duration, SystemTime};

use crate::vocab::Timestamp;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Wall-clock time at boot.
    boot: SystemTime,
}

impl Clock {
    pub fn now() -> Self {
        let since_boot = Duration::from_nanos(boot_ns());
        Self {
            boot: SystemTime::now() - since_boot,
        }
    }

    /// A clock that booted at the Unix epoch plus `boot_unix_ns`: for tests, and for replay,
    /// whose records carry their times already.
    pub fn fixed(boot_unix_ns: u64) -> Self {
        Self {
            boot: SystemTime::UNIX_EPOCH + Duration::from_nanos(boot_unix_ns),
        }
    }

    /// The wall-clock time of kernel time `boot_ns`.
    pub fn at(&self, boot_ns: u64) -> Timestamp {
        Timestamp::from(self.boot + Duration::from_nanos(boot_ns))
    }

    pub fn current(&self) -> Timestamp {
        self.at(boot_ns())
    }
}

/// CLOCK_BOOTTIME now, the clock of `bpf_ktime_get_boot_ns`.
pub fn boot_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
