//! How the runs that read a file read it: `verify --source` checks the file as they did,
//! unless told otherwise. Each run keeps its options in `runs.config`; the line limit is
//! `max_record_bytes`, the format is in the run's `file:` source URL for this file.

use crate::config::SourceSpec;
use crate::config::url::{Format, parse_source};
use crate::position::FileKey;
use crate::source::input::open_file;

/// One setting as the runs recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded<T> {
    /// No run recorded it (older runs, or a source this check cannot match).
    Unknown,
    /// Every run that recorded it recorded this.
    Agreed(T),
    /// The runs disagree (the file was read with different options by different runs).
    Differ,
}

impl<T: PartialEq> Recorded<T> {
    fn add(self, value: T) -> Self {
        match self {
            Self::Unknown => Self::Agreed(value),
            Self::Agreed(v) if v == value => Self::Agreed(v),
            _ => Self::Differ,
        }
    }
}

/// The line limit and format of the runs that read `input` (the file `key`), and the
/// dead-letter files they recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub max_record_bytes: Recorded<u64>,
    /// Each run's limit, where it recorded one, in run order.
    pub limit_of: Vec<(i64, u64)>,
    pub format: Recorded<Format>,
    /// The runs that read it, in order.
    pub runs: Vec<i64>,
    /// Their dead-letter files, each once, in run order: absolute paths, but for runs of
    /// older versions, which recorded the path as given (taken from the working directory).
    pub dead_letters: Vec<std::path::PathBuf>,
}

/// What the runs that read the file `key` recorded: each run's id and its `runs.config`
/// (JSON), in run order. A config that does not parse is left out, as unknown.
pub fn reading(runs: Vec<(i64, Option<String>)>, key: &FileKey) -> Reading {
    let mut out = Reading {
        max_record_bytes: Recorded::Unknown,
        limit_of: Vec::new(),
        format: Recorded::Unknown,
        runs: Vec::new(),
        dead_letters: Vec::new(),
    };
    for (run, config) in runs {
        out.runs.push(run);
        let Some(v) = config.and_then(|c| serde_json::from_str::<serde_json::Value>(&c).ok())
        else {
            continue;
        };
        if let Some(max) = v["max_record_bytes"].as_u64() {
            out.max_record_bytes = out.max_record_bytes.add(max);
            out.limit_of.push((run, max));
        }
        if let Some(format) = format_of(&v, key) {
            out.format = out.format.add(format);
        }
        if let Some(file) = v["dead_letter"].as_str().map(std::path::PathBuf::from)
            && !out.dead_letters.contains(&file)
        {
            out.dead_letters.push(file);
        }
    }
    out
}

/// The format of the run's `file:` source that is the file `key`: the one that opens as the
/// same file (device and inode), else its only `file:` source (its path may be relative to
/// where that run ran).
fn format_of(config: &serde_json::Value, key: &FileKey) -> Option<Format> {
    let files: Vec<(std::path::PathBuf, Format)> = config["sources"]
        .as_array()?
        .iter()
        .filter_map(|s| match parse_source(s.as_str()?).ok()? {
            SourceSpec::File { path, format, .. } => Some((path, format)),
            _ => None,
        })
        .collect();
    let same = files.iter().find(|(path, _)| {
        open_file(path).is_ok_and(|o| o.key.dev == key.dev && o.key.ino == key.ino)
    });
    match (same, files.as_slice()) {
        (Some((_, format)), _) => Some(*format),
        (None, [(_, format)]) => Some(*format),
        _ => None,
    }
}
