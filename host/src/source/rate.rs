//! How sources use the one shared token bucket: the tokens already due, up to a chunk of
//! about a millisecond of the rate (a source that fell behind catches up in chunks); while none
//! is due, one reserved token at a time, so a source that keeps pace takes one per wake-up;
//! naps short enough to notice a stop.

use std::sync::atomic::Ordering;
use std::time::Duration;

use pc_core::{Grant, TokenBucket};

use super::Context;

/// The longest pause between two checks of the stop flag while waiting for tokens.
const MAX_NAP: Duration = Duration::from_millis(5);

/// Makes the calling thread's naps until a token of `bucket` is due end when it is due, where
/// that costs no extra wake-ups. Linux lets a timed sleep end up to the thread's timer slack
/// late (50 us by default) so that it can batch wake-ups, and a source that naps until its
/// next token adds that lateness to every message's latency (README, "Latency").
///
/// A nap that ends late takes every token that came due meanwhile. So where tokens come
/// further apart than the slack, each takes its own wake-up whatever the slack, and this sets
/// the slack to 1 ns; where they come closer, the slack batches them (without it, a fast rate
/// would take a wake-up per message, and the consumers about a commit each), and this leaves
/// it. No bucket (no rate): left as it is. The slack applies to every timed sleep of the thread
/// (and to threads it starts), not only these naps. Best effort: a kernel that refuses leaves
/// it; elsewhere than Linux, nothing.
pub fn wake_on_time(bucket: Option<&TokenBucket>) {
    let Some(bucket) = bucket else { return };
    #[cfg(target_os = "linux")]
    {
        // A bucket's rate is at least 1 (`TokenBucket::try_new`).
        let interval = bucket.period().as_nanos() / u128::from(bucket.rate());
        // SAFETY: PR_GET_TIMERSLACK and PR_SET_TIMERSLACK take integer arguments (no pointer;
        // the kernel ignores the unused ones) and read or change only the calling thread's
        // timer slack: no memory of ours is touched.
        unsafe {
            let slack = libc::prctl(libc::PR_GET_TIMERSLACK);
            if u128::try_from(slack).is_ok_and(|slack| slack > 1 && interval > slack) {
                libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = bucket;
}

/// What a take gave.
#[derive(Debug)]
pub enum Take<'b> {
    /// Tokens (or, with no bucket, permission for `want` records), handed out at clock `now`
    /// (for a reserved token, when it came due, not when it was reserved).
    Go { grant: Option<Grant<'b>>, now: u64 },
    /// Stop: the run is stopping, or the deadline has passed.
    Stop,
}

impl<'a> Context<'a> {
    /// Takes between 1 and `want` tokens (`want >= 1`); with no bucket, returns at once.
    ///
    /// While none is due it reserves the next one (taking it from the bucket with the instant
    /// it is due as `now`) and naps until then, rather than napping and racing for it: every
    /// source sharing the bucket would wake for each token, and all but one would find it
    /// taken (four generators at 10k msg/s woke some 28,000 times a second). The others
    /// reserve the tokens after it; one that loses the race for a token tries for the next at
    /// once. A token is never handed out before it is due, nor one due at or after the
    /// deadline; one reserved and not yet due when the run stops goes unused.
    pub fn take(&self, want: u64) -> Take<'a> {
        loop {
            let now = match self.now_unless_stopped() {
                Some(now) => now,
                None => return Take::Stop,
            };
            let Some(bucket) = self.bucket else {
                return Take::Go { grant: None, now };
            };
            // Granted tokens are due at or before `now`, so before the deadline.
            let wait = match bucket.try_acquire_up_to(want, now) {
                Ok(grant) => {
                    return Take::Go {
                        grant: Some(grant),
                        now,
                    };
                }
                Err(denied) => denied.wait_ns(),
            };
            if let Some(wait) = wait {
                let next = now.saturating_add(wait);
                let latest = self
                    .deadline
                    .map_or(next, |d| next.min(d.saturating_sub(1)));
                if let Ok(grant) = bucket.try_acquire_up_to(1, latest) {
                    return self.when_due(grant);
                }
                if latest == next {
                    // Another source reserved it first: try for the one after it at once.
                    continue;
                }
            }
            // None comes before the deadline (or none ever): nap, to notice the stop.
            std::thread::sleep(wait.map_or(MAX_NAP, Duration::from_nanos).min(MAX_NAP));
        }
    }

    /// Naps until `grant` is due, then hands it out (or stops, if the run stops before it is
    /// due). A token due before the deadline is handed out even if the nap ends after it, or
    /// after the run was told to stop at the deadline.
    fn when_due(&self, grant: Grant<'a>) -> Take<'a> {
        let due = grant.due();
        loop {
            let now = self.clock.now();
            if now >= due {
                return Take::Go {
                    grant: Some(grant),
                    now,
                };
            }
            if self.stop.load(Ordering::Relaxed) {
                return Take::Stop;
            }
            std::thread::sleep(Duration::from_nanos(due - now).min(MAX_NAP));
        }
    }

    /// The clock, unless the run is stopping or its deadline has passed.
    fn now_unless_stopped(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let now = self.clock.now();
        self.deadline.is_none_or(|d| now < d).then_some(now)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use pc_core::{Clock, Denied, TokenBucket};

    use super::{Context, Take};
    use crate::queue::Queue;
    use crate::source::tests::context;

    /// Takes one token from a bucket of 1,000 tokens a second and the given burst, which starts
    /// empty (so none is due when the take starts); `deadline` gets the instant the first token
    /// is due and gives the run's deadline. `check` sees the take, the bucket, that instant and
    /// a clock reading taken after the take returned.
    fn take_one(
        burst: u64,
        deadline: impl FnOnce(u64) -> Option<u64>,
        check: impl FnOnce(&Take<'_>, &TokenBucket, u64, u64),
    ) {
        let ring = Queue::ring(4).expect("a valid capacity");
        let (clock, stop) = (Clock::new(), AtomicBool::new(false));
        let start = clock.now();
        let bucket = TokenBucket::per_second(1000, burst).starting_empty_at(start);
        let first_due = match bucket.try_acquire(1, start) {
            Err(Denied::NotYet { ready_at, .. }) => ready_at,
            other => panic!("an empty bucket granted {other:?}"),
        };
        let cx = Context {
            deadline: deadline(first_due),
            bucket: Some(&bucket),
            ..context(&ring, &clock, &stop, 1)
        };
        let take = cx.take(1);
        let after = clock.now();
        check(&take, &bucket, first_due, after);
    }

    #[test]
    fn a_reserved_token_is_handed_out_once_it_is_due_not_before() {
        for burst in [1, 10] {
            take_one(
                burst,
                |_| None,
                |take, _, first_due, after| match take {
                    Take::Go {
                        grant: Some(grant),
                        now,
                    } => {
                        assert_eq!((grant.count(), grant.due()), (1, first_due));
                        assert!(
                            first_due <= *now && *now <= after,
                            "due {first_due}, at {now}"
                        );
                    }
                    other => panic!("{other:?}"),
                },
            );
        }
    }

    /// The timer slack of a new thread (its creator's), and its slack after
    /// `wake_on_time(bucket)`.
    #[cfg(target_os = "linux")]
    fn slack_after(bucket: Option<TokenBucket>) -> (u64, u64) {
        // SAFETY: PR_GET_TIMERSLACK takes no argument and returns this thread's slack.
        let slack = || u64::try_from(unsafe { libc::prctl(libc::PR_GET_TIMERSLACK) }).unwrap_or(0);
        std::thread::spawn(move || {
            let before = slack();
            super::wake_on_time(bucket.as_ref());
            (before, slack())
        })
        .join()
        .expect("prctl does not panic")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sources_wake_on_time_only_where_tokens_come_further_apart_than_the_slack() {
        let (default, _) = slack_after(None);
        if default < 2 {
            println!("SKIP: this thread's timer slack is {default} ns: nothing to shorten");
            return;
        }
        // Tokens twice the slack apart, and half the slack apart.
        let every = |ns: u64| Some(TokenBucket::new(1, Duration::from_nanos(ns), 1));
        assert_eq!(slack_after(every(2 * default)), (default, 1));
        assert_eq!(slack_after(every(default / 2)), (default, default));
        assert_eq!(slack_after(None), (default, default));
    }

    #[test]
    fn no_token_due_at_or_after_the_deadline_is_reserved() {
        // The run ends the instant the first token is due: it is not the run's.
        take_one(1, Some, |take, bucket, first_due, _| {
            assert!(matches!(take, Take::Stop), "{take:?}");
            assert_eq!(bucket.available(first_due), 1, "the token was not taken");
        });
    }
}
