//! The kernel's side of the catalog: the watch map (which files are credentials, and for those
//! enforced, their slot and reader set), enforcement's maps, read denial's allowed readers, the open hook when a credential needs it, and the
//! directory watches. `sync` brings them all in line after the catalog changed.
use std::{collections::HashMap as StdHashMap, os::unix::fs::MetadataExt};

use aya::maps::{HashMap, MapData};
use monitor_common::{FileKey, enforce_mode, watched};

use crate::{
    catalog::{Catalog, kernel_dev},
    kernel::{
        enforcement::{self, Candidate, EnforcementMaps, Installed, Prepared, Slots},
        probes::{Probes, Purpose},
        read_denial::{ReaderSets, ReadersMap},
    },
    names::Resolvers,
    policy::{CredentialFacts, Policy},
    record::EnforcementReport,
    watcher::Watcher,
};

pub struct KernelCatalog {
    watched: HashMap<MapData, FileKey, u64>,
    readers: ReadersMap,
    reader_sets: ReaderSets,
    /// Whether opens can be refused here (BPF LSM runs and `lsm/file_open` is attached), and
    /// if not, why.
    reads_available: Result<(), String>,
    said_reads_unavailable: bool,
    /// Whether the kernel knows contexts here (its exec programs loaded), and if not, why;
    /// None until policy first may refuse a context (loading them takes the verifier a while).
    contexts_available: Option<Result<(), String>>,
    /// Still starting: the exec programs of contexts may be loaded now, when policy refuses
    /// contexts. Later (a reload) they would start from processes they never saw exec.
    starting: bool,
    /// Executables the readers map allows, as last installed.
    allowed_readers: usize,
    /// Some credential's opens are refused now.
    refuses_reads: bool,
    /// What the watch map holds, to write only what changed.
    values: StdHashMap<FileKey, u64>,
    enforcement: EnforcementMaps,
    installed: Installed,
    slots: Slots,
    /// `enforce_mode::DENY`, or `DRY_RUN` when asked.
    mode: u32,
    /// The resolvers whose answers teach the kernel the addresses of scope names.
    resolvers: Resolvers,
    report: EnforcementReport,
}

impl KernelCatalog {
    pub fn new(
        watched: HashMap<MapData, FileKey, u64>,
        enforcement: EnforcementMaps,
        readers: ReadersMap,
        policy: &Policy,
        dry_run: bool,
        reads_available: Result<(), String>,
    ) -> Self {
        let mut kernel = Self {
            watched,
            readers,
            reader_sets: ReaderSets::default(),
            reads_available: reads_available.clone(),
            said_reads_unavailable: false,
            contexts_available: None,
            starting: true,
            allowed_readers: 0,
            refuses_reads: false,
            values: StdHashMap::new(),
            enforcement,
            installed: Installed::default(),
            slots: Slots::default(),
            // Both set from policy by `reconfigure` below.
            mode: enforce_mode::OFF,
            resolvers: Resolvers::only(Vec::new()),
            report: EnforcementReport {
                mode: "off".into(),
                credentials: 0,
                scopes: 0,
                reads: match reads_available {
                    Ok(()) => "off".into(),
                    Err(why) => why,
                },
                contexts: "off".into(),
            },
        };
        if let Err(e) = kernel.enforcement.draw_hash_key() {
            log::error!("enforcement: drawing the name hash's key failed: {e}");
        }
        kernel.reconfigure(policy, dry_run);
        kernel
    }

    /// Policy's dry run, exempt programs and resolvers take effect, at start and when it is
    /// reloaded (the plan follows at the next `sync`). `--dry-run-enforce` still holds.
    pub fn reconfigure(&mut self, policy: &Policy, dry_run_flag: bool) {
        self.mode = if dry_run_flag || policy.enforcement.dry_run {
            enforce_mode::DRY_RUN
        } else {
            enforce_mode::DENY
        };
        self.resolvers = Resolvers::system(policy.names.resolvers.clone());
        self.trust_resolvers();
        self.exempt(policy);
        if let Err(e) = self.enforcement.set_context_label(&policy.context.label) {
            log::error!("enforcement: the kernel's context label map refused it: {e}");
        }
    }

    /// Policy's exempt programs, by file identity, in the kernel (those no longer exempt out).
    fn exempt(&mut self, policy: &Policy) {
        let exempt: Vec<FileKey> = policy
            .enforcement
            .exempt
            .iter()
            .filter_map(|path| match std::fs::metadata(path) {
                Ok(meta) => Some(FileKey::new(kernel_dev(meta.dev()), meta.ino())),
                Err(e) => {
                    log::warn!("enforcement: exempt program {path:?}: {e}");
                    None
                }
            })
            .collect();
        if let Err(e) = self.enforcement.exempt(&exempt) {
            log::error!("enforcement: the kernel's exempt map refused an entry: {e}");
        }
    }

    /// The contexts of the processes that ran before keytrail: (pid, label).
    pub fn seed_contexts(&mut self, labels: &[(u32, String)]) {
        self.enforcement.seed_contexts(labels);
    }

    /// What enforcement does, for `ready`.
    pub fn report(&self) -> EnforcementReport {
        self.report.clone()
    }

    /// Resolves the catalog again and brings the kernel and the directory watches in line.
    pub fn sync(
        &mut self,
        catalog: &mut Catalog,
        policy: &Policy,
        probes: &mut Probes,
        watcher: &mut Watcher,
    ) {
        // A watch comes after what it watches: a file created in a new directory, or given to
        // its user, before the directory or the file was watched sent nothing. So when this
        // resolve adds watches, the next looks again (at most a few rounds: directories nest).
        for _ in 0..4 {
            let changes = catalog.resolve(policy);
            if !changes.added.is_empty() || !changes.removed.is_empty() {
                log::info!(
                    "catalog: {} credentials appeared, {} went",
                    changes.added.len(),
                    changes.removed.len()
                );
            }
            for key in &changes.removed {
                let _ = self.watched.remove(key);
                self.values.remove(key);
            }
            self.enforce(catalog, policy, probes);
            if catalog.needs_open_hook() {
                probes.ensure(Purpose::CredentialOpen);
            }
            let added = watcher.watch(&catalog.directories_to_watch(), catalog.files_to_watch());
            if added == 0 {
                break;
            }
        }
        self.starting = false;
    }

    /// The slots of enforced credentials and the reader sets of those whose opens are
    /// refused, in the kernel before their files are watched with them: a read marks its reader
    /// as it happens, and an open is judged as it happens.
    fn enforce(&mut self, catalog: &Catalog, policy: &Policy, probes: &mut Probes) {
        let facts: Vec<(FileKey, &str, CredentialFacts)> = catalog
            .credentials()
            .map(|c| {
                let facts = policy.credential_facts(c.record.kind, &c.record.path);
                (c.file, c.record.path.as_str(), facts)
            })
            .collect();
        let candidates: Vec<Candidate> = catalog
            .credentials()
            .zip(&facts)
            .map(|(c, (_, _, facts))| Candidate {
                file: c.file,
                path: &c.record.path,
                scope: &c.record.scope,
                owner: c.record.owner,
                deny: facts.deny,
                deny_context: facts.deny_context,
                context: facts.context.as_deref(),
                context_by_label: facts
                    .context
                    .as_deref()
                    .is_none_or(|o| policy.is_label_context(o)),
            })
            .collect();
        let plan = enforcement::plan(&mut self.slots, candidates);
        for (path, why) in &plan.skipped {
            log::warn!("enforcement: {path:?} is not enforced: {why}");
        }
        for (path, why) in &plan.context_reported {
            log::warn!("enforcement: {path:?} in another context is reported, not refused: {why}");
        }
        // At start, where policy may refuse contexts at all: the kernel must follow every exec
        // from then on, before the credentials that need it appear.
        if self.starting && policy.may_refuse_contexts() {
            let _ = self.know_contexts(probes);
        }
        let refuses_contexts = plan.contexts & plan.in_use != 0;
        let contexts_known = refuses_contexts && self.know_contexts(probes).is_ok();
        let reader_sets = self.reader_sets_of(&facts);
        let refuses_reads = !reader_sets.is_empty();
        self.refuses_reads = refuses_reads;
        if refuses_reads {
            self.refresh_readers();
        }
        // The next generation of the plan and the watched map's half for it, then both in
        // force at once.
        let prepared = self
            .enforcement
            .prepare(&plan, self.mode, refuses_reads, contexts_known)
            .and_then(|prepared| {
                self.watch(&plan.values, &reader_sets, prepared.generation);
                self.enforcement.commit(prepared)?;
                Ok(prepared)
            });
        self.report.mode = match prepared {
            Ok(Prepared {
                mode: enforce_mode::OFF,
                ..
            }) => "off".into(),
            Ok(Prepared {
                mode: enforce_mode::DRY_RUN,
                ..
            }) => "dry-run".into(),
            Ok(_) => "deny".into(),
            Err(e) => {
                // Half a plan would refuse at random: nothing is refused, and it is said.
                log::error!(
                    "enforcement: the kernel's maps refused the plan ({e}); nothing is refused"
                );
                self.enforcement.turn_off();
                format!("off: the kernel refused the plan ({e})")
            }
        };
        self.report.credentials = plan.enforced;
        self.report.scopes = plan.slots.len();
        self.report.contexts = match (&self.contexts_available, refuses_contexts) {
            (Some(Err(why)), true) => why.clone(),
            (_, true) if contexts_known => self.report.mode.clone(),
            _ => "off".into(),
        };
        // Reads are refused by readers (above), or by owner where the kernel knows contexts.
        let reads_refused = refuses_reads || (contexts_known && plan.refuses_reads_by_owner());
        self.report.reads = match (&self.reads_available, reads_refused) {
            (Err(why), _) => why.clone(),
            (Ok(()), false) => "off".into(),
            (Ok(()), true) => self.report.mode.clone(),
        };
    }

    /// Each credential file's value in the watch map for plan generation `generation` (its
    /// slot and reader set), the other half kept as it is (a file new to the map gets the
    /// same in both: the plan in force had no word on it).
    fn watch(
        &mut self,
        values: &[(FileKey, u32)],
        reader_sets: &StdHashMap<FileKey, u32>,
        generation: u32,
    ) {
        for &(key, slot) in values {
            let half = watched::value(slot, reader_sets.get(&key).copied().unwrap_or(0));
            let value = match self.values.get(&key) {
                Some(old) => watched::with_half(*old, generation, half),
                None => watched::with_half(watched::with_half(0, 0, half), 1, half),
            };
            if self.values.get(&key) == Some(&value) {
                continue;
            }
            match self.watched.insert(&key, &value, 0) {
                Ok(()) => {
                    self.values.insert(key, value);
                }
                Err(e) => log::error!(
                    "cannot watch file dev {:#x} ino {}: {e} (the watch map is full?)",
                    key.dev,
                    key.ino
                ),
            }
        }
    }

    /// Loads the kernel's exec programs that know contexts, the first time a plan needs
    /// them; whether the kernel knows contexts now, and if not, why.
    fn know_contexts(&mut self, probes: &mut Probes) -> &Result<(), String> {
        let starting = self.starting;
        self.contexts_available.get_or_insert_with(|| {
            if !starting {
                let why = "unavailable until the next start: policy began refusing contexts \
                           on a reload, and the kernel has not seen the execs since start"
                    .to_owned();
                log::warn!("contexts in the kernel {why}");
                return Err(why);
            }
            let started = std::time::Instant::now();
            let loaded = probes
                .load_context_scan()
                .map_err(|why| format!("unavailable: {why}"));
            match &loaded {
                Ok(()) => log::info!(
                    "contexts: the kernel reads each exec's label ({} ms to load)",
                    started.elapsed().as_millis()
                ),
                Err(why) => {
                    log::warn!(
                        "contexts in the kernel {why}: cross-context-reuse is reported, not refused"
                    )
                }
            }
            loaded
        })
    }

    /// The reader set (+ 1) of each credential whose opens are refused, where they can be.
    fn reader_sets_of(
        &mut self,
        facts: &[(FileKey, &str, CredentialFacts)],
    ) -> StdHashMap<FileKey, u32> {
        let mut sets = StdHashMap::new();
        for (file, path, facts) in facts.iter().filter(|(_, _, f)| f.deny_reads) {
            if let Err(why) = &self.reads_available {
                if !std::mem::replace(&mut self.said_reads_unavailable, true) {
                    log::warn!("read denial: {path:?} and others are not refused: {why}");
                }
                break;
            }
            match self.reader_sets.number(&facts.readers, true) {
                Ok(set) => {
                    sets.insert(*file, set);
                }
                Err(why) => log::warn!("read denial: {path:?} is not refused: {why}"),
            }
        }
        sets
    }

    /// Resolves the allowed readers into executables again (a package upgrade puts a new
    /// file in place), and tells the kernel. Every `read_denial::RESCAN`, when reads are
    /// refused.
    pub fn refresh_readers(&mut self) {
        if !self.refuses_reads {
            return;
        }
        let allowed = self.reader_sets.allowed();
        match self.readers.install(&allowed) {
            Ok(count) if count != self.allowed_readers => {
                log::info!("read denial: {count} executables are allowed readers");
                self.allowed_readers = count;
            }
            Ok(_) => {}
            Err(e) => log::error!("read denial: the kernel's readers map refused an entry: {e}"),
        }
    }

    /// Reads the resolv.conf files again, and tells the kernel.
    pub fn reread_resolvers(&mut self) {
        self.resolvers.reread();
        self.trust_resolvers();
    }

    fn trust_resolvers(&mut self) {
        if let Err(e) = self
            .enforcement
            .trust_resolvers(&self.resolvers.trusted(), &mut self.installed)
        {
            log::error!("enforcement: the kernel's resolver map refused an entry: {e}");
        }
    }
}
