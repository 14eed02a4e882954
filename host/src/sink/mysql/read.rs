//! A pc-host MySQL / MariaDB database read back for `verify`: the runs, and every message row
//! streamed from the server (never the whole table in memory); for `verify --source`, a file
//! input's rows, also streamed.

use anyhow::anyhow;
use mysql::Conn;
use mysql::prelude::Queryable as _;

use super::connect::Target;
use super::error::describe;
use super::runs;
use super::schema::{self, Found};
use crate::config::url::ServerUrl;
use crate::position::FileKey;
use crate::sink::read_back::{self, FileInput, Interval, ReadBack, Row, RunInfo};

/// The database read back for `verify`.
#[derive(Debug)]
pub struct Reader {
    conn: Conn,
    url: ServerUrl,
    server: &'static str,
    /// `runs` has version 2's columns (the run's summary).
    summary: bool,
    /// `runs` has version 5's column (the run's duplicates).
    duplicates: bool,
}

impl Reader {
    /// Connects and checks that the database holds pc-host's tables, of this version or of
    /// version 1 (read as it is: verify never upgrades).
    ///
    /// # Errors
    /// One line naming the URL: no connection, no pc-host tables, foreign or altered ones.
    pub fn open(url: &ServerUrl, busy: std::time::Duration) -> anyhow::Result<Self> {
        let target = Target::new(url, busy)?;
        let connected = target.connect_or_explain()?;
        let mut conn = connected.conn;
        match schema::check(&mut conn, url)? {
            found @ (Found::Current
            | Found::Version1
            | Found::Version2
            | Found::Version3
            | Found::Version4) => Ok(Self {
                conn,
                url: url.clone(),
                server: connected.server,
                summary: found != Found::Version1,
                duplicates: found == Found::Current,
            }),
            Found::Incomplete(missing) if missing.is_empty() => Err(anyhow!(
                "sink {}: the database's pc-host mark holds no schema version: a run creating \
                 its tables was cut short (a run completes them)",
                url.shown
            )),
            Found::Incomplete(missing) => Err(anyhow!(
                "sink {}: the database has pc-host's mark but not its table(s) {}: a run \
                 creating them was cut short (a run completes them), or this user cannot see \
                 them (its privileges)",
                url.shown,
                missing.join(", ")
            )),
            Found::Empty => Err(anyhow!(
                "sink {}: the database holds no pc-host tables (no run wrote to it)",
                url.shown
            )),
        }
    }

    fn err(&self, e: &mysql::Error) -> anyhow::Error {
        error(self.server, &self.url, e)
    }
}

impl ReadBack for Reader {
    fn last_run_with_intervals(&mut self) -> anyhow::Result<Option<i64>> {
        if !self.summary {
            return Ok(None); // version 1 keeps no intervals
        }
        let last: Option<Option<i64>> = self
            .conn
            .query_first(read_back::LAST_RUN_WITH_INTERVALS)
            .map_err(|e| self.err(&e))?;
        Ok(last.flatten())
    }

    fn runs_after(&mut self, run: i64) -> anyhow::Result<i64> {
        let count: Option<i64> = self
            .conn
            .exec_first(read_back::runs_after_query("?"), (run,))
            .map_err(|e| self.err(&e))?;
        Ok(count.unwrap_or(0))
    }

    fn intervals(&mut self, run: i64) -> anyhow::Result<Vec<Interval>> {
        if !self.summary {
            return Ok(Vec::new());
        }
        type Columns = (f64, i64, i64, Option<i64>, Option<i64>, Option<i64>);
        let rows: Vec<Columns> = self
            .conn
            .exec(read_back::intervals_query("?"), (run,))
            .map_err(|e| self.err(&e))?;
        Ok(rows
            .into_iter()
            .map(|(t_s, produced, stored, p50_ns, p99_ns, max_ns)| Interval {
                t_s,
                produced,
                stored,
                p50_ns,
                p99_ns,
                max_ns,
            })
            .collect())
    }

    fn runs(&mut self, only: Option<i64>) -> anyhow::Result<Vec<RunInfo>> {
        runs::runs(&mut self.conn, only, (self.summary, self.duplicates)).map_err(|e| self.err(&e))
    }

    fn rows(&mut self, only: Option<i64>, each: &mut dyn FnMut(Row<'_>)) -> anyhow::Result<()> {
        stream_rows(&mut self.conn, only, each).map_err(|e| self.err(&e))
    }

    fn file_input(&mut self, key: &FileKey) -> anyhow::Result<Option<FileInput>> {
        let found: Option<(i64, i64, i64, i64)> = self
            .conn
            .exec_first(
                format!(
                    "SELECT {} FROM inputs {}",
                    read_back::file_input_columns("`offset`"),
                    runs::SAME_FILE
                ),
                runs::same_file_params(key),
            )
            .map_err(|e| self.err(&e))?;
        Ok(found.map(|(input, offset, line, tail)| FileInput {
            input,
            offset,
            line,
            tail,
        }))
    }

    fn input_runs(&mut self, input: i64) -> anyhow::Result<Vec<(i64, Option<String>)>> {
        self.conn
            .exec(
                "SELECT run_id, config FROM runs WHERE run_id IN \
                 (SELECT run_id FROM run_inputs WHERE input_id = ?) ORDER BY run_id",
                (input,),
            )
            .map_err(|e| self.err(&e))
    }

    fn input_rows(
        &mut self,
        input: i64,
        each: &mut dyn FnMut(i64, i64, &str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let err = |e: mysql::Error| error(self.server, &self.url, &e);
        let mut result = self
            .conn
            .exec_iter(
                "SELECT run_id, seq, message FROM messages WHERE producer = ? \
                 AND run_id IN (SELECT run_id FROM run_inputs WHERE input_id = ?) ORDER BY id",
                (input, input),
            )
            .map_err(err)?;
        while let Some(set) = result.iter() {
            for row in set {
                let (run, seq, text): (i64, i64, Vec<u8>) =
                    mysql::from_row_opt(row.map_err(err)?).map_err(|e| err(e.into()))?;
                each(run, seq, &String::from_utf8_lossy(&text))?;
            }
        }
        Ok(())
    }
}

/// An error of the server at `url`, naming both.
fn error(server: &str, url: &ServerUrl, e: &mysql::Error) -> anyhow::Error {
    anyhow!("{server} {}: {}", url.shown, describe(e))
}

/// Calls `each` for every message row (of one run), as the server sends them.
fn stream_rows(
    conn: &mut Conn,
    only: Option<i64>,
    each: &mut dyn FnMut(Row<'_>),
) -> mysql::Result<()> {
    const ALL: &str = "SELECT run_id, producer, seq, message FROM messages";
    let mut result = match only {
        Some(run) => conn.exec_iter(format!("{ALL} WHERE run_id = ?"), (run,))?,
        None => conn.exec_iter(ALL, ())?,
    };
    while let Some(set) = result.iter() {
        for row in set {
            let (run_id, producer, seq, text): (i64, i64, i64, Vec<u8>) =
                mysql::from_row_opt(row?)?;
            each(Row {
                run_id,
                producer,
                seq,
                message: std::str::from_utf8(&text).unwrap_or(""),
            });
        }
    }
    Ok(())
}
