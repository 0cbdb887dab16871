//! Which content object goes into which layer ("chunking").
//!
//! Components are builds — the packages built together from one source (see `owners`),
//! which are updated together — from the commit's rpmdb, plus `initramfs` (rebuilt with
//! every kernel or dracut change, so on its own). Content no package owns (the rpmdb itself,
//! passwd/group, generated caches) changes with every compose and goes into the commit
//! layer, which changes with every compose anyway.
//!
//! The assignment must stay put across versions, so that an update changes only the layers
//! of the packages that changed. Without reading the previous image:
//! - half of the `max_layers` slots hold the largest builds (≥ 1 MiB) alone;
//! - the other half are bins, a build's bin being the FNV-1a hash of its *name* (its
//!   alphabetically first package) modulo the (fixed) number of bins — a new version lands
//!   where the old one was, and a package added or removed touches one bin.
//!
//! Keeping a build's packages together matters: on corpus v1 → v2 (30 packages changed,
//! most of them subpackages of a dozen builds) a client fetched 94.5 MB (25 of 65 layers)
//! with one component per package, 88.3 MB (15 of 62) with one per build — 2.95× the static
//! delta (the floor, every package alone, ~85 MB).

use std::collections::{BTreeMap, BTreeSet};

use arbor_repo::Checksum;

use crate::owners::Owners;
use crate::tree::TreeIndex;

/// rpm-ostree's and ostree-ext's default number of layers.
pub const DEFAULT_MAX_LAYERS: u32 = 64;
/// Fewer would leave no room for bins.
pub const MIN_MAX_LAYERS: u32 = 4;
/// A package smaller than this never gets a layer of its own.
const SINGLETON_MIN: u64 = 1 << 20;
pub const INITRAMFS: &str = "initramfs";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The layer's history entry (`created_by`).
    pub name: String,
    /// Sorted package names (the `ostree.components` annotation).
    pub components: Vec<String>,
    /// Sorted.
    pub objects: Vec<Checksum>,
    pub size: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub chunks: Vec<Chunk>,
    /// Objects for the commit layer, sorted.
    pub remainder: Vec<Checksum>,
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn is_initramfs(path: &str) -> bool {
    path.strip_prefix("usr/lib/modules/")
        .and_then(|r| r.split_once('/'))
        .is_some_and(|(_, f)| f == "initramfs.img")
}

/// Plan the layers of `index` with at most `max_layers` chunk layers (the commit layer
/// comes on top). `max_layers` 1 puts everything into the commit layer.
pub fn plan(index: &TreeIndex, owners: &Owners, max_layers: u32) -> Plan {
    // Build → (size, objects, packages).
    let mut components: BTreeMap<String, (u64, Vec<Checksum>, BTreeSet<String>)> = BTreeMap::new();
    let mut remainder = Vec::new();
    for (c, o) in &index.objects {
        let comp = if o.paths.iter().any(|p| is_initramfs(p)) {
            Some(INITRAMFS)
        } else {
            o.paths.iter().filter_map(|p| owners.owner(p)).min()
        };
        match comp {
            Some(name) if max_layers > 1 => {
                let build = if name == INITRAMFS {
                    name
                } else {
                    owners.build(name)
                };
                let e = components.entry(build.to_string()).or_default();
                e.0 += o.size;
                e.1.push(*c);
                e.2.insert(name.to_string());
            }
            _ => remainder.push(*c),
        }
    }
    if components.is_empty() {
        return Plan {
            chunks: Vec::new(),
            remainder,
        };
    }
    let mut slots = max_layers.max(MIN_MAX_LAYERS) as usize;
    let mut chunks = Vec::new();
    if let Some((size, objects, _)) = components.remove(INITRAMFS) {
        chunks.push(Chunk {
            name: INITRAMFS.into(),
            components: vec![INITRAMFS.into()],
            objects,
            size,
        });
        slots -= 1;
    }
    let singles_max = slots / 2;
    let bins = slots - singles_max;
    let mut by_size: Vec<(&String, u64)> =
        components.iter().map(|(n, (s, _, _))| (n, *s)).collect();
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let singles: Vec<String> = by_size
        .iter()
        .take_while(|(_, s)| *s >= SINGLETON_MIN)
        .take(singles_max)
        .map(|(n, _)| (*n).clone())
        .collect();
    let mut singles_sorted = singles.clone();
    singles_sorted.sort();
    for name in singles_sorted {
        let (size, objects, packages) = components.remove(&name).expect("present");
        let name = match packages.len() {
            1 => name,
            n => format!("{name} and {} packages built with it", n - 1),
        };
        chunks.push(Chunk {
            name,
            components: packages.into_iter().collect(),
            objects,
            size,
        });
    }
    let mut binned: BTreeMap<usize, Chunk> = BTreeMap::new();
    for (name, (size, objects, packages)) in components {
        let b = (fnv1a(&name) % bins as u64) as usize;
        let chunk = binned.entry(b).or_insert_with(|| Chunk {
            name: String::new(),
            components: Vec::new(),
            objects: Vec::new(),
            size: 0,
        });
        chunk.components.extend(packages);
        chunk.objects.extend(objects);
        chunk.size += size;
    }
    for (_, mut chunk) in binned {
        chunk.name = match chunk.components.as_slice() {
            [one] => one.clone(),
            [a, b] => format!("{a} and {b}"),
            many => format!("{} components", many.len()),
        };
        chunks.push(chunk);
    }
    for c in &mut chunks {
        c.objects.sort();
        c.components.sort();
    }
    Plan { chunks, remainder }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_published_function() {
        // Test vectors of FNV-1a 64.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn initramfs_paths() {
        assert!(is_initramfs("usr/lib/modules/6.1.0-1-amd64/initramfs.img"));
        assert!(!is_initramfs(
            "usr/lib/modules/6.1.0-1-amd64/kernel/initramfs.img"
        ));
        assert!(!is_initramfs("boot/initramfs.img"));
    }
}
