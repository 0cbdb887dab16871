//! rpm-ostree's `treefile_merge`: how an included file (the parent) folds into the
//! file that includes it (the child).
//!
//! scalars: the child wins (the first one set wins); arrays: the parent's items, then
//! the child's; maps: `dict.update` with the child winning; sets: union. Files
//! referenced by a key (`postprocess-script`, `check-*: file`) travel with the key.

use std::collections::{BTreeMap, BTreeSet};

use super::Treefile;

fn merge_opt<T>(dest: &mut Option<T>, src: Option<T>) {
    if dest.is_none() {
        *dest = src;
    }
}

fn merge_vec<T>(dest: &mut Option<Vec<T>>, src: Option<Vec<T>>) {
    if let Some(mut parent) = src {
        if let Some(child) = dest.take() {
            parent.extend(child);
        }
        *dest = Some(parent);
    }
}

fn merge_map<V>(dest: &mut Option<BTreeMap<String, V>>, src: Option<BTreeMap<String, V>>) {
    if let Some(mut parent) = src {
        if let Some(child) = dest.take() {
            parent.extend(child);
        }
        *dest = Some(parent);
    }
}

fn merge_set(dest: &mut Option<BTreeSet<String>>, src: Option<BTreeSet<String>>) {
    if let Some(mut parent) = src {
        parent.extend(dest.take().into_iter().flatten());
        *dest = Some(parent);
    }
}

/// Set union that keeps the parent's order first (the plan's package order).
fn merge_union(dest: &mut Option<Vec<String>>, src: Option<Vec<String>>) {
    if let Some(mut all) = src {
        for p in dest.take().into_iter().flatten() {
            if !all.contains(&p) {
                all.push(p);
            }
        }
        *dest = Some(all);
    }
}

impl Treefile {
    /// Merge the included `parent` into `self` (the including file) by rpm-ostree's rules.
    pub fn merge_parent(&mut self, parent: Treefile) {
        let p = parent;
        merge_opt(&mut self.ref_, p.ref_);
        merge_opt(&mut self.edition, p.edition);
        merge_opt(&mut self.basearch, p.basearch);
        merge_vec(&mut self.repos, p.repos);
        merge_vec(&mut self.lockfile_repos, p.lockfile_repos);
        merge_map(&mut self.repovars, p.repovars);
        merge_opt(&mut self.releasever, p.releasever);
        merge_map(&mut self.variables, p.variables);
        merge_union(&mut self.packages, p.packages);
        for (arch, pkgs) in p.arch_packages {
            let e = self.arch_packages.entry(arch).or_default();
            let mut all = pkgs;
            for q in std::mem::take(e) {
                if !all.contains(&q) {
                    all.push(q);
                }
            }
            *e = all;
        }
        merge_union(&mut self.bootstrap_packages, p.bootstrap_packages);
        merge_vec(&mut self.exclude_packages, p.exclude_packages);
        merge_vec(&mut self.repo_packages, p.repo_packages);
        dedupe_repo_packages(self);
        merge_vec(&mut self.ostree_layers, p.ostree_layers);
        merge_vec(&mut self.ostree_override_layers, p.ostree_override_layers);
        // platform-module is not merged (rpm-ostree's treefile_merge leaves it out).
        merge_opt(&mut self.recommends, p.recommends);
        merge_opt(&mut self.documentation, p.documentation);
        merge_vec(&mut self.install_langs, p.install_langs);
        merge_vec(&mut self.initramfs_args, p.initramfs_args);
        merge_opt(&mut self.no_initramfs, p.no_initramfs);
        merge_opt(&mut self.readonly_executables, p.readonly_executables);
        merge_opt(
            &mut self.automatic_version_prefix,
            p.automatic_version_prefix,
        );
        merge_opt(
            &mut self.automatic_version_suffix,
            p.automatic_version_suffix,
        );
        merge_opt(&mut self.mutate_os_release, p.mutate_os_release);
        merge_map(&mut self.add_commit_metadata, p.add_commit_metadata);
        let mut resolved = p.add_files_resolved;
        resolved.append(&mut self.add_files_resolved);
        self.add_files_resolved = resolved;
        merge_vec(&mut self.add_files, p.add_files);
        merge_vec(&mut self.remove_files, p.remove_files);
        merge_vec(&mut self.remove_from_packages, p.remove_from_packages);
        merge_vec(&mut self.postprocess, p.postprocess);
        if self.postprocess_script.is_none() {
            self.postprocess_script = p.postprocess_script;
            self.postprocess_script_resolved = p.postprocess_script_resolved;
        }
        merge_vec(&mut self.units, p.units);
        merge_opt(&mut self.default_target, p.default_target);
        merge_opt(&mut self.boot_location, p.boot_location);
        merge_opt(&mut self.tmp_is_dir, p.tmp_is_dir);
        merge_opt(&mut self.opt_usrlocal, p.opt_usrlocal);
        merge_opt(&mut self.machineid_compat, p.machineid_compat);
        merge_vec(&mut self.etc_group_members, p.etc_group_members);
        merge_opt(&mut self.preserve_passwd, p.preserve_passwd);
        merge_opt(&mut self.check_passwd, p.check_passwd);
        merge_opt(&mut self.check_groups, p.check_groups);
        merge_set(&mut self.ignore_removed_users, p.ignore_removed_users);
        merge_set(&mut self.ignore_removed_groups, p.ignore_removed_groups);
        merge_opt(&mut self.selinux, p.selinux);
        merge_opt(&mut self.selinux_label_version, p.selinux_label_version);
        merge_opt(&mut self.sysusers, p.sysusers);
        merge_opt(&mut self.ignore_devices, p.ignore_devices);
        merge_opt(&mut self.ima, p.ima);
        merge_opt(&mut self.gpg_key, p.gpg_key);
        merge_opt(&mut self.rpmdb, p.rpmdb);
        merge_opt(&mut self.rpmdb_normalize, p.rpmdb_normalize);
        merge_opt(&mut self.repo_metadata, p.repo_metadata);
        merge_opt(&mut self.advisories_metadata, p.advisories_metadata);
        merge_opt(&mut self.container, p.container);
        merge_opt(&mut self.container_cmd, p.container_cmd);
        merge_opt(&mut self.cliwrap, p.cliwrap);
        merge_vec(&mut self.cliwrap_binaries, p.cliwrap_binaries);
        merge_opt(&mut self.rojig, p.rojig);
        merge_vec(&mut self.scriptlet_overrides, p.scriptlet_overrides);
        merge_map(&mut self.metadata, p.metadata);
        // `extra` (a JSON file's unknown keys) is not merged: only the top file's stay.
    }
}

/// `repo-packages`: a later entry overrides an earlier one for the same package;
/// entries left empty go (rpm-ostree's `handle_repo_packages_overrides`).
fn dedupe_repo_packages(t: &mut Treefile) {
    let Some(list) = t.repo_packages.as_mut() else {
        return;
    };
    let mut seen = BTreeSet::new();
    for rp in list.iter_mut().rev() {
        rp.packages.retain(|p| seen.insert(p.clone()));
    }
    list.retain(|rp| !rp.packages.is_empty());
}
