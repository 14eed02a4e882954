//! `file:PATH?follow=true`: lines appended while the run reads are stored as they come (a line
//! written in two parts is one record); a rotated file (renamed away, a new one created at the
//! path) is read to its end, then the new file as a new input; a truncated file is read again
//! from its start with its line numbers going on. SIGINT ends a following run: drained,
//! committed, exit 0.
//!
//! No sleeps: the tests wait on the binary's progress lines (every 20 ms) to know what it
//! stored, each wait bounded by a deadline that fails the test.

mod common;

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use common::{
    Out, Running, Scratch, all_rows, assert_verify, hold_write_lock, ingest_json, inputs, json, u,
};

// ---------------------------------------------------------------------------------------------
// Running the binary and reading its stderr

/// Starts following `file` into `db`, with a progress line every 20 ms and a JSON summary.
fn follow(s: &Scratch, file: &Path, db: &Path) -> Running {
    let source = format!("file:{}?follow=true", file.display());
    let db = db.display().to_string();
    let mut r = reading(s, &[&source], &db, &["--consumers", "2"]);
    r.err.wait("with the header's input line", |l| {
        l.starts_with("  input 1: ")
    });
    r
}

/// Starts reading `sources` into `db` (and `extra` flags), with a progress line every 20 ms
/// and a JSON summary.
fn reading(s: &Scratch, sources: &[&str], db: &str, extra: &[&str]) -> Running {
    let mut args: Vec<&str> = Vec::new();
    for source in sources {
        args.extend(["--source", source]);
    }
    args.extend(["--db", db, "--report-interval", "0.02", "--output", "json"]);
    args.extend_from_slice(extra);
    Running::start(s, &args)
}

/// Asserts a SIGINTed following run drained and stored `n` records, all it read.
fn assert_drained(out: &Out, n: u64) -> serde_json::Value {
    assert_eq!(
        out.code,
        Some(0),
        "SIGINT drains and exits 0:\n{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("SIGINT: stopping the producers and draining"),
        "{}",
        out.stderr
    );
    let v = json(out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["stop_reason"], "signal", "{v}");
    assert_eq!(
        (u(&v, "produced"), u(&v, "consumed"), u(&v, "stored")),
        (n, n, n),
        "{v}"
    );
    v
}

fn append(file: &Path, text: &str) {
    let mut f = OpenOptions::new().append(true).open(file).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn with_ends(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

// ---------------------------------------------------------------------------------------------
// The database

/// `(input, seq from first_seq, text)` for each line, as `rows` returns them.
fn expected(input: i64, first_seq: i64, lines: &[&str]) -> Vec<(i64, i64, String)> {
    (first_seq..)
        .zip(lines)
        .map(|(seq, l)| (input, seq, (*l).to_string()))
        .collect()
}

fn ino(file: &Path) -> i64 {
    std::fs::metadata(file).unwrap().ino() as i64
}

fn size(file: &Path) -> i64 {
    std::fs::metadata(file).unwrap().len() as i64
}

// ---------------------------------------------------------------------------------------------

#[test]
fn follow_reads_appends_as_they_are_written() {
    let s = Scratch::new("appends");
    let (file, db) = (s.path("app.log"), s.path("follow.db"));
    let lines = [
        "first",
        "second, with ünïcödé",
        "",
        "fourth",
        "fifth\twith a tab",
        "sixth",
        "seventh",
        "eighth",
        "the ninth line, written in two parts",
    ];
    std::fs::write(&file, with_ends(&lines[..3])).unwrap();
    let mut r = follow(&s, &file, &db);
    r.err.wait_stored(3);

    append(&file, &with_ends(&lines[3..8]));
    let t = r.err.wait_stored(8);

    // A line without its end yet is not a record: nothing more is stored while the source
    // sees only its first part (it looks at least every 100 ms; give it 300 ms of progress
    // lines), and the line is one record once its end comes.
    let (part1, part2) = lines[8].split_at(10);
    append(&file, part1);
    r.err.stay_until(t + 0.3, 8);
    append(&file, &format!("{part2}\n"));
    r.err.wait_stored(9);

    let out = r.interrupt();
    let v = assert_drained(&out, 9);
    assert_eq!((u(&v, "read"), u(&v, "rejected")), (9, 0), "{v}");
    assert_eq!(u(&v["inputs"][0], "input_id"), 1, "{v}");
    assert_eq!(all_rows(&db), expected(1, 0, &lines));
    let file_s = file.display().to_string();
    assert_eq!(
        inputs(&db),
        [(1, file_s.clone(), ino(&file), size(&file), 9)]
    );
    let db_s = db.display().to_string();
    assert_verify(
        s.dir(),
        &[
            "verify",
            "--db",
            &db_s,
            "--source",
            &format!("file:{file_s}"),
        ],
    );
}

#[test]
fn a_followed_files_last_line_without_its_end_at_a_stop_is_counted_and_read_by_the_next_run() {
    let s = Scratch::new("held-line");
    let (file, db) = (s.path("app.log"), s.path("follow.db"));
    std::fs::write(&file, "one\ntwo\npart").unwrap();
    let mut r = follow(&s, &file, &db);
    r.err.wait_stored(2);
    let out = r.interrupt();
    let v = assert_drained(&out, 2);
    // Every byte read is accounted for: the held line is read and not queued.
    assert_eq!(
        (
            u(&v, "read"),
            u(&v, "read_bytes"),
            u(&v, "not_queued_rereadable")
        ),
        (3, 12, 1),
        "{v}"
    );
    assert!(
        out.stderr
            .contains("line 3 has no line end yet as the run stops (4 bytes so far)"),
        "{}",
        out.stderr
    );

    // The next run reads it, whole by then, as line 3.
    append(&file, "ial\n");
    let (file_s, db_s) = (file.display().to_string(), db.display().to_string());
    let out = common::run(
        s.dir(),
        &[
            "--source",
            &format!("file:{file_s}"),
            "--db",
            &db_s,
            "--output",
            "json",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(u(&json(&out), "stored"), 1);
    assert_eq!(all_rows(&db), expected(1, 0, &["one", "two", "partial"]));
}

#[test]
fn a_followed_file_stopped_with_whole_lines_unread_names_no_held_line() {
    let s = Scratch::new("held-backlog");
    let (file, db) = (s.path("app.log"), s.path("follow.db"));
    let lines: Vec<String> = (0..5_000).map(|i| format!("line {i}")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    std::fs::write(&file, format!("{}part", with_ends(&refs))).unwrap();
    let source = format!("file:{}?follow=true", file.display());
    let db_s = db.display().to_string();
    let args = [
        "--source",
        &source,
        "--db",
        &db_s,
        "--rps",
        "1000",
        "--duration",
        "0.2",
    ];
    let out = common::run(s.dir(), &[&args[..], &["--output", "json"]].concat());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = json(&out);
    assert!(u(&v, "stored") < 5_000, "the stop comes first: {v}");
    assert!(!out.stderr.contains("no line end"), "{}", out.stderr);
    assert_eq!(
        u(&v, "read"),
        u(&v, "produced") + u(&v, "not_queued_rereadable"),
        "{v}"
    );
}

#[test]
fn follow_finishes_the_old_file_then_reads_the_rotated_one() {
    let s = Scratch::new("rotation");
    let (file, db) = (s.path("app.log"), s.path("follow.db"));
    let rotated = s.path("app.log.1");
    let old = [
        "old 0",
        "old 1",
        "old 2",
        "old 3",
        "old 4, appended just before the rotation",
        "old 5",
        "old 6, the last line, without a line end",
    ];
    let new = ["new 0", "new 1", "new 2 ✓", "new 3", "new 4"];
    std::fs::write(&file, with_ends(&old[..4])).unwrap();
    let old_ino = ino(&file);
    let mut r = follow(&s, &file, &db);
    let t = r.err.wait_stored(4);

    // Lines appended right before the rename are likely read only after the new file is seen
    // (after 300 ms at the end of the file, the source looks every 100 ms); the old file's
    // unterminated last line is complete once it is rotated away.
    r.err.stay_until(t + 0.3, 4);
    append(&file, &format!("{}{}", with_ends(&old[4..6]), old[6]));
    std::fs::rename(&file, &rotated).unwrap();
    std::fs::write(&file, with_ends(&new)).unwrap();
    let new_ino = ino(&file);
    assert_ne!(old_ino, new_ino);
    r.err.wait_stored((old.len() + new.len()) as u64);

    let out = r.interrupt();
    let v = assert_drained(&out, (old.len() + new.len()) as u64);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("rotated") && l.contains("input 2")),
        "a line says the source moved to the new file, input 2:\n{}",
        out.stderr
    );
    let file_s = file.display().to_string();
    let ins = v["inputs"].as_array().expect("inputs");
    assert_eq!(ins.len(), 2, "the old and the new file: {v}");
    assert_eq!(
        (&ins[0]["name"], u(&ins[0], "input_id")),
        (&serde_json::json!(file_s), 1),
        "{v}"
    );
    assert_eq!(
        (
            &ins[1]["name"],
            u(&ins[1], "input_id"),
            u(&ins[1], "resumed_offset"),
            u(&ins[1], "resumed_line")
        ),
        (&serde_json::json!(file_s), 2, 0, 0),
        "{v}"
    );

    // The old file's lines once, in order, under input 1; then the new file's under input 2,
    // numbered from 0.
    let mut want = expected(1, 0, &old);
    want.extend(expected(2, 0, &new));
    assert_eq!(all_rows(&db), want);
    assert_eq!(
        inputs(&db),
        [
            (1, file_s.clone(), old_ino, size(&rotated), old.len() as i64),
            (2, file_s.clone(), new_ino, size(&file), new.len() as i64),
        ]
    );

    // Reading the path again (not following) resumes the new file at its end.
    let db_s = db.display().to_string();
    let source = format!("file:{file_s}");
    let again = ingest_json(s.dir(), &source, &db_s);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let v = json(&again);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(u(&v, "stored"), 0, "nothing new: {v}");
    assert_eq!(
        (
            u(&v["inputs"][0], "input_id"),
            u(&v["inputs"][0], "resumed_offset"),
            u(&v["inputs"][0], "resumed_line")
        ),
        (2, size(&file) as u64, new.len() as u64),
        "{v}"
    );
    assert_eq!(all_rows(&db), want);
    assert_verify(s.dir(), &["verify", "--db", &db_s, "--source", &source]);
    assert_verify(s.dir(), &["verify", "--db", &db_s]);
}

/// A program keeps writing its log through the old descriptor until it reopens the path
/// (logrotate's `postrotate` signal): lines written to the old file after the rotation, within
/// the rotate wait, are stored under the old file's input, in order; the source moves on only
/// once the old file has stopped growing for that long.
#[test]
fn lines_written_to_the_old_file_after_a_rotation_are_stored() {
    let s = Scratch::new("rotation-late-lines");
    let (file, rotated) = (s.path("app.log"), s.path("app.log.1"));
    std::fs::write(&file, with_ends(&["old 0", "old 1"])).unwrap();
    let source = format!("file:{}?follow=true&rotate_wait=1h", file.display());
    let mut r = reading(&s, &[&source], "late.db", &[]);
    r.err.wait_stored(2);
    std::fs::rename(&file, &rotated).unwrap();
    std::fs::write(&file, with_ends(&["new 0"])).unwrap();
    r.err.wait("saying it saw the rotation", |l| {
        l.contains("app.log: rotated; the old file is read on until it has not grown for 1h")
    });
    append(&rotated, &with_ends(&["late 0", "late 1"]));
    r.err.wait_stored(4);
    let out = r.interrupt();
    assert_drained(&out, 4);
    let want = expected(1, 0, &["old 0", "old 1", "late 0", "late 1"]);
    assert_eq!(all_rows(&s.path("late.db")), want);
}

/// Two rotations during the rotate wait (the second before the source moved on from the
/// first): the file between, now `app.log.1`, is read too, after the oldest and before the
/// newest, each as an input of its own; no line is skipped. (The source moved to the file the
/// path named at the end of the wait, and the one between was never read.)
#[test]
fn a_file_rotated_away_during_the_rotate_wait_is_still_read() {
    let s = Scratch::new("rotation-twice");
    let (file, one, two) = (s.path("app.log"), s.path("app.log.1"), s.path("app.log.2"));
    std::fs::write(&file, with_ends(&["gen0 0", "gen0 1"])).unwrap();
    let source = format!("file:{}?follow=true&rotate_wait=5s", file.display());
    let mut r = reading(&s, &[&source], "twice.db", &[]);
    r.err.wait_stored(2);
    std::fs::rename(&file, &one).unwrap();
    std::fs::write(&file, with_ends(&["gen1 0", "gen1 1"])).unwrap();
    r.err.wait("saying it saw the rotation", |l| {
        l.contains("app.log: rotated; the old file is read on")
    });
    std::fs::rename(&one, &two).unwrap();
    std::fs::rename(&file, &one).unwrap();
    std::fs::write(&file, with_ends(&["gen2 0"])).unwrap();
    r.err.wait_stored(5);
    let out = r.interrupt();
    assert_drained(&out, 5);
    let mut want = expected(1, 0, &["gen0 0", "gen0 1"]);
    want.extend(expected(2, 0, &["gen1 0", "gen1 1"]));
    want.extend(expected(3, 0, &["gen2 0"]));
    assert_eq!(all_rows(&s.path("twice.db")), want);
}

/// Lines written to the old file after the source moved on from it (here at once: a rotate
/// wait of 0s) are not read, and the run says so at its end, with their byte count and the
/// source that reads them.
#[test]
fn lines_written_to_the_old_file_after_the_source_moved_on_are_named_at_the_end() {
    let s = Scratch::new("rotation-left-behind");
    let (file, rotated) = (s.path("app.log"), s.path("app.log.1"));
    std::fs::write(&file, with_ends(&["old 0"])).unwrap();
    let source = format!("file:{}?follow=true&rotate_wait=0s", file.display());
    let mut r = reading(&s, &[&source], "left.db", &[]);
    r.err.wait_stored(1);
    std::fs::rename(&file, &rotated).unwrap();
    std::fs::write(&file, with_ends(&["new 0"])).unwrap();
    r.err.wait("saying it moved on", |l| {
        l.contains("app.log: rotated; reading the new file as input 2")
    });
    append(&rotated, &with_ends(&["late 0"]));
    r.err.wait_stored(2);
    let out = r.interrupt();
    assert_drained(&out, 2);
    let said = format!(
        "app.log: the file this source left at a rotation (input 1) grew by 7 bytes after it \
         moved on: not read; --source file:{} reads them",
        rotated.display()
    );
    assert!(out.stderr.contains(&said), "{}", out.stderr);
    // In the summary too, for a reader of the JSON alone.
    let listed = json(&out)["unread_elsewhere"].to_string();
    assert!(
        listed.contains("grew by 7 bytes after it moved on"),
        "{listed}"
    );
}

/// Two sources following a log and its rotated name (`app.log`, `app.log.1`): at a rotation
/// the second path comes to name the file the first source reads. That file is not read a
/// second time: a warning says so, and every line is stored once.
#[test]
fn a_rotation_onto_a_file_another_source_reads_does_not_read_it_twice() {
    let s = Scratch::new("rotation-onto-read");
    let (log, log1, log2) = (s.path("app.log"), s.path("app.log.1"), s.path("app.log.2"));
    std::fs::write(&log1, with_ends(&["older 0", "older 1"])).unwrap();
    std::fs::write(&log, with_ends(&["old 0", "old 1", "old 2"])).unwrap();
    let (first, second) = (
        format!("file:{}?follow=true", log.display()),
        format!("file:{}?follow=true", log1.display()),
    );
    let mut r = reading(&s, &[&first, &second], "two.db", &[]);
    r.err.wait_stored(5);
    std::fs::rename(&log1, &log2).unwrap();
    std::fs::rename(&log, &log1).unwrap();
    std::fs::write(&log, with_ends(&["new 0", "new 1"])).unwrap();
    r.err.wait("warning that it is read already", |l| {
        l.contains("app.log.1: rotated to a file this run reads already")
    });
    r.err.wait_stored(7);
    let out = r.interrupt();
    assert_drained(&out, 7);
    let mut texts: Vec<String> = all_rows(&s.path("two.db"))
        .into_iter()
        .map(|(_, _, text)| text)
        .collect();
    texts.sort_unstable();
    let want = [
        "new 0", "new 1", "old 0", "old 1", "old 2", "older 0", "older 1",
    ];
    assert_eq!(texts, want);
}

/// A rotation whose new file cannot be read yet (here a directory at the path; likewise one
/// this user may not read, or a pipe) is said once, with why, and the old file's lines are all
/// stored; the run waits on, as for a new file not there yet. (It waited without a word.)
#[test]
fn follow_says_why_the_file_after_a_rotation_cannot_be_read() {
    let s = Scratch::new("rotation-unreadable");
    let (file, db) = (s.path("app.log"), s.path("follow.db"));
    std::fs::write(&file, with_ends(&["old 0", "old 1"])).unwrap();
    let mut r = follow(&s, &file, &db);
    r.err.wait_stored(2);
    std::fs::rename(&file, s.path("app.log.1")).unwrap();
    std::fs::create_dir(&file).unwrap();
    let said = r.err.wait("the warning", |l| {
        l.contains("rotated, and the new file cannot be read")
    });
    assert!(said.contains("is a directory"), "{said}");
    let out = r.interrupt();
    assert_drained(&out, 2);
    assert_eq!(
        out.stderr
            .matches("rotated, and the new file cannot be read")
            .count(),
        1,
        "said once:\n{}",
        out.stderr
    );
    assert_eq!(all_rows(&db), expected(1, 0, &["old 0", "old 1"]));
}

/// At a rotation the old file's unfinished last line is taken as final only once the new file
/// is open: while the new file cannot be read, a writer still appending to the old file
/// completes the line, and it is one row, not a fragment and its continuation.
#[test]
fn a_line_cut_at_a_rotation_and_finished_in_the_old_file_is_one_row() {
    let s = Scratch::new("rotation-cut-line");
    let (file, db) = (s.path("app.log"), s.path("follow.db"));
    let rotated = s.path("app.log.1");
    std::fs::write(&file, "a\nbc").unwrap();
    let mut r = follow(&s, &file, &db);
    r.err.wait_stored(1);
    std::fs::rename(&file, &rotated).unwrap();
    std::fs::create_dir(&file).unwrap();
    r.err.wait("the warning", |l| {
        l.contains("rotated, and the new file cannot be read")
    });
    append(&rotated, "d\n");
    r.err.wait_stored(2);
    std::fs::remove_dir(&file).unwrap();
    std::fs::write(&file, "new\n").unwrap();
    r.err.wait_stored(3);
    let out = r.interrupt();
    assert_drained(&out, 3);
    let mut want = expected(1, 0, &["a", "bcd"]);
    want.extend(expected(2, 0, &["new"]));
    assert_eq!(all_rows(&db), want);
}

/// A run that moved on to the new file at a rotation and was killed before it committed the
/// old file's last lines (still in its ring) left them unread: the next run, resuming the new
/// file, names the old one and what it holds unread, and the source it names reads exactly
/// those lines.
#[test]
fn a_kill_after_a_rotation_names_the_old_files_unread_lines_to_the_next_run() {
    const LINES: usize = 200_000;
    let s = Scratch::new("rotation-kill");
    let (file, db) = (s.path("app.log"), s.path("follow.db"));
    let rotated = s.path("app.log.1");
    let old: Vec<String> = (0..LINES).map(|i| format!("old {i}")).collect();
    let old: Vec<&str> = old.iter().map(String::as_str).collect();
    std::fs::write(&file, with_ends(&old)).unwrap();
    if std::fs::metadata(&file).and_then(|m| m.created()).is_err() {
        common::skip("this file system records no birth times: a rotated file is not found");
        return;
    }
    let source = format!("file:{}?follow=true", file.display());
    let db_arg = db.display().to_string();
    // One row per commit, each fsynced, behind a ring that holds the whole old file: the
    // source reaches the old file's end, and moves on, long before its lines are stored.
    let args = [
        "--source",
        &source,
        "--db",
        &db_arg,
        "--capacity",
        "262144",
        "--batch-size",
        "1",
        "--synchronous",
        "full",
        "--consumers",
        "1",
        "--report-interval",
        "0.02",
        "--output",
        "json",
    ];
    let mut r = Running::start(&s, &args);
    r.err.wait_stored_at_least(1);
    std::fs::rename(&file, &rotated).unwrap();
    std::fs::write(&file, "new\n").unwrap();
    r.err.wait("the move to the new file", |l| {
        l.contains("rotated; reading the new file as input 2")
    });
    r.kill();
    let mut again = Running::start(&s, &args);
    let said = again
        .err
        .wait("the old file named", |l| l.contains("not read"));
    assert!(said.contains(&rotated.display().to_string()), "{said}");
    again.interrupt();
    let rest = ingest_json(s.dir(), &format!("file:{}", rotated.display()), &db_arg);
    assert!(u(&json(&rest), "stored") > 0, "the kill left lines unread");
    let input_1: Vec<_> = all_rows(&db).into_iter().filter(|r| r.0 == 1).collect();
    assert_eq!(
        input_1,
        expected(1, 0, &old),
        "every old line once, in order"
    );
}

/// The old file's last lines, rejected (invalid UTF-8) after its last stored one, are
/// committed as read when the run ends, as a file read once: its input's position is the old
/// file's end, and a run given the old file reads nothing of it again. (The position stayed
/// after the last stored line: that run rejected the lines a second time, a second dead letter.)
#[test]
fn a_rotated_files_trailing_rejected_lines_are_committed_as_read() {
    let s = Scratch::new("rotation-rejected-tail");
    let (file, db) = (s.path("app.log"), s.path("follow.db"));
    let rotated = s.path("app.log.1");
    std::fs::write(&file, "a\nb\n").unwrap();
    let mut r = follow(&s, &file, &db);
    r.err.wait_stored(2);
    let mut f = OpenOptions::new().append(true).open(&file).unwrap();
    f.write_all(b"c\n\xff\n").unwrap();
    drop(f);
    std::fs::rename(&file, &rotated).unwrap();
    std::fs::write(&file, "new\n").unwrap();
    r.err.wait_stored(4);
    let out = r.interrupt();
    assert_drained(&out, 4);
    let ins = inputs(&db);
    assert_eq!(
        (ins[0].0, ins[0].3, ins[0].4),
        (1, size(&rotated), 4),
        "input 1 read to the old file's end, its 4 lines: {ins:?}"
    );
    let again = ingest_json(
        s.dir(),
        &format!("file:{}", rotated.display()),
        &db.display().to_string(),
    );
    let v = json(&again);
    assert_eq!((u(&v, "read"), u(&v, "rejected")), (0, 0), "{v}");
}

/// A file truncated while a follower waits to read again whole a last line an earlier run
/// stored the start of: that row stays, with its line number, and the lines written after the
/// truncation are numbered after it. (The first of them replaced the row; a stop before it
/// committed a position inside the file's new text, which the next run then skipped.)
#[test]
fn a_truncation_before_a_partial_line_is_read_again_keeps_its_row_and_numbers_after_it() {
    let s = Scratch::new("truncate-pending-completion");
    let (file, db) = (s.path("app.log"), s.path("follow.db"));
    std::fs::write(&file, "a\nb\npart").unwrap();
    let db_s = db.display().to_string();
    let first = ingest_json(s.dir(), &format!("file:{}", file.display()), &db_s);
    assert_eq!(u(&json(&first), "stored"), 3, "{}", first.stderr);
    let mut r = follow(&s, &file, &db);
    std::fs::write(&file, "").unwrap();
    r.err
        .wait("the truncation", |l| l.contains("truncated to 0 bytes"));
    append(&file, "xyz\n");
    r.err.wait_stored(1);
    let out = r.interrupt();
    assert_drained(&out, 1);
    assert_eq!(all_rows(&db), expected(1, 0, &["a", "b", "part", "xyz"]));
}

#[test]
fn follow_starts_over_after_truncation() {
    let s = Scratch::new("truncation");
    let (file, db) = (s.path("app.log"), s.path("follow.db"));
    let old: Vec<String> = (0..6)
        .map(|i| format!("before the truncation, line {i}, with some words to make it long"))
        .collect();
    let old: Vec<&str> = old.iter().map(String::as_str).collect();
    let new = ["after 0", "after 1"];
    std::fs::write(&file, with_ends(&old)).unwrap();
    let old_ino = ino(&file);
    let mut r = follow(&s, &file, &db);
    r.err.wait_stored(old.len() as u64);

    // Truncated to 0 (same file), then fewer, shorter lines written.
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&file)
        .unwrap();
    f.write_all(with_ends(&new).as_bytes()).unwrap();
    drop(f);
    assert_eq!(ino(&file), old_ino);
    r.err.wait_stored((old.len() + new.len()) as u64);

    let out = r.interrupt();
    let v = assert_drained(&out, (old.len() + new.len()) as u64);
    assert!(
        out.stderr.contains("truncated"),
        "a warning says the file was truncated:\n{}",
        out.stderr
    );
    assert_eq!(v["inputs"].as_array().map(Vec::len), Some(1), "{v}");

    // The new lines after the old ones, their line numbers going on from the old ones.
    let mut want = expected(1, 0, &old);
    want.extend(expected(1, old.len() as i64, &new));
    assert_eq!(all_rows(&db), want);
    let total = (old.len() + new.len()) as i64;
    assert_eq!(
        inputs(&db),
        [(1, file.display().to_string(), old_ino, size(&file), total)]
    );
    assert_verify(s.dir(), &["verify", "--db", &db.display().to_string()]);
}

/// A run following `app.log` (`a1`) with `flags`, rotated (`b1`, `b2` in the new file) while
/// another connection holds the database: returned once the run says it retries registering
/// the new file, with the lock, the database and the path.
fn rotated_while_locked(
    s: &Scratch,
    flags: &[&str],
) -> (
    Running,
    rusqlite::Connection,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let (file, db) = (s.path("app.log"), s.path("follow.db"));
    std::fs::write(&file, "a1\n").unwrap();
    let source = format!("file:{}?follow=true&rotate_wait=0s", file.display());
    let mut r = reading(s, &[&source], &db.display().to_string(), flags);
    r.err.wait_stored(1);
    let lock = hold_write_lock(&db);
    std::fs::rename(&file, s.path("app.log.1")).unwrap();
    std::fs::write(&file, "b1\nb2\n").unwrap();
    r.err.wait("retrying the registration", |l| {
        l.contains("registering an input") && l.contains("retrying for up to")
    });
    (r, lock, db, file)
}

/// The rows `a1` (input 1) and then `b1`, `b2` (input 2).
fn rows_of_both_files() -> Vec<(i64, i64, String)> {
    let mut want = expected(1, 0, &["a1"]);
    want.extend(expected(2, 0, &["b1", "b2"]));
    want
}

/// A followed file rotated while another connection holds the database past the busy
/// timeout: registering the new file is retried as a write is (`--retry-for`), so the run
/// reads the new file once the lock is gone instead of failing.
#[test]
fn a_rotation_while_the_database_is_locked_is_waited_out_as_a_write_is() {
    let s = Scratch::new("rotation-locked");
    let (mut r, lock, db, _) = rotated_while_locked(&s, &["--busy-timeout-ms", "50"]);
    drop(lock);
    r.err.wait_stored(3);
    let out = r.interrupt();
    let v = assert_drained(&out, 3);
    assert_eq!(v["inputs"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(all_rows(&db), rows_of_both_files());
}

/// A stop while a rotation's registration waits on the locked database ends the wait: the old
/// file is stored to its end and the run drains and exits 0 once the lock is gone; the new
/// file, of which nothing was read, is read whole by the next run.
#[test]
fn a_stop_while_a_rotation_waits_on_the_locked_database_leaves_the_new_file_to_the_next_run() {
    let s = Scratch::new("rotation-locked-stop");
    let flags = ["--busy-timeout-ms", "50", "--retry-for", "3600"];
    let (mut r, lock, db, file) = rotated_while_locked(&s, &flags);
    common::signal(&r.child, libc::SIGINT);
    r.err.wait("leaving the new file", |l| {
        l.contains("the new file is left for the next run")
    });
    drop(lock);
    let out = common::finish(r);
    let v = assert_drained(&out, 1);
    assert_eq!(v["inputs"].as_array().map(Vec::len), Some(1), "{v}");

    let once = format!("file:{}", file.display());
    let out = ingest_json(s.dir(), &once, &db.display().to_string());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(all_rows(&db), rows_of_both_files());
}

/// The "produced N" count of a progress line (`[    0.5 s] produced N (..) | ..`).
fn produced_in(line: &str) -> Option<u64> {
    line.strip_prefix('[')?
        .split(" | ")
        .next()?
        .split("] produced ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A followed file truncated in place (`copytruncate`) while the source is behind it (the
/// database held by another connection, the ring full): what was written past the read
/// position is gone before it was read. The warning says how many bytes that was, exactly, and
/// where they are; everything read is stored.
#[test]
fn a_truncation_while_the_source_is_behind_names_the_bytes_it_never_read() {
    let s = Scratch::new("truncation-behind");
    let (file, db) = (s.path("app.log"), s.path("follow.db"));
    std::fs::write(&file, "first\n").unwrap();
    let source = format!("file:{}?follow=true", file.display());
    let flags = ["--capacity", "2", "--batch-size", "1", "--consumers", "1"];
    let mut r = reading(&s, &[&source], &db.display().to_string(), &flags);
    r.err.wait_stored(1);

    let lock = hold_write_lock(&db);
    let line = |i: usize| format!("line {i:06}\n");
    let written: String = (0..100_000).map(line).collect();
    append(&file, &written);
    // A chunk read after the append: the source has looked at the file's length since.
    r.err.wait("showing a line read after the append", |l| {
        produced_in(l).is_some_and(|p| p >= 2)
    });
    std::fs::write(&file, "after\n").unwrap(); // truncated in place, as copytruncate does
    drop(lock);
    let warning = r.err.wait("with the truncation warning", |l| {
        l.contains("truncated to")
    });
    let out = r.interrupt();
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    // What was stored is the file's first lines, in order; the warning names the rest.
    let rows = all_rows(&db);
    let read: Vec<&str> = rows
        .iter()
        .map(|(_, _, t)| t.as_str())
        .take_while(|t| *t != "after")
        .collect();
    assert_eq!(read[0], "first");
    let lines_read = read.len() - 1;
    assert!(
        lines_read < 100_000,
        "the source was behind: {lines_read} lines read"
    );
    for (i, t) in read[1..].iter().enumerate() {
        assert_eq!(format!("{t}\n"), line(i));
    }
    // From the first line not stored on: what the file held past it is named.
    let stored_to = "first\n".len() + lines_read * line(0).len();
    let unread = "first\n".len() + written.len() - stored_to;
    assert!(
        warning.contains(&format!(
            "at least {unread} bytes it held from the first line not read whole on were never \
             stored"
        )) && warning.contains(&format!("from byte {stored_to} on")),
        "{warning}"
    );
}

/// A followed file whose text is written over in place while the source waits at its end
/// (the size unchanged, so no truncation shows): the bytes before the read position changed,
/// and the file is read again from its start, its line numbers going on.
#[test]
fn a_followed_file_written_over_in_place_is_read_again_from_its_start() {
    let s = Scratch::new("written-over");
    let (file, db) = (s.path("app.log"), s.path("follow.db"));
    std::fs::write(&file, "aaaa\nbbbb\n").unwrap();
    let mut r = follow(&s, &file, &db);
    r.err.wait_stored(2);

    let mut f = OpenOptions::new().write(true).open(&file).unwrap();
    f.write_all(b"cccc\ndddd\n").unwrap();
    drop(f);
    r.err.wait_stored(4);
    let out = r.interrupt();
    assert_drained(&out, 4);
    assert!(
        out.stderr
            .contains("rewritten in place (the bytes before 10"),
        "{}",
        out.stderr
    );
    assert_eq!(
        all_rows(&db),
        expected(1, 0, &["aaaa", "bbbb", "cccc", "dddd"])
    );
}

#[test]
fn follow_sees_a_truncation_below_a_pending_partial_line() {
    let s = Scratch::new("truncation-partial");
    let (file, db) = (s.path("app.log"), s.path("follow.db"));
    // One complete line (4 bytes) and a partial one: the source has read 9 bytes.
    std::fs::write(&file, "abc\ndefgh").unwrap();
    let mut r = follow(&s, &file, &db);
    let t = r.err.wait_stored(1);
    r.err.stay_until(t + 0.3, 1);

    // Truncated and rewritten with 8 bytes: shorter than what was read (9), longer than the
    // complete lines (4).
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&file)
        .unwrap();
    f.write_all(b"0123456\n").unwrap();
    drop(f);
    r.err.wait_stored(2);
    let out = r.interrupt();
    assert_drained(&out, 2);
    assert!(out.stderr.contains("truncated"), "{}", out.stderr);
    assert_eq!(all_rows(&db), expected(1, 0, &["abc", "0123456"]));
}

/// A file truncated while a run reads it once (a `copytruncate` during an ingest, not
/// followed): the lines read whole are stored, the line the truncation cut is not stored as a
/// fragment (it was, as the file's last line), and a warning says so.
#[test]
fn a_file_truncated_while_read_once_stores_no_piece_of_a_line() {
    let truncate = |file: &Path, _: &[u8]| {
        let f = OpenOptions::new().write(true).open(file).unwrap();
        f.set_len(0).unwrap();
    };
    assert_changed_while_read_once("truncated", truncate, "truncated to 0 bytes while this run");
}

/// A file written over in place, past the read position, while a run reads it once and lags
/// behind: its size never shrinks, so only the reader's look at the bytes before its position,
/// before each read, tells it. Nothing of the new text is stored from mid-file.
#[test]
fn a_file_written_over_while_read_once_is_not_read_on_from_mid_text() {
    let overwrite = |file: &Path, text: &[u8]| {
        let mut f = OpenOptions::new().write(true).open(file).unwrap();
        f.write_all(text).unwrap();
    };
    let warning = "rewritten in place while this run read it";
    assert_changed_while_read_once("written-over", overwrite, warning);
}

/// A run reads a file once, paced by `--rps` so that it lags behind, and `change` (given the
/// new text) happens to the file meanwhile: the run says `warning` and stores only lines it
/// read whole, each as it was; a run after the new text is written reads it from its start,
/// whole lines only, numbering on.
fn assert_changed_while_read_once(name: &str, change: impl FnOnce(&Path, &[u8]), warning: &str) {
    let s = Scratch::new(&format!("{name}-while-read"));
    let file = s.path("t.log");
    // 101-byte lines: the reader's 256 KiB refills never end at a line end (101 is a prime that
    // does not divide 2^18, and the file is far shorter than 101 refills), so wherever the
    // change finds the reader, it holds the start of a line.
    let lines: Vec<String> = (0..20_000).map(|i| format!("{i:0>100}")).collect();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let source = format!("file:{}", file.display());
    let args = ["--source", &source, "--db", "t.db", "--rps", "2000"];
    let mut r = Running::start(
        &s,
        &[
            &args[..],
            &["--report-interval", "0.02", "--output", "json"],
        ]
        .concat(),
    );
    r.err.wait_stored_at_least(1);
    let refill: Vec<String> = (0..30_000).map(|i| format!("n{i:0>99}")).collect();
    let text: String = refill.iter().map(|l| format!("{l}\n")).collect();
    change(&file, text.as_bytes());
    let out = common::finish(r);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains(warning), "{}", out.stderr);
    let rows = all_rows(&s.path("t.db"));
    assert!(
        !rows.is_empty() && rows.len() < lines.len(),
        "{}",
        rows.len()
    );
    for (_, seq, text) in &rows {
        assert_eq!(
            text, &lines[*seq as usize],
            "line {seq} stored as it was read"
        );
    }
    assert_eq!(u(&json(&out), "stored"), rows.len() as u64);
    // Refilled past where the first run had read (the usual `copytruncate`): the next run
    // reads the new lines from the file's start, each whole, line numbers going on.
    std::fs::write(&file, text).unwrap();
    let again = ingest_json(s.dir(), &source, "t.db");
    assert_eq!(u(&json(&again), "stored"), 30_000, "{}", again.stderr);
    let rows = all_rows(&s.path("t.db"));
    let before = rows.len() - 30_000;
    let new: Vec<&str> = rows[before..].iter().map(|r| r.2.as_str()).collect();
    assert_eq!(new, refill, "the refilled file, whole lines only");
    assert_eq!(rows[before].1, rows[before - 1].1 + 1, "line numbers go on");
}
