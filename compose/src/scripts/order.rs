//! rpm's install order: the order `rpmtsOrder` gives the packages of a transaction
//! (requires, prerequisites, strongly connected components), which is the order rpm runs
//! `%pre`/`%post` in. Taken from the real `rpm` rather than re-implemented: a
//! `rpm -i --test -vv` against an empty database prints it and installs nothing.
//! Packages are handed to rpm sorted by name, as rpm-ostree adds them, so the order
//! does not depend on where the RPMs came from.
//!
//! ```text
//! D: ========== tsorting packages (order, #predecessors, #succesors, depth)
//! D:     0    0    5    1   +sensible-utils-0.0.17+nmu1-0.noarch
//! D:    44    0   14    3       +zlib1g-1:1.2.13.dfsg-1.x86_64
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The order in which to run the packages' scriptlets: indexes into `rpms`
/// (`(NEVRA, RPM path)`, NEVRA with the epoch only when non-zero). `scratch` is an empty
/// directory rpm may put a database in.
pub fn install_order(rpms: &[(String, PathBuf)], scratch: &Path) -> Result<Vec<usize>, String> {
    if rpms.is_empty() {
        return Ok(Vec::new());
    }
    let db = scratch.join("rpmdb");
    std::fs::create_dir_all(&db).map_err(|e| format!("{}: {e}", db.display()))?;
    // rpm takes a relative --dbpath as relative to the root, not the working directory.
    let db = std::path::absolute(&db).map_err(|e| format!("{}: {e}", db.display()))?;
    let mut by_name: Vec<usize> = (0..rpms.len()).collect();
    by_name.sort_by(|&a, &b| rpms[a].0.cmp(&rpms[b].0));
    let out = Command::new("rpm")
        .arg("--dbpath")
        .arg(&db)
        .args([
            "-i",
            "--test",
            "-vv",
            "--nodeps",
            "--ignorearch",
            "--ignoreos",
        ])
        .args(["--nosignature", "--nodigest", "--noscripts", "--notriggers"])
        .args(by_name.iter().map(|&i| &rpms[i].1))
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("cannot run rpm: {e}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    // Each package by `name-version-release.arch` (rpm's `+++` lines leave the epoch
    // out) and by its NEVRA (the tsort listing has it).
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, (n, _)) in rpms.iter().enumerate() {
        index.insert(n.clone(), i);
        index.insert(without_epoch(n), i);
    }
    let mut result = Vec::with_capacity(rpms.len());
    let mut seen = vec![false; rpms.len()];
    for nevra in parse(&log) {
        // rpm prints an explicit `Epoch: 0` as "-0:"; names cannot hold ':'.
        let plain = nevra.replacen("-0:", "-", 1);
        match index.get(&nevra).or_else(|| index.get(&plain)) {
            Some(&i) if !seen[i] => {
                seen[i] = true;
                result.push(i);
            }
            Some(_) => {}
            None => return Err(format!("rpm ordered a package it was not given: {nevra}")),
        }
    }
    if result.len() != rpms.len() {
        return Err(format!(
            "rpm ordered {} of {} packages{}",
            result.len(),
            rpms.len(),
            if out.status.success() {
                String::new()
            } else {
                format!(
                    ": {}",
                    log.lines()
                        .filter(|l| l.starts_with("error"))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        ));
    }
    Ok(result)
}

/// `name-[e:]v-r.arch` → `name-v-r.arch`.
fn without_epoch(nevra: &str) -> String {
    match nevra.find(':') {
        Some(colon) => {
            let dash = nevra[..colon].rfind('-').map_or(0, |d| d + 1);
            format!("{}{}", &nevra[..dash], &nevra[colon + 1..])
        }
        None => nevra.to_string(),
    }
}

/// The packages in rpm's order: the `========== +++ NAME-V-R ARCH-OS 0xC` lines of
/// the transaction (as `NAME-V-R.ARCH`), or, when rpm stopped before them (file
/// conflicts), its tsort listing (NEVRAs, ordered by their first column).
fn parse(log: &str) -> Vec<String> {
    let mut run = Vec::new();
    let mut sorted: Vec<(usize, String)> = Vec::new();
    let mut in_tsort = false;
    for l in log.lines() {
        let Some(rest) = l.strip_prefix("D:") else {
            in_tsort = false;
            continue;
        };
        if rest.contains("tsorting packages") {
            in_tsort = true;
            continue;
        }
        if let Some(item) = rest.trim_start().strip_prefix("========== +++ ") {
            let mut f = item.split_whitespace();
            if let (Some(nvr), Some(arch_os)) = (f.next(), f.next()) {
                let arch = arch_os.split('-').next().unwrap_or(arch_os);
                run.push(format!("{nvr}.{arch}"));
            }
            continue;
        }
        if in_tsort {
            let mut fields = rest.split_whitespace();
            match (
                fields.next().and_then(|f| f.parse::<usize>().ok()),
                fields.nth(3),
            ) {
                (Some(order), Some(item)) => {
                    if let Some(nevra) = item.strip_prefix('+') {
                        sorted.push((order, nevra.to_string()));
                    }
                }
                _ => in_tsort = false,
            }
        }
    }
    if !run.is_empty() {
        return run;
    }
    sorted.sort_by_key(|(o, _)| *o);
    sorted.into_iter().map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rpms_listing() {
        let tsort = "D: opening db\nD: ========== tsorting packages (order, #predecessors, #succesors, depth)\n\
                   D:     1    0    0    2     +pa-1-1.noarch\n\
                   D:     0    0    1    1   +pb-1:2-1.noarch\n\
                   D: ========== recording tsort relations\n";
        assert_eq!(parse(tsort), ["pb-1:2-1.noarch", "pa-1-1.noarch"]);
        let run = format!("{tsort}D: ========== +++ pb-2-1 noarch-linux 0x0\nD: ========== +++ pa-1-1 noarch-linux 0x0\n");
        assert_eq!(parse(&run), ["pb-2-1.noarch", "pa-1-1.noarch"]);
        assert!(parse("D: nothing\n").is_empty());
        assert_eq!(
            without_epoch("vim-common-2:9.0-2.noarch"),
            "vim-common-9.0-2.noarch"
        );
    }
}
