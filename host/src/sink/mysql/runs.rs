//! Run and input bookkeeping: the `runs`, `run_producers`, `inputs` and `run_inputs` rows that
//! say what each run did and where each input resumes.

use mysql::prelude::Queryable as _;
use mysql::{Conn, Value};

use crate::config::MAX_THREADS;
use crate::position::{FileKey, Resume};
use crate::sink::RunStart;
use crate::sink::read_back::RunInfo;

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
        "SELECT GET_LOCK(LEFT(CONCAT('pc-host inputs ', DATABASE()), 64), ?)",
        (REGISTER_LOCK_WAIT,),
    )?;
    if got.flatten() != Some(1) {
        anyhow::bail!(
            "another client held pc-host's input lock for {REGISTER_LOCK_WAIT} s; try again"
        );
    }
    let done = transaction(conn, |conn| find_or_add(conn, run_id, file));
    let released =
        conn.query_drop("DO RELEASE_LOCK(LEFT(CONCAT('pc-host inputs ', DATABASE()), 64))");
    let resume = done?;
    released?;
    Ok(resume)
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
    let found: Option<(i64, i64, i64, i64)> = match &key {
        Some((path, dev, ino, born)) => conn.exec_first(
            "SELECT input_id, `offset`, line, tail FROM inputs \
             WHERE dev = ? AND ino = ? AND path = ? AND born <=> ?",
            (dev, ino, path, born),
        )?,
        None => None,
    };
    let (id, offset, line, tail) = match found {
        Some(row) => row,
        None => {
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
            (conn.last_insert_id() as i64, 0, 0, 0)
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
    })
}

/// Records the end of a run: its totals, and whether it drained completely.
pub fn finish_run(
    conn: &mut Conn,
    run_id: i64,
    finished_at: i64,
    completed: bool,
    per_producer: &[u64],
    produced: u64,
) -> mysql::Result<()> {
    transaction(conn, |conn| {
        conn.exec_drop(
            "UPDATE runs SET finished_at = ?, completed = ?, produced = ? WHERE run_id = ?",
            (finished_at, completed, produced as i64, run_id),
        )?;
        conn.exec_batch(
            "INSERT INTO run_producers (run_id, producer, produced) VALUES (?, ?, ?)",
            per_producer
                .iter()
                .enumerate()
                .map(|(p, &n)| (run_id, p as i64, n as i64)),
        )
    })
}

/// How many messages of `run_id` the database holds (exact: one count over the run's key).
pub fn count_stored(conn: &mut Conn, run_id: i64) -> mysql::Result<u64> {
    let n: Option<i64> =
        conn.exec_first("SELECT COUNT(*) FROM messages WHERE run_id = ?", (run_id,))?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

/// Reads the `runs`, `run_producers` and `run_inputs` tables (one run, or all).
pub fn runs(conn: &mut Conn, only: Option<i64>) -> mysql::Result<Vec<RunInfo>> {
    let rows: Vec<(i64, bool, bool, i64)> = conn.exec(
        "SELECT run_id, completed, finished_at IS NOT NULL, producers FROM runs \
         WHERE ? IS NULL OR run_id = ? ORDER BY run_id",
        (only, only),
    )?;
    let mut runs = Vec::with_capacity(rows.len());
    for (run_id, completed, finished, producers) in rows {
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
        runs.push(RunInfo {
            run_id,
            completed,
            finished,
            producers,
            produced,
            inputs,
            dead_lettered: 0,
        });
    }
    Ok(runs)
}
