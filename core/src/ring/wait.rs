//! Sleeping and waking for the blocking operations (feature `std`; real under loom too).
//!
//! Each side of the ring has a `Waiters`: the threads of the *other* side asleep until this
//! side makes room or values (`head.waiters`: producers waiting for free slots, woken by pops;
//! `tail.waiters`: consumers waiting for published slots, woken by pushes; both woken by
//! `close`).
//!
//! # Guarantees
//! - **No lost wake-up.** A thread goes to sleep only after re-checking, once registered, that
//!   the slot it needs (the one at the tail for a producer, at the head for a consumer) is
//!   still not ready; every operation that publishes or frees slots (or gives claimed ones
//!   back, or closes the ring) then calls [`Waiters::notify`], which sees that registration.
//!   This covers a slot *held* by the other side (claimed, not yet published or freed: a batch
//!   holds its run for its whole call) exactly as it covers a full or empty ring: nothing
//!   relies on a timeout. Loom checks it (`loom-tests/tests/waiters.rs`).
//! - **One wake-up per slot.** `notify(n)` after `n` slots were published or freed wakes at
//!   most `n` sleepers, and none that already has a wake-up pending; `close` wakes all.
//! - **A wasted wake-up is passed on.** Slots are published (and freed) out of order: a
//!   consumer woken for position `p + 1` finds `p` still held and sleeps again, and when `p`
//!   is published only one more wake-up comes for two values. So a thread that was woken and
//!   then succeeds checks whether the next slot is ready as well and, if so, wakes one more
//!   sleeper (`Waiters::wait_for`): a chain of wake-ups, one per ready slot. `wait_ready`
//!   pops nothing and passes nothing on (`Waiters::wait_until_ready`): its caller pops next,
//!   and looks again before it sleeps (`RingCore::wait_ready` says so).
//! - **One `wait_ready` yields at a time.** Waits that take nothing all end on the same ready
//!   slot, so while one of them yields (before it parks) the others of its side park as soon
//!   as their spins are done: several yielding beside it would only keep cores busy, and with
//!   more of them than cores they would yield to one another. A pop or push yields whatever
//!   the others do: each one waits for a slot of its own.
//!
//! # Non-guarantees
//! - No fairness: whichever sleeper the condition variable picks takes a wake-up, and a thread
//!   that never slept can take the slot first (the woken one then sleeps again).
//! - A sleeper behind a held slot sleeps until the holder finishes: if the holder never does
//!   (a batch push whose iterator waits for a consumer of the same ring), neither does it.
//!
//! # Why no wake-up is lost
//! A Dekker-style handshake on `count` through an asymmetric fence (sync.rs): the waker's
//! half costs a compiler fence, the sleeper's half a system call, and together they order
//! like two `SeqCst` fences. (Or, where the process cannot register, or chose fences with
//! `use_fence_instructions`, two `SeqCst` fences: see the end of this section.)
//! - a sleeper, holding `lock`, registers (`count += 1`), issues the heavy fence, then
//!   re-checks the ring, and only sleeps if it is still blocked;
//! - a waker makes its progress (a slot stamp `Release`-stored, an index moved), issues its
//!   half of the fence, then loads `count`.
//!
//! The two fences are ordered. If the sleeper's comes first, the waker's load (after its fence)
//! sees the registration (made before the sleeper's fence), so it takes `lock`, which the
//! sleeper holds until it is inside `cond.wait` (or has found it need not sleep): the wake-up
//! reaches it. If the waker's comes first, the sleeper's re-check (after its fence) sees the
//! progress (made before the waker's fence), whose stamp it reads with `Acquire`, and does not
//! sleep. On Linux the heavy fence is `membarrier(PRIVATE_EXPEDITED)`: every CPU running a
//! thread of this process executes a full barrier during the call, which is what a `SeqCst`
//! fence on the waker's side would have given, so the waker needs none once the process is
//! registered for that call. Whether it is lives in `count` itself (the `MUST_FENCE` bit, set
//! until a waker finds the process registered): a waker loads `count` after a compiler fence,
//! and only if that load is not 0 (someone asleep, or the bit) does it look further, redoing
//! the load behind a `SeqCst` fence if the bit is set. The operations' own cost is therefore
//! one plain load of `count` (in the line of the index they have just written) and no
//! barrier, no read-modify-write and no syscall unless someone sleeps; loom, where the bit is
//! never cleared, checks the handshake with both halves as `SeqCst` fences, which it models
//! exactly (`loom-tests/tests/waiters.rs`, the mutant `waiter_no_fence` without them, and
//! `waiter_clear_unregistered` clearing the bit anyway). Where the bit stays set (no
//! registration, or fences chosen), every operation that publishes or frees slots pays more:
//! an out-of-line call, a `SeqCst` fence, a second load of `count` and a look at the fence
//! strategy; and a thread about to sleep pays a `SeqCst` fence instead of the system call.
//!
//! Wake-ups are counted under `lock` (`Sleepers::wakes`): a sleeper leaves its wait only by
//! taking one, or at its deadline with none pending (one pending is taken even then, and the
//! caller tries once more), so a spurious wake-up costs nothing, a wake-up is never lost to a
//! sleeper timing out, and one meant for one sleeper but seen by another is taken exactly once.
//! Under loom there are no deadlines (no time) and no spurious wake-ups.

/// The outcome of one attempt inside a wait ([`Waiters::wait_for`]).
#[cfg(any(feature = "std", loom))]
pub(crate) enum Step<R> {
    Done(R),
    Blocked,
}

#[cfg(any(feature = "std", loom))]
mod imp {
    use super::Step;
    use std::sync::PoisonError;

    use crate::sync::{AtomicUsize, Condvar, Instant, Mutex, Ordering};

    /// The threads of one side of the ring asleep until the other side makes progress.
    #[derive(Debug)]
    pub(crate) struct Waiters {
        /// Threads between registering in `park` and leaving it (the handshake word, see the
        /// module docs), plus [`MUST_FENCE`] while wakers must issue a real fence before reading
        /// it. Invariant: `count & !MUST_FENCE` counts every thread inside `cond.wait` here.
        count: AtomicUsize,
        lock: Mutex<Sleepers>,
        cond: Condvar,
        /// How many times this side's waits yield before parking.
        budget: crate::sync::YieldBudget,
        /// Wake-ups handed out, ever (test support: what a test of "one per slot" counts).
        #[cfg(test)]
        given: AtomicUsize,
        /// Times a thread went to sleep here, ever (test support).
        #[cfg(test)]
        sleeps: AtomicUsize,

        /// Yields taken by waits here before they parked, ever (test support).
        #[cfg(test)]
        yields_before_parking: AtomicUsize,
    }

    /// The bit of `Waiters::count` that tells a waker to fence for real: set at construction
    /// (a `const fn` cannot ask whether the process is registered), cleared by the first waker
    /// that finds the process registered (`crate::sync::register_fences`). So the one load a
    /// waker makes anyway decides both "anyone asleep?" and "may I skip the fence?". Never
    /// cleared under loom (but by the mutant `waiter_clear_unregistered`, which the models
    /// must catch), nor where the process cannot register: there every waker fences.
    const MUST_FENCE: usize = 1 << (usize::BITS - 1);

    /// The longest a sleep lasts when its handshake was found not whole (`repair_unpaired`).
    #[cfg(not(loom))]
    const UNPAIRED_NAP: core::time::Duration = core::time::Duration::from_millis(1);

    /// Whether a woken thread that succeeded passes a wake-up on (module docs).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Relay {
        PassOn,
        Keep,
    }

    /// Wakes one sleeper when dropped: held across a woken thread's attempt and forgotten once
    /// it returns (`Waiters::attempt_relaying`), so it acts only if the attempt unwinds. A
    /// spare wake-up at worst, never a lost one.
    struct RelayOnUnwind<'a>(&'a Waiters);

    impl Drop for RelayOnUnwind<'_> {
        fn drop(&mut self) {
            self.0.notify(1);
        }
    }

    /// Who sleeps and how many wake-ups are owed, under `Waiters::lock`.
    #[derive(Debug)]
    struct Sleepers {
        /// Threads inside `park`'s wait loop.
        asleep: usize,
        /// Wake-ups handed out and not yet taken. Invariant: `wakes <= asleep`.
        wakes: usize,
    }

    impl Waiters {
        crate::sync::const_fn_unless_loom! {
            pub(crate) fn new() -> Self {
                Self {
                    count: AtomicUsize::new(MUST_FENCE),
                    lock: Mutex::new(Sleepers { asleep: 0, wakes: 0 }),
                    cond: Condvar::new(),
                    budget: crate::sync::YieldBudget::new(),
                    #[cfg(test)]
                    given: AtomicUsize::new(0),
                    #[cfg(test)]
                    sleeps: AtomicUsize::new(0),
                    #[cfg(test)]
                    yields_before_parking: AtomicUsize::new(0),
                }
            }
        }

        /// How many threads are asleep here now (test support).
        #[cfg(test)]
        pub(crate) fn asleep(&self) -> usize {
            self.sleepers().asleep
        }

        /// Whether wakers still issue a real fence here (test support).
        #[cfg(test)]
        pub(crate) fn must_fence(&self) -> bool {
            // Relaxed: a test reads it on the thread that made the operations.
            self.count.load(Ordering::Relaxed) & MUST_FENCE != 0
        }

        /// How many times this side's waits yield before parking now (test support).
        #[cfg(all(test, not(loom)))]
        pub(crate) fn yield_budget(&self) -> u32 {
            self.budget.get()
        }

        /// Takes the yield turn of the waits that take nothing, as such a wait does (test
        /// support: a test holds it to see what another such wait does meanwhile).
        #[cfg(test)]
        pub(crate) fn take_yield_turn(&self) -> bool {
            self.budget.take_yield_turn()
        }

        #[cfg(test)]
        pub(crate) fn give_back_yield_turn(&self) {
            self.budget.give_back_yield_turn();
        }

        /// How many times waits here yielded before parking, in all (test support).
        #[cfg(test)]
        pub(crate) fn yields_before_parking(&self) -> usize {
            // Relaxed: a test reads it after the waiting thread has gone to sleep (read under
            // the lock) or been joined.
            self.yields_before_parking.load(Ordering::Relaxed)
        }

        /// How many wake-ups have been handed out so far (test support).
        #[cfg(test)]
        pub(crate) fn given(&self) -> usize {
            // Relaxed: a test reads it after the notifying call returned, on the same thread.
            self.given.load(Ordering::Relaxed)
        }

        /// How many times a thread has gone to sleep here so far (test support).
        #[cfg(test)]
        pub(crate) fn sleeps(&self) -> usize {
            // Relaxed: a test polls it until it sees the sleepers arrive.
            self.sleeps.load(Ordering::Relaxed)
        }

        fn sleepers(&self) -> crate::sync::MutexGuard<'_, Sleepers> {
            self.lock.lock().unwrap_or_else(PoisonError::into_inner)
        }

        /// Wakes up to `n` sleepers: call it after publishing or freeing `n` slots (or giving
        /// `n` claimed ones back). Costs a plain load when nobody sleeps, once the process is
        /// registered (else a fence and two loads: see `MUST_FENCE`).
        #[inline]
        pub(crate) fn notify(&self, n: usize) {
            if n != 0 {
                let seen = self.count_after_progress();
                if seen != 0 {
                    self.wake_if_asleep(seen, n);
                }
            }
        }

        /// Wakes every sleeper (for `close`).
        pub(crate) fn notify_all(&self) {
            let seen = self.count_after_progress();
            if seen != 0 {
                self.wake_if_asleep(seen, usize::MAX);
            }
        }

        /// Reads `count` after this thread's progress with the light half of the handshake
        /// (module docs). Valid as the handshake's load only if `MUST_FENCE` is clear in it.
        #[inline(always)]
        fn count_after_progress(&self) -> usize {
            // Orders the progress just made (stamps, indices) before the load below, for the
            // compiler; the CPU is ordered by the heavy fence in `park` (membarrier), which a
            // clear `MUST_FENCE` says is in force.
            crate::sync::light_fence();
            // Relaxed: the fences order it (module docs).
            self.count.load(Ordering::Relaxed)
        }

        /// `notify`'s rest, once `count_after_progress` read `seen != 0`: a thread counted, or
        /// `MUST_FENCE`, in which case `seen` proves nothing and the load is redone behind a
        /// real fence; then the bit is cleared if the process is registered, registering it
        /// first if nobody has decided yet (a ring in a `static` used before any heap ring was
        /// built: its first operation pays the registration, as the module docs of fence.rs
        /// say). Cold where the bit can clear; inline where it never does (other systems,
        /// miri), since there every operation comes here.
        #[cfg_attr(any(loom, all(target_os = "linux", not(miri))), cold, inline(never))]
        #[cfg_attr(not(any(loom, all(target_os = "linux", not(miri)))), inline)]
        fn wake_if_asleep(&self, seen: usize, n: usize) {
            let mut count = seen;
            if count & MUST_FENCE != 0 {
                // The waker's half of the handshake as a `SeqCst` fence: orders the progress
                // made before it before the load below; pairs with the heavy fence in `park`.
                crate::sync::waker_fence();
                // Relaxed: the fences order it (module docs).
                count = self.count.load(Ordering::Relaxed);
                if crate::sync::register_fences() || cfg!(pc_mutant = "waiter_clear_unregistered") {
                    // Relaxed: publishes nothing but the bit itself. A waker that reads it clear
                    // relies on the process's registration, a kernel fact already in force, and
                    // on every later heavy fence being a membarrier even in a thread that still
                    // reads the strategy as undecided (fence.rs, `register`), or, if the kernel
                    // starts refusing the barrier, on the sleeper that finds out setting the bit
                    // again (`repair_unpaired`).
                    self.count.fetch_and(!MUST_FENCE, Ordering::Relaxed);
                }
            }
            if count & !MUST_FENCE != 0 {
                self.wake(n);
            }
        }

        #[cold]
        #[inline(never)]
        fn wake(&self, n: usize) {
            if cfg!(pc_mutant = "waiter_skip_wake") {
                // The deliberately broken variant the loom suite must reject (`.ci/run`).
                return;
            }
            // Taking the lock orders us after any sleeper's re-check: it is asleep in
            // `cond.wait` by now, or has left without sleeping.
            let mut sleepers = self.sleepers();
            let idle = sleepers.asleep - sleepers.wakes;
            let give = n.min(idle);
            if give == 0 {
                return;
            }
            sleepers.wakes += give;
            #[cfg(test)]
            // Relaxed: test support only.
            self.given.fetch_add(give, Ordering::Relaxed);
            drop(sleepers);
            // Each sleeper leaves `cond.wait` only by taking a wake-up, so waking more threads
            // than wake-ups only costs them a trip back to sleep.
            if give == idle && give > 1 {
                self.cond.notify_all();
            } else {
                for _ in 0..give {
                    self.cond.notify_one();
                }
            }
        }

        /// Retries `attempt` with the adaptive wait until it is done (`Step::Done`) or
        /// `deadline` passes (`None`), sleeping here once spinning and yielding are spent, for
        /// as long as `blocked` still says so after registering. The one wait loop of every
        /// blocking operation (the ring's and the lanes').
        ///
        /// A thread that was woken and then succeeds passes a wake-up on if `blocked` says
        /// another slot is ready too: the wake-up it took may have been for that slot,
        /// published (or freed) before its own (module docs, "A wasted wake-up is passed on").
        pub(crate) fn wait_for<R>(
            &self,
            deadline: Option<Instant>,
            blocked: impl Fn() -> bool,
            attempt: impl FnMut() -> Step<R>,
        ) -> Option<R> {
            self.wait(
                crate::sync::Backoff::new(),
                deadline,
                blocked,
                attempt,
                Relay::PassOn,
            )
        }

        /// [`wait_for`](Self::wait_for) for a wait that takes nothing (`RingCore::wait_ready`):
        /// it never passes a wake-up on, since the slot it was woken for is still there for
        /// the caller's pop, and `blocked` would say so and wake another sleeper for it.
        pub(crate) fn wait_until_ready<R>(
            &self,
            deadline: Option<Instant>,
            blocked: impl Fn() -> bool,
            attempt: impl FnMut() -> Step<R>,
        ) -> Option<R> {
            // Waits that take nothing all end on the same ready slot: one of them yields at a
            // time (`sync::OneYielder`).
            self.wait(
                crate::sync::OneYielder::new(),
                deadline,
                blocked,
                attempt,
                Relay::Keep,
            )
        }

        fn wait<'a, R>(
            &'a self,
            mut backoff: impl crate::sync::Snooze<'a>,
            deadline: Option<Instant>,
            blocked: impl Fn() -> bool,
            mut attempt: impl FnMut() -> Step<R>,
            relay: Relay,
        ) -> Option<R> {
            let mut woken = false;
            loop {
                if let Step::Done(r) =
                    self.attempt_relaying(woken && relay == Relay::PassOn, &mut attempt)
                {
                    backoff.learn(true);
                    if backoff.yielded() > 0 {
                        self.budget.paid(backoff.yielded());
                    }
                    if woken
                        && relay == Relay::PassOn
                        && !cfg!(pc_mutant = "waiter_no_relay")
                        && !blocked()
                    {
                        self.notify(1);
                    }
                    return Some(r);
                }
                if deadline.is_some_and(crate::sync::deadline_passed) {
                    if backoff.yielded() > 0 {
                        backoff.learn(false);
                    }
                    return None;
                }
                if !backoff.snooze_before(&self.budget, deadline) {
                    backoff.learn(false);
                    backoff.leave();
                    #[cfg(test)]
                    // Relaxed: test support only.
                    self.yields_before_parking
                        .fetch_add(backoff.yielded() as usize, Ordering::Relaxed);
                    woken |= self.park(deadline, &blocked, backoff.yielded_all());
                    backoff.reset();
                }
            }
        }

        /// Runs `attempt`; if `relaying` (a woken thread, which owes the relay a look) and
        /// `attempt` unwinds (a batch pop's `Extend` panicked), passes a wake-up on: the one
        /// this thread took may have been for a slot it will now never take.
        #[inline(always)]
        fn attempt_relaying<R>(
            &self,
            relaying: bool,
            attempt: &mut impl FnMut() -> Step<R>,
        ) -> Step<R> {
            if !relaying {
                return attempt();
            }
            let unwinding = RelayOnUnwind(self);
            let step = attempt();
            core::mem::forget(unwinding);
            step
        }

        /// Registers, then sleeps until woken or `deadline`, unless `blocked()` (re-checked
        /// once registered) says the wait is already over. Returns whether it took a wake-up
        /// (the caller then owes a look at whether to pass one on: see the module docs).
        /// `yielded`: the wait yielded its budget first (what the budget learns from; a wait
        /// that parks without yielding teaches it nothing).
        pub(crate) fn park(
            &self,
            deadline: Option<Instant>,
            blocked: impl FnOnce() -> bool,
            yielded: bool,
        ) -> bool {
            let mut sleepers = self.sleepers();
            // Relaxed: the heavy fence after it publishes the registration to every waker whose
            // light fence comes later, and orders the re-check after every waker's progress
            // whose light fence came earlier (module docs).
            let before = self.count.fetch_add(1, Ordering::Relaxed);
            let barrier = crate::sync::heavy_fence();
            #[cfg(not(loom))]
            let (deadline, capped) = self.repair_unpaired(before, barrier, deadline);
            #[cfg(loom)]
            let capped = {
                let _ = (before, barrier); // the bit is never cleared under loom (but by a mutant)
                false
            };
            let mut woken = false;
            if blocked() {
                if yielded {
                    // The yields before this park (all of the budget) bought nothing.
                    self.budget.slept();
                }
                sleepers.asleep += 1;
                #[cfg(test)]
                // Relaxed: test support only (a test polls it).
                self.sleeps.fetch_add(1, Ordering::Relaxed);
                loop {
                    let timed_out;
                    (sleepers, timed_out) = crate::sync::wait_until(&self.cond, sleepers, deadline);
                    if sleepers.wakes != 0 {
                        sleepers.wakes -= 1;
                        woken = true;
                        break;
                    }
                    if timed_out {
                        // A capped sleep (`repair_unpaired`) may have missed the wake-up of
                        // more than one sleeper: its end counts as a wake-up taken, so that a
                        // pop that then succeeds passes one on if another slot is ready.
                        woken = capped;
                        break;
                    }
                }
                sleepers.asleep -= 1;
            } else if yielded {
                // Ready just after the yields ran out: they nearly paid. (A push that waited for
                // room for a run may have had its slot for a while: its yields waited for the
                // run, which is the wait the budget is for.)
                self.budget.fell_short();
            }
            // Relaxed: nothing to publish; a waker that still sees this thread counted only
            // takes the lock for nothing.
            self.count.fetch_sub(1, Ordering::Relaxed);
            woken
        }

        /// After a heavy fence that was no barrier (`barrier` false): if this side's wakers
        /// may be skipping their fence (`MUST_FENCE` was clear in `before`, the count this
        /// sleeper's registration replaced: the process was registered, and then the kernel
        /// refused the barrier, fence.rs `heavy`), the handshake is not whole, and a waker that
        /// skipped its fence may have missed this registration while its progress was not yet
        /// visible to the re-check. Sets the bit, so that wakers fence from now on, and caps
        /// this sleep at [`UNPAIRED_NAP`]. Such a waker may have missed sleepers that came
        /// after this one too (they found the bit set, and sleep uncapped): so when the capped
        /// sleep ends it counts as a wake-up taken (`park`), and the wait passes one on if it
        /// then succeeds with another slot ready, a chain that reaches each of them. Returns
        /// the deadline of this sleep, and whether it was capped.
        #[cfg(not(loom))]
        fn repair_unpaired(
            &self,
            before: usize,
            barrier: bool,
            deadline: Option<Instant>,
        ) -> (Option<Instant>, bool) {
            if barrier || before & MUST_FENCE != 0 {
                return (deadline, false);
            }
            // Relaxed: publishes nothing but the bit; a waker that reads it fences for real
            // before it loads the count again (`wake_if_asleep`).
            self.count.fetch_or(MUST_FENCE, Ordering::Relaxed);
            let nap = crate::sync::deadline_after(UNPAIRED_NAP);
            (Some(deadline.map_or(nap, |d| d.min(nap))), true)
        }
    }
}

#[cfg(not(any(feature = "std", loom)))]
mod imp {
    /// Without `std` there is no blocking API, so nobody sleeps and nobody needs waking.
    #[derive(Debug)]
    pub(crate) struct Waiters;

    impl Waiters {
        pub(crate) const fn new() -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn notify(&self, _n: usize) {}

        #[inline(always)]
        pub(crate) fn notify_all(&self) {}
    }
}

pub(crate) use imp::Waiters;
