//! Turns the commands of an incremental send stream (`btrfs send -p blank root`) into darlings'
//! change list: which paths of the root differ from the blank, and how.
//!
//! The stream is a script that `btrfs receive` replays, one system call per command, on a copy
//! of the parent. We replay it the same way on a model of the parent's namespace that is built
//! lazily: a name never mentioned is assumed unchanged, a name first met inside a directory that
//! existed in the parent is taken to have existed there too. Each node remembers where it was in
//! the parent and where it is now, so temporary (orphan) names, directory moves and
//! delete-then-recreate sequences fall out of the replay instead of being special-cased.

use std::collections::BTreeMap;

use super::stream::Command;
use crate::bytes::Show;
use crate::{BackendError, Change, ChangeKind, FileType};

/// The differences between the stream's parent and its source, one per path, sorted by path.
pub fn changes(cmds: &[Command]) -> Result<Vec<Change>, BackendError> {
    resolve(cmds).map(|r| r.changes)
}

/// What a stream resolves to: the changes, and the entries of the parent whose inode changed
/// (content or metadata), with one of their names now. The kernel sends an inode's changes
/// under one name; the inode's other hard links, never mentioned, changed as much.
#[derive(Debug, Default)]
pub struct Resolved {
    pub changes: Vec<Change>,
    pub touched: Vec<Touched>,
}

/// An old non-directory whose inode changed: `path` is one of its names in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    pub path: Vec<u8>,
    /// `Modified` (content) or `Metadata`.
    pub kind: ChangeKind,
    pub file_type: FileType,
    pub size: Option<u64>,
}

/// `changes`, with the touched inodes.
pub fn resolve(cmds: &[Command]) -> Result<Resolved, BackendError> {
    let mut tree = Tree::new();
    let mut seen_start = false;
    for (index, cmd) in cmds.iter().enumerate() {
        let mut ctx = Ctx {
            tree: &mut tree,
            index,
            cmd,
        };
        match cmd {
            Command::Subvol { .. } | Command::Snapshot { .. } => {
                if seen_start {
                    // Every subvolume has its own namespace; darlings sends one at a time.
                    return Err(ctx.err("a second subvolume in one stream".to_string()));
                }
                seen_start = true;
                if matches!(cmd, Command::Subvol { .. }) {
                    // A full stream has no parent: everything in it is new.
                    ctx.tree.nodes[ROOT].complete = true;
                    ctx.tree.full = true;
                }
            }
            Command::Mkfile { path, .. } => {
                ctx.create(path, FileType::File, Some(0))?;
            }
            Command::Mkdir { path, .. } => {
                ctx.create(path, FileType::Dir, None)?;
            }
            Command::Mknod { path, mode, .. } => {
                ctx.create(path, type_from_mode(*mode), None)?;
            }
            Command::Mkfifo { path, .. } => {
                ctx.create(path, FileType::Fifo, None)?;
            }
            Command::Mksock { path, .. } => {
                ctx.create(path, FileType::Socket, None)?;
            }
            Command::Symlink { path, .. } => {
                ctx.create(path, FileType::Symlink, None)?;
            }
            Command::Rename { path, path_to } => ctx.rename(path, path_to)?,
            Command::Link { path, path_link } => ctx.link(path, path_link)?,
            Command::Unlink { path } => ctx.remove(path, false)?,
            Command::Rmdir { path } => ctx.remove(path, true)?,
            Command::SetXattr { path, .. }
            | Command::RemoveXattr { path, .. }
            | Command::Chown { path, .. }
            | Command::Fileattr { path, .. }
            | Command::EnableVerity { path, .. } => {
                let id = ctx.lookup(path)?;
                ctx.tree.nodes[id].metadata = true;
            }
            Command::Chmod { path, mode } => {
                let id = ctx.lookup(path)?;
                let node = &mut ctx.tree.nodes[id];
                node.metadata = true;
                // The kernel sends only permission bits; another producer may send the type.
                if node.file_type == FileType::Unknown {
                    node.file_type = type_from_mode(*mode);
                }
            }
            Command::Utimes { path, .. } => {
                // A directory's times change whenever an entry in it does: reporting them
                // would bury the real changes. Still resolve the path to catch a bad stream.
                ctx.lookup(path)?;
            }
            Command::Write {
                path,
                file_offset,
                len,
            }
            | Command::UpdateExtent {
                path,
                file_offset,
                len,
            }
            | Command::Clone {
                path,
                file_offset,
                len,
                ..
            } => {
                ctx.content(path, Some(file_offset.saturating_add(*len)), None)?;
            }
            Command::EncodedWrite {
                path,
                file_offset,
                unencoded_file_len,
                ..
            } => {
                ctx.content(
                    path,
                    Some(file_offset.saturating_add(*unencoded_file_len)),
                    None,
                )?;
            }
            Command::Fallocate {
                path,
                mode,
                file_offset,
                len,
            } => {
                // FALLOC_FL_KEEP_SIZE (also implied by punching holes) leaves the size alone.
                let end = (mode & 1 == 0).then(|| file_offset.saturating_add(*len));
                ctx.content(path, end, None)?;
            }
            Command::Truncate { path, size } => ctx.content(path, None, Some(*size))?,
            Command::End => {}
            Command::Unknown { cmd, offset } => {
                tracing::warn!(
                    cmd,
                    offset,
                    "send stream: unknown command skipped; the diff may miss changes"
                );
            }
        }
    }
    tree.report()
}

type Id = usize;
const ROOT: Id = 0;

/// A directory entry: the directory and the name in it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    dir: Id,
    name: Vec<u8>,
}

#[derive(Debug)]
struct Link {
    place: Place,
    /// This name descends, through renames only, from the node's name in the parent; it is the
    /// name a `Renamed` is reported at.
    from_origin: bool,
}

#[derive(Debug)]
struct Node {
    /// Made by an mk* command: absent from the parent.
    created: bool,
    /// Where the node was in the parent; `None` for the root and created nodes.
    origin: Option<Place>,
    /// Where it is now; empty once removed.
    links: Vec<Link>,
    /// Entries known so far; `None` marks a name known to be absent now.
    children: BTreeMap<Vec<u8>, Option<Id>>,
    /// True when `children` lists every entry (a new directory), so an unknown name is absent
    /// rather than an unchanged entry of the parent.
    complete: bool,
    file_type: FileType,
    content: bool,
    metadata: bool,
    size: Option<u64>,
}

impl Node {
    fn new(created: bool, origin: Option<Place>, file_type: FileType) -> Self {
        Node {
            created,
            origin,
            links: Vec::new(),
            children: BTreeMap::new(),
            complete: created,
            file_type,
            content: false,
            metadata: false,
            size: None,
        }
    }

    fn has_children(&self) -> bool {
        self.children.values().any(Option::is_some)
    }
}

struct Tree {
    nodes: Vec<Node>,
    /// The stream is a full send (SUBVOL): the root is new too.
    full: bool,
}

/// One command being applied, for error messages.
struct Ctx<'a> {
    tree: &'a mut Tree,
    index: usize,
    cmd: &'a Command,
}

impl Ctx<'_> {
    fn err(&self, what: String) -> BackendError {
        BackendError::Malformed(format!(
            "send stream: command {} ({}): {what}",
            self.index,
            command_name(self.cmd)
        ))
    }

    fn no_entry(&self, path: &[u8]) -> BackendError {
        self.err(format!(
            "path {:?} does not exist at this point",
            Show(path).to_string()
        ))
    }

    fn split(&self, path: &[u8]) -> Result<Vec<Vec<u8>>, BackendError> {
        let mut out = Vec::new();
        for comp in path.split(|&b| b == b'/') {
            match comp {
                b"" => {}
                b"." | b".." => {
                    return Err(self.err(format!(
                        "path {:?} has a . or .. component",
                        Show(path).to_string()
                    )))
                }
                c => out.push(c.to_vec()),
            }
        }
        Ok(out)
    }

    /// The entry `name` in `dir`, taking an unknown name in an old directory to be an unchanged
    /// entry of the parent.
    fn child(&mut self, dir: Id, name: &[u8]) -> Option<Id> {
        let d = &self.tree.nodes[dir];
        match d.children.get(name) {
            Some(entry) => *entry,
            None if d.complete => None,
            None => {
                let place = Place {
                    dir,
                    name: name.to_vec(),
                };
                let id = self.tree.nodes.len();
                let mut node = Node::new(false, Some(place.clone()), FileType::Unknown);
                node.links.push(Link {
                    place,
                    from_origin: true,
                });
                self.tree.nodes.push(node);
                self.tree.nodes[dir]
                    .children
                    .insert(name.to_vec(), Some(id));
                Some(id)
            }
        }
    }

    /// Walks into `dir`, which is thereby a directory.
    fn enter(&mut self, dir: Id, path: &[u8]) -> Result<(), BackendError> {
        let node = &mut self.tree.nodes[dir];
        match node.file_type {
            FileType::Dir => Ok(()),
            FileType::Unknown => {
                node.file_type = FileType::Dir;
                Ok(())
            }
            _ => Err(self.err(format!(
                "path {:?} goes through a non-directory",
                Show(path).to_string()
            ))),
        }
    }

    fn lookup(&mut self, path: &[u8]) -> Result<Id, BackendError> {
        let mut at = ROOT;
        for comp in self.split(path)? {
            self.enter(at, path)?;
            at = self.child(at, &comp).ok_or_else(|| self.no_entry(path))?;
        }
        Ok(at)
    }

    /// The directory holding `path` and the last name; the root has no parent.
    fn lookup_parent(&mut self, path: &[u8]) -> Result<(Id, Vec<u8>), BackendError> {
        let mut comps = self.split(path)?;
        let name = comps.pop().ok_or_else(|| {
            self.err("the subvolume root cannot be created, moved or removed".into())
        })?;
        let mut at = ROOT;
        for comp in comps {
            self.enter(at, path)?;
            at = self.child(at, &comp).ok_or_else(|| self.no_entry(path))?;
        }
        self.enter(at, path)?;
        Ok((at, name))
    }

    /// Whether `name` in `dir` is taken, without assuming anything about unknown names: a name
    /// the stream creates must have been free, or `btrfs receive` would fail.
    fn occupant(&self, dir: Id, name: &[u8]) -> Option<Id> {
        self.tree.nodes[dir].children.get(name).copied().flatten()
    }

    fn attach(&mut self, id: Id, place: Place, from_origin: bool) {
        self.tree.nodes[place.dir]
            .children
            .insert(place.name.clone(), Some(id));
        self.tree.nodes[id].links.push(Link { place, from_origin });
    }

    /// Removes the name `place` of `id`; returns whether it descended from the parent's name.
    fn detach(&mut self, id: Id, place: &Place) -> bool {
        self.tree.nodes[place.dir]
            .children
            .insert(place.name.clone(), None);
        let links = &mut self.tree.nodes[id].links;
        match links.iter().position(|l| l.place == *place) {
            Some(i) => links.remove(i).from_origin,
            None => false,
        }
    }

    fn create(
        &mut self,
        path: &[u8],
        file_type: FileType,
        size: Option<u64>,
    ) -> Result<(), BackendError> {
        let (dir, name) = self.lookup_parent(path)?;
        if self.occupant(dir, &name).is_some() {
            return Err(self.err(format!("path {:?} already exists", Show(path).to_string())));
        }
        let id = self.tree.nodes.len();
        let mut node = Node::new(true, None, file_type);
        node.size = size;
        self.tree.nodes.push(node);
        self.attach(id, Place { dir, name }, false);
        Ok(())
    }

    fn rename(&mut self, from: &[u8], to: &[u8]) -> Result<(), BackendError> {
        let (fdir, fname) = self.lookup_parent(from)?;
        let id = self
            .child(fdir, &fname)
            .ok_or_else(|| self.no_entry(from))?;
        let (tdir, tname) = self.lookup_parent(to)?;
        if fdir == tdir && fname == tname {
            return Ok(());
        }
        if self.is_within(tdir, id) {
            return Err(self.err(format!(
                "cannot move {:?} into itself ({:?})",
                Show(from).to_string(),
                Show(to).to_string()
            )));
        }
        if let Some(victim) = self.occupant(tdir, &tname) {
            if victim == id {
                // Two names of one inode: rename(2) does nothing.
                return Ok(());
            }
            // rename(2) replaces the target, which must not be a non-empty directory.
            if self.tree.nodes[victim].has_children() {
                return Err(self.err(format!(
                    "rename onto non-empty directory {:?}",
                    Show(to).to_string()
                )));
            }
            self.detach(
                victim,
                &Place {
                    dir: tdir,
                    name: tname.clone(),
                },
            );
        }
        let from_origin = self.detach(
            id,
            &Place {
                dir: fdir,
                name: fname,
            },
        );
        self.attach(
            id,
            Place {
                dir: tdir,
                name: tname,
            },
            from_origin,
        );
        Ok(())
    }

    /// True if `node` is `ancestor` or lies beneath it now.
    fn is_within(&self, mut node: Id, ancestor: Id) -> bool {
        // A walk longer than the node count means a cycle, which renames are kept from making.
        for _ in 0..=self.tree.nodes.len() {
            if node == ancestor {
                return true;
            }
            match self.tree.nodes[node].links.first() {
                Some(l) if node != ROOT => node = l.place.dir,
                _ => return false,
            }
        }
        true
    }

    fn link(&mut self, path: &[u8], existing: &[u8]) -> Result<(), BackendError> {
        let id = self.lookup(existing)?;
        if id == ROOT || self.tree.nodes[id].file_type == FileType::Dir {
            return Err(self.err(format!(
                "cannot hard-link directory {:?}",
                Show(existing).to_string()
            )));
        }
        let (dir, name) = self.lookup_parent(path)?;
        if self.occupant(dir, &name).is_some() {
            return Err(self.err(format!("path {:?} already exists", Show(path).to_string())));
        }
        self.attach(id, Place { dir, name }, false);
        Ok(())
    }

    fn remove(&mut self, path: &[u8], dir_expected: bool) -> Result<(), BackendError> {
        let (dir, name) = self.lookup_parent(path)?;
        let id = self.child(dir, &name).ok_or_else(|| self.no_entry(path))?;
        let node = &mut self.tree.nodes[id];
        if node.has_children() {
            return Err(self.err(format!(
                "directory {:?} is not empty",
                Show(path).to_string()
            )));
        }
        if dir_expected {
            if !matches!(node.file_type, FileType::Dir | FileType::Unknown) {
                return Err(self.err(format!(
                    "rmdir of non-directory {:?}",
                    Show(path).to_string()
                )));
            }
            node.file_type = FileType::Dir;
        } else if node.file_type == FileType::Dir {
            return Err(self.err(format!("unlink of directory {:?}", Show(path).to_string())));
        }
        self.detach(id, &Place { dir, name });
        Ok(())
    }

    /// Records a content change: `end` where data now reaches, `truncate` a new size.
    fn content(
        &mut self,
        path: &[u8],
        end: Option<u64>,
        truncate: Option<u64>,
    ) -> Result<(), BackendError> {
        let id = self.lookup(path)?;
        let node = &mut self.tree.nodes[id];
        match node.file_type {
            FileType::File => {}
            FileType::Unknown => node.file_type = FileType::File,
            _ => {
                return Err(self.err(format!(
                    "content change on non-file {:?}",
                    Show(path).to_string()
                )))
            }
        }
        node.content = true;
        if let Some(size) = truncate {
            node.size = Some(size);
        }
        // The size of an old file is known only once set; writes past it grow it.
        if let (Some(end), Some(size)) = (end, node.size) {
            node.size = Some(size.max(end));
        }
        Ok(())
    }
}

/// What ends up at one path: what left it and what is there now.
#[derive(Default)]
struct Slot {
    removed: Option<FileType>,
    present: Option<(ChangeKind, FileType, Option<u64>)>,
}

impl Tree {
    fn new() -> Self {
        let root = Node::new(false, None, FileType::Dir);
        Tree {
            nodes: vec![root],
            full: false,
        }
    }

    /// The path of a place as it stands now.
    fn path_now(&self, place: &Place) -> Result<Vec<u8>, BackendError> {
        self.build_path(place, |node| node.links.first().map(|l| &l.place))
    }

    /// The path of a place in the parent.
    fn path_then(&self, place: &Place) -> Result<Vec<u8>, BackendError> {
        self.build_path(place, |node| node.origin.as_ref())
    }

    fn build_path<'a>(
        &'a self,
        place: &'a Place,
        up: impl Fn(&'a Node) -> Option<&'a Place>,
    ) -> Result<Vec<u8>, BackendError> {
        let mut names: Vec<&[u8]> = vec![&place.name];
        let mut dir = place.dir;
        while dir != ROOT {
            if names.len() > self.nodes.len() {
                return Err(BackendError::Malformed(
                    "send stream: directory cycle while building a path".into(),
                ));
            }
            let p = up(&self.nodes[dir]).ok_or_else(|| {
                BackendError::Malformed(format!(
                    "send stream: entry {:?} is left inside a removed directory",
                    Show(&place.name).to_string()
                ))
            })?;
            names.push(&p.name);
            dir = p.dir;
        }
        let mut out = Vec::new();
        for name in names.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(name);
        }
        Ok(out)
    }

    fn report(&self) -> Result<Resolved, BackendError> {
        let mut slots: BTreeMap<Vec<u8>, Slot> = BTreeMap::new();
        let mut touched = Vec::new();
        fn present(
            slots: &mut BTreeMap<Vec<u8>, Slot>,
            path: Vec<u8>,
            kind: ChangeKind,
            node: &Node,
        ) {
            slots.entry(path).or_default().present = Some((kind, node.file_type, node.size));
        }
        for (id, node) in self.nodes.iter().enumerate() {
            if id == ROOT {
                if !self.full && (node.content || node.metadata) {
                    present(&mut slots, b"/".to_vec(), ChangeKind::Metadata, node);
                }
                continue;
            }
            if node.created {
                for link in &node.links {
                    present(
                        &mut slots,
                        self.path_now(&link.place)?,
                        ChangeKind::Added,
                        node,
                    );
                }
                continue;
            }
            let Some(origin) = &node.origin else { continue };
            if node.links.is_empty() {
                let path = self.path_then(origin)?;
                slots.entry(path).or_default().removed = Some(node.file_type);
                continue;
            }
            if (node.content || node.metadata) && node.file_type != FileType::Dir {
                touched.push(Touched {
                    path: self.path_now(&node.links[0].place)?,
                    kind: if node.content {
                        ChangeKind::Modified
                    } else {
                        ChangeKind::Metadata
                    },
                    file_type: node.file_type,
                    size: node.size,
                });
            }
            // The name that stands for the parent's: the same place, else the one reached by
            // renames, else (a rename done as link + unlink) the oldest new name.
            let main = node
                .links
                .iter()
                .position(|l| l.place == *origin)
                .or_else(|| node.links.iter().position(|l| l.from_origin))
                .unwrap_or(0);
            for (i, link) in node.links.iter().enumerate() {
                let kind = if i != main {
                    ChangeKind::Added
                } else if link.place != *origin {
                    ChangeKind::Renamed {
                        from: self.path_then(origin)?,
                    }
                } else if node.content {
                    ChangeKind::Modified
                } else if node.metadata {
                    ChangeKind::Metadata
                } else {
                    continue;
                };
                present(&mut slots, self.path_now(&link.place)?, kind, node);
            }
        }
        let changes = slots
            .into_iter()
            .filter_map(|(path, slot)| match (slot.removed, slot.present) {
                // A path whose entry was replaced by a new one: its content changed.
                (Some(_), Some((ChangeKind::Added, file_type, size))) => Some(Change {
                    path,
                    kind: ChangeKind::Modified,
                    file_type,
                    size,
                }),
                (_, Some((kind, file_type, size))) => Some(Change {
                    path,
                    kind,
                    file_type,
                    size,
                }),
                (Some(file_type), None) => Some(Change {
                    path,
                    kind: ChangeKind::Removed,
                    file_type,
                    size: None,
                }),
                (None, None) => None,
            })
            .collect();
        Ok(Resolved { changes, touched })
    }
}

fn type_from_mode(mode: u64) -> FileType {
    match mode & 0o170_000 {
        0o100_000 => FileType::File,
        0o040_000 => FileType::Dir,
        0o120_000 => FileType::Symlink,
        0o010_000 => FileType::Fifo,
        0o140_000 => FileType::Socket,
        0o060_000 => FileType::BlockDevice,
        0o020_000 => FileType::CharDevice,
        _ => FileType::Unknown,
    }
}

fn command_name(cmd: &Command) -> &'static str {
    match cmd {
        Command::Subvol { .. } => "subvol",
        Command::Snapshot { .. } => "snapshot",
        Command::Mkfile { .. } => "mkfile",
        Command::Mkdir { .. } => "mkdir",
        Command::Mknod { .. } => "mknod",
        Command::Mkfifo { .. } => "mkfifo",
        Command::Mksock { .. } => "mksock",
        Command::Symlink { .. } => "symlink",
        Command::Rename { .. } => "rename",
        Command::Link { .. } => "link",
        Command::Unlink { .. } => "unlink",
        Command::Rmdir { .. } => "rmdir",
        Command::SetXattr { .. } => "set_xattr",
        Command::RemoveXattr { .. } => "remove_xattr",
        Command::Write { .. } => "write",
        Command::UpdateExtent { .. } => "update_extent",
        Command::Clone { .. } => "clone",
        Command::Truncate { .. } => "truncate",
        Command::Chmod { .. } => "chmod",
        Command::Chown { .. } => "chown",
        Command::Utimes { .. } => "utimes",
        Command::End => "end",
        Command::Fallocate { .. } => "fallocate",
        Command::Fileattr { .. } => "fileattr",
        Command::EncodedWrite { .. } => "encoded_write",
        Command::EnableVerity { .. } => "enable_verity",
        Command::Unknown { .. } => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btrfs::stream::{parse, Timespec};
    use proptest::prelude::*;

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }
    fn mkfile(path: &str, ino: u64) -> Command {
        Command::Mkfile { path: b(path), ino }
    }
    fn mkdir(path: &str, ino: u64) -> Command {
        Command::Mkdir { path: b(path), ino }
    }
    fn ren(from: &str, to: &str) -> Command {
        Command::Rename {
            path: b(from),
            path_to: b(to),
        }
    }
    fn link(path: &str, existing: &str) -> Command {
        Command::Link {
            path: b(path),
            path_link: b(existing),
        }
    }
    fn unlink(path: &str) -> Command {
        Command::Unlink { path: b(path) }
    }
    fn rmdir(path: &str) -> Command {
        Command::Rmdir { path: b(path) }
    }
    fn extent(path: &str, file_offset: u64, len: u64) -> Command {
        Command::UpdateExtent {
            path: b(path),
            file_offset,
            len,
        }
    }
    fn truncate(path: &str, size: u64) -> Command {
        Command::Truncate {
            path: b(path),
            size,
        }
    }
    fn chmod(path: &str, mode: u64) -> Command {
        Command::Chmod {
            path: b(path),
            mode,
        }
    }
    fn chown(path: &str) -> Command {
        Command::Chown {
            path: b(path),
            uid: 0,
            gid: 0,
        }
    }
    fn utimes(path: &str) -> Command {
        let t = Timespec::default();
        Command::Utimes {
            path: b(path),
            atime: t,
            mtime: t,
            ctime: t,
        }
    }
    fn snapshot() -> Command {
        Command::Snapshot {
            path: b("snap"),
            uuid: [1; 16],
            ctransid: 9,
            clone_uuid: [2; 16],
            clone_ctransid: 7,
        }
    }

    fn ch(path: &[u8], kind: ChangeKind, file_type: FileType, size: Option<u64>) -> Change {
        Change {
            path: path.to_vec(),
            kind,
            file_type,
            size,
        }
    }
    fn added(path: &str, file_type: FileType, size: Option<u64>) -> Change {
        ch(path.as_bytes(), ChangeKind::Added, file_type, size)
    }
    fn removed(path: &str, file_type: FileType) -> Change {
        ch(path.as_bytes(), ChangeKind::Removed, file_type, None)
    }
    fn modified(path: &str, file_type: FileType, size: Option<u64>) -> Change {
        ch(path.as_bytes(), ChangeKind::Modified, file_type, size)
    }
    fn metadata(path: &str, file_type: FileType) -> Change {
        ch(path.as_bytes(), ChangeKind::Metadata, file_type, None)
    }
    fn renamed(path: &str, from: &str, file_type: FileType) -> Change {
        ch(
            path.as_bytes(),
            ChangeKind::Renamed { from: b(from) },
            file_type,
            None,
        )
    }

    use FileType::{CharDevice, Dir, Fifo, File, Socket, Symlink, Unknown};

    #[test]
    fn streams_resolve_to_changes() {
        let cases: Vec<(&str, Vec<Command>, Vec<Change>)> = vec![
            (
                "create a file",
                vec![
                    mkfile("o257-5-0", 257),
                    ren("o257-5-0", "etc/new"),
                    extent("etc/new", 0, 10),
                    chown("etc/new"),
                    chmod("etc/new", 0o644),
                    utimes("etc/new"),
                    utimes("etc"),
                ],
                vec![added("/etc/new", File, Some(10))],
            ),
            (
                "mkdir and a file inside",
                vec![
                    mkdir("o258-5-0", 258),
                    ren("o258-5-0", "d"),
                    mkfile("o259-5-0", 259),
                    ren("o259-5-0", "d/f"),
                    truncate("d/f", 100),
                ],
                vec![added("/d", Dir, None), added("/d/f", File, Some(100))],
            ),
            (
                "delete a file",
                vec![unlink("etc/old"), utimes("etc")],
                vec![removed("/etc/old", Unknown)],
            ),
            (
                "delete a tree through orphan names",
                vec![
                    ren("tree", "o260-7-0"),
                    ren("o260-7-0/sub", "o261-7-0"),
                    unlink("o260-7-0/x"),
                    rmdir("o260-7-0"),
                    unlink("o261-7-0/z"),
                    rmdir("o261-7-0"),
                ],
                vec![
                    removed("/tree", Dir),
                    removed("/tree/sub", Dir),
                    removed("/tree/sub/z", Unknown),
                    removed("/tree/x", Unknown),
                ],
            ),
            (
                "rename a file",
                vec![ren("a", "b")],
                vec![renamed("/b", "/a", Unknown)],
            ),
            (
                "rename a directory with contents",
                vec![
                    ren("dir", "moved"),
                    extent("moved/sub/c", 0, 42),
                    chmod("moved/x", 0o600),
                    utimes("moved/sub/c"),
                ],
                vec![
                    renamed("/moved", "/dir", Dir),
                    modified("/moved/sub/c", File, None),
                    metadata("/moved/x", Unknown),
                ],
            ),
            (
                "rename as link and unlink",
                vec![link("etc/renamed", "etc/renameme"), unlink("etc/renameme")],
                vec![renamed("/etc/renamed", "/etc/renameme", Unknown)],
            ),
            (
                "hardlink",
                vec![link("hard1b", "hard1"), utimes("hard1")],
                vec![added("/hard1b", Unknown, None)],
            ),
            (
                "chmod",
                vec![chmod("etc/m", 0o600)],
                vec![metadata("/etc/m", Unknown)],
            ),
            (
                "chown",
                vec![chown("etc/o")],
                vec![metadata("/etc/o", Unknown)],
            ),
            (
                "xattr set and remove",
                vec![
                    Command::SetXattr {
                        path: b("s"),
                        name: b("user.a"),
                        data: b("v"),
                    },
                    Command::RemoveXattr {
                        path: b("r"),
                        name: b("user.b"),
                    },
                ],
                vec![metadata("/r", Unknown), metadata("/s", Unknown)],
            ),
            (
                "special files",
                vec![
                    Command::Symlink {
                        path: b("o1-5-0"),
                        ino: 1,
                        path_link: b("/t"),
                    },
                    ren("o1-5-0", "ln"),
                    Command::Mkfifo {
                        path: b("o2-5-0"),
                        ino: 2,
                    },
                    ren("o2-5-0", "fifo"),
                    Command::Mksock {
                        path: b("o3-5-0"),
                        ino: 3,
                    },
                    ren("o3-5-0", "sock"),
                    Command::Mknod {
                        path: b("o4-5-0"),
                        ino: 4,
                        mode: 0o20644,
                        rdev: 0x103,
                    },
                    ren("o4-5-0", "null"),
                    Command::Mknod {
                        path: b("o5-5-0"),
                        ino: 5,
                        mode: 0o60600,
                        rdev: 0x800,
                    },
                    ren("o5-5-0", "sda"),
                ],
                vec![
                    added("/fifo", Fifo, None),
                    added("/ln", Symlink, None),
                    added("/null", CharDevice, None),
                    added("/sda", FileType::BlockDevice, None),
                    added("/sock", Socket, None),
                ],
            ),
            (
                "truncate",
                vec![truncate("t", 5000)],
                vec![modified("/t", File, Some(5000))],
            ),
            (
                "write in the middle",
                vec![extent("m", 8192, 4096), utimes("m")],
                vec![modified("/m", File, None)],
            ),
            (
                "writes past a truncate grow the size",
                vec![
                    truncate("t", 10),
                    Command::Write {
                        path: b("t"),
                        file_offset: 8,
                        len: 8,
                    },
                ],
                vec![modified("/t", File, Some(16))],
            ),
            (
                "fallocate keeping the size",
                vec![
                    mkfile("o9-1-0", 9),
                    ren("o9-1-0", "f"),
                    Command::Fallocate {
                        path: b("f"),
                        mode: 1,
                        file_offset: 0,
                        len: 4096,
                    },
                ],
                vec![added("/f", File, Some(0))],
            ),
            (
                "odd names",
                vec![
                    mkfile("o7-5-0", 7),
                    ren("o7-5-0", "with space"),
                    mkfile("o8-5-0", 8),
                    Command::Rename {
                        path: b("o8-5-0"),
                        path_to: b"bad\xff\nname".to_vec(),
                    },
                    Command::Chmod {
                        path: b"bad\xff\nname".to_vec(),
                        mode: 0o600,
                    },
                ],
                vec![
                    ch(b"/bad\xff\nname", ChangeKind::Added, File, Some(0)),
                    added("/with space", File, Some(0)),
                ],
            ),
            (
                "deleted then recreated",
                vec![
                    unlink("f"),
                    mkfile("o300-9-0", 300),
                    ren("o300-9-0", "f"),
                    extent("f", 0, 3),
                ],
                vec![modified("/f", File, Some(3))],
            ),
            (
                "recreated after the old one was moved aside",
                vec![
                    ren("f", "o299-7-0"),
                    Command::Mkfifo {
                        path: b("o300-9-0"),
                        ino: 300,
                    },
                    ren("o300-9-0", "f"),
                    unlink("o299-7-0"),
                ],
                vec![modified("/f", Fifo, None)],
            ),
            (
                "utimes alone",
                vec![utimes("a"), utimes(""), utimes("d/e")],
                vec![],
            ),
            (
                "names swapped through an orphan",
                vec![
                    ren("swap_b", "o277-7-0"),
                    link("swap_b", "swap_a"),
                    unlink("swap_a"),
                    ren("o277-7-0", "swap_a"),
                ],
                vec![
                    renamed("/swap_a", "/swap_b", Unknown),
                    renamed("/swap_b", "/swap_a", Unknown),
                ],
            ),
            (
                "created and removed",
                vec![mkfile("o1-1-0", 1), unlink("o1-1-0")],
                vec![],
            ),
            (
                "moved out of a removed directory",
                vec![ren("d/f", "f2"), rmdir("d")],
                vec![removed("/d", Dir), renamed("/f2", "/d/f", Unknown)],
            ),
            (
                "moved into a new directory",
                vec![
                    mkdir("o5-1-0", 5),
                    ren("o5-1-0", "new"),
                    ren("old/f", "new/f"),
                ],
                vec![
                    added("/new", Dir, None),
                    renamed("/new/f", "/old/f", Unknown),
                ],
            ),
            (
                "a new directory where an entry was moved from",
                vec![
                    ren("a", "b"),
                    mkdir("o5-1-0", 5),
                    ren("o5-1-0", "a"),
                    mkfile("a/x", 6),
                ],
                vec![
                    added("/a", Dir, None),
                    added("/a/x", File, Some(0)),
                    renamed("/b", "/a", Unknown),
                ],
            ),
            (
                "renamed back",
                vec![ren("a", "o1-1-0"), ren("o1-1-0", "a")],
                vec![],
            ),
            (
                "renamed and changed reports the rename",
                vec![ren("a", "b"), extent("b", 0, 1)],
                vec![renamed("/b", "/a", File)],
            ),
            (
                "root metadata",
                vec![chown(""), utimes("")],
                vec![metadata("/", Dir)],
            ),
            (
                "a full stream is all additions",
                vec![
                    Command::Subvol {
                        path: b("s"),
                        uuid: [0; 16],
                        ctransid: 1,
                    },
                    chown(""),
                    mkdir("o2-1-0", 2),
                    ren("o2-1-0", "a"),
                    mkfile("a/f", 3),
                    Command::End,
                ],
                vec![added("/a", Dir, None), added("/a/f", File, Some(0))],
            ),
            (
                "rename over an existing file",
                vec![ren("new", "old")],
                vec![renamed("/old", "/new", Unknown)],
            ),
            (
                "rename over a tracked file",
                vec![chmod("old", 0o600), ren("new", "old")],
                vec![renamed("/old", "/new", Unknown)],
            ),
        ];
        for (name, mut cmds, want) in cases {
            if !matches!(cmds.first(), Some(Command::Subvol { .. })) {
                cmds.insert(0, snapshot());
            }
            cmds.push(Command::End);
            let got = changes(&cmds).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn inconsistent_streams_are_errors() {
        let cases: Vec<(&str, Vec<Command>, &str)> = vec![
            (
                "gone twice",
                vec![unlink("a"), unlink("a")],
                "command 1 (unlink): path \"a\" does not exist",
            ),
            (
                "create over",
                vec![mkfile("o1-1-0", 1), mkfile("o1-1-0", 2)],
                "path \"o1-1-0\" already exists",
            ),
            (
                "missing in a new dir",
                vec![mkdir("o1-1-0", 1), chmod("o1-1-0/x", 0)],
                "does not exist",
            ),
            (
                "rmdir non-empty",
                vec![mkdir("o1-1-0", 1), mkfile("o1-1-0/x", 2), rmdir("o1-1-0")],
                "is not empty",
            ),
            (
                "into itself",
                vec![ren("a", "a/b/c")],
                "cannot move \"a\" into itself",
            ),
            ("dot dot", vec![unlink("a/../b")], "has a . or .. component"),
            ("root", vec![ren("", "x")], "the subvolume root cannot be"),
            (
                "through a file",
                vec![mkfile("o1-1-0", 1), mkfile("o1-1-0/x", 2)],
                "goes through a non-directory",
            ),
            (
                "two subvolumes",
                vec![snapshot(), snapshot()],
                "a second subvolume in one stream",
            ),
            (
                "link a dir",
                vec![mkdir("o1-1-0", 1), link("x", "o1-1-0")],
                "cannot hard-link directory",
            ),
        ];
        for (name, cmds, want) in cases {
            let err = match changes(&cmds) {
                Err(BackendError::Malformed(m)) => m,
                other => panic!("{name}: expected malformed, got {other:?}"),
            };
            assert!(err.starts_with("send stream: "), "{name}: {err}");
            assert!(err.contains(want), "{name}: {err:?} lacks {want:?}");
            assert_eq!(err, err.to_lowercase(), "{name}: not lowercase");
        }
    }

    /// What btrfs-progs 6.2 sent for the changes made by testdata/README.md, checked against
    /// `btrfs receive --dump` and a walk of both snapshots.
    fn real_changes() -> Vec<Change> {
        vec![
            ch(b"/bad\xffutf8", ChangeKind::Added, File, Some(2)),
            added("/compressible", File, Some(65536)),
            removed("/delfile", Unknown),
            removed("/deltree", Dir),
            removed("/deltree/sub", Dir),
            removed("/deltree/sub/z", Unknown),
            removed("/deltree/x", Unknown),
            metadata("/etc/chmodme", Unknown),
            metadata("/etc/chownme", Unknown),
            modified("/etc/modme", File, None),
            renamed("/etc/renamed", "/etc/renameme", Unknown),
            metadata("/etc/xattrme", Unknown),
            renamed("/h3", "/h1", Unknown),
            added("/hard1b", Unknown, None),
            renamed("/moved", "/dirmove", Dir),
            modified("/moved/sub/c", File, None),
            added("/new\nline", File, Some(2)),
            added("/newchar", CharDevice, None),
            added("/newdir", Dir, None),
            added("/newdir/with", Dir, None),
            added("/newdir/with/file", File, Some(5)),
            added("/newfalloc", File, Some(65536)),
            added("/newfifo", Fifo, None),
            added("/newfile", File, Some(4)),
            added("/newlink", Symlink, None),
            added("/newsock", Socket, None),
            modified("/oldlink", Symlink, None),
            modified("/replaceme", File, Some(10)),
            renamed("/swap_a", "/swap_b", Unknown),
            renamed("/swap_b", "/swap_a", Unknown),
            modified("/truncme", File, Some(5000)),
            added("/with space", File, Some(2)),
        ]
    }

    #[test]
    fn real_incremental_streams_resolve() {
        for stream in [
            &include_bytes!("testdata/incremental-v1.bin")[..],
            &include_bytes!("testdata/incremental-v2-compressed.bin")[..],
        ] {
            assert_eq!(changes(&parse(stream).unwrap()).unwrap(), real_changes());
        }
    }

    #[test]
    fn a_real_full_stream_is_all_additions() {
        let got = changes(&parse(include_bytes!("testdata/full-v1.bin")).unwrap()).unwrap();
        assert_eq!(got.len(), 27);
        assert!(got.iter().all(|c| c.kind == ChangeKind::Added));
        assert!(got.contains(&added("/etc/modme", File, Some(20000))));
        assert!(got.contains(&added("/oldlink", Symlink, None)));
    }

    fn arb_path() -> impl Strategy<Value = Vec<u8>> {
        let names: [&[u8]; 4] = [b"a", b"b", b"o1-1-0", b""];
        proptest::collection::vec(0usize..4, 0..4).prop_map(move |idx| {
            idx.iter()
                .map(|&i| names[i])
                .collect::<Vec<_>>()
                .join(&b'/')
        })
    }

    fn arb_command() -> impl Strategy<Value = Command> {
        (0u8..12, arb_path(), arb_path(), 0u64..100).prop_map(|(k, path, other, n)| match k {
            0 => Command::Mkfile { path, ino: n },
            1 => Command::Mkdir { path, ino: n },
            2 => Command::Rename {
                path,
                path_to: other,
            },
            3 => Command::Link {
                path,
                path_link: other,
            },
            4 => Command::Unlink { path },
            5 => Command::Rmdir { path },
            6 => Command::Truncate { path, size: n },
            7 => Command::UpdateExtent {
                path,
                file_offset: n,
                len: u64::MAX - n,
            },
            8 => Command::Chmod {
                path,
                mode: n << 12,
            },
            9 => Command::Symlink {
                path,
                ino: n,
                path_link: other,
            },
            10 => Command::Subvol {
                path,
                uuid: [0; 16],
                ctransid: n,
            },
            _ => Command::End,
        })
    }

    proptest! {
        #[test]
        fn any_command_sequence_resolves_or_errs_without_panic(
            cmds in proptest::collection::vec(arb_command(), 0..24),
        ) {
            if let Ok(out) = changes(&cmds) {
                let mut paths: Vec<_> = out.iter().map(|c| c.path.clone()).collect();
                let n = paths.len();
                paths.dedup();
                prop_assert_eq!(paths.len(), n, "one change per path");
                prop_assert!(out.windows(2).all(|w| w[0].path < w[1].path), "sorted");
                prop_assert!(out.iter().all(|c| c.path.starts_with(b"/")));
            }
        }
    }
}
