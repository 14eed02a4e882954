//! What an acquire returns: a [`Grant`] with the tokens' scheduled instants, or why not.

use core::fmt;
use core::hash::{Hash, Hasher};

use super::TokenBucket;
use super::rate::DueClock;

/// Tokens taken from a [`TokenBucket`], and when they were scheduled.
///
/// Every token has a *due instant*: the first nanosecond at which the bucket's clock had issued
/// it. That is the time a rate-limited producer *intended* to use it, so stamping a message with
/// it (rather than with the time the producer got round to it) keeps latency measurements free
/// of coordinated omission. A token is never due after the `now` of the call that granted it;
/// tokens of one grant are due in order, `first_due() <= due()`.
///
/// Tokens that were in the bucket when it was made "full" have no schedule: they are due at 0.
///
/// A grant borrows its bucket and is three words: the due instants are computed from the
/// bucket's (immutable) clock only when asked for, so an acquire does no work for them. Two
/// grants are equal when they hold the same tokens of the same bucket (two empty grants: when
/// they report the same `now` as their due instant, and come from the same bucket).
///
/// A grant is `Clone` but not `Copy`: [`split_due`](Self::split_due) consumes it, so a
/// reservation split into the part handed out now and the part kept cannot be handed out
/// again by mistake; a `clone` says so where it is meant.
#[must_use = "a grant carries the instants the tokens were due"]
#[derive(Clone)]
pub struct Grant<'a> {
    /// How many tokens were taken.
    pub(crate) count: u64,
    /// With `count > 0`, the index (biased by `burst`) of its last token (for a grant from an
    /// acquire, the bucket's state after it). With `count == 0`, the caller's `now`, which an
    /// empty grant reports as its due instant.
    pub(crate) last: u64,
    /// The bucket that granted the tokens, for its clock and burst.
    pub(crate) bucket: &'a TokenBucket,
}

impl Grant<'_> {
    /// How many tokens were taken (0 only when 0 were asked for).
    #[must_use]
    #[inline]
    pub const fn count(&self) -> u64 {
        self.count
    }

    /// The due instant of the last token of the grant, in the caller's nanoseconds. For a
    /// one-token grant, the token's scheduled time. Computed on each call (two multiplications).
    #[must_use]
    #[inline]
    pub const fn due(&self) -> u64 {
        if self.count == 0 {
            return self.last;
        }
        self.bucket.due_of_biased(self.last)
    }

    /// The due instant of the first token of the grant. Computed on each call (two
    /// multiplications).
    #[must_use]
    #[inline]
    pub const fn first_due(&self) -> u64 {
        if self.count == 0 {
            return self.last;
        }
        // `count <= last`: the grant took the indices `(last - count, last]`, all above 0.
        self.bucket.due_of_biased(self.last - self.count + 1)
    }

    /// The due instant of every token of the grant, in order: one intended send time per
    /// message for a batch producer.
    ///
    /// ```
    /// let bucket = pc_core::TokenBucket::per_second(1000, 8).starting_empty_at(0);
    /// let grant = bucket.try_acquire_up_to(8, 4_500_000).unwrap();
    /// let due: Vec<u64> = grant.schedule().collect();
    /// assert_eq!(due, [1_000_000, 2_000_000, 3_000_000, 4_000_000]);
    /// ```
    #[inline]
    pub fn schedule(&self) -> Schedule {
        Schedule::new(self, self.bucket.clock.due_clock(), self.bucket.burst)
    }

    /// Splits a grant in two, in order: every token of it due at or before `now`, up to `max`
    /// of them, and the rest. No token is handed out early by this, and none is given back
    /// to the bucket: the two parts' schedules together are this grant's. Either part may be
    /// empty (`count() == 0`; an empty part's `due()` is `now`). Computed from the bucket's
    /// clock in a few multiplications, whatever the grant's size.
    ///
    /// A caller that reserved tokens ahead (acquired with a future instant as `now`) hands out
    /// the first part and keeps the second for later.
    ///
    /// ```
    /// let bucket = pc_core::TokenBucket::per_second(1000, 10).starting_empty_at(0);
    /// // Reserve the tokens due within the next 5 ms: those of 1, 2, 3, 4 and 5 ms.
    /// let reserved = bucket.try_acquire_up_to(10, 5_000_000).unwrap();
    /// let (due, later) = reserved.split_due(2_500_000, 10);
    /// assert_eq!((due.count(), due.first_due(), due.due()), (2, 1_000_000, 2_000_000));
    /// assert_eq!((later.count(), later.first_due(), later.due()), (3, 3_000_000, 5_000_000));
    /// // A grant is not `Copy`: splitting consumes it. Cloning copies the record, and
    /// // handing out both copies would hand out each token twice.
    /// let (none, all) = later.clone().split_due(2_999_999, 10);
    /// assert_eq!((none.count(), none.due(), all), (0, 2_999_999, later.clone()));
    /// let (one, two) = later.split_due(9_000_000, 1);
    /// assert_eq!((one.count(), one.due(), two.count(), two.first_due()), (1, 3_000_000, 2, 4_000_000));
    /// ```
    #[inline]
    pub fn split_due(self, now: u64, max: u64) -> (Self, Self) {
        // The grant took the biased indices `(last - count, last]`, due in order; the one at
        // biased index `i` is due by `now` exactly when the clock has issued token
        // `i - burst` by then (indices up to `burst`, the initial fill, are due at 0). So the
        // due ones are those up to `tokens_at(now) + burst`. (Saturating: a sum past `u64::MAX`
        // means every token is due.)
        let due_up_to = self
            .bucket
            .tokens_at(now)
            .saturating_add(self.bucket.burst());
        let before_first = self.last - self.count; // `count <= last` (empty: `last` is `now`)
        let due = due_up_to
            .saturating_sub(before_first)
            .min(self.count)
            .min(max);
        let part = |count: u64, last: u64| Grant {
            count,
            // An empty grant reports the caller's instant as its due instant.
            last: if count == 0 { now } else { last },
            bucket: self.bucket,
        };
        (
            part(due, before_first + due),
            part(self.count - due, self.last),
        )
    }
}

impl PartialEq for Grant<'_> {
    fn eq(&self, other: &Self) -> bool {
        (self.count, self.last) == (other.count, other.last)
            && core::ptr::eq(self.bucket, other.bucket)
    }
}

impl Eq for Grant<'_> {}

impl Hash for Grant<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.count, self.last, core::ptr::from_ref(self.bucket)).hash(state);
    }
}

impl fmt::Debug for Grant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("count", &self.count)
            .field("first_due", &self.first_due())
            .field("due", &self.due())
            .finish()
    }
}

/// Why an acquire took nothing.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Denied {
    /// Not enough tokens yet. If no other thread takes any, the request can be granted at
    /// `ready_at`, which is `wait_ns` after the caller's `now`. `ready_at == u64::MAX` means
    /// "not within the range of the clock": never, and then `wait_ns` is `u64::MAX` too
    /// ([`wait_ns()`](Self::wait_ns) says `None`, [`is_never`](Self::is_never) `true`). A
    /// request that would be due at exactly `u64::MAX`, the clock's last instant, is reported
    /// as never as well.
    NotYet {
        /// The instant (caller's nanoseconds) the tokens will be there; `u64::MAX`: never.
        ready_at: u64,
        /// `ready_at - now`; `u64::MAX` when `ready_at` is (never).
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

    /// Whether the request can never be granted, however long the caller waits (or only at
    /// the clock's last instant, `u64::MAX`: see [`NotYet`](Self::NotYet)).
    #[must_use]
    #[inline]
    pub const fn is_never(&self) -> bool {
        self.wait_ns().is_none()
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotYet {
                ready_at: u64::MAX, ..
            } => f.write_str("rate limited: the tokens are not due within the clock's range"),
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

/// The due instant of every token of a [`Grant`], in order: see [`Grant::schedule`]. Its
/// `Debug` shows how many instants are left and the next one (the caller's clock's time).
#[must_use = "iterators are lazy"]
#[derive(Clone)]
pub struct Schedule {
    /// Biased index of the last token reported (the first reported is `next + 1`), and of the
    /// last to report.
    next: u64,
    end: u64,
    clock: DueClock,
    burst: u64,
}

impl Schedule {
    pub(crate) const fn new(grant: &Grant<'_>, clock: DueClock, burst: u64) -> Self {
        // An empty grant gives `next == end`: nothing to report, whatever `last` holds.
        Self {
            next: grant.last - grant.count,
            end: grant.last,
            clock,
            burst,
        }
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let next_due =
            (self.next != self.end).then(|| due_of_biased(&self.clock, self.burst, self.next + 1));
        f.debug_struct("Schedule")
            .field("left", &(self.end - self.next))
            .field("next_due", &next_due)
            .finish()
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

/// Once it has said `None`, it says `None` for good. (Not an `ExactSizeIterator`: on a 32-bit
/// target a grant can hold more tokens than a `usize` counts.)
impl core::iter::FusedIterator for Schedule {}

/// The due instant of the token whose biased index is `index` (token `index - burst` of the
/// clock; those at or below 0 were the initial fill and are due at 0).
#[inline]
pub(crate) const fn due_of_biased(clock: &DueClock, burst: u64, index: u64) -> u64 {
    clock.due(index.saturating_sub(burst))
}
