//! Dependency resolution with libsolv, the solver dnf uses: the one module that calls
//! C. Everything `unsafe` stays here, behind [`resolve`], which takes repodata bytes
//! and a request and returns the packages to install.
//!
//! dnf semantics reproduced: requests match names, provides (incl. versioned
//! `'foo >= 1'`), `name.arch` and file paths; a request for a package that another
//! available package obsoletes installs the obsoleter (dnf's `obsoletes=True`);
//! `recommends: false` ignores weak deps; excluded packages are invisible to the solver.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::ptr;

use libsolv_sys::ffi as sys;

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

/// `fnmatch(3)` without flags, as dnf matches package globs.
fn glob_match(pattern: &CStr, name: &CStr) -> bool {
    // SAFETY: two valid C strings.
    unsafe { libc::fnmatch(pattern.as_ptr(), name.as_ptr(), 0) == 0 }
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

/// Owns a libsolv `Queue`.
struct Queue(sys::Queue);

impl Queue {
    fn new() -> Queue {
        let mut q = std::mem::MaybeUninit::<sys::Queue>::uninit();
        // SAFETY: queue_init fully initialises the struct.
        unsafe { sys::queue_init(q.as_mut_ptr()) };
        // SAFETY: initialised just above.
        Queue(unsafe { q.assume_init() })
    }
    fn push(&mut self, id: sys::Id) {
        // SAFETY: inserting at `count` appends; the queue is valid.
        unsafe { sys::queue_insert(&mut self.0, self.0.count, id) };
    }
    fn push2(&mut self, a: sys::Id, b: sys::Id) {
        self.push(a);
        self.push(b);
    }
    fn as_slice(&self) -> &[sys::Id] {
        if self.0.count == 0 {
            return &[];
        }
        // SAFETY: `elements` points at `count` initialised Ids while the queue lives.
        unsafe { std::slice::from_raw_parts(self.0.elements, self.0.count as usize) }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: the queue was initialised by queue_init.
        unsafe { sys::queue_free(&mut self.0) };
    }
}

/// Owns the pool (and the considered map we may install into it).
struct Pool {
    pool: *mut sys::Pool,
    considered: Option<Box<sys::Map>>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: the pool came from pool_create; the considered map (if any) is ours
        // and is detached before the pool is freed.
        unsafe {
            if let Some(mut m) = self.considered.take() {
                (*self.pool).considered = ptr::null_mut();
                sys::map_free(&mut *m);
            }
            sys::pool_free(self.pool);
        }
    }
}

struct Solver(*mut sys::Solver);

impl Drop for Solver {
    fn drop(&mut self) {
        // SAFETY: created by solver_create, freed once.
        unsafe { sys::solver_free(self.0) };
    }
}

fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libsolv returns NUL-terminated strings valid until the next tmp-space reuse;
    // we copy immediately.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn c(s: &str) -> Result<CString, SolveError> {
    CString::new(s).map_err(|_| SolveError::Internal(format!("string with NUL: {s:?}")))
}

impl Pool {
    fn new(arch: &str) -> Result<Pool, SolveError> {
        // SAFETY: plain constructor.
        let pool = unsafe { sys::pool_create() };
        if pool.is_null() {
            return Err(SolveError::Internal("pool_create failed".into()));
        }
        let p = Pool {
            pool,
            considered: None,
        };
        // SAFETY: valid pool; DISTTYPE_RPM selects RPM version comparison and deps.
        let old = unsafe { sys::pool_setdisttype(pool, sys::DISTTYPE_RPM as c_int) };
        if old < 0 {
            return Err(SolveError::Internal(
                "this libsolv was built without RPM support".into(),
            ));
        }
        let a = c(arch)?;
        // SAFETY: valid pool and C string.
        unsafe { sys::pool_setarch(pool, a.as_ptr()) };
        Ok(p)
    }

    fn add_xml(
        &self,
        repo: *mut sys::Repo,
        id: &str,
        what: &'static str,
        data: &[u8],
        flags: u32,
    ) -> Result<(), SolveError> {
        // SAFETY: fmemopen reads `data` in place; the FILE is closed before `data` can
        // go away, and repo_add_rpmmd only reads from it.
        unsafe {
            let fp = libc::fmemopen(
                data.as_ptr() as *mut libc::c_void,
                data.len(),
                c"r".as_ptr(),
            );
            if fp.is_null() {
                return Err(SolveError::Load {
                    repo: id.into(),
                    what,
                    why: "fmemopen failed".into(),
                });
            }
            let r = sys::repo_add_rpmmd(repo, fp as *mut sys::FILE, ptr::null(), flags as c_int);
            libc::fclose(fp);
            if r != 0 {
                return Err(SolveError::Load {
                    repo: id.into(),
                    what,
                    why: cstr(sys::pool_errstr(self.pool)),
                });
            }
        }
        Ok(())
    }

    fn solvable(&self, id: sys::Id) -> *mut sys::Solvable {
        // SAFETY: callers pass ids in 2..nsolvables.
        unsafe { (*self.pool).solvables.add(id as usize) }
    }

    fn nsolvables(&self) -> sys::Id {
        // SAFETY: valid pool.
        unsafe { (*self.pool).nsolvables }
    }

    fn id2str(&self, id: sys::Id) -> String {
        // SAFETY: valid pool and id.
        cstr(unsafe { sys::pool_id2str(self.pool, id) })
    }

    /// Solvables (in repos) named `name`.
    fn by_name(&self, name: &str) -> Vec<sys::Id> {
        let cname = match c(name) {
            Ok(n) => n,
            Err(_) => return vec![],
        };
        // SAFETY: valid pool; create=0 only looks up.
        let nid = unsafe { sys::pool_str2id(self.pool, cname.as_ptr(), 0) };
        if nid == 0 {
            return vec![];
        }
        (2..self.nsolvables())
            // SAFETY: ids in range; repo null means a freed slot.
            .filter(|&i| unsafe {
                !(*self.solvable(i)).repo.is_null() && (*self.solvable(i)).name == nid
            })
            .collect()
    }

    /// Solvables whose Obsoletes match `target`.
    fn obsoleters_of(&self, target: sys::Id) -> Vec<sys::Id> {
        let mut out = Vec::new();
        let t = self.solvable(target);
        for i in 2..self.nsolvables() {
            let s = self.solvable(i);
            // SAFETY: valid solvable; its obsoletes offset indexes the repo's zero-
            // terminated idarraydata.
            unsafe {
                if (*s).repo.is_null() || (*s).obsoletes == 0 || i == target {
                    continue;
                }
                let mut dp = (*(*s).repo).idarraydata.add((*s).obsoletes as usize);
                while *dp != 0 {
                    let d = *dp;
                    let matches = if (d as u32) & 0x8000_0000 != 0 {
                        sys::pool_match_nevr_rel(self.pool, t, d) != 0
                    } else {
                        (*t).name == d
                    };
                    if matches {
                        out.push(i);
                        break;
                    }
                    dp = dp.add(1);
                }
            }
        }
        out
    }

    fn describe(&self, id: sys::Id, repo_ids: &[(usize, String)]) -> SolvedPackage {
        let s = self.solvable(id);
        // SAFETY: `s` is a valid solvable of this pool for the whole block.
        unsafe {
            let (epoch, version, release) = split_evr(&self.id2str((*s).evr));
            let mut medianr: u32 = 0;
            let location = cstr(sys::solvable_get_location(s, &mut medianr));
            let mut ctype: sys::Id = 0;
            let sum = sys::solvable_lookup_checksum(
                s,
                sys::solv_knownid_SOLVABLE_CHECKSUM as sys::Id,
                &mut ctype,
            );
            let checksum =
                (!sum.is_null()).then(|| (cstr(sys::solv_chksum_type2str(ctype)), cstr(sum)));
            let size =
                sys::solvable_lookup_num(s, sys::solv_knownid_SOLVABLE_DOWNLOADSIZE as sys::Id, 0);
            let repo = repo_ids
                .iter()
                .find(|(ptr, _)| *ptr == (*s).repo as usize)
                .map(|(_, n)| n.clone())
                .unwrap_or_default();
            SolvedPackage {
                name: self.id2str((*s).name),
                epoch,
                version,
                release,
                arch: self.id2str((*s).arch),
                repo,
                location,
                checksum,
                download_size: size,
            }
        }
    }
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
    let pool = Pool::new(&req.arch)?;
    let mut repo_ids = Vec::new();
    for r in repos {
        let id = c(&r.id)?;
        // SAFETY: valid pool; the repo is owned by the pool.
        let repo = unsafe { sys::repo_create(pool.pool, id.as_ptr()) };
        // SAFETY: valid repo; libsolv prefers higher priorities, dnf lower ones.
        unsafe { (*repo).priority = -r.priority };
        pool.add_xml(repo, &r.id, "primary", &r.primary_xml, 0)?;
        if let Some(fl) = &r.filelists_xml {
            pool.add_xml(repo, &r.id, "filelists", fl, sys::REPO_EXTEND_SOLVABLES)?;
        }
        // SAFETY: valid repo.
        unsafe { sys::repo_internalize(repo) };
        repo_ids.push((repo as usize, r.id.clone()));
    }
    // SAFETY: valid pool; required before whatprovides lookups and solving.
    unsafe {
        sys::pool_addfileprovides(pool.pool);
        sys::pool_createwhatprovides(pool.pool);
    }
    let mut pool = pool;
    let repo_filtered = repos
        .iter()
        .any(|r| !r.exclude.is_empty() || !r.include_only.is_empty());
    let mut unavailable_locks = Vec::new();
    if !req.exclude.is_empty() || !req.locked.is_empty() || !req.pinned.is_empty() || repo_filtered
    {
        let mut map = Box::new(sys::Map {
            map: ptr::null_mut(),
            size: 0,
        });
        // SAFETY: map_init allocates a bitmap for nsolvables bits; we clear the bits of
        // excluded packages and hand the map to the pool (detached again in Drop).
        unsafe {
            sys::map_init(&mut *map, pool.nsolvables());
            ptr::write_bytes(map.map, 0xff, map.size as usize);
            let mut hide = |id: sys::Id| *map.map.add((id >> 3) as usize) &= !(1u8 << (id & 7));
            for name in &req.exclude {
                pool.by_name(name).into_iter().for_each(&mut hide);
            }
            for lock in &req.locked {
                let builds = pool.by_name(&lock.name);
                let mut admitted = false;
                for &id in &builds {
                    if lock.admits(&pool.describe(id, &repo_ids)) {
                        admitted = true;
                    } else {
                        hide(id);
                    }
                }
                if !builds.is_empty() && !admitted {
                    unavailable_locks.push(lock.describe());
                }
            }
            for (repo, name) in &req.pinned {
                for id in pool.by_name(name) {
                    if pool.describe(id, &repo_ids).repo != *repo {
                        hide(id);
                    }
                }
            }
            if repo_filtered {
                // Globs as C strings once per repository; unfiltered repositories skipped.
                let cglobs = |g: &[String]| -> Vec<CString> {
                    g.iter()
                        .filter_map(|x| CString::new(x.as_str()).ok())
                        .collect()
                };
                let filters: Vec<(usize, Vec<CString>, Vec<CString>)> = repo_ids
                    .iter()
                    .zip(repos)
                    .filter(|(_, r)| !r.exclude.is_empty() || !r.include_only.is_empty())
                    .map(|((ptr, _), r)| (*ptr, cglobs(&r.exclude), cglobs(&r.include_only)))
                    .collect();
                for id in 2..pool.nsolvables() {
                    let s = pool.solvable(id);
                    let Some((_, exclude, include_only)) = filters
                        .iter()
                        .find(|(ptr, _, _)| *ptr == (*s).repo as usize)
                    else {
                        continue;
                    };
                    let forms = nevra_forms(
                        &pool.id2str((*s).name),
                        &pool.id2str((*s).evr),
                        &pool.id2str((*s).arch),
                    );
                    let matches = |globs: &[CString]| {
                        globs.iter().any(|g| forms.iter().any(|f| glob_match(g, f)))
                    };
                    if matches(exclude) || (!include_only.is_empty() && !matches(include_only)) {
                        hide(id);
                    }
                }
            }
            (*pool.pool).considered = &mut *map;
        }
        pool.considered = Some(map);
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
        let mut sel = Queue::new();
        let cspec = c(spec)?;
        let flags = sys::SELECTION_NAME
            | sys::SELECTION_PROVIDES
            | sys::SELECTION_REL
            | sys::SELECTION_DOTARCH
            | if spec.starts_with('/') {
                sys::SELECTION_FILELIST
            } else {
                0
            };
        // SAFETY: valid pool and queue.
        unsafe { sys::selection_make(pool.pool, &mut sel.0, cspec.as_ptr(), flags as c_int) };
        if sel.as_slice().is_empty() {
            return Err(with_locks(SolveError::NotFound(spec.clone())));
        }
        // dnf installs the obsoleter of a requested package name instead of it.
        let named = pool.by_name(spec);
        let obsoleters: Vec<sys::Id> = named.iter().flat_map(|&n| pool.obsoleters_of(n)).collect();
        if !obsoleters.is_empty() {
            let mut cands = Queue::new();
            for id in named.iter().chain(obsoleters.iter()) {
                cands.push(*id);
            }
            // SAFETY: valid pool and queue.
            let what = unsafe { sys::pool_queuetowhatprovides(pool.pool, &mut cands.0) };
            jobs.push2(
                (sys::SOLVER_SOLVABLE_ONE_OF | sys::SOLVER_INSTALL) as sys::Id,
                what,
            );
            continue;
        }
        for pair in sel.as_slice().chunks(2) {
            jobs.push2(pair[0] | sys::SOLVER_INSTALL as sys::Id, pair[1]);
        }
    }

    // SAFETY: valid pool; the solver is freed by its guard before the pool.
    let solver = Solver(unsafe { sys::solver_create(pool.pool) });
    // SAFETY: valid solver and job queue.
    let nproblems = unsafe {
        if !req.recommends {
            sys::solver_set_flag(solver.0, sys::SOLVER_FLAG_IGNORE_RECOMMENDED as c_int, 1);
        }
        sys::solver_set_flag(solver.0, sys::SOLVER_FLAG_BEST_OBEY_POLICY as c_int, 1);
        sys::solver_solve(solver.0, &mut jobs.0)
    };
    if nproblems > 0 {
        let mut problems: Vec<String> = Vec::new();
        let mut file_deps = false;
        for p in 1..=nproblems {
            // The summary line, then every rule involved (as dnf prints them).
            // SAFETY: problem ids 1..=count are valid; rule ids come from libsolv.
            unsafe {
                problems.push(cstr(sys::solver_problem2str(solver.0, p)));
                let mut rules = Queue::new();
                sys::solver_findallproblemrules(solver.0, p, &mut rules.0);
                for &r in rules.as_slice() {
                    let (mut from, mut to, mut dep) = (0, 0, 0);
                    let kind = sys::solver_ruleinfo(solver.0, r, &mut from, &mut to, &mut dep);
                    if dep != 0 && cstr(sys::pool_dep2str(pool.pool, dep)).starts_with('/') {
                        file_deps = true;
                    }
                    let line = cstr(sys::solver_problemruleinfo2str(
                        solver.0, kind, from, to, dep,
                    ));
                    if !line.is_empty() && !problems.contains(&line) {
                        problems.push(line);
                    }
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
    let mut decisions = Queue::new();
    // SAFETY: valid solver and queue.
    unsafe { sys::solver_get_decisionqueue(solver.0, &mut decisions.0) };
    let mut out: Vec<SolvedPackage> = decisions
        .as_slice()
        .iter()
        .filter(|&&d| d > sys::SYSTEMSOLVABLE as sys::Id)
        .map(|&d| pool.describe(d, &repo_ids))
        .collect();
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
