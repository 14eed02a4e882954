//! Records a broker delivered (a NATS source), as in SQLite (`sink::sqlite::delivered`): the
//! key of every such record stored goes into `delivered` in the same transaction as its row,
//! and a key already there makes the record a duplicate; `nats_origins` maps a publishing run
//! to the run that holds its records here.

use std::collections::HashSet;

use postgres::{Client, GenericClient, Transaction};

use super::encode::unix_time;
use super::schema::Refused;

use crate::message::Record;
use crate::position::Origin;
use crate::sink::tables;

/// Advisory lock keys, beside `runs.rs`'s: an origin's run.
const PC_HOST: i32 = 0x7063_4853;
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

/// Claims the keys of `records` for run `run_id`; returns the claimed (new) ones. The key's
/// conflict is the only one let pass: without the target, any unique or exclusion constraint
/// someone added would take a new record for a duplicate.
const CLAIM: &str = "INSERT INTO delivered (key_run, producer, seq, stored_by) \
                     SELECT t.k, t.p, t.s, $4 FROM unnest($1::int8[], $2::int4[], $3::int8[]) \
                     AS t(k, p, s) ON CONFLICT (key_run, producer, seq) DO NOTHING \
                     RETURNING key_run, producer, seq";

/// Each table's columns as `name type` (`format_type`'s names), in order.
const COLUMNS: [(&str, &[&str]); 2] = [
    (
        "delivered",
        &[
            "key_run bigint",
            "producer integer",
            "seq bigint",
            "stored_by bigint",
        ],
    ),
    ("nats_origins", &["origin bigint", "run_id bigint"]),
];

/// The unique indexes of table `$1`, each as its columns in alphabetical order joined by `,`,
/// marked when it cannot stand for pc-host's key: partial, on an expression, or deferrable
/// (`ON CONFLICT` takes none of those as its arbiter).
const UNIQUE_KEYS: &str = "
SELECT COALESCE((SELECT string_agg(a.attname::text, ',' ORDER BY a.attname::text)
                 FROM pg_attribute a
                 WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])), '')
       || CASE WHEN i.indpred IS NOT NULL OR 0 = ANY (i.indkey::int2[]) OR NOT i.indimmediate
               THEN ' (partial, on an expression or deferrable)' ELSE '' END
FROM pg_index i WHERE i.indrelid = to_regclass($1) AND i.indisunique ORDER BY 1";

/// Inside the schema's transaction, under its lock, before [`create_tables`]: refuses
/// `delivered` or `nats_origins` tables that are not pc-host's. Such a table is not pc-host's
/// if the database had none of pc-host's tables (`new_database`: nothing of pc-host's made
/// it), or if its columns or their types differ from pc-host's; pc-host would otherwise
/// write its keys beside someone else's rows, and take a key of theirs for a record stored.
/// Nor is it if its unique keys are not exactly pc-host's one
/// ([`tables::wrong_delivery_keys`]): without that key a
/// record delivered twice would be stored twice, and with another key a new record could be
/// taken for a duplicate and never stored.
///
/// Returns whether both tables are there (then nothing needs creating: a user without CREATE
/// on the schema can run).
///
/// # Errors
/// [`Refused::Reason`] naming the table, or the server's.
pub fn check_tables(c: &mut impl GenericClient, new_database: bool) -> Result<bool, Refused> {
    let names: Vec<&str> = COLUMNS.iter().map(|(name, _)| *name).collect();
    let found = super::schema::find_tables(c, &names, true)?;
    let all_there = found.len() == COLUMNS.len();
    for (table, have) in found {
        let want = COLUMNS
            .iter()
            .find(|(name, _)| *name == table)
            .map(|(_, c)| *c);
        if new_database {
            return Err(Refused::Reason(format!(
                "the database has a table named {table} but none of pc-host's other tables, so \
                 it is not pc-host's; pc-host will not write to it: use another database"
            )));
        }
        if let Some(why) = want.and_then(|want| tables::wrong_delivery_columns(&table, &have, want))
        {
            return Err(Refused::Reason(why));
        }
        let keys: Vec<String> = c
            .query(UNIQUE_KEYS, &[&table])?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if let Some(why) = tables::wrong_delivery_keys(&table, &keys) {
            return Err(Refused::Reason(why));
        }
    }
    Ok(all_there)
}

/// Inside the schema's transaction, under its lock: creates the tables if they are missing
/// ([`check_tables`] first).
///
/// # Errors
/// The server's.
pub fn create_tables(c: &mut impl GenericClient) -> Result<(), postgres::Error> {
    c.batch_execute(TABLES)
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
    let started = unix_time(origin.started_at);
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
