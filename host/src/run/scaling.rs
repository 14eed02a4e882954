//! Wiring of a scaled run (`--consumers MIN..MAX`): one thread starts MIN consumers, then every
//! `--scale-interval` shows the scaler's rule (`consumer::scaler::Policy`) what the queue looks
//! like and makes the change it asks for: it starts a consumer, or asks one to retire (the
//! consumer commits what it took, then ends). Each change is one line on stderr.
//!
//! Consumers run in slots, one set of counters each. The first MIN slots are pinned as with
//! `--consumers MIN`; slots past them run unpinned (the scheduler places them). A slot is
//! reused only after its last consumer has been joined.
//!
//! Where the sink writes in parallel (one connection per consumer), the thread also opens a
//! connection for each consumer it starts past those open (MIN at the start), and keeps trying
//! again, with backoff, one it could not open; the pool never shrinks.
//!
//! The thread sends [`Event::ConsumerDone`] once every consumer has ended (the ring closed and
//! drained), and returns the errors it met.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Duration;

use anyhow::anyhow;

use super::threads::{OnDrop, spawn as spawn_thread};
use super::{Event, Handle, Shared, consumer_body};
use crate::consumer::scaler::{Change, Observation, Policy};
use crate::telemetry::Stats;
use crate::telemetry::progress::say;

/// Starts the scaler's thread (which starts the consumers).
pub(super) fn spawn<'scope>(
    s: &'scope Scope<'scope, '_>,
    sh: &'scope Shared<'_>,
    errors: &mut Vec<String>,
) -> Option<Handle<'scope, Vec<String>>> {
    spawn_thread(s, "scaler".into(), errors, move || {
        let tx = sh.events.clone();
        let _done = OnDrop(Some(move || drop(tx.send(Event::ConsumerDone))));
        let mut pool = Pool {
            s,
            sh,
            slots: (0..sh.cfg.consumers_max).map(|_| None).collect(),
            ended: mpsc::channel(),
            running: 0,
            errors: Vec::new(),
            opening: None,
            reconnect: None,
        };
        for slot in 0..sh.cfg.consumers {
            if !pool.start(slot) {
                // As when a fixed consumer cannot start: the run stops.
                let _ = sh.events.send(Event::Failed); // before the close, as in `stop_run`
                sh.cx.ring.close();
                break;
            }
        }
        pool.supervise();
        pool.errors
    })
}

/// The consumers of a scaled run.
struct Pool<'scope, 'env, 'cfg> {
    s: &'scope Scope<'scope, 'env>,
    sh: &'scope Shared<'cfg>,
    /// Each slot's consumer thread, until joined.
    slots: Vec<Option<Handle<'scope, ()>>>,
    /// Consumers tell which slot ended.
    ended: (Sender<usize>, mpsc::Receiver<usize>),
    /// Threads not joined yet.
    running: usize,
    errors: Vec<String>,
    /// A sink connection being opened, on a thread of its own so that the scaler never waits
    /// for a server: it adds the writer to the pool itself.
    opening: Option<Handle<'scope, anyhow::Result<()>>>,
    /// Attempts at opening one that failed in a row: when to try again.
    reconnect: Option<Reconnect>,
}

/// Attempts at opening a sink connection that failed in a row.
#[derive(Debug, Clone, Copy)]
struct Reconnect {
    /// Clock ns of the next attempt, and the wait after it if it fails too.
    at: u64,
    wait: Duration,
    failures: u32,
}

/// The first wait before opening a sink connection again, and the longest.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MOST: Duration = Duration::from_secs(5);

impl Pool<'_, '_, '_> {
    /// Ticks every interval until every consumer has ended, joining each as it ends.
    fn supervise(&mut self) {
        let (clock, sh) = (self.sh.cx.clock, self.sh);
        let interval = sh.cfg.scale_interval.as_nanos() as u64;
        let mut policy = Policy::new(sh.cfg.consumers, sh.cfg.consumers_max, interval);
        let mut next = clock.now() + interval;
        while self.running > 0 {
            let wait = next.saturating_sub(clock.now());
            match self.ended.1.recv_timeout(Duration::from_nanos(wait)) {
                Ok(slot) => self.join(slot),
                Err(RecvTimeoutError::Timeout) => {
                    let now = clock.now();
                    next += interval * ((now - next) / interval + 1);
                    // A closed ring is a run stopping: its consumers drain it as they are.
                    if !sh.cx.ring.is_closed() {
                        self.tick(&mut policy, now);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break, // the pool holds a sender
            }
        }
        self.end_opening();
    }

    /// Every consumer has ended: a sink connection still being opened is not wanted any more.
    /// Waits for the attempt (at most the sink's connect timeout; a scoped thread is joined
    /// before the run ends anyway), which closes it unused if it opens.
    fn end_opening(&mut self) {
        self.sh.sink.stop_adding();
        let Some(opening) = self.opening.take() else {
            return;
        };
        if let Ok(Err(e)) = opening.join() {
            tracing::warn!(
                "could not open sink connection {} (no consumer was waiting for it): {e:#}",
                self.sh.sink.writers_open() + 1
            );
        }
    }

    /// One look at the queue, and the change the rule asks for.
    fn tick(&mut self, policy: &mut Policy, now: u64) {
        let sh = self.sh;
        self.open_writer_for(self.running);
        let seen = Observation {
            depth: sh.cx.ring.len() + held_by_consumers(&sh.stats),
            capacity: sh.cx.ring.capacity(),
            waited_ns: sh.scaling.take_waited(),
        };
        let Some(change) = policy.observe(seen) else {
            return;
        };
        if change.to > change.from {
            // A consumer asked to retire that has not yet stays instead; else a free slot.
            let added = sh.scaling.cancel_retirement()
                || self
                    .slots
                    .iter()
                    .position(Option::is_none)
                    .is_some_and(|slot| self.start(slot));
            if !added {
                // Every slot still holds a retiring consumer, or the thread could not start
                // (said once by `start`): tried again at a later tick.
                policy.undo(&change);
                return;
            }
        } else {
            sh.scaling.retire_one();
        }
        sh.stats.set_consumers(change.to);
        say(&event_line(now.saturating_sub(sh.started), &change));
    }

    /// Starts a consumer in `slot`; `false` (and the error kept) if its thread cannot start.
    fn start(&mut self, slot: usize) -> bool {
        let sh = self.sh;
        self.open_writer_for(self.running + 1);
        let core = sh.pins.consumers.get(slot).copied().flatten();
        let tx = self.ended.0.clone();
        let body = consumer_body(sh, slot, core, move || {
            let _ = tx.send(slot);
        });
        let mut errors = Vec::new();
        let handle = spawn_thread(self.s, format!("consumer-{slot}"), &mut errors, body);
        if let Some(e) = errors.pop() {
            if self.running < sh.cfg.consumers {
                self.errors.push(e);
            } else {
                tracing::warn!("{e}: the scaler goes on without it");
            }
        }
        self.slots[slot] = handle;
        self.running += usize::from(self.slots[slot].is_some());
        self.slots[slot].is_some()
    }

    /// Where the sink writes in parallel and there are fewer writers than `consumers`, starts
    /// opening one more, on its own thread (the pool never shrinks: a writer stays open for
    /// the next consumer). One that cannot be opened is a warning, the consumers share the
    /// writers open meanwhile, and it is tried again at a later tick, at least 0.1 s after the
    /// failure, doubling up to 5 s.
    fn open_writer_for(&mut self, consumers: usize) {
        let sh = self.sh;
        let Some(connector) = &sh.connector else {
            return;
        };
        if self
            .opening
            .as_ref()
            .is_some_and(ScopedJoinHandle::is_finished)
        {
            let attempt = self.opening.take().expect("checked above").join();
            self.settle(attempt.unwrap_or_else(|_| Err(anyhow!("the thread panicked"))));
        }
        let now = sh.cx.clock.now();
        if sh.sink.writers_open() >= consumers {
            self.reconnect = None;
            return;
        }
        if self.opening.is_some() || self.reconnect.is_some_and(|r| now < r.at) {
            return;
        }
        let failures = self.reconnect.map_or(0, |r| r.failures);
        let mut errors = Vec::new();
        self.opening = spawn_thread(self.s, "connect".into(), &mut errors, move || {
            let writer = connector.connect()?;
            let open = sh.sink.writers_open();
            // Room for one per consumer was made at the start, so only the end of the run
            // refuses it: every consumer has ended, and the connection closes unused.
            if sh.sink.add_writer(writer).is_err() {
                return Ok(());
            }
            let after = if failures > 0 {
                format!(
                    ", after {}",
                    crate::report::summary::plural(failures as usize, "failed attempt")
                )
            } else {
                String::new()
            };
            say(&format!(
                "pc-host: {:.3} s: sink connection {} opened{after}",
                sh.cx.clock.now().saturating_sub(sh.started) as f64 / 1e9,
                open + 1,
            ));
            Ok(())
        });
        for e in errors {
            tracing::warn!("{e}: the consumers share the sink connections open");
        }
    }

    /// What an attempt at opening a sink connection came to.
    fn settle(&mut self, attempt: anyhow::Result<()>) {
        let e = match attempt {
            Ok(()) => {
                self.reconnect = None;
                return;
            }
            Err(e) => e,
        };
        let open = self.sh.sink.writers_open();
        let r = self.reconnect.get_or_insert(Reconnect {
            at: 0,
            wait: RECONNECT_FIRST,
            failures: 0,
        });
        if r.failures == 0 {
            tracing::warn!(
                "could not open sink connection {}: {e:#}; the consumers share the {open} open \
                 meanwhile, and it is tried again",
                open + 1
            );
        }
        r.failures += 1;
        r.at = self
            .sh
            .cx
            .clock
            .now()
            .saturating_add(r.wait.as_nanos() as u64);
        r.wait = (r.wait * 2).min(RECONNECT_MOST);
    }

    fn join(&mut self, slot: usize) {
        if let Some(handle) = self.slots[slot].take() {
            self.running -= 1;
            if handle.join().is_err() {
                self.errors.push("a consumer thread panicked".into());
            }
        }
    }
}

/// "pc-host: 3.000 s: scale up, consumers 1 -> 2: under pressure for 2 intervals, now: queue
/// grew ...".
fn event_line(since_start_ns: u64, change: &Change) -> String {
    format!(
        "pc-host: {:.3} s: scale {}, consumers {} -> {}: {}",
        since_start_ns as f64 / 1e9,
        change.direction(),
        change.from,
        change.to,
        change.why
    )
}

/// Records popped by consumers and not yet settled (stored, duplicate, dead-lettered or given
/// up on): still backlog, e.g. a batch a consumer holds while it retries a failed commit, during
/// which the ring itself may look empty.
fn held_by_consumers(stats: &Stats) -> usize {
    // One snapshot: settled <= consumed in it (`Counts`).
    let c = stats.counts();
    debug_assert!(c.settled() <= c.consumed, "{c:?}");
    usize::try_from(c.consumed.saturating_sub(c.settled())).unwrap_or(usize::MAX)
}
