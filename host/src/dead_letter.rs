//! `--dead-letter PATH`: a JSON-lines file of the records this run could not store, each with
//! where it came from, why, the error and when. `--source file:PATH?format=dead-letter` reads
//! one back (see `source::lines::record_text`).
//!
//! Guarantees:
//! - An entry is on disk (written and `fdatasync`ed) before anything that depends on it: a
//!   source's rejected lines before the chunk they were read in is pushed (so no committed
//!   position passes a rejected line that is not in the file), a consumer's entries before it
//!   reports them dead-lettered.
//! - The file is pc-host's: created by it (new), or an existing file whose first line is a
//!   pc-host dead-letter entry, appended to. Anything else is refused before the run starts.
//! - Runs may share one file, at once: each append holds an exclusive lock on it (`flock`,
//!   advisory: pc-host's own writers take it; an append waits up to [`LOCK_WAIT`] for it,
//!   and fails, writing nothing, if it cannot take it by then), so another run's entry is
//!   never half-written while this one looks at the file's end, and a new file appears under
//!   its name only with a whole first entry in it (written beside it under a hidden name, then
//!   renamed unless something is there by then), so a run that finds it there appends to it
//!   instead of failing. (A file system that cannot rename that way gets the file made in
//!   place.)
//! - The entries go to the file the path names when they are written: if the file was moved
//!   or removed during the run, a new one is made at the path; if another program's file is
//!   there now, the write fails and that file is left as it is.
//!
//! Not guaranteed: exactly-once. A line rejected at the end of a file input whose position was
//! not yet committed when the process was killed is read, rejected and written again by the
//! next run.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::message::Record;
use crate::paths::{same_place, spelled_as_file, writable};

/// The key that marks a line as a pc-host dead-letter entry, and the entry format's version.
pub const MARK: &str = "pc_dead_letter";
pub const VERSION: u32 = 1;

/// Why a record is in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The source could not make a record of the line (invalid UTF-8 or JSON, too long).
    Rejected,
    /// The sink refused this one record (a constraint, a trigger, too big).
    Refused,
    /// The sink kept failing for `--retry-for` seconds.
    RetriesExhausted,
    /// As `RetriesExhausted`, but the record was sent and its outcome is unknown: the sink may
    /// hold it (a NATS publish whose ack never came, a database COMMIT whose reply was lost).
    Unconfirmed,
    /// The sink failed for good (a fatal error), or failed earlier in the run.
    SinkFailed,
    /// Read from stdin as the run was torn down, and never queued for the sink.
    NotQueued,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Refused => "refused",
            Self::RetriesExhausted => "retries_exhausted",
            Self::Unconfirmed => "unconfirmed",
            Self::SinkFailed => "sink_failed",
            Self::NotQueued => "not_queued",
        }
    }
}

/// The dead-letter file of a run (see the module docs).
#[derive(Debug)]
pub struct DeadLetters {
    path: PathBuf,
    run_id: i64,
    /// Opened at the first entry: a run with nothing to set aside leaves no file behind.
    file: Mutex<Option<File>>,
    /// The file existed (and is a dead-letter file): append; otherwise create it new.
    existed: bool,
    /// Input ids to the names the sources gave them, for the entries' `source`.
    names: Mutex<HashMap<u32, String>>,
    /// The file system refused the lock once (and a warning said so): appends go on unlocked.
    unlocked: std::sync::atomic::AtomicBool,
    /// How long an append waits for the file's lock ([`LOCK_WAIT`]; tests shorten it).
    lock_wait: Duration,
    /// An append waited `lock_wait` in vain: the later ones try once and do not wait (the run
    /// is stopping, and each would otherwise wait in turn behind the file's mutex).
    lock_given_up: std::sync::atomic::AtomicBool,
}

/// How long an append waits for the file's lock while another process holds it: another
/// pc-host run holds it for one append and its `fdatasync`; if the lock cannot be taken by
/// then, this run's write fails (a consumer's records then count as not stored, and the run
/// stops) rather than stall the consumer, and with it the pipeline, for as long as it lasts.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

impl DeadLetters {
    /// Checks that `path` can be this run's dead-letter file, before anything runs.
    ///
    /// # Errors
    /// One line: the path ends in `/` (a directory's spelling), the directory is missing or not
    /// writable, or the file exists and is not a pc-host dead-letter file, or it is one of
    /// `taken` (the database, an input).
    pub fn check(path: &Path, taken: &[PathBuf]) -> Result<bool, String> {
        spelled_as_file("--dead-letter", path, "dead.jsonl")?;
        let shown = path.display();
        let dir = crate::paths::dir_of(path);
        if !dir.is_dir() {
            let what = if dir.exists() {
                "is not a directory"
            } else {
                "does not exist"
            };
            return Err(format!(
                "--dead-letter {shown}: directory {} {what}",
                dir.display()
            ));
        }
        if !writable(dir) {
            return Err(format!(
                "--dead-letter {shown}: directory {} is not writable",
                dir.display()
            ));
        }
        if taken.iter().any(|t| same_place(t, path)) {
            return Err(format!(
                "--dead-letter {shown} is the database or an input of this run: use another path"
            ));
        }
        // Created with O_EXCL, which a link refuses even when it leads nowhere: say so now,
        // not at the first dead letter.
        crate::paths::link_to_nothing("--dead-letter", path)?;
        // Through a link: what would be written is its target.
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Made at the first dead letter: find out now whether it can be (a file
                // system that refuses new files whatever the permissions say, as /sys does).
                probe_new_file(dir).map_err(|e| {
                    format!(
                        "--dead-letter {shown}: cannot make a file in {}: {e}",
                        dir.display()
                    )
                })?;
                return Ok(false);
            }
            // A name too long for the file system, say.
            Err(e) => return Err(format!("--dead-letter {shown}: {e}")),
        };
        if meta.is_dir() {
            return Err(format!(
                "--dead-letter {shown} is a directory: give a file path (e.g. {shown}/dead.jsonl)"
            ));
        }
        if !meta.is_file() || !is_dead_letter_file(path) {
            return Err(format!(
                "--dead-letter {shown} exists and is not a pc-host dead-letter file; pc-host \
                 will not write to it: use another path"
            ));
        }
        if !writable(path) {
            return Err(format!("--dead-letter {shown} is not writable"));
        }
        Ok(true)
    }

    /// The dead-letter file at `path`, as [`Self::check`] found it (`existed`).
    pub fn new(path: &Path, existed: bool, run_id: i64) -> Self {
        Self {
            path: path.to_path_buf(),
            run_id,
            file: Mutex::new(None),
            existed,
            names: Mutex::new(HashMap::new()),
            unlocked: std::sync::atomic::AtomicBool::new(false),
            lock_wait: LOCK_WAIT,
            lock_given_up: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// This file, its appends waiting up to `wait` for its lock (instead of [`LOCK_WAIT`]).
    #[cfg(test)]
    fn with_lock_wait(self, wait: Duration) -> Self {
        Self {
            lock_wait: wait,
            ..self
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names input `id` in later entries.
    pub fn name_input(&self, id: u32, name: String) {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, name);
    }

    /// An entry for a record the sink did not store, named where it came from: a generated
    /// record by its producer and seq; a line by its input and line; a broker's message by
    /// the run that published it (its own run id, producer and seq, as that run's own entries
    /// name its records), or, for a message no pc-host run published, by its stream and
    /// sequence number.
    pub fn record_entry(&self, r: &Record, generated: bool, reason: Reason, error: &str) -> Value {
        let (run_id, source) = match r.delivery.as_deref() {
            Some(d) if d.key_run != 0 => (
                d.published_by,
                json!({ "producer": r.producer, "seq": r.seq, "via": "nats" }),
            ),
            Some(_) => (self.run_id, self.stream_source(r.producer, r.seq)),
            None if generated => (self.run_id, json!({ "producer": r.producer, "seq": r.seq })),
            None => (
                self.run_id,
                self.input_source(
                    r.producer,
                    r.seq,
                    (r.end_offset > 0).then_some(r.end_offset),
                ),
            ),
        };
        self.entry_of(run_id, reason, error, source, json!({ "record": r.text }))
    }

    /// An entry for a line a source could not make a record of: its text if it is UTF-8,
    /// otherwise its bytes in base64; neither if it was too long to keep (`bytes` is None).
    pub fn line_entry(
        &self,
        input: u32,
        line: u64,
        end_offset: Option<u64>,
        bytes: Option<&[u8]>,
        error: &str,
    ) -> Value {
        let source = self.input_source(input, line, end_offset);
        self.entry(Reason::Rejected, error, source, record_fields(bytes))
    }

    /// An entry for a message of a broker's stream (input `input`, named as [`name_input`]
    /// was told) that cannot be a record: where it was, by the stream's own sequence number
    /// (from 1), and its payload as [`line_entry`](Self::line_entry) keeps a line's.
    ///
    /// [`name_input`]: Self::name_input
    pub fn message_entry(
        &self,
        input: u32,
        stream_sequence: u64,
        bytes: Option<&[u8]>,
        error: &str,
    ) -> Value {
        let source = self.stream_source(input, stream_sequence);
        self.entry(Reason::Rejected, error, source, record_fields(bytes))
    }

    /// [`message_entry`](Self::message_entry) for a message that names its publisher's record
    /// (run `published_by`, `producer`, `seq`: a pc-host publisher's): the entry is that
    /// run's, its source the record's (as a refused record's is, `"via": "nats"`, with the
    /// stream sequence), so that `verify` finds it where that record is missing.
    pub fn published_message_entry(
        &self,
        (published_by, producer, seq): (i64, u32, u64),
        stream_sequence: u64,
        bytes: &[u8],
        error: &str,
    ) -> Value {
        let source = json!({
            "producer": producer,
            "seq": seq,
            "via": "nats",
            "stream_sequence": stream_sequence,
        });
        self.entry_of(
            published_by,
            Reason::Rejected,
            error,
            source,
            record_fields(Some(bytes)),
        )
    }

    fn input_name(&self, input: u32) -> Option<String> {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&input)
            .cloned()
    }

    fn input_source(&self, input: u32, line: u64, end_offset: Option<u64>) -> Value {
        let name = self.input_name(input);
        json!({ "input": name, "input_id": input, "line": line + 1, "end_offset": end_offset })
    }

    /// A message of input `input`, a broker's stream, by its stream sequence number.
    fn stream_source(&self, input: u32, stream_sequence: u64) -> Value {
        let name = self.input_name(input);
        json!({ "input": name, "input_id": input, "stream_sequence": stream_sequence })
    }

    /// An entry of this run.
    fn entry(&self, reason: Reason, error: &str, source: Value, record: Value) -> Value {
        self.entry_of(self.run_id, reason, error, source, record)
    }

    /// An entry carrying `run_id`: this run's, or the publisher's of a record it consumed.
    fn entry_of(
        &self,
        run_id: i64,
        reason: Reason,
        error: &str,
        source: Value,
        record: Value,
    ) -> Value {
        let mut e = json!({
            MARK: VERSION,
            "time": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            "run_id": run_id,
            "reason": reason.as_str(),
            "error": error,
            "source": source,
        });
        if let (Value::Object(e), Value::Object(r)) = (&mut e, record) {
            e.extend(r);
        }
        e
    }

    /// Appends `entries`, one line each, and makes them durable.
    ///
    /// # Errors
    /// The file could not be opened, locked, written or synced, or its name now names another
    /// program's file: the entries may not be in it (and no part of them stays).
    pub fn write(&self, entries: &[Value]) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut text = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut text, e)?;
            text.push(b'\n');
        }
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        // The name may come to name another file, or none, between an open and the lock (a
        // rotation, another run's failed creation): the file there now is opened instead.
        for _ in 0..REOPENS {
            let f = match file.take() {
                Some(f) => f,
                None => match self.open_or_create(&text)? {
                    Opened::Created(f) => {
                        *file = Some(f);
                        return Ok(());
                    }
                    Opened::Existing(f) => f,
                },
            };
            if self.append(&f, &text)? {
                *file = Some(f);
                return Ok(());
            }
        }
        Err(std::io::Error::other(format!(
            "{}: replaced {REOPENS} times while this run wrote to it",
            self.path.display()
        )))
    }

    /// The file to append to, or a new one made with `text` in it: first the way the check
    /// before the run found it (there, or not), then the other.
    fn open_or_create(&self, text: &[u8]) -> std::io::Result<Opened> {
        if !self.existed
            && let Some(f) = self.create_with(text)?
        {
            return Ok(Opened::Created(f));
        }
        match self.open_existing() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match self.create_with(text)? {
                Some(f) => Ok(Opened::Created(f)),
                None => self.open_existing().map(Opened::Existing),
            },
            opened => opened.map(Opened::Existing),
        }
    }

    /// Makes the file with `text` in it: written and synced under a name of its own in the
    /// same directory, then renamed to the path unless something is there by then
    /// (`RENAME_NOREPLACE`), so nobody sees the file without a whole first entry. `None`:
    /// another run made it first (append to it). Where the file system cannot rename that
    /// way, the file is made in place ([`create_in_place`](Self::create_in_place)).
    fn create_with(&self, text: &[u8]) -> std::io::Result<Option<File>> {
        let dir = crate::paths::dir_of(&self.path);
        let (mut f, beside) = new_file_in(dir)?;
        let placed = f
            .write_all(text)
            .and_then(|()| f.sync_data())
            .and_then(|()| crate::paths::rename_no_replace(&beside, &self.path));
        match placed {
            Ok(()) => {
                // The entries are in the file, under its name: a directory that cannot be
                // synced is said, not taken for entries not written (they would be again).
                if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
                    tracing::warn!(
                        "--dead-letter {}: made, but its directory could not be synced ({e}): \
                         a crash now could lose the file",
                        self.path.display()
                    );
                }
                Ok(Some(f))
            }
            Err(e) => {
                let _ = std::fs::remove_file(&beside);
                match e.raw_os_error() {
                    Some(libc::EEXIST) => Ok(None),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
                        self.create_in_place(text)
                    }
                    _ => Err(e),
                }
            }
        }
    }

    /// [`create_with`](Self::create_with) on a file system that cannot rename without
    /// replacing: made at the path, locked and written. A run that opens it before the first
    /// entry is in finds no entry there and fails; if the write fails, the file is removed
    /// while still locked, so a run waiting for the lock finds the name free, not a file
    /// nobody will see.
    fn create_in_place(&self, text: &[u8]) -> std::io::Result<Option<File>> {
        let f = match OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(e),
        };
        let written = self.lock(&f).and_then(|()| {
            File::open(crate::paths::dir_of(&self.path))
                .and_then(|d| d.sync_all())
                .and_then(|()| { &f }.write_all(text))
                .and_then(|()| f.sync_data())
        });
        if written.is_err() {
            // Not left without a whole first entry (later runs would refuse it as not theirs).
            let _ = std::fs::remove_file(&self.path);
        }
        let _ = f.unlock();
        written.map(|()| Some(f))
    }

    /// Opens the file at the path to append, if it is a pc-host dead-letter file (checked on
    /// the descriptor opened, without blocking: a pipe put there is refused, not waited on).
    fn open_existing(&self) -> std::io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let f = OpenOptions::new()
            .read(true)
            .append(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)?;
        if !f.metadata()?.is_file() || !is_entry(&first_line(&f)?) {
            return Err(std::io::Error::other(format!(
                "{} is no longer a pc-host dead-letter file (another program's file is there \
                 now): pc-host will not write to it",
                self.path.display()
            )));
        }
        Ok(f)
    }

    /// Appends `text` to `f` under the file's lock: first checks that the path still names
    /// `f` (`false`: it names another file, or none: nothing written), mends its end (see
    /// [`mend_end`]), then writes and syncs; a failed write is cut off again, so no partial
    /// entry stays for the next one to be glued to.
    fn append(&self, f: &File, text: &[u8]) -> std::io::Result<bool> {
        self.lock(f)?;
        let appended = names_file(&self.path, f).and_then(|named| {
            if !named {
                return Ok(false);
            }
            mend_end(f, &self.path)?;
            let before = f.metadata()?.len();
            let written = { f }.write_all(text).and_then(|()| f.sync_data());
            if written.is_err() {
                let _ = f.set_len(before).and_then(|()| f.sync_data());
            }
            written.map(|()| true)
        });
        let _ = f.unlock();
        appended
    }
}

/// How often [`DeadLetters::write`] opens the file again after finding it replaced.
const REOPENS: usize = 4;

/// What [`DeadLetters::open_or_create`] found.
#[derive(Debug)]
enum Opened {
    /// Made with the entries in it.
    Created(File),
    /// There already: append.
    Existing(File),
}

/// A new file in `dir` under a hidden name of pc-host's (short, whatever the dead-letter
/// file's name: a long name stays within the name limit), and that name. A name already taken
/// (a file a killed run left) is passed over.
fn new_file_in(dir: &Path) -> std::io::Result<(File, PathBuf)> {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut tries = 0;
    loop {
        tries += 1;
        // Relaxed: a counter whose values only have to differ.
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!(
            ".pc-host-{}-{n}.dead-letter.new",
            std::process::id()
        ));
        match OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 1000 => {}
            Err(e) => return Err(e),
        }
    }
}

/// Makes a file in `dir` the way the first dead letter will ([`new_file_in`]), and removes it.
fn probe_new_file(dir: &Path) -> std::io::Result<()> {
    let (f, made) = new_file_in(dir)?;
    drop(f);
    std::fs::remove_file(made)
}

/// Whether `path` (through any link) names the file `f` is open on.
fn names_file(path: &Path, f: &File) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let open = f.metadata()?;
    match std::fs::metadata(path) {
        Ok(named) => Ok((named.dev(), named.ino()) == (open.dev(), open.ino())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The first line of `f` (read from its start, whatever its offset), at most [`ENTRY_MOST`]
/// bytes of it.
fn first_line(f: &File) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt as _;
    let mut line = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while (line.len() as u64) < ENTRY_MOST {
        let n = f.read_at(&mut buf, line.len() as u64)?;
        if n == 0 {
            break;
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&buf[..=end]);
            break;
        }
        line.extend_from_slice(&buf[..n]);
    }
    line.truncate(usize::try_from(ENTRY_MOST).unwrap_or(usize::MAX));
    Ok(line)
}

impl DeadLetters {
    /// Takes the file's lock, waiting up to `lock_wait` while another holder has it (`flock`
    /// has no timed wait: it tries again after naps of 1 ms doubling to 4 ms, as SQLite's busy
    /// handler does; short, so that another run's appends, each holding the lock briefly, do
    /// not keep it from this one), and not at all once a wait was given up; on a file system
    /// that has no locks (an NFS mount without its lock service), goes on without, as a file
    /// that one run at a time writes needs none, and says so once.
    ///
    /// # Errors
    /// The lock could not be taken within `lock_wait` (`TimedOut`), or not at all.
    fn lock(&self, f: &File) -> std::io::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        // Relaxed: a flag for the warning only; the appends are ordered by the file's mutex.
        if self.unlocked.load(Relaxed) {
            return Ok(());
        }
        let wait = if self.lock_given_up.load(Relaxed) {
            Duration::ZERO
        } else {
            self.lock_wait
        };
        let deadline = Instant::now() + wait;
        let mut nap = Duration::from_millis(1);
        let locked = loop {
            match f.try_lock() {
                Ok(()) => break Ok(()),
                Err(TryLockError::Error(e)) => break Err(e),
                Err(TryLockError::WouldBlock) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        // Relaxed: a hint for the appends after this one, no data.
                        self.lock_given_up.store(true, Relaxed);
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!(
                                "its lock (flock) was not free within {:.0} s: another process \
                                 kept it; nothing was written",
                                self.lock_wait.as_secs_f64()
                            ),
                        ));
                    }
                    std::thread::sleep(nap.min(left));
                    nap = (nap * 2).min(Duration::from_millis(4));
                }
            }
        };
        match locked {
            Err(e)
                if e.kind() == std::io::ErrorKind::Unsupported
                    || e.raw_os_error() == Some(libc::ENOLCK) =>
            {
                self.unlocked.store(true, Relaxed);
                tracing::warn!(
                    "--dead-letter {}: the file system cannot lock it ({e}): written without \
                     the lock, so no other run may write it at the same time",
                    self.path.display()
                );
                Ok(())
            }
            locked => locked,
        }
    }
}

/// With the file's lock held: a last line without its line end is cut off if it is not a
/// whole entry (a run that crashed mid-write left it; a warning says how much went), or ended
/// if it is (an edit took its line end).
fn mend_end(f: &File, path: &Path) -> std::io::Result<()> {
    let complete = complete_len(f)?;
    let len = f.metadata()?.len();
    if complete == len {
        return Ok(());
    }
    if whole_entry_from(f, complete)? {
        return { f }.write_all(b"\n");
    }
    tracing::warn!(
        "--dead-letter {}: cut off its last {} bytes, which were not a whole entry (a run that \
         stopped while writing one)",
        path.display(),
        len - complete
    );
    f.set_len(complete)
}

/// Whether the bytes of `f` from `start` to its end are one whole dead-letter entry (a JSON
/// object with the `pc_dead_letter` key). An entry cut short by a crash never is: it is
/// written whole, its closing brace last.
fn whole_entry_from(f: &File, start: u64) -> std::io::Result<bool> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut r = f;
    let mut tail = Vec::new();
    r.seek(SeekFrom::Start(start))?;
    // One entry is bounded by the record limit (see `is_dead_letter_file`): a longer tail is
    // not one entry.
    r.take(ENTRY_MOST + 1).read_to_end(&mut tail)?;
    Ok(tail.len() as u64 <= ENTRY_MOST && is_entry(&tail))
}

/// The length of `f` up to and including its last line end.
fn complete_len(f: &File) -> std::io::Result<u64> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut r = f;
    let len = f.metadata()?.len();
    let mut end = len;
    let mut buf = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        r.seek(SeekFrom::Start(start))?;
        r.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The longest an entry line can be: bounded by the record limit (a record kept as base64
/// with JSON escapes), and a margin for the rest of the entry.
const ENTRY_MOST: u64 = (crate::config::MAX_RECORD * 8) + 4096;

/// Whether `path`'s first line is a pc-host dead-letter entry.
pub fn is_dead_letter_file(path: &Path) -> bool {
    File::open(path)
        .and_then(|f| first_line(&f))
        .is_ok_and(|first| is_entry(&first))
}

/// Whether `line` is one dead-letter entry: a JSON object with the [`MARK`] key at
/// [`VERSION`], and the run and reason every entry carries.
fn is_entry(line: &[u8]) -> bool {
    serde_json::from_slice::<Value>(line).is_ok_and(|v| {
        v.get(MARK).and_then(Value::as_u64) == Some(u64::from(VERSION))
            && v["run_id"].is_i64()
            && v["reason"].is_string()
    })
}

/// The rejected bytes as an entry keeps them: `record` as text, or, for bytes that are not
/// UTF-8, `record: null` and `record_base64`; `record: null` alone when not kept (too long).
fn record_fields(bytes: Option<&[u8]>) -> Value {
    match bytes.map(std::str::from_utf8) {
        Some(Ok(text)) => json!({ "record": text }),
        Some(Err(_)) => json!({
            "record": null,
            "record_base64": base64::engine::general_purpose::STANDARD.encode(bytes.unwrap_or_default()),
        }),
        None => json!({ "record": null }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> Record {
        Record {
            producer: 3,
            seq: 9,
            end_offset: 120,
            text: text.into(),
            ..Record::default()
        }
    }

    #[test]
    fn only_a_whole_entry_of_this_format_marks_a_file_as_a_dead_letter_file() {
        assert!(is_entry(
            br#"{"pc_dead_letter":1,"run_id":3,"reason":"refused","record":"a"}"#
        ));
        for not in [
            br#"{"pc_dead_letter":1}"#.as_slice(),
            br#"{"pc_dead_letter":2,"run_id":3,"reason":"refused"}"#,
            br#"{"pc_dead_letter":"1","run_id":3,"reason":"refused"}"#,
            br#"{"pc_dead_letter":1,"run_id":"3","reason":"refused"}"#,
            br#"{"run_id":3,"reason":"refused"}"#,
        ] {
            assert!(!is_entry(not), "{}", String::from_utf8_lossy(not));
        }
    }

    #[test]
    fn entries_round_trip_through_the_file_and_mark_it_as_ours() {
        let (dir, path) = scratch("unit");
        assert_eq!(DeadLetters::check(&path, &[]), Ok(false));
        let dl = DeadLetters::new(&path, false, 7);
        dl.name_input(3, "/var/log/x.log".into());
        let a = dl.record_entry(&record("hello"), false, Reason::Refused, "CHECK failed");
        let b = dl.line_entry(3, 10, Some(130), Some(&[0xff, 0x00]), "invalid UTF-8");
        dl.write(&[a, b]).unwrap();
        assert!(is_dead_letter_file(&path));
        assert_eq!(DeadLetters::check(&path, &[]), Ok(true));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["record"], "hello");
        assert_eq!(lines[0]["reason"], "refused");
        assert_eq!(lines[0]["source"]["input"], "/var/log/x.log");
        assert_eq!(lines[0]["source"]["line"], 10);
        assert_eq!(lines[1]["record"], Value::Null);
        assert_eq!(lines[1]["record_base64"], "/wA=");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A fresh directory for test `name`, and `dead.jsonl` in it (not there yet).
    fn scratch(name: &str) -> (PathBuf, PathBuf) {
        let dir = crate::test_support::fresh_dir(&format!("dl-{name}"));
        let path = dir.join("dead.jsonl");
        (dir, path)
    }

    /// Writes one entry for a refused record `text`.
    fn put(dl: &DeadLetters, text: &str) -> std::io::Result<()> {
        dl.write(&[dl.record_entry(&record(text), false, Reason::Refused, "x")])
    }

    /// The `record` of each line of the dead-letter file `path`, each line a whole entry.
    fn records_in(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("every line a whole entry"))
            .map(|v| v["record"].as_str().unwrap().to_string())
            .collect()
    }

    /// A program that keeps the file locked fails an append once the wait is over, instead of
    /// holding the consumer (and the pipeline) for as long as it keeps the lock; the append
    /// writes nothing, and the next, once the lock is free, goes in whole.
    #[test]
    fn an_append_fails_without_writing_while_another_program_keeps_the_file_locked() {
        let (dir, path) = scratch("held");
        let dl = DeadLetters::new(&path, false, 1).with_lock_wait(Duration::from_millis(20));
        put(&dl, "one").unwrap();
        // flock locks belong to an open file: this one conflicts with the writer's own.
        let holder = File::open(&path).unwrap();
        holder.lock().unwrap();
        let before = std::fs::read(&path).unwrap();
        let error = put(&dl, "two").expect_err("an append under another's lock");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
        assert!(error.to_string().contains("nothing was written"), "{error}");
        assert!(dl.lock_given_up.load(std::sync::atomic::Ordering::Relaxed));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the failed append wrote"
        );
        holder.unlock().unwrap();
        put(&dl, "three").unwrap();
        assert_eq!(records_in(&path), ["one", "three"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn half_an_entry_left_by_a_crash_is_cut_before_the_next_is_appended() {
        let (dir, path) = scratch("half");
        let first = DeadLetters::new(&path, false, 1);
        put(&first, "one").unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"pc_dead_letter":1,"rec"#).unwrap();
        drop(f);
        let second = DeadLetters::new(&path, DeadLetters::check(&path, &[]).unwrap(), 2);
        put(&second, "two").unwrap();
        assert_eq!(records_in(&path), ["one", "two"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A whole last entry without its line end (the file edited) is kept, and the next is
    /// appended on a line of its own: it was cut off as if a crash had left half of it.
    #[test]
    fn a_whole_last_entry_without_its_line_end_is_kept() {
        let (dir, path) = scratch("unended");
        let first = DeadLetters::new(&path, false, 1);
        first
            .write(&[
                first.record_entry(&record("one"), false, Reason::Refused, "x"),
                first.record_entry(&record("two"), false, Reason::Refused, "x"),
            ])
            .unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        let second = DeadLetters::new(&path, DeadLetters::check(&path, &[]).unwrap(), 2);
        put(&second, "three").unwrap();
        assert_eq!(records_in(&path), ["one", "two", "three"]);
        assert!(std::fs::read_to_string(&path).unwrap().ends_with('\n'));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn runs_that_create_the_file_at_once_both_append_to_it() {
        let (dir, path) = scratch("both");
        // Both checked before either wrote: neither found the file.
        let (first, second) = (
            DeadLetters::new(&path, false, 1),
            DeadLetters::new(&path, false, 2),
        );
        put(&first, "one").unwrap();
        put(&second, "two").unwrap();
        assert_eq!(records_in(&path), ["one", "two"]);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "only the file itself: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Half an entry that another run left while this one had the file open (it crashed
    /// mid-write) is cut off before this run's next entry, not glued to it.
    #[test]
    fn half_an_entry_another_run_left_meanwhile_is_cut_before_the_next() {
        let (dir, path) = scratch("meanwhile");
        let dl = DeadLetters::new(&path, false, 1);
        put(&dl, "one").unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"pc_dead_letter":1,"rec"#).unwrap();
        drop(f);
        put(&dl, "two").unwrap();
        assert_eq!(records_in(&path), ["one", "two"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Runs sharing one file at once: one appends large entries while others keep opening the
    /// file and appending. Each opening looks at the file's end, where the large entry is being
    /// written: without the lock it took that for half an entry left by a crash and cut it.
    #[test]
    fn runs_sharing_the_file_at_once_lose_no_entry() {
        let (dir, path) = scratch("shared");
        let seed = DeadLetters::new(&path, false, 1);
        put(&seed, "seed").unwrap();
        const ROUNDS: usize = 150;
        let big = "b".repeat(400_000);
        std::thread::scope(|s| {
            s.spawn(|| {
                let dl = DeadLetters::new(&path, true, 2);
                for _ in 0..ROUNDS {
                    put(&dl, &big).unwrap();
                }
            });
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    let dl = DeadLetters::new(&path, true, 3);
                    put(&dl, "small").unwrap();
                }
            });
        });
        let records = records_in(&path);
        let count = |text: &str| records.iter().filter(|r| *r == text).count();
        assert_eq!((count(&big), count("small")), (ROUNDS, ROUNDS));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A name near the file system's limit is used as given: the file is made under a short
    /// name of pc-host's and renamed (a name built from the given one went over the limit).
    /// Names a killed run left behind are passed over.
    #[test]
    fn a_long_name_and_files_a_killed_run_left_do_not_stop_the_creation() {
        let dir = std::env::temp_dir().join(format!("pc-dl-long-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in 0..50 {
            let left = format!(".pc-host-{}-{n}.dead-letter.new", std::process::id());
            std::fs::write(dir.join(left), "left by a killed run").unwrap();
        }
        let path = dir.join(format!("{}.jsonl", "d".repeat(240)));
        let dl = DeadLetters::new(&path, false, 1);
        put(&dl, "one").unwrap();
        assert_eq!(records_in(&path), ["one"]);
        let names = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(names, 51, "the file and the 50 left before, no more");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The file removed during the run (by hand, or rotated away): the next entries go to a
    /// new file at the path, not to the removed one, where nobody would see them.
    #[test]
    fn entries_after_the_file_was_removed_go_to_a_new_file_at_its_path() {
        let (dir, path) = scratch("removed");
        let dl = DeadLetters::new(&path, false, 1);
        put(&dl, "one").unwrap();
        std::fs::rename(&path, dir.join("dead.jsonl.1")).unwrap();
        put(&dl, "two").unwrap();
        assert_eq!(records_in(&dir.join("dead.jsonl.1")), ["one"]);
        assert_eq!(records_in(&path), ["two"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Another program's file put at the path during the run is not written: the write fails
    /// and the file is as it was.
    #[test]
    fn a_foreign_file_put_in_its_place_during_the_run_is_left_untouched() {
        let (dir, path) = scratch("replaced");
        let dl = DeadLetters::new(&path, false, 1);
        put(&dl, "one").unwrap();
        std::fs::write(dir.join("notes"), "my notes").unwrap();
        std::fs::rename(dir.join("notes"), &path).unwrap();
        let e = put(&dl, "two").unwrap_err();
        assert!(
            e.to_string()
                .contains("no longer a pc-host dead-letter file"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "my notes");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_link_to_nothing_is_refused_before_the_run() {
        let dir = std::env::temp_dir().join(format!("pc-dl-dangling-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dead.jsonl");
        std::os::unix::fs::symlink(dir.join("absent.jsonl"), &path).unwrap();
        let e = DeadLetters::check(&path, &[]).unwrap_err();
        assert!(e.contains("is a link to a file that does not exist"), "{e}");
        assert!(!dir.join("absent.jsonl").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_foreign_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("pc-dl-foreign-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notes.txt");
        std::fs::write(&path, "my notes\n").unwrap();
        let e = DeadLetters::check(&path, &[]).unwrap_err();
        assert!(e.contains("not a pc-host dead-letter file"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "my notes\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
