//! Sinks: where committed records go. A sink takes records and commits each call atomically,
//! together with the position every file input reaches in them, so a restart resumes exactly
//! after what was stored; it also keeps the run's own row (what the run did) and counts back
//! what it stored.
//!
//! [`GroupCommit`] shares the sink's writers among the consumers and decides, by the
//! [`ErrorKind`] of a failed write, whether to retry, split out a refused record, or give up.
//! [`AnySink`] is the one place that knows every kind: `sqlite/` (the embedded default),
//! `postgres/`, `mysql/`, and `nats.rs` (publishing to JetStream).

pub mod any;
pub mod error;
pub mod group_commit;
pub mod mysql;
pub mod nats;
pub mod postgres;
pub mod read_back;
pub mod retry;
pub mod sqlite;
pub mod tables;

pub use any::{AnySink, Connector, Opened, open};

/// The longest a run's start waits at once for a lock another process or client holds (SQLite,
/// PostgreSQL) before it looks for a signal (`crate::interrupt`) and tries again, until
/// `--busy-timeout-ms` has passed.
pub const START_WAIT_SLICE: std::time::Duration = std::time::Duration::from_millis(50);
pub use error::{ErrorKind, SinkError};
pub use group_commit::{Fate, GroupCommit, Policy, Settled};

use std::time::Duration;

use crate::config::Synchronous;
use crate::message::Record;
use crate::position::{FileKey, Origin, OriginEnd, Resume};
use crate::telemetry::interval::Interval;

/// What a sink records when a run starts.
#[derive(Debug)]
pub struct RunStart<'a> {
    /// Generator threads (0 for an ingest run).
    pub producers: usize,
    /// The effective configuration, as JSON.
    pub config_json: &'a str,
    /// Unix ns.
    pub started_at: i64,
    /// How long to wait for a lock held by another client.
    pub busy: Duration,
    /// How long a failed write is retried (`--retry-for`): a sink whose retries are safe only
    /// within a window of its own warns when this is longer.
    pub retry_for: Duration,
    pub synchronous: Synchronous,
    /// SQLite: the page size a new database gets, and an existing one must have (`None`: the
    /// default for a new one, by `rps`; any for an existing one).
    pub page_size: Option<&'a crate::config::PageSize>,
    /// The run's target rate, records/s in total (0: unthrottled).
    pub rps: u64,
    /// The records come from a broker (a NATS source): each is stored at most once per its
    /// [`crate::message::Delivery`] key.
    pub delivered: bool,
    /// The run's NATS counters (a NATS sink counts what it published).
    pub nats: &'a std::sync::Arc<crate::telemetry::NatsStats>,
}

impl OriginEnd {
    /// The figures a publishing run announced, as its run row here keeps them.
    pub fn as_run_end(&self) -> RunEnd<'_> {
        RunEnd {
            finished_at: self.finished_at,
            completed: self.completed,
            per_producer: &self.per_producer,
            produced: self.produced,
            stored: self.stored,
            // A publisher's records are delivered to the consuming runs, which count those.
            duplicates: 0,
            dead_lettered: self.dead_lettered,
            not_stored: self.not_stored,
            retries: 0,
            latency: None,
            elapsed_s: self.elapsed_s,
        }
    }
}

/// What a sink records when a run ends.
#[derive(Debug)]
pub struct RunEnd<'a> {
    /// Unix ns.
    pub finished_at: i64,
    /// Every accepted record was settled and nothing failed.
    pub completed: bool,
    /// Generated runs: each producer's count (for `verify`); empty for ingest runs.
    pub per_producer: &'a [u64],
    pub produced: u64,
    /// The summary's figures, kept with the run.
    pub stored: u64,
    /// Deliveries of records the database already held (a NATS source), dropped.
    pub duplicates: u64,
    pub dead_lettered: u64,
    pub not_stored: u64,
    pub retries: u64,
    /// Latency (ns) of every message: p50, p99, p99.9, max; `None` when none was measured.
    pub latency: Option<[u64; 4]>,
    pub elapsed_s: f64,
}

impl<'a> RunEnd<'a> {
    /// The end of a run that did nothing, at `finished_at`, not completed: every count 0
    /// (`per_producer`'s too, as the caller gives them), no latency.
    #[must_use]
    pub fn nothing(finished_at: i64, per_producer: &'a [u64]) -> Self {
        Self {
            finished_at,
            completed: false,
            per_producer,
            produced: 0,
            stored: 0,
            duplicates: 0,
            dead_lettered: 0,
            not_stored: 0,
            retries: 0,
            latency: None,
            elapsed_s: 0.0,
        }
    }
}

/// One connection of a sink, for one run.
pub trait Sink: Send + std::fmt::Debug {
    /// Stores `records` (in order) in one transaction, with the position each file input
    /// reaches in them. On error nothing of it is stored.
    ///
    /// # Errors
    /// What failed, as one line, and its [`ErrorKind`]: whether trying again may help.
    fn write(&mut self, records: &[&Record]) -> Result<(), SinkError>;

    /// Of the records the last successful [`Sink::write`] was given, how many were not
    /// written because the sink already held them (broker deliveries only; see
    /// [`crate::message::Delivery`]).
    fn duplicates(&self) -> u64 {
        0
    }

    /// The run that holds `origin`'s records, recorded if new (see [`Origin`]).
    ///
    /// # Errors
    /// The sink's, retryable as a write's would be ([`SinkError::of_bookkeeping`]); a sink
    /// that cannot keep another run's records (fatal).
    fn origin_run(&mut self, origin: &Origin) -> Result<i64, SinkError> {
        let _ = origin;
        Err(SinkError::fatal(anyhow::anyhow!(
            "this sink does not keep records published by other runs"
        )))
    }

    /// Records how a publishing run ended (`run_id`: its run here).
    ///
    /// # Errors
    /// As [`Sink::origin_run`].
    fn origin_ended(&mut self, run_id: i64, end: &OriginEnd) -> Result<(), SinkError> {
        let _ = (run_id, end);
        Err(SinkError::fatal(anyhow::anyhow!(
            "this sink does not keep records published by other runs"
        )))
    }

    /// Where `file` resumes (registering it if new); `None` registers a stdin input. See
    /// [`crate::position::Positions`].
    ///
    /// # Errors
    /// One line saying what failed, retryable as a write's failure would be
    /// ([`SinkError::of_bookkeeping`]).
    fn register(&mut self, file: Option<&FileKey>) -> Result<Resume, SinkError>;

    /// Commits a file input's position `to` on its own (rejected lines after its last stored
    /// one, at the end of a clean run). Does nothing if the input is already there.
    ///
    /// # Errors
    /// The sink's, or another process having moved the input.
    fn commit_position(&mut self, to: Resume) -> anyhow::Result<()>;

    /// Whether the sink is still the one opened (SQLite: the file was not removed or replaced).
    ///
    /// # Errors
    /// One line saying what happened to it.
    fn still_there(&self) -> anyhow::Result<()> {
        Ok(())
    }

    /// How many of this run's records the sink holds, counted back from its tables.
    ///
    /// # Errors
    /// The sink's.
    fn count_stored(&mut self) -> anyhow::Result<u64>;

    /// Records the end of the run. Calling it again after a failure records the same end.
    ///
    /// # Errors
    /// The sink's, [`ErrorKind::Retryable`] where a later try may succeed (another client's
    /// lock, a lost connection), as a write's would be.
    fn finish_run(&mut self, end: &RunEnd<'_>) -> Result<(), SinkError>;

    /// Keeps report intervals with the run (SQLite: the `run_intervals` table). Sinks that do
    /// not keep them do nothing. Without `wait`, a sink locked by another client is not waited
    /// for: the call fails at once (the caller keeps the rows for later).
    ///
    /// # Errors
    /// The sink's.
    fn record_intervals(&mut self, rows: &[Interval], wait: bool) -> anyhow::Result<()> {
        let _ = (rows, wait);
        Ok(())
    }
}
