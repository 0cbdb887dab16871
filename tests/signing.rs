//! Signing: commits and summaries signed by arbor (gpg, an external signer, a local OpenPGP
//! key, ed25519) are accepted by real ostree clients (2022.7 and 2025.x) that verify
//! commits and summaries, and the same clients refuse tampered, stale and foreign
//! signatures, so these tests fail if the clients were accepting anything unsigned.

mod util {
    #![allow(dead_code)]
    pub use arbor_tests::*;
}

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use util::{arbor, run, tempdir, Client, HttpServer};

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A GnuPG home holding the release keys (a signing service's, which the build never
/// needs), with key A (RSA) and key B (EdDSA); the agent is stopped on drop.
struct Gpg {
    home: PathBuf,
    a: String,
    b: String,
}

impl Gpg {
    fn new(dir: &Path) -> Gpg {
        let home = dir.join("gnupg");
        fs::create_dir_all(&home).unwrap();
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
        let mut g = Gpg {
            home,
            a: String::new(),
            b: String::new(),
        };
        g.a = g.gen(
            "Arbor Release A <a@example.invalid>",
            "rsa3072",
            "never",
            &[],
        );
        g.b = g.gen("Arbor Other B <b@example.invalid>", "ed25519", "never", &[]);
        g
    }

    fn gpg(&self, args: &[&str]) -> util::Run {
        let mut full = vec!["--homedir", p(&self.home), "--batch", "--no-tty"];
        full.extend_from_slice(args);
        run("gpg", &full)
    }

    /// Generate a signing key; returns its fingerprint.
    fn gen(&self, uid: &str, algo: &str, expire: &str, extra: &[&str]) -> String {
        let mut args = extra.to_vec();
        args.extend([
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            algo,
            "sign",
            expire,
        ]);
        self.gpg(&args).ok();
        let out = self.gpg(&["--with-colons", "--list-keys", uid]);
        out.ok()
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.trim_matches(':').split(':').next_back())
            .expect("fingerprint")
            .to_string()
    }

    fn export(&self, fpr: &str, to: &Path) -> PathBuf {
        let out = self.gpg(&["--armor", "--export", fpr]);
        fs::write(to, out.ok()).unwrap();
        to.to_path_buf()
    }

    fn export_secret(&self, fpr: &str, to: &Path) -> PathBuf {
        let out = self.gpg(&["--armor", "--export-secret-keys", fpr]);
        fs::write(to, out.ok()).unwrap();
        to.to_path_buf()
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--homedir", p(&self.home), "--kill", "all"])
            .status();
    }
}

fn write_tree(dir: &Path, version: &str) {
    fs::create_dir_all(dir.join("usr/share/os")).unwrap();
    fs::write(dir.join("usr/share/os/version"), version).unwrap();
    // Enough content for a delta with real parts.
    let blob: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut b = blob.clone();
    b.extend_from_slice(version.as_bytes());
    fs::write(dir.join("usr/share/os/blob"), b).unwrap();
}

/// A repository with two commits of `os/x` signed by `sign_with`, their deltas, published
/// to `pub` with the summary signed by key A.
struct Published {
    repo: PathBuf,
    dest: PathBuf,
    commits: Vec<String>,
}

fn commit(repo: &Path, tree: &Path, subject: &str, sign: &[&str]) -> String {
    let mut args = vec![
        "commit",
        "--repo",
        p(repo),
        "-b",
        "os/x",
        "-s",
        subject,
        "--timestamp",
        "1733212800",
    ];
    args.extend_from_slice(sign);
    args.push(p(tree));
    arbor(&args).ok().trim().to_string()
}

fn publish_signed(dir: &Path, g: &Gpg, commit_sign: &[&str]) -> Published {
    let repo = dir.join("repo");
    let tree = dir.join("tree");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let mut commits = Vec::new();
    for v in ["v1", "v2"] {
        write_tree(&tree, v);
        commits.push(commit(&repo, &tree, v, commit_sign));
    }
    arbor(&[
        "delta",
        "generate",
        "--repo",
        p(&repo),
        "--ref",
        "os/x",
        "--depth",
        "1",
        "--empty",
    ])
    .ok();
    let dest = dir.join("pub");
    let url = format!("file://{}", p(&dest));
    let spec = format!("gpg:{}", g.a);
    arbor(&[
        "publish",
        "--repo",
        p(&repo),
        "--to",
        &url,
        "--sign-with",
        &spec,
        "--gpg-homedir",
        p(&g.home),
    ])
    .ok();
    Published {
        repo,
        dest,
        commits,
    }
}

#[test]
fn verifying_clients_pull_signed_commits_summary_and_deltas() {
    let tmp = tempdir();
    let g = Gpg::new(tmp.path());
    let key_a = g.export(&g.a, &tmp.path().join("a.asc"));
    let key_b = g.export(&g.b, &tmp.path().join("b.asc"));
    let spec = format!("gpg:{}", g.a);
    let signed = publish_signed(
        tmp.path(),
        &g,
        &["--sign-with", &spec, "--gpg-homedir", p(&g.home)],
    );
    let [c1, c2] = [&signed.commits[0], &signed.commits[1]];
    assert!(signed.dest.join("summary.sig").exists());
    arbor(&[
        "verify",
        "--repo",
        p(&signed.repo),
        c2,
        "--keyring",
        p(&key_a),
    ])
    .ok();
    arbor(&[
        "verify",
        "--repo",
        p(&signed.dest),
        "--summary",
        "--keyring",
        p(&key_a),
    ])
    .ok();
    arbor(&[
        "verify",
        "--repo",
        p(&signed.repo),
        c2,
        "--keyring",
        p(&key_b),
    ])
    .fails_with("not in the keyring");

    let http = HttpServer::start(&signed.dest);
    for newer in [false, true] {
        let client = |name: &str| {
            if newer {
                Client::newer_verifying(name, &http.url(), &key_a)
            } else {
                Client::host_verifying(&tmp.path().join(name), &http.url(), &key_a)
            }
        };
        // v1 by objects, then v1→v2 by its delta.
        let c = client("objects-then-delta");
        c.ostree(&[
            "pull",
            "--disable-static-deltas",
            "origin",
            &format!("os/x@{c1}"),
        ])
        .ok();
        c.ostree(&["pull", "--require-static-deltas", "origin", "os/x"])
            .ok();
        let show = c.ostree(&["show", "--gpg-verify-remote=origin", c2]);
        assert!(
            show.ok().contains("Good signature from \"Arbor Release A"),
            "{}",
            show.stdout
        );
        // From nothing by the from-scratch delta.
        let c = client("scratch-delta");
        c.ostree(&["pull", "--require-static-deltas", "origin", "os/x"])
            .ok();
        // A client trusting only B refuses what A signed.
        let other = if newer {
            Client::newer_verifying("wrong-key", &http.url(), &key_b)
        } else {
            Client::host_verifying(&tmp.path().join("wrong-key"), &http.url(), &key_b)
        };
        other
            .ostree(&["pull", "origin", "os/x"])
            .fails_with("public key not found");
    }
}

#[test]
fn clients_refuse_tampered_stale_foreign_and_missing_signatures() {
    let tmp = tempdir();
    let g = Gpg::new(tmp.path());
    let key_a = g.export(&g.a, &tmp.path().join("a.asc"));
    let spec = format!("gpg:{}", g.a);
    let home = ["--sign-with", spec.as_str(), "--gpg-homedir", p(&g.home)];
    let signed = publish_signed(tmp.path(), &g, &home);
    let c2 = signed.commits[1].clone();

    // A tampered .commitmeta: one byte of the signature flipped.
    let tampered = tmp.path().join("tampered");
    run("cp", &["-a", p(&signed.dest), p(&tampered)]).ok();
    tamper(&commitmeta(&tampered, &c2));
    let http = HttpServer::start(&tampered);
    let c = Client::host_verifying(&tmp.path().join("c-tampered"), &http.url(), &key_a);
    c.ostree(&["pull", "--disable-static-deltas", "origin", "os/x"])
        .fails_with("BAD signature from \"Arbor Release A");
    drop(http);

    // A stale summary.sig: the summary moved on (a new commit), its signature did not.
    let old_sig = fs::read(signed.dest.join("summary.sig")).unwrap();
    let tree = tmp.path().join("tree");
    write_tree(&tree, "v3");
    commit(&signed.repo, &tree, "v3", &home);
    let url = format!("file://{}", p(&signed.dest));
    let mut args = vec!["publish", "--repo", p(&signed.repo), "--to", url.as_str()];
    args.extend_from_slice(&home);
    arbor(&args).ok();
    let new_sig = fs::read(signed.dest.join("summary.sig")).unwrap();
    assert_ne!(old_sig, new_sig, "the new summary was not signed anew");
    let http = HttpServer::start(&signed.dest);
    let c = Client::host_verifying(&tmp.path().join("c-fresh"), &http.url(), &key_a);
    c.ostree(&["pull", "origin", "os/x"]).ok();
    fs::write(signed.dest.join("summary.sig"), &old_sig).unwrap();
    let c = Client::host_verifying(&tmp.path().join("c-stale"), &http.url(), &key_a);
    c.ostree(&["pull", "origin", "os/x"])
        .fails_with("BAD signature");
    drop(http);

    // A commit signed by another key (B, from a local key file), summary signed by A.
    let other = tmp.path().join("other");
    fs::create_dir_all(&other).unwrap();
    let secret_b = g.export_secret(&g.b, &tmp.path().join("b.sec.asc"));
    let spec_b = format!("openpgp:{}", p(&secret_b));
    let by_b = publish_signed(&other, &g, &["--sign-with", &spec_b]);
    let http = HttpServer::start(&by_b.dest);
    let c = Client::host_verifying(&tmp.path().join("c-foreign"), &http.url(), &key_a);
    c.ostree(&["pull", "origin", "os/x"])
        .fails_with("public key not found");
    drop(http);

    // An unsigned commit, and publish --require-signatures refusing it up front.
    let unsigned = tmp.path().join("unsigned");
    fs::create_dir_all(&unsigned).unwrap();
    let plain = publish_signed(&unsigned, &g, &[]);
    let http = HttpServer::start(&plain.dest);
    let c = Client::host_verifying(&tmp.path().join("c-unsigned"), &http.url(), &key_a);
    c.ostree(&["pull", "origin", "os/x"])
        .fails_with("no signatures found");
    let dest2 = tmp.path().join("required");
    arbor(&[
        "publish",
        "--repo",
        p(&plain.repo),
        "--to",
        &format!("file://{}", p(&dest2)),
        "--require-signatures",
        p(&key_a),
    ])
    .fails_with("not signed");
    assert!(!dest2.join("refs/heads/os/x").exists());
    assert!(!dest2.join("objects").exists(), "something was uploaded");
}

/// The external signer: a script with its own GNUPGHOME (the build never sees it). One that
/// fails, prints garbage or signs with another key stops the release before anything is
/// published; a good one gives a release verifying clients pull.
#[test]
fn exec_signer_signs_a_release_and_bad_signers_publish_nothing() {
    let corpus = util::corpus_dir();
    let tmp = tempdir();
    let g = Gpg::new(tmp.path());
    let key_a = g.export(&g.a, &tmp.path().join("a.asc"));
    let script = |name: &str, body: &str| {
        let path = tmp.path().join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        format!("exec:{}", p(&path))
    };
    let home = p(&g.home);
    let good = script(
        "signer.sh",
        &format!(
            "exec env GNUPGHOME={home} gpg --batch --local-user {} --digest-algo SHA256 --detach-sign --output - -",
            g.a
        ),
    );
    let failing = script(
        "fail.sh",
        "cat >/dev/null; echo 'HSM unreachable' >&2; exit 3",
    );
    let garbage = script("garbage.sh", "cat >/dev/null; echo 'not a signature'");
    let other_key = script(
        "other.sh",
        &format!(
            "exec env GNUPGHOME={home} gpg --batch --local-user {} --detach-sign --output - -",
            g.b
        ),
    );
    // A valid signature by the right key, over other bytes (the empty file).
    let other_bytes = script(
        "other-bytes.sh",
        &format!(
            "cat >/dev/null; exec env GNUPGHOME={home} gpg --batch --local-user {} --digest-algo SHA256 --detach-sign --output - /dev/null",
            g.a
        ),
    );
    let dest = tmp.path().join("pub");
    let url = format!("file://{}", p(&dest));
    let repo = tmp.path().join("repo");
    // The tiny corpus's scriptlets exercise the importer, not a runnable system: the
    // tiny treefile comes with TINY_OVERRIDES (a second `scriptlet-overrides` key would
    // be a duplicate, which a treefile refuses).
    let treefile = util::treefile_variant(&corpus, "tiny.yaml", tmp.path(), |s| s);
    let release = |spec: &str| {
        arbor(&[
            "release",
            p(&treefile),
            "--repo",
            p(&repo),
            "--cachedir",
            p(&tmp.path().join("cache")),
            "--to",
            &url,
            "--empty-delta",
            "--sign-with",
            spec,
            "--signer-key",
            p(&key_a),
            "--json",
        ])
    };
    for (spec, says) in [
        (&failing, "HSM unreachable"),
        (&garbage, "not a detached OpenPGP signature"),
        (&other_key, "not the expected key"),
        (&other_bytes, "did it sign other bytes than its stdin?"),
    ] {
        release(spec).fails_with(says);
        assert!(
            !dest.join("refs/heads/corpus/tiny/x86_64").exists()
                && !dest.join("summary").exists()
                && !dest.join("objects").exists(),
            "{spec}: something was published"
        );
    }
    let out = release(&good);
    let j: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
    assert!(
        j["signed"]["signed"][0].as_str().unwrap().contains(&g.a),
        "{j}"
    );
    arbor(&[
        "verify",
        "--repo",
        p(&dest),
        "--summary",
        "--keyring",
        p(&key_a),
    ])
    .ok();
    let http = HttpServer::start(&dest);
    let c = Client::host_verifying(&tmp.path().join("client"), &http.url(), &key_a);
    c.ostree(&[
        "pull",
        "--require-static-deltas",
        "origin",
        "corpus/tiny/x86_64",
    ])
    .ok();
    // Rerun: nothing new, the head is already signed by that key.
    let again: serde_json::Value = serde_json::from_str(release(&good).ok()).unwrap();
    assert_eq!(again["changed"], false, "{again}");
    assert!(again["signed"]["already"][0].as_str().is_some(), "{again}");
}

/// ed25519 signatures verify with OpenSSL and are byte-identical to OpenSSL's own over the
/// same bytes (Ed25519 is deterministic, so libostree's `ostree sign` gives these bytes too;
/// Debian's ostree has no ed25519 to compare with directly).
#[test]
fn ed25519_signatures_verify_with_openssl_and_equal_its_bytes() {
    let tmp = tempdir();
    let d = tmp.path();
    run(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            p(&d.join("k.pem")),
        ],
    )
    .ok();
    run(
        "openssl",
        &[
            "pkey",
            "-in",
            p(&d.join("k.pem")),
            "-pubout",
            "-out",
            p(&d.join("pub.pem")),
        ],
    )
    .ok();
    // The same key in ostree's format: base64(seed ‖ public).
    let der = |args: &[&str]| {
        let o = Command::new("openssl").args(args).output().unwrap();
        assert!(o.status.success());
        o.stdout
    };
    let seed = der(&["pkey", "-in", p(&d.join("k.pem")), "-outform", "DER"]);
    let public = der(&[
        "pkey",
        "-in",
        p(&d.join("k.pem")),
        "-pubout",
        "-outform",
        "DER",
    ]);
    let mut raw = seed[seed.len() - 32..].to_vec();
    raw.extend_from_slice(&public[public.len() - 32..]);
    let b64 = run("base64", &["-w0", p(&write(d, "raw", &raw))])
        .ok()
        .to_string();
    fs::write(d.join("ostree.key"), format!("{b64}\n")).unwrap();
    let pub_b64 = run("base64", &["-w0", p(&write(d, "rawpub", &raw[32..]))])
        .ok()
        .to_string();

    let repo = d.join("repo");
    let tree = d.join("tree");
    write_tree(&tree, "v1");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let spec = format!("ed25519:{}", p(&d.join("k.pem")));
    let c = commit(&repo, &tree, "v1", &["--sign-with", &spec]);
    let obj = repo.join(format!("objects/{}/{}", &c[..2], &c[2..]));
    let commit_file = PathBuf::from(format!("{}.commit", p(&obj)));
    let sig = extract(
        &PathBuf::from(format!("{}.commitmeta", p(&obj))),
        "ostree.sign.ed25519",
    );
    assert_eq!(sig.len(), 64);
    let sig_file = write(d, "sig", &sig);
    run(
        "openssl",
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            p(&d.join("pub.pem")),
            "-rawin",
            "-in",
            p(&commit_file),
            "-sigfile",
            p(&sig_file),
        ],
    )
    .ok();
    let theirs = d.join("openssl.sig");
    run(
        "openssl",
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            p(&d.join("k.pem")),
            "-rawin",
            "-in",
            p(&commit_file),
            "-out",
            p(&theirs),
        ],
    )
    .ok();
    assert_eq!(
        fs::read(&theirs).unwrap(),
        sig,
        "not the deterministic Ed25519 bytes"
    );
    // The ostree-format key file is the same key: signing again adds nothing.
    let spec2 = format!("ed25519:{}", p(&d.join("ostree.key")));
    let again = arbor(&["sign", "--repo", p(&repo), &c, "--sign-with", &spec2]);
    assert!(again.ok().contains("already signed"), "{}", again.stdout);
    arbor(&[
        "verify",
        "--repo",
        p(&repo),
        &c,
        "--ed25519-public",
        &pub_b64,
    ])
    .ok();
    arbor(&[
        "verify",
        "--repo",
        p(&repo),
        &c,
        "--ed25519-public",
        p(&d.join("pub.pem")),
    ])
    .ok();
    // A signature over other bytes does not verify.
    write_tree(&tree, "v2");
    let c2 = commit(&repo, &tree, "v2", &[]);
    arbor(&[
        "verify",
        "--repo",
        p(&repo),
        &c2,
        "--ed25519-public",
        &pub_b64,
    ])
    .fails_with("no ed25519 signature");
}

#[test]
fn expiring_keys_warn_and_expired_keys_are_refused() {
    let tmp = tempdir();
    let g = Gpg::new(tmp.path());
    let soon = g.gen("Soon <soon@example.invalid>", "ed25519", "10d", &[]);
    let old = g.gen(
        "Old <old@example.invalid>",
        "ed25519",
        "1y",
        &["--faked-system-time", "20200101T000000"],
    );
    let repo = tmp.path().join("repo");
    let tree = tmp.path().join("tree");
    write_tree(&tree, "v1");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let spec = format!("gpg:{soon}");
    let r = arbor(&[
        "commit",
        "--repo",
        p(&repo),
        "-b",
        "os/x",
        "-s",
        "v1",
        "--sign-with",
        &spec,
        "--gpg-homedir",
        p(&g.home),
        p(&tree),
    ]);
    r.ok();
    assert!(r.stderr.contains("expires in"), "{}", r.stderr);
    let spec = format!("gpg:{old}");
    arbor(&[
        "commit",
        "--repo",
        p(&repo),
        "-b",
        "os/x",
        "-s",
        "v2",
        "--sign-with",
        &spec,
        "--gpg-homedir",
        p(&g.home),
        p(&tree),
    ])
    .fails_with("expired");
}

#[test]
fn mirror_keeps_commit_signatures_and_signs_or_refuses_its_summary() {
    let tmp = tempdir();
    let g = Gpg::new(tmp.path());
    let key_a = g.export(&g.a, &tmp.path().join("a.asc"));
    let key_b = g.export(&g.b, &tmp.path().join("b.asc"));
    let spec = format!("gpg:{}", g.a);
    let src = publish_signed(
        tmp.path(),
        &g,
        &["--sign-with", &spec, "--gpg-homedir", p(&g.home)],
    );
    let from = format!("file://{}", p(&src.dest));
    let m1 = tmp.path().join("m1");
    arbor(&[
        "mirror",
        "--from",
        &from,
        "--to",
        &format!("file://{}", p(&m1)),
    ])
    .fails_with("signed summary");
    assert!(!m1.join("refs/heads/os/x").exists());
    let m2 = tmp.path().join("m2");
    arbor(&[
        "mirror",
        "--from",
        &from,
        "--to",
        &format!("file://{}", p(&m2)),
        "--allow-unsigned-summary",
    ])
    .ok();
    assert!(!m2.join("summary.sig").exists());
    let c2 = &src.commits[1];
    arbor(&["verify", "--repo", p(&m2), c2, "--keyring", p(&key_a)]).ok();
    let m3 = tmp.path().join("m3");
    let secret_b = g.export_secret(&g.b, &tmp.path().join("b.sec.asc"));
    let spec_b = format!("openpgp:{}", p(&secret_b));
    arbor(&[
        "mirror",
        "--from",
        &from,
        "--to",
        &format!("file://{}", p(&m3)),
        "--sign-with",
        &spec_b,
    ])
    .ok();
    arbor(&[
        "verify",
        "--repo",
        p(&m3),
        "--summary",
        "--keyring",
        p(&key_b),
    ])
    .ok();
    arbor(&["verify", "--repo", p(&m3), c2, "--keyring", p(&key_a)]).ok();
    // A client trusting B for the mirror's summary and A for commits: both in its keyring.
    let both = tmp.path().join("both.asc");
    fs::write(
        &both,
        [fs::read(&key_a).unwrap(), fs::read(&key_b).unwrap()].concat(),
    )
    .unwrap();
    let http = HttpServer::start(&m3);
    let c = Client::host_verifying(&tmp.path().join("client"), &http.url(), &both);
    c.ostree(&["pull", "--require-static-deltas", "origin", "os/x"])
        .ok();
}

/// Re-signing after the deltas exist: publish refuses the stale deltas, `delta generate`
/// makes them anew, publish replaces the published commitmeta (it only adds a signature)
/// and the deltas, and a client that trusts only the new key pulls through a delta.
#[test]
fn resigning_regenerates_deltas_and_republishes_them() {
    let tmp = tempdir();
    let g = Gpg::new(tmp.path());
    let key_b = g.export(&g.b, &tmp.path().join("b.asc"));
    let spec = format!("gpg:{}", g.a);
    let home = ["--sign-with", spec.as_str(), "--gpg-homedir", p(&g.home)];
    let s = publish_signed(tmp.path(), &g, &home);
    let secret_b = g.export_secret(&g.b, &tmp.path().join("b.sec.asc"));
    let spec_b = format!("openpgp:{}", p(&secret_b));
    let out = arbor(&[
        "sign",
        "--repo",
        p(&s.repo),
        "os/x",
        "--sign-with",
        &spec_b,
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
    assert_eq!(
        j["commits"][0]["stale_deltas"].as_array().unwrap().len(),
        2,
        "{j}"
    );
    let url = format!("file://{}", p(&s.dest));
    let mut args = vec!["publish", "--repo", p(&s.repo), "--to", url.as_str()];
    args.extend_from_slice(&home);
    arbor(&args).fails_with("was made before commit");
    arbor(&[
        "delta",
        "generate",
        "--repo",
        p(&s.repo),
        "--ref",
        "os/x",
        "--depth",
        "1",
        "--empty",
    ])
    .ok();
    arbor(&args).ok();
    let http = HttpServer::start(&s.dest);
    // Summary signed by A only, so this client checks commits (through the delta) only.
    let c = Client::host_verifying(&tmp.path().join("client"), &http.url(), &key_b);
    c.ostree(&[
        "config",
        "set",
        "remote \"origin\".gpg-verify-summary",
        "false",
    ])
    .ok();
    c.ostree(&["pull", "--require-static-deltas", "origin", "os/x"])
        .ok();
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, data).unwrap();
    path
}

/// The first element of an `aay` entry of a signature dictionary, read by GLib.
fn extract(meta: &Path, key: &str) -> Vec<u8> {
    let code = format!(
        "import sys,gi; gi.require_version('GLib','2.0'); from gi.repository import GLib\n\
         d=open(sys.argv[1],'rb').read()\n\
         v=GLib.Variant.new_from_bytes(GLib.VariantType('a{{sv}}'), GLib.Bytes.new(d), False)\n\
         assert v.is_normal_form()\n\
         sys.stdout.write(bytes(v['{key}'][0]).hex())"
    );
    let out = run(util::system_python(), &["-c", &code, p(meta)]);
    let hex = out.ok().trim().to_string();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The client story against a signed remote: a fake sysroot whose remote verifies commits
/// and the summary deploys v1, then upgrades through the signed v1→v2 delta (its cached,
/// verified summary re-fetched), keeping both deployments.
#[test]
fn signed_remote_deploys_and_upgrades_a_sysroot() {
    let tmp = tempdir();
    let d = tmp.path();
    let g = Gpg::new(d);
    let key_a = g.export(&g.a, &d.join("a.asc"));
    let spec = format!("gpg:{}", g.a);
    let sign = ["--sign-with", spec.as_str(), "--gpg-homedir", p(&g.home)];
    let repo = d.join("repo");
    let tree = d.join("tree");
    let dest = d.join("pub");
    let url = format!("file://{}", p(&dest));
    arbor(&["init", "--repo", p(&repo)]).ok();
    let release = |version: &str| -> String {
        write_tree(&tree, version);
        let m = tree.join("usr/lib/modules/6.0.0");
        fs::create_dir_all(&m).unwrap();
        fs::write(m.join("vmlinuz"), format!("kernel {version}")).unwrap();
        fs::write(m.join("initramfs.img"), format!("initramfs {version}")).unwrap();
        fs::create_dir_all(tree.join("usr/etc")).unwrap();
        fs::write(
            tree.join("usr/etc/os-release"),
            format!("ID=arbor\nPRETTY_NAME=\"arbor {version}\"\nVERSION={version}\n"),
        )
        .unwrap();
        let c = commit(&repo, &tree, version, &sign);
        arbor(&[
            "delta",
            "generate",
            "--repo",
            p(&repo),
            "--ref",
            "os/x",
            "--depth",
            "1",
            "--empty",
        ])
        .ok();
        let mut args = vec!["publish", "--repo", p(&repo), "--to", url.as_str()];
        args.extend_from_slice(&sign);
        arbor(&args).ok();
        c
    };
    let c1 = release("v1");
    let http = HttpServer::start(&dest);
    let sys = d.join("sysroot");
    fs::create_dir_all(&sys).unwrap();
    let s = format!("--sysroot={}", p(&sys));
    let srepo = format!("--repo={}/ostree/repo", p(&sys));
    util::ostree(&["admin", "init-fs", p(&sys)]).ok();
    util::ostree(&["admin", "os-init", &s, "os"]).ok();
    util::ostree(&[
        &srepo,
        "remote",
        "add",
        "--set=gpg-verify=true",
        "--set=gpg-verify-summary=true",
        &format!("--gpg-import={}", p(&key_a)),
        "origin",
        &http.url(),
    ])
    .ok();
    util::ostree(&[&srepo, "pull", "origin", "os/x"]).ok();
    util::ostree(&["admin", "deploy", &s, "--os=os", "origin:os/x"]).ok();
    let c2 = release("v2");
    let pull = util::ostree(&[&srepo, "pull", "--require-static-deltas", "origin", "os/x"]);
    assert!(
        pull.ok().contains("delta parts") || pull.stderr.contains("delta parts"),
        "{}",
        pull.stdout
    );
    util::ostree(&["admin", "upgrade", &s, "--os=os"]).ok();
    let status = util::ostree(&["admin", "status", &s]).ok().to_string();
    assert!(status.contains(&c1) && status.contains(&c2), "{status}");
    util::ostree(&[&srepo, "show", "--gpg-verify-remote=origin", &c2])
        .ok_ref()
        .stdout
        .contains("Good signature")
        .then_some(())
        .expect("v2 verified");
}

/// The number of elements of a signature dictionary's `aay` entry, read by GLib (0 when
/// the key is absent).
fn sig_count(meta: &Path, key: &str) -> usize {
    let code = format!(
        "import sys,gi; gi.require_version('GLib','2.0'); from gi.repository import GLib\n\
         d=open(sys.argv[1],'rb').read()\n\
         v=GLib.Variant.new_from_bytes(GLib.VariantType('a{{sv}}'), GLib.Bytes.new(d), False)\n\
         assert v.is_normal_form()\n\
         print(len(v['{key}']) if v.lookup_value('{key}', None) is not None else 0)"
    );
    run(util::system_python(), &["-c", &code, p(meta)])
        .ok()
        .trim()
        .parse()
        .unwrap()
}

/// `objects/XX/YYYY.commitmeta` of `commit` in `repo`.
fn commitmeta(repo: &Path, commit: &str) -> PathBuf {
    repo.join(format!(
        "objects/{}/{}.commitmeta",
        &commit[..2],
        &commit[2..]
    ))
}

/// Flip the last byte of the first OpenPGP signature in a `.commitmeta` (the low byte of
/// its signature value), leaving the packet and the dictionary well-formed: a signature
/// that parses but does not match the signed bytes (gpgme's "BAD signature").
fn tamper(meta: &Path) {
    let sig = extract(meta, "ostree.gpgsigs");
    let mut bytes = fs::read(meta).unwrap();
    let at = bytes
        .windows(sig.len())
        .position(|w| w == sig.as_slice())
        .expect("the signature in the file");
    bytes[at + sig.len() - 1] ^= 0x55;
    fs::write(meta, &bytes).unwrap();
    assert_ne!(extract(meta, "ostree.gpgsigs"), sig);
}

/// The 16-hex key ID gpgme prints for a fingerprint.
fn key_id(fpr: &str) -> String {
    fpr[fpr.len() - 16..].to_ascii_uppercase()
}

/// Nothing at a publish destination: no objects, no refs, no summary.
#[track_caller]
fn assert_nothing_published(dest: &Path, what: &str) {
    assert!(!dest.join("objects").exists(), "{what}: objects uploaded");
    assert!(
        !dest.join("summary").exists() && !dest.join("summary.sig").exists(),
        "{what}: a summary was published"
    );
    let refs = dest.join("refs");
    if refs.exists() {
        let files = run("find", &[p(&refs), "-type", "f"]);
        assert_eq!(files.ok().trim(), "", "{what}: refs published");
    }
}

/// `compose --sign-with` moves the ref to a commit `arbor verify` and a verifying client
/// accept; `summary -u --sign-with` writes a `summary.sig` that verifies; `summary -u`
/// without a signer deletes that (now stale) signature, so `arbor verify --summary` and
/// clients say it is missing rather than BAD.
#[test]
fn compose_and_summary_sign_and_an_unsigned_summary_update_drops_the_old_sig() {
    let corpus = util::corpus_dir();
    let tmp = tempdir();
    let g = Gpg::new(tmp.path());
    let key_a = g.export(&g.a, &tmp.path().join("a.asc"));
    let spec = format!("gpg:{}", g.a);
    let sign = ["--sign-with", spec.as_str(), "--gpg-homedir", p(&g.home)];
    let repo = tmp.path().join("repo");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let treefile = util::treefile_variant(&corpus, "tiny.yaml", tmp.path(), |s| s);
    let cache = tmp.path().join("cache");
    let mut args = vec![
        "compose",
        "--repo",
        p(&repo),
        "--cachedir",
        p(&cache),
        "--json",
    ];
    args.extend_from_slice(&sign);
    args.push(p(&treefile));
    let out = arbor(&args);
    let j: serde_json::Value = serde_json::from_str(out.ok().trim()).unwrap();
    let c = j["ostree-commit"].as_str().expect("a commit").to_string();
    let reference = "corpus/tiny/x86_64";
    assert_eq!(
        fs::read_to_string(repo.join("refs/heads").join(reference))
            .unwrap()
            .trim(),
        c,
        "the ref is not at the signed commit"
    );
    let v = arbor(&[
        "verify",
        "--repo",
        p(&repo),
        reference,
        "--keyring",
        p(&key_a),
    ]);
    assert!(
        v.ok().contains(&format!("commit {c}: good signature by")),
        "{}",
        v.stdout
    );
    assert_eq!(sig_count(&commitmeta(&repo, &c), "ostree.gpgsigs"), 1);

    // summary -u --sign-with: a summary.sig over the new summary.
    let mut args = vec!["summary", "--repo", p(&repo), "-u"];
    args.extend_from_slice(&sign);
    arbor(&args).ok();
    assert!(repo.join("summary.sig").is_file());
    let verify_summary = || {
        arbor(&[
            "verify",
            "--repo",
            p(&repo),
            "--summary",
            "--keyring",
            p(&key_a),
        ])
    };
    assert!(
        verify_summary().ok().contains("summary: good signature by"),
        "no good summary signature"
    );
    let http = HttpServer::start(&repo);
    let client = Client::host_verifying(&tmp.path().join("c-signed"), &http.url(), &key_a);
    client.ostree(&["pull", "origin", reference]).ok();
    let show = client.ostree(&["show", "--gpg-verify-remote=origin", &c]);
    assert!(
        show.ok().contains("Good signature from \"Arbor Release A"),
        "{}",
        show.stdout
    );

    // summary -u without a signer: the summary changed, its old signature must go.
    arbor(&["summary", "--repo", p(&repo), "-u"]).ok();
    assert!(
        !repo.join("summary.sig").exists(),
        "summary -u kept a summary.sig over other bytes"
    );
    verify_summary().fails_with("no OpenPGP signature");
    let client = Client::host_verifying(&tmp.path().join("c-unsigned"), &http.url(), &key_a);
    client
        .ostree(&["pull", "origin", reference])
        .fails_with("no summary.sig found");
}

/// Two keys: `--sign-with A --sign-with B` on one commit, and `arbor sign` with B on a
/// commit A signed: two signatures (A's first, unchanged), each key alone verifies, and a
/// client trusting only B pulls the commit A signed first (an unknown key does not stop
/// gpgme's scan).
#[test]
fn two_keys_sign_one_commit_and_each_verifies_alone() {
    let tmp = tempdir();
    let g = Gpg::new(tmp.path());
    let key_a = g.export(&g.a, &tmp.path().join("a.asc"));
    let key_b = g.export(&g.b, &tmp.path().join("b.asc"));
    let spec_a = format!("gpg:{}", g.a);
    let spec_b = format!("gpg:{}", g.b);
    let homedir = ["--gpg-homedir", p(&g.home)];
    let repo = tmp.path().join("repo");
    let tree = tmp.path().join("tree");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let verifies_with = |c: &str, keyring: &Path, name: &str| {
        let v = arbor(&["verify", "--repo", p(&repo), c, "--keyring", p(keyring)]);
        assert!(
            v.ok().contains("good signature by") && v.stdout.contains(name),
            "{c} with {}: {}",
            keyring.display(),
            v.stdout
        );
    };

    // Both at once.
    write_tree(&tree, "v1");
    let c1 = commit(
        &repo,
        &tree,
        "v1",
        &[
            "--sign-with",
            &spec_a,
            "--sign-with",
            &spec_b,
            homedir[0],
            homedir[1],
        ],
    );
    assert_eq!(sig_count(&commitmeta(&repo, &c1), "ostree.gpgsigs"), 2);
    verifies_with(&c1, &key_a, "Arbor Release A");
    verifies_with(&c1, &key_b, "Arbor Other B");

    // A first, B added later (rotation).
    write_tree(&tree, "v2");
    let c2 = commit(
        &repo,
        &tree,
        "v2",
        &["--sign-with", &spec_a, homedir[0], homedir[1]],
    );
    let meta = commitmeta(&repo, &c2);
    assert_eq!(sig_count(&meta, "ostree.gpgsigs"), 1);
    let sig_a = extract(&meta, "ostree.gpgsigs");
    arbor(&["verify", "--repo", p(&repo), &c2, "--keyring", p(&key_b)])
        .fails_with("not in the keyring");
    let out = arbor(&[
        "sign",
        "--repo",
        p(&repo),
        &c2,
        "--sign-with",
        &spec_b,
        homedir[0],
        homedir[1],
    ]);
    assert!(out.ok().contains("signed by"), "{}", out.stdout);
    assert_eq!(sig_count(&meta, "ostree.gpgsigs"), 2, "B's signature added");
    assert_eq!(
        extract(&meta, "ostree.gpgsigs"),
        sig_a,
        "A's signature is no longer the first, unchanged"
    );
    verifies_with(&c2, &key_a, "Arbor Release A");
    verifies_with(&c2, &key_b, "Arbor Other B");
    // Signing with A again adds nothing.
    let again = arbor(&[
        "sign",
        "--repo",
        p(&repo),
        &c2,
        "--sign-with",
        &spec_a,
        homedir[0],
        homedir[1],
    ]);
    assert!(again.ok().contains("already signed"), "{}", again.stdout);
    assert_eq!(sig_count(&meta, "ostree.gpgsigs"), 2);

    // Each key alone, as the real client sees it (commits only: the summary is unsigned).
    arbor(&["summary", "--repo", p(&repo), "-u"]).ok();
    let http = HttpServer::start(&repo);
    for (name, key) in [("only-a", &key_a), ("only-b", &key_b)] {
        let c = Client::host_verifying(&tmp.path().join(name), &http.url(), key);
        c.ostree(&[
            "config",
            "set",
            "remote \"origin\".gpg-verify-summary",
            "false",
        ])
        .ok();
        for commit in [&c1, &c2] {
            c.ostree(&[
                "pull",
                "--disable-static-deltas",
                "origin",
                &format!("os/x@{commit}"),
            ])
            .ok();
            let show = c.ostree(&["show", "--gpg-verify-remote=origin", commit]);
            assert!(
                show.ok().contains("Good signature from"),
                "{name} {commit}: {}",
                show.stdout
            );
        }
    }
}

/// `arbor verify`: a tampered `.commitmeta` fails naming the BAD signature; a good
/// signature next to one by a key not in the keyring passes, with a warning about it.
#[test]
fn verify_names_a_bad_signature_and_warns_about_unknown_keys() {
    let tmp = tempdir();
    let g = Gpg::new(tmp.path());
    let key_a = g.export(&g.a, &tmp.path().join("a.asc"));
    let spec_a = format!("gpg:{}", g.a);
    let spec_b = format!("gpg:{}", g.b);
    let repo = tmp.path().join("repo");
    let tree = tmp.path().join("tree");
    arbor(&["init", "--repo", p(&repo)]).ok();
    write_tree(&tree, "v1");
    let c1 = commit(
        &repo,
        &tree,
        "v1",
        &["--sign-with", &spec_a, "--gpg-homedir", p(&g.home)],
    );
    let verify = |c: &str| arbor(&["verify", "--repo", p(&repo), c, "--keyring", p(&key_a)]);
    verify(&c1).ok();
    tamper(&commitmeta(&repo, &c1));
    let r = verify(&c1);
    r.fails_with("BAD signature by");
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(r.stderr.contains("Arbor Release A"), "{}", r.stderr);
    let j = arbor(&[
        "verify",
        "--repo",
        p(&repo),
        &c1,
        "--keyring",
        p(&key_a),
        "--json",
    ]);
    assert_eq!(j.status, 1);
    let j: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(j["valid"], false, "{j}");
    assert!(j["good"].as_array().unwrap().is_empty(), "{j}");

    // Good (A) + a signature by B, not in the keyring: valid, with a warning.
    write_tree(&tree, "v2");
    let c2 = commit(
        &repo,
        &tree,
        "v2",
        &[
            "--sign-with",
            &spec_a,
            "--sign-with",
            &spec_b,
            "--gpg-homedir",
            p(&g.home),
        ],
    );
    let r = verify(&c2);
    assert!(r.ok().contains("good signature by"), "{}", r.stdout);
    assert!(
        r.stderr.contains("a key not in the keyring")
            && r.stderr.to_ascii_uppercase().contains(&key_id(&g.b)),
        "no warning naming B's key: {}",
        r.stderr
    );
    // And B first, A second: the same.
    write_tree(&tree, "v3");
    let c3 = commit(
        &repo,
        &tree,
        "v3",
        &[
            "--sign-with",
            &spec_b,
            "--sign-with",
            &spec_a,
            "--gpg-homedir",
            p(&g.home),
        ],
    );
    let r = verify(&c3);
    r.ok();
    assert!(
        r.stderr.contains("a key not in the keyring"),
        "{}",
        r.stderr
    );
}

/// `publish --require-signatures KEYRING` refuses, before any upload, a commit signed only
/// by another key and one whose signature was tampered with.
#[test]
fn require_signatures_refuses_foreign_and_tampered_commits_before_uploading() {
    let tmp = tempdir();
    let g = Gpg::new(tmp.path());
    let key_a = g.export(&g.a, &tmp.path().join("a.asc"));
    let spec_a = format!("gpg:{}", g.a);
    let spec_b = format!("gpg:{}", g.b);
    let tree = tmp.path().join("tree");
    write_tree(&tree, "v1");
    let publish = |repo: &Path, dest: &Path| {
        arbor(&[
            "publish",
            "--repo",
            p(repo),
            "--to",
            &format!("file://{}", p(dest)),
            "--require-signatures",
            p(&key_a),
        ])
    };

    // Signed by B only.
    let foreign = tmp.path().join("foreign");
    arbor(&["init", "--repo", p(&foreign)]).ok();
    let cb = commit(
        &foreign,
        &tree,
        "v1",
        &["--sign-with", &spec_b, "--gpg-homedir", p(&g.home)],
    );
    let dest = tmp.path().join("dest-foreign");
    let r = publish(&foreign, &dest);
    r.fails_with("not in the keyring");
    assert!(r.stderr.contains(&cb), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was uploaded"), "{}", r.stderr);
    assert_nothing_published(&dest, "signed by another key");

    // Signed by A, the signature tampered with.
    let repo = tmp.path().join("tampered");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let ca = commit(
        &repo,
        &tree,
        "v1",
        &["--sign-with", &spec_a, "--gpg-homedir", p(&g.home)],
    );
    let dest = tmp.path().join("dest-tampered");
    // The same repository validly signed is published: the check is not refusing everything.
    let ok_dest = tmp.path().join("dest-ok");
    publish(&repo, &ok_dest).ok();
    assert!(ok_dest.join("refs/heads/os/x").is_file());
    tamper(&commitmeta(&repo, &ca));
    let r = publish(&repo, &dest);
    r.fails_with("BAD signature");
    assert!(r.stderr.contains(&ca), "{}", r.stderr);
    assert_nothing_published(&dest, "tampered signature");
}

/// The refusals, by both clients (2022.7 on the host, 2025.x in its chroot), with the
/// summary validly signed by the key they trust: a tampered `.commitmeta` is a BAD
/// signature of that commit by A; a stale `summary.sig` is a BAD signature of the summary
/// (before any commit is fetched); a commit signed only by B fails on B's key, unknown to
/// the client.
#[test]
fn both_clients_name_the_refused_signature() {
    let tmp = tempdir();
    let g = Gpg::new(tmp.path());
    let key_a = g.export(&g.a, &tmp.path().join("a.asc"));
    let spec = format!("gpg:{}", g.a);
    let home = ["--sign-with", spec.as_str(), "--gpg-homedir", p(&g.home)];
    let signed = publish_signed(&mkdir(tmp.path().join("signed")), &g, &home);
    let c2 = signed.commits[1].clone();

    let tampered = tmp.path().join("tampered");
    run("cp", &["-a", p(&signed.dest), p(&tampered)]).ok();
    tamper(&commitmeta(&tampered, &c2));

    // A stale summary.sig: the summary of a later publish with the signature before it.
    let stale = tmp.path().join("stale");
    run("cp", &["-a", p(&signed.dest), p(&stale)]).ok();
    let old_sig = fs::read(stale.join("summary.sig")).unwrap();
    let tree = tmp.path().join("tree");
    write_tree(&tree, "v3");
    commit(&signed.repo, &tree, "v3", &home);
    let mut args = vec![
        "publish".to_string(),
        "--repo".into(),
        p(&signed.repo).into(),
        "--to".into(),
        format!("file://{}", p(&stale)),
    ];
    args.extend(home.iter().map(|s| s.to_string()));
    arbor(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    assert_ne!(fs::read(stale.join("summary.sig")).unwrap(), old_sig);
    fs::write(stale.join("summary.sig"), &old_sig).unwrap();
    arbor(&[
        "verify",
        "--repo",
        p(&stale),
        "--summary",
        "--keyring",
        p(&key_a),
    ])
    .fails_with("BAD signature");

    // Commits signed by B only; the summary signed by A.
    let secret_b = g.export_secret(&g.b, &tmp.path().join("b.sec.asc"));
    let spec_b = format!("openpgp:{}", p(&secret_b));
    let by_b = publish_signed(
        &mkdir(tmp.path().join("foreign")),
        &g,
        &["--sign-with", &spec_b],
    );
    arbor(&[
        "verify",
        "--repo",
        p(&by_b.dest),
        "--summary",
        "--keyring",
        p(&key_a),
    ])
    .ok();

    let (id_a, id_b) = (key_id(&g.a), key_id(&g.b));
    let servers = [
        ("tampered", HttpServer::start(&tampered)),
        ("stale", HttpServer::start(&stale)),
        ("foreign", HttpServer::start(&by_b.dest)),
    ];
    for newer in [false, true] {
        let which = if newer { "2025.x" } else { "2022.7" };
        for (case, http) in &servers {
            let name = format!("{case}-{}", u8::from(newer));
            let c = if newer {
                Client::newer_verifying(&name, &http.url(), &key_a)
            } else {
                Client::host_verifying(&tmp.path().join(&name), &http.url(), &key_a)
            };
            let r = c.ostree(&["pull", "--disable-static-deltas", "origin", "os/x"]);
            assert_ne!(r.status, 0, "{which} {case}: pulled: {}", r.stdout);
            let e = &r.stderr;
            let says = |needle: &str| {
                assert!(e.contains(needle), "{which} {case}: no {needle:?} in:\n{e}")
            };
            match *case {
                "tampered" => {
                    says(&format!("Commit {c2}"));
                    says("BAD signature from \"Arbor Release A");
                    says(&id_a);
                }
                "stale" => {
                    says("BAD signature from \"Arbor Release A");
                    assert!(!e.contains("Commit "), "{which} {case}: {e}");
                }
                _ => {
                    says(&format!("Commit {}", by_b.commits[1]));
                    says("Can't check signature: public key not found");
                    says(&id_b);
                    assert!(!e.contains("BAD signature"), "{which} {case}: {e}");
                }
            }
            // Nothing of the refused commit was kept.
            let refs = c.ostree(&["refs"]);
            assert!(
                !refs.stdout.contains("os/x"),
                "{which} {case}: {}",
                refs.stdout
            );
        }
    }
}

fn mkdir(path: PathBuf) -> PathBuf {
    fs::create_dir_all(&path).unwrap();
    path
}

/// The headers (lower-cased) and body curl gets for `url`; asserts a 200.
fn http_get_200(url: &str) -> (String, Vec<u8>) {
    let tmp = tempdir();
    let (headers, body) = (tmp.path().join("h"), tmp.path().join("b"));
    let code = run(
        "curl",
        &[
            "-s",
            "-o",
            p(&body),
            "-D",
            p(&headers),
            "-w",
            "%{http_code}",
            url,
        ],
    );
    assert_eq!(code.ok().trim(), "200", "GET {url}");
    (
        fs::read_to_string(&headers).unwrap().to_ascii_lowercase(),
        fs::read(&body).unwrap(),
    )
}

/// The value of a header in [`http_get_200`]'s lower-cased headers.
fn header<'a>(headers: &'a str, name: &str) -> &'a str {
    headers
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {headers}"))
        .trim()
}

/// A signed publish to S3 (garage): `summary.sig` is served with the summary's short
/// Cache-Control (a year-long one would pair a cached old signature with a new summary),
/// so is a `.commitmeta` (signatures are added to it), while the commit object is
/// immutable; the served pair verifies on a client.
#[test]
fn summary_sig_on_s3_is_cached_like_the_summary() {
    let garage = util::Garage::start();
    let tmp = tempdir();
    let g = Gpg::new(tmp.path());
    let key_a = g.export(&g.a, &tmp.path().join("a.asc"));
    let spec = format!("gpg:{}", g.a);
    let repo = tmp.path().join("repo");
    let tree = tmp.path().join("tree");
    arbor(&["init", "--repo", p(&repo)]).ok();
    write_tree(&tree, "v1");
    let c = commit(
        &repo,
        &tree,
        "v1",
        &["--sign-with", &spec, "--gpg-homedir", p(&g.home)],
    );
    garage
        .arbor(&[
            "publish",
            "--repo",
            p(&repo),
            "--to",
            &garage.url("signed"),
            "--sign-with",
            &spec,
            "--gpg-homedir",
            p(&g.home),
        ])
        .ok();
    let web = garage.web("signed");
    let (summary_h, _) = http_get_200(&format!("{web}/summary"));
    let (sig_h, _) = http_get_200(&format!("{web}/summary.sig"));
    let summary_cc = header(&summary_h, "cache-control");
    assert!(summary_cc.contains("max-age=60"), "{summary_cc}");
    assert_eq!(header(&sig_h, "cache-control"), summary_cc);
    let obj = format!("{web}/objects/{}/{}", &c[..2], &c[2..]);
    let (meta_h, _) = http_get_200(&format!("{obj}.commitmeta"));
    assert_eq!(header(&meta_h, "cache-control"), summary_cc);
    let (commit_h, _) = http_get_200(&format!("{obj}.commit"));
    assert!(
        header(&commit_h, "cache-control").contains("immutable"),
        "{commit_h}"
    );
    let client = Client::host_verifying(&tmp.path().join("client"), &web, &key_a);
    client.ostree(&["pull", "origin", "os/x"]).ok();
    let show = client.ostree(&["show", "--gpg-verify-remote=origin", &c]);
    assert!(
        show.ok().contains("Good signature from \"Arbor Release A"),
        "{}",
        show.stdout
    );
}

/// A signer that fails on the summary only (here: signs other bytes when
/// `ARBOR_SIGN_KIND=summary`) stops publish with the published pair as it was: the old
/// summary and summary.sig still verify, and a verifying client still gets the old head.
#[test]
fn a_summary_signer_failure_leaves_the_published_pair() {
    let tmp = tempdir();
    let g = Gpg::new(tmp.path());
    let key_a = g.export(&g.a, &tmp.path().join("a.asc"));
    let gpg = format!(
        "env GNUPGHOME={} gpg --batch --local-user {} --digest-algo SHA256 --detach-sign --output -",
        p(&g.home),
        g.a
    );
    let script = |name: &str, body: &str| {
        let path = tmp.path().join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        format!("exec:{}", p(&path))
    };
    let good = script("good.sh", &format!("exec {gpg} -"));
    let bad_summary = script(
        "bad-summary.sh",
        &format!(
            "if [ \"$ARBOR_SIGN_KIND\" = summary ]; then cat >/dev/null; exec {gpg} /dev/null; fi\nexec {gpg} -"
        ),
    );
    let repo = tmp.path().join("repo");
    let tree = tmp.path().join("tree");
    let dest = tmp.path().join("pub");
    let url = format!("file://{}", p(&dest));
    arbor(&["init", "--repo", p(&repo)]).ok();
    let release = |version: &str, spec: &str| {
        write_tree(&tree, version);
        let sign = ["--sign-with", spec, "--signer-key", p(&key_a)];
        let c = commit(&repo, &tree, version, &sign);
        let mut args = vec!["publish", "--repo", p(&repo), "--to", url.as_str()];
        args.extend_from_slice(&sign);
        (c, arbor(&args))
    };
    let (c1, r) = release("v1", &good);
    r.ok();
    let pair = || {
        (
            fs::read(dest.join("summary")).unwrap(),
            fs::read(dest.join("summary.sig")).unwrap(),
        )
    };
    let before = pair();
    let (c2, r) = release("v2", &bad_summary);
    r.fails_with("did it sign other bytes than its stdin?");
    assert!(
        r.stderr.contains("the published summary is unchanged"),
        "{}",
        r.stderr
    );
    assert!(pair() == before, "the published summary pair changed");
    arbor(&[
        "verify",
        "--repo",
        p(&dest),
        "--summary",
        "--keyring",
        p(&key_a),
    ])
    .ok();
    let http = HttpServer::start(&dest);
    let c = Client::host_verifying(&tmp.path().join("client"), &http.url(), &key_a);
    c.ostree(&["pull", "origin", "os/x"]).ok();
    let head = c.ostree(&["rev-parse", "origin:os/x"]);
    assert_eq!(head.ok().trim(), c1, "not the previous head (v2 is {c2})");
}
