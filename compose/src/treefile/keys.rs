//! One treefile's keys: the typed [`Treefile`] (every rpm-ostree compose key, its
//! legacy spellings, and arbor's `scriptlet-overrides`) and [`parse_value`], which
//! checks each key on its own so one pass reports every bad key and value of a file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::Problem;

/// One file's keys, before merging. Unknown keys are sorted out by [`parse_value`].
///
/// Every key is optional because includes merge; the defaults live in
/// [`crate::plan::ComposePlan`] (as rpm-ostree keeps them in its getters).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Treefile {
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub ref_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edition: Option<Json>,
    /// `basearch` as a file may state it; another architecture than the compose's is
    /// refused (rpm-ostree: "cross-composes are not supported").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basearch: Option<String>,
    #[serde(skip_serializing)]
    pub include: Option<OneOrMany>,
    #[serde(skip_serializing)]
    pub arch_include: Option<BTreeMap<String, OneOrMany>>,
    #[serde(skip_serializing)]
    pub conditional_include: Option<Vec<ConditionalInclude>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repos: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lockfile_repos: Option<Vec<String>>,
    /// dnf variables for `.repo` files. Not printed nor hashed, as in rpm-ostree.
    #[serde(skip_serializing)]
    pub repovars: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub releasever: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variables: Option<BTreeMap<String, Json>>,
    /// Set semantics (union on merge); entries are split on whitespace when the file
    /// is read (a `'quoted'` part stays whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<Vec<String>>,
    /// `packages-$basearch`, collected before the strict check.
    #[serde(skip)]
    pub arch_packages: BTreeMap<String, Vec<String>>,
    /// Deprecated: folded into `packages` when the file is read (rpm-ostree's
    /// `bootstrap_packages` field, spelled `bootstrap-packages` like every other key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_packages: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_packages: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_packages: Option<Vec<RepoPackages>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ostree_layers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ostree_override_layers: Option<Vec<String>>,
    /// Leftover of modularity (removed in rpm-ostree); carried, unused. Like in
    /// rpm-ostree it is not merged: only the top file's value counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommends: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_langs: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initramfs_args: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_initramfs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly_executables: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatic_version_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatic_version_suffix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutate_os_release: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_commit_metadata: Option<BTreeMap<String, Json>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_files: Option<Vec<(String, String)>>,
    /// `add-files` as (source path, destination), the source resolved against the
    /// directory of the file that lists it (as in rpm-ostree); merged like `add_files`.
    #[serde(skip)]
    pub add_files_resolved: Vec<(PathBuf, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_files: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_from_packages: Option<Vec<Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postprocess: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postprocess_script: Option<String>,
    /// `postprocess-script` resolved against the directory of the file naming it;
    /// first-wins together with `postprocess_script`.
    #[serde(skip)]
    pub postprocess_script_resolved: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmp_is_dir: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_usrlocal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machineid_compat: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etc_group_members: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preserve_passwd: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_passwd: Option<CheckSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_groups: Option<CheckSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_removed_users: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_removed_groups: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selinux: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selinux_label_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sysusers: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_devices: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ima: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpg_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpmdb: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpmdb_normalize: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advisories_metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<bool>,
    /// A scalar in rpm-ostree's merge (first wins), although it is a list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cliwrap: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cliwrap_binaries: Option<Vec<String>>,
    /// Deprecated rpm-ostree key (rojig/jigdo); carried as given, ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rojig: Option<Json>,
    /// arbor extension: replace or skip one package scriptlet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scriptlet_overrides: Option<Vec<ScriptletOverrideSpec>>,
    /// Carried for other tools (`--print-only`); not part of the input hash, as in
    /// rpm-ostree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, Json>>,

    // The underscore spellings rpm-ostree still reads; migrated when a file is read.
    #[serde(rename = "gpg_key", skip_serializing)]
    pub legacy_gpg_key: Option<String>,
    #[serde(rename = "boot_location", skip_serializing)]
    pub legacy_boot_location: Option<String>,
    #[serde(rename = "default_target", skip_serializing)]
    pub legacy_default_target: Option<String>,
    #[serde(rename = "automatic_version_prefix", skip_serializing)]
    pub legacy_automatic_version_prefix: Option<String>,

    /// A JSON file's unknown keys: kept (and printed) but ignored, as rpm-ostree does.
    /// Like there, only the top file's survive merging.
    #[serde(skip)]
    pub extra: BTreeMap<String, Json>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConditionalInclude {
    #[serde(rename = "if")]
    pub condition: OneOrMany,
    pub include: Json,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RepoPackages {
    pub repo: String,
    pub packages: Vec<String>,
}

/// `check-passwd` / `check-groups`: `{type: none | previous | file | data, …}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<Json>,
    /// `filename` resolved against the directory of the file that names it.
    #[serde(skip)]
    pub resolved: Option<PathBuf>,
}

impl CheckSpec {
    pub fn none() -> CheckSpec {
        CheckSpec {
            kind: "none".into(),
            filename: None,
            entries: None,
            resolved: None,
        }
    }
}

/// arbor's `scriptlet-overrides` item: `script` omitted skips the scriptlet.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScriptletOverrideSpec {
    pub package: String,
    pub scriptlet: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
}

/// rpm's scriptlet tags, as `scriptlet-overrides` names them.
pub const SCRIPTLETS: &[&str] = &[
    "pretrans",
    "pre",
    "post",
    "preun",
    "postun",
    "posttrans",
    "preuntrans",
    "postuntrans",
    "verify",
    "triggerprein",
    "triggerin",
    "triggerun",
    "triggerpostun",
    "filetriggerin",
    "filetriggerun",
    "filetriggerpostun",
    "transfiletriggerin",
    "transfiletriggerun",
    "transfiletriggerpostun",
];

/// Values rpm-ostree's enums accept, per key (serde spellings and aliases).
const ENUMS: &[(&str, &[&str])] = &[
    ("boot-location", &["new", "modules", "kernel-install"]),
    (
        "opt-usrlocal",
        &["var", "root", "state-overlay", "stateoverlay"],
    ),
    ("sysusers", &["compose-auto", "compose-forced"]),
    ("repo-metadata", &["inline", "detached", "disabled"]),
    ("advisories-metadata", &["inline", "detached", "disabled"]),
    (
        "rpmdb",
        &["bdb", "b-d-b", "sqlite", "ndb", "target", "host"],
    ),
];

/// Which spelling of a file's format: YAML refuses unknown keys, JSON keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// YAML for `.yaml`/`.yml`, JSON for every other name (as rpm-ostree).
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            _ => Format::Json,
        }
    }
}

/// Turn one file's JSON into a [`Treefile`]. Every unknown key and bad value is
/// pushed to `problems` (the key left out) so that one error can list them all.
pub fn parse_value(path: &Path, format: Format, v: Json, problems: &mut Vec<Problem>) -> Treefile {
    let Json::Object(obj) = v else {
        problems.push(Problem::new(path, "", "the top level must be a mapping"));
        return Treefile::default();
    };
    let mut bad = |key: &str, why: String| problems.push(Problem::new(path, key, why));
    let mut good = serde_json::Map::new();
    let mut arch_packages = BTreeMap::new();
    let mut extra = BTreeMap::new();
    for (k, val) in obj {
        if let Some(arch) = k.strip_prefix("packages-") {
            match serde_json::from_value::<Vec<String>>(val) {
                Ok(list) => {
                    arch_packages.insert(arch.to_string(), list);
                }
                Err(_) => bad(&k, "expected an array of strings".into()),
            }
            continue;
        }
        if !known_keys().contains(&k.as_str()) {
            match format {
                Format::Json => {
                    extra.insert(k, val);
                }
                Format::Yaml => bad("", format!("unknown key {k:?}")),
            }
            continue;
        }
        let one = Json::Object(serde_json::Map::from_iter([(k.clone(), val.clone())]));
        match serde_json::from_value::<Treefile>(one) {
            Ok(_) => {
                good.insert(k, val);
            }
            Err(e) => bad(&k, strip_serde_position(&e.to_string())),
        }
    }
    let mut t: Treefile = match serde_json::from_value(Json::Object(good)) {
        Ok(t) => t,
        Err(e) => {
            // Each key parsed alone; together they can only clash in ways checked below.
            bad("", e.to_string());
            Treefile::default()
        }
    };
    t.arch_packages = arch_packages;
    t.extra = extra;
    check_values(&mut t, &mut bad);
    t
}

/// The keys [`Treefile`] reads, as its derived `Deserialize` lists them to serde (the field
/// list a deserializer receives in `deserialize_struct`), so unknown keys are found by name
/// rather than by the text of serde's error.
pub fn known_keys() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor};
    type Err = serde::de::value::Error;
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = Err;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Err> {
            Err(Err::custom("field probe"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Err> {
            *self.0 = fields;
            Err(Err::custom("field probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    static KEYS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut fields: &'static [&'static str] = &[];
        let _ = Treefile::deserialize(Probe(&mut fields));
        fields
    })
}

/// serde_json's "at line 1 column 2" means nothing for a value re-read from YAML.
fn strip_serde_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Value checks of one file's keys, and the rewrites rpm-ostree does when it reads a
/// file: legacy spellings migrated, `packages` split, `bootstrap-packages` folded in.
fn check_values(t: &mut Treefile, bad: &mut impl FnMut(&str, String)) {
    macro_rules! migrate {
        ($new:ident, $legacy:ident, $key:literal) => {
            if let Some(v) = t.$legacy.take() {
                if t.$new.is_some() {
                    bad(
                        $key,
                        format!(
                            "cannot use both {} and {} (the legacy spelling)",
                            $key,
                            $key.replace('-', "_")
                        ),
                    );
                } else {
                    t.$new = Some(v);
                }
            }
        };
    }
    migrate!(gpg_key, legacy_gpg_key, "gpg-key");
    migrate!(boot_location, legacy_boot_location, "boot-location");
    migrate!(default_target, legacy_default_target, "default-target");
    migrate!(
        automatic_version_prefix,
        legacy_automatic_version_prefix,
        "automatic-version-prefix"
    );

    for (key, allowed) in ENUMS {
        let value = match *key {
            "boot-location" => &t.boot_location,
            "opt-usrlocal" => &t.opt_usrlocal,
            "sysusers" => &t.sysusers,
            "repo-metadata" => &t.repo_metadata,
            "advisories-metadata" => &t.advisories_metadata,
            _ => &t.rpmdb,
        };
        if let Some(v) = value {
            if !allowed.contains(&v.as_str()) {
                bad(
                    key,
                    format!(
                        "unknown value {v:?} (expected one of {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }
    // Aliases print under their canonical spelling, as rpm-ostree's enums serialize.
    for (value, alias, canonical) in [
        (&mut t.rpmdb, "b-d-b", "bdb"),
        (&mut t.opt_usrlocal, "stateoverlay", "state-overlay"),
    ] {
        if value.as_deref() == Some(alias) {
            *value = Some(canonical.into());
        }
    }
    if let Some(n) = t.edition.as_ref().and_then(edition_of) {
        t.edition = Some(Json::String(n.to_string()));
    }
    if let Some(e) = &t.edition {
        if edition_of(e).is_none() {
            bad(
                "edition",
                format!("unknown edition {e} (known editions are 2014 and 2024)"),
            );
        }
    }

    let named = t.packages.is_some() || t.bootstrap_packages.is_some();
    let mut packages: Vec<String> = Vec::new();
    for (key, list) in [
        ("packages", t.packages.take()),
        ("bootstrap-packages", t.bootstrap_packages.take()),
    ] {
        for entry in list.iter().flatten() {
            match split_whitespace_unless_quoted(entry) {
                Ok(parts) => {
                    for p in parts {
                        if !packages.iter().any(|q| q == p) {
                            packages.push(p.to_string());
                        }
                    }
                }
                Err(why) => bad(key, why),
            }
        }
    }
    if named {
        t.packages = Some(packages);
    }
    for (arch, list) in t.arch_packages.iter_mut() {
        let mut split = Vec::new();
        for entry in list.iter() {
            match split_whitespace_unless_quoted(entry) {
                Ok(parts) => split.extend(parts.into_iter().map(str::to_string)),
                Err(why) => bad(&format!("packages-{arch}"), why),
            }
        }
        *list = split;
    }
    for rp in t.repo_packages.iter_mut().flatten() {
        let mut split: Vec<String> = Vec::new();
        for entry in &rp.packages {
            match split_whitespace_unless_quoted(entry) {
                Ok(parts) => split.extend(parts.into_iter().map(str::to_string)),
                Err(why) => bad("repo-packages", why),
            }
        }
        rp.packages = split;
    }

    if let Some((k, _)) = t
        .variables
        .iter()
        .flatten()
        .find(|(_, v)| !matches!(v, Json::String(_) | Json::Bool(_)) && v.as_u64().is_none())
    {
        bad(
            "variables",
            format!("{k:?} must be a string, a non-negative integer or a boolean"),
        );
    }
    if let Some(r) = &t.releasever {
        if !r.is_string() && r.as_u64().is_none() {
            bad(
                "releasever",
                format!("{r} must be a string or a non-negative integer"),
            );
        }
    }
    if let Some(s) = &t.automatic_version_suffix {
        if !(s.len() == 1 && s.is_ascii()) {
            bad(
                "automatic-version-suffix",
                format!("{s:?} must be exactly one ASCII character"),
            );
        }
    }
    for (key, spec, passwd) in [
        ("check-passwd", &t.check_passwd, true),
        ("check-groups", &t.check_groups, false),
    ] {
        if let Some(spec) = spec {
            if let Err(why) = check_spec(spec, passwd) {
                bad(key, why);
            }
        }
    }
    for (f, dest) in t.add_files.iter().flatten() {
        if let Err(why) = add_files_dest(dest) {
            bad("add-files", format!("[{f:?}, {dest:?}]: {why}"));
        }
    }
    for f in t.remove_files.iter().flatten() {
        if f.starts_with('/') || f.split('/').any(|s| s == "..") {
            bad(
                "remove-files",
                format!("{f:?} must be a relative path without .."),
            );
        }
    }
    for entry in t.remove_from_packages.iter().flatten() {
        match entry.split_first() {
            None => bad("remove-from-packages", "empty entry".into()),
            Some((_, regexes)) => {
                for r in regexes {
                    if let Err(e) = regex::Regex::new(r) {
                        bad("remove-from-packages", format!("{r:?}: {e}"));
                    }
                }
            }
        }
    }
    for s in t.scriptlet_overrides.iter().flatten() {
        if s.package.is_empty() {
            bad("scriptlet-overrides", "empty package name".into());
        }
        if !SCRIPTLETS.contains(&s.scriptlet.as_str()) {
            bad(
                "scriptlet-overrides",
                format!(
                    "{}: unknown scriptlet {:?} (one of {})",
                    s.package,
                    s.scriptlet,
                    SCRIPTLETS.join(", ")
                ),
            );
        }
    }
    if t.rojig.is_some() {
        tracing::warn!("rojig is deprecated and ignored");
    }
}

/// Edition 2014 or 2024 from a number or a string; `None` for anything else.
pub fn edition_of(e: &Json) -> Option<u32> {
    let n = match e {
        Json::String(s) => s.parse().ok()?,
        other => other.as_u64()?,
    };
    matches!(n, 2014 | 2024).then_some(n as u32)
}

/// `check-*` as rpm-ostree's tagged enums accept it: `file` needs `filename`, `data`
/// needs `entries` (passwd: uid, `[uid]` or `[uid, gid]`; groups: gid).
fn check_spec(spec: &CheckSpec, passwd: bool) -> Result<(), String> {
    let unexpected = |what: &str| Err(format!("type {:?} takes no {what}", spec.kind));
    match spec.kind.as_str() {
        "none" | "previous" => {
            if spec.filename.is_some() {
                return unexpected("filename");
            }
            if spec.entries.is_some() {
                return unexpected("entries");
            }
        }
        "file" => {
            if spec.filename.is_none() {
                return Err("type \"file\" needs a filename".into());
            }
            if spec.entries.is_some() {
                return unexpected("entries");
            }
        }
        "data" => {
            if spec.filename.is_some() {
                return unexpected("filename");
            }
            let Some(Json::Object(entries)) = &spec.entries else {
                return Err("type \"data\" needs an entries mapping".into());
            };
            for (name, v) in entries {
                if account_ids(v, passwd).is_none() {
                    return Err(format!(
                        "entries: {name:?}: {v} is not {}",
                        if passwd {
                            "an id, [uid] or [uid, gid]"
                        } else {
                            "a gid"
                        }
                    ));
                }
            }
        }
        other => {
            return Err(format!(
                "unknown type {other:?} (none, previous, file or data)"
            ))
        }
    }
    Ok(())
}

/// A `data` entry as (id, gid): passwd takes `uid`, `[uid]` or `[uid, gid]`; groups a
/// bare gid.
pub fn account_ids(v: &Json, passwd: bool) -> Option<(u32, Option<u32>)> {
    let id = |v: &Json| v.as_u64().and_then(|n| u32::try_from(n).ok());
    match v {
        Json::Number(_) => Some((id(v)?, None)),
        Json::Array(a) if passwd => match a.as_slice() {
            [u] => Some((id(u)?, None)),
            [u, g] => Some((id(u)?, Some(id(g)?))),
            _ => None,
        },
        _ => None,
    }
}

/// An `add-files` destination as rpm-ostree accepts it: under `/usr` (not `/usr/local`),
/// `/etc`, or the `/bin`, `/sbin`, `/lib`, `/lib64` compat paths; no `.` or `..`.
/// Returns the normalised absolute path.
pub fn add_files_dest(dest: &str) -> Result<String, String> {
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
            "unsupported destination {dest:?} (a file under /usr but not /usr/local, \
             /etc, /bin, /sbin, /lib or /lib64, without . or ..)"
        ))
    }
}

/// rpm-ostree's package entry splitting: on whitespace, except inside `'…'`, whose
/// content is one item (`"corge 'quuz >= 1.0'"` → `corge`, `quuz >= 1.0`).
pub fn split_whitespace_unless_quoted(entry: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = entry;
    while let Some(open) = rest.find('\'') {
        out.extend(rest[..open].split_whitespace());
        let after = &rest[open + 1..];
        let close = after
            .find('\'')
            .ok_or_else(|| format!("missing terminating quote: {entry}"))?;
        out.push(&after[..close]);
        rest = &after[close + 1..];
    }
    out.extend(rest.split_whitespace());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys serde reports are the kebab-case names, legacy spellings included, and the
    /// fields filled by hand (`packages-ARCH`, extra JSON keys) are not among them.
    #[test]
    fn known_keys_come_from_the_struct() {
        let k = known_keys();
        for key in [
            "ref",
            "packages",
            "postprocess",
            "default-target",
            "default_target",
            "selinux",
        ] {
            assert!(k.contains(&key), "{key} missing from {k:?}");
        }
        assert!(
            !k.contains(&"arch-packages") && !k.contains(&"extra"),
            "{k:?}"
        );
    }

    #[test]
    fn quoted_package_entries() {
        let s = |e| split_whitespace_unless_quoted(e);
        assert_eq!(s("foo bar").unwrap(), ["foo", "bar"]);
        assert_eq!(
            s("corge 'quuz >= 1.0' x").unwrap(),
            ["corge", "quuz >= 1.0", "x"]
        );
        assert_eq!(s("'podman >= 4.1'").unwrap(), ["podman >= 4.1"]);
        assert!(s("'open").is_err());
    }

    #[test]
    fn account_data_shapes() {
        let j = |s: &str| serde_json::from_str::<Json>(s).unwrap();
        assert_eq!(account_ids(&j("1"), true), Some((1, None)));
        assert_eq!(account_ids(&j("[2]"), true), Some((2, None)));
        assert_eq!(account_ids(&j("[3, 4]"), true), Some((3, Some(4))));
        assert_eq!(account_ids(&j("[3, 4]"), false), None);
        assert_eq!(account_ids(&j("-1"), true), None);
        assert_eq!(account_ids(&j("\"x\""), false), None);
    }
}
