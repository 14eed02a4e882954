//! The sinks pc-host can write to, as one type: opening the one a `--sink` URL names, and
//! passing each call to it.

use crate::config::SinkSpec;
use crate::message::Record;
use crate::position::{FileKey, Resume};

use super::sqlite::checkpoint::{self, Checkpointer};
use super::{RunEnd, RunStart, Sink, SinkError, sqlite};

/// A connection to any sink, for one run.
#[derive(Debug)]
pub enum AnySink {
    Sqlite(sqlite::Writer),
}

/// A sink opened for a run: the run is recorded in it.
#[derive(Debug)]
pub struct Opened {
    pub sink: AnySink,
    pub run_id: i64,
    /// SQLite: the checkpoint thread's connection.
    pub checkpointer: Option<Checkpointer>,
}

/// Opens the sink `spec` names, creating or checking its tables, and records the run.
///
/// # Errors
/// One line naming the sink (never a password) and what is wrong.
pub fn open(spec: &SinkSpec, start: &RunStart<'_>) -> anyhow::Result<Opened> {
    match spec {
        SinkSpec::Sqlite(path) => {
            let (conn, run) = sqlite::runs::prepare_run(
                path,
                start.busy,
                start.producers,
                start.config_json,
                start.started_at,
            )?;
            let writer = sqlite::Writer::new(conn, &run, start.synchronous, path, start.busy)?;
            let checkpointer = Checkpointer::open(path, start.busy)?;
            Ok(Opened {
                sink: AnySink::Sqlite(writer),
                run_id: run.run_id,
                checkpointer: Some(checkpointer),
            })
        }
        SinkSpec::Postgres(url) | SinkSpec::Mysql(url) => Err(anyhow::anyhow!(
            "{}: this sink is not available in this build",
            url.shown
        )),
    }
}

impl AnySink {
    /// Another connection for the same run, so that consumers can write in parallel; `None`
    /// for a sink with one writer (SQLite).
    pub fn connect_another(&self) -> Option<anyhow::Result<Self>> {
        match self {
            Self::Sqlite(_) => None,
        }
    }

    /// The last step before counting back: SQLite's final checkpoint (copies the WAL into the
    /// database file and empties it). `None` where there is nothing to flush.
    pub fn final_flush(&mut self) -> Option<anyhow::Result<()>> {
        match self {
            Self::Sqlite(w) => Some(checkpoint::final_checkpoint(w.conn(), w.path())),
        }
    }
}

impl Sink for AnySink {
    fn write(&mut self, records: &[&Record]) -> Result<(), SinkError> {
        match self {
            Self::Sqlite(w) => w.write(records),
        }
    }

    fn register(&mut self, file: Option<&FileKey>) -> anyhow::Result<Resume> {
        match self {
            Self::Sqlite(w) => w.register(file),
        }
    }

    fn settle(&mut self, to: Resume) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(w) => w.settle(to),
        }
    }

    fn still_there(&self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(w) => w.still_there(),
        }
    }

    fn count_stored(&mut self) -> anyhow::Result<u64> {
        match self {
            Self::Sqlite(w) => w.count_stored(),
        }
    }

    fn finish_run(&mut self, end: &RunEnd<'_>) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(w) => w.finish_run(end),
        }
    }
}
