//! From a plan to the exact package set: load the repositories, solve, and the
//! rpm-ostree lockfile format (`--write-lockfile-to`, `--lockfile`).

use std::path::Path;

use serde_json::{json, Value as Json};

use crate::plan::ComposePlan;
use crate::rpmmd::{self, FetchError, Http, LoadedRepo};
use crate::solve::{self, Lock, SolveError, SolveRequest, SolvedPackage};

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Solve(#[from] SolveError),
    #[error("lockfile {path}: {why}")]
    Lockfile { path: String, why: String },
}

/// The solver's answer and where it came from.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub repos: Vec<LoadedRepo>,
    /// Sorted by name.
    pub packages: Vec<SolvedPackage>,
}

/// A lockfile: one pin per package name.
pub type Lockfile = Vec<Lock>;

/// Parse rpm-ostree's lockfile JSON (`{"packages": {"name": {"evra": …, "digest": …}}}`).
pub fn parse_lockfile(path: &Path) -> Result<Lockfile, ResolveError> {
    let bad = |why: String| ResolveError::Lockfile {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let v: Json = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let pkgs = v
        .get("packages")
        .and_then(Json::as_object)
        .ok_or_else(|| bad("no \"packages\" object".into()))?;
    let mut out = Lockfile::new();
    for (name, p) in pkgs {
        let evra = p
            .get("evra")
            .and_then(Json::as_str)
            .ok_or_else(|| bad(format!("{name}: no \"evra\"")))?;
        let (evr, arch) = evra
            .rsplit_once('.')
            .ok_or_else(|| bad(format!("{name}: bad evra {evra:?}")))?;
        let evr = if evr.contains(':') {
            evr.to_string()
        } else {
            format!("0:{evr}")
        };
        let digest = match p.get("digest").and_then(Json::as_str) {
            None => None,
            Some(d) => match d.split_once(':') {
                Some((kind, hex)) if !hex.is_empty() => Some((kind.to_string(), hex.to_string())),
                _ => return Err(bad(format!("{name}: bad digest {d:?} (want TYPE:HEX)"))),
            },
        };
        out.push(Lock {
            name: name.clone(),
            evr,
            arch: arch.to_string(),
            digest,
        });
    }
    Ok(out)
}

/// rpm-ostree's lockfile JSON for a resolution.
pub fn lockfile_json(res: &Resolution) -> Json {
    let packages: serde_json::Map<String, Json> = res
        .packages
        .iter()
        .map(|p| {
            let mut e = json!({"evra": format!("{}.{}", p.evr(), p.arch)});
            if let Some((kind, sum)) = &p.checksum {
                e["digest"] = json!(format!("{kind}:{sum}"));
            }
            (p.name.clone(), e)
        })
        .collect();
    let repos: serde_json::Map<String, Json> = res
        .repos
        .iter()
        .map(|r| {
            let generated = r.repomd.timestamp.map(crate::time::rfc3339);
            (r.config.id.clone(), json!({"generated": generated}))
        })
        .collect();
    let now = crate::time::rfc3339(crate::time::default_timestamp());
    json!({"packages": packages, "metadata": {"generated": now, "rpmmd_repos": repos}})
}

/// Load the plan's repositories and solve its package request (pinned by `lock`).
pub fn resolve(
    plan: &ComposePlan,
    http: &Http,
    lock: Option<&Lockfile>,
    cache: Option<&Path>,
) -> Result<Resolution, ResolveError> {
    let mut req = SolveRequest {
        install: plan.packages.clone(),
        exclude: plan.exclude_packages.clone(),
        recommends: plan.recommends,
        arch: plan.basearch.clone(),
        ..Default::default()
    };
    for (repo, names) in &plan.repo_packages {
        for n in names {
            req.install.push(n.clone());
            req.pinned.push((repo.clone(), n.clone()));
        }
    }
    if let Some(lock) = lock {
        req.locked.extend(lock.iter().cloned());
    }
    let load = |filelists: bool| -> Result<Vec<LoadedRepo>, FetchError> {
        let mut repos = plan
            .repos
            .iter()
            .map(|r| rpmmd::load_repo(http, r, filelists, cache))
            .collect::<Result<Vec<_>, _>>()?;
        // `lockfile-repos` only serve packages a lockfile pins: without a lockfile
        // they are not read, with one they show only the pinned names.
        if let Some(lock) = lock {
            let pinned: Vec<String> = lock.iter().map(|l| glob_escape(&l.name)).collect();
            for r in &plan.lockfile_repos {
                if repos.iter().any(|l| l.config.id == r.id) {
                    continue;
                }
                let mut loaded = rpmmd::load_repo(http, r, filelists, cache)?;
                loaded.metadata.include_only = pinned.clone();
                repos.push(loaded);
            }
        }
        Ok(repos)
    };
    let repos = load(false)?;
    let metadata: Vec<_> = repos.iter().map(|r| r.metadata.clone()).collect();
    match solve::resolve(&metadata, &req) {
        Ok(packages) => Ok(Resolution { repos, packages }),
        // File dependencies beyond primary's short file list need filelists: retry.
        Err(e) if e.needs_filelists() => {
            let repos = load(true)?;
            let metadata: Vec<_> = repos.iter().map(|r| r.metadata.clone()).collect();
            let packages = solve::resolve(&metadata, &req)?;
            Ok(Resolution { repos, packages })
        }
        Err(e) => Err(e.into()),
    }
}

/// A package name as an fnmatch pattern matching only itself.
fn glob_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Lockfile entries are checked when the file is read; errors name the file and
    /// the entry.
    #[test]
    fn lockfile_entries_are_checked_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("lock.json");
        let write =
            |pkgs: &str| std::fs::write(&path, format!("{{\"packages\": {pkgs}}}")).unwrap();
        write(
            r#"{"a": {"evra": "1.0-1.x86_64", "digest": "sha256:ab"}, "b": {"evra": "2:3-4.noarch"}}"#,
        );
        let lock = parse_lockfile(&path).unwrap();
        assert_eq!(lock[0].evr, "0:1.0-1");
        assert_eq!(lock[0].digest, Some(("sha256".into(), "ab".into())));
        assert_eq!(
            (lock[1].evr.as_str(), lock[1].arch.as_str()),
            ("2:3-4", "noarch")
        );
        for (pkgs, want) in [
            (r#"{"a": {"evra": "noarch"}}"#, "a: bad evra"),
            (
                r#"{"a": {"evra": "1-1.x86_64", "digest": "nocolon"}}"#,
                "a: bad digest",
            ),
            (r#"{"a": {}}"#, "a: no \"evra\""),
        ] {
            write(pkgs);
            let e = parse_lockfile(&path).unwrap_err().to_string();
            assert!(e.contains("lock.json") && e.contains(want), "{e}");
        }
    }

    /// A file:// repository with one package per (name, version, requires).
    fn repo_dir(dir: &Path, id: &str, pkgs: &[(&str, &str, &str)]) -> crate::plan::RepoConfig {
        let mut x = String::from(
            "<metadata xmlns=\"http://linux.duke.edu/metadata/common\" \
             xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\">\n",
        );
        for (name, ver, requires) in pkgs {
            let req = if requires.is_empty() {
                String::new()
            } else {
                format!("<rpm:requires><rpm:entry name=\"{requires}\"/></rpm:requires>")
            };
            x.push_str(&format!(
                "<package type=\"rpm\"><name>{name}</name><arch>x86_64</arch>\
                 <version epoch=\"0\" ver=\"{ver}\" rel=\"1\"/>\
                 <checksum type=\"sha256\" pkgid=\"YES\">{}</checksum>\
                 <location href=\"{name}.rpm\"/><format><rpm:provides>\
                 <rpm:entry name=\"{name}\" flags=\"EQ\" epoch=\"0\" ver=\"{ver}\" rel=\"1\"/>\
                 </rpm:provides>{req}</format></package>\n",
                "ab".repeat(32)
            ));
        }
        x.push_str("</metadata>\n");
        let d = dir.join(id);
        std::fs::create_dir_all(d.join("repodata")).unwrap();
        std::fs::write(d.join("repodata/primary.xml"), &x).unwrap();
        std::fs::write(
            d.join("repodata/repomd.xml"),
            format!(
                "<repomd><data type=\"primary\"><checksum type=\"sha256\">{}</checksum>\
                 <location href=\"repodata/primary.xml\"/></data></repomd>",
                rpmmd::digest("sha256", x.as_bytes()).unwrap()
            ),
        )
        .unwrap();
        crate::plan::RepoConfig {
            id: id.into(),
            baseurls: vec![format!("file://{}", d.display())],
            ..Default::default()
        }
    }

    /// `lockfile-repos` serve only what a lockfile pins, and nothing without one.
    #[test]
    fn lockfile_repos_serve_pinned_packages_only() {
        let d = tempfile::tempdir().unwrap();
        let plan = ComposePlan {
            basearch: "x86_64".into(),
            packages: vec!["a".into()],
            recommends: true,
            repos: vec![repo_dir(d.path(), "main", &[("a", "1", "b")])],
            lockfile_repos: vec![repo_dir(
                d.path(),
                "pool",
                &[("a", "9", ""), ("b", "2", ""), ("c", "1", "")],
            )],
            ..Default::default()
        };
        let http = Http::default();
        let e = resolve(&plan, &http, None, None).unwrap_err().to_string();
        assert!(
            e.contains('b'),
            "without a lockfile the pool is not read: {e}"
        );
        let lock = vec![Lock {
            name: "b".into(),
            evr: "0:2-1".into(),
            arch: "x86_64".into(),
            digest: None,
        }];
        let res = resolve(&plan, &http, Some(&lock), None).unwrap();
        let got: Vec<(String, String)> = res
            .packages
            .iter()
            .map(|p| (p.nevra(), p.repo.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("a-1-1.x86_64".to_string(), "main".to_string()),
                ("b-2-1.x86_64".to_string(), "pool".to_string())
            ],
            "a-9 in the pool is not pinned, so not seen"
        );
    }
}
