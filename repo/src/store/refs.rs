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
        match read_ref_file(&path, name) {
            Ok(s) => layout::parse_ref_contents(&s)
                .map(Some)
                .map_err(|e| RepoError::BadRev {
                    rev: name.to_string(),
                    why: format!("ref file {}: {e}", path.display()),
                }),
            Err(RefFileError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound
                        | io::ErrorKind::NotADirectory
                        | io::ErrorKind::IsADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into_repo_error(name, path)),
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
        collect_refs(&top, &mut out)?;
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

/// Ref files hold 64 hex digits and a newline; anything longer is not a ref.
const MAX_REF_FILE: u64 = 256;

enum RefFileError {
    Io(io::Error),
    Bad(String),
}

impl RefFileError {
    fn into_repo_error(self, name: &str, path: PathBuf) -> RepoError {
        match self {
            RefFileError::Io(source) => RepoError::Io { path, source },
            RefFileError::Bad(why) => RepoError::BadRev {
                rev: name.to_string(),
                why: format!("ref file {}: {why}", path.display()),
            },
        }
    }
}

/// The text of a ref file, read as ostree's refs are meant to be: a regular file (a
/// symbolic link is not followed, a FIFO or device is not opened for blocking reads),
/// at most [`MAX_REF_FILE`] bytes, UTF-8. Hostile content is never echoed whole: the
/// checksum parser quotes a short prefix.
fn read_ref_file(path: &Path, name: &str) -> std::result::Result<String, RefFileError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = fs::File::options()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                RefFileError::Bad("is a symbolic link; refs are regular files".into())
            } else {
                RefFileError::Io(e)
            }
        })?;
    let meta = file.metadata().map_err(RefFileError::Io)?;
    if meta.is_dir() {
        return Err(RefFileError::Io(io::Error::from(
            io::ErrorKind::IsADirectory,
        )));
    }
    if !meta.is_file() {
        return Err(RefFileError::Bad("is not a regular file".into()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_REF_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(RefFileError::Io)?;
    if bytes.len() as u64 > MAX_REF_FILE {
        return Err(RefFileError::Bad(format!(
            "larger than {MAX_REF_FILE} bytes; not a ref of {name:?}"
        )));
    }
    String::from_utf8(bytes).map_err(|_| RefFileError::Bad("is not UTF-8 text".into()))
}

/// Every ref file under `top`, walked with an explicit stack (the depth comes from the
/// directory tree, which may be hostile).
fn collect_refs(top: &Path, out: &mut BTreeMap<String, Checksum>) -> Result<()> {
    let mut stack = vec![(top.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(RepoError::Io {
                    path: dir.to_path_buf(),
                    source: e,
                })
            }
        };
        for e in entries {
            let e = e.at(&dir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            let full = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let path = e.path();
            if e.file_type().at(&path)?.is_dir() {
                stack.push((path, full));
                continue;
            }
            let text = read_ref_file(&path, &full)
                .map_err(|err| err.into_repo_error(&full, path.clone()))?;
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

    /// Hostile ref files: a symlink (to a secret) is not followed and nothing of its
    /// target is printed; a huge one is refused after a bounded read; a FIFO does not
    /// block; junk is quoted only as a short prefix.
    #[test]
    fn hostile_ref_files() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("r")).unwrap();
        let heads = repo.path().join(layout::REFS_PREFIX);
        let secret = dir.path().join("secret");
        fs::write(&secret, format!("{}\n", "ab".repeat(32))).unwrap();
        std::os::unix::fs::symlink(&secret, heads.join("link")).unwrap();
        let e = repo.read_ref("link").unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(!e.contains("abab"), "{e}");
        assert!(repo
            .list_refs()
            .unwrap_err()
            .to_string()
            .contains("symbolic link"));
        fs::remove_file(heads.join("link")).unwrap();

        fs::write(heads.join("huge"), vec![b'x'; 10 << 20]).unwrap();
        let e = repo.read_ref("huge").unwrap_err().to_string();
        assert!(e.contains("larger than 256 bytes") && e.len() < 300, "{e}");
        fs::remove_file(heads.join("huge")).unwrap();

        fs::write(heads.join("junk"), "y".repeat(200)).unwrap();
        let e = repo.read_ref("junk").unwrap_err().to_string();
        assert!(e.contains("… (200 bytes)") && e.len() < 300, "{e}");
        fs::remove_file(heads.join("junk")).unwrap();

        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            heads.join("fifo"),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let e = repo.read_ref("fifo").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
