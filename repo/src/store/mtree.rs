//! Writing a [`MutableTree`] as dirtree/dirmeta objects, and loading one back.

use rayon::prelude::*;

use super::{CommitStats, Repo, Result};
use crate::checksum::Checksum;
use crate::objects::{DirTree, ObjectType};
use crate::tree::MutableTree;

impl Repo {
    /// Write every dirtree and dirmeta of `tree` (files must already be stored); returns
    /// the root (dirtree, dirmeta) checksums.
    pub fn write_mtree(
        &self,
        tree: &MutableTree,
        stats: &CommitStats,
    ) -> Result<(Checksum, Checksum)> {
        let subdirs: Vec<(String, Checksum, Checksum)> = tree
            .dirs
            .par_iter()
            .map(|(name, d)| {
                self.write_mtree(d, stats)
                    .map(|(t, m)| (name.clone(), t, m))
            })
            .collect::<Result<_>>()?;
        let dt = DirTree {
            files: tree.files.iter().map(|(n, c)| (n.clone(), *c)).collect(),
            dirs: subdirs,
        };
        let meta = self.write_tree_object(ObjectType::DirMeta, &tree.meta.to_bytes(), stats)?;
        let t = self.write_tree_object(ObjectType::DirTree, &dt.to_bytes(), stats)?;
        Ok((t, meta))
    }

    /// Load the tree below (dirtree, dirmeta) into memory.
    pub fn load_mtree(&self, tree: &Checksum, meta: &Checksum) -> Result<MutableTree> {
        let dt = self.read_dirtree(tree)?;
        let mut out = MutableTree::new(self.read_dirmeta(meta)?);
        out.files = dt.files.into_iter().collect();
        let subs: Vec<(String, MutableTree)> = dt
            .dirs
            .par_iter()
            .map(|(n, t, m)| self.load_mtree(t, m).map(|d| (n.clone(), d)))
            .collect::<Result<_>>()?;
        out.dirs = subs.into_iter().collect();
        Ok(out)
    }
}
