//! What a compose records: rpm-ostree's input hash and automatic versions, the commit
//! metadata, and the compose JSON (`--write-composejson-to`).

use std::path::Path;

use arbor_repo::checksum::Hasher;
use arbor_repo::gvariant::{Type, Value, VarDict};
use arbor_repo::{Checksum, Repo};
use serde_json::Value as Json;

use super::{ComposeError, ComposeOutcome};
use crate::import;
use crate::plan::ComposePlan;
use crate::resolve::Resolution;

/// rpm-ostree's input hash: the flattened treefile (compact JSON), every package's
/// NEVRA and repodata checksum, add-files contents, and the importer version.
pub fn input_hash(
    plan: &ComposePlan,
    res: &Resolution,
    layers: &[String],
) -> Result<String, ComposeError> {
    let mut h = Hasher::new();
    // The flattened treefile without `metadata` and the layers' names (their content
    // is hashed below), as rpm-ostree.
    h.update(plan.hashed_treefile().as_bytes());
    h.update(format!("\nimporter {}\n", import::IMPORTER_VERSION).as_bytes());
    for p in &res.packages {
        let sum = p
            .checksum
            .as_ref()
            .map(|(k, v)| format!("{k}:{v}"))
            .unwrap_or_default();
        h.update(format!("{} {sum}\n", p.nevra()).as_bytes());
    }
    for (src, dest) in &plan.add_files {
        let data = std::fs::read(src)
            .map_err(|e| ComposeError::Other(format!("add-files: {}: {e}", src.display())))?;
        h.update(dest.as_bytes());
        h.update(&data);
    }
    // The other files the treefile names.
    let mut files: Vec<(&str, &Path)> = Vec::new();
    if let Some(p) = &plan.postprocess_script {
        files.push(("postprocess-script", p));
    }
    for (key, check) in [
        ("check-passwd", &plan.check_passwd),
        ("check-groups", &plan.check_groups),
    ] {
        if let crate::plan::AccountCheck::File(p) = check {
            files.push((key, p));
        }
    }
    for (key, path) in files {
        let data = std::fs::read(path)
            .map_err(|e| ComposeError::Other(format!("{key}: {}: {e}", path.display())))?;
        h.update(format!("\n{key} {}\n", data.len()).as_bytes());
        h.update(&data);
    }
    for l in layers {
        h.update(format!("\nlayer {l}\n").as_bytes());
    }
    Ok(h.finish().to_hex())
}

/// The content checksums of the treefile's `ostree-layers` and
/// `ostree-override-layers` (refs in the repository), in order; a missing ref is an
/// error naming it.
pub fn layer_checksums(repo: &Repo, plan: &ComposePlan) -> Result<Vec<String>, ComposeError> {
    let mut out = Vec::new();
    for (key, refs) in [
        ("ostree-layers", &plan.ostree_layers),
        ("ostree-override-layers", &plan.ostree_override_layers),
    ] {
        for r in refs {
            let commit = repo.read_ref(r)?.ok_or_else(|| {
                ComposeError::Other(format!(
                    "{key}: ref {r:?} is not in {}",
                    repo.path().display()
                ))
            })?;
            let c = repo.read_commit(&commit)?;
            out.push(format!(
                "{key} {r} {}",
                content_checksum(&c.root_tree, &c.root_meta)
            ));
        }
    }
    Ok(out)
}

/// rpm-ostree's automatic versioning: `prefix`, then `prefix.1`, `prefix.2`, … while
/// the previous version carries the same prefix. A prefix with `<date:FORMAT>` tags
/// (strftime, UTC, at the commit's timestamp) always ends in a counter that starts at 0
/// and restarts when the substituted prefix changes: `39.<date:%Y%m%d>` gives
/// `39.20261126.0`, `39.20261126.1`, then `39.20261127.0`.
pub fn next_version(
    prefix: &str,
    suffix: char,
    previous: Option<&str>,
    timestamp: u64,
) -> Result<String, ComposeError> {
    // rpm-ostree's rule: after `prefix.`, the counter is the number its leading digits
    // spell (0 when there are none), plus one.
    let next = |p: &str| -> Option<String> {
        let prev = previous?.strip_prefix(p)?;
        if prev.is_empty() {
            return Some(format!("{p}{suffix}1"));
        }
        let digits = prev.strip_prefix(suffix)?;
        let n: u64 = digits
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        Some(format!("{p}{suffix}{}", n.saturating_add(1)))
    };
    if !prefix.contains("<date:") {
        return Ok(next(prefix).unwrap_or_else(|| prefix.to_string()));
    }
    let mut dated = String::new();
    let mut rest = prefix;
    while let Some(i) = rest.find("<date:") {
        dated.push_str(&rest[..i]);
        let after = &rest[i + "<date:".len()..];
        let end = after.find('>').ok_or_else(|| {
            ComposeError::Other(format!(
                "automatic-version-prefix {prefix:?}: unterminated <date:"
            ))
        })?;
        dated.push_str(
            &crate::time::strftime(&after[..end], timestamp).map_err(|e| {
                ComposeError::Other(format!("automatic-version-prefix {prefix:?}: {e}"))
            })?,
        );
        rest = &after[end + 1..];
    }
    dated.push_str(rest);
    Ok(next(&dated).unwrap_or_else(|| format!("{dated}{suffix}0")))
}

/// JSON (`add-commit-metadata`) to GVariant.
pub fn json_to_variant(v: &Json) -> Value {
    match v {
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::Uint64(u),
            (_, Some(i)) => Value::Int64(i),
            _ => Value::Double(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::str(s.clone()),
        Json::Array(items) if items.iter().all(Json::is_string) => {
            Value::Array(Type::String, items.iter().map(json_to_variant).collect())
        }
        Json::Array(items) => Value::Array(
            Type::Variant,
            items
                .iter()
                .map(|i| Value::Variant(Box::new(json_to_variant(i))))
                .collect(),
        ),
        Json::Object(m) => VarDict(
            m.iter()
                .map(|(k, v)| (k.clone(), json_to_variant(v)))
                .collect(),
        )
        .to_value(),
        Json::Null => Value::Maybe(Type::String, None),
    }
}

/// The commit's metadata as rpm-ostree writes it (`version`, `rpmostree.inputhash`,
/// the package list, the repositories — inline, or in the second value, the detached
/// metadata, with `repo-metadata: detached` —, `container-cmd`, `initramfs-args`,
/// `ostree.bootable`/`ostree.linux`, the ref binding), after the treefile's
/// `add-commit-metadata`.
pub fn commit_metadata(
    plan: &ComposePlan,
    resolution: &Resolution,
    inputhash: &str,
    version: Option<&str>,
    kernel: Option<&str>,
) -> (VarDict, VarDict) {
    use crate::plan::MetadataPlacement;
    let strings = |v: &[String]| {
        Value::Array(
            Type::String,
            v.iter().map(|c| Value::str(c.clone())).collect(),
        )
    };
    let mut md = VarDict::new();
    for (k, v) in &plan.add_commit_metadata {
        md.insert(k.clone(), json_to_variant(v));
    }
    if let Some(v) = version {
        md.set("version", Value::str(v.to_string()));
    }
    md.set("rpmostree.inputhash", Value::str(inputhash.to_string()));
    let pkglist = resolution
        .packages
        .iter()
        .map(|p| {
            Value::Tuple(vec![
                Value::str(p.name.clone()),
                Value::str(p.epoch.to_string()),
                Value::str(p.version.clone()),
                Value::str(p.release.clone()),
                Value::str(p.arch.clone()),
            ])
        })
        .collect();
    md.set(
        "rpmostree.rpmdb.pkglist",
        Value::Array(Type::parse("(sssss)").expect("static type"), pkglist),
    );
    let repos = resolution
        .repos
        .iter()
        .map(|r| {
            VarDict(vec![
                ("id".into(), Value::str(r.config.id.clone())),
                (
                    "timestamp".into(),
                    Value::Uint64(r.repomd.timestamp.unwrap_or(0)),
                ),
            ])
            .to_value()
        })
        .collect();
    let repos = Value::Array(Type::parse("a{sv}").expect("static type"), repos);
    let mut detached = VarDict::new();
    match plan.repo_metadata {
        MetadataPlacement::Inline => md.set("rpmostree.rpmmd-repos", repos),
        MetadataPlacement::Detached => detached.set("rpmostree.rpmmd-repos", repos),
        MetadataPlacement::Disabled => {}
    }
    if !plan.container_cmd.is_empty() {
        md.set("ostree.container-cmd", strings(&plan.container_cmd));
    }
    if !plan.initramfs_args.is_empty() {
        md.set("rpmostree.initramfs-args", strings(&plan.initramfs_args));
    }
    if let Some(kver) = kernel {
        md.set("ostree.bootable", Value::Bool(true));
        md.set("ostree.linux", Value::str(kver.to_string()));
    }
    md.set(
        "ostree.ref-binding",
        Value::Array(Type::String, vec![Value::str(plan.ref_.clone())]),
    );
    (md, detached)
}

/// rpm-ostree's `--write-composejson-to` object (plus arbor's own keys).
pub fn compose_json(plan: &ComposePlan, o: &ComposeOutcome) -> Json {
    let mut v = serde_json::json!({
        "ref": plan.ref_,
        "ostree-commit": o.commit.map(|c| c.to_hex()),
        "ostree-content-checksum": o.content_checksum,
        "ostree-version": o.version,
        // A string, as rpm-ostree writes it (JSON has no 64-bit integers).
        "ostree-timestamp": crate::time::rfc3339(o.timestamp),
        "pkgdiff": o.pkgdiff.as_ref().map(pkgdiff_json),
        "rpm-ostree-inputhash": o.inputhash,
        "ostree-n-metadata-total": o.metadata_total,
        "ostree-n-metadata-written": o.metadata_written,
        "ostree-n-content-total": o.content_total,
        "ostree-n-content-written": o.content_written,
        "ostree-n-cache-hits": o.cache_hits,
        "ostree-content-bytes-written": o.content_bytes_written,
        "arbor-packages": o.resolution.packages.len(),
        "arbor-packages-imported": o.imported,
        "arbor-import-cache-hits": o.cache_hits,
        "arbor-relabeled": o.relabeled,
        "arbor-unchanged": o.unchanged,
        "arbor-kernel": o.kernel,
        "arbor-scriptlets": o.scriptlets,
        "arbor-skipped-scriptlets": o.skipped_scriptlets,
        "arbor-timings": o.timings,
        "arbor-shared-cache": o.shared_cache,
    });
    // rpm-ostree leaves out what it does not have (no version, no parent to diff with).
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|_, x| !x.is_null());
    }
    v
}

/// ostree's content checksum of a commit: SHA-256 of the root dirtree's and the root
/// dirmeta's checksums (raw bytes), which names the tree whatever the commit metadata.
pub fn content_checksum(root_tree: &Checksum, root_meta: &Checksum) -> String {
    let mut h = Hasher::new();
    h.update(&root_tree.0);
    h.update(&root_meta.0);
    h.finish().to_hex()
}

/// rpm-ostree's `pkgdiff` (`a(sua{sv})` as JSON): `[name, type, {PreviousPackage,
/// NewPackage: [name, evr, arch]}]`, type 0 added, 1 removed, 2 upgraded, 3 downgraded,
/// sorted by type, then name.
pub fn pkgdiff_json(d: &crate::rpmdb::PkgDiff) -> Json {
    use crate::rpmdb::Package;
    use serde_json::json;
    let pkg = |p: &Package| json!([p.name, p.evr(), p.arch]);
    let mut rows: Vec<(u32, &str, Json)> = Vec::new();
    for p in &d.added {
        rows.push((0, &p.name, json!({"NewPackage": pkg(p)})));
    }
    for p in &d.removed {
        rows.push((1, &p.name, json!({"PreviousPackage": pkg(p)})));
    }
    for (kind, pairs) in [(2, &d.upgraded), (3, &d.downgraded)] {
        for (o, n) in pairs {
            rows.push((
                kind,
                &o.name,
                json!({"PreviousPackage": pkg(o), "NewPackage": pkg(n)}),
            ));
        }
    }
    rows.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    Json::Array(
        rows.into_iter()
            .map(|(kind, name, v)| json!([name, kind, v]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = |p: &str, prev: Option<&str>| next_version(p, '.', prev, 1_795_000_000).unwrap();
        assert_eq!(v("22", None), "22");
        assert_eq!(v("22", Some("22")), "22.1");
        assert_eq!(v("22", Some("22.1")), "22.2");
        assert_eq!(v("23", Some("22.7")), "23");
        // rpm-ostree's own cases: the counter's leading digits count.
        assert_eq!(v("10", Some("10.1.5")), "10.2");
        assert_eq!(v("10.1", Some("10.1.2x")), "10.1.3");
        assert_eq!(v("10", Some("10.x")), "10.1");
        assert_eq!(v("10", Some("100")), "10");
        // 1_795_000_000 is 2026-11-18 (UTC).
        assert_eq!(v("39.<date:%Y%m%d>", None), "39.20261118.0");
        assert_eq!(
            v("39.<date:%Y%m%d>", Some("39.20261118.0")),
            "39.20261118.1"
        );
        assert_eq!(
            v("39.<date:%Y%m%d>", Some("39.20261118.7")),
            "39.20261118.8"
        );
        assert_eq!(
            v("39.<date:%Y%m%d>", Some("39.20261117.4")),
            "39.20261118.0"
        );
        assert_eq!(v("<date:%Y>.<date:%j>", None), "2026.322.0");
        assert!(next_version("x<date:%Y", '.', None, 0).is_err());
        assert!(next_version("<date:%Q>", '.', None, 0).is_err());
        // automatic-version-suffix
        assert_eq!(next_version("22", '-', Some("22-4"), 0).unwrap(), "22-5");
        assert_eq!(next_version("22", '-', Some("22"), 0).unwrap(), "22-1");
        assert_eq!(next_version("22", '-', Some("22.4"), 0).unwrap(), "22");
    }
}
