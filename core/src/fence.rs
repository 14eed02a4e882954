//! An asymmetric fence (feature `std`): a pair of a *light* and a *heavy* half that order like
//! two `SeqCst` fences, for a handshake whose one side runs on every operation and whose other
//! side runs rarely (ring/wait.rs: every push and pop against a thread about to sleep).
//!
//! # Guarantees
//! - For a store `S` before the light half and a load `L` after a `heavy()` in another thread (or
//!   the other way round), `L` sees `S`, or the matching load after the other half sees the
//!   matching store before this one: the store-buffering outcome (both loads miss both
//!   stores) cannot happen. That is all the ring's wake-up handshake needs.
//! - On Linux, once `register()` has returned true the light half is a compiler fence (no
//!   barrier instruction): `heavy()` calls `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`,
//!   during which the kernel makes every CPU running a thread of this process execute a full
//!   barrier, which is what a `SeqCst` fence on the light side would have provided. Until
//!   then the light half is a `SeqCst` fence. The caller keeps the answer where its
//!   operations already look (ring/wait.rs: a bit of the sleeper count), so an operation pays
//!   no extra load for it. The process registers once: when the first heap ring or lanes are
//!   built, or when the program calls [`prepare_fences`], or else at the first `register()` (a
//!   ring in a `static`: its first operation) or `heavy()`. Registering waits for an RCU grace
//!   period (milliseconds), which is why constructors pay it rather than the first push.
//!
//! # Non-guarantees
//! - Where the system call is missing or refused (kernels before 4.14, seccomp filters), on
//!   other systems and under miri, and in a process that called [`use_fence_instructions`]
//!   first, `register()` stays false and both halves are `SeqCst` fences: correct, and every
//!   operation then pays a barrier instruction. A filter installed after the process
//!   registered (build the rings, then sandbox) makes a later `heavy()` fail: the process then
//!   falls back to fences for good, and each sleeping side repairs its handshake on its next
//!   sleep, which for that once lasts at most a millisecond before it looks again and passes
//!   a wake-up on if another slot is ready (ring/wait.rs, `park`).
//! - `heavy()` costs a system call and an interrupt of every CPU running this process: a few
//!   microseconds. Only threads about to sleep pay it.

#[cfg(all(target_os = "linux", not(miri)))]
use core::sync::atomic::AtomicU8;
use core::sync::atomic::{Ordering, fence};

/// Not decided yet: both halves fence until `prepare`, `register` or `heavy` decides.
#[cfg(all(target_os = "linux", not(miri)))]
const UNKNOWN: u8 = 0;
/// Registered for expedited private membarriers: the light half is a compiler fence.
#[cfg(all(target_os = "linux", not(miri)))]
const EXPEDITED: u8 = 1;
/// Both halves are `SeqCst` fences: the system call is unavailable, or the process chose
/// fences ([`use_fence_instructions`]).
#[cfg(all(target_os = "linux", not(miri)))]
const FENCES: u8 = 2;

/// Which of the above this process uses. Invariant: it leaves `UNKNOWN` once, by a CAS;
/// `EXPEDITED` is set only after the registration succeeded, and changes only to `FENCES`,
/// once, when the kernel refuses a barrier to the registered process (`heavy`).
#[cfg(all(target_os = "linux", not(miri)))]
static STRATEGY: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Whether the light half may be a compiler fence: registers the process first if nobody has
/// decided yet, then says whether it is registered. While true, every `heavy()` interrupts
/// every CPU running this process; if the kernel starts refusing that (see `heavy`), it turns
/// false for good, and the `heavy()` that found out returns false. While false, the light
/// half must be a `SeqCst` fence.
#[inline]
pub(crate) fn register() -> bool {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        // `decide` returns EXPEDITED, once set, to every thread, also to one that reads the
        // strategy late as UNKNOWN (it registers again, or its CAS finds EXPEDITED): so every
        // heavy half after this one interrupts this CPU, and a thread that skips its barrier
        // on the strength of this answer pairs with those.
        decide() == EXPEDITED
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    false
}

/// The heavy half (see the module docs). Returns true if it was the barrier on every CPU
/// running this process, false if it was a `SeqCst` fence, which pairs only with a light half
/// that was a `SeqCst` fence too.
///
/// If the kernel refuses the barrier to a registered process (a seccomp filter installed
/// after the registration), the process falls back to fences for good: `register()` returns
/// false from then on. Wakers that skipped their fence on the strength of an earlier `true`
/// may then have missed a sleeper; the caller, told `false`, makes up for that (ring/wait.rs,
/// `park`).
#[inline]
pub(crate) fn heavy() -> bool {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        if decide() == EXPEDITED {
            // The barrier on every CPU running this process. It fails if this process is not
            // registered (the registration belongs to the address space: a process that
            // inherited `STRATEGY` without it), which registering again fixes, or if the
            // kernel now refuses the call.
            if membarrier(CMD_PRIVATE_EXPEDITED) == 0
                || (membarrier(CMD_REGISTER_PRIVATE_EXPEDITED) == 0
                    && membarrier(CMD_PRIVATE_EXPEDITED) == 0)
            {
                return true;
            }
            // Relaxed: see `register`. Only ever from EXPEDITED to FENCES.
            let _ =
                STRATEGY.compare_exchange(EXPEDITED, FENCES, Ordering::Relaxed, Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
        false
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    {
        fence(Ordering::SeqCst);
        false
    }
}

/// Makes the wake-up handshake of every ring and lanes in this process a `SeqCst` fence on
/// both sides, never `membarrier(2)`, if the process has not decided yet. Returns whether
/// fences are what the process uses now.
///
/// # Guarantees
/// - Blocking operations stay exactly as correct: no wake-up is lost with a fence on both
///   sides (the loom models check the handshake in this very form).
/// - Once this returns `true`, no later operation of pc-core in this process calls
///   `membarrier`: a thread about to sleep issues a fence instead, and so does every
///   operation that publishes or frees slots (per call an out-of-line call, a barrier
///   instruction and a second load, where the default costs a compiler fence).
///   (A thread that was already registering when the choice was made finishes its calls:
///   choose before any ring is built or used, as below.)
/// - `true` wherever `membarrier` is not used anyway (other systems, kernels without it, a
///   seccomp filter that refuses it, miri).
///
/// # Non-guarantees
/// - No effect once the process has decided, which building a [`HeapRing`](crate::HeapRing)
///   or [`HeapLanes`](crate::HeapLanes) does, as does the first operation on any other ring
///   or lanes (in a `static`, on the stack, or split with `into_split`): call it before them.
///   It then returns `false` (membarrier stays in use).
///
/// When to prefer it: when the ring's calls are batches, so the barrier is paid once per batch,
/// and threads sleep and wake often, above all in virtual machines, where `membarrier`
/// interrupts every other CPU running the process and waits for each (`docs/performance-log.md`,
/// "wake-ups that cost less", for what it measured). `pc-host` calls it before building its queue.
///
/// ```
/// use pc_core::{HeapRing, PopError};
///
/// assert!(pc_core::use_fence_instructions()); // before any ring: in effect
/// let ring = HeapRing::<u32>::with_capacity(8);
/// std::thread::scope(|s| {
///     let consumer = s.spawn(|| ring.pop()); // may sleep; the push below wakes it
///     ring.push(7).unwrap();
///     assert_eq!(consumer.join().unwrap(), Ok(7));
/// });
/// assert!(pc_core::use_fence_instructions()); // still in effect
/// ring.close();
/// assert_eq!(ring.try_pop(), Err(PopError::Closed));
/// ```
pub fn use_fence_instructions() -> bool {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        // Relaxed: the value itself is all that is shared (see `register`). A thread that still
        // reads UNKNOWN goes through `decide`, whose CAS then finds FENCES.
        match STRATEGY.compare_exchange(UNKNOWN, FENCES, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => true,
            Err(decided) => decided == FENCES,
        }
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    true
}

/// Decides now how the wake-up handshake of every ring and lanes in this process fences, if
/// the process has not decided yet, and returns whether it uses `membarrier(2)` (`false`:
/// fence instructions on both sides, see [`use_fence_instructions`]).
///
/// Deciding registers the process with the kernel, which waits for an RCU grace period:
/// milliseconds. Building a [`HeapRing`](crate::HeapRing) or
/// [`HeapLanes`](crate::HeapLanes) decides; otherwise the first operation on a ring in a
/// `static` (or on the stack) does, and pays that wait in the middle of the program's work.
/// Call this at start-up to pay it there instead.
///
/// # Guarantees
/// - Once it has returned, no ring or lanes operation of this process waits for the
///   registration (a child made by `fork` is not registered: its first sleep registers it).
/// - Its answer stands for the life of the process, except that a seccomp filter installed
///   later, which refuses `membarrier`, turns the process to fences for good (see the
///   module's non-guarantees).
///
/// ```
/// use pc_core::Ring;
///
/// static RING: Ring<u32, 64> = Ring::new();
///
/// let membarrier = pc_core::prepare_fences(); // at start-up: the first push waits for nothing
/// assert_eq!(pc_core::use_fence_instructions(), !membarrier, "decided already");
/// RING.push(1).unwrap();
/// assert_eq!(RING.pop(), Ok(1));
/// ```
pub fn prepare_fences() -> bool {
    #[cfg(all(target_os = "linux", not(miri)))]
    return decide() == EXPEDITED;
    #[cfg(not(all(target_os = "linux", not(miri))))]
    false
}

/// Whether this process has decided how to fence (registered, or found it cannot).
#[cfg(test)]
pub(crate) fn decided() -> bool {
    #[cfg(all(target_os = "linux", not(miri)))]
    return STRATEGY.load(Ordering::Relaxed) != UNKNOWN;
    #[cfg(not(all(target_os = "linux", not(miri))))]
    true
}

/// Whether the kernel offers the expedited private `membarrier` (asked without registering).
#[cfg(test)]
pub(crate) fn available() -> bool {
    #[cfg(all(target_os = "linux", not(miri)))]
    return offered();
    #[cfg(not(all(target_os = "linux", not(miri))))]
    false
}

/// Whether the kernel offers the expedited private `membarrier` and its registration.
#[cfg(all(target_os = "linux", not(miri)))]
fn offered() -> bool {
    let wanted = libc::c_long::from(CMD_PRIVATE_EXPEDITED | CMD_REGISTER_PRIVATE_EXPEDITED);
    let supported = membarrier(CMD_QUERY);
    supported >= 0 && supported & wanted == wanted
}

/// `membarrier` commands (the kernel's ABI, `linux/membarrier.h`; libc does not name them).
#[cfg(all(target_os = "linux", not(miri)))]
const CMD_QUERY: libc::c_int = 0;
#[cfg(all(target_os = "linux", not(miri)))]
const CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
#[cfg(all(target_os = "linux", not(miri)))]
const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

/// The strategy, registering on first use. Returns `EXPEDITED` or `FENCES`.
#[cfg(all(target_os = "linux", not(miri)))]
#[cold]
#[inline(never)]
fn decide() -> u8 {
    // Relaxed: the value itself is all that is shared (see `register`).
    let known = STRATEGY.load(Ordering::Relaxed);
    if known != UNKNOWN {
        return known;
    }
    let chosen = if offered() && membarrier(CMD_REGISTER_PRIVATE_EXPEDITED) == 0 {
        EXPEDITED
    } else {
        FENCES
    };
    // Relaxed: see `register`; a racing thread decided the same (registration is per process).
    match STRATEGY.compare_exchange(UNKNOWN, chosen, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => chosen,
        Err(other) => other,
    }
}

/// The system call; its result (negative on failure).
#[cfg(all(target_os = "linux", not(miri)))]
fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: `membarrier(cmd, flags = 0, cpu_id = 0)` reads and writes no memory of ours; an
    // unsupported command only returns an error.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_heavy_half_decides_the_strategy_once() {
        super::heavy();
        #[cfg(all(target_os = "linux", not(miri)))]
        {
            let decided = super::STRATEGY.load(core::sync::atomic::Ordering::Relaxed);
            assert_ne!(decided, super::UNKNOWN);
            assert_eq!(super::decide(), decided);
            assert_eq!(super::register(), decided == super::EXPEDITED);
        }
    }
}
