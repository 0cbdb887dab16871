//! Users and groups as rpm-ostree keeps them across releases: the previous commit's
//! accounts seed the tree's `/etc/passwd` and `/etc/group` before any scriptlet runs
//! (so `useradd -r` finds them and does not renumber), then the databases are split
//! (`/usr/etc/passwd` keeps uid 0, the rest moves to `/usr/lib/passwd`, read through
//! nss-altfiles; groups likewise, `etc-group-members` in both), locked accounts in
//! `/etc/shadow` lose their date of last change, and `check-passwd`/`check-groups`
//! compare the result with the previous commit, a file or inline data.

use std::collections::{BTreeMap, BTreeSet};

/// One line of a passwd or group file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// uid (passwd) or gid (group).
    pub id: u32,
    /// The primary gid (passwd only).
    pub gid: Option<u32>,
    pub line: String,
}

/// Parse `passwd` (`group == false`) or `group` text; blank lines, comments and NIS
/// `+`/`-` lines are kept out, malformed lines are an error naming the line.
pub fn parse(text: &str, group: bool) -> Result<Vec<Entry>, String> {
    let file = if group { "group" } else { "passwd" };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') || line.starts_with(['+', '-']) {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        let bad = |why: &str| format!("{file} line {}: {why}: {line:?}", n + 1);
        if f.len() < if group { 4 } else { 7 } || f[0].is_empty() {
            return Err(bad("too few fields"));
        }
        let id = f[2].parse().map_err(|_| bad("the id is not a number"))?;
        let gid = if group {
            None
        } else {
            Some(f[3].parse().map_err(|_| bad("the gid is not a number"))?)
        };
        out.push(Entry {
            name: f[0].to_string(),
            id,
            gid,
            line: line.to_string(),
        });
    }
    Ok(out)
}

/// `first`'s entries, then those of `then` whose names `first` lacks (the first line
/// for a name wins, as with getpwnam).
pub fn merge(first: &[Entry], then: &[Entry]) -> Vec<Entry> {
    let mut seen = BTreeSet::new();
    first
        .iter()
        .chain(then)
        .filter(|e| seen.insert(e.name.clone()))
        .cloned()
        .collect()
}

pub fn to_text(entries: &[Entry]) -> String {
    entries.iter().map(|e| format!("{}\n", e.line)).collect()
}

/// rpm-ostree's split: `(kept in /usr/etc, moved to /usr/lib)`. passwd keeps uid 0;
/// group keeps gid 0 and writes `keep` (etc-group-members) to both files.
pub fn split(entries: &[Entry], group: bool, keep: &[String]) -> (Vec<Entry>, Vec<Entry>) {
    let mut etc = Vec::new();
    let mut lib = Vec::new();
    for e in entries {
        if e.id == 0 {
            etc.push(e.clone());
        } else {
            lib.push(e.clone());
            if group && keep.contains(&e.name) {
                etc.push(e.clone());
            }
        }
    }
    (etc, lib)
}

/// The inverse of [`split`], as the seed of the next compose: the id-0 entries kept in
/// `/usr/etc`, then `/usr/lib` in its order, then whatever else `/usr/etc` holds. The
/// `etc-group-members` copies in `/usr/etc` thus take their place in `/usr/lib`'s order,
/// so a compose seeded from its parent writes the same files as one seeded from nothing.
pub fn unsplit(etc: &[Entry], lib: &[Entry]) -> Vec<Entry> {
    let (root, rest): (Vec<Entry>, Vec<Entry>) = etc.iter().cloned().partition(|e| e.id == 0);
    merge(&merge(&root, lib), &rest)
}

/// `/etc/shadow` and `/etc/gshadow` as rpm-ostree normalizes them: the date of last
/// password change (field 3 of shadow) is blanked for locked accounts (`!` or `*`), so
/// the day of the compose does not end up in the tree.
pub fn normalize_shadow(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut f: Vec<&str> = line.split(':').collect();
        if f.len() >= 3 && (f[1].starts_with('!') || f[1].starts_with('*')) {
            f[2] = "";
        }
        out.push_str(&f.join(":"));
        out.push('\n');
    }
    out
}

/// One problem found by [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Fatal: an id changed, or an account still owning files disappeared.
    Error(String),
    /// Printed: an account the treefile allows to go, or that owns no file.
    Note(String),
}

/// rpm-ostree's `check-passwd`/`check-groups`: every `reference` account must still
/// be in `new` with the same ids. A missing one is allowed when `ignored` names it (or
/// holds `*`), or when no file of the tree is owned by its old id (`owns(id)`).
pub fn check(
    reference: &BTreeMap<String, (u32, Option<u32>)>,
    new: &[Entry],
    group: bool,
    ignored: &BTreeSet<String>,
    owns: &mut dyn FnMut(u32) -> bool,
) -> Vec<Finding> {
    let (what, file) = if group {
        ("Group", "group")
    } else {
        ("User", "passwd")
    };
    let by_name: BTreeMap<&str, &Entry> = new.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut out = Vec::new();
    for (name, (id, gid)) in reference {
        match by_name.get(name.as_str()) {
            None if ignored.contains(name) || ignored.contains("*") => {
                out.push(Finding::Note(format!(
                    "Ignored {} missing from new {file} file: {name}",
                    what.to_lowercase()
                )))
            }
            None if owns(*id) => out.push(Finding::Error(format!(
                "{what} missing from new {file} file: {name} (files in the tree are still \
                 owned by {} {id}; list it in ignore-removed-{} to allow this)",
                if group { "gid" } else { "uid" },
                if group { "groups" } else { "users" }
            ))),
            None => out.push(Finding::Note(format!(
                "Unused {} removed from new {file} file: {name}",
                what.to_lowercase()
            ))),
            Some(e) => {
                if e.id != *id {
                    out.push(Finding::Error(format!(
                        "{file} {} changed: {name} ({id} to {})",
                        if group { "GID" } else { "UID" },
                        e.id
                    )));
                }
                if let (Some(want), Some(have)) = (gid, e.gid) {
                    if *want != have {
                        out.push(Finding::Error(format!(
                            "passwd GID changed: {name} ({want} to {have})"
                        )));
                    }
                }
            }
        }
    }
    let added: Vec<&str> = new
        .iter()
        .filter(|e| !reference.contains_key(&e.name))
        .map(|e| e.name.as_str())
        .collect();
    if !added.is_empty() && !reference.is_empty() {
        out.push(Finding::Note(format!(
            "New {file} entries: {}",
            added.join(", ")
        )));
    }
    out
}

/// The reference map of a parsed passwd/group file.
pub fn reference_of(entries: &[Entry]) -> BTreeMap<String, (u32, Option<u32>)> {
    entries
        .iter()
        .map(|e| (e.name.clone(), (e.id, e.gid)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n# c\n\
                          daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                          sshd:!:995:100:sshd:/run/sshd:/usr/sbin/nologin\n";

    #[test]
    fn parse_merge_split() {
        let p = parse(PASSWD, false).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!((p[2].id, p[2].gid), (995, Some(100)));
        let prev = parse("sshd:!:74:74::/:/sbin/nologin\n", false).unwrap();
        let m = merge(&prev, &p);
        assert_eq!(
            m.iter()
                .map(|e| (e.name.as_str(), e.id))
                .collect::<Vec<_>>(),
            [("sshd", 74), ("root", 0), ("daemon", 1)]
        );
        let (etc, lib) = split(&m, false, &[]);
        assert_eq!(etc.len(), 1);
        assert_eq!(lib.len(), 2);
        let g = parse("root:x:0:\nwheel:x:10:a\nusers:x:100:\n", true).unwrap();
        let (etc, lib) = split(&g, true, &["wheel".to_string()]);
        assert_eq!(
            etc.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["root", "wheel"]
        );
        assert_eq!(
            lib.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["wheel", "users"]
        );
        // Seeding from the split files gives back the original order.
        let names = |v: &[Entry]| v.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&unsplit(&etc, &lib)), names(&g));
        assert!(parse("x:x:notanumber:0::/:/bin/sh\n", false)
            .unwrap_err()
            .contains("passwd line 1"));
    }

    #[test]
    fn shadow_dates_of_locked_accounts() {
        assert_eq!(
            normalize_shadow("root:$6$x:19000:0:99999:7:::\nsshd:!:20425::::::\n"),
            "root:$6$x:19000:0:99999:7:::\nsshd:!:::::::\n"
        );
    }

    #[test]
    fn checks() {
        let reference = reference_of(&parse(PASSWD, false).unwrap());
        let new = parse(
            "root:x:0:0::/root:/bin/bash\nsshd:!:996:100::/:/sbin/nologin\nnew:x:5:5::/:/bin/sh\n",
            false,
        )
        .unwrap();
        let f = check(&reference, &new, false, &BTreeSet::new(), &mut |id| id == 1);
        assert!(f.contains(&Finding::Error(
            "passwd UID changed: sshd (995 to 996)".into()
        )));
        assert!(f.iter().any(|x| matches!(x, Finding::Error(e) if e.starts_with("User missing from new passwd file: daemon"))));
        assert!(f.contains(&Finding::Note("New passwd entries: new".into())));
        let f = check(&reference, &new, false, &BTreeSet::new(), &mut |_| false);
        assert!(f.contains(&Finding::Note(
            "Unused user removed from new passwd file: daemon".into()
        )));
        let star = BTreeSet::from(["*".to_string()]);
        let f = check(&reference, &new, false, &star, &mut |_| true);
        assert!(f.contains(&Finding::Note(
            "Ignored user missing from new passwd file: daemon".into()
        )));
    }
}
