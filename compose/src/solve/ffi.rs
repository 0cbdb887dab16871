//! Safe wrappers around libsolv (`libsolv_sys`): the only code in the crate that
//! calls C, and so the only place `unsafe` is allowed.
//!
//! [`Pool`], [`Queue`] and [`Solver`] own their libsolv objects and free them on drop;
//! a [`Solver`] borrows its [`Pool`], so it cannot outlive it. No raw pointer leaves
//! this module: solvables are addressed by [`Id`], and every id coming from outside is
//! checked against the pool (`0 < id < nsolvables`) before it is turned into a pointer
//! ([`Pool::solvable`]); offsets into libsolv's arrays are checked against their sizes.
//! Strings are copied out of libsolv at once, so none borrows its temporary space.
//!
//! The resolution policy (what to hide, which jobs to give, how to report problems)
//! is in the parent module.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::ptr;

use libsolv_sys::ffi as sys;

use super::SolveError;

/// libsolv's id of a solvable, a string, a dependency or a job element.
pub(super) type Id = sys::Id;

/// The first id that is a real package: 0 is "none", 1 the system solvable.
const FIRST_PACKAGE: Id = 2;

/// Copy a C string libsolv returned; null becomes the empty string.
///
/// # Safety
///
/// `p` is null or points at a NUL-terminated string that stays valid for the call.
unsafe fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null and NUL-terminated per this function's contract; copied at once,
    // before libsolv can reuse its temporary space.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn c(s: &str) -> Result<CString, SolveError> {
    CString::new(s).map_err(|_| SolveError::Internal(format!("string with NUL: {s:?}")))
}

/// `fnmatch(3)` without flags, as dnf matches package globs.
pub(super) fn fnmatch(pattern: &CStr, name: &CStr) -> bool {
    // SAFETY: two valid C strings, only read.
    unsafe { libc::fnmatch(pattern.as_ptr(), name.as_ptr(), 0) == 0 }
}

/// Owns a libsolv `Queue` (a growable array of [`Id`]s).
pub(super) struct Queue(sys::Queue);

impl Queue {
    pub(super) fn new() -> Queue {
        let mut q = std::mem::MaybeUninit::<sys::Queue>::uninit();
        // SAFETY: queue_init fully initialises the struct.
        unsafe { sys::queue_init(q.as_mut_ptr()) };
        // SAFETY: initialised just above.
        Queue(unsafe { q.assume_init() })
    }

    pub(super) fn push(&mut self, id: Id) {
        // SAFETY: inserting at `count` appends; the queue is valid.
        unsafe { sys::queue_insert(&mut self.0, self.0.count, id) };
    }

    pub(super) fn push2(&mut self, a: Id, b: Id) {
        self.push(a);
        self.push(b);
    }

    pub(super) fn as_slice(&self) -> &[Id] {
        if self.0.count <= 0 || self.0.elements.is_null() {
            return &[];
        }
        // SAFETY: `elements` points at `count` initialised Ids while the queue lives,
        // and the queue cannot change while the slice borrows it.
        unsafe { std::slice::from_raw_parts(self.0.elements, self.0.count as usize) }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: the queue was initialised by queue_init.
        unsafe { sys::queue_free(&mut self.0) };
    }
}

/// Owns a libsolv pool, the repositories loaded into it, and the "considered" map
/// installed in it.
pub(super) struct Pool {
    pool: *mut sys::Pool,
    /// Repositories in the order [`Pool::add_repo`] created them (owned by the pool).
    repos: Vec<*mut sys::Repo>,
    considered: Option<Box<sys::Map>>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: the pool came from pool_create and is freed once; the considered map
        // (if any) is ours and is detached before the pool is freed.
        unsafe {
            if let Some(mut m) = self.considered.take() {
                (*self.pool).considered = ptr::null_mut();
                sys::map_free(&mut *m);
            }
            sys::pool_free(self.pool);
        }
    }
}

impl Pool {
    /// An RPM pool for base architecture `arch`.
    pub(super) fn new(arch: &str) -> Result<Pool, SolveError> {
        // SAFETY: plain constructor.
        let pool = unsafe { sys::pool_create() };
        if pool.is_null() {
            return Err(SolveError::Internal("pool_create failed".into()));
        }
        let p = Pool {
            pool,
            repos: Vec::new(),
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

    /// Create repository `name` with libsolv priority `priority` (higher wins), load
    /// its primary and (optionally) filelists XML, and internalize it. Returns its
    /// index: the number of repositories added before it.
    pub(super) fn add_repo(
        &mut self,
        name: &str,
        priority: i32,
        primary_xml: &[u8],
        filelists_xml: Option<&[u8]>,
    ) -> Result<usize, SolveError> {
        let cname = c(name)?;
        // SAFETY: valid pool; the repo is owned (and freed) by the pool.
        let repo = unsafe { sys::repo_create(self.pool, cname.as_ptr()) };
        if repo.is_null() {
            return Err(SolveError::Internal(format!(
                "repo_create failed for repository {name}"
            )));
        }
        // SAFETY: valid, non-null repo just created.
        unsafe { (*repo).priority = priority };
        self.add_rpmmd(repo, name, "primary", primary_xml, 0)?;
        if let Some(fl) = filelists_xml {
            self.add_rpmmd(repo, name, "filelists", fl, sys::REPO_EXTEND_SOLVABLES)?;
        }
        // SAFETY: valid repo.
        unsafe { sys::repo_internalize(repo) };
        self.repos.push(repo);
        Ok(self.repos.len() - 1)
    }

    fn add_rpmmd(
        &mut self,
        repo: *mut sys::Repo,
        name: &str,
        what: &'static str,
        data: &[u8],
        flags: u32,
    ) -> Result<(), SolveError> {
        let load_error = |why: String| SolveError::Load {
            repo: name.into(),
            what,
            why,
        };
        // SAFETY: fmemopen reads `data` in place (mode "r": never written); the FILE is
        // closed before `data` can go away, and repo_add_rpmmd only reads from it.
        // `repo` is a valid repo of this pool (created by add_repo).
        unsafe {
            let fp = libc::fmemopen(
                data.as_ptr() as *mut libc::c_void,
                data.len(),
                c"r".as_ptr(),
            );
            if fp.is_null() {
                return Err(load_error("fmemopen failed".into()));
            }
            let r = sys::repo_add_rpmmd(repo, fp as *mut sys::FILE, ptr::null(), flags as c_int);
            libc::fclose(fp);
            if r != 0 {
                return Err(load_error(cstr(sys::pool_errstr(self.pool))));
            }
        }
        Ok(())
    }

    /// Index the loaded repositories; required before lookups by provides and solving.
    pub(super) fn create_whatprovides(&mut self) {
        // SAFETY: valid pool.
        unsafe {
            sys::pool_addfileprovides(self.pool);
            sys::pool_createwhatprovides(self.pool);
        }
    }

    /// Number of solvable slots (ids `0..nsolvables`, 0 and 1 reserved).
    fn nsolvables(&self) -> Id {
        // SAFETY: valid pool.
        unsafe { (*self.pool).nsolvables }
    }

    /// The solvable `id`, checked to be in the pool (`0 < id < nsolvables`).
    pub(super) fn solvable(&self, id: Id) -> Result<Solvable<'_>, SolveError> {
        let n = self.nsolvables();
        if id <= 0 || id >= n {
            return Err(SolveError::Internal(format!(
                "solvable id {id} is out of range (the pool has ids 1..{n})"
            )));
        }
        // SAFETY: valid pool.
        let base = unsafe { (*self.pool).solvables };
        if base.is_null() {
            return Err(SolveError::Internal("the pool has no solvables".into()));
        }
        // SAFETY: 0 < id < nsolvables, the length of the `solvables` array.
        let ptr = unsafe { base.add(id as usize) };
        Ok(Solvable {
            pool: self,
            id,
            ptr,
        })
    }

    /// Every package in a repository (ids `2..nsolvables`, freed slots skipped).
    pub(super) fn solvables(&self) -> impl Iterator<Item = Solvable<'_>> {
        (FIRST_PACKAGE..self.nsolvables())
            .filter_map(|id| self.solvable(id).ok())
            .filter(|s| !s.fields().repo.is_null())
    }

    fn id2str(&self, id: Id) -> String {
        // SAFETY: valid pool; pool_id2str handles any string id of the pool.
        unsafe { cstr(sys::pool_id2str(self.pool, id)) }
    }

    fn dep2str(&self, dep: Id) -> String {
        // SAFETY: valid pool; `dep` is a dependency id libsolv gave us.
        unsafe { cstr(sys::pool_dep2str(self.pool, dep)) }
    }

    /// Packages (in repositories) named `name`.
    pub(super) fn by_name(&self, name: &str) -> Vec<Id> {
        let Ok(cname) = c(name) else {
            return vec![];
        };
        // SAFETY: valid pool and C string; create=0 only looks up.
        let nid = unsafe { sys::pool_str2id(self.pool, cname.as_ptr(), 0) };
        if nid == 0 {
            return vec![];
        }
        self.solvables()
            .filter(|s| s.fields().name == nid)
            .map(|s| s.id)
            .collect()
    }

    /// Packages whose Obsoletes match the package `target`.
    pub(super) fn obsoleters_of(&self, target: Id) -> Result<Vec<Id>, SolveError> {
        let t = self.solvable(target)?;
        let mut out = Vec::new();
        for s in self.solvables() {
            let obsoletes = s.fields().obsoletes;
            if obsoletes == 0 || s.id == target {
                continue;
            }
            for d in s.idarray(obsoletes)? {
                let matches = if (d as u32) & 0x8000_0000 != 0 {
                    // SAFETY: valid pool, `t` a checked solvable of it, `d` a relation
                    // id from the repo's dependency data.
                    unsafe { sys::pool_match_nevr_rel(self.pool, t.ptr, d) != 0 }
                } else {
                    t.fields().name == d
                };
                if matches {
                    out.push(s.id);
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Hide the packages `hidden` from the solver: install a "considered" map with
    /// every package but those. Replaces a map installed before.
    pub(super) fn set_considered(&mut self, hidden: &[Id]) -> Result<(), SolveError> {
        let n = self.nsolvables();
        let mut map = Box::new(sys::Map {
            map: ptr::null_mut(),
            size: 0,
        });
        // SAFETY: map_init allocates a zeroed bitmap of at least `n` bits.
        unsafe { sys::map_init(&mut *map, n) };
        let result = (|| {
            if map.size < 0 || (map.size > 0 && map.map.is_null()) {
                return Err(SolveError::Internal("map_init failed".into()));
            }
            let bits: &mut [u8] = if map.size == 0 {
                &mut []
            } else {
                // SAFETY: map_init allocated `size` bytes at `map`, which only this
                // slice touches while it lives.
                unsafe { std::slice::from_raw_parts_mut(map.map, map.size as usize) }
            };
            bits.fill(0xff);
            for &id in hidden {
                let byte = (id > 0 && id < n)
                    .then(|| bits.get_mut((id >> 3) as usize))
                    .flatten()
                    .ok_or_else(|| {
                        SolveError::Internal(format!(
                            "cannot hide solvable id {id}: out of range (the pool has ids 1..{n})"
                        ))
                    })?;
                *byte &= !(1u8 << (id & 7));
            }
            Ok(())
        })();
        if let Err(e) = result {
            // SAFETY: allocated by map_init above and not installed anywhere.
            unsafe { sys::map_free(&mut *map) };
            return Err(e);
        }
        // SAFETY: valid pool. The map lives in a Box owned by `self`, so its address is
        // stable until Drop (or the next call here) detaches and frees it.
        unsafe {
            if let Some(mut old) = self.considered.take() {
                (*self.pool).considered = ptr::null_mut();
                sys::map_free(&mut *old);
            }
            (*self.pool).considered = &mut *map;
        }
        self.considered = Some(map);
        Ok(())
    }

    /// The (job-pair) selection `spec` names, matched as `flags` (`SELECTION_*`) say.
    pub(super) fn select(&mut self, spec: &str, flags: u32) -> Result<Queue, SolveError> {
        let cspec = c(spec)?;
        let mut sel = Queue::new();
        // SAFETY: valid pool, queue and C string.
        unsafe { sys::selection_make(self.pool, &mut sel.0, cspec.as_ptr(), flags as c_int) };
        Ok(sel)
    }

    /// A whatprovides id standing for "one of `ids`", for `SOLVER_SOLVABLE_ONE_OF`.
    pub(super) fn one_of(&mut self, ids: &[Id]) -> Result<Id, SolveError> {
        let mut q = Queue::new();
        for &id in ids {
            self.solvable(id)?;
            q.push(id);
        }
        // SAFETY: valid pool and queue of checked solvable ids.
        Ok(unsafe { sys::pool_queuetowhatprovides(self.pool, &mut q.0) })
    }
}

/// A package of a [`Pool`], its id checked; the pool cannot change while it is held.
pub(super) struct Solvable<'p> {
    pool: &'p Pool,
    id: Id,
    /// In bounds of the pool's `solvables` array (checked by [`Pool::solvable`]).
    ptr: *mut sys::Solvable,
}

impl Solvable<'_> {
    fn fields(&self) -> &sys::Solvable {
        // SAFETY: `ptr` is in bounds of the pool's solvables array (checked when this
        // was made). The pool is borrowed shared, and solvables are only added or
        // freed through `&mut Pool`, so the array is neither moved nor written while
        // this reference lives.
        unsafe { &*self.ptr }
    }

    /// The zero-terminated Id list at `offset` in this package's repository's
    /// `idarraydata` (how libsolv stores a package's dependencies).
    fn idarray(&self, offset: sys::Offset) -> Result<Vec<Id>, SolveError> {
        let repo = self.fields().repo;
        let out_of_range = || {
            SolveError::Internal(format!(
                "dependency offset {offset} of solvable {} is outside its repository's data",
                self.id
            ))
        };
        if repo.is_null() {
            return Err(out_of_range());
        }
        // SAFETY: a non-null repo of this pool; read-only access while the pool is
        // borrowed shared.
        let (data, size) = unsafe { ((*repo).idarraydata, (*repo).idarraysize) };
        if data.is_null() || size <= 0 {
            return Err(out_of_range());
        }
        // SAFETY: `idarraydata` holds `idarraysize` initialised Ids, unchanged while
        // the pool is borrowed shared.
        let all = unsafe { std::slice::from_raw_parts(data, size as usize) };
        let list = all.get(offset as usize..).ok_or_else(out_of_range)?;
        let end = list.iter().position(|&d| d == 0).ok_or_else(out_of_range)?;
        Ok(list[..end].to_vec())
    }

    pub(super) fn id(&self) -> Id {
        self.id
    }

    pub(super) fn name(&self) -> String {
        self.pool.id2str(self.fields().name)
    }

    /// libsolv's `[E:]V-R`.
    pub(super) fn evr(&self) -> String {
        self.pool.id2str(self.fields().evr)
    }

    pub(super) fn arch(&self) -> String {
        self.pool.id2str(self.fields().arch)
    }

    /// Index (as returned by [`Pool::add_repo`]) of the repository it belongs to.
    pub(super) fn repo_index(&self) -> Option<usize> {
        let repo = self.fields().repo;
        if repo.is_null() {
            return None;
        }
        self.pool.repos.iter().position(|&r| r == repo)
    }

    /// `location href`, relative to the repository base URL.
    pub(super) fn location(&self) -> String {
        let mut medianr: u32 = 0;
        // SAFETY: a checked solvable of a valid pool.
        unsafe { cstr(sys::solvable_get_location(self.ptr, &mut medianr)) }
    }

    /// (checksum type, hex) from the repodata.
    pub(super) fn checksum(&self) -> Option<(String, String)> {
        let mut ctype: Id = 0;
        // SAFETY: a checked solvable of a valid pool; the hex string is copied before
        // anything else can reuse libsolv's temporary space; chksum_type2str returns a
        // static string (or null).
        unsafe {
            let sum = sys::solvable_lookup_checksum(
                self.ptr,
                sys::solv_knownid_SOLVABLE_CHECKSUM as Id,
                &mut ctype,
            );
            if sum.is_null() {
                return None;
            }
            let hex = cstr(sum);
            Some((cstr(sys::solv_chksum_type2str(ctype)), hex))
        }
    }

    pub(super) fn download_size(&self) -> u64 {
        // SAFETY: a checked solvable of a valid pool.
        unsafe {
            sys::solvable_lookup_num(self.ptr, sys::solv_knownid_SOLVABLE_DOWNLOADSIZE as Id, 0)
        }
    }
}

/// One unsolvable problem: libsolv's summary, then every rule involved.
pub(super) struct Problem {
    pub(super) summary: String,
    pub(super) rules: Vec<ProblemRule>,
}

pub(super) struct ProblemRule {
    /// The rule as libsolv words it (may be empty).
    pub(super) text: String,
    /// The dependency the rule is about, if any (`/usr/bin/x`, `foo >= 1`).
    pub(super) dep: Option<String>,
}

/// Owns a libsolv solver over a borrowed [`Pool`].
pub(super) struct Solver<'p> {
    solver: *mut sys::Solver,
    pool: &'p Pool,
    /// Problems found by the last [`Solver::solve`]; their ids are `1..=nproblems`.
    nproblems: Id,
}

impl Drop for Solver<'_> {
    fn drop(&mut self) {
        // SAFETY: created by solver_create, freed once, before its pool (borrowed).
        unsafe { sys::solver_free(self.solver) };
    }
}

impl<'p> Solver<'p> {
    pub(super) fn new(pool: &'p Pool) -> Result<Solver<'p>, SolveError> {
        // SAFETY: valid pool, which outlives the solver (borrowed for 'p).
        let solver = unsafe { sys::solver_create(pool.pool) };
        if solver.is_null() {
            return Err(SolveError::Internal("solver_create failed".into()));
        }
        Ok(Solver {
            solver,
            pool,
            nproblems: 0,
        })
    }

    /// Set a `SOLVER_FLAG_*`.
    pub(super) fn set_flag(&mut self, flag: u32, on: bool) {
        // SAFETY: valid solver; unknown flags are ignored by libsolv.
        unsafe { sys::solver_set_flag(self.solver, flag as c_int, c_int::from(on)) };
    }

    /// Solve `jobs`; returns the number of problems (0: solved).
    pub(super) fn solve(&mut self, jobs: &mut Queue) -> usize {
        // SAFETY: valid solver and job queue.
        let n = unsafe { sys::solver_solve(self.solver, &mut jobs.0) };
        self.nproblems = n.max(0);
        self.nproblems as usize
    }

    /// The problems of the last [`Solver::solve`], as dnf prints them.
    pub(super) fn problems(&self) -> Vec<Problem> {
        (1..=self.nproblems)
            .map(|p| {
                // SAFETY: valid solver; problem ids 1..=nproblems exist after solving.
                let summary = unsafe { cstr(sys::solver_problem2str(self.solver, p)) };
                let mut rules = Queue::new();
                // SAFETY: as above; the queue is valid.
                unsafe { sys::solver_findallproblemrules(self.solver, p, &mut rules.0) };
                let rules = rules
                    .as_slice()
                    .iter()
                    .map(|&r| {
                        let (mut from, mut to, mut dep) = (0, 0, 0);
                        // SAFETY: valid solver; `r` is a rule id libsolv just gave us.
                        let kind = unsafe {
                            sys::solver_ruleinfo(self.solver, r, &mut from, &mut to, &mut dep)
                        };
                        let dep_text = (dep != 0).then(|| self.pool.dep2str(dep));
                        // SAFETY: valid solver; the ids come from solver_ruleinfo.
                        let text = unsafe {
                            cstr(sys::solver_problemruleinfo2str(
                                self.solver,
                                kind,
                                from,
                                to,
                                dep,
                            ))
                        };
                        ProblemRule {
                            text,
                            dep: dep_text,
                        }
                    })
                    .collect();
                Problem { summary, rules }
            })
            .collect()
    }

    /// The solver's decisions: positive ids are packages to install.
    pub(super) fn decisions(&self) -> Vec<Id> {
        let mut q = Queue::new();
        // SAFETY: valid solver and queue.
        unsafe { sys::solver_get_decisionqueue(self.solver, &mut q.0) };
        q.as_slice().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool_with_two() -> Pool {
        let xml =
            "<?xml version=\"1.0\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" \
             xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"2\">\n\
             <package type=\"rpm\"><name>a</name><arch>x86_64</arch>\
             <version epoch=\"0\" ver=\"1\" rel=\"1\"/><location href=\"a.rpm\"/></package>\n\
             <package type=\"rpm\"><name>b</name><arch>noarch</arch>\
             <version epoch=\"3\" ver=\"2\" rel=\"4\"/><location href=\"b.rpm\"/></package>\n\
             </metadata>\n";
        let mut pool = Pool::new("x86_64").unwrap();
        assert_eq!(pool.add_repo("r", 0, xml.as_bytes(), None).unwrap(), 0);
        pool.create_whatprovides();
        pool
    }

    /// Ids outside `0 < id < nsolvables` are refused, never dereferenced.
    #[test]
    fn solvable_ids_are_bounds_checked() {
        let mut pool = pool_with_two();
        let n = pool.nsolvables();
        for bad in [Id::MIN, -1, 0, n, n + 1, Id::MAX] {
            let e = pool.solvable(bad).err().unwrap();
            assert!(e.to_string().contains("out of range"), "{bad}: {e}");
            assert!(pool.obsoleters_of(bad).is_err(), "{bad}");
            assert!(pool.set_considered(&[bad]).is_err(), "{bad}");
            assert!(pool.one_of(&[bad]).is_err(), "{bad}");
        }
        let a = pool.by_name("a");
        assert_eq!(a.len(), 1);
        let s = pool.solvable(a[0]).unwrap();
        assert_eq!(
            (s.name(), s.evr(), s.arch()),
            ("a".into(), "1-1".into(), "x86_64".into())
        );
        assert_eq!(s.repo_index(), Some(0));
        assert_eq!(s.location(), "a.rpm");
        let b = pool.by_name("b");
        assert_eq!(pool.solvable(b[0]).unwrap().evr(), "3:2-4");
        assert_eq!(pool.solvables().count(), 2);
        assert!(pool.by_name("zzz").is_empty());
        assert!(pool.by_name("a\0b").is_empty());
        pool.set_considered(&b).unwrap();
        // Replacing the map frees the old one.
        pool.set_considered(&a).unwrap();
    }
}
