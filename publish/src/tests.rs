//! Library tests on in-memory and local-directory stores (the S3 path is covered by the
//! integration tests against garage).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arbor_repo::objects::{Commit, ObjectType};
use arbor_repo::progress::NoProgress;
use arbor_repo::store::{CommitDirOpts, CommitStats};
use arbor_repo::summary::Summary;
use arbor_repo::{Checksum, Repo};
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::{mirror, prune, publish, Location, LocationKind, PruneOpts, Retention, TransferOpts};
use arbor_repo::layout::{self, DeltaName};

fn write_tree(dir: &Path, files: &[(&str, &[u8])]) {
    let _ = std::fs::remove_dir_all(dir);
    for (name, data) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

/// Commit `files` to `branch`, on top of the branch's head.
fn commit(repo: &Repo, scratch: &Path, branch: &str, files: &[(&str, &[u8])], ts: u64) -> Checksum {
    write_tree(scratch, files);
    let (root_tree, root_meta) = repo
        .write_directory(
            scratch,
            &CommitDirOpts::default(),
            &NoProgress,
            &CommitStats::default(),
        )
        .unwrap();
    let c = repo
        .write_commit(&Commit {
            metadata: Default::default(),
            parent: repo.read_ref(branch).unwrap(),
            subject: branch.into(),
            body: String::new(),
            timestamp: ts,
            root_tree,
            root_meta,
        })
        .unwrap();
    repo.write_ref(branch, &c).unwrap();
    c
}

fn get(loc: &Location, key: &str) -> Option<Vec<u8>> {
    block_on(async {
        match loc.store.get(&StorePath::from(key)).await {
            Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
            Err(_) => None,
        }
    })
}

/// Run one store operation to completion (tests drive the async store synchronously,
/// on a runtime of their own, so this also works from another thread).
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn put(store: &Arc<dyn ObjectStore>, key: &str, data: &[u8]) {
    block_on(store.put(&StorePath::from(key), data.to_vec().into())).unwrap();
}

fn delete(store: &Arc<dyn ObjectStore>, key: &str) {
    block_on(store.delete(&StorePath::from(key))).unwrap();
}

fn keys(loc: &Location) -> BTreeSet<String> {
    use futures::TryStreamExt;
    block_on(async {
        loc.store
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap()
    })
}

fn summary(loc: &Location) -> Summary {
    Summary::from_bytes(&get(loc, "summary").expect("summary published")).unwrap()
}

fn advertised(loc: &Location) -> Vec<(String, Checksum)> {
    summary(loc)
        .refs
        .into_iter()
        .map(|r| (r.name, r.commit))
        .collect()
}

/// Every object reachable from `c` in `repo` is in the store.
fn assert_complete(repo: &Repo, loc: &Location, c: &Checksum) {
    let stored = keys(loc);
    let commit = repo.read_commit(c).unwrap();
    assert!(stored.contains(&layout::object_key(c, ObjectType::Commit)));
    let mut stack = vec![(commit.root_tree, commit.root_meta)];
    while let Some((t, m)) = stack.pop() {
        for (c, ty) in [(t, ObjectType::DirTree), (m, ObjectType::DirMeta)] {
            assert!(
                stored.contains(&layout::object_key(&c, ty)),
                "missing {c}.{ty:?}"
            );
        }
        let tree = repo.read_dirtree(&t).unwrap();
        for (_, f) in &tree.files {
            assert!(stored.contains(&layout::object_key(f, ObjectType::File)));
        }
        stack.extend(tree.dirs.iter().map(|(_, t, m)| (*t, *m)));
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    repo: Repo,
    scratch: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::init(&tmp.path().join("repo")).unwrap();
    let scratch = tmp.path().join("scratch");
    Fixture {
        _tmp: tmp,
        repo,
        scratch,
    }
}

#[test]
fn publish_to_memory_then_republish_uploads_nothing() {
    let f = fixture();
    let c1 = commit(
        &f.repo,
        &f.scratch,
        "os/stable",
        &[("a", b"1"), ("d/b", b"2")],
        100,
    );
    let c2 = commit(
        &f.repo,
        &f.scratch,
        "os/stable",
        &[("a", b"1"), ("d/b", b"3")],
        200,
    );
    let dest = Location::memory();
    let opts = TransferOpts::default();
    let r = publish(&f.repo, &dest, &[], &opts, &NoProgress).unwrap();
    assert_eq!(r.commits_uploaded, 2, "{r:?}");
    assert!(r.summary_written && r.config_written);
    assert_eq!(r.refs_updated, vec!["os/stable".to_string()]);
    assert_complete(&f.repo, &dest, &c1);
    assert_complete(&f.repo, &dest, &c2);
    assert_eq!(advertised(&dest), vec![("os/stable".to_string(), c2)]);
    assert_eq!(get(&dest, "config").unwrap(), layout::CONFIG_CONTENTS);
    assert_eq!(
        get(&dest, "refs/heads/os/stable").unwrap(),
        format!("{c2}\n").into_bytes()
    );
    // The summary equals what the local repository would advertise.
    let local = f.repo.regenerate_summary().unwrap();
    assert_eq!(summary(&dest).refs, local.refs);

    let again = publish(&f.repo, &dest, &[], &opts, &NoProgress).unwrap();
    assert_eq!(again.objects_uploaded, 0, "{again:?}");
    assert_eq!(again.requests.put, 0, "{again:?}");
    assert!(!again.summary_written);
    assert!(again.requests.total() <= 10, "{:?}", again.requests);
}

#[test]
fn incremental_publish_uploads_only_new_objects() {
    let f = fixture();
    let many: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| (format!("f{i}"), format!("{i}").into_bytes()))
        .collect();
    let files: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    commit(&f.repo, &f.scratch, "main", &files, 1);
    let dest = Location::memory();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    let mut files2 = files.clone();
    files2.push(("new", b"new"));
    let c2 = commit(&f.repo, &f.scratch, "main", &files2, 2);
    let r = publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    // new file + new root dirtree + commit (the dirmeta is shared).
    assert_eq!(r.objects_uploaded, 3, "{r:?}");
    assert_eq!(r.commits_uploaded, 1);
    assert_complete(&f.repo, &dest, &c2);
    assert_eq!(advertised(&dest), vec![("main".to_string(), c2)]);
}

#[test]
fn summary_merges_destination_refs_and_concurrent_publishers_both_land() {
    for kind in ["memory", "file"] {
        let a = fixture();
        let b = fixture();
        let tmp = tempfile::tempdir().unwrap();
        let dest = if kind == "memory" {
            Location::from_store(Arc::new(InMemory::new()), "memory://", LocationKind::Memory)
        } else {
            let url = format!("file://{}", tmp.path().join("pub").display());
            Location::parse_destination(&url, &Default::default()).unwrap()
        };
        for round in 0..5u64 {
            let ca = commit(
                &a.repo,
                &a.scratch,
                "ref/a",
                &[("x", format!("a{round}").as_bytes())],
                round,
            );
            let cb = commit(
                &b.repo,
                &b.scratch,
                "ref/b",
                &[("y", format!("b{round}").as_bytes())],
                round,
            );
            std::thread::scope(|s| {
                let ha =
                    s.spawn(|| publish(&a.repo, &dest, &[], &TransferOpts::default(), &NoProgress));
                let hb =
                    s.spawn(|| publish(&b.repo, &dest, &[], &TransferOpts::default(), &NoProgress));
                ha.join().unwrap().unwrap();
                hb.join().unwrap().unwrap();
            });
            assert_eq!(
                advertised(&dest),
                vec![("ref/a".to_string(), ca), ("ref/b".to_string(), cb)],
                "{kind} round {round}"
            );
        }
    }
}

#[test]
fn publish_selected_ref_only_and_missing_ref_is_an_error() {
    let f = fixture();
    commit(&f.repo, &f.scratch, "one", &[("a", b"1")], 1);
    let c2 = commit(&f.repo, &f.scratch, "two", &[("a", b"2")], 1);
    let dest = Location::memory();
    publish(
        &f.repo,
        &dest,
        &["two".into()],
        &TransferOpts::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(advertised(&dest), vec![("two".to_string(), c2)]);
    let e = publish(
        &f.repo,
        &dest,
        &["nope".into()],
        &TransferOpts::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(e.to_string().contains("\"nope\""), "{e}");
}

#[test]
fn depth_limits_history() {
    let f = fixture();
    for i in 0..4u64 {
        commit(
            &f.repo,
            &f.scratch,
            "main",
            &[("a", format!("{i}").as_bytes())],
            i,
        );
    }
    let dest = Location::memory();
    let opts = TransferOpts {
        depth: Some(1),
        ..Default::default()
    };
    let r = publish(&f.repo, &dest, &[], &opts, &NoProgress).unwrap();
    assert_eq!(r.commits_uploaded, 2);
}

#[test]
fn file_destination_layout_is_a_served_repo() {
    let f = fixture();
    let c = commit(&f.repo, &f.scratch, "main", &[("a", b"1")], 1);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out");
    let dest = Location::parse_destination(root.to_str().unwrap(), &Default::default()).unwrap();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    // The destination opens as an archive repository with the same ref.
    let served = Repo::open(&root).unwrap();
    assert_eq!(served.read_ref("main").unwrap(), Some(c));
    assert!(served.fsck(&NoProgress).unwrap().errors.is_empty());
}

#[test]
fn mirror_copies_between_stores() {
    let f = fixture();
    commit(
        &f.repo,
        &f.scratch,
        "main",
        &[("a", b"1"), ("s/b", b"2")],
        1,
    );
    let c2 = commit(
        &f.repo,
        &f.scratch,
        "main",
        &[("a", b"1"), ("s/b", b"3")],
        2,
    );
    let first = Location::memory();
    publish(&f.repo, &first, &[], &TransferOpts::default(), &NoProgress).unwrap();
    let second = Location::memory();
    let r = mirror(&first, &second, &[], &TransferOpts::default(), &NoProgress).unwrap();
    assert_eq!(r.commits_uploaded, 2);
    assert_complete(&f.repo, &second, &c2);
    assert_eq!(advertised(&second), vec![("main".to_string(), c2)]);
    let again = mirror(&first, &second, &[], &TransferOpts::default(), &NoProgress).unwrap();
    assert_eq!(again.objects_uploaded + again.requests.put, 0, "{again:?}");
}

#[test]
fn prune_keeps_n_and_removes_the_rest() {
    let f = fixture();
    let mut commits = Vec::new();
    for i in 0..3u64 {
        let unique = format!("unique-{i}");
        commits.push(commit(
            &f.repo,
            &f.scratch,
            "main",
            &[("shared", b"s"), ("u", unique.as_bytes())],
            1000 + i,
        ));
    }
    let dest = Location::memory();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    let before = keys(&dest);
    let opts = PruneOpts {
        retention: Retention::Keep(2),
        refs: vec![],
        dry_run: true,
        grace: Duration::ZERO,
        jobs: 4,
        signing: None,
    };
    let dry = prune(&dest, &opts, &NoProgress).unwrap();
    assert_eq!(keys(&dest), before, "a dry run changes nothing");
    assert_eq!(dry.removed_commits, [commits[0]].into_iter().collect());
    let real = prune(
        &dest,
        &PruneOpts {
            dry_run: false,
            ..opts.clone()
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(real.removed, dry.removed);
    // Commit 0, its root dirtree and its unique file are gone.
    assert_eq!(real.removed.len(), 3, "{:?}", real.removed);
    assert!(real.bytes_removed > 0);
    let after = keys(&dest);
    assert!(!after.contains(&layout::object_key(&commits[0], ObjectType::Commit)));
    assert_complete(&f.repo, &dest, &commits[1]);
    assert_complete(&f.repo, &dest, &commits[2]);
    // Within the grace period a commit counts as a root (it may be a publish in flight),
    // so nothing goes.
    let keep1 = PruneOpts {
        retention: Retention::Keep(1),
        grace: Duration::from_secs(3600),
        ..opts.clone()
    };
    let r = prune(
        &dest,
        &PruneOpts {
            dry_run: false,
            ..keep1
        },
        &NoProgress,
    )
    .unwrap();
    assert!(
        r.removed.is_empty() && r.removed_commits.is_empty(),
        "{r:?}"
    );
    // Keep-younger-than: commit timestamps 1001, 1002 are both ancient: only the head stays.
    let r = prune(
        &dest,
        &PruneOpts {
            retention: Retention::YoungerThan(Duration::from_secs(86400)),
            dry_run: false,
            ..opts
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.removed_commits, [commits[1]].into_iter().collect());
    assert_complete(&f.repo, &dest, &commits[2]);
}

#[test]
fn prune_drops_deltas_whose_endpoints_are_gone() {
    let f = fixture();
    let a = commit(&f.repo, &f.scratch, "main", &[("x", b"1")], 1);
    let b = commit(&f.repo, &f.scratch, "main", &[("x", b"2")], 2);
    let dest = Location::memory();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    // A fake delta a→b (the prune logic only looks at names and presence).
    let name = DeltaName {
        from: Some(a),
        to: b,
    };
    for file in ["0", "superblock"] {
        put(&dest.store, &format!("{}/{file}", name.dir()), b"x");
    }
    let opts = PruneOpts {
        retention: Retention::Keep(1),
        refs: vec!["main".into()],
        dry_run: false,
        grace: Duration::ZERO,
        jobs: 4,
        signing: None,
    };
    let r = prune(&dest, &opts, &NoProgress).unwrap();
    assert_eq!(r.removed_deltas, vec![name.to_string()]);
    assert!(keys(&dest).iter().all(|k| !k.starts_with("deltas/")));
    assert!(summary(&dest)
        .metadata
        .get("ostree.static-deltas")
        .is_none());
    let e = prune(
        &dest,
        &PruneOpts {
            refs: vec!["zzz".into()],
            ..opts
        },
        &NoProgress,
    )
    .unwrap_err();
    assert!(e.to_string().contains("zzz"), "{e}");
}

/// A publish moves a ref only forward: back to an ancestor or to another history is
/// refused unless forced; a mirror follows its source.
#[test]
fn publish_moves_refs_only_forward_unless_forced() {
    let f = fixture();
    let a = commit(&f.repo, &f.scratch, "main", &[("x", b"1")], 1);
    let b = commit(&f.repo, &f.scratch, "main", &[("x", b"2")], 2);
    let dest = Location::memory();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    // A runner with an older copy of the repository.
    f.repo.write_ref("main", &a).unwrap();
    let e = publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("neither an ancestor") && msg.contains(&b.to_hex()) && msg.contains("--force"),
        "{msg}"
    );
    assert_eq!(advertised(&dest), vec![("main".to_string(), b)]);
    let forced = TransferOpts {
        force: true,
        ..Default::default()
    };
    publish(&f.repo, &dest, &[], &forced, &NoProgress).unwrap();
    assert_eq!(advertised(&dest), vec![("main".to_string(), a)]);
    // Forward again (b descends from a): no force needed.
    f.repo.write_ref("main", &b).unwrap();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    assert_eq!(advertised(&dest), vec![("main".to_string(), b)]);
    // A newer commit without b in its history (a fresh runner, a pruned repository)
    // moves forward in time: allowed.
    f.repo.delete_ref("main").unwrap();
    let fresh = commit(&f.repo, &f.scratch, "main", &[("x", b"3")], 3);
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    assert_eq!(advertised(&dest), vec![("main".to_string(), fresh)]);
    // Two refs, one of them backwards: refused before anything is written.
    let other = commit(&f.repo, &f.scratch, "other", &[("y", b"1")], 10);
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    commit(&f.repo, &f.scratch, "main", &[("x", b"4")], 11);
    f.repo.delete_ref("other").unwrap();
    commit(&f.repo, &f.scratch, "other", &[("y", b"0")], 5);
    let before = keys(&dest);
    assert!(publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).is_err());
    assert_eq!(keys(&dest), before, "nothing uploaded, no ref moved");
    assert_eq!(
        advertised(&dest),
        vec![("main".to_string(), fresh), ("other".to_string(), other)]
    );
}

/// Detached metadata added after a commit was published (a signature) is published
/// with the next run.
#[test]
fn changed_commitmeta_is_republished() {
    let f = fixture();
    let a = commit(&f.repo, &f.scratch, "main", &[("x", b"1")], 1);
    let dest = Location::memory();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    let key = layout::object_key(&a, ObjectType::CommitMeta);
    assert_eq!(get(&dest, &key), None);
    let mut md = arbor_repo::gvariant::VarDict::new();
    md.set("signed-by", arbor_repo::gvariant::Value::str("release"));
    f.repo.write_commitmeta(&a, &md).unwrap();
    let r = publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    assert_eq!(r.objects_uploaded, 1);
    let local = std::fs::read(f.repo.path().join(&key)).unwrap();
    assert_eq!(get(&dest, &key), Some(local));
    let again = publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    assert_eq!(again.objects_uploaded, 0);
    // A published one is never replaced (signatures may have been added there).
    let published = get(&dest, &key);
    md.set(
        "signed-by",
        arbor_repo::gvariant::Value::str("someone else"),
    );
    f.repo.write_commitmeta(&a, &md).unwrap();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    assert_eq!(get(&dest, &key), published);
}

/// A damaged object in the local repository is refused, naming it; nothing that
/// points at it is published.
#[test]
fn a_damaged_object_is_not_published() {
    let f = fixture();
    let a = commit(
        &f.repo,
        &f.scratch,
        "main",
        &[("x", b"some content to damage")],
        1,
    );
    let tree = f
        .repo
        .read_dirtree(&f.repo.read_commit(&a).unwrap().root_tree)
        .unwrap();
    let file = tree.find_file("x").unwrap();
    let key = layout::object_key(file, ObjectType::File);
    let path = f.repo.path().join(&key);
    let mut data = std::fs::read(&path).unwrap();
    let n = data.len();
    data[n - 3] ^= 0x55;
    std::fs::write(&path, data).unwrap();
    let dest = Location::memory();
    let e = publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap_err();
    assert!(e.to_string().contains(&key), "{e}");
    let stored = keys(&dest);
    assert!(!stored.contains(&key));
    assert!(!stored.contains(&layout::object_key(&a, ObjectType::Commit)));
    assert!(stored.iter().all(|k| !k.starts_with("refs/")), "{stored:?}");
}

/// Refs that share history each keep their own depth: a commit another ref keeps still
/// counts towards this ref's retention.
#[test]
fn prune_keeps_each_refs_depth_over_shared_history() {
    let f = fixture();
    let mut a = Vec::new();
    for i in 0..3u64 {
        let unique = format!("a{i}");
        a.push(commit(
            &f.repo,
            &f.scratch,
            "a",
            &[("u", unique.as_bytes())],
            10 + i,
        ));
    }
    // b branches off a[2] (a's head for now), then a moves on twice.
    f.repo.write_ref("b", &a[2]).unwrap();
    let q = commit(&f.repo, &f.scratch, "b", &[("u", b"q")], 20);
    for i in 3..5u64 {
        let unique = format!("a{i}");
        a.push(commit(
            &f.repo,
            &f.scratch,
            "a",
            &[("u", unique.as_bytes())],
            10 + i,
        ));
    }
    let dest = Location::memory();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    let opts = PruneOpts {
        retention: Retention::Keep(3),
        refs: vec![],
        dry_run: false,
        grace: Duration::ZERO,
        jobs: 4,
        signing: None,
    };
    let r = prune(&dest, &opts, &NoProgress).unwrap();
    // a keeps a4 a3 a2; b keeps q a2 a1: only a0 goes.
    assert_eq!(r.removed_commits, [a[0]].into_iter().collect());
    for c in [a[1], a[2], a[3], a[4], q] {
        assert_complete(&f.repo, &dest, &c);
    }
}

/// Progress that runs `hook` once when a phase named `phase` starts.
struct OnPhase<F: Fn() + Sync> {
    phase: &'static str,
    hook: F,
    done: std::sync::atomic::AtomicBool,
}

impl<F: Fn() + Sync> arbor_repo::progress::Progress for OnPhase<F> {
    fn start(&self, phase: &str, _total: Option<u64>) {
        if phase == self.phase && !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            (self.hook)();
        }
    }
}

/// A ref that moves while prune walks (a publish at the same time) makes prune delete
/// nothing and say why.
#[test]
fn prune_deletes_nothing_when_refs_move_under_it() {
    let f = fixture();
    let a = commit(&f.repo, &f.scratch, "main", &[("x", b"1")], 1);
    commit(&f.repo, &f.scratch, "main", &[("x", b"2")], 2);
    let dest = Location::memory();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    let before = keys(&dest);
    let store = dest.store.clone();
    let hook = OnPhase {
        phase: "walk",
        done: false.into(),
        hook: move || {
            // A publisher moving main back to a (say): from another thread and runtime.
            let store = store.clone();
            std::thread::spawn(move || put(&store, "refs/heads/main", format!("{a}\n").as_bytes()))
                .join()
                .unwrap();
        },
    };
    let opts = PruneOpts {
        retention: Retention::Keep(1),
        refs: vec![],
        dry_run: false,
        grace: Duration::ZERO,
        jobs: 4,
        signing: None,
    };
    let e = prune(&dest, &opts, &hook).unwrap_err();
    assert!(e.to_string().contains("changed while pruning"), "{e}");
    let mut after = keys(&dest);
    after.remove("refs/heads/main");
    let mut expected = before;
    expected.remove("refs/heads/main");
    assert_eq!(after, expected, "nothing deleted");
}

/// Another tool's garbage under refs/heads does not block publishing: it is left out of
/// the summary; a garbage file under our own ref's name is replaced.
#[test]
fn garbage_refs_at_the_destination_do_not_block_publishing() {
    let f = fixture();
    let a = commit(&f.repo, &f.scratch, "main", &[("x", b"1")], 1);
    let dest = Location::memory();
    for key in ["refs/heads/junk", "refs/heads/main"] {
        put(&dest.store, key, b"not a checksum\n");
    }
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    assert_eq!(advertised(&dest), vec![("main".to_string(), a)]);
}

/// A destination without refs (a wrong prefix, a half-set-up bucket) is not pruned:
/// everything would be unreachable.
#[test]
fn prune_refuses_a_destination_without_refs() {
    let f = fixture();
    commit(&f.repo, &f.scratch, "main", &[("x", b"1")], 1);
    let dest = Location::memory();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    delete(&dest.store, "refs/heads/main");
    let before = keys(&dest);
    let opts = PruneOpts {
        retention: Retention::Keep(1),
        refs: vec![],
        dry_run: false,
        grace: Duration::ZERO,
        jobs: 4,
        signing: None,
    };
    let e = prune(&dest, &opts, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("no refs"), "{e}");
    assert_eq!(keys(&dest), before);
    // A new, empty destination: nothing to do, not an error (cron jobs set up early).
    let empty = Location::memory();
    let r = prune(&empty, &opts, &NoProgress).unwrap();
    assert!(r.removed.is_empty());
}

/// On file://, staging files a killed upload left behind (`NAME#N`, invisible to
/// listings) are removed by prune once older than the grace period.
#[test]
fn prune_removes_staging_leftovers_on_file_destinations() {
    let f = fixture();
    commit(&f.repo, &f.scratch, "main", &[("a", b"1")], 1);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out");
    let dest = Location::parse_destination(root.to_str().unwrap(), &Default::default()).unwrap();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    let dir = root.join("objects/ab");
    std::fs::create_dir_all(&dir).unwrap();
    let old = dir.join("cdef.filez#3");
    std::fs::write(&old, b"partial").unwrap();
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let fresh = dir.join("cdef.filez#4");
    std::fs::write(&fresh, b"in flight").unwrap();
    let opts = PruneOpts {
        retention: Retention::Keep(1),
        refs: vec![],
        dry_run: false,
        grace: Duration::from_secs(600),
        jobs: 4,
        signing: None,
    };
    let r = prune(&dest, &opts, &NoProgress).unwrap();
    assert!(
        r.removed.iter().any(|x| x.key == "objects/ab/cdef.filez#3"),
        "{:?}",
        r.removed
    );
    assert!(!old.exists());
    assert!(fresh.exists(), "a young one may be an upload in flight");
    std::fs::remove_file(&fresh).unwrap();
    let served = Repo::open(&root).unwrap();
    assert!(served.fsck(&NoProgress).unwrap().errors.is_empty());
}

/// --depth counts along each ref's own history, through commits another ref walked.
#[test]
fn depth_counts_per_ref_over_shared_history() {
    let f = fixture();
    let mut a = Vec::new();
    for i in 0..2u64 {
        let u = format!("a{i}");
        a.push(commit(&f.repo, &f.scratch, "a", &[("u", u.as_bytes())], i));
    }
    // b branches off a1; a moves on to a2, a3.
    f.repo.write_ref("b", &a[1]).unwrap();
    let b0 = commit(&f.repo, &f.scratch, "b", &[("u", b"b0")], 10);
    for i in 2..4u64 {
        let u = format!("a{i}");
        a.push(commit(&f.repo, &f.scratch, "a", &[("u", u.as_bytes())], i));
    }
    let dest = Location::memory();
    let opts = TransferOpts {
        depth: Some(2),
        ..Default::default()
    };
    let r = publish(&f.repo, &dest, &[], &opts, &NoProgress).unwrap();
    // a: a3 a2 a1; b: b0 a1 a0 — a0 is within b's depth.
    assert_eq!(r.commits_uploaded, 5);
    for c in [a[0], a[1], a[2], a[3], b0] {
        assert_complete(&f.repo, &dest, &c);
    }
}

/// `pull`: metadata only gives the history (commits, trees) without content, marked
/// partial, plus named paths; a full pull completes it (fsck clean, no longer partial);
/// local branches only move forward; a damaged published object is refused, named.
#[test]
fn pull_metadata_only_then_full() {
    let f = fixture();
    let a = commit(
        &f.repo,
        &f.scratch,
        "main",
        &[
            ("usr/etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
            ("big", b"1111"),
        ],
        1,
    );
    let b = commit(
        &f.repo,
        &f.scratch,
        "main",
        &[
            ("usr/etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
            ("big", b"2222"),
        ],
        2,
    );
    let dest = Location::memory();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();

    let g = fixture();
    let opts = crate::PullOpts {
        depth: 1,
        metadata_only: true,
        paths: vec!["usr/etc/passwd".into()],
        ..Default::default()
    };
    let r = crate::pull(&dest, &g.repo, &[], &opts, &NoProgress).unwrap();
    assert_eq!(r.commits_fetched, 2);
    assert_eq!(g.repo.read_ref("main").unwrap(), Some(b));
    assert!(g.repo.is_partial(&a) && g.repo.is_partial(&b));
    assert_eq!(g.repo.read_commit(&b).unwrap().parent, Some(a));
    let passwd = match g.repo.lookup_path(&b, "usr/etc/passwd").unwrap() {
        arbor_repo::store::Node::File(c) => c,
        other => panic!("{other:?}"),
    };
    assert!(g.repo.has_object(&passwd, ObjectType::File));
    let big = match g.repo.lookup_path(&b, "big").unwrap() {
        arbor_repo::store::Node::File(c) => c,
        other => panic!("{other:?}"),
    };
    assert!(
        !g.repo.has_object(&big, ObjectType::File),
        "content fetched"
    );
    let fsck = g.repo.fsck(&NoProgress).unwrap();
    assert!(fsck.errors.is_empty(), "{:?}", fsck.errors);
    assert_eq!(fsck.partial_commits, 2);

    let full = crate::PullOpts {
        depth: 1,
        ..Default::default()
    };
    crate::pull(&dest, &g.repo, &[], &full, &NoProgress).unwrap();
    assert!(!g.repo.is_partial(&b) && g.repo.has_object(&big, ObjectType::File));
    let fsck = g.repo.fsck(&NoProgress).unwrap();
    assert!(
        fsck.errors.is_empty() && fsck.partial_commits == 0,
        "{fsck:?}"
    );

    // Ref names come from the source's summary: one that is not a ref name is left out.
    let bytes = get(&dest, layout::SUMMARY).unwrap();
    let mut sum = Summary::from_bytes(&bytes).unwrap();
    let mut evil = sum.refs[0].clone();
    evil.name = "../../evil".into();
    sum.refs.push(evil.clone());
    evil.name = String::new();
    sum.refs.push(evil);
    let deltas = sum.deltas();
    let rebuilt = Summary::build(sum.refs, &deltas, 1).to_bytes();
    put(&dest.store, layout::SUMMARY, &rebuilt);
    let e2 = fixture();
    let r = crate::pull(&dest, &e2.repo, &[], &opts, &NoProgress).unwrap();
    assert_eq!(r.refs.keys().collect::<Vec<_>>(), ["main"]);
    assert!(!e2.repo.path().join("evil").exists() && !e2.repo.path().join("../evil").exists());
    // Mirror takes names from the source too: the same two are left out, and nothing is
    // written at `refs/heads` itself or outside it.
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", tmp.path().join("m").display());
    let m = Location::parse_destination(&url, &Default::default()).unwrap();
    let r = mirror(&dest, &m, &[], &TransferOpts::default(), &NoProgress).unwrap();
    assert_eq!(r.refs.keys().collect::<Vec<_>>(), ["main"]);
    assert!(tmp.path().join("m/refs/heads").is_dir());
    assert!(!tmp.path().join("evil").exists());

    // A damaged object at the source is refused, naming it.
    let h = fixture();
    let key = layout::object_key(&big, ObjectType::File);
    put(&dest.store, &key, b"not the object");
    let e = crate::pull(&dest, &h.repo, &[], &full, &NoProgress).unwrap_err();
    assert!(e.to_string().contains(&key), "{e}");
}

/// `require_descent` (release): a commit that does not descend from the published one is
/// refused even when newer — what a second runner releasing the same ref at the same time
/// meets — and nothing is uploaded.
#[test]
fn require_descent_refuses_a_sibling() {
    let f = fixture();
    commit(&f.repo, &f.scratch, "main", &[("a", b"1")], 1);
    let dest = Location::memory();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    let g = fixture();
    let sibling = commit(&g.repo, &g.scratch, "main", &[("a", b"2")], 5);
    let opts = TransferOpts {
        require_descent: true,
        ..Default::default()
    };
    let e = publish(&g.repo, &dest, &[], &opts, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("does not descend"), "{e}");
    let key = layout::object_key(&sibling, ObjectType::Commit);
    assert!(get(&dest, &key).is_none(), "something was uploaded");
    // Without it (publish), a newer commit from a repository lacking the history moves on.
    publish(&g.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
}

/// Publish and prune never overlap on one destination: a live prune lease stops a
/// publish (nothing uploaded), a live publish lease stops a prune (a dry run still
/// runs), a lease older than the grace period is a crashed run's and ignored, and a
/// finished run leaves no lease behind.
#[test]
fn publish_and_prune_leases_exclude_each_other() {
    let f = fixture();
    let c = commit(&f.repo, &f.scratch, "main", &[("a", b"1")], 1);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pub");
    let url = format!("file://{}", root.display());
    let dest = Location::parse_destination(&url, &Default::default()).unwrap();
    let leases = root.join("arbor-leases");
    std::fs::create_dir_all(&leases).unwrap();

    let prune_lease = leases.join("prune-1-1-1");
    std::fs::write(&prune_lease, b"{}").unwrap();
    let e = publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("a prune is deleting"), "{e}");
    assert!(get(&dest, &layout::object_key(&c, ObjectType::Commit)).is_none());
    // Stale (a crashed prune): ignored.
    let old = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&prune_lease)
        .unwrap()
        .set_modified(old)
        .unwrap();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    std::fs::remove_file(&prune_lease).unwrap();
    assert_eq!(
        std::fs::read_dir(&leases).unwrap().count(),
        0,
        "lease left behind"
    );

    let opts = PruneOpts {
        retention: Retention::Keep(1),
        refs: vec![],
        dry_run: false,
        grace: Duration::from_secs(3600),
        jobs: 2,
        signing: None,
    };
    std::fs::write(leases.join("publish-1-1-1"), b"{}").unwrap();
    let e = prune(&dest, &opts, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("a publish is in flight"), "{e}");
    let dry = PruneOpts {
        dry_run: true,
        ..opts.clone()
    };
    prune(&dest, &dry, &NoProgress).unwrap();
    std::fs::remove_file(leases.join("publish-1-1-1")).unwrap();
    prune(&dest, &opts, &NoProgress).unwrap();
    assert_eq!(
        std::fs::read_dir(&leases).unwrap().count(),
        0,
        "lease left behind"
    );
}

/// A symbolic link planted where a `file://` destination has a directory is refused
/// before anything is written through it.
#[test]
fn planted_directory_links_are_refused() {
    let f = fixture();
    let c = commit(&f.repo, &f.scratch, "main", &[("a", b"1")], 1);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pub");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(root.join("objects")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let hex = c.to_hex();
    std::os::unix::fs::symlink(&outside, root.join("objects").join(&hex[..2])).unwrap();
    let url = format!("file://{}", root.display());
    let dest = Location::parse_destination(&url, &Default::default()).unwrap();
    let e = publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("is a symbolic link"), "{e}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    std::fs::remove_file(root.join("objects").join(&hex[..2])).unwrap();
    let _ = std::fs::remove_dir_all(root.join("refs"));
    std::os::unix::fs::symlink(&outside, root.join("refs")).unwrap();
    let e = publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("is a symbolic link"), "{e}");
}

/// A superblock over ostree 2022.7's 10 MiB metadata limit is refused before publishing
/// (clients would refuse it), as is one that names other commits than its key.
#[test]
fn oversize_and_misnamed_superblocks_are_refused() {
    let name = DeltaName {
        from: None,
        to: Checksum::of(b"to"),
    };
    let mut checks = Default::default();
    let e = crate::transfer::check_delta("u", &name, &vec![0u8; 11 << 20], &mut checks)
        .unwrap_err()
        .to_string();
    assert!(e.contains("2022.7 clients refuse"), "{e}");
    let e = crate::transfer::check_delta("u", &name, b"garbage", &mut checks)
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid delta superblock"), "{e}");
}

/// Two releases of one ref at the same time, each descending from the published head
/// (both pass the descent check): never do both move the ref — the one that meets the
/// other's ref lease is refused, saying so — and the published repository stays whole.
/// A live ref lease refuses a release of that ref only; other refs go on.
#[test]
fn concurrent_releases_of_one_ref_never_both_land() {
    let a = fixture();
    let base = commit(&a.repo, &a.scratch, "main", &[("f", b"0")], 1);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pub");
    let url = format!("file://{}", root.display());
    let dest = Location::parse_destination(&url, &Default::default()).unwrap();
    let release = TransferOpts {
        require_descent: true,
        ..Default::default()
    };
    publish(&a.repo, &dest, &[], &release, &NoProgress).unwrap();
    let b = fixture();
    crate::pull(&dest, &b.repo, &[], &Default::default(), &NoProgress).unwrap();
    assert_eq!(b.repo.read_ref("main").unwrap(), Some(base));
    let mut landed = 0;
    for round in 0..6u64 {
        let ca = commit(
            &a.repo,
            &a.scratch,
            "main",
            &[("f", format!("a{round}").as_bytes())],
            10 + round,
        );
        let cb = commit(
            &b.repo,
            &b.scratch,
            "main",
            &[("f", format!("b{round}").as_bytes())],
            10 + round,
        );
        let (ra, rb) = std::thread::scope(|s| {
            let ha = s.spawn(|| publish(&a.repo, &dest, &[], &release, &NoProgress));
            let hb = s.spawn(|| publish(&b.repo, &dest, &[], &release, &NoProgress));
            (ha.join().unwrap(), hb.join().unwrap())
        });
        assert!(
            !(ra.is_ok() && rb.is_ok()),
            "round {round}: both releases moved the ref"
        );
        for e in [&ra, &rb].into_iter().filter_map(|r| r.as_ref().err()) {
            let e = e.to_string();
            assert!(
                e.contains("another release of ref") || e.contains("does not descend"),
                "round {round}: {e}"
            );
        }
        // Both may back off (each saw the other's lease): a retry alone lands.
        let ra = if ra.is_err() && rb.is_err() {
            publish(&a.repo, &dest, &[], &release, &NoProgress)
        } else {
            ra
        };
        landed += usize::from(ra.is_ok() || rb.is_ok());
        let head = crate::published_head(&dest, "main").unwrap().unwrap();
        let winner = if ra.is_ok() {
            ca
        } else if rb.is_ok() {
            cb
        } else {
            head
        };
        assert_eq!(head, winner);
        // Both continue from what is published now (the loser pulls it).
        for r in [&a.repo, &b.repo] {
            crate::pull(&dest, r, &[], &Default::default(), &NoProgress).unwrap();
            r.write_ref("main", &head).unwrap();
        }
    }
    assert_eq!(landed, 6, "a release did not land");
    let fsck = Repo::open(&root).unwrap().fsck(&NoProgress).unwrap();
    assert!(fsck.errors.is_empty(), "{:?}", fsck.errors);

    let leases = root.join("arbor-leases");
    assert_eq!(
        std::fs::read_dir(&leases).unwrap().count(),
        0,
        "lease left behind"
    );
    let stem = format!("ref-{}-", &Checksum::of(b"main").to_hex()[..16]);
    std::fs::write(leases.join(format!("{stem}1-1-1")), b"{}").unwrap();
    commit(&a.repo, &a.scratch, "main", &[("f", b"later")], 100);
    let e = publish(&a.repo, &dest, &[], &release, &NoProgress).unwrap_err();
    assert!(
        e.to_string().contains("another release of ref \"main\""),
        "{e}"
    );
    commit(&a.repo, &a.scratch, "other", &[("g", b"1")], 100);
    publish(
        &a.repo,
        &dest,
        &["other".to_string()],
        &release,
        &NoProgress,
    )
    .unwrap();
}

/// A tiny HTTP server over `root` that answers `budget` requests and then stops
/// listening (the destination becomes unreachable mid-fetch). Returns its base URL.
fn serve_then_vanish(root: std::path::PathBuf, budget: usize) -> String {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(budget) {
            let Ok(mut c) = conn else { return };
            let mut reader = std::io::BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let file = root.join(path.trim_start_matches("/repo/").trim_start_matches('/'));
            let head = line.starts_with("HEAD");
            let resp = match std::fs::read(&file) {
                Ok(data) if file.is_file() => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Thu, 03 Dec 2026 10:00:00 GMT\r\nConnection: close\r\n\r\n",
                        data.len()
                    )
                    .into_bytes();
                    if !head {
                        r.extend_from_slice(&data);
                    }
                    r
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = c.write_all(&resp);
        }
        // The listener is dropped here: later connections are refused.
    });
    format!("http://127.0.0.1:{port}/repo")
}

/// The destination goes away in the middle of a pull: the error names the object it
/// was fetching; no local ref moves; the repository stays consistent (what arrived is
/// marked partial); a rerun against a reachable copy completes.
#[test]
fn destination_unreachable_mid_fetch() {
    let f = fixture();
    for i in 0..3u64 {
        commit(
            &f.repo,
            &f.scratch,
            "main",
            &[("f", format!("{i}").as_bytes()), ("g", b"x")],
            i,
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pub");
    let url = format!("file://{}", root.display());
    let dest = Location::parse_destination(&url, &Default::default()).unwrap();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();

    let g = fixture();
    let http =
        Location::parse_source(&serve_then_vanish(root.clone(), 4), &Default::default()).unwrap();
    let opts = crate::PullOpts {
        depth: 2,
        ..Default::default()
    };
    let e = crate::pull(&http, &g.repo, &[], &opts, &NoProgress).unwrap_err();
    let msg = e.to_string();
    eprintln!("{msg}");
    assert!(msg.contains("127.0.0.1") && msg.contains("/repo/"), "{msg}");
    assert!(msg.contains("cannot connect"), "{msg}");
    assert_eq!(g.repo.read_ref("main").unwrap(), None, "a ref moved");
    let fsck = g.repo.fsck(&NoProgress).unwrap();
    assert!(fsck.errors.is_empty(), "{:?}", fsck.errors);
    let r = crate::pull(&dest, &g.repo, &[], &opts, &NoProgress).unwrap();
    assert_eq!(
        g.repo.read_ref("main").unwrap(),
        Some(*r.refs.get("main").unwrap())
    );
    let fsck = g.repo.fsck(&NoProgress).unwrap();
    assert!(
        fsck.errors.is_empty() && fsck.partial_commits == 0,
        "{fsck:?}"
    );

    // History pruned below the depth asked for: the pull takes what exists.
    let keep_one = PruneOpts {
        retention: Retention::Keep(1),
        refs: vec![],
        dry_run: false,
        grace: Duration::ZERO,
        jobs: 2,
        signing: None,
    };
    let pr = prune(&dest, &keep_one, &NoProgress).unwrap();
    assert_eq!(pr.removed_commits.len(), 2);
    let h = fixture();
    let deep = crate::PullOpts {
        depth: 5,
        ..Default::default()
    };
    let r = crate::pull(&dest, &h.repo, &[], &deep, &NoProgress).unwrap();
    assert_eq!(r.commits_fetched, 1, "{r:?}");
    let head = h.repo.read_ref("main").unwrap().unwrap();
    assert!(h.repo.read_commit(&head).unwrap().parent.is_some());
    let fsck = h.repo.fsck(&NoProgress).unwrap();
    assert!(fsck.errors.is_empty(), "{fsck:?}");
}

/// Two empty directories share one dirtree but not their metadata (`tmp` 1777 beside
/// `srv` 755): a pull fetches both dirmeta objects (it once walked the shared dirtree
/// once and dropped the second dirmeta, leaving the commit incomplete).
#[test]
fn pull_fetches_every_dirmeta_of_a_shared_dirtree() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    write_tree(&f.scratch, &[("a", b"x")]);
    for d in ["srv", "tmp", "var/tmp"] {
        std::fs::create_dir_all(f.scratch.join(d)).unwrap();
    }
    std::fs::set_permissions(
        f.scratch.join("tmp"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    let (root_tree, root_meta) = f
        .repo
        .write_directory(
            &f.scratch,
            &CommitDirOpts::default(),
            &NoProgress,
            &CommitStats::default(),
        )
        .unwrap();
    let c = f
        .repo
        .write_commit(&Commit {
            metadata: Default::default(),
            parent: None,
            subject: "main".into(),
            body: String::new(),
            timestamp: 1,
            root_tree,
            root_meta,
        })
        .unwrap();
    f.repo.write_ref("main", &c).unwrap();
    let dirs = f.repo.read_dirtree(&root_tree).unwrap().dirs;
    let (srv, tmp) = (&dirs[0], &dirs[1]);
    assert_eq!((srv.0.as_str(), tmp.0.as_str()), ("srv", "tmp"));
    assert!(srv.1 == tmp.1 && srv.2 != tmp.2, "{dirs:?}");
    let dest = Location::memory();
    publish(&f.repo, &dest, &[], &TransferOpts::default(), &NoProgress).unwrap();
    let g = fixture();
    crate::pull(
        &dest,
        &g.repo,
        &[],
        &crate::PullOpts::default(),
        &NoProgress,
    )
    .unwrap();
    let fsck = g.repo.fsck(&NoProgress).unwrap();
    assert!(fsck.errors.is_empty(), "{:?}", fsck.errors);
    let m = g.repo.read_dirmeta(&tmp.2).expect("tmp's dirmeta pulled");
    assert_eq!(m.mode & 0o7777, 0o1777);
    g.repo.read_dirmeta(&srv.2).expect("srv's dirmeta pulled");
}
