//! The token clock: caller time (nanoseconds) to a token count and back, exactly, in fixed
//! point.
//!
//! `tokens_at(now) = floor(now * rate / period_ns)`, exactly, computed as
//! `now * whole + floor(now * frac / 2^128)`, where `whole = floor(rate / period_ns)` and
//! `frac = ceil((rate mod period_ns) * 2^128 / period_ns)`:
//! - no division and no shift on the hot path: at most three 64x64-bit multiplications side by
//!   side and one add behind them; for rates below 10^9 per second two and no add, for a whole
//!   number per nanosecond one (the carry between the two fractional words is a branch, almost
//!   never taken), so the value the bucket's CAS needs is a multiplication behind `now`;
//! - exact, hence monotone and free of drift at every rate: writing `r = rate mod period_ns`,
//!   `frac` exceeds `r * 2^128 / period_ns` by less than 1, so `now * frac / 2^128` exceeds
//!   `now * r / period_ns` by less than `2^64 / 2^128 < 1 / period_ns`, while the fractional
//!   part of `now * r / period_ns` is at most `1 - 1 / period_ns`: the floor is the same (the
//!   classic argument for division by an invariant integer, Granlund and Montgomery 1994), and
//!   `now * whole + floor(now * r / period_ns) = floor(now * rate / period_ns)`.
//!
//! The inverse, `due(k)`, is the first nanosecond at which `tokens_at` reaches `k`, that is
//! `ceil(k * period_ns / rate)`: computed with a precomputed reciprocal (two multiplications),
//! which pins it down except when the instant lies within `k / 2^64` ns of an integer without
//! being one; an exact division settles those. So the two maps agree exactly (a token is never reported due before it
//! exists). The inverse is a small `Copy` value of its own ([`DueClock`]), so a
//! [`Grant`](super::Grant) can carry it and compute its due instants only when asked.

use core::fmt;
use core::time::Duration;

/// A bucket was configured with values it cannot honour. Returned by the `try_` constructors
/// of [`TokenBucket`](crate::bucket::TokenBucket), so a command-line tool can report a bad rate
/// instead of panicking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateError {
    /// The rate was 0 tokens per period.
    ZeroRate,
    /// The period was zero.
    ZeroPeriod,
    /// The burst (capacity) was 0: no request could ever be granted.
    ZeroBurst,
    /// The period is `2^64` ns (584 years) or longer, or the rate issues no token within
    /// `2^64` ns: the range of `now`.
    TooSlow,
    /// The rate is `2^63` tokens per period or more.
    TooFast,
    /// The burst is `2^63` tokens or more. The bucket counts its tokens plus its burst in 64
    /// bits, so a burst near `2^64` would leave it almost no tokens to count before it denies
    /// for good (a burst of `u64::MAX` is "never", not "unlimited").
    BurstTooLarge,
}

impl RateError {
    /// The message a `const` constructor panics with.
    pub(crate) const fn message(self) -> &'static str {
        match self {
            Self::ZeroRate => "token bucket rate must be at least 1 token per period",
            Self::ZeroPeriod => "token bucket period must be longer than 0 ns",
            Self::ZeroBurst => "token bucket burst (capacity) must be at least 1",
            Self::TooSlow => {
                "token bucket rate must issue a token within 2^64 ns (584 years), and its period \
                 must be shorter than that"
            }
            Self::TooFast => "token bucket rate must be below 2^63 tokens per period",
            Self::BurstTooLarge => "token bucket burst must be below 2^63 tokens",
        }
    }
}

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for RateError {}

/// The fixed-point map between nanoseconds and tokens. Immutable after construction.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenClock {
    /// `ceil((rate mod period_ns) * 2^128 / period_ns)`: the fraction of a token issued per
    /// nanosecond, in fixed point with 128 fractional bits, rounded up. Invariant: below
    /// `2^128 - 2^64` (see `new`).
    frac: u128,
    /// `floor(rate / period_ns)`: whole tokens issued per nanosecond (0 below 10^9 per second).
    whole: u64,
    /// The largest `now` for which `now * whole` fits a `u64` (`u64::MAX` if `whole` is 0), so
    /// the hot path can multiply without an overflow-reporting (slower) multiplication.
    whole_limit: u64,
    /// The inverse map, with the configured rate and period.
    due: DueClock,
}

/// The inverse map, token index to due instant: a copy of four words, which a
/// [`Grant`](super::Grant) carries so that it computes its due instants only when asked.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct DueClock {
    /// `ceil(period_ns * 2^64 / rate)` (nanoseconds per token, times `2^64`, rounded up, so
    /// an estimate made with it is never early), split into its high and low 64-bit words.
    inv_whole: u64,
    inv_frac: u64,
    /// The configured rate and period. Invariants: `1 <= rate < 2^63`, `1 <= period_ns`.
    rate: u64,
    period_ns: u64,
}

impl TokenClock {
    /// The clock for `rate` tokens every `period`.
    pub(crate) const fn new(rate: u64, period: Duration) -> Result<Self, RateError> {
        let period_ns = period.as_nanos();
        if rate == 0 {
            return Err(RateError::ZeroRate);
        }
        if period_ns == 0 {
            return Err(RateError::ZeroPeriod);
        }
        if rate >= 1 << 63 {
            return Err(RateError::TooFast);
        }
        if period_ns > u64::MAX as u128 {
            return Err(RateError::TooSlow);
        }
        // frac = ceil(r * 2^128 / period_ns) with r = rate mod period_ns < period_ns < 2^64, by
        // long division in two 64-bit digits; each digit is below 2^64 as r < period_ns. As
        // `r <= period_ns - 1`, `r * 2^128 / period_ns <= 2^128 - 2^128 / period_ns < 2^128 -
        // 2^64`, so rounding up cannot overflow.
        let r = rate as u128 % period_ns;
        let high = (r << 64) / period_ns;
        let rem = (r << 64) % period_ns; // < period_ns < 2^64, so `rem << 64` fits
        let low = (rem << 64) / period_ns;
        let round_up = (!(rem << 64).is_multiple_of(period_ns)) as u128;
        let frac = ((high << 64) | low) + round_up;
        // `period_ns < 2^64`, so `period_ns << 64` fits, and `inv / 2^64 <= period_ns < 2^64`.
        let inv = (period_ns << 64).div_ceil(rate as u128);
        let whole = (rate as u128 / period_ns) as u64;
        let clock = Self {
            frac,
            whole,
            whole_limit: match u64::MAX.checked_div(whole) {
                Some(limit) => limit,
                None => u64::MAX,
            },
            due: DueClock {
                inv_whole: (inv >> 64) as u64,
                inv_frac: inv as u64,
                rate,
                period_ns: period_ns as u64,
            },
        };
        if clock.tokens_at(u64::MAX) == 0 {
            return Err(RateError::TooSlow);
        }
        Ok(clock)
    }

    /// How many tokens the clock has issued by instant `now` (since instant 0), exactly
    /// `floor(now * rate / period_ns)`, saturating at `u64::MAX`.
    ///
    /// This is on the path from the caller's clock read to the bucket's CAS, so it is written
    /// for latency: `floor(now * frac / 2^128)` is the high word of `now * frac_hi` plus the
    /// carry out of adding its low word to the high word of `now * frac_lo`. That carry is
    /// almost never set (the second word is below `now`, so the chance is under `now / 2^64`,
    /// 5e-8 after 15 minutes of nanoseconds), so instead of an add-with-carry behind both
    /// multiplications it is a branch to [`tokens_at_exactly`](Self::tokens_at_exactly),
    /// as is saturation. The two common shapes of rate skip what they do not need (a branch
    /// on fields fixed at construction, so always predicted): under one token per nanosecond
    /// (`whole == 0`, every rate below 10^9 per second) it is the high word of `now * frac_hi`
    /// (the other product feeds only the carry branch), with no add behind it; with a whole
    /// number per nanosecond (`frac == 0`) it is one plain multiplication, its overflow checked
    /// against a precomputed limit rather than by a slower overflow-reporting multiply.
    /// These shapes made `try_acquire` level with governor's where the general form trailed
    /// it (`docs/performance-log.md`, "Figures that were in the code").
    #[inline]
    pub(crate) const fn tokens_at(&self, now: u64) -> u64 {
        if self.frac == 0 {
            // A whole number of tokens per nanosecond: one multiplication (saturating).
            if now > self.whole_limit {
                return self.tokens_at_exactly(now);
            }
            return now.wrapping_mul(self.whole);
        }
        if self.whole == 0 {
            // Under one token per nanosecond (every rate below 10^9 per second): the high
            // word of one product, plus the rare carry from the low word.
            let high = (now as u128) * (self.frac >> 64);
            let low = ((now as u128) * (self.frac as u64 as u128)) >> 64;
            if (high as u64).checked_add(low as u64).is_none() {
                return self.tokens_at_exactly(now);
            }
            return (high >> 64) as u64;
        }
        let high = (now as u128) * (self.frac >> 64);
        let low = ((now as u128) * (self.frac as u64 as u128)) >> 64;
        let carries = (high as u64).checked_add(low as u64).is_none();
        let (whole, overflow) = now.overflowing_mul(self.whole);
        let (t, overflow_too) = whole.overflowing_add((high >> 64) as u64);
        if carries | overflow | overflow_too {
            return self.tokens_at_exactly(now);
        }
        debug_assert!(
            t == self.tokens_at_exactly(now),
            "tokens_at fast path disagrees"
        );
        t
    }

    /// `tokens_at`, the straightforward way: when the low words carry, or it saturates.
    #[cold]
    #[inline(never)]
    const fn tokens_at_exactly(&self, now: u64) -> u64 {
        // `high <= (2^64 - 1)^2 = 2^128 - 2^65 + 1` and `low < 2^64`, so their sum fits; and it
        // is below 2^128, so its high word is below 2^64 (it is at most `now`).
        let high = (now as u128) * (self.frac >> 64);
        let low = ((now as u128) * (self.frac as u64 as u128)) >> 64;
        let part = ((high + low) >> 64) as u64;
        now.saturating_mul(self.whole).saturating_add(part)
    }

    /// The first instant at which `tokens_at` reaches `k` (see [`DueClock::due`]).
    #[cfg(test)]
    pub(crate) const fn due(&self, k: u64) -> u64 {
        self.due.due(k)
    }

    /// The inverse map, to hand out with a grant.
    #[inline]
    pub(crate) const fn due_clock(&self) -> DueClock {
        self.due
    }

    /// The configured number of tokens per period.
    #[inline]
    pub(crate) const fn rate(&self) -> u64 {
        self.due.rate
    }

    /// The configured period.
    pub(crate) const fn period(&self) -> Duration {
        Duration::from_nanos(self.due.period_ns)
    }
}

impl DueClock {
    /// The first instant at which the clock's `tokens_at` reaches `k`: `min { t : tokens_at(t)
    /// >= k }`, that is `ceil(k * period_ns / rate)`; or `u64::MAX` if that is not below
    /// `u64::MAX` (the token is never issued within the range of `now`).
    #[inline]
    pub(crate) const fn due(&self, k: u64) -> u64 {
        // y = k * inv / 2^64 = estimate + fraction / 2^64: the 192-bit product, split. It fits:
        // `k * inv_whole <= (2^64 - 1)^2` and the carried word is below 2^64.
        let low = (k as u128) * (self.inv_frac as u128);
        let estimate = (k as u128) * (self.inv_whole as u128) + (low >> 64);
        let fraction = low as u64;
        // `inv` exceeds 2^64 * period_ns / rate by less than 1 (or equals it), so the exact
        // x = k * period_ns / rate lies in (y - k / 2^64, y], with k / 2^64 < 1. Hence:
        // - fraction == 0: x in (estimate - 1, estimate], so ceil(x) = estimate (every token
        //   when a token interval is a whole number of ns, and k = 0);
        // - fraction >= k: x in (estimate, estimate + 1), so ceil(x) = estimate + 1 (nearly
        //   every other token);
        // - otherwise x is within k / 2^64 ns of an integer: divide.
        let due = if fraction == 0 {
            estimate
        } else if fraction >= k {
            estimate + 1
        } else {
            return self.exact_due(k);
        };
        let due = if due > u64::MAX as u128 {
            u64::MAX
        } else {
            due as u64
        };
        debug_assert!(due == self.exact_due(k), "due() fast path disagrees");
        due
    }

    /// `due(k)` by exact division: `ceil(k * period_ns / rate)`, saturating at `u64::MAX`.
    #[cold]
    const fn exact_due(&self, k: u64) -> u64 {
        // `k * period_ns < 2^128`: fits.
        let due = (k as u128 * self.period_ns as u128).div_ceil(self.rate as u128);
        if due > u64::MAX as u128 {
            u64::MAX
        } else {
            due as u64
        }
    }
}

impl fmt::Debug for TokenClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClock")
            .field("rate", &self.rate())
            .field("period", &self.period())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for DueClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DueClock")
            .field("rate", &self.rate)
            .field("period", &Duration::from_nanos(self.period_ns))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_nanosecond_is_the_identity() {
        let c = TokenClock::new(1_000_000_000, Duration::from_secs(1)).unwrap();
        for t in [0, 1, 2, 999, 1 << 40, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
            assert_eq!(c.tokens_at(t), t);
            assert_eq!(c.due(t), t);
        }
    }

    #[test]
    fn due_inverts_tokens_at() {
        for (rate, period) in [
            (1, Duration::from_secs(3600)),
            (7, Duration::from_secs(60)),
            (500, Duration::from_secs(1)),
            (300_000_000, Duration::from_secs(1)),
            ((1 << 63) - 1, Duration::from_nanos(1)),
            (999_999_937, Duration::from_nanos(u64::MAX)),
            (1, Duration::from_nanos(u64::MAX)),
        ] {
            let c = TokenClock::new(rate, period).unwrap();
            for k in [1, 2, 3, 1000, 1 << 33, u64::MAX / 3, u64::MAX] {
                let t = c.due(k);
                if t < u64::MAX {
                    assert!(c.tokens_at(t) >= k, "{rate}/{period:?} k={k} t={t}");
                }
                if t > 0 {
                    assert!(c.tokens_at(t - 1) < k, "{rate}/{period:?} k={k} t={t}");
                }
            }
        }
    }

    /// `c.tokens_at(now)` is `floor(now * rate / period)` by exact division, saturated.
    fn assert_tokens_at_exact(c: &TokenClock, rate: u64, period: u64, now: u64) {
        let exact = (now as u128 * rate as u128) / period as u128;
        assert_eq!(
            c.tokens_at(now) as u128,
            exact.min(u64::MAX as u128),
            "{rate}/{period} at {now}"
        );
    }

    /// `c.due(k)` is `ceil(k * period / rate)` by exact division, saturated.
    fn assert_due_exact(c: &TokenClock, rate: u64, period: u64, k: u64) {
        let exact = (k as u128 * period as u128).div_ceil(rate as u128);
        assert_eq!(
            c.due(k) as u128,
            exact.min(u64::MAX as u128),
            "{rate}/{period} due {k}"
        );
    }

    #[test]
    fn tokens_at_is_exact_on_every_path() {
        // Whole tokens per ns only (frac == 0), under one per ns (whole == 0), and both; each
        // at the instants where the whole part's product stops fitting a u64.
        let shapes: [(u64, u64); 8] = [
            (1_000_000_000, 1_000_000_000),
            (3_000_000_000, 1_000_000_000),
            (1 << 62, 1),
            (100_000, 1_000_000_000),
            (1, 3_600_000_000_000),
            (1_500_000_000, 1_000_000_000),
            (7, 3),
            ((1 << 63) - 1, 1_000_000_007),
        ];
        for (rate, period) in shapes {
            let c = TokenClock::new(rate, Duration::from_nanos(period)).unwrap();
            let whole = rate / period;
            let mut instants = alloc::vec![0, 1, 999, period - 1, period, u64::MAX - 1, u64::MAX];
            if let Some(limit) = u64::MAX.checked_div(whole) {
                instants.extend([limit - 1, limit, limit.saturating_add(1)]);
            }
            for now in instants {
                assert_tokens_at_exact(&c, rate, period, now);
            }
        }
    }

    #[test]
    fn tokens_at_and_due_are_exact() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            // xorshift64*: deterministic, no dependency.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        for _ in 0..20_000 {
            let rate = next() >> (1 + next() % 63);
            let period = next() >> (next() % 64);
            let Ok(c) = TokenClock::new(rate, Duration::from_nanos(period)) else {
                continue;
            };
            for now in [
                next(),
                next() >> (next() % 64),
                u64::MAX,
                period,
                period - 1,
            ] {
                assert_tokens_at_exact(&c, rate, period, now);
                assert_due_exact(&c, rate, period, now >> (next() % 64));
            }
        }
    }

    #[test]
    fn due_is_exact_for_runs_of_consecutive_tokens() {
        // Every token of long runs, at small and huge indices, for clocks whose token interval
        // is whole (the `fraction == 0` case), a repeating fraction (tokens landing exactly on
        // a nanosecond, the divided case) and irrational-looking: each against exact division.
        for (rate, period_ns) in [
            (1_000_000_000, 1_000_000_000),
            (1000, 1_000_000_000),
            (3, 1_000_000_000),
            (300_000_000, 1_000_000_000),
            (7, 60_000_000_000),
            (999_999_937, 1_000_000_007),
            ((1 << 63) - 1, 1),
            (1, u64::MAX),
        ] {
            let c = TokenClock::new(rate, Duration::from_nanos(period_ns)).unwrap();
            for start in [0, 1 << 20, 1 << 40, u64::MAX / 3, u64::MAX - 300] {
                for k in start..start.saturating_add(300) {
                    assert_due_exact(&c, rate, period_ns, k);
                }
            }
        }
    }

    #[test]
    fn rejects_unusable_rates() {
        assert_eq!(
            TokenClock::new(0, Duration::from_secs(1)),
            Err(RateError::ZeroRate)
        );
        assert_eq!(
            TokenClock::new(1, Duration::ZERO),
            Err(RateError::ZeroPeriod)
        );
        assert_eq!(TokenClock::new(1, Duration::MAX), Err(RateError::TooSlow));
        assert_eq!(
            TokenClock::new(1 << 63, Duration::from_secs(1)),
            Err(RateError::TooFast)
        );
        assert!(TokenClock::new(1, Duration::from_nanos(u64::MAX)).is_ok());
    }
}
