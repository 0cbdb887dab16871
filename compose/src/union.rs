//! The union of package trees, in install order: what `rpm -i` of all packages would
//! lay down, computed on in-memory trees whose file objects are already stored.
//!
//! * A path that is a file in several packages must be the same object everywhere
//!   (same content, mode, owner, xattrs): rpm allows such "shared" files, and
//!   rpm-ostree's assembly (union-identical checkout) does too. Anything else is a
//!   file conflict naming both packages.
//! * A path that is a file in one package and a directory in another is a conflict.
//! * Directories are shared, as in rpm. Their metadata comes from the first package
//!   that owns (lists) the directory; a directory only created implicitly as a parent
//!   (root:root 0755) yields to a later package that owns it. rpm itself re-applies a
//!   shared directory's metadata for every package that lists it, so on a real
//!   install the last one wins; first-wins keeps the result independent of how many
//!   packages a compose adds later.

use std::collections::HashMap;

use arbor_repo::tree::MutableTree;

use crate::import::ImportedPackage;

#[derive(Debug, thiserror::Error)]
pub enum UnionError {
    #[error("file conflict at /{path}: {first} and {second} ship different content")]
    FileConflict {
        path: String,
        first: String,
        second: String,
    },
    #[error("file conflict at /{path}: a file in {file_pkg} but a directory in {dir_pkg}")]
    FileVersusDirectory {
        path: String,
        file_pkg: String,
        dir_pkg: String,
    },
}

/// Who put what where: the package index of every file and every directory's
/// metadata (`owned` says whether that package listed the directory itself).
#[derive(Default)]
struct Owners {
    files: HashMap<String, usize>,
    dirs: HashMap<String, (usize, bool)>,
}

/// Merge `packages` in order into one tree.
pub fn union(packages: &[ImportedPackage]) -> Result<MutableTree, UnionError> {
    let mut out = MutableTree::default();
    let mut owners = Owners::default();
    for (i, pkg) in packages.iter().enumerate() {
        merge(&mut out, &pkg.tree, "", i, packages, &mut owners)?;
    }
    Ok(out)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

fn merge(
    dst: &mut MutableTree,
    src: &MutableTree,
    prefix: &str,
    idx: usize,
    packages: &[ImportedPackage],
    owners: &mut Owners,
) -> Result<(), UnionError> {
    let nevra = |i: usize| packages[i].nevra.clone();
    // Directory metadata: an owning package beats an implicit parent; among owners,
    // the first one wins. The root is nobody's.
    if !prefix.is_empty() {
        let owned = packages[idx].owned_dirs.contains(prefix);
        match owners.dirs.get(prefix) {
            None => {
                dst.meta = src.meta.clone();
                owners.dirs.insert(prefix.to_string(), (idx, owned));
            }
            Some(&(_, false)) if owned => {
                dst.meta = src.meta.clone();
                owners.dirs.insert(prefix.to_string(), (idx, true));
            }
            Some(_) => {}
        }
    }
    for (name, csum) in &src.files {
        let path = join(prefix, name);
        if dst.dirs.contains_key(name) {
            let dir_owner = owners.dirs.get(&path).map_or(idx, |o| o.0);
            return Err(UnionError::FileVersusDirectory {
                path,
                file_pkg: nevra(idx),
                dir_pkg: nevra(dir_owner),
            });
        }
        match dst.files.get(name) {
            Some(existing) if existing == csum => {}
            Some(_) => {
                let first = owners.files.get(&path).copied().unwrap_or(idx);
                return Err(UnionError::FileConflict {
                    path,
                    first: nevra(first),
                    second: nevra(idx),
                });
            }
            None => {
                dst.files.insert(name.clone(), *csum);
                owners.files.insert(path, idx);
            }
        }
    }
    for (name, sub) in &src.dirs {
        let path = join(prefix, name);
        if dst.files.contains_key(name) {
            let file_owner = owners.files.get(&path).copied().unwrap_or(idx);
            return Err(UnionError::FileVersusDirectory {
                path,
                file_pkg: nevra(file_owner),
                dir_pkg: nevra(idx),
            });
        }
        let child = dst
            .dirs
            .entry(name.clone())
            .or_insert_with(|| MutableTree::new(sub.meta.clone()));
        merge(child, sub, &path, idx, packages, owners)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use arbor_repo::objects::{DirMeta, S_IFDIR};
    use arbor_repo::tree::{default_dirmeta, TreeEntry};
    use arbor_repo::Checksum;

    use super::*;

    fn pkg(nevra: &str, files: &[(&str, &[u8])], owned: &[(&str, u32)]) -> ImportedPackage {
        let mut tree = MutableTree::default();
        for (p, content) in files {
            tree.insert_file(p, Checksum::of(content), &default_dirmeta())
                .unwrap();
        }
        let mut owned_dirs = BTreeSet::new();
        for (p, mode) in owned {
            tree.ensure_dir(p, &default_dirmeta()).unwrap().meta = DirMeta {
                uid: 0,
                gid: 0,
                mode: S_IFDIR | mode,
                xattrs: Default::default(),
            };
            owned_dirs.insert(p.to_string());
        }
        ImportedPackage {
            nevra: nevra.into(),
            name: nevra.split('-').next().unwrap().into(),
            tree,
            owned_dirs,
            deferred: vec![],
            scriptlets: vec![],
            files: files.len() as u64,
            bytes: 0,
        }
    }

    fn mode(t: &MutableTree, p: &str) -> u32 {
        match t.lookup(p) {
            Some(TreeEntry::Dir(d)) => d.meta.mode & 0o7777,
            other => panic!("{p}: {other:?}"),
        }
    }

    #[test]
    fn identical_files_and_shared_dirs() {
        let a = pkg(
            "a-1-1.x86_64",
            &[("usr/share/x/f", b"same"), ("usr/lib/a", b"a")],
            &[("usr/share/x", 0o750)],
        );
        let b = pkg(
            "b-1-1.x86_64",
            &[("usr/share/x/f", b"same"), ("usr/lib/b", b"b")],
            &[("usr/share/x", 0o700)],
        );
        let t = union(&[a, b]).unwrap();
        assert_eq!(t.files_recursive().len(), 3);
        assert_eq!(mode(&t, "usr/share/x"), 0o750, "first owner wins");
    }

    #[test]
    fn owner_beats_implicit_parent() {
        let a = pkg("a-1-1.x86_64", &[("usr/libexec/t/helper", b"h")], &[]);
        let b = pkg("b-1-1.x86_64", &[], &[("usr/libexec/t", 0o700)]);
        let c = pkg("c-1-1.x86_64", &[], &[("usr/libexec/t", 0o755)]);
        let t = union(&[a, b, c]).unwrap();
        assert_eq!(mode(&t, "usr/libexec/t"), 0o700);
        assert_eq!(mode(&t, "usr/libexec"), 0o755);
    }

    #[test]
    fn conflicts_name_both_packages() {
        let a = pkg("a-1-1.x86_64", &[("usr/bin/x", b"one")], &[]);
        let b = pkg("b-2:1-1.x86_64", &[("usr/bin/x", b"two")], &[]);
        let e = union(&[a.clone(), b]).unwrap_err().to_string();
        assert!(
            e.contains("/usr/bin/x") && e.contains("a-1-1.x86_64") && e.contains("b-2:1-1.x86_64"),
            "{e}"
        );

        let d = pkg("d-1-1.noarch", &[("usr/bin/x/y", b"y")], &[]);
        let e = union(&[a.clone(), d.clone()]).unwrap_err().to_string();
        assert!(
            e.contains("/usr/bin/x") && e.contains("a-1-1") && e.contains("d-1-1"),
            "{e}"
        );
        let e = union(&[d, a]).unwrap_err().to_string();
        assert!(
            e.contains("a file in a-1-1.x86_64 but a directory in d-1-1.noarch"),
            "{e}"
        );
    }
}
