//! A pc-host PostgreSQL database read back for `verify`: the runs, and every message row
//! streamed (never a whole table in memory); for `verify --source`, a file input's rows, also
//! streamed.

use anyhow::anyhow;
use postgres::Client;
use postgres::fallible_iterator::FallibleIterator as _;

use super::connect::Server;
use super::error::describe;
use super::runs;
use super::schema::{self, Found};
use crate::config::url::ServerUrl;
use crate::position::FileKey;
use crate::sink::read_back::{self, FileInput, Interval, ReadBack, Row, RunInfo};

/// The database read back for `verify`.
pub struct Reader {
    client: Client,
    server: Server,
    /// The schema version: version 1 is read as it is (verify never writes).
    found: Found,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// Connects and checks that the database holds pc-host's tables, of this version or of
    /// version 1 (read as it is: its runs have no dead-letter count).
    ///
    /// # Errors
    /// One line naming the URL (without its password): cannot connect, no pc-host tables, or
    /// tables pc-host does not recognise.
    pub fn open(url: &ServerUrl, busy: std::time::Duration) -> anyhow::Result<Self> {
        let server = Server::new(url, busy)?;
        let mut client = server.connect_first()?;
        match schema::check(&mut client).map_err(|e| schema::explain(e, &server.shown))? {
            Found::Empty => Err(anyhow!(
                "{} holds no pc-host data (none of its tables)",
                server.shown
            )),
            found => Ok(Self {
                client,
                server,
                found,
            }),
        }
    }
}

impl ReadBack for Reader {
    fn last_run_with_intervals(&mut self) -> anyhow::Result<Option<i64>> {
        if self.found == Found::Version1 {
            return Ok(None); // version 1 keeps no intervals
        }
        self.client
            .query_one(read_back::LAST_RUN_WITH_INTERVALS, &[])
            .and_then(|row| row.try_get(0))
            .map_err(|e| {
                self.server
                    .error(format!("reading the intervals: {}", describe(&e)))
            })
    }

    fn runs_after(&mut self, run: i64) -> anyhow::Result<i64> {
        self.client
            .query_one(&read_back::runs_after_query("$1"), &[&run])
            .and_then(|row| row.try_get(0))
            .map_err(|e| {
                self.server
                    .error(format!("reading the runs: {}", describe(&e)))
            })
    }

    fn intervals(&mut self, run: i64) -> anyhow::Result<Vec<Interval>> {
        if self.found == Found::Version1 {
            return Ok(Vec::new());
        }
        self.client
            .query(&read_back::intervals_query("$1"), &[&run])
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok(Interval {
                            t_s: r.try_get(0)?,
                            produced: r.try_get(1)?,
                            stored: r.try_get(2)?,
                            p50_ns: r.try_get(3)?,
                            p99_ns: r.try_get(4)?,
                            max_ns: r.try_get(5)?,
                        })
                    })
                    .collect()
            })
            .map_err(|e| {
                self.server
                    .error(format!("reading the intervals: {}", describe(&e)))
            })
    }

    fn runs(&mut self, only: Option<i64>) -> anyhow::Result<Vec<RunInfo>> {
        runs::runs(&mut self.client, only, &self.found).map_err(|e| {
            self.server
                .error(format!("reading the runs: {}", describe(&e)))
        })
    }

    fn rows(&mut self, only: Option<i64>, each: &mut dyn FnMut(Row<'_>)) -> anyhow::Result<()> {
        let server = &self.server;
        let err =
            |e: postgres::Error| server.error(format!("reading the messages: {}", describe(&e)));
        let mut rows = self
            .client
            .query_raw(
                "SELECT run_id, producer, seq, message FROM messages \
                 WHERE $1::bigint IS NULL OR run_id = $1",
                [only],
            )
            .map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            each(Row {
                run_id: row.try_get(0).map_err(err)?,
                producer: i64::from(row.try_get::<_, i32>(1).map_err(err)?),
                seq: row.try_get(2).map_err(err)?,
                message: row.try_get(3).map_err(err)?,
            });
        }
        Ok(())
    }

    fn file_input(&mut self, key: &FileKey) -> anyhow::Result<Option<FileInput>> {
        let (path, dev, ino, born) = runs::file_columns(key);
        self.client
            .query_opt(
                &format!(
                    "SELECT {} FROM inputs {}",
                    read_back::file_input_columns("\"offset\""),
                    runs::SAME_FILE
                ),
                &[&path, &dev, &ino, &born],
            )
            .and_then(|row| {
                row.map(|r| {
                    Ok(FileInput {
                        input: i64::from(r.try_get::<_, i32>(0)?),
                        offset: r.try_get(1)?,
                        line: r.try_get(2)?,
                        tail: r.try_get(3)?,
                    })
                })
                .transpose()
            })
            .map_err(|e| {
                self.server
                    .error(format!("reading the inputs: {}", describe(&e)))
            })
    }

    fn input_runs(&mut self, input: i64) -> anyhow::Result<Vec<(i64, Option<String>)>> {
        self.client
            .query(
                "SELECT run_id, config FROM runs WHERE run_id IN \
                 (SELECT run_id FROM run_inputs WHERE input_id = $1) ORDER BY run_id",
                &[&input_id(input)],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect()
            })
            .map_err(|e| {
                self.server
                    .error(format!("reading the runs: {}", describe(&e)))
            })
    }

    fn input_rows(
        &mut self,
        input: i64,
        each: &mut dyn FnMut(i64, i64, &str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let server = &self.server;
        let err =
            |e: postgres::Error| server.error(format!("reading the messages: {}", describe(&e)));
        let mut rows = self
            .client
            .query_raw(
                "SELECT run_id, seq, message FROM messages WHERE producer = $1 \
                 AND run_id IN (SELECT run_id FROM run_inputs WHERE input_id = $1) ORDER BY id",
                [input_id(input)],
            )
            .map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            let run = row.try_get(0).map_err(err)?;
            let seq = row.try_get(1).map_err(err)?;
            each(run, seq, row.try_get(2).map_err(err)?)?;
        }
        Ok(())
    }
}

/// An `input_id` as its column holds it (`INT`); one beyond its range matches no row.
fn input_id(input: i64) -> i32 {
    i32::try_from(input).unwrap_or(-1)
}
