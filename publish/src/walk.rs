//! The objects a set of commits reaches: a breadth-first walk of their dirtrees, each
//! level fetched with bounded concurrency (local reads for a repository, GETs for a store).

use std::collections::{BTreeSet, HashSet};

use arbor_repo::objects::ObjectType;
use arbor_repo::Checksum;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::Result;
use crate::source::Source;

/// Objects reached from some root trees.
#[derive(Debug, Default, Clone)]
pub struct Reach {
    pub files: BTreeSet<Checksum>,
    pub dirtrees: BTreeSet<Checksum>,
    pub dirmetas: BTreeSet<Checksum>,
}

impl Reach {
    /// Every object as (checksum, type).
    pub fn objects(&self) -> impl Iterator<Item = (Checksum, ObjectType)> + '_ {
        self.files
            .iter()
            .map(|c| (*c, ObjectType::File))
            .chain(self.dirmetas.iter().map(|c| (*c, ObjectType::DirMeta)))
            .chain(self.dirtrees.iter().map(|c| (*c, ObjectType::DirTree)))
    }

    pub fn contains(&self, c: &Checksum, ty: ObjectType) -> bool {
        match ty {
            ObjectType::File => self.files.contains(c),
            ObjectType::DirTree => self.dirtrees.contains(c),
            ObjectType::DirMeta => self.dirmetas.contains(c),
            _ => false,
        }
    }
}

/// Walk from `roots` (dirtree, dirmeta), not descending into any dirtree in `known`
/// (whose whole subtree is already accounted for); the result excludes `known` trees.
pub async fn reach(
    src: &Source<'_>,
    roots: impl IntoIterator<Item = (Checksum, Checksum)>,
    known: &Reach,
    jobs: usize,
) -> Result<Reach> {
    let mut out = Reach::default();
    let mut seen: HashSet<Checksum> = HashSet::new();
    let mut frontier = Vec::new();
    for (tree, meta) in roots {
        if !known.dirmetas.contains(&meta) {
            out.dirmetas.insert(meta);
        }
        if !known.dirtrees.contains(&tree) && seen.insert(tree) {
            frontier.push(tree);
        }
    }
    while !frontier.is_empty() {
        let trees: Vec<_> = stream::iter(frontier.drain(..))
            .map(
                |t| async move { Ok::<_, crate::error::PublishError>((t, src.dirtree(&t).await?)) },
            )
            .buffer_unordered(jobs.max(1))
            .try_collect()
            .await?;
        for (t, tree) in trees {
            out.dirtrees.insert(t);
            for (_, f) in &tree.files {
                if !known.files.contains(f) {
                    out.files.insert(*f);
                }
            }
            for (_, sub, meta) in &tree.dirs {
                if !known.dirmetas.contains(meta) {
                    out.dirmetas.insert(*meta);
                }
                if !known.dirtrees.contains(sub) && seen.insert(*sub) {
                    frontier.push(*sub);
                }
            }
        }
    }
    Ok(out)
}
