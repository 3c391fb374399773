//! Who made the most kernel events lately: when events are lost, the `monitor-blind` finding
//! names that process. Misra-Gries counting over the events of one stats interval: at most
//! `SLOTS` counters, so a fork bomb of fresh pids cannot grow it, and a process that made more
//! than a `SLOTS`-th of the events is always among them.
use crate::decode::KernelEvent;

const SLOTS: usize = 16;

#[derive(Default)]
pub struct Producers {
    counts: Vec<(u32, u64)>,
}

impl Producers {
    /// Counts `event` for the process that caused it: the parent of a fork or an exec (a loop
    /// of short commands is its shell's doing), else the process itself.
    pub fn note(&mut self, event: &KernelEvent) {
        let pid = match event {
            KernelEvent::Fork { ppid, .. } => *ppid,
            KernelEvent::Exec(e) => e.ppid,
            KernelEvent::Exit { pid, .. } | KernelEvent::FileAccess { pid, .. } => *pid,
            KernelEvent::Connect(c) => c.pid,
            KernelEvent::Payload(p) => p.pid,
        };
        if let Some(slot) = self.counts.iter_mut().find(|(p, _)| *p == pid) {
            slot.1 += 1;
        } else if self.counts.len() < SLOTS {
            self.counts.push((pid, 1));
        } else {
            for slot in &mut self.counts {
                slot.1 -= 1;
            }
            self.counts.retain(|(_, n)| *n > 0);
        }
    }

    /// The process that made the most events, as far as the counters tell.
    pub fn top(&self) -> Option<u32> {
        self.counts.iter().max_by_key(|(_, n)| *n).map(|(p, _)| *p)
    }

    pub fn clear(&mut self) {
        self.counts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fork(ppid: u32, pid: u32) -> KernelEvent {
        KernelEvent::Fork {
            pid,
            ppid,
            start_boot_ns: 0,
            boot_ns: 0,
        }
    }

    #[test]
    fn a_fork_loop_among_many_processes_is_named_and_memory_stays_bounded() {
        let mut p = Producers::default();
        for i in 0..10_000u32 {
            p.note(&fork(7, 100_000 + i)); // the flooder's children
            p.note(&KernelEvent::Exit {
                pid: 200_000 + i,
                boot_ns: 0,
            }); // others, each once
        }
        assert_eq!(p.top(), Some(7));
        assert!(p.counts.len() <= SLOTS);
        p.clear();
        assert_eq!(p.top(), None);
    }
}
