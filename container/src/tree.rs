//! What an image needs to know of a commit: every content object with its size and
//! paths, every directory with its metadata.

use std::collections::{BTreeMap, HashMap};

use arbor_repo::objects::Commit;
use arbor_repo::{Checksum, DirMeta, Repo};
use rayon::prelude::*;

use crate::Result;

#[derive(Debug, Clone)]
pub struct ObjInfo {
    /// Content bytes (0 for a symlink).
    pub size: u64,
    /// Paths in the commit (`usr/bin/bash`, no leading `/`), sorted.
    pub paths: Vec<String>,
}

#[derive(Debug)]
pub struct TreeIndex {
    pub checksum: Checksum,
    pub commit: Commit,
    pub objects: BTreeMap<Checksum, ObjInfo>,
    /// Directory path (`""` for the root) → its dirmeta.
    pub dirs: HashMap<String, Checksum>,
    pub dirmetas: HashMap<Checksum, DirMeta>,
}

impl TreeIndex {
    pub fn build(repo: &Repo, checksum: &Checksum) -> Result<TreeIndex> {
        let commit = repo.read_commit(checksum)?;
        let mut objects: BTreeMap<Checksum, ObjInfo> = BTreeMap::new();
        let mut dirs = HashMap::new();
        let mut dirmetas = HashMap::new();
        // An explicit stack: a tree from elsewhere may be arbitrarily deep.
        let mut stack = vec![(String::new(), commit.root_tree, commit.root_meta)];
        while let Some((path, tree, meta)) = stack.pop() {
            if let std::collections::hash_map::Entry::Vacant(v) = dirmetas.entry(meta) {
                v.insert(repo.read_dirmeta(&meta)?);
            }
            dirs.insert(path.clone(), meta);
            let t = repo.read_dirtree(&tree)?;
            let join = |name: &str| {
                if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}/{name}")
                }
            };
            for (name, c) in &t.files {
                objects
                    .entry(*c)
                    .or_insert_with(|| ObjInfo {
                        size: 0,
                        paths: Vec::new(),
                    })
                    .paths
                    .push(join(name));
            }
            for (name, sub, submeta) in t.dirs.iter().rev() {
                stack.push((join(name), *sub, *submeta));
            }
        }
        let sizes: Vec<(Checksum, u64)> = objects
            .par_iter()
            .map(|(c, _)| repo.read_file_header(c).map(|(_, size)| (*c, size)))
            .collect::<std::result::Result<_, _>>()?;
        for (c, size) in sizes {
            let o = objects.get_mut(&c).expect("indexed");
            o.size = size;
            o.paths.sort();
        }
        Ok(TreeIndex {
            checksum: *checksum,
            commit,
            objects,
            dirs,
            dirmetas,
        })
    }

    /// The metadata of directory `path` (`""` the root).
    pub fn dirmeta(&self, path: &str) -> Option<&DirMeta> {
        self.dirmetas.get(self.dirs.get(path)?)
    }
}

/// The path a commit path has in the tar stream: `usr/etc` is written as `etc`.
pub fn tar_path(path: &str) -> std::borrow::Cow<'_, str> {
    if path == "usr/etc" {
        "etc".into()
    } else if let Some(rest) = path.strip_prefix("usr/etc/") {
        format!("etc/{rest}").into()
    } else {
        path.into()
    }
}
