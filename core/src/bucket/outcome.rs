//! What an acquire returns: a [`Grant`] with the tokens' scheduled instants, or why not.

use core::fmt;

use super::rate::TokenClock;

/// Tokens taken from a [`TokenBucket`](super::TokenBucket), and when they were scheduled.
///
/// Every token has a *due instant*: the first nanosecond at which the bucket's clock had issued
/// it. That is the time a rate-limited producer *intended* to use it, so stamping a message with
/// it (rather than with the time the producer got round to it) keeps latency measurements free
/// of coordinated omission. A token is never due after the `now` of the call that granted it;
/// tokens of one grant are due in order, `first_due() <= due()`.
///
/// Tokens that were in the bucket when it was made "full" have no schedule: they are due at 0.
#[must_use = "a grant carries the instants the tokens were due"]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Grant {
    /// How many tokens were taken.
    pub(crate) count: u64,
    /// The due instant of the first and the last token (both `now` for an empty grant).
    pub(crate) first_due: u64,
    pub(crate) due: u64,
    /// The bucket's state after this grant: the index (biased by `burst`) of its last token.
    pub(crate) end: u64,
}

impl Grant {
    /// How many tokens were taken (0 only when 0 were asked for).
    #[must_use]
    #[inline]
    pub const fn count(&self) -> u64 {
        self.count
    }

    /// The due instant of the last token of the grant, in the caller's nanoseconds. For a
    /// one-token grant, the token's scheduled time.
    #[must_use]
    #[inline]
    pub const fn due(&self) -> u64 {
        self.due
    }

    /// The due instant of the first token of the grant.
    #[must_use]
    #[inline]
    pub const fn first_due(&self) -> u64 {
        self.first_due
    }
}

/// Why an acquire took nothing.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Denied {
    /// Not enough tokens yet. If no other thread takes any, the request can be granted at
    /// `ready_at`, which is `wait_ns` after the caller's `now`. `ready_at == u64::MAX` means
    /// "not within the range of the clock": treat it as never.
    NotYet {
        /// The instant (caller's nanoseconds) the tokens will be there.
        ready_at: u64,
        /// `ready_at - now`.
        wait_ns: u64,
    },
    /// More tokens were asked for than the bucket holds: no wait will ever satisfy it. Ask
    /// for at most `burst`, or use a partial take (`try_acquire_up_to`).
    ExceedsBurst {
        /// The `n` asked for.
        requested: u64,
        /// The bucket's capacity.
        burst: u64,
    },
}

impl Denied {
    /// How long to wait before retrying, or `None` if retrying can never succeed.
    #[must_use]
    #[inline]
    pub const fn wait_ns(&self) -> Option<u64> {
        match *self {
            Self::NotYet {
                ready_at: u64::MAX, ..
            }
            | Self::ExceedsBurst { .. } => None,
            Self::NotYet { wait_ns, .. } => Some(wait_ns),
        }
    }

    /// Whether the request can never be granted, however long the caller waits.
    #[must_use]
    #[inline]
    pub const fn is_never(&self) -> bool {
        self.wait_ns().is_none()
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotYet { wait_ns, .. } => write!(f, "rate limited: tokens due in {wait_ns} ns"),
            Self::ExceedsBurst { requested, burst } => {
                write!(
                    f,
                    "asked for {requested} tokens from a bucket that holds {burst}"
                )
            }
        }
    }
}

impl core::error::Error for Denied {}

/// The due instant of every token of a [`Grant`], in order: see
/// [`TokenBucket::schedule`](super::TokenBucket::schedule).
#[must_use = "iterators are lazy"]
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Biased index of the next token to report, and one past the last.
    next: u64,
    end: u64,
    clock: TokenClock,
    burst: u64,
}

impl Schedule {
    pub(crate) const fn new(grant: &Grant, clock: TokenClock, burst: u64) -> Self {
        Self {
            next: grant.end - grant.count,
            end: grant.end,
            clock,
            burst,
        }
    }
}

impl Iterator for Schedule {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        if self.next == self.end {
            return None;
        }
        self.next += 1;
        Some(due_of_biased(&self.clock, self.burst, self.next))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match usize::try_from(self.end - self.next) {
            Ok(left) => (left, Some(left)),
            Err(_) => (usize::MAX, None),
        }
    }
}

/// The due instant of the token whose biased index is `index` (token `index - burst` of the
/// clock; those at or below 0 were the initial fill and are due at 0).
#[inline]
pub(crate) fn due_of_biased(clock: &TokenClock, burst: u64, index: u64) -> u64 {
    clock.due(index.saturating_sub(burst))
}
