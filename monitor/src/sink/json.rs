use std::io::{self, Write};

use super::Sink;
use crate::record::Record;

pub struct JsonSink<W> {
    out: W,
    /// One record's line, made in memory first: serde writes a record in dozens of small
    /// pieces, and each piece through `out` (a boxed writer) was a dynamic call.
    line: Vec<u8>,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            line: Vec::with_capacity(1024),
        }
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
