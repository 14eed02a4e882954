//! `pc-host verify`: reads a database back and checks every run in it.
//!
//! One pass over `messages` (or over one run's rows with `--run`).
//! - A generated run that completed: each producer's sequence numbers must be exactly
//!   `0 .. produced` (as recorded at the end of the run), each once: no duplicate, no gap,
//!   nothing out of range. Every row's text must be the one its producer wrote for its
//!   sequence number. A run that did not complete (a second signal, a crash, an error):
//!   nothing accepted is known, so only duplicates and texts are checked.
//! - An ingest run: every row belongs to an input the run read, and each input's line numbers
//!   appear once across all runs (a resume that stored a line twice is a duplicate). Gaps are
//!   lines rejected at ingest, so a completed run is held to the counts its end recorded
//!   instead (`ingest_count_problems`); `--source file:PATH` checks a file's rows against its
//!   lines (`file.rs`).

/// Prints a line of findings on stdout. A reader that went away (`verify | head -1`) does not
/// panic verify: its exit status still says what it found.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod dead_lettered;
mod file;
mod recorded;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::config::cli::VerifyArgs;
use crate::config::url::{database_to_read, names_parameter, parse_source};
use crate::config::{ConfigError, SinkSpec, SourceSpec};
use crate::report::summary::plural;
use crate::sink::read_back::{self, Row, RunInfo};

/// Sequence numbers seen per producer, as a bit set.
#[derive(Debug, Default)]
struct Seen {
    bits: Vec<u64>,
    count: u64,
}

/// The largest sequence number tracked for a run that did not complete (512 MiB of bits).
const MAX_TRACKED_SEQ: u64 = 1 << 32;

impl Seen {
    /// Marks `seq`; returns `false` if it was already marked.
    fn mark(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let fresh = self.bits[word] & (1 << bit) == 0;
        self.bits[word] |= 1 << bit;
        self.count += u64::from(fresh);
        fresh
    }

    /// Whether `seq` is marked.
    fn has(&self, seq: u64) -> bool {
        self.bits
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    /// The seqs below `n` not marked, in order (a word of 64 marked seqs is passed over at
    /// once, so finding the first costs a word per 64 seqs before it).
    fn unmarked(&self, n: u64) -> impl Iterator<Item = u64> + '_ {
        let mut next = 0u64;
        std::iter::from_fn(move || {
            while next < n {
                let s = next;
                match self.bits.get((s / 64) as usize) {
                    Some(&u64::MAX) => next = (s / 64 + 1) * 64,
                    Some(&w) if w & (1 << (s % 64)) != 0 => next += 1,
                    _ => {
                        next += 1;
                        return Some(s);
                    }
                }
            }
            None
        })
    }
}

#[derive(Debug)]
struct RunCheck {
    info: RunInfo,
    /// An ingest run (its rows belong to inputs, not generator threads).
    ingest: bool,
    rows: u64,
    seen: Vec<Seen>,
    duplicates: u64,
    out_of_range: u64,
    unknown_producer: u64,
    bad_text: u64,
    /// The run's file inputs that another run also read: each may have replaced (or removed)
    /// the row of a last line this run stored without its end. Any other run, whatever its
    /// id: a following run started earlier registers a file it moves on to at a rotation.
    replaceable: u64,
}

impl RunCheck {
    /// `readers`: how many runs read each input.
    fn new(info: RunInfo, readers: &HashMap<i64, usize>) -> Self {
        let replaceable = info
            .inputs
            .iter()
            .filter(|input| readers.get(input).is_some_and(|&n| n > 1))
            .count() as u64;
        Self {
            replaceable,
            ingest: !info.inputs.is_empty(),
            seen: (0..info.produced.len()).map(|_| Seen::default()).collect(),
            info,
            rows: 0,
            duplicates: 0,
            out_of_range: 0,
            unknown_producer: 0,
            bad_text: 0,
        }
    }
}

/// Checks the sink; prints the findings on stdout; returns whether everything is right.
///
/// # Errors
/// A [`ConfigError`] (exit 2) for bad input named by the user (a source or sink URL, a file
/// that cannot be read); other errors for the database.
pub fn run(args: &VerifyArgs) -> anyhow::Result<bool> {
    let (spec, name) = database_to_read(args.sink.as_deref(), &args.sink_from, &args.db, "verify")?;
    if let Some(file) = &args.dead_letter {
        check_dead_letter_file(file)?;
    }
    if let Some(url) = &args.source {
        return check_file(args, &spec, &name, url);
    }
    let mut store = read_back::open(&spec, args.busy.duration())?;
    let mut infos = store.runs(args.run)?;
    // The run checked, by its id here (`--run` may name a publisher's: below).
    let mut run = args.run;
    if let Some(id) = args.run
        && infos.is_empty()
    {
        // The id a publisher to NATS printed: the run that holds its records here (one: a
        // publisher's records go to one run of the database, whichever consumer took them).
        infos = store.runs(None)?;
        infos.retain(|i| i.dead_letters.published_by == Some(id));
        let Some(local) = infos.first() else {
            // Bad input (exit 2), as `plot --run` for a run that does not exist.
            return Err(ConfigError(format!("--run {id}: {name} has no run {id}")).into());
        };
        run = Some(local.run_id);
    }
    // How many runs read each input of the runs checked.
    let mut readers: HashMap<i64, usize> = HashMap::new();
    for info in &infos {
        for &input in &info.inputs {
            if run.is_some() {
                readers.insert(input, store.input_runs(input)?.len());
            } else {
                *readers.entry(input).or_default() += 1;
            }
        }
    }
    let mut tally = Tally {
        checks: infos
            .into_iter()
            .map(|info| (info.run_id, RunCheck::new(info, &readers)))
            .collect(),
        ..Tally::default()
    };
    store.rows(run, &mut |row| tally.row(&row))?;
    let Tally {
        checks,
        orphans,
        total,
        ..
    } = tally;
    let mut ok = orphans == 0;
    // Runs found right, their dead letters matched by count only.
    let mut by_count = 0;
    let mut ids: Vec<i64> = checks.keys().copied().collect();
    ids.sort_unstable();
    say!("pc-host verify: {name}");
    for id in &ids {
        let check = &checks[id];
        let verdict = describe(check, args.dead_letter.as_deref());
        ok &= verdict.ok;
        by_count += usize::from(verdict.ok && verdict.by_count);
        // A run recorded for another pc-host's records, published through NATS: named by
        // the id that run printed too.
        match check.info.dead_letters.published_by {
            Some(publisher) => say!(
                "  run {id} (published by run {publisher}): {}",
                verdict.line
            ),
            None => say!("  run {id}: {}", verdict.line),
        }
    }
    if orphans > 0 {
        let rows = if orphans == 1 {
            "row belongs"
        } else {
            "rows belong"
        };
        say!("  {orphans} {rows} to no recorded run");
    }
    say_result(ok, args.run, (ids.len(), total), by_count);
    Ok(ok)
}

/// A file named to look dead letters up in that cannot be read, or is not a dead-letter file,
/// is bad input: checking by count instead would weaken the check the user asked for.
///
/// # Errors
/// One line naming the file and why.
fn check_dead_letter_file(file: &Path) -> Result<(), ConfigError> {
    // The metadata first: opening a FIFO would wait for a writer.
    let meta = std::fs::metadata(file)
        .and_then(|m| {
            if m.is_file() {
                std::fs::File::open(file).map(|_| m)
            } else {
                Err(std::io::Error::other("not a regular file"))
            }
        })
        .map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                _ => e.to_string(),
            };
            ConfigError(format!("--dead-letter {}: {why}", file.display()))
        })?;
    if meta.len() > 0 && !crate::dead_letter::is_dead_letter_file(file) {
        return Err(ConfigError(format!(
            "--dead-letter {}: not a pc-host dead-letter file (its first line is no entry)",
            file.display()
        )));
    }
    Ok(())
}

/// The `result:` line: OK or not, of which runs (`--run`, else how many), how many rows, and
/// of how many runs found right the dead letters were matched by count only.
fn say_result(ok: bool, run: Option<i64>, (runs, rows): (usize, u64), by_count: usize) {
    let scope = match run {
        Some(id) => format!("run {id}"),
        None if runs == 1 => "1 run".to_owned(),
        None => format!("{runs} runs"),
    };
    let weaker = match by_count {
        0 => String::new(),
        n => format!(
            "; the dead letters of {} matched by count only",
            plural(n, "run")
        ),
    };
    say!(
        "result: {} ({scope}, {rows} {}{weaker})",
        if ok { "OK" } else { "PROBLEMS FOUND" },
        rows_word(rows)
    );
}

/// `verify --source`: a file against its rows, in the database `spec` (shown as `name`).
fn check_file(args: &VerifyArgs, spec: &SinkSpec, name: &str, url: &str) -> anyhow::Result<bool> {
    let source = parse_source(url).map_err(|why| ConfigError(format!("--source {url}: {why}")))?;
    // Checked as for the run.
    let max_record_bytes = args
        .max_record_bytes
        .map(|max| crate::config::record_limit(max, &format!("--max-record-bytes {max}")))
        .transpose()?;
    // A format the URL names; without one, the file is read as its runs read it.
    let format = match &source {
        SourceSpec::File { format, .. } if names_parameter(url, "format") => Some(*format),
        _ => None,
    };
    let given = file::Given {
        dead_letter: args.dead_letter.clone(),
        max_record_bytes,
        format,
    };
    let mut store = read_back::open(spec, args.busy.duration())?;
    file::check(store.as_mut(), name, &source, given)
}

/// What the pass over the rows found.
#[derive(Debug, Default)]
struct Tally {
    checks: HashMap<i64, RunCheck>,
    /// Line numbers seen per input, across all runs.
    lines_seen: HashMap<i64, Seen>,
    /// Rows of no recorded run.
    orphans: u64,
    total: u64,
    /// The text a generated row should have (reused).
    expected: String,
}

impl Tally {
    fn row(&mut self, row: &Row<'_>) {
        self.total += 1;
        let Some(check) = self.checks.get_mut(&row.run_id) else {
            self.orphans += 1;
            return;
        };
        check.rows += 1;
        let (producer, seq) = (row.producer, row.seq);
        if check.ingest {
            match u64::try_from(seq) {
                Ok(s) if check.info.inputs.contains(&producer) && s < MAX_TRACKED_SEQ => {
                    if !self.lines_seen.entry(producer).or_default().mark(s) {
                        check.duplicates += 1;
                    }
                }
                _ => check.unknown_producer += 1,
            }
            return;
        }
        let (Ok(p), Ok(s)) = (usize::try_from(producer), u64::try_from(seq)) else {
            check.unknown_producer += 1;
            return;
        };
        let Some(seen) = check.seen.get_mut(p) else {
            check.unknown_producer += 1;
            return;
        };
        let limit = if check.info.completed {
            check.info.produced[p].min(MAX_TRACKED_SEQ)
        } else {
            MAX_TRACKED_SEQ
        };
        if s >= limit {
            check.out_of_range += 1;
        } else if !seen.mark(s) {
            check.duplicates += 1;
        }
        self.expected.clear();
        let _ = write!(self.expected, "Message from producer {p}: #{s}");
        // Padded with dots to the run's payload size, where it recorded one.
        let len = check
            .info
            .payload_size
            .map_or(row.message.len(), |size| size.max(self.expected.len()));
        let padded = row.message.len() == len
            && row
                .message
                .strip_prefix(self.expected.as_str())
                .is_some_and(|rest| rest.bytes().all(|b| b == b'.'));
        if !padded {
            check.bad_text += 1;
        }
    }
}

/// A completed generated run's missing seqs: problems, unless they are exactly the records
/// the run dead-lettered. Returns how they were matched, for the run's line (empty when
/// nothing is missing and nothing was dead-lettered, or when they did not match), and whether
/// by their number only.
///
/// Each is looked up in the run's dead-letter file (`given`, from `--dead-letter`, else the
/// one the run recorded), among the entries carrying the run's id, if the file holds exactly
/// as many of those as the run counted: run ids repeat across databases (and a database made
/// anew), so a file shared by several can hold entries of other runs with the same id, and
/// those must neither excuse a missing seq nor accuse a stored one. Otherwise (no file, or
/// not that many entries) only the number missing is compared with the run's count. A run
/// that counted none may miss none; one whose count was not kept (an older schema's) is
/// judged by the entries alone.
fn missing_seqs(c: &RunCheck, given: Option<&Path>, problems: &mut Vec<String>) -> (String, bool) {
    let info = &c.info;
    let missing: u64 = c
        .seen
        .iter()
        .zip(&info.produced)
        .map(|(seen, &want)| want.saturating_sub(seen.count))
        .sum();
    // A run recorded from NATS counts what its publisher dead-lettered; a run that consumed
    // its records may have dead-lettered others (refused by this sink), in a file of its own,
    // under the publisher's run id. Given that file, the run is judged by its entries alone.
    let from_nats = info.dead_letters.published_by.is_some();
    let counted = if from_nats && given.is_some() {
        None
    } else {
        info.dead_lettered
    };
    if missing == 0 && counted.unwrap_or(0) == 0 {
        return (String::new(), false);
    }
    if counted == Some(0) {
        // Seqs are missing, and none was dead-lettered.
        problems.extend(gaps(c, &HashMap::new(), "missing"));
        if from_nats {
            problems.push(
                "the run was published through NATS: records a consuming run could not store \
                 are in that run's dead-letter file (give it with --dead-letter), and a stream \
                 with limits may have dropped records before they were consumed (the \
                 publishing run warned of that)"
                    .to_owned(),
            );
        }
        return (String::new(), false);
    }
    let id = info.dead_letters.published_by.unwrap_or(info.run_id);
    let unread = match given.or(info.dead_letters.file.as_deref()) {
        None => "the run recorded no dead-letter file".to_owned(),
        Some(f) => match dead_lettered::generated_of(f, id) {
            Ok(dead) if counted.is_none_or(|n| n == dead.len() as u64) => {
                return (by_entry(c, &dead, f, problems), false);
            }
            Ok(dead) => {
                let (held, n) = (dead.len() as u64, counted.unwrap_or(0));
                if held < n {
                    // More seqs can be another run's with the same id; fewer are lost.
                    problems.push(format!(
                        "the run dead-lettered {n}, but {} holds {held} of its seqs: the \
                         others are not there",
                        f.display()
                    ));
                }
                format!(
                    "{} holds {held} seqs of run id {id}, not the {n} it counted",
                    f.display()
                )
            }
            Err(e) => format!("{} could not be read: {e}", f.display()),
        },
    };
    let counted = counted.unwrap_or(0);
    if missing != counted {
        problems.extend(gaps(c, &HashMap::new(), "missing"));
        if counted > 0 {
            problems.push(format!(
                "{} missing, but the run dead-lettered {counted} ({unread})",
                plural(missing, "seq")
            ));
        }
        return (String::new(), false);
    }
    (
        format!("missing seqs matched by count only ({unread})"),
        true,
    )
}

/// [`missing_seqs`] with the run's entries in its dead-letter file `file`: every missing seq
/// must be there, and no seq there may be stored too, unless its outcome was unknown
/// (`unconfirmed`: the sink may have stored it after all).
fn by_entry(
    c: &RunCheck,
    dead: &HashMap<dead_lettered::Generated, bool>,
    file: &Path,
    problems: &mut Vec<String>,
) -> String {
    let lost = gaps(c, dead, "missing and not dead-lettered");
    let lost_any = !lost.is_empty();
    problems.extend(lost);
    let (mut stored_too, mut unconfirmed_stored, mut never) = (0u64, 0u64, 0u64);
    let mut first_stored_too: Option<(u64, u64)> = None;
    for (&(p, s), &unconfirmed) in dead {
        let i = usize::try_from(p).ok();
        match (
            i.and_then(|i| c.info.produced.get(i)),
            i.and_then(|i| c.seen.get(i)),
        ) {
            (Some(&want), Some(seen)) if s < want => match (seen.has(s), unconfirmed) {
                (false, _) => {}
                (true, true) => unconfirmed_stored += 1,
                (true, false) => {
                    stored_too += 1;
                    first_stored_too = Some(first_stored_too.map_or((p, s), |f| f.min((p, s))));
                }
            },
            _ => never += 1,
        }
    }
    let at = file.display();
    if let Some((p, s)) = first_stored_too {
        problems.push(format!(
            "{stored_too} seqs both stored and dead-lettered in {at} (first: producer {p} #{s})"
        ));
    }
    if never > 0 {
        problems.push(format!(
            "{never} entries in {at} name seqs the run did not produce"
        ));
    }
    if lost_any || stored_too > 0 || never > 0 {
        return String::new();
    }
    let mut note = format!("each missing seq is in {at}");
    if unconfirmed_stored > 0 {
        let _ = write!(
            note,
            ", and {unconfirmed_stored} stored after all of those dead-lettered as unconfirmed"
        );
    }
    note
}

/// One line per producer with seqs below its `produced` that have no row, but for those
/// `excused` (dead-lettered): how many, and the first. Counted, not walked: a recorded
/// `produced` may be absurd (an edited database), and only the first is looked for.
fn gaps(
    c: &RunCheck,
    excused: &HashMap<dead_lettered::Generated, bool>,
    what: &str,
) -> Vec<String> {
    let mut excused_missing = vec![0u64; c.seen.len()];
    for &(p, s) in excused.keys() {
        if let Some(i) = usize::try_from(p).ok().filter(|&i| i < c.seen.len())
            && s < c.info.produced[i]
            && !c.seen[i].has(s)
        {
            excused_missing[i] += 1;
        }
    }
    let mut lines = Vec::new();
    for (p, seen) in c.seen.iter().enumerate() {
        let want = c.info.produced[p];
        let n = want
            .saturating_sub(seen.count)
            .saturating_sub(excused_missing[p]);
        if n == 0 {
            continue;
        }
        let first = seen
            .unmarked(want)
            .find(|&s| !excused.contains_key(&(p as u64, s)))
            .unwrap_or(want);
        lines.push(format!(
            "producer {p}: {n} of seq 0..{want} {what} (first: #{first})"
        ));
    }
    lines
}

/// What verify says of one run.
struct Verdict {
    line: String,
    ok: bool,
    /// Its missing seqs were matched with its dead letters by their number only.
    by_count: bool,
}

/// One line about a run, and whether it is right; `dead_letter` as `verify --dead-letter`.
fn describe(c: &RunCheck, dead_letter: Option<&Path>) -> Verdict {
    let info = &c.info;
    let mut problems = row_problems(c);
    let mut state;
    // How missing seqs were matched with dead letters (empty: none were), and whether by
    // their number only.
    let (mut how, mut by_count) = (String::new(), false);
    let completed = if info.completed {
        "completed"
    } else if info.finished {
        "ended with an error"
    } else {
        "did not finish"
    };
    if !c.ingest && info.producers == 0 && c.rows == 0 && problems.is_empty() {
        // A run recorded from its end message on NATS that published stdin: the consumers key
        // such records by stream sequence, as rows of their own runs.
        return Verdict {
            line: format!(
                "{completed}; no producers, inputs or rows, so not checked: a run that \
                 published stdin to NATS (its records are the consuming runs' rows, keyed by \
                 stream sequence), or one that stopped before it read anything"
            ),
            ok: true,
            by_count: false,
        };
    }
    if c.ingest {
        // A run that did not finish recorded no counts: its rows show only duplicates.
        let unknown = if info.finished {
            ""
        } else {
            " (checked for duplicates only: what was accepted is unknown)"
        };
        state = format!(
            "ingest {completed}; {}, {} {}{unknown}{}{}",
            plural(info.inputs.len(), "input"),
            c.rows,
            rows_word(c.rows),
            not_stored_note(info.not_stored),
            replaced_rows_note(c)
        );
        ingest_count_problems(c, &mut problems);
        stored_count_problems(c, &mut problems);
    } else if info.completed {
        let produced: u64 = info.produced.iter().sum();
        let dead = match info.dead_lettered {
            None | Some(0) => String::new(),
            Some(n) => format!(" ({n} dead-lettered)"),
        };
        state = format!(
            "completed; {}, {produced} produced, {} {}{dead}",
            plural(info.producers as usize, "producer"),
            c.rows,
            rows_word(c.rows)
        );
        (how, by_count) = missing_seqs(c, dead_letter, &mut problems);
        if !how.is_empty() {
            state = format!("{state}; {how}");
        }
    } else if info.finished {
        // Its end recorded what it accepted and what became of it, but not which records the
        // error took: the gaps are not matched one by one.
        let produced: u64 = info.produced.iter().sum();
        let dead = match info.dead_lettered {
            None | Some(0) => String::new(),
            Some(n) => format!(", {n} dead-lettered"),
        };
        state = format!(
            "ended with an error; {}, {produced} produced, {} {}{dead} (gaps not matched one \
             by one){}",
            plural(info.producers as usize, "producer"),
            c.rows,
            rows_word(c.rows),
            not_stored_note(info.not_stored)
        );
        stored_count_problems(c, &mut problems);
    } else {
        state = format!(
            "did not finish (still running, killed, or it could not record its end); {}, {} {} \
             (gaps not checked: what was accepted is unknown){}",
            plural(info.producers as usize, "producer"),
            c.rows,
            rows_word(c.rows),
            not_stored_note(info.not_stored)
        );
        stored_count_problems(c, &mut problems);
    }
    verdict(c, state, (how, by_count), problems)
}

/// An ingest run with fewer rows than it stored, but no more fewer than other runs may have
/// replaced (a last line stored without its end, one per input they read too): no problem,
/// but said, since a row deleted looks the same from the counts; `verify --source file:PATH`
/// checks the file line by line. As [`stored_count_problems`] reads the counts.
fn replaced_rows_note(c: &RunCheck) -> String {
    let info = &c.info;
    let from_broker = info.broker || info.dead_letters.published_by.is_some();
    let (true, false, Some(stored)) = (info.finished, from_broker, info.stored) else {
        return String::new();
    };
    let fewer = stored.saturating_sub(c.rows.saturating_sub(c.duplicates));
    if fewer == 0 || fewer > c.replaceable {
        return String::new();
    }
    format!(
        "; {} fewer than it stored: the last line of an input another run read, stored \
         without its end and replaced by that run, or a row deleted (`verify --source \
         file:PATH` checks line by line)",
        plural(fewer, "row")
    )
}

/// What a run that ended with an error recorded of the records it accepted and neither stored
/// nor dead-lettered (nothing where it recorded none): the summary's `not stored` figure, so
/// that a run's losses show where its rows are checked.
fn not_stored_note(not_stored: Option<u64>) -> String {
    match not_stored {
        None | Some(0) => String::new(),
        Some(n) => format!(
            "; its end recorded {n} accepted {} not stored (its summary said which of them, if \
             any, can be read again)",
            if n == 1 { "record" } else { "records" }
        ),
    }
}

/// What the rows of a run show wrong, before the run's state is looked at: more producers than
/// pc-host runs, duplicates, seqs out of range, unknown producers, texts that do not match.
fn row_problems(c: &RunCheck) -> Vec<String> {
    let info = &c.info;
    let mut problems = Vec::new();
    if info.producers as usize > info.produced.len() {
        problems.push(format!(
            "the run records {} producers, more than pc-host runs ({}): the database was altered",
            info.producers,
            info.produced.len()
        ));
    }
    // Each kind of wrong row: "N [before]row(s)[after]".
    let kinds = [
        (c.duplicates, "duplicate ", ""),
        (
            c.out_of_range,
            "",
            " with a seq beyond what their producer produced",
        ),
        (c.unknown_producer, "", " from an unknown producer or input"),
        (
            c.bad_text,
            "",
            " whose text does not match their producer and seq",
        ),
    ];
    for (n, before, after) in kinds {
        if n > 0 {
            let after = if n == 1 {
                after.replace("their", "its")
            } else {
                after.to_owned()
            };
            problems.push(format!("{n} {before}{}{after}", rows_word(n)));
        }
    }
    problems
}

/// A completed ingest run's counts, as its end recorded them, against each other and its rows:
/// every record it accepted stored, dead-lettered or counted as not stored, and as many rows
/// as it stored, each but for one per file input (a last line stored without its end, which a
/// later run replaces when the line is complete, or removes when the complete line is
/// rejected; a stdin row is never replaced). Line
/// numbers cannot show a lost row by themselves: a line rejected at ingest leaves its number
/// unused. A run that read from or published to a broker is held to them only where its end
/// kept its duplicates (redeliveries of records already stored, which it accepted and
/// dropped): a database of an older schema has none.
fn ingest_count_problems(c: &RunCheck, problems: &mut Vec<String>) {
    let info = &c.info;
    let (true, Some(accepted), Some(stored)) = (info.completed, info.accepted, info.stored) else {
        return;
    };
    let duplicates = match (info.broker, info.duplicates) {
        (false, duplicates) => duplicates.unwrap_or(0),
        (true, Some(duplicates)) => duplicates,
        (true, None) => return,
    };
    let (dead, not_stored) = (
        info.dead_lettered.unwrap_or(0),
        info.not_stored.unwrap_or(0),
    );
    let accounted = stored + duplicates + dead + not_stored;
    // A broker's records are keyed by stream sequence, never replaced by another run.
    let replaceable = if info.broker { 0 } else { c.replaceable };
    if accepted > accounted + replaceable {
        let duplicates = if duplicates > 0 || info.broker {
            format!(", {duplicates} duplicates")
        } else {
            String::new()
        };
        problems.push(format!(
            "the run accepted {} and recorded {stored} stored{duplicates}, {dead} \
             dead-lettered and {not_stored} not stored: {} unaccounted for",
            plural(accepted, "record"),
            accepted - accounted
        ));
    }
}

/// A run whose end recorded how many rows it stored (counted back from the database), against
/// its rows: none gone but the last lines of file inputs another run read (it replaces or
/// removes such a row, even while this run goes on), and none more. Not for a completed
/// generated run (its seqs say it, row by row), nor a broker's run or one recorded from a
/// broker for its publisher (its records are stored once whoever delivered them, or are the
/// consuming runs' rows, and the publisher's count is what the broker acknowledged).
fn stored_count_problems(c: &RunCheck, problems: &mut Vec<String>) {
    let info = &c.info;
    let from_broker = info.broker || info.dead_letters.published_by.is_some();
    let (true, false, Some(stored)) = (info.finished, from_broker, info.stored) else {
        return;
    };
    // A duplicate row is not a row the run stored: it hides none that are gone.
    let rows = c.rows.saturating_sub(c.duplicates);
    let gone = stored.saturating_sub(rows);
    if gone > c.replaceable {
        problems.push(format!(
            "{gone} of the {stored} {} the run stored {} gone",
            rows_word(stored),
            if gone == 1 { "is" } else { "are" }
        ));
    }
    // More rows than the count: only where the run gave nothing up (a record given up after
    // a commit whose outcome was unknown may be stored, and the count is not counted back if
    // the database failed at the end), and the count is not the 0 older versions recorded
    // when counting back failed.
    let gave_up = info.dead_lettered.unwrap_or(0) + info.not_stored.unwrap_or(0);
    if rows > stored && gave_up == 0 && stored > 0 {
        problems.push(format!(
            "{} more than the {stored} the run stored: the database was altered",
            plural(usize::try_from(rows - stored).unwrap_or(usize::MAX), "row"),
        ));
    }
}

/// The verdict on a run: `state` and, if no `problems`, what was found right (`how` missing
/// seqs were matched with dead letters, empty if none were).
fn verdict(
    c: &RunCheck,
    state: String,
    (how, by_count): (String, bool),
    problems: Vec<String>,
) -> Verdict {
    let info = &c.info;
    if problems.is_empty() {
        let held_to_counts = !info.broker || info.duplicates.is_some();
        let what = if c.ingest && info.completed && held_to_counts && info.stored.is_some() {
            "each input's lines stored at most once, its records all accounted for: OK"
        } else if c.ingest {
            "each input's lines stored at most once: OK"
        } else if info.completed && !how.is_empty() {
            "every producer's seq 0..n stored once or dead-lettered, texts match: OK"
        } else if info.completed {
            "every producer's seq 0..n exactly once, texts match: OK"
        } else {
            "no duplicates, texts match: OK"
        };
        Verdict {
            line: format!("{state}; {what}"),
            ok: true,
            by_count,
        }
    } else {
        Verdict {
            line: format!("{state}; PROBLEM: {}", problems.join("; ")),
            ok: false,
            by_count,
        }
    }
}

/// "row" for 1, "rows" for any other count.
fn rows_word(n: u64) -> &'static str {
    if n == 1 { "row" } else { "rows" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_finds_duplicates_and_gaps() {
        let mut s = Seen::default();
        assert!(s.mark(0));
        assert!(s.mark(2));
        assert!(!s.mark(2));
        assert!(s.mark(130));
        assert_eq!(s.count, 3);
        assert!(s.has(130) && !s.has(1) && !s.has(100_000));
        assert_eq!(s.unmarked(4).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(s.unmarked(1).next(), None);
        assert_eq!(s.unmarked(200).next(), Some(1));
        // A full word is passed over; past the marks, everything is unmarked.
        let mut full = Seen::default();
        (0..64).chain([65]).for_each(|q| assert!(full.mark(q)));
        assert_eq!(
            full.unmarked(u64::MAX).take(3).collect::<Vec<_>>(),
            [64, 66, 67]
        );
    }

    fn ended_with_error(stored: u64, rows: u64) -> RunCheck {
        let info = RunInfo {
            run_id: 2,
            finished: true,
            producers: 1,
            produced: vec![0],
            stored: Some(stored),
            dead_lettered: Some(0),
            not_stored: Some(0),
            ..RunInfo::default()
        };
        let mut c = RunCheck::new(info, &HashMap::new());
        c.rows = rows;
        c
    }

    fn count_problems(c: &RunCheck) -> Vec<String> {
        let mut problems = Vec::new();
        stored_count_problems(c, &mut problems);
        problems
    }

    /// A run that ended with an error is held to the rows it counted back, but for a run
    /// recorded from a broker for its publisher (the count is what the broker acknowledged),
    /// more rows where it gave records up (one given up after a commit whose outcome was
    /// unknown may be stored), and the 0 older versions recorded when counting back failed.
    #[test]
    fn a_run_that_ended_with_an_error_is_held_to_the_rows_it_counted_back() {
        assert_eq!(
            count_problems(&ended_with_error(10, 9)),
            ["1 of the 10 rows the run stored is gone"]
        );
        assert_eq!(
            count_problems(&ended_with_error(10, 11)),
            ["1 row more than the 10 the run stored: the database was altered"]
        );
        let mut published = ended_with_error(10, 11);
        published.info.dead_letters.published_by = Some(7);
        assert_eq!(count_problems(&published), Vec::<String>::new());
        let mut gave_up = ended_with_error(10, 11);
        gave_up.info.not_stored = Some(3);
        assert_eq!(count_problems(&gave_up), Vec::<String>::new());
        assert_eq!(
            count_problems(&ended_with_error(0, 5)),
            Vec::<String>::new()
        );
    }

    /// A completed run is held to the counts its end recorded; a broker's run too, once its
    /// end kept its duplicates (not in a database of an older schema).
    #[test]
    fn a_completed_runs_recorded_counts_must_account_for_what_it_accepted() {
        let check = |broker: bool, duplicates: Option<u64>, accepted: u64| {
            // Another run read the same input: a file's last line it may have replaced, a
            // stream's records never.
            let readers = HashMap::from([(1, 2)]);
            let info = RunInfo {
                run_id: 4,
                finished: true,
                completed: true,
                inputs: vec![1],
                accepted: Some(accepted),
                stored: Some(7),
                duplicates,
                dead_lettered: Some(1),
                not_stored: Some(0),
                broker,
                ..RunInfo::default()
            };
            let mut problems = Vec::new();
            ingest_count_problems(&RunCheck::new(info, &readers), &mut problems);
            problems
        };
        assert_eq!(check(true, Some(2), 10), Vec::<String>::new());
        assert_eq!(
            check(true, Some(2), 11),
            [
                "the run accepted 11 records and recorded 7 stored, 2 duplicates, 1 \
                 dead-lettered and 0 not stored: 1 unaccounted for"
            ]
        );
        assert_eq!(check(true, None, 11), Vec::<String>::new(), "no count kept");
        assert_eq!(
            check(false, Some(0), 9),
            Vec::<String>::new(),
            "a replaced line"
        );
        assert_eq!(
            check(false, Some(0), 10),
            [
                "the run accepted 10 records and recorded 7 stored, 1 dead-lettered and 0 not \
                 stored: 2 unaccounted for"
            ]
        );
    }

    /// A file input another run read, whatever its id (a following run started earlier takes
    /// up a file at a rotation), may have replaced the row of its last line: one row gone is
    /// no problem there, and is one where no other run read the input.
    #[test]
    fn one_row_may_be_gone_from_an_input_another_run_read() {
        let check = |runs_reading: usize| {
            let info = RunInfo {
                run_id: 6,
                finished: true,
                completed: true,
                inputs: vec![5],
                stored: Some(10),
                ..RunInfo::default()
            };
            let mut c = RunCheck::new(info, &HashMap::from([(5, runs_reading)]));
            c.rows = 9;
            count_problems(&c)
        };
        assert_eq!(check(2), Vec::<String>::new());
        assert_eq!(check(1), ["1 of the 10 rows the run stored is gone"]);
    }

    /// The row allowed gone (one per input another run read) may be a row deleted: the run's
    /// line says it is one fewer than the run stored, and how to tell.
    #[test]
    fn a_row_allowed_gone_is_said_not_passed_over() {
        let line = |rows: u64| {
            let info = RunInfo {
                run_id: 6,
                finished: true,
                completed: true,
                inputs: vec![5],
                accepted: Some(10),
                stored: Some(10),
                dead_lettered: Some(0),
                not_stored: Some(0),
                ..RunInfo::default()
            };
            let mut c = RunCheck::new(info, &HashMap::from([(5, 2)]));
            c.rows = rows;
            describe(&c, None)
        };
        let v = line(9);
        assert!(v.ok, "{}", v.line);
        assert!(
            v.line.contains("1 row fewer than it stored")
                && v.line.contains("verify --source file:PATH"),
            "{}",
            v.line
        );
        let v = line(10);
        assert!(v.ok && !v.line.contains("fewer"), "{}", v.line);
    }
}
