//! Which package owns each path of a commit, from the rpmdb the commit carries
//! (`usr/share/rpm` or `usr/lib/sysimage/rpm`), queried with the real `rpm`.

use std::collections::HashMap;
use std::fs;
use std::process::Command;

use arbor_repo::Repo;

use crate::tree::TreeIndex;
use crate::{ContainerError, IoAt, Result};

/// The rpmdb locations rpm-ostree and arbor use, in the commit.
const RPMDB_DIRS: [&str; 2] = ["usr/share/rpm", "usr/lib/sysimage/rpm"];

#[derive(Debug, Default)]
pub struct Owners {
    /// Commit path (`usr/bin/bash`, `usr/etc/passwd`) → package name.
    by_path: HashMap<String, String>,
    /// Packages, with the number of paths each owns.
    pub packages: usize,
}

impl Owners {
    /// Read the commit's rpmdb; a commit without one owns nothing (every file is
    /// "unpackaged").
    pub fn read(repo: &Repo, index: &TreeIndex) -> Result<Owners> {
        let Some(dbdir) = RPMDB_DIRS.iter().find(|d| {
            index
                .objects
                .values()
                .any(|o| o.paths.iter().any(|p| in_dir(p, d)))
        }) else {
            return Ok(Owners::default());
        };
        let tmp = tempfile::Builder::new()
            .prefix("arbor-rpmdb-")
            .tempdir()
            .at(std::env::temp_dir())?;
        let root = tmp.path();
        let target = root.join(dbdir);
        fs::create_dir_all(&target).at(&target)?;
        for (c, o) in &index.objects {
            for p in o.paths.iter().filter(|p| in_dir(p, dbdir)) {
                let (h, data) = repo.read_file(c)?;
                if h.is_symlink() {
                    continue;
                }
                let dest = root.join(p);
                fs::write(&dest, &data).at(&dest)?;
            }
        }
        let out = Command::new("rpm")
            .arg("--root")
            .arg(root)
            .args(["--dbpath", &format!("/{dbdir}")])
            .args(["-qa", "--qf", "[%{=NAME}\\t%{FILENAMES}\\n]"])
            .env("LC_ALL", "C")
            .output()
            .map_err(|e| ContainerError::Rpm(format!("cannot run rpm: {e}")))?;
        if !out.status.success() || String::from_utf8_lossy(&out.stderr).contains("error:") {
            return Err(ContainerError::Rpm(format!(
                "querying the rpmdb of commit {}: {}",
                index.checksum,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let mut by_path = HashMap::new();
        let mut names = std::collections::BTreeSet::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some((name, file)) = line.split_once('\t') else {
                continue;
            };
            names.insert(name.to_string());
            let Some(rel) = file.strip_prefix('/') else {
                continue;
            };
            let path = if rel == "etc" || rel.starts_with("etc/") {
                format!("usr/{rel}")
            } else {
                rel.to_string()
            };
            // A path several packages own goes to the first by name: stable.
            by_path
                .entry(path)
                .and_modify(|n: &mut String| {
                    if name < n.as_str() {
                        *n = name.to_string();
                    }
                })
                .or_insert_with(|| name.to_string());
        }
        Ok(Owners {
            by_path,
            packages: names.len(),
        })
    }

    /// The package owning a commit path. Files arbor moved (the kernel's `vmlinuz` into
    /// `usr/lib/modules/KVER/`) belong to the owner of their directory there.
    pub fn owner(&self, path: &str) -> Option<&str> {
        if let Some(n) = self.by_path.get(path) {
            return Some(n);
        }
        if let Some(rest) = path.strip_prefix("usr/lib/modules/") {
            if let Some((kver, _)) = rest.split_once('/') {
                return self
                    .by_path
                    .get(&format!("usr/lib/modules/{kver}"))
                    .map(String::as_str);
            }
        }
        None
    }
}

fn in_dir(p: &str, dir: &str) -> bool {
    p.strip_prefix(dir)
        .is_some_and(|r| r.starts_with('/') && !r[1..].contains('/'))
}
