//! Ingest runs: stdin and `file:` sources store every acceptable line exactly once, in file
//! order, with its line number; rejected lines are counted and skipped; re-runs resume after
//! what was committed; `--rps` and `--messages` apply; bad inputs are refused before anything
//! is written; `verify --source` compares a file with its rows.

mod common;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use common::OutputWithin as _;
use common::{Out, Rng, Scratch, assert_one_line_error, json, run, u};
use rusqlite::Connection;
use serde_json::Value;

/// Runs an ingest into `db` (a file name in the scratch dir) with a JSON summary and no
/// progress lines; `args` adds the sources and anything else.
fn ingest(s: &Scratch, db: &str, args: &[&str]) -> Out {
    let mut all = vec!["--db", db, "--output", "json", "--report-interval", "0"];
    all.extend_from_slice(args);
    run(s.dir(), &all)
}

/// Starts pc-host in `s` with `args` and the file `input` (in `s`) as its stdin. Returns the
/// run and a second descriptor of the same open file: the two share one offset, so it reads
/// on from wherever pc-host leaves stdin.
fn start_with_file_stdin(
    s: &Scratch,
    input: &str,
    args: &[&str],
) -> (common::Running, std::fs::File) {
    let file = std::fs::File::open(s.path(input)).unwrap();
    let rest = file.try_clone().unwrap();
    let mut cmd = common::pc_host(s.dir());
    cmd.args(args).stdin(file);
    (common::start_command(cmd), rest)
}

/// As [`ingest`], and the run must have succeeded: exit 0, `ok`, produced == consumed ==
/// stored. Returns the summary.
fn ingest_ok(s: &Scratch, db: &str, args: &[&str]) -> Value {
    let out = ingest(s, db, args);
    assert_eq!(
        out.code,
        Some(0),
        "ingest {args:?} should exit 0; stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    let v = json(&out);
    assert_eq!(v["ok"], true, "ingest {args:?} should be ok: {v}");
    assert_eq!(
        u(&v, "produced"),
        u(&v, "stored"),
        "every produced record should be stored: {v}"
    );
    assert_eq!(
        u(&v, "consumed"),
        u(&v, "stored"),
        "every consumed record should be stored: {v}"
    );
    v
}

/// `pc-host verify --db DB --source URL [extra]`.
fn verify(s: &Scratch, db: &str, url: &str, extra: &[&str]) -> Out {
    let mut all = vec!["verify", "--db", db, "--source", url];
    all.extend_from_slice(extra);
    run(s.dir(), &all)
}

fn assert_verify_ok(s: &Scratch, db: &str, url: &str, extra: &[&str]) {
    let out = verify(s, db, url, extra);
    assert_eq!(
        out.code,
        Some(0),
        "verify --source {url} {extra:?} should pass; stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("result: OK"),
        "verify --source {url} should print `result: OK`, got:\n{}",
        out.stdout
    );
}

/// The `input_id` of the `i`th input of a summary.
fn input_id(v: &Value, i: usize) -> i64 {
    v["inputs"][i]["input_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("inputs[{i}].input_id is not an integer in {v}"))
}

fn input_u(v: &Value, i: usize, key: &str) -> u64 {
    v["inputs"][i][key]
        .as_u64()
        .unwrap_or_else(|| panic!("inputs[{i}].{key} is not an unsigned integer in {v}"))
}

fn f64_of(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {v}"))
}

/// Every stored `(seq, message)` of one input, in insertion (`id`) order.
fn rows(db: &Path, input: i64) -> Vec<(i64, String)> {
    let conn = Connection::open(db).expect("open db");
    let mut stmt = conn
        .prepare("SELECT seq, message FROM messages WHERE producer = ?1 ORDER BY id")
        .expect("prepare");
    stmt.query_map([input], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn count_messages(db: &Path) -> i64 {
    let conn = Connection::open(db).expect("open db");
    conn.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .expect("count")
}

/// The lines of `bytes` as the ingest defines them: split at `\n`, one `\r` before it
/// stripped, a last line without `\n` kept as it is.
fn split_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..i];
        out.push(line.strip_suffix(b"\r").unwrap_or(line));
        rest = &rest[i + 1..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// The rows a text-format ingest must store for `bytes`: `(line index, text)` of every line
/// that is valid UTF-8 and at most `max` bytes.
fn expected_text_rows(bytes: &[u8], max: usize) -> Vec<(i64, String)> {
    split_lines(bytes)
        .into_iter()
        .enumerate()
        .filter(|(_, l)| l.len() <= max)
        .filter_map(|(i, l)| Some((i as i64, String::from_utf8(l.to_vec()).ok()?)))
        .collect()
}

/// `(i, text)` for lines `from..to` of [`numbered`].
fn numbered_rows(from: usize, to: usize, tag: &str) -> Vec<(i64, String)> {
    (from..to)
        .map(|i| (i as i64, numbered_line(i, tag)))
        .collect()
}

fn numbered_line(i: usize, tag: &str) -> String {
    format!("{tag} line {i} {}", "x".repeat(i % 17))
}

/// Lines `from..to`, each ended by `\n`.
fn numbered(from: usize, to: usize, tag: &str) -> String {
    (from..to).map(|i| numbered_line(i, tag) + "\n").collect()
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .len()
}

/// About `len` bytes of valid UTF-8 text (ASCII, tabs, inner `\r`s, 2-, 3- and 4-byte
/// characters) with no `\n`.
fn text_pool(rng: &mut Rng, len: usize) -> String {
    const ALPHABET: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_=+*/'\"{}[]()<>#@";
    let mut out = String::with_capacity(len + 4);
    while out.len() < len {
        let r = rng.next();
        match r % 64 {
            0 => out.push('é'),
            1 => out.push('€'),
            2 => out.push('😀'),
            3 => out.push('\t'),
            4 => out.push('\r'),
            _ => out.push(char::from(ALPHABET[(r >> 8) as usize % ALPHABET.len()])),
        }
    }
    out
}

/// Appends a pseudo-random slice of `pool` of about `len` bytes (cut at character boundaries,
/// never ending in `\r`, which would read as a CRLF line end).
fn push_text(rng: &mut Rng, out: &mut Vec<u8>, pool: &str, len: usize) {
    let mut start = rng.below((pool.len() - len - 8) as u64) as usize;
    while !pool.is_char_boundary(start) {
        start += 1;
    }
    let mut end = start + len;
    while !pool.is_char_boundary(end) {
        end -= 1;
    }
    let text = pool[start..end].trim_end_matches('\r');
    out.extend_from_slice(text.as_bytes());
}

#[test]
fn file_ingest_stores_every_line_exactly_with_crlf_invalid_utf8_overlong_and_no_final_newline() {
    const LINES: usize = 1_000_000;
    const MAX: usize = 4096;
    const INVALID_UTF8: usize = 3;
    const EXACTLY_MAX_CRLF: usize = 7;
    const EXACTLY_MAX_LF: usize = 8;
    const OVERLONG: usize = 500_000;
    let s = Scratch::new("ingest-million");
    let path = s.path("big.log");

    // The file, and for each line the span of its text and whether it is acceptable.
    let mut file: Vec<u8> = Vec::with_capacity(160 << 20);
    let mut spans: Vec<(usize, usize, bool)> = Vec::with_capacity(LINES);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let pool = text_pool(&mut rng, 1 << 16);
    for i in 0..LINES {
        let start = file.len();
        let ok = match i {
            INVALID_UTF8 => {
                file.extend_from_slice(b"bad \xff\xfe byte");
                false
            }
            EXACTLY_MAX_CRLF | EXACTLY_MAX_LF => {
                file.extend(std::iter::repeat_n(b'm', MAX));
                true
            }
            OVERLONG => {
                file.extend(std::iter::repeat_n(b'y', 10_000));
                false
            }
            _ => {
                // 0..=300 bytes (a little less where a character would be cut); the last
                // line is not empty (it has no line end).
                let len = rng.below(301) as usize;
                let len = if i == LINES - 1 { len.max(8) } else { len };
                push_text(&mut rng, &mut file, &pool, len);
                true
            }
        };
        spans.push((start, file.len(), ok));
        if i == LINES - 1 {
            break; // no line end
        }
        let crlf = match i {
            EXACTLY_MAX_CRLF => true,
            EXACTLY_MAX_LF => false,
            _ => rng.below(5) == 0,
        };
        file.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    }
    write(&path, &file);
    // A check of the test itself: the spans cover the file, separated by exactly one line
    // end, and no text holds a `\n`; the last line has no line end; there are many CRLF
    // ends and empty lines.
    assert!(!pool.contains('\n'), "the text pool has no line end");
    let (mut crlf, mut empty) = (0, 0);
    for pair in spans.windows(2) {
        let between = &file[pair[0].1..pair[1].0];
        assert!(
            between == b"\n" || between == b"\r\n",
            "line ends: {between:?}"
        );
        crlf += usize::from(between.len() == 2);
        empty += usize::from(pair[0].0 == pair[0].1);
    }
    assert!(
        crlf > 100_000 && empty > 1_000,
        "{crlf} CRLF ends, {empty} empty lines"
    );
    assert_eq!(spans[0].0, 0);
    assert_eq!(
        spans[LINES - 1].1,
        file.len(),
        "the last line has no line end"
    );
    assert!(
        spans[LINES - 1].1 > spans[LINES - 1].0,
        "the last line is not empty"
    );
    let accepted: Vec<(i64, usize, usize)> = spans
        .iter()
        .enumerate()
        .filter(|(_, (_, _, ok))| *ok)
        .map(|(i, &(a, b, _))| (i as i64, a, b))
        .collect();
    assert_eq!(accepted.len(), LINES - 2);

    let url = "file:big.log";
    let out = ingest(&s, "t.db", &["--source", url, "--max-record-bytes", "4096"]);
    assert_eq!(
        out.code,
        Some(0),
        "ingest should exit 0; stderr:\n{}",
        out.stderr
    );
    let v = json(&out);
    assert_eq!(v["ok"], true, "the run should be ok: {v}");
    assert_eq!(v["stop_reason"], "eof", "a file without follow ends at eof");
    assert_eq!(
        u(&v, "rejected"),
        2,
        "one invalid UTF-8 line and one over 4096 bytes are rejected"
    );
    let want = (LINES - 2) as u64;
    assert_eq!(
        (u(&v, "produced"), u(&v, "consumed"), u(&v, "stored")),
        (want, want, want),
        "produced, consumed and stored should be every line but the 2 rejected"
    );
    assert_eq!(u(&v, "read"), LINES as u64, "every line is read: {v}");
    assert_eq!(
        u(&v, "read_bytes"),
        file.len() as u64,
        "every byte of the file is read"
    );
    let inputs = v["inputs"].as_array().expect("inputs is a list");
    assert_eq!(inputs.len(), 1, "one input: {v}");
    assert_eq!(
        (
            input_u(&v, 0, "resumed_offset"),
            input_u(&v, 0, "resumed_line")
        ),
        (0, 0),
        "a new file is read from its start"
    );
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("rejected"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning line for the input with rejected lines, got:\n{}",
        out.stderr
    );
    for needle in [
        format!("line {} (invalid UTF-8)", INVALID_UTF8 + 1),
        format!("line {} (longer than 4096 bytes)", OVERLONG + 1),
    ] {
        assert!(
            warnings[0].contains(&needle),
            "the warning should name {needle:?}, got: {}",
            warnings[0]
        );
    }

    // The database holds exactly the accepted lines, in file order, with their line numbers.
    let db = s.path("t.db");
    let input = input_id(&v, 0);
    assert_eq!(
        count_messages(&db),
        want as i64,
        "the database holds only this input's rows"
    );
    let conn = Connection::open(&db).expect("open db");
    let mut stmt = conn
        .prepare("SELECT seq, message FROM messages WHERE producer = ?1 ORDER BY id")
        .expect("prepare");
    let mut stored = stmt.query([input]).expect("query");
    let mut expected = accepted.iter();
    let mut n = 0usize;
    loop {
        let row = stored.next().expect("read a row");
        let exp = expected.next();
        match (row, exp) {
            (None, None) => break,
            (Some(r), Some(&(line, a, b))) => {
                let seq: i64 = r.get(0).expect("seq");
                let text: String = r.get(1).expect("message");
                assert_eq!(
                    seq, line,
                    "row {n} (in id order) should be line index {line}, is {seq}"
                );
                assert!(
                    text.as_bytes() == &file[a..b],
                    "line index {line}: stored {:?}, the file has {:?}",
                    text,
                    String::from_utf8_lossy(&file[a..b])
                );
            }
            (Some(r), None) => panic!(
                "more rows than accepted lines: row {n} has seq {:?}",
                r.get::<_, i64>(0)
            ),
            (None, Some(&(line, _, _))) => {
                panic!("only {n} rows stored; line index {line} and later are missing")
            }
        }
        n += 1;
    }
    drop(stored);
    drop(stmt);
    drop(conn);

    // The limit is the one the run recorded, whether given again or not; given another, the
    // long line counts as missing.
    let recorded = verify(&s, "t.db", url, &[]);
    assert_eq!(recorded.code, Some(0), "{}", recorded.stdout);
    assert!(
        recorded
            .stdout
            .contains("read with --max-record-bytes 4096"),
        "{}",
        recorded.stdout
    );
    let larger = verify(&s, "t.db", url, &["--max-record-bytes", "1048576"]);
    assert_eq!(larger.code, Some(1), "{}", larger.stdout);
    let out = verify(&s, "t.db", url, &["--max-record-bytes", "4096"]);
    assert_eq!(
        out.code,
        Some(0),
        "verify should pass; stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout
            .contains(&format!("{LINES} lines: {want} stored in file order")),
        "verify should count every line and every stored one, got:\n{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("2 rejected at ingest"),
        "verify should count the 2 rejected lines, got:\n{}",
        out.stdout
    );
}

#[test]
fn an_empty_file_ends_at_eof_with_nothing_stored() {
    let s = Scratch::new("ingest-empty");
    write(&s.path("empty.log"), "");
    let v = ingest_ok(&s, "t.db", &["--source", "file:empty.log"]);
    assert_eq!(u(&v, "stored"), 0, "an empty file stores nothing: {v}");
    assert_eq!(u(&v, "read"), 0, "an empty file has no line: {v}");
    assert_eq!(u(&v, "rejected"), 0, "{v}");
    assert_eq!(v["stop_reason"], "eof", "{v}");
    assert_eq!(count_messages(&s.path("t.db")), 0);
}

#[test]
fn rerunning_a_file_stores_nothing_new_and_appended_lines_continue_its_line_numbers() {
    let s = Scratch::new("ingest-rerun");
    let path = s.path("app.log");
    let db = s.path("t.db");
    let url = "file:app.log";
    write(&path, numbered(0, 50, "a"));
    let size = file_size(&path);

    let first = ingest_ok(&s, "t.db", &["--source", url]);
    assert_eq!(u(&first, "stored"), 50, "the first run stores every line");
    let input = input_id(&first, 0);

    let second = ingest_ok(&s, "t.db", &["--source", url]);
    assert_eq!(
        u(&second, "stored"),
        0,
        "a re-run of an unchanged file stores nothing new: {second}"
    );
    assert_eq!(u(&second, "read"), 0, "nothing is read again: {second}");
    assert_eq!(second["stop_reason"], "eof");
    assert_eq!(
        input_id(&second, 0),
        input,
        "the same file is the same input"
    );
    assert_eq!(
        (
            input_u(&second, 0, "resumed_offset"),
            input_u(&second, 0, "resumed_line")
        ),
        (size, 50),
        "the re-run resumes at the end of the file"
    );

    // Append 20 lines: the next run stores exactly those, numbered on from 50.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open for append");
    f.write_all(numbered(50, 70, "a").as_bytes())
        .expect("append");
    drop(f);
    let third = ingest_ok(&s, "t.db", &["--source", url]);
    assert_eq!(
        u(&third, "stored"),
        20,
        "exactly the appended lines: {third}"
    );
    assert_eq!(u(&third, "read"), 20, "only the appended lines are read");
    assert_eq!(
        u(&third, "read_bytes"),
        file_size(&path) - size,
        "only the appended bytes are read"
    );
    assert_eq!(
        (
            input_u(&third, 0, "resumed_offset"),
            input_u(&third, 0, "resumed_line")
        ),
        (size, 50),
        "the third run resumes where the first ended"
    );
    assert_eq!(input_id(&third, 0), input);
    assert_eq!(
        rows(&db, input),
        numbered_rows(0, 70, "a"),
        "the input's rows are the file's 70 lines, once each, in order"
    );

    // Each run is linked to the input it read.
    let conn = Connection::open(&db).expect("open db");
    for v in [&first, &second, &third] {
        let run_id = v["run_id"].as_i64().expect("run_id");
        let linked: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM run_inputs WHERE run_id = ?1 AND input_id = ?2",
                [run_id, input],
                |r| r.get(0),
            )
            .expect("query run_inputs");
        assert_eq!(linked, 1, "run {run_id} should be linked to input {input}");
    }
    assert_verify_ok(&s, "t.db", url, &[]);
}

/// A file's birth time known to one run and not to another (a run where `statx` gives none,
/// a kernel that starts to record them) leaves it the same input at the same path: a re-run
/// resumes it instead of storing every line again. Two known birth times that differ are two
/// files (deleted and created again on a reused inode), read from the start.
#[test]
fn a_file_whose_birth_time_is_known_to_one_run_only_resumes_at_its_path() {
    let s = Scratch::new("ingest-birth-time");
    let path = s.path("app.log");
    let db = s.path("t.db");
    let url = "file:app.log";
    write(&path, numbered(0, 10, "a"));
    let first = ingest_ok(&s, "t.db", &["--source", url]);
    let input = input_id(&first, 0);
    let set_born = |born: Option<i64>| {
        let conn = Connection::open(&db).expect("open db");
        conn.execute("UPDATE inputs SET born = ?1", [born])
            .expect("set born");
    };

    set_born(None);
    let unknown = ingest_ok(&s, "t.db", &["--source", url]);
    assert_eq!(input_id(&unknown, 0), input, "the same input: {unknown}");
    assert_eq!(u(&unknown, "stored"), 0, "nothing stored again: {unknown}");
    assert_eq!(count_messages(&db), 10);

    let Ok(born) = std::fs::metadata(&path).and_then(|m| m.created()) else {
        println!("SKIP the differing birth time: this file system records none");
        return;
    };
    let born = i64::try_from(
        born.duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos(),
    )
    .expect("fits");
    let recorded: Option<i64> = Connection::open(&db)
        .unwrap()
        .query_row("SELECT born FROM inputs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recorded, Some(born), "the birth time known now is recorded");
    set_born(Some(born + 1));
    let other = ingest_ok(&s, "t.db", &["--source", url]);
    assert_ne!(input_id(&other, 0), input, "another file: {other}");
    assert_eq!(u(&other, "stored"), 10, "read from its start: {other}");
}

/// A limit raised between runs (after seeing lines rejected, say): verify judges a line
/// longer than one limit and not the other as stored or rejected, since which run read it is
/// not recorded; given one limit, it checks against that one alone.
#[test]
fn verify_source_after_the_limit_changed_between_runs_reports_no_false_problem() {
    let s = Scratch::new("ingest-limits-differ");
    let path = s.path("d.txt");
    let url = "file:d.txt";
    write(&path, "short\nlooooooong\n");
    let first = ingest_ok(&s, "t.db", &["--source", url, "--max-record-bytes", "5"]);
    assert_eq!((u(&first, "stored"), u(&first, "rejected")), (1, 1));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"another-long-line\nok\nstill ok\n").unwrap();
    drop(f);
    let second = ingest_ok(&s, "t.db", &["--source", url]);
    assert_eq!(u(&second, "stored"), 3);
    let out = verify(&s, "t.db", url, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("the limits of the runs that read it, 5 to 1048576 bytes"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("1 rejected at ingest (line 2 "),
        "{}",
        out.stdout
    );
    // Against the first run's limit alone, line 3 should not have been stored.
    let strict = verify(&s, "t.db", url, &["--max-record-bytes", "5"]);
    assert_eq!(strict.code, Some(1), "{}", strict.stdout);
    assert!(
        strict
            .stdout
            .contains("line 3 is stored but is longer than 5 bytes"),
        "{}",
        strict.stdout
    );
    // A row of the second run gone, then a run with a tiny limit that reads nothing new: the
    // line lies between two rows of the second run, whose limit it is within: it is lost.
    let conn = Connection::open(s.path("t.db")).unwrap();
    conn.execute("DELETE FROM messages WHERE message = 'ok'", [])
        .unwrap();
    let third = ingest_ok(&s, "t.db", &["--source", url, "--max-record-bytes", "1"]);
    assert_eq!(u(&third, "read"), 0, "{third}");
    let out = verify(&s, "t.db", url, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stdout.contains("line 4 is not stored"),
        "{}",
        out.stdout
    );
}

/// No record carries the position of rejected lines after the last stored one: the run
/// commits it at its end, so a re-run resumes after them instead of reading, rejecting and
/// warning about them again.
#[test]
fn a_rejected_last_line_is_committed_so_a_rerun_resumes_at_the_end() {
    let s = Scratch::new("ingest-rejected-last");
    let path = s.path("app.log");
    write(&path, b"a\nb\n\xff\n");
    let first = ingest_ok(&s, "t.db", &["--source", "file:app.log"]);
    assert_eq!((u(&first, "stored"), u(&first, "rejected")), (2, 1));
    let second = ingest_ok(&s, "t.db", &["--source", "file:app.log"]);
    assert_eq!(
        (
            input_u(&second, 0, "resumed_offset"),
            input_u(&second, 0, "resumed_line")
        ),
        (file_size(&path), 3),
        "the re-run should resume after the rejected last line: {second}"
    );
    assert_eq!(
        (u(&second, "read"), u(&second, "rejected")),
        (0, 0),
        "the rejected line should not be read again: {second}"
    );
}

/// `--messages N` on stdin that is a regular file leaves the file's offset after line N, as
/// `head -n N` does, so the next reader of the same descriptor reads on from line N + 1.
#[test]
fn stdin_from_a_file_is_left_after_the_last_line_taken_with_messages() {
    let s = Scratch::new("ingest-stdin-messages");
    let input: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    std::fs::write(s.path("in.txt"), &input).unwrap();
    let args = [
        "--source",
        "-",
        "--messages",
        "10",
        "--db",
        "t.db",
        "--output",
        "json",
    ];
    let (out, offset) = common::run_with_file_stdin(s.dir(), &args, "in.txt");
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    assert_eq!(u(&v, "stored"), 10, "{v}");
    let after_ten: u64 = (1..=10).map(|i: u64| i.to_string().len() as u64 + 1).sum();
    assert_eq!(
        offset, after_ten,
        "the next reader does not start at line 11"
    );
}

#[test]
fn stdin_lines_are_stored_in_order_including_a_last_line_without_newline() {
    let s = Scratch::new("ingest-stdin");
    let input: &[u8] = b"one\ntwo\r\n\n\xff invalid\n\xe6\x97\xa5\xe6\x9c\xac\ttab\nlast";
    let mut r = common::Running::start_piped(
        &s,
        &[
            "--source",
            "-",
            "--db",
            "t.db",
            "--output",
            "json",
            "--report-interval",
            "0",
        ],
    );
    let mut stdin = r.child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        stdin.write_all(input).expect("write to pc-host's stdin");
        // Dropped here: EOF.
    });
    let out = common::finish(r);
    writer.join().expect("the writer thread");
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["stop_reason"], "eof", "stdin ends at its EOF: {v}");
    assert_eq!(u(&v, "read"), 6, "six lines read: {v}");
    assert_eq!(u(&v, "read_bytes"), input.len() as u64, "{v}");
    assert_eq!(u(&v, "rejected"), 1, "the invalid UTF-8 line: {v}");
    assert_eq!(u(&v, "stored"), 5, "{v}");
    assert_eq!(v["inputs"][0]["name"], "stdin", "{v}");
    assert!(
        u(&v, "wal_max_bytes") > 0,
        "a run shorter than one checkpoint pass still reports the WAL it wrote: {v}"
    );
    assert!(
        out.stderr.contains("line 4 (invalid UTF-8)"),
        "the warning names line 4, got:\n{}",
        out.stderr
    );
    let want: Vec<(i64, String)> = vec![
        (0, "one".into()),
        (1, "two".into()),
        (2, String::new()),
        (4, "日本\ttab".into()),
        (5, "last".into()),
    ];
    assert_eq!(
        rows(&s.path("t.db"), input_id(&v, 0)),
        want,
        "stdin's lines, in order, with their line numbers"
    );
    assert_eq!(
        want,
        expected_text_rows(input, 1 << 20),
        "the test's splitter"
    );
}

#[test]
fn empty_stdin_stores_nothing_and_exits_zero() {
    let s = Scratch::new("ingest-stdin-empty");
    // `run` gives the binary a null stdin.
    let v = ingest_ok(&s, "t.db", &["--source", "stdin"]);
    assert_eq!(u(&v, "stored"), 0, "{v}");
    assert_eq!(u(&v, "read"), 0, "{v}");
    assert_eq!(v["stop_reason"], "eof", "{v}");
}

#[test]
fn jsonl_stores_valid_values_as_their_text_and_rejects_invalid_lines() {
    let s = Scratch::new("ingest-jsonl");
    let lines: &[(&str, bool)] = &[
        (r#"{"a":1,"b":[true,null]}"#, true),
        ("[1, 2, 3]", true),
        (r#""just a string""#, true),
        ("42", true),
        ("{bad json}", false),
        ("", false),
        (r#"  {"padded": "yes"}  "#, true),
        ("1 2", false),
        ("null", true),
        (r#"{"unicode":"é€😀"}"#, true),
    ];
    let mut file = String::new();
    for (i, (line, _)) in lines.iter().enumerate() {
        file.push_str(line);
        match i {
            8 => file.push_str("\r\n"),
            9 => {} // the last line has no line end
            _ => file.push('\n'),
        }
    }
    write(&s.path("events.jsonl"), &file);
    let url = "file:events.jsonl?format=jsonl";
    let out = ingest(&s, "t.db", &["--source", url]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(u(&v, "read"), lines.len() as u64, "{v}");
    assert_eq!(u(&v, "rejected"), 3, "three lines are not JSON: {v}");
    assert_eq!(u(&v, "stored"), 7, "{v}");
    for n in [5, 6, 8] {
        assert!(
            out.stderr.contains(&format!("line {n} (invalid JSON")),
            "the warning should name line {n} as invalid JSON, got:\n{}",
            out.stderr
        );
    }
    let want: Vec<(i64, String)> = lines
        .iter()
        .enumerate()
        .filter(|(_, (_, ok))| *ok)
        .map(|(i, (l, _))| (i as i64, (*l).to_string()))
        .collect();
    assert_eq!(
        rows(&s.path("t.db"), input_id(&v, 0)),
        want,
        "each valid JSON line stored as its exact text, in order"
    );
    assert_verify_ok(&s, "t.db", url, &[]);
    // Without `?format=`, verify reads the file as the run did (the run recorded jsonl).
    let as_recorded = verify(&s, "t.db", "file:events.jsonl", &[]);
    assert_eq!(as_recorded.code, Some(0), "{}", as_recorded.stdout);
    assert!(
        as_recorded
            .stdout
            .contains("format=jsonl (the limit and the format as the runs that read it recorded)"),
        "{}",
        as_recorded.stdout
    );
    // Read as text, the non-JSON lines would have been stored: verify says which is missing.
    let as_text = verify(&s, "t.db", "file:events.jsonl?format=text", &[]);
    assert_eq!(
        as_text.code,
        Some(1),
        "verify as text should find lines not stored; stdout:\n{}",
        as_text.stdout
    );
    assert!(
        as_text.stdout.contains("line 5 is not stored"),
        "verify as text should name line 5, got:\n{}",
        as_text.stdout
    );
}

#[test]
fn several_files_at_once_each_get_their_own_input_and_exactly_their_lines() {
    let s = Scratch::new("ingest-several");
    let db = s.path("t.db");
    let contents = [
        numbered(0, 400, "first"),
        numbered(0, 1, "second"),
        format!("{}no newline at the end", numbered(0, 250, "third")),
    ];
    let names = ["a.log", "b.log", "c.log"];
    for (name, content) in names.iter().zip(&contents) {
        write(&s.path(name), content);
    }
    let urls: Vec<String> = names.iter().map(|n| format!("file:{n}")).collect();
    let v = ingest_ok(
        &s,
        "t.db",
        &[
            "--source", &urls[0], "--source", &urls[1], "--source", &urls[2],
        ],
    );
    assert_eq!(u(&v, "stored"), 400 + 1 + 251, "{v}");
    assert_eq!(v["stop_reason"], "eof", "{v}");
    let inputs = v["inputs"].as_array().expect("inputs");
    assert_eq!(inputs.len(), 3, "three inputs: {v}");
    let mut ids: Vec<i64> = (0..3).map(|i| input_id(&v, i)).collect();
    for (i, name) in names.iter().enumerate() {
        let reported = inputs[i]["name"].as_str().expect("name");
        assert!(
            reported.ends_with(name),
            "inputs[{i}] should be {name}, is {reported}"
        );
        assert_eq!(
            rows(&db, ids[i]),
            expected_text_rows(contents[i].as_bytes(), 1 << 20),
            "the rows of input {} are exactly the lines of {name}",
            ids[i]
        );
        assert_verify_ok(&s, "t.db", &urls[i], &[]);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each file has its own input_id: {v}");
    assert_eq!(count_messages(&db), 652, "no other rows");
}

#[test]
fn rps_limits_a_file_source_from_an_empty_bucket() {
    let s = Scratch::new("ingest-rps");
    write(&s.path("a.log"), numbered(0, 300, "r"));
    let v = ingest_ok(&s, "t.db", &["--source", "file:a.log", "--rps", "1000"]);
    assert_eq!(u(&v, "stored"), 300, "{v}");
    assert_eq!(u(&v, "target_rps"), 1000, "{v}");
    // The bucket starts empty: the 300th token is due 0.3 s after the start.
    let producing = f64_of(&v, "producing_s");
    assert!(
        producing >= 0.29,
        "300 records at 1000/s cannot be produced in {producing} s"
    );
    let achieved = f64_of(&v, "achieved_rps");
    assert!(
        achieved <= 1010.0,
        "the achieved rate {achieved}/s exceeds --rps 1000"
    );
}

#[test]
fn messages_limit_stops_a_file_after_n_records_and_a_rerun_resumes_at_line_n() {
    let s = Scratch::new("ingest-messages");
    let db = s.path("t.db");
    let content = numbered(0, 300, "m");
    write(&s.path("a.log"), &content);
    let offset_of_100 = numbered(0, 100, "m").len() as u64;

    let first = ingest_ok(&s, "t.db", &["--source", "file:a.log", "--messages", "100"]);
    assert_eq!(
        first["stop_reason"], "messages",
        "the run stops at --messages: {first}"
    );
    assert_eq!(u(&first, "stored"), 100, "{first}");
    let input = input_id(&first, 0);
    assert_eq!(rows(&db, input), numbered_rows(0, 100, "m"));

    let second = ingest_ok(&s, "t.db", &["--source", "file:a.log"]);
    assert_eq!(
        (
            input_u(&second, 0, "resumed_offset"),
            input_u(&second, 0, "resumed_line")
        ),
        (offset_of_100, 100),
        "the re-run resumes at line 100: {second}"
    );
    assert_eq!(u(&second, "stored"), 200, "the other 200 lines: {second}");
    assert_eq!(second["stop_reason"], "eof", "{second}");
    assert_eq!(
        rows(&db, input),
        numbered_rows(0, 300, "m"),
        "all 300 lines, once each, in order"
    );
    assert_verify_ok(&s, "t.db", "file:a.log", &[]);
}

/// Every file in `dir` whose name starts with `prefix`, with its bytes.
fn snapshot(dir: &Path, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("list dir")
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).expect("read"))
        })
        .collect();
    files.sort();
    files
}

/// The bad-input cases: arguments (besides `--db`) and what the error must say. The
/// unreadable file is left out when this process can read it anyway (root).
fn bad_input_cases(s: &Scratch) -> Vec<(Vec<&'static str>, &'static str)> {
    write(&s.path("ok.log"), "fine\n");
    std::fs::create_dir_all(s.path("adir")).expect("mkdir");
    let fifo = std::ffi::CString::new(s.path("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the named pipe.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");
    let locked = s.path("locked.log");
    write(&locked, "secret\n");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
    let mut cases: Vec<(Vec<&'static str>, &'static str)> = vec![
        (vec!["--source", "file:missing.log"], "no such file"),
        (vec!["--source", "file:adir"], "is a directory"),
        (vec!["--source", "kafka://x"], "unknown source `kafka`"),
        (vec!["--source", "file:/dev/null"], "is not a regular file"),
        (vec!["--source", "file:fifo"], "is not a regular file"),
        (
            vec!["--source", "file:/proc/self/status"],
            "says it has 0 bytes but has data",
        ),
        (
            vec!["--source", "file:ok.log?follow=yes"],
            "`follow=yes`: use follow=true or follow=false",
        ),
        (
            vec!["--source", "file:ok.log?format=csv"],
            "`format=csv`: use format=text, jsonl or dead-letter",
        ),
        (
            vec!["--source", "file:ok.log?colour=red"],
            "unknown parameter `colour`",
        ),
        (
            vec!["--source", "file:ok.log", "--source", "file:ok.log"],
            "twice",
        ),
        (
            vec!["--source", "file:ok.log", "--source", "file:./ok.log"],
            "are the same file",
        ),
        (
            vec![
                "--source",
                "file:ok.log",
                "--source",
                "file:missing.log",
                "--source",
                "file:adir",
            ],
            "file:missing.log: no such file",
        ),
    ];
    if std::fs::File::open(&locked).is_ok() {
        println!(
            "note: skipping the unreadable-file case: this process reads {} despite mode 000 \
             (running as root)",
            locked.display()
        );
    } else {
        cases.push((vec!["--source", "file:locked.log"], "permission denied"));
    }
    cases
}

#[test]
fn bad_inputs_are_one_line_errors_with_exit_2_and_no_database() {
    let s = Scratch::new("ingest-bad");
    for (args, needle) in bad_input_cases(&s) {
        let out = ingest(&s, "new.db", &args);
        assert_one_line_error(&out, 2, needle);
        assert!(
            snapshot(s.dir(), "new.db").is_empty() && snapshot(s.dir(), "pc-host.db").is_empty(),
            "{args:?} was refused but created a database file"
        );
    }
    // The sink: an unknown scheme is refused the same way.
    let out = run(
        s.dir(),
        &["--source", "file:ok.log", "--sink", "mongodb://x"],
    );
    assert_one_line_error(&out, 2, "unknown sink `mongodb`");
    let out = run(
        s.dir(),
        &["--source", "file:ok.log", "--sink", "sqlite:x.db?mode=ro"],
    );
    assert_one_line_error(&out, 2, "sqlite: takes no parameters");
    assert!(
        snapshot(s.dir(), "pc-host.db").is_empty(),
        "an unknown sink created the default database"
    );
    // Standard input that is a directory (`< DIR`) opens, and fails at the first read: refused
    // before the run is recorded (it was recorded, then failed with exit 1).
    let out: Out = common::pc_host(s.dir())
        .args(["--source", "-", "--db", "new.db"])
        .stdin(std::fs::File::open(s.path("adir")).unwrap())
        .output_within()
        .unwrap()
        .into();
    assert_one_line_error(&out, 2, "stdin is a directory");
    assert!(
        snapshot(s.dir(), "new.db").is_empty(),
        "a refused stdin created a database"
    );
}

#[test]
fn a_refused_start_leaves_an_existing_database_byte_for_byte_unchanged() {
    let s = Scratch::new("ingest-bad-existing");
    let made = run(
        s.dir(),
        &[
            "--db",
            "old.db",
            "--messages",
            "10",
            "--rps",
            "0",
            "--report-interval",
            "0",
        ],
    );
    assert_eq!(
        made.code,
        Some(0),
        "the generate run that makes the database; stderr:\n{}",
        made.stderr
    );
    let before = snapshot(s.dir(), "old.db");
    assert!(!before.is_empty(), "the database exists");
    for (args, needle) in bad_input_cases(&s) {
        let out = ingest(&s, "old.db", &args);
        assert_one_line_error(&out, 2, needle);
        assert!(
            snapshot(s.dir(), "old.db") == before,
            "{args:?} was refused but changed the existing database"
        );
    }
    let out = run(
        s.dir(),
        &["--source", "file:ok.log", "--sink", "mongodb://old.db"],
    );
    assert_one_line_error(&out, 2, "unknown sink `mongodb`");
    let out = run(
        s.dir(),
        &["--source", "file:ok.log", "--sink", "sqlite:x.db?mode=ro"],
    );
    assert_one_line_error(&out, 2, "sqlite: takes no parameters");
    assert!(snapshot(s.dir(), "old.db") == before);
    assert_eq!(
        count_messages(&s.path("old.db")),
        10,
        "the 10 rows are there"
    );
}

/// A file's last line read without its line end that cannot be stored as it is (JSON cut
/// mid-object, UTF-8 cut mid-character) may be a line still being written: it is left unread,
/// neither rejected nor dead-lettered (a replay of the dead letters would store the piece),
/// and the run that finds it whole stores it.
#[test]
fn an_unended_last_line_that_cannot_be_stored_yet_is_left_for_the_run_that_reads_it_whole() {
    let s = Scratch::new("ingest-unended");
    for (name, format, first, rest, whole) in [
        (
            "j.jsonl",
            "jsonl",
            &b"{\"a\":1}\n{\"b\":"[..],
            &b"2}\n"[..],
            "{\"b\":2}",
        ),
        (
            "u.log",
            "text",
            &b"one\ncaf\xc3"[..],
            &b"\xa9\n"[..],
            "caf\u{e9}",
        ),
    ] {
        std::fs::write(s.path(name), first).unwrap();
        let source = format!("file:{name}?format={format}");
        let db = format!("{name}.db");
        let ingest = |s: &Scratch| {
            let out = run(
                s.dir(),
                &[
                    "--source",
                    &source,
                    "--db",
                    &db,
                    "--dead-letter",
                    "dl.jsonl",
                    "--output",
                    "json",
                    "--report-interval",
                    "0",
                ],
            );
            assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
            out
        };
        let out = ingest(&s);
        let v = json(&out);
        assert_eq!(
            (
                u(&v, "stored"),
                u(&v, "rejected"),
                u(&v, "not_queued_rereadable")
            ),
            (1, 0, 1),
            "{name}: {v}"
        );
        assert!(
            out.stderr.contains("line 2 has no line end yet"),
            "{}",
            out.stderr
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(s.path(name))
            .unwrap();
        f.write_all(rest).unwrap();
        let v = json(&ingest(&s));
        assert_eq!((u(&v, "stored"), u(&v, "rejected")), (1, 0), "{name}: {v}");
        let rows: Vec<String> = common::all_rows(&s.path(&db))
            .into_iter()
            .map(|(_, _, text)| text)
            .collect();
        assert_eq!(
            rows.last().map(String::as_str),
            Some(whole),
            "{name}: {rows:?}"
        );
        assert!(
            !s.path("dl.jsonl").exists(),
            "{name}: nothing dead-lettered"
        );
    }
}

/// A last line stored in part by one run, grown but still unended and not storable when the
/// next run reads it (a character cut, or over the limit so far), keeps its row as the line's
/// start: the run that finds it whole replaces that row (the position went back past it, and
/// the whole line was stored beside the old piece, or the piece kept for good).
#[test]
fn a_part_row_of_a_line_left_unread_is_still_replaced_once_the_line_is_whole() {
    let s = Scratch::new("ingest-part-row-left");
    for (name, limit, grow, end, whole) in [
        (
            "utf8.log",
            "1048576",
            &b"\xe2\x82"[..],
            &b"\xac\n"[..],
            Some("abc\u{20ac}"),
        ),
        ("long.log", "10", &b"defghijklm"[..], &b"\n"[..], None),
    ] {
        let db = format!("{name}.db");
        let source = format!("file:{name}");
        let ingest = |s: &Scratch| {
            let args = [
                "--source",
                &source,
                "--db",
                &db,
                "--max-record-bytes",
                limit,
            ];
            let out = run(s.dir(), &args);
            assert_eq!(out.code, Some(0), "{name}: {}", out.stderr);
        };
        std::fs::write(s.path(name), "one\nabc").unwrap();
        ingest(&s);
        for more in [grow, end] {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(s.path(name))
                .unwrap();
            f.write_all(more).unwrap();
            ingest(&s);
        }
        let rows: Vec<String> = common::all_rows(&s.path(&db))
            .into_iter()
            .map(|(_, _, text)| text)
            .collect();
        let want: Vec<&str> = ["one"].into_iter().chain(whole).collect();
        assert_eq!(rows, want, "{name}: one row per line, the piece gone");
        let out = run(s.dir(), &["verify", "--db", &db, "--source", &source]);
        assert_eq!(out.code, Some(0), "{name}: {}", out.stdout);
    }
}

/// `verify --dead-letter FILE` looks the missing lines up in FILE: one that is missing, or is
/// not a dead-letter file, is bad input (exit 2), with or without `--source` (it was taken
/// for a file with no entries, and every dead-lettered line reported missing).
#[test]
fn verify_with_a_dead_letter_file_that_is_not_one_is_a_usage_error() {
    let s = Scratch::new("ingest-verify-not-dl");
    std::fs::write(s.path("a.log"), "one\ntwo\n").unwrap();
    std::fs::write(s.path("notes.txt"), "hello\n").unwrap();
    let fifo = std::ffi::CString::new(s.path("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the named pipe.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");
    ingest_ok(&s, "t.db", &["--source", "file:a.log"]);
    for source in [&["--source", "file:a.log"][..], &[]] {
        for (file, said) in [
            (
                "notes.txt",
                "--dead-letter notes.txt: not a pc-host dead-letter file",
            ),
            ("gone.jsonl", "--dead-letter gone.jsonl: no such file"),
            // Opened, a FIFO would wait for a writer forever.
            ("fifo", "--dead-letter fifo: not a regular file"),
            (".", "--dead-letter .: not a regular file"),
        ] {
            let mut args = vec!["verify", "--db", "t.db", "--dead-letter", file];
            args.extend(source);
            assert_one_line_error(&run(s.dir(), &args), 2, said);
        }
    }
}

/// `verify --source` compares a file with its rows: any other source is refused with the
/// reason for that source (stdin was named whatever the source was).
#[test]
fn verify_source_that_is_not_a_file_names_its_own_reason() {
    let s = Scratch::new("ingest-verify-not-file");
    std::fs::write(s.path("a.log"), "one\n").unwrap();
    ingest_ok(&s, "t.db", &["--source", "file:a.log"]);
    for (source, reason) in [
        ("-", "(stdin cannot be read back)"),
        ("generate", "(generated messages have no file to compare)"),
        ("nats://127.0.0.1:4222/X", "(a NATS stream is not a file)"),
    ] {
        let out = run(s.dir(), &["verify", "--db", "t.db", "--source", source]);
        assert_one_line_error(
            &out,
            2,
            &format!("verify --source takes a file: URL {reason}"),
        );
    }
}

/// A file given as a file source and redirected to standard input too would be stored twice,
/// under two inputs: refused, exit 2, before the database is made, whichever comes first.
#[test]
fn a_file_given_as_a_source_and_as_stdin_is_refused() {
    let s = Scratch::new("ingest-stdin-twin");
    std::fs::write(s.path("a.log"), "one\ntwo\n").unwrap();
    std::os::unix::fs::symlink("a.log", s.path("link.log")).unwrap();
    for args in [
        ["--source", "-", "--source", "file:a.log"],
        ["--source", "file:link.log", "--source", "-"],
    ] {
        let (out, _) = common::run_with_file_stdin(s.dir(), &args, "a.log");
        assert_one_line_error(&out, 2, "stdin and file:");
        assert_one_line_error(&out, 2, "are the same file: give it once");
        assert!(!s.path("pc-host.db").exists(), "{args:?}: no database made");
    }
    let (out, _) = common::run_with_file_stdin(
        s.dir(),
        &["--source", "-", "--report-interval", "0"],
        "a.log",
    );
    assert_eq!(out.code, Some(0), "stdin alone is read: {}", out.stderr);
}

/// The database (or its WAL) given as an input would be read as lines while the run writes
/// it, with `follow=true` feeding the run its own writes: refused, exit 2, the database
/// unchanged; as a file source and as the file redirected to standard input.
#[test]
fn the_database_given_as_its_own_input_is_refused() {
    let s = Scratch::new("ingest-own-db");
    let made = run(
        s.dir(),
        &[
            "--db",
            "own.db",
            "--messages",
            "10",
            "--report-interval",
            "0",
        ],
    );
    assert_eq!(made.code, Some(0), "stderr:\n{}", made.stderr);
    std::os::unix::fs::symlink("own.db", s.path("link.log")).unwrap();
    std::fs::write(s.path("own.db-wal"), "").unwrap();
    let before = snapshot(s.dir(), "own.db");
    for source in [
        "file:own.db",
        "file:./own.db?follow=true",
        "file:link.log",
        "file:own.db-wal",
    ] {
        let out = run(s.dir(), &["--source", source, "--db", "own.db"]);
        assert_one_line_error(&out, 2, "is the database this run writes (own.db)");
        assert!(
            snapshot(s.dir(), "own.db") == before,
            "{source}: the database changed"
        );
    }
    for input in ["own.db", "link.log", "own.db-wal"] {
        let args = ["--source", "-", "--db", "own.db"];
        let (out, _) = common::run_with_file_stdin(s.dir(), &args, input);
        assert_one_line_error(&out, 2, "stdin is the database this run writes (own.db)");
        assert!(
            snapshot(s.dir(), "own.db") == before,
            "< {input}: the database changed"
        );
    }
    assert_eq!(count_messages(&s.path("own.db")), 10);
}

/// A line longer than the line reader's 1 MiB scan limit (stored, under a larger
/// `--max-record-bytes`) is one line to verify too: it was read as ended at that limit, and a
/// correct ingest failed verify with the line split in pieces.
#[test]
fn verify_source_reads_a_line_longer_than_a_mebibyte_as_one_line() {
    let s = Scratch::new("ingest-verify-long");
    let long = "B".repeat(2_500_000);
    write(&s.path("a.log"), format!("small1\n{long}\nsmall3\n"));
    let limit = ["--max-record-bytes", "8000000"];
    let v = ingest_ok(&s, "t.db", &["--source", "file:a.log", limit[0], limit[1]]);
    assert_eq!(u(&v, "stored"), 3, "{v}");
    assert_verify_ok(&s, "t.db", "file:a.log", &[]);
    assert_verify_ok(&s, "t.db", "file:a.log", &limit);
}

/// A run given `--dead-letter` that dead-letters nothing makes no file: verify finds every
/// line stored and does not complain about the file; with a line missing, it says that no
/// dead-letter file is there, since that may be why.
#[test]
fn verify_source_mentions_an_absent_dead_letter_file_only_when_lines_are_missing() {
    let s = Scratch::new("ingest-verify-no-dl");
    write(&s.path("a.log"), numbered(0, 10, "v"));
    let v = ingest_ok(
        &s,
        "t.db",
        &["--source", "file:a.log", "--dead-letter", "dl.jsonl"],
    );
    assert!(!s.path("dl.jsonl").exists(), "nothing was dead-lettered");
    // Recorded absolute, so that a verify run elsewhere finds it.
    let recorded = std::path::absolute(s.path("dl.jsonl")).unwrap();
    assert_eq!(v["config"]["dead_letter"], recorded.display().to_string());
    let out = verify(&s, "t.db", "file:a.log", &[]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("dl.jsonl"), "{}", out.stdout);

    let conn = Connection::open(s.path("t.db")).expect("open db");
    let deleted = conn
        .execute(
            "DELETE FROM messages WHERE producer = ?1 AND seq = 4",
            [input_id(&v, 0)],
        )
        .expect("delete");
    assert_eq!(deleted, 1);
    let out = verify(&s, "t.db", "file:a.log", &[]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("line 5 is not stored"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("no file at"), "{}", out.stdout);
    assert!(out.stdout.contains("dl.jsonl"), "{}", out.stdout);
}

/// A last line read before its end was written is stored as far as it went, and the
/// committed position falls inside it; once the file grows, the line is longer than its row
/// until the next run replaces the row. verify says so and is OK (it said the row differed);
/// a row there that is not the line's start is still a difference.
#[test]
fn verify_source_takes_a_last_line_read_in_part_for_one_the_next_run_completes() {
    let s = Scratch::new("ingest-verify-partial");
    write(&s.path("a.log"), "a\nb");
    let v = ingest_ok(&s, "t.db", &["--source", "file:a.log"]);
    append_then_see_line_2_read_in_part(&s, "a.log", "file:a.log", b"c\nd\n");
    let conn = Connection::open(s.path("t.db")).expect("open db");
    conn.execute(
        "UPDATE messages SET message = 'x' WHERE producer = ?1 AND seq = 1",
        [input_id(&v, 0)],
    )
    .expect("update");
    let out = verify(&s, "t.db", "file:a.log", &[]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("line 2: stored \"x\", the file has \"bc\""),
        "{}",
        out.stdout
    );
    ingest_ok(&s, "t.db", &["--source", "file:a.log"]);
    let out = verify(&s, "t.db", "file:a.log", &[]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);

    // A last line that cannot be stored as read (half a JSON object) is left unread, not
    // rejected: verify says a run has yet to read it, and is OK, before and after its end comes.
    write(&s.path("b.jsonl"), "{\"a\":1}\n{\"b\":");
    ingest(&s, "t.db", &["--source", "file:b.jsonl?format=jsonl"]);
    for more in [&b""[..], b"2}\n"] {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(s.path("b.jsonl"))
            .unwrap();
        std::io::Write::write_all(&mut f, more).unwrap();
        let out = verify(&s, "t.db", "file:b.jsonl?format=jsonl", &[]);
        assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
        assert!(
            out.stdout
                .contains("1 line after byte 8 not stored yet by any run (line 2)"),
            "{}",
            out.stdout
        );
    }
}

/// A last line read in part up to the `\r` of its `\r\n` end keeps the `\r` in its row until
/// the next run reads it whole: verify takes that row for the line read in part once the `\n`
/// comes (it called it a difference), as it does when the line goes on after the `\r`.
#[test]
fn verify_source_takes_a_row_ending_in_the_cr_of_a_crlf_for_a_line_read_in_part() {
    let s = Scratch::new("ingest-verify-cr");
    std::fs::write(s.path("a.log"), "x\r\nabc\r").unwrap();
    ingest_ok(&s, "t.db", &["--source", "file:a.log"]);
    append_then_see_line_2_read_in_part(&s, "a.log", "file:a.log", b"\n");
    // The same row, the line going on after the `\r`: read in part as before.
    std::fs::write(s.path("b.log"), "x\r\nabc\r").unwrap();
    ingest_ok(&s, "t.db", &["--source", "file:b.log"]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.path("b.log"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"def\n").unwrap();
    let out = verify(&s, "t.db", "file:b.log", &[]);
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    ingest_ok(&s, "t.db", &["--source", "file:b.log"]);
    let out = verify(&s, "t.db", "file:b.log", &[]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
}

/// Appends `more` to file `name`, then checks that `verify --source URL` is OK and says line 2
/// was read in part.
fn append_then_see_line_2_read_in_part(s: &Scratch, name: &str, url: &str, more: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.path(name))
        .unwrap();
    std::io::Write::write_all(&mut f, more).unwrap();
    let out = verify(s, "t.db", url, &[]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("1 line read in part, before its end was written (line 2)"),
        "{}",
        out.stdout
    );
}

#[test]
fn verify_source_names_the_first_line_that_differs() {
    let s = Scratch::new("ingest-verify-diff");
    let db = s.path("t.db");
    write(&s.path("a.log"), numbered(0, 10, "v"));
    let v = ingest_ok(&s, "t.db", &["--source", "file:a.log"]);
    let input = input_id(&v, 0);
    assert_verify_ok(&s, "t.db", "file:a.log", &[]);

    let conn = Connection::open(&db).expect("open db");
    let changed = conn
        .execute(
            "UPDATE messages SET message = 'x' WHERE producer = ?1 AND seq = 4",
            [input],
        )
        .expect("update");
    assert_eq!(changed, 1, "one row changed");
    let out = verify(&s, "t.db", "file:a.log", &[]);
    assert_eq!(
        out.code,
        Some(1),
        "verify should fail on a changed row; stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("PROBLEMS FOUND") && out.stdout.contains("the first: line 5:"),
        "verify should name line 5 as the first difference, got:\n{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "10 lines: 9 stored in file order with the file's text, 1 stored with other text"
        ),
        "the changed row is not counted as stored with the file's text, got:\n{}",
        out.stdout
    );

    // Put it back, and take line 7 away instead.
    conn.execute(
        "UPDATE messages SET message = ?2 WHERE producer = ?1 AND seq = 4",
        rusqlite::params![input, numbered_line(4, "v")],
    )
    .expect("restore");
    assert_verify_ok(&s, "t.db", "file:a.log", &[]);
    conn.execute(
        "DELETE FROM messages WHERE producer = ?1 AND seq = 6",
        [input],
    )
    .expect("delete");
    let out = verify(&s, "t.db", "file:a.log", &[]);
    assert_eq!(out.code, Some(1), "stdout:\n{}", out.stdout);
    assert!(
        out.stdout.contains("PROBLEMS FOUND") && out.stdout.contains("line 7 is not stored"),
        "verify should say line 7 is not stored, got:\n{}",
        out.stdout
    );
}

/// The report and verdicts the server sinks' tests check (`postgres.rs`, `mysql.rs`), on
/// SQLite.
#[test]
fn verify_source_judges_changed_deleted_unread_and_extra_rows() {
    let s = Scratch::new("ingest-verify-shared");
    let db = s.path("t.db");
    common::assert_verify_source_judges_the_rows(&s, &["--db", "t.db"], |sql| {
        let conn = Connection::open(&db).expect("open db");
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

#[test]
fn verify_source_of_a_file_never_ingested_is_a_one_line_error() {
    let s = Scratch::new("ingest-verify-never");
    write(&s.path("a.log"), numbered(0, 3, "n"));
    write(&s.path("other.log"), numbered(0, 3, "o"));
    ingest_ok(&s, "t.db", &["--source", "file:a.log"]);
    let out = verify(&s, "t.db", "file:other.log", &[]);
    assert_one_line_error(&out, 2, "was never ingested");
}

/// `file:g.txt`, `file:./g.txt`, `file:sub/../g.txt` and a link to it name one input: the
/// identity's path is canonical, so another spelling resumes instead of ingesting again.
#[test]
fn another_spelling_of_a_file_path_is_the_same_input() {
    let s = Scratch::new("ingest-spelling");
    write(&s.path("g.txt"), "a\nb\n");
    std::fs::create_dir(s.path("sub")).unwrap();
    std::os::unix::fs::symlink(s.path("g.txt"), s.path("link.txt")).unwrap();
    let first = ingest_ok(&s, "t.db", &["--source", "file:g.txt"]);
    assert_eq!(u(&first, "stored"), 2);
    for url in ["file:./g.txt", "file:sub/../g.txt", "file:link.txt"] {
        let again = ingest_ok(&s, "t.db", &["--source", url]);
        assert_eq!(
            u(&again, "stored"),
            0,
            "{url} ingested g.txt again: {again}"
        );
        assert_eq!(
            input_id(&again, 0),
            input_id(&first, 0),
            "{url} should resume input {}: {again}",
            input_id(&first, 0)
        );
    }
    assert_eq!(count_messages(&s.path("t.db")), 2);
}

/// `verify` refuses bad input like a run does: one line, exit 2.
#[test]
fn verify_with_a_bad_source_is_a_usage_error() {
    let s = Scratch::new("ingest-verify-usage");
    write(&s.path("g.txt"), "a\n");
    ingest_ok(&s, "t.db", &["--source", "file:g.txt"]);
    for (url, needle) in [
        ("kafka://x", "unknown source `kafka`"),
        ("file:missing.txt", "file:missing.txt: no such file"),
        ("stdin", "takes a file: URL"),
        // Not "use --source -", which is a run's way to read a pipe, not verify's.
        (
            "file:/dev/null",
            "file:/dev/null is not a regular file: verify --source compares a file with its rows",
        ),
    ] {
        common::assert_one_line_error(&verify(&s, "t.db", url, &[]), 2, needle);
    }
    let out = verify(&s, "t.db", "file:g.txt", &["--max-record-bytes", "0"]);
    common::assert_one_line_error(&out, 2, "--max-record-bytes 0 is not usable");
}

/// A file's last line without its line end is stored as it is; if the file later grows, that
/// line is read again whole and its row replaced in the same transaction, so the table holds
/// the file's lines, not a fragment and its continuation. An unchanged file stores nothing.
/// A last line stored without its end, completed by a later run into a line rejected at read
/// (invalid UTF-8 here): the fragment's row goes, in the transaction that moves the input past
/// the line, whether a later line's record moves it or the run's final position does.
#[test]
fn a_last_line_completed_into_a_rejected_line_leaves_no_fragment_row() {
    for (name, then) in [("then-more", "three\n"), ("then-nothing", "")] {
        let s = Scratch::new(&format!("ingest-fragment-rejected-{name}"));
        let path = s.path("app.log");
        write(&path, "one\nabc");
        assert_eq!(
            u(
                &ingest_ok(&s, "t.db", &["--source", "file:app.log"]),
                "stored"
            ),
            2
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"x\xffy\n").unwrap();
        f.write_all(then.as_bytes()).unwrap();
        drop(f);
        let v = ingest_ok(&s, "t.db", &["--source", "file:app.log"]);
        assert_eq!(u(&v, "rejected"), 1, "{name}: {v}");
        let rows: Vec<(i64, String)> = common::all_rows(&s.path("t.db"))
            .into_iter()
            .map(|(_, seq, line)| (seq, line))
            .collect();
        let mut want = vec![(0, "one".to_string())];
        if !then.is_empty() {
            want.push((2, "three".to_string()));
        }
        assert_eq!(rows, want, "{name}: the fragment \"abc\" must not stay");
        assert_verify_ok(&s, "t.db", "file:app.log", &[]);
    }
}

#[test]
fn a_last_line_without_its_end_is_completed_in_place_when_the_file_grows() {
    let s = Scratch::new("ingest-partial-last");
    let path = s.path("app.log");
    write(&path, "line1\nabc");
    let first = ingest_ok(&s, "t.db", &["--source", "file:app.log"]);
    assert_eq!(u(&first, "stored"), 2);
    let again = ingest_ok(&s, "t.db", &["--source", "file:app.log"]);
    assert_eq!(
        u(&again, "stored"),
        0,
        "an unchanged file stores nothing: {again}"
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, b"def\nline3\n").unwrap();
    let grown = ingest_ok(&s, "t.db", &["--source", "file:app.log"]);
    assert_eq!(
        u(&grown, "stored"),
        2,
        "the completed line and line3: {grown}"
    );
    let input = input_id(&first, 0);
    assert_eq!(
        rows(&s.path("t.db"), input),
        [
            (0, "line1".to_string()),
            (1, "abcdef".to_string()),
            (2, "line3".to_string())
        ]
    );
    assert_verify_ok(&s, "t.db", "file:app.log", &[]);
    let out = run(s.dir(), &["verify", "--db", "t.db"]);
    assert_eq!(out.code, Some(0), "{}", out.stdout);
}

/// A run that stops before it has read again a last line an earlier run stored without its
/// end (here: following the file, stopped by `--duration` while the line still has none)
/// keeps the input's position after the stored part, so the next run completes that row.
/// (The position went back before the line and the row stayed: the next run stored the line
/// a second time, and verify found a duplicate.)
#[test]
fn a_run_stopped_before_rereading_a_partial_line_leaves_its_row_to_be_completed_once() {
    let s = Scratch::new("ingest-partial-stopped");
    let path = s.path("app.log");
    write(&path, "a\nb\npart");
    let first = ingest_ok(&s, "t.db", &["--source", "file:app.log"]);
    assert_eq!(u(&first, "stored"), 3);
    let followed = ingest_ok(
        &s,
        "t.db",
        &["--source", "file:app.log?follow=true", "--duration", "0.3"],
    );
    assert_eq!(
        u(&followed, "stored"),
        0,
        "the line has no end yet: {followed}"
    );
    let again = ingest_ok(&s, "t.db", &["--source", "file:app.log"]);
    assert_eq!(
        u(&again, "stored"),
        0,
        "an unchanged file stores nothing: {again}"
    );
    common::server::append_input(&s, "app.log", "ial\nc\n");
    let grown = ingest_ok(&s, "t.db", &["--source", "file:app.log"]);
    assert_eq!(u(&grown, "stored"), 2, "the completed line and c: {grown}");
    assert_eq!(
        rows(&s.path("t.db"), input_id(&first, 0)),
        [
            (0, "a".to_string()),
            (1, "b".to_string()),
            (2, "partial".to_string()),
            (3, "c".to_string())
        ]
    );
    assert_verify_ok(&s, "t.db", "file:app.log", &[]);
    let out = run(s.dir(), &["verify", "--db", "t.db"]);
    assert_eq!(out.code, Some(0), "{}", out.stdout);
}

/// Completing a line replaces only that input's row: a generated run's row with the same
/// producer number and seq (generator threads are numbered 0.., inputs 1..) stays.
#[test]
fn completing_a_line_never_deletes_a_generated_row_with_the_same_numbers() {
    let s = Scratch::new("ingest-partial-generated");
    let generated = run(
        s.dir(),
        &["--db", "t.db", "--producers", "3", "--messages", "30"],
    );
    assert_eq!(generated.code, Some(0), "{}", generated.stderr);
    let path = s.path("app.log");
    write(&path, "abc");
    let first = ingest_ok(&s, "t.db", &["--source", "file:app.log"]);
    let input = input_id(&first, 0);
    assert!(
        input < 3,
        "input {input} shares a generator's producer number"
    );
    std::fs::write(&path, "abcdef\n").unwrap();
    let grown = ingest_ok(&s, "t.db", &["--source", "file:app.log"]);
    assert_eq!(u(&grown, "stored"), 1, "{grown}");
    let out = run(s.dir(), &["verify", "--db", "t.db"]);
    assert_eq!(
        out.code,
        Some(0),
        "the generated run lost a row:\n{}",
        out.stdout
    );
}

/// `source = []` in a config file names no source: refused, not read as "the generator".
#[test]
fn an_empty_source_list_in_the_config_file_is_refused() {
    let s = Scratch::new("ingest-empty-sources");
    write(&s.path("c.toml"), "source = []\n");
    let out = run(s.dir(), &["--config", "c.toml"]);
    assert_one_line_error(&out, 2, "names no source");
    assert!(
        snapshot(s.dir(), "pc-host.db").is_empty(),
        "a database was created"
    );
}

/// Endless input with no line end (here on stdin) is read in bounded steps: the run still
/// stops at its --duration (it hung, reading the one line forever), stores nothing, exit 0.
#[test]
fn an_endless_line_still_stops_at_the_duration() {
    use std::io::Write as _;
    let s = Scratch::new("ingest-endless-line");
    let mut r = common::Running::start_piped(
        &s,
        &[
            "--source",
            "-",
            "--db",
            "t.db",
            "--duration",
            "0.3",
            "--max-record-bytes",
            "1000",
            "--report-interval",
            "0",
            "--output",
            "json",
        ],
    );
    let mut stdin = r.child.stdin.take().unwrap();
    // Writes until pc-host exits and the pipe breaks.
    let feeder = std::thread::spawn(move || {
        let block = vec![b'x'; 64 << 10];
        while stdin.write_all(&block).is_ok() {}
    });
    let out = common::finish(r);
    feeder.join().unwrap();
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    assert_eq!(v["stop_reason"], "duration", "{v}");
    assert_eq!(u(&v, "stored"), 0, "{v}");
}

/// A file deleted and written again at the same path is a new input, even when the file system
/// gives it the old inode (it often does at once): its identity includes its birth time, so
/// the new file is not resumed at the old one's offset.
#[test]
fn a_file_deleted_and_created_again_is_a_new_input() {
    let s = Scratch::new("ingest-recreated");
    let path = s.path("q.log");
    write(&path, numbered(0, 100, "old"));
    let first = ingest_ok(&s, "t.db", &["--source", "file:q.log"]);
    std::fs::remove_file(&path).unwrap();
    write(&path, numbered(0, 300, "new"));
    let second = ingest_ok(&s, "t.db", &["--source", "file:q.log"]);
    assert_eq!(
        u(&second, "stored"),
        300,
        "every line of the new file: {second}"
    );
    assert_ne!(input_id(&second, 0), input_id(&first, 0), "{second}");
    assert_eq!(
        rows(&s.path("t.db"), input_id(&second, 0)),
        numbered_rows(0, 300, "new")
    );
    assert_verify_ok(&s, "t.db", "file:q.log", &[]);
}

/// Lines a rotation while pc-host was down left in the old file: named by every run while
/// they stay unread, also once another rotation has moved the file two names back; never
/// named when the same run reads that file through another source.
#[test]
fn lines_left_by_a_rotation_are_named_every_run_until_read_and_not_when_read_alongside() {
    let s = Scratch::new("ingest-left-by-rotation");
    std::fs::write(s.path("app.log"), "a0\na1\n").unwrap();
    if std::fs::metadata(s.path("app.log"))
        .and_then(|m| m.created())
        .is_err()
    {
        common::skip("this file system records no birth times");
        return;
    }
    let log = "file:app.log";
    assert_eq!(u(&ingest_ok(&s, "t.db", &["--source", log]), "stored"), 2);
    // The run's end leaves the WAL folded in: the file alone is the database.
    std::fs::copy(s.path("t.db"), s.path("snapshot.db")).unwrap();
    std::fs::write(s.path("app.log"), "a0\na1\na2\n").unwrap();
    std::fs::rename(s.path("app.log"), s.path("app.log.1")).unwrap();
    std::fs::write(s.path("app.log"), "b0\n").unwrap();
    let unread = |out: &Out, name: &str| {
        let said = format!(
            "is now {}, with 3 bytes after line 2 not read",
            s.path(name).display()
        );
        out.stderr.matches(&said).count()
    };
    // Given alongside: read by this run, so not called unread, whatever the order.
    for (k, order) in [[log, "file:app.log.1"], ["file:app.log.1", log]]
        .iter()
        .enumerate()
    {
        let db = format!("alongside{k}.db");
        std::fs::copy(s.path("snapshot.db"), s.path(&db)).unwrap();
        let both = ingest(&s, &db, &["--source", order[0], "--source", order[1]]);
        assert_eq!(both.code, Some(0), "{}", both.stderr);
        assert_eq!(u(&json(&both), "stored"), 2, "a2 and b0: {}", both.stderr);
        assert!(!both.stderr.contains("WARN"), "{order:?}:\n{}", both.stderr);
        assert_eq!(json(&both)["unread_elsewhere"], serde_json::json!([]));
    }
    for run in 0..2 {
        let out = ingest(&s, "t.db", &["--source", log]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert_eq!(unread(&out, "app.log.1"), 1, "run {run}:\n{}", out.stderr);
    }
    std::fs::rename(s.path("app.log.1"), s.path("app.log.2")).unwrap();
    std::fs::rename(s.path("app.log"), s.path("app.log.1")).unwrap();
    std::fs::write(s.path("app.log"), "c0\n").unwrap();
    for run in 0..2 {
        let out = ingest(&s, "t.db", &["--source", log]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert_eq!(
            unread(&out, "app.log.2"),
            1,
            "two back, run {run}:\n{}",
            out.stderr
        );
        let listed = &json(&out)["unread_elsewhere"];
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
        assert!(
            listed[0]
                .as_str()
                .unwrap()
                .contains("app.log.2, with 3 bytes"),
            "{listed}"
        );
    }
    let rest = ingest_ok(&s, "t.db", &["--source", "file:app.log.2"]);
    assert_eq!(u(&rest, "stored"), 1, "the line left: {rest}");
    let out = ingest(&s, "t.db", &["--source", log]);
    assert!(!out.stderr.contains("WARN"), "read now:\n{}", out.stderr);
    assert_eq!(json(&out)["unread_elsewhere"], serde_json::json!([]));
}

/// A file renamed between two runs (rotated while pc-host was not running) is still the input
/// it was, where the file system records birth times: the run given its new name resumes it,
/// says so, and stores no line twice; the input's path becomes the new name.
#[test]
fn a_file_renamed_between_runs_resumes_where_it_was_committed() {
    let s = Scratch::new("ingest-renamed");
    let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
    std::fs::write(s.path("app.log"), &text).unwrap();
    if std::fs::metadata(s.path("app.log"))
        .and_then(|m| m.created())
        .is_err()
    {
        common::skip("this file system records no birth times");
        return;
    }
    let first = ingest_ok(
        &s,
        "t.db",
        &["--source", "file:app.log", "--messages", "40"],
    );
    assert_eq!(u(&first, "stored"), 40, "{first}");
    std::fs::rename(s.path("app.log"), s.path("app.log.1")).unwrap();
    let out = ingest(&s, "t.db", &["--source", "file:app.log.1"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("app.log.1: the file read before as")
            && out.stderr.contains("resuming it after line 40"),
        "{}",
        out.stderr
    );
    assert_eq!(u(&json(&out), "stored"), 60, "the rest, not the file again");
    let rows = common::all_rows(&s.path("t.db"));
    let seqs: Vec<i64> = rows.iter().map(|(_, seq, _)| *seq).collect();
    assert_eq!(
        seqs,
        (0..100).collect::<Vec<i64>>(),
        "each line once, in order"
    );
    let inputs = common::inputs(&s.path("t.db"));
    assert_eq!(inputs.len(), 1, "one input: {inputs:?}");
    assert!(inputs[0].1.ends_with("/app.log.1"), "{inputs:?}");
    assert_eq!(
        (inputs[0].3, inputs[0].4),
        (text.len() as i64, 100),
        "{inputs:?}"
    );
    // verify finds it under a newer name too, before any run has used that name.
    std::fs::rename(s.path("app.log.1"), s.path("app.log.2")).unwrap();
    common::assert_verify(
        s.dir(),
        &["verify", "--db", "t.db", "--source", "file:app.log.2"],
    );
    // Renamed again after a last line stored without its end: both lines say the run resumes
    // after the line before it, which it reads again whole.
    std::fs::write(s.path("app.log.2"), format!("{text}unended")).unwrap();
    assert_eq!(
        u(
            &ingest_ok(&s, "t.db", &["--source", "file:app.log.2"]),
            "stored"
        ),
        1
    );
    std::fs::rename(s.path("app.log.2"), s.path("app.log.3")).unwrap();
    std::fs::write(s.path("app.log.3"), format!("{text}unended, now ended\n")).unwrap();
    let out = ingest(&s, "t.db", &["--source", "file:app.log.3"]);
    assert!(
        out.stderr.contains("resuming it after line 100")
            && out.stderr.contains("after line 100\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_run_given_the_old_name_after_a_rotation_names_the_file_left_unread() {
    let s = Scratch::new("ingest-rotated-away");
    common::assert_rotation_names_the_file_left_unread(&s, |args| {
        ingest(&s, "t.db", &args.split(' ').collect::<Vec<_>>())
    });
}

/// stdin cannot be read again: at a signal, every whole line pc-host took from it is stored,
/// those in its read buffer included; a line the stop cut is given back (stdin is a regular
/// file here: its offset moves back to the line's start), and the rest stays in the input for
/// whoever reads it next. Stored rows plus what is left are the input, byte for byte, cut at a
/// line end.
#[test]
fn at_a_signal_every_line_taken_from_stdin_is_stored_and_the_rest_left_unread() {
    use std::io::Read as _;
    let s = Scratch::new("ingest-stdin-signal");
    let text: String = (0..2_000_000).map(|i| format!("{i}\n")).collect();
    std::fs::write(s.path("in.txt"), &text).unwrap();
    let args = [
        "--source",
        "-",
        "--db",
        "t.db",
        "--rps",
        "200000",
        "--report-interval",
        "0.05",
        "--output",
        "json",
    ];
    let (mut r, mut rest) = start_with_file_stdin(&s, "in.txt", &args);
    r.err.wait("showing messages stored", common::stored_some);
    common::signal(&r.child, libc::SIGINT);
    let out = common::finish(r);
    assert_eq!(out.code, Some(0));
    // The lines read ahead of the rate and queued at the stop are counted apart: what the
    // token bucket paced is no more than its rate allowed (it starts empty), give or take the
    // chunk a source may take as the stop comes (10 ms of tokens here, where the read-ahead
    // alone is several times that).
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("the JSON summary");
    let paced = u(&v, "produced") - u(&v, "unpaced");
    let allowed = 200_000.0 * (v["producing_s"].as_f64().unwrap() + 0.010);
    assert!(paced as f64 <= allowed, "{paced} paced in {v}");
    let mut left = String::new();
    rest.read_to_string(&mut left).unwrap();
    assert!(!left.is_empty(), "stopped before the end of the input");
    let stored: Vec<String> = common::all_rows(&s.path("t.db"))
        .into_iter()
        .map(|(_, _, line)| line)
        .collect();
    let joined = stored.join("\n");
    let whole_lines = format!("{joined}\n{left}");
    assert!(
        text == whole_lines,
        "{} rows stored and {} bytes left do not make the input back (last row {:?}, left \
         starts {:?})",
        stored.len(),
        left.len(),
        stored.last(),
        &left[..left.len().min(20)]
    );
}

/// `--messages` is shared by the sources: one that finds nothing left while another holds the
/// rest in a claim waits for what that one gives back at the end of its file, instead of
/// ending with its own file unread (the run then stopped at `eof` short of N, or a followed
/// file was never read). Repeated: the two sources race for the budget.
#[test]
fn messages_over_several_files_reads_on_until_n() {
    let s = Scratch::new("ingest-messages-shared");
    write(
        &s.path("a.log"),
        (1..=100).map(|i| format!("a{i}\n")).collect::<String>(),
    );
    write(
        &s.path("b.log"),
        (1..=100).map(|i| format!("b{i}\n")).collect::<String>(),
    );
    for round in 0..10 {
        let db = format!("t{round}.db");
        let out = ingest(
            &s,
            &db,
            &[
                "--source",
                "file:a.log",
                "--source",
                "file:b.log",
                "--messages",
                "150",
            ],
        );
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let v = json(&out);
        assert_eq!(
            (u(&v, "stored"), v["stop_reason"].as_str()),
            (150, Some("messages")),
            "round {round}: {v}"
        );
    }
}

/// A stop within a `--messages` budget takes the lines read ahead only up to the budget, and
/// leaves a regular-file stdin just after line N, as `head -n N` would: the lines past the
/// budget are given back, not skipped.
#[test]
fn a_stop_with_messages_leaves_a_file_stdin_just_after_line_n() {
    use std::io::Read as _;
    let s = Scratch::new("ingest-stdin-stop-budget");
    let text: String = (1..=200_000).map(|i| format!("{i}\n")).collect();
    std::fs::write(s.path("in.txt"), &text).unwrap();
    let args = [
        "--source",
        "-",
        "--db",
        "t.db",
        "--messages",
        "1000",
        "--rps",
        "100",
        "--report-interval",
        "0.05",
        "--output",
        "json",
    ];
    let (mut r, mut rest) = start_with_file_stdin(&s, "in.txt", &args);
    r.err.wait("showing messages stored", common::stored_some);
    let out = r.interrupt();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(u(&json(&out), "stored"), 1000);
    let mut left = String::new();
    rest.read_to_string(&mut left).unwrap();
    assert!(
        left.starts_with("1001\n"),
        "left starts {:?}",
        &left[..left.len().min(20)]
    );
    assert_eq!(left.len(), text.len() - text.find("1001\n").unwrap());
}

/// The input's own last line, without a line end, is no line the stop cut: a stop that comes
/// while it waits in the read buffer (a slow rate here) stores it whole, as EOF would, once
/// the input has ended (the pipe closed, or a file read to its end).
#[test]
fn a_stop_before_the_last_line_of_an_ended_stdin_is_taken_stores_it_whole() {
    let s = Scratch::new("ingest-stdin-last-at-stop");
    let mut r = common::Running::start_piped(
        &s,
        &[
            "--source",
            "-",
            "--db",
            "t.db",
            "--rps",
            "1",
            "--report-interval",
            "0.05",
            "--output",
            "json",
        ],
    );
    let mut stdin = r.child.stdin.take().expect("stdin");
    stdin.write_all(b"1\n2\n3").unwrap();
    drop(stdin);
    r.err.wait("showing a record stored", common::stored_some);
    let out = r.interrupt();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = json(&out);
    assert_eq!((u(&v, "stored"), u(&v, "rejected")), (3, 0), "{v}");
    let stored: Vec<String> = common::all_rows(&s.path("t.db"))
        .into_iter()
        .map(|(_, _, line)| line)
        .collect();
    assert_eq!(stored, ["1", "2", "3"]);
}

/// On a pipe, the part of a line pc-host had read when the run stopped cannot be given back:
/// it is no row (its text ends wherever a read happened to end), but a rejected line, set
/// aside in the dead-letter file with its bytes; the rest of the line stays in the pipe.
/// Stored rows, the part and what is left are the input, byte for byte.
#[test]
fn a_line_cut_by_the_stop_on_a_stdin_pipe_is_set_aside_not_stored_as_a_row() {
    use std::io::{Read as _, Write as _};
    let s = Scratch::new("ingest-stdin-cut");
    let (reader, mut writer) = std::io::pipe().unwrap();
    // The test keeps a read end: what pc-host leaves in the pipe is still there after it.
    let mut rest = reader.try_clone().unwrap();
    let mut cmd = common::pc_host(s.dir());
    cmd.args([
        "--source",
        "-",
        "--db",
        "t.db",
        "--dead-letter",
        "dl.jsonl",
        "--report-interval",
        "0.05",
        "--output",
        "json",
    ])
    .stdin(reader);
    let mut r = common::start_command(cmd);
    // Whole lines and the start of one more, in one write (below the pipe's atomic size):
    // pc-host's one read takes them all.
    let whole: String = (0..100).map(|i| format!("{i}\n")).collect();
    writer
        .write_all(format!("{whole}half-").as_bytes())
        .unwrap();
    r.err.wait("showing the 100 lines stored", |l| {
        l.starts_with('[') && l.contains("stored 100 ")
    });
    let out = r.interrupt();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    writer.write_all(b"written later\n").unwrap();
    drop(writer);
    let mut left = String::new();
    rest.read_to_string(&mut left).unwrap();
    assert_eq!(
        left, "written later\n",
        "the rest of the line stays in the pipe"
    );
    let stored: Vec<String> = common::all_rows(&s.path("t.db"))
        .into_iter()
        .map(|(_, _, line)| line)
        .collect();
    assert_eq!(
        stored.len(),
        100,
        "no row for the part: {:?}",
        stored.last()
    );
    assert_eq!(format!("{}\n", stored.join("\n")), whole);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("the JSON summary");
    assert_eq!((u(&v, "read"), u(&v, "rejected")), (101, 1), "{v}");
    let dl = std::fs::read_to_string(s.path("dl.jsonl")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(dl.lines().last().unwrap()).unwrap();
    assert_eq!(entry["record"], "half-", "{entry}");
    assert!(
        entry.to_string().contains("cut by the stop"),
        "the entry says why: {entry}"
    );
    assert!(
        out.stderr.contains("line 101 (cut by the stop"),
        "{}",
        out.stderr
    );
}

/// `verify` holds a completed stdin or file run to the counts its end recorded: rows deleted
/// since (beyond a last line a later run replaced), or records the run accepted and recorded
/// neither as stored nor as set aside, are problems (exit 1). Line numbers alone cannot show
/// them: a rejected line leaves its number unused.
#[test]
fn verify_finds_rows_gone_from_a_completed_stdin_or_file_run() {
    let s = Scratch::new("ingest-verify-counts");
    let lines: String = (1..=1000).map(|i| format!("{i}\n")).collect();
    write(&s.path("f.txt"), &lines);
    // A file whose last line has no end yet: stored, then replaced by the next run once the
    // line is complete. Run 1's row of it goes, and that is no problem.
    write(&s.path("g.txt"), "a\nb\nhal");
    let (out, _) = common::run_with_file_stdin(
        s.dir(),
        &["--source", "-", "--db", "t.db", "--report-interval", "0"],
        "f.txt",
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    ingest_ok(&s, "t.db", &["--source", "file:f.txt"]);
    ingest_ok(&s, "t.db", &["--source", "file:g.txt"]);
    let mut g = std::fs::OpenOptions::new()
        .append(true)
        .open(s.path("g.txt"))
        .unwrap();
    std::io::Write::write_all(&mut g, b"f\n").unwrap();
    ingest_ok(&s, "t.db", &["--source", "file:g.txt"]);
    let verify = |s: &Scratch| run(s.dir(), &["verify", "--db", "t.db"]);
    let out = verify(&s);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "run 3: ingest completed; 1 input, 2 rows; 1 row fewer than it stored: the last \
             line of an input another run read, stored without its end and replaced by that \
             run, or a row deleted (`verify --source file:PATH` checks line by line); each \
             input's lines stored at most once, its records all accounted for: OK"
        ),
        "the replaced last line is no problem, and said: {}",
        out.stdout
    );
    let conn = Connection::open(s.path("t.db")).expect("open db");
    // A stdin row is never replaced by a later run: one gone is a problem.
    conn.execute("DELETE FROM messages WHERE run_id = 1 AND seq = 500", [])
        .unwrap();
    let out = verify(&s);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "run 1: ingest completed; 1 input, 999 rows; PROBLEM: 1 of the 1000 rows the run \
             stored is gone"
        ),
        "{}",
        out.stdout
    );
    conn.execute(
        "DELETE FROM messages WHERE run_id IN (1, 2) AND seq BETWEEN 100 AND 199",
        [],
    )
    .unwrap();
    let out = verify(&s);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    for (run, rows, gone) in [(1, 899, 101), (2, 900, 100)] {
        assert!(
            out.stdout.contains(&format!(
                "run {run}: ingest completed; 1 input, {rows} rows; PROBLEM: {gone} of the 1000 \
                 rows the run stored are gone"
            )),
            "{}",
            out.stdout
        );
    }
    // A row copied over one deleted: the duplicate is a problem of its own and hides no row
    // that is gone.
    conn.execute(
        "INSERT INTO messages (run_id, producer, seq, message, created_at)
         SELECT run_id, producer, seq, message, created_at FROM messages
         WHERE run_id = 2 AND seq = 300",
        [],
    )
    .unwrap();
    let out = verify(&s);
    assert!(
        out.stdout.contains(
            "run 2: ingest completed; 1 input, 901 rows; PROBLEM: 1 duplicate row; 100 of the \
             1000 rows the run stored are gone"
        ),
        "{}",
        out.stdout
    );
    // A run whose end recorded fewer stored than it accepted, with nothing set aside.
    conn.execute("UPDATE runs SET stored = 995 WHERE run_id = 1", [])
        .unwrap();
    let out = verify(&s);
    assert!(
        out.stdout.contains(
            "run 1: ingest completed; 1 input, 899 rows; PROBLEM: the run accepted 1000 records \
             and recorded 995 stored, 0 dead-lettered and 0 not stored: 5 unaccounted for"
        ),
        "{}",
        out.stdout
    );
}

/// A run whose end recorded the rows it stored is held to that count: a row gone from a file
/// input that no later run read is a problem (only a later run replaces the row of a last line
/// stored without its end), and so are rows more than it stored, in an ingest run and in a
/// generated run that ended with an error.
#[test]
fn verify_holds_a_run_to_the_rows_its_end_recorded() {
    let s = Scratch::new("ingest-verify-recorded");
    let verify_db = |db: &str| run(s.dir(), &["verify", "--db", db]);
    let sql = |db: &str, sql: &str| {
        Connection::open(s.path(db))
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    };
    write(&s.path("f.txt"), numbered(0, 10, "a"));
    for db in ["gone.db", "more.db"] {
        ingest_ok(&s, db, &["--source", "file:f.txt"]);
    }
    sql("gone.db", "DELETE FROM messages WHERE seq = 4");
    let out = verify_db("gone.db");
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("9 rows; PROBLEM: 1 of the 10 rows the run stored is gone"),
        "{}",
        out.stdout
    );
    sql(
        "more.db",
        "INSERT INTO messages (run_id, producer, seq, message, created_at)
         SELECT run_id, producer, seq + 1000, 'made up', created_at FROM messages WHERE seq < 2",
    );
    let out = verify_db("more.db");
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("2 rows more than the 10 the run stored: the database was altered"),
        "{}",
        out.stdout
    );

    // A generated run that ended with an error (a record refused, no dead-letter file).
    let args = ["--db", "gen.db", "--producers", "1", "--messages", "1"];
    assert_eq!(run(s.dir(), &args).code, Some(0));
    sql(
        "gen.db",
        "CREATE TRIGGER no_50 BEFORE INSERT ON messages WHEN NEW.seq = 50
         BEGIN SELECT RAISE(ABORT, 'refused'); END",
    );
    let args = [
        "--db",
        "gen.db",
        "--producers",
        "1",
        "--messages",
        "100",
        "--rps",
        "0",
    ];
    assert_eq!(run(s.dir(), &args).code, Some(1));
    let out = verify_db("gen.db");
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("run 2: ended with an error; 1 producer, ")
            && out.stdout.contains(" produced, ")
            && out.stdout.contains("(gaps not matched one by one)"),
        "its end's counts, not 'what was accepted is unknown': {}",
        out.stdout
    );
    sql(
        "gen.db",
        "DELETE FROM messages WHERE run_id = 2 AND seq = 3",
    );
    let out = verify_db("gen.db");
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stdout.contains("rows the run stored is gone"),
        "{}",
        out.stdout
    );
}

/// The summary's `rejected` line says the rejected lines are in the dead-letter file only
/// when there are some: a run that rejects nothing does not point at a file it never made. The
/// `dead-lettered` line (records the sink did not store) then says the file holds them too, so
/// its 0 does not read as an empty file.
#[test]
fn the_rejected_line_points_at_the_dead_letter_file_only_when_lines_were_rejected() {
    let s = Scratch::new("ingest-rejected-where");
    write(&s.path("clean.log"), "a\nb\n");
    write(&s.path("dirty.log"), b"a\n\xff\n".as_slice());
    for (input, rejected) in [("clean.log", 0), ("dirty.log", 1)] {
        let source = format!("file:{input}");
        let args = [
            "--source",
            &source,
            "--db",
            "t.db",
            "--dead-letter",
            "dl.jsonl",
        ];
        let out = run(s.dir(), &args);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let line = common::summary_line(&out, "rejected");
        assert!(
            line.contains(&format!("rejected      {rejected} ")),
            "{line}"
        );
        assert_eq!(
            line.contains("in the dead-letter file"),
            rejected > 0,
            "{input}: {line}"
        );
        let line = common::summary_line(&out, "dead-lettered");
        assert!(line.contains("dead-lettered 0 "), "{line}");
        assert_eq!(
            line.contains("it also holds the 1 rejected"),
            rejected > 0,
            "{input}: {line}"
        );
    }
}
