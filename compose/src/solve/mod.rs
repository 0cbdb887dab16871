//! Dependency resolution with libsolv, the solver dnf uses: [`resolve`] takes repodata
//! bytes and a request and returns the packages to install. This module is the
//! resolution policy (what the solver may see, which jobs it gets, how problems are
//! reported); the libsolv calls, and every `unsafe` block, are in the `ffi` submodule.
//!
//! dnf semantics reproduced: requests match names, provides (incl. versioned
//! `'foo >= 1'`), `name.arch` and file paths; a request for a package that another
//! available package obsoletes installs the obsoleter (dnf's `obsoletes=True`);
//! `recommends: false` ignores weak deps; excluded packages are invisible to the solver.

mod ffi;

use std::ffi::CString;

// libsolv's flag constants only; every call goes through `ffi`.
use libsolv_sys::ffi as sys;

use ffi::{fnmatch, Id, Pool, Queue, Solver};

#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    #[error("no package provides {0:?} in the enabled repositories")]
    NotFound(String),
    #[error("package {0:?} is both requested and in exclude-packages")]
    RequestedAndExcluded(String),
    #[error("dependency resolution failed:\n{}", .lines.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Problems {
        lines: Vec<String>,
        /// A rule involved a file dependency (`/usr/bin/x`): filelists may resolve it.
        file_deps: bool,
    },
    #[error("libsolv could not load the {what} metadata of repository {repo}: {why}")]
    Load {
        repo: String,
        what: &'static str,
        why: String,
    },
    #[error("{cause}\nthe lockfile pins builds that no enabled repository has:\n{}", .pins.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    LockUnavailable {
        pins: Vec<String>,
        cause: Box<SolveError>,
    },
    #[error("libsolv: {0}")]
    Internal(String),
}

impl SolveError {
    /// The error names a file path dnf would look up in filelists.
    pub fn needs_filelists(&self) -> bool {
        match self {
            SolveError::Problems { file_deps, .. } => *file_deps,
            SolveError::NotFound(n) => n.starts_with('/'),
            SolveError::LockUnavailable { cause, .. } => cause.needs_filelists(),
            _ => false,
        }
    }
}

/// One repository's decompressed rpm-md metadata.
#[derive(Debug, Clone)]
pub struct RepoMetadata {
    pub id: String,
    pub primary_xml: Vec<u8>,
    /// Needed when a dependency names a file outside primary's short file list.
    pub filelists_xml: Option<Vec<u8>>,
    /// dnf's repo `priority`: lower wins (default 99).
    pub priority: i32,
    /// Name globs hidden from this repo (`exclude`), and, when not empty, the only
    /// names it shows (`includepkgs`).
    pub exclude: Vec<String>,
    pub include_only: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SolveRequest {
    /// Names, provides (`'foo >= 1.2'`), `name.arch` or file paths.
    pub install: Vec<String>,
    /// Package names the solver must not see.
    pub exclude: Vec<String>,
    /// Install weak dependencies (Recommends/Supplements).
    pub recommends: bool,
    /// Base architecture (`x86_64`); noarch is always allowed.
    pub arch: String,
    /// Lockfile pins; other builds of a pinned name are invisible.
    pub locked: Vec<Lock>,
    /// `repo-packages`: (repo id, name); that name is only taken from that repo.
    pub pinned: Vec<(String, String)>,
}

/// A lockfile pin: this name only in this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub name: String,
    /// `epoch:version-release`
    pub evr: String,
    pub arch: String,
    /// (checksum type, hex) the package's repodata checksum must equal.
    pub digest: Option<(String, String)>,
}

impl Lock {
    fn admits(&self, p: &SolvedPackage) -> bool {
        p.evr() == self.evr
            && p.arch == self.arch
            && match (&self.digest, &p.checksum) {
                // As rpm-ostree: the whole `type:hex` must be the repodata's.
                (Some((k, want)), Some((pk, have))) => k == pk && want == have,
                (Some(_), None) => false,
                (None, _) => true,
            }
    }

    fn describe(&self) -> String {
        let d = self
            .digest
            .as_ref()
            .map(|(k, v)| format!(" ({k}:{v})"))
            .unwrap_or_default();
        format!("{}-{}.{}{d}", self.name, self.evr, self.arch)
    }
}

/// The spellings dnf matches a package glob against (`exclude=`, `includepkgs=`):
/// name, name.arch, name-version, name-version-release, name-version-release.arch,
/// and the same with the epoch. `evr` is libsolv's (`[E:]V-R`).
fn nevra_forms(name: &str, evr: &str, arch: &str) -> Vec<CString> {
    let (e, v, r) = split_evr(evr);
    [
        name.to_string(),
        format!("{name}.{arch}"),
        format!("{name}-{v}"),
        format!("{name}-{v}-{r}"),
        format!("{name}-{v}-{r}.{arch}"),
        format!("{name}-{e}:{v}-{r}"),
        format!("{name}-{e}:{v}-{r}.{arch}"),
    ]
    .into_iter()
    .filter_map(|f| CString::new(f).ok())
    .collect()
}

/// A package chosen by the solver.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SolvedPackage {
    pub name: String,
    pub epoch: u64,
    pub version: String,
    pub release: String,
    pub arch: String,
    /// Repository id it comes from.
    pub repo: String,
    /// `location href` relative to the repository base URL.
    pub location: String,
    /// (checksum type, hex) from the repodata, e.g. ("sha256", "ab…").
    pub checksum: Option<(String, String)>,
    pub download_size: u64,
}

impl SolvedPackage {
    /// rpm's `%{NEVRA}`: `name-[epoch:]version-release.arch`, epoch only when non-zero.
    pub fn nevra(&self) -> String {
        if self.epoch == 0 {
            format!(
                "{}-{}-{}.{}",
                self.name, self.version, self.release, self.arch
            )
        } else {
            format!(
                "{}-{}:{}-{}.{}",
                self.name, self.epoch, self.version, self.release, self.arch
            )
        }
    }

    /// `epoch:version-release` with the epoch always present.
    pub fn evr(&self) -> String {
        format!("{}:{}-{}", self.epoch, self.version, self.release)
    }
}

/// Split a libsolv EVR (`[E:]V-R`) into (epoch, version, release).
pub fn split_evr(evr: &str) -> (u64, String, String) {
    let (epoch, rest) = match evr.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(0), r)
        }
        _ => (0, evr),
    };
    match rest.rsplit_once('-') {
        Some((v, r)) => (epoch, v.to_string(), r.to_string()),
        None => (epoch, rest.to_string(), String::new()),
    }
}

/// The [`SolvedPackage`] for solvable `id`; `repos` in the order they were added.
fn describe(pool: &Pool, id: Id, repos: &[RepoMetadata]) -> Result<SolvedPackage, SolveError> {
    let s = pool.solvable(id)?;
    let (epoch, version, release) = split_evr(&s.evr());
    Ok(SolvedPackage {
        name: s.name(),
        epoch,
        version,
        release,
        arch: s.arch(),
        repo: s
            .repo_index()
            .and_then(|i| repos.get(i))
            .map(|r| r.id.clone())
            .unwrap_or_default(),
        location: s.location(),
        checksum: s.checksum(),
        download_size: s.download_size(),
    })
}

/// Resolve `req` against `repos`; the result is sorted by name.
pub fn resolve(
    repos: &[RepoMetadata],
    req: &SolveRequest,
) -> Result<Vec<SolvedPackage>, SolveError> {
    for name in &req.install {
        if req.exclude.iter().any(|e| e == name) {
            return Err(SolveError::RequestedAndExcluded(name.clone()));
        }
    }
    let mut pool = Pool::new(&req.arch)?;
    // Added in order: a package's repo index is its position in `repos`.
    for r in repos {
        // libsolv prefers higher priorities, dnf lower ones.
        pool.add_repo(
            &r.id,
            -r.priority,
            &r.primary_xml,
            r.filelists_xml.as_deref(),
        )?;
    }
    pool.create_whatprovides();
    let repo_filtered = repos
        .iter()
        .any(|r| !r.exclude.is_empty() || !r.include_only.is_empty());
    let mut unavailable_locks = Vec::new();
    if !req.exclude.is_empty() || !req.locked.is_empty() || !req.pinned.is_empty() || repo_filtered
    {
        // Packages the solver must not see: excluded, other builds of a locked name,
        // a pinned name from another repo, and what the repos' own filters hide.
        let mut hidden: Vec<Id> = Vec::new();
        for name in &req.exclude {
            hidden.extend(pool.by_name(name));
        }
        for lock in &req.locked {
            let builds = pool.by_name(&lock.name);
            let mut admitted = false;
            for &id in &builds {
                if lock.admits(&describe(&pool, id, repos)?) {
                    admitted = true;
                } else {
                    hidden.push(id);
                }
            }
            if !builds.is_empty() && !admitted {
                unavailable_locks.push(lock.describe());
            }
        }
        for (repo, name) in &req.pinned {
            for id in pool.by_name(name) {
                if describe(&pool, id, repos)?.repo != *repo {
                    hidden.push(id);
                }
            }
        }
        if repo_filtered {
            // Globs as C strings once per repository (by repo index); unfiltered
            // repositories have none.
            let cglobs = |g: &[String]| -> Vec<CString> {
                g.iter()
                    .filter_map(|x| CString::new(x.as_str()).ok())
                    .collect()
            };
            let filters: Vec<Option<(Vec<CString>, Vec<CString>)>> = repos
                .iter()
                .map(|r| {
                    (!r.exclude.is_empty() || !r.include_only.is_empty())
                        .then(|| (cglobs(&r.exclude), cglobs(&r.include_only)))
                })
                .collect();
            for s in pool.solvables() {
                let Some((exclude, include_only)) = s
                    .repo_index()
                    .and_then(|i| filters.get(i))
                    .and_then(Option::as_ref)
                else {
                    continue;
                };
                let forms = nevra_forms(&s.name(), &s.evr(), &s.arch());
                let matches =
                    |globs: &[CString]| globs.iter().any(|g| forms.iter().any(|f| fnmatch(g, f)));
                if matches(exclude) || (!include_only.is_empty() && !matches(include_only)) {
                    hidden.push(s.id());
                }
            }
        }
        pool.set_considered(&hidden)?;
    }
    let with_locks = |e: SolveError| match e {
        e @ (SolveError::Problems { .. } | SolveError::NotFound(_))
            if !unavailable_locks.is_empty() =>
        {
            SolveError::LockUnavailable {
                pins: unavailable_locks.clone(),
                cause: Box::new(e),
            }
        }
        e => e,
    };

    let mut jobs = Queue::new();
    for spec in &req.install {
        let flags = sys::SELECTION_NAME
            | sys::SELECTION_PROVIDES
            | sys::SELECTION_REL
            | sys::SELECTION_DOTARCH
            | if spec.starts_with('/') {
                sys::SELECTION_FILELIST
            } else {
                0
            };
        let sel = pool.select(spec, flags)?;
        if sel.as_slice().is_empty() {
            return Err(with_locks(SolveError::NotFound(spec.clone())));
        }
        // dnf installs the obsoleter of a requested package name instead of it.
        let named = pool.by_name(spec);
        let mut obsoleters: Vec<Id> = Vec::new();
        for &n in &named {
            obsoleters.extend(pool.obsoleters_of(n)?);
        }
        if !obsoleters.is_empty() {
            let cands: Vec<Id> = named.iter().chain(obsoleters.iter()).copied().collect();
            let what = pool.one_of(&cands)?;
            jobs.push2(
                (sys::SOLVER_SOLVABLE_ONE_OF | sys::SOLVER_INSTALL) as Id,
                what,
            );
            continue;
        }
        for pair in sel.as_slice().chunks(2) {
            jobs.push2(pair[0] | sys::SOLVER_INSTALL as Id, pair[1]);
        }
    }

    let mut solver = Solver::new(&pool)?;
    if !req.recommends {
        solver.set_flag(sys::SOLVER_FLAG_IGNORE_RECOMMENDED, true);
    }
    solver.set_flag(sys::SOLVER_FLAG_BEST_OBEY_POLICY, true);
    if solver.solve(&mut jobs) > 0 {
        // The summary line, then every rule involved (as dnf prints them).
        let mut problems: Vec<String> = Vec::new();
        let mut file_deps = false;
        for problem in solver.problems() {
            problems.push(problem.summary);
            for rule in problem.rules {
                if rule.dep.is_some_and(|d| d.starts_with('/')) {
                    file_deps = true;
                }
                if !rule.text.is_empty() && !problems.contains(&rule.text) {
                    problems.push(rule.text);
                }
            }
        }
        return Err(with_locks(SolveError::Problems {
            lines: problems,
            file_deps,
        }));
    }
    for pin in &unavailable_locks {
        tracing::warn!("lockfile: no enabled repository has {pin}; resolved without it");
    }
    let mut out = solver
        .decisions()
        .into_iter()
        .filter(|&d| d > sys::SYSTEMSOLVABLE as Id)
        .map(|d| describe(&pool, d, repos))
        .collect::<Result<Vec<_>, _>>()?;
    drop(solver);
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evr_split() {
        assert_eq!(
            split_evr("2:1.2^git-3~beta"),
            (2, "1.2^git".into(), "3~beta".into())
        );
        assert_eq!(split_evr("1.0-1"), (0, "1.0".into(), "1".into()));
    }

    fn primary(pkgs: &[(&str, &str, &[&str])]) -> Vec<u8> {
        let mut x = String::from(
            "<?xml version=\"1.0\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" \
             xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"1\">\n",
        );
        for (name, ver, requires) in pkgs {
            x.push_str(&format!(
                "<package type=\"rpm\"><name>{name}</name><arch>x86_64</arch>\
                 <version epoch=\"0\" ver=\"{ver}\" rel=\"1\"/>\
                 <checksum type=\"sha256\" pkgid=\"YES\">{}</checksum>\
                 <location href=\"Packages/{name}-{ver}-1.x86_64.rpm\"/><format>\
                 <rpm:provides><rpm:entry name=\"{name}\" flags=\"EQ\" epoch=\"0\" ver=\"{ver}\" rel=\"1\"/></rpm:provides>\
                 <rpm:requires>{}</rpm:requires></format></package>\n",
                "ab".repeat(32),
                requires.iter().map(|r| format!("<rpm:entry name=\"{r}\"/>")).collect::<String>()
            ));
        }
        x.push_str("</metadata>\n");
        x.into_bytes()
    }

    #[test]
    fn resolves_and_reports_problems() {
        let repo = RepoMetadata {
            id: "t".into(),
            priority: 99,
            exclude: vec![],
            include_only: vec![],
            primary_xml: primary(&[
                ("a", "1", &["b"]),
                ("b", "2", &[]),
                ("c", "1", &["missing"]),
            ]),
            filelists_xml: None,
        };
        let req = SolveRequest {
            install: vec!["a".into()],
            arch: "x86_64".into(),
            ..Default::default()
        };
        let got = resolve(std::slice::from_ref(&repo), &req).unwrap();
        let names: Vec<String> = got.iter().map(SolvedPackage::nevra).collect();
        assert_eq!(names, ["a-1-1.x86_64", "b-2-1.x86_64"]);
        assert_eq!(got[0].location, "Packages/a-1-1.x86_64.rpm");
        assert_eq!(got[0].checksum.as_ref().unwrap().0, "sha256");
        let bad = SolveRequest {
            install: vec!["c".into()],
            arch: "x86_64".into(),
            ..Default::default()
        };
        match resolve(std::slice::from_ref(&repo), &bad) {
            Err(SolveError::Problems { lines: p, .. }) => {
                assert!(p[0].contains("missing"), "{p:?}")
            }
            other => panic!("{other:?}"),
        }
        let none = SolveRequest {
            install: vec!["zzz".into()],
            arch: "x86_64".into(),
            ..Default::default()
        };
        assert!(matches!(
            resolve(std::slice::from_ref(&repo), &none),
            Err(SolveError::NotFound(_))
        ));
        let excl = SolveRequest {
            install: vec!["a".into()],
            exclude: vec!["b".into()],
            arch: "x86_64".into(),
            ..Default::default()
        };
        assert!(matches!(
            resolve(&[repo], &excl),
            Err(SolveError::Problems { .. })
        ));
    }

    fn meta(id: &str, priority: i32, pkgs: &[(&str, &str, &[&str])]) -> RepoMetadata {
        RepoMetadata {
            id: id.into(),
            primary_xml: primary(pkgs),
            filelists_xml: None,
            priority,
            exclude: vec![],
            include_only: vec![],
        }
    }

    fn chosen(repos: &[RepoMetadata], req: &SolveRequest) -> Vec<String> {
        resolve(repos, req)
            .unwrap()
            .iter()
            .map(|p| format!("{}-{}@{}", p.name, p.version, p.repo))
            .collect()
    }

    /// `.repo` priority, exclude and includepkgs act as in dnf.
    #[test]
    fn repo_priority_and_filters() {
        let req = SolveRequest {
            install: vec!["a".into()],
            arch: "x86_64".into(),
            ..Default::default()
        };
        let old = meta("old", 99, &[("a", "1", &[]), ("b", "1", &[])]);
        let new = meta("new", 99, &[("a", "2", &[])]);
        assert_eq!(chosen(&[old.clone(), new.clone()], &req), ["a-2@new"]);
        // A lower number wins over a newer version.
        let preferred = RepoMetadata {
            priority: 10,
            ..old.clone()
        };
        assert_eq!(chosen(&[preferred, new.clone()], &req), ["a-1@old"]);
        // Excluded by glob in the newer repo: the older one serves it.
        let excluding = RepoMetadata {
            exclude: vec!["a*".into()],
            ..new.clone()
        };
        assert_eq!(chosen(&[old.clone(), excluding], &req), ["a-1@old"]);
        // dnf's globs also match name-version[-release][.arch] spellings.
        for glob in ["a-2*", "a.x86_64", "a-2-1.x86_64", "a-0:2-1"] {
            let excluding = RepoMetadata {
                exclude: vec![glob.into()],
                ..new.clone()
            };
            assert_eq!(
                chosen(&[old.clone(), excluding], &req),
                ["a-1@old"],
                "{glob}"
            );
        }
        let excluding = RepoMetadata {
            exclude: vec!["a-3*".into()],
            ..new.clone()
        };
        assert_eq!(chosen(&[old.clone(), excluding], &req), ["a-2@new"]);
        // includepkgs: only the listed names come from that repo.
        let only_b = RepoMetadata {
            include_only: vec!["b".into()],
            ..new
        };
        assert_eq!(chosen(&[old.clone(), only_b.clone()], &req), ["a-1@old"]);
        let only_b_old = RepoMetadata {
            include_only: vec!["b".into()],
            ..old
        };
        let e = resolve(&[only_b_old, only_b], &req).unwrap_err();
        assert!(
            matches!(e, SolveError::NotFound(_) | SolveError::Problems { .. }),
            "{e}"
        );
    }

    /// Primary XML for packages given as (name, version, extra `<format>` XML).
    fn primary_raw(pkgs: &[(&str, &str, &str)]) -> Vec<u8> {
        let mut x = String::from(
            "<?xml version=\"1.0\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" \
             xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"1\">\n",
        );
        for (name, ver, format) in pkgs {
            x.push_str(&format!(
                "<package type=\"rpm\"><name>{name}</name><arch>x86_64</arch>\
                 <version epoch=\"0\" ver=\"{ver}\" rel=\"1\"/>\
                 <location href=\"Packages/{name}-{ver}-1.x86_64.rpm\"/><format>\
                 <rpm:provides><rpm:entry name=\"{name}\" flags=\"EQ\" epoch=\"0\" ver=\"{ver}\" rel=\"1\"/></rpm:provides>\
                 {format}</format></package>\n"
            ));
        }
        x.push_str("</metadata>\n");
        x.into_bytes()
    }

    /// A request for an obsoleted name installs the obsoleter, whether the Obsoletes
    /// is a bare name or a versioned relation that matches; not when it does not match.
    #[test]
    fn obsoleter_replaces_requested_name() {
        let req = SolveRequest {
            install: vec!["old".into()],
            arch: "x86_64".into(),
            ..Default::default()
        };
        for (obsoletes, want) in [
            (r#"<rpm:entry name="old"/>"#, "new-1@r"),
            (
                r#"<rpm:entry name="old" flags="LT" epoch="0" ver="2"/>"#,
                "new-1@r",
            ),
            (
                r#"<rpm:entry name="old" flags="LT" epoch="0" ver="1"/>"#,
                "old-1@r",
            ),
        ] {
            let format = format!("<rpm:obsoletes>{obsoletes}</rpm:obsoletes>");
            let repo = RepoMetadata {
                primary_xml: primary_raw(&[("old", "1", ""), ("new", "1", &format)]),
                ..meta("r", 99, &[])
            };
            assert_eq!(chosen(&[repo], &req), [want], "{obsoletes}");
        }
    }

    /// A problem about a file dependency says filelists may help.
    #[test]
    fn file_dependency_problem_needs_filelists() {
        let repo = RepoMetadata {
            primary_xml: primary_raw(&[(
                "a",
                "1",
                r#"<rpm:requires><rpm:entry name="/usr/bin/missing"/></rpm:requires>"#,
            )]),
            ..meta("r", 99, &[])
        };
        let req = SolveRequest {
            install: vec!["a".into()],
            arch: "x86_64".into(),
            ..Default::default()
        };
        let e = resolve(&[repo], &req).unwrap_err();
        assert!(
            matches!(
                e,
                SolveError::Problems {
                    file_deps: true,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.needs_filelists());
        assert!(e.to_string().contains("/usr/bin/missing"), "{e}");
    }

    /// A lockfile pin hides other builds; a pin no repository has (wrong version or
    /// digest) is named when the resolution fails.
    #[test]
    fn lockfile_pins() {
        let repo = meta("r", 99, &[("a", "1", &[]), ("a", "2", &[])]);
        let pin = |ver: &str, digest: Option<&str>| SolveRequest {
            install: vec!["a".into()],
            arch: "x86_64".into(),
            locked: vec![Lock {
                name: "a".into(),
                evr: format!("0:{ver}-1"),
                arch: "x86_64".into(),
                digest: digest.map(|d| ("sha256".to_string(), d.to_string())),
            }],
            ..Default::default()
        };
        let ab = "ab".repeat(32);
        assert_eq!(
            chosen(std::slice::from_ref(&repo), &pin("1", None)),
            ["a-1@r"]
        );
        assert_eq!(
            chosen(std::slice::from_ref(&repo), &pin("1", Some(&ab))),
            ["a-1@r"]
        );
        let mut sha512 = pin("1", Some(&ab));
        sha512.locked[0].digest = Some(("sha512".into(), ab.clone()));
        for bad in [pin("3", None), pin("1", Some(&"cd".repeat(32))), sha512] {
            let e = resolve(std::slice::from_ref(&repo), &bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("lockfile pins") && e.contains("a-0:"), "{e}");
        }
    }
}
