//! The rpmdb of a composed tree, written by the real `rpm --justdb` (the target's own
//! format, sqlite), reproducibly: the same packages give the same bytes.
//!
//! - Every compose writes it anew from the RPM files (concurrently with the import), in
//!   rpm's own install order over the packages given by name: an rpmdb updated in place
//!   would differ from one written cold (rows and pages land elsewhere).
//! - Install times and the transaction id come from `SOURCE_DATE_EPOCH` (the commit's
//!   timestamp), which rpm 4.18 honours: the transaction id is the timestamp, and install
//!   times step one second per package from it, in install order (rpm's own handling;
//!   reproducible all the same); rpm runs with `LC_ALL=C`, `TZ=UTC`, umask 022.
//! - sqlite's transient files stay out of the tree: rpm checkpoints and empties the WAL
//!   when it closes; the database is then switched to sqlite's rollback-journal format
//!   (header bytes 18-19, as `PRAGMA journal_mode=DELETE` does), so that a read-only
//!   checkout can be queried (`rpm --root CHECKOUT -qa`) by any user without a `-shm`.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use arbor_repo::store::{CommitDirOpts, CommitStats};
use arbor_repo::tree::MutableTree;
use arbor_repo::{DirMeta, Repo};

use crate::assemble::AssembleError;
use crate::rpmmd::FetchedRpm;

type Result<T> = std::result::Result<T, AssembleError>;

/// `rpm` with a fixed umask, locale and time zone, and `SOURCE_DATE_EPOCH`.
fn rpm(root: &Path, timestamp: u64) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "umask 022 && exec rpm \"$@\"", "rpm", "--root"])
        .arg(root)
        .args(["--dbpath", "/usr/share/rpm"])
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .env("SOURCE_DATE_EPOCH", timestamp.to_string());
    c
}

fn run_rpm(mut c: Command) -> Result<String> {
    let out = c
        .output()
        .map_err(|e| AssembleError::Rpmdb(format!("cannot run rpm: {e}")))?;
    if !out.status.success() {
        return Err(AssembleError::Rpmdb(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the rpmdb under `root` lists, sorted, as `name-[epoch:]version-release.arch`
/// with the epoch only when non-zero — the form [`FetchedRpm::nevra`] has (rpm's own
/// `%{NEVRA}` prints `0:` for a package whose header carries `Epoch: 0`).
pub fn rpm_qa(root: &Path) -> Result<Vec<String>> {
    let mut c = rpm(root, 0);
    c.args(["-qa", "--qf", "%{NEVRA}\\n"]);
    let mut listed: Vec<String> = run_rpm(c)?
        .lines()
        // Names cannot hold ':', so "-0:" can only be a zero epoch.
        .map(|l| l.replacen("-0:", "-", 1))
        .collect();
    listed.sort();
    Ok(listed)
}

/// A root holding a freshly written `usr/share/rpm`; removed on drop.
#[derive(Debug)]
pub struct RpmdbDir {
    tmp: PathBuf,
}

impl Drop for RpmdbDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

/// Write the rpmdb of `rpms` (by NEVRA order; rpm orders them as it installs) with
/// install times from `timestamp`.
pub fn build_rpmdb(repo: &Repo, rpms: &[FetchedRpm], timestamp: u64) -> Result<RpmdbDir> {
    let dir = RpmdbDir {
        tmp: repo
            .path()
            .join("tmp")
            .join(format!("arbor-rpmdb-{}", std::process::id())),
    };
    let _ = fs::remove_dir_all(&dir.tmp);
    fs::create_dir_all(&dir.tmp)
        .map_err(|e| AssembleError::Rpmdb(format!("{}: {e}", dir.tmp.display())))?;
    if rpms.is_empty() {
        return Ok(dir);
    }
    let mut sorted: Vec<&FetchedRpm> = rpms.iter().collect();
    sorted.sort_by(|a, b| a.nevra.cmp(&b.nevra));
    let mut c = rpm(&dir.tmp, timestamp);
    c.args(["--justdb", "--nodeps", "--noscripts", "--notriggers", "-i"])
        .args(["--nosignature", "--nodigest", "--ignorearch", "--ignoreos"])
        .arg("--replacepkgs")
        .args(sorted.iter().map(|r| &r.path));
    run_rpm(c)?;
    Ok(dir)
}

/// Turn a closed sqlite database from WAL to rollback-journal mode and drop its
/// transient files (`-wal`, empty after rpm's checkpoint; `-shm`) and rpm's lock file.
fn settle(db_dir: &Path) -> Result<()> {
    let err = |p: &Path, e: std::io::Error| AssembleError::Rpmdb(format!("{}: {e}", p.display()));
    let db = db_dir.join("rpmdb.sqlite");
    if !db.is_file() {
        return Ok(());
    }
    let wal = db_dir.join("rpmdb.sqlite-wal");
    if fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0 {
        return Err(AssembleError::Rpmdb(format!(
            "{}: rpm left an unflushed write-ahead log",
            wal.display()
        )));
    }
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&db)
        .map_err(|e| err(&db, e))?;
    let mut header = [0u8; 20];
    f.read_exact(&mut header).map_err(|e| err(&db, e))?;
    if &header[..16] != b"SQLite format 3\0" {
        return Err(AssembleError::Rpmdb(format!(
            "{}: not an sqlite database",
            db.display()
        )));
    }
    // Bytes 18 and 19: file format write and read versions, 2 for WAL, 1 for legacy.
    if header[18..20] == [2, 2] {
        f.seek(SeekFrom::Start(18)).map_err(|e| err(&db, e))?;
        f.write_all(&[1, 1]).map_err(|e| err(&db, e))?;
    }
    drop(f);
    for transient in ["rpmdb.sqlite-wal", "rpmdb.sqlite-shm", ".rpm.lock"] {
        let p = db_dir.join(transient);
        if p.exists() {
            fs::remove_file(&p).map_err(|e| err(&p, e))?;
        }
    }
    Ok(())
}

impl RpmdbDir {
    /// Store the database's files (0644, root-owned, in a 0755 directory, whatever the
    /// umask) and return the tree of `usr/share/rpm`.
    pub fn commit(self, repo: &Repo) -> Result<MutableTree> {
        let db = self.tmp.join("usr/share/rpm");
        fs::create_dir_all(&db)
            .map_err(|e| AssembleError::Rpmdb(format!("{}: {e}", db.display())))?;
        settle(&db)?;
        for e in fs::read_dir(&db).map_err(|e| AssembleError::Rpmdb(e.to_string()))? {
            let p = e.map_err(|e| AssembleError::Rpmdb(e.to_string()))?.path();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644))
                .map_err(|e| AssembleError::Rpmdb(format!("{}: {e}", p.display())))?;
        }
        let stats = CommitStats::default();
        let opts = CommitDirOpts {
            owner_uid: Some(0),
            owner_gid: Some(0),
            no_xattrs: true,
            ..Default::default()
        };
        let (dt, dm) =
            repo.write_directory(&db, &opts, &arbor_repo::progress::NoProgress, &stats)?;
        let mut dbtree = repo.load_mtree(&dt, &dm)?;
        dbtree.meta = DirMeta {
            uid: 0,
            gid: 0,
            mode: arbor_repo::objects::S_IFDIR | 0o755,
            xattrs: Default::default(),
        };
        Ok(dbtree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn package(dir: &Path, name: &str, version: &str) -> FetchedRpm {
        let mut b = rpm::PackageBuilder::new(name, version, "MIT", "x86_64", "test");
        b.release("1");
        if name == "a" {
            // An explicit `Epoch: 0`, which rpm's %{NEVRA} prints as "a-0:1.0-1".
            b.epoch(0);
        }
        let pkg = b.build().unwrap();
        let path = dir.join(format!("{name}-{version}.rpm"));
        pkg.write_file(&path).unwrap();
        let sha = Sha256::digest(fs::read(&path).unwrap());
        FetchedRpm {
            downloaded: false,
            nevra: format!("{name}-{version}-1.x86_64"),
            path,
            sha256: sha.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// The same packages give the same database bytes (whatever order they come in),
    /// with no sqlite transient file, queryable read-only.
    #[test]
    fn rpmdb_is_reproducible_and_settled() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repo::init(&tmp.path().join("repo")).unwrap();
        let a = package(tmp.path(), "a", "1.0");
        let b = package(tmp.path(), "b", "2.0");
        let one = build_rpmdb(&repo, &[a.clone(), b.clone()], 1_704_067_200).unwrap();
        assert_eq!(
            rpm_qa(&one.tmp).unwrap(),
            ["a-1.0-1.x86_64", "b-2.0-1.x86_64"]
        );
        let t1 = one.commit(&repo).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let two = build_rpmdb(&repo, &[b, a], 1_704_067_200).unwrap();
        let t2 = two.commit(&repo).unwrap();
        assert_eq!(t1, t2, "same packages, same timestamp: same rpmdb");
        assert_eq!(
            t1.files.keys().collect::<Vec<_>>(),
            ["rpmdb.sqlite"],
            "no -wal, -shm or lock file"
        );
    }
}
