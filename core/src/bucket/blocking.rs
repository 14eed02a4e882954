//! Blocking acquires (feature `std`): the non-blocking ones, retried at the instant the
//! tokens are due, with [`Clock::wait_until`] in between.

#![cfg(all(feature = "std", not(loom)))]

use super::{Denied, Grant, TokenBucket};
use crate::Clock;

impl TokenBucket {
    /// Takes `n` tokens, all or nothing, waiting until they are due. `clock` must be the clock
    /// every user of this bucket reads.
    ///
    /// Between attempts it sleeps (long waits) or yields (the last 200 us) until the instant
    /// the tokens are due; if another thread took them first, it waits again.
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
        self.wait_for(clock, |now| self.try_acquire(n, now))
    }

    /// Takes between 1 and `n` tokens, waiting until at least one is due: the blocking partial
    /// take for batch producers. Returns an empty grant at once if `n == 0`.
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
        self.wait_for(clock, |now| self.try_acquire_up_to(n, now))
    }

    /// Retries `attempt` at `clock.now()`, waiting for each refusal's `ready_at`, until it
    /// grants or refuses for good (`ExceedsBurst`, or `ready_at == u64::MAX`: never).
    fn wait_for<'a>(
        &'a self,
        clock: &Clock,
        attempt: impl Fn(u64) -> Result<Grant<'a>, Denied>,
    ) -> Result<Grant<'a>, Denied> {
        loop {
            match attempt(clock.now()) {
                Err(Denied::NotYet { ready_at, .. }) if ready_at != u64::MAX => {
                    clock.wait_until(ready_at);
                }
                done => return done,
            }
        }
    }
}
