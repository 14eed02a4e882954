//! The main thread's wait: until the duration passes, every source is done, a signal, or a
//! thread fails; printing a progress line every interval.

use std::io::Write as _;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use pc_core::{Clock, HeapRing};

use super::Event;
use super::intervals::Reporter;
use crate::config::{Config, Stop};
use crate::message::Record;
use crate::report::StopReason;
use crate::sink::{AnySink, GroupCommit};
use crate::telemetry::Stats;

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
    pub ring: &'a HeapRing<Record>,
    pub sink: &'a GroupCommit<AnySink>,
}

impl Watch<'_> {
    /// Waits for the end of production and says why it ended.
    /// Each report interval goes to `reporter`.
    pub fn wait(&self, reporter: &mut Reporter) -> StopReason {
        let interval = self.cfg.report_interval.map(|d| d.as_nanos() as u64);
        let mut next_tick = interval.map(|i| self.start + i);
        let mut done = 0;
        loop {
            let now = self.clock.now();
            if self.deadline.is_some_and(|d| now >= d) {
                return StopReason::Duration;
            }
            if let (Some(tick), Some(i)) = (next_tick, interval)
                && now >= tick
            {
                let t = (now - self.start) as f64 / 1e9;
                let ring = (self.ring.len(), self.ring.capacity());
                reporter.tick(t, self.stats, ring, self.sink);
                next_tick = Some(tick + i * ((now - tick) / i + 1));
            }
            let wake = [self.deadline, next_tick]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + 3_600_000_000_000);
            match self
                .events
                .recv_timeout(Duration::from_nanos(wake.saturating_sub(now)))
            {
                Ok(Event::Signal(name)) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "pc-host: {name}: stopping the producers and draining the ring (send it \
                         again to exit at once)"
                    );
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
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
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
