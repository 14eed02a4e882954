//! Helpers for the integration tests: run the real binary in a scratch directory, read its
//! outputs and the database it wrote.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use rusqlite::Connection;

pub mod scaling;
pub mod scrape;
pub mod server;

/// Says that a test did not run what it is about, and why: one `SKIP: why` line, written to
/// the process's stderr itself, which the test harness does not capture, so `cargo test`
/// shows it (a `println!` is shown only for a failing test).
pub fn skip(why: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIP: {why}");
}

/// A scratch directory, removed when dropped.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pc-host-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary, run in `dir`, with no `PC_HOST_*` variables from the test's environment.
pub fn pc_host(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pc-host"));
    cmd.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PC_HOST_") {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// What a finished run printed.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// The longest a test waits for a run that ends by itself ([`output_within`]): far above any
/// run's time, a guard that turns a hang into a failure, not a timing check.
pub const RUN_LIMIT: Duration = Duration::from_secs(300);

/// `Command::output` within [`RUN_LIMIT`]: the tests' way to run a command that ends by
/// itself.
pub trait OutputWithin {
    /// Runs the command to its end, its stdout and stderr piped and read as it runs (as
    /// `Command::output` does, except that a stdout or stderr set before is replaced), within
    /// [`RUN_LIMIT`]; SIGKILLs it and fails if it runs longer.
    fn output_within(&mut self) -> std::io::Result<Output>;

    /// [`OutputWithin::output_within`], but stdout stays where it was set (the output's
    /// `stdout` is then empty).
    fn output_within_keeping_stdout(&mut self) -> std::io::Result<Output>;
}

impl OutputWithin for Command {
    fn output_within(&mut self) -> std::io::Result<Output> {
        self.stdout(Stdio::piped()).output_within_keeping_stdout()
    }

    fn output_within_keeping_stdout(&mut self) -> std::io::Result<Output> {
        let child = self.stderr(Stdio::piped()).spawn()?;
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        rx.recv_timeout(RUN_LIMIT).unwrap_or_else(|_| {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is our child, not
            // yet reaped (its waiter is still in `wait_with_output`).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{self:?} did not exit within {RUN_LIMIT:?}")
        })
    }
}

/// Asserts that every line or message a run read is accounted for in its JSON summary:
/// `read` = `rejected` + `produced` + `not_queued` + `not_queued_rereadable`.
pub fn assert_read_accounted(v: &serde_json::Value) {
    let accounted =
        u(v, "rejected") + u(v, "produced") + u(v, "not_queued") + u(v, "not_queued_rereadable");
    assert_eq!(
        u(v, "read"),
        accounted,
        "every record read is accounted for: {v}"
    );
}

pub fn run(dir: &Path, args: &[&str]) -> Out {
    pc_host(dir)
        .args(args)
        .output_within()
        .expect("run pc-host")
        .into()
}

/// Runs pc-host with `args` and the file `input` (in `dir`) as its stdin; its output, and the
/// offset it left the file at (read through a second descriptor of the same open file).
pub fn run_with_file_stdin(dir: &Path, args: &[&str], input: &str) -> (Out, u64) {
    use std::io::Seek as _;
    let file = std::fs::File::open(dir.join(input)).expect("open the input");
    let mut shared = file.try_clone().expect("a second descriptor");
    let out = pc_host(dir)
        .args(args)
        .stdin(file)
        .output_within()
        .expect("run pc-host")
        .into();
    (out, shared.stream_position().expect("the offset"))
}

pub fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = pc_host(dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output_within().expect("run pc-host").into()
}

/// The stdout of a `--output json` run: exactly one JSON object and nothing else.
pub fn json(out: &Out) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}):\n{}", out.stdout));
    assert!(v.is_object(), "stdout is not a JSON object: {v}");
    v
}

pub fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not an unsigned integer in {v}"))
}

/// Every (producer, seq) of `run_id` in the database, sorted (duplicates kept).
pub fn pairs(db: &Path, run_id: i64) -> Vec<(i64, i64)> {
    let conn = Connection::open(db).expect("open db");
    let mut stmt = conn
        .prepare("SELECT producer, seq FROM messages WHERE run_id = ?1")
        .expect("prepare");
    let mut v: Vec<(i64, i64)> = stmt
        .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    v.sort_unstable();
    v
}

/// `produced` per producer as recorded at the end of `run_id`.
pub fn recorded(db: &Path, run_id: i64) -> Vec<i64> {
    let conn = Connection::open(db).expect("open db");
    let mut stmt = conn
        .prepare("SELECT produced FROM run_producers WHERE run_id = ?1 ORDER BY producer")
        .expect("prepare");
    stmt.query_map([run_id], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// The exact set a completed run must hold: seq 0..n for each producer.
pub fn expected_pairs(per_producer: &[i64]) -> Vec<(i64, i64)> {
    per_producer
        .iter()
        .enumerate()
        .flat_map(|(p, &n)| (0..n).map(move |s| (p as i64, s)))
        .collect()
}

/// Asserts a clear one-line error on stderr, no panic, and the exit code.
pub fn assert_error(out: &Out, code: i32, needle: &str) {
    assert_eq!(out.code, Some(code), "exit code; stderr:\n{}", out.stderr);
    assert!(
        !out.stderr.contains("panicked"),
        "panic on bad input:\n{}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout on error, got:\n{}",
        out.stdout
    );
    assert!(
        out.stderr.contains(needle),
        "stderr should mention {needle:?}, got:\n{}",
        out.stderr
    );
}

/// The line of the text summary on `out`'s stdout that starts (after its indent) with
/// `label` (`rejected`, `not queued`, `lane low`, ...).
pub fn summary_line<'o>(out: &'o Out, label: &str) -> &'o str {
    out.stdout
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in the summary:\n{}", out.stdout))
}

/// As [`assert_error`], and the error is exactly one line starting with "error:".
pub fn assert_one_line_error(out: &Out, code: i32, needle: &str) {
    assert_error(out, code, needle);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected, got:\n{}", out.stderr);
    assert!(lines[0].starts_with("error: "), "got: {}", lines[0]);
}

/// A progress line showing at least one message committed.
pub fn stored_some(line: &str) -> bool {
    line.starts_with('[')
        && line
            .split("stored ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// The longest a test waits for a line from a child before failing (it never passes a test).
pub const WAIT: Duration = Duration::from_secs(60);

/// A running pc-host, killed (SIGKILL) if the test ends while it still runs.
pub struct Running {
    pub child: Child,
    pub err: Stderr,
}

impl Running {
    /// Starts the binary in `s` with `args`, its stdin empty (`/dev/null`, as `pc_host` sets).
    pub fn start(s: &Scratch, args: &[&str]) -> Self {
        let mut cmd = pc_host(s.dir());
        cmd.args(args);
        start_command(cmd)
    }

    /// As [`Running::start`], with stdin a pipe, in `child.stdin`, for the test to take and
    /// write; dropping it ends the input (a run still holding it open never sees the end).
    pub fn start_piped(s: &Scratch, args: &[&str]) -> Self {
        let mut cmd = pc_host(s.dir());
        cmd.args(args).stdin(Stdio::piped());
        start_command(cmd)
    }

    /// Sends SIGINT and waits for the run to drain and exit; returns what it printed (all of
    /// stderr, the lines already waited on included).
    pub fn interrupt(mut self) -> Out {
        signal(&self.child, libc::SIGINT);
        self.err.wait("saying SIGINT starts the drain", |l| {
            l.contains("SIGINT: stopping the producers and draining")
        });
        finish(self)
    }
}

impl Running {
    /// SIGKILLs it and returns how it ended.
    pub fn kill(mut self) -> ExitStatus {
        signal(&self.child, libc::SIGKILL);
        self.child.wait().expect("wait for pc-host")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(&self.child, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

pub fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child, not reaped.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill failed");
}

/// The lines of a child's stderr, with every line seen kept for failure messages.
pub struct Stderr {
    pub rx: Receiver<String>,
    pub seen: Vec<String>,
}

impl Stderr {
    /// Waits (at most [`WAIT`]) for a line satisfying `want` and returns it.
    pub fn wait(&mut self, what: &str, mut want: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no stderr line {what} within {WAIT:?}; got:\n{}",
                        self.tail()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("stderr ended before a line {what}; got:\n{}", self.tail())
                }
            }
        }
    }

    /// Waits for a progress line showing at least `n` messages stored; returns the count.
    pub fn wait_stored_at_least(&mut self, n: u64) -> u64 {
        let line = self.wait(&format!("showing stored >= {n}"), |l| {
            stored_in(l).is_some_and(|s| s >= n)
        });
        stored_in(&line).unwrap()
    }

    /// Waits for a progress line showing exactly `n` messages stored (failing on more);
    /// returns its time into the run.
    pub fn wait_stored(&mut self, n: u64) -> f64 {
        let line = self.wait(&format!("showing stored {n}"), |l| match stored_in(l) {
            Some(s) => {
                assert!(s <= n, "stored {s}, more than the {n} lines written: {l}");
                s == n
            }
            None => false,
        });
        time_of(&line).unwrap()
    }

    /// Waits until a progress line at `t` seconds into the run or later, asserting that every
    /// progress line until then shows `stored` messages.
    pub fn stay_until(&mut self, t: f64, stored: u64) {
        self.wait(&format!("at {t:.1} s"), |l| match stored_in(l) {
            Some(s) => {
                assert_eq!(s, stored, "stored changed: {l}");
                time_of(l).is_some_and(|lt| lt >= t)
            }
            None => false,
        });
    }

    pub fn tail(&self) -> String {
        let from = self.seen.len().saturating_sub(40);
        self.seen[from..].join("\n")
    }
}

/// The "stored N" count of a progress line (`[    0.5 s] produced .. | stored N (..) | ..`).
pub fn stored_in(line: &str) -> Option<u64> {
    if !line.starts_with('[') {
        return None;
    }
    line.split(" | ")
        .find_map(|part| part.strip_prefix("stored "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The time into the run of a progress line (`[    0.5 s] ..`).
pub fn time_of(line: &str) -> Option<f64> {
    line.strip_prefix('[')?
        .split(" s]")
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Asserts `pc-host ARGS` (a verify) exits 0 and says OK.
pub fn assert_verify(dir: &Path, args: &[&str]) {
    let out = run(dir, args);
    assert_eq!(out.code, Some(0), "{args:?}:\n{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("result: OK"),
        "{args:?}:\n{}",
        out.stdout
    );
}

/// Every row as `(producer, seq, message)`, in insertion order.
pub fn all_rows(db: &Path) -> Vec<(i64, i64, String)> {
    let conn = Connection::open(db).expect("open db");
    let mut stmt = conn
        .prepare("SELECT producer, seq, message FROM messages ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Every input as `(input_id, path, ino, offset, line)`.
pub fn inputs(db: &Path) -> Vec<(i64, String, i64, i64, i64)> {
    let conn = Connection::open(db).expect("open db");
    let mut stmt = conn
        .prepare("SELECT input_id, path, ino, offset, line FROM inputs ORDER BY input_id")
        .expect("prepare");
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// `pc-host --source SOURCE --db DB --output json --report-interval 0` in `dir`, to its end.
pub fn ingest_json(dir: &Path, source: &str, db: &str) -> Out {
    run(
        dir,
        &[
            "--source",
            source,
            "--db",
            db,
            "--output",
            "json",
            "--report-interval",
            "0",
        ],
    )
}

/// A deterministic pseudo-random sequence (xorshift64*), for generated test inputs.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Starts `cmd` (made with [`pc_host`], arguments set) as a [`Running`]: stdout and stderr
/// piped, stderr read line by line on a thread.
pub fn start_command(mut cmd: Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pc-host");
    let stderr: ChildStderr = child.stderr.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Running {
        child,
        err: Stderr { rx, seen: vec![] },
    }
}

/// Waits (at most [`WAIT`]) for a run to end by itself and returns what it printed (all of
/// stderr, the lines already waited on included; no stdout if the test took and closed it).
pub fn finish(mut r: Running) -> Out {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match r.err.rx.recv_timeout(left) {
            Ok(line) => r.err.seen.push(line),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!(
                "pc-host did not exit within {WAIT:?}; stderr:\n{}",
                r.err.tail()
            ),
        }
    }
    let mut stdout = String::new();
    if let Some(mut pipe) = r.child.stdout.take() {
        pipe.read_to_string(&mut stdout).expect("read stdout");
    }
    let status = r.child.wait().expect("wait for pc-host");
    Out {
        code: status.code(),
        stdout,
        stderr: r.err.seen.join("\n"),
    }
}

/// Whether `dir` is on tmpfs, whose writes never reach storage (Linux; `false` elsewhere).
pub fn on_tmpfs(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt as _;
        let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
            return false;
        };
        let mut fs = std::mem::MaybeUninit::<libc::statfs>::zeroed();
        // SAFETY: `path` is a NUL-terminated string and `fs` a writable `statfs`, which
        // statfs fills when it returns 0.
        if unsafe { libc::statfs(path.as_ptr(), fs.as_mut_ptr()) } != 0 {
            return false;
        }
        // SAFETY: statfs returned 0, so it initialised `fs` (zeroed before anyway).
        let fs = unsafe { fs.assume_init() };
        fs.f_type == libc::TMPFS_MAGIC
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        false
    }
}

/// Another process's write lock on `db` (`BEGIN IMMEDIATE`), held until the connection runs
/// `ROLLBACK` or is dropped.
pub fn hold_write_lock(db: &Path) -> Connection {
    let holder = Connection::open(db).expect("open db");
    holder
        .busy_timeout(Duration::from_secs(60))
        .expect("busy timeout");
    holder
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    holder
}

/// `PRAGMA integrity_check` of `db` ("ok" when sound).
pub fn integrity_check(db: &Path) -> String {
    let conn = Connection::open(db).expect("open db");
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}

/// A file rotated while no run read it (`mv app.log app.log.1`, then a new `app.log`): the run
/// given the old name reads the new file and warns that the old one, under its new name, holds
/// bytes it has not read, naming the source that reads them. A file rotated away after it was
/// read to its end is not warned about. `run` runs pc-host with a JSON summary and the given
/// arguments (the sink is the caller's) in `s`'s directory.
pub fn assert_rotation_names_the_file_left_unread(s: &Scratch, run: impl Fn(&str) -> Out) {
    let numbered = |n: usize| -> String { (0..n).map(|i| format!("line {i}\n")).collect() };
    std::fs::write(s.path("app.log"), numbered(100)).expect("write the input file");
    if std::fs::metadata(s.path("app.log"))
        .and_then(|m| m.created())
        .is_err()
    {
        skip("this file system records no birth times");
        return;
    }
    let stored = |out: &Out| {
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        u(&json(out), "stored")
    };
    assert_eq!(stored(&run("--source file:app.log --messages 40")), 40);
    std::fs::rename(s.path("app.log"), s.path("app.log.1")).expect("rotate");
    std::fs::write(s.path("app.log"), numbered(10)).expect("write the new file");
    let out = run("--source file:app.log");
    assert_eq!(stored(&out), 10, "the new file, from its start");
    let unread = numbered(100).len() - numbered(40).len();
    let warned = format!("app.log.1, with {unread} bytes after line 40 not read: --source file:");
    assert!(
        out.stderr.contains("WARN") && out.stderr.contains(&warned),
        "{}",
        out.stderr
    );
    assert_eq!(stored(&run("--source file:app.log.1")), 60, "the rest");
    // The new file was read to its end: rotated away in turn, it is not warned about.
    std::fs::rename(s.path("app.log"), s.path("app.log.2")).expect("rotate again");
    std::fs::write(s.path("app.log"), numbered(5)).expect("write the newest file");
    let out = run("--source file:app.log");
    assert_eq!(stored(&out), 5);
    assert!(!out.stderr.contains("WARN"), "{}", out.stderr);
    assert_eq!(json(&out)["unread_elsewhere"], serde_json::json!([]));
    // Rotated twice while no run read the path: the file between is named, until a run has
    // read it under its own name (the sink holds it as an input then).
    let rotate = |n: usize| {
        std::fs::rename(s.path("app.log.1"), s.path(&format!("app.log.{n}"))).expect("shift");
        std::fs::rename(s.path("app.log"), s.path("app.log.1")).expect("rotate");
    };
    let between = |out: &Out| {
        out.stderr
            .matches("was made after the file read before")
            .count()
    };
    for read_first in [false, true] {
        rotate(3);
        std::fs::write(s.path("app.log"), numbered(7)).expect("the file between");
        rotate(4);
        std::fs::write(s.path("app.log"), numbered(3)).expect("the newest");
        if read_first {
            assert_eq!(stored(&run("--source file:app.log.1")), 7);
        }
        let out = run("--source file:app.log");
        assert_eq!(between(&out), usize::from(!read_first), "{}", out.stderr);
        if !read_first {
            // Read now, under its name, and the next rotations start over.
            assert_eq!(stored(&run("--source file:app.log.1")), 7);
        }
    }
}

/// `verify --source` against a file ingested into the database `sink` names (`--db PATH` or
/// `--sink URL`), whose rows `sql` changes through a connection of its own: the same verdicts,
/// report and exit status whatever the database. OK with a line rejected at ingest, also
/// under the file's new name after a rename (where birth times are recorded); a row whose
/// text was changed is named, exit 1; lines appended since are not read yet (exit 0); a
/// deleted row is a line not stored and rows past a truncated end are beyond it (exit 1); a
/// file never ingested is bad input (exit 2).
pub fn assert_verify_source_judges_the_rows(s: &Scratch, sink: &[&str], sql: impl Fn(&str)) {
    // Lines 1 to 10, line 4 not UTF-8 (rejected at ingest).
    let mut text = Vec::new();
    for n in 1..=10 {
        match n {
            4 => text.extend_from_slice(b"\xff\n"),
            n => text.extend_from_slice(format!("line {n}\n").as_bytes()),
        }
    }
    std::fs::write(s.path("in.log"), &text).expect("write the input file");
    let mut args = sink.to_vec();
    args.extend(["--source", "file:in.log", "--output", "json"]);
    args.extend(["--report-interval", "0"]);
    let out = run(s.dir(), &args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = json(&out);
    assert_eq!((u(&v, "stored"), u(&v, "rejected")), (9, 1), "{v}");

    let committed = text.len();
    // The report below its header and how the file was read, after checking both and the
    // exit status.
    let verify = |file: &str, code: i32| -> Vec<String> {
        let source = format!("file:{file}");
        let mut args = vec!["verify"];
        args.extend(sink);
        args.extend(["--source", &source]);
        let out = run(s.dir(), &args);
        let lines: Vec<String> = out.stdout.lines().map(str::to_string).collect();
        assert_eq!(
            out.code,
            Some(code),
            "{args:?}:\n{}{}",
            out.stdout,
            out.stderr
        );
        let header = format!("/{file} (input 1, committed to byte {committed})");
        assert!(
            lines.len() > 2
                && lines[0].starts_with("pc-host verify: ")
                && lines[0].ends_with(&header)
                && lines[1].contains("format=text"),
            "{args:?}:\n{}",
            out.stdout
        );
        lines[2..].to_vec()
    };
    let stored_9 = "  10 lines: 9 stored in file order with the file's text, 1 rejected at ingest (line 4 \
         (invalid UTF-8))";
    assert_eq!(verify("in.log", 0), [stored_9, "result: OK"]);
    if std::fs::metadata(s.path("in.log"))
        .and_then(|m| m.created())
        .is_ok()
    {
        // Found by device, inode and birth time, as a run finds it.
        std::fs::rename(s.path("in.log"), s.path("in.log.1")).expect("rename");
        assert_eq!(verify("in.log.1", 0), [stored_9, "result: OK"]);
        std::fs::rename(s.path("in.log.1"), s.path("in.log")).expect("rename back");
    }

    sql("UPDATE messages SET message = 'changed' WHERE seq = 4");
    assert_eq!(
        verify("in.log", 1),
        [
            "  10 lines: 8 stored in file order with the file's text, 1 stored with other text, \
             1 rejected at ingest (line 4 (invalid UTF-8))",
            "  PROBLEM: 1 difference; the first: line 5: stored \"changed\", the file has \
             \"line 5\"",
            "result: PROBLEMS FOUND",
        ]
    );
    sql("UPDATE messages SET message = 'line 5' WHERE seq = 4");
    assert_eq!(verify("in.log", 0), [stored_9, "result: OK"]);

    // Past the committed position: not read yet, which is no loss.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.path("in.log"))
        .expect("open the input file");
    std::io::Write::write_all(&mut f, b"line 11\nline 12").expect("append");
    drop(f);
    let path = s.path("in.log").canonicalize().expect("the file's path");
    let unread = format!(
        "  2 lines after byte {committed} not stored yet by any run (lines 11, 12): a run with \
         --source file:{} reads them",
        path.display()
    );
    let stored_12 = "  12 lines: 9 stored in file order with the file's text, 1 rejected at ingest (line 4 \
         (invalid UTF-8))";
    assert_eq!(
        verify("in.log", 0),
        [stored_12, unread.as_str(), "result: OK"]
    );

    sql("DELETE FROM messages WHERE seq = 6");
    assert_eq!(
        verify("in.log", 1),
        [
            "  12 lines: 8 stored in file order with the file's text, 1 rejected at ingest \
             (line 4 (invalid UTF-8))",
            unread.as_str(),
            "  PROBLEM: 1 difference; the first: line 7 is not stored",
            "result: PROBLEMS FOUND",
        ]
    );

    // Cut to its first 3 lines, shorter than what was committed: as a run would, verify takes
    // them for new content, numbered on from line 11, not read yet; the 8 rows stored hold the
    // earlier content. (It called those rows past the file's end a problem, for good: after
    // the next run stored the new lines too.)
    std::fs::write(s.path("in.log"), "line 1\nline 2\nline 3\n").expect("truncate");
    let unread = format!(
        "  3 lines after byte 0 not stored yet by any run (lines 11, 12, 13): a run with \
         --source file:{} reads them",
        path.display()
    );
    assert_eq!(
        verify("in.log", 0),
        [
            "  3 lines: 0 stored in file order with the file's text",
            "  lines numbered from 11 on: the file holds fewer lines before the committed \
             position than its rows number (cut short, and read again from its start, or \
             rewritten in place); 8 rows of its earlier content (not compared)",
            unread.as_str(),
            "result: OK",
        ]
    );

    std::fs::write(s.path("other.log"), "line 1\n").expect("write another file");
    let mut args = vec!["verify"];
    args.extend(sink);
    args.extend(["--source", "file:other.log"]);
    assert_one_line_error(&run(s.dir(), &args), 2, "was never ingested");
}

/// Starts pc-host in `s` with `args` and `--metrics-addr 127.0.0.1:0`, waits for the line
/// naming the metrics address (printed once the signal handlers are installed, before the
/// sink is opened), then sends SIGINT `times` times, a second apart (closer ones are one
/// request); returns its output and the rest of its stderr, once it has exited.
pub fn sigint_at_start(s: &Scratch, args: &[&str], times: usize) -> (Out, Vec<String>) {
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--metrics-addr", "127.0.0.1:0"])
        .collect();
    let mut r = Running::start(s, &args);
    r.err.wait("naming the metrics address", |l| {
        l.starts_with("pc-host: metrics: http://")
    });
    let before = r.err.seen.len();
    for i in 0..times {
        if i > 0 {
            // Within a second of the last it would be the same request: the one-second rule.
            std::thread::sleep(Duration::from_millis(1100));
        }
        signal(&r.child, libc::SIGINT);
    }
    let out = finish(r);
    let rest = out
        .stderr
        .lines()
        .skip(before)
        .map(str::to_string)
        .collect();
    (out, rest)
}
