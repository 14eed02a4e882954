//! Records a broker delivered (a NATS source), as in SQLite (`sink::sqlite::delivered`): the
//! key of every such record stored goes into `delivered` in the same transaction as its row,
//! and a key already there makes the record a duplicate; `nats_origins` maps a publishing run
//! to the run that holds its records here.

use mysql::Conn;
use mysql::prelude::Queryable as _;

use super::encode::datetime;
use crate::message::Record;
use crate::position::Origin;
use crate::sink::tables;

const TABLES: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS delivered (
        key_run   BIGINT NOT NULL,
        producer  INT NOT NULL,
        seq       BIGINT NOT NULL,
        stored_by BIGINT NOT NULL,
        PRIMARY KEY (key_run, producer, seq),
        KEY delivered_stored_by (stored_by)
    ) ENGINE = InnoDB",
    "CREATE TABLE IF NOT EXISTS nats_origins (
        origin BIGINT NOT NULL PRIMARY KEY,
        run_id BIGINT NOT NULL
    ) ENGINE = InnoDB",
];

/// Each table's columns as `name type` (information_schema's `DATA_TYPE`), in order.
const COLUMNS: [(&str, &[&str]); 2] = [
    (
        "delivered",
        &[
            "key_run bigint",
            "producer int",
            "seq bigint",
            "stored_by bigint",
        ],
    ),
    ("nats_origins", &["origin bigint", "run_id bigint"]),
];

/// Under the schema lock, before [`create_tables`]: refuses `delivered` or `nats_origins`
/// tables that are not pc-host's. Such a table is not pc-host's if the database had none of
/// pc-host's tables (`new_database`: nothing of pc-host's made it), or if its columns or their
/// types differ from pc-host's; pc-host would otherwise write its keys beside someone else's
/// rows, and take a key of theirs for a record stored. Nor is it if its unique keys are not
/// exactly pc-host's one ([`tables::wrong_delivery_keys`]).
///
/// Returns whether both tables are there (then nothing needs creating: a user without CREATE
/// can run).
///
/// # Errors
/// Why, as one line for "sink URL: ...", or the server's error.
pub fn check_tables(conn: &mut Conn, new_database: bool) -> Result<bool, String> {
    let found: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_NAME, CONCAT(COLUMN_NAME, ' ', DATA_TYPE) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('delivered', 'nats_origins') \
             ORDER BY TABLE_NAME, ORDINAL_POSITION",
        )
        .map_err(|e| super::error::describe(&e))?;
    let mut all_there = true;
    for (table, want) in COLUMNS {
        let have: Vec<&str> = found
            .iter()
            .filter(|(name, _)| name == table)
            .map(|(_, column)| column.as_str())
            .collect();
        if have.is_empty() {
            all_there = false;
            continue;
        }
        if new_database {
            return Err(format!(
                "the database has a table named {table} but none of pc-host's other tables, so \
                 it is not pc-host's; pc-host will not write to it: use another database"
            ));
        }
        if let Some(why) = tables::wrong_delivery_columns(table, &have, want) {
            return Err(why);
        }
        let keys: Vec<String> = conn
            .exec(UNIQUE_KEYS, (table,))
            .map_err(|e| super::error::describe(&e))?;
        if let Some(why) = tables::wrong_delivery_keys(table, &keys) {
            return Err(why);
        }
    }
    Ok(all_there)
}

/// The unique indexes of table `?`, each as its columns in alphabetical order joined by `,`,
/// marked when it indexes a column's prefix or an expression (neither can stand for pc-host's
/// key).
const UNIQUE_KEYS: &str = "SELECT CONCAT(IFNULL(GROUP_CONCAT(COLUMN_NAME ORDER BY COLUMN_NAME \
     SEPARATOR ','), ''), IF(MAX(SUB_PART IS NOT NULL) OR MAX(COLUMN_NAME IS NULL), \
     ' (on a prefix or an expression)', '')) FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
     GROUP BY TABLE_NAME, INDEX_NAME ORDER BY 1";

/// Creates the tables if they are missing ([`check_tables`] first).
///
/// # Errors
/// The server's.
pub fn create_tables(conn: &mut Conn) -> mysql::Result<()> {
    TABLES.iter().try_for_each(|sql| conn.query_drop(*sql))
}

/// After a claim that inserted nothing: the server's refusal, as an error, if `INSERT IGNORE`
/// turned something else than the key's duplicate (ER_DUP_ENTRY) into a warning (a foreign
/// key someone added, say): that record is no duplicate, and its write must fail, not drop
/// it. A duplicate warning among others is a duplicate.
fn refused_other_than_duplicate(conn: &mut Conn) -> mysql::Result<Option<mysql::Error>> {
    if conn.warnings() == 0 {
        return Ok(None);
    }
    let warnings: Vec<(String, u16, String)> = conn.query("SHOW WARNINGS")?;
    if warnings
        .iter()
        .any(|(_, code, _)| super::error::is_duplicate_code(*code))
    {
        return Ok(None);
    }
    Ok(warnings.into_iter().next().map(|(_, code, message)| {
        mysql::Error::MySqlError(mysql::MySqlError {
            state: "HY000".into(),
            message,
            code,
        })
    }))
}

/// A record's key: its publisher's run here (0 for a stream's message), producer and seq.
fn key(r: &Record) -> (i64, i64, i64) {
    (r.key_run(), i64::from(r.producer), r.seq as i64)
}

/// Inside the caller's transaction: writes each record whose key is new (claimed for run
/// `run_id`), as a row of its publisher's run here or of `run_id`. Returns how many were
/// duplicates.
///
/// # Errors
/// The server's.
pub fn insert(conn: &mut Conn, run_id: i64, records: &[&Record]) -> mysql::Result<u64> {
    let claim = conn.prep(
        "INSERT IGNORE INTO delivered (key_run, producer, seq, stored_by) VALUES (?, ?, ?, ?)",
    )?;
    let row = conn.prep(
        "INSERT INTO messages (message, created_at, producer, seq, run_id) VALUES (?, ?, ?, ?, ?)",
    )?;
    let mut duplicates = 0;
    for r in records {
        let (key_run, producer, seq) = key(r);
        conn.exec_drop(&claim, (key_run, producer, seq, run_id))?;
        // 1: inserted; 0: the key was there (IGNORE: a duplicate key is not an error), or
        // IGNORE let another refusal pass as a warning.
        if conn.affected_rows() != 1 {
            if let Some(refused) = refused_other_than_duplicate(conn)? {
                return Err(refused);
            }
            duplicates += 1;
            continue;
        }
        conn.exec_drop(
            &row,
            (
                r.text.as_bytes(),
                datetime(r.created_at),
                producer,
                seq,
                r.row_run(run_id),
            ),
        )?;
    }
    Ok(duplicates)
}

/// Whether run `run_id` claimed any of the keys of `records` (the check after a COMMIT without
/// a reply): a locking read, waiting for a transaction still holding them.
///
/// # Errors
/// The server's.
pub fn stored_any(conn: &mut Conn, run_id: i64, records: &[&Record]) -> mysql::Result<bool> {
    let mut sql = String::from("SELECT 1 FROM delivered WHERE stored_by = ? AND (");
    let mut params: Vec<mysql::Value> = vec![run_id.into()];
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            sql.push_str(" OR ");
        }
        sql.push_str("(key_run = ? AND producer = ? AND seq = ?)");
        let (a, b, c) = key(r);
        params.extend([a.into(), b.into(), c.into()]);
    }
    sql.push_str(") LIMIT 1 LOCK IN SHARE MODE");
    let found: Option<i64> = conn.exec_first(sql, params)?;
    Ok(found.is_some())
}

/// The run that holds `origin`'s records here, recorded if new (processes wait for each other
/// on a named lock, for up to `wait_secs`, the sessions' lock wait: so one origin never gets
/// two runs, and the wait ends before the connection's reply timeout).
///
/// # Errors
/// The server's; the lock not given within its wait ([`Busy`](crate::sink::error::Busy)).
pub fn origin_run(conn: &mut Conn, origin: &Origin, wait_secs: u64) -> anyhow::Result<i64> {
    let got: Option<Option<i64>> = conn.exec_first(
        "SELECT GET_LOCK(CONCAT('pc-host origins ', MD5(DATABASE())), ?)",
        (wait_secs,),
    )?;
    if got.flatten() != Some(1) {
        // A lock another client holds, as a row lock past its wait is: worth another try.
        return Err(crate::sink::error::Busy(format!(
            "another client held pc-host's origin lock for {wait_secs} s"
        ))
        .into());
    }
    let done = super::runs::transaction(conn, |conn| find_or_add(conn, origin));
    let released = conn.query_drop("DO RELEASE_LOCK(CONCAT('pc-host origins ', MD5(DATABASE())))");
    let run_id = done?;
    released?;
    Ok(run_id)
}

fn find_or_add(conn: &mut Conn, origin: &Origin) -> mysql::Result<i64> {
    let known: Option<i64> = conn.exec_first(
        "SELECT run_id FROM nats_origins WHERE origin = ?",
        (origin.run,),
    )?;
    if let Some(run_id) = known {
        return Ok(run_id);
    }
    let config = serde_json::json!({ "published_by_run": origin.run, "via": "nats" }).to_string();
    conn.exec_drop(
        "INSERT INTO runs (started_at, producers, config) VALUES (?, ?, ?)",
        (origin.started_at, i64::from(origin.producers), config),
    )?;
    let run_id = conn.last_insert_id() as i64;
    conn.exec_drop(
        "INSERT INTO nats_origins (origin, run_id) VALUES (?, ?)",
        (origin.run, run_id),
    )?;
    Ok(run_id)
}

/// How many records run `run_id` stored through `delivered`.
///
/// # Errors
/// The server's.
pub fn count_stored(conn: &mut Conn, run_id: i64) -> mysql::Result<u64> {
    let n: Option<i64> = conn.exec_first(
        "SELECT COUNT(*) FROM delivered WHERE stored_by = ?",
        (run_id,),
    )?;
    Ok(n.unwrap_or(0).max(0) as u64)
}
