//! API surface: capacities, Send/Sync, Debug, timeouts, statics.

use std::time::Duration;

use pc_core::{CapacityError, HeapRing, PopError, PushError, Ring};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn send_and_sync_when_values_are_send() {
    assert_send_sync::<Ring<u64, 4>>();
    assert_send_sync::<HeapRing<String>>();
    // A `Cell` is Send but not Sync: the ring only moves values, so it is still Sync.
    assert_send_sync::<Ring<std::cell::Cell<u8>, 4>>();
}

fn assert_unwind_safe<T: std::panic::UnwindSafe>() {}

#[test]
fn unwind_safe_when_values_are() {
    // Catching a panic around code that uses a ring must not need `AssertUnwindSafe`
    // (the heap storage once lost this by holding a raw pointer).
    assert_unwind_safe::<Ring<u64, 4>>();
    assert_unwind_safe::<HeapRing<String>>();
}

fn assert_ref_unwind_safe<T: std::panic::RefUnwindSafe>() {}

#[test]
fn a_shared_ring_crosses_catch_unwind_without_assert_unwind_safe() {
    assert_ref_unwind_safe::<Ring<u64, 4>>();
    assert_ref_unwind_safe::<HeapRing<String>>();
    assert_ref_unwind_safe::<pc_core::Lanes<u64, 2, 4>>();
    assert_ref_unwind_safe::<pc_core::HeapLanes<String>>();
    let ring = HeapRing::<u64>::with_capacity(4);
    let caught = std::panic::catch_unwind(|| {
        ring.try_push(1).unwrap();
        panic!("a caller's panic");
    });
    assert!(caught.is_err());
    assert_eq!(ring.try_pop(), Ok(1), "the value pushed before the panic");
}

#[test]
fn heap_capacity_must_be_a_power_of_two_of_at_least_two() {
    for bad in [0, 1, 3, 6, 1000, usize::MAX] {
        assert_eq!(
            HeapRing::<u8>::try_with_capacity(bad).unwrap_err(),
            CapacityError::Invalid(bad)
        );
    }
    for good in [2, 4, 1024] {
        assert_eq!(
            HeapRing::<u8>::try_with_capacity(good).unwrap().capacity(),
            good
        );
    }
    // The largest capacity is valid; slots of a value this large cannot be described.
    let max = pc_core::ring::MAX_CAPACITY;
    assert_eq!(
        HeapRing::<[u8; 1 << (usize::BITS - 8)]>::try_with_capacity(max).unwrap_err(),
        CapacityError::Alloc(max)
    );
    assert_eq!(
        HeapRing::<u8>::try_with_capacity(max * 2).unwrap_err(),
        CapacityError::Invalid(max * 2)
    );
}

#[test]
#[should_panic(expected = "must be a power of two")]
fn with_capacity_panics_on_unusable_capacity() {
    let _ = HeapRing::<u8>::with_capacity(3);
}

#[test]
fn debug_shows_capacity_len_closed() {
    let ring = Ring::<u8, 4>::new();
    ring.try_push(1).unwrap();
    assert_eq!(
        format!("{ring:?}"),
        "Ring { capacity: 4, len: 1, closed: false, .. }"
    );
    // Each type by its own name.
    let heap = HeapRing::<u8>::with_capacity(2);
    assert_eq!(
        format!("{heap:?}"),
        "HeapRing { capacity: 2, len: 0, closed: false, .. }"
    );
    let lanes = pc_core::HeapLanes::<u8>::with_capacities(&[2]);
    assert!(format!("{lanes:?}").starts_with("HeapLanes { lanes: 1, "));
    let lanes = pc_core::Lanes::<u8, 1, 2>::new();
    assert!(format!("{lanes:?}").starts_with("Lanes { lanes: 1, "));
    assert_eq!(format!("{:?}", PushError::Full(1)), "Full(..)");
    assert_eq!(
        PopError::Closed.to_string(),
        "pop from a closed and drained ring"
    );
}

#[test]
fn timeouts_report_full_and_empty() {
    let ring = HeapRing::<u8>::with_capacity(2);
    assert_eq!(
        ring.pop_timeout(Duration::from_millis(1)),
        Err(PopError::Empty)
    );
    let mut out = Vec::new();
    assert_eq!(
        ring.pop_batch_timeout(&mut out, 4, Duration::ZERO),
        Err(PopError::Empty)
    );
    ring.push(1).unwrap();
    ring.push(2).unwrap();
    assert_eq!(
        ring.push_timeout(3, Duration::from_millis(1)),
        Err(PushError::Full(3))
    );
    assert_eq!(ring.pop_timeout(Duration::from_millis(1)), Ok(1));
    ring.close();
    assert_eq!(
        ring.push_timeout(4, Duration::from_secs(1)),
        Err(PushError::Closed(4))
    );
    assert_eq!(
        ring.pop_batch_timeout(&mut out, 4, Duration::from_secs(1)),
        Ok(1)
    );
    assert_eq!(
        ring.pop_timeout(Duration::from_secs(1)),
        Err(PopError::Closed)
    );
}

#[test]
fn lives_in_a_static() {
    static RING: Ring<&str, 2> = Ring::new();
    std::thread::spawn(|| RING.push("from another thread").unwrap())
        .join()
        .unwrap();
    assert_eq!(RING.try_pop(), Ok("from another thread"));
}

#[test]
fn zero_sized_values() {
    let ring = Ring::<(), 4>::new();
    for _ in 0..4 {
        ring.try_push(()).unwrap();
    }
    assert_eq!(ring.try_push(()), Err(PushError::Full(())));
    assert_eq!(ring.len(), 4);
    let mut n = 0;
    while ring.try_pop().is_ok() {
        n += 1;
    }
    assert_eq!(n, 4);
}

/// A heap ring, and heap lanes, of values larger than a thread's stack are built and dropped
/// in place: no value-sized temporary passes through the stack, in a debug build too (where
/// a frame holds every local, so moving one value through it would overflow a 256 KiB stack
/// and abort the process).
#[test]
fn heap_rings_of_values_larger_than_the_stack_are_built_in_place() {
    type Big = [u8; 1 << 20];
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            let ring = HeapRing::<Big>::try_with_capacity(4).expect("allocated");
            assert_eq!((ring.capacity(), ring.len()), (4, 0));
            let lanes = pc_core::HeapLanes::<Big>::with_capacities(&[2, 2]);
            assert!(lanes.is_empty());
        })
        .expect("spawn")
        .join()
        .expect("built without overflowing the stack");
}

/// A ring dropped while it holds values larger than the dropping thread's stack drops them
/// without a value-sized temporary on that stack, in a debug build too: in place where a
/// value lies aligned for its type, and through the heap where a packed slot holds it
/// misaligned (a type aligned past 4 bytes).
#[test]
#[cfg_attr(
    miri,
    ignore = "a megabyte value, written byte by byte, is minutes under miri"
)]
fn heap_rings_drop_values_larger_than_the_stack_without_moving_them_through_it() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    macro_rules! big {
        ($name:ident, $align:literal) => {
            #[repr(align($align))]
            struct $name([u8; 1 << 20]);
            impl Drop for $name {
                fn drop(&mut self) {
                    std::hint::black_box(&self.0);
                    DROPS.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
    }
    big!(Big4, 4);
    big!(Big8, 8);
    macro_rules! drop_on_a_small_stack {
        ($t:ident) => {{
            // Filled on a thread with room for a value, dropped on one without.
            let ring = std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn(|| {
                    let ring = HeapRing::<$t>::with_capacity(2);
                    assert!(ring.try_push($t([1; 1 << 20])).is_ok());
                    ring
                })
                .expect("spawn")
                .join()
                .expect("filled");
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || drop(ring))
                .expect("spawn")
                .join()
                .expect("dropped without overflowing the stack");
        }};
    }
    drop_on_a_small_stack!(Big4);
    drop_on_a_small_stack!(Big8);
    assert_eq!(DROPS.load(Ordering::Relaxed), 2);
}

/// A push error says what state the ring is in, not that a push was made: a wait for space
/// that times out returns one too, having pushed nothing.
#[test]
fn a_push_error_displays_the_rings_state() {
    let ring = HeapRing::<u32>::with_capacity(2);
    ring.try_push_batch(&mut (0..2)).unwrap();
    let full = ring.wait_space_timeout(Duration::ZERO).unwrap_err();
    assert_eq!(full.to_string(), "the ring is full");
    ring.close();
    assert_eq!(
        ring.try_push(9).unwrap_err().to_string(),
        "the ring is closed"
    );
}
