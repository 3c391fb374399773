//! The on-disk queue between keytrail's writer and the NATS publisher: every record bound for
//! the bus is appended here first, and the publisher sends from here in order, moving its
//! position on only once the stream has acknowledged what it sent. So a bus that is away, or a
//! keytrail restarted, loses nothing and sends nothing twice (what was sent but not yet
//! acknowledged goes again with the same message id, and JetStream drops the duplicate).
//!
//! Segment files `INDEX.seg` (16 hex digits) hold frames: `u32` length (little-endian), then
//! `u16` subject length, subject, `u16` id length, id, payload. `position` says where the
//! publisher is: `INDEX OFFSET`. Segments wholly before it are deleted. What lies between the
//! position and the end is the spool's fill; past its bound, new records are dropped and
//! counted, never silently.
use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

/// Segments are this large, at most (but for one frame larger still).
const SEGMENT_BYTES: u64 = 16 << 20;
/// A frame larger than this is not one keytrail wrote: the spool is damaged there.
const MAX_FRAME: u32 = 16 << 20;

/// What the writer and the publisher count, shared.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes appended (with what the last run left unsent).
    pub written: AtomicU64,
    /// Bytes acknowledged by the stream.
    pub acked: AtomicU64,
    /// Records acknowledged by the stream.
    pub published: AtomicU64,
    /// Records dropped because the spool was full.
    pub dropped: AtomicU64,
}

impl Counters {
    /// Bytes waiting in the spool.
    pub fn fill(&self) -> u64 {
        self.written
            .load(Ordering::Relaxed)
            .saturating_sub(self.acked.load(Ordering::Relaxed))
    }
}

/// One record as it goes to the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub subject: String,
    /// The `Nats-Msg-Id`: unique per record, kept across restarts.
    pub id: String,
    pub payload: Vec<u8>,
}

impl Frame {
    fn encode(&self) -> Vec<u8> {
        let body = 2 + self.subject.len() + 2 + self.id.len() + self.payload.len();
        let mut out = Vec::with_capacity(4 + body);
        out.extend_from_slice(&(body as u32).to_le_bytes());
        out.extend_from_slice(&(self.subject.len() as u16).to_le_bytes());
        out.extend_from_slice(self.subject.as_bytes());
        out.extend_from_slice(&(self.id.len() as u16).to_le_bytes());
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// The frame at the start of `bytes` and its length, None when it is not all there yet.
    fn decode(bytes: &[u8]) -> io::Result<Option<(Frame, usize)>> {
        let Some(len) = bytes.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes"));
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a frame too long",
            ));
        }
        let Some(body) = bytes.get(4..4 + len as usize) else {
            return Ok(None);
        };
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "a damaged frame");
        let mut at = 0;
        let mut field = || -> io::Result<&[u8]> {
            let n = u16::from_le_bytes(body.get(at..at + 2).ok_or_else(bad)?.try_into().unwrap());
            let value = body.get(at + 2..at + 2 + n as usize).ok_or_else(bad)?;
            at += 2 + n as usize;
            Ok(value)
        };
        let subject = String::from_utf8(field()?.to_vec()).map_err(|_| bad())?;
        let id = String::from_utf8(field()?.to_vec()).map_err(|_| bad())?;
        let payload = body[at..].to_vec();
        Ok(Some((
            Frame {
                subject,
                id,
                payload,
            },
            4 + len as usize,
        )))
    }
}

fn segment(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:016x}.seg"))
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut found: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            let hex = name.to_str()?.strip_suffix(".seg")?;
            u64::from_str_radix(hex, 16).ok()
        })
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// Where the publisher is: a segment and an offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    index: u64,
    offset: u64,
}

fn read_position(dir: &Path) -> Option<Position> {
    let text = fs::read_to_string(dir.join("position")).ok()?;
    let (index, offset) = text.trim().split_once(' ')?;
    Some(Position {
        index: index.parse().ok()?,
        offset: offset.parse().ok()?,
    })
}

fn write_position(dir: &Path, at: Position) -> io::Result<()> {
    let tmp = dir.join("position.new");
    fs::write(&tmp, format!("{} {}\n", at.index, at.offset))?;
    fs::rename(tmp, dir.join("position"))
}

/// The writer's end: appends frames, bounded.
pub struct SpoolWriter {
    /// The directory, locked: one keytrail per spool.
    _lock: File,
    dir: PathBuf,
    file: BufWriter<File>,
    index: u64,
    size: u64,
    max_bytes: u64,
    /// A segment is closed and a new one begun past this size.
    segment_bytes: u64,
    counters: Arc<Counters>,
}

impl SpoolWriter {
    /// Opens the spool at `dir` (made 0700 if missing), as the last run left it: a frame cut
    /// short by a crash is cut off, what was not yet acknowledged stays to be sent first.
    pub fn open(dir: &Path, max_bytes: u64, counters: Arc<Counters>) -> io::Result<Self> {
        Self::open_with_segments(dir, max_bytes, counters, SEGMENT_BYTES)
    }

    fn open_with_segments(
        dir: &Path,
        max_bytes: u64,
        counters: Arc<Counters>,
        segment_bytes: u64,
    ) -> io::Result<Self> {
        let lock = own_directory(dir)?;
        let found = segments(dir)?;
        let position = read_position(dir).unwrap_or(Position {
            index: found.first().copied().unwrap_or(0),
            offset: 0,
        });
        for &old in found.iter().filter(|&&i| i < position.index) {
            fs::remove_file(segment(dir, old))?;
        }
        let index = found
            .last()
            .copied()
            .unwrap_or(position.index)
            .max(position.index);
        let path = segment(dir, index);
        let size = complete_frames(&path)?;
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        file.set_len(size)?;
        let mut backlog = 0;
        for i in found.iter().filter(|&&i| i >= position.index) {
            backlog += fs::metadata(segment(dir, *i)).map(|m| m.len()).unwrap_or(0);
        }
        let backlog = backlog.saturating_sub(position.offset);
        counters.written.store(backlog, Ordering::Relaxed);
        counters.acked.store(0, Ordering::Relaxed);
        Ok(Self {
            _lock: lock,
            dir: dir.into(),
            file: BufWriter::with_capacity(256 << 10, file),
            index,
            size,
            max_bytes,
            segment_bytes,
            counters,
        })
    }

    /// Appends `frame`, or drops it (counted) when the spool is full. The last tenth is kept
    /// for `urgent` records (findings, keytrail's own): a flood of reads cannot crowd out the
    /// finding about them. False when dropped.
    pub fn append(&mut self, frame: &Frame, urgent: bool) -> io::Result<bool> {
        let bytes = frame.encode();
        let bound = if urgent {
            self.max_bytes
        } else {
            self.max_bytes - self.max_bytes / 10
        };
        if self.counters.fill() + bytes.len() as u64 > bound {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        if self.size > 0 && self.size + bytes.len() as u64 > self.segment_bytes {
            self.file.flush()?;
            self.index += 1;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment(&self.dir, self.index))?;
            self.file = BufWriter::with_capacity(256 << 10, file);
            self.size = 0;
        }
        self.file.write_all(&bytes)?;
        self.size += bytes.len() as u64;
        self.counters
            .written
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(true)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// What `path` holds from `offset` on: a chunk of frames, or at least the whole first frame
/// however long (empty when the file does not exist).
fn read_from(path: &Path, offset: u64) -> io::Result<Vec<u8>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut data = Vec::new();
    Read::by_ref(&mut file)
        .take(1 << 20)
        .read_to_end(&mut data)?;
    if let Some(len) = data.get(..4) {
        let first =
            4 + u32::from_le_bytes(len.try_into().expect("4 bytes")).min(MAX_FRAME) as usize;
        if data.len() < first {
            file.take((first - data.len()) as u64)
                .read_to_end(&mut data)?;
        }
    }
    Ok(data)
}

/// Makes `dir` (0700) if missing, checks that it is a directory of root's that nobody else may
/// write to (not a link: records are written there as root), and locks it: a second keytrail
/// on the same spool is refused.
fn own_directory(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)?;
    let meta = handle.metadata()?;
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "must be root's and writable by root only (it is uid {}, mode {:04o})",
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we hold open.
    if unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "another keytrail uses this spool (it is locked)",
        ));
    }
    Ok(handle)
}

/// The length of `path`'s complete frames (0 when it does not exist).
fn complete_frames(path: &Path) -> io::Result<u64> {
    let Ok(bytes) = fs::read(path) else {
        return Ok(0);
    };
    let mut at = 0;
    while let Ok(Some((_, len))) = Frame::decode(&bytes[at..]) {
        at += len;
    }
    Ok(at as u64)
}

/// The publisher's end: reads frames in order from its position, and moves the position on
/// once they are acknowledged.
pub struct SpoolReader {
    dir: PathBuf,
    at: Position,
    counters: Arc<Counters>,
}

impl SpoolReader {
    /// Call after `SpoolWriter::open`, which puts the spool in order.
    pub fn open(dir: &Path, counters: Arc<Counters>) -> io::Result<Self> {
        let found = segments(dir)?;
        let at = read_position(dir).unwrap_or(Position {
            index: found.first().copied().unwrap_or(0),
            offset: 0,
        });
        Ok(Self {
            dir: dir.into(),
            at,
            counters,
        })
    }

    /// Up to `max` whole frames from the position on (none: all sent, or the writer has not
    /// flushed the next yet), with the position after them.
    pub fn peek(&mut self, max: usize) -> io::Result<(Vec<Frame>, Pending)> {
        let mut frames = Vec::new();
        let mut at = self.at;
        let mut bytes = 0;
        while frames.len() < max {
            let path = segment(&self.dir, at.index);
            // Looked at before the read: the writer flushes a segment before it begins the
            // next, so if the next exists now, this one was whole before the read.
            let next_begun = segment(&self.dir, at.index + 1).exists();
            let data = read_from(&path, at.offset)?;
            let mut used = 0;
            while frames.len() < max {
                let Some((frame, len)) = Frame::decode(&data[used..])? else {
                    break;
                };
                frames.push(frame);
                used += len;
            }
            at.offset += used as u64;
            bytes += used as u64;
            if frames.len() >= max {
                break;
            }
            // This segment is read to its end: on to the next, if the writer had begun it
            // before the read (it never writes to a segment again after that).
            let whole = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if next_begun && at.offset >= whole {
                at = Position {
                    index: at.index + 1,
                    offset: 0,
                };
                continue;
            }
            break;
        }
        Ok((frames, Pending { at, bytes }))
    }

    /// The frames `peek` gave are acknowledged: moves the position past them.
    pub fn commit(&mut self, pending: Pending, frames: usize) -> io::Result<()> {
        write_position(&self.dir, pending.at)?;
        for old in self.at.index..pending.at.index {
            let _ = fs::remove_file(segment(&self.dir, old));
        }
        self.at = pending.at;
        self.counters
            .acked
            .fetch_add(pending.bytes, Ordering::Relaxed);
        self.counters
            .published
            .fetch_add(frames as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Where the position will be once what `peek` gave is acknowledged.
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    at: Position,
    bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Frame {
        Frame {
            subject: "keytrail.host.stats".into(),
            id: format!("m-1-{n}"),
            payload: format!("{{\"n\":{n}}}").into_bytes(),
        }
    }

    #[test]
    fn frames_go_out_in_order_once_acknowledged_and_survive_a_restart() {
        let dir = crate::testing::scratch_dir("spool");
        let counters = Arc::new(Counters::default());
        let mut writer = SpoolWriter::open(&dir, 1 << 20, Arc::clone(&counters)).unwrap();
        for n in 0..10 {
            assert!(writer.append(&frame(n), false).unwrap());
        }
        writer.flush().unwrap();
        let mut reader = SpoolReader::open(&dir, Arc::clone(&counters)).unwrap();
        let (frames, pending) = reader.peek(4).unwrap();
        assert_eq!(frames, (0..4).map(frame).collect::<Vec<_>>());
        // Not acknowledged: the same frames again.
        let (again, _) = reader.peek(4).unwrap();
        assert_eq!(again, frames);
        reader.commit(pending, frames.len()).unwrap();
        assert_eq!(counters.published.load(Ordering::Relaxed), 4);
        // A restart: what was acknowledged is not sent again; a frame cut short is cut off.
        drop((writer, reader));
        let mut f = OpenOptions::new()
            .append(true)
            .open(segment(&dir, 0))
            .unwrap();
        f.write_all(&frame(99).encode()[..7]).unwrap();
        let counters = Arc::new(Counters::default());
        let mut writer = SpoolWriter::open(&dir, 1 << 20, Arc::clone(&counters)).unwrap();
        writer.append(&frame(10), false).unwrap();
        writer.flush().unwrap();
        let mut reader = SpoolReader::open(&dir, Arc::clone(&counters)).unwrap();
        let (frames, pending) = reader.peek(100).unwrap();
        assert_eq!(frames, (4..11).map(frame).collect::<Vec<_>>());
        reader.commit(pending, frames.len()).unwrap();
        assert_eq!(counters.fill(), 0);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_full_spool_drops_and_counts() {
        let dir = crate::testing::scratch_dir("spool-full");
        let counters = Arc::new(Counters::default());
        let one = frame(0).encode().len() as u64;
        let mut writer = SpoolWriter::open(&dir, one * 10, Arc::clone(&counters)).unwrap();
        let kept = (0..12)
            .filter(|&n| writer.append(&frame(n), false).unwrap())
            .count();
        assert_eq!(kept, 9, "the last tenth is kept for urgent records");
        assert!(writer.append(&frame(1), true).unwrap());
        assert!(!writer.append(&frame(2), true).unwrap());
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 4);
        // One keytrail per spool.
        let second = SpoolWriter::open(&dir, one * 10, Arc::new(Counters::default()));
        assert!(
            second
                .err()
                .unwrap()
                .to_string()
                .contains("another keytrail")
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_reader_follows_the_writer_into_new_segments() {
        let dir = crate::testing::scratch_dir("spool-segments");
        let counters = Arc::new(Counters::default());
        let mut writer = SpoolWriter::open(&dir, u64::MAX, Arc::clone(&counters)).unwrap();
        let big = Frame {
            payload: vec![b'x'; 6 << 20],
            ..frame(0)
        };
        for _ in 0..4 {
            writer.append(&big, false).unwrap();
        }
        writer.flush().unwrap();
        assert!(segments(&dir).unwrap().len() >= 2);
        let mut reader = SpoolReader::open(&dir, Arc::clone(&counters)).unwrap();
        let mut got = 0;
        loop {
            let (frames, pending) = reader.peek(1).unwrap();
            if frames.is_empty() {
                break;
            }
            got += frames.len();
            reader.commit(pending, frames.len()).unwrap();
        }
        assert_eq!(got, 4);
        assert_eq!(segments(&dir).unwrap().len(), 1, "passed segments deleted");
        fs::remove_dir_all(dir).unwrap();
    }

    /// The writer rotating segments while the reader reads: every frame once, in order.
    #[test]
    fn a_reader_beside_a_rotating_writer_misses_nothing() {
        let dir = crate::testing::scratch_dir("spool-race");
        let counters = Arc::new(Counters::default());
        let mut writer =
            SpoolWriter::open_with_segments(&dir, u64::MAX, Arc::clone(&counters), 64 << 10)
                .unwrap();
        let mut reader = SpoolReader::open(&dir, Arc::clone(&counters)).unwrap();
        let total = 3000;
        let payload = vec![b'y'; 2000]; // some 90 segments over the run
        let writing = std::thread::spawn(move || {
            for n in 0..total {
                let f = Frame {
                    subject: "s".into(),
                    id: n.to_string(),
                    payload: payload.clone(),
                };
                writer.append(&f, false).unwrap();
                writer.flush().unwrap();
            }
        });
        let mut next = 0;
        while next < total {
            let (frames, pending) = reader.peek(7).unwrap();
            for f in &frames {
                assert_eq!(f.id, next.to_string(), "out of order or skipped");
                next += 1;
            }
            reader.commit(pending, frames.len()).unwrap();
        }
        writing.join().unwrap();
        assert_eq!(counters.fill(), 0);
        fs::remove_dir_all(dir).unwrap();
    }
}
