//! A heap ring whose allocation fails: `try_with_capacity` reports `CapacityError::Alloc` and
//! keeps nothing; one that succeeds frees its slots when dropped. Heap lanes: a failed table
//! is `AllocLanes`, a failed lane is `Alloc` of that lane, and the lanes before it are freed.
//!
//! Tests in their own binary, because it installs a global allocator that fails on request;
//! they take turns (`TURN`), as they share its counters.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use pc_core::{CapacityError, HeapLanes, HeapRing};

/// The alignment of a heap ring's slots, and of a table of heap rings (their indices are
/// cache-padded): the tests count only allocations aligned so.
const RING_ALIGN: usize = 128;

/// Passes everything to `System`, but fails the 128-aligned allocations from the `FAIL_FROM`-th
/// (counting from 0) on, and counts the 128-aligned allocations asked for and those still live.
struct Failing;

static FAIL_FROM: AtomicUsize = AtomicUsize::new(usize::MAX);
static SEEN: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static TURN: Mutex<()> = Mutex::new(());

// SAFETY: every call is forwarded to `System` with the same arguments, or returns null (an
// allocation failure, which `GlobalAlloc::alloc` may always report).
unsafe impl GlobalAlloc for Failing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() == RING_ALIGN {
            if SEEN.fetch_add(1, Ordering::SeqCst) >= FAIL_FROM.load(Ordering::SeqCst) {
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

/// Runs `f` with the 128-aligned allocations failing from the `fail_from`-th on; returns its
/// result, how many such allocations it asked for, and how many of them it left live.
fn failing_from<R>(fail_from: usize, f: impl FnOnce() -> R) -> (R, usize, isize) {
    // The test harness keeps 128-aligned allocations of its own (its channels' padded
    // counters): count from here.
    let before = LIVE.load(Ordering::SeqCst);
    SEEN.store(0, Ordering::SeqCst);
    FAIL_FROM.store(fail_from, Ordering::SeqCst);
    let result = f();
    FAIL_FROM.store(usize::MAX, Ordering::SeqCst);
    let seen = SEEN.load(Ordering::SeqCst);
    (result, seen, LIVE.load(Ordering::SeqCst) - before)
}

#[test]
fn a_failed_allocation_is_an_error_and_keeps_nothing() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (result, seen, live) = failing_from(0, || HeapRing::<u64>::try_with_capacity(1024));
    assert_eq!(result.err(), Some(CapacityError::Alloc(1024)));
    assert_eq!((seen, live), (1, 0), "asked once, nothing kept");
    // And with nothing failing: the slots live while the ring does, freed with it.
    let (ring, _, live) = failing_from(usize::MAX, || HeapRing::<u64>::try_with_capacity(1024));
    assert_eq!(live, 1);
    let (_, _, live) = failing_from(usize::MAX, || drop(ring));
    assert_eq!(live, -1);
}

#[test]
fn heap_lanes_report_which_allocation_failed_and_free_the_lanes_made_before_it() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let build = || HeapLanes::<u64>::try_with_capacities(&[8, 16, 32]);
    // The table of lanes is asked for first.
    let (result, seen, live) = failing_from(0, build);
    assert_eq!(result.err(), Some(CapacityError::AllocLanes(3)));
    assert_eq!((seen, live), (1, 0));
    // Then each lane's slots, in order: the second lane fails, after the table and lane 0.
    let (result, seen, live) = failing_from(2, build);
    assert_eq!(result.err(), Some(CapacityError::Alloc(16)));
    assert_eq!((seen, live), (3, 0), "the table and lane 0 freed");
    // Nothing failing: the table and three lanes live while the lanes do.
    let (lanes, seen, live) = failing_from(usize::MAX, build);
    assert!(lanes.is_ok());
    assert_eq!((seen, live), (4, 4));
}
