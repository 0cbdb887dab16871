//! What the import needs from the package set before it can import: the users database
//! that maps RPM owner names to ids (from the package that ships `/etc/passwd`), and,
//! with `selinux: true`, the SELinux policy that labels every file (from the packages
//! that ship `/etc/selinux/config` and the policy's `file_contexts`, when they make a
//! whole policy without scriptlets). Those packages are
//! imported first, unlabeled and root-owned (cached like any import), and the files read
//! from their trees.

use std::path::Path;
use std::sync::Arc;

use arbor_repo::tree::{MutableTree, TreeEntry};
use arbor_repo::{Checksum, Repo};

use crate::compose::ComposeError;
use crate::import::{self, ImportOpts, Users};
use crate::rpmmd::FetchedRpm;
use crate::selinux::{Labeler, Policy};

/// Whether a package path is one the bootstrap reads.
fn wanted(path: &str, selinux: bool) -> bool {
    path == "/etc/passwd"
        || path == "/etc/group"
        || (selinux
            && (path == "/etc/selinux/config"
                || (path.starts_with("/etc/selinux/")
                    && path.contains("/contexts/files/file_contexts"))))
}

/// The packages' users database and, when `selinux`, a labeler for their policy.
pub fn bootstrap(
    repo: &Repo,
    rpms: &[FetchedRpm],
    cachedir: &Path,
    selinux: bool,
) -> Result<(Users, Option<Arc<Labeler>>), ComposeError> {
    let t = std::time::Instant::now();
    // (RPM, its tree) of every package that ships one of the files.
    let mut trees: Vec<(String, MutableTree)> = Vec::new();
    for r in rpms {
        let meta = import::read_header(&r.path)?;
        let Ok(paths) = meta.get_file_paths() else {
            continue;
        };
        if !paths.iter().any(|p| wanted(&p.to_string_lossy(), selinux)) {
            continue;
        }
        let (pkg, _) = import::import_rpm_known(
            repo,
            &r.path,
            &ImportOpts::default(),
            &Users::root_only(),
            Some(cachedir),
            Checksum::from_hex(&r.sha256).ok().as_ref(),
        )?;
        trees.push((r.nevra.clone(), pkg.tree));
    }
    tracing::debug!(
        "bootstrap: {} packages read and imported in {:.3}s",
        trees.len(),
        t.elapsed().as_secs_f64()
    );
    // A file of the package set (`etc/...`, as packages ship it).
    let read = |path: &str| -> Option<(String, Vec<u8>)> {
        let tree_path = format!("usr/{path}");
        trees
            .iter()
            .find_map(|(nevra, t)| match t.lookup(&tree_path) {
                Some(TreeEntry::File(c)) => repo
                    .read_file(c)
                    .ok()
                    .filter(|(h, _)| !h.is_symlink())
                    .map(|(_, b)| (nevra.clone(), b)),
                _ => None,
            })
    };
    let users = match (read("etc/passwd"), read("etc/group")) {
        (Some((nevra, passwd)), group) => {
            let group = group.map(|(_, g)| g).unwrap_or_default();
            Users::parse(
                &String::from_utf8_lossy(&passwd),
                &String::from_utf8_lossy(&group),
            )
            .map_err(|e| ComposeError::Other(format!("{nevra}: /etc/passwd or /etc/group: {e}")))?
        }
        _ => {
            tracing::warn!("no package ships /etc/passwd: every file is owned by root");
            Users::root_only()
        }
    };
    // The packages' policy labels the import; when the packages alone do not make a
    // policy (scriptlets write /etc/selinux/config, say), every file is labeled at the
    // end instead, from the tree's policy then (an error if it has none).
    let labeler = match selinux.then(|| Policy::find(&|p| read(p).map(|(_, b)| b))) {
        Some(Ok(policy)) => {
            let t = std::time::Instant::now();
            let l = open_labeler(&policy, cachedir)?;
            tracing::debug!(
                "selinux: policy {} opened in {:.3}s",
                policy.name,
                t.elapsed().as_secs_f64()
            );
            Some(Arc::new(l))
        }
        Some(Err(e)) => {
            tracing::info!(
                "selinux: the packages alone give no policy ({e}); labeling after the scriptlets"
            );
            None
        }
        None => None,
    };
    Ok((users, labeler))
}

/// A labeler for `policy`, its files written to a scratch directory of the cache
/// (libselinux reads them when it opens them).
pub fn open_labeler(policy: &Policy, cachedir: &Path) -> Result<Labeler, ComposeError> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = cachedir.join("tmp").join(format!(
        "selinux-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let l = Labeler::open(policy, &dir);
    if l.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    l.map_err(|e| ComposeError::Other(format!("selinux: {e}")))
}
