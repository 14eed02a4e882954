//! The database file: opening it, recognising (or refusing) what is in it, creating the
//! schema, and the `runs` bookkeeping. Every error names the file and says what to do.
//!
//! A pc-host database is marked with `PRAGMA application_id` and `PRAGMA user_version`. A file
//! with tables but without the mark (for instance the seed program's `messages(id, message,
//! created_at)`) is refused, never altered: pc-host does not migrate foreign schemas.

use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension as _, params};

/// `PRAGMA application_id` of a pc-host database: "pcHS".
pub const APPLICATION_ID: i64 = 0x7063_4853;
/// `PRAGMA user_version`: the schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 1;
/// The page size of a new database: 16 KiB stored ~15-25% more rows/s than 4 KiB here
/// (fewer pages, WAL frames and checksums per row).
pub const PAGE_SIZE: i64 = 16_384;

const SCHEMA: &str = "
CREATE TABLE runs (
    run_id      INTEGER PRIMARY KEY,
    started_at  INTEGER NOT NULL,            -- unix ns
    finished_at INTEGER,                     -- unix ns; NULL while running or if cut short
    completed   INTEGER NOT NULL DEFAULT 0,  -- 1: drained and committed everything accepted
    producers   INTEGER NOT NULL,
    produced    INTEGER,                     -- messages accepted into the ring
    first_id    INTEGER NOT NULL,            -- this run's messages have id >= first_id
    last_id     INTEGER,                     -- ... and id <= last_id
    config      TEXT NOT NULL                -- the effective configuration, JSON
);
CREATE TABLE run_producers (
    run_id   INTEGER NOT NULL REFERENCES runs (run_id),
    producer INTEGER NOT NULL,
    produced INTEGER NOT NULL,               -- its messages have seq 0 .. produced - 1
    PRIMARY KEY (run_id, producer)
) WITHOUT ROWID;
CREATE TABLE messages (
    id         INTEGER PRIMARY KEY,
    message    TEXT NOT NULL,
    created_at INTEGER NOT NULL,             -- unix ns, when the producer built it
    producer   INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    run_id     INTEGER NOT NULL
);
";

/// The columns each table must have, in order.
const TABLES: [(&str, &[&str]); 3] = [
    (
        "runs",
        &[
            "run_id",
            "started_at",
            "finished_at",
            "completed",
            "producers",
            "produced",
            "first_id",
            "last_id",
            "config",
        ],
    ),
    ("run_producers", &["run_id", "producer", "produced"]),
    (
        "messages",
        &["id", "message", "created_at", "producer", "seq", "run_id"],
    ),
];

/// Turns an SQLite error on `path` into a one-line, actionable message.
pub fn db_error(path: &Path, e: rusqlite::Error, busy: Duration) -> anyhow::Error {
    let p = path.display();
    match e.sqlite_error_code() {
        Some(ErrorCode::CannotOpen) => anyhow!(
            "cannot open database {p}: {e} (does its directory exist, and may this user write there?)"
        ),
        Some(ErrorCode::NotADatabase) => {
            anyhow!("{p} is not an SQLite database; pc-host will not touch it: use another --db")
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => anyhow!(
            "database {p} is locked by another process (gave up after waiting {:.1} s); try again \
             when it is done, raise --busy-timeout-ms, or use another --db",
            busy.as_secs_f64()
        ),
        Some(ErrorCode::ReadOnly) => anyhow!("database {p} is read-only: {e}"),
        Some(ErrorCode::DiskFull) => anyhow!("database {p}: the disk is full"),
        _ => anyhow!("database {p}: {e}"),
    }
}

/// Opens `path` for writing (creating it if missing) with a busy timeout.
pub fn open(path: &Path, busy: Duration) -> anyhow::Result<Connection> {
    if path.is_dir() {
        return Err(anyhow!(
            "--db {} is a directory: give a file path",
            path.display()
        ));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| db_error(path, e, busy))?;
    conn.busy_timeout(busy)
        .map_err(|e| db_error(path, e, busy))?;
    Ok(conn)
}

/// Opens an existing database read-only (for `verify`).
pub fn open_existing(path: &Path) -> anyhow::Result<Connection> {
    if !path.is_file() {
        return Err(anyhow!("no database file at {}", path.display()));
    }
    let busy = Duration::from_secs(5);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| db_error(path, e, busy))?;
    conn.busy_timeout(busy)
        .map_err(|e| db_error(path, e, busy))?;
    check(&conn, path, busy)?.ok_or_else(|| {
        anyhow!(
            "{} holds no pc-host data (it is an empty database)",
            path.display()
        )
    })?;
    Ok(conn)
}

/// What the file holds: `None` if it is empty (a new database), `Some(())` if it is a pc-host
/// database of this schema version. Anything else is an error. Reads only.
pub fn check(conn: &Connection, path: &Path, busy: Duration) -> anyhow::Result<Option<()>> {
    let err = |e| db_error(path, e, busy);
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .map_err(err)?;
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let p = path.display();
    if app_id == 0 && version == 0 && tables.is_empty() {
        return Ok(None);
    }
    if app_id != APPLICATION_ID {
        return Err(anyhow!(
            "{p} is not a pc-host database (it has tables: {}); pc-host will not write to it: use \
             another --db",
            if tables.is_empty() {
                "none".to_string()
            } else {
                tables.join(", ")
            }
        ));
    }
    if version != SCHEMA_VERSION {
        return Err(anyhow!(
            "{p} has pc-host schema version {version}, this pc-host reads version \
             {SCHEMA_VERSION}: use a matching pc-host or another --db"
        ));
    }
    for (table, want) in TABLES {
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info({table})"))
            .map_err(err)?;
        let have: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(1))
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?;
        if have != want {
            return Err(anyhow!(
                "{p}: table `{table}` has columns ({}) but pc-host expects ({}); the database \
                 was altered: use another --db",
                have.join(", "),
                want.join(", ")
            ));
        }
    }
    Ok(Some(()))
}

/// A run recorded in the database.
#[derive(Debug)]
pub struct RunRow {
    pub run_id: i64,
    pub first_id: i64,
}

/// Prepares `path` for a run: checks what is in it, switches it to WAL, creates the schema if
/// the file is new, and records the run. Returns the connection (to become the writer) and the
/// run. Nothing is written to a file that is not (or cannot become) a pc-host database.
pub fn prepare_run(
    path: &Path,
    busy: Duration,
    producers: usize,
    config_json: &str,
    started_at: i64,
) -> anyhow::Result<(Connection, RunRow)> {
    let conn = open(path, busy)?;
    let err = |e| db_error(path, e, busy);
    if check(&conn, path, busy)?.is_none() {
        // Only a new file can take a page size; on an existing one this does nothing.
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(err)?;
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(anyhow!(
            "database {}: cannot use write-ahead logging here (journal mode stays {mode}); is it \
             on a file system without shared memory support?",
            path.display()
        ));
    }
    conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
    let run = (|| -> anyhow::Result<RunRow> {
        // Check again inside the write lock: another pc-host may have created it meanwhile.
        if check(&conn, path, busy)?.is_none() {
            conn.execute_batch(SCHEMA).map_err(err)?;
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(err)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(err)?;
        }
        let first_id: i64 = conn
            .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM messages", [], |r| {
                r.get(0)
            })
            .map_err(err)?;
        conn.execute(
            "INSERT INTO runs (started_at, producers, first_id, config) VALUES (?1, ?2, ?3, ?4)",
            params![started_at, producers as i64, first_id, config_json],
        )
        .map_err(err)?;
        Ok(RunRow {
            run_id: conn.last_insert_rowid(),
            first_id,
        })
    })();
    match run {
        Ok(run) => {
            conn.execute_batch("COMMIT").map_err(err)?;
            Ok((conn, run))
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Records the end of a run: its totals, and whether it drained completely.
pub fn finish_run(
    conn: &Connection,
    run_id: i64,
    finished_at: i64,
    completed: bool,
    per_producer: &[u64],
    last_id: Option<i64>,
) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let produced: u64 = per_producer.iter().sum();
        conn.execute(
            "UPDATE runs SET finished_at = ?2, completed = ?3, produced = ?4, last_id = ?5 \
             WHERE run_id = ?1",
            params![
                run_id,
                finished_at,
                i64::from(completed),
                produced as i64,
                last_id
            ],
        )?;
        let mut stmt = conn.prepare(
            "INSERT INTO run_producers (run_id, producer, produced) VALUES (?1, ?2, ?3)",
        )?;
        for (producer, &n) in per_producer.iter().enumerate() {
            stmt.execute(params![run_id, producer as i64, n as i64])?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// How many messages of `run` the database holds.
pub fn count_stored(conn: &Connection, run: &RunRow) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT COUNT(*) FROM messages WHERE id >= ?1 AND run_id = ?2",
        params![run.first_id, run.run_id],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

/// The runs recorded in a database, for `verify`.
#[derive(Debug)]
pub struct RunInfo {
    pub run_id: i64,
    pub completed: bool,
    pub finished: bool,
    pub producers: u32,
    /// Per producer (index = producer id), if the run finished.
    pub produced: Vec<u64>,
}

/// Reads the `runs` and `run_producers` tables (one run, or all).
pub fn runs(conn: &Connection, only: Option<i64>) -> rusqlite::Result<Vec<RunInfo>> {
    let mut stmt = conn.prepare(
        "SELECT run_id, completed, finished_at IS NOT NULL, producers FROM runs \
         WHERE ?1 IS NULL OR run_id = ?1 ORDER BY run_id",
    )?;
    let mut runs: Vec<RunInfo> = stmt
        .query_map([only], |r| {
            Ok(RunInfo {
                run_id: r.get(0)?,
                completed: r.get::<_, i64>(1)? != 0,
                finished: r.get(2)?,
                producers: r.get::<_, i64>(3)?.clamp(0, i64::from(u32::MAX)) as u32,
                produced: Vec::new(),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt =
        conn.prepare("SELECT producer, produced FROM run_producers WHERE run_id = ?1")?;
    for run in &mut runs {
        run.produced = vec![0; run.producers as usize];
        let rows = stmt.query_map([run.run_id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (p, n) = row?;
            if let Some(slot) = usize::try_from(p)
                .ok()
                .and_then(|p| run.produced.get_mut(p))
            {
                *slot = n.max(0) as u64;
            }
        }
    }
    Ok(runs)
}

/// Whether run `run_id` exists.
pub fn run_exists(conn: &Connection, run_id: i64) -> rusqlite::Result<bool> {
    conn.query_row("SELECT 1 FROM runs WHERE run_id = ?1", [run_id], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
}
