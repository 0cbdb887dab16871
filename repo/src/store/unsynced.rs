//! Objects written since the last [`Repo::sync`] are not yet durable: after a power cut
//! some may be named but empty or short, and a later compose would trust them (it skips
//! every object that exists). So while such objects may exist, a marker says so:
//!
//! ```text
//! R/state/arbor-unsynced-<boot id>-<pid>-<n>   created and synced before the first object
//!                                             of a batch; removed once `sync` made the
//!                                             batch durable
//! ```
//!
//! Opening a repository that holds the marker of a writer that is gone (another boot, or a
//! pid that no longer runs) checks every object modified since the marker was made —
//! checksum and all, as `fsck` does — and deletes the damaged ones, then the marker.
//! ostree reaches the same end by staging objects in a directory and renaming them into
//! `objects/` only after a sync.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::{IoContext, Repo, Result};

const PREFIX: &str = "arbor-unsynced-";

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "noboot".into())
}

impl Repo {
    fn marker(&self) -> std::sync::MutexGuard<'_, Option<PathBuf>> {
        self.unsynced
            .marker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Make sure a marker covers the objects about to be written (see the module docs).
    pub(super) fn mark_unsynced(&self) -> Result<()> {
        if self.unsynced.marked.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut current = self.marker();
        if current.is_some() {
            return Ok(());
        }
        let n = self.unsynced.counter.fetch_add(1, Ordering::Relaxed);
        let state = self.root.join("state");
        let path = state.join(format!("{PREFIX}{}-{}-{n}", boot_id(), std::process::id()));
        let create = || -> io::Result<()> {
            fs::create_dir_all(&state)?;
            fs::File::create(&path)?.sync_all()?;
            fs::File::open(&state)?.sync_all()
        };
        create().at(&path)?;
        *current = Some(path);
        self.unsynced.marked.store(true, Ordering::Release);
        Ok(())
    }

    /// `syncfs`, then drop the marker of the objects it made durable. Objects written
    /// meanwhile get a marker of their own. A writer that checked the marker before this
    /// call and is still writing when it runs would be left uncovered: callers sync once
    /// their writes are done (refs are written after the objects they name), never beside
    /// them.
    pub fn sync(&self) -> Result<()> {
        let covered = {
            let mut current = self.marker();
            self.unsynced.marked.store(false, Ordering::Release);
            current.take()
        };
        let dir = fs::File::open(&self.root).at(&self.root)?;
        if let Err(e) = rustix::fs::syncfs(&dir) {
            if let Some(p) = covered {
                // Still not durable: keep covering those objects.
                let mut current = self.marker();
                if current.is_none() {
                    *current = Some(p);
                    self.unsynced.marked.store(true, Ordering::Release);
                }
            }
            return Err(io::Error::from(e)).at(&self.root);
        }
        if let Some(p) = covered {
            let _ = fs::remove_file(p);
        }
        Ok(())
    }

    /// Check what writers that stopped before syncing left behind (see the module docs).
    /// Best effort: a repository this process cannot write to is left as it is.
    pub(super) fn recover_unsynced(&self) {
        let Ok(entries) = fs::read_dir(self.root.join("state")) else {
            return;
        };
        let boot = boot_id();
        let mut stale: Vec<(PathBuf, SystemTime)> = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(PREFIX) else {
                continue;
            };
            // <boot id (a UUID, with dashes)>-<pid>-<n>
            let mut parts = rest.rsplitn(3, '-');
            let (_n, pid, marker_boot) = (parts.next(), parts.next(), parts.next());
            let alive = marker_boot == Some(boot.as_str())
                && pid.is_some_and(|p| Path::new("/proc").join(p).exists());
            if alive {
                continue;
            }
            let made = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            stale.push((e.path(), made));
        }
        let Some(since) = stale.iter().map(|(_, t)| *t).min() else {
            return;
        };
        // Timestamps are as coarse as the filesystem's; look a little earlier.
        let since = since - Duration::from_secs(2);
        let (checked, removed) = self.remove_damaged_since(since);
        tracing::warn!(
            "{}: a writer stopped before syncing its objects; checked the {checked} written since, removed {removed} damaged",
            self.root.display()
        );
        for (p, _) in stale {
            let _ = fs::remove_file(p);
        }
    }

    fn remove_damaged_since(&self, since: SystemTime) -> (u64, u64) {
        let (mut checked, mut removed) = (0, 0);
        let Ok(dirs) = fs::read_dir(self.root.join(crate::layout::OBJECTS_PREFIX)) else {
            return (0, 0);
        };
        for d in dirs.flatten() {
            let prefix = d.file_name().to_string_lossy().into_owned();
            let Ok(files) = fs::read_dir(d.path()) else {
                continue;
            };
            for f in files.flatten() {
                let recent = f
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= since);
                if !recent {
                    continue;
                }
                checked += 1;
                let name = f.file_name().to_string_lossy().into_owned();
                if let Err(why) = self.check_loose(&prefix, &name, &f.path()) {
                    tracing::warn!("removing damaged {why}");
                    if fs::remove_file(f.path()).is_ok() {
                        removed += 1;
                    }
                }
            }
        }
        (checked, removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{FileHeader, ObjectType, Xattrs};

    fn markers(root: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(root.join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(PREFIX))
            .collect();
        v.sort();
        v
    }

    /// A marker exists exactly while objects are unsynced. A writer that died leaves it;
    /// the next open checks what was written since, removes what is damaged and keeps
    /// the rest. A live writer's marker is left alone.
    #[test]
    fn unsynced_objects_are_checked_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(dir.path()).unwrap();
        assert!(markers(dir.path()).is_empty());
        let header = FileHeader {
            uid: 0,
            gid: 0,
            mode: 0o100644,
            symlink_target: String::new(),
            xattrs: Xattrs::new(Vec::new()),
        };
        let write = |repo: &Repo, body: &[u8]| {
            let c = header.checksum(body);
            repo.write_file_object(&c, &header, body).unwrap();
            c
        };
        let a = write(&repo, b"synced before the crash");
        assert_eq!(markers(dir.path()).len(), 1);
        repo.sync().unwrap();
        assert!(markers(dir.path()).is_empty());

        let good = write(&repo, b"written, intact");
        let bad = write(&repo, b"written, then cut short by the power cut");
        let live = markers(dir.path());
        assert_eq!(live.len(), 1);
        // Our own (live) marker: another handle opening the repo leaves it alone.
        drop(Repo::open(dir.path()).unwrap());
        assert_eq!(markers(dir.path()), live);

        // The crash: the handle vanishes without syncing, one object is truncated, and the
        // marker now names a writer of another boot.
        std::mem::forget(repo);
        let bad_path = dir
            .path()
            .join(crate::layout::object_key(&bad, ObjectType::File));
        let len = fs::metadata(&bad_path).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&bad_path)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let state = dir.path().join("state");
        fs::rename(
            state.join(&live[0]),
            state.join(format!("{PREFIX}0000-other-boot-1234-0")),
        )
        .unwrap();

        // A marker of this boot whose process has exited is stale too.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let pid = gone.id();
        gone.wait().unwrap();
        fs::write(state.join(format!("{PREFIX}{}-{pid}-0", boot_id())), b"").unwrap();

        let repo = Repo::open(dir.path()).unwrap();
        assert!(markers(dir.path()).is_empty());
        assert!(!repo.has_object(&bad, ObjectType::File));
        assert!(repo.read_file(&good).is_ok());
        assert!(repo.read_file(&a).is_ok());
        // Writing the lost object again works.
        assert_eq!(
            write(&repo, b"written, then cut short by the power cut"),
            bad
        );
        assert!(repo.read_file(&bad).is_ok());
    }
}
