//! `--latency-log FILE`: each report interval's latency histogram (nanoseconds, the messages
//! settled in that interval) in HdrHistogram's interval-log format, readable by HdrHistogram's
//! own tools (`HistogramLogProcessor`) and by the `hdrhistogram` crate's log reader.
//!
//! The file is pc-host's: created new, or an existing file whose first line is this log's
//! marker comment (rewritten); anything else is refused before the run starts. It is opened
//! before the run is recorded, and emptied only when the run starts: a run refused in between
//! leaves an existing log as it was and removes a file it created.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;

/// The first line of every latency log pc-host writes.
pub const MARK: &str = "#pc-host latency log";

/// An open latency log.
pub struct LatencyLog {
    file: File,
    path: PathBuf,
    serializer: V2DeflateSerializer,
    /// This process created the file (it did not exist).
    created: bool,
    /// [`LatencyLog::start`] wrote the header: the file now holds this run's log.
    started: bool,
}

impl std::fmt::Debug for LatencyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LatencyLog {
    /// Checks `path` can be written (before the run starts).
    ///
    /// # Errors
    /// One line: a missing directory, or an existing file that is not a pc-host latency log.
    /// `taken`: the paths the run uses for something else.
    pub fn check(path: &Path, taken: &[PathBuf]) -> Result<(), String> {
        super::own_file::check(
            ("--latency-log", path),
            ("pc-host latency log", "latency.hlog"),
            taken,
            is_latency_log,
        )
    }

    /// Opens the log (creating it if missing), before the run is recorded anywhere; its old
    /// content stays until [`LatencyLog::start`]. Holds an exclusive lock on the file (`flock`)
    /// for as long as the log is open: two runs given one path would each empty and write it,
    /// interleaving their intervals into a log neither could be read from.
    ///
    /// # Errors
    /// The file cannot be opened or created, or another process holds its lock (another run
    /// writing it).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let created = !path.exists();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(std::io::Error::other(
                    "another process holds its lock: a run writing it now (give each run a log \
                     of its own)",
                ));
            }
            // A file system without locks (some network and FUSE ones): written unlocked.
            Err(std::fs::TryLockError::Error(e))
                if e.kind() == std::io::ErrorKind::Unsupported
                    || e.raw_os_error() == Some(libc::ENOLCK) =>
            {
                tracing::warn!(
                    "--latency-log {}: its file system takes no lock ({e}); written unlocked",
                    path.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            serializer: V2DeflateSerializer::new(),
            created,
            started: false,
        })
    }

    /// Writes the header: the mark, the run, the start time.
    ///
    /// # Errors
    /// Writing failed.
    pub fn start(&mut self, run_id: i64, start: SystemTime) -> std::io::Result<()> {
        self.file.set_len(0)?;
        writeln!(self.file, "{MARK}: run {run_id}, values in nanoseconds")?;
        IntervalLogWriterBuilder::new()
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut self.file, &mut self.serializer)?;
        // Only now: a header that could not be written (a full disk) leaves a file this run
        // created to be removed (see `Drop`).
        self.started = true;
        Ok(())
    }

    /// Appends one interval: `h` recorded from `start_s` seconds into the run, for `len_s`.
    ///
    /// # Errors
    /// Writing failed.
    pub fn write(&mut self, h: &Histogram<u64>, start_s: f64, len_s: f64) -> std::io::Result<()> {
        let mut log =
            IntervalLogWriterBuilder::new().begin_log_with(&mut self.file, &mut self.serializer)?;
        log.write_histogram(
            h,
            Duration::from_secs_f64(start_s.max(0.0)),
            Duration::from_secs_f64(len_s.max(0.0)),
            None,
        )
        .map_err(|e| std::io::Error::other(format!("{e:?}")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LatencyLog {
    /// A run refused before it started, or whose log's header could not be written, leaves no
    /// log of its own behind (the next run would find a file that is not a latency log, and
    /// refuse it).
    fn drop(&mut self) {
        if self.created && !self.started {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn is_latency_log(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    let mut first = String::new();
    BufReader::new(f).read_line(&mut first).is_ok() && first.starts_with(MARK)
}
