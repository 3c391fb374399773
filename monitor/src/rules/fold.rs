//! Folding: the same rule, credential and process is reported once per window, with a count,
//! and nothing is dropped silently: what a window held back is reported when the next window
//! opens, or at the end.
use std::time::Duration;

use foldhash::HashMap;

use crate::{
    record::Finding,
    vocab::{RuleId, Timestamp},
};

type Key = (RuleId, Option<String>, u32);

struct Window {
    opened: Timestamp,
    /// Findings held back since the last report, and the newest of them.
    held: u64,
    newest: Option<Finding>,
}

pub struct Folder {
    window: Duration,
    open: HashMap<Key, Window>,
}

impl Folder {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            open: HashMap::default(),
        }
    }

    /// The window's new length (a policy reload), for the windows open and to come.
    pub fn set_window(&mut self, window: Duration) {
        self.window = window;
    }

    /// The finding to report now, if any: the first of a window carries the count of what the
    /// previous window held back, plus itself.
    pub fn fold(&mut self, mut finding: Finding) -> Option<Finding> {
        let key = (
            finding.rule,
            finding.credential.as_ref().map(|c| c.id.clone()),
            finding.process.pid,
        );
        let time = finding.time;
        if let Some(w) = self.open.get_mut(&key)
            && time.since(w.opened) < self.window
        {
            w.held += 1;
            w.newest = Some(finding);
            return None;
        }
        let held = self.open.get(&key).map_or(0, |w| w.held);
        finding.count = held + 1;
        self.open.insert(
            key,
            Window {
                opened: time,
                held: 0,
                newest: None,
            },
        );
        Some(finding)
    }

    /// Everything held back, each with its count; called at the end of a run or replay.
    pub fn flush(&mut self) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .open
            .values_mut()
            .filter_map(|w| {
                let mut f = w.newest.take()?;
                f.count = std::mem::take(&mut w.held);
                Some(f)
            })
            .collect();
        out.sort_by_key(|f| f.time);
        out
    }

    /// Forgets windows that closed with nothing held.
    pub fn sweep(&mut self, now: Timestamp) {
        let window = self.window;
        self.open
            .retain(|_, w| w.held > 0 || now.since(w.opened) < window);
    }
}
