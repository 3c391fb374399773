//! `keytrail replay FILE`: recorded records in, findings out, through the same pipeline as
//! `run`. No kernel, no privileges: how rules are tested and how users tune a policy.
use std::{
    fs::File,
    io::{self, BufRead, BufReader, Read},
    path::Path,
    sync::Arc,
};

use anyhow::Context as _;

use crate::{
    pipeline::{Pipeline, SourceCounts},
    policy::Policy,
    record::Record,
    sink::{self, Format, Sink},
    vocab::Timestamp,
};

pub fn run(file: &Path, policy: Arc<Policy>, format: Format) -> anyhow::Result<()> {
    let mut sink = sink::for_format(format, Box::new(io::stdout()), false);
    let input: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(BufReader::new(io::stdin()))
    } else {
        let f = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        Box::new(BufReader::new(f))
    };
    let (records, findings) = replay(input, file, policy, sink.as_mut())?;
    sink.flush()?;
    log::info!(
        "{}: {records} records replayed, {findings} findings",
        file.display()
    );
    Ok(())
}

/// Adds what `policy` says of a recorded credential to what the record carries, as the catalog
/// does for a live one: a recorded stream may come from another policy, or be hand-written.
fn add_policy_facts(record: &mut Record, policy: &Policy) {
    let (Record::CredentialAccess { credential, .. } | Record::CredentialUse { credential, .. }) =
        record
    else {
        return;
    };
    let facts = policy.credential_facts(credential.kind, &credential.path);
    let credential = Arc::make_mut(credential);
    credential.scope.extend(&facts.scope);
    if credential.readers.is_empty() {
        credential.readers = facts.readers;
    }
    if credential.context.is_none() {
        credential.context = facts.context;
    }
}

/// The longest line read: a record is a few KiB, and `replay /dev/zero` must end with an error,
/// not with all the memory there is.
const MAX_LINE: usize = 1 << 20;

/// Feeds every record to the rules and writes the findings; returns (records, findings).
pub fn replay(
    mut input: impl BufRead,
    name: &Path,
    policy: Arc<Policy>,
    sink: &mut dyn Sink,
) -> anyhow::Result<(u64, u64)> {
    let mut pipeline = Pipeline::for_records(Arc::clone(&policy));
    let mut counts = SourceCounts::default();
    let mut last_time = Timestamp::default();
    let mut found = Vec::new();
    let mut buf = Vec::new();
    for n in 1.. {
        buf.clear();
        let read = (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("{}: reading line {n}", name.display()))?;
        if read == 0 {
            break;
        }
        if buf.len() > MAX_LINE {
            anyhow::bail!(
                "{}:{n}: longer than {} KiB: not a keytrail record",
                name.display(),
                MAX_LINE / 1024
            );
        }
        let line = std::str::from_utf8(&buf)
            .with_context(|| format!("{}:{n}: not UTF-8", name.display()))?
            .trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut record: Record = serde_json::from_str(line)
            .with_context(|| format!("{}:{n}: not a keytrail record", name.display()))?;
        add_policy_facts(&mut record, &policy);
        counts.events += 1;
        last_time = record.time();
        pipeline.observe(&record, &mut found);
        for f in found.drain(..) {
            sink.write(&f)?;
        }
    }
    pipeline.finish(&mut found);
    for f in &found {
        sink.write(f)?;
    }
    sink.write(&pipeline.stats(last_time, counts))?;
    Ok((counts.events, pipeline.findings()))
}
