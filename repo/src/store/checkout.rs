//! Checking a commit out into a directory, like `ostree checkout`.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rayon::prelude::*;

use super::{IoContext, Repo, RepoError, Result};
use crate::checksum::Checksum;
use crate::objects::{Xattrs, S_IFMT};

#[derive(Debug, Clone, Default)]
pub struct CheckoutOpts {
    /// Like `ostree checkout -U`: do not change ownership or set xattrs (for non-root
    /// users, or trees that will be committed again with other owners).
    pub user_mode: bool,
}

fn set_xattrs(path: &Path, xattrs: &Xattrs) -> Result<()> {
    for (name, value) in xattrs.entries() {
        rustix::fs::lsetxattr(
            path,
            OsStr::from_bytes(name),
            value,
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(io::Error::from)
        .at(path)?;
    }
    Ok(())
}

impl Repo {
    /// Check `commit` (or `subpath` inside it) out into `dest`, which must not exist.
    pub fn checkout(
        &self,
        commit: &Checksum,
        subpath: &str,
        dest: &Path,
        opts: &CheckoutOpts,
    ) -> Result<()> {
        if fs::symlink_metadata(dest).is_ok() {
            return Err(RepoError::Input {
                path: dest.to_path_buf(),
                why: "destination already exists".into(),
            });
        }
        let as_root = !opts.user_mode && rustix::process::geteuid().is_root();
        match self.lookup_path(commit, subpath)? {
            super::walk::Node::Dir { tree, meta } => {
                self.checkout_dir(&tree, &meta, dest, opts, as_root)
            }
            super::walk::Node::File(c) => self.checkout_file(&c, dest, opts, as_root),
        }
    }

    fn checkout_dir(
        &self,
        tree: &Checksum,
        meta: &Checksum,
        dest: &Path,
        opts: &CheckoutOpts,
        as_root: bool,
    ) -> Result<()> {
        let m = self.read_dirmeta(meta)?;
        fs::create_dir(dest).at(dest)?;
        // Owner-writable while filling it; the real mode is applied at the end.
        fs::set_permissions(dest, fs::Permissions::from_mode(0o700)).at(dest)?;
        let t = self.read_dirtree(tree)?;
        t.files
            .par_iter()
            .map(|(name, c)| self.checkout_file(c, &dest.join(name), opts, as_root))
            .collect::<Result<()>>()?;
        t.dirs
            .par_iter()
            .map(|(name, ct, cm)| self.checkout_dir(ct, cm, &dest.join(name), opts, as_root))
            .collect::<Result<()>>()?;
        if !opts.user_mode {
            set_xattrs(dest, &m.xattrs)?;
        }
        if as_root {
            std::os::unix::fs::lchown(dest, Some(m.uid), Some(m.gid)).at(dest)?;
        }
        fs::set_permissions(dest, fs::Permissions::from_mode(m.mode & !S_IFMT)).at(dest)
    }

    fn checkout_file(
        &self,
        checksum: &Checksum,
        dest: &Path,
        opts: &CheckoutOpts,
        as_root: bool,
    ) -> Result<()> {
        let (h, content) = self.read_file(checksum)?;
        if h.is_symlink() {
            std::os::unix::fs::symlink(&h.symlink_target, dest).at(dest)?;
        } else {
            // A new file, never an existing name (nothing is written through a symlink).
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)
                .at(dest)?;
            f.write_all(&content).at(dest)?;
            drop(f);
            if !opts.user_mode {
                set_xattrs(dest, &h.xattrs)?;
            }
        }
        if as_root {
            std::os::unix::fs::lchown(dest, Some(h.uid), Some(h.gid)).at(dest)?;
        }
        if !h.is_symlink() {
            // After chown, which clears setuid/setgid bits.
            let mode = if opts.user_mode {
                h.mode & 0o777
            } else {
                h.mode & !S_IFMT
            };
            fs::set_permissions(dest, fs::Permissions::from_mode(mode)).at(dest)?;
        }
        Ok(())
    }
}
