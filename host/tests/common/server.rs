//! Helpers for the tests against a real database server (`postgres.rs`, `mysql.rs`): the
//! server's URL from the environment (one SKIP line when it is not set), a turn on the server
//! (shared, or alone for a restart), a database per test dropped when the test ends, pc-host
//! run against it and its JSON summary read, the rows it committed checked, and a restart that
//! leaves the server running.
//!
//! A test file implements [`Server`] for its kind of server, through that server's client.

use std::fmt::Debug;
use std::io::Write as _;
use std::marker::PhantomData;
use std::net::{Shutdown, TcpListener};
use std::path::Path;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use pc_host::config::Synchronous;
use pc_host::config::url::ServerUrl;
use pc_host::message::Record;
use pc_host::sink::RunStart;

use super::{Out, Running, Scratch, assert_one_line_error, assert_verify, finish, json, run, u};

/// One kind of server, as the shared helpers reach it through its client.
pub trait Server {
    /// The variable holding the URL of a database on the test server.
    const VAR: &'static str;

    /// Runs `sql` (no rows back) on the database at `url`.
    fn execute(url: &str, sql: &str) -> Result<(), String>;

    /// The statement dropping database `name` (with whatever still connects to it).
    fn drop_database(name: &str) -> String;

    /// Ends every other session on the database at `url`; returns how many.
    fn kill_sessions(url: &str) -> usize;

    /// Every message row as `(producer, seq, message)`, in id order.
    fn rows(url: &str) -> Vec<(i64, i64, String)>;

    /// `(input_id, offset, line)` of each input, in id order.
    fn inputs(url: &str) -> Vec<(i64, i64, i64)>;

    /// Restarts the server; returns once it was told to start again.
    fn restart(admin: &str);

    /// Starts the server after it stopped (best effort: called while a test ends).
    fn start(admin: &str);
}

// ---------------------------------------------------------------------------------------------
// The server, and a turn on it

/// Taken for reading by every test, for writing by the one that restarts the server (a test
/// binary tests one server).
static SERVER: RwLock<()> = RwLock::new(());

/// A test's turn on the server, held until the test ends: shared, or alone.
pub enum Turn {
    Shared(RwLockReadGuard<'static, ()>),
    Alone(RwLockWriteGuard<'static, ()>),
}

/// The URL in `var`; `None`, after one SKIP line, when it is not set.
pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            super::skip(format_args!("{var} not set"));
            None
        }
    }
}

/// The server's URL, with the server shared with the other tests.
pub fn shared<S: Server>() -> Option<(String, Turn)> {
    let url = server_url(S::VAR)?;
    let turn = SERVER.read().unwrap_or_else(PoisonError::into_inner);
    Some((url, Turn::Shared(turn)))
}

/// The server's URL, with no other test using the server.
pub fn alone<S: Server>() -> Option<(String, Turn)> {
    let url = server_url(S::VAR)?;
    let turn = SERVER.write().unwrap_or_else(PoisonError::into_inner);
    Some((url, Turn::Alone(turn)))
}

/// `(scheme, authority)` of `scheme://authority/path?query`.
pub fn split_url(url: &str) -> (&str, &str) {
    let (scheme, rest) = url.split_once("://").expect("a scheme:// URL");
    (scheme, rest.split(['/', '?']).next().unwrap_or(rest))
}

/// `url` with its database (path) replaced by `db`; its query kept.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_at(url.find('?').unwrap_or(url.len()));
    let (scheme, authority) = split_url(base);
    format!("{scheme}://{authority}/{db}{query}")
}

/// `url` with its user (and password) replaced by `userinfo`.
pub fn with_user(url: &str, userinfo: &str) -> String {
    let (scheme, authority) = split_url(url);
    let rest = &url[scheme.len() + "://".len() + authority.len()..];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{userinfo}@{host}{rest}")
}

/// Checks `done` every 20 ms until it holds (`true`) or `within` has passed (`false`): the
/// condition decides, the pause only spares the CPU a server needs to stop and start.
pub fn poll(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// Waits (at most two minutes) until `done`.
pub fn wait_until(what: &str, done: impl FnMut() -> bool) {
    assert!(
        poll(Duration::from_secs(120), done),
        "{what}: not within 120 s"
    );
}

// ---------------------------------------------------------------------------------------------
// A database per test

/// A database of one test, `pc_{test}_{pid}`: created empty, dropped (with whatever still
/// connects to it) when the test ends, also when it fails.
pub struct TestDb<S: Server> {
    /// The server's URL, as the test was given it.
    pub admin: String,
    name: String,
    /// The URL of this database.
    pub url: String,
    /// Released after the database is dropped; `None` for a second database of a test.
    _turn: Option<Turn>,
    _server: PhantomData<S>,
}

impl<S: Server> TestDb<S> {
    /// A database on the server shared with the other tests; `None` (after the SKIP line)
    /// when the server's variable is not set.
    pub fn shared(test: &str) -> Option<Self> {
        let (admin, turn) = shared::<S>()?;
        Some(Self::new(admin, test, Some(turn)))
    }

    /// A database on the server no other test uses meanwhile (the test may restart it).
    pub fn alone(test: &str) -> Option<Self> {
        let (admin, turn) = alone::<S>()?;
        Some(Self::new(admin, test, Some(turn)))
    }

    /// Another database on the same server, within this test's turn.
    pub fn beside(&self, test: &str) -> Self {
        Self::new(self.admin.clone(), test, None)
    }

    fn new(admin: String, test: &str, turn: Option<Turn>) -> Self {
        let name = format!("pc_{test}_{}", std::process::id());
        for sql in [S::drop_database(&name), format!("CREATE DATABASE {name}")] {
            S::execute(&admin, &sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        Self {
            url: with_database(&admin, &name),
            admin,
            name,
            _turn: turn,
            _server: PhantomData,
        }
    }

    /// Ends every other session on this database (pc-host's connections); returns how many.
    pub fn kill_sessions(&self) -> usize {
        S::kill_sessions(&self.url)
    }

    /// Every message row as `(producer, seq, message)`, in id order.
    pub fn rows(&self) -> Vec<(i64, i64, String)> {
        S::rows(&self.url)
    }

    /// `(input_id, offset, line)` of each input, in id order.
    pub fn inputs(&self) -> Vec<(i64, i64, i64)> {
        S::inputs(&self.url)
    }
}

impl<S: Server> Drop for TestDb<S> {
    fn drop(&mut self) {
        let _ = S::execute(&self.admin, &S::drop_database(&self.name));
    }
}

// ---------------------------------------------------------------------------------------------
// pc-host against the database

/// The words of `args` (no argument these tests pass holds a space).
fn words(args: &str) -> Vec<&str> {
    args.split_whitespace().collect()
}

impl<S: Server> TestDb<S> {
    /// `--sink URL ARGS`.
    fn sink_args<'a>(&'a self, args: &'a str) -> Vec<&'a str> {
        let mut all = vec!["--sink", self.url.as_str()];
        all.extend(words(args));
        all
    }

    /// `pc-host --sink URL ARGS`, to its end.
    pub fn run(&self, s: &Scratch, args: &str) -> Out {
        run(s.dir(), &self.sink_args(args))
    }

    /// `pc-host --sink URL --output json --report-interval 0 ARGS`, to its end.
    pub fn run_json(&self, s: &Scratch, args: &str) -> Out {
        self.run(s, &format!("--output json --report-interval 0 {args}"))
    }

    /// `pc-host --sink URL ARGS`, running.
    pub fn start(&self, s: &Scratch, args: &str) -> Running {
        Running::start(s, &self.sink_args(args))
    }

    /// Asserts `pc-host verify --sink URL` says OK.
    pub fn assert_verify(&self, s: &Scratch) {
        assert_verify(s.dir(), &["verify", "--sink", &self.url]);
    }

    /// A one-second run into this database that records an interval every 0.1 s, then
    /// `pc-host plot --sink URL`: it draws that run (the last with intervals), with as many
    /// intervals as the database holds for it (`intervals(run)` counts them), under a title
    /// that names the run and the database.
    pub fn assert_plots(&self, s: &Scratch, intervals: impl Fn(i64) -> i64) {
        let args = "--output json --duration 1 --rps 1000 --report-interval 0.1";
        let v = assert_ok(&self.run(s, args));
        let run_id = run_id(&v);
        let n = intervals(run_id);
        assert!(n > 0, "the run recorded no intervals");
        let out = run(s.dir(), &["plot", "--sink", &self.url, "-o", "p.svg"]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let said = format!(
            "plot: run {run_id} of {} ({n} intervals) -> p.svg",
            self.url
        );
        assert_eq!(out.stdout.trim_end(), said);
        let svg = std::fs::read_to_string(s.path("p.svg")).expect("the plot");
        assert!(svg.starts_with("<!-- pc-host plot -->"), "not marked");
        let title = format!("pc-host run {run_id} of {}", self.url);
        assert!(svg.contains(&title), "no title {title:?}");
    }

    /// Opens the library's writer (`open`) on this database, as a run of `producers`
    /// generator threads that waits `busy` for a lock; returns it and its run id.
    pub fn open_writer<W, E: Debug>(
        &self,
        producers: usize,
        busy: Duration,
        open: impl FnOnce(&ServerUrl, &RunStart<'_>) -> Result<(W, i64), E>,
    ) -> (W, i64) {
        self.try_open_writer(producers, busy, false, open)
            .expect("open the writer")
    }

    /// [`open_writer`](Self::open_writer), returning what `open` returned; `delivered`: as
    /// for a run whose records come from a broker (a NATS source).
    pub fn try_open_writer<W, E>(
        &self,
        producers: usize,
        busy: Duration,
        delivered: bool,
        open: impl FnOnce(&ServerUrl, &RunStart<'_>) -> Result<(W, i64), E>,
    ) -> Result<(W, i64), E> {
        let url = ServerUrl {
            url: self.url.clone(),
            shown: self.url.clone(),
        };
        let start = RunStart {
            producers,
            config_json: "{}",
            started_at: now_ns(),
            busy,
            retry_for: std::time::Duration::from_secs(60),
            synchronous: Synchronous::Normal,
            page_size: None,
            rps: 0,
            delivered,
            nats: &std::sync::Arc::default(),
        };
        open(&url, &start)
    }

    /// Restarts the server (the test holds it [`alone`]) and waits until it answers again;
    /// the guard returned starts it again at the end of the test if it is down then.
    pub fn restart_server(&self) -> LeaveRunning<S> {
        let leave = LeaveRunning(self.admin.clone(), PhantomData);
        S::restart(&self.admin);
        wait_until("the server answers again", || answers::<S>(&self.admin));
        leave
    }
}

fn answers<S: Server>(admin: &str) -> bool {
    S::execute(admin, "SELECT 1").is_ok()
}

/// Starts the server again, when dropped, if a test stopped it and did not bring it back.
pub struct LeaveRunning<S: Server>(String, PhantomData<S>);

impl<S: Server> Drop for LeaveRunning<S> {
    fn drop(&mut self) {
        if !answers::<S>(&self.0) {
            S::start(&self.0);
            poll(Duration::from_secs(120), || answers::<S>(&self.0));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Summaries, inputs, records

/// Asserts the run exited 0 and its JSON summary says ok; returns the summary.
pub fn assert_ok(out: &Out) -> Value {
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let v = json(out);
    assert_eq!(v["ok"], true, "{v}");
    v
}

/// As [`assert_ok`], and everything produced was stored.
pub fn assert_all_stored(out: &Out) -> Value {
    let v = assert_ok(out);
    assert_eq!(u(&v, "stored"), u(&v, "produced"), "{v}");
    // SQLite's settings were not in effect: the record of the run does not claim them.
    let cfg = &v["config"];
    assert!(
        cfg["synchronous"].is_null() && cfg["page_size"].is_null(),
        "{cfg}"
    );
    v
}

pub fn run_id(v: &Value) -> i64 {
    v["run_id"].as_i64().expect("run_id")
}

/// The entries of a `--dead-letter` file.
pub fn dead_letters(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read the dead-letter file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON dead-letter entry"))
        .collect()
}

/// Writes `lines`, each ended by `\n`, to `name` in the scratch directory (where pc-host
/// runs); returns the `--source` naming it.
pub fn write_input(s: &Scratch, name: &str, lines: &[String]) -> String {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(s.path(name), text).expect("write the input file");
    format!("file:{name}")
}

/// Asserts the table holds exactly the first `k` of `lines`, once each, in order, as input
/// 1; returns `k`.
pub fn stored_prefix<S: Server>(db: &TestDb<S>, lines: &[String]) -> usize {
    let rows = db.rows();
    for (k, (producer, seq, message)) in rows.iter().enumerate() {
        assert!(
            *producer == 1 && *seq == k as i64 && lines.get(k) == Some(message),
            "row {} is (input {producer}, seq {seq}, {message:?}); expected line {k}: {:?}",
            k + 1,
            lines.get(k)
        );
    }
    rows.len()
}

/// As [`stored_prefix`], with the input's committed position just after line `k`.
pub fn committed_prefix<S: Server>(db: &TestDb<S>, lines: &[String]) -> usize {
    let k = stored_prefix(db, lines);
    let offset: usize = lines[..k].iter().map(|l| l.len() + 1).sum();
    assert_eq!(
        db.inputs(),
        [(1, offset as i64, k as i64)],
        "the committed position is just after the last stored line ({k} rows)"
    );
    k
}

/// Asserts the table holds every one of `lines` once, in order, and the input's committed
/// position is at its end.
pub fn assert_file_stored_once<S: Server>(db: &TestDb<S>, lines: &[String]) {
    assert_eq!(
        committed_prefix(db, lines),
        lines.len(),
        "every line stored"
    );
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as i64
}

/// Line `seq` of input (or producer) `producer`, ending at byte `end_offset`.
pub fn record(producer: u32, seq: u64, end_offset: u64) -> Record {
    Record {
        created_at: now_ns(),
        producer,
        seq,
        end_offset,
        text: format!("line {seq:06}"),
        ..Record::default()
    }
}

pub fn refs(records: &[Record]) -> Vec<&Record> {
    records.iter().collect()
}

/// Appends `text` to `name` in the scratch directory.
pub fn append_input(s: &Scratch, name: &str, text: &str) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(s.path(name))
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("append to the input file");
}

// ---------------------------------------------------------------------------------------------
// What the tests of both servers check

/// Ingests `lines` with `ARGS`, SIGKILLed in each `(point, MORE)` run (`ARGS MORE`) once its
/// progress showed `point` stored (each kill leaving a longer committed prefix, not all), then
/// to the end: asserts the last run stores only the rest, every line is then stored once, and
/// verify agrees.
pub fn assert_kill_9_then_rerun_stores_each_line_once<S: Server>(
    db: &TestDb<S>,
    s: &Scratch,
    lines: &[String],
    args: &str,
    kills: &[(u64, &str)],
) {
    let source = write_input(s, "in.log", lines);
    let mut k = 0;
    for &(point, more) in kills {
        let mut r = db.start(s, &format!("--source {source} {args} {more}"));
        let seen = r.err.wait_stored_at_least(point);
        let status = r.kill();
        assert!(!status.success(), "the run ended before the kill: {status}");
        // The server may still be finishing a COMMIT the killed process sent: read rows and
        // position only once none of its sessions is left.
        wait_until("the killed run's sessions are gone", || {
            db.kill_sessions() == 0
        });
        let now = committed_prefix(db, lines);
        assert!(now >= k + seen as usize, "progress showed {seen} stored");
        assert!(now < lines.len(), "the killed run stored the whole file");
        k = now;
    }
    let v = assert_all_stored(&db.run_json(s, &format!("--source {source}")));
    let rest = (lines.len() - k) as u64;
    assert_eq!(u(&v, "stored"), rest, "only the rest: {v}");
    assert_file_stored_once(db, lines);
    db.assert_verify(s);
}

/// Ingests `first`, whose last line has no end yet, then again unchanged, then with `rest`
/// appended: asserts the first run stores each line of `first`, the second nothing, the third
/// the completed line and those after it, replacing the partial line's row; and at the end
/// every line stored once, the position at the end of the file, and verify agrees.
pub fn assert_partial_line_replaced_once_completed<S: Server>(
    db: &TestDb<S>,
    s: &Scratch,
    first: &str,
    rest: &str,
) {
    let lines = |text: &str| -> Vec<String> { text.lines().map(str::to_string).collect() };
    let (before, after) = (lines(first), lines(&format!("{first}{rest}")));
    std::fs::write(s.path("in.log"), first).expect("write the input file");
    let stored = || {
        u(
            &assert_all_stored(&db.run_json(s, "--source file:in.log")),
            "stored",
        )
    };
    assert_eq!(
        stored(),
        before.len() as u64,
        "every line, the partial one too"
    );
    assert_eq!(stored_prefix(db, &before), before.len());
    assert_eq!(stored(), 0, "an unchanged file stores nothing");
    append_input(s, "in.log", rest);
    let completed_and_new = after.len() - before.len() + 1;
    assert_eq!(
        stored(),
        completed_and_new as u64,
        "the completed line and the new ones"
    );
    assert_file_stored_once(db, &after);
    db.assert_verify(s);
}

/// A file of fixed-width lines truncated in place and refilled past its committed offset
/// between runs (`copytruncate` of a busy log): a line end falls at the offset in the new
/// text too, and only the mark the sink committed with the offset (the bytes before it) tells
/// the new text from the old. The next run reads the file from its start, numbering on; the
/// one after reads nothing.
pub fn assert_fixed_width_rewrite_is_read_from_its_start<S: Server>(db: &TestDb<S>, s: &Scratch) {
    let lines =
        |tag: &str, n: usize| -> Vec<String> { (1..=n).map(|i| format!("{tag}{i:04}")).collect() };
    let stored = |stderr_has: Option<&str>| {
        let out = db.run_json(s, "--source file:in.log");
        if let Some(needle) = stderr_has {
            assert!(out.stderr.contains(needle), "{}", out.stderr);
        }
        u(&assert_all_stored(&out), "stored")
    };
    let old = lines("old", 10);
    write_input(s, "in.log", &old);
    assert_eq!(stored(None), 10);
    let new = lines("NEW", 20);
    write_input(s, "in.log", &new); // truncated, then refilled: the same file
    assert_eq!(stored(Some("rewritten in place since it was read")), 20);
    assert_eq!(stored(None), 0, "read once");
    let want: Vec<(i64, i64, String)> = old
        .iter()
        .chain(&new)
        .enumerate()
        .map(|(i, t)| (1, i as i64, t.clone()))
        .collect();
    assert_eq!(db.rows(), want);
    db.assert_verify(s);
}

/// A file's birth time known to one run and not to another leaves it the same input at its
/// path (a re-run resumes it); two known birth times that differ are two files.
pub fn assert_birth_time_known_to_one_run_only_resumes<S: Server>(db: &TestDb<S>, s: &Scratch) {
    let lines: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
    write_input(s, "in.log", &lines);
    let input = |out: &Out| assert_all_stored(out)["inputs"][0]["input_id"].as_i64();
    let run = || db.run_json(s, "--source file:in.log");
    let first = run();
    let set_born = |born: &str| {
        let sql = format!("UPDATE inputs SET born = {born}");
        S::execute(&db.url, &sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    };
    set_born("NULL");
    let unknown = run();
    assert_eq!(input(&unknown), input(&first), "{}", unknown.stdout);
    assert_eq!(
        u(&assert_all_stored(&unknown), "stored"),
        0,
        "nothing stored again"
    );
    if std::fs::metadata(s.path("in.log"))
        .and_then(|m| m.created())
        .is_err()
    {
        println!("SKIP the differing birth time: this file system records none");
        return;
    }
    // The run above recorded the birth time it knew (else this changes no row, and the next
    // run resumes the input by its path).
    set_born("born + 1");
    let other = run();
    assert_ne!(
        input(&other),
        input(&first),
        "another file: {}",
        other.stdout
    );
    assert_eq!(
        u(&assert_all_stored(&other), "stored"),
        10,
        "read from its start"
    );
}

/// A last line stored without its end, completed by a later run into a line rejected at read
/// (invalid UTF-8): the fragment's row goes, in the transaction that moves the input past the
/// line: with the next line's record (`then` non-empty), or with the run's final position.
pub fn assert_rejected_completion_leaves_no_fragment<S: Server>(
    db: &TestDb<S>,
    s: &Scratch,
    then: &str,
) {
    std::fs::write(s.path("in.log"), "one\nabc").expect("write the input file");
    assert_all_stored(&db.run_json(s, "--source file:in.log"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.path("in.log"))
        .expect("open the input file");
    f.write_all(b"x\xffy\n").expect("append");
    f.write_all(then.as_bytes()).expect("append");
    drop(f);
    let v = assert_ok(&db.run_json(s, "--source file:in.log"));
    assert_eq!(u(&v, "rejected"), 1, "{v}");
    let rows: Vec<(i64, String)> = db.rows().into_iter().map(|(_, seq, m)| (seq, m)).collect();
    let mut want = vec![(0, "one".to_string())];
    if !then.is_empty() {
        want.push((2, then.trim_end().to_string()));
    }
    assert_eq!(rows, want, "the fragment \"abc\" must not stay");
}

/// Waits for the lines saying a commit is retried, then that the sink recovered.
pub fn wait_retried_then_recovered(r: &mut Running) {
    r.err.wait("saying the commit is retried", |l| {
        l.contains("retrying for up to")
    });
    r.err.wait("saying the sink recovered", |l| {
        l.contains("the sink recovered")
    });
}

/// Ingests `lines` with `ARGS` (a rate, `--retry-for`), restarts the server once `after` are
/// stored, and asserts the run retried, recovered and stored every line once, and verify
/// agrees.
pub fn assert_restart_mid_ingest_loses_nothing<S: Server>(
    db: &TestDb<S>,
    s: &Scratch,
    lines: &[String],
    after: u64,
    args: &str,
) {
    let source = write_input(s, "in.log", lines);
    let args = format!("--source {source} {args} --report-interval 0.05 --output json");
    let mut r = db.start(s, &args);
    r.err.wait_stored_at_least(after);
    let _leave_running = db.restart_server();
    wait_retried_then_recovered(&mut r);
    let v = assert_all_stored(&finish(r));
    assert_eq!(u(&v, "stored"), lines.len() as u64, "{v}");
    assert!(u(&v, "retries") >= 1, "{v}");
    assert_file_stored_once(db, lines);
    db.assert_verify(s);
}

/// Asserts a run and a verify against the database both fail with one line saying its
/// tables are not pc-host's, the run's naming the database.
pub fn assert_refused_as_not_pc_hosts<S: Server>(db: &TestDb<S>, s: &Scratch) {
    let out = db.run(s, "--messages 10 --report-interval 0");
    assert_one_line_error(&out, 1, "not pc-host's");
    assert!(out.stderr.contains(&db.url), "{}", out.stderr);
    let out = run(s.dir(), &["verify", "--sink", &db.url]);
    assert_one_line_error(&out, 1, "not pc-host's");
}

/// `url` with its password, if any, shown as `***`.
pub fn hide_password(url: &str) -> String {
    let (scheme, authority) = split_url(url);
    match authority.rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or(userinfo);
            let rest = &url[scheme.len() + "://".len() + userinfo.len()..];
            format!("{scheme}://{user}:***{rest}")
        }
        _ => url.to_string(),
    }
}

/// Asserts `pc-host ARGS` fails with one line saying `needle` and naming `url` with its
/// password shown as `***`, never the password itself.
pub fn assert_url_refused(s: &Scratch, args: &[&str], url: &str, needle: &str) {
    let out = run(s.dir(), args);
    assert_one_line_error(&out, 1, needle);
    let shown = hide_password(url);
    assert!(out.stderr.contains(&shown), "URL not named: {}", out.stderr);
    if let Some(password) = split_url(url)
        .1
        .rsplit_once('@')
        .and_then(|(u, _)| u.split_once(':'))
    {
        assert!(
            !out.stderr.contains(password.1),
            "password shown: {}",
            out.stderr
        );
    }
}

/// A port nothing listens on (bound, then let go).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a port")
        .port()
}

/// A port that answers like a web server, not like a database server, to every connection.
pub fn not_a_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            // Said at once and ended (a MySQL client waits for the server to speak first);
            // what the client sent is read to its end, so that closing does not reset it.
            let _ = conn.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
            let _ = conn.shutdown(Shutdown::Write);
            let _ = std::io::copy(&mut conn, &mut std::io::sink());
        }
    });
    port
}

/// Arguments of a generated run into `sink` for a test that ends it by breaking the sink: 2000
/// records a second for up to 600 s, one producer and one consumer, retries off, the JSON
/// summary.
pub fn run_to_cut(sink: &str) -> Vec<&str> {
    vec![
        "--sink",
        sink,
        "--producers",
        "1",
        "--consumers",
        "1",
        "--rps",
        "2000",
        "--duration",
        "600",
        "--retry-for",
        "0",
        "--output",
        "json",
    ]
}

/// The database out of reach at the end of a run (the forwarder to it cut mid-run, retries
/// off): the count back fails, and the summary's `stored` is what the run committed, said to
/// be so (`stored_counted_back` false), not 0; the counts still add up to what was produced.
pub fn assert_stored_is_what_was_committed_when_the_count_back_fails<S: Server>(
    db: &TestDb<S>,
    default_port: u16,
) {
    let s = Scratch::new("count-back-fails");
    let (forwarder, via) = Forwarder::for_url(&db.url, default_port);
    let mut args = run_to_cut(&via.url);
    args.extend(["--report-interval", "0.05"]);
    let mut r = Running::start(&s, &args);
    r.err.wait_stored_at_least(100);
    forwarder.cut();
    let out = finish(r);
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    let v = json(&out);
    let held = db.rows().len() as u64;
    assert!(held >= 100, "{held} rows");
    // The batch whose COMMIT the cut interrupted may have committed all the same: it is
    // counted as not stored (unconfirmed), so the rows held are at least the run's figure
    // and at most that batch more.
    let stored = u(&v, "stored");
    assert!(
        stored <= held && held <= stored + u(&v, "not_stored"),
        "{held} rows held: {v}"
    );
    assert!(stored >= 100, "{v}");
    assert_eq!(v["stored_counted_back"], false, "{v}");
    // Without a count back, nothing tells whether the cut batch is stored.
    assert!(v["stored_after_all"].is_null(), "{v}");
    assert_eq!(
        u(&v, "produced"),
        u(&v, "stored") + u(&v, "dead_lettered") + u(&v, "not_stored"),
        "{v}"
    );
    // Each failure said once, naming what failed.
    let said = "counting the stored messages";
    assert_eq!(out.stderr.matches(said).count(), 1, "{}", out.stderr);
}

/// A TCP forwarder on a local port to `target` (`HOST:PORT`), for a server that must become
/// unreachable in the middle of a test: [`Forwarder::cut`] closes every forwarded connection
/// and stops accepting, so a reconnect is refused; or whose reply to one request is lost:
/// [`Forwarder::swallow_reply`].
pub struct Forwarder {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    swallow: Swallow,
}

/// A server reply to swallow ([`Forwarder::swallow_reply`]): what it contains once armed, and
/// whether one was swallowed.
#[derive(Clone, Default)]
struct Swallow(std::sync::Arc<std::sync::Mutex<(Option<Vec<u8>>, bool)>>);

impl Swallow {
    /// Whether `bytes` hold the armed pattern ending past `new_from` (in bytes not seen
    /// before); if so, disarms and counts it swallowed.
    fn takes(&self, bytes: &[u8], new_from: usize) -> bool {
        let mut state = self.0.lock().unwrap();
        let hit = state.0.as_ref().is_some_and(|p| {
            bytes
                .windows(p.len())
                .enumerate()
                .any(|(at, w)| at + p.len() > new_from && w == p.as_slice())
        });
        if hit {
            *state = (None, true);
        }
        hit
    }
}

/// Copies `from` to `to` until either ends; a chunk that `swallow` takes is not forwarded, and
/// ends both connections (the client sees its connection lost, the server's reply unread).
fn pump(mut from: std::net::TcpStream, mut to: std::net::TcpStream, swallow: Option<Swallow>) {
    use std::io::Read as _;
    let mut buf = vec![0u8; 64 * 1024];
    // The last bytes of the chunk before, so a pattern cut between two reads is still seen.
    let mut seen: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(swallow) = &swallow {
            let new_from = seen.len();
            seen.extend_from_slice(&buf[..n]);
            // A reply forwarded before the pattern was armed is not taken again.
            if swallow.takes(&seen, new_from) {
                let _ = from.shutdown(Shutdown::Both);
                break;
            }
            let keep = seen.len().saturating_sub(64);
            seen.drain(..keep);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

impl Forwarder {
    pub fn to(target: &str) -> Self {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port");
        let port = listener.local_addr().expect("its address").port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let swallow = Swallow::default();
        let (target, stop, conns) = (target.to_owned(), cut.clone(), open.clone());
        let replies = swallow.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                // `cut` sets `stop` before it takes the lock: looked at under the lock, a
                // connection accepted meanwhile is either cut there or never forwarded.
                let mut held = conns.lock().unwrap();
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                held.extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (from, to, swallow) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        None,
                    ),
                    (server, client, Some(replies.clone())),
                ] {
                    std::thread::spawn(move || pump(from, to, swallow));
                }
            }
        });
        Self {
            port,
            cut,
            open,
            swallow,
        }
    }

    /// From now on, the first reply from the server that contains `pattern` is not forwarded:
    /// its connection is closed instead, on both sides. The server has sent the reply (so has
    /// done what it answers), and the client never reads it: a lost reply, not a lost request.
    pub fn swallow_reply(&self, pattern: &[u8]) {
        *self.swallow.0.lock().unwrap() = (Some(pattern.to_vec()), false);
    }

    /// Whether a reply was swallowed since [`Forwarder::swallow_reply`].
    pub fn swallowed(&self) -> bool {
        self.swallow.0.lock().unwrap().1
    }

    /// A forwarder to the server `url` names (its port, else `default_port`), and `url`
    /// pointed at the forwarder instead.
    pub fn for_url(url: &str, default_port: u16) -> (Self, ServerUrl) {
        let (scheme, rest) = url.split_once("://").expect("a server URL");
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((user, hp)) => (format!("{user}@"), hp),
            None => (String::new(), authority),
        };
        let target = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:{default_port}")
        };
        let forwarder = Self::to(&target);
        let via = format!("{scheme}://{user}127.0.0.1:{}{tail}", forwarder.port);
        let url = ServerUrl {
            url: via.clone(),
            shown: via,
        };
        (forwarder, url)
    }

    /// Closes every forwarded connection and refuses new ones from now on.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for conn in self.open.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
        // Wakes the accept loop, which then sees `cut` and drops the listener.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl Drop for Forwarder {
    /// A test that ends (or panics) without cutting leaves no thread forwarding.
    fn drop(&mut self) {
        self.cut();
    }
}

/// Whether this file system records birth times (a renamed file is then still the same input).
pub fn records_birth_times(path: &Path) -> bool {
    std::fs::metadata(path).and_then(|m| m.created()).is_ok()
}

/// A file renamed between two runs (rotated while pc-host was not running): the run given its
/// new name resumes it where it was committed, says so, and stores no line twice.
pub fn assert_renamed_file_resumes<S: Server>(db: &TestDb<S>, s: &Scratch) {
    let lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    std::fs::write(s.path("app.log"), lines.join("\n") + "\n").expect("write the input file");
    if !records_birth_times(&s.path("app.log")) {
        super::skip("this file system records no birth times");
        return;
    }
    let first = assert_all_stored(&db.run_json(s, "--source file:app.log --messages 40"));
    assert_eq!(u(&first, "stored"), 40, "{first}");
    std::fs::rename(s.path("app.log"), s.path("app.log.1")).expect("rename the input");
    let out = db.run_json(s, "--source file:app.log.1");
    let rest = assert_all_stored(&out);
    assert_eq!(
        u(&rest, "stored"),
        60,
        "the rest, not the file again: {rest}"
    );
    assert!(
        out.stderr.contains("the file read before as") && out.stderr.contains("after line 40"),
        "{}",
        out.stderr
    );
    assert_file_stored_once(db, &lines);
}

/// A record a broker delivered as a stream's message (key run 0): its key is `producer` (the
/// stream's input) and `seq`.
pub fn delivered(producer: u32, seq: u64) -> Record {
    Record {
        created_at: 1,
        producer,
        seq,
        text: format!("{producer}/{seq}"),
        delivery: Some(Box::new(pc_host::message::Delivery {
            key_run: 0,
            published_by: 0,
            ack: String::new(),
        })),
        ..Record::default()
    }
}

/// Writes `stored` twice through `writer` (kept for deliveries), the second time a duplicate,
/// then `refused`, which the test's constraint named `constraint` refuses: that write must
/// fail naming it, not count the record as a duplicate.
pub fn assert_only_the_key_makes_a_duplicate(
    writer: &mut impl pc_host::sink::Sink,
    stored: &Record,
    refused: &Record,
    constraint: &str,
) {
    writer.write(&[stored]).expect("a first delivery");
    writer.write(&[stored]).expect("the same delivery again");
    assert_eq!(writer.duplicates(), 1);
    let e = writer
        .write(&[refused])
        .expect_err("another key, refused by the constraint");
    assert!(e.error.to_string().contains(constraint), "{:#}", e.error);
    assert_eq!(writer.duplicates(), 1, "not taken for a duplicate");
}
