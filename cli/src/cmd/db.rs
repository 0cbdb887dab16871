//! `arbor db list|diff`: the packages a composed commit holds, and what changed between
//! two commits, from the `rpmostree.rpmdb.pkglist` metadata (no checkout, no rpmdb).

use std::process::ExitCode;

use anyhow::{Context, Result};
use arbor_compose::rpmdb::{self, Package, PkgDiff};
use arbor_repo::{Checksum, Repo};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

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

fn package_json(p: &Package) -> Value {
    json!({
        "name": p.name,
        "epoch": p.epoch,
        "version": p.version,
        "release": p.release,
        "arch": p.arch,
        "nevra": p.nevra(),
    })
}

impl ListOpts {
    fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let (_, list) = packages(&repo, &self.rev)?;
        if self.json {
            super::print_json(&Value::Array(list.iter().map(package_json).collect()))?;
        } else {
            for p in &list {
                println!("{p}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The JSON form of a package diff (also part of `arbor release --json`).
pub fn diff_json(d: &PkgDiff) -> Value {
    let change = |(o, n): &(Package, Package)| {
        json!({"name": n.name, "arch": n.arch, "from": o.evr(), "to": n.evr(),
               "from_nevra": o.nevra(), "to_nevra": n.nevra()})
    };
    json!({
        "upgraded": d.upgraded.iter().map(change).collect::<Vec<_>>(),
        "downgraded": d.downgraded.iter().map(change).collect::<Vec<_>>(),
        "removed": d.removed.iter().map(Package::nevra).collect::<Vec<_>>(),
        "added": d.added.iter().map(Package::nevra).collect::<Vec<_>>(),
    })
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
            let mut v = diff_json(&d);
            v["from"] = json!(fc.to_hex());
            v["to"] = json!(tc.to_hex());
            super::print_json(&v)?;
        } else {
            println!("ostree diff commit from: {from} ({fc})");
            println!("ostree diff commit to:   {to} ({tc})");
            print!("{}", diff_text(&d));
        }
        Ok(ExitCode::SUCCESS)
    }
}
