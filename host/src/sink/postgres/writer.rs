//! The PostgreSQL writer: one connection writing one run, each write one transaction holding
//! its rows and the positions its file inputs reach, and the connection made again after it
//! was lost.
//!
//! A batch is stored once, even when the reply to its COMMIT was lost: the write retried
//! after that succeeds without storing anything if the lost COMMIT took effect, and stores the
//! batch if it did not. Each write reads its transaction's id just before COMMIT; after a lost
//! reply, the next write (the same records, retried) reconnects and asks the server for that
//! transaction's fate (`pg_xact_status`), waiting while the old backend is still committing
//! (a slow fsync, a synchronous standby), for as long as a lock is waited for (`lock_timeout`):
//! `committed`, the write succeeds without storing anything; `aborted`, the batch is written.
//! Still committing after that wait, the write fails as retryable and asks again next time.
//! Only if the server no longer knows the transaction (or the reply was lost before its id
//! was read) does the write look for the batch's first row instead: the batch is atomic, so if
//! that row is there the whole batch is. (The unique key (run_id, producer, seq) would refuse
//! a second copy anyway, but as a fatal error.)
//!
//! Cost: one more round trip per write (the id), none more per row.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use postgres::error::SqlState;

use super::connect::Server;
use super::delivered;
use super::encode::encode;
use super::error::{describe, io_text, kind_of, lost};
use super::runs;
use super::schema;
use super::session::{Failed, Move, Session};
use crate::config::url::ServerUrl;
use crate::message::Record;
use crate::position::{FileKey, Origin, OriginEnd, Resume};
use crate::sink::START_WAIT_SLICE;
use crate::sink::error::Busy;
use crate::sink::{ErrorKind, RunEnd, RunStart, Sink, SinkError};
use crate::telemetry::interval::Interval;

/// One connection, writing one run.
#[derive(Debug)]
pub struct Writer {
    server: Server,
    /// `None` once the connection was lost: the next call connects again.
    session: Option<Session>,
    run_id: i64,
    /// The committed position of each file input this run reads, by input id.
    positions: HashMap<u32, Resume>,
    /// The COPY stream of the current write (reused).
    buf: Vec<u8>,
    /// A COMMIT was sent and its reply not read: the last write may have committed.
    unknown: bool,
    /// The id of the last write's transaction, read just before its COMMIT.
    xid: Option<i64>,
    /// The records are broker deliveries: stored once per key (`delivered.rs`).
    delivered: bool,
    /// Duplicates the last write left out (known before its COMMIT).
    duplicates: u64,
}

/// How long to sleep between two looks at a transaction still committing.
const POLL: Duration = Duration::from_millis(10);

/// Connects, creates or checks the tables, records the run; returns the writer and run id.
///
/// # Errors
/// One line naming the URL (without its password): cannot connect, tables pc-host refuses,
/// no permission.
pub fn open(url: &ServerUrl, start: &RunStart<'_>) -> anyhow::Result<(Writer, i64)> {
    let server = Server::new(url, start.busy)?.bounding_statements();
    let mut client = server.connect_first()?;
    let run_id = prepare_run(&mut client, start, &server.shown)?;
    let session = Session::new(client, &server);
    let mut writer = Writer::new(server, session, run_id);
    writer.delivered = start.delivered;
    Ok((writer, run_id))
}

/// [`runs::prepare_run`], its lock waits in slices of at most [`START_WAIT_SLICE`], tried again
/// until `start.busy` has passed: between two a signal ends the wait, before the run is
/// recorded ([`crate::interrupt::Interrupted`]).
fn prepare_run(
    client: &mut postgres::Client,
    start: &RunStart<'_>,
    shown: &str,
) -> anyhow::Result<i64> {
    let deadline = Instant::now() + start.busy;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match runs::prepare_run(client, start, left.min(START_WAIT_SLICE)) {
            Err(schema::Refused::Held(held)) => {
                crate::interrupt::check(|| format!("{shown} ({held})"))?;
                if Instant::now() >= deadline {
                    return Err(schema::explain(schema::Refused::Held(held), shown));
                }
            }
            done => return done.map_err(|e| schema::explain(e, shown)),
        }
    }
}

impl Writer {
    fn new(server: Server, session: Session, run_id: i64) -> Self {
        Self {
            server,
            session: Some(session),
            run_id,
            positions: HashMap::new(),
            buf: Vec::new(),
            unknown: false,
            xid: None,
            delivered: false,
            duplicates: 0,
        }
    }

    /// What opens further connections writing the same run (parallel writes), from any
    /// thread and without this writer (which may be busy committing meanwhile). Each call
    /// opens one, or fails with one line naming the URL: cannot connect.
    pub fn connector(&self) -> impl Fn() -> anyhow::Result<Writer> + Send + Sync + 'static {
        let (server, run_id, delivered) = (self.server.clone(), self.run_id, self.delivered);
        move || {
            let client = server.connect_more()?;
            let session = Session::new(client, &server);
            let mut writer = Self::new(server.clone(), session, run_id);
            writer.delivered = delivered;
            Ok(writer)
        }
    }

    /// Test hook: acts as if the last write's COMMIT reply had been lost.
    #[doc(hidden)]
    pub fn forget_commit_outcome(&mut self) {
        self.unknown = true;
    }

    /// Test hook: acts as if the last write's COMMIT reply had been lost, that write's
    /// transaction having had id `xid` (`None`: lost before its id was read).
    #[doc(hidden)]
    pub fn forget_commit_outcome_of(&mut self, xid: Option<i64>) {
        self.unknown = true;
        self.xid = xid;
    }

    /// Test hook: the id of the last write's transaction, if it reached its COMMIT.
    #[doc(hidden)]
    pub fn last_xid(&self) -> Option<i64> {
        self.xid
    }

    fn session(&mut self) -> Result<&mut Session, postgres::Error> {
        session_in(&self.server, &mut self.session)
    }

    /// One write: skipped if the previous, unknown, outcome stored it; else one transaction.
    fn commit(&mut self, records: &[&Record], moves: &[Move]) -> Result<(), Failed> {
        let run_id = self.run_id;
        if self.unknown {
            let stored = self.stored_before(records)?;
            self.unknown = false;
            if stored {
                // `duplicates` still holds what that write left out.
                self.xid = None;
                return Ok(());
            }
        }
        if self.delivered {
            let session = session_in(&self.server, &mut self.session)?;
            return session.commit_deliveries(
                run_id,
                &mut self.buf,
                records,
                (&mut self.xid, &mut self.unknown, &mut self.duplicates),
            );
        }
        encode(&mut self.buf, records, run_id).map_err(Failed::TooLong)?;
        let session = session_in(&self.server, &mut self.session)?;
        session.commit(
            run_id,
            &self.buf,
            records,
            moves,
            &mut self.xid,
            &mut self.unknown,
        )
    }

    /// Whether the write whose COMMIT reply was lost committed: by its transaction's fate,
    /// waited for while it is still committing (as long as a lock is, `lock_timeout`); else,
    /// the server no longer knowing it or its id never read, by whether its first row is
    /// stored (deliveries: whether this run claimed any of their keys).
    ///
    /// # Errors
    /// The server's; [`Failed::Pending`] if the transaction is still committing after the wait.
    fn stored_before(&mut self, records: &[&Record]) -> Result<bool, Failed> {
        let run_id = self.run_id;
        if let Some(xid) = self.xid {
            let deadline = Instant::now() + self.server.lock_wait();
            loop {
                let status = match self.session()?.status(xid) {
                    Ok(status) => status,
                    // The server has never seen the id (`pg_xact_status` says "in the future",
                    // SQLSTATE 22023: a failover to a server the write never reached): as one
                    // it no longer knows, settled by the rows. Not a refused record.
                    Err(e) if e.code() == Some(&SqlState::INVALID_PARAMETER_VALUE) => None,
                    Err(e) => return Err(e.into()),
                };
                match status.as_deref() {
                    Some("committed") => return Ok(true),
                    Some("aborted") => return Ok(false),
                    None => break,
                    Some(_) => {}
                }
                // In progress: the old backend has not finished its COMMIT yet.
                let now = Instant::now();
                if now >= deadline {
                    return Err(Failed::Pending(xid));
                }
                std::thread::sleep(POLL.min(deadline - now));
            }
        }
        if self.delivered {
            let client = &mut self.session()?.client;
            return Ok(delivered::stored_any(client, run_id, records)?);
        }
        Ok(self.session()?.holds(run_id, records[0])?)
    }

    /// What the server's error `e` means for a write, and its words; drops the connection if
    /// the error ended it (`closed`: the client saw it close).
    fn server_failed(&mut self, e: &postgres::Error, closed: bool) -> (ErrorKind, String) {
        if lost(e, closed) {
            self.session = None;
        }
        (kind_of(e, closed), describe(e))
    }

    /// A failed write as a [`SinkError`]; drops the connection if the failure ended it.
    fn failed(&mut self, f: Failed, rows: usize) -> SinkError {
        let closed = self.session.as_ref().is_none_or(|s| s.client.is_closed());
        let (kind, what) = match &f {
            Failed::Db(e) => self.server_failed(e, closed),
            Failed::CopyRefused(e) => {
                self.session = None;
                self.server_failed(e, closed)
            }
            Failed::Io(e) => {
                self.session = None;
                (ErrorKind::Retryable, io_text(e))
            }
            Failed::TooLong(e) => (ErrorKind::Record, e.to_string()),
            Failed::Moved(input) => (ErrorKind::Fatal, moved_by_another(*input)),
            Failed::CommitCancelled(bound, e) => {
                let (kind, why) = self.server_failed(e, closed);
                let why = format!(
                    "COMMIT had not finished after {} s and was cancelled: {why}",
                    // 5.3, not 5: the bound with its lock waits (100 ms each here).
                    (bound.as_secs_f64() * 10.0).round() / 10.0
                );
                (kind, why)
            }
            Failed::Pending(xid) => (
                ErrorKind::Retryable,
                format!(
                    "the previous attempt's transaction (xid {xid}), whose COMMIT reply was \
                     lost, is still committing"
                ),
            ),
        };
        let error = SinkError::new(
            kind,
            anyhow!(
                "{} failed: {}",
                crate::sink::error::committing(rows),
                self.server.error(what)
            ),
        );
        // A COMMIT sent without a reply, and not yet looked up: the records may be stored.
        if self.unknown {
            error.unconfirmed()
        } else {
            error
        }
    }

    /// Keeps `rows` without waiting: on the open connection only (none is made here), with
    /// another client's lock waited for 1 ms at most, and never tried twice.
    ///
    /// # Errors
    /// [`Busy`] when there is no open connection or a lock was not granted at once (the caller
    /// keeps the rows for later); otherwise the server's, as one line (a lost connection is
    /// dropped, and the next call connects again).
    fn record_intervals_now(&mut self, rows: &[Interval]) -> anyhow::Result<()> {
        let run_id = self.run_id;
        let Some(session) = self.session.as_mut().filter(|s| !s.client.is_closed()) else {
            return Err(Busy(
                self.server
                    .error("keeping report intervals: not connected")
                    .to_string(),
            )
            .into());
        };
        let Err(e) = runs::record_intervals(&mut session.client, run_id, rows, false) else {
            return Ok(());
        };
        if lost(&e, session.client.is_closed()) {
            self.session = None;
        }
        let line = self
            .server
            .error(format!("keeping report intervals: {}", describe(&e)));
        if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            return Err(Busy(line.to_string()).into());
        }
        Err(line)
    }

    /// Runs `op` on the session; if the connection was lost, connects again and runs it once
    /// more (every `op` here may run twice).
    fn call<T>(
        &mut self,
        what: &str,
        op: impl FnMut(&mut postgres::Client, i64) -> Result<T, postgres::Error>,
    ) -> anyhow::Result<T> {
        self.call_classified(what, op).map_err(|e| e.error)
    }

    /// [`call`](Self::call), its failure retryable as a write's would be
    /// ([`SinkError::of_bookkeeping`]).
    fn call_classified<T>(
        &mut self,
        what: &str,
        mut op: impl FnMut(&mut postgres::Client, i64) -> Result<T, postgres::Error>,
    ) -> Result<T, SinkError> {
        let run_id = self.run_id;
        let mut again = true;
        loop {
            let result = self.session().and_then(|s| op(&mut s.client, run_id));
            let e = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let closed = self.session.as_ref().is_none_or(|s| s.client.is_closed());
            let lost = lost(&e, closed);
            if lost {
                self.session = None;
            }
            // A cancel the commit watch sent for a COMMIT that ended meanwhile can land on
            // this call's statement instead (`commit_watch.rs`): tried again once, as after a
            // lost connection.
            if (lost || e.code() == Some(&SqlState::QUERY_CANCELED)) && std::mem::take(&mut again) {
                continue;
            }
            let error = self.server.error(format!("{what}: {}", describe(&e)));
            return Err(SinkError::of_bookkeeping(kind_of(&e, closed), error));
        }
    }
}

impl Sink for Writer {
    fn write(&mut self, records: &[&Record]) -> Result<(), SinkError> {
        if records.is_empty() {
            return Ok(());
        }
        let moves = crate::message::moves(&self.positions, records);
        match self.commit(records, &moves) {
            Ok(()) => {
                self.positions
                    .extend(moves.iter().map(|&(id, _, to)| (id, to)));
                Ok(())
            }
            Err(f) => Err(self.failed(f, records.len())),
        }
    }

    fn register(&mut self, file: Option<&FileKey>) -> Result<Resume, SinkError> {
        let resume = self.call_classified("registering an input", |c, run_id| {
            runs::register_input(c, run_id, file)
        })?;
        // A stream read through a broker has no position here: its messages are keyed.
        if file.is_some() && !self.delivered {
            self.positions.insert(resume.input, resume);
        }
        Ok(resume)
    }

    fn commit_position(&mut self, to: Resume) -> anyhow::Result<()> {
        let Some(&from) = self.positions.get(&to.input) else {
            return Ok(());
        };
        if from == to {
            return Ok(());
        }
        let moved = self.call("moving an input's position", |c, run_id| {
            runs::commit_input_position(c, run_id, from, to)
        })?;
        if !moved {
            return Err(self.server.error(moved_by_another(to.input)));
        }
        self.positions.insert(to.input, to);
        Ok(())
    }

    /// Counts the run's rows without the writers' statement bound, where pc-host set it: a
    /// count over a large run may take longer than a write may.
    fn count_stored(&mut self) -> anyhow::Result<u64> {
        let delivered = self.delivered;
        let unbound = self.server.statement_wait().is_some();
        self.call("counting the stored messages", |c, run_id| {
            let mut tx = c.transaction()?;
            if unbound {
                tx.batch_execute("SET LOCAL statement_timeout = 0")?;
            }
            let n = if delivered {
                delivered::count_stored(&mut tx, run_id)?
            } else {
                runs::count_stored(&mut tx, run_id)?
            };
            tx.commit()?;
            Ok(n)
        })
    }

    fn duplicates(&self) -> u64 {
        self.duplicates
    }

    fn origin_run(&mut self, origin: &Origin) -> Result<i64, SinkError> {
        self.call_classified("recording a publishing run", |c, _| {
            delivered::origin_run(c, origin)
        })
    }

    fn origin_ended(&mut self, run_id: i64, end: &OriginEnd) -> Result<(), SinkError> {
        self.call_classified("recording a publishing run's end", |c, _| {
            runs::finish_run(c, run_id, &end.as_run_end())
        })
    }

    fn finish_run(&mut self, end: &RunEnd<'_>) -> Result<(), SinkError> {
        self.call_classified("recording the end of the run", |c, run_id| {
            runs::finish_run(c, run_id, end)
        })
    }

    /// Keeps `rows` in `run_intervals`, in one transaction. Without `wait`, see
    /// [`Writer::record_intervals_now`]; with it, a lock is waited for as long as any other
    /// (`lock_timeout`), and a lost connection is made again once (the rows replace any copy a
    /// lost COMMIT reply left).
    fn record_intervals(&mut self, rows: &[Interval], wait: bool) -> anyhow::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if !wait {
            return self.record_intervals_now(rows);
        }
        self.call("keeping report intervals", |c, run_id| {
            runs::record_intervals(c, run_id, rows, true)
        })
    }
}

/// The session in `slot`, connecting again if there is none or its connection closed.
fn session_in<'a>(
    server: &Server,
    slot: &'a mut Option<Session>,
) -> Result<&'a mut Session, postgres::Error> {
    let session = match slot.take() {
        Some(s) if !s.client.is_closed() => s,
        _ => Session::open(server)?,
    };
    Ok(slot.insert(session))
}

fn moved_by_another(input: u32) -> String {
    format!(
        "input {input} was advanced by another process (is another pc-host reading the same \
         file into this database?)"
    )
}
