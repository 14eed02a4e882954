//! The one concurrency facade.
//!
//! Only this file names `core::sync::atomic`, `loom` or `portable-atomic`, and every spin or
//! yield in the crate goes through it. That is what lets the loom suite (built with
//! `RUSTFLAGS="--cfg loom"`) swap every atomic, cell and spin for loom's model-checked versions
//! without touching the algorithms.
//!
//! - `cfg(loom)`: loom's atomics, `UnsafeCell`, yields, and the `Mutex` and `Condvar` that
//!   blocked threads sleep on (so the wake-up protocol is model-checked too); no time, so no
//!   deadlines and no spinning before a thread sleeps.
//! - feature `portable-atomic`: `portable_atomic`'s types (for targets without native 64-bit or
//!   CAS atomics; configure that crate's own features for your target).
//! - otherwise: `core::sync::atomic`, and with `std` its `Mutex`, `Condvar` and `Instant`.

#[cfg(all(not(loom), not(feature = "portable-atomic")))]
pub(crate) use core::sync::atomic::AtomicU32;
#[cfg(all(not(loom), not(feature = "portable-atomic"), target_has_atomic = "64"))]
#[allow(unused_imports)] // used by the token bucket
pub(crate) use core::sync::atomic::AtomicU64;
#[cfg(all(not(loom), not(feature = "portable-atomic")))]
pub(crate) use core::sync::atomic::{AtomicUsize, Ordering};
#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(all(not(loom), feature = "portable-atomic"))]
#[allow(unused_imports)]
pub(crate) use portable_atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// The lock and condition variable a blocked thread sleeps on (ring/wait.rs).
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(all(feature = "std", not(loom)))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

/// A deadline for a blocking operation: std's `Instant`.
#[cfg(all(feature = "std", not(loom)))]
pub(crate) use std::time::Instant;

/// Under loom there is no time, so no deadline can exist: an uninhabited stand-in lets the
/// blocking code keep one body for both builds.
#[cfg(loom)]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Instant {}

/// Whether `deadline` has passed.
#[cfg(any(feature = "std", loom))]
#[inline]
pub(crate) fn deadline_passed(deadline: Instant) -> bool {
    #[cfg(not(loom))]
    {
        Instant::now() >= deadline
    }
    #[cfg(loom)]
    match deadline {}
}

/// How far off a wait's deadline must be for the wait to yield (`Snooze::snooze_before`):
/// about a scheduler slice, the longest a yield may keep a thread from running.
#[cfg(all(feature = "std", not(loom)))]
pub(crate) const YIELD_HORIZON: core::time::Duration = core::time::Duration::from_millis(2);

/// Whether `deadline` is less than [`YIELD_HORIZON`] away (or past).
#[cfg(all(feature = "std", not(loom)))]
fn near(deadline: Instant) -> bool {
    deadline.saturating_duration_since(Instant::now()) < YIELD_HORIZON
}

/// `now + timeout`, saturating far in the future instead of overflowing: the deadline of a
/// blocking call's timeout.
#[cfg(all(feature = "std", not(loom)))]
pub(crate) fn deadline_after(timeout: core::time::Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + core::time::Duration::from_secs(u32::MAX.into()))
}

/// Sleeps on `cond` (releasing `guard`'s lock meanwhile) until notified, a spurious wake-up, or
/// `deadline`. Returns the guard and whether the deadline has passed.
#[cfg(any(feature = "std", loom))]
pub(crate) fn wait_until<'a, T>(
    cond: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
) -> (MutexGuard<'a, T>, bool) {
    use std::sync::PoisonError;
    match deadline {
        None => (
            cond.wait(guard).unwrap_or_else(PoisonError::into_inner),
            false,
        ),
        #[cfg(not(loom))]
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (guard, true);
            }
            let (guard, _) = cond
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner);
            (guard, deadline_passed(deadline))
        }
        #[cfg(loom)]
        Some(deadline) => match deadline {},
    }
}

/// The waker's half of the asymmetric fence once the process is registered
/// ([`register_fences`]): a compiler fence, no instruction (fence.rs). Under loom nothing,
/// because there the process is never registered and wakers always take [`waker_fence`].
#[cfg(any(feature = "std", loom))]
#[inline(always)]
pub(crate) fn light_fence() {
    #[cfg(not(loom))]
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// The waker's half of the handshake while the process is not (yet) registered: a `SeqCst`
/// fence, which loom models exactly. The mutant `waiter_no_fence` drops it (the waiter models
/// must then fail).
#[cfg(any(feature = "std", loom))]
#[inline]
pub(crate) fn waker_fence() {
    #[cfg(all(not(loom), not(pc_mutant = "waiter_no_fence")))]
    core::sync::atomic::fence(Ordering::SeqCst);
    #[cfg(all(loom, not(pc_mutant = "waiter_no_fence")))]
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// Whether every [`heavy_fence`] from now on interrupts every CPU running this process, so
/// that a waker may use [`light_fence`] instead of [`waker_fence`]. Registers the process first
/// if nobody has decided yet (a system call that can take milliseconds; heap constructors pay
/// it in [`prepare_fences`]). Once false after true, always false (the kernel refused a
/// barrier: see [`heavy_fence`]). Never under loom.
#[cfg(any(feature = "std", loom))]
#[inline]
pub(crate) fn register_fences() -> bool {
    #[cfg(not(loom))]
    return crate::fence::register();
    #[cfg(loom)]
    false
}

/// The slow half of the asymmetric fence (see [`light_fence`]): a system call on Linux, paid
/// only by a thread about to sleep.
///
/// Returns true if it was a barrier on every CPU running the process (which pairs with a
/// [`light_fence`]), false if it was a `SeqCst` fence (which pairs only with [`waker_fence`]).
#[cfg(any(feature = "std", loom))]
#[inline]
pub(crate) fn heavy_fence() -> bool {
    #[cfg(not(loom))]
    return crate::fence::heavy();
    #[cfg(loom)]
    {
        loom::sync::atomic::fence(Ordering::SeqCst);
        false
    }
}

/// Pays the asymmetric fence's one-time set-up now (a system call that can take milliseconds):
/// heap constructors call it, so that the first push or pop of a run does not.
#[cfg(all(feature = "std", not(loom)))]
pub(crate) fn prepare_fences() {
    crate::fence::prepare_fences();
}

/// Asks the CPU to start fetching the cache line holding `p` into its caches (x86-64
/// `PREFETCHT0`), so that a loop about to read a run of lines finds them arriving together
/// rather than missing on each in turn. A hint only: it never faults, whatever `p` is, and does
/// nothing elsewhere (other architectures, loom). A read prefetch on purpose: the write hint
/// (`PREFETCHW`, with `-C target-feature=+prfchw`) was slower in the 1P1C batch rows
/// (`docs/performance-log.md`, "What closed the gap").
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(all(test, not(loom)))]
    PREFETCHES.with(|n| n.set(n.get() + 1));
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    // SAFETY: `PREFETCHT0` is a hint: it reads no memory architecturally, never faults (any
    // address is allowed), and needs only SSE, which every x86-64 CPU has.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = p;
}

#[cfg(all(test, not(loom)))]
std::thread_local! {
    /// Test support: the yields of this thread through [`yield_now`].
    static YIELDS: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
    /// Test support: the prefetches this thread asked for.
    static PREFETCHES: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
    /// Test support: the most prefetches one run (one `prefetch_run` call) asked for.
    pub(crate) static PREFETCH_RUN_MOST: core::cell::Cell<usize> =
        const { core::cell::Cell::new(0) };
}

/// Test support: how many times this thread has yielded through [`yield_now`].
#[cfg(all(test, not(loom)))]
pub(crate) fn yields_on_this_thread() -> usize {
    YIELDS.with(core::cell::Cell::get)
}

/// Test support: counts the prefetches of one run into [`PREFETCH_RUN_MOST`] when dropped.
/// (Per run, not per operation: a claim that loses its CAS, as miri's weak CAS does at
/// random, scans and prefetches again.)
#[cfg(all(test, not(loom)))]
pub(crate) struct PrefetchRun(usize);

#[cfg(all(test, not(loom)))]
impl PrefetchRun {
    pub(crate) fn start() -> Self {
        Self(PREFETCHES.with(core::cell::Cell::get))
    }
}

#[cfg(all(test, not(loom)))]
impl Drop for PrefetchRun {
    fn drop(&mut self) {
        let n = PREFETCHES.with(core::cell::Cell::get) - self.0;
        PREFETCH_RUN_MOST.with(|most| most.set(most.get().max(n)));
    }
}

/// Whether this build has a 64-bit atomic for the token bucket.
#[allow(dead_code)]
pub(crate) const HAS_ATOMIC_U64: bool = cfg!(any(
    loom,
    feature = "portable-atomic",
    target_has_atomic = "64"
));

/// Declares a `const fn`, except under loom, whose atomics have no `const` constructors.
///
/// One body serves both builds, so the loom suite checks exactly the code users run.
macro_rules! const_fn_unless_loom {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$attr])* $vis const fn $($rest)*
        #[cfg(loom)]
        $(#[$attr])* $vis fn $($rest)*
    };
}
pub(crate) use const_fn_unless_loom;

/// The cell that holds a slot's value: core's `UnsafeCell` (slots reach the value through a
/// raw pointer to it, ring/slot.rs), or under loom loom's, whose closure-based API lets the
/// models check every access to a value for races.
#[cfg(not(loom))]
pub(crate) use core::cell::UnsafeCell;
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// The integer a ring slot's stamp holds: `u32` where `usize` is 64 bits, so that a slot of a
/// `u64` takes 12 bytes where a `usize` stamp would make it 16 (ring/slot.rs says why a stamp
/// needs no more), else `usize`.
#[cfg(target_pointer_width = "64")]
pub(crate) type StampWord = u32;
/// The integer a ring slot's stamp holds (see the 64-bit definition).
#[cfg(not(target_pointer_width = "64"))]
pub(crate) type StampWord = usize;

/// A slot's stamp where slots are packed (64-bit targets, not loom): an atomic `u32` that asks
/// no more alignment than a `u32` (an `AtomicU32` is `repr(align(4))`, which a packed struct may
/// not hold). Only loads and stores: a stamp is never the target of a CAS.
#[cfg(all(not(loom), target_pointer_width = "64"))]
#[repr(transparent)]
pub(crate) struct StampCell(core::cell::UnsafeCell<u32>);

#[cfg(all(not(loom), target_pointer_width = "64"))]
impl StampCell {
    #[inline(always)]
    pub(crate) const fn new(value: u32) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    fn atomic(&self) -> &AtomicU32 {
        // SAFETY: the pointer is valid for as long as `&self`. It is aligned for the atomic: an
        // `AtomicU32` has the size and alignment of a `u32` (4) on every 64-bit target, and a
        // slot, aligned to 4, holds its stamp at offset 0 (ring/slot.rs). Every access to the
        // word is through this atomic but the initial value's, written before the slot is
        // shared.
        unsafe { AtomicU32::from_ptr(self.0.get()) }
    }

    #[inline(always)]
    pub(crate) fn load(&self, order: Ordering) -> u32 {
        self.atomic().load(order)
    }

    #[inline(always)]
    pub(crate) fn store(&self, value: u32, order: Ordering) {
        self.atomic().store(value, order);
    }
}

/// A slot's stamp where slots are not packed: the atomic itself.
#[cfg(all(not(loom), not(target_pointer_width = "64")))]
pub(crate) type StampCell = AtomicUsize;
/// A slot's stamp under loom: loom's atomic of the same width, so the models check the narrow
/// stamp's arithmetic too (a slot is not packed under loom: ring/slot.rs).
#[cfg(all(loom, target_pointer_width = "64"))]
pub(crate) type StampCell = AtomicU32;
/// A slot's stamp under loom (see the 64-bit definition).
#[cfg(all(loom, not(target_pointer_width = "64")))]
pub(crate) type StampCell = AtomicUsize;

/// Reads an atomic through `&mut`, where no other thread can touch it (e.g. in `Drop`).
#[inline]
pub(crate) fn load_exclusive(atomic: &mut AtomicUsize) -> usize {
    #[cfg(not(loom))]
    {
        *atomic.get_mut()
    }
    #[cfg(loom)]
    {
        atomic.with_mut(|v| *v)
    }
}

/// One step of busy waiting: a CPU pause hint (a loom yield under loom, so models terminate).
#[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))]
#[inline(always)]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Gives the rest of this time slice to another thread.
#[cfg(any(feature = "std", loom))]
#[inline]
pub(crate) fn yield_now() {
    #[cfg(all(test, not(loom)))]
    YIELDS.with(|n| n.set(n.get() + 1));
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// What a blocking operation does when a thread of its own side moves the index it was about
/// to move (a lost CAS): the first time, look again at once; from the second time in the same
/// operation on (a batch push's rounds and sleeps included), yield the CPU first.
///
/// Why: with more threads than cores, a thread that keeps losing to its own side is sharing the
/// machine with a winner that is running right now, on another core. Yielding hands this core
/// to whoever waits for it, most likely a thread of the other side, which then runs alongside
/// the winner (a producer and a consumer, each on a core, instead of two producers fighting
/// over one index while the consumers wait for a core). On a machine with a core to spare the
/// yield should return at once (`sched_yield` with nothing else to run; not measured here): a
/// system call per lost race after the first. The first loss is free, so two threads that meet
/// once pay nothing. (`docs/performance-log.md`, "The lost-race yield": the 2P2C row, measured
/// with and without.) Under loom the yield is loom's; no model has enough same-side threads to
/// lose twice.
#[cfg(any(feature = "std", loom))]
#[derive(Debug, Default)]
pub(crate) struct LostRaces {
    /// Whether this operation has lost a race before.
    lost: bool,
    /// Times it yielded (test support).
    #[cfg(test)]
    yields: u32,
}

#[cfg(any(feature = "std", loom))]
impl LostRaces {
    pub(crate) const fn new() -> Self {
        Self {
            lost: false,
            #[cfg(test)]
            yields: 0,
        }
    }

    /// Called on each lost race; yields from the second on.
    #[inline]
    pub(crate) fn lost(&mut self) {
        if !self.lost {
            self.lost = true;
        } else {
            #[cfg(test)]
            {
                self.yields += 1;
            }
            yield_now();
        }
    }
}

/// The adaptive wait used by every blocking operation: spin briefly with exponentially more
/// pause hints, then yield the CPU up to a [`YieldBudget`]'s worth of times, then tell the
/// caller to park.
///
/// On a machine with fewer cores than threads (2 cores here), pure spinning starves the very
/// thread we wait for; yielding lets it run, and parking stops burning a core when the wait is
/// long.
///
/// How long it spins, each thread learns for itself (a thread-local: no line shared with
/// other threads): a wait that spun all its steps and still had to yield or park (or ran out
/// of time after yielding) takes one step off the next wait's spins (down to one step, one
/// pause hint; a wait that parks again after a wake-up takes one off at each park); a wait that ends while spinning sets them back to the most (seven steps, 127
/// pause hints); every 16th wait spins the most whatever was learned, to find out whether
/// spinning pays again. A wait keeps the spins it started with after a wake-up. Why: spinning
/// pays only while the thread we wait for runs on another core. A producer and a consumer
/// taking turns on one core (more threads than cores) would otherwise spend about a third of
/// their time in spins that cannot end well, and a wait for a slow other side (a consumer
/// committing to a database) spins for nothing too.
///
/// Waits that take nothing use [`OneYielder`] instead. Under loom it says "park" at once:
/// spinning never changes what a model can reach, only how long loom takes to reach it, while
/// parking is exactly what the models check.
#[cfg(any(feature = "std", loom))]
#[derive(Debug)]
pub(crate) struct Backoff {
    /// Steps taken so far (spins, then yields).
    #[cfg(not(loom))]
    step: u32,
    /// Yields allowed after the spins, read from the side's budget when the first yield is
    /// due (again after each reset).
    #[cfg(not(loom))]
    yields: u32,
    /// Steps that spin in this wait, read from the thread's `SPINS` at its first step (kept
    /// across resets); `UNREAD` before.
    #[cfg(not(loom))]
    spins: u32,
}

/// What the one wait loop (`Waiters::wait`) asks of its backoff: [`Backoff`] for the waits
/// that take a slot, [`OneYielder`] for those that take nothing.
#[cfg(any(feature = "std", loom))]
pub(crate) trait Snooze<'a> {
    /// Waits a little; `false` once the caller should park.
    fn snooze(&mut self, budget: &'a YieldBudget) -> bool;
    /// [`snooze`](Self::snooze) for a wait with a deadline: `false` too where it would yield
    /// with the deadline less than [`YIELD_HORIZON`] away. A yield can hand the core to
    /// another runnable thread for a whole scheduler slice, which would end the wait that
    /// long after its deadline; the caller parks on a condition variable until the deadline
    /// instead, whose timed wait ends nearer to it.
    fn snooze_before(&mut self, budget: &'a YieldBudget, deadline: Option<Instant>) -> bool {
        let _ = deadline;
        self.snooze(budget)
    }
    /// Yields taken since the start or the last reset.
    fn yielded(&self) -> u32;
    /// Whether it yielded its whole budget (what the budget learns from when the wait then
    /// parks: a wait that parked early, near its deadline, teaches it nothing).
    fn yielded_all(&self) -> bool {
        false
    }
    /// Starts over, after a wake-up (the budget is read again).
    fn reset(&mut self);
    /// Gives back what the wait holds while it yields; called before it parks.
    fn leave(&mut self) {}
    /// The wait got what it waited for (`done`), or is about to park or out of time after
    /// yielding: teaches the thread's spin steps whether spinning paid.
    fn learn(&self, _done: bool) {}
}

#[cfg(loom)]
impl Backoff {
    pub(crate) const fn new() -> Self {
        Self {}
    }
}

#[cfg(loom)]
impl<'a> Snooze<'a> for Backoff {
    /// Under loom: park now.
    #[inline]
    fn snooze(&mut self, _budget: &'a YieldBudget) -> bool {
        false
    }

    #[inline]
    fn yielded(&self) -> u32 {
        0
    }

    #[inline]
    fn reset(&mut self) {}
}

#[cfg(all(feature = "std", not(loom)))]
impl Backoff {
    /// The most steps that spin, each doubling its pause hints (1, 2, .. 64).
    const MAX_SPINS: u32 = 7;
    /// The fewest.
    const MIN_SPINS: u32 = 1;
    /// Every this many waits of a thread, one spins the most whatever it learned.
    const SPIN_PROBE_EVERY: u32 = 16;
    /// `yields` before the budget was read, `spins` before the thread's steps were.
    const UNREAD: u32 = u32::MAX;

    pub(crate) const fn new() -> Self {
        Self {
            step: 0,
            yields: Self::UNREAD,
            spins: Self::UNREAD,
        }
    }

    /// The spin steps for a wait starting now: what this thread learned, or the most every
    /// [`SPIN_PROBE_EVERY`](Self::SPIN_PROBE_EVERY)th wait.
    fn spins_for_this_wait() -> u32 {
        SPINS.with(|s| {
            let (steps, waits) = s.get();
            let waits = waits.wrapping_add(1);
            s.set((steps, waits));
            if waits.is_multiple_of(Self::SPIN_PROBE_EVERY) {
                Self::MAX_SPINS
            } else {
                steps
            }
        })
    }

    /// Whether the next snooze would yield with `deadline` less than [`YIELD_HORIZON`] away
    /// (`Snooze::snooze_before`): its spins all taken (or its spin steps not read yet).
    fn yield_too_near(&self, deadline: Option<Instant>) -> bool {
        let spinning = self.spins == Self::UNREAD || self.step < self.spins;
        !spinning && deadline.is_some_and(near)
    }

    /// Waits a little. Returns `false` once spinning and yielding are exhausted and the caller
    /// should park, or when the yields are due and `may_yield` says no. Reads `budget` only
    /// once spinning is over: it sits in the cache line of the index the other side moves,
    /// which a wait that ends while spinning never needs to read.
    #[inline]
    fn snooze_if(&mut self, budget: &YieldBudget, may_yield: impl FnOnce() -> bool) -> bool {
        if self.spins == Self::UNREAD {
            self.spins = Self::spins_for_this_wait();
        }
        if self.step < self.spins {
            for _ in 0..1u32 << self.step {
                spin_hint();
            }
        } else {
            if self.yields == Self::UNREAD {
                if !may_yield() {
                    return false;
                }
                self.yields = budget.for_this_wait();
            }
            if self.step >= self.spins + self.yields {
                return false;
            }
            yield_now();
        }
        self.step += 1;
        true
    }
}

/// This thread's spin steps now (test support).
#[cfg(all(test, feature = "std", not(loom)))]
pub(crate) fn thread_spin_steps() -> u32 {
    SPINS.with(|s| s.get().0)
}

#[cfg(all(feature = "std", not(loom)))]
std::thread_local! {
    /// This thread's spin steps (what its waits learned: `Backoff::learn`) and its waits so
    /// far (for `Backoff::SPIN_PROBE_EVERY`).
    static SPINS: core::cell::Cell<(u32, u32)> =
        const { core::cell::Cell::new((Backoff::MAX_SPINS, 0)) };
}

#[cfg(all(feature = "std", not(loom)))]
impl<'a> Snooze<'a> for Backoff {
    #[inline]
    fn snooze(&mut self, budget: &'a YieldBudget) -> bool {
        self.snooze_if(budget, || true)
    }

    #[inline]
    fn snooze_before(&mut self, budget: &'a YieldBudget, deadline: Option<Instant>) -> bool {
        !self.yield_too_near(deadline) && self.snooze(budget)
    }

    #[inline]
    fn yielded(&self) -> u32 {
        self.step.saturating_sub(self.spins)
    }

    #[inline]
    fn yielded_all(&self) -> bool {
        self.yields != Self::UNREAD && self.step >= self.spins.saturating_add(self.yields)
    }

    #[inline]
    fn reset(&mut self) {
        self.step = 0;
        self.yields = Self::UNREAD;
    }

    /// A wait that got what it waited for while spinning sets the thread's spin steps back to
    /// the most; one that spun them all and still had to yield or park takes one off. A wait
    /// (or a round after a wake-up) that never snoozed teaches nothing: its first look found
    /// what it waited for, spins or not.
    #[inline]
    fn learn(&self, done: bool) {
        if self.step == 0 {
            return;
        }
        SPINS.with(|s| {
            let (steps, waits) = s.get();
            let steps = if done && self.step <= self.spins {
                Self::MAX_SPINS
            } else {
                steps.saturating_sub(1).max(Self::MIN_SPINS)
            };
            s.set((steps, waits));
        });
    }
}

/// The backoff of a wait that takes nothing (`wait_ready`): such waits all end on the same
/// ready slot, so one of them yields at a time. It yields only holding its side's yield turn
/// ([`YieldBudget::take_yield_turn`]) and parks once its spins are done otherwise; it gives the
/// turn back when it parks ([`Snooze::leave`]) or is dropped, however the wait ends (a panic
/// in the caller's attempt included). A type of its own, so that the waits that take a slot
/// carry no turn and no drop glue.
#[cfg(any(feature = "std", loom))]
#[derive(Debug)]
pub(crate) struct OneYielder<'a> {
    backoff: Backoff,
    /// The budget whose turn this wait holds now, to give back.
    turn: Option<&'a YieldBudget>,
}

#[cfg(any(feature = "std", loom))]
impl OneYielder<'_> {
    pub(crate) const fn new() -> Self {
        Self {
            backoff: Backoff::new(),
            turn: None,
        }
    }
}

#[cfg(any(feature = "std", loom))]
impl<'a> Snooze<'a> for OneYielder<'a> {
    #[cfg(loom)]
    #[inline]
    fn snooze(&mut self, budget: &'a YieldBudget) -> bool {
        self.backoff.snooze(budget)
    }

    #[cfg(not(loom))]
    #[inline]
    fn snooze_before(&mut self, budget: &'a YieldBudget, deadline: Option<Instant>) -> bool {
        !self.backoff.yield_too_near(deadline) && self.snooze(budget)
    }

    #[cfg(not(loom))]
    #[inline]
    fn snooze(&mut self, budget: &'a YieldBudget) -> bool {
        let turn = &mut self.turn;
        self.backoff.snooze_if(budget, || {
            let taken = budget.take_yield_turn();
            if taken {
                *turn = Some(budget);
            }
            taken
        })
    }

    #[inline]
    fn yielded(&self) -> u32 {
        self.backoff.yielded()
    }

    #[cfg(not(loom))]
    #[inline]
    fn yielded_all(&self) -> bool {
        self.backoff.yielded_all()
    }

    #[inline]
    fn reset(&mut self) {
        self.backoff.reset();
    }

    #[inline]
    fn learn(&self, done: bool) {
        self.backoff.learn(done);
    }

    #[inline]
    fn leave(&mut self) {
        if let Some(budget) = self.turn.take() {
            budget.give_back_yield_turn();
        }
    }
}

#[cfg(any(feature = "std", loom))]
impl Drop for OneYielder<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

/// How many times the waits on one side of a ring yield before they park, learned from how
/// that side's waits end: a wait that yielded its whole budget and then sleeps halves it; a
/// wait that yielded it all and, registering to sleep, found its slot ready after all doubles
/// it; a wait that got what it waited for after `k` yields raises it to `2k` if that is more.
/// Between [`MIN_YIELDS`](Self::MIN_YIELDS) and [`MAX_YIELDS`](Self::MAX_YIELDS), starting at
/// the most. Every [`PROBE_EVERY`](Self::PROBE_EVERY)th wait of a thread that gets as far as
/// yielding yields the most whatever the budget, so a budget that fell in a quiet phase learns
/// when yields pay again.
///
/// Why: with more threads than cores, a yield hands the core to a thread of the other side,
/// and the wait usually ends within the budget. With a core to spare, a yield returns at once,
/// and a wait for a slow producer (a paced source, a consumer busy committing) yields through
/// its budget and sleeps anyway: a system call per yield that bought nothing.
///
/// It also holds the side's yield turn ([`YieldBudget::take_yield_turn`]): one wait that
/// takes nothing yields at a time.
///
/// A hint, read and written with relaxed loads and stores: racing updates can lose one (a
/// halving may undo a raise, or the reverse), which changes how long some waits yield, never
/// whether a sleeper is woken (parking decides that). It sits in the cache line of the index
/// the other side moves, so it is written only when it changes, and the turn only by the waits
/// that take and give it back, on the slow path.
#[cfg(any(feature = "std", loom))]
#[derive(Debug)]
pub(crate) struct YieldBudget {
    /// 32 bits each: with the turn beside it, the budget takes the word it took alone, and
    /// the ring's `Side` stays within one cache line.
    #[cfg(not(loom))]
    yields: AtomicU32,
    /// 1 while a [`OneYielder`] wait of this side is yielding, else 0.
    #[cfg(not(loom))]
    yield_turn: AtomicU32,
}

#[cfg(loom)]
impl YieldBudget {
    pub(crate) const fn new() -> Self {
        Self {}
    }

    #[inline]
    pub(crate) fn give_back_yield_turn(&self) {}

    #[inline]
    pub(crate) fn slept(&self) {}

    #[inline]
    pub(crate) fn fell_short(&self) {}

    #[inline]
    pub(crate) fn paid(&self, _yields: u32) {}
}

#[cfg(all(feature = "std", not(loom)))]
std::thread_local! {
    /// This thread's waits that got as far as yielding (for [`YieldBudget::PROBE_EVERY`]).
    static YIELDING_WAITS: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
}

#[cfg(all(feature = "std", not(loom)))]
impl YieldBudget {
    /// The fewest yields a wait takes.
    pub(crate) const MIN_YIELDS: u32 = 4;
    /// The most: tens of microseconds on an idle core (`docs/performance-log.md`: the 2P2C row).
    pub(crate) const MAX_YIELDS: u32 = 58;
    /// One in this many of a thread's yielding waits yields the most.
    pub(crate) const PROBE_EVERY: u32 = 16;

    pub(crate) const fn new() -> Self {
        Self {
            yields: AtomicU32::new(Self::MAX_YIELDS),
            yield_turn: AtomicU32::new(0),
        }
    }

    /// Takes the side's yield turn for a [`OneYielder`] wait; `false` if another such
    /// wait holds it. Why one: such waits all end on the same event (a slot ready, which none
    /// of them takes), so a second one yielding beside the first only keeps a core busy; with
    /// more of them than cores they yield to one another. The others park at once and are
    /// woken as any sleeper is.
    #[inline]
    pub(crate) fn take_yield_turn(&self) -> bool {
        // Relaxed: a hint that decides only whether a wait yields before it parks, never
        // whether it is woken (parking decides that); nothing is published with it. The load
        // first: a turn already taken costs a read, not the line taken exclusively (it is the
        // line of the index the other side moves).
        self.yield_turn.load(Ordering::Relaxed) == 0
            && self
                .yield_turn
                .compare_exchange(0, 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Gives back the turn [`take_yield_turn`](Self::take_yield_turn) took.
    #[inline]
    pub(crate) fn give_back_yield_turn(&self) {
        // Relaxed: as in `take_yield_turn`.
        self.yield_turn.store(0, Ordering::Relaxed);
    }

    /// The budget now.
    #[inline]
    pub(crate) fn get(&self) -> u32 {
        // Relaxed: a hint; nothing is published with it.
        self.yields.load(Ordering::Relaxed)
    }

    /// The yields for a wait that has spun and is about to yield: the budget, or the most for
    /// every `PROBE_EVERY`th such wait of this thread.
    pub(crate) fn for_this_wait(&self) -> u32 {
        let n = YIELDING_WAITS.with(|w| {
            let n = w.get().wrapping_add(1);
            w.set(n);
            n
        });
        if n.is_multiple_of(Self::PROBE_EVERY) {
            Self::MAX_YIELDS
        } else {
            self.get()
        }
    }

    fn set(&self, yields: u32) {
        if yields != self.get() {
            // Relaxed: a hint (type docs).
            self.yields.store(yields, Ordering::Relaxed);
        }
    }

    /// A wait that yielded its budget is going to sleep.
    #[inline]
    pub(crate) fn slept(&self) {
        self.set((self.get() / 2).max(Self::MIN_YIELDS));
    }

    /// A wait that yielded its budget found its slot ready as it registered to sleep.
    #[inline]
    pub(crate) fn fell_short(&self) {
        self.set(self.get().saturating_mul(2).min(Self::MAX_YIELDS));
    }

    /// A wait got what it waited for after `yields` yields (since it began or last woke).
    #[inline]
    pub(crate) fn paid(&self, yields: u32) {
        let want = yields.saturating_mul(2).min(Self::MAX_YIELDS);
        if want > self.get() {
            self.set(want);
        }
    }
}

#[cfg(all(test, feature = "std", not(loom)))]
mod tests {
    use super::{Backoff, LostRaces, OneYielder, Snooze, YieldBudget};

    /// How many times `snooze` says "wait on" before "park", and how many of those yielded.
    fn snoozes<'a>(backoff: &mut impl Snooze<'a>, budget: &'a YieldBudget) -> (u32, u32) {
        let mut n = 0;
        while backoff.snooze(budget) {
            n += 1;
        }
        (n, backoff.yielded())
    }

    /// A budget halved down to its floor, as after four waits that slept.
    fn at_the_floor() -> YieldBudget {
        let budget = YieldBudget::new();
        for _ in 0..4 {
            budget.slept();
        }
        assert_eq!(budget.get(), YieldBudget::MIN_YIELDS);
        budget
    }

    #[test]
    fn a_yield_budget_halves_each_time_a_wait_parks_down_to_its_floor() {
        let budget = YieldBudget::new();
        let mut seen = [budget.get(); 6];
        for later in &mut seen[1..] {
            budget.slept();
            *later = budget.get();
        }
        assert_eq!(seen, [58, 29, 14, 7, 4, 4]);
    }

    #[test]
    fn a_wait_that_yields_and_gets_its_value_raises_the_budget_to_twice_its_yields() {
        let budget = at_the_floor();
        budget.paid(3);
        assert_eq!(budget.get(), 6);
        budget.paid(2);
        assert_eq!(budget.get(), 6, "a shorter wait does not lower it");
        budget.paid(40);
        assert_eq!(budget.get(), YieldBudget::MAX_YIELDS);
    }

    #[test]
    fn a_wait_that_found_its_slot_ready_as_it_registered_doubles_the_budget() {
        let budget = at_the_floor();
        budget.fell_short();
        assert_eq!(budget.get(), 8);
        for _ in 0..3 {
            budget.fell_short();
        }
        assert_eq!(budget.get(), YieldBudget::MAX_YIELDS);
    }

    /// A budget that fell to its floor still lets one in 16 of a thread's yielding waits yield
    /// the most, so it can learn that yields pay again.
    #[test]
    fn every_sixteenth_yielding_wait_of_a_thread_yields_the_most() {
        let budget = at_the_floor();
        // A new thread: its count of yielding waits starts at zero.
        let yields = std::thread::scope(|s| {
            s.spawn(|| {
                let mut yields = [0; 32];
                for y in &mut yields {
                    *y = snoozes(&mut Backoff::new(), &budget).1;
                }
                yields
            })
            .join()
            .expect("no panic")
        });
        for (i, y) in yields.iter().enumerate() {
            let probe = (i + 1) % 16 == 0;
            assert_eq!(*y, if probe { 58 } else { 4 }, "wait {i}");
        }
    }

    #[test]
    fn a_wait_spins_seven_steps_then_yields_its_budget_then_parks() {
        let budget = YieldBudget::new();
        assert_eq!(snoozes(&mut Backoff::new(), &budget), (7 + 58, 58));
        budget.slept();
        let mut backoff = Backoff::new();
        assert_eq!(snoozes(&mut backoff, &budget), (7 + 29, 29));
        backoff.reset();
        assert_eq!(backoff.yielded(), 0, "a reset starts with the spins again");
    }

    /// How many snoozes of a new wait spin: the ones before it reads the budget, which it
    /// does at its first yield (whatever `yielded` says).
    fn spins_of_a_wait(budget: &YieldBudget) -> (Backoff, u32) {
        let mut backoff = Backoff::new();
        let mut spins = 0;
        while backoff.yields == Backoff::UNREAD {
            assert!(backoff.snooze(budget));
            spins += 1;
        }
        (backoff, spins - 1)
    }

    /// Waits of one thread that spin all their steps in vain (they still yield or park) spin
    /// one step less each, down to one; a wait that gets its value while spinning sets the
    /// thread back to the most; and every 16th wait spins the most whatever was learned.
    #[test]
    fn a_thread_whose_spins_do_not_pay_spins_less_until_a_spin_pays() {
        let budget = YieldBudget::new();
        // A new thread: its spin steps start at the most, its count of waits at zero.
        std::thread::scope(|s| {
            s.spawn(|| {
                let in_vain = |done: bool| {
                    let (backoff, spins) = spins_of_a_wait(&budget);
                    backoff.learn(done);
                    spins
                };
                let spun: [u32; 8] = core::array::from_fn(|i| in_vain(i % 2 == 0));
                assert_eq!(
                    spun,
                    [7, 6, 5, 4, 3, 2, 1, 1],
                    "yielded, then got it or parked"
                );
                let mut paid = Backoff::new();
                assert!(paid.snooze(&budget), "one spin step");
                paid.learn(true);
                assert_eq!(in_vain(false), 7, "a spin that paid restores the most");
                let later: [u32; 6] = core::array::from_fn(|_| in_vain(false));
                assert_eq!(later, [6, 5, 4, 3, 2, 7], "the 16th wait probes");
            })
            .join()
            .expect("no panic");
        });
    }

    /// The budget sits in the line of the index the other side moves: a wait that ends while
    /// spinning must not read it, so it is read when the yields begin, not when the wait does.
    #[test]
    fn a_wait_reads_its_budget_only_once_the_spins_are_over() {
        let budget = YieldBudget::new();
        let mut backoff = Backoff::new();
        for _ in 0..7 {
            assert!(backoff.snooze(&budget));
        }
        assert_eq!(backoff.yielded(), 0, "seven spins, no yield yet");
        budget.slept();
        assert_eq!(snoozes(&mut backoff, &budget), (29, 29));
    }

    #[test]
    fn a_one_yielder_wait_parks_after_its_spins_while_another_holds_the_yield_turn() {
        let budget = YieldBudget::new();
        let mut first = OneYielder::new();
        for _ in 0..8 {
            assert!(first.snooze(&budget));
        }
        assert_eq!(first.yielded(), 1, "the first took the turn and yields");
        let mut second = OneYielder::new();
        assert_eq!(snoozes(&mut second, &budget), (7, 0), "spins, then park");
        assert_eq!(
            snoozes(&mut Backoff::new(), &budget),
            (7 + 58, 58),
            "a plain wait yields whoever holds the turn"
        );
        second.leave();
        let mut third = OneYielder::new();
        assert_eq!(
            snoozes(&mut third, &budget),
            (7, 0),
            "only the holder gives the turn back"
        );
        first.leave();
        second.reset();
        assert_eq!(
            snoozes(&mut second, &budget),
            (7 + 58, 58),
            "the turn is free"
        );
        first.leave();
        drop(first);
        let mut fourth = OneYielder::new();
        assert_eq!(
            snoozes(&mut fourth, &budget),
            (7, 0),
            "a wait that gave its turn back gives nothing back again"
        );
        drop(second);
        assert!(budget.take_yield_turn(), "given back on drop");
        assert!(!budget.take_yield_turn());
    }

    #[test]
    fn a_blocking_operation_yields_from_its_second_lost_race_on() {
        let mut races = LostRaces::new();
        races.lost();
        assert_eq!(races.yields, 0, "the first lost race is retried at once");
        races.lost();
        races.lost();
        assert_eq!(races.yields, 2, "every later one yields first");
        assert_eq!(LostRaces::new().yields, 0, "each operation starts afresh");
    }
}
