//! The bare SQLite ceiling pc-host's SQLite sink is measured against
//! (`benches/sinks/sqlite.sh`): one thread builds pc-host's messages and inserts them the way
//! a careful hand-written loop would, with nothing else running. No ring, no consumers, no
//! checkpoint thread, no run bookkeeping.
//!
//! Same row shape as pc-host (`messages (id INTEGER PRIMARY KEY, message TEXT, created_at,
//! producer, seq, run_id)`), 16 KiB pages, WAL with `synchronous = NORMAL`, transactions of
//! `--batch` rows (pc-host's `--batch-size` default, 10000), 128-row prepared INSERTs binding
//! each text borrowed (no copy), SQLite's own autocheckpoint.
//!
//! `sqlite_loop --db PATH --messages N [--batch ROWS] [--payload BYTES] [--producers P]`
//! prints `{"messages":N,"seconds":S,"per_s":R}` (S: the first BEGIN to the last COMMIT).

use std::time::Instant;

use pc_host::message::generated_text;
use rusqlite::{Connection, params_from_iter, types::ToSql};

const ROWS_PER_STATEMENT: usize = 128;

struct Args {
    db: String,
    messages: u64,
    batch: u64,
    payload: usize,
    producers: u32,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        db: String::new(),
        messages: 1_000_000,
        batch: 10_000,
        payload: 64,
        producers: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!(
                "usage: sqlite_loop --db PATH [--messages N] [--batch ROWS] [--payload BYTES] \
                 [--producers P]"
            );
            std::process::exit(0);
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag} {v}: not a number"))
        };
        match flag.as_str() {
            "--db" => a.db = value,
            "--messages" => a.messages = num(&value)?,
            "--batch" => a.batch = num(&value)?.max(1),
            "--payload" => a.payload = num(&value)? as usize,
            "--producers" => {
                a.producers = u32::try_from(num(&value)?.max(1))
                    .map_err(|_| format!("--producers {value}: at most {}", u32::MAX))?;
            }
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if a.db.is_empty() {
        return Err("--db PATH is required".into());
    }
    Ok(a)
}

/// A new database at `path`. A file already there (or its `-wal` or `-shm`) is refused, not
/// replaced: the loop writes only to a database it makes.
fn open(path: &str) -> Result<Connection, String> {
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{path}{suffix}");
        if std::fs::symlink_metadata(&file).is_ok() {
            return Err(format!(
                "--db {path}: {file} already exists (sqlite_loop makes a new database and \
                 writes to no file it did not create: remove it, or name another path)"
            ));
        }
    }
    make(path).map_err(|e| format!("--db {path}: {e}"))
}

fn make(path: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "page_size", 16_384)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, message TEXT NOT NULL, \
         created_at INTEGER NOT NULL, producer INTEGER NOT NULL, seq INTEGER NOT NULL, \
         run_id INTEGER NOT NULL)",
    )?;
    Ok(conn)
}

fn insert_sql(rows: usize) -> String {
    let mut sql =
        String::from("INSERT INTO messages (message, created_at, producer, seq, run_id) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,1)");
    }
    sql
}

fn run(a: &Args, conn: &Connection) -> rusqlite::Result<f64> {
    let padding = ".".repeat(a.payload);
    let mut full = conn.prepare(&insert_sql(ROWS_PER_STATEMENT))?;
    let mut one = conn.prepare(&insert_sql(1))?;
    let mut texts: Vec<String> = Vec::with_capacity(ROWS_PER_STATEMENT);
    let mut keys: Vec<(i64, i64, i64)> = Vec::with_capacity(ROWS_PER_STATEMENT);
    let start = Instant::now();
    let mut made = 0u64;
    while made < a.messages {
        let in_tx = a.batch.min(a.messages - made);
        conn.execute_batch("BEGIN")?;
        let mut left = in_tx;
        while left > 0 {
            let n = (left as usize).min(ROWS_PER_STATEMENT);
            texts.clear();
            keys.clear();
            for _ in 0..n {
                let producer = (made % u64::from(a.producers)) as u32;
                let seq = made / u64::from(a.producers);
                texts.push(generated_text(producer, seq, &padding));
                keys.push((made as i64, i64::from(producer), seq as i64));
                made += 1;
            }
            let mut values: Vec<&dyn ToSql> = Vec::with_capacity(n * 4);
            for (text, (t, p, s)) in texts.iter().zip(&keys) {
                values.extend([text as &dyn ToSql, t, p, s]);
            }
            if n == ROWS_PER_STATEMENT {
                full.execute(params_from_iter(values))?;
            } else {
                for row in values.chunks(4) {
                    one.execute(params_from_iter(row.iter().copied()))?;
                }
            }
            left -= n as u64;
        }
        conn.execute_batch("COMMIT")?;
    }
    Ok(start.elapsed().as_secs_f64())
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sqlite_loop: {e}");
            std::process::exit(2);
        }
    };
    let conn = match open(&args.db) {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("sqlite_loop: {e}");
            std::process::exit(2);
        }
    };
    match run(&args, &conn) {
        Ok(secs) => println!(
            "{{\"messages\":{},\"seconds\":{secs:.6},\"per_s\":{:.1}}}",
            args.messages,
            args.messages as f64 / secs
        ),
        Err(e) => {
            eprintln!("sqlite_loop: {e}");
            std::process::exit(1);
        }
    }
}
