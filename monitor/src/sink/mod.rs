//! Where records go: one printer per output format, behind one trait.
mod json;
pub mod metrics;
pub mod nats;
mod ocsf;
mod output_file;
mod printable;
pub mod syslog;
mod text;
mod writer;

use std::io::{self, Write};

pub use json::JsonSink;
pub use ocsf::OcsfSink;
pub use output_file::OutputFile;
pub use text::TextSink;
pub use writer::Writer;

use crate::record::Record;

pub trait Sink {
    fn write(&mut self, record: &Record) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One readable line per record; coloured on a terminal.
    Text,
    /// One JSON object per line (NDJSON), as in the contract.
    Json,
    /// One OCSF 1.5.0 event per line (NDJSON): findings as Detection Finding, reads as File
    /// System Activity, connections and uses as Network Activity (docs/ocsf.md).
    Ocsf,
}

pub fn for_format(
    format: Format,
    out: Box<dyn Write + Send>,
    colour: bool,
) -> Box<dyn Sink + Send> {
    match format {
        Format::Json => Box::new(JsonSink::new(out)),
        Format::Ocsf => Box::new(OcsfSink::new(out)),
        Format::Text => Box::new(TextSink::new(out, colour)),
    }
}
