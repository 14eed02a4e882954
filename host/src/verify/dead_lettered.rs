//! Which lines of a file input are in a dead-letter file: `verify --source` expects exactly
//! those missing from the rows. Each entry names its input (`source.input_id`), its line
//! (`source.line`, from 1) and its run (`run_id`); an entry counts for an input only with
//! both the input and a run that read it, so a file shared by several databases or inputs
//! excuses nothing it does not hold.

use std::collections::BTreeSet;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};

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
        match read(file, input, runs, &mut out.lines) {
            Ok(()) => out.read.push(file.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.absent.push(file.clone()),
            Err(e) => out.unreadable.push(format!("{}: {e}", file.display())),
        }
    }
    out
}

fn read(file: &Path, input: i64, runs: &[i64], lines: &mut BTreeSet<u64>) -> std::io::Result<()> {
    let reader = std::io::BufReader::new(std::fs::File::open(file)?);
    for text in reader.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&text?) else {
            continue; // not an entry (a line cut by a crash mid-write)
        };
        let source = &entry["source"];
        if source["input_id"].as_i64() == Some(input)
            && entry["run_id"]
                .as_i64()
                .is_some_and(|run| runs.contains(&run))
            && let Some(line) = source["line"].as_u64()
        {
            lines.insert(line);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
