//! Run and input bookkeeping: the `runs`, `run_producers`, `inputs` and `run_inputs` rows that
//! say what each run did and where each input resumes. Same meanings as SQLite's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::{Client, GenericClient};

use super::schema::{self, Found, Refused};
use crate::config::MAX_THREADS;
use crate::position::{FileKey, Resume};
use crate::sink::read_back::RunInfo;
use crate::sink::{RunEnd, RunStart};

/// Advisory lock keys (`pg_advisory_xact_lock(PC_HOST, what)`): held while the tables are
/// checked and created, and while an input is looked up and registered, so that two pc-hosts
/// starting together do not both create the tables or both register the same file.
const PC_HOST: i32 = 0x7063_4853; // "pcHS"
const LOCK_SCHEMA: i32 = 1;
const LOCK_INPUTS: i32 = 2;

/// Creates or checks the tables and records the run, in one transaction; returns its run id.
///
/// # Errors
/// [`Refused`]: tables pc-host will not use, or the server's error.
pub fn prepare_run(client: &mut Client, start: &RunStart<'_>) -> Result<i64, Refused> {
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&PC_HOST, &LOCK_SCHEMA],
    )?;
    if schema::check(&mut tx)? == Found::Empty {
        schema::create(&mut tx)?;
    }
    let producers = i32::try_from(start.producers).unwrap_or(i32::MAX);
    let run_id: i64 = tx
        .query_one(
            "INSERT INTO runs (started_at, producers, config) VALUES ($1, $2, $3) \
             RETURNING run_id",
            &[&unix_time(start.started_at), &producers, &start.config_json],
        )?
        .get(0);
    tx.commit()?;
    Ok(run_id)
}

/// Unix ns as a time (a time before 1970 is not one pc-host records).
fn unix_time(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
}

/// Where an input resumes, registering it (and its use by `run_id`) if it is new, in one
/// transaction. `None` is a stdin input: always new.
///
/// # Errors
/// The server's.
pub fn register_input(
    client: &mut Client,
    run_id: i64,
    file: Option<&FileKey>,
) -> Result<Resume, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&PC_HOST, &LOCK_INPUTS],
    )?;
    let key = file.map(|f| {
        (
            f.path.to_string_lossy().into_owned(),
            f.dev as i64,
            f.ino as i64,
            f.born,
        )
    });
    let found = match &key {
        Some((path, dev, ino, born)) => tx.query_opt(
            "SELECT input_id, \"offset\", line, tail FROM inputs \
             WHERE path = $1 AND dev = $2 AND ino = $3 AND born IS NOT DISTINCT FROM $4",
            &[path, dev, ino, born],
        )?,
        None => None,
    };
    let (id, offset, line, tail): (i32, i64, i64, i64) = match found {
        Some(row) => (row.get(0), row.get(1), row.get(2), row.get(3)),
        None => {
            let (path, dev, ino, born) = key.map_or((None, None, None, None), |(p, d, i, b)| {
                (Some(p), Some(d), Some(i), b)
            });
            let row = tx.query_one(
                "INSERT INTO inputs (path, dev, ino, born) VALUES ($1, $2, $3, $4) \
                 RETURNING input_id",
                &[&path, &dev, &ino, &born],
            )?;
            (row.get(0), 0, 0, 0)
        }
    };
    tx.execute(
        "INSERT INTO run_inputs (run_id, input_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&run_id, &id],
    )?;
    tx.commit()?;
    Ok(Resume {
        input: id.max(0) as u32,
        offset: offset.max(0) as u64,
        line: line.max(0) as u64,
        tail: tail.max(0) as u64,
    })
}

/// Moves an input's committed position from `from` to `to` on its own; true if it is at `to`
/// afterwards (also when a first try committed but its reply was lost), false if another
/// process moved it elsewhere.
///
/// # Errors
/// The server's.
pub fn commit_input_position(
    client: &mut Client,
    from: Resume,
    to: Resume,
) -> Result<bool, postgres::Error> {
    let input = to.input as i32;
    let changed = client.execute(
        "UPDATE inputs SET \"offset\" = $2, line = $3, tail = $4 WHERE input_id = $1 \
         AND ((\"offset\" = $5 AND line = $6) OR (\"offset\" = $2 AND line = $3 AND tail = $4))",
        &[
            &input,
            &(to.offset as i64),
            &(to.line as i64),
            &(to.tail as i64),
            &(from.offset as i64),
            &(from.line as i64),
        ],
    )?;
    Ok(changed == 1)
}

/// Records the end of a run: its totals, whether it drained completely, and each producer's
/// count. Running it twice records the same.
///
/// # Errors
/// The server's.
pub fn finish_run(
    client: &mut Client,
    run_id: i64,
    end: &RunEnd<'_>,
) -> Result<(), postgres::Error> {
    let per_producer: Vec<i64> = end.per_producer.iter().map(|&n| n as i64).collect();
    let mut tx = client.transaction()?;
    tx.execute(
        "UPDATE runs SET finished_at = $2, completed = $3, produced = $4 WHERE run_id = $1",
        &[
            &run_id,
            &unix_time(end.finished_at),
            &end.completed,
            &(end.produced as i64),
        ],
    )?;
    tx.execute(
        "INSERT INTO run_producers (run_id, producer, produced) \
         SELECT $1, (t.ord - 1)::int, t.n FROM unnest($2::bigint[]) WITH ORDINALITY AS t(n, ord) \
         ON CONFLICT (run_id, producer) DO UPDATE SET produced = EXCLUDED.produced",
        &[&run_id, &per_producer],
    )?;
    tx.commit()
}

/// How many messages of `run_id` the database holds, counted with SQL.
///
/// # Errors
/// The server's.
pub fn count_stored(client: &mut Client, run_id: i64) -> Result<u64, postgres::Error> {
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM messages WHERE run_id = $1",
            &[&run_id],
        )?
        .get(0);
    Ok(n.max(0) as u64)
}

/// Reads the `runs`, `run_producers` and `run_inputs` tables (one run, or all).
///
/// # Errors
/// The server's.
pub fn runs(
    c: &mut impl GenericClient,
    only: Option<i64>,
) -> Result<Vec<RunInfo>, postgres::Error> {
    let mut runs: Vec<RunInfo> = c
        .query(
            "SELECT run_id, completed, finished_at IS NOT NULL, producers FROM runs \
             WHERE $1::bigint IS NULL OR run_id = $1 ORDER BY run_id",
            &[&only],
        )?
        .iter()
        .map(|r| RunInfo {
            run_id: r.get(0),
            completed: r.get(1),
            finished: r.get(2),
            producers: r.get::<_, i32>(3).max(0) as u32,
            produced: Vec::new(),
            inputs: Vec::new(),
            dead_lettered: 0,
        })
        .collect();
    for run in &mut runs {
        // A count beyond what pc-host runs was edited in: track no more than it could write.
        run.produced = vec![0; run.producers.min(MAX_THREADS as u32) as usize];
        let rows = c.query(
            "SELECT producer, produced FROM run_producers WHERE run_id = $1",
            &[&run.run_id],
        )?;
        for row in rows {
            let (p, n): (i32, i64) = (row.get(0), row.get(1));
            if let Some(slot) = usize::try_from(p)
                .ok()
                .and_then(|p| run.produced.get_mut(p))
            {
                *slot = n.max(0) as u64;
            }
        }
        run.inputs = c
            .query(
                "SELECT input_id FROM run_inputs WHERE run_id = $1 ORDER BY input_id",
                &[&run.run_id],
            )?
            .iter()
            .map(|r| i64::from(r.get::<_, i32>(0)))
            .collect();
    }
    Ok(runs)
}
