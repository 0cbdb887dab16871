//! The package list a composed commit carries (`rpmostree.rpmdb.pkglist`, `a(sssss)`:
//! name, epoch, version, release, arch), rpm's version ordering, and `db diff` between
//! two commits the way `rpm-ostree db diff` reports it.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use arbor_repo::gvariant::Value;
use arbor_repo::objects::Commit;

/// The commit metadata key holding the package list.
pub const PKGLIST_KEY: &str = "rpmostree.rpmdb.pkglist";

/// One installed package, as the pkglist records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Package {
    pub name: String,
    pub epoch: u64,
    pub version: String,
    pub release: String,
    pub arch: String,
}

impl Package {
    /// `[epoch:]version-release` (epoch only when non-zero), as rpm prints `%{EVR}`.
    pub fn evr(&self) -> String {
        if self.epoch == 0 {
            format!("{}-{}", self.version, self.release)
        } else {
            format!("{}:{}-{}", self.epoch, self.version, self.release)
        }
    }

    /// `name-[epoch:]version-release.arch`, as rpm prints `%{NEVRA}`.
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr(), self.arch)
    }

    /// rpm's ordering of two versions of a package: epoch, then version, then release.
    pub fn cmp_evr(&self, other: &Package) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| rpmvercmp(&self.version, &other.version))
            .then_with(|| rpmvercmp(&self.release, &other.release))
    }
}

impl From<&crate::solve::SolvedPackage> for Package {
    fn from(p: &crate::solve::SolvedPackage) -> Package {
        Package {
            name: p.name.clone(),
            epoch: p.epoch,
            version: p.version.clone(),
            release: p.release.clone(),
            arch: p.arch.clone(),
        }
    }
}

impl fmt::Display for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.nevra())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PkglistError {
    #[error(
        "commit has no {PKGLIST_KEY} metadata (it was not made by a compose: arbor compose \
         or rpm-ostree compose tree)"
    )]
    Missing,
    #[error("commit metadata {PKGLIST_KEY} is not an array of (sssss): {0}")]
    Malformed(String),
}

/// The packages a commit lists, sorted by name, then arch.
pub fn pkglist(commit: &Commit) -> Result<Vec<Package>, PkglistError> {
    let v = commit
        .metadata
        .get(PKGLIST_KEY)
        .ok_or(PkglistError::Missing)?;
    let bad = || PkglistError::Malformed(v.to_text());
    let Value::Array(_, items) = v else {
        return Err(bad());
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Tuple(f) = item else {
            return Err(bad());
        };
        let s = |i: usize| f.get(i).and_then(Value::as_str).ok_or_else(bad);
        if f.len() != 5 {
            return Err(bad());
        }
        let epoch = s(1)?;
        out.push(Package {
            name: s(0)?.to_string(),
            epoch: if epoch.is_empty() {
                0
            } else {
                epoch.parse().map_err(|_| bad())?
            },
            version: s(2)?.to_string(),
            release: s(3)?.to_string(),
            arch: s(4)?.to_string(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.arch.cmp(&b.arch)));
    Ok(out)
}

/// What changed between two package lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PkgDiff {
    /// (old, new) pairs where new is newer.
    pub upgraded: Vec<(Package, Package)>,
    /// (old, new) pairs where new is older.
    pub downgraded: Vec<(Package, Package)>,
    pub added: Vec<Package>,
    pub removed: Vec<Package>,
}

impl PkgDiff {
    pub fn is_empty(&self) -> bool {
        self.upgraded.is_empty()
            && self.downgraded.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
    }
}

/// Compare two package lists. A package is the same package in both when its name and
/// arch match (or, failing that, when its name alone matches one package on each side, so
/// a noarch ↔ arch switch is a change, not a removal plus an addition).
pub fn diff(old: &[Package], new: &[Package]) -> PkgDiff {
    let key = |p: &Package| (p.name.clone(), p.arch.clone());
    let mut old_by: BTreeMap<_, &Package> = old.iter().map(|p| (key(p), p)).collect();
    let mut d = PkgDiff::default();
    let mut added = Vec::new();
    for n in new {
        match old_by.remove(&key(n)) {
            Some(o) => push_change(&mut d, o, n),
            None => added.push(n),
        }
    }
    let mut removed: Vec<&Package> = old_by.into_values().collect();
    for n in added {
        let same_name: Vec<usize> = (0..removed.len())
            .filter(|&i| removed[i].name == n.name)
            .collect();
        let only_new = new.iter().filter(|p| p.name == n.name).count() == 1;
        if let ([i], true) = (same_name.as_slice(), only_new) {
            let o = removed.remove(*i);
            push_change(&mut d, o, n);
        } else {
            d.added.push(n.clone());
        }
    }
    d.removed = removed.into_iter().cloned().collect();
    let by_name = |a: &Package, b: &Package| a.name.cmp(&b.name).then(a.arch.cmp(&b.arch));
    d.added.sort_by(by_name);
    d.removed.sort_by(by_name);
    d.upgraded.sort_by(|a, b| by_name(&a.1, &b.1));
    d.downgraded.sort_by(|a, b| by_name(&a.1, &b.1));
    d
}

fn push_change(d: &mut PkgDiff, o: &Package, n: &Package) {
    if o == n {
        return;
    }
    // rpm-ostree's rpm_ostree_package_cmp: EVR, then the arch names as strings.
    match o.cmp_evr(n).then_with(|| o.arch.cmp(&n.arch)) {
        Ordering::Greater => d.downgraded.push((o.clone(), n.clone())),
        _ => d.upgraded.push((o.clone(), n.clone())),
    }
}

/// rpm's `rpmvercmp` (rpm 4.18 semantics): compare alternating numeric and alphabetic
/// segments, separators ignored, `~` sorts before everything (even the end), `^` after
/// the end but before anything else.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0usize, 0usize);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca.is_none() && cb.is_none() {
            break;
        }
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(ca), Some(_)) = (ca, cb) else {
            break;
        };
        let isnum = ca.is_ascii_digit();
        let class = |c: &u8| {
            if isnum {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let ea = i + a[i..].iter().take_while(|c| class(c)).count();
        let eb = j + b[j..].iter().take_while(|c| class(c)).count();
        if eb == j {
            // Different segment types: numeric is newer than alphabetic.
            return if isnum {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut sa, mut sb) = (&a[i..ea], &b[j..eb]);
        if isnum {
            while sa.first() == Some(&b'0') {
                sa = &sa[1..];
            }
            while sb.first() == Some(&b'0') {
                sb = &sb[1..];
            }
            match sa.len().cmp(&sb.len()) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match sa.cmp(sb) {
            Ordering::Equal => {}
            o => return o,
        }
        i = ea;
        j = eb;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, epoch: u64, v: &str, r: &str, arch: &str) -> Package {
        Package {
            name: name.into(),
            epoch,
            version: v.into(),
            release: r.into(),
            arch: arch.into(),
        }
    }

    /// `rpmostree.rpmdb.pkglist` is read sorted by name; anything but an array of five
    /// strings with a numeric (or empty) epoch is refused, naming what was found.
    #[test]
    fn pkglist_reads_and_refuses() {
        use arbor_repo::gvariant::{Type, VarDict};
        let tuple = |f: [&str; 5]| Value::Tuple(f.iter().map(|s| Value::str(*s)).collect());
        let commit = |v: Option<Value>| {
            let mut metadata = VarDict::new();
            if let Some(v) = v {
                metadata.set(PKGLIST_KEY, v);
            }
            Commit {
                metadata,
                parent: None,
                subject: String::new(),
                body: String::new(),
                timestamp: 0,
                root_tree: arbor_repo::Checksum::of(b"t"),
                root_meta: arbor_repo::Checksum::of(b"m"),
            }
        };
        let list = |items: Vec<Value>| Value::Array(Type::parse("(sssss)").unwrap(), items);
        let good = commit(Some(list(vec![
            tuple(["zlib", "", "1.3", "1", "x86_64"]),
            tuple(["bash", "2", "5.2", "3", "x86_64"]),
        ])));
        assert_eq!(
            pkglist(&good).unwrap(),
            [
                pkg("bash", 2, "5.2", "3", "x86_64"),
                pkg("zlib", 0, "1.3", "1", "x86_64")
            ]
        );
        assert!(matches!(pkglist(&commit(None)), Err(PkglistError::Missing)));
        let bad_epoch = list(vec![tuple(["bash", "two", "5.2", "3", "x86_64"])]);
        let short = Value::Array(
            Type::parse("(ss)").unwrap(),
            vec![Value::Tuple(vec![Value::str("bash"), Value::str("5.2")])],
        );
        for v in [Value::str("bash-5.2-3.x86_64"), short, bad_epoch] {
            let text = v.to_text();
            match pkglist(&commit(Some(v))) {
                Err(e @ PkglistError::Malformed(_)) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains("not an array of (sssss)") && msg.contains(&text),
                        "{msg}"
                    );
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn vercmp_known_cases() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0.1", "2.0", Greater),
            ("1.0.", "1.0", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.0.1", Less),
            ("010", "10", Equal),
            ("1.a", "1.1", Less),
            ("1_0", "1.0", Equal),
            ("1.0.", "1.0", Equal),
            ("abc", "abd", Less),
        ] {
            assert_eq!(rpmvercmp(a, b), want, "{a} vs {b}");
            assert_eq!(rpmvercmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn diff_classifies() {
        let old = vec![
            pkg("a", 0, "1.0", "1", "x86_64"),
            pkg("b", 0, "2.0", "1", "x86_64"),
            pkg("c", 0, "1.0", "1", "noarch"),
            pkg("gone", 0, "1", "1", "x86_64"),
            pkg("same", 1, "1", "1", "x86_64"),
            pkg("switch", 0, "1", "1", "noarch"),
            pkg("to-noarch", 0, "1", "1", "x86_64"),
            pkg("to-x86", 0, "1", "1", "noarch"),
        ];
        let new = vec![
            pkg("a", 0, "1.1", "1", "x86_64"),
            pkg("b", 0, "1.9", "1", "x86_64"),
            pkg("c", 1, "0.1", "1", "noarch"),
            pkg("new", 0, "1", "1", "x86_64"),
            pkg("same", 1, "1", "1", "x86_64"),
            pkg("switch", 0, "1", "2", "x86_64"),
            pkg("to-noarch", 0, "1", "1", "noarch"),
            pkg("to-x86", 0, "1", "1", "x86_64"),
        ];
        let d = diff(&old, &new);
        let names = |v: &[(Package, Package)]| -> Vec<String> {
            v.iter().map(|(o, n)| format!("{o}>{n}")).collect()
        };
        assert_eq!(
            names(&d.upgraded),
            [
                "a-1.0-1.x86_64>a-1.1-1.x86_64",
                "c-1.0-1.noarch>c-1:0.1-1.noarch",
                "switch-1-1.noarch>switch-1-2.x86_64",
                "to-x86-1-1.noarch>to-x86-1-1.x86_64"
            ]
        );
        // Same EVR, another arch: the arch names decide, as in rpm-ostree.
        assert_eq!(
            names(&d.downgraded),
            [
                "b-2.0-1.x86_64>b-1.9-1.x86_64",
                "to-noarch-1-1.x86_64>to-noarch-1-1.noarch"
            ]
        );
        assert_eq!(d.added, [pkg("new", 0, "1", "1", "x86_64")]);
        assert_eq!(d.removed, [pkg("gone", 0, "1", "1", "x86_64")]);
        assert!(diff(&new, &new).is_empty());
    }

    /// rpmvercmp agrees with the real rpm (`rpm.vercmp` in rpm's Lua) on random versions
    /// built from digits, letters and the characters with special meaning.
    #[test]
    fn vercmp_matches_real_rpm() {
        let alphabet = b"0019aZz.~^_+";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let gen = |next: &mut dyn FnMut() -> u64| {
            let n = 1 + (next() % 7) as usize;
            (0..n)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
                .collect::<String>()
        };
        let mut pairs = Vec::new();
        for _ in 0..1500 {
            let a = gen(&mut next);
            // Often `a` plus one character, so that the pair shares a prefix.
            let b = if next() % 2 == 0 {
                let mut b = a.clone();
                b.push_str(&gen(&mut next)[..1]);
                b
            } else {
                gen(&mut next)
            };
            pairs.push((a, b));
        }
        let mut lua = String::from("%{lua:\n");
        for (a, b) in &pairs {
            lua.push_str(&format!("print(rpm.vercmp('{a}', '{b}'))\nprint('\\n')\n"));
        }
        lua.push('}');
        let out = match std::process::Command::new("rpm")
            .arg("--eval")
            .arg(&lua)
            .output()
        {
            Ok(o) => o,
            Err(e) => panic!("this test needs the real rpm (ci/install-deps.sh): {e}"),
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<i32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|t| t.parse().expect("rpm printed a number"))
            .collect();
        assert_eq!(got.len(), pairs.len());
        let mut mismatches = Vec::new();
        for ((a, b), want) in pairs.iter().zip(got) {
            let ours = rpmvercmp(a, b) as i32;
            if ours != want.signum() {
                mismatches.push(format!("{a:?} vs {b:?}: rpm {want}, arbor {ours}"));
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }
}
