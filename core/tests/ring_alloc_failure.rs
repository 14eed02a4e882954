//! A heap ring whose allocation fails: `try_with_capacity` reports `CapacityError::Alloc` and
//! keeps nothing; one that succeeds frees its slots when dropped.
//!
//! One test in its own binary, because it installs a global allocator that fails on request.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};

use pc_core::{CapacityError, HeapRing};

/// The alignment of a heap ring's slots (the test counts only allocations aligned so).
const RING_ALIGN: usize = 128;

/// Passes everything to `System`, but fails the 128-aligned allocations while `FAIL` is set,
/// and counts the 128-aligned allocations asked for and those still live.
struct Failing;

static FAIL: AtomicBool = AtomicBool::new(false);
static SEEN: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` with the same arguments, or returns null (an
// allocation failure, which `GlobalAlloc::alloc` may always report).
unsafe impl GlobalAlloc for Failing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() == RING_ALIGN {
            SEEN.fetch_add(1, Ordering::SeqCst);
            if FAIL.load(Ordering::SeqCst) {
                return std::ptr::null_mut();
            }
            LIVE.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: forwarded as given.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.align() == RING_ALIGN {
            LIVE.fetch_sub(1, Ordering::SeqCst);
        }
        // SAFETY: `ptr` came from `System.alloc` with this layout (above).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Failing = Failing;

#[test]
fn a_failed_allocation_is_an_error_and_keeps_nothing() {
    // The test harness keeps 128-aligned allocations of its own (its channels' padded
    // counters): count from here.
    let before = LIVE.load(Ordering::SeqCst);
    let live = || LIVE.load(Ordering::SeqCst) - before;
    SEEN.store(0, Ordering::SeqCst);
    FAIL.store(true, Ordering::SeqCst);
    let result = HeapRing::<u64>::try_with_capacity(1024);
    FAIL.store(false, Ordering::SeqCst);
    assert_eq!(result.err(), Some(CapacityError::Alloc(1024)));
    assert_eq!(SEEN.load(Ordering::SeqCst), 1, "asked once");
    assert_eq!(live(), 0, "nothing kept");
    // And with nothing failing: the slots live while the ring does, freed with it.
    let ring = HeapRing::<u64>::try_with_capacity(1024).expect("no failure asked for");
    assert_eq!(live(), 1);
    drop(ring);
    assert_eq!(live(), 0);
}
