//! Blocking acquires (feature `std`): the non-blocking ones, retried at the instant the
//! tokens are due, with [`Clock::sleep_until`] or [`Clock::wait_until`] in between.

#![cfg(all(feature = "std", not(loom)))]

use core::time::Duration;

use super::{Denied, Grant, TokenBucket};
use crate::Clock;

/// How late a sleep may wake without costing a waiter that only sleeps a token: five times
/// the timer slack [`Clock::wait_until`] allows for, since a sleep's overshoot on a busy
/// machine is often past that slack (a few hundred microseconds at its 99th percentile).
const OVERSLEEP_ROOM: Duration = Duration::from_millis(1);

impl TokenBucket {
    /// Takes `n` tokens, all or nothing, waiting until they are due. `clock` must be the clock
    /// every user of this bucket reads.
    ///
    /// Between attempts it waits until the instant the tokens are due; if another thread took
    /// them first, it waits again. How it waits depends on the burst:
    /// - **Sleeping only**, when the bucket has room for the tokens issued while a sleep
    ///   oversleeps: when `burst - n + 1` tokens take more than 1 ms to come. Then it costs
    ///   no CPU while it waits and returns late by the sleep's overshoot (the timer slack:
    ///   typically 50-100 us on Linux, more on a busy machine), and a lateness under 1 ms
    ///   loses no token: the tokens issued meanwhile wait in the bucket for the next call, so
    ///   the rate holds. (A busy machine can make any wait later than that; tokens past the
    ///   burst are then lost, as for any late caller.)
    /// - **Sleeping, then yielding the CPU for the last 200 us**, otherwise: on time to the
    ///   microsecond, because a bucket that cannot hold the overslept tokens would lose them.
    ///   Yielding keeps a core busy: at 5,000 acquires a second of one token with `burst` 1,
    ///   nearly all of one. A larger burst avoids that.
    ///
    /// # Errors
    /// [`Denied::ExceedsBurst`] if `n > burst()`, and [`Denied::NotYet`] with `ready_at ==
    /// u64::MAX` if the tokens are not due within the range of the clock (584 years). It never
    /// returns a `NotYet` that a wait could satisfy.
    ///
    /// ```
    /// use pc_core::{Clock, Denied, TokenBucket};
    ///
    /// let clock = Clock::new();
    /// let bucket = TokenBucket::per_second(10_000, 1).starting_empty_at(clock.now());
    /// let mut last = 0;
    /// for _ in 0..5 {
    ///     let due = bucket.acquire(1, &clock).unwrap().due();
    ///     assert_eq!(due % 100_000, 0, "one token every 100 us, due exactly on that grid");
    ///     assert!(due > last, "each acquire takes a later token");
    ///     last = due;
    /// }
    /// assert_eq!(
    ///     bucket.acquire(2, &clock).unwrap_err(),
    ///     Denied::ExceedsBurst { requested: 2, burst: 1 }
    /// );
    /// ```
    pub fn acquire(&self, n: u64, clock: &Clock) -> Result<Grant<'_>, Denied> {
        self.wait_for(n, clock, |now| self.try_acquire(n, now))
    }

    /// Takes between 1 and `n` tokens, waiting until at least one is due: the blocking partial
    /// take for batch producers. Returns an empty grant at once if `n == 0`. It waits as
    /// [`acquire(1)`](Self::acquire) does (sleeping only when `burst` tokens take more than
    /// 1 ms to come); a late wake-up finds more tokens, and this call takes up to `n` of them.
    ///
    /// # Errors
    /// [`Denied::NotYet`] with `ready_at == u64::MAX` if no token is due within the range of
    /// the clock (584 years).
    ///
    /// ```
    /// use pc_core::{Clock, TokenBucket};
    ///
    /// let clock = Clock::new();
    /// let bucket = TokenBucket::per_second(100_000, 100).starting_empty_at(clock.now());
    /// let mut taken = 0;
    /// while taken < 50 {
    ///     taken += bucket.acquire_up_to(50 - taken, &clock).unwrap().count();
    /// }
    /// assert_eq!(taken, 50);
    /// ```
    pub fn acquire_up_to(&self, n: u64, clock: &Clock) -> Result<Grant<'_>, Denied> {
        self.wait_for(n.min(1), clock, |now| self.try_acquire_up_to(n, now))
    }

    /// Retries `attempt` at `clock.now()`, waiting for each refusal's `ready_at`, until it
    /// grants or refuses for good (`ExceedsBurst`, or `ready_at == u64::MAX`: never). `needed`:
    /// the tokens a refusal's `ready_at` is the instant of.
    fn wait_for<'a>(
        &'a self,
        needed: u64,
        clock: &Clock,
        attempt: impl Fn(u64) -> Result<Grant<'a>, Denied>,
    ) -> Result<Grant<'a>, Denied> {
        // Chosen at the first refusal: a call granted at once pays nothing for it.
        let mut wait: Option<fn(&Clock, u64) -> u64> = None;
        loop {
            match attempt(clock.now()) {
                Err(Denied::NotYet { ready_at, .. }) if ready_at != u64::MAX => {
                    let wait = wait.get_or_insert_with(|| {
                        if self.holds_overslept_tokens(needed) {
                            Clock::sleep_until
                        } else {
                            Clock::wait_until
                        }
                    });
                    wait(clock, ready_at);
                }
                done => return done,
            }
        }
    }

    /// Whether a caller that wakes up to [`OVERSLEEP_ROOM`] after the instant its `needed`
    /// tokens are due loses none of the tokens issued meanwhile. At that instant the bucket
    /// holds `needed` (or fewer, if another thread took some) and has room for `burst -
    /// needed` more: the first token it has no room for is the next one after those, which
    /// comes more than `OVERSLEEP_ROOM` later exactly when `room + 1` tokens take that long.
    fn holds_overslept_tokens(&self, needed: u64) -> bool {
        let room = self.burst().saturating_sub(needed);
        let first_lost = room.saturating_add(1);
        Duration::from_nanos(self.clock.due_clock().due(first_lost)) > OVERSLEEP_ROOM
    }
}

#[cfg(test)]
mod tests {
    use crate::sync::yields_on_this_thread;
    use crate::{Clock, TokenBucket};

    #[test]
    fn an_acquire_with_room_for_overslept_tokens_sleeps_without_yielding() {
        let clock = Clock::new();
        // 5,000 a second: a token every 200 us, and room for 9 more (the 10th comes 2 ms
        // after the one waited for).
        let bucket = TokenBucket::per_second(5_000, 10).starting_empty_at(clock.now());
        let before = yields_on_this_thread();
        for _ in 0..20 {
            assert_eq!(bucket.acquire(1, &clock).unwrap().count(), 1);
        }
        let mut taken = 0;
        while taken < 20 {
            taken += bucket.acquire_up_to(20 - taken, &clock).unwrap().count();
        }
        assert_eq!(
            yields_on_this_thread(),
            before,
            "it slept, and never yielded"
        );
    }

    #[test]
    fn an_acquire_that_would_lose_overslept_tokens_still_waits_to_the_microsecond() {
        let clock = Clock::new();
        // Room for one token more, and the one after it comes 200 us later: a sleep's
        // overshoot could lose it.
        let bucket = TokenBucket::per_second(10_000, 2).starting_empty_at(clock.now());
        assert!(!bucket.holds_overslept_tokens(1));
        // The first token past the room comes 1.1 ms later, or exactly 1 ms later.
        assert!(TokenBucket::per_second(10_000, 11).holds_overslept_tokens(1));
        assert!(!TokenBucket::per_second(10_000, 10).holds_overslept_tokens(1));
        assert!(!TokenBucket::per_second(10_000, 11).holds_overslept_tokens(2));
        assert!(
            TokenBucket::per_second(1, 1).holds_overslept_tokens(1),
            "1 a second, burst 1"
        );
        // A token every 100 us: each wait ends within the last 200 us, which it yields away.
        let before = yields_on_this_thread();
        for _ in 0..100 {
            let due = bucket.acquire(1, &clock).unwrap().due();
            assert!(clock.now() >= due);
        }
        assert!(yields_on_this_thread() > before, "it yielded to be on time");
    }
}
