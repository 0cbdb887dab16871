//! From the union of package trees to the tree that gets committed: the rpm-ostree
//! root skeleton, the rpmdb (written by the real `rpm --justdb`), passwd/group split,
//! units, default target, machine-id, remove-files, add-files, treefile.json, and the
//! kernel.
//!
//! ```text
//! /usr /etc→usr/etc  dev proc run sys var sysroot boot  tmp (dir or →sysroot/tmp)
//! home→var/home root→var/roothome srv→var/srv mnt→var/mnt opt→var/opt
//! media→run/media ostree→sysroot/ostree usr/local→../var/usrlocal
//! ```

use std::fs;
use std::os::unix::fs::MetadataExt;

use arbor_repo::objects::{FileHeader, S_IFDIR, S_IFLNK, S_IFREG};
use arbor_repo::tree::{default_dirmeta, MutableTree, TreeEntry};
use arbor_repo::{Checksum, DirMeta, Repo, RepoError};

use crate::plan::{AccountCheck, BootLocation, ComposePlan, OptUsrlocal};
use crate::scripts::accounts;

#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("{0}")]
    Tree(String),
    #[error("rpm --justdb failed writing the rpmdb: {0}")]
    Rpmdb(String),
    #[error("{what}: {why}")]
    Treefile { what: String, why: String },
}

type Result<T> = std::result::Result<T, AssembleError>;

/// Top-level directories a package may ship that the ostree layout replaces.
const REPLACED_TOPLEVEL: &[&str] = &[
    "home", "root", "srv", "opt", "mnt", "media", "tmp", "dev", "proc", "sys", "run", "var",
    "boot", "sysroot", "ostree",
];

fn tree_err(e: impl ToString) -> AssembleError {
    AssembleError::Tree(e.to_string())
}

/// Store a symlink object and return its checksum.
fn symlink(repo: &Repo, target: &str) -> Result<Checksum> {
    let h = FileHeader {
        uid: 0,
        gid: 0,
        mode: S_IFLNK | 0o777,
        symlink_target: target.into(),
        xattrs: Default::default(),
    };
    let c = h.checksum(&[]);
    repo.write_file_object(&c, &h, &[])?;
    Ok(c)
}

/// Store a regular root-owned file and return its checksum.
fn regular(repo: &Repo, content: &[u8], mode: u32) -> Result<Checksum> {
    let h = FileHeader {
        uid: 0,
        gid: 0,
        mode: S_IFREG | mode,
        symlink_target: String::new(),
        xattrs: Default::default(),
    };
    let c = h.checksum(content);
    repo.write_file_object(&c, &h, content)?;
    Ok(c)
}

fn dirmeta(mode: u32) -> DirMeta {
    DirMeta {
        uid: 0,
        gid: 0,
        mode: S_IFDIR | mode,
        xattrs: Default::default(),
    }
}

fn put(t: &mut MutableTree, path: &str, c: Checksum) -> Result<()> {
    t.insert_file(path, c, &default_dirmeta())
        .map(drop)
        .map_err(tree_err)
}

/// Translate an absolute path as the importer does (`/etc` → `/usr/etc`, compat dirs).
fn translate(path: &str) -> String {
    let p = path.trim_start_matches('/');
    for (from, to) in [
        ("etc/", "usr/etc/"),
        ("bin/", "usr/bin/"),
        ("sbin/", "usr/sbin/"),
        ("lib/", "usr/lib/"),
        ("lib64/", "usr/lib64/"),
    ] {
        if let Some(rest) = p.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    p.to_string()
}

/// Content of a file in the tree (None when absent or not a regular file).
fn read_file(repo: &Repo, t: &MutableTree, path: &str) -> Result<Option<Vec<u8>>> {
    match t.lookup(path) {
        Some(TreeEntry::File(c)) => {
            let (h, content) = repo.read_file(c)?;
            Ok((!h.is_symlink()).then_some(content))
        }
        _ => Ok(None),
    }
}

/// Assemble the tree after the scriptlets ran: the root skeleton, the rpmdb from
/// [`build_rpmdb`] as `usr/share/rpm`, units, default target, machine-id, cliwrap,
/// `treefile.json`, `mutate-os-release` (with the commit's `version`), remove-files and
/// add-files — rpm-ostree's order, before the treefile's postprocess scripts.
pub fn assemble(
    repo: &Repo,
    union: MutableTree,
    plan: &ComposePlan,
    rpmdb_tree: MutableTree,
    version: Option<&str>,
) -> Result<MutableTree> {
    let mut t = union;
    for name in REPLACED_TOPLEVEL {
        if let Some(TreeEntry::Dir(d)) = t.lookup(name) {
            if d.count() > 0 {
                tracing::warn!("dropping /{name} ({} entries shipped by packages): the ostree layout replaces it", d.count());
            }
            t.remove(name);
        }
    }
    if plan.opt_usrlocal != OptUsrlocal::Root
        && matches!(t.lookup("usr/local"), Some(TreeEntry::Dir(_)))
    {
        t.remove("usr/local");
    }
    skeleton(repo, &mut t, plan)?;
    rpmdb(repo, &mut t, rpmdb_tree)?;
    units(repo, &mut t, plan)?;
    machine_id(repo, &mut t, plan)?;
    if plan.cliwrap {
        cliwrap(repo, &mut t, plan)?;
    }
    let json = serde_json::to_vec_pretty(&plan.flattened).map_err(tree_err)?;
    put(
        &mut t,
        "usr/share/rpm-ostree/treefile.json",
        regular(repo, &json, 0o644)?,
    )?;
    if let Some(base) = &plan.mutate_os_release {
        mutate_os_release(repo, &mut t, base, version)?;
    }
    for f in &plan.remove_files {
        let p = translate(f);
        if !t.remove(&p) {
            tracing::warn!("remove-files: {f} is not in the tree");
        }
    }
    add_files(repo, &mut t, plan)?;
    Ok(t)
}

/// After the postprocess scripts: passwd/group split and checked, shadow normalized,
/// shadow-utils' backups and lock removed, and the kernel found (and placed for `boot-location: new`).
pub fn finalize(
    repo: &Repo,
    t: &mut MutableTree,
    plan: &ComposePlan,
    parent: Option<&Checksum>,
) -> Result<Option<String>> {
    split_passwd(repo, t, plan)?;
    normalize_shadow(repo, t)?;
    // shadow-utils' lock file and backups: made only when a scriptlet changed an
    // account (so a compose seeded from its parent would lack them), and stale in any
    // deployment; rpm-ostree removes them the same way.
    for f in [
        ".pwd.lock",
        "passwd-",
        "group-",
        "shadow-",
        "gshadow-",
        "subuid-",
        "subgid-",
    ] {
        t.remove(&format!("usr/etc/{f}"));
    }
    check_accounts(repo, t, plan, parent)?;
    if plan.container {
        Ok(None)
    } else {
        kernel_version(t)
    }
}

/// The kernel release when exactly one `usr/lib/modules/*/vmlinuz` exists (more than
/// one is an error).
pub fn kernel_version(t: &MutableTree) -> Result<Option<String>> {
    let mut found = Vec::new();
    if let Some(TreeEntry::Dir(modules)) = t.lookup("usr/lib/modules") {
        for (kver, d) in &modules.dirs {
            if d.files.contains_key("vmlinuz") {
                found.push(kver.clone());
            }
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(AssembleError::Tree(format!(
            "more than one kernel in usr/lib/modules: {}",
            found.join(", ")
        ))),
    }
}

/// With `boot-location: new`, the kernel (and its initramfs) in `usr/lib/ostree-boot`.
pub fn place_kernel(
    repo: &Repo,
    t: &mut MutableTree,
    plan: &ComposePlan,
    kver: &str,
) -> Result<()> {
    let _ = repo;
    if plan.boot_location != BootLocation::New {
        return Ok(());
    }
    let dir = format!("usr/lib/modules/{kver}");
    for (src, dest) in [
        ("vmlinuz", format!("usr/lib/ostree-boot/vmlinuz-{kver}")),
        (
            "initramfs.img",
            format!("usr/lib/ostree-boot/initramfs-{kver}.img"),
        ),
    ] {
        if let Some(TreeEntry::File(c)) = t.lookup(&format!("{dir}/{src}")) {
            let c = *c;
            put(t, &dest, c)?;
        }
    }
    Ok(())
}

fn skeleton(repo: &Repo, t: &mut MutableTree, plan: &ComposePlan) -> Result<()> {
    for d in ["dev", "proc", "run", "sys", "var", "sysroot", "boot"] {
        t.ensure_dir(d, &dirmeta(0o755)).map_err(tree_err)?;
    }
    if plan.tmp_is_dir {
        t.ensure_dir("tmp", &dirmeta(0o1777)).map_err(tree_err)?;
    } else {
        put(t, "tmp", symlink(repo, "sysroot/tmp")?)?;
    }
    for (link, target) in [
        ("home", "var/home"),
        ("root", "var/roothome"),
        ("srv", "var/srv"),
        ("mnt", "var/mnt"),
        ("media", "run/media"),
        ("ostree", "sysroot/ostree"),
    ] {
        put(t, link, symlink(repo, target)?)?;
    }
    // opt-usrlocal (rpm-ostree's three layouts), with the tmpfiles.d lines each needs.
    let usrlocal_dirs = [
        "bin", "etc", "games", "include", "lib", "man", "sbin", "share", "src",
    ];
    let mut lines = String::from("# This file was generated by rpm-ostree.\n");
    match plan.opt_usrlocal {
        OptUsrlocal::Var => {
            put(t, "opt", symlink(repo, "var/opt")?)?;
            put(t, "usr/local", symlink(repo, "../var/usrlocal")?)?;
            lines.push_str("d /var/opt 0755 root root -\nd /var/usrlocal 0755 root root -\n");
            for d in usrlocal_dirs {
                lines.push_str(&format!("d /var/usrlocal/{d} 0755 root root -\n"));
            }
        }
        OptUsrlocal::Root => {
            t.ensure_dir("opt", &dirmeta(0o755)).map_err(tree_err)?;
            t.ensure_dir("usr/local", &dirmeta(0o755))
                .map_err(tree_err)?;
            for d in usrlocal_dirs {
                t.ensure_dir(&format!("usr/local/{d}"), &dirmeta(0o755))
                    .map_err(tree_err)?;
            }
        }
        OptUsrlocal::StateOverlay => {
            put(t, "opt", symlink(repo, "usr/lib/opt")?)?;
            t.ensure_dir("usr/lib/opt", &dirmeta(0o755))
                .map_err(tree_err)?;
            t.ensure_dir("usr/local", &dirmeta(0o755))
                .map_err(tree_err)?;
            for unit in ["usr-lib-opt", "usr-local"] {
                put(
                    t,
                    &format!(
                        "usr/lib/systemd/system/local-fs.target.requires/ostree-state-overlay@{unit}.service"
                    ),
                    symlink(repo, "../ostree-state-overlay@.service")?,
                )?;
            }
            lines.push_str(
                "L /var/usrlocal - - - - ../usr/local\nL /var/opt - - - - ../usr/lib/opt\n",
            );
        }
    }
    put(
        t,
        "usr/lib/tmpfiles.d/rpm-ostree-0-integration-opt-usrlocal.conf",
        regular(repo, lines.as_bytes(), 0o644)?,
    )?;
    Ok(())
}

/// Put the rpmdb (from [`crate::rpmdb_write`]) into `usr/share/rpm`, with the
/// `usr/lib/sysimage/rpm` link and a macro pointing rpm at it.
fn rpmdb(repo: &Repo, t: &mut MutableTree, dbtree: MutableTree) -> Result<()> {
    t.take_dir("usr/share/rpm");
    let share = t
        .ensure_dir("usr/share", &default_dirmeta())
        .map_err(tree_err)?;
    share.dirs.insert("rpm".into(), dbtree);
    t.remove("usr/lib/sysimage/rpm");
    put(t, "usr/lib/sysimage/rpm", symlink(repo, "../../share/rpm")?)?;
    put(
        t,
        "usr/lib/rpm/macros.d/macros.rpm-ostree",
        regular(repo, b"%_dbpath /usr/share/rpm\n", 0o644)?,
    )?;
    // rpm-ostree-0-integration.conf: what the skeleton's links point at, and the
    // rpmdb's old path.
    let tmpfiles = b"# This file was generated by rpm-ostree.\n\
        d /var/home 0755 root root -\n\
        d /var/srv 0755 root root -\n\
        d /var/roothome 0700 root root -\n\
        d /var/mnt 0755 root root -\n\
        d /run/media 0755 root root -\n\
        L /var/lib/rpm - - - - ../../usr/share/rpm\n";
    put(
        t,
        "usr/lib/tmpfiles.d/rpm-ostree-0-integration.conf",
        regular(repo, tmpfiles, 0o644)?,
    )?;
    Ok(())
}

/// The text of a regular file in the tree, if there is one.
fn read_text(repo: &Repo, t: &MutableTree, path: &str) -> Result<Option<String>> {
    Ok(read_file(repo, t, path)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// The text of a file of commit `commit`, if it has one.
fn read_commit_text(repo: &Repo, commit: &Checksum, path: &str) -> Result<Option<String>> {
    match repo.lookup_path(commit, path) {
        Ok(arbor_repo::store::Node::File(c)) => {
            let (h, content) = repo.read_file(&c)?;
            Ok((!h.is_symlink()).then(|| String::from_utf8_lossy(&content).into_owned()))
        }
        _ => Ok(None),
    }
}

fn accounts_err(what: &str, e: String) -> AssembleError {
    AssembleError::Treefile {
        what: what.to_string(),
        why: e,
    }
}

/// rpm-ostree's `preserve-passwd`: before any scriptlet runs, the tree's `/etc/passwd`
/// and `/etc/group` start with the accounts of the previous commit (`/usr/etc` then
/// `/usr/lib`), or of a `check-passwd`/`check-groups` file, followed by the packages'
/// own entries for names not there yet — so a `useradd -r` in `%pre` finds its account
/// and uids stay stable across releases.
pub fn seed_accounts(
    repo: &Repo,
    t: &mut MutableTree,
    plan: &ComposePlan,
    parent: Option<&Checksum>,
) -> Result<()> {
    if !plan.preserve_passwd {
        return Ok(());
    }
    for (name, group, check) in [
        ("passwd", false, &plan.check_passwd),
        ("group", true, &plan.check_groups),
    ] {
        let seed = match (check, parent) {
            (AccountCheck::File(f), _) => {
                let text =
                    crate::input::read_text_capped(f, crate::input::MAX_TEXT).map_err(|e| {
                        accounts_err(&format!("check-{name}: {}", f.display()), e.to_string())
                    })?;
                Some(
                    accounts::parse(&text, group)
                        .map_err(|e| accounts_err(&format!("check-{name}: {}", f.display()), e))?,
                )
            }
            (_, Some(p)) => {
                match (
                    read_commit_text(repo, p, &format!("usr/etc/{name}"))?,
                    read_commit_text(repo, p, &format!("usr/lib/{name}"))?,
                ) {
                    (Some(etc), Some(lib)) => {
                        let parse = |text: &str| {
                            accounts::parse(text, group)
                                .map_err(|e| accounts_err(&format!("previous /etc/{name}"), e))
                        };
                        Some(accounts::unsplit(&parse(&etc)?, &parse(&lib)?))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        let Some(seed) = seed else {
            continue;
        };
        let own = read_text(repo, t, &format!("usr/etc/{name}"))?.unwrap_or_default();
        let own = accounts::parse(&own, group)
            .map_err(|e| accounts_err(&format!("/etc/{name} of the packages"), e))?;
        let merged = accounts::merge(&seed, &own);
        put(
            t,
            &format!("usr/etc/{name}"),
            regular(repo, accounts::to_text(&merged).as_bytes(), 0o644)?,
        )?;
    }
    Ok(())
}

/// rpm-ostree's split: `/usr/etc/passwd` keeps uid 0, everything else moves to
/// `/usr/lib/passwd`; `/usr/etc/group` keeps gid 0 and the `etc-group-members` (which
/// are in `/usr/lib/group` too). `nsswitch.conf` gets `altfiles` so the moved entries
/// still resolve.
fn split_passwd(repo: &Repo, t: &mut MutableTree, plan: &ComposePlan) -> Result<()> {
    for (name, group) in [("passwd", false), ("group", true)] {
        let Some(text) = read_text(repo, t, &format!("usr/etc/{name}"))? else {
            continue;
        };
        let entries =
            accounts::parse(&text, group).map_err(|e| accounts_err(&format!("/etc/{name}"), e))?;
        // Whatever a package put in /usr/lib/{name} comes first (rpm-ostree appends).
        let mut lib_text = read_text(repo, t, &format!("usr/lib/{name}"))?.unwrap_or_default();
        let (etc, lib) = accounts::split(&entries, group, &plan.etc_group_members);
        lib_text.push_str(&accounts::to_text(&lib));
        put(
            t,
            &format!("usr/etc/{name}"),
            regular(repo, accounts::to_text(&etc).as_bytes(), 0o644)?,
        )?;
        put(
            t,
            &format!("usr/lib/{name}"),
            regular(repo, lib_text.as_bytes(), 0o644)?,
        )?;
    }
    if let Some(ns) = read_file(repo, t, "usr/etc/nsswitch.conf")? {
        let text = String::from_utf8_lossy(&ns);
        let fixed: String = text
            .lines()
            .map(|l| {
                let key = l.split(':').next().unwrap_or("").trim();
                if matches!(key, "passwd" | "group") && !l.contains("altfiles") {
                    l.replacen("files", "files altfiles", 1) + "\n"
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        put(
            t,
            "usr/etc/nsswitch.conf",
            regular(repo, fixed.as_bytes(), 0o644)?,
        )?;
    }
    Ok(())
}

/// Locked accounts in `/etc/shadow` and `/etc/gshadow` lose their date of last change
/// (the day of the compose), as rpm-ostree normalizes them; modes are kept.
fn normalize_shadow(repo: &Repo, t: &mut MutableTree) -> Result<()> {
    for name in ["shadow", "gshadow"] {
        let path = format!("usr/etc/{name}");
        let Some(TreeEntry::File(c)) = t.lookup(&path) else {
            continue;
        };
        let (h, content) = repo.read_file(c)?;
        if h.is_symlink() {
            continue;
        }
        let text = String::from_utf8_lossy(&content);
        let fixed = if name == "shadow" {
            accounts::normalize_shadow(&text)
        } else {
            text.into_owned()
        };
        if fixed.as_bytes() != content.as_slice() {
            let c = h.checksum(fixed.as_bytes());
            repo.write_file_object(&c, &h, fixed.as_bytes())?;
            put(t, &path, c)?;
        }
    }
    Ok(())
}

/// rpm-ostree's `check-passwd`/`check-groups` on the tree's passwd and group (both
/// halves of the split): every account of the reference (previous commit, file, or inline
/// data) must still be there with the same ids; every problem is listed in one error.
fn check_accounts(
    repo: &Repo,
    t: &MutableTree,
    plan: &ComposePlan,
    parent: Option<&Checksum>,
) -> Result<()> {
    let mut errors = Vec::new();
    let mut owners: Option<(
        std::collections::HashSet<u32>,
        std::collections::HashSet<u32>,
    )> = None;
    for (name, group, check, ignored) in [
        (
            "passwd",
            false,
            &plan.check_passwd,
            &plan.ignore_removed_users,
        ),
        (
            "group",
            true,
            &plan.check_groups,
            &plan.ignore_removed_groups,
        ),
    ] {
        let reference = match check {
            AccountCheck::None => continue,
            AccountCheck::Previous => {
                let Some(p) = parent else { continue };
                let Some(text) = read_commit_text(repo, p, &format!("usr/lib/{name}"))? else {
                    continue;
                };
                accounts::reference_of(
                    &accounts::parse(&text, group)
                        .map_err(|e| accounts_err(&format!("previous /usr/lib/{name}"), e))?,
                )
            }
            AccountCheck::File(f) => {
                let text =
                    crate::input::read_text_capped(f, crate::input::MAX_TEXT).map_err(|e| {
                        accounts_err(&format!("check-{name}: {}", f.display()), e.to_string())
                    })?;
                accounts::reference_of(
                    &accounts::parse(&text, group)
                        .map_err(|e| accounts_err(&format!("check-{name}: {}", f.display()), e))?,
                )
            }
            AccountCheck::Data(map) => map
                .iter()
                .map(|(n, ids)| {
                    let gid = if group {
                        None
                    } else {
                        Some(ids.gid.unwrap_or(ids.id))
                    };
                    (n.clone(), (ids.id, gid))
                })
                .collect(),
        };
        // The whole database: /usr/etc's part (root) and /usr/lib's.
        let text = read_text(repo, t, &format!("usr/etc/{name}"))?.unwrap_or_default()
            + &read_text(repo, t, &format!("usr/lib/{name}"))?.unwrap_or_default();
        let new = accounts::parse(&text, group)
            .map_err(|e| accounts_err(&format!("/usr/lib/{name}"), e))?;
        let mut owns = |id: u32| -> bool {
            let (uids, gids) = owners.get_or_insert_with(|| tree_owners(repo, t));
            if group {
                gids.contains(&id)
            } else {
                uids.contains(&id)
            }
        };
        for f in accounts::check(&reference, &new, group, ignored, &mut owns) {
            match f {
                accounts::Finding::Error(e) => errors.push(e),
                accounts::Finding::Note(n) => tracing::info!("check-{name}: {n}"),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AssembleError::Treefile {
            what: "check-passwd/check-groups".into(),
            why: errors.join("; "),
        })
    }
}

/// Every uid and gid that owns a file or directory of the tree.
fn tree_owners(
    repo: &Repo,
    t: &MutableTree,
) -> (
    std::collections::HashSet<u32>,
    std::collections::HashSet<u32>,
) {
    let mut uids = std::collections::HashSet::new();
    let mut gids = std::collections::HashSet::new();
    let mut stack = vec![t];
    while let Some(d) = stack.pop() {
        uids.insert(d.meta.uid);
        gids.insert(d.meta.gid);
        for c in d.files.values() {
            if let Ok((h, _)) = repo.read_file_header(c) {
                uids.insert(h.uid);
                gids.insert(h.gid);
            }
        }
        stack.extend(d.dirs.values());
    }
    (uids, gids)
}

/// rpm-ostree's `mutate-os-release`: in the os-release the tree's `/etc/os-release`
/// resolves to, `VERSION=` and `PRETTY_NAME=` get `base` replaced by the commit's
/// version, and `OSTREE_VERSION='VERSION'` is added. Without a version, nothing.
fn mutate_os_release(
    repo: &Repo,
    t: &mut MutableTree,
    base: &str,
    version: Option<&str>,
) -> Result<()> {
    let Some(version) = version else {
        tracing::info!("Ignoring mutate-os-release: no commit version specified.");
        return Ok(());
    };
    // /etc/os-release is usually a link to ../usr/lib/os-release; without one, the
    // file is /usr/lib/os-release.
    let mut path = if t.lookup("usr/etc/os-release").is_some() {
        "usr/etc/os-release".to_string()
    } else {
        "usr/lib/os-release".to_string()
    };
    for _ in 0..8 {
        match t.lookup(&path) {
            Some(TreeEntry::File(c)) => {
                let (h, _) = repo.read_file(c)?;
                if !h.is_symlink() {
                    break;
                }
                let target = &h.symlink_target;
                let base_dir = if path.starts_with("usr/etc/") {
                    "etc"
                } else {
                    path.rsplit_once('/').map_or("", |(d, _)| d)
                };
                path = if let Some(abs) = target.strip_prefix('/') {
                    translate(&format!("/{abs}"))
                } else {
                    let mut parts: Vec<&str> =
                        base_dir.split('/').filter(|p| !p.is_empty()).collect();
                    for seg in target.split('/') {
                        match seg {
                            "" | "." => {}
                            ".." => {
                                parts.pop();
                            }
                            s => parts.push(s),
                        }
                    }
                    translate(&format!("/{}", parts.join("/")))
                };
            }
            _ => {
                return Err(AssembleError::Treefile {
                    what: "mutate-os-release".into(),
                    why: format!("/{path} is not a file in the tree"),
                })
            }
        }
    }
    let Some(TreeEntry::File(c)) = t.lookup(&path) else {
        return Err(AssembleError::Treefile {
            what: "mutate-os-release".into(),
            why: "no os-release in the tree".into(),
        });
    };
    let (h, content) = repo.read_file(c)?;
    let text = String::from_utf8_lossy(&content);
    let mut out = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let mutated = ["VERSION=", "PRETTY_NAME="].iter().find_map(|k| {
            line.strip_prefix(k)
                .map(|v| format!("{k}{}", v.replace(base, version)))
        });
        out.push_str(&mutated.unwrap_or_else(|| line.to_string()));
        out.push('\n');
    }
    out.push_str(&format!("OSTREE_VERSION={}\n", shell_quote(version)));
    let c = h.checksum(out.as_bytes());
    repo.write_file_object(&c, &h, out.as_bytes())?;
    put(t, &path, c)?;
    Ok(())
}

/// GLib's `g_shell_quote`: single quotes, `'` written as `'\''`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// rpm-ostree's `cliwrap`: `rpm`, `dracut` and `grubby` (or only `cliwrap-binaries`)
/// move to `/usr/libexec/rpm-ostree/wrapped/` and are replaced by stubs that call
/// `rpm-ostree cliwrap`; `yum` and `dnf` always get one.
fn cliwrap(repo: &Repo, t: &mut MutableTree, plan: &ComposePlan) -> Result<()> {
    let mut wrapped = vec!["usr/bin/rpm", "usr/bin/dracut", "usr/sbin/grubby"];
    if plan.boot_location != BootLocation::KernelInstall {
        wrapped.push("usr/bin/kernel-install");
    }
    if !plan.cliwrap_binaries.is_empty() {
        wrapped.retain(|p| {
            plan.cliwrap_binaries
                .iter()
                .any(|b| p.ends_with(&format!("/{b}")))
        });
    }
    let stub = b"#!/bin/sh\nexec /usr/bin/rpm-ostree cliwrap $0 \"$@\"\n";
    for p in wrapped {
        let Some(TreeEntry::File(c)) = t.lookup(p) else {
            continue;
        };
        let c = *c;
        let name = p.rsplit('/').next().unwrap_or(p);
        put(t, &format!("usr/libexec/rpm-ostree/wrapped/{name}"), c)?;
        put(t, p, regular(repo, stub, 0o755)?)?;
    }
    for p in ["usr/bin/yum", "usr/bin/dnf"] {
        t.remove(p);
        put(t, p, regular(repo, stub, 0o755)?)?;
    }
    Ok(())
}

fn units(repo: &Repo, t: &mut MutableTree, plan: &ComposePlan) -> Result<()> {
    for unit in &plan.units {
        let src = format!("usr/lib/systemd/system/{unit}");
        if t.lookup(&src).is_none() {
            return Err(AssembleError::Treefile {
                what: format!("units: {unit}"),
                why: format!("/{src} is not in the tree"),
            });
        }
        let link = format!("usr/etc/systemd/system/multi-user.target.wants/{unit}");
        // A link a scriptlet's `systemctl preset` made is kept (the same unit,
        // perhaps through /lib).
        if t.lookup(&link).is_none() {
            put(t, &link, symlink(repo, &format!("/{src}"))?)?;
        }
    }
    if let Some(target) = &plan.default_target {
        if t.lookup(&format!("usr/lib/systemd/system/{target}"))
            .is_none()
        {
            return Err(AssembleError::Treefile {
                what: format!("default-target: {target}"),
                why: "no such unit in usr/lib/systemd/system".into(),
            });
        }
        t.remove("usr/lib/systemd/system/default.target");
        put(
            t,
            "usr/lib/systemd/system/default.target",
            symlink(repo, target)?,
        )?;
    }
    Ok(())
}

fn machine_id(repo: &Repo, t: &mut MutableTree, plan: &ComposePlan) -> Result<()> {
    t.remove("usr/etc/machine-id");
    if plan.machineid_compat {
        put(t, "usr/etc/machine-id", regular(repo, b"", 0o444)?)?;
    }
    Ok(())
}

fn add_files(repo: &Repo, t: &mut MutableTree, plan: &ComposePlan) -> Result<()> {
    for (src, dest) in &plan.add_files {
        let bad = |why: String| AssembleError::Treefile {
            what: format!("add-files: {}", src.display()),
            why,
        };
        let meta = fs::metadata(src).map_err(|e| bad(e.to_string()))?;
        let content = crate::input::read_capped(src, crate::input::MAX_ADD_FILE)
            .map_err(|e| bad(e.to_string()))?;
        put(
            t,
            &translate(dest),
            regular(repo, &content, meta.mode() & 0o7777)?,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translations() {
        assert_eq!(translate("/etc/motd"), "usr/etc/motd");
        assert_eq!(translate("/usr/bin/x"), "usr/bin/x");
        assert_eq!(translate("/bin/sh"), "usr/bin/sh");
    }
}
