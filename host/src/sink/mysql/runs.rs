//! Run and input bookkeeping: the `runs`, `run_producers`, `inputs` and `run_inputs` rows that
//! say what each run did and where each input resumes.

use mysql::prelude::Queryable as _;
use mysql::{Conn, Value};

use crate::config::MAX_THREADS;
use crate::position::{FileKey, Resume};
use crate::sink::read_back::{FromConfig, RunInfo};
use crate::sink::{RunEnd, RunStart};
use crate::telemetry::interval::Interval;

/// How long `register` waits for another pc-host registering an input (seconds).
const REGISTER_LOCK_WAIT: u32 = 30;

/// Records a run starting; returns its id.
pub fn start_run(conn: &mut Conn, start: &RunStart<'_>) -> mysql::Result<i64> {
    conn.exec_drop(
        "INSERT INTO runs (started_at, producers, config) VALUES (?, ?, ?)",
        (start.started_at, start.producers as i64, start.config_json),
    )?;
    Ok(conn.last_insert_id() as i64)
}

/// Runs `body` in a transaction: committed if it returns `Ok`, rolled back otherwise (a
/// rollback that fails leaves the connection for the caller to drop).
pub fn transaction<T, E: From<mysql::Error>>(
    conn: &mut Conn,
    body: impl FnOnce(&mut Conn) -> Result<T, E>,
) -> Result<T, E> {
    conn.query_drop("START TRANSACTION")?;
    match body(conn) {
        Ok(v) => {
            conn.query_drop("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.query_drop("ROLLBACK");
            Err(e)
        }
    }
}

/// Where an input resumes, registering it (and its use by `run_id`) if it is new; `None` is a
/// stdin input, always new. Processes registering inputs wait for each other (a named lock),
/// so one file never gets two ids.
///
/// # Errors
/// The server's; the lock not given within its wait.
pub fn register_input(
    conn: &mut Conn,
    run_id: i64,
    file: Option<&FileKey>,
) -> anyhow::Result<Resume> {
    let got: Option<Option<i64>> = conn.exec_first(
        "SELECT GET_LOCK(CONCAT('pc-host inputs ', MD5(DATABASE())), ?)",
        (REGISTER_LOCK_WAIT,),
    )?;
    if got.flatten() != Some(1) {
        anyhow::bail!(
            "another client held pc-host's input lock for {REGISTER_LOCK_WAIT} s; try again"
        );
    }
    let done = transaction(conn, |conn| find_or_add(conn, run_id, file));
    let released = conn.query_drop("DO RELEASE_LOCK(CONCAT('pc-host inputs ', MD5(DATABASE())))");
    let resume = done?;
    released?;
    Ok(resume)
}

/// The inputs registered at `file`'s path before it (`known`: the input `file` is, or `None`
/// before a new one is registered), said by `position::displaced`: as in the SQLite sink
/// (`displaced_inputs`), none if run `run_id` read the newest, and none this run read.
fn displaced(
    conn: &mut Conn,
    run_id: i64,
    file: &FileKey,
    known: Option<i64>,
) -> mysql::Result<()> {
    type Row = (i64, i64, i64, i64, Option<i64>, i64, i64);
    let rows: Vec<Row> = conn.exec(
        "SELECT `offset`, line, dev, ino, born, EXISTS (SELECT 1 FROM run_inputs r \
         WHERE r.run_id = ? AND r.input_id = inputs.input_id), tail \
         FROM inputs WHERE path = ? AND (? IS NULL OR input_id < ?) \
         ORDER BY input_id DESC",
        (run_id, file.path.to_string_lossy().as_ref(), known, known),
    )?;
    let rows = rows
        .into_iter()
        .map(|(offset, line, dev, ino, born, this_run, tail)| {
            let was = crate::position::Displaced::from_columns(offset, line, dev, ino, born)
                .with_tail(tail);
            (was, this_run != 0)
        })
        .collect();
    let earlier = crate::position::not_read_by(rows);
    let mut held = |dev: u64, ino: u64, born: Option<i64>| {
        conn.exec_first::<i64, _, _>(
            "SELECT EXISTS (SELECT 1 FROM inputs WHERE dev = ? AND ino = ? AND born <=> ?)",
            (dev as i64, ino as i64, born),
        )
        .is_ok_and(|found| found == Some(1))
    };
    crate::position::displaced(file, &earlier, known.is_some(), &mut held);
    Ok(())
}

/// The `inputs` row of a file ([`same_file_params`]): at the same path (with the same birth
/// time, or one known on one side only), or, where its birth time is known, renamed since.
pub const SAME_FILE: &str = "WHERE dev = ? AND ino = ? \
     AND ((born <=> ? OR born IS NULL OR ? IS NULL) AND path = ? \
          OR born IS NOT NULL AND born = ?) \
     ORDER BY path = ? DESC, input_id DESC LIMIT 1";

/// [`SAME_FILE`]'s parameters, in order: dev, ino, born, born, path, born, path.
pub type SameFileParams = (
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    String,
    Option<i64>,
    String,
);

/// [`SAME_FILE`]'s parameters for the file `f`.
pub fn same_file_params(f: &FileKey) -> SameFileParams {
    let path = f.path.to_string_lossy().into_owned();
    (
        f.dev as i64,
        f.ino as i64,
        f.born,
        f.born,
        path.clone(),
        f.born,
        path,
    )
}

fn find_or_add(conn: &mut Conn, run_id: i64, file: Option<&FileKey>) -> mysql::Result<Resume> {
    let key = file.map(|f| {
        (
            f.path.to_string_lossy().into_owned(),
            f.dev as i64,
            f.ino as i64,
            f.born,
        )
    });
    type Found = (i64, i64, i64, i64, String, Option<i64>);
    let found: Option<Found> = match file {
        Some(f) => conn.exec_first(
            format!("SELECT input_id, `offset`, line, tail, path, mark FROM inputs {SAME_FILE}"),
            same_file_params(f),
        )?,
        None => None,
    };
    if let (Some((path, ..)), Some((id, _, line, tail, was, _))) = (&key, &found)
        && was != path
    {
        conn.exec_drop("UPDATE inputs SET path = ? WHERE input_id = ?", (path, id))?;
        crate::position::renamed(std::path::Path::new(path), was, *line, *tail);
    }
    if let (Some((.., born @ Some(_))), Some((id, ..))) = (&key, &found) {
        // Matched by path with no birth time recorded: record the one known now, so that a
        // file created later on the reused inode is a new input again.
        conn.exec_drop(
            "UPDATE inputs SET born = ? WHERE input_id = ? AND born IS NULL",
            (born, id),
        )?;
    }
    let found = found.map(|(id, offset, line, tail, _, mark)| (id, offset, line, tail, mark));
    let (id, offset, line, tail, mark) = match found {
        Some(row) => {
            if let Some(f) = file {
                displaced(conn, run_id, f, Some(row.0))?;
            }
            row
        }
        None => {
            if let Some(f) = file {
                displaced(conn, run_id, f, None)?;
            }
            let params: Vec<Value> = match &key {
                Some((path, dev, ino, born)) => vec![
                    path.as_str().into(),
                    (*dev).into(),
                    (*ino).into(),
                    (*born).into(),
                ],
                None => vec![Value::NULL; 4],
            };
            conn.exec_drop(
                "INSERT INTO inputs (path, dev, ino, born) VALUES (?, ?, ?, ?)",
                params,
            )?;
            (conn.last_insert_id() as i64, 0, 0, 0, None)
        }
    };
    conn.exec_drop(
        "INSERT IGNORE INTO run_inputs (run_id, input_id) VALUES (?, ?)",
        (run_id, id),
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

/// Records the end of a run: its totals and summary, and whether it drained completely.
/// Running it twice records the same.
pub fn finish_run(conn: &mut Conn, run_id: i64, end: &RunEnd<'_>) -> mysql::Result<()> {
    let lat = |i: usize| end.latency.map(|l| n(l[i]));
    let summary: Vec<Value> = vec![
        end.finished_at.into(),
        end.completed.into(),
        n(end.produced).into(),
        n(end.stored).into(),
        n(end.dead_lettered).into(),
        n(end.not_stored).into(),
        n(end.retries).into(),
        lat(0).into(),
        lat(1).into(),
        lat(2).into(),
        lat(3).into(),
        end.elapsed_s.into(),
        n(end.duplicates).into(),
        run_id.into(),
    ];
    transaction(conn, |conn| {
        conn.exec_drop(
            "UPDATE runs SET finished_at = ?, completed = ?, produced = ?, stored = ?, \
             dead_lettered = ?, not_stored = ?, retries = ?, latency_p50_ns = ?, \
             latency_p99_ns = ?, latency_p999_ns = ?, latency_max_ns = ?, elapsed_s = ?, \
             duplicates = ? WHERE run_id = ?",
            summary,
        )?;
        conn.exec_batch(
            "REPLACE INTO run_producers (run_id, producer, produced) VALUES (?, ?, ?)",
            end.per_producer
                .iter()
                .enumerate()
                .map(|(p, &count)| (run_id, p as i64, n(count))),
        )
    })
}

/// Rows per statement of [`record_intervals`] (11 values each: far below the server's limit
/// of 65535 placeholders and any `max_allowed_packet`).
const INTERVAL_ROWS: usize = 500;

/// Keeps `rows` as `run_intervals` rows of `run_id`, in one transaction. A row already there
/// (same run and `t_s`: written before a COMMIT whose reply was lost) is replaced, never
/// doubled. Waits for locks as the session says (`Target::session_waits`).
pub fn record_intervals(conn: &mut Conn, run_id: i64, rows: &[Interval]) -> mysql::Result<()> {
    transaction(conn, |conn| {
        for chunk in rows.chunks(INTERVAL_ROWS) {
            let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 11);
            for r in chunk {
                params.extend([
                    run_id.into(),
                    r.t_s.into(),
                    n(r.produced).into(),
                    n(r.stored).into(),
                    n(r.rejected).into(),
                    n(r.queue_depth).into(),
                    r.latency_p50.map(n).into(),
                    r.latency_p99.map(n).into(),
                    r.latency_max.map(n).into(),
                    r.commit_p99.map(n).into(),
                    n(r.consumers).into(),
                ]);
            }
            conn.exec_drop(replace_intervals_sql(chunk.len()), params)?;
        }
        Ok(())
    })
}

/// `REPLACE INTO run_intervals` of `rows` rows.
fn replace_intervals_sql(rows: usize) -> String {
    let one = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    format!(
        "REPLACE INTO run_intervals (run_id, t_s, produced, stored, rejected, queue_depth, \
         latency_p50_ns, latency_p99_ns, latency_max_ns, commit_p99_ns, consumers) VALUES {}",
        vec![one; rows].join(", ")
    )
}

/// A count as a BIGINT (saturating: no count pc-host keeps comes near it).
fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// How many messages of `run_id` the database holds (exact: one count over the run's key).
pub fn count_stored(conn: &mut Conn, run_id: i64) -> mysql::Result<u64> {
    let n: Option<i64> =
        conn.exec_first("SELECT COUNT(*) FROM messages WHERE run_id = ?", (run_id,))?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

/// Reads the `runs`, `run_producers` and `run_inputs` tables (one run, or all). `summary`:
/// whether `runs` has version 2's columns; without them (version 1, which kept no count) and
/// for a run that did not end, `dead_lettered` is `None`. `duplicates`: whether it has
/// version 5's column; without it, `duplicates` is `None`.
pub fn runs(
    conn: &mut Conn,
    only: Option<i64>,
    (summary, duplicates): (bool, bool),
) -> mysql::Result<Vec<RunInfo>> {
    let dead_lettered = if summary {
        "dead_lettered, not_stored, stored, produced"
    } else {
        "NULL, NULL, NULL, NULL"
    };
    let duplicates = if duplicates { "duplicates" } else { "NULL" };
    /// run_id, completed, finished, producers, dead_lettered, not_stored, stored, produced,
    /// duplicates, config.
    type RunRow = (
        i64,
        bool,
        bool,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<String>,
    );
    let rows: Vec<RunRow> = conn.exec(
        format!(
            "SELECT run_id, completed, finished_at IS NOT NULL, producers, {dead_lettered}, \
             {duplicates}, config FROM runs WHERE ? IS NULL OR run_id = ? ORDER BY run_id"
        ),
        (only, only),
    )?;
    let mut runs = Vec::with_capacity(rows.len());
    for (
        run_id,
        completed,
        finished,
        producers,
        dead_lettered,
        not_stored,
        stored,
        accepted,
        duplicates,
        config,
    ) in rows
    {
        let producers = producers.clamp(0, i64::from(u32::MAX)) as u32;
        // A count beyond what pc-host runs was edited in: track no more than it could write.
        let mut produced = vec![0; producers.min(MAX_THREADS as u32) as usize];
        let counts: Vec<(i64, i64)> = conn.exec(
            "SELECT producer, produced FROM run_producers WHERE run_id = ?",
            (run_id,),
        )?;
        for (p, n) in counts {
            if let Some(slot) = usize::try_from(p).ok().and_then(|p| produced.get_mut(p)) {
                *slot = n.max(0) as u64;
            }
        }
        let inputs = conn.exec(
            "SELECT input_id FROM run_inputs WHERE run_id = ? ORDER BY input_id",
            (run_id,),
        )?;
        let from = FromConfig::of(config.as_deref());
        runs.push(RunInfo {
            run_id,
            completed,
            finished,
            producers,
            produced,
            inputs,
            dead_lettered: dead_lettered.map(|n| n.max(0) as u64),
            not_stored: not_stored.map(|n| n.max(0) as u64),
            stored: stored.map(|n| n.max(0) as u64),
            accepted: accepted.map(|n| n.max(0) as u64),
            duplicates: duplicates.map(|n| n.max(0) as u64),
            broker: from.broker,
            payload_size: from.payload_size,
            dead_letters: from.dead_letters,
        });
    }
    Ok(runs)
}
