//! What `plot` draws: one run's rows of `run_intervals`, read from a pc-host database opened
//! read-only, and the series made of them.

use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use rusqlite::Connection;

use crate::config::ConfigError;
use crate::sink::sqlite::schema::{self, Found, Purpose};

/// One report interval, as `run_intervals` keeps it (the columns `plot` draws).
#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    /// The interval's end, seconds into the run.
    pub t_s: f64,
    /// Records accepted in the interval.
    pub produced: i64,
    /// Records committed in the interval.
    pub stored: i64,
    /// Latency of the messages settled in the interval; `None` when none was.
    pub p50_ns: Option<i64>,
    pub p99_ns: Option<i64>,
    pub max_ns: Option<i64>,
}

/// A run's intervals, in time order (at least one).
#[derive(Debug)]
pub struct Run {
    pub id: i64,
    pub intervals: Vec<Interval>,
    /// Runs recorded after this one, none with interval rows, when `plot` chose this run
    /// itself (a later run that ended before its first interval is skipped): 0 otherwise.
    pub skipped: i64,
}

/// Reads run `run` (default: the last run that has interval rows) from the database at `db`.
/// Opens it read-only: nothing in it is changed.
///
/// # Errors
/// A [`ConfigError`] if `run` names a run with no interval rows; other errors, one line each,
/// for a missing file, a file that is not a current pc-host database, one with no interval
/// rows at all, or a failed read.
pub fn load(db: &Path, run: Option<i64>, busy: Duration) -> anyhow::Result<Run> {
    let conn = open(db, busy)?;
    let sql = |e| schema::db_error(db, e, busy);
    let last: Option<i64> = conn
        .query_row("SELECT MAX(run_id) FROM run_intervals", [], |r| r.get(0))
        .map_err(sql)?;
    let id = match (run, last) {
        (Some(id), _) => id,
        (None, Some(id)) => id,
        (None, None) => {
            return Err(anyhow!(
                "{} has no run with interval rows (run_intervals is empty): nothing to plot",
                db.display()
            ));
        }
    };
    let intervals = intervals(&conn, id).map_err(sql)?;
    if intervals.is_empty() {
        let recorded: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = ?1)",
                [id],
                |r| r.get(0),
            )
            .map_err(sql)?;
        if !recorded {
            return Err(
                ConfigError(format!("--run {id}: {} has no run {id}", db.display())).into(),
            );
        }
        let hint = last.map_or("no run has any".to_owned(), |l| {
            format!("the last run with intervals is {l}")
        });
        return Err(ConfigError(format!(
            "--run {id}: run {id} has no interval rows in {} ({hint})",
            db.display()
        ))
        .into());
    }
    let skipped = if run.is_some() {
        0
    } else {
        conn.query_row("SELECT COUNT(*) FROM runs WHERE run_id > ?1", [id], |r| {
            r.get(0)
        })
        .map_err(sql)?
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
        // differs in when `runs.last_id` is written.
        Found::Current | Found::Version3 | Found::Version4 => Ok(conn),
        Found::Empty => Err(anyhow!(
            "{} holds no pc-host data (it is an empty database; if a pc-host run is setting it \
             up this instant, look again)",
            db.display()
        )),
        Found::Version1 | Found::Version2 => Err(anyhow!(
            "{} has an older pc-host schema, which keeps no interval rows: only runs recorded \
             by this pc-host can be plotted",
            db.display()
        )),
    }
}

fn intervals(conn: &Connection, run: i64) -> rusqlite::Result<Vec<Interval>> {
    let mut stmt = conn.prepare(
        "SELECT t_s, produced, stored, latency_p50_ns, latency_p99_ns, latency_max_ns \
         FROM run_intervals WHERE run_id = ?1 ORDER BY t_s",
    )?;
    stmt.query_map([run], |r| {
        Ok(Interval {
            t_s: r.get(0)?,
            produced: r.get(1)?,
            stored: r.get(2)?,
            p50_ns: r.get(3)?,
            p99_ns: r.get(4)?,
            max_ns: r.get(5)?,
        })
    })?
    .collect()
}
