//! One connection of a writer and the statements it prepares once (each when first needed),
//! and the one transaction a write is: the rows by binary COPY, the rows they replace, the
//! inputs' new positions, and (just before COMMIT) the transaction's id, by which a COMMIT
//! whose reply was lost is settled later (`pg_xact_status`).

use std::io::Write as _;
use std::time::Duration;

use postgres::{Client, Statement};

use super::commit_watch::{CommitWatch, OnOverrun};
use super::connect::{Server, timeout_ms};
use super::delivered;
use super::encode::{COLUMNS, TooLong, encode_each};
use crate::message::Record;
use crate::position::{Resume, stale_fragment};

/// Removes the row an earlier run stored for a line without its end: that run read the same
/// input (`run_inputs`), so the unique index (run_id, producer, seq) finds the row.
const REPLACE_LINE: &str = "DELETE FROM messages WHERE run_id IN (SELECT run_id FROM run_inputs \
                            WHERE input_id = $1 AND run_id <> $3) AND producer = $1 AND seq = $2";

/// Moves an input on only from where this writer left it (so two processes ingesting the same
/// file cannot both commit the same lines).
const ADVANCE_INPUT: &str = "UPDATE inputs SET \"offset\" = $2, line = $3, tail = $4, mark = $7 \
                             WHERE input_id = $1 AND \"offset\" = $5 AND line = $6";

/// Whether a run holds a row.
const HOLDS: &str = "SELECT 1 FROM messages WHERE run_id = $1 AND producer = $2 AND seq = $3";

/// The transaction's id. `xid8` has no Rust type in the `postgres` crate: it travels as `int8`
/// (an xid8 is below 2^63 for as long as a cluster can live).
const XID: &str = "SELECT pg_current_xact_id()::text::int8";

/// A transaction's state, by its id.
const STATUS: &str = "SELECT pg_xact_status($1::int8::text::xid8)";

/// A connection and its statements, each prepared when a call first needs it rather than at
/// connecting (a write's on the first write): a session whose `messages` is gone, or whose
/// user may no longer write it, still keeps the intervals, records the run's end and asks the
/// server what became of a transaction in doubt.
pub struct Session {
    pub client: Client,
    /// How long the server lets a statement run, and the watch a COMMIT, for a write of up
    /// to [`OWN_BOUND_FROM`] bytes (`None`: unbounded, as the server or the URL set it).
    bound: Option<Duration>,
    /// Acts on a COMMIT that outlives its bound (`None`: no bound, or no thread for it).
    watch: Option<CommitWatch>,
    copy: Option<Statement>,
    replace: Option<Statement>,
    advance: Option<Statement>,
    holds: Option<Statement>,
    xid: Option<Statement>,
    status: Option<Statement>,
}

/// `slot`'s statement, prepared on `client` from `sql()` if it is not yet.
fn prepared(
    client: &mut Client,
    slot: &mut Option<Statement>,
    sql: impl FnOnce() -> String,
) -> Result<Statement, postgres::Error> {
    if let Some(statement) = slot {
        return Ok(statement.clone());
    }
    let statement = client.prepare(&sql())?;
    *slot = Some(statement.clone());
    Ok(statement)
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("closed", &self.client.is_closed())
            .finish_non_exhaustive()
    }
}

/// An input moved on by a write: its id, where it was, where the write leaves it.
pub type Move = (u32, Resume, Resume);

/// Why a write's transaction failed (and was rolled back).
#[derive(Debug)]
pub enum Failed {
    Db(postgres::Error),
    /// The server refused the COPY before taking its rows (a lock wait past `lock_timeout`,
    /// say). The driver sent the COPY with a Sync of its own, which the server answers once
    /// the COPY is refused, so the connection holds a reply no call asked for: the next one
    /// would fail with "unexpected message from server" (rust-postgres issue 789). The
    /// connection is dropped.
    CopyRefused(postgres::Error),
    /// The COPY stream could not be handed over.
    Io(std::io::Error),
    /// An input was not where this writer left it: another process moved it.
    Moved(u32),
    /// A record PostgreSQL cannot hold.
    TooLong(TooLong),
    /// The transaction (this xid) whose COMMIT reply was lost was still committing when the
    /// writer stopped waiting for it: the write is tried again later.
    Pending(i64),
    /// The COMMIT was still going after this long and the session's watch had it cancelled;
    /// the server's answer.
    CommitCancelled(Duration, postgres::Error),
}

impl From<postgres::Error> for Failed {
    fn from(e: postgres::Error) -> Self {
        Self::Db(e)
    }
}

impl Session {
    /// Connects to `server`.
    ///
    /// # Errors
    /// The server's.
    pub fn open(server: &Server) -> Result<Self, postgres::Error> {
        Ok(Self::new(server.connect()?, server))
    }

    /// A session on `client`, connected to `server`, no statement prepared yet. Its COMMITs
    /// are watched if the server's statements are bounded and a thread can be started (else
    /// a COMMIT is waited for, however long it takes).
    pub fn new(mut client: Client, server: &Server) -> Self {
        let bound = server.statement_wait();
        let watch = bound.and_then(|_| {
            let on_overrun = on_overrun(&mut client);
            CommitWatch::start(on_overrun, client.cancel_token(), &server.shown).ok()
        });
        Self {
            client,
            bound,
            watch,
            copy: None,
            replace: None,
            advance: None,
            holds: None,
            xid: None,
            status: None,
        }
    }

    /// The COPY of a write's rows and the query of its transaction's id, prepared if they are
    /// not yet.
    fn copy_and_xid(&mut self) -> Result<(Statement, Statement), postgres::Error> {
        let c = &mut self.client;
        let copy = prepared(c, &mut self.copy, || {
            format!("COPY messages ({COLUMNS}) FROM STDIN (FORMAT binary)")
        })?;
        Ok((copy, prepared(c, &mut self.xid, || XID.into())?))
    }

    /// The statements that replace a line's row and move an input on, prepared if they are
    /// not yet.
    fn replace_and_advance(&mut self) -> Result<(Statement, Statement), postgres::Error> {
        let c = &mut self.client;
        let replace = prepared(c, &mut self.replace, || REPLACE_LINE.into())?;
        Ok((
            replace,
            prepared(c, &mut self.advance, || ADVANCE_INPUT.into())?,
        ))
    }

    /// Whether run `run_id` holds the row of `r`.
    ///
    /// # Errors
    /// The server's.
    pub fn holds(&mut self, run_id: i64, r: &Record) -> Result<bool, postgres::Error> {
        let holds = prepared(&mut self.client, &mut self.holds, || HOLDS.into())?;
        let row = self
            .client
            .query_opt(&holds, &[&run_id, &(r.producer as i32), &(r.seq as i64)])?;
        Ok(row.is_some())
    }

    /// The state of transaction `xid`: `committed`, `aborted`, `in progress`, or `None` when
    /// the server no longer knows (too old).
    ///
    /// # Errors
    /// The server's.
    pub fn status(&mut self, xid: i64) -> Result<Option<String>, postgres::Error> {
        let status = prepared(&mut self.client, &mut self.status, || STATUS.into())?;
        let row = self.client.query_one(&status, &[&xid])?;
        row.try_get(0)
    }

    /// Commits, in one transaction, the COPY stream `rows` (of `records`), the removal of the
    /// rows that `records` complete, and the inputs' moves (with any fragment row a move leaves
    /// stale: `stale_fragment`). `xid` is set to the transaction's
    /// id just before COMMIT (`None` until then); `sent` is set while the COMMIT's reply is
    /// awaited, and stays set if it never comes (the outcome is unknown: `xid` tells it).
    ///
    /// # Errors
    /// [`Failed`]; nothing of the transaction is stored, unless `sent` stayed set.
    pub fn commit(
        &mut self,
        run_id: i64,
        rows: &[u8],
        records: &[&Record],
        moves: &[Move],
        xid: &mut Option<i64>,
        sent: &mut bool,
    ) -> Result<(), Failed> {
        *xid = None;
        let (copy_rows, xid_query) = self.copy_and_xid()?;
        let (replace, advance) = self.replace_and_advance()?;
        let (mut tx, bound) = begin(&mut self.client, self.bound, rows.len())?;
        let mut copy = tx.copy_in(&copy_rows).map_err(Failed::CopyRefused)?;
        copy.write_all(rows).map_err(Failed::Io)?;
        copy.finish()?;
        for r in records.iter().filter(|r| r.replaces) {
            tx.execute(&replace, &[&(r.producer as i32), &(r.seq as i64), &run_id])?;
        }
        for &(input, from, to) in moves {
            let changed = tx.execute(
                &advance,
                &[
                    &(input as i32),
                    &(to.offset as i64),
                    &(to.line as i64),
                    &(to.tail as i64),
                    &(from.offset as i64),
                    &(from.line as i64),
                    &to.mark.map(i64::from),
                ],
            )?;
            if changed != 1 {
                return Err(Failed::Moved(input));
            }
            let replaced = |i: u32, seq: u64| crate::message::keeps_fragment(records, i, seq);
            if let Some(line) = stale_fragment(from, to, replaced) {
                tx.execute(&replace, &[&(input as i32), &(line as i64), &run_id])?;
            }
        }
        *xid = Some(tx.query_one(&xid_query, &[])?.try_get(0)?);
        commit_watched(self.watch.as_ref(), bound, tx, sent)
    }

    /// Commits broker deliveries in one transaction: claims their keys for run `run_id` and
    /// copies the rows of those not held before (each a row of its publisher's run here, or of
    /// `run_id`), through `buf`. Returns how many were duplicates, also when the COMMIT's reply
    /// is lost (`xid` and `sent` as for [`Session::commit`]; `duplicates` is set before it).
    ///
    /// # Errors
    /// As [`Session::commit`].
    pub fn commit_deliveries(
        &mut self,
        run_id: i64,
        buf: &mut Vec<u8>,
        records: &[&Record],
        (xid, sent, duplicates): (&mut Option<i64>, &mut bool, &mut u64),
    ) -> Result<(), Failed> {
        *xid = None;
        let (copy_rows, xid_query) = self.copy_and_xid()?;
        // The rows are encoded after the claim: their size by the records' text.
        let bytes = records.iter().map(|r| r.text.len() + ROW_OVERHEAD).sum();
        let (mut tx, bound) = begin(&mut self.client, self.bound, bytes)?;
        let fresh = delivered::claim(&mut tx, run_id, records)?;
        let keep: Vec<&Record> = records
            .iter()
            .copied()
            .filter(|r| fresh.contains(&delivered::key(r)))
            .collect();
        *duplicates = (records.len() - keep.len()) as u64;
        encode_each(buf, &keep, |r| r.row_run(run_id)).map_err(Failed::TooLong)?;
        let mut copy = tx.copy_in(&copy_rows).map_err(Failed::CopyRefused)?;
        copy.write_all(buf).map_err(Failed::Io)?;
        copy.finish()?;
        *xid = Some(tx.query_one(&xid_query, &[])?.try_get(0)?);
        commit_watched(self.watch.as_ref(), bound, tx, sent)
    }
}

/// A write's transaction on `client`, and the bound of its statements and COMMIT: the
/// session's `base` for a write of up to [`OWN_BOUND_FROM`] `bytes`; for a larger one,
/// [`MIN_RATE`]'s time for its bytes on top (`SET LOCAL statement_timeout`), so that a large
/// batch on a slow link is not cancelled for its size.
fn begin(
    client: &mut Client,
    base: Option<Duration>,
    bytes: usize,
) -> Result<(postgres::Transaction<'_>, Option<Duration>), postgres::Error> {
    let mut tx = client.transaction()?;
    let bound = base.map(|base| write_bound(base, bytes));
    if let Some(bound) = bound.filter(|_| bytes > OWN_BOUND_FROM) {
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}",
            timeout_ms(bound)
        ))?;
    }
    Ok((tx, bound))
}

/// The bound of a write of `bytes` on a session bounded by `base` ([`begin`]).
fn write_bound(base: Duration, bytes: usize) -> Duration {
    if bytes <= OWN_BOUND_FROM {
        base
    } else {
        base + Duration::from_secs_f64(bytes as f64 / MIN_RATE)
    }
}

/// About what a row takes in a write besides its text (its key, times, COPY framing).
const ROW_OVERHEAD: usize = 64;

/// A write of more bytes than this gets a bound of its own ([`begin`]).
const OWN_BOUND_FROM: usize = 1 << 20;

/// The slowest transfer a write's bound allows for, in bytes a second.
const MIN_RATE: f64 = (1 << 20) as f64;

/// What a session's watch does with a COMMIT past its bound: cancel it, unless the server's
/// settings say it may be waiting for a synchronous standby (or cannot be read).
fn on_overrun(client: &mut Client) -> OnOverrun {
    let settings = client.query_one(
        "SELECT current_setting('synchronous_standby_names'), \
         current_setting('synchronous_commit')",
        &[],
    );
    match settings.and_then(|row| Ok((row.try_get::<_, String>(0)?, row.try_get::<_, String>(1)?)))
    {
        Ok((names, commit)) => OnOverrun::for_settings(&names, &commit),
        Err(_) => OnOverrun::Warn,
    }
}

/// Commits `tx` under `watch`; `sent` is set while the reply is awaited and stays set if it
/// never comes (an error reply is an outcome: rolled back).
///
/// # Errors
/// The server's; [`Failed::CommitCancelled`] for a COMMIT the watch had cancelled.
fn commit_watched(
    watch: Option<&CommitWatch>,
    bound: Option<Duration>,
    tx: postgres::Transaction<'_>,
    sent: &mut bool,
) -> Result<(), Failed> {
    *sent = true;
    let (done, cancelled) = match (watch, bound) {
        (Some(w), Some(bound)) => w.around(bound, || tx.commit()),
        _ => (tx.commit(), false),
    };
    match done {
        Ok(()) => {
            *sent = false;
            Ok(())
        }
        Err(e) => {
            *sent = !answered(&e);
            match bound {
                Some(bound) if cancelled => Err(Failed::CommitCancelled(bound, e)),
                _ => Err(e.into()),
            }
        }
    }
}

/// Whether the server answered a COMMIT with an error, so it rolled back: a reply of
/// severity ERROR, unlike a lost connection, is an outcome. A FATAL one (the backend
/// terminated, as by `pg_terminate_backend`) is not: it can come after the commit took effect.
fn answered(e: &postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|d| matches!(d.parsed_severity(), Some(postgres::error::Severity::Error)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_past_a_megabyte_gets_a_second_a_megabyte_more() {
        let base = Duration::from_secs(20);
        assert_eq!(write_bound(base, 0), base);
        assert_eq!(write_bound(base, OWN_BOUND_FROM), base);
        assert_eq!(
            write_bound(base, 100 << 20),
            base + Duration::from_secs(100)
        );
    }
}
