//! What a client holding one image fetches to get another: the layers (by digest) the new
//! image has and the old one lacks, and their bytes.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::layout::Manifest;
use crate::COMPONENTS_ANNOTATION;

#[derive(Debug, Clone, Serialize)]
pub struct FetchedLayer {
    pub digest: String,
    pub size: u64,
    /// The layer's `ostree.components` (empty for the commit layer).
    pub components: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageDiff {
    pub old_manifest: String,
    pub new_manifest: String,
    pub layers: usize,
    pub layers_reused: usize,
    pub bytes_reused: u64,
    /// Layers a client holding the old image downloads, with the manifest and config.
    pub fetched: Vec<FetchedLayer>,
    pub bytes_fetched: u64,
    /// The whole new image, for comparison.
    pub bytes_total: u64,
}

pub fn diff(old_digest: &str, old: &Manifest, new_digest: &str, new: &Manifest) -> ImageDiff {
    let have: BTreeSet<&str> = old.layers.iter().map(|l| l.digest.as_str()).collect();
    let mut fetched = Vec::new();
    let mut seen = BTreeSet::new();
    let (mut reused, mut bytes_reused) = (0, 0);
    for l in &new.layers {
        if !seen.insert(l.digest.as_str()) {
            continue;
        }
        if have.contains(l.digest.as_str()) {
            reused += 1;
            bytes_reused += l.size;
        } else {
            fetched.push(FetchedLayer {
                digest: l.digest.clone(),
                size: l.size,
                components: l.annotation(COMPONENTS_ANNOTATION).unwrap_or("").into(),
            });
        }
    }
    let bytes_fetched = fetched.iter().map(|l| l.size).sum::<u64>() + new.config.size;
    ImageDiff {
        old_manifest: old_digest.into(),
        new_manifest: new_digest.into(),
        layers: new.layers.len(),
        layers_reused: reused,
        bytes_reused,
        fetched,
        bytes_fetched,
        bytes_total: new.layers.iter().map(|l| l.size).sum::<u64>() + new.config.size,
    }
}
