//! The tables: recognising pc-host's (or refusing someone else's), creating them in a database
//! that has none, upgrading pc-host's older ones in place.
//!
//! pc-host's tables are marked by a `pc_host_schema` table holding the schema version. A
//! database with any of the table names pc-host uses (for instance the seed program's
//! `messages(id, message, created_at)`) but no mark is refused, never altered. Tables with
//! other names are left alone: a server database is often shared.
//!
//! Version 2 keeps what a run did with the data: its summary in new `runs` columns, one row per
//! report interval in `run_intervals`; version 3 adds the `consumers` column of
//! `run_intervals`, version 4 the `mark` column of `inputs`, version 5 the `duplicates`
//! column of `runs`. An older database is upgraded in place (its runs kept), under the same lock
//! as a creation; an upgrade cut short is completed by the next run.

use crate::sink::tables;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use mysql::Conn;
use mysql::prelude::Queryable as _;

use super::delivered;
use super::error::sink_error;
use crate::config::url::ServerUrl;

/// The schema version this build writes and reads (`pc_host_schema.version`).
pub const SCHEMA_VERSION: i64 = 5;
/// The older versions this build upgrades in place (and `verify` reads).
const VERSION_1: i64 = 1;
const VERSION_2: i64 = 2;
const VERSION_3: i64 = 3;
const VERSION_4: i64 = 4;

/// How long `open` waits for another pc-host creating the tables (seconds).
const SCHEMA_LOCK_WAIT: u64 = 30;

const MARK: &str = "CREATE TABLE IF NOT EXISTS pc_host_schema (
    version INT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4
  COMMENT = 'pc-host: the tables of this database are pc-host''s, of this schema version'";

/// The columns version 2 adds to `runs` (at its end): the run's summary, NULL until it ends.
/// One text for the new table and the upgrade, so both have the same columns.
macro_rules! runs_summary_columns {
    () => {
        "stored          BIGINT NULL COMMENT 'counted back at the end',
    dead_lettered   BIGINT NULL,
    not_stored      BIGINT NULL,
    retries         BIGINT NULL,
    latency_p50_ns  BIGINT NULL COMMENT 'every message, intended -> settled',
    latency_p99_ns  BIGINT NULL,
    latency_p999_ns BIGINT NULL,
    latency_max_ns  BIGINT NULL,
    elapsed_s       DOUBLE NULL"
    };
}

/// Upgrades a version 1 `runs` to version 2.
const RUNS_ADD_SUMMARY: &str = concat!(
    "ALTER TABLE runs ADD COLUMN (",
    runs_summary_columns!(),
    ")"
);

/// The columns of `runs` in version 1 (version 2 adds the summary's).
const RUNS_V1_COLUMNS: usize = 7;

/// The column version 5 adds to `runs` (at its end): deliveries of records the database
/// already held, dropped (a NATS source's), so that a run's row balances as its summary does.
/// One text for the new table and the upgrade.
macro_rules! runs_duplicates_column {
    () => {
        "duplicates      BIGINT NULL COMMENT 'deliveries already stored, dropped; NULL in rows of older runs'"
    };
}

/// Upgrades a version 2 to 4 `runs` to version 5.
const RUNS_ADD_DUPLICATES: &str =
    concat!("ALTER TABLE runs ADD COLUMN ", runs_duplicates_column!());

/// The column version 3 adds to `run_intervals` (at its end).
const INTERVALS_ADD_CONSUMERS: &str = "ALTER TABLE run_intervals ADD COLUMN consumers INT NULL \
     COMMENT 'consumers running at the interval''s end; NULL in rows of older runs'";

/// The column version 4 adds to `inputs` (at its end).
const INPUTS_ADD_MARK: &str = "ALTER TABLE inputs ADD COLUMN mark BIGINT NULL \
     COMMENT 'a mark of the bytes before the committed position; NULL until its next commit'";

/// The tables of version 1: the first ones of [`TABLES`].
const V1_TABLES: usize = 5;

/// The names of pc-host's own tables (the mark and [`TABLES`]), as an SQL list for `IN (...)`.
macro_rules! own_tables {
    () => {
        "'pc_host_schema', 'runs', 'run_producers', 'messages', 'inputs', 'run_inputs', \
         'run_intervals'"
    };
}

/// The tables, each with its columns in order (seed columns of `messages` first).
const TABLES: [(&str, &[&str], &str); 6] = [
    (
        "runs",
        tables::RUNS,
        concat!(
            "CREATE TABLE IF NOT EXISTS runs (
    run_id      BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    started_at  BIGINT NOT NULL COMMENT 'unix ns',
    finished_at BIGINT NULL COMMENT 'unix ns; NULL while running or if cut short',
    completed   BOOLEAN NOT NULL DEFAULT FALSE COMMENT 'drained and committed everything accepted',
    producers   INT NOT NULL COMMENT 'generator threads (0 in an ingest run)',
    produced    BIGINT NULL COMMENT 'records accepted into the ring',
    config      LONGTEXT NOT NULL COMMENT 'the effective configuration, JSON',
    ",
            runs_summary_columns!(),
            ",
    ",
            runs_duplicates_column!(),
            "
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"
        ),
    ),
    (
        "run_producers",
        tables::RUN_PRODUCERS,
        "CREATE TABLE IF NOT EXISTS run_producers (
    run_id   BIGINT NOT NULL,
    producer INT NOT NULL,
    produced BIGINT NOT NULL COMMENT 'its messages have seq 0 .. produced - 1',
    PRIMARY KEY (run_id, producer),
    FOREIGN KEY (run_id) REFERENCES runs (run_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
    ),
    (
        "messages",
        tables::MESSAGES,
        "CREATE TABLE IF NOT EXISTS messages (
    id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    message    LONGTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL COMMENT 'UTC, when the record was built or read',
    producer   INT NOT NULL COMMENT 'generator thread, or input_id',
    seq        BIGINT NOT NULL COMMENT 'generator count, or line number in the input',
    run_id     BIGINT NOT NULL,
    UNIQUE KEY run_producer_seq (run_id, producer, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
    ),
    (
        "inputs",
        tables::INPUTS,
        "CREATE TABLE IF NOT EXISTS inputs (
    input_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY COMMENT 'the producer of its rows',
    path     TEXT NULL COMMENT 'absolute path; NULL for stdin',
    dev      BIGINT NULL,
    ino      BIGINT NULL,
    born     BIGINT NULL COMMENT 'birth time, unix ns; NULL if not recorded',
    `offset` BIGINT NOT NULL DEFAULT 0 COMMENT 'bytes committed: a resume reads from here',
    line     BIGINT NOT NULL DEFAULT 0 COMMENT 'lines committed: the next line''s number',
    tail     BIGINT NOT NULL DEFAULT 0 COMMENT 'bytes of a last line committed without its end',
    mark     BIGINT NULL COMMENT 'a mark of the bytes before the committed position; NULL until its next commit',
    KEY file (dev, ino)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
    ),
    (
        "run_inputs",
        tables::RUN_INPUTS,
        "CREATE TABLE IF NOT EXISTS run_inputs (
    run_id   BIGINT NOT NULL,
    input_id BIGINT NOT NULL,
    PRIMARY KEY (run_id, input_id),
    KEY input (input_id),
    FOREIGN KEY (run_id) REFERENCES runs (run_id),
    FOREIGN KEY (input_id) REFERENCES inputs (input_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
    ),
    (
        "run_intervals",
        tables::RUN_INTERVALS,
        "CREATE TABLE IF NOT EXISTS run_intervals (
    run_id         BIGINT NOT NULL,
    t_s            DOUBLE NOT NULL COMMENT 'the interval''s end, seconds into the run',
    produced       BIGINT NOT NULL COMMENT 'records accepted in the interval',
    stored         BIGINT NOT NULL COMMENT 'records committed in the interval',
    rejected       BIGINT NOT NULL,
    queue_depth    BIGINT NOT NULL COMMENT 'ring length at the interval''s end',
    latency_p50_ns BIGINT NULL COMMENT 'of messages settled in the interval; NULL when none was',
    latency_p99_ns BIGINT NULL,
    latency_max_ns BIGINT NULL,
    commit_p99_ns  BIGINT NULL COMMENT 'of commits in the interval',
    consumers      INT NULL COMMENT 'consumers running at the interval''s end; NULL in rows of older runs',
    PRIMARY KEY (run_id, t_s),
    FOREIGN KEY (run_id) REFERENCES runs (run_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
    ),
];

/// What a database holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// None of pc-host's tables.
    Empty,
    /// Marked as pc-host's, some tables missing (creation was cut short, or this user cannot
    /// see them): their names.
    Incomplete(Vec<&'static str>),
    /// pc-host's tables of version 1, all there, which [`prepare`] upgrades (perhaps partly
    /// upgraded already: an upgrade cut short).
    Version1,
    /// Version 2, likewise.
    Version2,
    /// Version 3, likewise.
    Version3,
    /// Version 4, likewise.
    Version4,
    /// pc-host's tables, all there, of this version.
    Current,
}

/// Makes sure the database holds pc-host's tables of this version: creates them in a database
/// without them, completes a creation cut short, upgrades a version 1 database in place
/// (keeping its rows); refuses anything else. Other pc-host processes doing the same wait for
/// each other (a named lock).
///
/// # Errors
/// One line naming the URL: foreign or altered tables, another schema version, or the
/// server's error.
pub fn prepare(conn: &mut Conn, url: &ServerUrl, delivered: bool) -> anyhow::Result<()> {
    let shown = &url.shown;
    let err = |e: mysql::Error| sink_error(&e, shown);
    // A second at a time (the server's least wait), so that a signal ends the wait.
    let deadline = Instant::now() + Duration::from_secs(SCHEMA_LOCK_WAIT);
    let mut told = false;
    loop {
        let got: Option<Option<i64>> = conn
            .query_first("SELECT GET_LOCK(CONCAT('pc-host schema ', MD5(DATABASE())), 1)")
            .map_err(err)?;
        match got {
            Some(Some(1)) => break,
            // NULL: an error, such as no database selected (no lock name); waiting would not
            // end it.
            Some(None) | None => {
                return Err(anyhow!(
                    "sink {shown}: the server could not take pc-host's schema lock \
                     (GET_LOCK returned NULL, which it does on an error)"
                ));
            }
            Some(Some(_)) if !told => {
                told = true;
                tracing::warn!(
                    "sink {shown}: another client holds pc-host's schema lock; waiting for it \
                     up to {SCHEMA_LOCK_WAIT} s"
                );
            }
            Some(Some(_)) => {}
        }
        crate::interrupt::check(|| {
            format!("{shown} (another pc-host starting on this database held its schema lock)")
        })?;
        if Instant::now() >= deadline {
            return Err(anyhow!(
                "sink {shown}: another client held pc-host's schema lock for \
                 {SCHEMA_LOCK_WAIT} s; try again"
            ));
        }
    }
    let done = create_or_upgrade(conn, url, delivered);
    let released = conn.query_drop("DO RELEASE_LOCK(CONCAT('pc-host schema ', MD5(DATABASE())))");
    done?;
    released.map_err(err)
}

/// Under the schema lock: [`upgrade`]s unless the tables are current; with a broker source
/// (`delivered`), refuses delivery tables that are not pc-host's first and creates them last.
fn create_or_upgrade(conn: &mut Conn, url: &ServerUrl, delivered: bool) -> anyhow::Result<()> {
    let found = check(conn, url)?;
    transactional(conn, url)?;
    let delivery_tables_there = !delivered
        || delivered::check_tables(conn, found == Found::Empty)
            .map_err(|why| anyhow!("sink {}: {why}", url.shown))?;
    if found != Found::Current {
        upgrade(conn, url)?;
    }
    // Created only when missing: a user without CREATE runs once they are there.
    if !delivery_tables_there {
        delivered::create_tables(conn).map_err(|e| {
            sink_error(
                &e,
                format_args!("{}: creating the delivery tables failed", url.shown),
            )
        })?;
    }
    Ok(())
}

/// Before a run writes: refuses a database where a table of pc-host's is not InnoDB (another
/// engine, MyISAM say, may have no transactions: it keeps the part of a write before the
/// statement that failed, so a retried batch would store rows twice, and a claimed delivery
/// key would stay without its row). pc-host makes every table InnoDB.
///
/// # Errors
/// One line naming the URL and the table.
fn transactional(conn: &mut Conn, url: &ServerUrl) -> anyhow::Result<()> {
    let shown = &url.shown;
    let err = |e: mysql::Error| sink_error(&e, shown);
    let engines: Vec<(String, String)> = conn
        .query(concat!(
            "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = \
                 DATABASE() AND TABLE_NAME IN (",
            own_tables!(),
            ", 'delivered', 'nats_origins') AND ENGINE <> 'InnoDB' ORDER BY TABLE_NAME"
        ))
        .map_err(err)?;
    match engines.first() {
        Some((table, engine)) => Err(anyhow!(
            "sink {shown}: table `{table}` uses the {engine} engine, not InnoDB, as pc-host makes \
             its tables (an engine without transactions keeps part of a failed write); pc-host \
             will not write to this database: use another one"
        )),
        None => Ok(()),
    }
}

/// Under the schema lock: creates the missing tables, adds the columns each later version
/// added to the tables that lack them (version 2's and 5's to `runs`, 3's to `run_intervals`,
/// 4's to `inputs`), then marks the database as this version. Each step is done only if not done yet, so a run after one cut short completes it.
fn upgrade(conn: &mut Conn, url: &ServerUrl) -> anyhow::Result<()> {
    let err = |e: mysql::Error| sink_error(&e, &url.shown);
    // The mark first: a creation cut short is completed by the next run, never refused.
    conn.query_drop(MARK).map_err(err)?;
    conn.exec_drop(
        "INSERT INTO pc_host_schema (version) SELECT ? FROM DUAL \
         WHERE NOT EXISTS (SELECT 1 FROM pc_host_schema)",
        (SCHEMA_VERSION,),
    )
    .map_err(err)?;
    for (_, _, ddl) in TABLES {
        conn.query_drop(ddl).map_err(err)?;
    }
    // `check` let only a version 1 database have a `runs` of version 1.
    if columns(conn, "runs").map_err(err)?.len() == RUNS_V1_COLUMNS {
        conn.query_drop(RUNS_ADD_SUMMARY).map_err(err)?;
    }
    if columns(conn, "runs").map_err(err)?.len() + 1 == tables::RUNS.len() {
        conn.query_drop(RUNS_ADD_DUPLICATES).map_err(err)?;
    }
    if columns(conn, "run_intervals").map_err(err)?.len() + 1 == tables::RUN_INTERVALS.len() {
        conn.query_drop(INTERVALS_ADD_CONSUMERS).map_err(err)?;
    }
    if columns(conn, "inputs").map_err(err)?.len() + 1 == tables::INPUTS.len() {
        conn.query_drop(INPUTS_ADD_MARK).map_err(err)?;
    }
    conn.exec_drop("UPDATE pc_host_schema SET version = ?", (SCHEMA_VERSION,))
        .map_err(err)?;
    match check(conn, url)? {
        Found::Current => Ok(()),
        found => Err(anyhow!(
            "sink {}: the tables are still {found:?} after creating them",
            url.shown
        )),
    }
}

/// Recognises what the database holds; anything but pc-host's tables of version 1 to this
/// version (or none of them) is an error. Reads only.
///
/// # Errors
/// One line naming the URL.
pub fn check(conn: &mut Conn, url: &ServerUrl) -> anyhow::Result<Found> {
    let shown = &url.shown;
    let err = |e: mysql::Error| sink_error(&e, shown);
    let names: Vec<String> = conn
        .query(concat!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME IN (",
            own_tables!(),
            ") ORDER BY TABLE_NAME"
        ))
        .map_err(err)?;
    if !names.iter().any(|n| n == "pc_host_schema") {
        if names.is_empty() {
            return Ok(Found::Empty);
        }
        return Err(anyhow!(
            "sink {shown}: the database has {} not pc-host's (no pc_host_schema table); \
             pc-host leaves it as it is: use another database",
            crate::sink::tables::named_tables(&names)
        ));
    }
    let mark: Vec<String> = conn
        .query(
            "SELECT CONCAT(COLUMN_NAME, ' ', DATA_TYPE) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'pc_host_schema' \
             ORDER BY ORDINAL_POSITION",
        )
        .map_err(err)?;
    if mark != ["version int"] {
        return Err(anyhow!(
            "sink {shown}: table `pc_host_schema` is not pc-host's (pc-host's has one column, \
             `version int`); pc-host will not write to this database's tables: use another \
             database"
        ));
    }
    let version: Option<Option<i64>> = conn
        .query_first("SELECT MAX(version) FROM pc_host_schema")
        .map_err(err)?;
    let version = version.flatten();
    let known = [VERSION_1, VERSION_2, VERSION_3, VERSION_4, SCHEMA_VERSION];
    if let Some(v) = version.filter(|v| !known.contains(v)) {
        return Err(anyhow!(
            "sink {shown}: pc-host schema version {v}, this pc-host reads versions {VERSION_1} \
             to {SCHEMA_VERSION}: use a matching pc-host or another database"
        ));
    }
    // The index in TABLES of each table missing.
    let mut missing = Vec::new();
    for (i, (table, want, _)) in TABLES.iter().enumerate() {
        if !names.iter().any(|n| n == table) {
            missing.push(i);
            continue;
        }
        let have = columns(conn, table).map_err(err)?;
        let v1_runs =
            version == Some(VERSION_1) && *table == "runs" && have[..] == want[..RUNS_V1_COLUMNS];
        // A `runs` of versions 2 to 4 (or of an upgrade cut short before its last column).
        let old_runs = matches!(version, Some(VERSION_1..=VERSION_4))
            && *table == "runs"
            && have[..] == want[..want.len() - 1];
        // A version 1 or 2 `run_intervals` (version 1's created by an upgrade cut short).
        let old_intervals = matches!(version, Some(VERSION_1 | VERSION_2))
            && *table == "run_intervals"
            && have[..] == want[..want.len() - 1];
        // An `inputs` of before version 4 (or of a version 4 upgrade cut short).
        let old_inputs = matches!(version, Some(VERSION_1 | VERSION_2 | VERSION_3))
            && *table == "inputs"
            && have[..] == want[..want.len() - 1];
        if have[..] != want[..] && !v1_runs && !old_runs && !old_intervals && !old_inputs {
            return Err(anyhow!(
                "sink {shown}: table `{table}` has columns ({}) but pc-host expects ({}); it \
                 was altered: use another database",
                have.join(", "),
                want.join(", ")
            ));
        }
    }
    Ok(match version {
        Some(SCHEMA_VERSION) if missing.is_empty() => Found::Current,
        Some(VERSION_1) if missing.iter().all(|&i| i >= V1_TABLES) => Found::Version1,
        Some(VERSION_2) if missing.is_empty() => Found::Version2,
        Some(VERSION_3) if missing.is_empty() => Found::Version3,
        Some(VERSION_4) if missing.is_empty() => Found::Version4,
        // Version 1 never had the tables after its own: only its own can be missing.
        _ => Found::Incomplete(
            missing
                .iter()
                .filter(|&&i| version != Some(VERSION_1) || i < V1_TABLES)
                .map(|&i| TABLES[i].0)
                .collect(),
        ),
    })
}

/// The columns of `table`, in order.
fn columns(conn: &mut Conn, table: &str) -> mysql::Result<Vec<String>> {
    conn.exec(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        (table,),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list the checks read with names the mark and every table, and nothing else.
    #[test]
    fn the_own_tables_list_names_the_mark_and_every_table() {
        let listed: Vec<&str> = own_tables!()
            .split(", ")
            .map(|n| n.trim_matches('\''))
            .collect();
        let mut want = vec!["pc_host_schema"];
        want.extend(TABLES.iter().map(|(name, _, _)| *name));
        assert_eq!(listed, want);
    }
}
