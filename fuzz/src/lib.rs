//! What every fuzz target shares: an allocator that refuses single allocations over
//! 512 MB. libFuzzer's `-malloc_limit_mb` needs a sanitizer's allocator hooks, and the
//! targets are built without one (`ci/fuzz.sh`); `-rss_limit_mb` alone misses a huge
//! allocation that is never touched (a `Vec::with_capacity` from a size field), which
//! on a machine without overcommit is an abort all the same. Each target links this
//! crate (`use arbor_fuzz as _;`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;

/// The same limit as `-rss_limit_mb=512`.
pub const MAX_ALLOCATION: usize = 512 << 20;

/// [`System`], aborting (a crash libFuzzer records with its input) on any single
/// allocation larger than [`MAX_ALLOCATION`].
pub struct Capped;

fn check(size: usize) {
    if size > MAX_ALLOCATION {
        // No formatting: nothing may allocate here.
        let _ = std::io::stderr().write_all(b"==arbor-fuzz== single allocation over 512 MB\n");
        std::process::abort();
    }
}

// SAFETY: every method checks the size, then forwards to `System` with the caller's
// arguments unchanged, so `System`'s guarantees are the caller's.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;
