//! `pc-host verify --source file:PATH`: the stored rows of a file are exactly its lines, in
//! file order.
//!
//! The file's rows are those of its input (same path, device and inode), in the order they
//! were stored, in any database `verify` reads (SQLite, PostgreSQL, MySQL/MariaDB: each
//! streams them through [`ReadBack::input_rows`]). Walking the file and the rows together: each stored row must be the next line
//! of the file with the same text; a line with no row must be one the ingest rejects (invalid
//! UTF-8 or JSON, longer than `--max-record-bytes`); rows past the end of the file, duplicates
//! and rows out of order are problems. The first difference is named by line number.
//!
//! This compares against the file as it is now. Its lines are numbered as its rows are, over
//! the input's life: a file found cut short (`copytruncate`) was read again from its start
//! with the numbers going on, so where its rows number more lines before the committed
//! position than it holds, its first line is number `line` minus the lines it holds there, and
//! rows numbered below that hold the earlier content: counted, not compared. That numbering is
//! taken only where the rows bear it out (every row from there on in its place, at least one)
//! or the file is now shorter than the committed position (cut since; nothing of it read yet).
//! Otherwise (a file rewritten in place) it is compared line by line from 0, and the rows that
//! hold content it no longer has are the difference.

use std::collections::BTreeSet;

use super::dead_lettered;
use super::recorded::{self, Recorded};
use crate::config::cli::DEFAULT_MAX_RECORD_BYTES;
use crate::config::url::Format;
use crate::config::{ConfigError, SourceSpec};
use crate::report::summary::plural;
use crate::sink::read_back::{FileInput, ReadBack};
use crate::source::input::{LineReader, open_file};
use crate::source::lines::{line_limit, record_text};

/// How the file compares with its rows.
#[derive(Debug, Default)]
struct Walk {
    lines: u64,
    /// Rows with their line's text, and rows in a line's place with other text.
    stored: u64,
    differ: u64,
    rejected: u64,
    /// The first few rejected lines: number and why.
    rejected_at: Vec<String>,
    /// Lines (numbered from 1) with a storable text and no row that a dead-letter file holds.
    dead_lettered: Vec<u64>,
    /// Lines with no row that start at or after the committed position: no run read them yet.
    unread: Vec<u64>,
    /// Lines read in part: the committed position falls inside them (a last line read before
    /// its end was written: its row holds its start, or it has none if that start was
    /// rejected; the next run reads the whole line).
    partial: Vec<u64>,
    /// Where the dead-lettered lines were looked up, for the report.
    dead_letter_note: String,
    /// Rows of the file's earlier content (numbered below its first line), and that number.
    earlier: u64,
    first: u64,
    /// Where the file as it is now was read to: the committed position, or 0 if it was cut
    /// short since.
    read_to: u64,
    problems: Vec<String>,
}

/// What the user gave for reading the file; `None`: as the runs that read it recorded (see
/// `recorded.rs`), else the run's own default.
#[derive(Debug, Clone)]
pub struct Given {
    pub max_record_bytes: Option<usize>,
    pub format: Option<Format>,
    /// The dead-letter file to look lines up in; `None`: those the runs recorded.
    pub dead_letter: Option<std::path::PathBuf>,
}

/// Checks `spec` (a `file:` source) against its rows in `store`, shown as `db`, reading it as
/// `given` says; prints the findings; returns whether they match.
///
/// # Errors
/// The file cannot be read, was never ingested into this database, or the database fails.
pub fn check(
    store: &mut dyn ReadBack,
    db: &str,
    spec: &SourceSpec,
    given: Given,
) -> anyhow::Result<bool> {
    let SourceSpec::File { path, .. } = spec else {
        let why = match spec {
            SourceSpec::Stdin { .. } => "stdin cannot be read back",
            SourceSpec::Generate => "generated messages have no file to compare",
            _ => "a NATS stream is not a file",
        };
        return Err(ConfigError(format!("verify --source takes a file: URL ({why})")).into());
    };
    // A pipe or device has no rows to compare with (a run reads one only as stdin).
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return Err(ConfigError(format!(
            "file:{} is not a regular file: verify --source compares a file with its rows",
            path.display()
        ))
        .into());
    }
    let opened = open_file(path).map_err(ConfigError)?;
    let key = &opened.key;
    // As a run finds it.
    let Some(found) = store.file_input(key)? else {
        // Bad input, as a --run the database does not have is.
        return Err(ConfigError(format!(
            "{db} holds no rows from {} (this file, by path, device and inode, or by device, \
             inode and birth time if it was renamed, was never ingested)",
            key.path.display()
        ))
        .into());
    };
    let input = found.input;
    let recorded = recorded::reading(store.input_runs(input)?, key);
    let (limits, format, how) = settle(&given, &recorded);
    let max = limits.max;
    let files = given
        .dead_letter
        .map_or(recorded.dead_letters, |file| vec![file]);
    let dead = dead_lettered::lines_of(&files, input, &recorded.runs);
    // The file's lines numbered from 0 and, where its rows number more lines before the
    // committed position than it holds, from where a run that read it again numbered them.
    let (first, read_to) = first_line_number(&opened.file, found)?;
    let committed = u64::try_from(found.offset).unwrap_or(0);
    let cut_since = read_to < committed;
    let mut renumbered = match first {
        0 => None,
        _ => Some(Pairing::new(
            LineReader::new(std::fs::File::open(&key.path)?, line_limit(format, max)),
            format,
            limits.clone(),
            (first, read_to),
            &dead.lines,
        )?),
    };
    let reader = LineReader::new(opened.file, line_limit(format, max));
    let limit = limits.describe();
    let mut plain = Pairing::new(reader, format, limits, (0, committed), &dead.lines)?;
    store.input_rows(input, &mut |run, seq, message| {
        plain.row(run, seq, message)?;
        if let Some(r) = &mut renumbered {
            r.row(run, seq, message)?;
        }
        Ok(())
    })?;
    let plain = plain.finish()?;
    // Numbered on only where that tells the rows' story: the file cut short since its last
    // run (nothing of it read yet), or read again with every row of it in its place. A file
    // rewritten in place with fewer lines is compared as it is.
    let mut walk = match renumbered.map(Pairing::finish).transpose()? {
        Some(r) if cut_since || (r.problems.is_empty() && r.stored > 0) => r,
        _ => plain,
    };
    walk.dead_letter_note = dead_letter_note(&dead, !walk.problems.is_empty());
    let reading = format!("  read with {limit}, format={}{how}", format.as_str());
    let file = key.path.display().to_string();
    Ok(walk.print(db, &file, (input, found.offset), &reading))
}

/// The number of the file's first line, as a run that read it again would number it, and the
/// position committed in the file as it is now. Those are 0 and the committed offset unless
/// its rows number more lines before that position than it holds (see the module docs): then
/// the first line is `found.line` minus the lines it holds there. A file now shorter than that
/// position was cut short after the last run: none of what it holds now has been read, and its
/// lines are numbered from `found.line`.
fn first_line_number(file: &std::fs::File, found: FileInput) -> std::io::Result<(u64, u64)> {
    use std::io::Read as _;
    let offset = u64::try_from(found.offset).unwrap_or(0);
    let line = u64::try_from(found.line).unwrap_or(0);
    if file.metadata()?.len() < offset {
        return Ok((line, 0));
    }
    let mut before = u64::from(found.tail > 0);
    let mut buf = vec![0u8; 1 << 16];
    let mut left = offset;
    let mut r = file;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = r.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        before += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        left -= n as u64;
    }
    std::io::Seek::rewind(&mut r)?;
    Ok((line.saturating_sub(before), offset))
}

/// The line limits a file is judged by.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Limits {
    /// Lines longer than this must have been rejected.
    max: usize,
    /// Where the runs that read the file used different limits: each one's, by run id, in
    /// order (empty: `max` is every run's). A line with no row was read by one of the runs
    /// from the one that stored the row before it to the one that stored the row after it,
    /// and may have been rejected if it is longer than one of their limits.
    by_run: Vec<(i64, usize)>,
}

impl Limits {
    fn one(max: usize) -> Self {
        Self {
            max,
            by_run: Vec::new(),
        }
    }

    /// How the report names them.
    fn describe(&self) -> String {
        match self.by_run.iter().map(|&(_, limit)| limit).min() {
            Some(least) if least < self.max => format!(
                "the limits of the runs that read it, {least} to {} bytes",
                self.max
            ),
            _ => format!("--max-record-bytes {}", self.max),
        }
    }

    /// A run between `after` and `before` (run ids, `None`: no bound) whose limit a line of
    /// `len` bytes is over, and that limit: a run that could have read it and rejected it.
    fn rejected_by(
        &self,
        len: usize,
        (after, before): (Option<i64>, Option<i64>),
    ) -> Option<(i64, usize)> {
        // In either order: a following run started earlier may read on after a later one.
        let (low, high) = match (after, before) {
            (Some(a), Some(b)) => (Some(a.min(b)), Some(a.max(b))),
            other => other,
        };
        self.by_run.iter().copied().find(|&(run, limit)| {
            len > limit && low.is_none_or(|l| run >= l) && high.is_none_or(|h| run <= h)
        })
    }
}

/// The limits and format to read the file with, and where they came from (for the report).
fn settle(given: &Given, recorded: &recorded::Reading) -> (Limits, Format, String) {
    let default_max = usize::try_from(DEFAULT_MAX_RECORD_BYTES).unwrap_or(usize::MAX);
    let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let mut notes = Vec::new();
    let largest = recorded.limit_of.iter().map(|&(_, limit)| limit).max();
    let limits = match (given.max_record_bytes, recorded.max_record_bytes, largest) {
        (Some(max), _, _) => Limits::one(max),
        (None, Recorded::Agreed(max), _) => {
            notes.push("the limit");
            Limits::one(as_usize(max))
        }
        (None, Recorded::Differ, Some(largest)) => Limits {
            max: as_usize(largest),
            by_run: recorded
                .limit_of
                .iter()
                .map(|&(run, limit)| (run, as_usize(limit)))
                .collect(),
        },
        (None, _, _) => Limits::one(default_max),
    };
    let format = match (given.format, recorded.format) {
        (Some(format), _) => format,
        (None, Recorded::Agreed(format)) => {
            notes.push("the format");
            format
        }
        (None, _) => Format::Text,
    };
    let mut how = match notes.as_slice() {
        [] => String::new(),
        _ => format!(
            " ({} as the runs that read it recorded)",
            notes.join(" and ")
        ),
    };
    if !limits.by_run.is_empty() {
        how.push_str(
            "; a line with no row is judged by the limits of the runs that could have read it, \
             from the one that stored the row before it to the one that stored the row after it \
             (--max-record-bytes checks against one limit)",
        );
    }
    if given.format.is_none() && recorded.format == Recorded::Differ {
        how.push_str("; the runs that read it used different formats: give the one to check");
    }
    (limits, format, how)
}

/// A line of the file, judged as the ingest judges it.
#[derive(Debug)]
struct Line {
    /// Its number from 0: the `seq` of its row.
    no: u64,
    /// It starts at or after the committed position: no run has read it yet.
    unread: bool,
    /// The committed position falls inside it: a run read its start as an unended last line.
    cut: bool,
    /// The text its row must have, or why the ingest rejects it.
    text: Result<String, String>,
}

/// The file's lines paired with its input's rows, fed one row at a time in the order they were
/// stored ([`Pairing::row`]) and then told the rows ended ([`Pairing::finish`]). Fed rather
/// than pulling rows itself, it is the one walk for every database, whose reader calls it back
/// with each row as it streams them, and it keeps one line and one row in memory whatever the
/// file's size.
#[derive(Debug)]
struct Pairing<'a> {
    reader: LineReader<std::fs::File>,
    format: Format,
    limits: Limits,
    /// The run that stored the last row fed.
    last_run: Option<i64>,
    /// The input's committed position, in bytes.
    committed: u64,
    /// The lines a dead-letter file holds for this input.
    dead: &'a BTreeSet<u64>,
    /// The first line no row has been paired with or passed yet; `None`: the file ended.
    line: Option<Line>,
    /// Bytes of the file read so far: where the next line starts.
    offset: u64,
    /// Rows after the file's end.
    beyond: u64,
    /// The number of the file's first line (see [`first_line_number`]).
    first: u64,
    walk: Walk,
}

impl<'a> Pairing<'a> {
    /// Reads the file's first line.
    fn new(
        reader: LineReader<std::fs::File>,
        format: Format,
        limits: Limits,
        (first, committed): (u64, u64),
        dead: &'a BTreeSet<u64>,
    ) -> std::io::Result<Self> {
        let mut pairing = Self {
            reader,
            format,
            limits,
            last_run: None,
            committed,
            dead,
            line: None,
            offset: 0,
            beyond: 0,
            first,
            walk: Walk::default(),
        };
        pairing.next_line(first)?;
        Ok(pairing)
    }

    /// Reads line `no` (its last line, without a line end, too) into `self.line`.
    fn next_line(&mut self, no: u64) -> std::io::Result<()> {
        let raw = loop {
            match self.reader.next_line()? {
                Some(raw) => break Some(raw),
                // A line still without its end after the reader's scan limit (1 MiB), not the
                // end of the file: read on.
                None if !self.reader.at_eof() => {}
                None => break self.reader.finish(),
            }
        };
        self.line = raw.map(|raw| {
            self.walk.lines += 1;
            let unread = self.offset >= self.committed;
            let cut = self.offset < self.committed && self.committed < self.offset + raw.consumed;
            self.offset += raw.consumed;
            Line {
                no,
                unread,
                cut,
                text: record_text(raw, self.format, self.limits.max).map_err(|r| r.why),
            }
        });
        Ok(())
    }

    /// The next stored row: line `seq` (from 0) with `stored` as its text, stored by run
    /// `run`. The lines before it that no row was paired with are judged first; a row for a
    /// line already passed is out of order or a duplicate, one after the file's end is beyond
    /// it.
    fn row(&mut self, run: i64, seq: i64, stored: &str) -> std::io::Result<()> {
        let seq = seq.max(0) as u64;
        if seq < self.first {
            // The earlier content's: the lines after it were read by this run or a later one.
            self.walk.earlier += 1;
            self.last_run = Some(run);
            return Ok(());
        }
        let runs = (self.last_run, Some(run));
        self.last_run = Some(run);
        loop {
            let Some(line) = self.line.take() else {
                self.beyond += 1;
                return Ok(());
            };
            if seq < line.no {
                self.line = Some(line);
                self.walk.problem(format!(
                    "a row for line {} is stored out of order or twice",
                    seq + 1
                ));
                return Ok(());
            }
            let no = line.no;
            if seq == no {
                self.paired(line, stored);
            } else {
                self.unpaired(line, runs);
            }
            self.next_line(no + 1)?;
            if seq == no {
                return Ok(());
            }
        }
    }

    /// The rows ended: the lines left have none. Returns what the pairing found.
    fn finish(mut self) -> std::io::Result<Walk> {
        self.walk.first = self.first;
        self.walk.read_to = self.committed;
        while let Some(line) = self.line.take() {
            let no = line.no;
            self.unpaired(line, (self.last_run, None));
            self.next_line(no + 1)?;
        }
        if self.beyond > 0 {
            let beyond = plural(usize::try_from(self.beyond).unwrap_or(usize::MAX), "row");
            self.walk
                .problem(format!("{beyond} beyond the end of the file"));
        }
        Ok(self.walk)
    }

    /// A line and its row.
    fn paired(&mut self, line: Line, stored: &str) {
        let walk = &mut self.walk;
        match line.text {
            Ok(text) if stored == text => walk.stored += 1,
            // Read in part: the row is the line's start, or the whole line and the `\r` of its
            // `\r\n` end, read before the `\n` was written.
            Ok(text)
                if line.cut
                    && (text.starts_with(stored) || stored.strip_suffix('\r') == Some(&text)) =>
            {
                walk.partial.push(line.no + 1);
            }
            Ok(text) => {
                walk.differ += 1;
                walk.problem(format!(
                    "line {}: stored {:?}, the file has {:?}",
                    line.no + 1,
                    clip(stored),
                    clip(&text)
                ));
            }
            // Read in part, and grown since into a line the next run cannot store (over the
            // limit, a character cut in two): that run leaves it unread while it has no end,
            // and removes its row once the whole line is rejected.
            Err(_) if line.cut => walk.partial.push(line.no + 1),
            Err(why) => walk.problem(format!("line {} is stored but is {why}", line.no + 1)),
        }
    }

    /// A line with no row: not read yet, rejected at ingest, dead-lettered, or lost. `runs`:
    /// the runs that stored the rows around it (see [`Limits::by_run`]).
    fn unpaired(&mut self, line: Line, runs: (Option<i64>, Option<i64>)) {
        let (walk, number) = (&mut self.walk, line.no + 1);
        match line.text {
            _ if line.unread => walk.unread.push(number),
            // Read in part and rejected as it was then (half a JSON object, a character cut in
            // two): the next run reads it whole.
            _ if line.cut => walk.partial.push(number),
            Err(why) => walk.rejected_line(number, why),
            Ok(_) if self.dead.contains(&number) => walk.dead_lettered.push(number),
            Ok(text) if let Some((run, limit)) = self.limits.rejected_by(text.len(), runs) => {
                let why = format!("longer than {limit} bytes, the limit of run {run}");
                walk.rejected_line(number, why);
            }
            Ok(_) => walk.problem(format!("line {number} is not stored")),
        }
    }
}

impl Walk {
    fn problem(&mut self, what: String) {
        self.problems.push(what);
    }

    /// Line `number` has no row because the ingest rejected it, `why`.
    fn rejected_line(&mut self, number: u64, why: String) {
        self.rejected += 1;
        if self.rejected_at.len() < 5 {
            self.rejected_at.push(format!("line {number} ({why})"));
        }
    }

    /// Prints the findings; `reading`: how the file was read. Returns whether they match.
    fn print(&self, db: &str, file: &str, (input, committed): (i64, i64), reading: &str) -> bool {
        say!("pc-host verify: {db}, {file} (input {input}, committed to byte {committed})");
        say!("{reading}");
        let mut line = format!(
            "  {}: {} stored in file order with the file's text",
            plural(self.lines as usize, "line"),
            self.stored
        );
        if self.differ > 0 {
            line.push_str(&format!(", {} stored with other text", self.differ));
        }
        if self.rejected > 0 {
            line.push_str(&format!(
                ", {} rejected at ingest ({}{})",
                self.rejected,
                self.rejected_at.join(", "),
                if self.rejected as usize > self.rejected_at.len() {
                    ", ..."
                } else {
                    ""
                }
            ));
        }
        say!("{line}");
        if self.first > 0 {
            say!(
                "  lines numbered from {} on: the file holds fewer lines before the committed \
                 position than its rows number (cut short, and read again from its start, or \
                 rewritten in place); {} of its earlier content (not compared)",
                self.first + 1,
                plural(usize::try_from(self.earlier).unwrap_or(usize::MAX), "row"),
            );
        }
        if !self.dead_lettered.is_empty() {
            say!(
                "  {} not stored, as expected: dead-lettered ({}; {})",
                plural(self.dead_lettered.len(), "line"),
                lines_list(&self.dead_lettered),
                self.dead_letter_note
            );
        } else if !self.dead_letter_note.is_empty() {
            say!("  dead letters: {}", self.dead_letter_note);
        }
        if !self.unread.is_empty() {
            say!(
                "  {} after byte {} not stored yet by any run ({}): a run with {} reads them",
                plural(self.unread.len(), "line"),
                self.read_to,
                lines_list(&self.unread),
                crate::config::url::source_flag(file.as_ref())
            );
        }
        if !self.partial.is_empty() {
            let (its, it) = if self.partial.len() == 1 {
                ("its", "it")
            } else {
                ("their", "them")
            };
            say!(
                "  {} read in part, before {its} end was written ({}): the next run with \
                 --source file:{file} reads {it} whole",
                plural(self.partial.len(), "line"),
                lines_list(&self.partial),
            );
        }
        if let Some(first) = self.problems.first() {
            say!(
                "  PROBLEM: {}; the first: {first}",
                plural(self.problems.len(), "difference")
            );
        }
        let ok = self.problems.is_empty();
        say!("result: {}", if ok { "OK" } else { "PROBLEMS FOUND" });
        ok
    }
}

/// Where dead-lettered lines were looked up, for the report: the files read, and those that
/// could not be (a lost line and a dead-lettered one then look alike); empty if there were
/// none to read. A recorded file that is not there is said only when lines are missing
/// (`missing`): a run that dead-lettered nothing made none.
fn dead_letter_note(dead: &dead_lettered::Lines, missing: bool) -> String {
    let shown = |files: &[std::path::PathBuf]| {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        names.join(", ")
    };
    let mut notes = Vec::new();
    if !dead.read.is_empty() {
        notes.push(format!("looked up in {}", shown(&dead.read)));
    }
    if missing && !dead.absent.is_empty() {
        notes.push(format!(
            "no file at {} (lines it would hold count as not stored; --dead-letter PATH gives \
             the file)",
            shown(&dead.absent)
        ));
    }
    if !dead.unreadable.is_empty() {
        notes.push(format!(
            "could not read {} (lines it holds count as not stored; --dead-letter PATH gives \
             the file)",
            dead.unreadable.join("; ")
        ));
    }
    notes.join("; ")
}

/// Up to five line numbers, then "...".
fn lines_list(lines: &[u64]) -> String {
    let first: Vec<String> = lines.iter().take(5).map(u64::to_string).collect();
    let more = if lines.len() > first.len() {
        ", ..."
    } else {
        ""
    };
    let word = if lines.len() == 1 { "line" } else { "lines" };
    format!("{word} {}{more}", first.join(", "))
}

/// At most 60 characters of a text, for a message.
fn clip(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows fed in stored order are paired with the lines they name; each way a row and a
    /// line can fail to pair is judged as the walk's comments say.
    #[test]
    fn rows_are_paired_with_the_lines_they_name() {
        let dir = std::env::temp_dir().join(format!("pc-verify-pairing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("in.log");
        // Lines 1-5 (from 1); line 3 is not UTF-8; lines 4 and 5 start at or past byte 6.
        std::fs::write(&path, b"a\nb\n\xff\nd\ne").unwrap();
        let reader = LineReader::new(std::fs::File::open(&path).unwrap(), 100);
        let dead = BTreeSet::from([1]);
        let mut pairing =
            Pairing::new(reader, Format::Text, Limits::one(100), (0, 6), &dead).unwrap();
        for (seq, text) in [(1, "B"), (0, "a"), (2, "x"), (3, "d"), (7, "z")] {
            pairing.row(1, seq, text).unwrap();
        }
        let walk = pairing.finish().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((walk.lines, walk.stored, walk.differ), (5, 1, 1));
        assert_eq!(
            walk.dead_lettered,
            [1],
            "line 1 has no row, a dead letter has it"
        );
        assert_eq!(
            walk.unread,
            [5],
            "line 4 has a row; line 5 none, past the position"
        );
        assert_eq!(
            walk.problems,
            [
                "line 2: stored \"B\", the file has \"b\"",
                "a row for line 1 is stored out of order or twice",
                "line 3 is stored but is invalid UTF-8",
                "1 row beyond the end of the file",
            ]
        );
    }

    /// A last line stored in part (the committed position inside it) that has grown since past
    /// the limit, or into invalid UTF-8: read in part, not a problem.
    #[test]
    fn a_part_row_of_a_line_grown_past_what_can_be_stored_is_read_in_part() {
        let dir = std::env::temp_dir().join(format!("pc-verify-grown-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in [
            ("long", &b"a1\nzzzzzzzzzzzzzz"[..]),
            ("utf8", b"a1\nzzzz\xe2\x82"),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            let reader = LineReader::new(std::fs::File::open(&path).unwrap(), 10);
            let none = BTreeSet::new();
            let limits = Limits::one(10);
            let mut pairing = Pairing::new(reader, Format::Text, limits, (0, 7), &none).unwrap();
            pairing.row(1, 0, "a1").unwrap();
            pairing.row(1, 1, "zzzz").unwrap();
            let walk = pairing.finish().unwrap();
            assert_eq!((walk.stored, walk.partial), (1, vec![2]), "{name}");
            assert!(walk.problems.is_empty(), "{name}: {:?}", walk.problems);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn limits_the_runs_disagree_on_are_kept_by_run_and_the_report_says_so() {
        let recorded = recorded::Reading {
            max_record_bytes: Recorded::Differ,
            limit_of: vec![(1, 100), (2, 5)],
            format: Recorded::Agreed(Format::Jsonl),
            runs: Vec::new(),
            dead_letters: Vec::new(),
        };
        let none = Given {
            max_record_bytes: None,
            format: None,
            dead_letter: None,
        };
        let (limits, format, how) = settle(&none, &recorded);
        let by_run = Limits {
            max: 100,
            by_run: vec![(1, 100), (2, 5)],
        };
        assert_eq!((&limits, format), (&by_run, Format::Jsonl));
        assert_eq!(
            limits.describe(),
            "the limits of the runs that read it, 5 to 100 bytes"
        );
        assert!(
            how.contains("(the format as the runs that read it recorded)"),
            "{how}"
        );
        assert!(
            how.contains("a line with no row is judged by the limits of the runs that could"),
            "{how}"
        );
        // What the user gives wins over what was recorded.
        let given = Given {
            max_record_bytes: Some(10),
            format: Some(Format::Text),
            dead_letter: None,
        };
        let (limits, format, how) = settle(&given, &recorded);
        assert_eq!((limits, format), (Limits::one(10), Format::Text));
        assert!(!how.contains("judged by"), "given, so not said: {how}");
    }

    /// Runs 1 (limit 10) and 2 (limit 4) read a file in turn: a line with no row is rejected
    /// only if a run that could have read it (from the run of the row before it to the run of
    /// the row after it) has a limit it is over; past the largest limit it must be rejected.
    #[test]
    fn a_line_with_no_row_is_judged_by_the_limits_of_the_runs_around_it() {
        let dir = std::env::temp_dir().join(format!("pc-verify-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("in.log");
        // Lines 1-6: 2, 6, 7, 13, 6 and 3 bytes.
        std::fs::write(&path, "ab\nabcdef\nabcdefg\nabcdefghijklm\nfedcba\nabc\n").unwrap();
        let limits = Limits {
            max: 10,
            by_run: vec![(1, 10), (2, 4)],
        };
        let walk = |rows: &[(i64, i64, &str)]| {
            let reader = LineReader::new(std::fs::File::open(&path).unwrap(), 10);
            let none = BTreeSet::new();
            let at = (0, 60);
            let mut pairing =
                Pairing::new(reader, Format::Text, limits.clone(), at, &none).unwrap();
            for &(run, seq, text) in rows {
                pairing.row(run, seq, text).unwrap();
            }
            pairing.finish().unwrap()
        };
        // Run 1 stored lines 1 and 2; run 2 rejected lines 3 and 5 (over its 4 bytes) and
        // stored line 6; line 4 is over both limits.
        let w = walk(&[(1, 0, "ab"), (1, 1, "abcdef"), (2, 5, "abc")]);
        assert!(w.problems.is_empty(), "{:?}", w.problems);
        assert_eq!((w.stored, w.rejected), (3, 3));
        // Line 2 has no row between two rows of run 1, whose limit it is within: lost.
        let w = walk(&[(1, 0, "ab"), (1, 2, "abcdefg"), (2, 5, "abc")]);
        assert_eq!(w.problems, ["line 2 is not stored"]);
        // A following run started earlier (run 1) read on after run 2 stored line 1: the lines
        // between are judged by both runs' limits, the rows' runs in either order.
        let w = walk(&[(2, 0, "ab"), (1, 5, "abc")]);
        assert!(w.problems.is_empty(), "{:?}", w.problems);
        assert_eq!((w.stored, w.rejected), (2, 4));
        // Line 1 (2 bytes) is within every limit.
        let w = walk(&[(1, 1, "abcdef"), (1, 2, "abcdefg"), (2, 5, "abc")]);
        assert_eq!(w.problems, ["line 1 is not stored"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
