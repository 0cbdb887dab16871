//! The validated compose plan: a flattened treefile with variables substituted, the
//! architecture applied, and its repositories resolved from the `*.repo` files next to
//! it (as rpm-ostree does; the host's yum configuration is never read).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};

use crate::treefile::{self, Treefile, TreefileError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootLocation {
    /// Kernel data in `/usr/lib/modules/$kver` only.
    Modules,
    /// Also in `/usr/lib/ostree-boot`.
    New,
}

/// A yum repository from a `.repo` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoConfig {
    pub id: String,
    pub name: String,
    /// `file://`, `http://` or `https://` URLs, tried in order.
    pub baseurls: Vec<String>,
    pub enabled: bool,
    /// dnf's `priority` (lower wins; default 99).
    pub priority: i32,
    /// `exclude`/`excludepkgs`: name globs the solver must not see from this repo.
    pub exclude: Vec<String>,
    /// `includepkgs`: when set, only names matching these globs are seen from it.
    pub include_only: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ComposePlan {
    pub treefile: PathBuf,
    pub dir: PathBuf,
    pub ref_: String,
    pub basearch: String,
    pub releasever: Option<String>,
    pub repos: Vec<RepoConfig>,
    pub packages: Vec<String>,
    pub exclude_packages: Vec<String>,
    /// (repo id, packages only taken from that repo)
    pub repo_packages: Vec<(String, Vec<String>)>,
    pub recommends: bool,
    pub documentation: bool,
    pub automatic_version_prefix: Option<String>,
    pub add_commit_metadata: BTreeMap<String, Json>,
    /// (source path next to the treefile, destination in the tree)
    pub add_files: Vec<(PathBuf, String)>,
    pub remove_files: Vec<String>,
    /// (package name, path regexes)
    pub remove_from_packages: Vec<(String, Vec<String>)>,
    pub units: Vec<String>,
    pub default_target: Option<String>,
    pub boot_location: BootLocation,
    pub tmp_is_dir: bool,
    pub machineid_compat: bool,
    pub etc_group_members: Vec<String>,
    pub container: bool,
    /// The flattened treefile (`--print-only`, the input hash).
    pub flattened: Json,
}

fn invalid(path: &Path, why: impl Into<String>) -> TreefileError {
    TreefileError::Invalid {
        path: path.into(),
        why: why.into(),
    }
}

/// The host architecture in rpm terms.
pub fn host_basearch() -> String {
    match std::env::consts::ARCH {
        "x86" => "i686".into(),
        other => other.into(),
    }
}

impl ComposePlan {
    /// Parse `path` with its includes and validate it.
    pub fn load(path: &Path) -> Result<ComposePlan, TreefileError> {
        let basearch = host_basearch();
        let tf = treefile::load(path, &basearch)?;
        ComposePlan::from_treefile(path, tf, &basearch)
    }

    pub fn from_treefile(
        path: &Path,
        tf: Treefile,
        basearch: &str,
    ) -> Result<ComposePlan, TreefileError> {
        let dir = treefile::parent_dir(path).to_path_buf();
        let mut flattened = serde_json::to_value(&tf).map_err(|e| invalid(path, e.to_string()))?;
        if let Some(obj) = flattened.as_object_mut() {
            for (arch, pkgs) in &tf.arch_packages {
                obj.insert(format!("packages-{arch}"), json!(pkgs));
            }
        }
        let releasever = tf.releasever.as_ref().map(|v| match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        });
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in tf.variables.clone().unwrap_or_default() {
            vars.insert(
                k,
                if let Json::String(s) = v {
                    s
                } else {
                    v.to_string()
                },
            );
        }
        vars.insert("basearch".into(), basearch.to_string());
        if let Some(r) = &releasever {
            vars.insert("releasever".into(), r.clone());
        }
        let sub = |s: &str| treefile::substitute(s, &vars).map_err(|e| invalid(path, e));
        // rpm-ostree substitutes the top-level strings of `metadata` too.
        if let Some(md) = flattened.get_mut("metadata").and_then(Json::as_object_mut) {
            for v in md.values_mut() {
                if let Json::String(text) = v {
                    *text = sub(text)?;
                }
            }
        }
        let ref_ = sub(tf
            .ref_
            .as_deref()
            .ok_or_else(|| invalid(path, "no `ref` set"))?)?;
        arbor_repo::store::validate_ref_name(&ref_)
            .map_err(|e| invalid(path, format!("ref: {e}")))?;
        if let Some(obj) = flattened.as_object_mut() {
            obj.insert("ref".into(), Json::String(ref_.clone()));
        }

        if tf.selinux.unwrap_or(true) {
            return Err(TreefileError::NotImplemented {
                path: path.into(),
                key: "selinux".into(),
                hint: " (SELinux labeling; set `selinux: false`)".into(),
            });
        }
        for (key, spec) in [
            ("check-passwd", &tf.check_passwd),
            ("check-groups", &tf.check_groups),
        ] {
            match spec {
                Some(s) if s.kind == "none" => {}
                Some(s) => {
                    return Err(TreefileError::NotImplemented {
                        path: path.into(),
                        key: key.into(),
                        hint: format!(" (type {:?}; only `type: none` is supported)", s.kind),
                    })
                }
                None => {
                    return Err(TreefileError::NotImplemented {
                        path: path.into(),
                        key: key.into(),
                        hint: " (the default `type: previous`; set `type: none`)".into(),
                    })
                }
            }
        }
        match tf.rpmdb.as_deref() {
            None | Some("sqlite" | "target" | "host") => {}
            Some(other) => {
                return Err(TreefileError::NotImplemented {
                    path: path.into(),
                    key: "rpmdb".into(),
                    hint: format!(" (format {other:?}; arbor writes sqlite rpmdbs)"),
                })
            }
        }
        let edition_2024 =
            matches!(&tf.edition, Some(e) if e.to_string().trim_matches('"') == "2024");
        let boot_location = match tf.boot_location.as_deref() {
            Some("modules") => BootLocation::Modules,
            Some("new") => BootLocation::New,
            None if edition_2024 => BootLocation::Modules,
            None => BootLocation::New,
            Some(other) => {
                return Err(TreefileError::NotImplemented {
                    path: path.into(),
                    key: "boot-location".into(),
                    hint: format!(" (value {other:?}; use `modules` or `new`)"),
                })
            }
        };
        let container = tf.container.unwrap_or(false);

        let mut packages = Vec::new();
        let arch_pkgs = tf.arch_packages.get(basearch).cloned().unwrap_or_default();
        for entry in tf.packages.iter().flatten().chain(arch_pkgs.iter()) {
            // Entries split on whitespace; a quoted entry keeps a version query whole.
            if let Some(q) = entry.strip_prefix('\'').and_then(|e| e.strip_suffix('\'')) {
                packages.push(q.to_string());
            } else {
                packages.extend(entry.split_whitespace().map(str::to_string));
            }
        }
        let exclude_packages = tf.exclude_packages.clone().unwrap_or_default();
        if let Some(both) = packages.iter().find(|p| exclude_packages.contains(p)) {
            return Err(invalid(
                path,
                format!("package {both:?} is both in packages and exclude-packages"),
            ));
        }
        let mut repo_packages: Vec<(String, Vec<String>)> = Vec::new();
        for rp in tf.repo_packages.iter().flatten() {
            let pkgs: Vec<String> = rp
                .packages
                .iter()
                .flat_map(|p| p.split_whitespace())
                .map(str::to_string)
                .collect();
            // A later entry overrides an earlier one for the same package.
            for (_, earlier) in repo_packages.iter_mut() {
                earlier.retain(|p| !pkgs.contains(p));
            }
            repo_packages.push((rp.repo.clone(), pkgs));
        }
        repo_packages.retain(|(_, p)| !p.is_empty());

        let mut add_commit_metadata = BTreeMap::new();
        for (k, v) in tf.add_commit_metadata.clone().unwrap_or_default() {
            let v = match v {
                Json::String(s) => Json::String(sub(&s)?),
                other => other,
            };
            add_commit_metadata.insert(k, v);
        }
        let mut add_files = Vec::new();
        for (src, dest) in &tf.add_files_resolved {
            add_files.push((
                src.clone(),
                add_files_dest(dest).map_err(|e| invalid(path, e))?,
            ));
        }
        let remove_files = tf.remove_files.clone().unwrap_or_default();
        for f in &remove_files {
            if f.starts_with('/') || f.split('/').any(|s| s == "..") {
                return Err(invalid(
                    path,
                    format!("remove-files: {f:?} must be a relative path without .."),
                ));
            }
        }
        let mut remove_from_packages = Vec::new();
        for entry in tf.remove_from_packages.iter().flatten() {
            let Some((pkg, regexes)) = entry.split_first() else {
                return Err(invalid(path, "remove-from-packages: empty entry"));
            };
            for r in regexes {
                regex::Regex::new(r)
                    .map_err(|e| invalid(path, format!("remove-from-packages: {r:?}: {e}")))?;
            }
            remove_from_packages.push((pkg.clone(), regexes.to_vec()));
        }
        let repos = load_repos(&dir, tf.repos.as_deref(), releasever.as_deref(), basearch)?;
        if let Some((repo, _)) = repo_packages
            .iter()
            .find(|(r, _)| !repos.iter().any(|c| c.id == *r))
        {
            return Err(invalid(
                path,
                format!(
                    "repo-packages: repo {repo:?} is not among the enabled repos ({})",
                    repos
                        .iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let machineid_compat = tf.machineid_compat.unwrap_or(true);
        if !machineid_compat && tf.units.as_ref().is_some_and(|u| !u.is_empty()) {
            tracing::warn!(
                "{}: `units` with `machineid-compat: false`: rpm-ostree refuses this pair, \
                 since systemd's first boot (no machine-id) runs `preset-all`, which may \
                 disable these units again; arbor links them anyway",
                path.display()
            );
        }
        Ok(ComposePlan {
            treefile: path.to_path_buf(),
            dir,
            ref_,
            basearch: basearch.to_string(),
            releasever,
            repos,
            packages,
            exclude_packages,
            repo_packages,
            recommends: tf.recommends.unwrap_or(true),
            documentation: tf.documentation.unwrap_or(true),
            automatic_version_prefix: tf
                .automatic_version_prefix
                .as_deref()
                .map(sub)
                .transpose()?,
            add_commit_metadata,
            add_files,
            remove_files,
            remove_from_packages,
            units: tf.units.clone().unwrap_or_default(),
            default_target: tf.default_target.clone(),
            boot_location,
            tmp_is_dir: tf.tmp_is_dir.unwrap_or(container || edition_2024),
            machineid_compat,
            etc_group_members: tf.etc_group_members.clone().unwrap_or_default(),
            container,
            flattened,
        })
    }
}

/// An `add-files` destination as rpm-ostree accepts it: under `/usr` (not `/usr/local`),
/// `/etc`, or the `/bin`, `/sbin`, `/lib`, `/lib64` compat paths; no `.` or `..`.
fn add_files_dest(dest: &str) -> Result<String, String> {
    // Repeated and trailing slashes are tolerated (the path is normalised), as in a shell.
    let parts: Vec<&str> = dest.split('/').filter(|c| !c.is_empty()).collect();
    let rel = parts.join("/");
    let ok = parts.len() >= 2
        && ["usr", "etc", "bin", "sbin", "lib", "lib64"].contains(&parts[0])
        && !(parts[0] == "usr" && parts[1] == "local")
        && parts.iter().all(|c| *c != "." && *c != "..");
    if ok {
        Ok(format!("/{rel}"))
    } else {
        Err(format!(
            "add-files: unsupported destination {dest:?} (a file under /usr but not \
             /usr/local, /etc, /bin, /sbin, /lib or /lib64, without . or ..)"
        ))
    }
}

/// Repositories from the `*.repo` files in `dir`: the named ones (all must exist), or
/// every enabled one when `names` is `None`.
fn load_repos(
    dir: &Path,
    names: Option<&[String]>,
    releasever: Option<&str>,
    basearch: &str,
) -> Result<Vec<RepoConfig>, TreefileError> {
    let mut all: Vec<(PathBuf, RepoConfig)> = Vec::new();
    let entries = fs::read_dir(dir).map_err(|source| TreefileError::Io {
        path: dir.into(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("repo"))
        .collect();
    files.sort();
    for f in files {
        let text = fs::read_to_string(&f).map_err(|source| TreefileError::Io {
            path: f.clone(),
            source,
        })?;
        all.extend(
            parse_repo_file(&f, &text)?
                .into_iter()
                .map(|r| (f.clone(), r)),
        );
    }
    let chosen: Vec<(PathBuf, RepoConfig)> = match names {
        None => all.into_iter().filter(|(_, r)| r.enabled).collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                all.iter()
                    .find(|(_, r)| &r.id == n)
                    .cloned()
                    .ok_or_else(|| {
                        invalid(
                            dir,
                            format!(
                                "repo {n:?} is not defined in any *.repo file in {}",
                                dir.display()
                            ),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    chosen
        .into_iter()
        .map(|(file, mut r)| {
            for u in &mut r.baseurls {
                *u = repo_vars(&file, &r.id, u, releasever, basearch)?;
            }
            Ok(r)
        })
        .collect()
}

/// dnf's variables in a `.repo` value: `$name` or `${name}` for `releasever`,
/// `releasever_major`, `releasever_minor`, `basearch` and `arch`; other names are left
/// as they are (as dnf does). A `releasever` variable without a `releasever` in the
/// treefile is an error naming the file and the repo.
fn repo_vars(
    path: &Path,
    repo: &str,
    value: &str,
    releasever: Option<&str>,
    basearch: &str,
) -> Result<String, TreefileError> {
    let lookup = |name: &str| -> Result<Option<String>, TreefileError> {
        let rel = || {
            releasever.ok_or_else(|| {
                invalid(
                    path,
                    format!(
                        "repo {repo}: {value:?} uses ${name}, but the treefile sets no releasever"
                    ),
                )
            })
        };
        Ok(match name {
            "basearch" | "arch" => Some(basearch.to_string()),
            "releasever" => Some(rel()?.to_string()),
            "releasever_major" => Some(rel()?.split('.').next().unwrap_or("").to_string()),
            "releasever_minor" => Some(rel()?.split_once('.').map_or("", |(_, m)| m).to_string()),
            _ => None,
        })
    };
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(b) => match b.find('}') {
                Some(end) => (&b[..end], end + 2),
                None => ("", 0),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match lookup(name)? {
            Some(v) if !name.is_empty() => {
                out.push_str(&v);
                rest = &after[len..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Parse a yum `.repo` file (INI). Only `baseurl` repositories are supported;
/// `priority`, `exclude`/`excludepkgs` and `includepkgs` are honoured as dnf does. URLs
/// are kept as written: [`load_repos`] substitutes dnf's variables in the repos it uses.
pub fn parse_repo_file(path: &Path, text: &str) -> Result<Vec<RepoConfig>, TreefileError> {
    let mut out: Vec<RepoConfig> = Vec::new();
    let mut last_key = String::new();
    for raw in text.lines() {
        let line = raw.trim_end();
        if line.trim().is_empty()
            || line.trim_start().starts_with('#')
            || line.trim_start().starts_with(';')
        {
            continue;
        }
        if let Some(id) = line
            .trim()
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
        {
            out.push(RepoConfig {
                id: id.trim().into(),
                name: id.trim().into(),
                baseurls: vec![],
                enabled: true,
                priority: 99,
                exclude: vec![],
                include_only: vec![],
            });
            continue;
        }
        let Some(repo) = out.last_mut() else {
            return Err(invalid(path, format!("line outside a [section]: {line:?}")));
        };
        // Continuation lines (leading whitespace) add more base URLs.
        if raw.starts_with([' ', '\t']) && last_key == "baseurl" {
            repo.baseurls.extend(globs(line));
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(invalid(path, format!("cannot parse line {line:?}")));
        };
        let (k, v) = (k.trim(), v.trim());
        last_key = k.to_string();
        match k {
            "name" => repo.name = v.into(),
            "baseurl" => repo.baseurls.extend(globs(v)),
            "enabled" => repo.enabled = is_true(v),
            "priority" => {
                repo.priority = v.parse().map_err(|_| {
                    invalid(
                        path,
                        format!("repo {}: priority {v:?} is not a number", repo.id),
                    )
                })?
            }
            "exclude" | "excludepkgs" => repo.exclude.extend(globs(v)),
            "includepkgs" => repo.include_only.extend(globs(v)),
            "gpgcheck" | "repo_gpgcheck" if is_true(v) => tracing::warn!(
                "{}: repo {}: {k}={v}: arbor does not check signatures; packages are \
                 checked against the repository metadata's checksums only",
                path.display(),
                repo.id
            ),
            "metalink" | "mirrorlist" => {
                return Err(TreefileError::NotImplemented {
                    path: path.into(),
                    key: k.into(),
                    hint: format!(" (repo {}; use baseurl)", repo.id),
                })
            }
            _ => {}
        }
    }
    for r in &out {
        if r.baseurls.is_empty() {
            return Err(invalid(path, format!("repo {} has no baseurl", r.id)));
        }
    }
    Ok(out)
}

fn is_true(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

/// dnf's lists in `.repo` files (URLs, package globs): separated by commas or spaces.
fn globs(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_files() {
        let x = Path::new("x.repo");
        let r = parse_repo_file(
            x,
            "[a]\nname=A\nbaseurl=file:///srv/$releasever/a\n  http://m/${basearch}/a\nenabled=1\ngpgcheck=0\npriority=10\nexclude=foo*, bar\n[b]\nbaseurl=http://b\nenabled=0\nincludepkgs=baz\n",
        )
        .unwrap();
        assert_eq!(
            r[0].baseurls,
            ["file:///srv/$releasever/a", "http://m/${basearch}/a"]
        );
        let sub = |v: &str, rel: Option<&str>| repo_vars(x, "a", v, rel, "x86_64");
        assert_eq!(
            sub("/$releasever/${basearch}/", Some("10.1")).unwrap(),
            "/10.1/x86_64/"
        );
        assert_eq!(
            sub(
                "/$releasever_major-$releasever_minor/$arch/$other/${x}/$",
                Some("10.1")
            )
            .unwrap(),
            "/10-1/x86_64/$other/${x}/$"
        );
        let e = sub("http://m/$releasever/", None).unwrap_err().to_string();
        assert!(
            e.contains("releasever") && e.contains("x.repo") && e.contains("repo a"),
            "{e}"
        );
        assert_eq!((r[0].priority, r[1].priority), (10, 99));
        assert_eq!(r[0].exclude, ["foo*", "bar"]);
        assert_eq!(r[1].include_only, ["baz"]);
        assert!(!r[1].enabled);
        assert!(parse_repo_file(x, "[a]\nmetalink=http://x\n").is_err());
        assert_eq!(add_files_dest("//usr//share/x/").unwrap(), "/usr/share/x");
        let on = parse_repo_file(x, "[a]\nbaseurl=http://a\nenabled=True\n[b]\nbaseurl=http://b\nenabled=off\n[c]\nbaseurl=http://c\nenabled=on\ngpgcheck=1\n").unwrap();
        assert_eq!(
            on.iter().map(|r| r.enabled).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(add_files_dest("etc/motd").unwrap(), "/etc/motd");
        for bad in [
            "/usr/local/x",
            "/usr",
            "/var/x",
            "/usr/../etc/x",
            "/usr/./x",
        ] {
            assert!(add_files_dest(bad).is_err(), "{bad}");
        }
        assert!(parse_repo_file(x, "[a]\nbaseurl=http://b\npriority=high\n").is_err());
    }

    #[test]
    fn corpus_like_plan() {
        let d = tempfile::tempdir().unwrap();
        fs::write(
            d.path().join("c.repo"),
            "[corpus-v1]\nbaseurl=file:///nowhere\nenabled=1\n",
        )
        .unwrap();
        let p = d.path().join("t.yaml");
        fs::write(
            &p,
            "ref: os/${basearch}/x\nrepos: [corpus-v1]\nselinux: false\ncheck-passwd: {type: none}\ncheck-groups: {type: none}\npackages: ['bash coreutils', \"'podman >= 4.1'\"]\nadd-commit-metadata: {a: '${releasever}'}\nreleasever: 12\n",
        )
        .unwrap();
        let plan = ComposePlan::from_treefile(&p, treefile::load(&p, "x86_64").unwrap(), "x86_64")
            .unwrap();
        assert_eq!(plan.ref_, "os/x86_64/x");
        assert_eq!(plan.packages, ["bash", "coreutils", "podman >= 4.1"]);
        assert_eq!(plan.add_commit_metadata["a"], "12");
        assert_eq!(plan.repos[0].id, "corpus-v1");
        fs::write(&p, "ref: x\nrepos: [missing]\nselinux: false\ncheck-passwd: {type: none}\ncheck-groups: {type: none}\n").unwrap();
        let e = ComposePlan::from_treefile(&p, treefile::load(&p, "x86_64").unwrap(), "x86_64")
            .unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
