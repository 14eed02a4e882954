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
//!
//! Not guaranteed: exactly-once. A line rejected at the end of a file input whose position was
//! not yet committed when the process was killed is read, rejected and written again by the
//! next run.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::message::Record;

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
    /// The sink failed for good (a fatal error), or failed earlier in the run.
    SinkFailed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Refused => "refused",
            Self::RetriesExhausted => "retries_exhausted",
            Self::SinkFailed => "sink_failed",
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
}

impl DeadLetters {
    /// Checks that `path` can be this run's dead-letter file, before anything runs.
    ///
    /// # Errors
    /// One line: the directory is missing or not writable, or the file exists and is not a
    /// pc-host dead-letter file, or it is one of `taken` (the database, an input).
    pub fn check(path: &Path, taken: &[PathBuf]) -> Result<bool, String> {
        let shown = path.display();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(format!(
                "--dead-letter {shown}: directory {} does not exist",
                dir.display()
            ));
        }
        if !writable(&dir) {
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
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(false);
        };
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

    /// An entry for a record the sink did not store.
    pub fn record_entry(&self, r: &Record, generated: bool, reason: Reason, error: &str) -> Value {
        let source = if generated {
            json!({ "producer": r.producer, "seq": r.seq })
        } else {
            self.input_source(
                r.producer,
                r.seq,
                (r.end_offset > 0).then_some(r.end_offset),
            )
        };
        self.entry(reason, error, source, json!({ "record": r.text }))
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
        let record = match bytes.map(std::str::from_utf8) {
            Some(Ok(text)) => json!({ "record": text }),
            Some(Err(_)) => json!({
                "record": null,
                "record_base64": base64::engine::general_purpose::STANDARD.encode(bytes.unwrap_or_default()),
            }),
            None => json!({ "record": null }),
        };
        let source = self.input_source(input, line, end_offset);
        self.entry(Reason::Rejected, error, source, record)
    }

    fn input_source(&self, input: u32, line: u64, end_offset: Option<u64>) -> Value {
        let name = self
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&input)
            .cloned();
        json!({ "input": name, "input_id": input, "line": line + 1, "end_offset": end_offset })
    }

    fn entry(&self, reason: Reason, error: &str, source: Value, record: Value) -> Value {
        let mut e = json!({
            MARK: VERSION,
            "time": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            "run_id": self.run_id,
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
    /// The file could not be opened, written or synced: the entries may not be in it.
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
        if file.is_none() {
            let mut open = OpenOptions::new();
            open.append(true);
            if !self.existed {
                open.create_new(true);
            }
            *file = Some(open.open(&self.path)?);
        }
        let f = file.as_mut().expect("opened above");
        f.write_all(&text)?;
        f.sync_data()
    }
}

/// Whether two paths name the same place (existing or not): the same directory, canonically,
/// and the same file name; or the same file through links.
fn same_place(a: &Path, b: &Path) -> bool {
    fn place(p: &Path) -> Option<PathBuf> {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Some(dir.canonicalize().ok()?.join(p.file_name()?))
    }
    let linked = matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    linked || place(a).is_some_and(|x| place(b) == Some(x))
}

/// Whether `path`'s first line is a pc-host dead-letter entry.
pub fn is_dead_letter_file(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    let mut first = Vec::new();
    // One entry line is bounded by the record limit; read no more than that and a margin.
    let limit = (crate::config::MAX_RECORD * 8) + 4096;
    if BufReader::new(f)
        .take(limit)
        .read_until(b'\n', &mut first)
        .is_err()
    {
        return false;
    }
    serde_json::from_slice::<Value>(&first)
        .ok()
        .is_some_and(|v| v.get(MARK).is_some())
}

/// Whether this process may write to `path` (`access(2)`, which also sees a read-only mount).
fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> Record {
        Record {
            intended_ns: 0,
            created_at: 0,
            producer: 3,
            seq: 9,
            end_offset: 120,
            tail: 0,
            replaces: false,
            text: text.into(),
        }
    }

    #[test]
    fn entries_round_trip_through_the_file_and_mark_it_as_ours() {
        let dir = std::env::temp_dir().join(format!("pc-dl-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dead.jsonl");
        let _ = std::fs::remove_file(&path);
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
