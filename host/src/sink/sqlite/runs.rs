//! Run and input bookkeeping: the `runs`, `run_producers`, `inputs` and `run_inputs` rows that
//! say what each run did and where each input resumes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension as _, params};

use super::create::{Created, create_whole};
use super::schema::{self, Found, PageSizeChoice, Purpose, db_error};
use crate::config::MAX_THREADS;
use crate::position::{FileKey, Resume};
use crate::sink::RunEnd;
use crate::sink::START_WAIT_SLICE;
use crate::sink::read_back::{FromConfig, RunInfo};
use crate::telemetry::interval::Interval;

/// A run recorded in the database.
#[derive(Debug)]
pub struct RunRow {
    pub run_id: i64,
    pub first_id: i64,
}

/// The run [`prepare_run`] records, and what it asks of the database.
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a> {
    /// Generator threads (0 for an ingest run).
    pub producers: usize,
    /// The effective configuration, as JSON.
    pub config_json: &'a str,
    /// Unix ns.
    pub started_at: i64,
    /// The page size a new database gets, or an existing one must have.
    pub pages: PageSizeChoice<'a>,
    /// The records come from a broker: the delivery tables are made (or checked) with the
    /// run, in its transaction ([`super::delivered::create_tables`]).
    pub delivered: bool,
}

/// Prepares `path` for a run: [`try_prepare_run`], tried again while the database is busy or
/// in a state another run setting it up passes through ([`schema::WaitedOut`]), until `busy`
/// has passed. SQLite answers some lock conflicts at once, without waiting, for
/// example two processes starting on the same new file: each sees the other reading and
/// neither can switch it to WAL.
///
/// # Errors
/// As [`try_prepare_run`]; [`crate::interrupt::Interrupted`] if a signal came while it
/// waited (seen within a slice and a nap, 0.1 s at most); a busy database once `busy` has
/// passed; a file that was there before this run and is still empty, or still has a
/// `-journal` beside it, after `busy` (see [`schema::empty_file`],
/// [`schema::unfinished_journal`]); a log left beside a path with no database
/// ([`schema::leftover_log`]), or a `-wal` or `-shm` SQLite did not write beside one
/// ([`schema::foreign_side_file`], looked at here, before the process opens the database).
pub fn prepare_run(
    path: &Path,
    busy: Duration,
    run: &NewRun<'_>,
) -> anyhow::Result<(Connection, RunRow)> {
    if let Some(e) = schema::leftover_log(path).or_else(|| schema::foreign_side_file(path)) {
        return Err(e);
    }
    // A file this run creates is its own: made whole where the directory allows
    // ([`create_whole`]), else created empty and set up in place. One that is there and empty
    // (0 bytes, or a database with no tables and no mark) may be another pc-host's, created
    // an instant ago in place, or a file pc-host did not make: waited for as a busy database,
    // and refused if it is empty still when the wait is over.
    let mut made = match create_whole(path, run.pages) {
        Created::Made(target) => Some(target),
        Created::There => None,
        Created::NotHere => create_own(path),
    };
    let deadline = Instant::now() + busy;
    let mut nap = Duration::from_millis(1);
    let prepared = loop {
        // A file another run made and then removed (it could not set it up): this run's turn.
        if made.is_none() && std::fs::metadata(path).is_err() {
            made = create_own(path);
        }
        let own = made.is_some();
        let not_yet = (!own).then(|| {
            schema::empty_file(path, Purpose::Write)
                .or_else(|| schema::unfinished_journal(path, Purpose::Write))
        });
        // SQLite waits for a lock in slices of the time left: between them this loop looks
        // for a signal.
        let slice = deadline
            .saturating_duration_since(Instant::now())
            .min(START_WAIT_SLICE);
        let attempt = match not_yet {
            Some(Some(wait)) => Err(wait),
            _ => try_prepare_run(path, own, (busy, slice), run),
        };
        match attempt {
            Err(e) if e.is::<schema::Busy>() || e.is::<schema::WaitedOut>() => {
                // A signal while waiting, before the run is recorded, ends the wait.
                let lock = if e.is::<schema::Busy>() {
                    ", locked by another process"
                } else {
                    ""
                };
                if let Err(stop) =
                    crate::interrupt::check(|| format!("database {}{lock}", path.display()))
                {
                    break Err(stop);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break Err(e);
                }
                std::thread::sleep(nap.min(left));
                nap = (nap * 2).min(START_WAIT_SLICE);
            }
            done => break done,
        }
    };
    if let Some(made) = made
        && prepared.is_err()
    {
        remove_if_empty(&made);
    }
    prepared
}

/// Removes the database file `made` (where the path leads, through links), which this run
/// created and could not set up (a full disk, say), if it is still empty, with what SQLite
/// made beside it: the next run would find an empty file there and refuse it as not
/// pc-host's. Beside files first, the file last: while the empty file is there another run
/// waits for it without opening it, so nothing beside it is another run's yet. A file with a
/// page may be another run's database by now (or have a page partly written on a full disk,
/// which the next run refuses): it stays.
fn remove_if_empty(made: &Path) {
    if std::fs::metadata(made).is_ok_and(|m| m.len() == 0) {
        super::create::remove_with_side_files(made);
    }
}

/// Creates the file `path` names if nothing is there, following symbolic links as SQLite will
/// (one that points where nothing is yet names its target); the file created, if this call
/// created it.
fn create_own(path: &Path) -> Option<PathBuf> {
    let target = crate::paths::through_links(path)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .ok()?;
    Some(target)
}

/// Prepares `path` for a run: checks what is in it, switches it to WAL, creates (or upgrades)
/// the schema, and records the run. Returns the connection (to become the writer) and the
/// run. A new file gets the page size `pages` asks for; an existing one must have it, if
/// given. Nothing is written to a file that is not (or cannot become) a pc-host database: a
/// database with no tables and no mark becomes one only if this run created the file (`own`);
/// any other is refused ([`schema::blank_database`]), as another program's or another run's.
/// It waits for another process's lock up to `slice`; `busy` is the whole wait (`prepare_run`
/// tries again), which its errors name and the returned connection keeps for the run.
pub fn try_prepare_run(
    path: &Path,
    own: bool,
    (busy, slice): (Duration, Duration),
    run: &NewRun<'_>,
) -> anyhow::Result<(Connection, RunRow)> {
    // A `-wal` and `-shm` this look creates (none was there before it opened the file) are its
    // own: if the file is refused, they go.
    let made_log = schema::no_log_beside(path);
    let conn = schema::open(path, busy)?;
    match prepare_on(&conn, path, own, (busy, slice), run) {
        Ok(run) => Ok((conn, run)),
        Err(e) => {
            if made_log {
                let wal = crate::paths::sqlite_side_file(path, "-wal");
                schema::let_close_remove_empty_log(&conn, &wal);
            }
            Err(e)
        }
    }
}

/// [`try_prepare_run`]'s work on the connection it opened.
fn prepare_on(
    conn: &Connection,
    path: &Path,
    own: bool,
    (busy, slice): (Duration, Duration),
    run: &NewRun<'_>,
) -> anyhow::Result<RunRow> {
    let pages = run.pages;
    let err = |e| db_error(path, e, busy);
    // Waits for a lock up to `slice` here; `prepare_run` tries again until `busy` has passed.
    conn.busy_timeout(slice).map_err(err)?;
    // Closing this connection must not checkpoint a WAL it finds into the file: on a foreign
    // database that is a write to a file pc-host did not create. (Its own files are
    // checkpointed explicitly, by the checkpointer and at the end of the run.)
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(err)?;
    let found = schema::check(conn, path, busy, Purpose::Write)?;
    if found == Found::Empty && !own {
        return Err(schema::blank_database(path));
    }
    if found == Found::Empty {
        // Only a file without pages yet takes a page size; on any other this does nothing,
        // and the check below says so.
        conn.pragma_update(None, "page_size", pages.for_new_database())
            .map_err(err)?;
    }
    if let PageSizeChoice::Given(wanted) = pages {
        let has: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(err)?;
        if has != i64::from(wanted.bytes) {
            // A pc-host database (or an empty one) may checkpoint on close: that removes the
            // -wal and -shm files this look created, and writes nothing else.
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)
                .map_err(err)?;
            return Err(anyhow!(
                "{}: database {} has {has}-byte pages; a page size is set when a database is \
                 created (unset it to use this one)",
                wanted.from,
                path.display()
            ));
        }
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
    transaction(conn, || {
        // Check again inside the write lock: another pc-host may have created it meanwhile.
        let found = schema::check(conn, path, busy, Purpose::Write)?;
        if found == Found::Empty && !own {
            return Err(schema::blank_database(path));
        }
        schema::create_or_upgrade(conn, &found).map_err(err)?;
        if run.delivered {
            super::delivered::create_tables(conn).map_err(|e| match e.downcast() {
                Ok(sqlite) => err(sqlite),
                Err(refused) => anyhow!("database {}: {refused}", path.display()),
            })?;
        }
        let first_id: i64 = conn
            .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM messages", [], |r| {
                r.get(0)
            })
            .map_err(err)?;
        conn.execute(
            "INSERT INTO runs (started_at, producers, first_id, config) VALUES (?1, ?2, ?3, ?4)",
            params![
                run.started_at,
                run.producers as i64,
                first_id,
                run.config_json
            ],
        )
        .map_err(err)?;
        Ok(RunRow {
            run_id: conn.last_insert_rowid(),
            first_id,
        })
    })
    .map_err(|e| schema::explain(path, e, busy))
    .and_then(|run| {
        // A pc-host database: closing may checkpoint again (and remove the -wal and -shm).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)
            .map_err(err)?;
        // The writer's own waits (a commit behind another process's lock) take `busy` whole.
        conn.busy_timeout(busy).map_err(err)?;
        Ok(run)
    })
}

/// Runs `body` in a `BEGIN IMMEDIATE` transaction: committed if it returns `Ok`, rolled back
/// otherwise, and after a failed `COMMIT` (one that left the transaction open, as a busy one
/// does, would hold the write lock). `BEGIN`'s and `COMMIT`'s errors come back as SQLite's
/// own, for the caller to classify and explain ([`schema::explain`]).
pub fn transaction<T, E: From<rusqlite::Error>>(
    conn: &Connection,
    body: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let done = body().and_then(|v| {
        conn.execute_batch("COMMIT")?;
        Ok(v)
    });
    if done.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    done
}

/// The `inputs` row of the file `?1` (path), `?2` (dev), `?3` (ino), `?4` (birth time): at the
/// same path (with the same birth time, or one known on one side only: a run where `statx`
/// gives none, say), or, where the birth time is known, renamed since.
pub const SAME_FILE: &str = "WHERE dev = ?2 AND ino = ?3 \
     AND ((born IS ?4 OR born IS NULL OR ?4 IS NULL) AND path = ?1 \
          OR born IS NOT NULL AND born = ?4) \
     ORDER BY path = ?1 DESC, input_id DESC LIMIT 1";

/// Where an input resumes, registering it (and its use by `run_id`) if it is new. `None` is a
/// stdin input: always new.
pub fn register_input(
    conn: &Connection,
    run_id: i64,
    file: Option<&FileKey>,
) -> rusqlite::Result<Resume> {
    let found = match file {
        Some(f) => conn
            .query_row(
                &format!("SELECT input_id, offset, line, tail, path, mark FROM inputs {SAME_FILE}"),
                params![path_text(&f.path), f.dev as i64, f.ino as i64, f.born],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                    ))
                },
            )
            .optional()?,
        None => None,
    };
    if let (Some(f), Some((id, _, line, tail, was, _))) = (file, &found)
        && *was != path_text(&f.path)
    {
        conn.execute(
            "UPDATE inputs SET path = ?1 WHERE input_id = ?2",
            params![path_text(&f.path), id],
        )?;
        crate::position::renamed(&f.path, was, *line, *tail);
    }
    if let (Some(f @ FileKey { born: Some(_), .. }), Some((id, ..))) = (file, &found) {
        // Matched by path with no birth time recorded: record the one known now, so that a
        // file created later on the reused inode is a new input again.
        conn.execute(
            "UPDATE inputs SET born = ?1 WHERE input_id = ?2 AND born IS NULL",
            params![f.born, id],
        )?;
    }
    let found = found.map(|(id, offset, line, tail, _, mark)| (id, offset, line, tail, mark));
    let (id, offset, line, tail, mark) = match found {
        Some(row) => {
            if let Some(f) = file {
                let earlier = displaced_inputs(conn, run_id, f, Some(row.0))?;
                crate::position::displaced(f, &earlier, true, &mut |d, i, b| known(conn, d, i, b));
            }
            row
        }
        None => {
            let (path, dev, ino, born) = match file {
                Some(f) => (
                    Some(path_text(&f.path)),
                    Some(f.dev as i64),
                    Some(f.ino as i64),
                    f.born,
                ),
                None => (None, None, None, None),
            };
            if let Some(f) = file {
                let earlier = displaced_inputs(conn, run_id, f, None)?;
                crate::position::displaced(f, &earlier, false, &mut |d, i, b| known(conn, d, i, b));
            }
            conn.execute(
                "INSERT INTO inputs (path, dev, ino, born) VALUES (?1, ?2, ?3, ?4)",
                params![path, dev, ino, born],
            )?;
            (conn.last_insert_rowid(), 0, 0, 0, None)
        }
    };
    conn.execute(
        "INSERT OR IGNORE INTO run_inputs (run_id, input_id) VALUES (?1, ?2)",
        params![run_id, id],
    )?;
    Ok(Resume {
        input: u32::try_from(id).unwrap_or(u32::MAX),
        offset: offset.max(0) as u64,
        line: line.max(0) as u64,
        tail: tail.max(0) as u64,
        mark: mark.and_then(|m| u32::try_from(m).ok()),
        restarted: false,
    })
}

/// The inputs registered at `file`'s path before it (`known`: the input `file` is, or `None`
/// before a new one is registered), newest first: other files (`position::displaced`), none if
/// run `run_id` read the newest (a rotation during the run, which the run reads to its end
/// itself), and none this run read. A known input is checked too: a run that moved on to a new
/// file at a rotation and was stopped before it committed the old file's last records left them
/// unread, and only a later run can say so.
fn displaced_inputs(
    conn: &Connection,
    run_id: i64,
    file: &FileKey,
    known: Option<i64>,
) -> rusqlite::Result<Vec<crate::position::Displaced>> {
    let mut statement = conn.prepare(
        "SELECT offset, line, dev, ino, born, EXISTS (SELECT 1 FROM run_inputs r \
         WHERE r.run_id = ?2 AND r.input_id = inputs.input_id), tail \
         FROM inputs WHERE path = ?1 AND (?3 IS NULL OR input_id < ?3) \
         ORDER BY input_id DESC",
    )?;
    let rows = statement.query_map(params![path_text(&file.path), run_id, known], |r| {
        let was = crate::position::Displaced::from_columns(
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
        )
        .with_tail(r.get(6)?);
        Ok((was, r.get::<_, bool>(5)?))
    })?;
    let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(crate::position::not_read_by(rows))
}

/// Whether `inputs` holds the file of device `dev`, inode `ino` and birth time `born` (under
/// any path); a failed look is `false` (`position::Known`).
fn known(conn: &Connection, dev: u64, ino: u64, born: Option<i64>) -> bool {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM inputs WHERE dev = ?1 AND ino = ?2 AND born IS ?3)",
        params![dev as i64, ino as i64, born],
        |r| r.get::<_, bool>(0),
    )
    .unwrap_or(false)
}

/// A path as stored in `inputs.path` (lossy for paths that are not UTF-8).
pub fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Records the end of a run: its totals and summary, and whether it drained completely.
pub fn finish_run(conn: &Connection, run_id: i64, end: &RunEnd<'_>) -> rusqlite::Result<()> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let lat = |i: usize| end.latency.map(|l| n(l[i]));
    transaction(conn, || {
        conn.execute(
            "UPDATE runs SET finished_at = ?2, completed = ?3, produced = ?4, stored = ?5, \
             dead_lettered = ?6, not_stored = ?7, retries = ?8, latency_p50_ns = ?9, \
             latency_p99_ns = ?10, latency_p999_ns = ?11, latency_max_ns = ?12, elapsed_s = ?13, \
             duplicates = ?14 WHERE run_id = ?1",
            params![
                run_id,
                end.finished_at,
                i64::from(end.completed),
                n(end.produced),
                n(end.stored),
                n(end.dead_lettered),
                n(end.not_stored),
                n(end.retries),
                lat(0),
                lat(1),
                lat(2),
                lat(3),
                end.elapsed_s,
                n(end.duplicates)
            ],
        )?;
        let mut stmt = conn.prepare(
            "INSERT OR REPLACE INTO run_producers (run_id, producer, produced) VALUES (?1, ?2, ?3)",
        )?;
        for (producer, &count) in end.per_producer.iter().enumerate() {
            stmt.execute(params![run_id, producer as i64, n(count)])?;
        }
        Ok(())
    })
}

/// Inside the caller's transaction: one `run_intervals` row per interval.
pub fn record_intervals(conn: &Connection, run_id: i64, rows: &[Interval]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR REPLACE INTO run_intervals (run_id, t_s, produced, stored, rejected, \
         queue_depth, latency_p50_ns, latency_p99_ns, latency_max_ns, commit_p99_ns, \
         consumers) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for r in rows {
        stmt.execute(params![
            run_id,
            r.t_s,
            n(r.produced),
            n(r.stored),
            n(r.rejected),
            n(r.queue_depth),
            r.latency_p50.map(n),
            r.latency_p99.map(n),
            r.latency_max.map(n),
            r.commit_p99.map(n),
            n(r.consumers)
        ])?;
    }
    Ok(())
}

/// How many messages of `run` the database holds, counted back with SQL, in one read
/// transaction. Its rows have ids from `first_id` to `last_id` (the last it inserted). When no
/// other run's rows can lie in this range, counting the range is exact and reads no column;
/// otherwise (another run wrote at the same time) each row's `run_id` is checked.
///
/// Another run's extent is known once it has finished: `runs.last_id` is written then, not at
/// every commit, because at low rates a commit holds a row or two and that update would add a
/// whole page to each commit's WAL write, doubling it. So a run that has not finished (still
/// running, or killed) counts as overlapping everything after its `first_id`: exact, at the
/// cost of reading `run_id` (about 3x slower). Runs written by older versions kept `last_id`
/// at every commit; theirs is used as it is.
pub fn count_stored(
    conn: &Connection,
    run: &RunRow,
    last_id: Option<i64>,
) -> rusqlite::Result<u64> {
    let Some(last_id) = last_id else {
        return Ok(0);
    };
    conn.execute_batch("BEGIN")?;
    let counted = (|| {
        let shared: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM runs WHERE run_id != ?1 AND first_id <= ?3 \
             AND (last_id >= ?2 OR (last_id IS NULL AND finished_at IS NULL)))",
            params![run.run_id, run.first_id, last_id],
            |r| r.get(0),
        )?;
        let sql = if shared {
            "SELECT COUNT(*) FROM messages WHERE id BETWEEN ?2 AND ?3 AND run_id = ?1"
        } else {
            "SELECT COUNT(*) FROM messages WHERE id BETWEEN ?2 AND ?3"
        };
        conn.query_row(sql, params![run.run_id, run.first_id, last_id], |r| {
            r.get::<_, i64>(0)
        })
    })();
    let _ = conn.execute_batch("COMMIT");
    counted.map(|n| n.max(0) as u64)
}

/// Reads the `runs`, `run_producers` and `run_inputs` tables (one run, or all).
pub fn runs(conn: &Connection, only: Option<i64>) -> rusqlite::Result<Vec<RunInfo>> {
    let mut stmt = conn.prepare(
        "SELECT run_id, completed, finished_at IS NOT NULL, producers, config FROM runs \
         WHERE ?1 IS NULL OR run_id = ?1 ORDER BY run_id",
    )?;
    let mut runs: Vec<RunInfo> = stmt
        .query_map([only], |r| {
            let from = FromConfig::of(r.get::<_, Option<String>>(4)?.as_deref());
            Ok(RunInfo {
                run_id: r.get(0)?,
                completed: r.get::<_, i64>(1)? != 0,
                finished: r.get(2)?,
                producers: r.get::<_, i64>(3)?.clamp(0, i64::from(u32::MAX)) as u32,
                produced: Vec::new(),
                inputs: Vec::new(),
                // Schema version 2 has no `dead_lettered` column: its runs had no dead letters.
                dead_lettered: Some(0),
                not_stored: Some(0),
                dead_letters: from.dead_letters,
                accepted: None,
                stored: None,
                duplicates: None,
                broker: from.broker,
                payload_size: from.payload_size,
            })
        })?
        .collect::<Result<_, _>>()?;
    let summary = conn
        .prepare("SELECT dead_lettered, not_stored, stored, produced FROM runs WHERE run_id = ?1");
    if let Ok(mut summary) = summary {
        for run in &mut runs {
            let counts: [Option<i64>; 4] = summary.query_row([run.run_id], |r| {
                Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])
            })?;
            let [dead, not, stored, accepted] = counts.map(|n| n.map(|n| n.max(0) as u64));
            run.dead_lettered = dead;
            run.not_stored = not;
            run.stored = stored;
            run.accepted = accepted;
        }
    }
    // Version 7 on (older versions keep no such count).
    if let Ok(mut duplicates) = conn.prepare("SELECT duplicates FROM runs WHERE run_id = ?1") {
        for run in &mut runs {
            let n: Option<i64> = duplicates.query_row([run.run_id], |r| r.get(0))?;
            run.duplicates = n.map(|n| n.max(0) as u64);
        }
    }
    let mut producers =
        conn.prepare("SELECT producer, produced FROM run_producers WHERE run_id = ?1")?;
    let mut inputs = conn.prepare("SELECT input_id FROM run_inputs WHERE run_id = ?1")?;
    for run in &mut runs {
        // A count beyond what pc-host runs was edited in: track no more than it could write.
        run.produced = vec![0; run.producers.min(MAX_THREADS as u32) as usize];
        let rows = producers.query_map([run.run_id], |r| {
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
        run.inputs = inputs
            .query_map([run.run_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::sqlite::schema::{self, Found};

    /// A COMMIT that fails and leaves the transaction open (a deferred constraint here; a busy
    /// one does the same) is rolled back: the connection holds no write lock afterwards, and
    /// the next transaction on it can begin.
    #[test]
    fn a_transaction_whose_commit_fails_is_rolled_back() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; CREATE TABLE p (id INTEGER PRIMARY KEY); \
             CREATE TABLE c (p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        let failed: rusqlite::Result<()> = transaction(&conn, || {
            conn.execute("INSERT INTO c VALUES (7)", [])?;
            Ok(())
        });
        assert!(failed.is_err(), "the COMMIT breaks the deferred key");
        assert!(conn.is_autocommit(), "left inside the failed transaction");
        let count: i64 = conn
            .query_row("SELECT count(*) FROM c", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 0);
        let next: rusqlite::Result<()> = transaction(&conn, || Ok(()));
        assert!(next.is_ok(), "{next:?}");
    }

    /// A run's row keeps its duplicates (deliveries of records already stored, dropped), so it
    /// balances as the summary does: `produced = stored + duplicates + dead_lettered +
    /// not_stored`; `verify` reads the count back.
    #[test]
    fn a_runs_row_keeps_its_duplicates_and_balances_as_its_summary_does() {
        let conn = Connection::open_in_memory().unwrap();
        schema::create_or_upgrade(&conn, &Found::Empty).unwrap();
        conn.execute(
            "INSERT INTO runs (started_at, producers, first_id, config) VALUES (1, 0, 1, '{}')",
            [],
        )
        .unwrap();
        let end = RunEnd {
            completed: true,
            produced: 7,
            stored: 3,
            duplicates: 2,
            dead_lettered: 1,
            not_stored: 1,
            ..RunEnd::nothing(2, &[])
        };
        finish_run(&conn, 1, &end).unwrap();
        let balanced: bool = conn
            .query_row(
                "SELECT produced = stored + duplicates + dead_lettered + not_stored FROM runs",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(balanced);
        let read = runs(&conn, Some(1)).unwrap();
        assert_eq!(read[0].duplicates, Some(2));
    }

    /// Inputs read by earlier runs and displaced since are looked for, newest first; none
    /// where the registering run read the newest itself (a rotation while it follows the
    /// file): that run reads the old file to its end, so its committed position may still be
    /// behind without loss.
    #[test]
    fn the_inputs_displaced_are_those_before_at_the_path_unless_this_run_read_the_last() {
        let dir = std::env::temp_dir().join(format!("pc-displaced-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conn = Connection::open_in_memory().unwrap();
        schema::create_or_upgrade(&conn, &Found::Empty).unwrap();
        for _ in 0..2 {
            conn.execute(
                "INSERT INTO runs (started_at, producers, first_id, config) VALUES (1, 1, 1, '{}')",
                [],
            )
            .unwrap();
        }
        let key_of = |name: &str| {
            crate::source::input::open_file(&dir.join(name))
                .unwrap()
                .key
        };
        std::fs::write(dir.join("app.log"), "old\n").unwrap();
        let old = key_of("app.log");
        register_input(&conn, 1, Some(&old)).unwrap();
        std::fs::rename(dir.join("app.log"), dir.join("app.log.1")).unwrap();
        std::fs::write(dir.join("app.log"), "new\n").unwrap();
        let new = key_of("app.log");
        assert_eq!(
            displaced_inputs(&conn, 1, &new, None).unwrap(),
            vec![],
            "run 1 read it"
        );
        let was = displaced_inputs(&conn, 2, &new, None).unwrap();
        assert_eq!(was.len(), 1, "read by run 1: {was:?}");
        assert_eq!(
            (was[0].dev, was[0].ino, was[0].born),
            (old.dev, old.ino, old.born)
        );
        // Once the new file is an input (run 1 moved on to it), a later run resuming it is
        // told of the input before it at that path, and of nothing before the first.
        let resumed = register_input(&conn, 1, Some(&new)).unwrap();
        let was = displaced_inputs(&conn, 2, &new, Some(i64::from(resumed.input))).unwrap();
        assert_eq!(was.len(), 1, "the input before it: {was:?}");
        assert_eq!((was[0].dev, was[0].ino), (old.dev, old.ino));
        assert_eq!(displaced_inputs(&conn, 2, &old, Some(1)).unwrap(), vec![]);
        // A third file at the path, registered by run 2: both before it, newest first, every
        // run after (run 3), though run 1 read them.
        std::fs::rename(dir.join("app.log"), dir.join("app.log.1")).unwrap();
        std::fs::write(dir.join("app.log"), "third\n").unwrap();
        let third = key_of("app.log");
        conn.execute(
            "INSERT INTO runs (started_at, producers, first_id, config) VALUES (1, 1, 1, '{}')",
            [],
        )
        .unwrap();
        let was = displaced_inputs(&conn, 3, &third, None).unwrap();
        let inodes: Vec<u64> = was.iter().map(|w| w.ino).collect();
        assert_eq!(inodes, [new.ino, old.ino], "newest first");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A broker source's run makes (or checks) the delivery tables in the transaction that
    /// records it: one refused for them leaves no run behind.
    #[test]
    fn a_run_refused_for_its_delivery_tables_is_not_recorded() {
        let dir = std::env::temp_dir().join(format!("pc-delivery-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pc.db");
        let run = |delivered| {
            let new_run = NewRun {
                producers: 0,
                config_json: "{}",
                started_at: 1,
                pages: PageSizeChoice::ForRate(0),
                delivered,
            };
            prepare_run(&path, Duration::from_secs(1), &new_run).map(|(_, row)| row.run_id)
        };
        assert_eq!(run(false).unwrap(), 1);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE delivered (key_run INTEGER, producer INTEGER, seq INTEGER, \
             stored_by INTEGER)",
        )
        .unwrap();
        let e = run(true).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("database {}: ", path.display())),
            "{e}"
        );
        assert!(e.contains("`delivered` has unique keys none"), "{e}");
        let runs = |conn: &Connection| -> i64 {
            conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(runs(&conn), 1, "the refused run is not recorded");
        conn.execute_batch("DROP TABLE delivered").unwrap();
        assert_eq!(run(true).unwrap(), 2);
        let made: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('delivered', 'nats_origins')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(made, 2, "made with the run");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
