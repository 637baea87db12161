//! Sorting a diff's entries into lost, persisted and ignored against the config: the persisted
//! paths as a tree of names, walked once along each path.

use std::collections::HashMap;
use std::sync::Arc;

use darlings_backends::bytes::Show;
use darlings_backends::FileType;

use crate::config::{Config, Kind, Method};
use crate::glob::Glob;
use crate::paths::AbsPath;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Lost,
    Persisted,
    Ignored,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Lost => "lost",
            Class::Persisted => "persisted",
            Class::Ignored => "ignored",
        }
    }
}

/// Why an entry is lost although a persisted path concerns it: the report says so, since a user
/// reading "persisted /var/lib/app" next to it would otherwise believe it safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Beneath a persisted directory (or a store's mount point) on the root's own filesystem:
    /// written there before the bind existed, or hidden beneath it. The store never holds it.
    UnderPersisted(Arc<[u8]>),
    /// At a persisted path, or on the way to one, but not what apply binds or walks through
    /// there (a file where a directory is persisted, `/etc` replaced by a file): apply refuses
    /// it, and the rollback erases it.
    WrongType {
        at: Arc<[u8]>,
        persisted: Arc<[u8]>,
        want: &'static str,
    },
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::UnderPersisted(m) => write!(
                f,
                "under persisted {}, but on the root, not in the store",
                Show(m)
            ),
            Why::WrongType {
                at,
                persisted,
                want,
            } if at == persisted => write!(
                f,
                "at persisted {}, but not a {want}: apply refuses it",
                Show(persisted)
            ),
            Why::WrongType {
                persisted, want, ..
            } => write!(
                f,
                "on the way to persisted {}, but not a {want}: apply refuses it",
                Show(persisted)
            ),
        }
    }
}

/// One name in the tree of persisted paths.
#[derive(Default)]
struct Node {
    children: HashMap<Box<[u8]>, u32>,
    /// A mount point darlings binds here: its kind and its path.
    mount: Option<(Kind, Arc<[u8]>)>,
    /// A file persisted with `method = "symlink"`: what belongs here on the root is the link
    /// apply makes into the store, which it makes again at every boot.
    link: bool,
    /// A persisted path at or below this node, for messages.
    example: Option<Arc<[u8]>>,
}

/// What the classifier needs from the config: the persisted paths (with their kind) as a tree
/// of names, and the globs. A check walks the tree once along the path, so it costs O(length
/// of the path) whatever the number of entries or the depth.
///
/// The rule (README, "Safety"): a diff compares the root's own filesystem with the blank, so
/// everything it reports is on the root, never in a store. Persisted are only the mount points
/// themselves (a directory where a directory is persisted, a regular file where a file is) and
/// the directories on the way to them, which apply walks through or recreates. An entry beneath
/// a persisted directory is lost; so is an entry at a persisted path, or on the way to one, of
/// another type. Then ignored if a glob matches, else lost.
pub struct Classifier {
    nodes: Vec<Node>,
    ignore: Vec<Glob>,
    /// Presets the config uses: a lost path one of them would keep is then left out by the
    /// config (its level has no store, or the preset was overridden), not a preset to add.
    pub(super) presets_in_use: Vec<String>,
}

impl Classifier {
    /// Per-user entries whose home comes from passwd are not known here; pass the resolved plan's
    /// targets through `with_targets` when they matter.
    pub fn new(config: &Config) -> Classifier {
        // Named in the config, or given entries by the NixOS module.
        let mut presets_in_use: Vec<String> = config
            .stores
            .iter()
            .flat_map(|s| s.entries.iter().filter_map(|e| e.origin.as_ref()))
            .map(|o| o.preset.clone())
            .chain(config.presets.iter().cloned())
            .collect();
        presets_in_use.sort();
        presets_in_use.dedup();
        let mut c = Classifier {
            nodes: vec![Node::default()],
            ignore: config.diff.ignore.clone(),
            presets_in_use,
        };
        for s in &config.stores {
            // The store's mount point lives in the root too (the initrd makes it each boot);
            // what the diff sees beneath it is on the root, hidden under the store.
            c.add(&s.path, Kind::Dir, Method::Bind);
            for e in &s.entries {
                c.add(&e.path, e.kind, e.method);
            }
            for u in &s.users {
                if let Some(home) = &u.home {
                    for e in &u.entries {
                        c.add(&home.join(&e.path), e.kind, e.method);
                    }
                }
            }
        }
        c
    }

    fn add(&mut self, path: &AbsPath, kind: Kind, method: Method) {
        let bytes: Arc<[u8]> = Arc::from(path.as_bytes());
        let mut at = 0usize;
        for name in components(&bytes) {
            self.nodes[at].example.get_or_insert_with(|| bytes.clone());
            at = match self.nodes[at].children.get(name) {
                Some(&c) => c as usize,
                None => {
                    let id = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[at].children.insert(name.into(), id as u32);
                    id
                }
            };
        }
        let node = &mut self.nodes[at];
        node.example.get_or_insert_with(|| bytes.clone());
        // Config validation refuses duplicates; the first one stands.
        if node.mount.is_none() {
            node.link = method == Method::Symlink;
        }
        node.mount.get_or_insert((kind, bytes));
    }

    /// The config's persisted paths and the plan's targets (homes named only in passwd
    /// included): what `darlings diff` and `darlings boot` classify against.
    pub fn of_plan(config: &Config, plan: &crate::plan::Plan) -> Classifier {
        Classifier::new(config)
            .with_targets(plan.binds().map(|b| (b.target.clone(), b.kind, b.method)))
    }

    pub fn with_targets(
        mut self,
        targets: impl IntoIterator<Item = (AbsPath, Kind, Method)>,
    ) -> Classifier {
        for (path, kind, method) in targets {
            self.add(&path, kind, method);
        }
        self
    }

    /// The class of an entry of type `file_type` at `path`, and why it is lost when a
    /// persisted path concerns it. Persisted wins over ignored.
    pub fn classify_entry(&self, path: &[u8], file_type: FileType) -> (Class, Option<Why>) {
        let mut at = 0usize;
        for name in components(path) {
            if let Some((_, m)) = &self.nodes[at].mount {
                return (self.unpersisted(path), Some(Why::UnderPersisted(m.clone())));
            }
            match self.nodes[at].children.get(name) {
                Some(&c) => at = c as usize,
                None => return (self.unpersisted(path), None),
            }
        }
        let node = &self.nodes[at];
        let (want, ok) = match &node.mount {
            Some((Kind::Dir, _)) => ("directory", file_type == FileType::Dir),
            // A regular file there means a program replaced the link by rename: its data is on
            // the root, not in the store (impermanence#175).
            Some((Kind::File, _)) if node.link => {
                ("symlink into the store", file_type == FileType::Symlink)
            }
            Some((Kind::File, _)) => ("regular file", file_type == FileType::File),
            // On the way to a persisted path (`/` is on the way to every one of them).
            None if !node.children.is_empty() => ("directory", file_type == FileType::Dir),
            None => return (self.unpersisted(path), None),
        };
        if ok {
            return (Class::Persisted, None);
        }
        let persisted = match (&node.mount, &node.example) {
            (Some((_, m)), _) | (None, Some(m)) => m.clone(),
            (None, None) => Arc::from(path),
        };
        let why = Why::WrongType {
            at: Arc::from(path),
            persisted,
            want,
        };
        (self.unpersisted(path), Some(why))
    }

    /// The class of what lies beneath `path` when the diff could not list it: beneath a
    /// persisted directory it is on the root, not in the store; on the way to persisted paths it
    /// holds lost entries beside them. Ignored only when a glob covers everything beneath it
    /// (`/tmp/**`), tested with names no real entry has.
    pub fn classify_subtree(&self, path: &[u8]) -> (Class, Option<Why>) {
        let mut probe = path.to_vec();
        if probe.last() != Some(&b'/') {
            probe.push(b'/');
        }
        probe.push(0);
        let (_, why) = self.classify_entry(&probe, FileType::Unknown);
        let mut deeper = probe.clone();
        deeper.extend_from_slice(b"/\0");
        let ignored = self
            .ignore
            .iter()
            .any(|g| g.is_match(&probe) && g.is_match(&deeper));
        let why = match why {
            Some(Why::UnderPersisted(m)) => Some(Why::UnderPersisted(m)),
            _ => None,
        };
        let class = if ignored { Class::Ignored } else { Class::Lost };
        (class, why)
    }

    fn unpersisted(&self, path: &[u8]) -> Class {
        if self.ignore.iter().any(|g| g.is_match(path)) {
            Class::Ignored
        } else {
            Class::Lost
        }
    }
}

/// The names of an absolute path, `/` having none.
fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|n| !n.is_empty())
}
