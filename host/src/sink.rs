//! SQLite as the sink: the one writer connection, multi-row prepared inserts, and group
//! commit among the consumers.
//!
//! SQLite has one writer. Consumers pop batches from the ring outside any lock and hand them
//! to the [`SharedWriter`]: a batch goes on a pending list, then its consumer takes the writer
//! and commits everything pending (its own batch and any others that arrived meanwhile) in
//! transactions of at most `--batch-size` rows, until nothing is pending. So there is never
//! more than one write transaction from this process, no `SQLITE_BUSY` whatever the number of
//! consumers, and the number of commits per second adapts to the load instead of growing with
//! the number of consumers. Another process writing the same file is waited for (busy
//! timeout). Checkpoints are not done here: see `checkpoint.rs`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::anyhow;
use rusqlite::{CachedStatement, Connection};

use pc_core::Clock;

use crate::checkpoint::WAL_BOUND;
use crate::cli::Synchronous;
use crate::producer::Msg;
use crate::schema::db_error;

/// Rows per multi-row INSERT: the largest statement; remainders use the smaller powers of two.
const ROWS_PER_STATEMENT: usize = 128;

/// The writer connection and its prepared multi-row INSERTs.
#[derive(Debug)]
pub struct Writer {
    conn: Connection,
    /// `(rows, sql)`, largest first: 128, 64, .., 1.
    inserts: Vec<(usize, String)>,
    /// The rowid of the last message inserted.
    last_id: Option<i64>,
    /// For error messages.
    path: PathBuf,
    busy: Duration,
}

impl Writer {
    /// Makes `conn` (already in WAL mode, schema in place) the writer for `run_id`.
    pub fn new(
        conn: Connection,
        run_id: i64,
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
        let mut inserts = Vec::new();
        let mut rows = ROWS_PER_STATEMENT;
        while rows >= 1 {
            inserts.push((rows, insert_sql(rows, run_id)));
            rows /= 2;
        }
        conn.set_prepared_statement_cache_capacity(inserts.len() + 8);
        let writer = Self {
            conn,
            inserts,
            last_id: None,
            path: path.to_owned(),
            busy,
        };
        // Prepare everything now, so a problem shows before any thread starts.
        for (_, sql) in &writer.inserts {
            writer.conn.prepare_cached(sql).map_err(err)?;
        }
        for sql in ["BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"] {
            writer.conn.prepare_cached(sql).map_err(err)?;
        }
        Ok(writer)
    }

    /// Inserts `batches` in one transaction and commits it; on error none of it is stored.
    pub fn write(&mut self, batches: &[Vec<Msg>]) -> anyhow::Result<()> {
        let rows: usize = batches.iter().map(Vec::len).sum();
        self.transaction(batches, rows).map_err(|e| {
            let e = db_error(&self.path, e, self.busy);
            anyhow!("committing a batch of {rows} messages failed: {e}")
        })
    }

    fn transaction(&mut self, batches: &[Vec<Msg>], rows: usize) -> rusqlite::Result<()> {
        if rows == 0 {
            return Ok(());
        }
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        match self.insert(batches.iter().flatten(), rows) {
            Ok(()) => self.conn.prepare_cached("COMMIT")?.execute([]).map(drop),
            Err(e) => {
                let _ = self
                    .conn
                    .prepare_cached("ROLLBACK")
                    .and_then(|mut s| s.execute([]));
                Err(e)
            }
        }?;
        self.last_id = Some(self.conn.last_insert_rowid());
        Ok(())
    }

    /// Inserts `left` rows from `rows`: as many 128-row statements as fit, then the remainder
    /// with one statement of each smaller power of two it needs.
    fn insert<'m>(
        &self,
        mut rows: impl Iterator<Item = &'m Msg>,
        mut left: usize,
    ) -> rusqlite::Result<()> {
        for (n, sql) in &self.inserts {
            let n = *n;
            if left < n {
                continue;
            }
            let mut stmt = self.conn.prepare_cached(sql)?;
            while left >= n {
                bind_and_run(&mut stmt, rows.by_ref().take(n))?;
                left -= n;
            }
        }
        Ok(())
    }

    pub fn last_id(&self) -> Option<i64> {
        self.last_id
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// The writer, shared by the consumers with group commit (see the module docs).
#[derive(Debug)]
pub struct SharedWriter {
    writer: Mutex<Writer>,
    /// Batches handed over and not yet taken by a committer.
    pending: Mutex<VecDeque<Vec<Msg>>>,
    /// Emptied batch vectors, kept for reuse (a batch vector can be large).
    spares: Mutex<Vec<Vec<Msg>>>,
    batch_size: usize,
}

/// One committed transaction, as reported to the consumer that committed it.
#[derive(Debug)]
pub struct Commit<'a> {
    pub batches: &'a [Vec<Msg>],
    /// Clock ns when the writer was taken, and when the commit returned.
    pub started: u64,
    pub committed: u64,
}

impl SharedWriter {
    pub fn new(writer: Writer, batch_size: usize) -> Self {
        Self {
            writer: Mutex::new(writer),
            pending: Mutex::new(VecDeque::new()),
            spares: Mutex::new(Vec::new()),
            batch_size,
        }
    }

    /// An empty batch vector with room for `batch_size` messages.
    pub fn spare(&self) -> Vec<Msg> {
        lock(&self.spares)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.batch_size))
    }

    /// Hands `batch` over, then commits until nothing is pending, reporting each transaction
    /// to `committed` (called without the writer held). When it returns `Ok`, `batch` is
    /// committed, by this call or by another consumer's.
    pub fn submit(
        &self,
        batch: Vec<Msg>,
        clock: &Clock,
        mut committed: impl FnMut(&Commit<'_>),
    ) -> anyhow::Result<()> {
        if !batch.is_empty() {
            lock(&self.pending).push_back(batch);
        }
        let mut take = Vec::new();
        loop {
            let mut writer = lock(&self.writer);
            // Holding the writer: whatever a previous holder took is committed (or failed).
            self.take_pending(&mut take);
            if take.is_empty() {
                return Ok(());
            }
            let started = clock.now();
            let result = writer.write(&take);
            let committed_at = clock.now();
            drop(writer);
            result?;
            committed(&Commit {
                batches: &take,
                started,
                committed: committed_at,
            });
            // Drop the messages before taking the pool's lock: freeing them takes a while.
            take.iter_mut().for_each(Vec::clear);
            lock(&self.spares).append(&mut take);
        }
    }

    /// Moves pending batches into `take`, oldest first: at least one, and no more than
    /// `batch_size` rows.
    fn take_pending(&self, take: &mut Vec<Vec<Msg>>) {
        let mut pending = lock(&self.pending);
        let mut rows = 0;
        while let Some(next) = pending.front() {
            if !take.is_empty() && rows + next.len() > self.batch_size {
                break;
            }
            rows += next.len();
            take.extend(pending.pop_front());
        }
    }

    /// The writer itself, for the checkpointer (holding it keeps commits out).
    pub fn writer(&self) -> &Mutex<Writer> {
        &self.writer
    }

    pub fn into_writer(self) -> Writer {
        self.writer
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bind_and_run<'m>(
    stmt: &mut CachedStatement<'_>,
    rows: impl Iterator<Item = &'m Msg>,
) -> rusqlite::Result<()> {
    let mut i = 1;
    for m in rows {
        stmt.raw_bind_parameter(i, m.text.as_str())?;
        stmt.raw_bind_parameter(i + 1, m.created_at)?;
        stmt.raw_bind_parameter(i + 2, i64::from(m.producer))?;
        stmt.raw_bind_parameter(i + 3, m.seq as i64)?;
        i += 4;
    }
    stmt.raw_execute().map(drop)
}

/// `INSERT INTO messages (...) VALUES (?,?,?,?,run), ...` for `rows` rows. The run id is a
/// literal: one statement per run, and one parameter less to bind per row.
fn insert_sql(rows: usize, run_id: i64) -> String {
    let mut sql =
        String::from("INSERT INTO messages (message, created_at, producer, seq, run_id) VALUES ");
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

    #[test]
    fn insert_sql_has_four_parameters_per_row_and_the_run_literal() {
        let sql = insert_sql(3, 42);
        assert_eq!(sql.matches('?').count(), 12);
        assert_eq!(sql.matches(",42)").count(), 3);
    }
}
