//! Registering kernel file descriptors (ring buffer, inotify) with tokio for read readiness.
use std::{io, os::fd::AsRawFd};

use tokio::io::{Interest, unix::AsyncFd};

pub fn register_readable<T: AsRawFd>(inner: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: `inner` owns its descriptor and the AsyncFd owns `inner`, so the descriptor stays
    // open for as long as it is registered.
    unsafe { AsyncFd::register_with_interest(inner, Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))
}
