//! How sources use the one shared token bucket: tokens in chunks of about a millisecond of the
//! rate, naps short enough to notice a stop, and one source at a time waking for each token.

use std::sync::atomic::Ordering;
use std::time::Duration;

use pc_core::Grant;

use super::Context;

/// The longest pause between two checks of the stop flag while waiting for tokens.
const MAX_NAP: Duration = Duration::from_millis(5);

/// What a take gave.
#[derive(Debug)]
pub enum Take<'b> {
    /// Tokens (or, with no bucket, permission for `want` records), taken at clock `now`.
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
    /// reserve the tokens after it. A token is never handed out before it is due, nor one due
    /// at or after the deadline; one reserved as the run stops goes unused.
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
            }
            // Someone else reserved it first (or none comes before the deadline): look again.
            std::thread::sleep(wait.map_or(MAX_NAP, Duration::from_nanos).min(MAX_NAP));
        }
    }

    /// Naps until `grant` is due, then hands it out (or stops, if the run stops meanwhile).
    /// A token due before the deadline is handed out even if the nap ends after it.
    fn when_due(&self, grant: Grant<'a>) -> Take<'a> {
        let due = grant.due();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Take::Stop;
            }
            let now = self.clock.now();
            if now >= due {
                return Take::Go {
                    grant: Some(grant),
                    now,
                };
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

    use pc_core::{Clock, TokenBucket};

    use super::{Context, Take};
    use crate::queue::Queue;

    /// Takes one token from a bucket of 1,000 tokens a second that starts empty now (so none
    /// is due when the take starts), with `deadline_in` ns left to the run.
    fn take_one(deadline_in: Option<u64>, check: impl FnOnce(&Take<'_>)) {
        let ring = Queue::ring(4).expect("a valid capacity");
        let (clock, stop) = (Clock::new(), AtomicBool::new(false));
        let start = clock.now();
        let bucket = TokenBucket::per_second(1000, 1).starting_empty_at(start);
        let cx = Context {
            ring: &ring,
            lane: 0,
            clock: &clock,
            unix_base: 0,
            stop: &stop,
            deadline: deadline_in.map(|left| start + left),
            bucket: Some(&bucket),
            chunk: 1,
        };
        check(&cx.take(1));
    }

    #[test]
    fn a_reserved_token_is_handed_out_once_it_is_due_not_before() {
        take_one(None, |take| match take {
            Take::Go {
                grant: Some(grant),
                now,
            } => {
                assert_eq!(grant.count(), 1);
                assert!(
                    grant.due() <= *now,
                    "due {} > handed out at {now}",
                    grant.due()
                );
            }
            other => panic!("{other:?}"),
        });
    }

    #[test]
    fn no_token_due_at_or_after_the_deadline_is_reserved() {
        // The first token is due 1 ms after the start; the run ends at 0.5 ms.
        take_one(Some(500_000), |take| {
            assert!(matches!(take, Take::Stop), "{take:?}");
        });
    }
}
