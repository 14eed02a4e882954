//! How sources use the one shared token bucket: the tokens already due, up to a chunk of
//! about a millisecond of the rate (a source that fell behind catches up in chunks); while none
//! is due, a reservation of the next token and those due within the thread's timer slack after
//! it, handed out as they come due; naps short enough to notice a stop.

use std::cell::Cell;
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
            let slack = libc::prctl(libc::PR_GET_TIMERSLACK);
            NAP_SLACK_NS.set(u64::try_from(slack).unwrap_or(0));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = bucket;
}

thread_local! {
    /// This thread's timer slack in ns as [`wake_on_time`] left it (0 until it has run): how
    /// late a nap may end, and so how far past its next token a source reserves.
    static NAP_SLACK_NS: Cell<u64> = const { Cell::new(0) };
}

/// Tokens a source reserved and has not handed out yet (see [`Context::take`]); one per source
/// thread, kept between its takes.
#[derive(Debug, Default)]
pub struct Reserved<'a>(Option<Grant<'a>>);

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
    /// While none is due it reserves the next one and those due within the thread's timer
    /// slack after it (taking them from the bucket with that instant as `now`, at most
    /// `want`), naps until the first is due, and hands out those due by then, keeping the
    /// rest in `reserved` for the next takes. Napping and racing for tokens instead, every
    /// source sharing the bucket would wake for each token and all but one would find it
    /// taken (four generators at 10k msg/s woke some 28,000 times a second); reserving one
    /// token at a time, ten sources at 100k msg/s would hold the next 100 us of tokens, and a
    /// nap that ends the slack late would find none of its own due: a wake-up per message.
    /// The others reserve the tokens after; one that loses the race for a token tries for the
    /// next at once. A token is never handed out before it is due, nor one due at or after
    /// the deadline. One reserved and due is handed out by the next take even once the run
    /// was told to stop (as the token a nap waited for is: a run of `d` seconds at `r`
    /// records/s makes `r * d`); one reserved and not yet due when the run stops goes unused.
    pub fn take(&self, want: u64, reserved: &mut Reserved<'a>) -> Take<'a> {
        if let Some(grant) = reserved.0.take() {
            return self.when_due(grant, want, reserved);
        }
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
                // The last instant a token of this run may be due: before the deadline.
                let last = self.deadline.map_or(u64::MAX, |d| d.saturating_sub(1));
                let latest = next.min(last);
                // With the tokens due within the nap's slack after it: the nap may end that
                // late anyway, and they then cost no wake-up of their own.
                let within = latest.saturating_add(NAP_SLACK_NS.get()).min(last);
                if let Ok(grant) = bucket.try_acquire_up_to(want, within) {
                    return self.when_due(grant, want, reserved);
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

    /// Naps until the first token of `grant` is due, then hands out those due by then (at
    /// most `want`) and keeps the rest in `reserved` (or stops, if the run stops before the
    /// first is due). A token due before the deadline is handed out even if the nap ends
    /// after it, or after the run was told to stop at the deadline.
    fn when_due(&self, grant: Grant<'a>, want: u64, reserved: &mut Reserved<'a>) -> Take<'a> {
        let due = grant.first_due();
        loop {
            let now = self.clock.now();
            if now >= due {
                let (out, later) = grant.split_due(now, want);
                reserved.0 = (later.count() > 0).then_some(later);
                return Take::Go {
                    grant: Some(out),
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
        let take = cx.take(1, &mut super::Reserved::default());
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

    /// Tokens 100 ms apart (10 a second, burst 10) and a 300 ms slack: on a thread of its own
    /// (the slack is per thread), takes `want` then 1 at a time until the run stops or `until`
    /// tokens were handed out. Returns the first token's due instant, every token handed out
    /// (its due instant), the first take's grant size, what it left reserved and its `now`,
    /// and what is left reserved at the end.
    fn takes_with_slack(
        want: u64,
        until: usize,
        deadline_after_first: Option<u64>,
    ) -> (u64, Vec<u64>, (u64, u64, u64), u64, TokenBucket) {
        let ring = Queue::ring(4).expect("a valid capacity");
        let (clock, stop) = (Clock::new(), AtomicBool::new(false));
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    super::NAP_SLACK_NS.set(300_000_000);
                    let start = clock.now();
                    let bucket = TokenBucket::per_second(10, 10).starting_empty_at(start);
                    let first_due = match bucket.try_acquire(1, start) {
                        Err(Denied::NotYet { ready_at, .. }) => ready_at,
                        other => panic!("an empty bucket granted {other:?}"),
                    };
                    let cx = Context {
                        bucket: Some(&bucket),
                        deadline: deadline_after_first.map(|d| first_due + d),
                        ..context(&ring, &clock, &stop, want)
                    };
                    let mut reserved = super::Reserved::default();
                    let (mut handed, mut first) = (Vec::new(), None);
                    while handed.len() < until {
                        let want = if first.is_none() { want } else { 1 };
                        match cx.take(want, &mut reserved) {
                            Take::Go {
                                grant: Some(grant),
                                now,
                            } => {
                                assert!((1..=want).contains(&grant.count()), "{grant:?}");
                                assert!(grant.due() <= now, "{grant:?} handed out at {now}");
                                let kept = reserved.0.as_ref().map_or(0, |g| g.count());
                                first.get_or_insert((grant.count(), kept, now));
                                handed.extend(grant.schedule());
                            }
                            Take::Stop => break,
                            other => panic!("{other:?}"),
                        }
                    }
                    let left = reserved.0.map_or(0, |g| g.count());
                    let first = first.expect("a first take");
                    (first_due, handed, first, left, bucket)
                })
                .join()
                .expect("the takes")
        })
    }

    /// The due instant of the earliest token `takes_with_slack`'s bucket has not handed out
    /// (taking it): within its burst of ten, 900 ms after the first.
    fn next_untaken(bucket: &TokenBucket, first_due: u64) -> u64 {
        let grant = bucket.try_acquire_up_to(1, first_due + 900_000_000);
        grant.expect("a token within the burst").first_due()
    }

    /// A source that finds no token due reserves the next one and those due within its slack
    /// after it (at most `want`), naps until the first is due, not the last, and hands each out
    /// only once it is due, at most `want` at a time; the next token the bucket gives is the
    /// one after the reservation.
    #[test]
    fn a_source_reserves_the_tokens_within_its_slack_and_hands_them_out_as_they_come_due() {
        let ms = |first: u64, k: u64| first + k * 100_000_000;
        let (first_due, handed, (count, kept, now), left, bucket) = takes_with_slack(4, 4, None);
        assert_eq!(
            count + kept,
            4,
            "one reservation of the four within the slack"
        );
        assert!(
            now < ms(first_due, 3),
            "handed out at {now}, before the last was due"
        );
        let want: Vec<u64> = (0..4).map(|k| ms(first_due, k)).collect();
        assert_eq!(handed, want, "the reserved tokens, in order");
        assert_eq!(left, 0, "nothing left reserved");
        assert_eq!(
            next_untaken(&bucket, first_due),
            ms(first_due, 4),
            "the four came from one reservation"
        );

        // At most `want` are reserved: two of the four.
        let (_, _, (count, kept, _), _, _) = takes_with_slack(2, 2, None);
        assert_eq!(count + kept, 2, "a reservation of `want`");
    }

    /// A reservation stops before the deadline: with it 150 ms after the first token, the
    /// source hands out that token and the next, then stops, and the third is not taken.
    #[test]
    fn no_token_due_at_or_after_the_deadline_is_reserved_within_the_slack() {
        let ms = |first: u64, k: u64| first + k * 100_000_000;
        let (first_due, handed, (count, kept, _), left, bucket) =
            takes_with_slack(4, usize::MAX, Some(150_000_000));
        assert_eq!(count + kept, 2, "two are due before the deadline");
        assert_eq!(handed, [ms(first_due, 0), ms(first_due, 1)]);
        assert_eq!(left, 0);
        assert_eq!(
            next_untaken(&bucket, first_due),
            ms(first_due, 2),
            "the third was left in the bucket"
        );
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
