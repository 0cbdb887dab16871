//! The container oracles themselves, proven without arbor: a commit made by the stock
//! `ostree` CLI, encapsulated by ostree-ext 0.15.3, must satisfy skopeo, umoci, a local
//! `docker-registry` (on disk and on garage), ostree-ext's own import (the identical commit
//! checksum) and podman (a static busybox runs). When one of these fails, the container
//! tests that use it to judge arbor's images cannot be trusted either.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use arbor_tests::oracles::{
    imported_checksum, oci_ref, ostree_ext, require_insecure_localhost, skopeo, skopeo_inspect,
    skopeo_labels, umoci, Podman, Registry, RegistryS3Opts,
};
use arbor_tests::{ostree, tempdir, Garage, TempDir};

const REF: &str = "oracle/x86_64/test";
const OS_RELEASE: &str = "NAME=oracle\nVERSION_ID=1\n";

/// An archive repository with one bootable commit of a tiny tree (static busybox, `sh`
/// link, `usr/etc/os-release`), made by `ostree commit`; returns the commit checksum.
fn stock_commit(dir: &Path) -> (PathBuf, String) {
    let busybox = fs::read("/bin/busybox")
        .expect("/bin/busybox (Debian busybox-static; run `bash ci/install-deps.sh`)");
    let root = dir.join("root");
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::create_dir_all(root.join("usr/etc")).unwrap();
    fs::write(root.join("usr/bin/busybox"), busybox).unwrap();
    fs::set_permissions(
        root.join("usr/bin/busybox"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    symlink("busybox", root.join("usr/bin/sh")).unwrap();
    fs::write(root.join("usr/etc/os-release"), OS_RELEASE).unwrap();
    let repo = dir.join("repo");
    let r = format!("--repo={}", repo.display());
    ostree(&[&r, "init", "--mode=archive"]).ok();
    let out = ostree(&[
        &r,
        "commit",
        &format!("--branch={REF}"),
        "--add-metadata=ostree.bootable=true",
        "--add-metadata-string=version=1",
        "--owner-uid=0",
        "--owner-gid=0",
        "--timestamp=2024-01-01 00:00:00 +0000",
        &format!("--tree=dir={}", root.display()),
    ])
    .ok()
    .trim()
    .to_string();
    assert_eq!(out.len(), 64, "ostree commit printed {out:?}");
    (repo, out)
}

/// `stock_commit` encapsulated into `DIR/oci` as tag `v1`.
fn encapsulated(dir: &TempDir) -> (String, String) {
    let (repo, commit) = stock_commit(dir.path());
    let oci = oci_ref(&dir.path().join("oci"), "v1");
    ostree_ext(&[
        "container",
        "encapsulate",
        "--repo",
        repo.to_str().unwrap(),
        REF,
        &oci,
    ])
    .ok();
    (oci, commit)
}

/// `container unencapsulate` of `imgref` into a new bare-user repository: the imported
/// commit, checked against the ref it wrote and by `ostree fsck`.
fn unencapsulate(dir: &Path, imgref: &str) -> String {
    let imp = dir.join("imported");
    let r = format!("--repo={}", imp.display());
    ostree(&[&r, "init", "--mode=bare-user"]).ok();
    let run = ostree_ext(&[
        "container",
        "unencapsulate",
        "--quiet",
        "--repo",
        imp.to_str().unwrap(),
        "--write-ref",
        "imported",
        imgref,
    ]);
    let checksum = imported_checksum(&run);
    assert_eq!(ostree(&[&r, "rev-parse", "imported"]).ok().trim(), checksum);
    ostree(&[&r, "fsck", "--quiet"]).ok();
    checksum
}

#[test]
fn encapsulated_commit_satisfies_skopeo_umoci_and_imports_identically() {
    let dir = tempdir();
    let (oci, commit) = encapsulated(&dir);

    let labels = skopeo_labels(&oci);
    assert_eq!(labels["ostree.commit"], commit, "{labels:?}");
    assert_eq!(labels["ostree.bootable"], "true", "{labels:?}");
    assert_eq!(labels["containers.bootc"], "1", "{labels:?}");
    assert_eq!(
        labels["org.opencontainers.image.version"], "1",
        "{labels:?}"
    );
    let inspect = skopeo_inspect(&oci);
    let layers = inspect["Layers"].as_array().expect("Layers");
    assert_eq!(
        layers.len(),
        1,
        "one layer without a chunking plan: {inspect}"
    );
    assert!(labels["ostree.final-diffid"].starts_with("sha256:"));

    // umoci applies the layer as a runtime would: busybox is a hardlink to its object.
    let bundle = dir.path().join("bundle");
    let image = format!("{}:v1", dir.path().join("oci").display());
    umoci(&["unpack", "--image", &image, bundle.to_str().unwrap()]).ok();
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/os-release")).unwrap(),
        OS_RELEASE,
        "usr/etc is carried as etc"
    );
    let nlink = std::os::unix::fs::MetadataExt::nlink(
        &fs::metadata(rootfs.join("usr/bin/busybox")).unwrap(),
    );
    assert_eq!(nlink, 2, "usr/bin/busybox and its sysroot/ostree object");

    let imported = unencapsulate(dir.path(), &format!("ostree-unverified-image:{oci}"));
    assert_eq!(
        imported, commit,
        "the imported commit is the encapsulated one"
    );
}

#[test]
fn registry_round_trip_imports_identically_and_podman_runs_it() {
    require_insecure_localhost();
    let dir = tempdir();
    let (oci, commit) = encapsulated(&dir);
    let registry = Registry::start();
    let image = registry.image("oracle/test:v1");

    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &oci,
        &format!("docker://{image}"),
    ])
    .ok();
    // Same manifest bytes in the registry as in the layout; no TLS flag needed to read.
    let remote = skopeo_inspect(&format!("docker://{image}"));
    assert_eq!(remote["Digest"], skopeo_inspect(&oci)["Digest"]);
    assert_eq!(remote["Labels"]["ostree.commit"], commit.as_str());

    let imported = unencapsulate(dir.path(), &format!("ostree-unverified-registry:{image}"));
    assert_eq!(imported, commit, "the commit pulled from the registry");

    let podman = Podman::new();
    let out = podman.run(&image, &["/usr/bin/busybox", "cat", "/etc/os-release"]);
    assert_eq!(out.ok(), OS_RELEASE);
    let out = podman.run(&image, &["/usr/bin/sh", "-c", "echo $((6 * 7))"]);
    assert_eq!(out.ok().trim(), "42");
}

#[test]
fn registry_backed_by_garage_serves_what_was_pushed() {
    require_insecure_localhost();
    let dir = tempdir();
    let (oci, commit) = encapsulated(&dir);
    let garage = Garage::start();
    let s3 = RegistryS3Opts::garage(&garage, "registry");
    let image_name = "oracle/test:v1";
    {
        let registry = Registry::start_s3(&s3);
        skopeo(&[
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &oci,
            &format!("docker://{}", registry.image(image_name)),
        ])
        .ok();
        assert!(
            !registry.dir().join("storage").exists(),
            "nothing stored on local disk"
        );
    }
    // A second registry process on the same bucket has the image: it lives in garage.
    let registry = Registry::start_s3(&s3);
    let image = registry.image(image_name);
    assert_eq!(
        skopeo_inspect(&format!("docker://{image}"))["Digest"],
        skopeo_inspect(&oci)["Digest"]
    );
    let imported = unencapsulate(dir.path(), &format!("ostree-unverified-registry:{image}"));
    assert_eq!(imported, commit);
}
