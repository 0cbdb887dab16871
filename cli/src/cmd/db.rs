//! `arbor db list|diff`: the packages a composed commit holds, and what changed between
//! two commits, from the `rpmostree.rpmdb.pkglist` metadata (no checkout, no rpmdb).

use std::process::ExitCode;

use anyhow::{Context, Result};
use arbor_compose::rpmdb::{self, Package, PkgDiff};
use arbor_repo::{Checksum, Repo};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::RepoArg;

#[derive(Subcommand)]
pub enum DbCommand {
    /// List the packages in a commit, one NEVRA per line (sorted by name).
    List(ListOpts),
    /// Show the packages upgraded, downgraded, removed and added between two commits
    /// (FROM defaults to TO's parent when only one revision is given).
    Diff(DiffOpts),
}

impl DbCommand {
    pub fn run(self) -> Result<ExitCode> {
        match self {
            DbCommand::List(o) => o.run(),
            DbCommand::Diff(o) => o.run(),
        }
    }
}

#[derive(Args)]
pub struct ListOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Print a JSON array of {name, epoch, version, release, arch, nevra}.
    #[arg(long)]
    json: bool,
    /// Branch name or commit checksum (append `^` for the parent).
    rev: String,
}

#[derive(Args)]
pub struct DiffOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Print a JSON object {from, to, upgraded, downgraded, removed, added}.
    #[arg(long)]
    json: bool,
    /// The older revision (branch, checksum, REV^), or the newer one when it is the only
    /// argument (then it is compared with its parent).
    from: String,
    /// The newer revision.
    to: Option<String>,
}

fn packages(repo: &Repo, rev: &str) -> Result<(Checksum, Vec<Package>)> {
    let c = repo
        .resolve_rev(rev)
        .with_context(|| format!("resolving {rev}"))?;
    let commit = repo.read_commit(&c)?;
    let list = rpmdb::pkglist(&commit).with_context(|| format!("reading packages of {rev}"))?;
    Ok((c, list))
}

/// One package of `arbor db list --json`.
#[derive(Serialize)]
struct PackageJson<'a> {
    name: &'a str,
    epoch: u64,
    version: &'a str,
    release: &'a str,
    arch: &'a str,
    /// `name-[epoch:]version-release.arch`.
    nevra: String,
}

impl<'a> PackageJson<'a> {
    fn new(p: &'a Package) -> Self {
        PackageJson {
            name: &p.name,
            epoch: p.epoch,
            version: &p.version,
            release: &p.release,
            arch: &p.arch,
            nevra: p.nevra(),
        }
    }
}

impl ListOpts {
    fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let (_, list) = packages(&repo, &self.rev)?;
        if self.json {
            super::print_json(&list.iter().map(PackageJson::new).collect::<Vec<_>>())?;
        } else {
            for p in &list {
                println!("{p}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The packages that differ between two commits (`arbor db diff --json`, and part of
/// `packages` in `arbor release --json`).
#[derive(Serialize)]
pub struct PkgDiffJson<'a> {
    upgraded: Vec<PackageChangeJson<'a>>,
    downgraded: Vec<PackageChangeJson<'a>>,
    /// NEVRAs.
    removed: Vec<String>,
    /// NEVRAs.
    added: Vec<String>,
}

/// A package upgraded or downgraded: its name and arch (the new ones) and both versions.
#[derive(Serialize)]
struct PackageChangeJson<'a> {
    name: &'a str,
    arch: &'a str,
    /// The old `[epoch:]version-release`.
    from: String,
    /// The new `[epoch:]version-release`.
    to: String,
    from_nevra: String,
    to_nevra: String,
}

impl<'a> PkgDiffJson<'a> {
    pub fn new(d: &'a PkgDiff) -> Self {
        let change = |(o, n): &'a (Package, Package)| PackageChangeJson {
            name: &n.name,
            arch: &n.arch,
            from: o.evr(),
            to: n.evr(),
            from_nevra: o.nevra(),
            to_nevra: n.nevra(),
        };
        PkgDiffJson {
            upgraded: d.upgraded.iter().map(change).collect(),
            downgraded: d.downgraded.iter().map(change).collect(),
            removed: d.removed.iter().map(Package::nevra).collect(),
            added: d.added.iter().map(Package::nevra).collect(),
        }
    }
}

/// `arbor db diff --json`: the two commits compared and what changed.
#[derive(Serialize)]
struct DbDiffJson<'a> {
    /// The older commit (hex).
    from: String,
    /// The newer commit (hex).
    to: String,
    #[serde(flatten)]
    diff: PkgDiffJson<'a>,
}

/// rpm-ostree's `db diff` text.
pub fn diff_text(d: &PkgDiff) -> String {
    let mut s = String::new();
    let mut changes = |title: &str, v: &[(Package, Package)]| {
        if !v.is_empty() {
            s.push_str(&format!("{title}:\n"));
            for (o, n) in v {
                let arch = if o.arch == n.arch {
                    String::new()
                } else {
                    format!(" ({} -> {})", o.arch, n.arch)
                };
                s.push_str(&format!("  {} {} -> {}{arch}\n", n.name, o.evr(), n.evr()));
            }
        }
    };
    changes("Upgraded", &d.upgraded);
    changes("Downgraded", &d.downgraded);
    for (title, v) in [("Removed", &d.removed), ("Added", &d.added)] {
        if !v.is_empty() {
            s.push_str(&format!("{title}:\n"));
            for p in v {
                s.push_str(&format!("  {p}\n"));
            }
        }
    }
    if d.is_empty() {
        s.push_str("No package changes\n");
    }
    s
}

impl DiffOpts {
    fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let (from, to) = match &self.to {
            Some(to) => (self.from.clone(), to.clone()),
            None => (format!("{}^", self.from), self.from.clone()),
        };
        let (fc, old) = packages(&repo, &from)?;
        let (tc, new) = packages(&repo, &to)?;
        let d = rpmdb::diff(&old, &new);
        if self.json {
            super::print_json(&DbDiffJson {
                from: fc.to_hex(),
                to: tc.to_hex(),
                diff: PkgDiffJson::new(&d),
            })?;
        } else {
            println!("ostree diff commit from: {from} ({fc})");
            println!("ostree diff commit to:   {to} ({tc})");
            print!("{}", diff_text(&d));
        }
        Ok(ExitCode::SUCCESS)
    }
}
