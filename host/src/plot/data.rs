//! What `plot` draws: one run's rows of `run_intervals`, read from a pc-host database opened
//! read-only (SQLite, PostgreSQL or MySQL), and the series made of them.

use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;

use crate::config::{ConfigError, SinkSpec};
use crate::sink::read_back::{self, ReadBack};
use crate::sink::sqlite::read::SqliteReadBack;
use crate::sink::sqlite::schema::{self, Found, Purpose};

pub use crate::sink::read_back::Interval;

/// A run's intervals, in time order (at least one).
#[derive(Debug)]
pub struct Run {
    pub id: i64,
    pub intervals: Vec<Interval>,
    /// Runs recorded after this one, none with interval rows, when `plot` chose this run
    /// itself (a later run that ended before its first interval is skipped): 0 otherwise.
    pub skipped: i64,
}

/// Reads run `run` (default: the last run that has interval rows) from the database `spec`
/// names, called `name` in messages. Reads only: nothing in it is changed.
///
/// # Errors
/// A [`ConfigError`] if `run` names a run with no interval rows; other errors, one line each,
/// for a missing database, one that is not a current pc-host database, one with no interval
/// rows at all, or a failed read.
pub fn load(spec: &SinkSpec, name: &str, run: Option<i64>, busy: Duration) -> anyhow::Result<Run> {
    let mut store: Box<dyn ReadBack> = match spec {
        SinkSpec::Sqlite(db) => Box::new(SqliteReadBack::of(open(db, busy)?, db, busy)),
        SinkSpec::Nats(_) => {
            return Err(ConfigError(
                "plot reads a database: give the database the stream is consumed into".into(),
            )
            .into());
        }
        _ => read_back::open(spec, busy)?,
    };
    let last = store.last_run_with_intervals()?;
    let id = match (run, last) {
        (Some(id), _) => id,
        (None, Some(id)) => id,
        (None, None) => {
            return Err(anyhow!(
                "{name} has no run with interval rows (run_intervals is empty): nothing to plot"
            ));
        }
    };
    let intervals = store.intervals(id)?;
    if intervals.is_empty() {
        if store.runs(Some(id))?.is_empty() {
            return Err(ConfigError(format!("--run {id}: {name} has no run {id}")).into());
        }
        let hint = last.map_or("no run has any".to_owned(), |l| {
            format!("the last run with intervals is {l}")
        });
        return Err(ConfigError(format!(
            "--run {id}: run {id} has no interval rows in {name} ({hint})"
        ))
        .into());
    }
    // A time that is not a finite number of seconds (a row edited by hand, or damaged) would
    // stretch the time axis to no end.
    if let Some(bad) = intervals.iter().find(|i| !i.t_s.is_finite()) {
        return Err(anyhow!(
            "run {id} of {name} has an interval row at t_s = {}, not a time: nothing plotted",
            bad.t_s
        ));
    }
    let skipped = match run {
        Some(_) => 0,
        None => store.runs_after(id)?,
    };
    Ok(Run {
        id,
        intervals,
        skipped,
    })
}

/// Opens `db` read-only if it is a pc-host database of the current schema (earlier ones keep no
/// intervals).
fn open(db: &Path, busy: Duration) -> anyhow::Result<schema::ReadConnection> {
    schema::existing_file(db)?;
    let conn = schema::open_read_only(db, busy)?;
    match schema::check(&conn, db, busy, Purpose::Read)? {
        // Version 3 lacks only the consumers column, which plot does not draw; version 4 only
        // differs in when `runs.last_id` is written, version 5 in the inputs' marks, version 6
        // in the runs' duplicates.
        Found::Current | Found::Version3 | Found::Version4 | Found::Version5 | Found::Version6 => {
            Ok(conn)
        }
        Found::Empty => Err(schema::no_pc_host_data(db)),
        Found::Version1 | Found::Version2 => Err(anyhow!(
            "{} has an older pc-host schema, which keeps no interval rows: only runs recorded \
             by this pc-host can be plotted",
            db.display()
        )),
    }
}
