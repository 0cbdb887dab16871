//! `ostree-layers` and `ostree-override-layers`: commits of the repository overlaid onto
//! the packages' tree before the scriptlets run, as rpm-ostree does.

use arbor_repo::tree::MutableTree;
use arbor_repo::Repo;

use super::ComposeError;
use crate::plan::ComposePlan;

/// Overlay the `ostree-layers` (a file another layer or a package has with different
/// content is an error) and then the `ostree-override-layers` (their files win) onto
/// the packages' tree, as rpm-ostree does before the scriptlets.
pub fn apply(repo: &Repo, tree: &mut MutableTree, plan: &ComposePlan) -> Result<(), ComposeError> {
    for (key, refs, override_) in [
        ("ostree-layers", &plan.ostree_layers, false),
        ("ostree-override-layers", &plan.ostree_override_layers, true),
    ] {
        for r in refs {
            let commit = repo.read_ref(r)?.ok_or_else(|| {
                ComposeError::Other(format!(
                    "{key}: ref {r:?} is not in {}",
                    repo.path().display()
                ))
            })?;
            let c = repo.read_commit(&commit)?;
            let mut layer = repo.load_mtree(&c.root_tree, &c.root_meta)?;
            // A layer's /etc is the tree's /usr/etc.
            if let Some(etc) = layer.dirs.remove("etc") {
                let usr = layer.dirs.entry("usr".into()).or_default();
                usr.dirs.entry("etc".into()).or_insert(etc);
            }
            merge_layer(tree, &layer, override_, "", key, r)?;
        }
    }
    Ok(())
}

fn merge_layer(
    dest: &mut MutableTree,
    src: &MutableTree,
    override_: bool,
    path: &str,
    key: &str,
    layer: &str,
) -> Result<(), ComposeError> {
    for (name, c) in &src.files {
        let p = format!("{path}/{name}");
        if dest.dirs.contains_key(name) {
            return Err(ComposeError::Other(format!(
                "{key} {layer}: {p} is a file in the layer but a directory in the tree"
            )));
        }
        match dest.files.get(name) {
            Some(old) if old != c && !override_ => {
                return Err(ComposeError::Other(format!(
                    "{key} {layer}: {p} conflicts with the tree (different content; use \
                     ostree-override-layers to replace it)"
                )))
            }
            _ => {
                dest.files.insert(name.clone(), *c);
            }
        }
    }
    for (name, d) in &src.dirs {
        let p = format!("{path}/{name}");
        if dest.files.contains_key(name) {
            if override_ {
                dest.files.remove(name);
            } else {
                return Err(ComposeError::Other(format!(
                    "{key} {layer}: {p} is a directory in the layer but a file in the tree"
                )));
            }
        }
        let child = dest
            .dirs
            .entry(name.clone())
            .or_insert_with(|| MutableTree::new(d.meta.clone()));
        merge_layer(child, d, override_, &p, key, layer)?;
    }
    Ok(())
}
