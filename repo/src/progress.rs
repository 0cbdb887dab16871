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
    /// The current phase stopped on an error (the error itself is reported elsewhere).
    fn fail(&self) {}
    /// The current phase ended: [`finish`](Progress::finish) when `ok`, else
    /// [`fail`](Progress::fail).
    fn end(&self, ok: bool) {
        if ok {
            self.finish()
        } else {
            self.fail()
        }
    }
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
