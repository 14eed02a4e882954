//! A file ingest killed at any point (SIGKILL: no drain, no summary) and run again stores
//! every line exactly once, in file order: each transaction commits its rows with the byte
//! offset after its last line, and a re-run resumes there. A file that became shorter than
//! what was committed is read again from its start, its line numbers going on.
//!
//! No sleeps: the tests read the binary's progress lines to know how far it got.

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::sync::OnceLock;

use rusqlite::Connection;

use common::{Rng, Running, Scratch, all_rows, assert_verify, ingest_json, inputs, json, u};

/// Lines in the file the kill tests ingest.
const LINES: usize = 400_000;

// ---------------------------------------------------------------------------------------------
// The input file

/// A deterministic file of varied lines: the bytes, each line's text as it must be stored,
/// and the byte offset just after each line.
struct Data {
    bytes: Vec<u8>,
    texts: Vec<String>,
    ends: Vec<u64>,
}

impl Data {
    /// `n` lines: numbered words of mixed scripts, quotes, backslashes and tabs, empty and
    /// blank lines, some CRLF line ends, and a last line without a line end.
    fn new(n: usize) -> Self {
        const WORDS: [&str; 20] = [
            "alpha",
            "beta",
            "GAMMA",
            "δέλτα",
            "漢字",
            "🚀",
            "naïve",
            "\"quoted\"",
            "back\\slash",
            "tab\there",
            "{\"k\": [1, 2]}",
            "x",
            "-",
            "0123456789",
            "Ωmega",
            "  ",
            "end.",
            "ümlaut",
            "'single'",
            "a,b;c",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut data = Self {
            bytes: Vec::with_capacity(n * 80),
            texts: Vec::with_capacity(n),
            ends: Vec::with_capacity(n),
        };
        for i in 0..n {
            let r = rng.next();
            let last = i + 1 == n;
            let text = match r % 100 {
                _ if last => format!("{i} the last line, without a line end"),
                0 | 1 => String::new(),
                2 => " \t ".to_string(),
                _ => {
                    let mut t = i.to_string();
                    for _ in 0..rng.next() % 13 {
                        t.push(' ');
                        t.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
                    }
                    t
                }
            };
            let end: &[u8] = match (r / 100) % 64 {
                _ if last => b"",
                0 => b"\r\n",
                _ => b"\n",
            };
            data.bytes.extend_from_slice(text.as_bytes());
            data.bytes.extend_from_slice(end);
            data.ends.push(data.bytes.len() as u64);
            data.texts.push(text);
        }
        data
    }

    /// The byte offset after the first `k` lines.
    fn offset_after(&self, k: usize) -> u64 {
        if k == 0 { 0 } else { self.ends[k - 1] }
    }
}

// ---------------------------------------------------------------------------------------------
// The database

/// Asserts the database holds exactly the first `k` lines of `data`, each once, in file order,
/// as input 1, with the committed position just after line `k`; returns `k`.
fn committed_prefix(db: &Path, file: &Path, data: &Data) -> usize {
    let conn = Connection::open(db).expect("open db");
    let mut stmt = conn
        .prepare("SELECT producer, seq, message FROM messages ORDER BY id")
        .expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    let mut k = 0;
    while let Some(row) = rows.next().expect("row") {
        let (producer, seq): (i64, i64) = (row.get(0).unwrap(), row.get(1).unwrap());
        let message = row.get_ref(2).unwrap().as_str().expect("text");
        let want = data.texts.get(k).map(String::as_str);
        assert!(
            producer == 1 && seq == k as i64 && Some(message) == want,
            "row {} is (input {producer}, seq {seq}, {message:?}); expected line {k} of input \
             1: {want:?}",
            k + 1
        );
        k += 1;
    }
    let ino = std::fs::metadata(file).unwrap().ino() as i64;
    assert_eq!(
        inputs(db),
        [(
            1,
            file.display().to_string(),
            ino,
            data.offset_after(k) as i64,
            k as i64
        )],
        "the committed position is the end of the last stored line ({k} rows)"
    );
    k
}

// ---------------------------------------------------------------------------------------------
// The kill-and-resume scenario

/// Ingests `data` (as `name/input.log`) with `killed` runs (each with its extra flags),
/// SIGKILLed once a progress line shows at least their point stored, then one run to the end;
/// checks after each kill that exactly a prefix of the file is committed, and at the end that
/// the whole file is, once (and, with `verify`, that `pc-host verify` agrees).
fn kill_then_resume(name: &str, data: &Data, killed: &[(u64, &[&str])], verify: bool) {
    let s = Scratch::new(name);
    let file = s.path("input.log");
    std::fs::write(&file, &data.bytes).unwrap();
    let db = s.path("ingest.db");
    let (file_s, db_s) = (file.display().to_string(), db.display().to_string());
    let source = format!("file:{file_s}");
    let n = data.texts.len();

    let mut k = 0; // lines committed so far
    for &(point, extra) in killed {
        let mut args = vec![
            "--source",
            &source,
            "--db",
            &db_s,
            "--rps",
            "300000",
            "--report-interval",
            "0.02",
            "--consumers",
            "2",
        ];
        args.extend_from_slice(extra);
        let mut r = Running::start(&s, &args);
        // The header says where it resumes: right after the last committed line.
        let start = if k == 0 {
            format!("input 1: {file_s} from the start")
        } else {
            format!(
                "input 1: {file_s} resuming at byte {}, after line {k}",
                data.offset_after(k)
            )
        };
        r.err.wait(&format!("{start:?}"), |l| l.contains(&start));
        let seen = r.err.wait_stored_at_least(point);
        let status = r.kill();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "the run should still be reading when killed (progress showed stored {seen}), \
             but it ended: {status}"
        );
        let now = committed_prefix(&db, &file, data);
        assert!(
            now >= k + seen as usize,
            "the progress line showed {seen} stored by this run, but only {} rows were added",
            now - k
        );
        assert!(
            now < n,
            "the killed run stored the whole file: kill earlier"
        );
        k = now;
    }

    // The last run reads the rest to the end of the file.
    let out = ingest_json(s.dir(), &source, &db_s);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["stop_reason"], "eof");
    let rest = (n - k) as u64;
    assert_eq!(
        (u(&v, "produced"), u(&v, "stored"), u(&v, "read")),
        (rest, rest, rest),
        "the resumed run reads and stores only the lines after the committed ones"
    );
    let input = &v["inputs"][0];
    assert_eq!(input["input_id"], 1, "{v}");
    let resumed = u(input, "resumed_offset");
    assert!(resumed > 0, "the killed runs committed {k} lines: {input}");
    assert_eq!(
        resumed,
        data.offset_after(k),
        "it resumes exactly after the {k} committed lines (a line boundary)"
    );
    assert_eq!(u(input, "resumed_line"), k as u64, "{input}");
    assert_eq!(
        u(&v, "read_bytes"),
        data.bytes.len() as u64 - resumed,
        "{v}"
    );

    // Every line exactly once, in file order; the position at the end of the file.
    assert_eq!(committed_prefix(&db, &file, data), n);
    assert_eq!(
        inputs(&db)[0].3,
        data.bytes.len() as i64,
        "the committed offset is the file size"
    );
    if verify {
        assert_verify(s.dir(), &["verify", "--db", &db_s, "--source", &source]);
        assert_verify(s.dir(), &["verify", "--db", &db_s]);
        // The killed runs recorded no counts: verify says what it could check of them.
        let out = common::run(s.dir(), &["verify", "--db", &db_s]);
        let run_1 = out.stdout.lines().find(|l| l.contains("run 1: "));
        assert!(
            run_1.is_some_and(|l| l.contains("run 1: ingest did not finish; 1 input, ")
                && l.contains("rows (checked for duplicates only: what was accepted is unknown)")),
            "{}",
            out.stdout
        );
    }
}

/// The file of the kill tests, built once.
fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| Data::new(LINES))
}

#[test]
fn file_ingest_is_exactly_once_across_kill() {
    let data = data();
    // Killed right after the first commit, early, and late; once with a second killed run.
    // Each on its own database, at the same time.
    std::thread::scope(|scope| {
        scope.spawn(|| kill_then_resume("kill-first", data, &[(1, &[])], true));
        scope.spawn(|| {
            kill_then_resume(
                "kill-early-twice",
                data,
                &[(100_000, &[]), (50_000, &[])],
                true,
            );
        });
        scope.spawn(|| kill_then_resume("kill-late", data, &[(250_000, &[])], true));
    });
}

#[test]
fn a_run_killed_among_many_small_transactions_resumes_exactly_once() {
    let data = data();
    let tiny: &[&str] = &["--batch-size", "7", "--capacity", "64"];
    // The database is checked row by row against the file; `verify` is tested above.
    kill_then_resume("kill-tiny", data, &[(20_000, tiny), (5_000, tiny)], false);
}

/// A file rewritten in place, as long as before, with fewer lines before the committed
/// position, is compared from its first line: the rows that no longer match are a problem.
/// (Its rows were all excused as the content of a file cut short, and the result was OK.)
#[test]
fn a_file_rewritten_in_place_with_fewer_lines_is_compared_as_it_is() {
    let s = Scratch::new("rewritten");
    let file = s.path("app.log");
    std::fs::write(&file, "a\nb\nc\n").unwrap();
    let source = format!("file:{}", file.display());
    let out = ingest_json(s.dir(), &source, "t.db");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let ino = std::fs::metadata(&file).unwrap().ino();
    std::fs::write(&file, "zzzzzzzzzzzz\n").unwrap();
    assert_eq!(
        std::fs::metadata(&file).unwrap().ino(),
        ino,
        "the same file"
    );
    let out = common::run(s.dir(), &["verify", "--db", "t.db", "--source", &source]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("PROBLEM"), "{}", out.stdout);
    assert!(!out.stdout.contains("numbered from"), "{}", out.stdout);
}

/// A file truncated in place and written past its committed offset between two runs (a
/// `copytruncate` rotation of a busy log): the offset no longer follows a line end, so the
/// run reads the file from its start instead of from mid-line (it stored the new text after
/// the offset, from a fragment of a line on, and never its start), numbering on.
#[test]
fn a_file_rewritten_in_place_past_its_committed_offset_is_read_from_its_start() {
    let s = Scratch::new("refilled");
    let file = s.path("app.log");
    let source = format!("file:{}", file.display());
    let old = ["first version, line 0", "first version, line 1"];
    std::fs::write(&file, old.map(|l| format!("{l}\n")).concat()).unwrap();
    let out = ingest_json(s.dir(), &source, "t.db");
    assert_eq!(u(&json(&out), "stored"), 2, "{}", out.stderr);
    let ino = std::fs::metadata(&file).unwrap().ino();

    let new = ["second version of the file, a much longer line 0", "line 1"];
    std::fs::write(&file, new.map(|l| format!("{l}\n")).concat()).unwrap();
    assert_eq!(
        std::fs::metadata(&file).unwrap().ino(),
        ino,
        "the same file"
    );
    let out = ingest_json(s.dir(), &source, "t.db");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("rewritten in place since it was read")
            && out.stderr.contains("reading it from the start"),
        "{}",
        out.stderr
    );
    let v = json(&out);
    let input = &v["inputs"][0];
    assert_eq!(
        (u(input, "resumed_offset"), u(input, "resumed_line")),
        (0, 2),
        "{input}"
    );
    let want: Vec<(i64, i64, String)> = old
        .iter()
        .chain(&new)
        .enumerate()
        .map(|(i, t)| (1, i as i64, (*t).to_string()))
        .collect();
    assert_eq!(all_rows(&s.path("t.db")), want);
    let out = common::run(s.dir(), &["verify", "--db", "t.db", "--source", &source]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("lines numbered from 3 on"),
        "{}",
        out.stdout
    );
}

/// The same with fixed-width lines (a line end falls at the committed offset in the new text
/// too), and with a last line stored without its end (its bytes hold no line end in the new
/// text either): only the mark committed with the offset, of the bytes read before it, tells
/// the new text from the old. The stored fragment keeps its row; nothing is replaced by new
/// text.
#[test]
fn a_rewrite_a_line_end_cannot_show_is_told_by_the_mark_of_the_bytes_before_the_offset() {
    let s = Scratch::new("marked");
    let file = s.path("app.log");
    let source = format!("file:{}", file.display());
    let lines =
        |tag: &str, n: usize| -> Vec<String> { (1..=n).map(|i| format!("{tag}{i:04}")).collect() };
    for (case, old, new) in [
        (
            "fixed",
            lines("old", 10).join("\n") + "\n",
            lines("NEW", 20).join("\n") + "\n",
        ),
        (
            "fragment",
            lines("old", 3).join("\n"),
            lines("NEW", 6).join("\n") + "\n",
        ),
    ] {
        let db = format!("{case}.db");
        std::fs::write(&file, &old).unwrap();
        let out = ingest_json(s.dir(), &source, &db);
        assert_eq!(out.code, Some(0), "{case}: {}", out.stderr);
        std::fs::write(&file, &new).unwrap();
        let out = ingest_json(s.dir(), &source, &db);
        assert_eq!(out.code, Some(0), "{case}: {}", out.stderr);
        assert!(
            out.stderr.contains("rewritten in place since it was read"),
            "{case}: {}",
            out.stderr
        );
        let want: Vec<(i64, i64, String)> = old
            .lines()
            .chain(new.lines())
            .enumerate()
            .map(|(i, t)| (1, i as i64, t.to_string()))
            .collect();
        assert_eq!(all_rows(&s.path(&db)), want, "{case}");
    }
}

/// A file started over whose new text makes no record (every line rejected), read past the
/// committed offset: the run's final position moves the input on by itself, and the row of
/// the earlier text's last line, stored without its end, stays.
#[test]
fn a_start_over_that_stores_nothing_keeps_the_earlier_texts_last_line() {
    let s = Scratch::new("restart-rejected");
    let file = s.path("app.log");
    let source = format!("file:{}", file.display());
    std::fs::write(&file, "one\nabc").unwrap();
    assert_eq!(
        u(&json(&ingest_json(s.dir(), &source, "t.db")), "stored"),
        2
    );
    std::fs::write(&file, b"\xff\xfe not UTF-8, and longer than before\n").unwrap();
    let out = ingest_json(s.dir(), &source, "t.db");
    assert!(out.stderr.contains("rewritten in place"), "{}", out.stderr);
    assert_eq!(u(&json(&out), "rejected"), 1, "{}", out.stderr);
    let rows = all_rows(&s.path("t.db"));
    assert_eq!(rows, [(1, 0, "one".into()), (1, 1, "abc".into())]);
}

/// A file started over whose first new line the database refuses (set aside in the
/// dead-letter file): the start over still reaches the input's position, so the row of the
/// earlier text's last line, stored without its end, stays, though no record committed after
/// it says the input started over.
#[test]
fn a_start_over_whose_first_line_is_refused_keeps_the_earlier_texts_last_line() {
    let s = Scratch::new("restart-refused");
    let file = s.path("app.log");
    let source = format!("file:{}", file.display());
    std::fs::write(&file, "one\nabc").unwrap();
    assert_eq!(
        u(&json(&ingest_json(s.dir(), &source, "t.db")), "stored"),
        2
    );
    Connection::open(s.path("t.db"))
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER no_poison BEFORE INSERT ON messages
             WHEN NEW.message = 'poison' BEGIN SELECT RAISE(ABORT, 'poison refused'); END",
        )
        .unwrap();
    std::fs::write(&file, "poison\nxyz\n").unwrap();
    let dead = s.path("dead.jsonl").display().to_string();
    let out = common::run(
        s.dir(),
        &[
            "--source",
            &source,
            "--db",
            "t.db",
            "--dead-letter",
            &dead,
            "--output",
            "json",
        ],
    );
    assert!(out.stderr.contains("rewritten in place"), "{}", out.stderr);
    let v = json(&out);
    assert_eq!(
        (u(&v, "stored"), u(&v, "dead_lettered")),
        (1, 1),
        "{}",
        out.stderr
    );
    let rows = all_rows(&s.path("t.db"));
    assert_eq!(
        rows,
        [
            (1, 0, "one".into()),
            (1, 1, "abc".into()),
            (1, 3, "xyz".into())
        ]
    );
    assert_verify(s.dir(), &["verify", "--db", "t.db", "--source", &source]);
}

/// A writer that sets the file's size before its text: a run read the last line as NULs and
/// stored it without its end; the text filled in later, a line end inside, is that line
/// completed, not a rewrite.
#[test]
fn a_last_line_read_as_nuls_and_filled_in_later_is_completed_not_read_again() {
    let nuls = [&b"a1\n"[..], &[0u8; 21]].concat();
    let filled = "a1\nhello-world-12345678\nb2\n";
    assert_last_line_read_again_alone("nul-filled", &nuls, filled);
}

/// A last line stored without its end that its writer rewrote in place before ending it (a
/// progress line): the bytes before it are as they were, so the run reads that line again
/// whole and replaces its row, and reads nothing before it again.
#[test]
fn a_last_line_rewritten_before_its_end_is_read_again_alone() {
    let done = "a1\nprogress 100%, done\nb2\n";
    assert_last_line_read_again_alone("progress", b"a1\nprogress 50%", done);
}

/// A run stores `first` (its last line without its end); the file becomes `then`, the same
/// first line: the next run says no rewrite, and the rows are `then`'s lines, the stored last
/// line's row replaced by that line whole.
fn assert_last_line_read_again_alone(name: &str, first: &[u8], then: &str) {
    let s = Scratch::new(name);
    let file = s.path("app.log");
    let source = format!("file:{}", file.display());
    std::fs::write(&file, first).unwrap();
    let out = ingest_json(s.dir(), &source, "t.db");
    assert_eq!(u(&json(&out), "stored"), 2, "{}", out.stderr);
    std::fs::write(&file, then).unwrap();
    let out = ingest_json(s.dir(), &source, "t.db");
    assert!(!out.stderr.contains("rewritten"), "{}", out.stderr);
    let want: Vec<(i64, i64, String)> = (0..)
        .zip(then.lines())
        .map(|(i, t)| (1, i, t.into()))
        .collect();
    assert_eq!(all_rows(&s.path("t.db")), want);
}

#[test]
fn a_file_shorter_than_its_committed_offset_is_read_again_and_its_line_numbers_go_on() {
    let s = Scratch::new("shrunk");
    let file = s.path("app.log");
    let db = s.path("ingest.db");
    let (file_s, db_s) = (file.display().to_string(), db.display().to_string());
    let source = format!("file:{file_s}");
    let ingest = |s: &Scratch| {
        let out = ingest_json(s.dir(), &source, &db_s);
        assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
        let v = json(&out);
        assert_eq!(v["ok"], true, "{v}");
        (v, out.stderr)
    };

    let old: Vec<String> = (0..10)
        .map(|i| format!("first version of the file, line {i}"))
        .collect();
    std::fs::write(
        &file,
        old.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let ino = std::fs::metadata(&file).unwrap().ino();
    let (v, _) = ingest(&s);
    assert_eq!(u(&v, "stored"), 10);

    // Rewritten in place (same inode), shorter than what was committed.
    let new = ["second version, 0", "second version, 1", "second, 2", "end"];
    let new_bytes: String = new.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, &new_bytes).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().ino(), ino, "same file");
    let (v, stderr) = ingest(&s);
    assert!(
        stderr.contains("truncated") && stderr.contains("reading it from the start"),
        "a warning says the file is read again from the start:\n{stderr}"
    );
    assert_eq!(u(&v, "stored"), 4, "{v}");
    let input = &v["inputs"][0];
    assert_eq!(input["input_id"], 1, "the same input: {input}");
    assert_eq!(
        (u(input, "resumed_offset"), u(input, "resumed_line")),
        (0, 10),
        "read from byte 0, numbered after the 10 lines already stored: {input}"
    );

    // The old rows stay; the new lines follow them with the next line numbers, not 0..4.
    let expected: Vec<(i64, i64, String)> = old
        .iter()
        .map(String::as_str)
        .chain(new)
        .enumerate()
        .map(|(i, t)| (1, i as i64, t.to_string()))
        .collect();
    assert_eq!(all_rows(&db), expected);
    assert_eq!(
        inputs(&db),
        [(1, file_s.clone(), ino as i64, new_bytes.len() as i64, 14)]
    );
    assert_verify(s.dir(), &["verify", "--db", &db_s]);
    // The file against its rows: its lines are numbers 10.., and rows 0..10 hold its earlier
    // content (verify --source found those 10 rows beyond the file's end, for good).
    let verify_source = || {
        let out = common::run(s.dir(), &["verify", "--db", &db_s, "--source", &source]);
        assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
        out.stdout
    };
    let said = verify_source();
    assert!(
        said.contains("4 lines: 4 stored in file order")
            && said.contains("lines numbered from 11 on")
            && said.contains("10 rows of its earlier content"),
        "{said}"
    );

    // Nothing is read twice afterwards: a third run resumes at the end.
    let (v, stderr) = ingest(&s);
    assert!(!stderr.contains("truncated"), "{stderr}");
    assert_eq!(u(&v, "stored"), 0, "{v}");
    assert_eq!(u(&v["inputs"][0], "resumed_offset"), new_bytes.len() as u64);
    assert_eq!(all_rows(&db).len(), 14);

    // Cut short again, not read since: what it holds now is unread, numbered from 14 on.
    std::fs::write(&file, "third\n").unwrap();
    let said = verify_source();
    assert!(
        said.contains("lines numbered from 15 on")
            && said.contains("14 rows of its earlier content")
            && said.contains("not stored yet by any run"),
        "{said}"
    );
}
