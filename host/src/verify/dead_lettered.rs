//! What a dead-letter file holds, for `verify`.
//! - The lines of a file input: `verify --source` expects exactly those missing from the rows.
//!   Each entry names its input (`source.input_id`), its line (`source.line`, from 1) and its
//!   run (`run_id`); an entry counts for an input only with both the input and a run that
//!   read it, so a file shared by several databases or inputs excuses nothing it does not
//!   hold.
//! - The generated records of one run (`source.producer`, `source.seq`): `verify` expects
//!   exactly those missing from a completed generated run's rows.
//!
//! Lines that are no entry (a line cut by a crash mid-write, even inside a character) are
//! passed over; only the fields looked up are decoded.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};

/// The fields of an entry `verify` looks up.
#[derive(Debug, serde::Deserialize)]
struct Entry {
    run_id: Option<i64>,
    reason: Option<String>,
    source: Option<Source>,
}

#[derive(Debug, serde::Deserialize)]
struct Source {
    input_id: Option<i64>,
    line: Option<u64>,
    producer: Option<u64>,
    seq: Option<u64>,
    /// `nats`: a record another run published, dead-lettered by a consuming run.
    via: Option<String>,
}

/// Calls `each` with every entry of `file` that names a run and a source.
fn entries(file: &Path, mut each: impl FnMut(i64, &str, &Source)) -> std::io::Result<()> {
    let mut reader = std::io::BufReader::new(std::fs::File::open(file)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if let Ok(Entry {
            run_id: Some(run),
            reason,
            source: Some(source),
        }) = serde_json::from_slice::<Entry>(&line)
        {
            each(run, reason.as_deref().unwrap_or(""), &source);
        }
    }
}

/// The dead-lettered lines of one input, from the files that could be read, and the files
/// that could not (with why).
#[derive(Debug, Default)]
pub struct Lines {
    pub lines: BTreeSet<u64>,
    pub read: Vec<PathBuf>,
    /// Files that are not there: a run makes its dead-letter file with its first entry, so
    /// one that dead-lettered nothing leaves none.
    pub absent: Vec<PathBuf>,
    pub unreadable: Vec<String>,
}

/// Reads `files` for the entries of `input` written by one of `runs`.
pub fn lines_of(files: &[PathBuf], input: i64, runs: &[i64]) -> Lines {
    let mut out = Lines::default();
    for file in files {
        let found = entries(file, |run, _, source| {
            if source.input_id == Some(input)
                && runs.contains(&run)
                && let Some(line) = source.line
            {
                out.lines.insert(line);
            }
        });
        match found {
            Ok(()) => out.read.push(file.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.absent.push(file.clone()),
            Err(e) => out.unreadable.push(format!("{}: {e}", file.display())),
        }
    }
    out
}

/// A generated record in a dead-letter file: its producer and seq.
pub type Generated = (u64, u64);

/// Reads `file` for the generated records of run `run`, each with whether it may be stored
/// all the same: its outcome was unknown (`unconfirmed`: the sink may hold it), or a consumer
/// rejected it from NATS (a message whose rejection was not acknowledged is delivered again,
/// and a consumer with a larger `--max-record-bytes` may store it). Entries of other runs and
/// of file inputs are passed over.
///
/// # Errors
/// The file's, if it cannot be opened or read.
pub fn generated_of(file: &Path, run: i64) -> std::io::Result<HashMap<Generated, bool>> {
    let unconfirmed = crate::dead_letter::Reason::Unconfirmed.as_str();
    let rejected = crate::dead_letter::Reason::Rejected.as_str();
    let mut out = HashMap::new();
    entries(file, |entry_run, reason, source| {
        if entry_run == run
            && let (Some(producer), Some(seq)) = (source.producer, source.seq)
        {
            let unknown = reason == unconfirmed
                || (reason == rejected && source.via.as_deref() == Some("nats"));
            *out.entry((producer, seq)).or_insert(unknown) &= unknown;
        }
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_generated_entries_of_the_run_count_and_unconfirmed_is_kept() {
        let dir = std::env::temp_dir().join(format!("pc-dl-generated-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dead.jsonl");
        let entry = |run: i64, reason: &str, source: serde_json::Value| {
            serde_json::json!({ "run_id": run, "reason": reason, "source": source }).to_string()
        };
        let generated = |p: u64, s: u64| serde_json::json!({ "producer": p, "seq": s });
        let text = [
            entry(4, "refused", generated(0, 1)),
            entry(4, "unconfirmed", generated(1, 7)),
            entry(
                4,
                "rejected",
                serde_json::json!({ "producer": 2, "seq": 5, "via": "nats" }),
            ),
            entry(5, "refused", generated(0, 2)),
            entry(
                4,
                "rejected",
                serde_json::json!({ "input_id": 1, "line": 3 }),
            ),
            "{\"run_id\": 4, \"sou".to_string(),
        ]
        .join("\n");
        // A last line cut by a crash inside a character: not UTF-8, passed over.
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\n{\"run_id\": 4, \"record\": \"caf\xc3");
        std::fs::write(&file, bytes).unwrap();
        let found = generated_of(&file, 4).unwrap();
        assert_eq!(
            found,
            HashMap::from([((0, 1), false), ((1, 7), true), ((2, 5), true)])
        );
        assert!(generated_of(&dir.join("gone.jsonl"), 4).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_entries_of_the_input_and_of_its_runs_count() {
        let dir = std::env::temp_dir().join(format!("pc-dl-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dead.jsonl");
        let entry = |run: i64, input: i64, line: u64| {
            serde_json::json!({ "run_id": run, "source": { "input_id": input, "line": line } })
                .to_string()
        };
        let text = [
            entry(2, 7, 4),
            entry(2, 8, 5),
            "{\"run_id\": 2, \"sou".to_string(),
            entry(9, 7, 6),
            entry(3, 7, 10),
        ]
        .join("\n");
        std::fs::write(&file, text).unwrap();
        let found = lines_of(
            &[file.clone(), dir.join("gone.jsonl"), dir.clone()],
            7,
            &[2, 3],
        );
        assert_eq!(found.lines.into_iter().collect::<Vec<_>>(), [4, 10]);
        assert_eq!(found.read, [file]);
        assert_eq!(found.absent, [dir.join("gone.jsonl")]);
        assert_eq!(found.unreadable.len(), 1, "{:?}", found.unreadable);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
