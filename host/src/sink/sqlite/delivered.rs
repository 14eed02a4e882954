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
use crate::sink::tables;

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

/// Claims a key: a row, or none if the key is there. Only the key's conflict is let pass
/// (`OR IGNORE` would also skip a row a CHECK constraint refuses, taking a new record for a
/// duplicate).
const CLAIM: &str = "INSERT INTO delivered (key_run, producer, seq, stored_by) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key_run, producer, seq) DO NOTHING";

const INSERT_ONE: &str = "INSERT INTO messages (message, created_at, producer, seq, run_id) \
                          VALUES (?1, ?2, ?3, ?4, ?5)";

/// Keeps an origin run's id range with its rows (see `runs::count_stored`).
const MARK_ORIGIN_LAST_ID: &str = "UPDATE runs SET last_id = ?2 WHERE run_id = ?1 \
                                   AND (last_id IS NULL OR last_id < ?2)";

/// Each table's columns as `name TYPE`, in order, as [`TABLES`] declares them.
const COLUMNS: [(&str, &[&str]); 2] = [
    (
        "delivered",
        &[
            "key_run INTEGER",
            "producer INTEGER",
            "seq INTEGER",
            "stored_by INTEGER",
        ],
    ),
    ("nats_origins", &["origin INTEGER", "run_id INTEGER"]),
];

/// Creates the tables if they are missing (inside the caller's transaction). Tables of those
/// names that are there already must be pc-host's: the columns and types it gives them, and
/// exactly its one unique key each ([`crate::sink::tables::wrong_delivery_keys`]).
///
/// # Errors
/// SQLite's; a table of those names that is not pc-host's, as one line.
pub fn create_tables(conn: &Connection) -> anyhow::Result<()> {
    for (table, want) in COLUMNS {
        let have = columns(conn, table)?;
        if have.is_empty() {
            continue;
        }
        if let Some(why) = tables::wrong_delivery_columns(table, &have, want) {
            anyhow::bail!(why);
        }
        let keys = unique_keys(conn, table)?;
        if let Some(why) = tables::wrong_delivery_keys(table, &keys) {
            anyhow::bail!(why);
        }
    }
    conn.execute_batch(TABLES)?;
    Ok(())
}

/// `table`'s columns as `name TYPE` (the declared type), in order; none if it is missing.
fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")?;
    let rows = stmt.query_map([table], |r| {
        Ok(format!(
            "{} {}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?
        ))
    })?;
    rows.collect()
}

/// `table`'s unique keys, each as its columns in alphabetical order joined by `,`, marked
/// when it cannot stand for pc-host's key (partial, or on an expression). A rowid table's
/// `INTEGER PRIMARY KEY` is the rowid itself and has no index: it counts as a key too.
fn unique_keys(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut has_pk_index = false;
    let indexes: Vec<(String, String, bool)> = conn
        .prepare("SELECT name, origin, partial FROM pragma_index_list(?1) WHERE \"unique\"")?
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (index, origin, partial) in indexes {
        has_pk_index |= origin == "pk";
        let mut names: Vec<Option<String>> = conn
            .prepare("SELECT name FROM pragma_index_info(?1)")?
            .query_map([&index], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let expression = names.iter().any(Option::is_none);
        names.sort();
        let mut key = names.into_iter().flatten().collect::<Vec<_>>().join(",");
        if partial || expression {
            key.push_str(" (partial or on an expression)");
        }
        keys.push(key);
    }
    if !has_pk_index {
        let pk: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY name")?
            .query_map([table], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if !pk.is_empty() {
            keys.push(pk.join(","));
        }
    }
    keys.sort();
    Ok(keys)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn db(sql: &str) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(sql).unwrap();
        conn
    }

    fn refusal(sql: &str) -> String {
        create_tables(&db(sql)).unwrap_err().to_string()
    }

    #[test]
    fn pc_hosts_own_delivery_tables_pass_and_stay_as_they_are() {
        let conn = db(TABLES);
        conn.execute("INSERT INTO delivered VALUES (1, 2, 3, 4)", [])
            .unwrap();
        create_tables(&conn).unwrap();
        create_tables(&conn).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM delivered", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            unique_keys(&conn, "delivered").unwrap(),
            ["key_run,producer,seq"]
        );
        assert_eq!(unique_keys(&conn, "nats_origins").unwrap(), ["origin"]);
    }

    #[test]
    fn a_delivery_table_without_pc_hosts_one_unique_key_is_refused() {
        // No key: a record delivered twice would be stored twice.
        let e = refusal(
            "CREATE TABLE delivered (key_run INTEGER, producer INTEGER, seq INTEGER, \
             stored_by INTEGER)",
        );
        assert!(e.contains("`delivered` has unique keys none"), "{e}");
        // A narrower key besides pc-host's: a new record could be taken for a duplicate.
        let e = refusal(
            "CREATE TABLE delivered (key_run INTEGER, producer INTEGER, seq INTEGER, \
             stored_by INTEGER, PRIMARY KEY (key_run, producer, seq)) WITHOUT ROWID; \
             CREATE UNIQUE INDEX theirs ON delivered (seq)",
        );
        assert!(e.contains("(key_run,producer,seq), (seq)"), "{e}");
        // pc-host's key, but only where a condition holds.
        let e = refusal(
            "CREATE TABLE delivered (key_run INTEGER, producer INTEGER, seq INTEGER, \
             stored_by INTEGER); \
             CREATE UNIQUE INDEX k ON delivered (key_run, producer, seq) WHERE seq > 0",
        );
        assert!(e.contains("(partial or on an expression)"), "{e}");
        let e = refusal("CREATE TABLE nats_origins (origin INTEGER, run_id INTEGER)");
        assert!(e.contains("`nats_origins` has unique keys none"), "{e}");
    }

    /// A row of `delivered` refused for anything but its key (a CHECK constraint someone
    /// added, which `OR IGNORE` skipped silently) fails the claim: the record is not taken
    /// for a duplicate.
    #[test]
    fn only_the_key_makes_a_record_a_duplicate() {
        let conn = db(&TABLES.replace(
            "stored_by INTEGER NOT NULL,",
            "stored_by INTEGER NOT NULL CHECK (seq < 100),",
        ));
        conn.execute_batch(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY, message TEXT, created_at INTEGER, \
             producer INTEGER, seq INTEGER, run_id INTEGER)",
        )
        .unwrap();
        let record = |seq| Record {
            seq,
            text: "m".into(),
            ..Record::default()
        };
        assert_eq!(insert(&conn, 1, &[&record(1)]).unwrap(), 0);
        assert_eq!(
            insert(&conn, 1, &[&record(1)]).unwrap(),
            1,
            "the same key again"
        );
        let e = insert(&conn, 1, &[&record(100)]).unwrap_err();
        assert!(e.to_string().contains("CHECK constraint failed"), "{e}");
    }

    #[test]
    fn a_delivery_table_of_other_columns_is_refused_and_left_as_it_was() {
        let conn = db(
            "CREATE TABLE nats_origins (origin TEXT PRIMARY KEY, run_id INTEGER); \
                       INSERT INTO nats_origins VALUES ('theirs', 9)",
        );
        let e = create_tables(&conn).unwrap_err().to_string();
        assert!(
            e.contains("`nats_origins` has columns (origin TEXT, run_id INTEGER)"),
            "{e}"
        );
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1, "nothing created beside it");
    }
}
