//! Records a broker delivered (a NATS source): stored at most once per key, and the runs that
//! published them.
//!
//! - `delivered` holds the key of every such record stored, `(key_run, producer, seq)`, and
//!   the run that stored it. A record's key is inserted in the same transaction as its row; a
//!   key already there means the record is a duplicate (redelivered after a lost ack, or
//!   published twice), and its row is not written.
//! - `nats_origins` maps a publishing run (its id, unique among publishers) to the run row
//!   that holds its records here, so `verify` checks them as that run's.
//!
//! Both tables are created the first time a NATS source writes to the database; other runs
//! never touch them.

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::message::Record;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS delivered (
    key_run   INTEGER NOT NULL,   -- the publishing run (its row in runs), 0: a stream's message
    producer  INTEGER NOT NULL,   -- the publisher's producer, or the stream's input id
    seq       INTEGER NOT NULL,   -- the publisher's seq, or the stream sequence
    stored_by INTEGER NOT NULL,   -- the run that stored it
    PRIMARY KEY (key_run, producer, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delivered_stored_by ON delivered (stored_by);
CREATE TABLE IF NOT EXISTS nats_origins (
    origin INTEGER PRIMARY KEY,   -- the publishing pc-host's run id
    run_id INTEGER NOT NULL       -- its run here
);
";

const CLAIM: &str = "INSERT OR IGNORE INTO delivered (key_run, producer, seq, stored_by) \
                     VALUES (?1, ?2, ?3, ?4)";

const INSERT_ONE: &str = "INSERT INTO messages (message, created_at, producer, seq, run_id) \
                          VALUES (?1, ?2, ?3, ?4, ?5)";

/// Keeps an origin run's id range with its rows (see `runs::count_stored`).
const MARK_ORIGIN_LAST_ID: &str = "UPDATE runs SET last_id = ?2 WHERE run_id = ?1 \
                                   AND (last_id IS NULL OR last_id < ?2)";

/// Creates the tables if they are missing (inside the caller's transaction).
///
/// # Errors
/// SQLite's.
pub fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(TABLES)
}

/// Inside the caller's transaction: writes each record whose key is new, as a row of its key
/// run (or of `run_id` for a stream's message). Returns how many were duplicates.
///
/// # Errors
/// SQLite's.
pub fn insert(conn: &Connection, run_id: i64, records: &[&Record]) -> rusqlite::Result<u64> {
    let mut claim = conn.prepare_cached(CLAIM)?;
    let mut insert = conn.prepare_cached(INSERT_ONE)?;
    let mut duplicates = 0;
    let mut origins: Vec<i64> = Vec::new();
    for r in records {
        let key_run = r.key_run();
        let (producer, seq) = (i64::from(r.producer), r.seq as i64);
        if claim.execute(params![key_run, producer, seq, run_id])? == 0 {
            duplicates += 1;
            continue;
        }
        insert.execute(params![
            r.text,
            r.created_at,
            producer,
            seq,
            r.row_run(run_id)
        ])?;
        if key_run != 0 && !origins.contains(&key_run) {
            origins.push(key_run);
        }
    }
    let last_id = conn.last_insert_rowid();
    for origin in origins {
        conn.prepare_cached(MARK_ORIGIN_LAST_ID)?
            .execute(params![origin, last_id])?;
    }
    Ok(duplicates)
}

/// The run that holds `origin`'s records here, recording it (with `producers` and
/// `started_at`) if it is new. Inside the caller's transaction.
///
/// # Errors
/// SQLite's.
pub fn origin_run(
    conn: &Connection,
    origin: i64,
    producers: u32,
    started_at: i64,
) -> rusqlite::Result<i64> {
    let known: Option<i64> = conn
        .query_row(
            "SELECT run_id FROM nats_origins WHERE origin = ?1",
            [origin],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(run_id) = known {
        return Ok(run_id);
    }
    let first_id: i64 =
        conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM messages", [], |r| {
            r.get(0)
        })?;
    let config = serde_json::json!({ "published_by_run": origin, "via": "nats" }).to_string();
    conn.execute(
        "INSERT INTO runs (started_at, producers, first_id, config) VALUES (?1, ?2, ?3, ?4)",
        params![started_at, i64::from(producers), first_id, config],
    )?;
    let run_id = conn.last_insert_rowid();
    conn.execute(
        "INSERT INTO nats_origins (origin, run_id) VALUES (?1, ?2)",
        params![origin, run_id],
    )?;
    Ok(run_id)
}

/// How many records `run_id` stored through `delivered`.
///
/// # Errors
/// SQLite's.
pub fn count_stored(conn: &Connection, run_id: i64) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT COUNT(*) FROM delivered WHERE stored_by = ?1",
        [run_id],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
}
