//! What changed between two commits' trees, path by path, as `ostree diff` reports it,
//! plus which attributes of each modified path changed.
//!
//! The walk is ostree's (`ostree_diff_dirs`): in each directory present on both sides,
//! first the old side's entries (files, then directories, each in name order): gone from
//! the new side → removed (its contents are not listed); a different type → modified (not
//! descended); a file whose object differs → modified; a directory whose metadata differs
//! → modified, and directories are descended unless their contents checksums are equal.
//! Then the new side's entries missing from the old → added, with all their contents.
//! The root itself is never listed (its metadata shows in [`CommitChange`]s).

use super::{Repo, Result};
use crate::checksum::Checksum;
use crate::gvariant::VarDict;
use crate::objects::DirTree;
use crate::store::walk::{join, DumpEntry, EntryKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    Modified,
}

impl ChangeKind {
    /// The letter `ostree diff` prints.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Removed => 'D',
            ChangeKind::Modified => 'M',
        }
    }
}

/// One attribute of a path that differs between the two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aspect {
    /// File, directory or symlink on one side, another type on the other.
    Type,
    /// A regular file's bytes.
    Content,
    /// A symlink's target.
    Target,
    /// Permission bits (and setuid/setgid/sticky).
    Mode,
    Uid,
    Gid,
    Xattrs,
}

impl Aspect {
    pub fn name(self) -> &'static str {
        match self {
            Aspect::Type => "type",
            Aspect::Content => "content",
            Aspect::Target => "target",
            Aspect::Mode => "mode",
            Aspect::Uid => "uid",
            Aspect::Gid => "gid",
            Aspect::Xattrs => "xattrs",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PathChange {
    pub kind: ChangeKind,
    pub path: String,
    /// The entry on the old side (removed, modified).
    pub from: Option<DumpEntry>,
    /// The entry on the new side (added, modified).
    pub to: Option<DumpEntry>,
    /// For modified paths: what differs.
    pub aspects: Vec<Aspect>,
}

/// One field of the commit objects that differs.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitChange {
    /// `timestamp`, `subject`, `body`, `parent`, `root-dirmeta`, or `metadata:KEY`.
    pub field: String,
    /// The values as text (`None`: absent on that side).
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct TreeDiff {
    /// In ostree's order: modified, then removed, then added.
    pub changes: Vec<PathChange>,
    pub commit: Vec<CommitChange>,
}

impl TreeDiff {
    pub fn count(&self, kind: ChangeKind) -> usize {
        self.changes.iter().filter(|c| c.kind == kind).count()
    }
}

/// A directory's children as ostree enumerates them: files, then directories.
fn children(t: &DirTree) -> Vec<(&str, Checksum, Option<Checksum>)> {
    let mut v: Vec<_> = t
        .files
        .iter()
        .map(|(n, c)| (n.as_str(), *c, None))
        .collect();
    v.extend(
        t.dirs
            .iter()
            .map(|(n, ct, cm)| (n.as_str(), *ct, Some(*cm))),
    );
    v
}

struct Walk<'a> {
    repo: &'a Repo,
    modified: Vec<PathChange>,
    removed: Vec<PathChange>,
    added: Vec<PathChange>,
}

impl Walk<'_> {
    fn entry(&self, path: String, c: Checksum, meta: Option<Checksum>) -> Result<DumpEntry> {
        Ok(match meta {
            Some(m) => DumpEntry::dir(path, c, m, &self.repo.read_dirmeta(&m)?),
            None => {
                let (h, size) = self.repo.read_file_header(&c)?;
                DumpEntry::file(path, c, h, size)
            }
        })
    }

    fn aspects(&self, a: &DumpEntry, b: &DumpEntry) -> Result<Vec<Aspect>> {
        let mut out = Vec::new();
        if a.kind != b.kind {
            return Ok(vec![Aspect::Type]);
        }
        match a.kind {
            EntryKind::Symlink if a.symlink_target != b.symlink_target => out.push(Aspect::Target),
            EntryKind::File => {
                let same_header =
                    a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.xattrs == b.xattrs;
                // Same header, different object: the bytes differ. Otherwise compare
                // them (sizes first) only when the header alone could explain it.
                let content = same_header
                    || a.size != b.size
                    || self.repo.read_file(&a.checksum)?.1 != self.repo.read_file(&b.checksum)?.1;
                if content {
                    out.push(Aspect::Content);
                }
            }
            _ => {}
        }
        if a.mode != b.mode {
            out.push(Aspect::Mode);
        }
        if a.uid != b.uid {
            out.push(Aspect::Uid);
        }
        if a.gid != b.gid {
            out.push(Aspect::Gid);
        }
        if a.xattrs != b.xattrs {
            out.push(Aspect::Xattrs);
        }
        Ok(out)
    }

    /// `path` added, and everything under it when it is a directory (`meta` is Some).
    fn add(&mut self, path: String, c: Checksum, meta: Option<Checksum>) -> Result<()> {
        let e = self.entry(path.clone(), c, meta)?;
        self.added.push(PathChange {
            kind: ChangeKind::Added,
            path: path.clone(),
            from: None,
            to: Some(e),
            aspects: Vec::new(),
        });
        if meta.is_some() {
            let t = self.repo.read_dirtree(&c)?;
            for (name, c, meta) in children(&t) {
                self.add(join(&path, name), c, meta)?;
            }
        }
        Ok(())
    }

    fn dirs(&mut self, path: &str, a: &Checksum, b: &Checksum) -> Result<()> {
        if a == b {
            return Ok(());
        }
        let (ta, tb) = (self.repo.read_dirtree(a)?, self.repo.read_dirtree(b)?);
        let find = |t: &DirTree, name: &str| {
            t.find_file(name)
                .map(|c| (*c, None))
                .or_else(|| t.find_dir(name).map(|(c, m)| (*c, Some(*m))))
        };
        for (name, ca, ma) in children(&ta) {
            let child = join(path, name);
            let Some((cb, mb)) = find(&tb, name) else {
                let e = self.entry(child.clone(), ca, ma)?;
                self.removed.push(PathChange {
                    kind: ChangeKind::Removed,
                    path: child,
                    from: Some(e),
                    to: None,
                    aspects: Vec::new(),
                });
                continue;
            };
            let differs = match (ma, mb) {
                (Some(ma), Some(mb)) => ma != mb,
                (None, None) => ca != cb,
                _ => true,
            };
            // A file and a symlink are both "files" in a dirtree but different types.
            let (ea, eb) = if differs {
                (
                    Some(self.entry(child.clone(), ca, ma)?),
                    Some(self.entry(child.clone(), cb, mb)?),
                )
            } else {
                (None, None)
            };
            if let (Some(ea), Some(eb)) = (ea, eb) {
                let aspects = self.aspects(&ea, &eb)?;
                let retyped = aspects == [Aspect::Type];
                self.modified.push(PathChange {
                    kind: ChangeKind::Modified,
                    path: child.clone(),
                    from: Some(ea),
                    to: Some(eb),
                    aspects,
                });
                if retyped {
                    continue;
                }
            }
            if let (Some(_), Some(_)) = (ma, mb) {
                self.dirs(&child, &ca, &cb)?;
            }
        }
        for (name, cb, mb) in children(&tb) {
            if find(&ta, name).is_some() {
                continue;
            }
            self.add(join(path, name), cb, mb)?;
        }
        Ok(())
    }
}

fn metadata_changes(a: &VarDict, b: &VarDict, out: &mut Vec<CommitChange>) {
    let mut keys: Vec<&String> = a.0.iter().chain(&b.0).map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (va, vb) = (a.get(k), b.get(k));
        if va != vb {
            out.push(CommitChange {
                field: format!("metadata:{k}"),
                from: va.map(|v| v.to_text()),
                to: vb.map(|v| v.to_text()),
            });
        }
    }
}

impl Repo {
    /// The difference between the trees (and commit objects) of `from` and `to`.
    pub fn diff_commits(&self, from: &Checksum, to: &Checksum) -> Result<TreeDiff> {
        let (a, b) = (self.read_commit(from)?, self.read_commit(to)?);
        let mut commit = Vec::new();
        let mut field = |name: &str, x: String, y: String| {
            if x != y {
                commit.push(CommitChange {
                    field: name.to_string(),
                    from: Some(x),
                    to: Some(y),
                });
            }
        };
        let hex = |c: Option<Checksum>| c.map(|c| c.to_hex()).unwrap_or_default();
        field("parent", hex(a.parent), hex(b.parent));
        field("subject", a.subject.clone(), b.subject.clone());
        field("body", a.body.clone(), b.body.clone());
        field(
            "timestamp",
            a.timestamp.to_string(),
            b.timestamp.to_string(),
        );
        field("root-dirtree", a.root_tree.to_hex(), b.root_tree.to_hex());
        if a.root_meta != b.root_meta {
            let (ma, mb) = (
                self.read_dirmeta(&a.root_meta)?,
                self.read_dirmeta(&b.root_meta)?,
            );
            let show = |m: &crate::objects::DirMeta| {
                DumpEntry::dir("/".into(), a.root_tree, a.root_meta, m).attrs_text()
            };
            field("root-dirmeta", show(&ma), show(&mb));
        }
        metadata_changes(&a.metadata, &b.metadata, &mut commit);
        let mut w = Walk {
            repo: self,
            modified: Vec::new(),
            removed: Vec::new(),
            added: Vec::new(),
        };
        w.dirs("/", &a.root_tree, &b.root_tree)?;
        let mut changes = w.modified;
        changes.append(&mut w.removed);
        changes.append(&mut w.added);
        Ok(TreeDiff { changes, commit })
    }
}
