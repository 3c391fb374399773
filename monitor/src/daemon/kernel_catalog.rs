//! The kernel's side of the catalog: the watch map (which files are credentials, and for those
//! enforced, their slot), enforcement's maps, the open hook when a credential needs it, and the
//! directory watches. `sync` brings them all in line after the catalog changed.
use std::{collections::HashMap as StdHashMap, os::unix::fs::MetadataExt};

use aya::maps::{HashMap, MapData};
use monitor_common::{FileKey, enforce_mode};

use crate::{
    catalog::{Catalog, kernel_dev},
    kernel::{
        enforcement::{self, Candidate, EnforcementMaps, Installed, Slots},
        probes::{Probes, Purpose},
    },
    names::Resolvers,
    policy::Policy,
    record::EnforcementReport,
    watcher::Watcher,
};

pub struct KernelCatalog {
    watched: HashMap<MapData, FileKey, u32>,
    /// What the watch map holds, to write only what changed.
    values: StdHashMap<FileKey, u32>,
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
        watched: HashMap<MapData, FileKey, u32>,
        enforcement: EnforcementMaps,
        policy: &Policy,
        dry_run: bool,
        reads: String,
    ) -> Self {
        let dry_run = dry_run || policy.enforcement.dry_run;
        let mut kernel = Self {
            watched,
            values: StdHashMap::new(),
            enforcement,
            installed: Installed::default(),
            slots: Slots::default(),
            mode: if dry_run {
                enforce_mode::DRY_RUN
            } else {
                enforce_mode::DENY
            },
            resolvers: Resolvers::system(policy.names.resolvers.clone()),
            report: EnforcementReport {
                mode: "off".into(),
                credentials: 0,
                scopes: 0,
                reads,
            },
        };
        if let Err(e) = kernel.enforcement.draw_hash_key() {
            log::error!("enforcement: drawing the name hash's key failed: {e}");
        }
        kernel.trust_resolvers();
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
        if let Err(e) = kernel.enforcement.exempt(&exempt) {
            log::error!("enforcement: the kernel's exempt map refused an entry: {e}");
        }
        kernel
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
            self.enforce(catalog, policy);
            if catalog.needs_open_hook() {
                probes.ensure(Purpose::CredentialOpen);
            }
            let added = watcher.watch(&catalog.directories_to_watch(), catalog.files_to_watch());
            if added == 0 {
                break;
            }
        }
    }

    /// The slots of enforced credentials, in the kernel before their files are watched with
    /// them: a read marks its reader as it happens.
    fn enforce(&mut self, catalog: &Catalog, policy: &Policy) {
        let candidates: Vec<Candidate> = catalog
            .credentials()
            .map(|c| Candidate {
                file: c.file,
                path: &c.record.path,
                scope: &c.record.scope,
                owner: c.record.owner,
                deny: policy.credential_facts(c.record.kind, &c.record.path).deny,
            })
            .collect();
        let plan = enforcement::plan(&mut self.slots, candidates);
        for (path, why) in &plan.skipped {
            log::warn!("enforcement: {path:?} is not enforced: {why}");
        }
        self.report.mode = match self
            .enforcement
            .install(&plan, self.mode, &mut self.installed)
        {
            Ok(enforce_mode::OFF) => "off".into(),
            Ok(enforce_mode::DRY_RUN) => "dry-run".into(),
            Ok(_) => "deny".into(),
            Err(e) => {
                // Half a plan would refuse at random: nothing is refused, and it is said.
                log::error!(
                    "enforcement: the kernel's maps refused the plan ({e}); nothing is refused"
                );
                let _ = self.enforcement.mode.set(0, &enforce_mode::OFF, 0);
                format!("off: the kernel refused the plan ({e})")
            }
        };
        self.report.credentials = plan.enforced;
        self.report.scopes = plan.slots.len();
        for (key, value) in plan.values {
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
