//! The constructors that panic on a bad argument report the caller's line, not pc-core's own
//! (`#[track_caller]`), so the message points at the code to fix. One test in its own binary:
//! it replaces the process's panic hook.

use std::sync::{Arc, Mutex};

use pc_core::{HeapLanes, HeapRing, TokenBucket};

/// The file a panic in `f` was reported at.
fn panic_file(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let seen = Arc::new(Mutex::new(String::new()));
    let hook_seen = Arc::clone(&seen);
    std::panic::set_hook(Box::new(move |info| {
        if let Some(at) = info.location() {
            *hook_seen.lock().unwrap() = at.file().to_owned();
        }
    }));
    let outcome = std::panic::catch_unwind(f);
    let _ = std::panic::take_hook();
    assert!(outcome.is_err(), "expected a panic");
    seen.lock().unwrap().clone()
}

#[test]
fn constructor_panics_point_at_the_caller() {
    let here = file!();
    assert_eq!(
        panic_file(|| drop(HeapRing::<u8>::with_capacity(1000))),
        here
    );
    assert_eq!(
        panic_file(|| drop(HeapLanes::<u8>::with_capacities(&[]))),
        here
    );
    assert_eq!(panic_file(|| drop(TokenBucket::per_second(0, 1))), here);
    assert_eq!(panic_file(|| drop(TokenBucket::per_minute(1, 0))), here);
    assert_eq!(
        panic_file(|| drop(TokenBucket::per_hour(1, u64::MAX))),
        here
    );
}
