//! An in-memory, editable directory tree whose leaves are FILE object checksums: what
//! package imports produce and tree assembly merges before one commit writes it.
//! Pure: [`crate::store`] writes and loads it (`Repo::write_mtree`, `Repo::load_mtree`).

use std::collections::BTreeMap;

use crate::checksum::Checksum;
use crate::objects::{validate_filename, DirMeta, ObjectError, S_IFDIR};

/// A directory: its metadata, files (name → content checksum) and subdirectories.
/// `BTreeMap<String, _>` orders names bytewise, which is the order dirtrees need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableTree {
    pub meta: DirMeta,
    pub files: BTreeMap<String, Checksum>,
    pub dirs: BTreeMap<String, MutableTree>,
}

/// What a path names in a [`MutableTree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeEntry<'a> {
    File(&'a Checksum),
    Dir(&'a MutableTree),
}

/// The metadata of directories created implicitly: root:root 0755.
pub fn default_dirmeta() -> DirMeta {
    DirMeta {
        uid: 0,
        gid: 0,
        mode: S_IFDIR | 0o755,
        xattrs: Default::default(),
    }
}

/// Split a slash-separated path into validated components (leading `/` and `.`
/// segments ignored; `..` and empty names rejected).
pub fn split_path(path: &str) -> Result<Vec<&str>, ObjectError> {
    let mut out = Vec::new();
    for seg in path.split('/') {
        if seg.is_empty() || seg == "." {
            continue;
        }
        validate_filename(seg)?;
        out.push(seg);
    }
    Ok(out)
}

impl Default for MutableTree {
    fn default() -> Self {
        MutableTree::new(default_dirmeta())
    }
}

impl MutableTree {
    pub fn new(meta: DirMeta) -> Self {
        MutableTree {
            meta,
            files: BTreeMap::new(),
            dirs: BTreeMap::new(),
        }
    }

    pub fn lookup(&self, path: &str) -> Option<TreeEntry<'_>> {
        let parts = split_path(path).ok()?;
        let Some((last, parents)) = parts.split_last() else {
            return Some(TreeEntry::Dir(self));
        };
        let mut dir = self;
        for p in parents {
            dir = dir.dirs.get(*p)?;
        }
        if let Some(f) = dir.files.get(*last) {
            return Some(TreeEntry::File(f));
        }
        dir.dirs.get(*last).map(TreeEntry::Dir)
    }

    /// The directory at `path`, created (with `meta`) where missing. Fails when a
    /// component is a file.
    pub fn ensure_dir(
        &mut self,
        path: &str,
        meta: &DirMeta,
    ) -> Result<&mut MutableTree, ObjectError> {
        let mut dir = self;
        for seg in split_path(path)? {
            if dir.files.contains_key(seg) {
                return Err(ObjectError::Invalid {
                    what: "tree",
                    why: format!("{path}: {seg} is a file, not a directory"),
                });
            }
            dir = dir
                .dirs
                .entry(seg.to_string())
                .or_insert_with(|| MutableTree::new(meta.clone()));
        }
        Ok(dir)
    }

    /// Put a file at `path` (parents created with `parent_meta`); returns the checksum it
    /// replaced, if any. Fails when `path` is a directory.
    pub fn insert_file(
        &mut self,
        path: &str,
        checksum: Checksum,
        parent_meta: &DirMeta,
    ) -> Result<Option<Checksum>, ObjectError> {
        let parts = split_path(path)?;
        let Some((name, parents)) = parts.split_last() else {
            return Err(ObjectError::Invalid {
                what: "tree",
                why: "cannot replace the root with a file".into(),
            });
        };
        let dir = self.ensure_dir(&parents.join("/"), parent_meta)?;
        if dir.dirs.contains_key(*name) {
            return Err(ObjectError::Invalid {
                what: "tree",
                why: format!("{path} is a directory"),
            });
        }
        Ok(dir.files.insert(name.to_string(), checksum))
    }

    /// Remove a file or a whole directory; returns whether something was there.
    pub fn remove(&mut self, path: &str) -> bool {
        let Ok(parts) = split_path(path) else {
            return false;
        };
        let Some((name, parents)) = parts.split_last() else {
            return false;
        };
        let mut dir = self;
        for p in parents {
            match dir.dirs.get_mut(*p) {
                Some(d) => dir = d,
                None => return false,
            }
        }
        dir.files.remove(*name).is_some() || dir.dirs.remove(*name).is_some()
    }

    /// Detach and return the subtree at `path`.
    pub fn take_dir(&mut self, path: &str) -> Option<MutableTree> {
        let parts = split_path(path).ok()?;
        let (name, parents) = parts.split_last()?;
        let mut dir = self;
        for p in parents {
            dir = dir.dirs.get_mut(*p)?;
        }
        dir.dirs.remove(*name)
    }

    /// Every file, depth first in name order, with its absolute path (`/a/b`).
    pub fn files_recursive(&self) -> Vec<(String, Checksum)> {
        let mut out = Vec::new();
        self.collect_files("", &mut out);
        out
    }

    fn collect_files(&self, prefix: &str, out: &mut Vec<(String, Checksum)>) {
        for (n, c) in &self.files {
            out.push((format!("{prefix}/{n}"), *c));
        }
        for (n, d) in &self.dirs {
            d.collect_files(&format!("{prefix}/{n}"), out);
        }
    }

    /// Number of files and directories below this one.
    pub fn count(&self) -> usize {
        self.files.len() + self.dirs.values().map(|d| 1 + d.count()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_and_lookup() {
        let mut t = MutableTree::default();
        let c = Checksum::of(b"x");
        assert_eq!(
            t.insert_file("/usr/bin/x", c, &default_dirmeta()).unwrap(),
            None
        );
        assert_eq!(
            t.insert_file("usr/bin/x", Checksum::of(b"y"), &default_dirmeta())
                .unwrap(),
            Some(c)
        );
        assert!(matches!(t.lookup("/usr/bin"), Some(TreeEntry::Dir(_))));
        assert!(matches!(t.lookup("/usr/bin/x"), Some(TreeEntry::File(_))));
        assert!(t
            .insert_file("/usr/bin/x/y", c, &default_dirmeta())
            .is_err());
        assert!(t.insert_file("/usr/bin", c, &default_dirmeta()).is_err());
        assert!(t.insert_file("/usr/../etc", c, &default_dirmeta()).is_err());
        assert_eq!(t.files_recursive().len(), 1);
        assert!(t.remove("/usr/bin/x"));
        assert!(!t.remove("/usr/bin/x"));
        assert!(t.take_dir("/usr/bin").is_some());
        assert_eq!(t.count(), 1);
    }
}
