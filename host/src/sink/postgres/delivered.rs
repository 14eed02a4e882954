//! Records a broker delivered (a NATS source), as in SQLite (`sink::sqlite::delivered`): the
//! key of every such record stored goes into `delivered` in the same transaction as its row,
//! and a key already there makes the record a duplicate; `nats_origins` maps a publishing run
//! to the run that holds its records here.

use std::collections::HashSet;

use postgres::{Client, GenericClient, Transaction};

use crate::message::Record;
use crate::position::Origin;

/// Advisory lock keys, beside `runs.rs`'s: the tables' creation, and an origin's run.
const PC_HOST: i32 = 0x7063_4853;
const LOCK_SCHEMA: i32 = 1;
const LOCK_ORIGINS: i32 = 3;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS delivered (
    key_run   BIGINT NOT NULL,
    producer  INTEGER NOT NULL,
    seq       BIGINT NOT NULL,
    stored_by BIGINT NOT NULL,
    PRIMARY KEY (key_run, producer, seq)
);
CREATE INDEX IF NOT EXISTS delivered_stored_by ON delivered (stored_by);
CREATE TABLE IF NOT EXISTS nats_origins (
    origin BIGINT PRIMARY KEY,
    run_id BIGINT NOT NULL
);
";

/// Claims the keys of `records` for run `run_id`; returns the claimed (new) ones.
const CLAIM: &str = "INSERT INTO delivered (key_run, producer, seq, stored_by) \
                     SELECT t.k, t.p, t.s, $4 FROM unnest($1::int8[], $2::int4[], $3::int8[]) \
                     AS t(k, p, s) ON CONFLICT DO NOTHING RETURNING key_run, producer, seq";

/// Creates the tables if they are missing (under the schema lock).
///
/// # Errors
/// The server's.
pub fn create_tables(client: &mut Client) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&PC_HOST, &LOCK_SCHEMA],
    )?;
    tx.batch_execute(TABLES)?;
    tx.commit()
}

/// A record's key: its publisher's run here (0 for a stream's message), producer and seq.
pub fn key(r: &Record) -> (i64, i32, i64) {
    (r.key_run(), r.producer as i32, r.seq as i64)
}

/// The keys of `records` as three columns, for `unnest`.
fn key_columns(records: &[&Record]) -> (Vec<i64>, Vec<i32>, Vec<i64>) {
    let mut columns = (Vec::new(), Vec::new(), Vec::new());
    for r in records {
        let (a, b, c) = key(r);
        columns.0.push(a);
        columns.1.push(b);
        columns.2.push(c);
    }
    columns
}

/// Inside the write's transaction: claims the keys of `records` for `run_id`; returns those
/// not held before (the records to write).
///
/// # Errors
/// The server's.
pub fn claim(
    tx: &mut Transaction<'_>,
    run_id: i64,
    records: &[&Record],
) -> Result<HashSet<(i64, i32, i64)>, postgres::Error> {
    let (k, p, s) = key_columns(records);
    let rows = tx.query(CLAIM, &[&k, &p, &s, &run_id])?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect())
}

/// Whether run `run_id` stored any of `records` (for a write whose COMMIT reply was lost and
/// whose transaction the server no longer knows).
///
/// # Errors
/// The server's.
pub fn stored_any(
    client: &mut Client,
    run_id: i64,
    records: &[&Record],
) -> Result<bool, postgres::Error> {
    let (k, p, s) = key_columns(records);
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM delivered d JOIN unnest($1::int8[], $2::int4[], \
             $3::int8[]) AS t(k, p, s) ON d.key_run = t.k AND d.producer = t.p AND d.seq = t.s \
             WHERE d.stored_by = $4)",
            &[&k, &p, &s, &run_id],
        )
        .map(|row| row.get(0))
}

/// The run that holds `origin`'s records here, recorded if new (under a lock, so two
/// processes seeing a new origin together record one run).
///
/// # Errors
/// The server's.
pub fn origin_run(client: &mut Client, origin: &Origin) -> Result<i64, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&PC_HOST, &LOCK_ORIGINS],
    )?;
    if let Some(row) = tx.query_opt(
        "SELECT run_id FROM nats_origins WHERE origin = $1",
        &[&origin.run],
    )? {
        return row.try_get(0);
    }
    let config = serde_json::json!({ "published_by_run": origin.run, "via": "nats" }).to_string();
    let producers = i32::try_from(origin.producers).unwrap_or(i32::MAX);
    let started = super::runs::unix_time(origin.started_at);
    let run_id: i64 = tx
        .query_one(
            "INSERT INTO runs (started_at, producers, config) VALUES ($1, $2, $3) \
             RETURNING run_id",
            &[&started, &producers, &config],
        )?
        .get(0);
    tx.execute(
        "INSERT INTO nats_origins (origin, run_id) VALUES ($1, $2)",
        &[&origin.run, &run_id],
    )?;
    tx.commit()?;
    Ok(run_id)
}

/// How many records run `run_id` stored through `delivered`.
///
/// # Errors
/// The server's.
pub fn count_stored(client: &mut impl GenericClient, run_id: i64) -> Result<u64, postgres::Error> {
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM delivered WHERE stored_by = $1",
            &[&run_id],
        )?
        .get(0);
    Ok(n.max(0) as u64)
}
