//! Builds only if pc-core (default features off) and all its dependencies are `no_std`; the
//! ring, the lanes and the token bucket, on every target CI builds it for.
#![no_std]

use pc_core::{PopError, PushError, Ring};

/// A ring in a `static`: no allocator, no constructor at run time.
static RING: Ring<u32, 16> = Ring::new();

/// Moves a value through the static ring, so the code is really compiled and linked.
pub fn round_trip(value: u32) -> Result<u32, PopError> {
    match RING.try_push(value) {
        Ok(()) | Err(PushError::Full(_)) | Err(PushError::Closed(_)) => {}
    }
    RING.try_pop()
}

/// Priority lanes in a `static`: two lanes of 8 slots, no allocator.
static LANES: pc_core::Lanes<u32, 2, 8> = pc_core::Lanes::new().with_starvation_guard(3);

/// Moves a value through the static lanes, so the code is really compiled and linked.
pub fn lanes_round_trip(lane: usize, value: u32) -> Result<(usize, u32), PopError> {
    match LANES.try_push(lane % 2, value) {
        Ok(()) | Err(PushError::Full(_)) | Err(PushError::Closed(_)) => {}
    }
    LANES.try_pop_lane()
}

/// A token bucket in a `static`: on targets without 64-bit atomics (thumbv7em), its word is
/// portable-atomic's (see Cargo.toml), so the bucket is built for every target CI builds.
static LIMIT: pc_core::TokenBucket = pc_core::TokenBucket::per_second(1_000, 10);

/// Takes one token at `now` (caller's nanoseconds), so the bucket is compiled and linked.
pub fn take(now: u64) -> bool {
    LIMIT.try_acquire(1, now).is_ok()
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
