//! A heap ring whose allocations fail: `try_with_capacity` reports `CapacityError::Alloc` and
//! leaks nothing, whichever of its two allocations (the slots, the free stamps) fails.
//!
//! One test in its own binary, because it installs a global allocator that fails on request.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use pc_core::{CapacityError, HeapRing};

/// The alignment of the ring's arrays (the test counts only allocations aligned so).
const RING_ALIGN: usize = 128;

/// Passes everything to `System`, but fails the `FAIL_AT`-th 128-aligned allocation (counting
/// from 1; 0: none) and counts the 128-aligned allocations still live.
struct Failing;

static SEEN: AtomicUsize = AtomicUsize::new(0);
static FAIL_AT: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` with the same arguments, or returns null (an
// allocation failure, which `GlobalAlloc::alloc` may always report).
unsafe impl GlobalAlloc for Failing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() == RING_ALIGN {
            let n = SEEN.fetch_add(1, Ordering::SeqCst) + 1;
            if n == FAIL_AT.load(Ordering::SeqCst) {
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
fn a_failed_allocation_is_an_error_and_leaks_nothing() {
    // The test harness keeps 128-aligned allocations of its own (its channels' padded
    // counters): count from here.
    let before = LIVE.load(Ordering::SeqCst);
    let live = || LIVE.load(Ordering::SeqCst) - before;
    for fail_at in [1, 2] {
        SEEN.store(0, Ordering::SeqCst);
        FAIL_AT.store(fail_at, Ordering::SeqCst);
        let result = HeapRing::<u64>::try_with_capacity(1024);
        FAIL_AT.store(0, Ordering::SeqCst);
        assert_eq!(
            result.err(),
            Some(CapacityError::Alloc(1024)),
            "allocation {fail_at} failed"
        );
        assert_eq!(
            SEEN.load(Ordering::SeqCst),
            fail_at,
            "no allocation after the failed one"
        );
        assert_eq!(live(), 0, "allocation {fail_at} failed: nothing kept");
    }
    // And with nothing failing: both arrays live while the ring does, freed with it.
    SEEN.store(0, Ordering::SeqCst);
    let ring = HeapRing::<u64>::try_with_capacity(1024).expect("no failure asked for");
    assert_eq!((SEEN.load(Ordering::SeqCst), live()), (2, 2));
    drop(ring);
    assert_eq!(live(), 0);
}
