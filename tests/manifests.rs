//! Real manifests: every top-level treefile of public rpm-ostree configurations,
//! flattened by the real `arbor compose --print-only` (x86_64), with values checked
//! against what rpm-ostree's merge rules give when the manifests are read by hand.
//!
//! The copies live in `tests/manifests/<source>/` (README there: origin, commit,
//! licence). Two sources carry no licence, so no copy of them is kept; their tests
//! run against a checkout named by `ARBOR_EXTRA_MANIFESTS` (see the README) and are
//! marked ignored, so `cargo test` lists them as such (`--ignored` runs them).
//!
//! The rules used below: scalars — the including file wins, then the earlier include;
//! arrays — an included file's items before the includer's, a later include's before
//! an earlier include's; maps — `dict.update`; `packages` — a sorted set with this
//! architecture's `packages-$basearch` folded in.

mod util {
    pub use arbor_tests::*;
}

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use util::arbor;

fn manifests() -> PathBuf {
    util::workspace_root().join("tests/manifests")
}

/// `arbor compose --print-only` of `dir/name` as JSON.
fn flatten(dir: &Path, name: &str) -> Value {
    let path = dir.join(name);
    let out = arbor(&[
        "compose",
        "--print-only",
        path.to_str().expect("utf-8 path"),
    ])
    .ok()
    .to_string();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{name}: {e}\n{out}"))
}

/// The expected values are for x86_64 (`packages-x86_64`, `arch-include`, `basearch`
/// conditions).
fn on_x86_64() -> bool {
    let yes = std::env::consts::ARCH == "x86_64";
    if !yes {
        eprintln!("skipped: the expected values are for x86_64");
    }
    yes
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string"))
        .collect()
}

fn has(v: &Value, item: &str) -> bool {
    strings(v).contains(&item)
}

/// The `n`th inline postprocess script (negative: from the end).
fn script(flat: &Value, n: isize) -> &str {
    let all = flat["postprocess"].as_array().expect("postprocess");
    let i = if n < 0 { all.len() as isize + n } else { n } as usize;
    all[i].as_str().expect("a script")
}

/// coreos/fedora-coreos-config: manifest.yaml → manifests/fedora-coreos.yaml →
/// fedora-coreos-base.yaml (10 includes) plus conditional includes.
#[test]
fn fedora_coreos_config() {
    if !on_x86_64() {
        return;
    }
    let dir = manifests().join("fedora-coreos-config");
    let f = flatten(&dir, "manifest.yaml");
    // ${basearch} and ${stream} (a variable of the top file) substituted into an
    // included file's ref, rojig summary and commit metadata.
    assert_eq!(f["ref"], "fedora/x86_64/coreos/testing-devel");
    assert_eq!(f["rojig"]["summary"], "Fedora CoreOS testing-devel");
    assert_eq!(
        f["add-commit-metadata"],
        json!({"fedora-coreos.stream": "testing-devel"})
    );
    assert_eq!(f["automatic-version-prefix"], "40.<date:%Y%m%d>.dev");
    assert_eq!(f["mutate-os-release"], "40");
    assert_eq!(f["releasever"], 40);
    assert_eq!(f["repos"], json!(["fedora", "fedora-updates"]));
    assert_eq!(f["lockfile-repos"], json!(["fedora-coreos-pool"]));
    // fedora-coreos.yaml's includes: [fedora-coreos-base, then the conditional ones
    // taken: disable-zincati (prod == false), grub2-removals (basearch != "s390x"),
    // exclude-dnf and wifi-firmwares (releasever < 41)]; merged in that order, so a
    // later include's layers come first, the includer's own last.
    assert_eq!(
        strings(&f["ostree-layers"]),
        [
            "overlay/16disable-zincati",
            "overlay/07fix-selinux-labels", // shared-workarounds, included by -base
            "overlay/05core",
            "overlay/08nouveau",
            "overlay/09misc",
            "overlay/20platform-chrony",
            "overlay/25azure-udev-rules",
            "overlay/30lvmdevices",
            "overlay/40grub",
            "overlay/15fcos",
        ]
    );
    // Not taken (releasever >= 41): composefs.yaml's layer, include-dnf's package.
    assert!(!has(&f["packages"], "dnf5"));
    assert!(
        has(&f["packages"], "atheros-firmware"),
        "wifi-firmwares taken"
    );
    let excluded = strings(&f["exclude-packages"]);
    assert_eq!(
        excluded[..2],
        ["dnf", "dnf5"],
        "exclude-dnf, the last include"
    );
    assert_eq!(
        excluded.last(),
        Some(&"NetworkManager-initscripts-ifcfg-rh")
    );
    // Postprocess: -base's includes (bootupd, ignition-and-ostree, system-configuration
    // in reverse include order), -base's own four, then fedora-coreos.yaml's three.
    assert_eq!(f["postprocess"].as_array().unwrap().len(), 10);
    assert!(script(&f, 0).contains("bootupctl backend generate-update-metadata"));
    assert!(script(&f, 1).contains("systemctl --user --global preset-all"));
    assert!(script(&f, 2).contains("systemctl mask systemd-repart.service"));
    assert!(script(&f, 3).contains("container_use_cephfs"));
    assert!(script(&f, 4).contains("systemctl mask dnsmasq.service"));
    assert!(script(&f, 7).contains("95-disable-on-dev.toml"));
    assert!(script(&f, -1).contains("list_broken_symlinks_folders"));
    // A set: entries split on whitespace, packages-x86_64 folded in, not ppc64le's.
    for p in [
        "nano",
        "nano-default-editor",
        "irqbalance",
        "crun-wasm",
        "kernel",
    ] {
        assert!(has(&f["packages"], p), "{p}");
    }
    assert!(!has(&f["packages"], "librtas"));
    let packages = strings(&f["packages"]);
    assert!(packages.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
    assert_eq!(
        f["etc-group-members"],
        json!(["wheel", "sudo", "systemd-journal", "adm", "docker"])
    );
    assert_eq!(
        f["check-passwd"],
        json!({"type": "file", "filename": "passwd"})
    );
    assert_eq!(f["boot-location"], "modules");
    assert_eq!(f["tmp-is-dir"], true);
    assert_eq!(f["recommends"], false);
    assert_eq!(f["rpmdb"], "sqlite");
    assert_eq!(
        f["variables"],
        json!({"basearch": "x86_64", "prod": false, "releasever": 40, "stream": "testing-devel"})
    );
}

/// gitlab.com/fedora/bootc/base-images (GitHub copy jtligon/base-images): the tiers.
#[test]
fn fedora_bootc() {
    if !on_x86_64() {
        return;
    }
    let dir = manifests().join("fedora-bootc");
    let tier0 = flatten(&dir, "fedora-tier-0.yaml");
    let tier1 = flatten(&dir, "fedora-tier-1.yaml");
    let tierx = flatten(&dir, "fedora-tier-x.yaml");
    // fedora-bootc.yaml is the file fedora-tier-1.yaml links to.
    assert_eq!(flatten(&dir, "fedora-bootc.yaml"), tier1);
    for f in [&tier0, &tier1, &tierx] {
        assert!(f.get("ref").is_none(), "these manifests name no ref");
        assert_eq!(f["releasever"], "rawhide");
        assert_eq!(f["repos"], json!(["rawhide"]));
        assert_eq!(f["variables"]["distro"], "fedora");
        // tier-0/manifest.yaml's ${releasever}, filled from the top file's releasever.
        assert_eq!(f["mutate-os-release"], "rawhide");
        assert_eq!(f["automatic-version-prefix"], "rawhide.<date:%Y%m%d>");
        assert_eq!(f["container-cmd"], json!(["/sbin/init"]));
        assert_eq!(f["opt-usrlocal"], "root");
        assert_eq!(f["rpmdb"], "host");
        for p in [
            "fedora-repos-archive",
            "kernel",
            "grub2-efi-x64",
            "microcode_ctl",
            "dosfstools",
        ] {
            assert!(has(&f["packages"], p), "{p}");
        }
        assert!(!has(&f["packages"], "/usr/sbin/zipl"), "s390x only");
    }
    assert_eq!(tier0["metadata"]["name"], "fedora-boot-tier0");
    assert_eq!(tier1["metadata"]["summary"], "Fedora Bootable Tier 1");
    // tier-1/manifest.yaml's `recommends: true` overrides tier-0's `false`.
    assert_eq!(tier0["recommends"], false);
    assert_eq!(tierx["recommends"], false);
    assert_eq!(tier1["recommends"], true);
    assert!(has(&tierx["packages"], "podman") && !has(&tier0["packages"], "podman"));
    // tier-0/manifest.yaml includes [bootc, bootupd, ostree, initramfs, basic-fixes].
    assert_eq!(tier0["postprocess"].as_array().unwrap().len(), 4);
    assert!(script(&tier0, 0).contains("/var/roothome"), "basic-fixes");
    assert!(
        script(&tier0, 1).contains("20-bootc-base.conf"),
        "initramfs"
    );
    assert!(script(&tier0, 2).contains("prepare-root.conf"), "ostree");
    assert!(script(&tier0, 3).contains("bootupctl backend generate-update-metadata"));
    // tier-1/manifest.yaml includes [tier-x (→ tier-0), autoupdates, …,
    // persistent-journal, initramfs-full, generic-growfs] and has two scripts.
    assert_eq!(tier1["postprocess"].as_array().unwrap().len(), 10);
    assert!(script(&tier1, 0).contains("bootc-generic-growpart.service"));
    assert!(script(&tier1, 1).contains("30-bootc-tier-1.conf"));
    assert!(script(&tier1, 2).contains("10-centos-bootc-persistent.conf"));
    assert!(script(&tier1, 3).contains("bootc-fetch-apply-updates.timer"));
    assert!(script(&tier1, 4).contains("/var/roothome"));
    assert!(script(&tier1, 8).contains("systemctl preset-all"));
    assert!(script(&tier1, 9).contains("rm -f /usr/bin/dotlockfile"));
    assert_eq!(
        tier1["add-files"],
        json!([
            [
                "bootc-generic-growpart",
                "/usr/libexec/bootc-generic-growpart"
            ],
            [
                "bootc-generic-growpart.service",
                "/usr/lib/systemd/system/bootc-generic-growpart.service"
            ]
        ])
    );
}

/// CentOS/centos-bootc, with its fedora-bootc submodule at the commit it pins.
#[test]
fn centos_bootc() {
    if !on_x86_64() {
        return;
    }
    let dir = manifests().join("centos-bootc");
    let c9 = flatten(&dir, "centos-stream-9.yaml");
    assert_eq!(c9["releasever"], "stream9");
    assert_eq!(c9["repos"], json!(["baseos", "appstream"]));
    assert_eq!(c9["packages"], json!(["dnf-yum", "subscription-manager"]));
    assert_eq!(c9["postprocess"].as_array().unwrap().len(), 2);
    let c10 = flatten(&dir, "centos-stream-10.yaml");
    assert_eq!(c10["releasever"], "stream10");
    assert_eq!(c10["variables"]["distro"], "stream10");

    for (name, release, rt, tier1) in [
        ("centos-stream-9-tier0.yaml", "stream9", false, false),
        ("centos-stream-9-tier0-rt.yaml", "stream9", true, false),
        ("centos-stream-9-tier1.yaml", "stream9", false, true),
        ("centos-stream-9-tier1-rt.yaml", "stream9", true, true),
        ("centos-stream-10-tier1.yaml", "stream10", false, true),
    ] {
        let f = flatten(&dir, name);
        // The first include (centos-stream-N.yaml) sets releasever; tier-0's
        // ${releasever} strings, two includes away, get it.
        assert_eq!(f["releasever"], release, "{name}");
        assert_eq!(f["mutate-os-release"], release, "{name}");
        assert_eq!(
            f["automatic-version-prefix"],
            format!("{release}.<date:%Y%m%d>"),
            "{name}"
        );
        // A later include's array items come first: kernel-rt.yaml's repos, included
        // after centos-stream-9.yaml, lead.
        let repos = if rt {
            json!(["rt", "nfv", "baseos", "appstream"])
        } else {
            json!(["baseos", "appstream"])
        };
        assert_eq!(f["repos"], repos, "{name}");
        assert_eq!(f["recommends"], tier1, "{name}: tier-1 overrides tier-0");
        assert_eq!(has(&f["packages"], "kernel-rt-core"), rt, "{name}");
        assert_eq!(has(&f["packages"], "WALinuxAgent-udev"), tier1, "{name}");
        // arch-include x86_64: bootupd.yaml (tier-0/manifest.yaml).
        assert!(has(&f["packages"], "grub2-efi-x64"), "{name}");
        assert!(has(&f["packages"], "subscription-manager"), "{name}");
        // centos-stream-N.yaml is the first include: its two scripts come last.
        assert!(
            script(&f, -1).contains("/run/secrets/etc-pki-entitlement"),
            "{name}"
        );
        assert!(script(&f, -2).contains("20-rhel.toml"), "{name}");
        if tier1 {
            assert!(
                script(&f, -3).contains("rm -f /usr/bin/dotlockfile"),
                "{name}"
            );
        }
        assert_eq!(
            f["check-groups"],
            json!({"type": "file", "filename": "group"}),
            "{name}"
        );
    }

    let sub = dir.join("fedora-bootc");
    let fedora = flatten(&sub, "fedora-bootc.yaml");
    assert_eq!(fedora["releasever"], 40);
    assert_eq!(fedora["mutate-os-release"], "40");
    assert_eq!(fedora["repos"], json!(["fedora", "updates"]));
    let eln = flatten(&sub, "fedora-eln-bootc.yaml");
    assert_eq!(eln["variables"]["distro"], "eln");
    assert_eq!(eln["automatic-version-prefix"], "39.<date:%Y%m%d>");
    for (name, release) in [
        ("fedora-tier-0-40.yaml", json!(40)),
        ("fedora-tier-0-eln.yaml", json!(39)),
        ("fedora-tier-0-rawhide.yaml", json!("rawhide")),
    ] {
        let f = flatten(&sub, name);
        assert_eq!(f["releasever"], release, "{name}");
        assert_eq!(f["recommends"], false, "{name}");
        assert!(has(&f["packages"], "tpm2-tools"), "{name}");
    }
}

/// Fedora's workstation-ostree-config (Silverblue, Kinoite and the other desktops).
#[test]
fn workstation_ostree_config() {
    if !on_x86_64() {
        return;
    }
    let dir = manifests().join("workstation-ostree-config");
    for (name, variant, release_pkg) in [
        (
            "fedora-silverblue.yaml",
            "silverblue",
            "fedora-release-silverblue",
        ),
        ("fedora-kinoite.yaml", "kinoite", "fedora-release-kinoite"),
        ("fedora-base.yaml", "base", "fedora-release"),
        ("fedora-deepin.yaml", "deepin", "fedora-release"),
        ("fedora-lxqt.yaml", "lxqt", "fedora-release"),
        ("fedora-mate.yaml", "mate", "fedora-release-ostree-desktop"),
        ("fedora-pantheon.yaml", "pantheon", "fedora-release"),
        ("fedora-vauxite.yaml", "vauxite", "fedora-release-xfce"),
    ] {
        let f = flatten(&dir, name);
        // The top file's ref overrides fedora-common-ostree.yaml's …/ostree-base.
        assert_eq!(
            f["ref"],
            format!("fedora/rawhide/x86_64/{variant}"),
            "{name}"
        );
        // Legacy spellings in fedora-common-ostree.yaml.
        assert_eq!(f["automatic-version-prefix"], "38", "{name}");
        assert_eq!(f["default-target"], "graphical.target", "{name}");
        assert_eq!(f["mutate-os-release"], "38", "{name}");
        assert_eq!(f["selinux"], true, "{name}");
        assert_eq!(f["repos"], json!(["fedora-rawhide"]), "{name}");
        for p in [
            release_pkg,
            "git-core",
            "rpm-ostree",
            "grub2-efi-x64",
            "thermald",
        ] {
            assert!(has(&f["packages"], p), "{name}: {p}");
        }
        assert!(
            !has(&f["packages"], "extlinux-bootloader"),
            "{name}: armhfp only"
        );
        assert_eq!(f["postprocess"].as_array().unwrap().len(), 2, "{name}");
        assert_eq!(
            f["check-passwd"],
            json!({"type": "file", "filename": "passwd"}),
            "{name}"
        );
        assert_eq!(f["ignore-removed-users"], json!(["root"]), "{name}");
    }
    let kinoite = flatten(&dir, "fedora-kinoite.yaml");
    assert_eq!(kinoite["rojig"]["name"], "fedora-kde");
    // fedora-common-ostree.yaml's (included, so first), then kinoite's own.
    let excluded = strings(&kinoite["exclude-packages"]);
    assert_eq!(excluded.first(), Some(&"PackageKit"));
    assert_eq!(excluded.last(), Some(&"plasma-pk-updates"));
}

/// rocky-linux/sig-ostree_ostree-config.
#[test]
fn rocky_ostree_config() {
    if !on_x86_64() {
        return;
    }
    let dir = manifests().join("rocky-ostree-config");
    let f = flatten(&dir, "manifest.8-minimal.yaml");
    // rocky-common.yaml's ref and strings, filled with the top file's variables.
    assert_eq!(f["ref"], "rockylinux/8/x86_64/minimal/devel");
    assert_eq!(f["rojig"]["summary"], "Rocky Linux OSTree 8-minimal-devel");
    assert_eq!(f["mutate-os-release"], "8-minimal-devel");
    // Legacy `automatic_version_prefix` and `default_target`.
    assert_eq!(
        f["automatic-version-prefix"],
        "8/minimal/devel <date:%Y.%m>"
    );
    assert_eq!(f["default-target"], "multi-user.target");
    assert_eq!(f["cliwrap"], true);
    assert_eq!(f["readonly-executables"], true);
    assert_eq!(f["documentation"], false);
    // repovars are neither substituted nor printed (as rpm-ostree).
    assert!(f.get("repovars").is_none());
    // arch-include x86_64 brings repo-packages and grub packages.
    assert_eq!(
        f["repo-packages"],
        json!([{"repo": "baseos", "packages": ["kernel", "kernel-modules", "kernel-modules-extra"]}])
    );
    assert!(has(&f["packages"], "grub2-efi-x64") && has(&f["packages"], "nss-altfiles"));
    // Includes [rocky-common, fixes, Minimal_Install, arch/x86_64]: only fixes.yaml
    // has a script; the top file's comes last.
    assert_eq!(f["postprocess"].as_array().unwrap().len(), 2);
    assert!(script(&f, 0).contains("Storage=persistent"));
    assert!(script(&f, 1).contains("systemctl disable rdisc.service"));
    assert_eq!(f["exclude-packages"], json!(["plymouth"]));
}

/// Sources without a licence: run (with `--ignored`) against a checkout in
/// `ARBOR_EXTRA_MANIFESTS`; without one the test fails, saying so.
fn extra(source: &str) -> Option<PathBuf> {
    let root = std::env::var_os("ARBOR_EXTRA_MANIFESTS")
        .expect("set ARBOR_EXTRA_MANIFESTS to a checkout (tests/manifests/README.md)");
    Some(PathBuf::from(root).join(source))
}

/// openshift/os (RHCOS/SCOS), with its fedora-coreos-config submodule.
#[test]
#[ignore = "openshift/os carries no licence, so no copy is kept: set ARBOR_EXTRA_MANIFESTS \
            (tests/manifests/README.md) and run with --ignored"]
fn openshift_os() {
    let Some(dir) = extra("openshift-os") else {
        return;
    };
    if !on_x86_64() {
        return;
    }
    for name in [
        "manifest-c9s.yaml",
        "manifest-rhel-9.4.yaml",
        "manifest-rhel-9.6.yaml",
    ] {
        let f = flatten(&dir, name);
        assert_eq!(f["automatic-version-suffix"], "-", "{name}");
        assert_eq!(f["documentation"], false, "{name}");
        // common.yaml's includes (shared-workarounds brings 07fix) before its own.
        let layers = strings(&f["ostree-layers"]);
        assert_eq!(
            layers[..2],
            ["overlay/07fix-selinux-labels", "overlay/01fcos"]
        );
        assert!(
            has(&f["packages"], "skopeo >= 2:1.7.0"),
            "{name}: quoted entry"
        );
    }
    let okd = flatten(&dir, "manifest-okd-c9s.yaml");
    // The top file's scalars win over manifest-c9s.yaml's.
    assert_eq!(okd["automatic-version-prefix"], "419.9.<date:%Y%m%d%H%M>");
    assert_eq!(okd["mutate-os-release"], "4.19");
    // metadata: dict.update over manifest-c9s.yaml and packages-openshift.yaml.
    assert_eq!(
        okd["metadata"],
        json!({"license": "MIT", "name": "scos", "summary": "OKD 4.19", "ocp_version": "4.19"})
    );
    assert_eq!(
        strings(&okd["repos"]),
        [
            "c9s-appstream-mirror",
            "c9s-baseos",
            "c9s-appstream",
            "c9s-extras-common",
            "c9s-sig-nfv",
            "c9s-sig-cloud-okd",
            "rhel-9.4-server-ose-4.19"
        ]
    );
    assert!(script(&okd, -1).contains("ID=\"scos\""));
    assert_eq!(
        okd["repo-packages"][0],
        json!({"repo": "c9s-baseos", "packages": ["kernel"]})
    );
    for (name, os) in [
        ("manifest-ocp-rhel-9.4.yaml", "rhel-9.4"),
        ("manifest-ocp-rhel-9.6.yaml", "rhel-9.6"),
    ] {
        let f = flatten(&dir, name);
        assert_eq!(f["variables"]["osversion"], os, "{name}");
        assert_eq!(f["mutate-os-release"], "4.19", "{name}");
        assert!(script(&f, -1).contains("ID=\"rhcos\""), "{name}");
        assert_eq!(strings(&f["repos"])[0], format!("{os}-baseos"), "{name}");
    }
}

/// lirios/ostree-config.
#[test]
#[ignore = "lirios/ostree-config carries no licence, so no copy is kept: set \
            ARBOR_EXTRA_MANIFESTS (tests/manifests/README.md) and run with --ignored"]
fn liri_ostree_config() {
    let Some(dir) = extra("liri-ostree-config") else {
        return;
    };
    if !on_x86_64() {
        return;
    }
    let base_repos = [
        "fedora",
        "fedora-updates",
        "fedora-cisco-openh264",
        "plfiorini-lirios",
    ];
    for (name, variant, extra_repo) in [
        (
            "lirios-unstable-desktop.yaml",
            "desktop",
            "plfiorini-liri-nightly",
        ),
        (
            "lirios-unstable-embedded.yaml",
            "embedded",
            "plfiorini-liri-nightly",
        ),
        (
            "lirios-unstable-mobile.yaml",
            "mobile",
            "plfiorini-liri-nightly",
        ),
    ] {
        let f = flatten(&dir, name);
        assert_eq!(
            f["ref"],
            format!("lirios/unstable/x86_64/{variant}"),
            "{name}"
        );
        assert_eq!(&strings(&f["repos"])[..4], base_repos, "{name}");
        assert!(has(&f["repos"], extra_repo), "{name}");
        // lirios-base.yaml's keys, some in legacy spelling.
        assert_eq!(f["gpg-key"], "123215684B1FD834", "{name}");
        assert_eq!(f["postprocess-script"], "post.sh", "{name}");
        assert_eq!(f["boot-location"], "modules", "{name}");
        assert_eq!(f["default-target"], "graphical.target", "{name}");
        assert_eq!(
            f["automatic-version-prefix"], "0.10.0.<date:%Y%m%d>.dev",
            "{name}"
        );
        assert_eq!(f["install-langs"], json!(["en_US"]), "{name}");
    }
    let live = flatten(&dir, "lirios-unstable-live.yaml");
    assert_eq!(live["ref"], "lirios/unstable/x86_64/live");
    let mut repos = base_repos.to_vec();
    repos.extend(["plfiorini-liri-nightly", "plfiorini-liri-tools"]);
    assert_eq!(strings(&live["repos"]), repos);
    assert_eq!(
        live["ostree-layers"],
        json!([
            "lirios-config-overlay-05core",
            "lirios-config-overlay-05live"
        ])
    );
    assert_eq!(
        live["ostree-override-layers"],
        json!(["lirios-bin-overlay-live"])
    );
    assert_eq!(
        live["initramfs-args"],
        json!(["--no-hostonly", "--add=ostree-live"])
    );
    assert!(has(&live["packages"], "calamares") && has(&live["packages"], "shim-ia32"));
}
