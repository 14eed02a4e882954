//! The SQLite writer: the one write connection, multi-row prepared inserts, and the input
//! positions committed in the same transaction as their rows.
//!
//! SQLite has one writer; `sink::GroupCommit` shares this one among the consumers, so there is
//! never more than one write transaction from this process and no `SQLITE_BUSY` whatever the
//! number of consumers. Another process writing the same file is waited for (busy timeout).
//! Checkpoints are not done here: see `checkpoint.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use rusqlite::{Connection, params};

use super::checkpoint::WAL_BOUND;
use super::delivered;
use super::insert::Insert;
use super::runs::{self, RunRow};
use super::schema::db_error;
use crate::config::Synchronous;
use crate::message::Record;
use crate::paths::{Whereabouts, file_id};
use crate::position::{FileKey, Origin, OriginEnd, Resume, stale_fragment};
use crate::sink::{ErrorKind, RunEnd, Sink, SinkError};
use crate::telemetry::interval::Interval;

/// Rows per multi-row INSERT: the largest statement; remainders use the smaller powers of two.
const ROWS_PER_STATEMENT: usize = 128;

/// Moves a file input's committed position on, if it is where this writer left it (so two
/// processes ingesting the same file cannot both commit the same lines).
const ADVANCE_INPUT: &str = "UPDATE inputs SET offset = ?2, line = ?3, tail = ?4, mark = ?7 \
                             WHERE input_id = ?1 AND offset = ?5 AND line = ?6";

/// Records where the run's rows end, once, when it finishes (runs::count_stored says why not
/// at every commit).
const MARK_LAST_ID: &str = "UPDATE runs SET last_id = ?2 WHERE run_id = ?1";

/// Removes the row an earlier run stored for a line without its end, which a record of this
/// run now completes. Run after the inserts, so the new row's id is past the old one (SQLite
/// would reuse the largest id if it were deleted first) and inside this run's range. Only runs
/// that read that input are looked at: a generated run's producer numbers overlap input ids.
const REPLACE_LINE: &str = "DELETE FROM messages WHERE producer = ?1 AND seq = ?2 AND run_id != ?3 \
                            AND run_id IN (SELECT run_id FROM run_inputs WHERE input_id = ?1)";

/// What a transaction wrote: the inputs' new positions, the last row id, and the duplicates
/// it left out (broker deliveries).
type Written = (Vec<(u32, Resume)>, i64, u64);

/// The writer connection and its prepared multi-row INSERTs.
#[derive(Debug)]
pub struct Writer {
    /// Largest first: 128, 64, .., 1 rows. Declared before `conn`, so they are finalized
    /// before the connection closes.
    inserts: Vec<Insert>,
    conn: Connection,
    run_id: i64,
    /// The rowid this run's first message gets (or later: other runs may write meanwhile).
    first_id: i64,
    /// The rowid of the last message inserted.
    last_id: Option<i64>,
    /// The committed position of each file input this run reads, by input id.
    positions: HashMap<u32, Resume>,
    /// For error messages.
    path: PathBuf,
    busy: Duration,
    /// The database file's device and inode when opened.
    opened: Option<(u64, u64)>,
    /// Its `-wal` and `-shm` (beside the file the path leads to) and theirs, when opened.
    sides: Vec<(PathBuf, (u64, u64))>,
    /// The records come from a broker: stored once per key (`delivered.rs`).
    delivered: bool,
    /// Duplicates the last committed write left out.
    duplicates: u64,
}

impl Writer {
    /// Makes `conn` (already in WAL mode, schema in place) the writer for `run_id`.
    pub fn new(
        conn: Connection,
        run: &RunRow,
        sync: Synchronous,
        path: &Path,
        busy: Duration,
    ) -> anyhow::Result<Self> {
        let err = |e| db_error(path, e, busy);
        conn.pragma_update(None, "synchronous", sync.as_str())
            .map_err(err)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(err)?;
        // Trim the WAL file only well past the bound: re-growing a trimmed file costs the
        // writer page allocation and zeroing.
        conn.pragma_update(None, "journal_size_limit", 2 * WAL_BOUND as i64)
            .map_err(err)?;
        conn.pragma_update(None, "cache_size", -16_384)
            .map_err(err)?; // 16 MiB
        // Prepare everything now, so a problem shows before any thread starts.
        let mut inserts = Vec::new();
        let run_id = run.run_id;
        let mut rows = ROWS_PER_STATEMENT;
        while rows >= 1 {
            // SAFETY: `conn` is open and moves into the writer with the statements, which
            // drops them first; the writer is used by one thread at a time (its mutex).
            let insert = unsafe { Insert::prepare(conn.handle(), &insert_sql(rows, run_id), rows) };
            inserts.push(insert.map_err(err)?);
            rows /= 2;
        }
        let writer = Self {
            conn,
            run_id,
            first_id: run.first_id,
            inserts,
            last_id: None,
            positions: HashMap::new(),
            path: path.to_owned(),
            busy,
            opened: file_id(path),
            sides: side_files(path),
            delivered: false,
            duplicates: 0,
        };
        for sql in [
            "BEGIN IMMEDIATE",
            "COMMIT",
            "ROLLBACK",
            ADVANCE_INPUT,
            REPLACE_LINE,
        ] {
            writer.conn.prepare_cached(sql).map_err(err)?;
        }
        Ok(writer)
    }

    /// Makes this writer store broker deliveries: each record once per key (see
    /// `delivered.rs`), in the tables the run was prepared with (`runs::NewRun::delivered`).
    pub fn store_deliveries(&mut self) {
        self.delivered = true;
    }

    fn transaction(&mut self, records: &[&Record]) -> anyhow::Result<()> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let written = self.write_rows(records).and_then(|done| {
            self.conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(done)
        });
        match written {
            Ok((moved, last_id, duplicates)) => {
                self.positions.extend(moved);
                self.last_id = Some(last_id);
                self.duplicates = duplicates;
                Ok(())
            }
            Err(e) => {
                let _ = self
                    .conn
                    .prepare_cached("ROLLBACK")
                    .and_then(|mut s| s.execute([]));
                Err(e)
            }
        }
    }

    /// Inside the transaction: the rows, the rows they replace, each file input's new
    /// position. Returns the positions, the last id inserted and the duplicates left out
    /// (broker deliveries).
    fn write_rows(&mut self, records: &[&Record]) -> anyhow::Result<Written> {
        let mut duplicates = 0;
        if self.delivered {
            duplicates = delivered::insert(&self.conn, self.run_id, records)?;
        } else {
            self.insert(records.iter().copied(), records.len())?;
        }
        self.replace_completed(records)?;
        let last_id = self.conn.last_insert_rowid();
        Ok((self.advance_positions(records)?, last_id, duplicates))
    }

    /// Inserts `left` rows from `rows`: as many 128-row statements as fit, then the remainder
    /// with one statement of each smaller power of two it needs.
    fn insert<'m>(
        &mut self,
        mut rows: impl Iterator<Item = &'m Record>,
        mut left: usize,
    ) -> rusqlite::Result<()> {
        for insert in &mut self.inserts {
            let n = insert.rows();
            while left >= n {
                insert.run(rows.by_ref().take(n))?;
                left -= n;
            }
        }
        Ok(())
    }

    /// Deletes the rows that `records` complete (lines stored without their end).
    fn replace_completed(&self, records: &[&Record]) -> rusqlite::Result<()> {
        for r in records.iter().filter(|r| r.replaces) {
            self.conn.prepare_cached(REPLACE_LINE)?.execute(params![
                i64::from(r.producer),
                r.seq as i64,
                self.run_id
            ])?;
        }
        Ok(())
    }

    /// Moves each file input in `records` on to just after its last record there; returns the
    /// new positions (kept once the transaction commits).
    fn advance_positions(&self, records: &[&Record]) -> anyhow::Result<Vec<(u32, Resume)>> {
        let moves = crate::message::moves(&self.positions, records);
        let replaced = |input: u32, seq: u64| crate::message::keeps_fragment(records, input, seq);
        for &(_, from, to) in &moves {
            self.advance(from, to, replaced)?;
        }
        Ok(moves.into_iter().map(|(id, _, to)| (id, to)).collect())
    }

    /// Moves an input's committed position from `from` to `to`, inside the caller's
    /// transaction, removing a fragment's row the move leaves stale (`stale_fragment`;
    /// `replaced` says which lines the transaction's records replace); fails if it is no
    /// longer at `from` (another process moved it).
    fn advance(
        &self,
        from: Resume,
        to: Resume,
        replaced: impl Fn(u32, u64) -> bool,
    ) -> anyhow::Result<()> {
        if let Some(line) = stale_fragment(from, to, replaced) {
            self.conn.prepare_cached(REPLACE_LINE)?.execute(params![
                i64::from(to.input),
                line as i64,
                self.run_id
            ])?;
        }
        let changed = self.conn.prepare_cached(ADVANCE_INPUT)?.execute(params![
            i64::from(to.input),
            to.offset as i64,
            to.line as i64,
            to.tail as i64,
            from.offset as i64,
            from.line as i64,
            to.mark.map(i64::from)
        ])?;
        if changed != 1 {
            return Err(anyhow!(
                "input {} was advanced by another process (is another pc-host reading the same \
                 file into this database?)",
                to.input
            ));
        }
        Ok(())
    }

    /// An error for the user: SQLite's turned into one actionable line, others as they are.
    fn explain(&self, e: anyhow::Error) -> anyhow::Error {
        super::schema::explain(&self.path, e, self.busy)
    }

    /// The failure `e` of `what` (a call that writes no records), classified by SQLite's
    /// result code as a write's would be ([`SinkError::of_bookkeeping`]) and explained.
    fn bookkeeping_error(&self, what: &str, e: anyhow::Error) -> SinkError {
        let kind = kind_of(&e);
        let e = self.explain(e);
        SinkError::of_bookkeeping(kind, anyhow!("{what} failed: {e}"))
    }

    fn commit_input_position(&mut self, to: Resume) -> anyhow::Result<()> {
        let Some(&from) = self.positions.get(&to.input) else {
            return Ok(());
        };
        if from == to {
            return Ok(());
        }
        runs::transaction(&self.conn, || self.advance(from, to, |_, _| false))
            .map_err(|e| self.explain(e))?;
        self.positions.insert(to.input, to);
        Ok(())
    }

    /// Whether the path still names the database file this writer opened: a file removed or
    /// replaced during the run took the run's rows with it (the count back reads the open,
    /// removed file); one moved away has them where it went, which the error names (once its
    /// write-ahead log, still at the old path, is checkpointed into it: `forget_removed`).
    fn check_still_there(&self) -> anyhow::Result<()> {
        let p = self.path.display();
        let now = file_id(&self.path);
        if now.is_some() && now == self.opened {
            return Ok(());
        }
        let replaced = if now.is_some() {
            ", and another file is at that path now"
        } else {
            ""
        };
        match self.moved() {
            Some(Whereabouts::At(there)) => Err(anyhow!(
                "database {p} was moved to {} during the run{replaced}: the rows it committed \
                 went with it",
                there.display()
            )),
            Some(_) => Err(anyhow!(
                "database {p} was moved during the run (it lives on as a hard link made before, \
                 wherever that is){replaced}: the rows it committed went with it"
            )),
            None if now.is_none() => Err(anyhow!(
                "database {p} was removed during the run: the rows it committed went with it"
            )),
            None => Err(anyhow!(
                "database {p} was replaced during the run: the rows it committed are not in the \
                 file now at that path"
            )),
        }
    }

    /// Where the database file this writer opened is, if it still has a name (`At` or
    /// `Elsewhere`); `None` if it has none left, or this process cannot tell.
    fn moved(&self) -> Option<Whereabouts> {
        self.opened
            .and_then(crate::paths::whereabouts)
            .filter(|w| *w != Whereabouts::Removed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// After [`Self::check_still_there`] failed: if nothing is at the path now, removes the
    /// `-wal` and `-shm` there that are still the ones this writer opened (SQLite, closing a
    /// database that was moved, leaves them, and the next run would find a log beside no
    /// database and refuse the path). Files there that are not those (a database moved in,
    /// with its own) are left alone, and so is a log the final checkpoint did not empty
    /// (`flushed` false) of a database moved away: its newest rows are in it. Returns the line
    /// that says so, then.
    pub fn forget_removed(&self, flushed: bool) -> Option<String> {
        if std::fs::symlink_metadata(&self.path).is_ok() {
            return None;
        }
        if !flushed && let Some(there) = self.moved() {
            let wal = crate::paths::sqlite_side_file(&self.path, "-wal");
            let to = match there {
                Whereabouts::At(t) => format!("to {}-wal", t.display()),
                _ => "beside the database, named as it is with -wal added".to_owned(),
            };
            return Some(format!(
                "{} holds the newest rows of the moved database (the final checkpoint did not \
                 copy them into it): left in place; move it {to} before opening the database, \
                 or they are lost",
                wal.display()
            ));
        }
        for (side, id) in &self.sides {
            if file_id(side) == Some(*id) {
                let _ = std::fs::remove_file(side);
            }
        }
        None
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

impl Sink for Writer {
    fn write(&mut self, records: &[&Record]) -> Result<(), SinkError> {
        if records.is_empty() {
            return Ok(());
        }
        self.transaction(records).map_err(|e| {
            let kind = kind_of(&e);
            let e = self.explain(e);
            let rows = records.len();
            SinkError::new(
                kind,
                anyhow!("{} failed: {e}", crate::sink::error::committing(rows)),
            )
        })
    }

    fn duplicates(&self) -> u64 {
        self.duplicates
    }

    fn origin_run(&mut self, origin: &Origin) -> Result<i64, SinkError> {
        let conn = &self.conn;
        runs::transaction(conn, || {
            delivered::origin_run(conn, origin.run, origin.producers, origin.started_at)
                .map_err(anyhow::Error::from)
        })
        .map_err(|e| self.bookkeeping_error("recording a publishing run", e))
    }

    fn origin_ended(&mut self, run_id: i64, end: &OriginEnd) -> Result<(), SinkError> {
        runs::finish_run(&self.conn, run_id, &end.as_run_end())
            .map_err(|e| self.bookkeeping_error("recording a publishing run's end", e.into()))
    }

    fn commit_position(&mut self, to: Resume) -> anyhow::Result<()> {
        self.commit_input_position(to)
    }

    fn still_there(&self) -> anyhow::Result<()> {
        self.check_still_there()
    }

    fn count_stored(&mut self) -> anyhow::Result<u64> {
        if self.delivered {
            return delivered::count_stored(&self.conn, self.run_id)
                .map_err(|e| db_error(&self.path, e, self.busy))
                .map_err(|e| e.context("counting the stored messages failed"));
        }
        let run = RunRow {
            run_id: self.run_id,
            first_id: self.first_id,
        };
        runs::count_stored(&self.conn, &run, self.last_id)
            .map_err(|e| db_error(&self.path, e, self.busy))
            .map_err(|e| e.context("counting the stored messages failed"))
    }

    fn finish_run(&mut self, end: &RunEnd<'_>) -> Result<(), SinkError> {
        // Before the run is marked finished: a run finished without `last_id` has no rows.
        // With broker deliveries the last id may be another run's row (an origin run's): an
        // upper bound of this run's own rows (foreign messages), which is all the count needs.
        let marked = match self.last_id {
            Some(last_id) => self
                .conn
                .execute(MARK_LAST_ID, params![self.run_id, last_id])
                .map(drop),
            None => Ok(()),
        };
        marked
            .and_then(|()| runs::finish_run(&self.conn, self.run_id, end))
            .map_err(|e| {
                // Classified before `db_error`, whose words keep no `rusqlite::Error`.
                let kind = kind_of_sqlite(Some(&e));
                let e = db_error(&self.path, e, self.busy)
                    .context("recording the end of the run failed");
                SinkError::of_bookkeeping(kind, e)
            })
    }

    fn record_intervals(&mut self, rows: &[Interval], wait: bool) -> anyhow::Result<()> {
        let busy = if wait { self.busy } else { Duration::ZERO };
        let err = |e| db_error(&self.path, e, busy);
        self.conn.busy_timeout(busy).map_err(err)?;
        let (conn, run_id) = (&self.conn, self.run_id);
        let written = runs::transaction(conn, || {
            runs::record_intervals(conn, run_id, rows).map_err(anyhow::Error::from)
        });
        self.conn.busy_timeout(self.busy).map_err(err)?;
        written.map_err(|e| super::schema::explain(&self.path, e, busy))
    }

    fn register(&mut self, file: Option<&FileKey>) -> Result<Resume, SinkError> {
        let (conn, run_id) = (&self.conn, self.run_id);
        let resume = runs::transaction(conn, || {
            runs::register_input(conn, run_id, file).map_err(anyhow::Error::from)
        })
        .map_err(|e| self.bookkeeping_error("registering an input", e))?;
        // A stream read through a broker has no position here: its messages are keyed.
        if file.is_some() && !self.delivered {
            self.positions.insert(resume.input, resume);
        }
        Ok(resume)
    }
}

/// What a failed transaction means: SQLite's result code decides; anything else (another
/// process moving an input) is fatal.
fn kind_of(e: &anyhow::Error) -> ErrorKind {
    kind_of_sqlite(e.downcast_ref::<rusqlite::Error>())
}

/// [`kind_of`] for SQLite's own error (`None`: not one, fatal).
fn kind_of_sqlite(e: Option<&rusqlite::Error>) -> ErrorKind {
    use rusqlite::ErrorCode as C;
    let Some(code) = e.and_then(rusqlite::Error::sqlite_error_code) else {
        return ErrorKind::Fatal;
    };
    match code {
        // Another writer past the busy timeout; an I/O error; a full disk or quota: the same
        // transaction can succeed once that passes. A failed SQLite transaction is rolled back.
        C::DatabaseBusy | C::DatabaseLocked | C::SystemIoFailure | C::DiskFull => {
            ErrorKind::Retryable
        }
        // A constraint or trigger (RAISE(ABORT)) refused a row, or a row is over SQLite's
        // length limit: one record, never storable.
        C::ConstraintViolation | C::TooBig | C::TypeMismatch => ErrorKind::Record,
        _ => ErrorKind::Fatal,
    }
}

/// The `-wal` and `-shm` beside the database file `path` leads to, with their ids.
fn side_files(path: &Path) -> Vec<(PathBuf, (u64, u64))> {
    ["-wal", "-shm"]
        .map(|x| crate::paths::sqlite_side_file(path, x))
        .into_iter()
        .filter_map(|side| file_id(&side).map(|id| (side, id)))
        .collect()
}

/// `INSERT OR FAIL INTO messages (...) VALUES (?,?,?,?,run), ...` for `rows` rows. The run id
/// is a literal: one statement per run, and one parameter less to bind per row.
///
/// `OR FAIL`: a row refused mid-statement keeps the statement's earlier rows instead of
/// undoing them, so SQLite keeps no statement journal (a copy of every page the statement
/// touches: 10% of the instructions of a run under callgrind). Nothing changes for pc-host: a
/// failed write rolls back its whole transaction.
fn insert_sql(rows: usize, run_id: i64) -> String {
    let mut sql = String::from(
        "INSERT OR FAIL INTO messages (message, created_at, producer, seq, run_id) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push_str(&format!("(?,?,?,?,{run_id})"));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recording the run's end behind another connection's write lock fails as retryable
    /// (the run tries it again for `--retry-for`), and goes through once the lock is gone.
    #[test]
    fn recording_the_end_behind_another_writer_is_retryable() {
        let dir = std::env::temp_dir().join(format!("pc-end-busy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("end.db");
        let busy = Duration::from_millis(50);
        let new_run = super::super::runs::NewRun {
            producers: 1,
            config_json: "{}",
            started_at: 1,
            pages: super::super::schema::PageSizeChoice::ForRate(0),
            delivered: false,
        };
        let (conn, run) = super::super::runs::prepare_run(&path, busy, &new_run).unwrap();
        let sync = crate::config::cli::Synchronous::Normal;
        let mut w = Writer::new(conn, &run, sync, &path, busy).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let end = RunEnd {
            completed: true,
            ..RunEnd::nothing(2, &[0])
        };
        let e = w.finish_run(&end).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
        assert!(
            e.to_string()
                .contains("recording the end of the run failed"),
            "{e}"
        );
        other.execute_batch("ROLLBACK").unwrap();
        w.finish_run(&end).unwrap();
        let finished: bool = w
            .conn()
            .query_row("SELECT finished_at IS NOT NULL FROM runs", [], |r| r.get(0))
            .unwrap();
        assert!(finished);
        drop((w, other));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn insert_sql_has_four_parameters_per_row_and_the_run_literal() {
        let sql = insert_sql(3, 42);
        assert_eq!(sql.matches('?').count(), 12);
        assert_eq!(sql.matches(",42)").count(), 3);
    }
}
