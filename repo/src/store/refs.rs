//! Refs under `refs/heads` (nested names allowed) and revision parsing.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{IoContext, Repo, RepoError, Result};
use crate::checksum::Checksum;
use crate::layout::{self, validate_ref_name};

impl Repo {
    fn ref_path(&self, name: &str) -> Result<PathBuf> {
        validate_ref_name(name)?;
        Ok(PathBuf::from(layout::ref_key(name)))
    }

    /// The commit a local branch points to, if the branch exists.
    pub fn read_ref(&self, name: &str) -> Result<Option<Checksum>> {
        let path = self.path().join(self.ref_path(name)?);
        match fs::read_to_string(&path) {
            Ok(s) => layout::parse_ref_contents(&s)
                .map(Some)
                .map_err(|e| RepoError::BadRev {
                    rev: name.to_string(),
                    why: format!("ref file {}: {e}", path.display()),
                }),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound
                        | io::ErrorKind::NotADirectory
                        | io::ErrorKind::IsADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(RepoError::Io { path, source: e }),
        }
    }

    /// Point a branch at a commit (atomically, after syncing the objects it names).
    pub fn write_ref(&self, name: &str, commit: &Checksum) -> Result<()> {
        let rel = self.ref_path(name)?;
        self.sync()?;
        self.write_atomic(&rel, layout::ref_contents(commit).as_bytes())
    }

    /// Remove a branch.
    pub fn delete_ref(&self, name: &str) -> Result<()> {
        let path = self.path().join(self.ref_path(name)?);
        fs::remove_file(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                RepoError::RefNotFound(name.to_string())
            } else {
                RepoError::Io { path, source: e }
            }
        })
    }

    /// All local branches, sorted by name.
    pub fn list_refs(&self) -> Result<BTreeMap<String, Checksum>> {
        let mut out = BTreeMap::new();
        let top = self.path().join(layout::REFS_PREFIX);
        collect_refs(&top, "", &mut out)?;
        Ok(out)
    }

    /// Resolve a revision: a full checksum, a branch name, or either followed by `^`
    /// (parent), repeatable.
    pub fn resolve_rev(&self, rev: &str) -> Result<Checksum> {
        let base = rev.trim_end_matches('^');
        let parents = rev.len() - base.len();
        let mut c = if base.len() == 64 && base.bytes().all(|b| b.is_ascii_hexdigit()) {
            Checksum::from_hex(base).map_err(|e| RepoError::BadRev {
                rev: rev.into(),
                why: e.to_string(),
            })?
        } else {
            self.read_ref(base)?
                .ok_or_else(|| RepoError::RefNotFound(base.to_string()))?
        };
        for _ in 0..parents {
            c = self
                .read_commit(&c)?
                .parent
                .ok_or_else(|| RepoError::BadRev {
                    rev: rev.into(),
                    why: format!("commit {c} has no parent"),
                })?;
        }
        Ok(c)
    }
}

fn collect_refs(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Checksum>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(RepoError::Io {
                path: dir.to_path_buf(),
                source: e,
            })
        }
    };
    for e in entries {
        let e = e.at(dir)?;
        let name = e.file_name().to_string_lossy().into_owned();
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let path = e.path();
        if e.file_type().at(&path)?.is_dir() {
            collect_refs(&path, &full, out)?;
        } else {
            let text = fs::read_to_string(&path).at(&path)?;
            let c = layout::parse_ref_contents(&text).map_err(|err| RepoError::BadRev {
                rev: full.clone(),
                why: format!("ref file {}: {err}", path.display()),
            })?;
            out.insert(full, c);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names() {
        for ok in ["main", "fedora/x86_64/silverblue", "a.b-c_d", "_x"] {
            assert!(validate_ref_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "-a", ".a", "a b", "a:b"] {
            assert!(validate_ref_name(bad).is_err(), "{bad}");
        }
    }
}
