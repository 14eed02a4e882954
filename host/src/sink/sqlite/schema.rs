//! The database file: opening it, recognising (or refusing) what is in it, creating or
//! upgrading the schema. Every error names the file and says what to do.
//!
//! A pc-host database is marked with `PRAGMA application_id` and `PRAGMA user_version`. A file
//! with tables but without the mark (for instance the seed program's `messages(id, message,
//! created_at)`) is refused, never altered: pc-host does not migrate foreign schemas. Its own
//! older databases (versions 1 to 6) are upgraded in place, each version's additions in turn.

use crate::config::PageSize;
use crate::sink::tables;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};

pub use crate::sink::error::Busy;

/// `PRAGMA application_id` of a pc-host database: "pcHS".
pub const APPLICATION_ID: i64 = 0x7063_4853;
/// `PRAGMA user_version`: the schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 7;
/// The page size a run asks of the database.
#[derive(Clone, Copy, Debug)]
pub enum PageSizeChoice<'a> {
    /// `--page-size`: a new database gets it, an existing one must have it.
    Given(&'a PageSize),
    /// None given: a new database gets [`page_size_for_rate`] of the run's target rate
    /// (records/s in total, 0 for unthrottled); an existing one keeps its own.
    ForRate(u64),
}

impl PageSizeChoice<'_> {
    /// The page size, in bytes, a new database gets.
    pub fn for_new_database(self) -> i64 {
        match self {
            Self::Given(p) => i64::from(p.bytes),
            Self::ForRate(rps) => page_size_for_rate(rps),
        }
    }
}

/// The page size of a new database, in bytes, when none is given: by the run's target rate.
///
/// Every commit appends at least one whole page to the WAL. At up to [`SMALL_PAGES_MAX_RPS`]
/// records/s a commit holds a few rows, so 4 KiB pages append a quarter of the bytes 16 KiB
/// pages do, each commit copies and checksums less, and the p99 is lower. Unthrottled runs
/// commit thousands of rows at a time, where 16 KiB pages store more rows per second (fewer
/// pages, frames and checksums per row); at the rates in between (measured at 100k and 200k
/// records/s) smaller pages gave no lower p99. `docs/performance-log.md`, "pages sized by
/// the rate", has the figures.
#[must_use]
pub fn page_size_for_rate(rps: u64) -> i64 {
    if rps != 0 && rps <= SMALL_PAGES_MAX_RPS {
        SMALL_PAGE_BYTES
    } else {
        BULK_PAGE_BYTES
    }
}

/// The page size of a new database made by a run throttled to at most [`SMALL_PAGES_MAX_RPS`].
const SMALL_PAGE_BYTES: i64 = 4_096;
/// The page size of a new database made by a faster or unthrottled run.
const BULK_PAGE_BYTES: i64 = 16_384;
/// The fastest target rate, records/s in total, whose new database gets small pages.
const SMALL_PAGES_MAX_RPS: u64 = 50_000;

// The tables' text, in pieces that versions share (`concat!` takes only literals, so the
// pieces are macros). SQLite keeps each table's text as written: `.schema` shows it.
macro_rules! runs_head {
    () => {
        "
CREATE TABLE runs (
    run_id      INTEGER PRIMARY KEY,
    started_at  INTEGER NOT NULL,            -- unix ns
    finished_at INTEGER,                     -- unix ns; NULL while running or if cut short
    completed   INTEGER NOT NULL DEFAULT 0,  -- 1: drained and committed everything accepted
    producers   INTEGER NOT NULL,            -- generator threads (0 in an ingest run)
    produced    INTEGER,                     -- records accepted into the ring
    first_id    INTEGER NOT NULL,            -- this run's messages have id >= first_id
    last_id     INTEGER,                     -- ... and id <= last_id (set when it finishes)
"
    };
}

macro_rules! run_producers_and_messages {
    () => {
        "CREATE TABLE run_producers (
    run_id   INTEGER NOT NULL REFERENCES runs (run_id),
    producer INTEGER NOT NULL,
    produced INTEGER NOT NULL,               -- its messages have seq 0 .. produced - 1
    PRIMARY KEY (run_id, producer)
) WITHOUT ROWID;
CREATE TABLE messages (
    id         INTEGER PRIMARY KEY,
    message    TEXT NOT NULL,
    created_at INTEGER NOT NULL,             -- unix ns, when the record was built or read
    producer   INTEGER NOT NULL,             -- generator thread, or input_id
    seq        INTEGER NOT NULL,             -- generator count, or line number in the input
    run_id     INTEGER NOT NULL
);
"
    };
}

macro_rules! inputs_head {
    () => {
        "
CREATE TABLE inputs (
    input_id INTEGER PRIMARY KEY,            -- the producer of its rows
    path     TEXT,                           -- absolute path; NULL for stdin
    dev      INTEGER,                        -- the file's identity: device, inode and
    ino      INTEGER,
    born     INTEGER,                        -- birth time (unix ns; NULL if not recorded)
    offset   INTEGER NOT NULL DEFAULT 0,     -- bytes committed: a resume reads from here
    line     INTEGER NOT NULL DEFAULT 0,     -- lines committed: the next line's number
    tail     INTEGER NOT NULL DEFAULT 0,     -- bytes of a last line committed without its end
"
    };
}

macro_rules! inputs_tail_and_run_inputs {
    () => {
        "    UNIQUE (path, dev, ino, born)
);
CREATE TABLE run_inputs (
    run_id   INTEGER NOT NULL REFERENCES runs (run_id),
    input_id INTEGER NOT NULL REFERENCES inputs (input_id),
    PRIMARY KEY (run_id, input_id)
) WITHOUT ROWID;
"
    };
}

macro_rules! run_intervals_head {
    () => {
        "CREATE TABLE run_intervals (
    run_id         INTEGER NOT NULL REFERENCES runs (run_id),
    t_s            REAL NOT NULL,                -- the interval's end, seconds into the run
    produced       INTEGER NOT NULL,             -- records accepted in the interval
    stored         INTEGER NOT NULL,             -- records committed in the interval
    rejected       INTEGER NOT NULL,
    queue_depth    INTEGER NOT NULL,             -- ring length at the interval's end
    latency_p50_ns INTEGER,                      -- of messages settled in the interval;
    latency_p99_ns INTEGER,                      -- NULL when none was
    latency_max_ns INTEGER,
    commit_p99_ns  INTEGER,                      -- of commits in the interval
"
    };
}

macro_rules! run_intervals_tail {
    () => {
        "    PRIMARY KEY (run_id, t_s)
) WITHOUT ROWID;
"
    };
}

/// Version 1: runs of the generator (what the upgrades start from; the tests make such files).
#[cfg(test)]
const SCHEMA_V1: &str = concat!(
    runs_head!(),
    "    config      TEXT NOT NULL                -- the effective configuration, JSON
);
",
    run_producers_and_messages!()
);

/// A new database: the current version's tables as one script, each column on a line of its
/// own with its comment, in the order the upgrades below leave an older database's columns in
/// (`TABLES`). Not version 1 plus the additions: `ALTER TABLE ... ADD COLUMN` splices the new
/// column into the table's text after the last one, before its comment (`.schema` read `tail
/// ... DEFAULT 0, mark INTEGER, -- bytes of a last line...`).
const SCHEMA_CURRENT: &str = concat!(
    runs_head!(),
    "    config      TEXT NOT NULL,               -- the effective configuration, JSON
    stored      INTEGER,                     -- counted back at the end
    dead_lettered INTEGER,
    not_stored  INTEGER,
    retries     INTEGER,
    latency_p50_ns INTEGER,                  -- every message, intended -> settled
    latency_p99_ns INTEGER,
    latency_p999_ns INTEGER,
    latency_max_ns INTEGER,
    elapsed_s   REAL,
    duplicates  INTEGER                      -- deliveries already stored, dropped
);
",
    run_producers_and_messages!(),
    inputs_head!(),
    "    mark     INTEGER,                        -- hash of the bytes before the position
",
    inputs_tail_and_run_inputs!(),
    run_intervals_head!(),
    "    consumers      INTEGER,                      -- consumers running at the interval's end
",
    run_intervals_tail!()
);

/// Version 2 adds inputs: files (and stdin streams) read by ingest runs, with the position
/// committed so far.
const SCHEMA_V2_ADDS: &str = concat!(inputs_head!(), inputs_tail_and_run_inputs!());

/// Version 3 keeps what a run did with the data: its summary in `runs`, and one row per report
/// interval in `run_intervals`.
const SCHEMA_V3_ADDS: &str = concat!(
    "
ALTER TABLE runs ADD COLUMN stored INTEGER;          -- counted back at the end
ALTER TABLE runs ADD COLUMN dead_lettered INTEGER;
ALTER TABLE runs ADD COLUMN not_stored INTEGER;
ALTER TABLE runs ADD COLUMN retries INTEGER;
ALTER TABLE runs ADD COLUMN latency_p50_ns INTEGER;  -- every message, intended -> settled
ALTER TABLE runs ADD COLUMN latency_p99_ns INTEGER;
ALTER TABLE runs ADD COLUMN latency_p999_ns INTEGER;
ALTER TABLE runs ADD COLUMN latency_max_ns INTEGER;
ALTER TABLE runs ADD COLUMN elapsed_s REAL;
",
    run_intervals_head!(),
    run_intervals_tail!()
);

/// Version 4 keeps how many consumers ran at each interval's end (`--consumers MIN..MAX`
/// changes it); rows of older runs have NULL.
const SCHEMA_V4_ADDS: &str = "
ALTER TABLE run_intervals ADD COLUMN consumers INTEGER;
";

/// Version 5 adds no table or column: it changes when `runs.last_id` is written (once, when
/// the run finishes, not at every commit). A pc-host that writes version 4 or older reads a
/// run without `last_id` as one with no rows, so it would over-count its own rows while a
/// newer one's run is under way; the version keeps it from opening the file.
const SCHEMA_V5_ADDS: &str = "";

/// Version 6 keeps a mark of the bytes before each input's committed position, so a resume
/// finds a file rewritten in place under it (`position::Window`); inputs committed by older
/// versions have NULL until their next commit.
const SCHEMA_V6_ADDS: &str = "
ALTER TABLE inputs ADD COLUMN mark INTEGER;
";

/// Version 7 keeps a run's duplicates (deliveries of records the database already held,
/// dropped: a NATS source's), so that its row balances as the summary does: `produced =
/// stored + duplicates + dead_lettered + not_stored`. Runs of older versions have NULL.
const SCHEMA_V7_ADDS: &str = "
ALTER TABLE runs ADD COLUMN duplicates INTEGER;      -- deliveries already stored, dropped
";

/// The columns each table must have, in order.
const TABLES: [(&str, &[&str]); 6] = [
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
            "stored",
            "dead_lettered",
            "not_stored",
            "retries",
            "latency_p50_ns",
            "latency_p99_ns",
            "latency_p999_ns",
            "latency_max_ns",
            "elapsed_s",
            "duplicates",
        ],
    ),
    ("run_producers", tables::RUN_PRODUCERS),
    ("messages", tables::MESSAGES),
    ("inputs", tables::INPUTS),
    ("run_inputs", tables::RUN_INPUTS),
    ("run_intervals", tables::RUN_INTERVALS),
];

/// The columns of `runs` in versions 1 and 2 (version 3 adds the summary's).
const RUNS_V1_COLUMNS: usize = 9;
/// The columns of `runs` in versions 3 to 6 (version 7 adds `duplicates`).
const RUNS_V3_COLUMNS: usize = 18;
/// The columns of `run_intervals` in version 3 (version 4 adds `consumers`).
const INTERVALS_V3_COLUMNS: usize = 10;
/// The columns of `inputs` in versions 2 to 5 (version 6 adds `mark`).
const INPUTS_V2_COLUMNS: usize = 8;

/// Turns an SQLite error on `path` into a one-line, actionable message.
pub fn db_error(path: &Path, e: rusqlite::Error, busy: Duration) -> anyhow::Error {
    let p = path.display();
    match e.sqlite_error_code() {
        Some(ErrorCode::CannotOpen) => anyhow!("cannot open database {p}: {}", cannot_open(path)),
        Some(ErrorCode::NotADatabase) => {
            anyhow!("{p} is not an SQLite database; pc-host will not touch it: use another --db")
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Busy(format!(
            "database {p} is locked by another process (gave up after waiting {:.1} s); try again \
             when it is done, raise --busy-timeout-ms, or use another --db",
            busy.as_secs_f64()
        ))
        .into(),
        // The file may be writable and its directory not: SQLite then cannot make the `-wal`
        // and `-shm` files a WAL database needs beside it.
        Some(ErrorCode::ReadOnly)
            if crate::paths::writable(path)
                && !crate::paths::writable(crate::paths::dir_of(path)) =>
        {
            anyhow!(
                "database {p}: its directory {} is not writable, and SQLite makes the database's \
                 -wal and -shm files there: {e}",
                crate::paths::dir_of(path).display()
            )
        }
        Some(ErrorCode::ReadOnly) => anyhow!("database {p} is read-only: {e}"),
        Some(ErrorCode::DiskFull) => anyhow!("database {p}: the disk is full"),
        // A full disk met outside SQLite's own writes (growing the `-shm` index, say) comes
        // back as an I/O error.
        Some(ErrorCode::SystemIoFailure) if nearly_full(path) => {
            anyhow!("database {p}: the disk is full ({e})")
        }
        _ => anyhow!("database {p}: {e}"),
    }
}

/// Whether the file system that holds the database `path` has less room left than SQLite's
/// `-shm` index takes (32 KiB) and one more page of the largest size: an I/O error there is a
/// full disk.
fn nearly_full(path: &Path) -> bool {
    const ROOM: u64 = (32 + 64) * 1024;
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    crate::paths::free_bytes(crate::paths::dir_of(&real)).is_ok_and(|free| free < ROOM)
}

/// Why SQLite could not open `path`, as far as the file system tells. Through links, as
/// SQLite opens the target and makes its `-wal` and `-shm` beside it. It only asks the file
/// system (`stat`, `access`): opening and closing a descriptor of the database would drop the
/// POSIX locks this process's connections hold on it (this is also reached mid-run).
fn cannot_open(path: &Path) -> String {
    if let Some(why) = dangling_link(path) {
        return why;
    }
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = crate::paths::dir_of(&real);
    if let Err(e) = std::fs::metadata(dir) {
        return format!("its directory {}: {e}", dir.display());
    }
    match std::fs::metadata(&real) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return format!("{}: {e}", real.display());
        }
        Ok(_) => {
            if let Err(e) = crate::paths::access(&real, libc::R_OK) {
                return format!("it cannot be read: {e}");
            }
        }
        Err(_) => {}
    }
    let linked = ["-wal", "-shm"].into_iter().find_map(|suffix| {
        let side = crate::paths::sqlite_side_file(path, suffix);
        let meta = std::fs::symlink_metadata(&side).ok()?;
        meta.file_type().is_symlink().then_some(side)
    });
    if let Some(side) = linked {
        return format!(
            "{} is a symbolic link, and SQLite opens a database's -wal and -shm only as files",
            side.display()
        );
    }
    if let Err(e) = crate::paths::access(dir, libc::W_OK) {
        return format!(
            "SQLite makes the -wal and -shm files in its directory {}, which cannot be written: \
             {e}",
            dir.display()
        );
    }
    "SQLite could not open it, a file it makes beside it (-wal, -shm), or a temporary file"
        .to_string()
}

/// Why `path` cannot be opened when it is a symbolic link (or a chain of them) whose target's
/// directory is not there (SQLite would make the target itself if only the file were
/// missing); `None` for anything else.
fn dangling_link(path: &Path) -> Option<String> {
    let is_link = std::fs::symlink_metadata(path)
        .ok()?
        .file_type()
        .is_symlink();
    if !is_link || std::fs::metadata(path).is_ok() {
        return None;
    }
    let target = crate::paths::through_links(path)?;
    let dir = crate::paths::dir_of(&target);
    let e = std::fs::metadata(dir).err()?;
    Some(format!(
        "it is a symbolic link to {}, whose directory {}: {e}",
        target.display(),
        dir.display()
    ))
}

/// [`db_error`] for an error that may be SQLite's; any other is already explained.
pub fn explain(path: &Path, e: anyhow::Error, busy: Duration) -> anyhow::Error {
    match e.downcast::<rusqlite::Error>() {
        Ok(e) => db_error(path, e, busy),
        Err(e) => e,
    }
}

/// Opens `path` for writing (creating it if missing) with a busy timeout.
pub fn open(path: &Path, busy: Duration) -> anyhow::Result<Connection> {
    if let Some(e) = not_a_regular_file(path) {
        return Err(e);
    }
    // A file this user may not write would be opened read-only, and SQLite would leave a
    // `-wal` and `-shm` of this user's beside it, which could then lock out the file's owner.
    if path.exists()
        && let Err(e) = crate::paths::access(path, libc::W_OK)
    {
        return Err(anyhow!(
            "database {} is not writable by this user: {e}",
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

/// Opens an existing file for reading only, with a busy timeout: it can look, never write.
///
/// A WAL database's reader needs its `-wal` and `-shm` files, which SQLite makes beside it.
/// Where none was there (no connection has the file open, and the last one folded its log
/// in), the connection is read-write with `query_only` set, so that closing it can remove the
/// two it made ([`ReadConnection`]); otherwise it is read-only, and what is there stays.
/// Where this user may not write the directory and no run left a `-wal` there (no run is going
/// on, and the last one ended with everything in the file), it is opened as immutable instead,
/// reading the file alone. Immutable means no locks: a run that starts while it reads is not
/// seen, and what it then reads is not a snapshot.
pub fn open_read_only(path: &Path, busy: Duration) -> anyhow::Result<ReadConnection> {
    // Even a read-only connection writes the shared-memory index (`-shm`) beside a database in
    // WAL mode, so a foreign one is refused here as for a run.
    if let Some(e) = unfinished_journal(path, Purpose::Read).or_else(|| foreign_side_file(path)) {
        return Err(e);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let wal = crate::paths::sqlite_side_file(path, "-wal");
    let immutable = !crate::paths::writable(crate::paths::dir_of(&real)) && !wal.exists();
    let tidy = no_log_beside(path) && !immutable && crate::paths::writable(&real);
    let opened = if immutable {
        Connection::open_with_flags(immutable_uri(&real), flags | OpenFlags::SQLITE_OPEN_URI)
    } else if tidy {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Connection::open_with_flags(path, flags).and_then(|conn| {
            conn.pragma_update(None, "query_only", true)?;
            // Closing must not fold a log into the file unless it is this look's own, empty
            // one (`ReadConnection`'s drop).
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
            Ok(conn)
        })
    } else {
        Connection::open_with_flags(path, flags)
    };
    let conn = opened.map_err(|e| db_error(path, e, busy))?;
    conn.busy_timeout(busy)
        .map_err(|e| db_error(path, e, busy))?;
    Ok(ReadConnection {
        conn,
        tidy: tidy.then_some(wal),
    })
}

/// A connection of [`open_read_only`]: it dereferences to the [`Connection`].
#[derive(Debug)]
pub struct ReadConnection {
    conn: Connection,
    /// The `-wal` this connection's open made, if closing may remove it (and the `-shm`).
    tidy: Option<PathBuf>,
}

impl std::ops::Deref for ReadConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for ReadConnection {
    fn drop(&mut self) {
        if let Some(wal) = &self.tidy {
            let_close_remove_empty_log(&self.conn, wal);
        }
    }
}

/// Whether neither a `-wal` nor a `-shm` is beside the database at `path`: then those that
/// opening it makes are the opener's own.
pub fn no_log_beside(path: &Path) -> bool {
    ["-wal", "-shm"]
        .iter()
        .all(|x| std::fs::symlink_metadata(crate::paths::sqlite_side_file(path, x)).is_err())
}

/// If the log `wal`, which `conn`'s open made, is still empty, lets closing `conn` remove it
/// and its `-shm`: SQLite does so only when no other connection has the file open (it takes
/// an exclusive lock first), checkpointing first, which for an empty log writes nothing. A
/// log with frames (another program wrote since) stays, as it was.
pub fn let_close_remove_empty_log(conn: &Connection, wal: &Path) {
    if std::fs::metadata(wal).is_ok_and(|m| m.len() == 0) {
        let _ = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false);
    }
}

/// `path` (absolute: canonical) as an SQLite URI that opens it immutable
/// (`file:PATH?immutable=1`): every byte but an unreserved one or `/` percent-encoded, so `?`,
/// `#`, `%`, spaces and bytes that are not UTF-8 name the file they are.
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// The one line refusing a `path` that exists but is no regular file (a directory, a device or
/// a pipe), if it is one. SQLite would write `PATH-journal` or `PATH-wal` beside a device or
/// pipe it cannot use.
fn not_a_regular_file(path: &Path) -> Option<anyhow::Error> {
    if path.is_dir() {
        Some(anyhow!(
            "{} is a directory: give a file path",
            path.display()
        ))
    } else if path.exists() && !path.is_file() {
        Some(anyhow!(
            "{} is not a regular file: give a database file path",
            path.display()
        ))
    } else {
        None
    }
}

/// The one line refusing an existing database beside which a `-wal` or `-shm` is there that
/// SQLite did not write (not a regular file, or not empty and not starting as SQLite starts
/// them: a log with its magic number, a shared-memory index with its version or zeros), if
/// one is: opening the database, even to read it, would discard it (a log whose header does
/// not match) or overwrite it (the index). Its owner decides what becomes of it.
///
/// Only before this process opens the database: it reads each file through a descriptor of
/// its own, and closing any descriptor of a file drops every POSIX lock the process holds on
/// it, SQLite's on the `-shm` included (another process could then rebuild the index under a
/// connection that has it mapped).
pub fn foreign_side_file(path: &Path) -> Option<anyhow::Error> {
    const WAL_MAGIC: [u32; 2] = [0x377f_0682, 0x377f_0683];
    const SHM_VERSION: u32 = 3_007_000;
    if std::fs::metadata(path).is_err() {
        return None;
    }
    let sqlite_wrote = |suffix: &str, first: [u8; 4]| match suffix {
        "-wal" => WAL_MAGIC.contains(&u32::from_be_bytes(first)),
        _ => {
            [0, SHM_VERSION].contains(&u32::from_le_bytes(first))
                || u32::from_be_bytes(first) == SHM_VERSION
        }
    };
    ["-wal", "-shm"].into_iter().find_map(|suffix| {
        let side = crate::paths::sqlite_side_file(path, suffix);
        let foreign = if std::fs::metadata(&side).ok()?.is_file() {
            let mut first = [0u8; 4];
            // A file this user cannot read is left to SQLite's open to report.
            let read = crate::paths::head_of_regular_file(&side, &mut first)?;
            read > 0 && !sqlite_wrote(suffix, first)
        } else {
            true
        };
        foreign.then(|| {
            anyhow!(
                "{} is beside {} but is not SQLite's {suffix} file; pc-host will not open the \
                 database while it is there (SQLite would discard or overwrite it): move it \
                 away, or use another --db",
                side.display(),
                path.display()
            )
        })
    })
}

/// The one line refusing, for a run, a `path` where there is no database but a `-wal`,
/// `-shm` or `-journal` is there beside the file it would be (through links), if one is: a
/// database's log left behind, which SQLite would apply to the new database or remove. Its
/// owner decides what becomes of it.
pub fn leftover_log(path: &Path) -> Option<anyhow::Error> {
    // Through links: a link to nothing names where the database would be made.
    if std::fs::metadata(path).is_ok() {
        return None;
    }
    let left = crate::paths::SIDE_FILES
        .map(|x| crate::paths::sqlite_side_file(path, x))
        .into_iter()
        .find(|side| std::fs::symlink_metadata(side).is_ok())?;
    // Another pc-host makes the database's file before anything beside it: made meanwhile,
    // it is that run's.
    if std::fs::metadata(path).is_ok() {
        return None;
    }
    Some(anyhow!(
        "{} is there but {} is not: a database's log left behind; pc-host will not create a \
         database beside it (SQLite would apply it to the new file, or remove it): remove it \
         if it is not needed, or use another --db",
        left.display(),
        path.display()
    ))
}

/// The one line refusing an existing database with a `-journal` beside it, if it has one: a
/// transaction in rollback-journal mode that did not finish, which opening would roll back
/// into the file (pc-host's databases use a write-ahead log; a new one has a journal only for
/// an instant, while a run switches it to WAL). A run waits it out as a lock
/// ([`WaitedOut`]), in case it is that instant of another run's.
pub fn unfinished_journal(path: &Path, purpose: Purpose) -> Option<anyhow::Error> {
    // Where SQLite keeps it; named as typed where it is there.
    let typed = crate::paths::sibling(path, "-journal");
    let real = crate::paths::sqlite_side_file(path, "-journal");
    let journal = [typed, real]
        .into_iter()
        .find(|j| std::fs::symlink_metadata(j).is_ok())?;
    if let Some(e) = database_named_like_a_journal(path, &journal) {
        return Some(e);
    }
    let then = match purpose {
        Purpose::Write => {
            "pc-host will not open it (that would roll the journal back into the file): let \
             the program that made it finish it (`sqlite3` opening the database rolls it \
             back), or use another --db"
        }
        Purpose::Read => {
            "pc-host reads only and cannot roll it back: let the program that made it finish \
             it first (`sqlite3` opening the database rolls it back), or, if a pc-host run is \
             creating the database this instant, look again"
        }
    };
    let line = format!(
        "{} is there: a transaction on {} in rollback-journal mode did not finish (another \
         program's, as pc-host's databases use a write-ahead log, or a pc-host run's stopped \
         as it set a new database up); {then}",
        journal.display(),
        path.display()
    );
    Some(match purpose {
        Purpose::Write => anyhow::Error::new(WaitedOut(line)),
        Purpose::Read => anyhow!(line),
    })
}

/// The one line refusing a database beside which its `-journal` name holds a database, not a
/// journal (one named so on purpose, or by an earlier pc-host), if it does: SQLite opening
/// `path` would take it for a journal and delete it, so the usual advice (let SQLite roll the
/// journal back) would destroy it.
fn database_named_like_a_journal(path: &Path, journal: &Path) -> Option<anyhow::Error> {
    crate::paths::holds_sqlite_database(journal).then_some(())?;
    Some(anyhow!(
        "{} is a SQLite database, not the journal of {} beside it: opening {} with SQLite would \
         take it for a journal and delete it; rename one of the two first",
        journal.display(),
        path.display(),
        path.display()
    ))
}

/// The one line refusing a `path` that is an existing file of 0 bytes, if it is one. SQLite
/// would take it for a new database, but it is not one pc-host made: pc-host creates a new
/// database's file itself and writes its first page as it sets it up (switching it to WAL).
/// It is refused before SQLite opens it, so nothing (not even a `-wal` or `-journal`) is made
/// beside it. A run waits for an empty file as for a busy database first ([`WaitedOut`]): it
/// may be another pc-host's, created an instant ago and about to get its first page. A file
/// whose size reads 0 but which reading fills (under /proc or /sys) is refused at once, as
/// not a database, unless its size no longer reads 0 after the read (written meanwhile).
pub fn empty_file(path: &Path, purpose: Purpose) -> Option<anyhow::Error> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 0 {
        return None;
    }
    if holds_bytes(path) {
        // Written between the look at its size and the read (another pc-host setting the
        // database up): its size says so now. A file the system makes up still reads 0.
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return None;
        }
        return Some(anyhow!(
            "{} is not a database: its size reads 0 bytes, yet reading it gives some (a file the \
             system makes up as it is read, as under /proc or /sys); give {} --db",
            path.display(),
            match purpose {
                Purpose::Write => "another",
                Purpose::Read => "the",
            }
        ));
    }
    let then = match purpose {
        Purpose::Write => {
            "pc-host will not write to it: remove it to let pc-host create the database there, \
             or use another --db"
        }
        Purpose::Read => {
            "give the --db that a pc-host run wrote (or, if a run is creating it this instant, \
             look again)"
        }
    };
    Some(anyhow::Error::new(WaitedOut(format!(
        "{} is an empty file (0 bytes): another program's, or one a pc-host run was killed \
         while creating; {then}",
        path.display()
    ))))
}

/// Whether reading `path` gives at least one byte (a file whose size reads 0 may still: the
/// kernel's files under /proc and /sys). False where it cannot be read.
fn holds_bytes(path: &Path) -> bool {
    use std::io::Read;
    let mut byte = [0u8; 1];
    std::fs::File::open(path).is_ok_and(|mut f| f.read(&mut byte).is_ok_and(|n| n > 0))
}

/// The one line refusing, for a run, an existing database (not created by this run) that has
/// no tables and no pc-host mark: SQLite would let pc-host create its tables there, but it is
/// another program's, or one a run stopped setting up before it created its tables (pc-host
/// switches a new file to WAL first, then creates the tables and the mark in one
/// transaction). Waited out as [`empty_file`]'s is: another pc-host may be setting it up.
pub fn blank_database(path: &Path) -> anyhow::Error {
    anyhow::Error::new(WaitedOut(format!(
        "{} is a database with no tables and no pc-host mark: another program made it, or a \
         pc-host run stopped before creating its tables; pc-host will not write to it: remove \
         it to let pc-host create the database there, or use another --db",
        path.display()
    )))
}

/// The error of [`empty_file`], [`blank_database`] and, for a run, [`unfinished_journal`]:
/// what another run setting up a new database passes through, which a run therefore waits out
/// as it waits for a lock, and refuses if it lasts.
#[derive(Debug)]
pub struct WaitedOut(String);

impl std::fmt::Display for WaitedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WaitedOut {}

/// Checks that `path` names an existing regular file, for `verify` and `plot`: one line
/// saying what is there instead (nothing, a directory, a device or pipe, an empty file)
/// otherwise.
pub fn existing_file(path: &Path) -> anyhow::Result<()> {
    if let Some(e) = not_a_regular_file(path).or_else(|| empty_file(path, Purpose::Read)) {
        return Err(e);
    }
    if !path.is_file() {
        return Err(anyhow!("no database file at {}", path.display()));
    }
    Ok(())
}

/// Opens an existing database read-only (for `verify`).
pub fn open_existing(path: &Path, busy: Duration) -> anyhow::Result<ReadConnection> {
    existing_file(path)?;
    let conn = open_read_only(path, busy)?;
    match check(&conn, path, busy, Purpose::Read)? {
        // Versions 2 to 6 lack only what verify does without (`runs.duplicates` it reads
        // where it is there).
        Found::Current
        | Found::Version2
        | Found::Version3
        | Found::Version4
        | Found::Version5
        | Found::Version6 => Ok(conn),
        Found::Empty => Err(no_pc_host_data(path)),
        Found::Version1 => Err(anyhow!(
            "{} has pc-host schema version 1: run pc-host on it once to upgrade it, then verify",
            path.display()
        )),
    }
}

/// The error of a reader (`verify`, `plot`) that found an empty database at `path`.
pub fn no_pc_host_data(path: &Path) -> anyhow::Error {
    anyhow!(
        "{} holds no pc-host data (it is an empty database; if a pc-host run is setting it up \
         this instant, look again)",
        path.display()
    )
}

/// What a database file holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// Nothing: a new database.
    Empty,
    /// A pc-host database of version 1, which [`create_or_upgrade`] brings to this version.
    Version1,
    /// Version 2, likewise.
    Version2,
    /// Version 3, likewise.
    Version3,
    /// Version 4, likewise.
    Version4,
    /// Version 5, likewise.
    Version5,
    /// Version 6, likewise.
    Version6,
    /// A pc-host database of this version.
    Current,
}

/// What the caller means to do with a database, for the error that refuses a foreign one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A run, which would write to it.
    Write,
    /// `verify` or `plot`, which only read.
    Read,
}

/// Recognises what the file holds; anything but a pc-host database (or an empty one) is an
/// error, worded for `purpose`. Reads only, from one snapshot: outside a transaction it opens
/// a read transaction for its statements, which could otherwise straddle another process
/// creating the schema (the marks read before that commit, the tables after it) and refuse
/// a pc-host database as foreign.
pub fn check(
    conn: &Connection,
    path: &Path,
    busy: Duration,
    purpose: Purpose,
) -> anyhow::Result<Found> {
    if !conn.is_autocommit() {
        return check_snapshot(conn, path, busy, purpose);
    }
    conn.execute_batch("BEGIN")
        .map_err(|e| db_error(path, e, busy))?;
    let found = check_snapshot(conn, path, busy, purpose);
    // Ends the read transaction; it wrote nothing, so this cannot lose anything.
    let ended = conn.execute_batch("ROLLBACK");
    let found = found?;
    ended.map_err(|e| db_error(path, e, busy))?;
    Ok(found)
}

/// [`check`]'s reads, in the caller's transaction.
fn check_snapshot(
    conn: &Connection,
    path: &Path,
    busy: Duration,
    purpose: Purpose,
) -> anyhow::Result<Found> {
    let err = |e| db_error(path, e, busy);
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let tables = table_names(conn).map_err(err)?;
    let p = path.display();
    if app_id == 0 && version == 0 && tables.is_empty() {
        return Ok(Found::Empty);
    }
    if app_id != APPLICATION_ID {
        let what = if tables.is_empty() {
            format!(
                "it has no tables but is marked: application_id {app_id}, user_version {version}"
            )
        } else {
            format!("it has tables: {}", tables.join(", "))
        };
        let then = match purpose {
            Purpose::Write => "pc-host will not write to it: use another --db",
            Purpose::Read => "give the --db that a pc-host run wrote",
        };
        return Err(anyhow!("{p} is not a pc-host database ({what}); {then}"));
    }
    let (found, expect) = match version {
        1 => (Found::Version1, &TABLES[..3]),
        2 => (Found::Version2, &TABLES[..5]),
        3 => (Found::Version3, &TABLES[..]),
        4 => (Found::Version4, &TABLES[..]),
        5 => (Found::Version5, &TABLES[..]),
        6 => (Found::Version6, &TABLES[..]),
        SCHEMA_VERSION => (Found::Current, &TABLES[..]),
        _ => {
            return Err(anyhow!(
                "{p} has pc-host schema version {version}, this pc-host reads versions 1 to \
                 {SCHEMA_VERSION}: use a matching pc-host or another --db"
            ));
        }
    };
    for (table, want) in expect {
        let have = columns(conn, table).map_err(err)?;
        let want = match (*table, &found) {
            ("runs", Found::Version1 | Found::Version2) => &want[..RUNS_V1_COLUMNS],
            ("runs", f) if *f != Found::Current => &want[..RUNS_V3_COLUMNS],
            ("run_intervals", Found::Version3) => &want[..INTERVALS_V3_COLUMNS],
            ("inputs", f) if !matches!(f, Found::Current | Found::Version6) => {
                &want[..INPUTS_V2_COLUMNS]
            }
            _ => want,
        };
        if have != *want {
            return Err(anyhow!(
                "{p}: table `{table}` has columns ({}) but pc-host expects ({}); the database \
                 was altered: use another --db",
                have.join(", "),
                want.join(", ")
            ));
        }
    }
    Ok(found)
}

fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') \
         AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    stmt.query_map([], |r| r.get::<_, String>(1))?.collect()
}

/// Inside a write transaction: creates the schema in an empty database or upgrades a version
/// 1 to 6 one; does nothing to a current one.
pub fn create_or_upgrade(conn: &Connection, found: &Found) -> rusqlite::Result<()> {
    // The versions' additions, in order; a database of version N needs those after N.
    let from = match found {
        Found::Current => return Ok(()),
        Found::Empty => 0,
        Found::Version1 => 1,
        Found::Version2 => 2,
        Found::Version3 => 3,
        Found::Version4 => 4,
        Found::Version5 => 5,
        Found::Version6 => 6,
    };
    if from == 0 {
        conn.execute_batch(SCHEMA_CURRENT)?;
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    } else {
        let adds = [
            SCHEMA_V2_ADDS,
            SCHEMA_V3_ADDS,
            SCHEMA_V4_ADDS,
            SCHEMA_V5_ADDS,
            SCHEMA_V6_ADDS,
            SCHEMA_V7_ADDS,
        ];
        for sql in adds.iter().skip(from - 1) {
            conn.execute_batch(sql)?;
        }
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_runs_up_to_50k_get_4_kib_pages_and_the_rest_16_kib() {
        for (rps, bytes) in [
            (1, 4096),
            (500, 4096),
            (50_000, 4096),
            (50_001, 16_384),
            (0, 16_384),
            (u64::MAX, 16_384),
        ] {
            assert_eq!(page_size_for_rate(rps), bytes, "--rps {rps}");
        }
    }

    /// A database as an older pc-host left it: `version` 1 to 6, with one run in it (and from
    /// version 2 an input).
    fn old_database(version: i64) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        for sql in [
            SCHEMA_V2_ADDS,
            SCHEMA_V3_ADDS,
            SCHEMA_V4_ADDS,
            SCHEMA_V5_ADDS,
            SCHEMA_V6_ADDS,
        ]
        .iter()
        .take(version as usize - 1)
        {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.pragma_update(None, "user_version", version).unwrap();
        conn.execute(
            "INSERT INTO runs (started_at, producers, first_id, config) VALUES (1, 2, 1, '{}')",
            [],
        )
        .unwrap();
        if version >= 2 {
            conn.execute(
                "INSERT INTO inputs (path, offset, line) VALUES ('/a', 9, 2)",
                [],
            )
            .unwrap();
        }
        if version >= 6 {
            conn.execute("UPDATE inputs SET mark = 7", []).unwrap();
        }
        conn
    }

    #[test]
    fn a_new_databases_schema_declares_each_column_on_a_line_of_its_own() {
        let conn = Connection::open_in_memory().unwrap();
        create_or_upgrade(&conn, &Found::Empty).unwrap();
        let found = check(&conn, Path::new("new.db"), Duration::ZERO, Purpose::Write);
        assert_eq!(found.unwrap(), Found::Current);
        for (table, columns) in TABLES {
            let sql: String = conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            for column in columns {
                let lines: Vec<&str> = sql
                    .lines()
                    .filter(|l| l.split_whitespace().next() == Some(column))
                    .collect();
                assert_eq!(lines.len(), 1, "{table}.{column}, one line:\n{sql}");
                // Before its comment, one declaration and at most its comma.
                let code = lines[0].split("--").next().unwrap().trim_end();
                assert!(
                    !code.trim_end_matches(',').contains(','),
                    "{table}.{column}, its line: {}",
                    lines[0]
                );
            }
        }
    }

    /// Each table's columns (name, type, not null, default, primary key), indexes (unique,
    /// their columns) and foreign keys, and whether it has row ids.
    fn shape(conn: &Connection) -> Vec<String> {
        let rows = |sql: &str| -> Vec<String> {
            let mut st = conn.prepare(sql).unwrap();
            let n = st.column_count();
            st.query_map([], |r| {
                (0..n)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map(|v| v.join(" "))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
        };
        let mut all = Vec::new();
        for (table, _) in TABLES {
            all.extend(rows(&format!(
                "SELECT * FROM pragma_table_xinfo('{table}')"
            )));
            all.extend(rows(&format!(
                "SELECT * FROM pragma_foreign_key_list('{table}')"
            )));
            all.extend(rows(&format!("SELECT * FROM pragma_table_list('{table}')")));
            for index in rows(&format!("SELECT name FROM pragma_index_list('{table}')")) {
                let name = index.trim_start_matches("Text(\"").trim_end_matches("\")");
                all.extend(rows(&format!(
                    "SELECT * FROM pragma_index_list('{table}') WHERE name = '{name}'"
                )));
                all.extend(rows(&format!("SELECT * FROM pragma_index_xinfo('{name}')")));
            }
        }
        all
    }

    #[test]
    fn a_new_database_has_the_tables_of_an_upgraded_one() {
        let new = Connection::open_in_memory().unwrap();
        create_or_upgrade(&new, &Found::Empty).unwrap();
        let upgraded = Connection::open_in_memory().unwrap();
        upgraded.execute_batch(SCHEMA_V1).unwrap();
        create_or_upgrade(&upgraded, &Found::Version1).unwrap();
        let (new, upgraded) = (shape(&new), shape(&upgraded));
        assert!(new.len() > 60, "{new:#?}");
        assert_eq!(new, upgraded);
    }

    #[test]
    fn versions_1_to_6_are_upgraded_in_place_keeping_their_runs() {
        let path = Path::new("old.db");
        let busy = Duration::ZERO;
        for (version, found) in [
            (1, Found::Version1),
            (2, Found::Version2),
            (3, Found::Version3),
            (4, Found::Version4),
            (5, Found::Version5),
            (6, Found::Version6),
        ] {
            let conn = old_database(version);
            assert_eq!(check(&conn, path, busy, Purpose::Write).unwrap(), found);
            create_or_upgrade(&conn, &found).unwrap();
            assert_eq!(
                check(&conn, path, busy, Purpose::Write).unwrap(),
                Found::Current
            );
            let runs: i64 = conn
                .query_row("SELECT COUNT(*) FROM runs WHERE producers = 2", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(runs, 1, "version {version}: the old run is kept");
            if version >= 2 {
                let input: (i64, Option<i64>) = conn
                    .query_row("SELECT offset, mark FROM inputs", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .unwrap();
                let want_mark = if version >= 6 { Some(7) } else { None };
                assert_eq!(
                    input,
                    (9, want_mark),
                    "version {version}: the input kept, its mark if it had one"
                );
            }
            let duplicates: Option<i64> = conn
                .query_row("SELECT duplicates FROM runs", [], |r| r.get(0))
                .unwrap();
            assert_eq!(
                duplicates, None,
                "version {version}: not known for an old run"
            );
        }
    }
}
