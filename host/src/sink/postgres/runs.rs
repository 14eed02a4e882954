//! Run and input bookkeeping: the `runs`, `run_producers`, `run_intervals`, `inputs` and
//! `run_inputs` rows that say what each run did and where each input resumes. Same meanings as
//! SQLite's.

use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, GenericClient};

use super::delivered;
use super::encode::unix_time;
use super::schema::{self, Found, Refused};
use crate::config::MAX_THREADS;
use crate::position::{FileKey, Resume, stale_fragment};
use crate::sink::read_back::{FromConfig, RunInfo};
use crate::sink::{RunEnd, RunStart};
use crate::telemetry::interval::Interval;

/// Advisory lock keys (`pg_advisory_xact_lock(PC_HOST, what)`): held while the tables are
/// checked and created, and while an input is looked up and registered, so that two pc-hosts
/// starting together do not both create the tables or both register the same file.
const PC_HOST: i32 = 0x7063_4853; // "pcHS"
const LOCK_SCHEMA: i32 = 1;
const LOCK_INPUTS: i32 = 2;

/// A lock wait at the start that ran out (`lock_timeout`, SQLSTATE 55P03) as
/// [`Refused::Held`], saying who held what (`held`); any other error as the server's.
fn held_past_busy(e: postgres::Error, held: &str) -> Refused {
    match e.code() {
        Some(&SqlState::LOCK_NOT_AVAILABLE) => Refused::Held(held.to_string()),
        _ => Refused::Db(e),
    }
}

/// Creates, upgrades (version 1) or checks the tables (with a broker source, the delivery
/// tables too) and records the run, in one transaction under the schema lock; returns its run
/// id. Each lock it takes is waited for up to `wait`.
///
/// # Errors
/// [`Refused`]: tables pc-host will not use, a lock held past `wait` ([`Refused::Held`]), or
/// the server's error.
pub fn prepare_run(
    client: &mut Client,
    start: &RunStart<'_>,
    wait: Duration,
) -> Result<i64, Refused> {
    // Any statement of the start may wait for a lock (an upgrade's ALTER TABLE, the delivery
    // tables' index): one that ran out of `wait` is held, to wait for again.
    prepare_in_transaction(client, start, wait).map_err(|r| match r {
        Refused::Db(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
            Refused::Held("another client held a lock on pc-host's tables".to_string())
        }
        other => other,
    })
}

/// A failure while the start was `what`, named so that a missing permission says what it was
/// for; a lock held past the wait stays as it is, for the caller to say who held it.
fn while_doing(what: &str, e: postgres::Error) -> Refused {
    if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
        return Refused::Db(e);
    }
    Refused::Reason(format!("{what}: {}", super::error::describe(&e)))
}

fn prepare_in_transaction(
    client: &mut Client,
    start: &RunStart<'_>,
    wait: Duration,
) -> Result<i64, Refused> {
    let mut tx = client.transaction()?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}",
        super::connect::timeout_ms(wait)
    ))?;
    if let Err(e) = tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&PC_HOST, &LOCK_SCHEMA],
    ) {
        return Err(held_past_busy(
            e,
            "another pc-host starting on this database held its schema lock (it may be waiting for a lock itself)",
        ));
    }
    let found = schema::check(&mut tx)?;
    let delivery_tables_there = if start.delivered {
        delivered::check_tables(&mut tx, found == schema::Found::Empty)?
    } else {
        true
    };
    let tables = if found == schema::Found::Empty {
        "creating pc-host's tables"
    } else {
        "upgrading pc-host's tables"
    };
    schema::create_or_upgrade(&mut tx, &found).map_err(|e| while_doing(tables, e))?;
    if !delivery_tables_there {
        delivered::create_tables(&mut tx)
            .map_err(|e| while_doing("creating pc-host's delivery tables", e))?;
    }
    // The lock the run's writes take, waited for here (up to `lock_timeout`) so that a table
    // another client holds refuses the run before it is recorded, not after: the run's
    // statements are prepared against `messages` next, outside this transaction.
    if let Err(e) = tx.batch_execute("LOCK TABLE messages IN ROW EXCLUSIVE MODE") {
        return Err(held_past_busy(
            e,
            "another client held a lock on table messages",
        ));
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

/// The `inputs` row of the file `$1` (path), `$2` (dev), `$3` (ino), `$4` (birth time, or
/// NULL): at the same path (with the same birth time, or one known on one side only), or,
/// where its birth time is known, renamed since.
pub const SAME_FILE: &str = "WHERE dev = $2 AND ino = $3 \
     AND ((born IS NOT DISTINCT FROM $4 OR born IS NULL OR $4::BIGINT IS NULL) AND path = $1 \
          OR born IS NOT NULL AND born = $4) \
     ORDER BY path = $1 DESC, input_id DESC LIMIT 1";

/// A file's identity as the `inputs` columns keep it: path, dev, ino, born ([`SAME_FILE`]'s
/// parameters, in order).
pub fn file_columns(f: &FileKey) -> (String, i64, i64, Option<i64>) {
    (
        f.path.to_string_lossy().into_owned(),
        f.dev as i64,
        f.ino as i64,
        f.born,
    )
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
    let key = file.map(file_columns);
    let found = match &key {
        Some((path, dev, ino, born)) => tx.query_opt(
            &format!("SELECT input_id, \"offset\", line, tail, path, mark FROM inputs {SAME_FILE}"),
            &[path, dev, ino, born],
        )?,
        None => None,
    };
    if let (Some((path, ..)), Some(row)) = (&key, &found) {
        let was: String = row.get(4);
        if was != *path {
            let id: i32 = row.get(0);
            tx.execute(
                "UPDATE inputs SET path = $1 WHERE input_id = $2",
                &[path, &id],
            )?;
            crate::position::renamed(std::path::Path::new(path), &was, row.get(2), row.get(3));
        }
    }
    if let (Some((.., born @ Some(_))), Some(row)) = (&key, &found) {
        // Matched by path with no birth time recorded: record the one known now, so that a
        // file created later on the reused inode is a new input again.
        let id: i32 = row.get(0);
        tx.execute(
            "UPDATE inputs SET born = $1 WHERE input_id = $2 AND born IS NULL",
            &[born, &id],
        )?;
    }
    let (id, offset, line, tail, mark): (i32, i64, i64, i64, Option<i64>) = match found {
        Some(row) => {
            if let Some(f) = file {
                displaced(&mut tx, run_id, f, Some(row.get(0)))?;
            }
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(5))
        }
        None => {
            if let Some(f) = file {
                displaced(&mut tx, run_id, f, None)?;
            }
            let (path, dev, ino, born) = key.map_or((None, None, None, None), |(p, d, i, b)| {
                (Some(p), Some(d), Some(i), b)
            });
            let row = tx.query_one(
                "INSERT INTO inputs (path, dev, ino, born) VALUES ($1, $2, $3, $4) \
                 RETURNING input_id",
                &[&path, &dev, &ino, &born],
            )?;
            (row.get(0), 0, 0, 0, None)
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
        mark: mark.and_then(|m| u32::try_from(m).ok()),
        restarted: false,
    })
}

/// The inputs registered at `file`'s path before it (`known`: the input `file` is, or `None`
/// before a new one is registered), said by `position::displaced`: as in the SQLite sink
/// (`displaced_inputs`), none if run `run_id` read the newest, and none this run read.
fn displaced(
    tx: &mut postgres::Transaction<'_>,
    run_id: i64,
    file: &FileKey,
    known: Option<i32>,
) -> Result<(), postgres::Error> {
    let path = file.path.to_string_lossy().into_owned();
    let rows = tx.query(
        "SELECT \"offset\", line, dev, ino, born, EXISTS (SELECT 1 FROM run_inputs r \
         WHERE r.run_id = $2 AND r.input_id = inputs.input_id), tail \
         FROM inputs WHERE path = $1 AND ($3::int IS NULL OR input_id < $3) \
         ORDER BY input_id DESC",
        &[&path, &run_id, &known],
    )?;
    let rows = rows
        .iter()
        .map(|row| {
            let was = crate::position::Displaced::from_columns(
                row.get(0),
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
            )
            .with_tail(row.get(6));
            (was, row.get::<_, bool>(5))
        })
        .collect();
    let earlier = crate::position::not_read_by(rows);
    let mut held = |dev: u64, ino: u64, born: Option<i64>| {
        // Under a savepoint: a failed look (a cancel landing on it) is `false`, and dropping
        // the savepoint rolls back to it, so the registration's transaction is not aborted.
        let Ok(mut look) = tx.savepoint("pc_host_known") else {
            return false;
        };
        look.query_one(
            "SELECT EXISTS (SELECT 1 FROM inputs WHERE dev = $1 AND ino = $2 \
             AND born IS NOT DISTINCT FROM $3)",
            &[&(dev as i64), &(ino as i64), &born],
        )
        .is_ok_and(|row| row.get::<_, bool>(0))
    };
    crate::position::displaced(file, &earlier, known.is_some(), &mut held);
    Ok(())
}

/// Moves an input's committed position from `from` to `to` on its own, with any fragment's
/// row the move leaves stale (`stale_fragment`); true if it is at `to` afterwards (also when a
/// first try committed but its reply was lost), false if another process moved it elsewhere.
///
/// # Errors
/// The server's.
pub fn commit_input_position(
    client: &mut Client,
    run_id: i64,
    from: Resume,
    to: Resume,
) -> Result<bool, postgres::Error> {
    let input = to.input as i32;
    let mut tx = client.transaction()?;
    // The fragment's row a move leaves stale (`stale_fragment`): no record goes with this one.
    if let Some(line) = stale_fragment(from, to, |_, _| false) {
        tx.execute(
            "DELETE FROM messages WHERE run_id IN (SELECT run_id FROM run_inputs \
             WHERE input_id = $1 AND run_id <> $3) AND producer = $1 AND seq = $2",
            &[&input, &(line as i64), &run_id],
        )?;
    }
    let changed = tx.execute(
        "UPDATE inputs SET \"offset\" = $2, line = $3, tail = $4, mark = $7 WHERE input_id = $1 \
         AND ((\"offset\" = $5 AND line = $6) OR (\"offset\" = $2 AND line = $3 AND tail = $4))",
        &[
            &input,
            &(to.offset as i64),
            &(to.line as i64),
            &(to.tail as i64),
            &(from.offset as i64),
            &(from.line as i64),
            &to.mark.map(i64::from),
        ],
    )?;
    if changed == 1 {
        tx.commit()?;
    }
    Ok(changed == 1)
}

/// Records the end of a run: its totals and summary, whether it drained completely, and each
/// producer's count. Running it twice records the same.
///
/// # Errors
/// The server's.
pub fn finish_run(
    client: &mut Client,
    run_id: i64,
    end: &RunEnd<'_>,
) -> Result<(), postgres::Error> {
    let per_producer: Vec<i64> = end.per_producer.iter().map(|&n| big(n)).collect();
    let lat = |i: usize| end.latency.map(|l| big(l[i]));
    let mut tx = client.transaction()?;
    tx.execute(
        "UPDATE runs SET finished_at = $2, completed = $3, produced = $4, stored = $5, \
         dead_lettered = $6, not_stored = $7, retries = $8, latency_p50_ns = $9, \
         latency_p99_ns = $10, latency_p999_ns = $11, latency_max_ns = $12, elapsed_s = $13, \
         duplicates = $14 WHERE run_id = $1",
        &[
            &run_id,
            &unix_time(end.finished_at),
            &end.completed,
            &big(end.produced),
            &big(end.stored),
            &big(end.dead_lettered),
            &big(end.not_stored),
            &big(end.retries),
            &lat(0),
            &lat(1),
            &lat(2),
            &lat(3),
            &end.elapsed_s,
            &big(end.duplicates),
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

/// A count as a `BIGINT` (one past its range is kept as its largest value).
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Keeps `rows` as run `run_id`'s `run_intervals` rows, in one transaction; a row already kept
/// (same `t_s`) is replaced, so writing the same rows again (after a lost COMMIT reply) keeps
/// one of each. Without `wait`, a lock held by another client is waited for 1 ms at most.
///
/// # Errors
/// The server's: 55P03 for a lock not granted in time; nothing of the rows is kept then.
pub fn record_intervals(
    client: &mut Client,
    run_id: i64,
    rows: &[Interval],
    wait: bool,
) -> Result<(), postgres::Error> {
    let col = |f: fn(&Interval) -> u64| -> Vec<i64> { rows.iter().map(|r| big(f(r))).collect() };
    let opt = |f: fn(&Interval) -> Option<u64>| -> Vec<Option<i64>> {
        rows.iter().map(|r| f(r).map(big)).collect()
    };
    let t_s: Vec<f64> = rows.iter().map(|r| r.t_s).collect();
    let consumers: Vec<i32> = rows
        .iter()
        .map(|r| i32::try_from(r.consumers).unwrap_or(i32::MAX))
        .collect();
    let mut tx = client.transaction()?;
    if !wait {
        tx.batch_execute("SET LOCAL lock_timeout = '1ms'")?;
    }
    tx.execute(
        "INSERT INTO run_intervals (run_id, t_s, produced, stored, rejected, queue_depth, \
         latency_p50_ns, latency_p99_ns, latency_max_ns, commit_p99_ns, consumers) \
         SELECT $1, t.* FROM unnest($2::float8[], $3::int8[], $4::int8[], $5::int8[], \
         $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int4[]) AS t \
         ON CONFLICT (run_id, t_s) DO UPDATE SET produced = EXCLUDED.produced, \
         stored = EXCLUDED.stored, rejected = EXCLUDED.rejected, \
         queue_depth = EXCLUDED.queue_depth, latency_p50_ns = EXCLUDED.latency_p50_ns, \
         latency_p99_ns = EXCLUDED.latency_p99_ns, latency_max_ns = EXCLUDED.latency_max_ns, \
         commit_p99_ns = EXCLUDED.commit_p99_ns, consumers = EXCLUDED.consumers",
        &[
            &run_id,
            &t_s,
            &col(|r| r.produced),
            &col(|r| r.stored),
            &col(|r| r.rejected),
            &col(|r| r.queue_depth),
            &opt(|r| r.latency_p50),
            &opt(|r| r.latency_p99),
            &opt(|r| r.latency_max),
            &opt(|r| r.commit_p99),
            &consumers,
        ],
    )?;
    tx.commit()
}

/// How many messages of `run_id` the database holds, counted with SQL.
///
/// # Errors
/// The server's.
pub fn count_stored(
    client: &mut impl postgres::GenericClient,
    run_id: i64,
) -> Result<u64, postgres::Error> {
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM messages WHERE run_id = $1",
            &[&run_id],
        )?
        .get(0);
    Ok(n.max(0) as u64)
}

/// Reads the `runs`, `run_producers` and `run_inputs` tables (one run, or all) of a database
/// of version `found`. A run's `dead_lettered` is `None` where it was not recorded: a run
/// that did not finish, or any run of a version 1 database (which has no such column).
///
/// # Errors
/// The server's.
pub fn runs(
    c: &mut impl GenericClient,
    only: Option<i64>,
    found: &Found,
) -> Result<Vec<RunInfo>, postgres::Error> {
    let dead = match found {
        Found::Current => "dead_lettered, not_stored, stored, produced, duplicates",
        Found::Version2 | Found::Version3 | Found::Version4 => {
            "dead_lettered, not_stored, stored, produced, NULL::bigint"
        }
        Found::Version1 | Found::Empty => {
            "NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint"
        }
    };
    let mut runs: Vec<RunInfo> = c
        .query(
            &format!(
                "SELECT run_id, completed, finished_at IS NOT NULL, producers, {dead}, config \
                 FROM runs WHERE $1::bigint IS NULL OR run_id = $1 ORDER BY run_id"
            ),
            &[&only],
        )?
        .iter()
        .map(|r| {
            let from = FromConfig::of(r.get::<_, Option<String>>(9).as_deref());
            RunInfo {
                run_id: r.get(0),
                completed: r.get(1),
                finished: r.get(2),
                producers: r.get::<_, i32>(3).max(0) as u32,
                produced: Vec::new(),
                inputs: Vec::new(),
                dead_lettered: r.get::<_, Option<i64>>(4).map(|n| n.max(0) as u64),
                not_stored: r.get::<_, Option<i64>>(5).map(|n| n.max(0) as u64),
                stored: r.get::<_, Option<i64>>(6).map(|n| n.max(0) as u64),
                accepted: r.get::<_, Option<i64>>(7).map(|n| n.max(0) as u64),
                duplicates: r.get::<_, Option<i64>>(8).map(|n| n.max(0) as u64),
                dead_letters: from.dead_letters,
                broker: from.broker,
                payload_size: from.payload_size,
            }
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
