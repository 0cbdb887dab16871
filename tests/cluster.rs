//! `arbor release` onto a distributed store: a 3-node garage cluster (replication factor
//! 3, `ci/start-garage-cluster.sh`) with a node SIGKILLed in the middle of a release,
//! and several runners releasing into one destination at the same time. Each runner
//! starts empty (its own repository and cache), as a CI job does; the destination
//! carries the history. Clients are the host's ostree (2022.7).
//!
//! The tests share the machine's two cores with several garage processes and a compose
//! each, so they take turns ([`serial`]): a concurrent sibling would make the timing of
//! a kill, or the overlap of two releases, a matter of luck.

mod util {
    pub use arbor_tests::*;
}

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use std::{fs, thread};

use serde_json::Value;
use util::{corpus_dir, json, p, tempdir, Client, GarageCluster, Run};

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `ref:` a treefile composes to.
fn treefile_ref(treefile: &Path) -> String {
    let text = fs::read_to_string(treefile).expect("read treefile");
    text.lines()
        .find_map(|l| l.strip_prefix("ref:"))
        .map(|r| r.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("no ref: in {}", treefile.display()))
}

/// A copy of the corpus's `tiny.yaml` (with its .repo files) in `dir`, composing to
/// `reference`, with `cluster.variant: <variant>` added to the commit metadata: a
/// variant is a new input, so each gives a new commit.
fn tiny_variant(dir: &Path, reference: &str, variant: &str) -> PathBuf {
    fs::create_dir_all(dir).expect("mkdir");
    let tf = util::treefile_variant(&corpus_dir(), "tiny.yaml", dir, |text| {
        let text = text.replace(
            "add-commit-metadata:\n",
            &format!("add-commit-metadata:\n  cluster.variant: {variant}\n"),
        );
        let mut out = String::new();
        for line in text.lines() {
            if line.starts_with("ref:") {
                out.push_str(&format!("ref: {reference}\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    });
    let text = fs::read_to_string(&tf).unwrap();
    assert!(
        text.contains(&format!("cluster.variant: {variant}")) && treefile_ref(&tf) == reference,
        "tiny.yaml changed shape: {text}"
    );
    tf
}

/// A CI runner that starts empty: its own repository and package cache (made by its
/// first release).
struct Runner {
    repo: PathBuf,
    cache: PathBuf,
}

impl Runner {
    fn new(base: &Path, name: &str) -> Runner {
        Runner {
            repo: base.join(name).join("repo"),
            cache: base.join(name).join("cache"),
        }
    }

    /// `release TREEFILE --repo … --cachedir … --to URL --delta-depth 1 --json EXTRA…`.
    fn release_args(&self, treefile: &Path, to: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "release",
            p(treefile),
            "--repo",
            p(&self.repo),
            "--cachedir",
            p(&self.cache),
            "--to",
            to,
            "--delta-depth",
            "1",
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A running command whose stderr lines are read as they come, each with the instant it
/// arrived (to act on progress events, or to tell whether two runs overlapped).
struct Watched {
    cmd: String,
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
    stderr_reader: JoinHandle<()>,
    stdout_reader: JoinHandle<Vec<u8>>,
}

impl Watched {
    fn spawn(mut cmd: Command, what: String) -> Watched {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let stderr = child.stderr.take().expect("stderr");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        let stderr_reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let stdout_reader = thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out);
            out
        });
        Watched {
            cmd: what,
            child,
            lines,
            seen: Vec::new(),
            stderr_reader,
            stdout_reader,
        }
    }

    /// Wait up to `timeout` for a stderr line that satisfies `hit`; the instant it
    /// arrived, or None when stderr closed (the process ended) or time ran out first.
    fn wait_for(
        &mut self,
        timeout: Duration,
        mut hit: impl FnMut(&str) -> bool,
    ) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, line) = self.lines.recv_timeout(left).ok()?;
            let found = hit(&line);
            self.seen.push((at, line));
            if found {
                return Some(at);
            }
        }
    }

    /// Whether the process is still running.
    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Wait for the end; the run, and every stderr line with its arrival time.
    fn finish(mut self) -> (Run, Vec<(Instant, String)>, Instant) {
        let status = self.child.wait().expect("wait");
        let ended = Instant::now();
        self.stderr_reader.join().expect("stderr reader");
        let stdout_bytes = self.stdout_reader.join().expect("stdout reader");
        self.seen.extend(self.lines.try_iter());
        let stderr: Vec<&str> = self.seen.iter().map(|(_, l)| l.as_str()).collect();
        let run = Run {
            cmd: self.cmd,
            status: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
            stderr: stderr.join("\n"),
            stdout_bytes,
        };
        (run, self.seen, ended)
    }
}

/// A `--progress=json` line, parsed (None for anything else).
fn event(line: &str) -> Option<Value> {
    serde_json::from_str::<Value>(line)
        .ok()
        .filter(|v| v["event"].is_string())
}

/// The phases in which a publish uploads (in this order; an empty one is skipped).
const UPLOAD_PHASES: [&str; 5] = ["objects", "trees", "deltas", "metadata", "commits"];

/// Run `runs` (name, arbor command) at the same time; each one's result, the instant
/// its publish step began (None if it never did) and the instant it ended.
fn concurrently(runs: Vec<(String, Command)>) -> Vec<(Run, Option<Instant>, Instant)> {
    let watched: Vec<Watched> = runs
        .into_iter()
        .map(|(what, cmd)| Watched::spawn(cmd, what))
        .collect();
    watched
        .into_iter()
        .map(|w| {
            let (run, lines, ended) = w.finish();
            let publish = lines.iter().find_map(|(at, l)| {
                event(l)
                    .filter(|e| e["event"] == "step" && e["step"] == "publish")
                    .map(|_| *at)
            });
            (run, publish, ended)
        })
        .collect()
}

/// Whether two runs' publish steps were under way at the same time.
fn publishes_overlapped(
    a: &(Run, Option<Instant>, Instant),
    b: &(Run, Option<Instant>, Instant),
) -> bool {
    match (a.1, b.1) {
        (Some(sa), Some(sb)) => sa.max(sb) < a.2.min(b.2),
        _ => false,
    }
}

fn rev_parse(client: &Client, rev: &str) -> String {
    client.ostree(&["rev-parse", rev]).ok().trim().to_string()
}

/// What the destination's summary advertises, as a client lists it (`ostree remote refs`):
/// ref name → commit.
fn advertised(client: &Client) -> Vec<String> {
    let out = client
        .ostree(&["remote", "refs", "origin"])
        .ok()
        .to_string();
    let mut refs: Vec<String> = out
        .lines()
        .map(|l| l.trim().trim_start_matches("origin:").to_string())
        .filter(|l| !l.is_empty())
        .collect();
    refs.sort();
    refs
}

// ---------------------------------------------------------------------------------------

/// Two runners release two different refs into one destination at the same time,
/// twice: both succeed each time, the summary advertises both refs, and each ref's
/// history is its own (the second commit's parent is the first; nothing of one ref
/// replaced by the other's).
#[test]
fn two_runners_release_different_refs_at_once() {
    let _serial = serial();
    corpus_dir();
    let g = GarageCluster::start(3);
    let tmp = tempdir();
    let url = g.url("os");
    let refs = ["cluster/a", "cluster/b"];
    let mut heads: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    let mut overlapped = 0;
    // Round 0 creates both refs (and the repository: config, summary) at once; later
    // rounds continue each ref's history from the destination. More rounds until the
    // two publish steps were seen to overlap at least once (they start together and do
    // the same work, so the first round nearly always does).
    let mut round = 0;
    while round < 2 || (overlapped == 0 && round < 5) {
        let runs: Vec<(String, Command)> = refs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let dir = tmp.path().join(format!("round{round}-{i}"));
                let tf = tiny_variant(&dir.join("tree"), r, &format!("r{round}"));
                let runner = Runner::new(&dir, "runner");
                let args = runner.release_args(&tf, &url, &["--progress=json"]);
                // Each through its own node: the cluster is the one destination.
                (
                    format!("release of {r}, round {round}"),
                    g.command(i + 1, &strs(&args)),
                )
            })
            .collect();
        let results = concurrently(runs);
        if publishes_overlapped(&results[0], &results[1]) {
            overlapped += 1;
        }
        for (i, (run, _, _)) in results.iter().enumerate() {
            let j = json(run.ok_ref());
            let commit = j["commit"].as_str().unwrap().to_string();
            assert_eq!(j["new_commit"], true, "{j}");
            match heads[i].last() {
                None => assert!(j["parent"].is_null(), "{j}"),
                Some(prev) => assert_eq!(j["parent"], prev.as_str(), "{j}"),
            }
            assert_eq!(
                j["published"]["advertised_refs"][refs[i]],
                commit.as_str(),
                "{j}"
            );
            heads[i].push(commit);
        }
        round += 1;
    }
    eprintln!("{round} rounds, publish steps overlapped in {overlapped}");
    assert!(
        overlapped > 0,
        "the two releases never published at the same time"
    );

    // A client sees both refs advertised at their last commits, each with its whole
    // history, every object intact.
    let client = Client::host(&tmp.path().join("client"), &g.web(2, "os"));
    let want: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
    let got = advertised(&client);
    assert_eq!(got, want, "advertised refs");
    for (i, r) in refs.iter().enumerate() {
        client.ostree(&["pull", "--depth=-1", "origin", r]).ok();
        let mut history = Vec::new();
        let mut rev = format!("origin:{r}");
        for _ in 0..heads[i].len() {
            history.push(rev_parse(&client, &rev));
            rev.push('^');
        }
        history.reverse();
        assert_eq!(history, heads[i], "history of {r}");
        // The oldest commit has no parent.
        let root = client.ostree(&["rev-parse", &rev]);
        assert_ne!(root.status, 0, "{r}: {} has a parent", heads[i][0]);
    }
    client.ostree(&["fsck"]).ok();
}

/// Two runners release sibling commits of one ref (both composed on the same published
/// head) at the same time: at most one moves the ref; the other is refused with a clear
/// message and uploads nothing that breaks the repository. When both back off (each saw
/// the other's lease) a rerun lands. The refused runner, run again, continues from the
/// winner, so nothing is lost.
#[test]
fn two_runners_release_one_ref_at_once() {
    let _serial = serial();
    corpus_dir();
    let g = GarageCluster::start(3);
    let tmp = tempdir();
    let url = g.url("os");
    let reference = "cluster/same";
    let base = {
        let tf = tiny_variant(&tmp.path().join("base-tree"), reference, "base");
        let r = g.arbor(
            1,
            &strs(&Runner::new(tmp.path(), "base").release_args(&tf, &url, &[])),
        );
        json(r.ok_ref())["commit"].as_str().unwrap().to_string()
    };
    let mut head = base.clone();
    let mut conflicts = 0;
    for round in 0..3 {
        let variants = ["a", "b"].map(|v| {
            let dir = tmp.path().join(format!("round{round}-{v}"));
            let tf = tiny_variant(&dir.join("tree"), reference, &format!("{v}{round}"));
            (tf, Runner::new(&dir, "runner"))
        });
        let runs = variants
            .iter()
            .enumerate()
            .map(|(i, (tf, runner))| {
                let args = runner.release_args(tf, &url, &["--progress=json"]);
                (format!("release {}", i + 1), g.command(i + 1, &strs(&args)))
            })
            .collect();
        let results = concurrently(runs);
        let ok: Vec<bool> = results.iter().map(|(r, _, _)| r.status == 0).collect();
        let parents: Vec<Option<String>> = results
            .iter()
            .map(|(r, _, _)| {
                (r.status == 0).then(|| json(r)["parent"].as_str().unwrap_or("").to_string())
            })
            .collect();
        if ok[0] && ok[1] {
            // Only acceptable when they did not race: one composed on the other's commit.
            let commits: Vec<String> = results
                .iter()
                .map(|(r, _, _)| json(r)["commit"].as_str().unwrap().to_string())
                .collect();
            assert!(
                parents[0].as_deref() == Some(commits[1].as_str())
                    || parents[1].as_deref() == Some(commits[0].as_str()),
                "round {round}: both releases moved {reference} from the same parent: {parents:?} → {commits:?}"
            );
            eprintln!("round {round}: the releases did not overlap; again");
            head = rev_of_winner(&results, &commits);
            continue;
        }
        conflicts += 1;
        for (r, _, _) in results.iter().filter(|(r, _, _)| r.status != 0) {
            assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
            assert!(
                r.stderr
                    .contains(&format!("another release of ref {reference:?}"))
                    || r.stderr.contains("does not descend"),
                "{} was refused without saying why:\n{}",
                r.cmd,
                r.stderr
            );
            assert!(r.stderr.contains("s3://localhost/os"), "{}", r.stderr);
            let why = r
                .stderr
                .lines()
                .find(|l| l.contains("caused by"))
                .unwrap_or("");
            eprintln!("round {round}: {} refused: {why}", r.cmd);
        }
        let (winner, loser) = match ok.iter().position(|&o| o) {
            Some(i) => {
                let j = json(&results[i].0);
                assert_eq!(j["parent"], head.as_str(), "{j}");
                (j["commit"].as_str().unwrap().to_string(), 1 - i)
            }
            None => {
                // Both backed off: the first one's rerun, from its own repository, lands.
                eprintln!("round {round}: both releases backed off; rerunning the first");
                // Its repository already holds the commit it composed on `head` (never
                // published): the rerun publishes that one, so the JSON's `parent` (what
                // the compose read) is the commit itself; the client below checks that
                // the published commit's parent is `head`.
                let (tf, runner) = &variants[0];
                let r = g.arbor(1, &strs(&runner.release_args(tf, &url, &[])));
                let j = json(r.ok_ref());
                assert_eq!(j["published"]["refs"][reference], j["commit"], "{j}");
                // The second is the one left refused.
                (j["commit"].as_str().unwrap().to_string(), 1)
            }
        };
        // The destination has the winner, whole.
        let client = Client::host(&tmp.path().join(format!("client{round}")), &g.web(3, "os"));
        assert_eq!(advertised(&client), vec![reference.to_string()]);
        client
            .ostree(&["pull", "--depth=1", "origin", reference])
            .ok();
        assert_eq!(rev_parse(&client, &format!("origin:{reference}")), winner);
        assert_eq!(rev_parse(&client, &format!("origin:{reference}^")), head);
        client.ostree(&["fsck"]).ok();

        // The refused job runs again on its own runner (whose repository holds the
        // commit that was refused) and, as the refusal says, continues from the winner;
        // nothing is lost.
        let (tf, runner) = &variants[loser];
        let r = g.arbor(2, &strs(&runner.release_args(tf, &url, &[])));
        assert!(r.stderr.contains("was never published"), "{}", r.stderr);
        let j = json(r.ok_ref());
        assert_eq!(j["parent"], winner.as_str(), "{j}");
        head = j["commit"].as_str().unwrap().to_string();
        client
            .ostree(&["pull", "--depth=2", "origin", reference])
            .ok();
        assert_eq!(rev_parse(&client, &format!("origin:{reference}")), head);
        assert_eq!(rev_parse(&client, &format!("origin:{reference}^")), winner);
        client.ostree(&["fsck"]).ok();
        break;
    }
    assert!(conflicts > 0, "the two releases of one ref never raced");
    assert_ne!(head, base);
}

/// The head after a round in which both releases landed one after the other.
fn rev_of_winner(results: &[(Run, Option<Instant>, Instant)], commits: &[String]) -> String {
    // The later one composed on the earlier one's commit.
    let later = if json(&results[0].0)["parent"] == commits[1].as_str() {
        0
    } else {
        1
    };
    commits[later].clone()
}

// ---------------------------------------------------------------------------------------
// a node killed mid-release

/// `garage stats` of one node: per table (name → items, Merkle items, Merkle todo,
/// insert queue), and the block manager's resync queue and errors.
#[derive(Debug, PartialEq, Eq)]
struct NodeStats {
    tables: Vec<(String, [u64; 4])>,
    resync_queue: u64,
    resync_errors: u64,
}

fn node_stats(g: &GarageCluster, node: usize) -> Option<NodeStats> {
    let r = g.garage(node, &["stats"]);
    if r.status != 0 {
        return None;
    }
    let mut tables = Vec::new();
    let mut in_tables = false;
    let (mut resync_queue, mut resync_errors) = (None, None);
    for line in r.stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with("Table stats") {
            in_tables = true;
            continue;
        }
        if in_tables {
            if fields.first() == Some(&"Table") {
                continue;
            }
            let nums: Vec<u64> = fields
                .iter()
                .skip(1)
                .filter_map(|f| f.parse().ok())
                .collect();
            if fields.len() >= 5 && nums.len() >= 4 {
                tables.push((fields[0].to_string(), [nums[0], nums[1], nums[2], nums[3]]));
                continue;
            }
            in_tables = false;
        }
        let last = fields.last().and_then(|f| f.parse::<u64>().ok());
        if line.contains("resync queue length") {
            resync_queue = last;
        } else if line.contains("blocks with resync errors") {
            resync_errors = last;
        }
    }
    assert!(
        tables.iter().any(|(t, _)| t == "object") && tables.iter().any(|(t, _)| t == "block_ref"),
        "cannot read `garage stats`:\n{}",
        r.stdout
    );
    Some(NodeStats {
        tables,
        resync_queue: resync_queue?,
        resync_errors: resync_errors?,
    })
}

/// The tables `garage repair tables` syncs (garage 2.5: buckets, keys, objects, versions,
/// block references). The others (multipart uploads, counters, aliases) follow on
/// garage's 10-minute anti-entropy timer; reading an object does not need them.
const REPAIRED_TABLES: [&str; 5] = ["bucket_v2", "key", "object", "version", "block_ref"];

/// The same numbers of items and Merkle-tree nodes in each of [`REPAIRED_TABLES`].
fn same_tables(a: &NodeStats, b: &NodeStats) -> bool {
    REPAIRED_TABLES.iter().all(|name| {
        let find = |s: &NodeStats| {
            s.tables
                .iter()
                .find(|(t, _)| t == name)
                .map(|(_, n)| [n[0], n[1]])
        };
        find(a).is_some() && find(a) == find(b)
    })
}

/// Nothing left in the Merkle-tree updater's or the insert queue of any table.
fn settled(s: &NodeStats) -> bool {
    s.tables.iter().all(|(_, t)| t[2] == 0 && t[3] == 0)
}

/// Whether a background worker of `node` whose name contains `name` is busy (`garage
/// worker list`: `TID State Name …`); a worker that ended says `Done`.
fn busy(g: &GarageCluster, node: usize, name: &str) -> bool {
    let r = g.garage(node, &["worker", "list"]);
    if r.status != 0 {
        return true;
    }
    r.stdout.lines().any(|l| {
        l.contains(name)
            && l.split_whitespace()
                .nth(1)
                .is_some_and(|state| state.starts_with("Busy"))
    })
}

/// How many blocks `node`'s block manager holds to put in its resync queue (garage
/// buffers those puts for up to 2 s): the Queue column of `garage worker list` for
/// "Block resync queue deferred worker" (`TID State Name Tranq Done Queue …`).
fn deferred_resync_puts(g: &GarageCluster, node: usize) -> Option<u64> {
    let r = g.garage(node, &["worker", "list"]);
    let line = r.stdout.lines().find(|l| l.contains("deferred worker"))?;
    let (_, after_name) = line.split_once("deferred worker")?;
    after_name.split_whitespace().nth(2)?.parse().ok()
}

/// The blocks a node stores: the names (hashes) of the files under its data dir.
fn blocks(node_dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![node_dir.join("data")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if name.len() >= 64 && name[..64].bytes().all(|b| b.is_ascii_hexdigit()) {
                out.insert(name[..64].to_string());
            }
        }
    }
    out
}

/// The blocks nodes 1 and 2 store that node 3 does not.
fn lacking_blocks(g: &GarageCluster) -> BTreeSet<String> {
    let have = blocks(&g.node_dir(3));
    let mut lacking = BTreeSet::new();
    for n in [1, 2] {
        lacking.extend(blocks(&g.node_dir(n)).difference(&have).cloned());
    }
    lacking
}

/// A block's reference count on `node` (`garage block info`); 0 for a block no reference
/// names (written by an upload that failed before it recorded one).
fn refcount(g: &GarageCluster, node: usize, hash: &str) -> u64 {
    let r = g.garage(node, &["block", "info", hash]);
    if r.status != 0 && r.stderr.contains("Block not found") {
        return 0;
    }
    r.ok()
        .lines()
        .find_map(|l| l.trim().strip_prefix("Refcount:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no refcount in `{}`:\n{}", r.cmd, r.stdout))
}

/// How long node 3 may take to catch up after its restart: its tables, then the ~1,400
/// blocks (1 MiB) it missed. Measured on two busy cores: tables in 3–4 s, all in 8–11 s;
/// without the block repair garage would fetch them only 10 minutes after their references.
const CATCH_UP: Duration = Duration::from_secs(120);

/// Polls `check` every half second until it says `Ok`; panics with `what` and its last
/// `Err` once `limit` has passed since `since`.
fn wait_until<T>(
    since: Instant,
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    loop {
        match check() {
            Ok(done) => return done,
            Err(e) if since.elapsed() > limit => {
                panic!(
                    "{what} {:.0} s after its restart: {e}",
                    since.elapsed().as_secs_f64()
                )
            }
            Err(_) => thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Runner A releases the corpus's v1 through node 1; runner B (empty) releases v2
/// through node 1 while node 3 is SIGKILLed as B's upload begins. With replication
/// factor 3 a write needs two of three nodes, so the release completes (or, if a
/// request fails for good, says so naming the destination, and a rerun completes). A
/// client pulling through node 2 then sees v2 with parent v1, every object intact.
///
/// Node 3 is restarted and catches up, by the repairs an operator runs after an outage
/// (garage would get there by itself on 10-minute timers): the live nodes push it what
/// it missed (`garage repair -a tables`), and it fetches the blocks its new block
/// references name (`repair clear-resync-queue`, then `repair blocks`). It is done when
/// its table and Merkle counts equal the others' and it stores every block node 1
/// references that nodes 1 and 2 store, within [`CATCH_UP`]. With quorum reads no read
/// through the cluster could prove that node 3 holds anything (two other nodes answer
/// too), so the proof also reads through node 3 alone: nodes 1 and 2 are stopped and
/// node 3 restarted by itself with `consistency_mode = "dangerous"` (reads from one
/// node); `arbor mirror` then copies the whole repository — every commit of the
/// history, every object, every delta — out of it, and `ostree fsck` checks the copy.
#[test]
fn node_killed_mid_release_then_caught_up() {
    let _serial = serial();
    let c = corpus_dir();
    let g = GarageCluster::start(3);
    let tmp = tempdir();
    let url = g.url("os");
    let (v1, v2) = (c.join("v1.yaml"), c.join("v2.yaml"));
    let reference = treefile_ref(&v2);
    assert_eq!(treefile_ref(&v1), reference);

    let a = Runner::new(tmp.path(), "a");
    let j1 = json(g.arbor(1, &strs(&a.release_args(&v1, &url, &[]))).ok_ref());
    let c1 = j1["commit"].as_str().unwrap().to_string();

    // Runner B: node 3 is SIGKILLed when the upload begins (the first upload phase's
    // start event), and B must still be running after the kill.
    let b = Runner::new(tmp.path(), "b");
    let args = b.release_args(&v2, &url, &["--progress=json"]);
    let mut w = Watched::spawn(g.command(1, &strs(&args)), "release of v2".into());
    let mut publishing = false;
    let upload = w.wait_for(Duration::from_secs(900), |line| {
        let Some(e) = event(line) else { return false };
        if e["event"] == "step" {
            publishing = e["step"] == "publish";
        }
        publishing && e["event"] == "start" && UPLOAD_PHASES.iter().any(|ph| e["phase"] == *ph)
    });
    let Some(upload) = upload else {
        let (r, _, _) = w.finish();
        panic!("v2's release never started uploading:\n{}", r.stderr)
    };
    g.kill(3);
    let killed = Instant::now();
    assert!(
        w.running(),
        "the release ended before node 3 was killed: no kill mid-release"
    );
    let (r2, lines, ended) = w.finish();
    let after: Vec<&str> = lines
        .iter()
        .filter(|(at, _)| *at > killed)
        .map(|(_, l)| l.as_str())
        .collect();
    eprintln!(
        "node 3 killed {:.0} ms after the upload began; the release ran {:.1} s more ({} stderr lines)",
        (killed - upload).as_secs_f64() * 1e3,
        (ended - killed).as_secs_f64(),
        after.len()
    );
    let r2 = if r2.status == 0 {
        r2
    } else {
        assert!(!r2.stderr.contains("panicked"), "{}", r2.stderr);
        assert!(
            r2.stderr.contains(&url),
            "the failed release does not name the destination:\n{}",
            r2.stderr
        );
        eprintln!(
            "the release failed with node 3 down; rerunning it:\n{}",
            r2.stderr
        );
        g.arbor(2, &strs(&b.release_args(&v2, &url, &[])))
    };
    let j2 = json(r2.ok_ref());
    let c2 = j2["commit"].as_str().unwrap().to_string();
    assert_eq!(j2["parent"], c1.as_str(), "{j2}");
    assert_eq!(
        j2["published"]["advertised_refs"][&reference],
        c2.as_str(),
        "{j2}"
    );

    // A client pulling through node 2 (node 3 still down) sees v2, parent v1, intact.
    let client = Client::host(&tmp.path().join("client"), &g.web(2, "os"));
    assert_eq!(advertised(&client), vec![reference.clone()]);
    client
        .ostree(&["pull", "--depth=1", "origin", &reference])
        .ok();
    assert_eq!(rev_parse(&client, &format!("origin:{reference}")), c2);
    assert_eq!(rev_parse(&client, &format!("origin:{reference}^")), c1);
    client.ostree(&["fsck"]).ok();

    // Node 3 comes back and catches up, by what an operator runs after a node's outage.
    // Tables: `repair tables` has every node sync its tables with the others now (garage
    // would on its 10-minute anti-entropy timer).
    let before = node_stats(&g, 1).expect("stats of node 1");
    g.restart(3, None);
    let started = Instant::now();
    g.garage(1, &["repair", "--all-nodes", "--yes", "tables"])
        .ok();
    wait_until(
        started,
        CATCH_UP,
        "node 3's tables did not catch up",
        || {
            let stats: Vec<Option<NodeStats>> = (1..=3).map(|n| node_stats(&g, n)).collect();
            match (&stats[0], &stats[1], &stats[2]) {
                (Some(s1), Some(s2), Some(s3))
                    if same_tables(s1, s3)
                        && same_tables(s2, s3)
                        && [s1, s2, s3].iter().all(|s| settled(s))
                        && (1..=3).all(|n| !busy(&g, n, " sync")) =>
                {
                    Ok(())
                }
                _ => Err(format!(
                    "{stats:#?}\n(node 1 before the restart: {before:?})"
                )),
            }
        },
    );
    let tables = started.elapsed();

    // Blocks. Node 3 learned of each block it missed from a block reference the sync
    // gave it, and garage queues such a block for 2 × the RPC timeout (10 min) later (in
    // case its writer is still sending it); the queue keeps the later of two dates, so
    // `repair blocks` alone does not bring those forward (measured: 1,415 blocks still
    // missing after 2 minutes, as with no repair at all). So node 3's queue is emptied
    // first (`repair clear-resync-queue`, which garage's help says must be followed by
    // `repair blocks`), then `repair blocks` queues every block it references, for now.
    // Its resync workers run flat out meanwhile (`worker set`: the knobs an operator
    // turns for a catch-up); a fetch that failed is retried now (`block retry-now`), not
    // after garage's back-off.
    g.garage(3, &["worker", "set", "resync-tranquility", "0"])
        .ok();
    g.garage(3, &["worker", "set", "resync-worker-count", "4"])
        .ok();
    // Garage buffers puts into the queue for up to 2 s, also keeping the later date: the
    // sync's last ones must be in the queue before it is cleared, or they would land
    // after it and hold back the same blocks from `repair blocks` (measured: 86 blocks
    // in one run of four, the clear having come right after the tables matched).
    wait_until(
        started,
        CATCH_UP,
        "node 3 did not flush its resync puts",
        || match deferred_resync_puts(&g, 3) {
            Some(0) => Ok(()),
            n => Err(format!("{n:?} puts buffered")),
        },
    );
    g.garage(3, &["repair", "--yes", "clear-resync-queue"]).ok();
    g.garage(3, &["repair", "--yes", "blocks"]).ok();
    let unreferenced = wait_until(started, CATCH_UP, "node 3 lacks blocks", || {
        let s3 = node_stats(&g, 3).ok_or("no stats of node 3")?;
        if s3.resync_errors > 0 {
            g.garage(3, &["block", "retry-now", "--all"]).ok();
        }
        let lacking = lacking_blocks(&g);
        let progress = format!(
            "{} blocks nodes 1 and 2 store are not on node 3; its resync queue: {}, errors: {}",
            lacking.len(),
            s3.resync_queue,
            s3.resync_errors
        );
        if s3.resync_errors > 0 || busy(&g, 3, "Block repair") || busy(&g, 3, "Block resync") {
            return Err(progress);
        }
        // Every block node 1 references (refcount > 0), node 3 stores; the others are
        // garbage (of an upload retried when node 3 was killed) that garage deletes later.
        match lacking.iter().find(|h| refcount(&g, 1, h) > 0) {
            Some(h) => Err(format!("{progress}; node 1 references {h}")),
            None => Ok(lacking.len()),
        }
    });
    eprintln!(
        "node 3 caught up in {:.1} s (tables {:.1} s): {} blocks; {unreferenced} others, \
         unreferenced, not fetched",
        started.elapsed().as_secs_f64(),
        tables.as_secs_f64(),
        blocks(&g.node_dir(3)).len()
    );

    // The proof that node 3 holds what a reader needs: it serves the whole repository
    // alone (nodes 1 and 2 stopped, `consistency_mode = "dangerous"`: reads from one node).
    g.stop(1);
    g.stop(2);
    g.stop(3);
    let alone = tmp.path().join("node3-alone.toml");
    let conf = fs::read_to_string(g.node_var(3, "CONFIG")).unwrap();
    assert!(conf.contains("consistency_mode = \"consistent\""), "{conf}");
    fs::write(
        &alone,
        conf.replace(
            "consistency_mode = \"consistent\"",
            "consistency_mode = \"dangerous\"",
        ),
    )
    .unwrap();
    g.restart(3, Some(&alone));
    let mirror = tmp.path().join("mirror");
    let m = g.arbor(
        3,
        &[
            "mirror",
            "--from",
            &url,
            "--to",
            &format!("file://{}", p(&mirror)),
            "--json",
        ],
    );
    let jm = json(m.ok_ref());
    eprintln!("mirrored through node 3 alone: {jm}");
    let repo = format!("--repo={}", p(&mirror));
    util::ostree(&[&repo, "fsck"]).ok();
    assert_eq!(
        util::ostree(&[&repo, "rev-parse", &reference]).ok().trim(),
        c2
    );
    assert_eq!(
        util::ostree(&[&repo, "rev-parse", &format!("{reference}^")])
            .ok()
            .trim(),
        c1
    );
    let deltas = util::ostree(&[&repo, "static-delta", "list"])
        .ok()
        .to_string();
    for d in j2["deltas"].as_array().unwrap() {
        let want = d["name"].as_str().expect("delta name");
        assert!(
            deltas.lines().any(|l| l.trim() == want),
            "delta {want} not in the mirror: {deltas}"
        );
    }
}
