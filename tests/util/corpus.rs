//! What the corpus holds today, read from the corpus itself: its resolutions
//! (`resolved-*.txt`, dnf's answer for each treefile), its manifests (`MANIFEST-*.txt`:
//! NEVRA, sha256, size per RPM) and the RPMs. Debian replaces packages every few weeks
//! and the corpus recipe then re-resolves, so no test may name a version, a kernel or a
//! count: tests ask this module and assert relations (the kernel package replaced,
//! every changed package upgraded, counts equal to the manifest difference).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::{corpus_dir, run};

/// One package of a resolution, split from its NEVRA (`name-[epoch:]version-release.arch`,
/// as dnf prints it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pkg {
    pub name: String,
    /// `[epoch:]version-release`, as in the NEVRA (no `0:` for epoch 0).
    pub evr: String,
    pub arch: String,
    pub nevra: String,
}

impl Pkg {
    pub fn parse(nevra: &str) -> Pkg {
        let (nevr, arch) = nevra.rsplit_once('.').expect("NEVRA has an arch");
        let mut dashes = nevr.rmatch_indices('-').map(|(i, _)| i);
        dashes.next();
        let cut = dashes.next().expect("NEVRA has two dashes");
        Pkg {
            name: nevr[..cut].to_string(),
            evr: nevr[cut + 1..].to_string(),
            arch: arch.to_string(),
            nevra: nevra.to_string(),
        }
    }

    /// `version-release` without the epoch.
    pub fn vr(&self) -> &str {
        self.evr.split_once(':').map_or(&self.evr, |(_, vr)| vr)
    }
}

/// dnf's resolution of `<tree>.yaml` (`v1`, `v2`, `tiny`), by package name.
pub fn resolved(tree: &str) -> BTreeMap<String, Pkg> {
    let path = corpus_dir().join(format!("resolved-{tree}.txt"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let p = Pkg::parse(l.trim());
            (p.name.clone(), p)
        })
        .collect()
}

/// NEVRA → sha256 of every RPM in `MANIFEST-<tree>.txt`.
pub fn manifest(tree: &str) -> BTreeMap<String, String> {
    let path = corpus_dir().join(format!("MANIFEST-{tree}.txt"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect()
}

/// rpm's own version comparison (`rpm.vercmp` in rpm's Lua): -1, 0 or 1.
pub fn rpm_vercmp(a: &str, b: &str) -> i32 {
    let expr = format!("%{{lua: print(rpm.vercmp(\"{a}\", \"{b}\"))}}");
    let out = run("rpm", &["--eval", &expr]);
    out.ok().trim().parse().expect("rpm.vercmp prints a number")
}

/// What changed between two resolutions, by package name, as `rpm-ostree db diff`
/// classifies it.
#[derive(Debug, Default)]
pub struct Diff {
    /// (old, new), sorted by name.
    pub upgraded: Vec<(Pkg, Pkg)>,
    pub downgraded: Vec<(Pkg, Pkg)>,
    pub removed: Vec<Pkg>,
    pub added: Vec<Pkg>,
}

impl Diff {
    pub fn changed_names(&self) -> BTreeSet<String> {
        self.upgraded
            .iter()
            .chain(&self.downgraded)
            .map(|(o, _)| o.name.clone())
            .chain(
                self.removed
                    .iter()
                    .chain(&self.added)
                    .map(|p| p.name.clone()),
            )
            .collect()
    }
}

/// The difference between `resolved-<from>.txt` and `resolved-<to>.txt`.
pub fn diff(from: &str, to: &str) -> Diff {
    let (a, b) = (resolved(from), resolved(to));
    let mut d = Diff::default();
    for (name, old) in &a {
        match b.get(name) {
            None => d.removed.push(old.clone()),
            Some(new) if new.nevra != old.nevra => {
                if rpm_vercmp(&old.evr, &new.evr) <= 0 {
                    d.upgraded.push((old.clone(), new.clone()));
                } else {
                    d.downgraded.push((old.clone(), new.clone()));
                }
            }
            Some(_) => {}
        }
    }
    d.added = b
        .iter()
        .filter(|(n, _)| !a.contains_key(*n))
        .map(|(_, p)| p.clone())
        .collect();
    d
}

/// The packages of `to`'s resolution whose RPM is not byte-identical to one of
/// `from`'s (an import cache keyed by RPM digest must import exactly these).
pub fn new_rpms(from: &str, to: &str) -> BTreeSet<String> {
    let (ma, mb) = (manifest(from), manifest(to));
    let old: BTreeSet<&String> = resolved(from)
        .values()
        .filter_map(|p| ma.get(&p.nevra))
        .collect();
    resolved(to)
        .values()
        .filter(|p| mb.get(&p.nevra).is_none_or(|sha| !old.contains(sha)))
        .map(|p| p.nevra.clone())
        .collect()
}

/// The RPM file of package `name` in the corpus repository `tree` (`v1`, `v2`, `tiny`).
pub fn rpm_path(tree: &str, name: &str) -> PathBuf {
    let dir = corpus_dir().join(tree).join("Packages");
    let prefix = format!("{name}-");
    let found: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let f = p.file_name().unwrap().to_str().unwrap();
            f.strip_prefix(&prefix)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} in {}: {found:?}", dir.display());
    found.into_iter().next().unwrap()
}

/// `rpm -qp` with a query format, one line per output line.
fn rpm_query(rpm: &Path, qf: &str) -> Vec<String> {
    let p = rpm.to_str().unwrap();
    run(
        "rpm",
        &["-qp", "--nosignature", "--nodigest", "--qf", qf, p],
    )
    .ok()
    .lines()
    .map(str::to_string)
    .collect()
}

/// The kernel of a resolution: the package that ships `/usr/lib/modules/KVER/vmlinuz`
/// (found through the RPMs' file lists, not by name), and KVER.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub pkg: Pkg,
    pub kver: String,
}

pub fn kernel(tree: &str) -> Kernel {
    let mut found = Vec::new();
    for p in resolved(tree).values() {
        // Only packages whose name says "linux" or "kernel" are opened (the rest cannot
        // ship a kernel in this corpus), and the file list decides.
        if !(p.name.contains("linux") || p.name.contains("kernel")) {
            continue;
        }
        for f in rpm_query(&rpm_path(tree, &p.name), "[%{FILENAMES}\n]") {
            if let Some(kver) = f
                .strip_prefix("/usr/lib/modules/")
                .and_then(|r| r.strip_suffix("/vmlinuz"))
            {
                found.push(Kernel {
                    pkg: p.clone(),
                    kver: kver.to_string(),
                });
            }
        }
    }
    assert_eq!(found.len(), 1, "{tree}: kernels {found:?}");
    found.pop().unwrap()
}

/// Regular files (path → digest) of an RPM that land in a tree as files.
pub fn file_digests(rpm: &Path) -> BTreeMap<String, String> {
    rpm_query(rpm, "[%{FILEMODES:octal}\t%{FILEDIGESTS}\t%{FILENAMES}\n]")
        .into_iter()
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            let (mode, digest, path) = (f.next()?, f.next()?, f.next()?);
            // /var and /run become tmpfiles.d lines, not files, in a tree.
            let in_tree = !path.starts_with("/var/") && !path.starts_with("/run/");
            (mode.starts_with("100") && !digest.is_empty() && in_tree)
                .then(|| (path.to_string(), digest.to_string()))
        })
        .collect()
}

/// A package upgraded from v1 to v2 whose two RPMs ship the same path with different
/// content (installing both must be a file conflict), the smallest such one; with the
/// path.
pub fn conflicting_upgrade() -> (Pkg, Pkg, String) {
    let d = diff("v1", "v2");
    let mut best: Option<(u64, Pkg, Pkg, String)> = None;
    for (old, new) in &d.upgraded {
        let (a, b) = (rpm_path("v1", &old.name), rpm_path("v2", &new.name));
        let size = fs::metadata(&a).unwrap().len() + fs::metadata(&b).unwrap().len();
        if best.as_ref().is_some_and(|(s, ..)| *s <= size) {
            continue;
        }
        let (fa, fb) = (file_digests(&a), file_digests(&b));
        if let Some(path) = fa
            .iter()
            .find(|(p, dig)| fb.get(*p).is_some_and(|d2| d2 != *dig))
            .map(|(p, _)| p.clone())
        {
            best = Some((size, old.clone(), new.clone(), path));
        }
    }
    let (_, old, new, path) =
        best.expect("no package upgraded from v1 to v2 changes a file: the corpus has no update");
    (old, new, path)
}

/// The STATS line that says which corpus a run used (for benchmark and test logs).
pub fn stats_line() -> String {
    let text = fs::read_to_string(corpus_dir().join("STATS.txt")).unwrap_or_default();
    text.lines()
        .find(|l| l.contains("resolution"))
        .unwrap_or("")
        .to_string()
}
