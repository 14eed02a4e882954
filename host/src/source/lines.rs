//! A line source: stdin or a file, one record per line, resuming a file after its last
//! committed line; with `follow`, reading on as the file grows, like `tail -F`.
//!
//! - Each record carries its line number (`seq`) and, for a file, the byte offset just after
//!   its line (`end_offset`); the sink commits the offset with the rows, so a re-run resumes
//!   exactly after what was stored.
//! - A line that cannot be stored (invalid UTF-8 for `text`, invalid JSON for `jsonl`, longer
//!   than `--max-record-bytes`) is counted as rejected and skipped; it keeps its line number.
//! - Following: at the end of the file the source naps (1 ms, doubling to 100 ms) and looks
//!   again. When the path names a new file (rotation), it reads the old file on until it has
//!   not grown for the rotate wait ([`Rotation`]), then moves to the new one, a new input,
//!   unless a source of this run reads that file already ([`FilesRead`]); what the old file
//!   grows by afterwards is named in a warning ([`LeftBehind`]). When the file shrinks below
//!   what was read (truncation), or the bytes it read last are no longer there when the
//!   reader reads on (a truncation refilled past the read position, or text written over it:
//!   [`super::input::Rewritten`]), it starts over from its beginning (line numbers go on).
//! - Not following, a file that shrinks below what was read, or is rewritten under the
//!   reader, ends the source with a warning, and the line the truncation cut is not stored
//!   ([`LineSource::changed_while_read`]).
//! - A resume point whose bytes are no longer those read before it (the file rewritten in
//!   place between runs: [`read_as_committed`]) is given up: the file is read from its start.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};

use super::Context;
use super::input::{LineReader, RawLine, StdinPoll, is_rewritten, key_at, open_file};
use super::rate::{Reserved, Take};
use super::watch::FileWatch;
use crate::config::Format;
use crate::dead_letter::{DeadLetters, Reason};
use crate::flow::{ByteGate, CHUNK_BYTES};
use crate::message::Record;
use crate::position::{FileKey, InputStart, Positions, Resume, StoppedRetrying};
use crate::telemetry::{ProducerStats, REJECT_SAMPLES, bump};

/// The longest nap at the end of a followed file.
const MAX_FOLLOW_NAP: Duration = Duration::from_millis(100);

/// How long a followed source waits at its file's end before looking again: 1 ms after a look
/// that read anything, doubling with each look that found nothing, up to [`MAX_FOLLOW_NAP`]. A
/// file written to now and then is looked at within a millisecond or two of each write; an idle
/// one ten times a second.
#[derive(Debug)]
struct FollowNap(Duration);

impl FollowNap {
    const FIRST: Duration = Duration::from_millis(1);

    fn new() -> Self {
        Self(Self::FIRST)
    }

    /// Something was read (or the source moved on): the next wait is the shortest.
    fn read_some(&mut self) {
        self.0 = Self::FIRST;
    }

    /// The wait before the next look, found nothing; the one after it is twice as long.
    fn next(&mut self) -> Duration {
        let nap = self.0;
        self.0 = (nap * 2).min(MAX_FOLLOW_NAP);
        nap
    }
}

/// What a truncation of a followed file left unstored, for its warning: the bytes the file
/// held (`seen_len`, its largest length seen) from the first line not read whole (`from`: a
/// part of it may have been read) on, if any. They were written and gone before they were
/// read: a `copytruncate` rotation copies them to another file, which pc-host does not read.
fn unread_at_truncation(seen_len: u64, from: u64) -> String {
    match seen_len.checked_sub(from) {
        Some(unread) if unread > 0 => format!(
            "; at least {unread} bytes it held from the first line not read whole on were never \
             stored (a `copytruncate` rotation leaves them only in its copy, from byte {from} on)"
        ),
        _ => String::new(),
    }
}

/// Why a stdin line the run stopped in is not a record, where stdin may still hold its rest.
const CUT_BY_STOP: &str =
    "cut by the stop: the rest of the line was not read, and stays in the input";
/// Why a stdin line the failed run stopped in is not a record: stdin may hold the rest or not
/// (a read error may have ended it).
const CUT_BY_FAILURE: &str = "cut by the run's failure: the rest of the line was not read";

/// Where a line source reads.
#[derive(Debug)]
pub enum Input {
    Stdin(LineReader<StdinPoll>),
    File {
        /// Boxed: its windows make it the larger part of the enum.
        reader: Box<LineReader<File>>,
        key: FileKey,
        /// The path as given, watched for rotation when following.
        path: PathBuf,
        /// Following: how long the file must have stopped growing after a rotation before
        /// the source moves on to the new file (`None`: read once, not followed).
        follow: Option<Duration>,
        /// The path names a new file: this one is read on until it has not grown for the
        /// rotate wait.
        rotated: Option<Rotation>,
        /// The line number of a line an earlier run stored without its end, which this run
        /// reads again whole: its record replaces that row.
        completes: Option<u64>,
        /// The bytes of that line its row holds (the committed tail): how far past the line's
        /// start the committed position stays if this run leaves the line unread.
        stored_tail: u64,
        /// The mark committed with that position.
        stored_mark: Option<u32>,
        /// Why the new file at the path could not be opened after a rotation, as last warned
        /// (a wait that would otherwise be silent: permission denied, a directory, a pipe).
        unopened: Option<String>,
        /// Following: wakes the source when the file or its directory changes, before its nap
        /// ends (`None`: not followed, or inotify not to be had).
        watch: Option<FileWatch>,
        /// Following: the file's largest length seen since it was opened or last truncated
        /// (looked at after each chunk read, and at its end). A truncation seen later left
        /// what it held past the read position unread: written, and gone before it was read.
        seen_len: u64,
    },
}

/// One line source thread.
#[derive(Debug)]
pub struct LineSource<'a> {
    pub cx: Context<'a>,
    pub input: Input,
    pub format: Format,
    pub max_record_bytes: usize,
    /// Where it starts (from the sink).
    pub resume: Resume,
    /// Registers the new file after a rotation.
    pub positions: &'a dyn Positions,
    /// The files the run's line sources read (shared by all).
    pub files_read: &'a FilesRead,
    /// Records still to accept under `--messages` (shared by all sources).
    pub budget: &'a super::Budget,
    /// The in-flight byte budget, taken before each push.
    pub gate: &'a ByteGate,
    pub stats: &'a ProducerStats,
    /// Where rejected lines go, if anywhere.
    pub dead_letters: Option<&'a DeadLetters>,
    /// Rejected lines' entries, written before the chunk they were read in is pushed.
    pub rejects: Vec<serde_json::Value>,
    /// The file left at the last rotation, if any.
    pub left_behind: Option<LeftBehind>,
    /// What this source's claims on the budget took since they were last settled
    /// ([`Self::settle`]).
    pub claimed: std::cell::Cell<u64>,
}

/// The files a run's line sources read, by device, inode and birth time. A followed path that
/// comes to name one of them at a rotation (the file another source follows, renamed onto
/// this one's path, or one this source read before) is not read again: it would be stored
/// twice. Where the file system records no birth time, a file a source has left is given up
/// ([`left`](Self::left)): its inode may then go to a new file, which must be read.
#[derive(Debug, Default)]
pub struct FilesRead(Mutex<HashSet<(u64, u64, Option<i64>)>>);

impl FilesRead {
    /// Takes `key`'s file for a source of this run: `false` if one took it already.
    pub fn take(&self, key: &FileKey) -> bool {
        self.files().insert((key.dev, key.ino, key.born))
    }

    /// A source moved on from `key`'s file.
    pub fn left(&self, key: &FileKey) {
        if key.born.is_none() {
            self.files().remove(&(key.dev, key.ino, None));
        }
    }

    fn files(&self) -> std::sync::MutexGuard<'_, HashSet<(u64, u64, Option<i64>)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A followed file's rotation under way: the old file is read on until it has not grown for
/// the rotate wait, or at most [`ROTATE_WAIT_CAP`] times that since the rotation was seen.
#[derive(Debug)]
pub struct Rotation {
    seen: Instant,
    grew: Instant,
    /// The old file's length when it last grew.
    len: u64,
    /// The cap's warning was given.
    warned: bool,
    /// The new file, opened when the rotation was seen: the source moves to it even if the
    /// path names yet another file by then (rotated again during the wait), and from it on to
    /// that one, so no file between is skipped. `None` if it could not be opened then.
    next: Option<Box<super::input::OpenFile>>,
}

/// How many rotate waits a rotated file that keeps growing is read on before the source moves
/// to the new file anyway: a program that never reopens the path would hold it back for ever.
const ROTATE_WAIT_CAP: u32 = 10;

impl Rotation {
    /// A rotation seen now: `path` names the file `new` (device, inode), and the old file was
    /// read to `len`. Opens the new file (see `next`) and says so, with the rotate `wait`.
    fn seen(path: &Path, new: (u64, u64), len: u64, wait: Duration) -> Self {
        let next = open_file(path)
            .ok()
            .filter(|o| (o.key.dev, o.key.ino) == new)
            .map(Box::new);
        let until = if wait.is_zero() {
            "to its end".to_string()
        } else {
            let wait = humantime::format_duration(wait);
            format!("on until it has not grown for {wait}")
        };
        tracing::info!("{}: rotated; the old file is read {until}", path.display());
        let now = Instant::now();
        Self {
            seen: now,
            grew: now,
            len,
            warned: false,
            next,
        }
    }

    /// At the old file's end (read to `len`): what to do while the source waits on it
    /// (`None`: move on now). Past the cap it moves on even if the file still grows, saying so.
    fn waiting(&mut self, len: u64, wait: Duration, path: &Path) -> Option<Turn> {
        let held = self.seen.elapsed() >= wait.saturating_mul(ROTATE_WAIT_CAP);
        if len != self.len {
            self.len = len;
            self.grew = Instant::now();
            if !held {
                return Some(Turn::ReadOn);
            }
        }
        let quiet = self.grew.elapsed() >= wait;
        if !quiet && !held {
            return Some(Turn::Wait);
        }
        if !quiet && !std::mem::replace(&mut self.warned, true) {
            tracing::warn!(
                "{}: the old file still grows {} after the rotation: moving on to the new file; \
                 what is written to the old file from now on is not read (said again when this \
                 source moves on or ends)",
                path.display(),
                humantime::format_duration(Duration::from_secs(self.seen.elapsed().as_secs()))
            );
        }
        None
    }
}

/// The file a followed source left at its last rotation, kept open to tell whether it grew
/// after the source moved on (what it grew by is not read).
#[derive(Debug)]
pub struct LeftBehind {
    file: File,
    key: FileKey,
    input: u32,
    /// Its length then.
    len: u64,
}

impl LeftBehind {
    /// Warns if the file grew since the source left it, naming where it is now.
    fn check(&self) {
        let now = self.file.metadata().map_or(self.len, |m| m.len());
        if now <= self.len {
            return;
        }
        let whereabouts = match crate::paths::whereabouts((self.key.dev, self.key.ino)) {
            Some(crate::paths::Whereabouts::At(path)) => {
                format!("; {} reads them", crate::config::url::source_flag(&path))
            }
            Some(crate::paths::Whereabouts::Removed) => "; it has been removed since".into(),
            _ => String::new(),
        };
        crate::position::unread_said(format!(
            "file:{}: the file this source left at a rotation (input {}) grew by {} bytes after it \
             moved on: not read{whereabouts}",
            self.key.path.display(),
            self.input,
            now - self.len
        ));
    }
}

/// How a line source ended.
#[derive(Debug, Default)]
pub struct Ended {
    /// The inputs it moved on to after rotations.
    pub moved_to: Vec<InputStart>,
    /// For each file input that ended with everything it read pushed (a followed file's
    /// inputs before a rotation, then the last): the position after the last line read, to
    /// commit once the run has committed its records. It covers rejected lines after the last
    /// stored one, which no record carries.
    pub final_positions: Vec<Resume>,
}

/// What to do at the end of a followed file.
enum Turn {
    /// Nothing new: nap, then look again.
    Wait,
    /// Read on at once (the file was truncated, or rotated and is being finished).
    ReadOn,
    /// Moved to the new file after a rotation; the old file's final position.
    Moved(InputStart, Resume),
    /// The run stopped while the old file's last line waited to be pushed.
    TornDown,
}

/// Whether an input's last line, read without a line end, is its last for good.
#[derive(Clone, Copy)]
enum Last {
    /// A file read once: a later run may find it grown, the line completed.
    MayGrow,
    /// Stdin, or a rotated file being finished: nothing more comes.
    Final,
}

/// How reading one chunk ended.
enum Chunk {
    /// Read as many as asked for.
    Full,
    /// Reached the end of what can be read now.
    End,
    /// The file was rewritten in place under the reader ([`super::input::Rewritten`]).
    Rewritten,
}

impl LineSource<'_> {
    /// Reads until the end of the input (not following), the run stops, the budget is spent,
    /// or the ring is closed.
    ///
    /// # Errors
    /// A read error, or a failure to register a new file with the sink.
    pub fn run(mut self) -> anyhow::Result<Ended> {
        let mut next = self.resume;
        let mut buf: Vec<Record> = Vec::with_capacity(self.cx.chunk as usize);
        let read = self.read_all(&mut next, &mut buf);
        if read.is_err() {
            // A file's records a read error left in `buf` are read again by the next run.
            if self.is_file() {
                let _ = self.unqueued(&mut buf);
                self.rejects.clear();
            }
            self.count_rest_of_stdin(&mut next, &mut buf);
        } else {
            self.leave_held_line(&next);
        }
        self.settle();
        if let Some(left) = &self.left_behind {
            left.check();
        }
        read
    }

    /// [`run`](Self::run)'s loop.
    fn read_all(&mut self, next: &mut Resume, buf: &mut Vec<Record>) -> anyhow::Result<Ended> {
        let mut nap = FollowNap::new();
        let mut ended = Ended::default();
        let mut reserved = Reserved::default();
        loop {
            self.settle();
            let want = self.claim(self.cx.chunk);
            if want == 0 {
                // This source's claims are settled (above): a claim held is another's.
                if !self.budget.spent() && !self.cx.stop.load(Ordering::Relaxed) {
                    // Another source holds what is left of --messages, and may give some
                    // back (at the end of its file): look again.
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                // --messages reached.
                self.give_back_stdin();
                return Ok(self.with_final_position(ended, *next));
            }
            let Take::Go { grant, .. } = self.cx.take(want, &mut reserved) else {
                self.unclaim(want);
                self.rest_of_stdin(next, buf)?;
                return Ok(self.with_final_position(ended, *next));
            };
            let granted = grant.map_or(want, |g| g.count());
            self.unclaim(want - granted);
            let (chunk, accepted, lines) = self.read_chunk(granted, next, buf)?;
            self.unclaim(granted - accepted);
            if lines > 0 {
                // A file being written to: looked at again soon, not after the longest nap.
                nap.read_some();
                self.note_length();
            }
            if !self.push(buf)? {
                // The run is being torn down: what was read is not all in.
                self.rest_of_stdin(next, buf)?;
                return Ok(ended);
            }
            // The end of what can be read now.
            let (at_eof, follow) = match &self.input {
                Input::Stdin(r) => (r.at_eof(), false),
                Input::File { reader, follow, .. } => (reader.at_eof(), follow.is_some()),
            };
            match chunk {
                Chunk::Full => continue,
                Chunk::Rewritten if follow => {
                    self.start_over_rewritten(next)?;
                    nap.read_some();
                    continue;
                }
                Chunk::Rewritten => {
                    self.changed_while_read(next, true);
                    return Ok(self.with_final_position(ended, *next));
                }
                Chunk::End => {}
            }
            if !at_eof {
                // Nothing on stdin yet (its read already waited), or a line still without its
                // end: read on; the next take sees a stop.
                continue;
            }
            if !follow {
                if self.changed_while_read(next, false) {
                    return Ok(self.with_final_position(ended, *next));
                }
                if !self.finish_input(next, buf, Last::MayGrow)? {
                    return Ok(ended);
                }
                return Ok(self.with_final_position(ended, *next));
            }
            if self.cx.stop.load(Ordering::Relaxed) {
                return Ok(self.with_final_position(ended, *next));
            }
            match self.follow_turn(next, buf)? {
                Turn::Wait => self.wait_for_change(nap.next()),
                Turn::ReadOn => nap.read_some(),
                Turn::Moved(start, finished) => {
                    ended.moved_to.push(start);
                    ended.final_positions.push(finished);
                    nap.read_some();
                }
                // What was read of the old file could not all be pushed: no settling.
                Turn::TornDown => return Ok(ended),
            }
        }
    }

    /// Waits `nap` at a followed file's end, or less if the file or its directory changes.
    fn wait_for_change(&self, nap: Duration) {
        match &self.input {
            Input::File {
                watch: Some(watch), ..
            } => watch.wait(nap),
            _ => std::thread::sleep(nap),
        }
    }

    /// `ended`, with the position a file input reached once everything it pushed is committed.
    fn with_final_position(&self, mut ended: Ended, mut next: Resume) -> Ended {
        if self.is_file() {
            self.keep_committed_tail(&mut next);
            ended.final_positions.push(next);
        }
        ended
    }

    /// If this run went back to read whole a line an earlier run stored without its end
    /// (`completes`), and `next` is still before that line, moves `next` back to where that
    /// run committed, after the stored part: the row stays the line's start, and the next run
    /// completes it. (Committed before the line, the position would say nothing of the row, and
    /// the next run would store the line again as a second row.)
    fn keep_committed_tail(&self, next: &mut Resume) {
        if let Input::File {
            completes: Some(line),
            stored_tail,
            stored_mark,
            ..
        } = &self.input
            && *line == next.line
            && next.tail == 0
        {
            next.offset += *stored_tail;
            next.line += 1;
            next.tail = *stored_tail;
            next.mark = *stored_mark;
        }
    }

    /// Reads lines until `want` records are accepted or nothing more can be read now: how the
    /// chunk ended, the records accepted and the lines read.
    fn read_chunk(
        &mut self,
        want: u64,
        next: &mut Resume,
        buf: &mut Vec<Record>,
    ) -> anyhow::Result<(Chunk, u64, u64)> {
        let mut accepted = 0;
        let mut read_bytes = 0;
        let mut read = 0;
        let mut chunk = Chunk::Full;
        // One clock reading per chunk, taken when its first line has been read: a record's
        // latency may be overstated by the chunk's read time, never understated. Once a line
        // is in hand, stdin is not waited on (the chunk is pushed at once).
        let mut now = None;
        let mut failed = None;
        self.wait_for_stdin(true);
        while accepted < want && read_bytes < CHUNK_BYTES {
            let line = match &mut self.input {
                Input::Stdin(r) => r.next_line(),
                Input::File { reader, .. } => reader.next_line(),
            };
            let line = match line {
                Err(e) if is_rewritten(&e) => {
                    chunk = Chunk::Rewritten;
                    break;
                }
                Err(e) => {
                    // The lines read before it are counted as read (below), and stay in
                    // `buf` for the caller to account for.
                    failed = Some(e);
                    break;
                }
                Ok(line) => line,
            };
            let Some(line) = line else {
                chunk = Chunk::End;
                break;
            };
            let now = *now.get_or_insert_with(|| {
                self.wait_for_stdin(false);
                self.cx.clock.now()
            });
            read += 1;
            read_bytes += line.consumed;
            let line = self.parse(line);
            accepted += u64::from(self.accept(line, now, next, buf));
        }
        bump(&self.stats.read, read);
        bump(&self.stats.read_bytes, read_bytes);
        match failed {
            Some(e) => Err(e).with_context(|| format!("reading {}", self.name())),
            None => Ok((chunk, accepted, read)),
        }
    }

    /// Following a file: keeps its length now ([`Input::File`]'s `seen_len`), before the
    /// chunk just read waits for room in the ring, so that a truncation meanwhile can say
    /// what it left unread.
    fn note_length(&mut self) {
        if let Input::File {
            reader,
            follow: Some(_),
            seen_len,
            ..
        } = &mut self.input
            && let Ok(m) = reader.get_mut().metadata()
        {
            // The largest: a look after a truncation, before it is seen at the file's end,
            // would otherwise hide what it left unread.
            *seen_len = (*seen_len).max(m.len());
        }
    }

    /// One line as a record's text, or why it cannot be one.
    fn parse(&self, line: RawLine) -> Parsed {
        Parsed {
            consumed: line.consumed,
            terminated: line.terminated,
            mark: line.mark,
            text: record_text(line, self.format, self.max_record_bytes),
        }
    }

    /// Turns one parsed line, read at clock `now`, into a record in `buf`, or counts it as
    /// rejected; moves `next` on.
    fn accept(&mut self, line: Parsed, now: u64, next: &mut Resume, buf: &mut Vec<Record>) -> bool {
        let seq = next.line;
        next.line += 1;
        next.offset += line.consumed;
        next.tail = if line.terminated { 0 } else { line.consumed };
        next.mark = (line.mark != 0).then_some(line.mark);
        let completes = match &self.input {
            Input::File { completes, .. } => *completes == Some(seq),
            Input::Stdin(_) => false,
        };
        // The first record after a start over says so (`Resume::restarted` until then).
        let restarted = line.text.is_ok() && std::mem::take(&mut next.restarted);
        match line.text {
            Ok(text) => {
                buf.push(Record {
                    intended_ns: now,
                    created_at: self.cx.unix(now),
                    producer: next.input,
                    seq,
                    end_offset: if self.is_file() { next.offset } else { 0 },
                    tail: u32::try_from(next.tail).unwrap_or(u32::MAX),
                    mark: if self.is_file() { line.mark } else { 0 },
                    replaces: completes,
                    restarted,
                    text,
                    delivery: None,
                    lane: self.cx.lane,
                });
                true
            }
            Err(Rejected { why, bytes }) => {
                if let Some(dead) = self.dead_letters {
                    let end = self.is_file().then_some(next.offset);
                    let e = dead.line_entry(next.input, seq, end, bytes.as_deref(), &why);
                    self.rejects.push(e);
                }
                bump(&self.stats.rejected, 1);
                let mut samples = self
                    .stats
                    .reject_samples
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if samples.len() < REJECT_SAMPLES {
                    samples.push(format!("line {} ({why})", seq + 1));
                }
                false
            }
        }
    }

    /// At the real end of an input: its last line if it had no line end. Returns `false` if
    /// the run was torn down before it could be pushed.
    ///
    /// Such a line that cannot be stored (invalid UTF-8 or JSON, too long) may be one still
    /// being written, cut mid-line or mid-character: in a file a later run may find grown
    /// (`last`), it is left unread, neither rejected nor dead-lettered, and the next run reads
    /// it again, whole by then ([`Self::leave_unended`]). Stdin's, or a rotated file's, is
    /// final: rejected as any line.
    fn finish_input(
        &mut self,
        next: &mut Resume,
        buf: &mut Vec<Record>,
        last: Last,
    ) -> anyhow::Result<bool> {
        let line = match &mut self.input {
            Input::Stdin(r) => r.finish(),
            Input::File { reader, .. } => reader.finish(),
        };
        if let Some(line) = line {
            if self.claim(1) == 0 {
                return Ok(true); // --messages reached: the line is left for a later run
            }
            bump(&self.stats.read, 1);
            bump(&self.stats.read_bytes, line.consumed);
            let line = self.parse(line);
            if matches!(last, Last::MayGrow)
                && self.is_file()
                && let Err(Rejected { why, .. }) = &line.text
            {
                self.unclaim(1);
                self.leave_unended(next, why);
                return self.push(buf);
            }
            let now = self.cx.clock.now();
            if !self.accept(line, now, next, buf) {
                self.unclaim(1);
            }
            return self.push(buf);
        }
        Ok(true)
    }

    /// A file's last line, without its line end and not storable as it is (`why`), left for
    /// the next run: counted as read and not queued (read again), `next` left before it (or
    /// after the part an earlier run stored: [`Self::keep_committed_tail`]), and a warning
    /// naming it.
    fn leave_unended(&mut self, next: &mut Resume, why: &str) {
        let number = next.line + 1;
        self.keep_committed_tail(next);
        bump(&self.stats.not_queued_rereadable, 1);
        tracing::warn!(
            "{}: line {} has no line end yet and cannot be stored as it is ({why}): left \
             unread; a later run reads it again, once it is whole",
            self.name(),
            number
        );
    }

    /// A followed file left, however the run ended, with a last line still without its end
    /// (the reader read to the file's end and holds only those bytes): counted as read and
    /// not queued, as [`Self::leave_unended`] counts one, with a warning naming it, so that
    /// the counts say where every byte read went. The position stays before it: the next run
    /// reads it again, whole by then. Not for a file rotated away (the next run names its
    /// unread bytes instead), nor for a file read once, whose last line is read at its end.
    fn leave_held_line(&self, next: &Resume) {
        let Input::File {
            reader,
            follow: Some(_),
            rotated: None,
            ..
        } = &self.input
        else {
            return;
        };
        let held = reader.held_last_line();
        if held == 0 {
            return;
        }
        bump(&self.stats.read, 1);
        bump(&self.stats.read_bytes, held);
        bump(&self.stats.not_queued_rereadable, 1);
        tracing::warn!(
            "{}: line {} has no line end yet as the run stops ({held} bytes so far): left \
             unread; a later run reads it again, once it is whole",
            self.name(),
            next.line + 1
        );
    }

    /// In a file read once (not followed): whether it shrank below what was read by its end,
    /// a truncation while the run read it (a `copytruncate` rotation), or (`rewritten`) the
    /// reader found the bytes before its position changed ([`Rewritten`]). The line read in
    /// part is then a piece of a line the file no longer has: it is dropped, not stored, and
    /// a warning says so. What was read whole is stored, and the position to commit goes back
    /// to the file's start (line numbers go on, as when following), so the next run reads
    /// whatever the file holds by then from its start.
    ///
    /// [`Rewritten`]: super::input::Rewritten
    fn changed_while_read(&mut self, next: &mut Resume, rewritten: bool) -> bool {
        let Input::File { reader, path, .. } = &mut self.input else {
            return false;
        };
        let read_to = next.offset + reader.pending();
        let len = reader.get_mut().metadata().map_or(u64::MAX, |m| m.len());
        let what = if rewritten {
            format!(
                "rewritten in place while this run read it (the bytes before {read_to}, read \
                 already, changed)"
            )
        } else if len < read_to {
            format!("truncated to {len} bytes while this run read it (it was read to {read_to})")
        } else {
            return false;
        };
        let cut = match reader.finish().map_or(0, |line| line.consumed) {
            0 => String::new(),
            n => format!("; the {n} bytes of the line it cut are not stored"),
        };
        tracing::warn!(
            "{}: {what}{cut}; the next run reads the file again from its start",
            path.display()
        );
        self.start_over(next);
        true
    }

    /// A followed file whose bytes just before the read position changed ([`Rewritten`]):
    /// truncated and refilled past that position while the source read elsewhere or napped,
    /// or written over in place. Read again from its start, as a truncated file is, and said
    /// in a warning.
    ///
    /// [`Rewritten`]: super::input::Rewritten
    fn start_over_rewritten(&mut self, next: &mut Resume) -> anyhow::Result<()> {
        let Input::File {
            reader,
            path,
            seen_len,
            ..
        } = &mut self.input
        else {
            return Ok(());
        };
        // What it held past the read position before the rewrite cannot be told from what
        // the rewrite wrote: no count of it is given, and the new text's is started over.
        *seen_len = 0;
        let read_to = next.offset + reader.pending();
        tracing::warn!(
            "{}: rewritten in place (the bytes before {read_to}, read already, changed: \
             truncated and written past that point, or written over): reading it again from \
             the start",
            path.display()
        );
        reader.seek(0)?;
        self.start_over(next);
        Ok(())
    }

    /// `next` goes back to the file's start after a truncation or a rewrite (its line numbers
    /// go on): the next record, or the final position if none comes, says the input started
    /// over (`Resume::restarted`).
    fn start_over(&mut self, next: &mut Resume) {
        next.offset = 0;
        next.mark = None;
        next.tail = 0;
        next.restarted = true;
        self.forget_line_to_complete(next);
    }

    /// After a truncation, the line an earlier run stored the start of (`completes`) is no
    /// longer in the file: nothing completes its row, which keeps its line number; if `next`
    /// is still at that line, the lines read from now on are numbered after it. (Kept, the
    /// first line after the truncation would replace that row, or a stop would commit a
    /// position inside the file's new text.)
    fn forget_line_to_complete(&mut self, next: &mut Resume) {
        if let Input::File { completes, .. } = &mut self.input
            && let Some(line) = completes.take()
            && next.line == line
        {
            next.line += 1;
        }
    }

    /// Pushes `buf` once its bytes fit the in-flight budget; `false` if the run stopped or the
    /// ring was closed first.
    fn push(&mut self, buf: &mut Vec<Record>) -> anyhow::Result<bool> {
        if let Some(dead) = self.dead_letters {
            // Before the chunk's records can commit and move the input's position past them.
            if let Err(e) = dead.write(&self.rejects) {
                // The run fails; the chunk's records never reach the ring: counted as any
                // record the failing run read and did not queue. (Stdin's: if the file takes
                // them no better, they are counted as lost, and this first error is the run's.)
                let _ = self.unqueued(buf);
                return Err(e).with_context(|| {
                    format!(
                        "writing rejected lines of {} to the dead-letter file {}",
                        self.name(),
                        dead.path().display()
                    )
                });
            }
            bump(
                &self.stats.rejected_dead_lettered,
                self.rejects.len() as u64,
            );
            self.rejects.clear();
        }
        if buf.is_empty() {
            return Ok(true);
        }
        let bytes: u64 = buf.iter().map(|r| r.text.len() as u64).sum();
        let began = self.stats.blocked.begin();
        // A stopping run still takes what stdin gave (it cannot be read again): the bytes in
        // flight are freed as the consumers settle them, whatever the sink does; only a closed
        // ring (a failing run, whose consumers may be gone) ends the wait. A file's lines are
        // read again by the next run, so a file source gives up at the stop.
        let (stop, ring) = (self.cx.stop, self.cx.ring);
        let give_up = || {
            if self.is_file() {
                // Relaxed: a flag polled between waits.
                stop.load(Ordering::Relaxed)
            } else {
                ring.is_closed()
            }
        };
        let admitted = self.gate.acquire_unless(self.cx.lane, bytes, give_up);
        self.stats.blocked.end(began);
        if admitted && self.cx.push(buf, self.stats) {
            return Ok(true);
        }
        self.unqueued(buf)?;
        Ok(false)
    }

    /// Records read that the stopping or failing run will not queue, counted so that every
    /// record read is accounted for: a file's are read again by the next run; stdin's go to
    /// the dead-letter file if there is one, else are counted as lost ([`Self::not_queued`]).
    /// `buf` is left empty.
    fn unqueued(&mut self, buf: &mut Vec<Record>) -> anyhow::Result<()> {
        if self.is_file() {
            bump(&self.stats.not_queued_rereadable, buf.len() as u64);
            buf.clear();
            Ok(())
        } else {
            self.not_queued(buf)
        }
    }

    /// When a stdin source stops (the run stops, or fails): the whole lines stdin has already
    /// given (in the read buffer) cannot be read again, so they go where this chunk's would:
    /// pushed while the ring is open, else dead-lettered or counted as not queued
    /// ([`Self::push`]). Nothing more is read. A `--messages` budget still caps what is
    /// taken: what it leaves is given back to a regular file, as `head` leaves one (a pipe's
    /// read-ahead is gone). At the end of the buffer, [`Self::end_of_stdin`].
    fn rest_of_stdin(&mut self, next: &mut Resume, buf: &mut Vec<Record>) -> anyhow::Result<()> {
        let Input::Stdin(reader) = &mut self.input else {
            return Ok(());
        };
        reader.get_mut().done = true;
        loop {
            let want = self.claim(self.cx.chunk.max(1));
            if want == 0 {
                self.give_back_stdin();
                return Ok(());
            }
            let (chunk, accepted, _) = self.read_chunk(want, next, buf)?;
            self.unclaim(want - accepted);
            if matches!(chunk, Chunk::End) {
                self.end_of_stdin(next, buf);
            }
            // Pushed, or (a closed ring) dead-lettered or counted: either way on to the next.
            // What went in took no tokens: counted apart, so the achieved rate stays the paced
            // one.
            let before = self.stats.produced.load(Ordering::Relaxed);
            self.push(buf)?;
            if self.cx.bucket.is_some() {
                let pushed = self.stats.produced.load(Ordering::Relaxed) - before;
                bump(&self.stats.unpaced, pushed);
            }
            if matches!(chunk, Chunk::End) {
                return Ok(());
            }
        }
    }

    /// What stdin gave and pc-host did not take, given back if fd 0 is a regular file;
    /// returns whether it was.
    fn give_back_stdin(&mut self) -> bool {
        let Input::Stdin(reader) = &mut self.input else {
            return false;
        };
        let given = StdinPoll::give_back(reader.pending());
        if given {
            reader.reset();
        }
        given
    }

    /// At the end of what a stopped stdin source holds: a line without its end is the
    /// input's last line if the input has ended (`StdinPoll::ended`), read and accepted as any
    /// (within a `--messages` budget; past it, given back as the lines before it were);
    /// otherwise the stop cut it ([`Self::cut_stdin_line`]).
    fn end_of_stdin(&mut self, next: &mut Resume, buf: &mut Vec<Record>) {
        let Input::Stdin(reader) = &self.input else {
            return;
        };
        if reader.pending() == 0 {
            return;
        }
        if !self.stdin_ended() {
            self.cut_stdin_line(next, CUT_BY_STOP);
        } else if self.claim(1) == 0 {
            self.give_back_stdin();
        } else {
            let records = buf.len();
            self.accept_last_stdin_line(next, buf);
            self.unclaim(u64::from(buf.len() == records));
        }
    }

    /// At the end of what stdin gave once it is done: its last line, if it had no line end,
    /// read and accepted as any.
    fn accept_last_stdin_line(&mut self, next: &mut Resume, buf: &mut Vec<Record>) {
        if let Input::Stdin(reader) = &mut self.input
            && let Some(line) = reader.finish()
        {
            bump(&self.stats.read, 1);
            bump(&self.stats.read_bytes, line.consumed);
            let now = self.cx.clock.now();
            let line = self.parse(line);
            self.accept(line, now, next, buf);
        }
    }

    /// Whether stdin has ended: a read saw its own end (not the one a stopped source's reads
    /// report), or it has ended since ([`StdinPoll::ended`]).
    fn stdin_ended(&self) -> bool {
        matches!(&self.input, Input::Stdin(r) if r.get_ref().saw_end) || StdinPoll::ended()
    }

    /// The part of a line stdin had given when the run stopped, its end not yet read: not a
    /// record (its text would be cut wherever a read happened to end). On a regular file, fd
    /// 0 is moved back over it, so that the next reader reads the whole line, as `head`
    /// leaves a file; nothing is counted. On a pipe it cannot be given back: it is rejected
    /// as a line that makes no record is (counted, named in the run's warning about rejected
    /// lines, and with `--dead-letter` set aside with its bytes).
    fn cut_stdin_line(&mut self, next: &mut Resume, why: &str) {
        if self.give_back_stdin() {
            return;
        }
        let Input::Stdin(reader) = &mut self.input else {
            return;
        };
        let Some(line) = reader.finish() else {
            return;
        };
        bump(&self.stats.read, 1);
        bump(&self.stats.read_bytes, line.consumed);
        let cut = Parsed {
            consumed: line.consumed,
            terminated: false,
            mark: line.mark,
            text: Err(Rejected {
                why: why.into(),
                // A part of a dead-letter entry is not kept: replayed, it would be a row of
                // an entry's text.
                bytes: (!line.too_long && self.format != Format::DeadLetter).then_some(line.bytes),
            }),
        };
        let now = self.cx.clock.now();
        self.accept(cut, now, next, &mut Vec::new());
    }

    /// After the run failed with stdin still holding lines it had given (in the read
    /// buffer, and a partial last line): they can be read from nowhere else, and the failed
    /// run cannot queue them, so they are set aside ([`Self::set_aside`]): into the
    /// dead-letter file if it takes them, else counted as lost (records as not queued, lines
    /// that could not be records as rejected), and every line stdin gave is in the counts.
    /// Nothing more is read from stdin. A file's unread lines need nothing: the next run
    /// reads them.
    fn count_rest_of_stdin(&mut self, next: &mut Resume, buf: &mut Vec<Record>) {
        let Input::Stdin(reader) = &mut self.input else {
            return;
        };
        reader.get_mut().done = true;
        // Records the failure left in `buf` (a read error mid-chunk) were claimed from the
        // `--messages` budget when read.
        self.set_aside(buf);
        loop {
            // A read error now ends the count: what stdin holds past it cannot be read.
            let Ok((chunk, ..)) = self.read_chunk(u64::MAX, next, buf) else {
                break;
            };
            if matches!(chunk, Chunk::End) {
                if self.stdin_ended() {
                    self.accept_last_stdin_line(next, buf);
                } else {
                    self.cut_stdin_line(next, CUT_BY_FAILURE);
                }
            }
            // Within a `--messages` budget, as `rest_of_stdin` pushes: lines past it are
            // dropped uncounted, as `head` drops what it read ahead (README, the JSON's
            // `read`).
            let within = self.claim(buf.len() as u64);
            buf.truncate(usize::try_from(within).unwrap_or(usize::MAX));
            self.set_aside(buf);
            if matches!(chunk, Chunk::End) {
                break;
            }
        }
    }

    /// Stdin's records in `buf` and rejected lines' entries that a failed run cannot queue:
    /// into the dead-letter file if there is one and it takes them (a failed write leaves no
    /// part of them there, so one that failed before is tried again), else counted as lost.
    /// The rejected lines were counted as rejected when read either way.
    fn set_aside(&mut self, buf: &mut Vec<Record>) {
        if let Some(dead) = self.dead_letters
            && dead.write(&self.rejects).is_ok()
        {
            bump(
                &self.stats.rejected_dead_lettered,
                self.rejects.len() as u64,
            );
        }
        self.rejects.clear();
        // Counted as not queued; an error leaves them counted as lost.
        let _ = self.not_queued(buf);
    }

    /// Records read from stdin that the torn-down run can no longer queue: into the
    /// dead-letter file if there is one, else counted as lost; `buf` is left empty.
    fn not_queued(&mut self, buf: &mut Vec<Record>) -> anyhow::Result<()> {
        let n = buf.len() as u64;
        bump(&self.stats.not_queued, n);
        let Some(dead) = self.dead_letters else {
            buf.clear();
            return Ok(());
        };
        let why = "read from stdin as the run stopped on an error, and never queued for the sink";
        let entries: Vec<_> = buf
            .drain(..)
            .map(|r| dead.record_entry(&r, false, Reason::NotQueued, why))
            .collect();
        dead.write(&entries).with_context(|| {
            format!(
                "writing {n} records read from {} to the dead-letter file {}",
                self.name(),
                dead.path().display()
            )
        })?;
        bump(&self.stats.not_queued_dead_lettered, n);
        Ok(())
    }

    /// At the end of a followed file: handles truncation and rotation. A rotation is seen
    /// first (the path names another file); the old file is then read on, through the same
    /// rate, budget and byte budget as any chunk, until it has not grown for the rotate wait
    /// ([`Rotation::waiting`]), and then the source moves to the new file.
    fn follow_turn(&mut self, next: &mut Resume, buf: &mut Vec<Record>) -> anyhow::Result<Turn> {
        let Input::File {
            reader,
            key,
            path,
            follow,
            rotated,
            seen_len,
            ..
        } = &mut self.input
        else {
            return Ok(Turn::Wait);
        };
        // How far the file was read: its complete lines and a partial line held.
        let read_to = next.offset + reader.pending();
        let len = reader.get_mut().metadata().map_or(u64::MAX, |m| m.len());
        if len < read_to {
            tracing::warn!(
                "{}: truncated to {len} bytes (was read to {read_to}): reading it again from \
                 the start{}",
                path.display(),
                unread_at_truncation(*seen_len, next.offset)
            );
            *seen_len = len;
            reader.seek(0)?;
            self.start_over(next);
            return Ok(Turn::ReadOn);
        }
        if len != u64::MAX {
            *seen_len = (*seen_len).max(len);
        }
        let Some(rotation) = rotated.as_mut() else {
            return Ok(match key_at(path) {
                Some(new) if new != (key.dev, key.ino) => {
                    // Read the old file to its end first, and on while it grows.
                    let wait = follow.unwrap_or_default();
                    *rotated = Some(Rotation::seen(path, new, len, wait));
                    Turn::ReadOn
                }
                _ => Turn::Wait, // same file, or nothing at the path yet
            });
        };
        // A program writing the log keeps writing the old file until it reopens the path
        // (logrotate's `postrotate` signal): read on until the file has stopped growing for
        // the rotate wait.
        if len > read_to && len != u64::MAX {
            return Ok(Turn::ReadOn); // what is there now is read before anything else
        }
        if key_at(path) == Some((key.dev, key.ino)) {
            tracing::info!(
                "{}: names the file read before again: no rotation",
                path.display()
            );
            self.not_rotated();
            return Ok(Turn::Wait);
        }
        let rotate_wait = follow.unwrap_or_default();
        if let Some(turn) = rotation.waiting(len, rotate_wait, path) {
            return Ok(turn);
        }
        // Rotated, and the old file is read to its end. The new file is opened before the old
        // one's unfinished last line is taken as final: while it cannot be, the old file is
        // read on, and a writer still appending there completes that line.
        let path = path.clone();
        let held = rotation.next.take();
        let opened = match held.map_or_else(|| open_file(&path), |held| Ok(*held)) {
            Ok(opened) => opened,
            Err(why) => {
                // Not there yet (the rotation is under way) is no news; anything else is said
                // once, and looked at again after a nap.
                if let Input::File { unopened, .. } = &mut self.input
                    && std::fs::symlink_metadata(&path).is_ok()
                    && unopened.as_ref() != Some(&why)
                {
                    let said = format!(
                        "{}: rotated, and the new file cannot be read ({why}): it is read once it \
                         can be",
                        path.display()
                    );
                    tracing::warn!("{said}");
                    self.stats.set_stalled(Some(said));
                    *unopened = Some(why);
                }
                return Ok(Turn::Wait);
            }
        };
        if self.is_current(&opened.key) {
            // The path names this source's file again (the new one went, the old came back).
            self.not_rotated();
            return Ok(Turn::Wait);
        }
        if !self.files_read.take(&opened.key) {
            self.read_already(&path);
            return Ok(Turn::Wait);
        }
        self.stats.set_stalled(None);
        if !self.finish_input(next, buf, Last::Final)? {
            return Ok(Turn::TornDown);
        }
        let mut resume = match self.positions.register(Some(&opened.key), self.cx.stop) {
            Ok(resume) => resume,
            // Stopped while the sink's lock held the registration up: the old file is read to
            // its end; the new one, of which nothing is read, is left for the next run.
            Err(e) if e.is::<StoppedRetrying>() => {
                tracing::info!(
                    "{}: rotated; the new file is left for the next run (the run stopped while \
                     registering it)",
                    path.display()
                );
                return Ok(Turn::Wait);
            }
            Err(e) => return Err(e),
        };
        let name = opened.key.path.display().to_string();
        let limit = line_limit(self.format, self.max_record_bytes);
        let input = file_input(opened, path.clone(), Some(rotate_wait), &mut resume, limit)?;
        if let Some(dead) = self.dead_letters {
            dead.name_input(resume.input, name.clone());
        }
        // The old file's final position, after a stored part of its last line if this run did
        // not get to read that line again (the --messages budget spent).
        self.keep_committed_tail(next);
        tracing::info!(
            "{}: rotated; reading the new file as input {}",
            path.display(),
            resume.input
        );
        let old = std::mem::replace(&mut self.input, input);
        self.leave(old, next.input, read_to);
        let finished = std::mem::replace(next, resume);
        Ok(Turn::Moved(InputStart { name, resume }, finished))
    }

    /// Whether `key` is the file this source reads now.
    fn is_current(&self, key: &FileKey) -> bool {
        matches!(&self.input, Input::File { key: k, .. } if (k.dev, k.ino, k.born) == (key.dev, key.ino, key.born))
    }

    /// The rotation seen is over without a move: the path names this source's file again.
    fn not_rotated(&mut self) {
        if let Input::File {
            rotated, unopened, ..
        } = &mut self.input
        {
            *rotated = None;
            *unopened = None;
        }
        self.stats.set_stalled(None);
    }

    /// After a move to a new file: the file left (`old`, input `input`, read to `read_to`) is
    /// kept open to tell whether it grows after it (see [`LeftBehind`]); the file left at the
    /// rotation before is looked at a last time, closed, and given up in [`FilesRead`] (while
    /// open, its inode could go to no other file).
    fn leave(&mut self, old: Input, input: u32, read_to: u64) {
        let Input::File {
            mut reader, key, ..
        } = old
        else {
            return;
        };
        if let Some(earlier) = self.left_behind.take() {
            earlier.check();
            self.files_read.left(&earlier.key);
        }
        self.left_behind = reader.get_mut().try_clone().ok().map(|file| LeftBehind {
            file,
            key,
            input,
            len: read_to,
        });
    }

    /// After a rotation, the file now at `path` is one a source of this run reads or read
    /// ([`FilesRead`]): said once, and the old file read on meanwhile. Not a stall for
    /// `/health`: this source has all it can read (following `app.log` and `app.log.1`, the
    /// second path names the first's file after every rotation).
    fn read_already(&mut self, path: &Path) {
        let why = "read already".to_string();
        if let Input::File { unopened, .. } = &mut self.input
            && unopened.as_ref() != Some(&why)
        {
            tracing::warn!(
                "{}: rotated to a file this run reads already (under this source or another): \
                 not read again here; the old file is read on until the path names another file",
                path.display()
            );
            *unopened = Some(why);
        }
    }

    /// Takes up to `n` from the `--messages` budget (all `n` when there is no limit), held
    /// until [`settle`](Self::settle)d.
    fn claim(&self, n: u64) -> u64 {
        let got = self.budget.claim(n);
        self.claimed.set(self.claimed.get() + got);
        got
    }

    /// Gives back what was claimed and not used (nothing to give back without a limit).
    fn unclaim(&self, n: u64) {
        self.budget.unclaim(n);
    }

    /// Settles this source's claims: what they took is used or given back by now.
    fn settle(&self) {
        self.budget.release(self.claimed.replace(0));
    }

    /// Lets reads from stdin wait for input, or not.
    fn wait_for_stdin(&mut self, wait: bool) {
        if let Input::Stdin(r) = &mut self.input {
            r.get_mut().wait = wait;
        }
    }

    fn is_file(&self) -> bool {
        matches!(self.input, Input::File { .. })
    }

    /// `stdin`, or the file's path, for messages.
    pub fn name(&self) -> String {
        match &self.input {
            Input::Stdin(_) => "stdin".into(),
            Input::File { key, .. } => key.path.display().to_string(),
        }
    }
}

/// A line that makes no record: why, and its bytes (`None` when too long to keep).
#[derive(Debug)]
pub struct Rejected {
    pub why: String,
    pub bytes: Option<Vec<u8>>,
}

/// A line read, and what it makes.
#[derive(Debug)]
struct Parsed {
    /// Bytes consumed from the input, line end included.
    consumed: u64,
    /// Ended by a line end.
    terminated: bool,
    /// The mark of the bytes before the position after it (see `RawLine::mark`); 0: none.
    mark: u32,
    /// The record's text, or why the line makes none.
    text: Result<String, Rejected>,
}

/// The record a line makes, or why it cannot be stored (`verify` decides the same way).
///
/// # Errors
/// The reason, for a warning: too long, invalid UTF-8, invalid JSON for `jsonl`, not a
/// dead-letter entry with a record for `dead-letter`.
pub fn record_text(line: RawLine, format: Format, max: usize) -> Result<String, Rejected> {
    if line.too_long {
        return Err(Rejected {
            why: format!("longer than {max} bytes"),
            bytes: None,
        });
    }
    let text = String::from_utf8(line.bytes).map_err(|e| Rejected {
        why: "invalid UTF-8".into(),
        bytes: Some(e.into_bytes()),
    })?;
    let why = match format {
        Format::Text => return Ok(text),
        Format::Jsonl => match serde_json::from_str::<serde::de::IgnoredAny>(&text) {
            Ok(_) => return Ok(text),
            Err(e) => format!("invalid JSON: {e}"),
        },
        Format::DeadLetter => return dead_letter_record(text, max),
    };
    Err(Rejected {
        why,
        bytes: Some(text.into_bytes()),
    })
}

/// The record a dead-letter entry holds, or, rejected, the entry's own record (its text, its
/// bytes from `record_base64`, or none), so that replaying a replay's dead letters carries the
/// original record on, never an entry as data.
fn dead_letter_record(entry: String, max: usize) -> Result<String, Rejected> {
    use base64::Engine as _;
    let mut v: serde_json::Value = match serde_json::from_str(&entry) {
        Ok(v) => v,
        Err(e) => {
            return Err(Rejected {
                why: format!("not a dead-letter entry: {e}"),
                bytes: Some(entry.into_bytes()),
            });
        }
    };
    let (mark, version) = (crate::dead_letter::MARK, crate::dead_letter::VERSION);
    let Some(format) = v.get(mark) else {
        return Err(Rejected {
            why: format!("not a dead-letter entry (no `{mark}` key)"),
            bytes: Some(entry.into_bytes()),
        });
    };
    if format.as_u64() != Some(u64::from(version)) {
        return Err(Rejected {
            why: format!(
                "a dead-letter entry of format `{mark}: {format}`, which this pc-host does not \
                 read (it reads {version})"
            ),
            bytes: Some(entry.into_bytes()),
        });
    }
    let raw = v
        .get("record_base64")
        .and_then(serde_json::Value::as_str)
        .map(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default()
        });
    match (v.get_mut("record").map(serde_json::Value::take), raw) {
        (Some(serde_json::Value::String(record)), _) if record.len() <= max => Ok(record),
        (Some(serde_json::Value::String(record)), _) => Err(Rejected {
            why: format!("longer than {max} bytes"),
            bytes: Some(record.into_bytes()),
        }),
        (_, Some(bytes)) => Err(Rejected {
            why: "the entry's record is not UTF-8".into(),
            bytes: Some(bytes),
        }),
        (Some(other), None) if !other.is_null() => Err(Rejected {
            why: format!("the entry's `record` is not text: {other}"),
            bytes: Some(entry.into_bytes()),
        }),
        _ => Err(Rejected {
            why: "the entry holds no record (it was too long to keep)".into(),
            bytes: None,
        }),
    }
}

/// The longest line a source of `format` reads for records of at most `max` bytes: a
/// dead-letter entry holds its record JSON-escaped (up to 6 bytes per byte) and its fields.
pub fn line_limit(format: Format, max: usize) -> usize {
    match format {
        Format::DeadLetter => max.saturating_mul(6).saturating_add(64 << 10),
        Format::Text | Format::Jsonl => max,
    }
}

/// Opens a stdin input.
pub fn stdin_input(max_record_bytes: usize) -> Input {
    Input::Stdin(LineReader::new(
        StdinPoll {
            wait: true,
            done: false,
            saw_end: false,
        },
        max_record_bytes,
    ))
}

/// Positions a file input at its resume point. A file shorter than that was truncated since
/// the last run, and one that no longer holds what was read before it was rewritten in place
/// ([`read_as_committed`]): either is read from its start. A last line committed without its
/// end is read again whole if the file has grown since (or is followed, so it may grow): its
/// record then replaces the row stored for it.
///
/// # Errors
/// The seek's.
pub fn file_input(
    opened: super::input::OpenFile,
    path: PathBuf,
    follow: Option<Duration>,
    resume: &mut Resume,
    max_record_bytes: usize,
) -> anyhow::Result<Input> {
    let changed = if resume.offset > opened.len {
        Some(format!(
            "shorter ({} bytes) than what was committed ({} bytes): it was truncated or \
             replaced in place",
            opened.len, resume.offset
        ))
    } else if resume.offset > 0
        && !read_as_committed(&opened.file, resume)
            .map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?
    {
        Some(format!(
            "rewritten in place since it was read: the bytes before the committed position ({} \
             bytes, after line {}) are not the ones read there (a `copytruncate` rotation, then \
             written past that position)",
            resume.offset, resume.line
        ))
    } else {
        None
    };
    if let Some(why) = changed {
        tracing::warn!("{}: {why}; reading it from the start", path.display());
        resume.offset = 0;
        resume.tail = 0;
        resume.restarted = true;
    }
    let mut reader = LineReader::new(opened.file, max_record_bytes);
    let (mut completes, mut stored_tail, stored_mark) = (None, 0, resume.mark);
    if resume.tail > 0
        && resume.tail <= resume.offset
        && (opened.len > resume.offset || follow.is_some())
    {
        stored_tail = resume.tail;
        resume.offset -= resume.tail;
        resume.line = resume.line.saturating_sub(1);
        resume.tail = 0;
        completes = Some(resume.line);
    }
    reader
        .seek(resume.offset)
        .map_err(|e| anyhow!("{}: cannot seek to {}: {e}", path.display(), resume.offset))?;
    if resume.tail == 0 {
        resume.mark = reader.line_mark();
    }
    let watch = follow.and_then(|_| FileWatch::new(&path));
    Ok(Input::File {
        reader: Box::new(reader),
        key: opened.key,
        path,
        follow,
        rotated: None,
        completes,
        stored_tail,
        stored_mark,
        unopened: None,
        watch,
        seen_len: 0,
    })
}

/// Whether a committed position in `file` still has what was read before it: the line it is
/// in (or after) starts after a line end ([`starts_a_line`]), and the bytes before that line
/// are those of its mark, where one was committed ([`holds_mark`]). A last line stored
/// without its end is read again whole, whatever it holds by now: only what is before it
/// counts (its writer may have rewritten it before ending it, or filled in NULs read).
///
/// [`starts_a_line`]: super::input::starts_a_line
/// [`holds_mark`]: super::input::holds_mark
fn read_as_committed(file: &File, at: &Resume) -> std::io::Result<bool> {
    let Some(line_start) = at.offset.checked_sub(at.tail) else {
        return Ok(false);
    };
    let checked = super::input::starts_a_line(file, line_start).and_then(|starts| {
        Ok(starts
            && at
                .mark
                .map_or(Ok(true), |m| super::input::holds_mark(file, line_start, m))?)
    });
    match checked {
        // Cut below the position since it was opened (a run may wait on the sink first).
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A followed file written to now and then (a line every 10 ms, say) is looked at again a
    /// millisecond after each look that read a line, not after naps grown to the longest while
    /// it was quiet: a chunk that reads lines and ends at the file's end starts the naps over.
    #[test]
    fn a_look_that_read_lines_starts_the_follow_naps_over() {
        let mut nap = FollowNap::new();
        let naps: Vec<u64> = (0..9).map(|_| nap.next().as_millis() as u64).collect();
        assert_eq!(naps, [1, 2, 4, 8, 16, 32, 64, 100, 100]);
        nap.read_some();
        assert_eq!(nap.next(), Duration::from_millis(1));
    }

    /// A rotation seen `ago`, the old file last grown `grew_ago`, at length 10.
    fn rotation(ago: u64, grew_ago: u64) -> Rotation {
        let now = Instant::now();
        let back = |s| now.checked_sub(Duration::from_secs(s)).unwrap();
        Rotation {
            seen: back(ago),
            grew: back(grew_ago),
            len: 10,
            warned: false,
            next: None,
        }
    }

    #[test]
    fn a_rotated_file_is_read_on_while_it_grows_until_quiet_for_the_wait_or_past_the_cap() {
        let (wait, path) = (Duration::from_secs(1), Path::new("app.log"));
        // Grown: read on, and the quiet time starts again.
        let mut r = rotation(2, 2);
        assert!(matches!(r.waiting(11, wait, path), Some(Turn::ReadOn)));
        assert!(matches!(r.waiting(11, wait, path), Some(Turn::Wait)));
        // Quiet for the wait: move on.
        assert!(rotation(2, 1).waiting(10, wait, path).is_none());
        // Still growing ten waits after the rotation: move on anyway.
        assert!(rotation(10, 0).waiting(12, wait, path).is_none());
        assert!(matches!(
            rotation(9, 0).waiting(12, wait, path),
            Some(Turn::ReadOn)
        ));
    }

    fn line(text: &str) -> RawLine {
        RawLine {
            bytes: text.as_bytes().to_vec(),
            consumed: text.len() as u64 + 1,
            too_long: false,
            terminated: true,
            mark: 0,
        }
    }

    #[test]
    fn a_replayed_entry_without_text_carries_its_original_record_on() {
        let max = 1 << 20;
        let bad = r#"{"pc_dead_letter":1,"record":null,"record_base64":"//4="}"#;
        let r = record_text(line(bad), Format::DeadLetter, max).unwrap_err();
        assert_eq!(r.bytes.as_deref(), Some(&[0xff, 0xfe][..]), "{}", r.why);
        let gone = r#"{"pc_dead_letter":1,"record":null}"#;
        let r = record_text(line(gone), Format::DeadLetter, max).unwrap_err();
        assert_eq!(r.bytes, None, "{}", r.why);
        let foreign = r#"{"note":"not ours"}"#;
        let r = record_text(line(foreign), Format::DeadLetter, max).unwrap_err();
        assert_eq!(r.bytes.as_deref(), Some(foreign.as_bytes()));
    }

    #[test]
    fn a_replayed_entry_of_another_format_or_with_a_record_that_is_not_text_says_so() {
        let max = 1 << 20;
        let newer = r#"{"pc_dead_letter":2,"record":"a"}"#;
        let r = record_text(line(newer), Format::DeadLetter, max).unwrap_err();
        assert!(
            r.why.contains("format `pc_dead_letter: 2`") && r.why.contains("reads 1"),
            "{}",
            r.why
        );
        assert_eq!(
            r.bytes.as_deref(),
            Some(newer.as_bytes()),
            "the entry is kept whole"
        );
        let number = r#"{"pc_dead_letter":1,"record":42}"#;
        let r = record_text(line(number), Format::DeadLetter, max).unwrap_err();
        assert_eq!(r.why, "the entry's `record` is not text: 42");
        assert_eq!(r.bytes.as_deref(), Some(number.as_bytes()));
    }

    #[test]
    fn a_record_near_the_limit_fits_its_escaped_entry() {
        let max = 1000;
        let record = "\"".repeat(max);
        let entry = serde_json::json!({ "pc_dead_letter": 1, "record": record }).to_string();
        assert!(entry.len() > max && entry.len() <= line_limit(Format::DeadLetter, max));
        let text = record_text(line(&entry), Format::DeadLetter, max).unwrap();
        assert_eq!(text, record);
        let over = serde_json::json!({ "pc_dead_letter": 1, "record": "x".repeat(max + 1) });
        let r = record_text(line(&over.to_string()), Format::DeadLetter, max).unwrap_err();
        assert!(r.why.contains("longer than"), "{}", r.why);
    }
}
