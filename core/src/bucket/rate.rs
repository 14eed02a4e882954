//! The token clock: caller time (nanoseconds) to a token count and back, exactly, in fixed
//! point.
//!
//! `tokens_at(now) = floor(now * rate / period_ns)`, exactly, computed as
//! `floor(now * mult / 2^(64 + bits))` where `bits` is the bit length of `period_ns` and
//! `mult = ceil(rate * 2^(64 + bits) / period_ns)`:
//! - no division on the hot path: two 64x64->128-bit multiplications and a shift;
//! - exact, hence monotone and free of drift at every rate: `mult` exceeds the exact multiplier
//!   by less than 1, so `now * mult / 2^(64 + bits)` exceeds `now * rate / period_ns` by less
//!   than `2^64 / 2^(64 + bits) < 1 / period_ns`, while the fractional part of the exact value
//!   is at most `1 - 1 / period_ns`: the floor is the same (the classic argument for division
//!   by an invariant integer, Granlund and Montgomery 1994).
//!
//! The inverse, `due(k)`, is the first nanosecond at which `tokens_at` reaches `k`, that is
//! `ceil(k * period_ns / rate)`: estimated with a precomputed reciprocal (never late, early by
//! at most 2 ns), then corrected with `tokens_at` itself, so the two maps agree exactly (a token
//! is never reported due before it exists).

use core::fmt;
use core::time::Duration;

/// A bucket was configured with values it cannot honour. Returned by the `try_` constructors
/// of [`TokenBucket`](crate::bucket::TokenBucket), so a command-line tool can report a bad rate
/// instead of panicking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// `ceil(rate * 2^(64 + shift) / period_ns)`. Invariant: `mult < 2^128` (from
    /// `rate < 2^63`, see `new`).
    mult: u128,
    /// `shift` = the bit length of `period_ns`, so `2^shift > period_ns`. At most 64.
    shift: u32,
    /// `floor(period_ns * 2^64 / rate)`: nanoseconds per token, times `2^64`, rounded down (so
    /// an estimate made with it is never late; `due` corrects it upwards).
    inv: u128,
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
        let shift = u128::BITS - period_ns.leading_zeros(); // 1..=64
        // mult = ceil(a * 2^64 / period_ns) with a = rate * 2^shift < 2^127, by long division in
        // two 64-bit digits. The high digit `a / period_ns < 2 * rate < 2^64` (as
        // `2^shift <= 2 * period_ns`), so `mult <= (2^64 - 3) * 2^64 + 2^64 < 2^128`.
        let a = (rate as u128) << shift;
        let high = a / period_ns;
        let rem = a % period_ns; // < period_ns < 2^64, so `rem << 64` fits
        let low = (rem << 64) / period_ns;
        let round_up = (!(rem << 64).is_multiple_of(period_ns)) as u128;
        let mult = (high << 64) + low + round_up;
        // `period_ns < 2^64`, so `period_ns << 64` fits.
        let inv = (period_ns << 64) / rate as u128;
        let clock = Self {
            mult,
            shift,
            inv,
            rate,
            period_ns: period_ns as u64,
        };
        if clock.tokens_at(u64::MAX) == 0 {
            return Err(RateError::TooSlow);
        }
        Ok(clock)
    }

    /// How many tokens the clock has issued by instant `now` (since instant 0), exactly
    /// `floor(now * rate / period_ns)`, saturating at `u64::MAX`.
    #[inline]
    pub(crate) const fn tokens_at(&self, now: u64) -> u64 {
        saturate(mul_shr64(now, self.mult) >> self.shift)
    }

    /// The first instant at which `tokens_at` reaches `k`: `min { t : tokens_at(t) >= k }`, that
    /// is `ceil(k * period_ns / rate)`; or `u64::MAX` if that is not below `u64::MAX` (the token
    /// is never issued within the range of `now`).
    #[inline]
    pub(crate) fn due(&self, k: u64) -> u64 {
        if k == 0 {
            return 0;
        }
        // y = k * inv / 2^64 = estimate + fraction / 2^64: the 192-bit product, split.
        let low = (k as u128) * (self.inv as u64 as u128);
        let estimate = (k as u128) * (self.inv >> 64) + (low >> 64); // fits, as in `mul_shr64`
        let fraction = low as u64;
        // The exact x = k * period_ns / rate lies in [y, y + k / 2^64), since `inv` is short of
        // 2^64 * period_ns / rate by less than 1. So if 0 < fraction and fraction + k < 2^64,
        // then estimate < x < estimate + 1, and the answer is estimate + 1 with no check: the
        // usual case, as k / 2^64 is tiny for any realistic instant.
        if fraction != 0 && fraction.checked_add(k).is_some() && estimate < u64::MAX as u128 {
            let due = estimate as u64 + 1;
            debug_assert_eq!(due, self.due_by_search(k, estimate));
            return due;
        }
        self.due_by_search(k, estimate)
    }

    /// `due(k)` from an `estimate` in `(x - 2, x]` (see `due`), corrected with `tokens_at`.
    #[cold]
    fn due_by_search(&self, k: u64, estimate: u128) -> u64 {
        if estimate >= u64::MAX as u128 {
            return u64::MAX;
        }
        let mut t = estimate as u64;
        let mut steps = 0u32;
        while self.tokens_at(t) < k {
            if t == u64::MAX {
                return u64::MAX;
            }
            t += 1;
            steps += 1;
        }
        debug_assert!(steps <= 2, "due() estimate was more than 2 ns early");
        debug_assert!(
            t == 0 || self.tokens_at(t - 1) < k,
            "due() estimate was late"
        );
        t
    }

    /// The configured number of tokens per period.
    #[inline]
    pub(crate) const fn rate(&self) -> u64 {
        self.rate
    }

    /// The configured period.
    pub(crate) const fn period(&self) -> Duration {
        Duration::from_nanos(self.period_ns)
    }
}

impl fmt::Debug for TokenClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClock")
            .field("rate", &self.rate)
            .field("period", &self.period())
            .finish_non_exhaustive()
    }
}

/// `floor(a * b / 2^64)`, exactly. It fits: `a * b < 2^192`.
#[inline(always)]
const fn mul_shr64(a: u64, b: u128) -> u128 {
    let hi = b >> 64;
    let lo = b as u64 as u128;
    // `a * hi <= (2^64 - 1)^2 = 2^128 - 2^65 + 1` and the second term is below `2^64`: no overflow.
    (a as u128) * hi + (((a as u128) * lo) >> 64)
}

#[inline(always)]
const fn saturate(x: u128) -> u64 {
    if x > u64::MAX as u128 {
        u64::MAX
    } else {
        x as u64
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
                let exact = (now as u128 * rate as u128) / period as u128;
                assert_eq!(
                    c.tokens_at(now) as u128,
                    exact.min(u64::MAX as u128),
                    "{rate}/{period} at {now}"
                );
                let k = now >> (next() % 64);
                let due = (k as u128 * period as u128).div_ceil(rate as u128);
                assert_eq!(
                    c.due(k) as u128,
                    due.min(u64::MAX as u128),
                    "{rate}/{period} due {k}"
                );
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
