//! A pc-host SQLite database read back for `verify`, through a connection that only reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{OptionalExtension as _, params};

use super::runs::{self, SAME_FILE, path_text};
use super::schema::{self, db_error};
use crate::position::FileKey;
use crate::sink::read_back::{self, FileInput, Interval, ReadBack, Row, RunInfo};

#[derive(Debug)]
pub struct SqliteReadBack {
    conn: schema::ReadConnection,
    path: PathBuf,
    /// How long a read waits for a database another process holds locked.
    busy: Duration,
}

impl SqliteReadBack {
    /// # Errors
    /// No file, not a pc-host database, or an old schema.
    pub fn open(path: &Path, busy: Duration) -> anyhow::Result<Self> {
        Ok(Self::of(schema::open_existing(path, busy)?, path, busy))
    }

    /// Reads through `conn`, opened on `path` by the caller (which checked its schema).
    pub fn of(conn: schema::ReadConnection, path: &Path, busy: Duration) -> Self {
        Self {
            conn,
            path: path.to_path_buf(),
            busy,
        }
    }
}

impl ReadBack for SqliteReadBack {
    fn runs(&mut self, only: Option<i64>) -> anyhow::Result<Vec<RunInfo>> {
        runs::runs(&self.conn, only).map_err(|e| db_error(&self.path, e, self.busy))
    }

    fn rows(&mut self, only: Option<i64>, each: &mut dyn FnMut(Row<'_>)) -> anyhow::Result<()> {
        let err = |e| db_error(&self.path, e, self.busy);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, producer, seq, message FROM messages \
                 WHERE ?1 IS NULL OR run_id = ?1",
            )
            .map_err(err)?;
        let mut rows = stmt.query(params![only]).map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            each(Row {
                run_id: row.get(0).map_err(err)?,
                producer: row.get(1).map_err(err)?,
                seq: row.get(2).map_err(err)?,
                message: row.get_ref(3).map_err(err)?.as_str().unwrap_or(""),
            });
        }
        Ok(())
    }

    fn file_input(&mut self, key: &FileKey) -> anyhow::Result<Option<FileInput>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {} FROM inputs {SAME_FILE}",
                    read_back::file_input_columns("offset")
                ),
                params![
                    path_text(&key.path),
                    key.dev as i64,
                    key.ino as i64,
                    key.born
                ],
                |r| {
                    Ok(FileInput {
                        input: r.get(0)?,
                        offset: r.get(1)?,
                        line: r.get(2)?,
                        tail: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| db_error(&self.path, e, self.busy))
    }

    fn input_runs(&mut self, input: i64) -> anyhow::Result<Vec<(i64, Option<String>)>> {
        let err = |e| db_error(&self.path, e, self.busy);
        self.conn
            .prepare(
                "SELECT run_id, config FROM runs WHERE run_id IN \
                 (SELECT run_id FROM run_inputs WHERE input_id = ?1) ORDER BY run_id",
            )
            .map_err(err)?
            .query_map([input], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(err)
    }

    fn input_rows(
        &mut self,
        input: i64,
        each: &mut dyn FnMut(i64, i64, &str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let err = |e| db_error(&self.path, e, self.busy);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, seq, message FROM messages WHERE producer = ?1 \
                 AND run_id IN (SELECT run_id FROM run_inputs WHERE input_id = ?1) ORDER BY id",
            )
            .map_err(err)?;
        let mut rows = stmt.query([input]).map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            let run = row.get(0).map_err(err)?;
            let seq = row.get(1).map_err(err)?;
            let message: String = row.get(2).map_err(err)?;
            each(run, seq, &message)?;
        }
        Ok(())
    }

    fn last_run_with_intervals(&mut self) -> anyhow::Result<Option<i64>> {
        self.conn
            .query_row(read_back::LAST_RUN_WITH_INTERVALS, [], |r| r.get(0))
            .map_err(|e| db_error(&self.path, e, self.busy))
    }

    fn runs_after(&mut self, run: i64) -> anyhow::Result<i64> {
        self.conn
            .query_row(&read_back::runs_after_query("?1"), [run], |r| r.get(0))
            .map_err(|e| db_error(&self.path, e, self.busy))
    }

    fn intervals(&mut self, run: i64) -> anyhow::Result<Vec<Interval>> {
        let err = |e| db_error(&self.path, e, self.busy);
        self.conn
            .prepare(&read_back::intervals_query("?1"))
            .map_err(err)?
            .query_map([run], |r| {
                Ok(Interval {
                    t_s: r.get(0)?,
                    produced: r.get(1)?,
                    stored: r.get(2)?,
                    p50_ns: r.get(3)?,
                    p99_ns: r.get(4)?,
                    max_ns: r.get(5)?,
                })
            })
            .map_err(err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(err)
    }
}
