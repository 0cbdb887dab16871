//! The last pass of a compose with `selinux: true`: every file, symlink and directory of
//! the tree gets the label the tree's own policy gives its path. Files imported with
//! the same policy already carry it (the import labels them); what scriptlets, arbor's
//! assembly or a changed policy made is rewritten here, object by object (the label is
//! part of the object's checksum).

use std::collections::{BTreeMap, HashSet};

use arbor_repo::tree::{MutableTree, TreeEntry};
use arbor_repo::{Checksum, FileHeader, Repo, RepoError};
use rayon::prelude::*;

use crate::selinux::{label_of, with_label, LabelError, Labeler, Policy};

#[derive(Debug, thiserror::Error)]
pub enum RelabelError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("selinux: {0}")]
    Label(#[from] LabelError),
}

/// The policy of the assembled tree (`/usr/etc/selinux/...`).
pub fn policy_of(repo: &Repo, tree: &MutableTree) -> Result<Policy, crate::selinux::LabelError> {
    Policy::find(&|path: &str| match tree.lookup(&format!("usr/{path}")) {
        Some(TreeEntry::File(c)) => repo
            .read_file(c)
            .ok()
            .filter(|(h, _)| !h.is_symlink())
            .map(|(_, b)| b),
        _ => None,
    })
}

/// Label every entry of `tree`; returns how many file objects had to be rewritten.
/// `imported` lists the (path, object) pairs the import labeled with this same policy:
/// those are right as they are and are not looked at again.
pub fn relabel(
    repo: &Repo,
    tree: &mut MutableTree,
    l: &Labeler,
    imported: &HashSet<(String, Checksum)>,
) -> Result<u64, RelabelError> {
    let mut files = Vec::new();
    collect(tree, "", &mut files);
    files.retain(|(p, c)| !imported.contains(&(p.clone(), *c)));
    let changed: Vec<(String, Checksum)> = files
        .par_iter()
        .map(
            |(path, c)| -> Result<Option<(String, Checksum)>, RelabelError> {
                let (h, _) = repo.read_file_header(c)?;
                let want = l.label_for(path, h.mode)?;
                if label_of(&h.xattrs) == want.as_deref() {
                    return Ok(None);
                }
                let (h, content) = repo.read_file(c)?;
                let h = FileHeader {
                    xattrs: with_label(&h.xattrs, want),
                    ..h
                };
                let new = h.checksum(&content);
                repo.write_file_object(&new, &h, &content)?;
                Ok(Some((path.clone(), new)))
            },
        )
        .filter_map(Result::transpose)
        .collect::<Result<_, _>>()?;
    let n = changed.len() as u64;
    let by_path: BTreeMap<String, Checksum> = changed.into_iter().collect();
    apply(tree, "", &by_path, l)?;
    Ok(n)
}

fn collect(t: &MutableTree, path: &str, out: &mut Vec<(String, Checksum)>) {
    for (name, c) in &t.files {
        out.push((format!("{path}/{name}"), *c));
    }
    for (name, d) in &t.dirs {
        collect(d, &format!("{path}/{name}"), out);
    }
}

/// Put the relabeled objects in place and label the directories (metadata only).
fn apply(
    t: &mut MutableTree,
    path: &str,
    changed: &BTreeMap<String, Checksum>,
    l: &Labeler,
) -> Result<(), LabelError> {
    let dir_path = if path.is_empty() { "/" } else { path };
    let label = l.label_for(dir_path, t.meta.mode)?;
    t.meta.xattrs = with_label(&t.meta.xattrs, label);
    for (name, c) in t.files.iter_mut() {
        if let Some(new) = changed.get(&format!("{path}/{name}")) {
            *c = *new;
        }
    }
    for (name, d) in t.dirs.iter_mut() {
        apply(d, &format!("{path}/{name}"), changed, l)?;
    }
    Ok(())
}
