//! The main thread's wait: until the duration passes, every source is done, a signal, or a
//! thread fails; printing a progress line every interval.

use std::cell::Cell;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use pc_core::Clock;

use super::Event;
use super::intervals::Reporter;
use crate::config::{Config, Stop};
use crate::queue::Queue;
use crate::report::StopReason;
use crate::sink::{AnySink, GroupCommit};
use crate::telemetry::Stats;
use crate::telemetry::progress::say;

/// What the watch loop looks at.
#[derive(Debug)]
pub struct Watch<'a> {
    pub cfg: &'a Config,
    pub clock: &'a Clock,
    pub start: u64,
    pub deadline: Option<u64>,
    pub events: &'a Receiver<Event>,
    /// Source threads running.
    pub sources: usize,
    pub stats: &'a Stats,
    pub ring: &'a Queue,
    pub sink: &'a GroupCommit<AnySink>,
    /// Consumer threads that have ended (their events may come while production goes on).
    pub consumers_done: Cell<usize>,
    /// Clock ns of the next report tick (`None`: the first, one interval after the start).
    /// One schedule for the wait and the drain, so that the tick due as production ends is
    /// reported by one of them.
    pub next_tick: Cell<Option<u64>>,
}

impl Watch<'_> {
    /// Waits for the end of production and says why it ended. Each report interval goes to
    /// `reporter`.
    pub fn wait(&self, reporter: &mut Reporter) -> StopReason {
        let mut done = 0;
        loop {
            let now = self.clock.now();
            // First: a tick due at the deadline (a duration that is a whole number of
            // intervals) is this interval's end.
            self.tick(now, reporter);
            if self.deadline.is_some_and(|d| now >= d) {
                return StopReason::Duration;
            }
            let wake = [self.deadline, self.next_wake()]
                .into_iter()
                .flatten()
                .min();
            match self.next_event(now, wake) {
                Ok(Event::Signal(name)) => {
                    say(&format!(
                        "pc-host: {name}: stopping the producers and draining the ring (send it \
                         again after a second to exit at once)"
                    ));
                    return StopReason::Signal;
                }
                Ok(Event::SourceDone) => {
                    done += 1;
                    if done == self.sources {
                        return self.all_sources_done();
                    }
                }
                Ok(Event::Failed) | Err(RecvTimeoutError::Disconnected) => {
                    return StopReason::Error;
                }
                Ok(Event::ConsumerDone) => self.consumers_done.set(self.consumers_done.get() + 1),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// After the sources stopped: until `consumers` consumers have ended, keeps reporting
    /// (a drain held up by a retry shows it) and answers a signal.
    pub fn drain(&self, reporter: &mut Reporter, consumers: usize) {
        while self.consumers_done.get() < consumers {
            let now = self.clock.now();
            self.tick(now, reporter);
            match self.next_event(now, self.next_wake()) {
                Ok(Event::ConsumerDone) => self.consumers_done.set(self.consumers_done.get() + 1),
                Ok(Event::Signal(name)) => {
                    say(&format!(
                        "pc-host: {name}: already stopping: the consumers are committing the \
                         {} records left in the ring (send it again after a second to exit at \
                         once)",
                        self.ring.len()
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => return,
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// The report interval, ns (`None`: no progress lines or interval rows).
    fn interval(&self) -> Option<u64> {
        self.cfg.report_interval.map(|d| d.as_nanos() as u64)
    }

    /// Clock ns of the next report tick, if any.
    fn next_wake(&self) -> Option<u64> {
        let i = self.interval()?;
        Some(self.next_tick.get().unwrap_or(self.start + i))
    }

    /// Reports an interval to `reporter` if one is due at `now`; the next tick is then the
    /// first interval boundary after `now` (ticks missed while the thread was held up are
    /// one interval row).
    fn tick(&self, now: u64, reporter: &mut Reporter) {
        let (Some(tick), Some(i)) = (self.next_wake(), self.interval()) else {
            return;
        };
        if now < tick {
            return;
        }
        let t = (now - self.start) as f64 / 1e9;
        reporter.tick(
            t,
            self.stats,
            (self.ring.len(), self.ring.capacity()),
            self.sink,
        );
        self.next_tick.set(Some(tick + i * ((now - tick) / i + 1)));
    }

    /// The next event, waiting no later than `wake` (clock ns; none: an hour).
    fn next_event(&self, now: u64, wake: Option<u64>) -> Result<Event, RecvTimeoutError> {
        let wake = wake.unwrap_or(now + 3_600_000_000_000);
        self.events
            .recv_timeout(Duration::from_nanos(wake.saturating_sub(now)))
    }

    /// Why the sources ended by themselves: the generator stops only at its quota or its
    /// deadline; other sources also at the end of their input.
    fn all_sources_done(&self) -> StopReason {
        let past_deadline = self.deadline.is_some_and(|d| self.clock.now() >= d);
        match self.cfg.stop {
            Stop::Messages(n) if self.cfg.generated() || self.stats.produced() >= n => {
                StopReason::Messages
            }
            Stop::After(_) if self.cfg.generated() || past_deadline => StopReason::Duration,
            _ => StopReason::Eof,
        }
    }
}
