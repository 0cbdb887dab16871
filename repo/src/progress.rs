//! Progress reporting from libraries: a small trait whose methods default to no-ops.
//! Only the CLI draws anything.

pub trait Progress: Sync {
    /// A phase of work starts; `total` is the number of units when known.
    fn start(&self, _phase: &str, _total: Option<u64>) {}
    /// `n` more units done (files, objects, bytes: whatever the phase counts).
    fn inc(&self, _n: u64) {}
    /// `n` more bytes moved (downloaded, uploaded, written) in the current phase.
    fn bytes(&self, _n: u64) {}
    /// The current phase is finished.
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
