//! `arbor delta …`: generate, list, show, verify and apply static deltas.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use arbor_delta::apply::OpCounts;
use arbor_delta::format::Endianness;
use arbor_delta::generate::{GenerateOpts as LibOpts, GenerateReport, MB};
use arbor_delta::policy::{apply_policy, PolicyOutcome};
use arbor_delta::{DeltaInfo, DeltaSource};
use arbor_repo::{DeltaName, Repo};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::RepoArg;
use crate::progress::Bar;

#[derive(Subcommand)]
pub enum DeltaCommand {
    /// Generate a static delta FROM → TO (or from scratch with --empty); or, with --ref
    /// and --depth, every delta the ref's head should have that does not exist yet.
    /// The summary is regenerated afterwards so clients find the new deltas.
    Generate(GenerateOpts),
    /// List the static deltas in the repository (FROM-TO or TO, hex).
    List(ListOpts),
    /// Show a delta: parts, sizes, op counts, fallback objects.
    Show(ShowOpts),
    /// Apply a delta in memory against the repository and check every object, the
    /// fallbacks and that the delta is complete.
    Verify(VerifyOpts),
    /// Apply a delta into this archive repository, which must hold its from-commit;
    /// writes the objects and the commit (refs are not changed). Prints the commit.
    Apply(ApplyOpts),
}

impl DeltaCommand {
    pub fn run(self) -> Result<ExitCode> {
        match self {
            DeltaCommand::Generate(o) => o.run(),
            DeltaCommand::List(o) => o.run(),
            DeltaCommand::Show(o) => o.run(),
            DeltaCommand::Verify(o) => o.run(),
            DeltaCommand::Apply(o) => o.run(),
        }
    }
}

#[derive(Args)]
pub struct GenerateOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Commit to generate the delta from (checksum, ref, or REV^ for a parent).
    #[arg(long, value_name = "REV", conflicts_with_all = ["empty", "ref_name"])]
    from: Option<String>,
    /// Generate a from-scratch delta (every object of --to), or with --ref also a
    /// from-scratch delta to the ref's head.
    #[arg(long)]
    empty: bool,
    /// Commit the delta leads to (checksum, ref, or REV^).
    #[arg(long, value_name = "REV", conflicts_with = "ref_name")]
    to: Option<String>,
    /// Policy mode: generate deltas to this ref's head from each of its --depth previous
    /// commits (skipping deltas that already exist).
    #[arg(long = "ref", value_name = "REF", requires = "depth")]
    ref_name: Option<String>,
    /// Policy mode: how many previous commits of --ref get a delta to its head.
    #[arg(long, value_name = "N", requires = "ref_name")]
    depth: Option<usize>,
    #[command(flatten)]
    tuning: DeltaTuning,
    /// Print a JSON object per delta on stdout instead of its name.
    #[arg(long)]
    json: bool,
}

/// How deltas are made: the flags `delta generate` and `release` share.
#[derive(Args, Clone)]
pub struct DeltaTuning {
    /// Skip bsdiff for a file pair whose old + new size exceeds this many MB
    /// (1 MB = 1,000,000 bytes; ostree's default).
    #[arg(long, value_name = "MB", default_value_t = 128)]
    max_bsdiff_size: u64,
    /// Start a new part before one would grow past this many MB (ostree's default).
    #[arg(long, value_name = "MB", default_value_t = 32)]
    max_chunk_size: u64,
    /// Regular files larger than this many MB that are not bsdiff'd are not put in
    /// parts; clients fetch them as loose objects ("fallbacks"). 0 = never.
    #[arg(long, value_name = "MB", default_value_t = 4)]
    min_fallback_size: u64,
    /// Put the parts inside the superblock: a single-file delta (must stay under ostree
    /// 2022.7's 10 MiB superblock limit). For `ostree static-delta apply-offline`, which
    /// refuses fallbacks, add --min-fallback-size 0.
    #[arg(long)]
    inline_parts: bool,
    /// Send modified files whole instead of as bsdiff patches.
    #[arg(long)]
    disable_bsdiff: bool,
    /// Memory budget for concurrent bsdiff and xz work, e.g. 512M, 2G (arbor's bsdiff
    /// needs about 11× the old file's size; a quarter of the budget may hold finished
    /// patches waiting for their turn). One job always runs even if it needs more.
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_size)]
    memory_limit: u64,
    /// xz preset (0-9) for parts holding bsdiff patches: its dictionary size, with the
    /// faster hc4 match finder from preset 4 up (2.2x faster than preset 6's default on
    /// patches, ~3 % more bytes). ostree uses 8 for every part.
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    xz_preset: u32,
    /// xz preset (0-9) for parts holding only whole files (all of a from-scratch
    /// delta): 2 is ~3x faster than 6 on binaries for ~10 % more bytes.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=9))]
    xz_preset_whole: u32,
}

/// Parse `1234`, `512K`, `64M`, `2G` (binary multiples).
fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size suffix in {s:?} (use K, M, G or T)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("invalid size {s:?}"))
}

/// A generated delta: one line of `arbor delta generate --json`, and an element of
/// `deltas` in `arbor release --json`.
#[derive(Serialize)]
pub struct DeltaJson {
    /// `FROM-TO`, or `TO` for a from-scratch delta.
    name: String,
    /// The from-commit (hex); null for a from-scratch delta.
    from: Option<String>,
    /// The to-commit (hex).
    to: String,
    /// The delta's directory.
    path: PathBuf,
    superblock_bytes: u64,
    /// Number of parts.
    parts: usize,
    /// Bytes of the part files (inline parts excluded).
    part_bytes: u64,
    /// Number of fallback objects (fetched as loose objects).
    fallbacks: usize,
    fallback_bytes: u64,
    /// Objects in the parts.
    objects: u64,
    /// Of those, the ones sent as bsdiff patches.
    bsdiff_objects: u64,
    /// Wall time of the command (generate only; absent in release).
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<f64>,
}

impl DeltaJson {
    pub fn new(r: &GenerateReport, repo: &Repo, seconds: Option<f64>) -> Self {
        DeltaJson {
            name: r.name.to_string(),
            from: r.name.from.map(|c| c.to_hex()),
            to: r.name.to.to_hex(),
            path: repo.path().join(&r.rel_dir),
            superblock_bytes: r.superblock_size,
            parts: r.parts.len(),
            part_bytes: r.part_bytes(),
            fallbacks: r.fallbacks.len(),
            fallback_bytes: r.fallback_bytes(),
            objects: r.objects,
            bsdiff_objects: r.bsdiff,
            seconds,
        }
    }
}

impl DeltaTuning {
    pub fn lib_opts(&self) -> Result<LibOpts> {
        let mb = |v: u64, flag: &str| {
            v.checked_mul(MB)
                .with_context(|| format!("--{flag} {v} is too large"))
        };
        Ok(LibOpts {
            max_bsdiff_size: mb(self.max_bsdiff_size, "max-bsdiff-size")?,
            max_chunk_size: mb(self.max_chunk_size, "max-chunk-size")?.max(1),
            min_fallback_size: mb(self.min_fallback_size, "min-fallback-size")?,
            inline_parts: self.inline_parts,
            disable_bsdiff: self.disable_bsdiff,
            memory_limit: self.memory_limit,
            xz_preset: self.xz_preset,
            xz_preset_whole: self.xz_preset_whole,
            timestamp: None,
        })
    }
}

impl GenerateOpts {
    fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let opts = self.tuning.lib_opts()?;
        let started = Instant::now();
        let mut reports = Vec::new();
        if let Some(r) = &self.ref_name {
            let depth = self.depth.unwrap_or(1);
            let outcomes = apply_policy(&repo, r, depth, self.empty, &opts, &Bar::new())
                .with_context(|| format!("generating deltas for ref {r}"))?;
            for o in outcomes {
                match o {
                    PolicyOutcome::Exists(n) => tracing::info!("delta {n} exists; skipped"),
                    PolicyOutcome::Generated(rep) => reports.push(rep),
                }
            }
        } else {
            let Some(to) = &self.to else {
                bail!("--to REV is required (or --ref REF --depth N)");
            };
            if self.from.is_none() && !self.empty {
                bail!("give --from REV, or --empty for a from-scratch delta");
            }
            let to_c = repo
                .resolve_rev(to)
                .with_context(|| format!("resolving --to {to}"))?;
            let from_c = match &self.from {
                Some(f) => Some(
                    repo.resolve_rev(f)
                        .with_context(|| format!("resolving --from {f}"))?,
                ),
                None => None,
            };
            let name = DeltaName {
                from: from_c,
                to: to_c,
            };
            let rep = arbor_delta::generate(&repo, from_c, to_c, &opts, &Bar::new())
                .with_context(|| format!("generating delta {name}"))?;
            reports.push(rep);
        }
        if !reports.is_empty() {
            arbor_delta::refresh(&repo).context("regenerating delta indexes and the summary")?;
        }
        let seconds = started.elapsed().as_secs_f64();
        for r in &reports {
            if self.json {
                super::print_json(&DeltaJson::new(r, &repo, Some(seconds)))?;
            } else {
                println!("{}", r.name);
            }
            tracing::info!(
                "delta {}: {} parts, {} bytes, {} fallbacks ({} bytes), {} objects ({} bsdiff)",
                r.name,
                r.parts.len(),
                r.part_bytes(),
                r.fallbacks.len(),
                r.fallback_bytes(),
                r.objects,
                r.bsdiff
            );
        }
        eprintln!(
            "delta: generated {} delta(s) in {seconds:.1}s",
            reports.len()
        );
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct ListOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Print a JSON array (name, superblock SHA-256) instead of one name per line.
    #[arg(long)]
    json: bool,
}

/// One element of `arbor delta list --json`.
#[derive(Serialize)]
struct DeltaListJson {
    /// `FROM-TO` or `TO`.
    name: String,
    /// SHA-256 of the superblock (hex).
    superblock_sha256: String,
}

impl ListOpts {
    fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let deltas = repo.list_deltas().context("listing deltas")?;
        if self.json {
            let json: Vec<DeltaListJson> = deltas
                .iter()
                .map(|(n, d)| DeltaListJson {
                    name: n.to_string(),
                    superblock_sha256: d.to_hex(),
                })
                .collect();
            super::print_json(&json)?;
        } else {
            for n in deltas.keys() {
                println!("{n}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// How much memory the parts being decompressed at once may take.
#[derive(Args)]
pub struct PartMemory {
    /// Memory for the delta parts decompressed at the same time, e.g. 512M, 4G. A part
    /// whose header allows more than this is refused (a delta from elsewhere cannot make
    /// arbor take more); parts wait for their share otherwise.
    #[arg(long, value_name = "SIZE", default_value = "2G", value_parser = parse_size)]
    memory_limit: u64,
}

/// Open a delta given as FROM-TO / TO (in the repository) or as a path.
fn open_delta(repo: &Repo, arg: &str, memory: &PartMemory) -> Result<DeltaSource> {
    let p = Path::new(arg);
    let d = if p.exists() {
        DeltaSource::open(p).with_context(|| format!("opening delta {arg}"))?
    } else {
        let name = DeltaName::parse(arg).with_context(|| {
            format!("{arg:?} is neither an existing path nor a delta name (FROM-TO or TO)")
        })?;
        DeltaSource::open_in_repo(repo, &name).with_context(|| format!("opening delta {name}"))?
    };
    Ok(d.with_memory_limit(memory.memory_limit))
}

#[derive(Args)]
pub struct ShowOpts {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    memory: PartMemory,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The delta: FROM-TO or TO (checksums), or a path to its directory or superblock.
    delta: String,
}

/// `arbor delta show --json`: the superblock, every part and every fallback.
#[derive(Serialize)]
struct DeltaInfoJson<'a> {
    /// `FROM-TO` or `TO`.
    name: &'a str,
    /// The from-commit (hex); null for a from-scratch delta.
    from: Option<String>,
    /// The to-commit (hex).
    to: String,
    superblock_sha256: String,
    superblock_bytes: u64,
    /// When the delta was made (seconds since the epoch).
    timestamp: u64,
    /// `l` (little-endian) or `B` (big-endian), as ostree marks it.
    endianness: &'static str,
    /// Whether the superblock carries the commit's detached metadata.
    commitmeta: bool,
    /// Bytes of the part files (inline parts excluded).
    part_bytes: u64,
    fallback_bytes: u64,
    /// What a client downloads: superblock, part files and fallbacks.
    total_bytes: u64,
    parts: Vec<PartJson<'a>>,
    fallbacks: Vec<FallbackJson>,
}

/// One part of [`DeltaInfoJson`].
#[derive(Serialize)]
struct PartJson<'a> {
    index: usize,
    /// Whether the part is inside the superblock.
    inline: bool,
    /// `none`, or the compression byte as a letter (`x`: xz).
    compression: String,
    /// Compressed size.
    size: u64,
    /// Uncompressed size, as the header says.
    usize: u64,
    /// Decompressed payload size.
    payload_size: u64,
    objects: usize,
    /// Operations by name.
    ops: &'a OpCounts,
}

/// One fallback object of [`DeltaInfoJson`].
#[derive(Serialize)]
struct FallbackJson {
    /// The ostree object type number.
    objtype: u8,
    checksum: String,
    /// Size of the loose `.filez` file clients fetch.
    csize: u64,
    /// Content size.
    usize: u64,
}

impl<'a> DeltaInfoJson<'a> {
    fn new(i: &'a DeltaInfo) -> Self {
        DeltaInfoJson {
            name: &i.name,
            from: i.from.map(|c| c.to_hex()),
            to: i.to.to_hex(),
            superblock_sha256: i.digest.to_hex(),
            superblock_bytes: i.superblock_size,
            timestamp: i.timestamp,
            endianness: match i.endianness {
                Endianness::Little => "l",
                Endianness::Big => "B",
            },
            commitmeta: i.has_commitmeta,
            part_bytes: i.part_bytes(),
            fallback_bytes: i.fallback_bytes(),
            total_bytes: i.total_bytes(),
            parts: i
                .parts
                .iter()
                .map(|p| PartJson {
                    index: p.index,
                    inline: p.inline,
                    compression: if p.compression == 0 {
                        "none".to_string()
                    } else {
                        (p.compression as char).to_string()
                    },
                    size: p.size,
                    usize: p.usize,
                    payload_size: p.payload_size,
                    objects: p.objects,
                    ops: &p.ops,
                })
                .collect(),
            fallbacks: i
                .fallbacks
                .iter()
                .map(|f| FallbackJson {
                    objtype: f.objtype as u8,
                    checksum: f.checksum.to_hex(),
                    csize: f.csize,
                    usize: f.usize,
                })
                .collect(),
        }
    }
}

impl ShowOpts {
    fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let d = open_delta(&repo, &self.delta, &self.memory)?;
        let info = arbor_delta::show(&d).with_context(|| format!("reading delta {}", d.name()))?;
        if self.json {
            super::print_json(&DeltaInfoJson::new(&info))?;
            return Ok(ExitCode::SUCCESS);
        }
        println!("Delta: {}", info.name);
        println!(
            "From: {}",
            info.from
                .map(|c| c.to_hex())
                .unwrap_or_else(|| "empty".into())
        );
        println!("To: {}", info.to);
        println!(
            "Superblock: {} bytes, sha256 {}",
            info.superblock_size, info.digest
        );
        println!(
            "Timestamp: {}",
            arbor_compose::time::format_utc(info.timestamp)
        );
        println!(
            "Endianness: {}",
            match info.endianness {
                Endianness::Little => "little",
                Endianness::Big => "big",
            }
        );
        println!(
            "Detached metadata: {}",
            if info.has_commitmeta { "yes" } else { "no" }
        );
        println!("Number of parts: {}", info.parts.len());
        println!("Number of fallback entries: {}", info.fallbacks.len());
        println!("Total part size: {}", info.part_bytes());
        println!(
            "Total uncompressed part size: {}",
            info.parts.iter().map(|p| p.usize).sum::<u64>()
        );
        println!("Total fallback size: {}", info.fallback_bytes());
        println!(
            "Total fallback uncompressed size: {}",
            info.fallbacks.iter().map(|f| f.usize).sum::<u64>()
        );
        for p in &info.parts {
            let ops: Vec<String> = p.ops.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "Part {}: {} objects, size {} ({}), usize {}, payload {}{}; ops: {}",
                p.index,
                p.objects,
                p.size,
                if p.compression == 0 {
                    "uncompressed".to_string()
                } else {
                    format!("{}", p.compression as char)
                },
                p.usize,
                p.payload_size,
                if p.inline { ", inline" } else { "" },
                ops.join(" ")
            );
        }
        for f in &info.fallbacks {
            println!(
                "Fallback: {} size {} usize {}",
                f.checksum, f.csize, f.usize
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct VerifyOpts {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    memory: PartMemory,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// The delta: FROM-TO or TO (checksums), or a path to its directory or superblock.
    delta: String,
}

/// `arbor delta verify --json`: what applying the delta in memory checked.
#[derive(Serialize)]
struct VerifyJson<'a> {
    /// `FROM-TO` or `TO`.
    name: String,
    parts: usize,
    /// Objects checked.
    objects: u64,
    fallbacks: usize,
    /// Operations by name.
    ops: &'a OpCounts,
    /// Objects reachable from the to-commit the delta does not supply (`CHECKSUM.ext`).
    missing: Vec<String>,
    /// Whether the delta is complete (nothing missing).
    ok: bool,
}

impl VerifyOpts {
    fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let d = open_delta(&repo, &self.delta, &self.memory)?;
        let r = arbor_delta::verify(&repo, &d, &Bar::new())
            .with_context(|| format!("verifying delta {}", d.name()))?;
        if self.json {
            super::print_json(&VerifyJson {
                name: d.name().to_string(),
                parts: r.parts,
                objects: r.objects,
                fallbacks: r.fallbacks,
                ops: &r.ops,
                missing: r
                    .missing
                    .iter()
                    .map(|(t, c)| format!("{c}.{}", t.archive_extension()))
                    .collect(),
                ok: r.missing.is_empty(),
            })?;
        }
        for (t, c) in &r.missing {
            eprintln!(
                "verify: missing {c}.{} (reachable from the to-commit, not supplied)",
                t.archive_extension()
            );
        }
        eprintln!(
            "verify: delta {}: {} parts, {} objects checked, {} fallbacks: {}",
            d.name(),
            r.parts,
            r.objects,
            r.fallbacks,
            if r.missing.is_empty() {
                "ok".to_string()
            } else {
                format!("INCOMPLETE, {} objects missing", r.missing.len())
            }
        );
        Ok(if r.missing.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

#[derive(Args)]
pub struct ApplyOpts {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    memory: PartMemory,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// The delta: a path to its directory or superblock, or FROM-TO / TO for a delta
    /// already under this repository's deltas/.
    delta: String,
}

/// `arbor delta apply --json`: the commit the delta led to and what it wrote.
#[derive(Serialize)]
struct ApplyJson<'a> {
    /// The to-commit (hex).
    commit: String,
    parts: usize,
    /// Objects written.
    objects: u64,
    /// Operations by name.
    ops: &'a OpCounts,
}

impl ApplyOpts {
    fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let d = open_delta(&repo, &self.delta, &self.memory)?;
        let r = arbor_delta::apply_to_repo(&repo, &d, &Bar::new())
            .with_context(|| format!("applying delta {}", d.name()))?;
        if self.json {
            super::print_json(&ApplyJson {
                commit: r.commit.to_hex(),
                parts: r.parts,
                objects: r.objects,
                ops: &r.ops,
            })?;
        } else {
            println!("{}", r.commit);
        }
        eprintln!("apply: {} parts, {} objects written", r.parts, r.objects);
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("").is_err());
    }
}
