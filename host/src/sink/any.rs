//! The sinks pc-host can write to, as one type: opening the one a `--sink` URL names, and
//! passing each call to it.

use crate::config::SinkSpec;
use crate::message::Record;
use crate::position::{FileKey, Resume};
use crate::telemetry::interval::Interval;

use super::sqlite::checkpoint::{self, Checkpointer};
use super::sqlite::schema::PageSizeChoice;
use super::{RunEnd, RunStart, Sink, SinkError, mysql, nats, postgres, sqlite};
use crate::position::{Origin, OriginEnd};
use std::sync::Arc;

/// A connection to any sink, for one run.
#[derive(Debug)]
pub enum AnySink {
    // Boxed: each writer keeps its connection state and statements inline, and sizes differ.
    Sqlite(Box<sqlite::Writer>),
    Postgres(Box<postgres::Writer>),
    Mysql(Box<mysql::Writer>),
    Nats(Box<nats::Writer>),
}

/// A sink opened for a run: the run is recorded in it.
#[derive(Debug)]
pub struct Opened {
    pub sink: AnySink,
    pub run_id: i64,
    /// SQLite: the checkpoint thread's connection.
    pub checkpointer: Option<Checkpointer>,
    /// What the header says of the sink, where it has more to say than its name (NATS: the
    /// stream and its settings).
    pub desc: Option<String>,
}

/// Opens the sink `spec` names, creating or checking its tables, and records the run.
///
/// # Errors
/// One line naming the sink (never a password) and what is wrong.
pub fn open(spec: &SinkSpec, start: &RunStart<'_>) -> anyhow::Result<Opened> {
    match spec {
        SinkSpec::Sqlite(path) => {
            let new_run = sqlite::runs::NewRun {
                producers: start.producers,
                config_json: start.config_json,
                started_at: start.started_at,
                pages: start
                    .page_size
                    .map_or(PageSizeChoice::ForRate(start.rps), PageSizeChoice::Given),
                delivered: start.delivered,
            };
            let (conn, run) = sqlite::runs::prepare_run(path, start.busy, &new_run)?;
            let mut writer = sqlite::Writer::new(conn, &run, start.synchronous, path, start.busy)?;
            if start.delivered {
                writer.store_deliveries();
            }
            let checkpointer = Checkpointer::open(path, start.busy)?;
            Ok(Opened {
                sink: AnySink::Sqlite(Box::new(writer)),
                run_id: run.run_id,
                checkpointer: Some(checkpointer),
                desc: None,
            })
        }
        SinkSpec::Postgres(url) => {
            let (writer, run_id) = postgres::open(url, start)?;
            Ok(Opened {
                sink: AnySink::Postgres(Box::new(writer)),
                run_id,
                checkpointer: None,
                desc: None,
            })
        }
        SinkSpec::Nats(spec) => {
            let (writer, desc) = nats::open(spec, start, Arc::clone(start.nats))?;
            Ok(Opened {
                run_id: writer.run_id(),
                sink: AnySink::Nats(Box::new(writer)),
                checkpointer: None,
                desc: Some(desc),
            })
        }
        SinkSpec::Mysql(url) => {
            let (writer, run_id) = mysql::open(url, start)?;
            Ok(Opened {
                sink: AnySink::Mysql(Box::new(writer)),
                run_id,
                checkpointer: None,
                desc: None,
            })
        }
    }
}

/// Opens more connections writing the same run (see [`AnySink::connector`]).
pub struct Connector(Box<dyn Fn() -> anyhow::Result<AnySink> + Send + Sync>);

impl Connector {
    fn new(f: impl Fn() -> anyhow::Result<AnySink> + Send + Sync + 'static) -> Self {
        Self(Box::new(f))
    }

    /// Opens one more connection.
    ///
    /// # Errors
    /// One line naming the sink (never a password): it cannot be reached or refused us.
    pub fn connect(&self) -> anyhow::Result<AnySink> {
        (self.0)()
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connector")
    }
}

impl AnySink {
    /// What opens more connections for the same run, so that consumers can write in
    /// parallel, from any thread and without this writer; `None` for a sink with one writer
    /// (SQLite). Each call opens one, or fails with one line naming the sink.
    pub fn connector(&self) -> Option<Connector> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(w) => {
                let connect = w.connector();
                Some(Connector::new(move || {
                    connect().map(|w| Self::Postgres(Box::new(w)))
                }))
            }
            Self::Mysql(w) => {
                let connect = w.connector();
                Some(Connector::new(move || {
                    connect().map(|w| Self::Mysql(Box::new(w)))
                }))
            }
            Self::Nats(w) => {
                let connect = w.connector();
                Some(Connector::new(move || {
                    connect().map(|w| Self::Nats(Box::new(w)))
                }))
            }
        }
    }

    /// The database at the sink's path is not the one this run opened: if it was removed,
    /// SQLite's `-wal` and `-shm` of this run's there go too (see `Writer::forget_removed`,
    /// which keeps a moved database's log the final checkpoint did not empty, and says so).
    pub fn forget_removed(&self, flushed: bool) -> Option<String> {
        match self {
            Self::Sqlite(w) => w.forget_removed(flushed),
            _ => None,
        }
    }

    /// The last step before counting back: SQLite's final checkpoint (copies the WAL into the
    /// database file and empties it). `None` where there is nothing to flush.
    pub fn final_flush(&mut self) -> Option<anyhow::Result<()>> {
        match self {
            Self::Sqlite(w) => Some(checkpoint::final_checkpoint(w.conn(), w.path())),
            Self::Postgres(_) | Self::Mysql(_) | Self::Nats(_) => None,
        }
    }
}

impl Sink for AnySink {
    fn duplicates(&self) -> u64 {
        match self {
            Self::Sqlite(w) => w.duplicates(),
            Self::Postgres(w) => w.duplicates(),
            Self::Mysql(w) => w.duplicates(),
            Self::Nats(w) => w.duplicates(),
        }
    }

    fn origin_run(&mut self, origin: &Origin) -> Result<i64, SinkError> {
        match self {
            Self::Sqlite(w) => w.origin_run(origin),
            Self::Postgres(w) => w.origin_run(origin),
            Self::Mysql(w) => w.origin_run(origin),
            Self::Nats(w) => w.origin_run(origin),
        }
    }

    fn origin_ended(&mut self, run_id: i64, end: &OriginEnd) -> Result<(), SinkError> {
        match self {
            Self::Sqlite(w) => w.origin_ended(run_id, end),
            Self::Postgres(w) => w.origin_ended(run_id, end),
            Self::Mysql(w) => w.origin_ended(run_id, end),
            Self::Nats(w) => w.origin_ended(run_id, end),
        }
    }

    fn write(&mut self, records: &[&Record]) -> Result<(), SinkError> {
        match self {
            Self::Sqlite(w) => w.write(records),
            Self::Postgres(w) => w.write(records),
            Self::Mysql(w) => w.write(records),
            Self::Nats(w) => w.write(records),
        }
    }

    fn register(&mut self, file: Option<&FileKey>) -> Result<Resume, SinkError> {
        match self {
            Self::Sqlite(w) => w.register(file),
            Self::Postgres(w) => w.register(file),
            Self::Mysql(w) => w.register(file),
            Self::Nats(w) => w.register(file),
        }
    }

    fn commit_position(&mut self, to: Resume) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(w) => w.commit_position(to),
            Self::Postgres(w) => w.commit_position(to),
            Self::Mysql(w) => w.commit_position(to),
            Self::Nats(w) => w.commit_position(to),
        }
    }

    fn still_there(&self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(w) => w.still_there(),
            Self::Postgres(w) => w.still_there(),
            Self::Mysql(w) => w.still_there(),
            Self::Nats(w) => w.still_there(),
        }
    }

    fn count_stored(&mut self) -> anyhow::Result<u64> {
        match self {
            Self::Sqlite(w) => w.count_stored(),
            Self::Postgres(w) => w.count_stored(),
            Self::Mysql(w) => w.count_stored(),
            Self::Nats(w) => w.count_stored(),
        }
    }

    fn record_intervals(&mut self, rows: &[Interval], wait: bool) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(w) => w.record_intervals(rows, wait),
            Self::Postgres(w) => w.record_intervals(rows, wait),
            Self::Mysql(w) => w.record_intervals(rows, wait),
            Self::Nats(w) => w.record_intervals(rows, wait),
        }
    }

    fn finish_run(&mut self, end: &RunEnd<'_>) -> Result<(), SinkError> {
        match self {
            Self::Sqlite(w) => w.finish_run(end),
            Self::Postgres(w) => w.finish_run(end),
            Self::Mysql(w) => w.finish_run(end),
            Self::Nats(w) => w.finish_run(end),
        }
    }
}
