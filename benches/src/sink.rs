//! pc-host's SQLite sink, set up the way `pc-host` sets it up, for `benches/sink.rs`.
//!
//! Nothing here re-implements the sink: [`SinkDb::create`] calls pc-host's own
//! `runs::prepare_run` (schema, the 16 KiB pages of an unthrottled run, WAL, a `runs` row) and
//! `sink::Writer::new` (`synchronous`, `wal_autocheckpoint = 0`, the cached multi-row INSERTs),
//! and [`SinkDb::with_checkpointer`] runs pc-host's own checkpoint thread beside the writer, as a
//! run does (without it the WAL would grow without bound). A measured commit is
//! `Writer::write`: `BEGIN IMMEDIATE`, the inserts, `COMMIT`, under the writer's mutex.
//!
//! The database is a file under [`std::env::temp_dir`], removed (with its `-wal` and `-shm`)
//! when the [`SinkDb`] is dropped.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pc_host::config::Synchronous;
use pc_host::message::{Record, generated_text};
use pc_host::sink::Sink as _;
use pc_host::sink::sqlite::checkpoint::{self, Checkpointer, StopSignal};
use pc_host::sink::sqlite::schema::PageSizeChoice;
use pc_host::sink::sqlite::{Writer, runs};

/// pc-host's default `--busy-timeout-ms`.
const BUSY: Duration = Duration::from_secs(5);

/// A fresh pc-host database in the temp directory with its writer, ready for commits.
#[derive(Debug)]
pub struct SinkDb {
    path: PathBuf,
    writer: Mutex<Writer>,
    checkpointer: Checkpointer,
}

impl SinkDb {
    /// Creates `pc-bench-sink-<pid>-<name>.db` (replacing any leftover of that name) and opens
    /// pc-host's writer on it with `synchronous`.
    ///
    /// # Errors
    /// Whatever pc-host reports for an unusable database.
    pub fn create(name: &str, synchronous: Synchronous) -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("pc-bench-sink-{}-{name}.db", std::process::id()));
        remove(&path);
        let new_run = runs::NewRun {
            producers: 1,
            config_json: "{}",
            started_at: 0,
            pages: PageSizeChoice::ForRate(0),
            delivered: false,
        };
        let (conn, run) = runs::prepare_run(&path, BUSY, &new_run)?;
        let writer = Writer::new(conn, &run, synchronous, &path, BUSY)?;
        let checkpointer = Checkpointer::open(&path, BUSY)?;
        Ok(Self {
            path,
            writer: Mutex::new(writer),
            checkpointer,
        })
    }

    /// Runs `f` with pc-host's checkpoint thread going beside it (a PASSIVE checkpoint every
    /// 100 ms, the WAL bounded), and stops that thread when `f` returns.
    pub fn with_checkpointer<R>(&mut self, f: impl FnOnce(&SinkWriter<'_>) -> R) -> R {
        let stop = StopSignal::default();
        let writer = &self.writer;
        let checkpointer = &mut self.checkpointer;
        std::thread::scope(|s| {
            s.spawn(|| checkpointer.run(writer, &stop));
            let result = f(&SinkWriter(writer));
            stop.stop();
            result
        })
    }

    /// Rows stored so far (all runs).
    ///
    /// # Errors
    /// If the count fails.
    pub fn rows(&self) -> anyhow::Result<u64> {
        let n = lock(&self.writer)
            .conn()
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get::<_, i64>(0))?;
        Ok(n.max(0) as u64)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SinkDb {
    fn drop(&mut self) {
        // Empty the WAL first (as a run ends), then remove the files.
        let _ = checkpoint::final_checkpoint(lock(&self.writer).conn(), &self.path);
        remove(&self.path);
    }
}

/// The writer, while the checkpoint thread runs: what a consumer commits through.
#[derive(Debug)]
pub struct SinkWriter<'a>(&'a Mutex<Writer>);

impl SinkWriter<'_> {
    /// Commits `batches` as one transaction, exactly as pc-host's group commit does: the
    /// writer's mutex, the records flattened into one slice, then `Writer::write`.
    ///
    /// # Panics
    /// If the commit fails: a bench must not time errors.
    pub fn commit(&self, batches: &[Vec<Record>]) {
        let records: Vec<&Record> = batches.iter().flatten().collect();
        if let Err(e) = lock(self.0).write(&records) {
            panic!("sink bench: {e:#}");
        }
    }
}

/// `rows` messages as pc-host's producers make them: `producers` producers (at least 1) taking
/// turns,
/// `payload` bytes of text each (pc-host's default is 64), created and due "now".
pub fn messages(rows: usize, producers: u32, payload: usize) -> Vec<Record> {
    let padding = ".".repeat(payload);
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let producers = producers.max(1) as usize;
    (0..rows)
        .map(|i| {
            let producer = (i % producers) as u32;
            let seq = (i / producers) as u64;
            Record {
                intended_ns: 0,
                created_at: unix_now,
                producer,
                seq,
                text: generated_text(producer, seq, &padding),
                ..Record::default()
            }
        })
        .collect()
}

fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
