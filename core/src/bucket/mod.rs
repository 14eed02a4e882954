//! The token bucket: an exact, lock-free rate limiter whose state is one padded atomic word.
//!
//! # Guarantees
//! Writing `T(t)` for the number of tokens the bucket's clock has issued by instant `t`: exactly
//! `floor(t * rate / period)` (see [`TokenBucket::tokens_at`]),
//! - **Never over-grants.** For any interval `[t0, t1]` of `now` values passed to the bucket, the
//!   tokens granted by calls whose `now` lies in it number at most
//!   `burst + T(t1) - T(t0) <= burst + ceil(rate * (t1 - t0) / period)`: so at most
//!   `burst + rate * (t1 - t0) / period + 1`, the `+1` being the rounding of a token count to an
//!   integer. This holds whatever the interleaving of threads and whatever stale or backwards
//!   `now` they pass; a bucket made with [`starting_empty_at(t0)`](TokenBucket::starting_empty_at)
//!   grants at most `T(t1) - T(t0)` (no burst) by calls with `now <= t1`.
//! - **Stale or backwards time only ever sees fewer tokens** (below the top of the token
//!   clock: see its non-guarantee). A call's view of the bucket is computed from its own `now`
//!   alone; an older `now` sees a smaller `T`, hence fewer tokens.
//! - **Exact over the long run.** No rounding that accumulates: `T` is the exact floor at every
//!   instant (fixed point with enough bits, no drift), at any rate from one token per 584 years
//!   to `2^63 - 1` per period, per hour or per nanosecond alike. A caller taking tokens as fast
//!   as they come (and often enough that the bucket never overflows) receives exactly
//!   `T(t) + burst` (full start) or `T(t) - T(t0)` (empty start) of them by instant `t`. A
//!   caller that comes late finds at most `burst` tokens waiting and the rest are gone, so
//!   `burst` should cover the longest a caller can be late (rate times that delay: a busy
//!   machine's scheduling delays included). At the slowest end, a token due at the clock's
//!   last instant (`u64::MAX`, a period of `u64::MAX` ns from an empty start at 0) is granted
//!   only to a call with `now == u64::MAX`; an earlier call is denied with `ready_at ==
//!   u64::MAX`, which [`Denied::NotYet`] reads as never.
//! - **No burst after idle beyond `burst`.** However long the bucket sat unused, it holds at most
//!   `burst` tokens.
//! - **No overflow, no panic** in any operation on a bucket, for any `now` and `n`: arithmetic
//!   saturates and fails closed (a request that cannot be represented is denied, never
//!   granted). Making a bucket checks its rate and burst: `per_second`, `per_minute`,
//!   `per_hour` and `new` panic on a zero or too-large one (`# Panics` on each); their `try_`
//!   forms return a [`RateError`] instead.
//! - **Lock-free.** An acquire is one load and a CAS loop on one word; a CAS fails only because
//!   another acquire succeeded (or spuriously, on LL/SC machines). No division on the hot path.
//!   The word is alone in its cache line ([`CachePadded`]).
//!
//! # Non-guarantees
//! - **No fairness.** Under contention some threads may win more often than others.
//! - **Denied waits are hints.** [`Denied::NotYet`] says when the tokens would be there if nobody
//!   else took them first.
//! - **The clock is the caller's.** The bucket never reads a clock; `now` must be monotonic
//!   nanoseconds from one origin shared by all callers (with `std`, [`Clock`](crate::Clock)).
//!   It tolerates stale readings, but a `now` from a different origin is just another instant.
//!   A `now` ahead of the clock reserves: it is granted the tokens due by that instant (the
//!   bound above holds for it as for any `now`), and the caller must not use one before it is
//!   due ([`Grant::due`], [`Grant::schedule`]).
//! - **The token clock counts to `2^64`.** The bucket keeps `T(now)` plus its burst in 64 bits,
//!   saturating at `u64::MAX`, which only ever lowers what it holds (it fails closed). So once
//!   `T(now) + burst` passes `u64::MAX` the bucket holds at most `u64::MAX - T(now)` tokens, and
//!   there a later `now` sees fewer tokens than an earlier one; a request for `n` tokens is
//!   denied for good once `T(now) + n` would pass `u64::MAX`. Bursts of `2^63` or more are
//!   refused ([`RateError::BurstTooLarge`]), so the top is at least `2^63` tokens away: 292
//!   years of `now` at `10^9` tokens per second.
//!
//! # Targets without 64-bit atomics
//! This module needs an `AtomicU64`. On targets without a native one (e.g.
//! `thumbv7em-none-eabihf`) it is absent unless feature `portable-atomic` is enabled, and
//! `portable-atomic` itself (the application's choice, not this crate's) emulates 64-bit
//! atomics there: with its `fallback` feature alone by a global spinlock (on targets with
//! 32-bit CAS, such as thumbv7em; a spinlock an interrupt handler can deadlock on), or with
//! `fallback` plus `unsafe-assume-single-core` by disabling interrupts (single-core chips).
//! CI builds the no_std proof (`core/nostd-check`: a `static` bucket) for
//! `thumbv7em-none-eabihf` the second way. The bucket is then exactly as correct, but its word
//! is guarded by a lock or a critical section, so it is no longer lock-free.
//!
//! # Design
//! The state is one `u64`, `end`: the index of the last token ever granted, biased by `burst` so
//! that it never goes negative (the bucket starts full with `end = T(0) = 0`). At `now`, with
//! `t = T(now)`, the bucket holds `min(burst, t + burst - end)` tokens, and `n` are granted iff
//! `e + n <= t + burst` where `e = max(end, t)`, by a CAS of `end` from the value read to
//! `e + n`. That grant takes the token indices `(e - burst, e + n - burst]`: above every earlier
//! grant's (`end` only grows, and a CAS from an outdated `end` fails) and within
//! `(t - burst, t]`. So the disjoint ranges of all calls with `now` in `[t0, t1]` lie in
//! `(T(t0) - burst, T(t1)]`, which holds `burst + T(t1) - T(t0)` indices: that is the whole
//! proof of the bound, and it never looks at which thread ran when, nor at how `now` values
//! relate to each other. Time maps to tokens by a precomputed fixed-point multiplier
//! (`rate.rs`), so the hot path has no division; and a [`Grant`] holds only its count, its last
//! index and a reference to its bucket, so the due instants cost nothing until asked for. Every
//! quantity saturates at `u64::MAX`, which only lowers `t + burst`: it can deny, never grant.
//!
//! # Memory orderings
//! Every access to `end` is `Relaxed`. The bound depends only on the sequence of values `end`
//! takes, and read-modify-writes of one location are totally ordered, each reading the value
//! the previous one wrote, under any ordering. The bucket publishes no other data; a caller who
//! needs a grant to order other memory must synchronise that memory itself.

mod outcome;
mod rate;

#[cfg(feature = "std")]
mod blocking;

use core::fmt;
use core::time::Duration;

use crossbeam_utils::CachePadded;

pub use outcome::{Denied, Grant, Schedule};
pub use rate::RateError;

use crate::sync::{AtomicU64, Ordering};
use outcome::due_of_biased;
use rate::TokenClock;

/// Bursts from here up are refused: `T(now) + burst` must fit in the 64-bit count for as long
/// as the token clock runs (see "The token clock counts to `2^64`").
const MAX_BURST: u64 = 1 << 63;

/// A lock-free token bucket: `rate` tokens per period, holding at most `burst`.
///
/// Time is passed in by the caller as monotonic nanoseconds (`now`); see the
/// [module docs](crate::bucket) for the guarantees and their proof sketch.
///
/// ```
/// use pc_core::{Denied, TokenBucket};
///
/// // 1000 tokens per second, at most 10 at once; it can be a `static`.
/// static BUCKET: TokenBucket = TokenBucket::per_second(1000, 10);
///
/// let now = 5_000_000; // the caller's clock, in ns
/// assert_eq!(BUCKET.try_acquire(10, now).unwrap().count(), 10); // starts full
/// let denied = BUCKET.try_acquire(1, now).unwrap_err(); // empty: the next token is 1 ms away
/// assert_eq!(denied, Denied::NotYet { ready_at: now + 1_000_000, wait_ns: 1_000_000 });
///
/// // One millisecond later one token is due, scheduled at exactly that instant.
/// let grant = BUCKET.try_acquire(1, now + 1_000_000).unwrap();
/// assert_eq!(grant.due(), now + 1_000_000);
/// ```
pub struct TokenBucket {
    /// The biased index of the last token granted (see the module docs). Invariant: it only
    /// grows, and after a grant at `now` it is at most `tokens_at(now) + burst`.
    end: CachePadded<AtomicU64>,
    /// Immutable after construction; kept out of `end`'s cache line, so reading them never
    /// contends with a CAS.
    clock: TokenClock,
    /// Capacity. Invariant: `burst >= 1`.
    burst: u64,
}

impl TokenBucket {
    crate::sync::const_fn_unless_loom! {
        /// A bucket of `rate` tokens per second holding at most `burst`, starting full.
        ///
        /// # Panics
        /// If `rate` or `burst` is 0, or either is `2^63` or more: at compile time when used in
        /// a `const` or `static`. Use [`try_per_second`](Self::try_per_second) to get an error instead.
        ///
        /// ```compile_fail
        /// static NEVER: pc_core::TokenBucket = pc_core::TokenBucket::per_second(0, 1);
        /// ```
        #[must_use]
        #[track_caller]
        pub fn per_second(rate: u64, burst: u64) -> Self {
            Self::new(rate, Duration::from_secs(1), burst)
        }
    }

    crate::sync::const_fn_unless_loom! {
        /// A bucket of `rate` tokens per minute holding at most `burst`, starting full.
        ///
        /// # Panics
        /// If `rate` or `burst` is 0, or either is `2^63` or more.
        ///
        /// ```
        /// let bucket = pc_core::TokenBucket::per_minute(1, 1);
        /// let minute = 60_000_000_000;
        /// assert!(bucket.try_acquire(1, minute).is_ok());
        /// assert!(bucket.try_acquire(1, minute + minute - 1).is_err());
        /// assert_eq!(bucket.try_acquire(1, 2 * minute).unwrap().due(), 2 * minute);
        /// ```
        #[must_use]
        #[track_caller]
        pub fn per_minute(rate: u64, burst: u64) -> Self {
            Self::new(rate, Duration::from_secs(60), burst)
        }
    }

    crate::sync::const_fn_unless_loom! {
        /// A bucket of `rate` tokens per hour holding at most `burst`, starting full.
        ///
        /// # Panics
        /// If `rate` or `burst` is 0, or either is `2^63` or more.
        #[must_use]
        #[track_caller]
        pub fn per_hour(rate: u64, burst: u64) -> Self {
            Self::new(rate, Duration::from_secs(3600), burst)
        }
    }

    crate::sync::const_fn_unless_loom! {
        /// A bucket of `rate` tokens every `period`, holding at most `burst`, starting full.
        ///
        /// # Panics
        /// If [`try_new`](Self::try_new) would return an error.
        #[must_use]
        #[track_caller]
        pub fn new(rate: u64, period: Duration, burst: u64) -> Self {
            match Self::try_new(rate, period, burst) {
                Ok(bucket) => bucket,
                Err(e) => panic!("{}", e.message()),
            }
        }
    }

    crate::sync::const_fn_unless_loom! {
        /// A bucket of `rate` tokens per second holding at most `burst`, starting full.
        ///
        /// # Errors
        /// As [`try_new`](Self::try_new).
        ///
        /// ```
        /// use pc_core::{RateError, TokenBucket};
        ///
        /// assert!(TokenBucket::try_per_second(1_000_000_000, 1_000_000).is_ok());
        /// assert_eq!(TokenBucket::try_per_second(0, 1).unwrap_err(), RateError::ZeroRate);
        /// assert_eq!(TokenBucket::try_per_second(1, 0).unwrap_err(), RateError::ZeroBurst);
        /// ```
        pub fn try_per_second(rate: u64, burst: u64) -> Result<Self, RateError> {
            Self::try_new(rate, Duration::from_secs(1), burst)
        }
    }

    crate::sync::const_fn_unless_loom! {
        /// A bucket of `rate` tokens per minute holding at most `burst`, starting full.
        ///
        /// # Errors
        /// As [`try_new`](Self::try_new).
        ///
        /// ```
        /// use pc_core::{RateError, TokenBucket};
        ///
        /// assert!(TokenBucket::try_per_minute(30, 5).is_ok());
        /// assert_eq!(TokenBucket::try_per_minute(0, 1).unwrap_err(), RateError::ZeroRate);
        /// ```
        pub fn try_per_minute(rate: u64, burst: u64) -> Result<Self, RateError> {
            Self::try_new(rate, Duration::from_secs(60), burst)
        }
    }

    crate::sync::const_fn_unless_loom! {
        /// A bucket of `rate` tokens per hour holding at most `burst`, starting full.
        ///
        /// # Errors
        /// As [`try_new`](Self::try_new).
        ///
        /// ```
        /// use pc_core::{RateError, TokenBucket};
        ///
        /// let hour = 3_600_000_000_000;
        /// let bucket = TokenBucket::try_per_hour(2, 1).unwrap().starting_empty_at(0);
        /// assert!(bucket.try_acquire(1, hour / 2 - 1).is_err());
        /// assert_eq!(bucket.try_acquire(1, hour / 2).unwrap().due(), hour / 2);
        /// assert_eq!(TokenBucket::try_per_hour(1, 1 << 63).unwrap_err(), RateError::BurstTooLarge);
        /// ```
        pub fn try_per_hour(rate: u64, burst: u64) -> Result<Self, RateError> {
            Self::try_new(rate, Duration::from_secs(3600), burst)
        }
    }

    crate::sync::const_fn_unless_loom! {
        /// A bucket of `rate` tokens every `period`, holding at most `burst`, starting full.
        ///
        /// # Errors
        /// [`RateError::ZeroRate`], [`RateError::ZeroPeriod`] or [`RateError::ZeroBurst`] if that
        /// value is 0; [`RateError::TooSlow`] for a period of `2^64` ns (584 years) or longer,
        /// or a rate that issues no token within `2^64` ns;
        /// [`RateError::TooFast`] at `2^63` tokens per period or more;
        /// [`RateError::BurstTooLarge`] for a burst of `2^63` or more.
        ///
        /// ```
        /// use core::time::Duration;
        /// use pc_core::{RateError, TokenBucket};
        ///
        /// let second = Duration::from_secs(1);
        /// assert_eq!(TokenBucket::try_new(u64::MAX, second, 1).unwrap_err(), RateError::TooFast);
        /// assert_eq!(
        ///     TokenBucket::try_new(1000, second, u64::MAX).unwrap_err(),
        ///     RateError::BurstTooLarge
        /// );
        /// ```
        pub fn try_new(rate: u64, period: Duration, burst: u64) -> Result<Self, RateError> {
            if burst == 0 {
                return Err(RateError::ZeroBurst);
            }
            if burst >= MAX_BURST {
                return Err(RateError::BurstTooLarge);
            }
            match TokenClock::new(rate, period) {
                // Full at instant 0, hence at every later instant until tokens are taken.
                Ok(clock) => Ok(Self::from_parts(clock, burst, 0)),
                Err(e) => Err(e),
            }
        }
    }

    crate::sync::const_fn_unless_loom! {
        /// This bucket, but empty at instant `now`: no call with `now' <= t` is granted more
        /// than `tokens_at(t) - tokens_at(now)` tokens in total. Its first token is the next
        /// one the token clock issues after `now`: tokens fall on a grid counted from instant 0
        /// (`tokens_at`), not from `now`, so it is due within one token interval of `now`, and
        /// may be due sooner (at 1,000 per second, `starting_empty_at(1_500_000)` has its
        /// first token at 2,000,000 ns). Use it for load generators, which
        /// should not start with a burst.
        ///
        /// ```
        /// let start = 7_000_000_000; // the caller's clock, in ns
        /// let bucket = pc_core::TokenBucket::per_second(1000, 100).starting_empty_at(start);
        /// assert!(bucket.try_acquire(1, start).is_err());
        /// assert_eq!(bucket.try_acquire(1, start + 1_000_000).unwrap().due(), start + 1_000_000);
        /// ```
        #[must_use]
        pub fn starting_empty_at(self, now: u64) -> Self {
            // Saturating: if `T(now) + burst` does not fit, the bucket stays empty (fails closed).
            let end = self.clock.tokens_at(now).saturating_add(self.burst);
            Self::from_parts(self.clock, self.burst, end)
        }
    }

    crate::sync::const_fn_unless_loom! {
        fn from_parts(clock: TokenClock, burst: u64, end: u64) -> Self {
            Self { end: CachePadded::new(AtomicU64::new(end)), clock, burst }
        }
    }

    /// Takes `n` tokens, all or nothing, as seen at instant `now` (caller's nanoseconds).
    ///
    /// On success the [`Grant`] holds the instants the tokens were due (all `<= now`). Taking 0
    /// tokens always succeeds, changes nothing, and reports `now` as its due instant.
    ///
    /// # Errors
    /// [`Denied::ExceedsBurst`] if `n > burst()` (never satisfiable); otherwise
    /// [`Denied::NotYet`] with the instant the `n` tokens will be there if nobody takes them
    /// first, or with `ready_at == u64::MAX` (never) once the clock's count has come too near
    /// the top of a `u64` for them (centuries of `now`, or sooner at rates of billions of
    /// tokens a second: see [`Denied::NotYet`]).
    ///
    /// ```
    /// use pc_core::{Denied, TokenBucket};
    ///
    /// let bucket = TokenBucket::per_second(100, 5).starting_empty_at(0); // one per 10 ms
    /// assert_eq!(
    ///     bucket.try_acquire(3, 12_000_000),
    ///     Err(Denied::NotYet { ready_at: 30_000_000, wait_ns: 18_000_000 })
    /// );
    /// let grant = bucket.try_acquire(3, 30_000_000).unwrap();
    /// assert_eq!((grant.first_due(), grant.due()), (10_000_000, 30_000_000));
    /// assert_eq!(bucket.try_acquire(6, 30_000_000), Err(Denied::ExceedsBurst { requested: 6, burst: 5 }));
    /// ```
    // Always inlined: called out of line, the call, its prologue and the returned `Result`
    // going through memory cost about as much as the body (`docs/performance-log.md`,
    // "Figures that were in the code").
    #[inline(always)]
    pub fn try_acquire(&self, n: u64, now: u64) -> Result<Grant<'_>, Denied> {
        let burst = self.burst;
        if n > burst {
            return Err(Denied::ExceedsBurst {
                requested: n,
                burst,
            });
        }
        if n == 0 {
            return Ok(self.empty_grant(now));
        }
        // `t` depends on the caller's clock read, which usually completes last: everything
        // below is arranged so that little work stands between `t` and the CAS.
        let t = self.clock.tokens_at(now);
        // Relaxed: acquires nothing (the bucket guards no other data) and pairs with nothing;
        // an outdated value only makes the CAS below fail and retry. See "Memory orderings".
        let mut end = self.end.load(Ordering::Relaxed);
        loop {
            // The grant is `e + n` with `e = max(end, t)`, allowed iff `e + n <= t + burst`.
            // Two cases, as two paths, so that neither puts a comparison with `t` between `t`
            // and the CAS (`t` waits on the caller's clock read, the rest is ready before):
            let next = if t > end {
                // The bucket is full (it has refilled past `end`): `e = t`, and `t + n <= t +
                // burst` as `n <= burst`. Granted, unless `t + n` overflows (fail closed).
                let Some(next) = t.checked_add(n) else {
                    return Err(self.not_yet(end, n, now));
                };
                next
            } else {
                // `e = end`: granted iff `end + n - burst <= t` (if `end + n` overflows, so
                // does `e + n`: denied, failing closed). `end + n` is ready before `t`.
                let Some(next) = end.checked_add(n) else {
                    return Err(self.not_yet(end, n, now));
                };
                if next.saturating_sub(burst) > t {
                    return Err(self.not_yet(end, n, now));
                }
                next
            };
            debug_assert!(next == end.max(t) + n && next <= t.saturating_add(burst));
            match self.advance(end, next) {
                Ok(_) => return Ok(self.grant(next, n, now)),
                Err(current) => end = current,
            }
        }
    }

    /// Takes between 1 and `n` tokens, as many as there are at `now`: the partial take for
    /// batch producers (one CAS for the whole batch; it can ask for more than `burst`).
    ///
    /// Taking up to 0 tokens always succeeds with an empty grant.
    ///
    /// # Errors
    /// [`Denied::NotYet`] if not even one token is there, with the instant one will be if
    /// nobody takes it first, or with `ready_at == u64::MAX` (never) once the clock's count has
    /// come too near the top of a `u64` for one (see [`try_acquire`](Self::try_acquire)).
    ///
    /// ```
    /// let bucket = pc_core::TokenBucket::per_second(1000, 64); // starts full
    /// let grant = bucket.try_acquire_up_to(100, 0).unwrap();
    /// assert_eq!(grant.count(), 64);
    /// let grant = bucket.try_acquire_up_to(100, 3_000_000).unwrap(); // 3 ms later: 3 more
    /// assert_eq!((grant.count(), grant.first_due(), grant.due()), (3, 1_000_000, 3_000_000));
    /// ```
    // Always inlined: see `try_acquire`.
    #[inline(always)]
    pub fn try_acquire_up_to(&self, n: u64, now: u64) -> Result<Grant<'_>, Denied> {
        if n == 0 {
            return Ok(self.empty_grant(now));
        }
        let t = self.clock.tokens_at(now);
        // Saturating: see `try_acquire`.
        let limit = t.saturating_add(self.burst);
        // Relaxed: acquires nothing (the bucket guards no other data) and pairs with nothing;
        // an outdated value only makes the CAS below fail and retry. See "Memory orderings".
        let mut end = self.end.load(Ordering::Relaxed);
        loop {
            let base = end.max(t);
            if base >= limit {
                return Err(self.not_yet(end, 1, now));
            }
            let count = n.min(limit - base);
            let next = base + count; // <= limit: no overflow
            match self.advance(end, next) {
                Ok(_) => return Ok(self.grant(next, count, now)),
                Err(current) => end = current,
            }
        }
    }

    /// How many tokens the bucket holds at `now`: a snapshot, stale as soon as it returns.
    ///
    /// ```
    /// let bucket = pc_core::TokenBucket::per_second(10, 3);
    /// assert_eq!(bucket.available(0), 3);
    /// bucket.try_acquire(3, 0).unwrap();
    /// assert_eq!(bucket.available(100_000_000), 1);
    /// assert_eq!(bucket.available(u64::MAX / 2), 3); // never more than `burst`
    /// ```
    #[must_use]
    pub fn available(&self, now: u64) -> u64 {
        let t = self.clock.tokens_at(now);
        // Relaxed: a snapshot of one word; nothing else is read through it.
        let end = self.end.load(Ordering::Relaxed);
        t.saturating_add(self.burst).saturating_sub(end.max(t))
    }

    /// [`Grant::schedule`]: a grant knows its own bucket, so this is its schedule whichever
    /// bucket is asked.
    #[deprecated(note = "a grant knows its bucket: call `grant.schedule()`")]
    pub fn schedule(&self, grant: &Grant<'_>) -> Schedule {
        grant.schedule()
    }

    /// How many tokens the bucket's clock has issued by instant `now`: exactly
    /// `floor(now * rate / period_ns)`, saturating at `u64::MAX`, computed with at most three
    /// multiplications and an add (two side by side and no add for rates below `10^9` per
    /// second, one for a whole number per nanosecond; no division, no shift).
    ///
    /// ```
    /// let bucket = pc_core::TokenBucket::per_second(3, 1);
    /// assert_eq!(bucket.tokens_at(999_999_999), 2);
    /// assert_eq!(bucket.tokens_at(1_000_000_000), 3);
    /// ```
    #[must_use]
    #[inline]
    pub const fn tokens_at(&self, now: u64) -> u64 {
        self.clock.tokens_at(now)
    }

    /// The capacity: the most tokens the bucket holds, and the most one `try_acquire` takes.
    #[must_use]
    #[inline]
    pub const fn burst(&self) -> u64 {
        self.burst
    }

    /// The configured tokens per [`period`](Self::period).
    #[must_use]
    #[inline]
    pub const fn rate(&self) -> u64 {
        self.clock.rate()
    }

    /// The configured period.
    #[must_use]
    pub const fn period(&self) -> Duration {
        self.clock.period()
    }

    /// Moves `end` from `current` to `next` if nobody else moved it: the one write of a grant.
    #[inline(always)]
    fn advance(&self, current: u64, next: u64) -> Result<u64, u64> {
        #[cfg(not(pc_mutant = "bucket_store"))]
        {
            // Relaxed (success and failure): publishes nothing and pairs with nothing; RMWs on
            // one word are totally ordered under any ordering, and the bound needs only that
            // order (see "Memory orderings"). The CAS, never a blind store, is what makes
            // concurrent grants take disjoint tokens.
            self.end
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
        }
        #[cfg(pc_mutant = "bucket_store")]
        {
            // MUTANT (loom tests only): the CAS split into its load (done by the caller) and a
            // store, so two threads can grant the same tokens. The loom models must catch it.
            self.end.store(next, Ordering::Relaxed);
            Ok(current)
        }
    }

    /// The grant of `count` tokens ending at biased index `next`, at `now`. It computes
    /// nothing: its due instants are worked out only if the caller asks.
    #[inline(always)]
    fn grant(&self, next: u64, count: u64, now: u64) -> Grant<'_> {
        let grant = Grant {
            count,
            last: next,
            bucket: self,
        };
        debug_assert!(
            grant.due() <= now,
            "granted a token due at {} to a call at {now}",
            grant.due()
        );
        grant
    }

    /// The grant of 0 tokens at `now`: due at `now`.
    fn empty_grant(&self, now: u64) -> Grant<'_> {
        Grant {
            count: 0,
            last: now,
            bucket: self,
        }
    }

    /// The due instant of the token whose biased index is `index` (token `index - burst` of
    /// the clock; those at or below 0 were the initial fill and are due at 0).
    #[inline]
    pub(crate) const fn due_of_biased(&self, index: u64) -> u64 {
        due_of_biased(&self.clock.due_clock(), self.burst, index)
    }

    /// The refusal of `n` tokens when the state is `end`: they are there once the clock has
    /// issued token `end + n - burst` (biased index `end + n`), unless by then the count has
    /// come so near `u64::MAX` that `t + n` overflows (see `try_acquire`), which lasts.
    #[cold]
    fn not_yet(&self, end: u64, n: u64, now: u64) -> Denied {
        let ready_at = match end.checked_add(n) {
            // A refusal means token `end + n - burst` is not issued at `now`, so it is due
            // later, unless the count saturated at `u64::MAX` (584 years at 1e9/s): then no
            // later instant helps either, and "never" keeps waiters from spinning.
            Some(index) => match self.due_of_biased(index) {
                due if due > now && self.grants_at(end, n, due) => due,
                _ => u64::MAX,
            },
            None => u64::MAX,
        };
        // "Never" says so in both fields: a caller that sleeps `wait_ns` must not take a
        // finite `u64::MAX - now` for a due time.
        let wait_ns = match ready_at {
            u64::MAX => u64::MAX,
            due => due - now,
        };
        Denied::NotYet { ready_at, wait_ns }
    }

    /// Whether `n` tokens are granted at `instant` if `end` is still the state then, by the
    /// rule of `try_acquire`: `e + n <= t + burst` with `e = max(end, t)`, `e + n` not
    /// overflowing. (At a rate near `u64::MAX` tokens per nanosecond, the count can reach the
    /// top at the very instant the tokens were to be due.)
    #[cold]
    fn grants_at(&self, end: u64, n: u64, instant: u64) -> bool {
        let t = self.clock.tokens_at(instant);
        end.max(t)
            .checked_add(n)
            .is_some_and(|next| next.saturating_sub(self.burst) <= t)
    }
}

impl fmt::Debug for TokenBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBucket")
            .field("rate", &self.rate())
            .field("period", &self.period())
            .field("burst", &self.burst)
            // The schedule's position is a biased internal index, meaningless without the
            // caller's clock: left out.
            .finish_non_exhaustive()
    }
}
