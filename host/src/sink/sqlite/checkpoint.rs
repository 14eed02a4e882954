//! Checkpoints off the commit path, and a bounded WAL.
//!
//! The writer has `wal_autocheckpoint = 0`, so no commit ever runs a checkpoint. A
//! [`Checkpointer`] thread with its own connection runs a PASSIVE checkpoint (it copies
//! committed pages into the database file while commits go on) every 10 ms while the WAL grows
//! at 25 MB/s or more (a quarter megabyte per 10 ms), else every 100 ms (fewer fsyncs at low
//! rates, where a pass has little to write back). Small, frequent passes keep the commits'
//! latency flat: each pass fsyncs the WAL and then the database file, and a commit that
//! appends to the WAL during that writeback can wait for it: the more frames a pass writes
//! back, the longer (a pass every 100 ms at 10k msg/s holds such commits for milliseconds).
//!
//! PASSIVE alone never lets the WAL restart under constant writes, so once the WAL passes
//! [`WAL_BOUND`] the checkpointer catches up with unlocked passes to within about a megabyte
//! of frames, flushes the database file and the WAL to disk itself (see
//! [`Checkpointer::flush_files`]), then takes the writer's mutex for one more PASSIVE pass,
//! which finishes the log; the next commit starts the WAL over from its beginning. That pass
//! holds up every commit for as long as its copy and its two fsyncs take, and the fsyncs
//! take as long as there are pages to write: the WAL's since the last pass, the database
//! file's since the last pass that copied up to the end of the log (a passive pass that
//! leaves frames behind does not sync it). Flushed just before, the WAL has only the frames
//! appended since, and the database file only the pages this pass copies. A flush that fails
//! ends the checkpoints for the run (see [`Checkpointer::flush_files`]).
//! The WAL stays under about twice the bound, and only that one short pass per bound's worth
//! of data ever holds up a commit. The run ends with a TRUNCATE checkpoint (WAL emptied).

use std::path::Path;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use rusqlite::{Connection, MAIN_DB, ffi, wal::CheckpointMode};

use super::schema::db_error;

/// The WAL size past which the checkpointer makes the log restart.
pub const WAL_BOUND: u64 = 64 << 20;
/// How often the checkpointer runs while the WAL grows by `BUSY_GROWTH` bytes or more per
/// `CHECKPOINT_EVERY`, and otherwise.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(10);
const CHECKPOINT_IDLE: Duration = Duration::from_millis(100);
const BUSY_GROWTH: u64 = 256 << 10;
/// Frames (in bytes) left to copy below which the pass that finishes the log takes the
/// writer's lock; above it, unlocked passes catch up first, at most `CATCH_UP_PASSES` of them.
const CATCH_UP_LEFT: u64 = 1 << 20;
const CATCH_UP_PASSES: usize = 4;

/// Asks a [`Checkpointer`] to stop.
#[derive(Debug, Default)]
pub struct StopSignal {
    stopped: Mutex<bool>,
    cond: Condvar,
}

impl StopSignal {
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cond.notify_all();
    }

    /// Waits up to `timeout`; returns whether stop was asked.
    fn wait(&self, timeout: Duration) -> bool {
        let guard = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = self
            .cond
            .wait_timeout_while(guard, timeout, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }
}

/// The checkpoint thread's connection and its findings.
#[derive(Debug)]
pub struct Checkpointer {
    conn: Connection,
    page_size: u64,
    /// The largest WAL seen, in bytes.
    pub wal_max_bytes: u64,
    /// Passes that held the writer's lock (every commit waited meanwhile): how many, and the
    /// longest, in ns.
    pub writer_holds: u64,
    pub writer_held_max_ns: u64,
    /// The `-wal` file, measured at each pass (also when checkpoints fail).
    wal_path: std::path::PathBuf,
    /// Whether a failed checkpoint was reported (once; a failing checkpoint does not stop a
    /// run, the WAL just grows).
    warned: bool,
}

impl Checkpointer {
    pub fn open(path: &Path, busy: Duration) -> anyhow::Result<Self> {
        let conn = super::schema::open(path, busy)?;
        // A read opens the WAL for this connection; until then a checkpoint sees no log.
        let page_size: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |_| Ok(()))
            .and_then(|()| conn.query_row("PRAGMA page_size", [], |r| r.get(0)))
            .map_err(|e| db_error(path, e, busy))?;
        Ok(Self {
            conn,
            page_size: page_size.max(512) as u64,
            wal_max_bytes: 0,
            writer_holds: 0,
            writer_held_max_ns: 0,
            wal_path: crate::paths::sqlite_side_file(path, "-wal"),
            warned: false,
        })
    }

    /// The largest WAL seen, measuring the file once more now: a run shorter than one pass
    /// would otherwise report none.
    pub fn wal_max_now(&mut self) -> u64 {
        let file = std::fs::metadata(&self.wal_path).map_or(0, |m| m.len());
        self.wal_max_bytes = self.wal_max_bytes.max(file);
        self.wal_max_bytes
    }

    /// The database's page size, in bytes.
    #[must_use]
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Checkpoints until `stop`; see the module docs.
    /// `writer` is the mutex commits hold (taken to finish the log between two commits).
    pub fn run<W>(&mut self, writer: &Mutex<W>, stop: &StopSignal) {
        let mut every = CHECKPOINT_IDLE;
        let mut growth = Growth::default();
        while !stop.wait(every) {
            let file = std::fs::metadata(&self.wal_path).map_or(0, |m| m.len());
            self.wal_max_bytes = self.wal_max_bytes.max(file);
            let Some((log, done)) = self.pass() else {
                every = CHECKPOINT_IDLE;
                continue;
            };
            every = if growth.busy(log, self.page_size, Instant::now()) {
                CHECKPOINT_EVERY
            } else {
                CHECKPOINT_IDLE
            };
            let wal = log * self.page_size;
            self.wal_max_bytes = self.wal_max_bytes.max(wal);
            if wal <= WAL_BOUND {
                continue;
            }
            // Finish the log under the writer's lock, which holds up every commit for as long
            // as that pass takes (its copy and its fsyncs): so first catch up without the lock
            // until only the last few milliseconds of frames are left, and flush (below).
            let mut left = (log - done) * self.page_size;
            for _ in 0..CATCH_UP_PASSES {
                if left <= CATCH_UP_LEFT {
                    break;
                }
                match self.pass() {
                    Some((log, done)) => left = (log - done) * self.page_size,
                    None => break,
                }
            }
            // Unless the writer outpaces unlocked passes and the WAL has grown far past the
            // bound, a pass with much left to copy waits for the next round.
            if left < WAL_BOUND / 8 || wal > 2 * WAL_BOUND {
                if let Err(why) = self.flush_files() {
                    // Reported once: a later checkpoint's sync on these handles would succeed
                    // and let the WAL restart over pages that never reached the disk. So no
                    // more checkpoints: the WAL keeps every commit from here on.
                    tracing::warn!(
                        "{why}: no more checkpoints in this run; the WAL keeps every commit"
                    );
                    return;
                }
                let writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
                let held = Instant::now();
                self.pass();
                drop(writer);
                let held_ns = u64::try_from(held.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.writer_holds += 1;
                self.writer_held_max_ns = self.writer_held_max_ns.max(held_ns);
            }
        }
    }

    /// Flushes the database file, then the WAL, to disk (SQLite's own `xSync` on this
    /// connection's handles, as a checkpoint syncs them), so that the pass finishing the log
    /// under the writer's lock finds fewer pages to write. Returns how many files it flushed
    /// (1 without a WAL).
    ///
    /// Through SQLite's handles, not a descriptor of our own: closing any descriptor of the
    /// database file would drop every POSIX lock this process holds on it, the writer's too.
    ///
    /// # Errors
    /// Which file failed to sync, and SQLite's result code. Linux reports a failed writeback
    /// once per open file, so the next sync of the same handle, the checkpoint's own, would
    /// succeed: the caller must not checkpoint with this connection again.
    fn flush_files(&self) -> Result<usize, String> {
        let files = self.files();
        for &(what, file) in &files {
            // SAFETY: `file` came from `files()` just now, with no SQLite call on this
            // connection since (only such a call could free the WAL's), and its method table
            // is set (`files` checked it).
            let rc = unsafe {
                match (*(*file).pMethods).xSync {
                    Some(sync) => sync(file, ffi::SQLITE_SYNC_NORMAL),
                    None => continue,
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(format!(
                    "syncing the {what} to disk failed (SQLite result code {rc})"
                ));
            }
        }
        Ok(files.len())
    }

    /// This connection's open file objects, named: the database file's, then the WAL's.
    /// Without a WAL the second opcode gives the rollback journal's object, closed (no method
    /// table), and it is left out. The pointers are valid until the next SQLite call on this
    /// connection (leaving WAL mode frees the WAL's).
    fn files(&self) -> Vec<(&'static str, *mut ffi::sqlite3_file)> {
        let mut files = Vec::with_capacity(2);
        for (what, op) in [
            ("database file", ffi::SQLITE_FCNTL_FILE_POINTER),
            ("WAL", ffi::SQLITE_FCNTL_JOURNAL_POINTER),
        ] {
            let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
            // SAFETY: `self.conn` is open and used only by this thread; both opcodes write one
            // `sqlite3_file *` through the pointer given, which points at `file`, and change
            // nothing else.
            let rc = unsafe {
                ffi::sqlite3_file_control(
                    self.conn.handle(),
                    c"main".as_ptr(),
                    op,
                    (&raw mut file).cast(),
                )
            };
            // SAFETY: a non-null `file` is the connection's own file object, written just now
            // (valid until the next SQLite call on this connection); only its method table
            // pointer is read.
            if rc == ffi::SQLITE_OK && !file.is_null() && unsafe { !(*file).pMethods.is_null() } {
                files.push((what, file));
            }
        }
        files
    }

    /// The sizes SQLite's handles report for the files of [`Self::files`] (test support).
    #[cfg(test)]
    fn file_sizes(&self) -> Vec<u64> {
        let mut sizes = Vec::new();
        for (_, file) in self.files() {
            let mut size: ffi::sqlite3_int64 = 0;
            // SAFETY: as in `flush_files`.
            let rc = unsafe {
                let size_of = (*(*file).pMethods)
                    .xFileSize
                    .expect("a VFS file has xFileSize");
                size_of(file, &raw mut size)
            };
            assert_eq!(rc, ffi::SQLITE_OK);
            sizes.push(size as u64);
        }
        sizes
    }

    /// One PASSIVE checkpoint: `(frames in the WAL, frames checkpointed)`.
    fn pass(&mut self) -> Option<(u64, u64)> {
        match self
            .conn
            .wal_checkpoint_v2(Some(MAIN_DB), CheckpointMode::PASSIVE)
        {
            Ok((log, done)) => Some((log.max(0) as u64, done.clamp(0, log.max(0)) as u64)),
            Err(e) => {
                // Busy: another process is checkpointing; nothing to report.
                if !self.warned && e.sqlite_error_code() != Some(rusqlite::ErrorCode::DatabaseBusy)
                {
                    tracing::warn!("checkpoint failed (the run goes on): {e}");
                    self.warned = true;
                }
                None
            }
        }
    }
}

/// How fast the WAL grew between two passes, from their frame counts.
#[derive(Debug)]
struct Growth {
    /// The last pass: when, and the frames in the WAL then.
    at: Instant,
    log: u64,
}

impl Default for Growth {
    fn default() -> Self {
        Self {
            at: Instant::now(),
            log: 0,
        }
    }
}

impl Growth {
    /// Whether the WAL grew by `BUSY_GROWTH` bytes per `CHECKPOINT_EVERY` or more since the
    /// last pass, which now sees `log` frames. A log that shrank started over: all of its
    /// frames are new. (One that started over and is already longer than before counts only
    /// the difference: an underestimate for one interval, right after a pass that copied
    /// everything.)
    fn busy(&mut self, log: u64, page_size: u64, now: Instant) -> bool {
        let frames = log.checked_sub(self.log).unwrap_or(log);
        let elapsed = now.saturating_duration_since(self.at).max(CHECKPOINT_EVERY);
        *self = Self { at: now, log };
        let per_every = u128::from(frames * page_size) * CHECKPOINT_EVERY.as_nanos();
        per_every >= u128::from(BUSY_GROWTH) * elapsed.as_nanos()
    }
}

/// The final checkpoint, once every consumer is done: copies everything into the database file
/// and truncates the WAL to zero bytes.
///
/// # Errors
/// [`LeftToOthers`] if another connection was using the WAL past the busy timeout (another
/// pc-host writing the same file, or a reader): its checkpoints copy the WAL in later. Any
/// other failure as it is.
pub fn final_checkpoint(conn: &Connection, path: &Path) -> anyhow::Result<()> {
    match conn.wal_checkpoint_v2(Some(MAIN_DB), CheckpointMode::TRUNCATE) {
        Ok(_) => Ok(()),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
            Err(LeftToOthers(path.display().to_string()).into())
        }
        Err(e) => Err(anyhow!(
            "final checkpoint of {} failed: {e}",
            path.display()
        )),
    }
}

/// The final checkpoint found another connection using the database's WAL (the database's
/// path): nothing failed, and the WAL is not emptied by this run.
#[derive(Debug)]
pub struct LeftToOthers(pub String);

impl std::fmt::Display for LeftToOthers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the final checkpoint of {} left the write-ahead log to another connection using \
             the database (another pc-host writing it, or a reader): that connection's \
             checkpoints copy it into the database file",
            self.0
        )
    }
}

impl std::error::Error for LeftToOthers {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two processes writing one file each end with a final checkpoint, which finds the other
    /// using the WAL: that is said as such (an info line), not as a failure.
    #[test]
    fn a_final_checkpoint_behind_another_connection_leaves_the_wal_to_it() {
        let dir = std::env::temp_dir().join(format!("pc-final-cp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shared.db");
        let conn = Connection::open(&path).unwrap();
        conn.busy_timeout(Duration::ZERO).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN; SELECT * FROM t;").unwrap();
        conn.execute("INSERT INTO t VALUES (2)", []).unwrap();
        let e = final_checkpoint(&conn, &path).unwrap_err();
        assert!(e.is::<LeftToOthers>(), "{e:#}");
        assert!(e.to_string().contains("another connection"), "{e}");
        other.execute_batch("COMMIT").unwrap();
        final_checkpoint(&conn, &path).unwrap();
        drop((conn, other));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// At 16 KiB pages, 16 frames per `CHECKPOINT_EVERY` make the rate busy.
    const PAGE: u64 = 16 << 10;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn the_checkpoint_rate_follows_the_wal_growth_per_time_not_per_pass() {
        let t = Instant::now();
        let mut g = Growth { at: t, log: 100 };
        // 16 frames (256 KiB) in 10 ms: busy; the same 16 frames over 100 ms: not.
        assert!(g.busy(116, PAGE, at(t, 10)));
        assert!(!g.busy(132, PAGE, at(t, 110)));
        // No new frame: idle.
        assert!(!g.busy(132, PAGE, at(t, 120)));
    }

    #[test]
    fn the_checkpointer_flushes_the_database_file_and_the_wal_through_its_own_sqlite_handles() {
        let dir = std::env::temp_dir().join(format!("pc-flush-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("flush.db");
        let busy = Duration::from_secs(5);
        let writer = crate::sink::sqlite::schema::open(&path, busy).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);",
            )
            .unwrap();
        let checkpointer = Checkpointer::open(&path, busy).unwrap();
        let on_disk = [&path, &crate::paths::sibling(&path, "-wal")]
            .map(|p| std::fs::metadata(p).unwrap().len());
        assert_ne!(
            on_disk[0], on_disk[1],
            "sizes that tell the two files apart"
        );
        assert_eq!(
            checkpointer.file_sizes(),
            on_disk,
            "the database file, then its WAL"
        );
        assert_eq!(checkpointer.flush_files(), Ok(2));
        drop((checkpointer, writer));

        // Without a WAL, the database file alone.
        let plain = dir.join("plain.db");
        let writer = crate::sink::sqlite::schema::open(&plain, busy).unwrap();
        writer
            .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        let checkpointer = Checkpointer::open(&plain, busy).unwrap();
        let size = std::fs::metadata(&plain).unwrap().len();
        assert_eq!(checkpointer.file_sizes(), [size]);
        assert_eq!(checkpointer.flush_files(), Ok(1));
        drop((checkpointer, writer));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Through a `--db` link SQLite keeps the log beside the file the link leads to; the
    /// largest log the run reports is that file's size, not nothing.
    #[test]
    fn the_wal_is_measured_beside_the_file_a_link_leads_to() {
        let dir = std::env::temp_dir().join(format!("pc-wal-link-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let real = dir.join("data/real.db");
        let link = dir.join("link.db");
        std::os::unix::fs::symlink("data/real.db", &link).unwrap();
        let busy = Duration::from_secs(5);
        let writer = crate::sink::sqlite::schema::open(&link, busy).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);",
            )
            .unwrap();
        let wal = std::fs::metadata(crate::paths::sibling(&real, "-wal"))
            .unwrap()
            .len();
        assert!(wal > 0);
        let mut checkpointer = Checkpointer::open(&link, busy).unwrap();
        assert_eq!(checkpointer.wal_max_now(), wal);
        drop((checkpointer, writer));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_log_that_started_over_counts_all_its_frames_as_new() {
        let t = Instant::now();
        let mut g = Growth { at: t, log: 4000 };
        assert!(g.busy(20, PAGE, at(t, 10)), "20 new frames in 10 ms");
        assert!(!g.busy(21, PAGE, at(t, 20)), "1 frame in 10 ms");
    }
}
