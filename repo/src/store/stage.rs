//! Staging: how every file of the repository gets its name only once complete.
//!
//! Content-addressed objects are staged as anonymous `O_TMPFILE`s in their own
//! `objects/XX/` directory and linked under their name once complete: no cross-directory
//! rename (which serialises on a filesystem-wide lock), no temp name, no leftovers after a
//! crash. Where `O_TMPFILE` is missing (or cannot be linked: no /proc and no privilege),
//! they go through `tmp/` and a no-replace rename. Everything else (refs, config,
//! summary, commitmeta) is a temp file in `tmp/` renamed over its name.

use std::fs;
use std::io::{self, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::{IoContext, Repo, Result, DIR_MODE};

impl Repo {
    /// A fresh staging path under `tmp/`.
    fn tmp_path(&self) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("arbor-{}-{n}", std::process::id()))
    }

    /// Write `data` to `rel` (relative to the repo) through a temp file and a rename.
    pub fn write_atomic(&self, rel: &Path, data: &[u8]) -> Result<()> {
        self.stage(rel, |f| f.write_all(data))
    }

    /// Create the content-addressed object `rel` (`objects/XX/…`) unless it exists: an
    /// anonymous `O_TMPFILE` in its directory, filled by `fill`, then linked under its
    /// name. Returns its size, or `None` when a concurrent writer got there first (same
    /// name, same content).
    pub(super) fn stage_object(
        &self,
        rel: &Path,
        fill: impl FnOnce(&mut io::BufWriter<fs::File>) -> io::Result<()>,
    ) -> Result<Option<u64>> {
        self.mark_unsynced()?;
        if self.no_tmpfile.load(Ordering::Relaxed) {
            return self.stage_exclusive(rel, fill);
        }
        let dest = self.root.join(rel);
        let dir = dest.parent().expect("object paths have a parent");
        let f = match open_tmpfile(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_dirs(dir).at(dir)?;
                open_tmpfile(dir)
            }
            r => r,
        };
        let Some(f) = f.at(dir)? else {
            self.no_tmpfile.store(true, Ordering::Relaxed);
            return self.stage_exclusive(rel, fill);
        };
        let mut w = io::BufWriter::with_capacity(256 << 10, f);
        fill(&mut w).at(&dest)?;
        let mut f = w.into_inner().map_err(|e| e.into_error()).at(&dest)?;
        let size = f.stream_position().at(&dest)?;
        match link_tmpfile(&f, &dest) {
            Ok(()) => Ok(Some(size)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            // No /proc (a bare chroot) and no CAP_DAC_READ_SEARCH for AT_EMPTY_PATH: the
            // content is still in `f`; it and every later object go through tmp/.
            Err(e) if !proc_fd_available() => {
                tracing::debug!("cannot link an O_TMPFILE ({e}); staging objects in tmp/");
                self.no_tmpfile.store(true, Ordering::Relaxed);
                f.seek(io::SeekFrom::Start(0)).at(&dest)?;
                self.stage_exclusive(rel, |w| io::copy(&mut f, w).map(drop))
            }
            Err(e) => Err(e).at(&dest),
        }
    }

    /// Create a temp file, let `fill` write it, then rename it to `rel`.
    fn stage(
        &self,
        rel: &Path,
        fill: impl FnOnce(&mut io::BufWriter<fs::File>) -> io::Result<()>,
    ) -> Result<()> {
        self.stage_in_tmp(rel, fill, false).map(drop)
    }

    /// [`Repo::stage`] for an object: never replaces one that exists (`None` then), so
    /// that two writers of one object count it once; the object's size otherwise.
    fn stage_exclusive(
        &self,
        rel: &Path,
        fill: impl FnOnce(&mut io::BufWriter<fs::File>) -> io::Result<()>,
    ) -> Result<Option<u64>> {
        self.stage_in_tmp(rel, fill, true)
    }

    fn stage_in_tmp(
        &self,
        rel: &Path,
        fill: impl FnOnce(&mut io::BufWriter<fs::File>) -> io::Result<()>,
        exclusive: bool,
    ) -> Result<Option<u64>> {
        let tmp = self.tmp_path();
        let result = (|| {
            let f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .at(&tmp)?;
            let mut w = io::BufWriter::with_capacity(256 << 10, f);
            fill(&mut w).at(&tmp)?;
            let mut f = w.into_inner().map_err(|e| e.into_error()).at(&tmp)?;
            f.set_permissions(fs::Permissions::from_mode(0o644))
                .at(&tmp)?;
            let size = f.stream_position().at(&tmp)?;
            drop(f);
            let dest = self.root.join(rel);
            let renamed = match rename(&tmp, &dest, exclusive) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let parent = dest.parent().expect("object paths have a parent");
                    create_dirs(parent).at(parent)?;
                    rename(&tmp, &dest, exclusive)
                }
                r => r,
            }
            .at(&dest)?;
            Ok(renamed.then_some(size))
        })();
        if !matches!(result, Ok(Some(_))) {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// An anonymous file (mode 0644) in `dir`, or `None` where `O_TMPFILE` is unsupported.
fn open_tmpfile(dir: &Path) -> io::Result<Option<fs::File>> {
    use rustix::fs::{Mode, OFlags, CWD};
    use rustix::io::Errno;
    match rustix::fs::openat(
        CWD,
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    ) {
        Ok(fd) => {
            let f = fs::File::from(fd);
            // The umask applied at creation; objects are 0644 whatever it is.
            f.set_permissions(fs::Permissions::from_mode(0o644))?;
            Ok(Some(f))
        }
        Err(e) if e == Errno::OPNOTSUPP || e == Errno::ISDIR || e == Errno::INVAL => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Give the `O_TMPFILE` `f` the name `dest`, through `/proc/self/fd` (no privilege
/// needed) or, without `/proc`, `AT_EMPTY_PATH`.
fn link_tmpfile(f: &fs::File, dest: &Path) -> io::Result<()> {
    use rustix::fs::{AtFlags, CWD};
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", f.as_raw_fd());
    match rustix::fs::linkat(CWD, proc_path.as_str(), CWD, dest, AtFlags::SYMLINK_FOLLOW) {
        Err(e) if e == rustix::io::Errno::NOENT && !proc_fd_available() => {
            rustix::fs::linkat(f, "", CWD, dest, AtFlags::EMPTY_PATH).map_err(Into::into)
        }
        r => r.map_err(Into::into),
    }
}

/// `create_dir_all`, each new directory 0775 whatever the umask (like the ones `init`
/// makes), so that a web server running as another user can serve the repository.
fn create_dirs(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn proc_fd_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// Rename `from` to `to`; with `exclusive`, only if `to` does not exist (`Ok(false)` and
/// nothing done if it does). Where `RENAME_NOREPLACE` is unsupported, a plain rename.
fn rename(from: &Path, to: &Path, exclusive: bool) -> io::Result<bool> {
    if exclusive {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(true),
            Err(e) if e == Errno::EXIST => return Ok(false),
            Err(e) if e == Errno::INVAL || e == Errno::NOSYS || e == Errno::OPNOTSUPP => {}
            Err(e) => return Err(e.into()),
        }
    }
    fs::rename(from, to).map(|()| true)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::filez::{verify_archive_file, verify_archive_file_streaming};
    use crate::objects::{FileHeader, ObjectType, Xattrs};

    fn file(mode: u32, target: &str) -> FileHeader {
        FileHeader {
            uid: 0,
            gid: 0,
            mode,
            symlink_target: target.into(),
            xattrs: Xattrs::new(Vec::new()),
        }
    }

    /// The streaming check (publish) agrees with the reading one on good, damaged and
    /// truncated objects, for regular files and symlinks.
    #[test]
    fn streaming_verification_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(dir.path()).unwrap();
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        for (h, body) in [
            (file(0o100644, ""), content.as_slice()),
            (file(0o120777, "../t"), &b""[..]),
        ] {
            let c = h.checksum(body);
            repo.write_file_object(&c, &h, body).unwrap();
            let data = fs::read(repo.object_path(&c, ObjectType::File)).unwrap();
            verify_archive_file(&data, &c).unwrap();
            verify_archive_file_streaming(&data, &c).unwrap();
            let mut flipped = data.clone();
            let n = flipped.len();
            flipped[n - 1] ^= 1;
            let truncated = &data[..n - 1];
            for bad in [&flipped[..], truncated] {
                assert!(verify_archive_file(bad, &c).is_err());
                assert!(verify_archive_file_streaming(bad, &c).is_err());
            }
        }
    }

    /// Objects staged as O_TMPFILEs and through tmp/ + rename are the same files;
    /// neither leaves anything in tmp/, a second write of an object is a no-op (and is
    /// not counted), and racing writers of one object all succeed.
    #[test]
    fn both_staging_paths_write_the_same_objects() {
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 97) as u8).collect();
        let reg = file(0o100644, "");
        let link = file(0o120777, "../target");
        let mut written = Vec::new();
        for tmpfile in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let repo = Repo::init(dir.path()).unwrap();
            repo.no_tmpfile.store(!tmpfile, Ordering::Relaxed);
            let c = reg.checksum(&content);
            assert!(repo.write_file_object(&c, &reg, &content).unwrap() > 0);
            assert_eq!(repo.write_file_object(&c, &reg, &content).unwrap(), 0);
            let l = link.checksum(b"");
            repo.write_file_object(&l, &link, b"").unwrap();
            let big = file(0o100755, "");
            let cb = big.checksum(&content);
            let n = repo
                .write_file_object_from(&cb, &big, content.len() as u64, &mut &content[..])
                .unwrap();
            assert!(n > 0);
            // A short stream is refused and leaves no object behind.
            let short = file(0o100700, "");
            let cs = short.checksum(&content);
            let err = repo
                .write_file_object_from(&cs, &short, content.len() as u64, &mut &content[..10])
                .unwrap_err();
            assert!(err.to_string().contains("expected 300000 bytes"), "{err}");
            assert!(!repo.has_object(&cs, ObjectType::File));
            // A reader that fails is reported as such (not as a size change).
            struct Failing;
            impl Read for Failing {
                fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                    Err(io::Error::other("disk on fire"))
                }
            }
            let err = repo
                .write_file_object_from(&cs, &short, 5, &mut Failing)
                .unwrap_err();
            assert!(err.to_string().contains("disk on fire"), "{err}");
            assert!(!repo.has_object(&cs, ObjectType::File));
            let dm = crate::objects::DirMeta {
                uid: 0,
                gid: 0,
                mode: 0o40755,
                xattrs: Xattrs::new(Vec::new()),
            };
            let (m, new) = repo
                .write_metadata(ObjectType::DirMeta, &dm.to_bytes())
                .unwrap();
            assert!(new);
            assert_eq!(repo.read_dirmeta(&m).unwrap(), dm);
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        let other = file(0o100600, "");
                        let co = other.checksum(&content);
                        repo.write_file_object(&co, &other, &content).unwrap();
                    });
                }
            });
            // Four FILE objects made (reg, link, big, other), each counted once.
            assert_eq!(repo.files_written().0, 4);
            let other = file(0o100600, "").checksum(&content);
            let on_disk: u64 = [c, l, cb, other]
                .iter()
                .map(|c| {
                    fs::metadata(repo.object_path(c, ObjectType::File))
                        .unwrap()
                        .len()
                })
                .sum();
            assert_eq!(repo.files_written().1, on_disk);
            // The path under test was the one taken.
            assert_eq!(repo.no_tmpfile.load(Ordering::Relaxed), !tmpfile);
            // A second writer of an existing name is told so and changes nothing.
            let rel = Path::new("objects/aa/test.dirmeta");
            assert_eq!(
                repo.stage_object(rel, |w| w.write_all(b"one")).unwrap(),
                Some(3)
            );
            assert_eq!(
                repo.stage_object(rel, |w| w.write_all(b"two")).unwrap(),
                None
            );
            assert_eq!(fs::read(dir.path().join(rel)).unwrap(), b"one");
            fs::remove_file(dir.path().join(rel)).unwrap();
            assert_eq!(repo.read_file(&c).unwrap(), (reg.clone(), content.clone()));
            assert_eq!(repo.read_file(&l).unwrap().0, link);
            assert_eq!(repo.read_file(&cb).unwrap().1, content);
            let path = repo.object_path(&c, ObjectType::File);
            let meta = fs::metadata(&path).unwrap();
            assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
            assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
            assert_eq!(
                repo.fsck(&crate::progress::NoProgress).unwrap().errors,
                Vec::<String>::new()
            );
            written.push((
                fs::read(&path).unwrap(),
                fs::read(repo.object_path(&cb, ObjectType::File)).unwrap(),
                fs::read(repo.object_path(&m, ObjectType::DirMeta)).unwrap(),
            ));
            drop(dir);
        }
        assert_eq!(written[0], written[1]);
    }
}
