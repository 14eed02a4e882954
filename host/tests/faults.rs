//! Faults in the sink mid-run: a lock held by another process, a full disk, a directory made
//! read-only, a record the database refuses, a kill during a retry, and signals from
//! `timeout`. Each test pins what becomes of every accepted message: stored once,
//! dead-lettered, or counted as not stored, and the database stays sound.
//!
//! The tests follow the binary through its stderr (progress lines, the retry warning); the
//! only sleeps hold a fault for its set length.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::OutputWithin as _;
use common::{
    Out, Running, Scratch, all_rows, assert_verify, expected_pairs, finish, hold_write_lock,
    ingest_json, integrity_check, json, pairs, recorded, u,
};
use serde_json::Value;

/// The entries of a dead-letter file, one JSON object a line.
fn dead_letters(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read the dead-letter file");
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("dead-letter line is not JSON ({e}): {l}"));
            assert_eq!(v["pc_dead_letter"], 1, "not marked as an entry: {l}");
            v
        })
        .collect()
}

/// The (producer, seq) of a generated message's dead-letter entry.
fn generated_source(e: &Value) -> (i64, i64) {
    let p = e["source"]["producer"].as_i64();
    let s = e["source"]["seq"].as_i64();
    match (p, s) {
        (Some(p), Some(s)) => (p, s),
        _ => panic!("entry without source.producer and source.seq: {e}"),
    }
}

/// Asserts the database rows and the dead-letter entries of a generated run are disjoint and
/// together are every message produced, each once.
fn assert_stored_and_dead_lettered_once(db: &Path, run_id: i64, entries: &[Value], produced: u64) {
    let stored = pairs(db, run_id);
    let stored_set: HashSet<(i64, i64)> = stored.iter().copied().collect();
    assert_eq!(stored_set.len(), stored.len(), "a message stored twice");
    let dead: Vec<(i64, i64)> = entries.iter().map(generated_source).collect();
    let dead_set: HashSet<(i64, i64)> = dead.iter().copied().collect();
    assert_eq!(dead_set.len(), dead.len(), "a message dead-lettered twice");
    let both: Vec<_> = stored_set.intersection(&dead_set).take(5).collect();
    assert!(both.is_empty(), "stored and dead-lettered: {both:?}");
    assert_eq!(
        (stored.len() + dead.len()) as u64,
        produced,
        "database rows + dead-letter entries"
    );
}

/// A figure of the text summary: the first number after `label` at the start of a line.
fn text_figure(out: &Out, label: &str) -> u64 {
    out.stdout
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{label} N` line in the summary:\n{}", out.stdout))
}

/// The user the permission tests run pc-host as: one that may not do what root may.
const NOBODY: u32 = 65534;

/// Whether this test may run pc-host as [`NOBODY`] (it runs as root); prints its SKIP line if
/// not.
fn can_run_as_nobody() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() == 0 };
    if !root {
        common::skip("needs root to run pc-host as another user (nobody)");
    }
    root
}

/// pc-host in `dir`, to run as [`NOBODY`].
fn pc_host_as_nobody(dir: &Path) -> Command {
    let mut cmd = common::pc_host(dir);
    cmd.uid(NOBODY).gid(NOBODY);
    cmd
}

/// A generated run at 2000 msg/s that only ends when told to, with progress lines to follow.
const STEADY: [&str; 10] = [
    "--producers",
    "2",
    "--consumers",
    "2",
    "--rps",
    "2000",
    "--duration",
    "600",
    "--report-interval",
    "0.05",
];

fn args<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(extra).copied().collect()
}

#[test]
fn a_lock_held_shorter_than_retry_for_is_waited_out_and_every_message_stored_once() {
    // The fault's length. The first message due after the lock is taken is due within 0.5 ms
    // (2000 msg/s), so its latency is at least HOLD - 0.5 ms: over 3 s.
    const HOLD: Duration = Duration::from_millis(3100);
    let s = Scratch::new("lock-waited-out");
    let mut r = Running::start(
        &s,
        &args(
            &STEADY,
            &[
                "--busy-timeout-ms",
                "200",
                "--retry-for",
                "30",
                "--output",
                "json",
            ],
        ),
    );
    r.err.wait_stored_at_least(1);
    let db = s.path("pc-host.db");
    let holder = hold_write_lock(&db);
    let locked = Instant::now();
    r.err.wait("saying the commit is retried", |l| {
        l.contains("retrying for up to")
    });
    r.err.wait("a progress line marked RETRYING", |l| {
        l.starts_with('[') && l.contains("| RETRYING: ") && l.contains("locked")
    });
    std::thread::sleep(HOLD.saturating_sub(locked.elapsed()));
    holder.execute_batch("ROLLBACK").unwrap();
    let recovered = r.err.wait("saying the sink recovered", |l| {
        l.contains("the sink recovered after")
    });
    let retries: u64 = recovered
        .split("recovered after ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no retry count in: {recovered}"));
    assert!(retries >= 1, "{recovered}");
    let out = r.interrupt();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = json(&out);
    assert_eq!((v["ok"].as_bool(), v["error"].as_str()), (Some(true), None));
    assert_eq!(v["stop_reason"], "signal");
    assert!(u(&v, "retries") >= retries, "{v}");
    let produced = u(&v, "produced");
    assert_eq!(
        (u(&v, "stored"), u(&v, "dead_lettered"), u(&v, "not_stored")),
        (produced, 0, 0)
    );
    let run_id = v["run_id"].as_i64().unwrap();
    let per = recorded(&db, run_id);
    assert_eq!(per.iter().sum::<i64>() as u64, produced);
    assert_eq!(
        pairs(&db, run_id),
        expected_pairs(&per),
        "every message once"
    );
    assert_verify(s.dir(), &["verify"]);
    let max = v["latency_ns"]["max"].as_u64().unwrap();
    assert!(
        max >= 3_000_000_000,
        "latency max {max} ns under the 3 s hold"
    );
}

/// Unmounts a tmpfs when dropped, also when the test fails.
struct Mount<'a>(&'a Path);

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
}

/// Mounts a 1 MiB tmpfs at `mnt` (a new directory), or prints SKIP and returns `None`.
fn small_tmpfs(mnt: &Path) -> Option<Mount<'_>> {
    std::fs::create_dir(mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(mnt)
        .output_within();
    match mounted {
        Ok(o) if o.status.success() => Some(Mount(mnt)),
        Ok(o) => {
            common::skip(format_args!(
                "cannot mount a 1 MiB tmpfs (needs root): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            None
        }
        Err(e) => {
            common::skip(format_args!("cannot run mount: {e}"));
            None
        }
    }
}

/// A stdin source whose dead-letter file fills up fails the run, and every line stdin gave
/// is in the counts, those still in pc-host's read buffer as well: every byte taken from
/// stdin is in `read_bytes`, and every line read is rejected, produced or not queued.
#[test]
fn stdin_lines_read_when_the_dead_letter_file_fails_are_all_counted() {
    let s = Scratch::new("dead-letter-full-stdin");
    let mnt = s.path("small");
    let Some(_mount) = small_tmpfs(&mnt) else {
        return;
    };
    // Every other line is over --max-record-bytes: rejected, and dead-lettered until the
    // 1 MiB file system is full.
    let input: String = (0..200_000)
        .map(|i| {
            if i % 2 == 0 {
                format!("ok {i}\n")
            } else {
                format!("long {i} {}\n", "x".repeat(40))
            }
        })
        .collect();
    std::fs::write(s.path("in.txt"), &input).unwrap();
    let (out, taken) = common::run_with_file_stdin(
        s.dir(),
        &[
            "--source",
            "-",
            "--db",
            "t.db",
            "--max-record-bytes",
            "20",
            "--dead-letter",
            "small/dead.jsonl",
            "--report-interval",
            "0",
            "--output",
            "json",
        ],
        "in.txt",
    );
    assert_eq!(
        out.code,
        Some(1),
        "the dead-letter file filled: {}",
        out.stderr
    );
    assert!(out.stderr.contains("dead-letter file"), "{}", out.stderr);
    let v = json(&out);
    assert!(taken < input.len() as u64, "the run read all of stdin: {v}");
    assert_eq!(
        u(&v, "read_bytes"),
        taken,
        "bytes taken from stdin in no count: {v}"
    );
    assert_eq!(
        u(&v, "read"),
        u(&v, "rejected") + u(&v, "produced") + u(&v, "not_queued"),
        "{v}"
    );
}

/// A stdin that fails mid-chunk (a socket reset by its peer): the lines read before the error
/// are counted as read, every byte taken is in `read_bytes`, and the records and rejected
/// lines it gave, which cannot be read again, go to the working dead-letter file rather than
/// being counted as lost.
#[test]
fn a_stdin_read_error_mid_chunk_counts_its_lines_and_dead_letters_them() {
    use std::io::Write as _;
    use std::os::fd::{AsRawFd as _, OwnedFd};
    let s = Scratch::new("stdin-reset");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (stdin, _) = listener.accept().unwrap();
    let input: &[u8] = b"one\ntwo\n\xff\xfe\nthree\npart";
    peer.write_all(input).unwrap();
    // Closed with a zero linger: a reset (RST) after the bytes, so that pc-host reads them and
    // then gets ECONNRESET.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a `linger` of the size given, read during the call only.
    let set = unsafe {
        libc::setsockopt(
            peer.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::from_ref(&linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "SO_LINGER");
    drop(peer);
    let out = common::pc_host(s.dir())
        .args([
            "--source",
            "-",
            "--db",
            "t.db",
            "--dead-letter",
            "dead.jsonl",
        ])
        .args(["--report-interval", "0", "--output", "json"])
        .stdin(OwnedFd::from(stdin))
        .output_within()
        .expect("run pc-host");
    let out = Out::from(out);
    assert_eq!(
        out.code,
        Some(1),
        "the read error fails the run: {}",
        out.stderr
    );
    assert!(out.stderr.contains("reading stdin"), "{}", out.stderr);
    let v = json(&out);
    common::assert_read_accounted(&v);
    assert_eq!(u(&v, "read_bytes"), input.len() as u64, "{v}");
    assert_eq!(u(&v, "produced"), 0, "{v}");
    assert!(u(&v, "not_queued") >= 3, "one, two and three: {v}");
    assert_eq!(
        u(&v, "not_queued"),
        u(&v, "not_queued_dead_lettered"),
        "{v}"
    );
    assert_eq!(u(&v, "rejected"), u(&v, "rejected_dead_lettered"), "{v}");
    let entries = dead_letters(&s.path("dead.jsonl"));
    assert_eq!(entries.len() as u64, u(&v, "read"), "{entries:?}");
    let texts: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["record"].as_str())
        .collect();
    for line in ["one", "two", "three"] {
        assert!(texts.contains(&line), "{line}: {entries:?}");
    }
    // The last line, its end never read: not said to stay in a stdin the error may have ended.
    let part = entries.iter().find(|e| e["record"] == "part");
    assert!(
        part.is_some_and(
            |e| e["error"] == "cut by the run's failure: the rest of the line was not read"
        ),
        "{entries:?}"
    );
}

/// Fills the file system at `mnt` with a file named `filler` (remove it to make room again).
fn fill_up(mnt: &Path) {
    let filler = vec![b'x'; 64 * 1024];
    let mut file = std::fs::File::create(mnt.join("filler")).unwrap();
    while std::io::Write::write_all(&mut file, &filler).is_ok() {}
}

#[test]
fn disk_full_retries_then_dead_letters_and_the_database_stays_sound() {
    let s = Scratch::new("disk-full");
    let mnt = s.path("small");
    let Some(_mount) = small_tmpfs(&mnt) else {
        return;
    };
    let out = common::run(
        s.dir(),
        &[
            "--db",
            "small/full.db",
            "--dead-letter",
            "dead.jsonl",
            "--rps",
            "20000",
            "--payload-size",
            "200",
            "--duration",
            "3",
            "--retry-for",
            "1",
            "--report-interval",
            "0",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let v = json(&out);
    assert_eq!(
        (v["ok"].as_bool(), v["stop_reason"].as_str()),
        (Some(false), Some("error"))
    );
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("gave up after retrying"), "{error}");
    assert!(error.contains("disk is full"), "{error}");
    assert!(u(&v, "retries") >= 1, "{v}");
    let (produced, stored, dead) = (u(&v, "produced"), u(&v, "stored"), u(&v, "dead_lettered"));
    assert!(dead > 0, "{v}");
    assert_eq!(
        u(&v, "not_stored"),
        0,
        "generated messages all dead-lettered: {v}"
    );
    assert_eq!(stored + dead, produced, "{v}");
    let db = s.path("small/full.db");
    assert_eq!(integrity_check(&db), "ok");
    let entries = dead_letters(&s.path("dead.jsonl"));
    assert_eq!(entries.len() as u64, dead);
    for e in &entries {
        let reason = e["reason"].as_str().unwrap();
        assert!(
            ["retries_exhausted", "sink_failed"].contains(&reason),
            "{e}"
        );
        assert!(e["record"].is_string(), "{e}");
    }
    let run_id = v["run_id"].as_i64().unwrap();
    assert_eq!(pairs(&db, run_id).len() as u64, stored);
    assert_stored_and_dead_lettered_once(&db, run_id, &entries, produced);
}

/// stdin cannot be read again: the lines a stdin source has read when the full disk fails the
/// run must not vanish with the torn-down source. Each line read is stored or in the
/// dead-letter file (a line the stop cut, as rejected), once.
#[test]
fn stdin_read_as_a_full_disk_fails_the_run_is_stored_or_dead_lettered_never_lost() {
    let s = Scratch::new("disk-full-stdin");
    let mnt = s.path("small");
    let Some(_mount) = small_tmpfs(&mnt) else {
        return;
    };
    let lines = 300_000u64;
    let input: String = (0..lines)
        .map(|i| format!("line {i:06} {}\n", "x".repeat(90)))
        .collect();
    let mut r = common::Running::start_piped(
        &s,
        &[
            "--source",
            "-",
            "--db",
            "small/full.db",
            "--dead-letter",
            "dead.jsonl",
            "--retry-for",
            "0.5",
            "--report-interval",
            "0",
            "--output",
            "json",
        ],
    );
    let mut stdin = r.child.stdin.take().expect("stdin");
    // pc-host stops reading once the sink fails: a broken pipe then ends the writer.
    let writer = std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut stdin, input.as_bytes());
    });
    let out = common::finish(r);
    writer.join().expect("the writer thread");
    assert_eq!(out.code, Some(1), "the disk filled: {}", out.stderr);
    let v = json(&out);
    assert_eq!(
        v["stop_reason"], "error",
        "the sink's failure, not the end of the sources it unblocked: {v}"
    );
    let (read, stored, dead) = (u(&v, "read"), u(&v, "stored"), u(&v, "dead_lettered"));
    let (not_queued, not_queued_dead) = (u(&v, "not_queued"), u(&v, "not_queued_dead_lettered"));
    // At most the one line the stop cut mid-line, its end unread in the pipe: rejected, and
    // kept with its bytes in the dead-letter file.
    let (rejected, rejected_dead) = (u(&v, "rejected"), u(&v, "rejected_dead_lettered"));
    assert!(rejected <= 1 && rejected == rejected_dead, "{v}");
    assert!(read > 0 && read <= lines, "{v}");
    assert_eq!(
        not_queued, not_queued_dead,
        "all kept by --dead-letter: {v}"
    );
    assert_eq!(
        stored + dead + not_queued_dead + rejected_dead,
        read,
        "every line read stored or dead-lettered: {v}"
    );
    let db = s.path("small/full.db");
    let run_id = v["run_id"].as_i64().unwrap();
    let mut seen: Vec<i64> = pairs(&db, run_id).into_iter().map(|(_, seq)| seq).collect();
    let entries = dead_letters(&s.path("dead.jsonl"));
    seen.extend(entries.iter().map(|e| {
        assert_eq!(e["source"]["input"], "stdin", "{e}");
        e["source"]["line"].as_i64().expect("a line number") - 1
    }));
    seen.sort_unstable();
    let expected: Vec<i64> = (0..read as i64).collect();
    assert!(
        seen == expected,
        "lines 0..{read} each stored or dead-lettered once: {} entries, first gaps or repeats \
         near {:?}",
        seen.len(),
        seen.windows(2).find(|w| w[1] != w[0] + 1)
    );
}

/// A run refused at its start by a full disk leaves no empty database or latency log of its
/// own behind: the next run, with room, found them and refused them as files pc-host did not
/// make.
#[test]
fn a_run_refused_by_a_full_disk_at_its_start_leaves_no_file_the_next_run_refuses() {
    let s = Scratch::new("full-at-start");
    let mnt = s.path("small");
    let Some(_mount) = small_tmpfs(&mnt) else {
        return;
    };
    fill_up(&mnt);
    let db_run = [
        "--db",
        "small/new.db",
        "--messages",
        "10",
        "--report-interval",
        "0",
    ];
    let log_run = [
        "--db",
        "ok.db",
        "--messages",
        "10",
        "--report-interval",
        "0",
        "--latency-log",
        "small/x.hlog",
    ];
    // Through a link out of the full disk into it: the file it leads to goes, not the link.
    std::os::unix::fs::symlink("small/target.db", s.path("linked.db")).unwrap();
    let link_run = [
        "--db",
        "linked.db",
        "--messages",
        "10",
        "--report-interval",
        "0",
    ];
    for args in [&db_run[..], &log_run[..], &link_run[..]] {
        let out = common::run(s.dir(), args);
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("full") || out.stderr.contains("No space"),
            "{args:?}: refused by the full disk: {}",
            out.stderr
        );
    }
    assert!(
        std::fs::symlink_metadata(s.path("linked.db")).is_ok(),
        "the link stays"
    );
    let mut left: Vec<_> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["filler"], "nothing of the refused runs left");
    std::fs::remove_file(mnt.join("filler")).unwrap();
    for args in [&db_run[..], &log_run[..], &link_run[..]] {
        let out = common::run(s.dir(), args);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
    }
    assert!(mnt.join("target.db").exists(), "made through the link");
}

/// An existing database whose disk filled up since: a run and `verify` both say the disk is
/// full (SQLite says "disk I/O error" when it cannot grow the `-shm` index), and with room
/// again the next run stores into it.
#[test]
fn an_existing_database_on_a_disk_filled_since_is_refused_as_a_full_disk() {
    let s = Scratch::new("full-existing");
    let mnt = s.path("small");
    let Some(_mount) = small_tmpfs(&mnt) else {
        return;
    };
    let run = [
        "--db",
        "small/t.db",
        "--messages",
        "10",
        "--report-interval",
        "0",
    ];
    assert_eq!(common::run(s.dir(), &run).code, Some(0));
    fill_up(&mnt);
    for args in [&run[..], &["verify", "--db", "small/t.db"][..]] {
        let out = common::run(s.dir(), args);
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("small/t.db: the disk is full"),
            "{args:?}: {}",
            out.stderr
        );
    }
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let out = common::run(s.dir(), &run);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// Rejected lines that the dead-letter file could not take (a full disk) are not reported as
/// in it, and are not lost: the file's position stays before them, so the next run, with
/// room for them, reads them again and sets them aside.
#[test]
fn rejected_lines_the_dead_letter_file_could_not_take_are_not_reported_as_in_it() {
    let s = Scratch::new("dead-letter-full");
    let mnt = s.path("small");
    let Some(_mount) = small_tmpfs(&mnt) else {
        return;
    };
    // Fill the tmpfs: the dead-letter file can be created there, not written.
    fill_up(&mnt);
    // 1,000 lines; every 100th is longer than --max-record-bytes and so rejected.
    let input: String = (0..1000)
        .map(|i| {
            let pad = if i % 100 == 50 { 40 } else { 4 };
            format!("line {i:04} {}\n", "y".repeat(pad))
        })
        .collect();
    std::fs::write(s.path("in.log"), input).unwrap();
    let ingest = |dead: &str, output: &str| {
        common::run(
            s.dir(),
            &[
                "--source",
                "file:in.log",
                "--max-record-bytes",
                "20",
                "--dead-letter",
                dead,
                "--report-interval",
                "0",
                "--output",
                output,
            ],
        )
    };
    let out = ingest("small/dead.jsonl", "json");
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let v = json(&out);
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("dead-letter file"), "{v}");
    assert!(u(&v, "rejected") >= 1, "{v}");
    assert_eq!(u(&v, "rejected_dead_lettered"), 0, "{v}");
    // The chunk the failed write held back is counted too: read again by the next run.
    assert!(u(&v, "not_queued_rereadable") >= 1, "{v}");
    common::assert_read_accounted(&v);

    // The text summary says the rejected lines are not in the file.
    let out = ingest("small/dead.jsonl", "text");
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let line = common::summary_line(&out, "rejected");
    assert!(
        line.contains("0 of them in the dead-letter file: the run stopped before writing the rest"),
        "{line}"
    );

    // With room for them, the next run reads them again: every line is stored once or set
    // aside.
    let out = ingest("dead.jsonl", "json");
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let v = json(&out);
    assert_eq!(u(&v, "rejected"), 10, "{v}");
    assert_eq!(u(&v, "rejected_dead_lettered"), 10, "{v}");
    assert_eq!(dead_letters(&s.path("dead.jsonl")).len(), 10);
    let texts: HashSet<String> = all_rows(&s.path("pc-host.db"))
        .into_iter()
        .map(|(_, _, text)| text)
        .collect();
    assert_eq!(texts.len(), 990, "every accepted line stored, none twice");
    assert_eq!(all_rows(&s.path("pc-host.db")).len(), 990);

    // From stdin, which cannot be read again: the failed run counts the records it held back
    // as not queued, and, the dead-letter file taking them no better, as lost.
    let mut r = common::Running::start_piped(
        &s,
        &[
            "--source",
            "-",
            "--max-record-bytes",
            "20",
            "--dead-letter",
            "small/dead.jsonl",
            "--report-interval",
            "0",
            "--output",
            "json",
        ],
    );
    let mut stdin = r.child.stdin.take().expect("stdin");
    std::io::Write::write_all(
        &mut stdin,
        std::fs::read(s.path("in.log")).unwrap().as_slice(),
    )
    .unwrap();
    drop(stdin);
    let out = common::finish(r);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let v = json(&out);
    assert_eq!(u(&v, "rejected_dead_lettered"), 0, "{v}");
    assert!(u(&v, "not_queued") >= 1, "{v}");
    assert_eq!(u(&v, "not_queued_dead_lettered"), 0, "{v}");
    assert_eq!(
        u(&v, "read"),
        u(&v, "rejected") + u(&v, "produced") + u(&v, "not_queued"),
        "every line read is accounted for: {v}"
    );
}

#[test]
fn a_directory_made_read_only_mid_run_does_not_lose_messages() {
    if !can_run_as_nobody() {
        return;
    }
    let s = Scratch::new("read-only-dir");
    let dir = s.path("d");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    let mut cmd = pc_host_as_nobody(&dir);
    cmd.args(args(&STEADY, &["--output", "json"]));
    let mut r = common::start_command(cmd);
    r.err.wait_stored_at_least(1);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Commits go on after the change: the next progress line, then 1000 messages more.
    let then = r.err.wait_stored_at_least(1);
    r.err.wait_stored_at_least(then + 1000);
    let out = r.interrupt();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = json(&out);
    assert_eq!((v["ok"].as_bool(), v["error"].as_str()), (Some(true), None));
    let produced = u(&v, "produced");
    assert_eq!(u(&v, "stored"), produced);
    let db = dir.join("pc-host.db");
    let run_id = v["run_id"].as_i64().unwrap();
    let per = recorded(&db, run_id);
    assert_eq!(per.iter().sum::<i64>() as u64, produced);
    assert_eq!(pairs(&db, run_id), expected_pairs(&per));
    assert_verify(&dir, &["verify"]);
}

/// A database this user may write, in a directory it may not: SQLite cannot make the `-wal`
/// and `-shm` files beside it, and the one line says so (it said the database is read-only,
/// which it is not), the file unchanged.
#[test]
fn a_writable_database_in_a_read_only_directory_names_the_directory() {
    if !can_run_as_nobody() {
        return;
    }
    let s = Scratch::new("db-in-read-only-dir");
    let dir = s.path("d");
    std::fs::create_dir(&dir).unwrap();
    let made = common::run(&dir, &["--messages", "5", "--report-interval", "0"]);
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    let db = dir.join("pc-host.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = std::fs::read(&db).unwrap();
    let mut cmd = pc_host_as_nobody(&dir);
    cmd.args(["--messages", "5"]);
    let out: Out = cmd.output_within().expect("run pc-host").into();
    common::assert_one_line_error(
        &out,
        1,
        "its directory . is not writable, and SQLite makes the database's -wal and -shm files \
         there",
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "the database changed");
}

/// verify only reads: a database in a directory this user may not write (where SQLite cannot
/// make the reader's `-shm`) is read as it is, with nothing made beside it (it failed with
/// "attempt to write a readonly database"); a name with URI characters and a path given with
/// a leading `//` read too.
#[test]
fn verify_reads_a_database_in_a_directory_it_may_not_write() {
    if !can_run_as_nobody() {
        return;
    }
    let s = Scratch::new("verify-read-only-dir");
    let dir = s.path("d");
    std::fs::create_dir(&dir).unwrap();
    let name = "x y?#%.db";
    let made = common::run(
        &dir,
        &["--db", name, "--messages", "5", "--report-interval", "0"],
    );
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let doubled = format!("/{}", dir.join(name).display());
    for db in [name, doubled.as_str()] {
        let mut cmd = pc_host_as_nobody(&dir);
        cmd.args(["verify", "--db", db]);
        let out: Out = cmd.output_within().expect("run pc-host verify").into();
        assert_eq!(out.code, Some(0), "{db}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("result: OK (1 run, 5 rows)"),
            "{}",
            out.stdout
        );
    }
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [name], "nothing made beside it");
}

#[test]
fn sigint_from_timeout_fifty_times_never_forces_an_exit() {
    let has_timeout = Command::new("timeout")
        .arg("--version")
        .output_within()
        .is_ok_and(|o| o.status.success());
    if !has_timeout {
        common::skip("no `timeout` on PATH");
        return;
    }
    const RUNS: usize = 50;
    const THREADS: usize = 5;
    let results: Vec<(usize, String, Out)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                scope.spawn(move || {
                    (t..RUNS)
                        .step_by(THREADS)
                        .map(|i| {
                            // 0.05 s .. 0.6 s: from the first moments of the run to mid-run.
                            let after =
                                format!("{:.3}", 0.05 + 0.55 * i as f64 / (RUNS - 1) as f64);
                            let s = Scratch::new(&format!("timeout-{i}"));
                            let mut cmd = Command::new("timeout");
                            cmd.current_dir(s.dir());
                            for (key, _) in std::env::vars_os() {
                                if key.to_string_lossy().starts_with("PC_HOST_") {
                                    cmd.env_remove(key);
                                }
                            }
                            // --preserve-status: pc-host's own exit status, not timeout's 124.
                            let out: Out = cmd
                                .args(["--preserve-status", "-s", "INT", &after])
                                .arg(env!("CARGO_BIN_EXE_pc-host"))
                                .args([
                                    "--duration",
                                    "30",
                                    "--rps",
                                    "5000",
                                    "--report-interval",
                                    "0",
                                    "--output",
                                    "json",
                                ])
                                .stdin(std::process::Stdio::null())
                                .output_within()
                                .expect("run timeout")
                                .into();
                            (i, after, out)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("runner thread"))
            .collect()
    });
    assert_eq!(results.len(), RUNS);
    for (i, after, out) in &results {
        let what = format!("run {i} (SIGINT after {after} s)");
        assert_ne!(out.code, Some(130), "{what}: forced exit:\n{}", out.stderr);
        assert_eq!(out.code, Some(0), "{what}:\n{}", out.stderr);
        assert!(
            !out.stderr.contains("exiting at once"),
            "{what}:\n{}",
            out.stderr
        );
        let v = json(out);
        assert_eq!(
            (v["stop_reason"].as_str(), v["ok"].as_bool()),
            (Some("signal"), Some(true)),
            "{what}: {v}"
        );
        assert_eq!(u(&v, "stored"), u(&v, "produced"), "{what}: {v}");
    }
}

#[test]
fn kill_9_during_a_retry_leaves_a_consistent_database_without_duplicates() {
    let s = Scratch::new("kill9-retry");
    let retrying = ["--busy-timeout-ms", "100", "--retry-for", "30"];

    // A generated run.
    let mut r = Running::start(&s, &args(&STEADY, &args(&retrying, &["--db", "gen.db"])));
    r.err.wait_stored_at_least(1);
    let db = s.path("gen.db");
    let holder = hold_write_lock(&db);
    r.err.wait("saying the commit is retried", |l| {
        l.contains("retrying for up to")
    });
    let status = r.kill();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(integrity_check(&db), "ok");
    let rows = pairs(&db, 1);
    assert!(!rows.is_empty(), "rows committed before the lock are there");
    let distinct: HashSet<_> = rows.iter().collect();
    assert_eq!(distinct.len(), rows.len(), "no message stored twice");
    let verify = common::run(s.dir(), &["verify", "--db", "gen.db"]);
    assert_eq!(verify.code, Some(0), "{}{}", verify.stdout, verify.stderr);
    assert!(
        verify.stdout.contains("run 1: did not finish"),
        "{}",
        verify.stdout
    );
    assert!(verify.stdout.contains("no duplicates"), "{}", verify.stdout);

    // A file: killed while retrying, then read again into the same database.
    const LINES: usize = 20_000;
    let lines: Vec<String> = (0..LINES)
        .map(|i| format!("line {i:05} of the input"))
        .collect();
    std::fs::write(s.path("in.log"), lines.join("\n") + "\n").unwrap();
    let mut r = Running::start(
        &s,
        &args(
            &retrying,
            &[
                "--source",
                "file:in.log",
                "--db",
                "file.db",
                "--rps",
                "2000",
                "--report-interval",
                "0.05",
            ],
        ),
    );
    r.err.wait_stored_at_least(1);
    let db = s.path("file.db");
    let holder = hold_write_lock(&db);
    r.err.wait("saying the commit is retried", |l| {
        l.contains("retrying for up to")
    });
    r.kill();
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(integrity_check(&db), "ok");
    let before = all_rows(&db).len();
    assert!(
        before > 0 && before < LINES,
        "killed mid-file: {before} rows"
    );
    let out = ingest_json(s.dir(), "file:in.log", "file.db");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(u(&v, "stored") as usize, LINES - before, "{v}");
    let rows = all_rows(&db);
    let texts: Vec<&str> = rows.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(texts.len(), LINES, "every line stored once");
    assert!(texts == lines, "the rows are the file's lines, in order");
    let keys: HashSet<(i64, i64)> = rows.iter().map(|&(p, q, _)| (p, q)).collect();
    assert_eq!(keys.len(), LINES, "no (input, line) twice");
    let verify = common::run(
        s.dir(),
        &["verify", "--db", "file.db", "--source", "file:in.log"],
    );
    assert_eq!(verify.code, Some(0), "{}{}", verify.stdout, verify.stderr);
}

/// A database that refuses any message containing "poison" (a trigger, `RAISE(ABORT)`).
fn poisoned_db(dir: &Path, name: &str) {
    let out = common::run(
        dir,
        &[
            "--db",
            name,
            "--messages",
            "1",
            "--rps",
            "0",
            "--report-interval",
            "0",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let conn = rusqlite::Connection::open(dir.join(name)).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER no_poison BEFORE INSERT ON messages
         WHEN NEW.message LIKE '%poison%'
         BEGIN SELECT RAISE(ABORT, 'poison refused'); END",
    )
    .unwrap();
}

/// `verify --source` runs pc-host's verify on `file:NAME` in `s` (with `extra`); the output.
fn verify_file(s: &Scratch, name: &str, extra: &[&str]) -> common::Out {
    let source = format!("file:{name}");
    let mut args = vec!["verify", "--db", "a.db", "--source", &source];
    args.extend_from_slice(extra);
    common::run(s.dir(), &args)
}

/// verify excuses a missing line only where a dead-letter file holds that line of that input,
/// written by a run that read it: not another input's dead letters, nor a count the runs
/// recorded (a killed run records none). Lines past the committed position are not read yet,
/// not lost.
#[test]
fn verify_excuses_only_the_lines_a_dead_letter_file_holds_for_that_input() {
    let s = Scratch::new("verify-dead-letters");
    poisoned_db(s.dir(), "a.db");
    std::fs::write(s.path("n1.log"), "one\npoison two\nthree\npoison four\n").unwrap();
    std::fs::write(s.path("n2.log"), "1\n2\n3\n4\n5\n").unwrap();
    let sources = ["--source", "file:n1.log", "--source", "file:n2.log"];
    let mut args = vec!["--db", "a.db", "--dead-letter", "dead.jsonl"];
    args.extend_from_slice(&sources);
    let out = common::run(s.dir(), &args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let ok = |out: &common::Out, what: &str| {
        assert_eq!(out.code, Some(0), "{what}:\n{}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("result: OK"), "{what}:\n{}", out.stdout);
    };
    let out = verify_file(&s, "n1.log", &[]);
    ok(&out, "n1");
    assert!(
        out.stdout
            .contains("2 lines not stored, as expected: dead-lettered (lines 2, 4;"),
        "{}",
        out.stdout
    );
    // Appended since: not read yet, which is no loss.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.path("n2.log"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"6\n7\n").unwrap();
    let out = verify_file(&s, "n2.log", &[]);
    ok(&out, "n2 appended");
    assert!(
        out.stdout
            .contains("2 lines after byte 10 not stored yet by any run (lines 6, 7)"),
        "{}",
        out.stdout
    );
    // The runs' recorded count plays no part (a run killed before its end records none).
    let conn = rusqlite::Connection::open(s.path("a.db")).unwrap();
    conn.execute("UPDATE runs SET dead_lettered = NULL", [])
        .unwrap();
    ok(&verify_file(&s, "n1.log", &[]), "n1, no counts");
    // Without the file, a dead-lettered line looks lost; --dead-letter names where it went.
    std::fs::rename(s.path("dead.jsonl"), s.path("kept.jsonl")).unwrap();
    let out = verify_file(&s, "n1.log", &[]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!(
            "no file at {}",
            std::path::absolute(s.path("dead.jsonl")).unwrap().display()
        )) && out.stdout.contains("line 2 is not stored"),
        "{}",
        out.stdout
    );
    ok(
        &verify_file(&s, "n1.log", &["--dead-letter", "kept.jsonl"]),
        "n1, kept",
    );
    // n1's dead letters excuse nothing of n2: two of its rows lost are two problems.
    conn.execute("DELETE FROM messages WHERE message IN ('2', '4')", [])
        .unwrap();
    let out = verify_file(&s, "n2.log", &["--dead-letter", "kept.jsonl"]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("PROBLEM: 2 differences; the first: line 2 is not stored"),
        "{}",
        out.stdout
    );
}

/// A last line stored without its end, completed by a later run into a line the database
/// refuses: the whole line goes to the dead-letter file, and the fragment's row goes with the
/// move past the line (with the next line's record, or with the run's final position).
#[test]
fn a_last_line_completed_into_a_refused_line_leaves_no_fragment_row() {
    for (name, then) in [("more", "three\n"), ("last", "")] {
        let s = Scratch::new(&format!("refused-fragment-{name}"));
        std::fs::write(s.path("in.txt"), "one\nabc").unwrap();
        let first = common::run(s.dir(), &["--db", "a.db", "--source", "file:in.txt"]);
        assert_eq!(first.code, Some(0), "{}", first.stderr);
        let conn = rusqlite::Connection::open(s.path("a.db")).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER no_poison BEFORE INSERT ON messages
             WHEN NEW.message LIKE '%poison%'
             BEGIN SELECT RAISE(ABORT, 'poison refused'); END",
        )
        .unwrap();
        drop(conn);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(s.path("in.txt"))
            .unwrap();
        std::io::Write::write_all(&mut f, format!("poison\n{then}").as_bytes()).unwrap();
        drop(f);
        let out = common::run(
            s.dir(),
            &[
                "--db",
                "a.db",
                "--source",
                "file:in.txt",
                "--dead-letter",
                "dead.jsonl",
            ],
        );
        assert_eq!(out.code, Some(0), "{name}: {}", out.stderr);
        let rows: Vec<(i64, String)> = all_rows(&s.path("a.db"))
            .into_iter()
            .map(|(_, seq, m)| (seq, m))
            .collect();
        let mut want = vec![(0, "one".to_string())];
        if !then.is_empty() {
            want.push((2, "three".to_string()));
        }
        assert_eq!(rows, want, "{name}: the fragment \"abc\" must not stay");
        let entries = dead_letters(&s.path("dead.jsonl"));
        assert_eq!(entries.len(), 1, "{name}: {entries:?}");
        assert_eq!(entries[0]["record"], "abcpoison", "{name}: the whole line");
    }
}

/// A file source stopped by a failing sink has lines read and never queued: the summary
/// counts them (read again by the next run), so every record read is rejected, produced, or
/// not queued. `verify` repeats the records the run's end recorded as not stored beside its
/// "ended with an error", so the run's losses show where its rows are checked.
#[test]
fn file_lines_read_but_not_queued_when_the_sink_fails_are_counted() {
    let s = Scratch::new("not-queued-file");
    poisoned_db(s.dir(), "a.db");
    // More lines than the ring holds: the source is still reading when the sink fails.
    let mut input = String::new();
    for n in 1..=300_000 {
        input.push_str(if n == 6 { "poison\n" } else { "line\n" });
    }
    std::fs::write(s.path("in.log"), input).unwrap();
    let run = |output: &str| {
        common::run(
            s.dir(),
            &[
                "--source",
                "file:in.log",
                "--db",
                "a.db",
                "--report-interval",
                "0",
                "--output",
                output,
            ],
        )
    };
    let out = run("json");
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let v = json(&out);
    common::assert_read_accounted(&v);
    assert_eq!(v["result"], "FAILED", "{v}");
    let not_stored = u(&v, "not_stored");
    assert!(not_stored > 0, "{v}");
    let verify = common::run(s.dir(), &["verify", "--db", "a.db"]);
    let said = format!("run {}: ingest ended with an error; 1 input, ", v["run_id"]);
    let line = verify.stdout.lines().find(|l| l.contains(&said));
    let line = line.unwrap_or_else(|| panic!("{}{}", verify.stdout, verify.stderr));
    assert!(
        line.contains(&format!(
            "its end recorded {not_stored} accepted records not stored"
        )),
        "{line}"
    );

    let out = run("text");
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let read = text_figure(&out, "read");
    let produced = text_figure(&out, "produced");
    if read > produced {
        let line = common::summary_line(&out, "not queued");
        assert!(
            line.contains(&format!("{} read as the run stopped", read - produced))
                && line.contains("read again by the next run"),
            "{line}"
        );
    }
}

#[test]
fn a_record_the_database_refuses_is_dead_lettered_and_the_rest_stored() {
    let s = Scratch::new("refused");
    // Ten lines: line 4 is refused by the database, line 7 is not UTF-8.
    let mut input = Vec::new();
    let mut ends = Vec::new();
    for n in 1..=10 {
        match n {
            4 => input.extend_from_slice(b"this line is poison"),
            7 => input.extend_from_slice(b"bad \xff\xfe bytes"),
            _ => input.extend_from_slice(format!("good line {n}").as_bytes()),
        }
        input.push(b'\n');
        ends.push(input.len() as u64);
    }
    std::fs::write(s.path("in.log"), &input).unwrap();
    poisoned_db(s.dir(), "a.db");
    let out = common::run(
        s.dir(),
        &[
            "--source",
            "file:in.log",
            "--db",
            "a.db",
            "--dead-letter",
            "dead.jsonl",
            "--report-interval",
            "0",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("the sink refused a record")
            && out.stderr.contains("set aside in the dead-letter file"),
        "a refusal is said as it happens, as a rejected line is:\n{}",
        out.stderr
    );
    let v = json(&out);
    assert_eq!((v["ok"].as_bool(), v["error"].as_str()), (Some(true), None));
    assert_eq!(
        (
            u(&v, "read"),
            u(&v, "rejected"),
            u(&v, "produced"),
            u(&v, "stored"),
            u(&v, "dead_lettered"),
            u(&v, "not_stored")
        ),
        (10, 1, 9, 8, 1, 0)
    );
    let stored: Vec<String> = all_rows(&s.path("a.db"))
        .into_iter()
        .skip(1) // the first run's message
        .map(|(_, _, m)| m)
        .collect();
    let want: Vec<String> = [1, 2, 3, 5, 6, 8, 9, 10]
        .iter()
        .map(|n| format!("good line {n}"))
        .collect();
    assert_eq!(stored, want);

    let mut entries = dead_letters(&s.path("dead.jsonl"));
    entries.sort_by_key(|e| e["source"]["line"].as_u64());
    assert_eq!(entries.len(), 2, "{entries:?}");
    let refused = &entries[0];
    assert_eq!(refused["reason"], "refused", "{refused}");
    assert_eq!(refused["record"], "this line is poison");
    assert_eq!(refused["source"]["line"], 4);
    assert_eq!(refused["source"]["end_offset"], ends[3]);
    assert_eq!(refused["run_id"], 2);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("poison refused"),
        "{refused}"
    );
    assert!(
        refused["source"]["input"]
            .as_str()
            .unwrap()
            .ends_with("in.log"),
        "{refused}"
    );
    let rejected = &entries[1];
    assert_eq!(rejected["reason"], "rejected", "{rejected}");
    assert_eq!(rejected["record"], Value::Null);
    // base64 of b"bad \xff\xfe bytes".
    assert_eq!(rejected["record_base64"], "YmFkIP/+IGJ5dGVz");
    assert_eq!(rejected["source"]["line"], 7);
    assert_eq!(rejected["source"]["end_offset"], ends[6]);
    for e in &entries {
        assert!(
            e["time"].as_str().is_some_and(|t| t.contains('T')),
            "time: {e}"
        );
    }

    // verify agrees: the line the database refused is one of what the run dead-lettered.
    let out = common::run(
        s.dir(),
        &["verify", "--db", "a.db", "--source", "file:in.log"],
    );
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "1 line not stored, as expected: dead-lettered (line 4; looked up in {})",
            std::path::absolute(s.path("dead.jsonl")).unwrap().display()
        )) && out.stdout.contains("result: OK"),
        "{}",
        out.stdout
    );

    // Replayed into a database without the trigger: the refused text is stored; the entry
    // without a text is rejected.
    let out = ingest_json(s.dir(), "file:dead.jsonl?format=dead-letter", "replay.db");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!((u(&v, "stored"), u(&v, "rejected")), (1, 1), "{v}");
    let texts: Vec<String> = all_rows(&s.path("replay.db"))
        .into_iter()
        .map(|(_, _, m)| m)
        .collect();
    assert_eq!(texts, ["this line is poison"]);

    // With a record limit below an entry's length (the record and its JSON around it) but
    // above the record's: the replay stores the record, and verify reads the entries as the
    // run did, not as lines over the limit.
    let small = [
        "--source",
        "file:dead.jsonl?format=dead-letter",
        "--db",
        "replay64.db",
        "--max-record-bytes",
        "64",
        "--report-interval",
        "0",
    ];
    assert!(
        std::fs::read_to_string(s.path("dead.jsonl"))
            .unwrap()
            .lines()
            .all(|l| l.len() > 64)
    );
    let out = common::run(s.dir(), &small);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = common::run(
        s.dir(),
        &["verify", "--db", "replay64.db", "--source", small[1]],
    );
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("result: OK"), "{}", out.stdout);

    // Without --dead-letter the refused record fails the run, and the error says what helps.
    poisoned_db(s.dir(), "b.db");
    let out = common::run(
        s.dir(),
        &[
            "--source",
            "file:in.log",
            "--db",
            "b.db",
            "--report-interval",
            "0",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let v = json(&out);
    assert_eq!(v["ok"], false);
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("--dead-letter"), "{error}");
    assert!(error.contains("poison refused"), "{error}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("error: ") && l.contains("--dead-letter")),
        "{}",
        out.stderr
    );
    assert_eq!(
        u(&v, "produced"),
        u(&v, "stored") + u(&v, "dead_lettered") + u(&v, "not_stored"),
        "{v}"
    );
}

/// A generated run whose database is locked for good after its first commits, with
/// `--retry-for 1`: returns how it ended and the database.
fn locked_out(s: &Scratch, extra: &[&str]) -> Out {
    let mut r = Running::start(
        s,
        &args(
            &STEADY,
            &args(&["--busy-timeout-ms", "100", "--retry-for", "1"], extra),
        ),
    );
    r.err.wait_stored_at_least(1);
    let holder = hold_write_lock(&s.path("pc-host.db"));
    r.err.wait("saying the commit is retried", |l| {
        l.contains("retrying for up to")
    });
    let out = finish(r);
    holder.execute_batch("ROLLBACK").unwrap();
    out
}

#[test]
fn exhausted_retries_dead_letter_generated_messages_and_exit_1() {
    let s = Scratch::new("exhausted");
    let out = locked_out(&s, &["--dead-letter", "dead.jsonl", "--output", "json"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let v = json(&out);
    assert_eq!(
        (v["ok"].as_bool(), v["stop_reason"].as_str()),
        (Some(false), Some("error"))
    );
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("gave up after retrying"), "{error}");
    assert!(
        out.stderr.contains("gave up after retrying"),
        "{}",
        out.stderr
    );
    let (produced, stored, dead) = (u(&v, "produced"), u(&v, "stored"), u(&v, "dead_lettered"));
    assert!(dead > 0, "{v}");
    assert_eq!(u(&v, "not_stored"), 0, "{v}");
    assert_eq!(produced, stored + dead, "{v}");
    let db = s.path("pc-host.db");
    assert_eq!(integrity_check(&db), "ok");
    let entries = dead_letters(&s.path("dead.jsonl"));
    assert_eq!(entries.len() as u64, dead);
    let mut exhausted = 0;
    for e in &entries {
        match e["reason"].as_str() {
            Some("retries_exhausted") => exhausted += 1,
            Some("sink_failed") => {}
            _ => panic!("unexpected reason: {e}"),
        }
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .contains("gave up after retrying"),
            "{e}"
        );
    }
    assert!(
        exhausted > 0,
        "the batch being retried is dead-lettered as exhausted"
    );
    let run_id = v["run_id"].as_i64().unwrap();
    assert_stored_and_dead_lettered_once(&db, run_id, &entries, produced);

    // Without --dead-letter the same messages are counted as not stored, and said to be.
    let s = Scratch::new("exhausted-no-dl");
    let out = locked_out(&s, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout.contains("gave up after retrying"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("not stored"), "{}", out.stdout);
    let produced = text_figure(&out, "produced");
    let stored = text_figure(&out, "stored");
    let not_stored = text_figure(&out, "not stored");
    assert!(not_stored > 0, "{}", out.stdout);
    assert_eq!(produced, stored + not_stored, "{}", out.stdout);
    assert!(!out.stdout.contains("dead-lettered"), "{}", out.stdout);
    assert_eq!(integrity_check(&s.path("pc-host.db")), "ok");
}

/// A generated run (2 producers, 200 messages) whose odd seqs the database refused and the run
/// dead-lettered into `dl.jsonl`; its run id.
fn run_with_odd_seqs_dead_lettered(s: &Scratch) -> i64 {
    run_with_seqs_refused(s, "g.db", 1)
}

/// A generated run into `db` (made with one run before it, so this one is run 2) of 2
/// producers and 200 messages, whose seqs of `parity` the database refused and the run
/// dead-lettered into `dl.jsonl`; its run id.
fn run_with_seqs_refused(s: &Scratch, db: &str, parity: u8) -> i64 {
    poisoned_db(s.dir(), db);
    let conn = rusqlite::Connection::open(s.path(db)).unwrap();
    conn.execute_batch(&format!(
        "CREATE TRIGGER odd_refused BEFORE INSERT ON messages
         WHEN NEW.seq % 2 = {parity} AND NEW.run_id > 1
         BEGIN SELECT RAISE(ABORT, 'seq refused'); END"
    ))
    .unwrap();
    drop(conn);
    let v = run_dead_lettering_into_dl(s, db);
    assert_eq!((u(&v, "stored"), u(&v, "dead_lettered")), (100, 100), "{v}");
    v["run_id"].as_i64().unwrap()
}

/// A generated run into `db` of 2 producers and 200 messages with `--dead-letter dl.jsonl`,
/// which must exit 0; its summary JSON.
fn run_dead_lettering_into_dl(s: &Scratch, db: &str) -> serde_json::Value {
    let out = common::run(
        s.dir(),
        &[
            "--db",
            db,
            "--producers",
            "2",
            "--messages",
            "200",
            "--rps",
            "0",
            "--dead-letter",
            "dl.jsonl",
            "--output",
            "json",
            "--report-interval",
            "0",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    common::json(&out)
}

/// A generated run whose refused records were dead-lettered is OK, and `verify` agrees: the
/// seqs it misses are exactly the ones in its dead-letter file, looked up one by one (or, with
/// the file gone, their number is the run's count, and verify says that is all it checked).
#[test]
fn verify_accepts_a_generated_run_missing_exactly_its_dead_letters() {
    let s = Scratch::new("faults-dead-gaps");
    run_with_odd_seqs_dead_lettered(&s);
    let ok = Some(0);
    let found = ["(100 dead-lettered); each missing seq is in ", "dl.jsonl"];
    verify_says(&s, &["--db", "g.db"], ok, &found);
    std::fs::rename(s.path("dl.jsonl"), s.path("moved.jsonl")).unwrap();
    let by_count = [
        "missing seqs matched by count only (",
        "could not be read",
        "result: OK (2 runs, 101 rows; the dead letters of 1 run matched by count only)",
    ];
    verify_says(&s, &["--db", "g.db"], ok, &by_count);
    let given = ["--db", "g.db", "--dead-letter", "moved.jsonl"];
    verify_says(&s, &given, ok, &["each missing seq is in moved.jsonl"]);
    // A file that lost one of the run's entries: that dead letter is gone.
    let kept = std::fs::read_to_string(s.path("moved.jsonl")).unwrap();
    let (all_but_last, _) = kept.trim_end().rsplit_once('\n').unwrap();
    std::fs::write(s.path("short.jsonl"), format!("{all_but_last}\n")).unwrap();
    let short = ["--db", "g.db", "--dead-letter", "short.jsonl"];
    let lost = [
        "the run dead-lettered 100, but ",
        "short.jsonl holds 99 of its seqs",
    ];
    verify_says(&s, &short, Some(1), &lost);
}

/// Runs `verify` in `s` with `args`; asserts its exit status and that its output (stdout and
/// stderr) holds every one of `phrases`.
fn verify_says(s: &Scratch, args: &[&str], code: Option<i32>, phrases: &[&str]) {
    let args: Vec<&str> = std::iter::once("verify")
        .chain(args.iter().copied())
        .collect();
    let out = common::run(s.dir(), &args);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, code, "{args:?}: {said}");
    for phrase in phrases {
        assert!(said.contains(phrase), "{args:?}: no {phrase:?} in {said}");
    }
}

/// A lost seq cannot hide behind the count of dead letters: with one stored row deleted and
/// one dead-lettered seq stored in its place, as many seqs are missing as the run
/// dead-lettered, but `verify` looks each one up and names both.
#[test]
fn verify_finds_a_lost_seq_that_the_dead_letter_count_would_hide() {
    let s = Scratch::new("faults-dead-swap");
    let run = run_with_odd_seqs_dead_lettered(&s);
    let conn = rusqlite::Connection::open(s.path("g.db")).unwrap();
    conn.execute_batch("DROP TRIGGER odd_refused").unwrap();
    let deleted = conn
        .execute(
            "DELETE FROM messages WHERE run_id = ?1 AND producer = 0 AND seq = 0",
            [run],
        )
        .unwrap();
    assert_eq!(deleted, 1);
    conn.execute(
        "INSERT INTO messages (message, created_at, producer, seq, run_id) \
         VALUES ('Message from producer 0: #1', 0, 0, 1, ?1)",
        [run],
    )
    .unwrap();
    drop(conn);
    let both = [
        "producer 0: 1 of seq 0..100 missing and not dead-lettered (first: #0)",
        "1 seqs both stored and dead-lettered in ",
        "(first: producer 0 #1)",
    ];
    verify_says(&s, &["--db", "g.db"], Some(1), &both);
}

/// After production ends, a drain held up by a retry keeps reporting (progress lines marked
/// RETRYING go on past the deadline) and a signal is answered at once, not met with silence.
#[test]
fn a_drain_held_up_by_a_retry_keeps_reporting_and_answers_a_signal() {
    let s = Scratch::new("drain-reports");
    let mut r = Running::start(
        &s,
        &[
            "--producers",
            "2",
            "--consumers",
            "2",
            "--rps",
            "1000",
            "--duration",
            "1",
            "--report-interval",
            "0.05",
            "--busy-timeout-ms",
            "100",
            "--retry-for",
            "60",
            "--output",
            "json",
        ],
    );
    r.err.wait_stored_at_least(1);
    let holder = hold_write_lock(&s.path("pc-host.db"));
    r.err
        .wait("a progress line after the deadline, marked RETRYING", |l| {
            l.contains("| RETRYING: ") && common::time_of(l).is_some_and(|t| t > 1.2)
        });
    common::signal(&r.child, libc::SIGINT);
    r.err.wait("the signal answered during the drain", |l| {
        l.contains("SIGINT: already stopping")
    });
    holder.execute_batch("ROLLBACK").unwrap();
    let out = common::finish(r);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(u(&v, "stored"), u(&v, "produced"), "{v}");
}

/// A database another user owns and this one may not write: refused before SQLite opens it, so
/// no `-wal` or `-shm` of this user's is left beside it to lock the owner out afterwards.
#[test]
fn a_database_this_user_cannot_write_is_refused_without_leaving_files_that_lock_out_its_owner() {
    if !can_run_as_nobody() {
        return;
    }
    let s = Scratch::new("other-owner");
    let shared = s.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(s.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let owner = common::run(
        s.dir(),
        &["--db", "shared/d.db", "--messages", "3", "--rps", "0"],
    );
    assert_eq!(owner.code, Some(0), "{}", owner.stderr);
    let db = shared.join("d.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::read(&db).unwrap();
    // nobody may write the directory, not the file.
    let other: Out = pc_host_as_nobody(s.dir())
        .args(["--db", "shared/d.db", "--messages", "3", "--rps", "0"])
        .output_within()
        .expect("run pc-host as nobody")
        .into();
    common::assert_one_line_error(&other, 1, "is not writable by this user");
    let mut left: Vec<String> = std::fs::read_dir(&shared)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["d.db"], "nothing beside the database");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the database untouched"
    );
    let again = common::run(
        s.dir(),
        &["--db", "shared/d.db", "--messages", "3", "--rps", "0"],
    );
    assert_eq!(
        again.code,
        Some(0),
        "the owner's next run: {}",
        again.stderr
    );
}

/// Run ids repeat across databases: two databases whose run 2 dead-lettered into one shared
/// file (one the odd seqs, the other the even) each find 200 entries of run id 2 there, not
/// the 100 they counted, so neither is judged by the other's entries: both match by count.
/// And a run that dead-lettered none may miss none, whatever entries of its id the file holds.
#[test]
fn verify_does_not_take_another_databases_dead_letters_for_a_runs_own() {
    let s = Scratch::new("faults-dead-shared");
    assert_eq!(run_with_seqs_refused(&s, "odd.db", 1), 2);
    assert_eq!(run_with_seqs_refused(&s, "even.db", 0), 2);
    let by_count = [
        "missing seqs matched by count only (",
        "holds 200 seqs of run id 2, not the 100 it counted",
        "; the dead letters of 1 run matched by count only)",
    ];
    for db in ["odd.db", "even.db"] {
        verify_says(&s, &["--db", db], Some(0), &by_count);
    }
    // A third database's run 2 dead-letters nothing into the same file; a row deleted from it
    // is a gap, not excused by the 200 entries of run id 2 there.
    poisoned_db(s.dir(), "none.db");
    let v = run_dead_lettering_into_dl(&s, "none.db");
    assert_eq!((u(&v, "stored"), u(&v, "dead_lettered")), (200, 0), "{v}");
    let conn = rusqlite::Connection::open(s.path("none.db")).unwrap();
    let deleted = conn
        .execute(
            "DELETE FROM messages WHERE run_id = 2 AND producer = 0 AND seq = 1",
            [],
        )
        .unwrap();
    assert_eq!(deleted, 1);
    drop(conn);
    let gap = ["producer 0: 1 of seq 0..100 missing (first: #1)"];
    verify_says(&s, &["--db", "none.db"], Some(1), &gap);
    // A file named to look dead letters up in that cannot be read is bad input.
    let nope = ["--db", "none.db", "--dead-letter", "nope.jsonl"];
    verify_says(&s, &nope, Some(2), &["--dead-letter nope.jsonl: "]);
}
