//! The validated compose plan: a flattened treefile with variables substituted, the
//! architecture applied, every key turned into a typed value with its default, and
//! the repositories resolved from the `*.repo` files next to it (as rpm-ostree does;
//! the host's yum configuration is never read).

mod repo_file;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

pub use repo_file::parse_repo_file;
use repo_file::{read_sections, RepoSection, RepoVars};

use crate::treefile::{self, CheckSpec, Problem, Treefile, TreefileError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BootLocation {
    /// Kernel data in `/usr/lib/modules/$kver` only.
    Modules,
    /// Also in `/usr/lib/ostree-boot` (edition 2014's default).
    #[default]
    New,
    /// `/usr/lib/modules/$kver` only, and the tree integrates with systemd's
    /// `kernel-install` (`layout=ostree`).
    KernelInstall,
}

/// `check-passwd` / `check-groups`: what the new passwd/group is checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AccountCheck {
    None,
    /// The previous commit's (rpm-ostree's default).
    #[default]
    Previous,
    /// A passwd/group file, resolved against the treefile that names it.
    File(PathBuf),
    /// Inline entries: name → ids.
    Data(BTreeMap<String, AccountIds>),
}

/// One `check-*: data` entry. passwd: the uid, and the gid when given as `[uid, gid]`
/// (`None`: the same as the uid, as rpm-ostree reads `uid` and `[uid]`); groups: the
/// gid in `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountIds {
    pub id: u32,
    pub gid: Option<u32>,
}

/// `opt-usrlocal`: how `/opt` and `/usr/local` are laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OptUsrlocal {
    /// Symlinks into `/var` (machine-local state).
    #[default]
    Var,
    /// Plain directories in the tree.
    Root,
    /// Content from packages in the tree, writable through a state overlay.
    StateOverlay,
}

/// `repo-metadata` / `advisories-metadata`: where the data goes in the commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetadataPlacement {
    #[default]
    Inline,
    /// In the detached metadata: out of the commit checksum.
    Detached,
    Disabled,
}

/// arbor's `scriptlet-overrides` item: run `script` with `/bin/sh` instead of the
/// package's scriptlet, or skip it when `script` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptletOverride {
    pub package: String,
    /// `pre`, `post`, `posttrans`, `pretrans`, `transfiletriggerin`, `triggerin`, …
    pub scriptlet: String,
    pub script: Option<String>,
}

/// A yum repository from a `.repo` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoConfig {
    pub id: String,
    pub name: String,
    /// `file://`, `http://` or `https://` URLs, tried in order.
    pub baseurls: Vec<String>,
    /// A URL listing mirrors, one per line (tried after `baseurls`).
    pub mirrorlist: Option<String>,
    /// A metalink URL: mirrors, and the checksums `repomd.xml` must match.
    pub metalink: Option<String>,
    pub enabled: bool,
    /// dnf's `priority` (lower wins; default 99).
    pub priority: i32,
    /// `exclude`/`excludepkgs`: name globs the solver must not see from this repo.
    pub exclude: Vec<String>,
    /// `includepkgs`: when set, only names matching these globs are seen from it.
    pub include_only: Vec<String>,
}

impl Default for RepoConfig {
    fn default() -> Self {
        RepoConfig {
            id: String::new(),
            name: String::new(),
            baseurls: Vec::new(),
            mirrorlist: None,
            metalink: None,
            enabled: true,
            priority: 99,
            exclude: Vec::new(),
            include_only: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default)]
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
    /// Inline scripts, in execution order: a later include's before an earlier
    /// include's, an included file's before its includer's (rpm-ostree's order).
    pub postprocess: Vec<String>,
    /// Runs after every inline script; resolved, exists and is executable.
    pub postprocess_script: Option<PathBuf>,
    pub mutate_os_release: Option<String>,
    /// Separator before the counter of automatic versions (default `.`).
    pub automatic_version_suffix: char,
    /// Default `Previous`; a container's `None`.
    pub check_passwd: AccountCheck,
    pub check_groups: AccountCheck,
    /// Users that may disappear; `*` allows any.
    pub ignore_removed_users: BTreeSet<String>,
    pub ignore_removed_groups: BTreeSet<String>,
    /// Default true; a container's false.
    pub preserve_passwd: bool,
    pub container_cmd: Vec<String>,
    pub opt_usrlocal: OptUsrlocal,
    pub readonly_executables: bool,
    pub install_langs: Vec<String>,
    pub repovars: BTreeMap<String, String>,
    /// Repositories only used for packages a lockfile pins.
    pub lockfile_repos: Vec<RepoConfig>,
    pub ostree_layers: Vec<String>,
    pub ostree_override_layers: Vec<String>,
    pub gpg_key: Option<String>,
    pub cliwrap: bool,
    pub cliwrap_binaries: Vec<String>,
    /// `compose-auto` or `compose-forced`, as given.
    pub sysusers: Option<String>,
    pub initramfs_args: Vec<String>,
    pub no_initramfs: bool,
    pub rpmdb_normalize: bool,
    /// Label the tree at compose time (default true; a container's false).
    pub selinux: bool,
    /// 0, or 1 to label `/usr/etc` as `/etc`.
    pub selinux_label_version: u32,
    /// Drop character and block devices (default true).
    pub ignore_devices: bool,
    pub ima: bool,
    pub repo_metadata: MetadataPlacement,
    pub advisories_metadata: MetadataPlacement,
    pub scriptlet_overrides: Vec<ScriptletOverride>,
    /// The flattened treefile (`--print-only`, the input hash).
    pub flattened: Json,
}

/// The host architecture in rpm terms.
pub fn host_basearch() -> String {
    match std::env::consts::ARCH {
        "x86" => "i686".into(),
        other => other.into(),
    }
}

/// The first `${name}` left in `s` after substitution (an unknown variable).
fn leftover_var(s: &str) -> Option<&str> {
    let i = s.find("${")?;
    let end = s[i..].find('}')?;
    Some(&s[i..i + end + 1])
}

fn account_check(spec: Option<&CheckSpec>, passwd: bool) -> AccountCheck {
    let Some(spec) = spec else {
        return AccountCheck::Previous;
    };
    match spec.kind.as_str() {
        "none" => AccountCheck::None,
        "file" => AccountCheck::File(spec.resolved.clone().unwrap_or_default()),
        "data" => AccountCheck::Data(
            spec.entries
                .as_ref()
                .and_then(Json::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(name, v)| {
                    let (id, gid) = treefile::account_ids(v, passwd)?;
                    Some((name.clone(), AccountIds { id, gid }))
                })
                .collect(),
        ),
        _ => AccountCheck::Previous,
    }
}

fn placement(v: Option<&str>) -> MetadataPlacement {
    match v {
        Some("detached") => MetadataPlacement::Detached,
        Some("disabled") => MetadataPlacement::Disabled,
        _ => MetadataPlacement::Inline,
    }
}

impl ComposePlan {
    /// Parse `path` with its includes and validate it; every problem found, in the
    /// treefiles and in the plan, is reported in one error.
    pub fn load(path: &Path) -> Result<ComposePlan, TreefileError> {
        let basearch = host_basearch();
        let (tf, problems) = treefile::load_collecting(path, &basearch)?;
        ComposePlan::build(path, tf, &basearch, problems)
    }

    /// Validate a treefile loaded by [`treefile::load`].
    pub fn from_treefile(
        path: &Path,
        tf: Treefile,
        basearch: &str,
    ) -> Result<ComposePlan, TreefileError> {
        ComposePlan::build(path, tf, basearch, Vec::new())
    }

    /// The compact JSON the input hash covers: the flattened treefile without
    /// `metadata` and without the *names* of `ostree-layers` (rpm-ostree hashes the
    /// layers' content checksums instead; `ostree-override-layers` names stay, as
    /// there).
    pub fn hashed_treefile(&self) -> String {
        let hashed: BTreeMap<&String, &Json> = self
            .flattened
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| *k != "metadata" && *k != "ostree-layers")
            .collect();
        serde_json::to_string(&hashed).expect("JSON values serialize")
    }

    fn build(
        path: &Path,
        tf: Treefile,
        basearch: &str,
        mut problems: Vec<Problem>,
    ) -> Result<ComposePlan, TreefileError> {
        let mut bad = |key: &str, why: String| problems.push(Problem::new(path, key, why));
        let dir = treefile::parent_dir(path).to_path_buf();
        let flattened = tf.to_json();
        let releasever = tf.releasever.as_ref().map(treefile::var_text);

        let ref_ = match tf.ref_.as_deref() {
            None => {
                bad("ref", "no `ref` set".into());
                String::new()
            }
            Some(r) => {
                if let Some(v) = leftover_var(r) {
                    bad("ref", format!("{r:?}: unknown variable {v}"));
                } else if let Err(e) = arbor_repo::layout::validate_ref_name(r) {
                    bad("ref", e.to_string());
                }
                r.to_string()
            }
        };
        for (key, value) in [
            ("automatic-version-prefix", &tf.automatic_version_prefix),
            ("mutate-os-release", &tf.mutate_os_release),
        ] {
            if let Some(v) = value.as_deref().and_then(leftover_var) {
                bad(key, format!("unknown variable {v}"));
            }
        }
        for (k, v) in tf.add_commit_metadata.iter().flatten() {
            if let Some(var) = v.as_str().and_then(leftover_var) {
                bad(
                    "add-commit-metadata",
                    format!("{k}: unknown variable {var}"),
                );
            }
        }

        let container = tf.container.unwrap_or(false);
        let edition_2024 = tf.edition.as_ref().and_then(treefile::edition_of) == Some(2024);
        let boot_location = match tf.boot_location.as_deref() {
            Some("modules") => BootLocation::Modules,
            Some("kernel-install") => BootLocation::KernelInstall,
            Some(_) => BootLocation::New,
            None if edition_2024 => BootLocation::Modules,
            None => BootLocation::New,
        };
        if tf.boot_location.as_deref() == Some("new") {
            tracing::warn!("boot-location: new is deprecated, use boot-location: modules");
        }
        if tf.initramfs_args.as_ref().is_some_and(|a| !a.is_empty()) {
            tracing::warn!("initramfs-args is deprecated, use /etc/dracut.conf.d");
        }
        if tf.cliwrap == Some(true) {
            tracing::warn!("cliwrap is deprecated and slated for removal");
        }
        let selinux_label_version = tf.selinux_label_version.unwrap_or(0);
        if selinux_label_version > 1 {
            bad(
                "selinux-label-version",
                format!("{selinux_label_version} (0 or 1)"),
            );
        }
        let repovars = tf.repovars.clone().unwrap_or_default();
        if repovars.contains_key("releasever") {
            bad(
                "repovars",
                "\"releasever\" is not a repo variable; use the releasever key".into(),
            );
        }
        if repovars.contains_key("basearch") {
            bad("repovars", "\"basearch\" is filled in automatically".into());
        }
        // The files keys name (rpm-ostree opens them when it reads the treefile).
        let mut external = |key: &str, p: &Path| {
            if !p.exists() {
                bad(key, format!("{} does not exist", p.display()));
                false
            } else {
                true
            }
        };
        for (src, _) in &tf.add_files_resolved {
            external("add-files", src);
        }
        for (key, spec) in [
            ("check-passwd", &tf.check_passwd),
            ("check-groups", &tf.check_groups),
        ] {
            if let Some(p) = spec.as_ref().and_then(|s| s.resolved.as_deref()) {
                external(key, p);
            }
        }
        if let Some(script) = &tf.postprocess_script_resolved {
            if external("postprocess-script", script) {
                let mode = fs::metadata(script).map_or(0, |m| m.permissions().mode());
                if mode & 0o111 == 0 {
                    bad(
                        "postprocess-script",
                        format!("{} must be executable", script.display()),
                    );
                }
            }
        }

        let packages = tf.packages_for(basearch);
        let exclude_packages = tf.exclude_packages.clone().unwrap_or_default();
        if let Some(both) = packages.iter().find(|p| exclude_packages.contains(p)) {
            bad(
                "exclude-packages",
                format!("package {both:?} is both in packages and exclude-packages"),
            );
        }
        let mut repo_packages: Vec<(String, Vec<String>)> = Vec::new();
        for rp in tf.repo_packages.iter().flatten() {
            // A later entry overrides an earlier one for the same package.
            for (_, earlier) in repo_packages.iter_mut() {
                earlier.retain(|p| !rp.packages.contains(p));
            }
            repo_packages.push((rp.repo.clone(), rp.packages.clone()));
        }
        repo_packages.retain(|(_, p)| !p.is_empty());

        let add_files = tf
            .add_files_resolved
            .iter()
            .filter_map(|(src, dest)| Some((src.clone(), treefile::add_files_dest(dest).ok()?)))
            .collect();
        let remove_from_packages = tf
            .remove_from_packages
            .iter()
            .flatten()
            .filter_map(|e| e.split_first())
            .map(|(pkg, regexes)| (pkg.clone(), regexes.to_vec()))
            .collect();

        let vars = RepoVars {
            releasever: releasever.clone(),
            basearch: basearch.to_string(),
            custom: repovars.clone(),
        };
        let (repos, lockfile_repos) = load_repos(
            &dir,
            tf.repos.as_deref(),
            tf.lockfile_repos.as_deref().unwrap_or_default(),
            &vars,
            &mut bad,
        )?;
        if let Some((repo, _)) = repo_packages
            .iter()
            .find(|(r, _)| !repos.iter().any(|c| c.id == *r))
        {
            bad(
                "repo-packages",
                format!(
                    "repo {repo:?} is not among the enabled repos ({})",
                    repos
                        .iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
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
        if !problems.is_empty() {
            return Err(TreefileError::Unsupported(problems));
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
            automatic_version_prefix: tf.automatic_version_prefix.clone(),
            add_commit_metadata: tf.add_commit_metadata.clone().unwrap_or_default(),
            add_files,
            remove_files: tf.remove_files.clone().unwrap_or_default(),
            remove_from_packages,
            units: tf.units.clone().unwrap_or_default(),
            default_target: tf.default_target.clone(),
            boot_location,
            tmp_is_dir: tf.tmp_is_dir.unwrap_or(container || edition_2024),
            machineid_compat,
            etc_group_members: tf.etc_group_members.clone().unwrap_or_default(),
            container,
            postprocess: tf.postprocess.clone().unwrap_or_default(),
            postprocess_script: tf.postprocess_script_resolved.clone(),
            mutate_os_release: tf.mutate_os_release.clone(),
            automatic_version_suffix: tf
                .automatic_version_suffix
                .as_deref()
                .and_then(|s| s.chars().next())
                .unwrap_or('.'),
            check_passwd: account_check(tf.check_passwd.as_ref(), true),
            check_groups: account_check(tf.check_groups.as_ref(), false),
            ignore_removed_users: tf.ignore_removed_users.clone().unwrap_or_default(),
            ignore_removed_groups: tf.ignore_removed_groups.clone().unwrap_or_default(),
            preserve_passwd: tf.preserve_passwd.unwrap_or(!container),
            container_cmd: tf.container_cmd.clone().unwrap_or_default(),
            opt_usrlocal: match tf.opt_usrlocal.as_deref() {
                Some("root") => OptUsrlocal::Root,
                Some("state-overlay") => OptUsrlocal::StateOverlay,
                _ => OptUsrlocal::Var,
            },
            readonly_executables: tf.readonly_executables.unwrap_or(false),
            install_langs: tf.install_langs.clone().unwrap_or_default(),
            repovars,
            lockfile_repos,
            ostree_layers: tf.ostree_layers.clone().unwrap_or_default(),
            ostree_override_layers: tf.ostree_override_layers.clone().unwrap_or_default(),
            gpg_key: tf.gpg_key.clone(),
            cliwrap: tf.cliwrap.unwrap_or(false),
            cliwrap_binaries: tf.cliwrap_binaries.clone().unwrap_or_default(),
            sysusers: tf.sysusers.clone(),
            initramfs_args: tf.initramfs_args.clone().unwrap_or_default(),
            no_initramfs: tf.no_initramfs.unwrap_or(false),
            rpmdb_normalize: tf.rpmdb_normalize.unwrap_or(false),
            selinux: tf.selinux.unwrap_or(!container),
            selinux_label_version,
            ignore_devices: tf.ignore_devices.unwrap_or(true),
            ima: tf.ima.unwrap_or(false),
            repo_metadata: placement(tf.repo_metadata.as_deref()),
            advisories_metadata: placement(tf.advisories_metadata.as_deref()),
            scriptlet_overrides: tf
                .scriptlet_overrides
                .iter()
                .flatten()
                .map(|s| ScriptletOverride {
                    package: s.package.clone(),
                    scriptlet: s.scriptlet.clone(),
                    script: s.script.clone(),
                })
                .collect(),
            flattened,
        })
    }
}

/// Repositories from the `*.repo` files in `dir`: the named ones (all must exist), or
/// every enabled one when `names` is `None`; and the `lockfile-repos`. Only those are
/// checked: a broken section no one uses is not an error.
fn load_repos(
    dir: &Path,
    names: Option<&[String]>,
    lockfile_names: &[String],
    vars: &RepoVars,
    bad: &mut impl FnMut(&str, String),
) -> Result<(Vec<RepoConfig>, Vec<RepoConfig>), TreefileError> {
    let entries = fs::read_dir(dir).map_err(|source| TreefileError::Io {
        path: dir.into(),
        err: source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("repo"))
        .collect();
    files.sort();
    let mut all: Vec<RepoSection> = Vec::new();
    let mut broken: BTreeMap<PathBuf, String> = BTreeMap::new();
    for f in files {
        let text =
            crate::input::read_text_capped(&f, crate::input::MAX_TEXT).map_err(|source| {
                TreefileError::Io {
                    path: f.clone(),
                    err: source,
                }
            })?;
        let (sections, outside) = read_sections(&f, &text);
        if let Some(e) = outside.into_iter().next() {
            broken.insert(f.clone(), e);
        }
        all.extend(sections);
    }
    let find = |n: &String| all.iter().find(|s| &s.id == n);
    let chosen: Vec<&RepoSection> = match names {
        None => all.iter().filter(|s| s.enabled()).collect(),
        Some(names) => names.iter().filter_map(find).collect(),
    };
    for (key, list) in [
        ("repos", names.unwrap_or_default()),
        ("lockfile-repos", lockfile_names),
    ] {
        for n in list.iter().filter(|n| find(n).is_none()) {
            bad(
                key,
                format!(
                    "repo {n:?} is not defined in any *.repo file in {}",
                    dir.display()
                ),
            );
        }
    }
    let mut convert = |sections: Vec<&RepoSection>| -> Vec<RepoConfig> {
        sections
            .into_iter()
            .filter_map(|s| {
                let result = match broken.get(&s.file) {
                    Some(e) => Err(e.clone()),
                    None => s.config(Some(vars)),
                };
                result
                    .map_err(|e| bad("repos", format!("{}: repo {}: {e}", s.file.display(), s.id)))
                    .ok()
            })
            .collect()
    };
    let repos = convert(chosen);
    let lockfile_repos = convert(lockfile_names.iter().filter_map(find).collect());
    Ok((repos, lockfile_repos))
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
        let sub = |v: &str, rel: Option<&str>| {
            let vars = RepoVars {
                releasever: rel.map(str::to_string),
                basearch: "x86_64".into(),
                custom: BTreeMap::from([("stream".to_string(), "c9s".to_string())]),
            };
            repo_file::repo_vars(v, &vars)
        };
        assert_eq!(
            sub("http://m/$stream/${stream}", None).unwrap(),
            "http://m/c9s/c9s"
        );
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
        assert!(e.contains("releasever"), "{e}");
        assert_eq!((r[0].priority, r[1].priority), (10, 99));
        assert_eq!(r[0].exclude, ["foo*", "bar"]);
        assert_eq!(r[1].include_only, ["baz"]);
        assert!(!r[1].enabled);
        let m = parse_repo_file(x, "[a]\nmetalink=http://x\n[b]\nmirrorlist=http://y\n").unwrap();
        assert_eq!(m[0].metalink.as_deref(), Some("http://x"));
        assert_eq!(m[1].mirrorlist.as_deref(), Some("http://y"));
        assert!(parse_repo_file(x, "[a]\nname=no urls\n").is_err());
        assert_eq!(
            treefile::add_files_dest("//usr//share/x/").unwrap(),
            "/usr/share/x"
        );
        let on = parse_repo_file(x, "[a]\nbaseurl=http://a\nenabled=True\n[b]\nbaseurl=http://b\nenabled=off\n[c]\nbaseurl=http://c\nenabled=on\ngpgcheck=1\n").unwrap();
        assert_eq!(
            on.iter().map(|r| r.enabled).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(treefile::add_files_dest("etc/motd").unwrap(), "/etc/motd");
        for bad in [
            "/usr/local/x",
            "/usr",
            "/var/x",
            "/usr/../etc/x",
            "/usr/./x",
        ] {
            assert!(treefile::add_files_dest(bad).is_err(), "{bad}");
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

    fn plan_of(dir: &Path, text: &str) -> Result<ComposePlan, TreefileError> {
        let p = dir.join("t.yaml");
        fs::write(&p, text).unwrap();
        let (tf, problems) = treefile::load_collecting(&p, "x86_64")?;
        ComposePlan::build(&p, tf, "x86_64", problems)
    }

    /// Every key reaches the plan with rpm-ostree's default when unset.
    #[test]
    fn keys_and_defaults() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("r.repo"), "[r]\nbaseurl=http://r/$stream/\n").unwrap();
        let plan = plan_of(d.path(), "ref: x\n").unwrap();
        assert_eq!(plan.check_passwd, AccountCheck::Previous);
        assert_eq!(plan.check_groups, AccountCheck::Previous);
        assert!(plan.selinux && plan.preserve_passwd && plan.ignore_devices);
        assert_eq!(plan.automatic_version_suffix, '.');
        assert_eq!(plan.opt_usrlocal, OptUsrlocal::Var);
        assert_eq!(plan.repo_metadata, MetadataPlacement::Inline);
        assert_eq!(plan.boot_location, BootLocation::New);
        assert_eq!(plan.repos[0].baseurls, ["http://r/$stream/"]);

        fs::write(d.path().join("passwd"), "").unwrap();
        let script = d.path().join("post.sh");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let plan = plan_of(
            d.path(),
            "ref: x\nrepovars: {stream: c9s}\nlockfile-repos: [r]\npostprocess: [a, b]\npostprocess-script: post.sh\ncheck-passwd: {type: file, filename: passwd}\ncheck-groups: {type: data, entries: {wheel: 10}}\nignore-removed-groups: ['*']\nautomatic-version-suffix: '-'\nopt-usrlocal: root\nrepo-metadata: detached\nadvisories-metadata: disabled\nselinux: true\nselinux-label-version: 1\nsysusers: compose-forced\nboot-location: kernel-install\nostree-layers: [l]\nostree-override-layers: [o]\nrpmdb: bdb\nscriptlet-overrides: [{package: p, scriptlet: post, script: 'exit 0'}]\n",
        )
        .unwrap();
        assert_eq!(plan.postprocess, ["a", "b"]);
        assert_eq!(plan.postprocess_script.as_deref(), Some(script.as_path()));
        assert_eq!(
            plan.check_passwd,
            AccountCheck::File(d.path().join("passwd"))
        );
        assert_eq!(
            plan.check_groups,
            AccountCheck::Data(BTreeMap::from([(
                "wheel".to_string(),
                AccountIds { id: 10, gid: None }
            )]))
        );
        assert!(plan.ignore_removed_groups.contains("*"));
        assert_eq!(plan.automatic_version_suffix, '-');
        assert_eq!(plan.opt_usrlocal, OptUsrlocal::Root);
        assert_eq!(
            (plan.repo_metadata, plan.advisories_metadata),
            (MetadataPlacement::Detached, MetadataPlacement::Disabled)
        );
        assert!(plan.selinux);
        assert_eq!(plan.selinux_label_version, 1);
        assert_eq!(plan.sysusers.as_deref(), Some("compose-forced"));
        assert_eq!(plan.boot_location, BootLocation::KernelInstall);
        assert_eq!(
            plan.repos[0].baseurls,
            ["http://r/c9s/"],
            "repovars applied"
        );
        assert_eq!(plan.lockfile_repos[0].id, "r");
        assert_eq!(
            plan.scriptlet_overrides,
            [ScriptletOverride {
                package: "p".into(),
                scriptlet: "post".into(),
                script: Some("exit 0".into())
            }]
        );
        // Layer names are not hashed; their content is (by the compose).
        let hashed = plan.hashed_treefile();
        assert!(
            !hashed.contains("\"ostree-layers\"") && hashed.contains("\"ostree-override-layers\"")
        );

        let plan = plan_of(d.path(), "ref: x\ncontainer: true\n").unwrap();
        assert_eq!(plan.check_passwd, AccountCheck::None);
        assert!(!plan.selinux && !plan.preserve_passwd && plan.tmp_is_dir);
    }

    /// Only the .repo sections the treefile uses are checked; plan problems and
    /// treefile problems come in one error.
    #[test]
    fn repo_sections_checked_only_when_used() {
        let d = tempfile::tempdir().unwrap();
        fs::write(
            d.path().join("a.repo"),
            "[good]\nbaseurl=http://g/\n[broken]\npriority=high\nbaseurl=http://b/$releasever/\n",
        )
        .unwrap();
        fs::write(
            d.path().join("b.repo"),
            "garbage\n[other]\nbaseurl=http://o/\n",
        )
        .unwrap();
        let plan = plan_of(d.path(), "ref: x\nrepos: [good]\n").unwrap();
        assert_eq!(plan.repos.len(), 1);
        let e = plan_of(
            d.path(),
            "ref: x\nrepos: [good, broken, other, missing]\nrepovars: {basearch: z}\nboot-location: sideways\n",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "a.repo: repo broken: priority \"high\" is not a number",
            "b.repo: repo other: line outside a [section]",
            "repo \"missing\" is not defined",
            "repovars: \"basearch\" is filled in automatically",
            "boot-location: unknown value \"sideways\"",
        ] {
            assert!(e.contains(want), "{want:?} not in\n{e}");
        }
        assert!(!e.contains("repo good"), "{e}");
        let e = plan_of(d.path(), "repos: [good]\npostprocess-script: nope.sh\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no `ref` set") && e.contains("nope.sh does not exist"),
            "{e}"
        );
    }

    /// Plans of real manifests (tests/manifests): their `.repo` files, `lockfile-repos`,
    /// external files and merged keys reach the plan.
    #[test]
    fn real_manifests_plan() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/manifests");
        let load = |rel: &str| {
            let path = root.join(rel);
            let (tf, problems) = treefile::load_collecting(&path, "x86_64").unwrap();
            ComposePlan::build(&path, tf, "x86_64", problems).unwrap()
        };
        let fcos = load("fedora-coreos-config/manifest.yaml");
        assert_eq!(fcos.ref_, "fedora/x86_64/coreos/testing-devel");
        assert_eq!(
            fcos.repos[0].baseurls[0],
            "https://dl.fedoraproject.org/pub/fedora/linux/releases/40/Everything/x86_64/os/"
        );
        assert_eq!(fcos.repos[1].id, "fedora-updates");
        assert_eq!(fcos.lockfile_repos[0].id, "fedora-coreos-pool");
        assert_eq!(
            fcos.check_passwd,
            AccountCheck::File(root.join("fedora-coreos-config/manifests/passwd"))
        );
        assert_eq!(fcos.postprocess.len(), 10);
        assert_eq!(fcos.ostree_layers.len(), 10);
        assert!(fcos.selinux && fcos.preserve_passwd);
        assert_eq!(fcos.boot_location, BootLocation::Modules);
        assert_eq!(fcos.mutate_os_release.as_deref(), Some("40"));
        assert!(fcos.packages.iter().any(|p| p == "irqbalance"));

        let silverblue = load("workstation-ostree-config/fedora-silverblue.yaml");
        let rawhide = &silverblue.repos[0];
        assert_eq!(rawhide.id, "fedora-rawhide");
        assert!(rawhide.baseurls.is_empty());
        assert_eq!(
            rawhide.mirrorlist.as_deref(),
            Some("https://mirrors.fedoraproject.org/metalink?repo=rawhide&arch=x86_64")
        );
        assert_eq!(
            silverblue.default_target.as_deref(),
            Some("graphical.target")
        );

        let rocky = load("rocky-ostree-config/manifest.8-minimal.yaml");
        assert_eq!(rocky.ref_, "rockylinux/8/x86_64/minimal/devel");
        assert_eq!(
            rocky.repo_packages,
            [(
                "baseos".to_string(),
                vec![
                    "kernel".into(),
                    "kernel-modules".into(),
                    "kernel-modules-extra".into()
                ]
            )]
        );
        assert!(rocky.cliwrap && rocky.readonly_executables && !rocky.documentation);
        // Not substituted (rpm-ostree does not substitute repovars).
        assert_eq!(rocky.repovars["rltype"], "${rltype}");
        assert_eq!(
            rocky
                .repos
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>(),
            ["baseos", "appstream"]
        );
    }
}
