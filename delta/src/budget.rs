//! A counting memory budget shared by worker threads: delta generation's bsdiff and xz
//! jobs, and the parts that `apply`, `verify` and `show` decompress in parallel.

use std::sync::{Condvar, Mutex};

/// A simple counting memory budget shared by the workers. Requests larger than the
/// whole budget are clamped, so one oversized job can still run (alone).
#[derive(Debug)]
pub(crate) struct Budget {
    total: u64,
    avail: Mutex<u64>,
    freed: Condvar,
}

impl Budget {
    pub(crate) fn new(total: u64) -> Budget {
        Budget {
            total,
            avail: Mutex::new(total),
            freed: Condvar::new(),
        }
    }
    /// Take `n` (clamped) if available now; returns the amount taken.
    pub(crate) fn try_acquire(&self, n: u64) -> Option<u64> {
        let n = n.min(self.total);
        let mut a = self.avail.lock().expect("budget lock");
        if *a >= n {
            *a -= n;
            Some(n)
        } else {
            None
        }
    }
    /// Wait for `n` (clamped); returns the amount taken.
    pub(crate) fn acquire(&self, n: u64) -> u64 {
        let n = n.min(self.total);
        let mut a = self.avail.lock().expect("budget lock");
        while *a < n {
            a = self.freed.wait(a).expect("budget lock");
        }
        *a -= n;
        n
    }
    /// Give back what an `acquire` returned.
    pub(crate) fn release(&self, taken: u64) {
        *self.avail.lock().expect("budget lock") += taken;
        self.freed.notify_all();
    }
}

/// What [`Budget::reserve`] took, given back when dropped.
pub struct Reserved<'a> {
    budget: &'a Budget,
    taken: u64,
}

impl Budget {
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Wait for `n` (clamped), held until the guard is dropped.
    pub(crate) fn reserve(&self, n: u64) -> Reserved<'_> {
        Reserved {
            budget: self,
            taken: self.acquire(n),
        }
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.budget.release(self.taken);
    }
}
