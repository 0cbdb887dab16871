//! OSTree metadata for RPM header entries: owners resolved through [`Users`], modes,
//! symlink targets and file capabilities (`security.capability`).
//!
//! Like rpm, an owner name the target does not know becomes root (with one warning per
//! name and package), and the setuid/setgid bit that came with it is dropped — it would
//! otherwise grant root.

use std::collections::HashSet;

use arbor_repo::objects::{DirMeta, S_IFDIR, S_IFLNK, S_IFREG};
use arbor_repo::{FileHeader, Xattrs};
use rpm::FileEntry;

use super::caps;
use super::users::Users;

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;

/// Builds headers and dirmetas for the entries of one package.
pub struct Attrs<'a> {
    users: &'a Users,
    nevra: &'a str,
    warned: HashSet<String>,
}

impl<'a> Attrs<'a> {
    pub fn new(users: &'a Users, nevra: &'a str) -> Attrs<'a> {
        Attrs {
            users,
            nevra,
            warned: HashSet::new(),
        }
    }

    /// uid, gid and permission bits (`0o7777` at most).
    fn owner(&mut self, e: &FileEntry<'_>) -> (u32, u32, u32) {
        let mut perms = u32::from(e.permissions()) & 0o7777;
        let uid = match self.users.uid(e.user()) {
            Some(uid) => uid,
            None => {
                self.warn_unknown("user", e.user());
                perms &= !S_ISUID;
                0
            }
        };
        let gid = match self.users.gid(e.group()) {
            Some(gid) => gid,
            None => {
                self.warn_unknown("group", e.group());
                perms &= !S_ISGID;
                0
            }
        };
        (uid, gid, perms)
    }

    fn warn_unknown(&mut self, kind: &str, name: &str) {
        if self.warned.insert(format!("{kind}:{name}")) {
            tracing::warn!("{}: {kind} {name} does not exist - using root", self.nevra);
        }
    }

    /// The header of a regular file.
    pub fn regular(&mut self, e: &FileEntry<'_>) -> Result<FileHeader, String> {
        let (uid, gid, perms) = self.owner(e);
        Ok(FileHeader {
            uid,
            gid,
            mode: S_IFREG | perms,
            symlink_target: String::new(),
            xattrs: xattrs(e)?,
        })
    }

    /// The header of a symlink, pointing where the RPM header says.
    pub fn symlink(&mut self, e: &FileEntry<'_>) -> Result<FileHeader, String> {
        let target = match e.linkto() {
            Some(t) if !t.is_empty() => t.to_string(),
            _ => return Err("symlink without a target".into()),
        };
        let (uid, gid, _) = self.owner(e);
        Ok(FileHeader {
            uid,
            gid,
            // Symlink permissions mean nothing on Linux; lstat always says 0777.
            mode: S_IFLNK | 0o777,
            symlink_target: target,
            xattrs: Xattrs::default(),
        })
    }

    /// The metadata of a directory.
    pub fn dir(&mut self, e: &FileEntry<'_>) -> Result<DirMeta, String> {
        let (uid, gid, perms) = self.owner(e);
        Ok(DirMeta {
            uid,
            gid,
            mode: S_IFDIR | perms,
            xattrs: xattrs(e)?,
        })
    }
}

/// `security.capability` when the header gives the entry capabilities.
fn xattrs(e: &FileEntry<'_>) -> Result<Xattrs, String> {
    match e.caps() {
        Some(text) if !text.is_empty() => {
            let value = caps::text_to_xattr(text)?;
            Ok(Xattrs::new(vec![(caps::XATTR_NAME.to_vec(), value)]))
        }
        _ => Ok(Xattrs::default()),
    }
}
