//! kt-vm-helper: the test VM's reader. busybox reads files one way (open, then read); a
//! credential is read in many more, and each must reach one of keytrail's hooks. Built static
//! by `cargo xtask vm-test` and run by xtask/vm/init.sh:
//!
//! - `hold METHOD FILE GO`: opens FILE now, waits until the file GO exists, then reads FILE by
//!   METHOD (read, pread, mmap, io_uring, sendfile, splice) and exits. Opened before keytrail
//!   starts, the descriptor's open is not seen; only the read itself can be.
//! - `loop FILE N`: opens, reads and closes FILE N times, and prints the time per iteration (a
//!   workload for the kernel's per-program statistics).
use std::{
    fs::File,
    io::Read,
    os::fd::AsRawFd,
    path::Path,
    process::ExitCode,
    thread::sleep,
    time::{Duration, Instant},
};

const METHODS: &[&str] = &["read", "pread", "mmap", "io_uring", "sendfile", "splice"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["hold", method, file, go] if METHODS.contains(method) => hold(method, file, go),
        ["loop", file, count] => match count.parse() {
            Ok(count) => read_loop(file, count),
            Err(_) => Err(format!("`{count}` is not a count")),
        },
        _ => Err(format!(
            "usage: kt-vm-helper hold {{{}}} FILE GO | loop FILE N",
            METHODS.join("|")
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("kt-vm-helper: {why}");
            ExitCode::FAILURE
        }
    }
}

fn hold(method: &str, file: &str, go: &str) -> Result<(), String> {
    let held = File::open(file).map_err(|e| format!("opening {file}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while !Path::new(go).exists() {
        if Instant::now() > deadline {
            return Err(format!("{go} never appeared"));
        }
        sleep(Duration::from_millis(20));
    }
    let fd = held.as_raw_fd();
    let read = match method {
        "read" => by_read(fd),
        "pread" => by_pread(fd),
        "mmap" => by_mmap(fd),
        "io_uring" => by_io_uring(fd),
        "sendfile" => by_sendfile(fd),
        "splice" => by_splice(fd),
        _ => unreachable!("checked by main"),
    }
    .map_err(|e| format!("{method} of {file}: {e}"))?;
    println!(
        "kt-vm-helper: pid {} {method} {read} bytes of {file}",
        std::process::id()
    );
    Ok(())
}

fn check(ret: isize) -> std::io::Result<usize> {
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

fn by_read(fd: i32) -> std::io::Result<usize> {
    let mut buf = [0u8; 4096];
    // SAFETY: `buf` is valid for its length.
    check(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

fn by_pread(fd: i32) -> std::io::Result<usize> {
    let mut buf = [0u8; 4096];
    // SAFETY: `buf` is valid for its length.
    check(unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) })
}

/// Maps the first page and touches it: the read is a page fault, not a syscall.
fn by_mmap(fd: i32) -> std::io::Result<usize> {
    // SAFETY: a fresh private read-only mapping, unmapped before return.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            fd,
            0,
        );
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let _ = std::ptr::read_volatile(map.cast::<u8>());
        libc::munmap(map, 4096);
        Ok(4096)
    }
}

fn by_io_uring(fd: i32) -> std::io::Result<usize> {
    let mut ring = io_uring::IoUring::new(2)?;
    let mut buf = [0u8; 4096];
    let read = io_uring::opcode::Read::new(io_uring::types::Fd(fd), buf.as_mut_ptr(), 4096)
        .offset(0)
        .build();
    // SAFETY: `buf` outlives the operation: we wait for its completion below.
    unsafe { ring.submission().push(&read) }.map_err(std::io::Error::other)?;
    ring.submit_and_wait(1)?;
    let done = ring
        .completion()
        .next()
        .ok_or_else(|| std::io::Error::other("no completion"))?;
    check(done.result() as isize)
}

/// sendfile into /dev/null: the kernel splices the file without user space seeing a byte.
fn by_sendfile(fd: i32) -> std::io::Result<usize> {
    let null = File::options().write(true).open("/dev/null")?;
    // SAFETY: both descriptors are open; a null offset uses the file position.
    check(unsafe { libc::sendfile(null.as_raw_fd(), fd, std::ptr::null_mut(), 4096) })
}

/// splice into a pipe.
fn by_splice(fd: i32) -> std::io::Result<usize> {
    let mut pipe = [0i32; 2];
    // SAFETY: `pipe` has room for the two descriptors.
    check(unsafe { libc::pipe(pipe.as_mut_ptr()) } as isize)?;
    // SAFETY: open descriptors, null offsets (file positions).
    let moved = check(unsafe {
        libc::splice(
            fd,
            std::ptr::null_mut(),
            pipe[1],
            std::ptr::null_mut(),
            4096,
            0,
        )
    });
    // SAFETY: ours to close.
    unsafe {
        libc::close(pipe[0]);
        libc::close(pipe[1]);
    }
    moved
}

fn read_loop(file: &str, count: u32) -> Result<(), String> {
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    for _ in 0..count {
        let mut f = File::open(file).map_err(|e| format!("opening {file}: {e}"))?;
        let _ = f
            .read(&mut buf)
            .map_err(|e| format!("reading {file}: {e}"))?;
    }
    let each = started.elapsed() / count.max(1);
    println!("kt-vm-helper: {count} opens and reads of {file}, {each:?} each");
    Ok(())
}
