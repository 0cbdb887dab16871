//! OSTree metadata for RPM header entries: owners resolved through [`Users`], modes,
//! symlink targets and file capabilities (`security.capability`).
//!
//! An owner name the users database does not know (yet: the package's own `%pre` may
//! create it) becomes root, and the setuid/setgid bit that came with it is dropped — it
//! would otherwise grant root. Each such entry is recorded ([`Deferred`]) so the compose
//! can give it its real owner once the scriptlets have created the accounts, as
//! rpm-ostree applies its ownership overrides after `%pre`.

use std::collections::HashSet;

use arbor_repo::objects::{DirMeta, S_IFDIR, S_IFLNK, S_IFREG};
use arbor_repo::{FileHeader, Xattrs};
use rpm::FileEntry;

use super::caps;
use super::users::Users;

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;

/// An entry whose owner could not be resolved at import: where it is (the RPM path while
/// importing, the tree path in an [`super::ImportedPackage`]), the names the header
/// gives, and its permission bits (with any setuid/setgid bit).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Deferred {
    pub path: String,
    pub user: String,
    pub group: String,
    pub perms: u32,
}

/// Builds headers and dirmetas for the entries of one package.
pub struct Attrs<'a> {
    users: &'a Users,
    nevra: &'a str,
    opts: &'a super::ImportOpts,
    warned: HashSet<String>,
    /// Entries given root because a name was unknown.
    pub deferred: Vec<Deferred>,
}

impl<'a> Attrs<'a> {
    pub fn new(users: &'a Users, nevra: &'a str, opts: &'a super::ImportOpts) -> Attrs<'a> {
        Attrs {
            users,
            nevra,
            opts,
            warned: HashSet::new(),
            deferred: Vec::new(),
        }
    }

    /// uid, gid and permission bits (`0o7777` at most).
    fn owner(&mut self, e: &FileEntry<'_>) -> (u32, u32, u32) {
        let full = u32::from(e.permissions()) & 0o7777;
        let mut perms = full;
        let uid = self.users.uid(e.user());
        let gid = self.users.gid(e.group());
        if uid.is_none() {
            self.note_unknown("user", e.user());
            perms &= !S_ISUID;
        }
        if gid.is_none() {
            self.note_unknown("group", e.group());
            perms &= !S_ISGID;
        }
        if uid.is_none() || gid.is_none() {
            self.deferred.push(Deferred {
                path: e.path().to_string_lossy().into_owned(),
                user: e.user().to_string(),
                group: e.group().to_string(),
                perms: full,
            });
        }
        (uid.unwrap_or(0), gid.unwrap_or(0), perms)
    }

    fn note_unknown(&mut self, kind: &str, name: &str) {
        if self.warned.insert(format!("{kind}:{name}")) {
            tracing::debug!(
                "{}: {kind} {name} is not in the base users database: root until the \
                 scriptlets have run",
                self.nevra
            );
        }
    }

    /// The header of a regular file.
    pub fn regular(&mut self, e: &FileEntry<'_>) -> Result<FileHeader, String> {
        let (uid, gid, mut perms) = self.owner(e);
        if self.opts.readonly_executables && perms & 0o111 != 0 {
            perms &= !0o222;
        }
        let mut xattrs = xattrs(e)?;
        if self.opts.ima {
            if let Some(sig) = e.ima_signature().filter(|s| !s.is_empty()) {
                let value = hex(sig).ok_or("IMA signature is not hex")?;
                let mut all = xattrs.entries().to_vec();
                all.push((b"security.ima".to_vec(), value));
                xattrs = Xattrs::new(all);
            }
        }
        Ok(FileHeader {
            uid,
            gid,
            mode: S_IFREG | perms,
            symlink_target: String::new(),
            xattrs,
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

/// Bytes of a hex string (`None` when it is not one).
fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
