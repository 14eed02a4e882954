//! The MySQL / MariaDB writer: one connection, multi-row prepared INSERTs, the input positions
//! committed in the same transaction as their rows, and reconnecting after a lost connection.
//!
//! A write is one transaction. If the connection is lost, the server rolled it back, except
//! when the COMMIT was sent and its reply never came: then the outcome is unknown, and the
//! next write (the retry of the same records) first looks for the batch's first row, which
//! its unique key (run_id, producer, seq) makes unambiguous. Found, the batch committed whole.
//! That look is a locking read: it waits for the old connection's transaction if the server is
//! still committing it (its session not yet ended, or its reply only late).

use std::collections::HashMap;

use anyhow::anyhow;
use mysql::Conn;
use mysql::prelude::Queryable as _;

use super::connect::{Connected, Target};
use super::encode::{Budget, STATEMENT_ROWS, insert_sql, plan, push_params, row_bytes};
use super::error::{connection_gone, describe, duplicate_key, kind_of, lock_conflict};
use super::{delivered, runs};
use crate::message::Record;
use crate::position::{FileKey, Origin, OriginEnd, Resume, stale_fragment};
use crate::sink::error::Busy;
use crate::sink::{ErrorKind, RunEnd, Sink, SinkError};
use crate::telemetry::interval::Interval;

/// Moves a file input's committed position on, if it is where this writer left it (so two
/// processes ingesting the same file cannot both commit the same lines). With
/// CLIENT_FOUND_ROWS the server counts a matched row even when no value changes.
const ADVANCE_INPUT: &str = "UPDATE inputs SET `offset` = ?, line = ?, tail = ?, mark = ? \
                             WHERE input_id = ? AND `offset` = ? AND line = ?";

/// [`ADVANCE_INPUT`], also taking a position already at the new one: a retry of a position
/// update whose first COMMIT landed (its reply lost). Only where nothing else is written: a
/// batch's rows are guarded by the old position alone.
const ADVANCE_INPUT_AGAIN: &str = "UPDATE inputs SET `offset` = ?, line = ?, tail = ?, mark = ? \
                                   WHERE input_id = ? AND ((`offset` = ? AND line = ?) \
                                   OR (`offset` = ? AND line = ? AND tail = ?))";

/// The unique key of `messages` a batch written twice collides on.
const ROW_KEY: &str = "run_producer_seq";

/// Removes the row an earlier run stored for a line without its end, which a record of this
/// run now completes. That run read the same input, so `run_inputs` names it, and the unique
/// key (run_id, producer, seq) finds the row (a join: MariaDB scans the whole table for the
/// same condition written as `run_id IN (subquery)`).
const REPLACE_LINE: &str = "DELETE m FROM run_inputs ri JOIN messages m ON m.run_id = ri.run_id \
                            WHERE ri.input_id = ? AND ri.run_id <> ? \
                            AND m.producer = ? AND m.seq = ?";

/// Whether a row of this run is stored (the check after a COMMIT without a reply). A locking
/// read, in a transaction: it waits for a transaction still holding the row (still committing
/// on a connection that was lost), then reads the latest committed version.
const ROW_STORED: &str = "SELECT 1 FROM messages WHERE run_id = ? AND producer = ? AND seq = ? \
                          LOCK IN SHARE MODE";

/// A connection and the text of its INSERTs. Each statement is prepared at its first use
/// (the connection's statement cache keeps it, by its text), not at connecting, where MySQL
/// checks the privileges each needs: a session whose user may no longer insert can still
/// look up a batch in doubt and count back.
#[derive(Debug)]
struct Session {
    conn: Conn,
    /// One per [`STATEMENT_ROWS`] size, in that order.
    inserts: Vec<String>,
    budget: Budget,
}

impl Session {
    fn new(connected: Connected, run_id: i64) -> Self {
        let Connected {
            conn, max_packet, ..
        } = connected;
        Self {
            inserts: STATEMENT_ROWS
                .iter()
                .map(|&n| insert_sql(n, run_id))
                .collect(),
            budget: Budget::new(max_packet),
            conn,
        }
    }
}

/// Why a write failed.
#[derive(Debug)]
enum Failure {
    Db(mysql::Error),
    /// A record too big for any statement the server takes.
    TooBig {
        bytes: usize,
        max_packet: usize,
    },
    /// Another process moved a file input's position.
    Moved(u32),
}

impl From<mysql::Error> for Failure {
    fn from(e: mysql::Error) -> Self {
        Self::Db(e)
    }
}

impl Failure {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Db(e) => kind_of(e),
            Self::TooBig { .. } => ErrorKind::Record,
            Self::Moved(_) => ErrorKind::Fatal,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Db(e) => describe(e),
            Self::TooBig { bytes, max_packet } => format!(
                "a message of {bytes} bytes does not fit in the server's max_allowed_packet \
                 ({max_packet} bytes)"
            ),
            Self::Moved(input) => format!(
                "input {input} was advanced by another process (is another pc-host reading \
                 the same file into this database?)"
            ),
        }
    }
}

/// One connection, writing one run.
#[derive(Debug)]
pub struct Writer {
    target: Target,
    /// "MariaDB" or "MySQL", for messages.
    server: &'static str,
    run_id: i64,
    /// `None` after the connection was lost: the next call connects again.
    session: Option<Session>,
    /// The committed position of each file input this run reads, by input id.
    positions: HashMap<u32, Resume>,
    /// A COMMIT was sent and its reply not read: whether it committed is unknown.
    outcome_unknown: bool,
    /// The records are broker deliveries: stored once per key (`delivered.rs`).
    pub(super) delivered: bool,
    /// Duplicates the last write left out (known before its COMMIT).
    duplicates: u64,
}

impl Writer {
    /// Makes `connected` (tables checked) the writer of `run_id`.
    pub(super) fn new(target: Target, connected: Connected, run_id: i64) -> Self {
        let server = connected.server;
        Self {
            target,
            server,
            run_id,
            session: Some(Session::new(connected, run_id)),
            positions: HashMap::new(),
            outcome_unknown: false,
            delivered: false,
            duplicates: 0,
        }
    }

    /// What opens further connections writing the same run (parallel writes; no file
    /// positions), from any thread and without this writer (which may be busy committing
    /// meanwhile). Each call opens one, or fails with one line naming the URL.
    pub fn connector(&self) -> impl Fn() -> anyhow::Result<Writer> + Send + Sync + 'static {
        let (target, run_id, delivered) = (self.target.clone(), self.run_id, self.delivered);
        move || {
            let connected = target.connect_or_explain()?;
            let mut writer = Self::new(target.clone(), connected, run_id);
            writer.delivered = delivered;
            Ok(writer)
        }
    }

    /// The live session, connecting again if the last one was lost.
    fn take_session(&mut self) -> mysql::Result<Session> {
        match self.session.take() {
            Some(s) => Ok(s),
            None => Ok(Session::new(self.target.connect()?, self.run_id)),
        }
    }

    /// Runs `f` on the session; keeps the session unless `f` lost its connection.
    fn with_session<T, E>(
        &mut self,
        f: impl FnOnce(&mut Self, &mut Session) -> Result<T, E>,
        gone: impl Fn(&E) -> bool,
    ) -> Result<T, E>
    where
        E: From<mysql::Error>,
    {
        let mut s = self.take_session()?;
        let result = f(self, &mut s);
        if !matches!(&result, Err(e) if gone(e)) {
            self.session = Some(s);
        }
        result
    }

    /// Runs `f` on the session; if the connection was lost, connects again and runs it once
    /// more (every `f` here may run twice).
    fn with_session_twice<T, E>(
        &mut self,
        mut f: impl FnMut(&mut Self, &mut Session) -> Result<T, E>,
        gone: impl Fn(&E) -> bool,
    ) -> Result<T, E>
    where
        E: From<mysql::Error>,
    {
        match self.with_session(&mut f, &gone) {
            Err(e) if gone(&e) => self.with_session(f, gone),
            done => done,
        }
    }

    /// Whether the batch starting with `first` is stored: its first row, read with a lock
    /// (waiting for a transaction that still holds it), in a transaction of its own.
    fn stored(&self, s: &mut Session, records: &[&Record]) -> Result<bool, Failure> {
        let first = records[0];
        let key = (self.run_id, i64::from(first.producer), first.seq as i64);
        s.conn.query_drop("START TRANSACTION")?;
        let looked = if self.delivered {
            delivered::stored_any(&mut s.conn, self.run_id, records).map(|b| b.then_some(1))
        } else {
            s.conn.exec_first(ROW_STORED, key)
        };
        let found: Option<i64> = match looked {
            Ok(found) => found,
            Err(e) => {
                let e = Failure::Db(e);
                rollback(s, &e)?;
                return Err(e);
            }
        };
        s.conn.query_drop("COMMIT")?;
        Ok(found.is_some())
    }

    /// The batch was found stored: it committed whole, its positions with it.
    fn found_stored(&mut self, records: &[&Record]) {
        let moves = crate::message::moves(&self.positions, records);
        self.positions
            .extend(moves.into_iter().map(|(id, _, to)| (id, to)));
    }

    fn write_batch(&mut self, s: &mut Session, records: &[&Record]) -> Result<(), Failure> {
        let in_doubt = self.outcome_unknown;
        if in_doubt {
            if self.stored(s, records)? {
                // The batch committed whole before the connection was lost.
                self.outcome_unknown = false;
                self.found_stored(records);
                return Ok(());
            }
            self.outcome_unknown = false;
        }
        let bytes: Vec<usize> = records.iter().map(|r| row_bytes(r)).collect();
        let cuts = plan(&bytes, s.budget).map_err(|i| Failure::TooBig {
            bytes: records[i].text.len(),
            max_packet: s.budget.one + 1024,
        })?;
        s.conn.query_drop("START TRANSACTION")?;
        let filled = if self.delivered {
            delivered::insert(&mut s.conn, self.run_id, records)
                .map(|dups| {
                    self.duplicates = dups;
                    Vec::new()
                })
                .map_err(Failure::from)
        } else {
            self.fill(s, records, &cuts)
        };
        let moved = match filled {
            Ok(moved) => moved,
            Err(e) => {
                rollback(s, &e)?;
                // Checked not stored, yet its rows are there: look once more.
                if in_doubt
                    && matches!(&e, Failure::Db(d) if duplicate_key(d, ROW_KEY))
                    && self.stored(s, records)?
                {
                    self.found_stored(records);
                    return Ok(());
                }
                return Err(e);
            }
        };
        self.outcome_unknown = true;
        match s.conn.query_drop("COMMIT") {
            Ok(()) => {}
            Err(e) => {
                // A reply saying it failed is an outcome; a lost connection is not.
                self.outcome_unknown = connection_gone(&e);
                return Err(e.into());
            }
        }
        self.outcome_unknown = false;
        self.positions.extend(moved);
        Ok(())
    }

    /// Inside the transaction: the rows, the rows they replace, each file input's new
    /// position. Returns the positions (kept once the transaction commits).
    fn fill(
        &self,
        s: &mut Session,
        records: &[&Record],
        cuts: &[(usize, usize)],
    ) -> Result<Vec<(u32, Resume)>, Failure> {
        let mut params = Vec::new();
        for &(first, rows) in cuts {
            params.clear();
            params.reserve(rows * 4);
            for r in &records[first..first + rows] {
                push_params(&mut params, r);
            }
            let k = STATEMENT_ROWS.iter().position(|&n| n == rows).unwrap_or(0);
            s.conn
                .exec_drop(&s.inserts[k], std::mem::take(&mut params))?;
        }
        for r in records.iter().filter(|r| r.replaces) {
            s.conn.exec_drop(
                REPLACE_LINE,
                (
                    i64::from(r.producer),
                    self.run_id,
                    i64::from(r.producer),
                    r.seq as i64,
                ),
            )?;
        }
        let moves = crate::message::moves(&self.positions, records);
        let replaced = |input: u32, seq: u64| crate::message::keeps_fragment(records, input, seq);
        for &(_, from, to) in &moves {
            advance(s, from, to)?;
            remove_stale_fragment(s, self.run_id, from, to, replaced)?;
        }
        Ok(moves.into_iter().map(|(id, _, to)| (id, to)).collect())
    }

    fn commit_input_position(&mut self, s: &mut Session, to: Resume) -> Result<(), Failure> {
        let Some(&from) = self.positions.get(&to.input) else {
            return Ok(());
        };
        if from == to {
            return Ok(());
        }
        s.conn.query_drop("START TRANSACTION")?;
        let moved = advance_again(s, from, to)
            .and_then(|()| remove_stale_fragment(s, self.run_id, from, to, |_, _| false));
        if let Err(e) = moved {
            rollback(s, &e)?;
            return Err(e);
        }
        s.conn.query_drop("COMMIT")?;
        self.positions.insert(to.input, to);
        Ok(())
    }

    /// Runs `f` on the session with the least lock waits (of rows and of tables) the server
    /// takes ([`super::connect::least_waits`]: none on MariaDB, 1 s on MySQL), then puts the
    /// session's own timeouts back. A session whose timeouts could not be put back is not
    /// kept: the next use connects again.
    fn without_waiting<T>(
        &mut self,
        f: impl FnOnce(&mut Conn) -> mysql::Result<T>,
    ) -> mysql::Result<T> {
        let mut s = self.take_session()?;
        let done = s
            .conn
            .query_drop(super::connect::least_waits(self.server))
            .and_then(|()| f(&mut s.conn));
        let restored = s.conn.query_drop(self.target.session_waits());
        if restored.is_ok() {
            self.session = Some(s);
        }
        let value = done?;
        restored.map(|()| value)
    }

    /// `what` failed: one line naming the server and the URL.
    fn explain(&self, what: &str, why: &str) -> anyhow::Error {
        anyhow!(
            "{what} failed: {} {}: {why}",
            self.server,
            self.target.url.shown
        )
    }

    /// The failure `e` of `what` (a call that writes no records), classified as a write's
    /// would be ([`SinkError::of_bookkeeping`]) and explained.
    fn bookkeeping_error(&self, what: &str, e: &anyhow::Error) -> SinkError {
        let kind = if e.is::<Busy>() {
            ErrorKind::Retryable
        } else {
            e.downcast_ref().map_or(ErrorKind::Fatal, kind_of)
        };
        SinkError::of_bookkeeping(kind, self.explain(what, &one_line(e)))
    }
}

/// Moves an input's committed position from `from` to `to`, inside the caller's transaction;
/// fails if it is no longer at `from` (another process moved it).
fn advance(s: &mut Session, from: Resume, to: Resume) -> Result<(), Failure> {
    s.conn.exec_drop(
        ADVANCE_INPUT,
        (
            to.offset as i64,
            to.line as i64,
            to.tail as i64,
            to.mark.map(i64::from),
            i64::from(to.input),
            from.offset as i64,
            from.line as i64,
        ),
    )?;
    if s.conn.affected_rows() != 1 {
        return Err(Failure::Moved(to.input));
    }
    Ok(())
}

/// Inside the caller's transaction, removes the fragment's row that a move of an input from
/// `from` to `to` leaves stale (`stale_fragment`; `replaced` says which lines the
/// transaction's records replace).
fn remove_stale_fragment(
    s: &mut Session,
    run_id: i64,
    from: Resume,
    to: Resume,
    replaced: impl Fn(u32, u64) -> bool,
) -> Result<(), Failure> {
    if let Some(line) = stale_fragment(from, to, replaced) {
        let input = i64::from(to.input);
        s.conn
            .exec_drop(REPLACE_LINE, (input, run_id, input, line as i64))?;
    }
    Ok(())
}

/// [`advance`], also taking a position already at `to` (a retry whose first COMMIT landed).
fn advance_again(s: &mut Session, from: Resume, to: Resume) -> Result<(), Failure> {
    let (offset, line, tail) = (to.offset as i64, to.line as i64, to.tail as i64);
    s.conn.exec_drop(
        ADVANCE_INPUT_AGAIN,
        (
            offset,
            line,
            tail,
            to.mark.map(i64::from),
            i64::from(to.input),
            from.offset as i64,
            from.line as i64,
            offset,
            line,
            tail,
        ),
    )?;
    if s.conn.affected_rows() != 1 {
        return Err(Failure::Moved(to.input));
    }
    Ok(())
}

/// Ends a failed transaction. The server already ended it if the connection is gone.
fn rollback(s: &mut Session, cause: &Failure) -> Result<(), Failure> {
    if matches!(cause, Failure::Db(e) if connection_gone(e)) {
        return Ok(());
    }
    s.conn.query_drop("ROLLBACK").map_err(Failure::Db)
}

fn gone_failure(e: &Failure) -> bool {
    matches!(e, Failure::Db(e) if connection_gone(e))
}

impl Sink for Writer {
    fn write(&mut self, records: &[&Record]) -> Result<(), SinkError> {
        if records.is_empty() {
            return Ok(());
        }
        self.with_session(|w, s| w.write_batch(s, records), gone_failure)
            .map_err(|f| {
                let what = crate::sink::error::committing(records.len());
                let error = SinkError::new(f.kind(), self.explain(&what, &f.describe()));
                // A COMMIT sent without a reply, and not yet looked up: the records may be
                // stored.
                if self.outcome_unknown {
                    error.unconfirmed()
                } else {
                    error
                }
            })
    }

    fn register(&mut self, file: Option<&FileKey>) -> Result<Resume, SinkError> {
        let run_id = self.run_id;
        let resume = self
            .with_session_twice(
                |_, s| runs::register_input(&mut s.conn, run_id, file),
                |e: &anyhow::Error| e.downcast_ref().is_some_and(connection_gone),
            )
            .map_err(|e| self.bookkeeping_error("registering an input", &e))?;
        // A stream read through a broker has no position here: its messages are keyed.
        if file.is_some() && !self.delivered {
            self.positions.insert(resume.input, resume);
        }
        Ok(resume)
    }

    fn duplicates(&self) -> u64 {
        self.duplicates
    }

    fn origin_run(&mut self, origin: &Origin) -> Result<i64, SinkError> {
        self.with_session_twice(
            |w, s| delivered::origin_run(&mut s.conn, origin, w.target.lock_wait_secs()),
            |e: &anyhow::Error| e.downcast_ref().is_some_and(connection_gone),
        )
        .map_err(|e| self.bookkeeping_error("recording a publishing run", &e))
    }

    fn origin_ended(&mut self, run_id: i64, end: &OriginEnd) -> Result<(), SinkError> {
        self.with_session_twice(
            |_, s| runs::finish_run(&mut s.conn, run_id, &end.as_run_end()),
            connection_gone,
        )
        .map_err(|e| {
            let error = self.explain("recording a publishing run's end", &describe(&e));
            SinkError::of_bookkeeping(kind_of(&e), error)
        })
    }

    fn commit_position(&mut self, to: Resume) -> anyhow::Result<()> {
        self.with_session_twice(|w, s| w.commit_input_position(s, to), gone_failure)
            .map_err(|f| self.explain("committing an input's position", &f.describe()))
    }

    fn count_stored(&mut self) -> anyhow::Result<u64> {
        let run_id = self.run_id;
        let delivered = self.delivered;
        self.with_session_twice(
            |_, s| {
                if delivered {
                    delivered::count_stored(&mut s.conn, run_id)
                } else {
                    runs::count_stored(&mut s.conn, run_id)
                }
            },
            connection_gone,
        )
        .map_err(|e| self.explain("counting the stored messages", &describe(&e)))
    }

    fn finish_run(&mut self, end: &RunEnd<'_>) -> Result<(), SinkError> {
        let run_id = self.run_id;
        self.with_session_twice(
            |_, s| runs::finish_run(&mut s.conn, run_id, end),
            connection_gone,
        )
        .map_err(|e| {
            let error = self.explain("recording the end of the run", &describe(&e));
            SinkError::of_bookkeeping(kind_of(&e), error)
        })
    }

    /// Keeps `rows` in `run_intervals`, in one transaction, replacing rows of the same `t_s`.
    /// Without `wait`, nothing is waited for: a lock another client holds fails after 1 s
    /// (the shortest lock wait the server takes), and a writer whose connection was lost
    /// earlier does not connect again here (its next commit does); both are a [`Busy`] error,
    /// the rows left to the caller. A connection lost during the call is an ordinary error.
    /// Never retried here.
    ///
    /// # Errors
    /// [`Busy`] as above; otherwise one line naming the server and the URL.
    fn record_intervals(&mut self, rows: &[Interval], wait: bool) -> anyhow::Result<()> {
        const WHAT: &str = "keeping report intervals";
        if rows.is_empty() {
            return Ok(());
        }
        let run_id = self.run_id;
        let keep = |conn: &mut Conn| runs::record_intervals(conn, run_id, rows);
        if wait {
            return self
                .with_session(|_, s| keep(&mut s.conn), connection_gone)
                .map_err(|e| self.explain(WHAT, &describe(&e)));
        }
        if self.session.is_none() {
            let why = "not connected now (the next commit connects again)";
            return Err(Busy(self.explain(WHAT, why).to_string()).into());
        }
        self.without_waiting(keep).map_err(|e| {
            let line = self.explain(WHAT, &describe(&e));
            if lock_conflict(&e) {
                Busy(line.to_string()).into()
            } else {
                line
            }
        })
    }
}

impl Writer {
    /// Test hook: as if the last COMMIT's reply had been lost.
    #[doc(hidden)]
    pub fn lose_commit_reply(&mut self) {
        self.outcome_unknown = true;
    }
}

/// An error with its causes, as one line.
fn one_line(e: &anyhow::Error) -> String {
    match e.downcast_ref::<mysql::Error>() {
        Some(m) => describe(m),
        None => format!("{e:#}"),
    }
}
