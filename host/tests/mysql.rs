//! The MySQL / MariaDB sink against a real server (`PC_TEST_MYSQL_URL`, e.g.
//! `mysql://root@127.0.0.1:3306/test`; unset: each test prints `SKIP` and passes). Each test
//! works in a database of its own, dropped at the end. The server restart test runs alone
//! (a lock the other tests share) and leaves the server running.
//!
//! No sleeps: the tests follow the binary's progress lines and wait on conditions with a
//! deadline.

mod common;

use std::collections::HashSet;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable as _;
use mysql::{Conn, Opts};
use serde_json::Value;

use common::{Out, Running, Scratch, assert_one_line_error, assert_verify, finish, json, run, u};
use pc_host::config::Synchronous;
use pc_host::config::url::ServerUrl;
use pc_host::message::Record;
use pc_host::position::FileKey;
use pc_host::sink::{ErrorKind, RunStart, Sink as _};

const VAR: &str = "PC_TEST_MYSQL_URL";

/// Shared by the tests; the restart test takes it alone.
static SERVER: RwLock<()> = RwLock::new(());

// ---------------------------------------------------------------------------------------------
// The server and the test databases

/// The server URL, or `None` after printing the skip line.
fn base_url() -> Option<String> {
    match std::env::var(VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("SKIP: {VAR} not set");
            None
        }
    }
}

fn shared() -> RwLockReadGuard<'static, ()> {
    SERVER.read().unwrap_or_else(PoisonError::into_inner)
}

/// `url` with its database replaced by `db` (its query kept).
fn with_database(url: &str, db: &str) -> String {
    let after = url.find("//").map_or(0, |i| i + 2);
    let (head, tail) = url.split_at(after);
    let (rest, query) = match tail.split_once('?') {
        Some((r, q)) => (r, format!("?{q}")),
        None => (tail, String::new()),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{head}{authority}/{db}{query}")
}

/// `url` with its user (and password) replaced by `userinfo`.
fn with_user(url: &str, userinfo: &str) -> String {
    let after = url.find("//").map_or(0, |i| i + 2);
    let (head, tail) = url.split_at(after);
    let host = match tail.split_once('@') {
        Some((_, h)) if !h.split('/').next().unwrap_or("").is_empty() => h,
        _ => tail,
    };
    format!("{head}{userinfo}@{host}")
}

fn connect(url: &str) -> mysql::Result<Conn> {
    let url = url.replacen("mariadb://", "mysql://", 1);
    Conn::new(Opts::from_url(&url).expect("a valid URL"))
}

/// A database of the test's own, dropped when the test ends (also when it fails).
struct TestDb {
    base: String,
    name: String,
    url: String,
}

impl TestDb {
    fn new(base: &str, test: &str) -> Self {
        let name = format!("pc_{test}_{}", std::process::id());
        let mut admin = connect(base).expect("connect to the test server");
        admin
            .query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
            .unwrap();
        admin
            .query_drop(format!("CREATE DATABASE `{name}`"))
            .unwrap();
        Self {
            base: base.to_string(),
            url: with_database(base, &name),
            name,
        }
    }

    fn conn(&self) -> Conn {
        connect(&self.url).expect("connect to the test database")
    }

    fn count(&self, sql: &str) -> i64 {
        self.conn().query_first::<i64, _>(sql).unwrap().unwrap_or(0)
    }

    /// Every message row as (producer, seq, message), in id order.
    fn rows(&self) -> Vec<(i64, i64, String)> {
        self.conn()
            .query("SELECT producer, seq, message FROM messages ORDER BY id")
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = connect(&self.base) {
            let _ = admin.query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name));
        }
    }
}

/// Closes every other connection to `db` (`KILL`); returns how many.
fn kill_connections(db: &TestDb) -> usize {
    let mut admin = db.conn();
    let ids: Vec<u64> = admin
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
            (&db.name,),
        )
        .unwrap();
    for id in &ids {
        // A connection may have closed meanwhile.
        let _ = admin.query_drop(format!("KILL {id}"));
    }
    ids.len()
}

// ---------------------------------------------------------------------------------------------
// Running pc-host

fn sink_args<'a>(db: &'a TestDb, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--sink", db.url.as_str()];
    v.extend_from_slice(extra);
    v
}

/// `pc-host --source SOURCE --sink DB --output json` to its end.
fn ingest(s: &Scratch, db: &TestDb, source: &str, extra: &[&str]) -> Out {
    let mut args = sink_args(db, &["--source", source, "--report-interval", "0"]);
    args.extend_from_slice(&["--output", "json"]);
    args.extend_from_slice(extra);
    run(s.dir(), &args)
}

fn assert_ok(out: &Out) -> Value {
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let v = json(out);
    assert_eq!(v["ok"], true, "{v}");
    v
}

/// Writes `lines`, each ended by `\n`, to `path`.
fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn numbered_lines(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("line {i:05} of the input"))
        .collect()
}

/// The file's rows are exactly its lines, in order, each once; its input is at its end.
fn assert_file_stored_once(db: &TestDb, lines: &[String], len: u64) {
    let rows = db.rows();
    let keys: HashSet<(i64, i64)> = rows.iter().map(|&(p, q, _)| (p, q)).collect();
    assert_eq!(keys.len(), rows.len(), "no (input, line) stored twice");
    let texts: Vec<&str> = rows.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(texts.len(), lines.len(), "every line stored once");
    assert!(texts == lines, "the rows are the file's lines, in order");
    let (offset, line): (i64, i64) = db
        .conn()
        .query_first("SELECT `offset`, line FROM inputs")
        .unwrap()
        .unwrap();
    assert_eq!((offset as u64, line as usize), (len, lines.len()));
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn a_generated_run_stores_every_message_once_and_verify_says_ok() {
    let Some(base) = base_url() else { return };
    let _shared = shared();
    let db = TestDb::new(&base, "gen");
    let s = Scratch::new("mysql-gen");
    let out = run(
        s.dir(),
        &sink_args(
            &db,
            &[
                "--producers",
                "3",
                "--consumers",
                "3",
                "--messages",
                "30000",
                "--rps",
                "0",
                "--report-interval",
                "0",
                "--output",
                "json",
            ],
        ),
    );
    let v = assert_ok(&out);
    assert_eq!((u(&v, "produced"), u(&v, "stored")), (30_000, 30_000));
    let run_id = v["run_id"].as_i64().unwrap();
    assert_eq!(
        db.count("SELECT COUNT(DISTINCT run_id, producer, seq) FROM messages"),
        30_000
    );
    assert_eq!(
        db.count(&format!(
            "SELECT SUM(produced) FROM run_producers WHERE run_id = {run_id}"
        )),
        30_000
    );
    let (completed, finished): (bool, bool) = db
        .conn()
        .exec_first(
            "SELECT completed, finished_at IS NOT NULL FROM runs WHERE run_id = ?",
            (run_id,),
        )
        .unwrap()
        .unwrap();
    assert!(completed && finished);
    // created_at is UTC, taken during the run.
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM messages \
             WHERE ABS(TIMESTAMPDIFF(SECOND, created_at, UTC_TIMESTAMP())) > 600"
        ),
        0
    );
    assert_verify(s.dir(), &["verify", "--sink", &db.url]);
}

#[test]
fn a_file_ingest_is_exactly_once_across_kill_9_and_a_rerun() {
    let Some(base) = base_url() else { return };
    let _shared = shared();
    let db = TestDb::new(&base, "kill9");
    let s = Scratch::new("mysql-kill9");
    let lines = numbered_lines(20_000);
    let file = s.path("in.log");
    write_lines(&file, &lines);
    let mut r = Running::start(
        &s,
        &sink_args(
            &db,
            &[
                "--source",
                "file:in.log",
                "--rps",
                "2000",
                "--report-interval",
                "0.05",
            ],
        ),
    );
    r.err.wait_stored_at_least(1);
    r.kill();
    let before = db.rows().len();
    assert!(
        before > 0 && before < lines.len(),
        "killed mid-file: {before} rows"
    );

    let v = assert_ok(&ingest(&s, &db, "file:in.log", &[]));
    assert_eq!(u(&v, "stored") as usize, lines.len() - before, "{v}");
    assert_file_stored_once(&db, &lines, std::fs::metadata(&file).unwrap().len());
    assert_verify(s.dir(), &["verify", "--sink", &db.url]);
}

#[test]
fn a_partial_last_line_completed_by_a_later_run_replaces_its_row() {
    let Some(base) = base_url() else { return };
    let _shared = shared();
    let db = TestDb::new(&base, "partial");
    let s = Scratch::new("mysql-partial");
    let file = s.path("in.log");
    std::fs::write(&file, "first\nsecond\nthi").unwrap();
    let v = assert_ok(&ingest(&s, &db, "file:in.log", &[]));
    assert_eq!(u(&v, "stored"), 3);
    let texts = |db: &TestDb| -> Vec<String> { db.rows().into_iter().map(|r| r.2).collect() };
    assert_eq!(texts(&db), ["first", "second", "thi"]);

    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"rd\nfourth\n")
        .unwrap();
    let v = assert_ok(&ingest(&s, &db, "file:in.log", &[]));
    assert_eq!(u(&v, "stored"), 2);
    assert_eq!(texts(&db), ["first", "second", "third", "fourth"]);
    let (offset, line, tail): (i64, i64, i64) = db
        .conn()
        .query_first("SELECT `offset`, line, tail FROM inputs")
        .unwrap()
        .unwrap();
    assert_eq!((offset, line, tail), (26, 4, 0));
    assert_verify(s.dir(), &["verify", "--sink", &db.url]);
}

#[test]
fn a_foreign_messages_table_is_refused_and_left_as_it_was() {
    let Some(base) = base_url() else { return };
    let _shared = shared();
    let db = TestDb::new(&base, "foreign");
    let s = Scratch::new("mysql-foreign");
    let seed = "CREATE TABLE messages (id INT AUTO_INCREMENT PRIMARY KEY, \
                message VARCHAR(256), created_at DATETIME)";
    let mut c = db.conn();
    c.query_drop(seed).unwrap();
    c.query_drop("INSERT INTO messages (message, created_at) VALUES ('seed', NOW())")
        .unwrap();
    let show = |c: &mut Conn| -> String {
        c.query_first::<(String, String), _>("SHOW CREATE TABLE messages")
            .unwrap()
            .unwrap()
            .1
    };
    let before = show(&mut c);

    let out = run(
        s.dir(),
        &sink_args(&db, &["--messages", "10", "--report-interval", "0"]),
    );
    assert_one_line_error(&out, 1, "not pc-host's");
    assert!(out.stderr.contains(&db.url), "{}", out.stderr);
    let out = run(s.dir(), &["verify", "--sink", &db.url]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("not pc-host's"), "{}", out.stderr);

    assert_eq!(show(&mut c), before, "the table was altered");
    let tables: Vec<String> = c.query("SHOW TABLES").unwrap();
    assert_eq!(tables, ["messages"], "pc-host created tables beside it");
    let rows: Vec<String> = c.query("SELECT message FROM messages").unwrap();
    assert_eq!(rows, ["seed"]);
}

#[test]
fn a_record_the_server_refuses_is_dead_lettered_and_the_rest_stored() {
    let Some(base) = base_url() else { return };
    let _shared = shared();
    let db = TestDb::new(&base, "refused");
    let s = Scratch::new("mysql-refused");
    // A first run creates the tables; then a trigger and a CHECK constraint refuse some texts.
    assert_ok(&run(
        s.dir(),
        &sink_args(
            &db,
            &[
                "--messages",
                "1",
                "--rps",
                "0",
                "--report-interval",
                "0",
                "--output",
                "json",
            ],
        ),
    ));
    let mut c = db.conn();
    c.query_drop(
        "CREATE TRIGGER no_poison BEFORE INSERT ON messages FOR EACH ROW \
         IF NEW.message LIKE '%poison%' THEN \
         SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poison refused'; END IF",
    )
    .unwrap();
    c.query_drop("ALTER TABLE messages ADD CONSTRAINT no_venom CHECK (message NOT LIKE '%venom%')")
        .unwrap();
    let lines: Vec<String> = (1..=10)
        .map(|n| match n {
            4 => "this line is poison".to_string(),
            7 => "this line is venom".to_string(),
            _ => format!("good line {n}"),
        })
        .collect();
    write_lines(&s.path("in.log"), &lines);
    let v = assert_ok(&ingest(
        &s,
        &db,
        "file:in.log",
        &["--dead-letter", "dead.jsonl"],
    ));
    assert_eq!(
        (u(&v, "produced"), u(&v, "stored"), u(&v, "dead_lettered")),
        (10, 8, 2),
        "{v}"
    );
    let stored: Vec<String> = db.rows().into_iter().skip(1).map(|r| r.2).collect();
    let good: Vec<&String> = lines.iter().filter(|l| l.starts_with("good")).collect();
    assert_eq!(stored.iter().collect::<Vec<_>>(), good);
    let dead: Vec<Value> = std::fs::read_to_string(s.path("dead.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0]["record"], "this line is poison");
    assert_eq!(dead[0]["reason"], "refused");
    assert!(
        dead[0]["error"]
            .as_str()
            .unwrap()
            .contains("poison refused")
    );
    assert_eq!(dead[1]["record"], "this line is venom");
    assert!(dead[1]["error"].as_str().unwrap().contains("no_venom"));

    // Without --dead-letter the refused record fails the run, and the error says what helps.
    write_lines(&s.path("again.log"), &lines);
    let out = ingest(&s, &db, "file:again.log", &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let error = json(&out)["error"].as_str().unwrap().to_string();
    assert!(error.contains("--dead-letter"), "{error}");
}

#[test]
fn messages_too_big_to_share_a_packet_are_split_and_one_over_the_packet_is_dead_lettered() {
    let Some(base) = base_url() else { return };
    let _shared = shared();
    let db = TestDb::new(&base, "big");
    let s = Scratch::new("mysql-big");
    let packet: u64 = db
        .conn()
        .query_first("SELECT @@max_allowed_packet")
        .unwrap()
        .unwrap();
    let max = (2 * packet).to_string();
    let one_batch = ["--max-record-bytes", &max, "--batch-wait-ms", "10000"];

    // Ten lines that together are twice the packet, committed in one transaction.
    let big = (packet / 5) as usize;
    let lines: Vec<String> = (0..10).map(|i| format!("{i}{}", "x".repeat(big))).collect();
    write_lines(&s.path("big.log"), &lines);
    let v = assert_ok(&ingest(&s, &db, "file:big.log", &one_batch));
    assert_eq!((u(&v, "stored"), u(&v, "batches")), (10, 1), "{v}");
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM messages WHERE LENGTH(message) = {}",
            big + 1
        )),
        10
    );

    // A line longer than the packet, between two short ones.
    let lines = [
        "first".to_string(),
        "y".repeat(packet as usize + 1),
        "last".to_string(),
    ];
    write_lines(&s.path("huge.log"), &lines);
    let mut args = one_batch.to_vec();
    args.extend(["--dead-letter", "dead.jsonl"]);
    let v = assert_ok(&ingest(&s, &db, "file:huge.log", &args));
    assert_eq!((u(&v, "stored"), u(&v, "dead_lettered")), (2, 1), "{v}");
    let dead = std::fs::read_to_string(s.path("dead.jsonl")).unwrap();
    let entry: Value = serde_json::from_str(dead.lines().next().unwrap()).unwrap();
    assert_eq!(entry["reason"], "refused");
    let error = entry["error"].as_str().unwrap();
    assert!(error.contains("max_allowed_packet"), "{error}");
}

#[test]
fn bad_connections_fail_with_one_line_naming_the_url_without_its_password() {
    let Some(base) = base_url() else { return };
    let _shared = shared();
    let s = Scratch::new("mysql-bad");
    let try_sink = |url: &str| -> Out {
        run(
            s.dir(),
            &["--sink", url, "--messages", "10", "--report-interval", "0"],
        )
    };
    let secret = "s3cret-pw";

    // Nothing listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("mysql://root:{secret}@127.0.0.1:{port}/test");
    let out = try_sink(&url);
    assert_one_line_error(&out, 1, &format!("mysql://root:***@127.0.0.1:{port}/test"));
    assert!(out.stderr.contains("Connection refused"), "{}", out.stderr);

    // Something listening that is not a MySQL server.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let talker = std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let _ = stream.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
        }
    });
    let out = try_sink(&format!("mysql://root@127.0.0.1:{port}/test"));
    assert_one_line_error(&out, 1, &format!("127.0.0.1:{port}"));
    talker.join().unwrap();

    // A user the server does not know, with a password.
    let url = with_user(&base, &format!("pc_no_such_user:{secret}"));
    let out = try_sink(&url);
    assert_one_line_error(&out, 1, "pc_no_such_user:***@");
    assert!(out.stderr.contains("Access denied"), "{}", out.stderr);

    // A database that does not exist.
    let missing = format!("pc_missing_{}", std::process::id());
    let out = try_sink(&with_database(&base, &missing));
    assert_one_line_error(&out, 1, "Unknown database");

    for out in [try_sink(&url), try_sink(&with_database(&url, &missing))] {
        assert!(
            !out.stderr.contains(secret),
            "password shown: {}",
            out.stderr
        );
    }
}

#[test]
fn a_connection_killed_mid_run_is_retried_without_loss_or_duplicates() {
    let Some(base) = base_url() else { return };
    let _shared = shared();
    let s = Scratch::new("mysql-killed");

    // A generated run with a connection per consumer.
    let db = TestDb::new(&base, "killgen");
    let mut r = Running::start(
        &s,
        &sink_args(
            &db,
            &[
                "--producers",
                "2",
                "--consumers",
                "2",
                "--rps",
                "4000",
                "--messages",
                "12000",
                "--report-interval",
                "0.05",
                "--output",
                "json",
            ],
        ),
    );
    r.err.wait_stored_at_least(1);
    assert!(kill_connections(&db) >= 1, "no connection to kill");
    let out = finish(r);
    let v = assert_ok(&out);
    assert_eq!(
        (u(&v, "produced"), u(&v, "stored")),
        (12_000, 12_000),
        "{v}"
    );
    assert!(u(&v, "retries") >= 1, "{v}");
    assert_eq!(
        db.count("SELECT COUNT(DISTINCT producer, seq) FROM messages"),
        12_000
    );
    assert_verify(s.dir(), &["verify", "--sink", &db.url]);

    // A file ingest: one connection, committing the file's position with its rows.
    let db = TestDb::new(&base, "killfile");
    let lines = numbered_lines(12_000);
    let file = s.path("in.log");
    write_lines(&file, &lines);
    let mut r = Running::start(
        &s,
        &sink_args(
            &db,
            &[
                "--source",
                "file:in.log",
                "--rps",
                "4000",
                "--report-interval",
                "0.05",
                "--output",
                "json",
            ],
        ),
    );
    r.err.wait_stored_at_least(1);
    assert!(kill_connections(&db) >= 1, "no connection to kill");
    let v = assert_ok(&finish(r));
    assert_eq!(u(&v, "stored"), 12_000, "{v}");
    assert!(u(&v, "retries") >= 1, "{v}");
    assert_file_stored_once(&db, &lines, std::fs::metadata(&file).unwrap().len());
}

fn refs(b: &[Record]) -> Vec<&Record> {
    b.iter().collect()
}

fn record(producer: u32, seq: u64) -> Record {
    Record {
        intended_ns: 0,
        created_at: 1_700_000_000_000_000_000 + seq as i64 * 1000,
        producer,
        seq,
        end_offset: (seq + 1) * 10,
        tail: 0,
        replaces: false,
        text: format!("line {seq:06} padded"),
    }
}

#[test]
fn a_batch_whose_commit_reply_was_lost_is_not_stored_twice() {
    let Some(base) = base_url() else { return };
    let _shared = shared();
    let db = TestDb::new(&base, "lost");
    let url = ServerUrl {
        url: db.url.clone(),
        shown: db.url.clone(),
    };
    let start = RunStart {
        producers: 0,
        config_json: "{}",
        started_at: 0,
        busy: Duration::from_secs(5),
        synchronous: Synchronous::Normal,
    };
    let (mut w, run_id) = pc_host::sink::mysql::open(&url, &start).unwrap();
    let key = FileKey {
        path: "/nonexistent/lost-reply.log".into(),
        dev: 1,
        ino: 2,
        born: None,
    };
    let input = w.register(Some(&key)).unwrap().input;
    let batch =
        |from: u64| -> Vec<Record> { (from..from + 100).map(|q| record(input, q)).collect() };
    let (b1, b2, b3) = (batch(0), batch(100), batch(200));
    let count = |db: &TestDb| {
        db.count(&format!(
            "SELECT COUNT(*) FROM messages WHERE run_id = {run_id}"
        ))
    };

    w.write(&refs(&b1)).unwrap();
    assert_eq!(count(&db), 100);
    // Committed, reply lost: the retry finds the batch and stores nothing.
    w.lose_commit_reply();
    w.write(&refs(&b1)).unwrap();
    assert_eq!(count(&db), 100);
    // Not committed, reply lost: the retry stores it.
    w.lose_commit_reply();
    w.write(&refs(&b2)).unwrap();
    assert_eq!(count(&db), 200);
    // The input's position moved with the batch found: the next batch commits after it.
    w.lose_commit_reply();
    w.write(&refs(&b2)).unwrap();
    w.write(&refs(&b3)).unwrap();
    assert_eq!(count(&db), 300);
    let pos: (i64, i64) = db
        .conn()
        .query_first("SELECT `offset`, line FROM inputs")
        .unwrap()
        .unwrap();
    assert_eq!(pos, (3000, 300));
    // Without the doubt, writing a stored batch again is refused by the unique key.
    let e = w.write(&refs(&b3)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    assert_eq!(count(&db), 300);
    assert_eq!(pc_host::sink::Sink::count_stored(&mut w).unwrap(), 300);
}

/// Restarts the server: `PC_TEST_MYSQL_RESTART` (a shell command) if set, else `SHUTDOWN`
/// and a new `/usr/sbin/mariadbd` (reading the server's own configuration), detached.
fn restart_server(base: &str) {
    if let Ok(cmd) = std::env::var("PC_TEST_MYSQL_RESTART") {
        let status = Command::new("sh").args(["-c", &cmd]).status().unwrap();
        assert!(status.success(), "{cmd}: {status}");
        return;
    }
    let mut admin = connect(base).unwrap();
    let pid_file: String = admin.query_first("SELECT @@pid_file").unwrap().unwrap();
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    admin.query_drop("SHUTDOWN").unwrap();
    drop(admin);
    wait_until("the server stopped", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    // Started by a shell that exits at once: the server is nobody's child here, as before.
    let status = Command::new("sh")
        .args([
            "-c",
            "setsid /usr/sbin/mariadbd </dev/null >/dev/null 2>&1 &",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "start mariadbd: {status}");
}

/// Waits (at most two minutes) until `done`, checking it every 20 ms: the condition decides,
/// the pause only spares the CPU the server needs to stop and start.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 120 s");
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

#[test]
fn a_server_restart_mid_run_is_retried_without_loss() {
    let Some(base) = base_url() else { return };
    let _alone = SERVER.write().unwrap_or_else(PoisonError::into_inner);
    let db = TestDb::new(&base, "restart");
    let s = Scratch::new("mysql-restart");
    let lines = numbered_lines(15_000);
    let file = s.path("in.log");
    write_lines(&file, &lines);
    let mut r = Running::start(
        &s,
        &sink_args(
            &db,
            &[
                "--source",
                "file:in.log",
                "--rps",
                "5000",
                "--retry-for",
                "120",
                "--report-interval",
                "0.05",
                "--output",
                "json",
            ],
        ),
    );
    r.err.wait_stored_at_least(1);
    restart_server(&base);
    wait_until("the server answers again", || connect(&base).is_ok());
    let v = assert_ok(&finish(r));
    assert_eq!(u(&v, "stored"), 15_000, "{v}");
    assert!(u(&v, "retries") >= 1, "{v}");
    assert_file_stored_once(&db, &lines, std::fs::metadata(&file).unwrap().len());
    assert_verify(s.dir(), &["verify", "--sink", &db.url]);
}
