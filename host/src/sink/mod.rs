//! Sinks: where committed records go. A sink takes records and commits each call atomically,
//! together with the position every file input reaches in them, so a restart resumes exactly
//! after what was stored; it also keeps the run's own row (what the run did) and counts back
//! what it stored.
//!
//! [`GroupCommit`] shares the sink's writers among the consumers and decides, by the
//! [`ErrorKind`] of a failed write, whether to retry, split out a refused record, or give up.
//! [`AnySink`] is the one place that knows every kind: `sqlite/` (the embedded default),
//! `postgres/`, `mysql/`.

pub mod any;
pub mod error;
pub mod group_commit;
pub mod mysql;
pub mod postgres;
pub mod read_back;
pub mod retry;
pub mod sqlite;
pub mod tables;

pub use any::{AnySink, Opened, open};
pub use error::{ErrorKind, SinkError};
pub use group_commit::{Fate, GroupCommit, Policy, Settled};

use std::time::Duration;

use crate::config::Synchronous;
use crate::message::Record;
use crate::position::{FileKey, Resume};
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
    pub synchronous: Synchronous,
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
    pub dead_lettered: u64,
    pub not_stored: u64,
    pub retries: u64,
    /// Latency (ns) of every message: p50, p99, p99.9, max; `None` when none was measured.
    pub latency: Option<[u64; 4]>,
    pub elapsed_s: f64,
}

/// One connection of a sink, for one run.
pub trait Sink: Send + std::fmt::Debug {
    /// Stores `records` (in order) in one transaction, with the position each file input
    /// reaches in them. On error nothing of it is stored.
    ///
    /// # Errors
    /// What failed, as one line, and its [`ErrorKind`]: whether trying again may help.
    fn write(&mut self, records: &[&Record]) -> Result<(), SinkError>;

    /// Where `file` resumes (registering it if new); `None` registers a stdin input. See
    /// [`crate::position::Positions`].
    ///
    /// # Errors
    /// One line saying what failed.
    fn register(&mut self, file: Option<&FileKey>) -> anyhow::Result<Resume>;

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

    /// Records the end of the run.
    ///
    /// # Errors
    /// The sink's.
    fn finish_run(&mut self, end: &RunEnd<'_>) -> anyhow::Result<()>;

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
