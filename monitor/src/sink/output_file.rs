//! `run --output FILE`: records appended to a file, which SIGHUP reopens (logrotate's
//! convention: rotate moves the file away, then signals; the next records go to a new file at
//! the path). The file is reopened between batches only (the first write after a flush: the
//! writer flushes once per batch), so a record is never split across two files. A reopen that fails keeps writing to the file already open, and
//! says so in the log: no record is lost to a missing directory.
use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

pub struct OutputFile {
    path: PathBuf,
    file: BufWriter<File>,
    reopen: Arc<AtomicBool>,
    /// Nothing written since the last flush: the next write starts a batch.
    between_batches: bool,
}

impl OutputFile {
    /// Opens `path` for appending (created 0640 when missing); the flag returned asks for a
    /// reopen at the next flush.
    pub fn open(path: &Path) -> io::Result<(Self, Arc<AtomicBool>)> {
        let reopen = Arc::new(AtomicBool::new(false));
        let file = Self {
            path: path.to_owned(),
            file: BufWriter::new(open_append(path)?),
            reopen: Arc::clone(&reopen),
            between_batches: true,
        };
        Ok((file, reopen))
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if std::mem::replace(&mut self.between_batches, false)
            && self.reopen.swap(false, Ordering::AcqRel)
        {
            match open_append(&self.path) {
                Ok(file) => self.file = BufWriter::new(file),
                Err(e) => log::error!(
                    "reopening the output {}: {e}; writing on to the file already open",
                    self.path.display()
                ),
            }
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.between_batches = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopen_waits_for_the_flush_and_follows_the_path() {
        let dir = std::env::temp_dir().join(format!("kt-output-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("records.ndjson");
        let (mut out, reopen) = OutputFile::open(&path).unwrap();
        out.write_all(b"one\n").unwrap();
        out.flush().unwrap();
        std::fs::rename(&path, dir.join("records.ndjson.1")).unwrap();
        out.write_all(b"two, ").unwrap();
        reopen.store(true, Ordering::Release);
        out.write_all(b"in one batch\n").unwrap(); // mid-batch: still the rotated file
        out.flush().unwrap();
        out.write_all(b"three\n").unwrap();
        out.flush().unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(read("records.ndjson.1"), "one\ntwo, in one batch\n");
        assert_eq!(read("records.ndjson"), "three\n");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
