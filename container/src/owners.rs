//! Which package owns each path of a commit, from the rpmdb the commit carries
//! (`usr/share/rpm` or `usr/lib/sysimage/rpm`), queried with the real `rpm`, and which
//! packages were built together.
//!
//! Packages of one build (the subpackages of one source package: `libssl3` and `openssl`,
//! `perl` and `libperl5.36`) are updated together, so chunking keeps them in one layer, as
//! ostree-ext does with rpm-ostree's source ids. Two packages are of one build when they
//! name the same source package (`SOURCERPM`), or when they carry the same build time and
//! version-release — what every subpackage of one rpmbuild run has, also where each package
//! names a source of its own (converted packages). A wrong guess costs layer reuse, never
//! correctness.

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
    /// Package → the build it belongs to (named by its alphabetically first package, so the
    /// name stays put across versions).
    builds: HashMap<String, String>,
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
            .args([
                "-qa",
                "--qf",
                "[%{=NAME}\\t%{=SOURCERPM}\\t%{=BUILDTIME}\\t%{=VERSION}-%{=RELEASE}\\t%{FILENAMES}\\n]",
            ])
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
        let mut builds = Builds::default();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut f = line.splitn(5, '\t');
            let (Some(name), Some(srpm), Some(buildtime), Some(vr), Some(file)) =
                (f.next(), f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            if names.insert(name.to_string()) {
                builds.add(name, srpm, buildtime, vr);
            }
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
            builds: builds.resolve(),
            packages: names.len(),
        })
    }

    /// The build a package belongs to (its own name when nothing is known).
    pub fn build<'a>(&'a self, package: &'a str) -> &'a str {
        self.builds.get(package).map_or(package, String::as_str)
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

/// Packages joined into builds (union-find over the two keys that identify a build).
#[derive(Default)]
struct Builds {
    names: Vec<String>,
    parent: Vec<usize>,
    by_key: HashMap<String, usize>,
}

impl Builds {
    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.parent[a.max(b)] = a.min(b);
        }
    }

    fn add(&mut self, name: &str, srpm: &str, buildtime: &str, vr: &str) {
        let i = self.names.len();
        self.names.push(name.to_string());
        self.parent.push(i);
        let mut keys = Vec::new();
        if let Some(source) = source_name(srpm) {
            keys.push(format!("source {source}"));
        }
        if buildtime.bytes().all(|b| b.is_ascii_digit()) && !buildtime.is_empty() {
            keys.push(format!("build {buildtime} {vr}"));
        }
        for k in keys {
            match self.by_key.get(&k) {
                Some(&j) => self.join(i, j),
                None => {
                    self.by_key.insert(k, i);
                }
            }
        }
    }

    fn resolve(mut self) -> HashMap<String, String> {
        let mut first: HashMap<usize, String> = HashMap::new();
        for i in 0..self.names.len() {
            let r = self.find(i);
            let e = first.entry(r).or_insert_with(|| self.names[i].clone());
            if self.names[i] < *e {
                *e = self.names[i].clone();
            }
        }
        (0..self.names.len())
            .map(|i| {
                let r = self.find(i);
                (self.names[i].clone(), first[&r].clone())
            })
            .collect()
    }
}

/// `openssl-3.0.11-1.fc39.src.rpm` → `openssl`; `(none)` → None.
fn source_name(srpm: &str) -> Option<&str> {
    let nvr = srpm
        .strip_suffix(".src.rpm")
        .or_else(|| srpm.strip_suffix(".nosrc.rpm"))?;
    let (nv, _release) = nvr.rsplit_once('-')?;
    let (n, _version) = nv.rsplit_once('-')?;
    (!n.is_empty()).then_some(n)
}

fn in_dir(p: &str, dir: &str) -> bool {
    p.strip_prefix(dir)
        .is_some_and(|r| r.starts_with('/') && !r[1..].contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names() {
        assert_eq!(
            source_name("openssl-3.0.11-1.fc39.src.rpm"),
            Some("openssl")
        );
        assert_eq!(
            source_name("perl-Foo-Bar-1.2-3.nosrc.rpm"),
            Some("perl-Foo-Bar")
        );
        assert_eq!(source_name("(none)"), None);
        assert_eq!(source_name("-1-2.src.rpm"), None);
        assert_eq!(source_name("x.src.rpm"), None);
    }

    #[test]
    fn builds_join_by_source_and_by_build_time() {
        let mut b = Builds::default();
        // Fedora: one source, subpackages.
        b.add("openssl-libs", "openssl-3.0-1.src.rpm", "100", "3.0-1");
        b.add("openssl", "openssl-3.0-1.src.rpm", "100", "3.0-1");
        // Converted: each names itself, one build time and version-release.
        b.add("libperl5.36", "libperl5.36-5.36-2.src.rpm", "200", "5.36-2");
        b.add("perl", "perl-5.36-2.src.rpm", "200", "5.36-2");
        b.add("perl-base", "perl-base-5.36-2.src.rpm", "200", "5.36-2");
        // Same time, other version: another build.
        b.add("zlib", "zlib-1.3-1.src.rpm", "200", "1.3-1");
        b.add("bare", "(none)", "(none)", "(none)-(none)");
        let g = b.resolve();
        assert_eq!(g["openssl-libs"], "openssl");
        assert_eq!(g["openssl"], "openssl");
        assert_eq!(g["perl"], "libperl5.36");
        assert_eq!(g["perl-base"], "libperl5.36");
        assert_eq!(g["zlib"], "zlib");
        assert_eq!(g["bare"], "bare");
    }
}
