//! The MySQL / MariaDB sink against a real server (`PC_TEST_MYSQL_URL`, e.g.
//! `mysql://root@127.0.0.1:3306/test`; unset: each test prints `SKIP` and passes). Each test
//! works in a database of its own, dropped at the end. The server restart test runs alone
//! (the others share the server) and leaves the server running. The helpers both servers'
//! tests use are in `common/server.rs`.
//!
//! No sleeps: the tests follow the binary's progress lines and wait on conditions with a
//! deadline.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mysql::prelude::Queryable as _;
use mysql::{Conn, Opts};

use common::server::{
    Server, TestDb, assert_file_stored_once, assert_kill_9_then_rerun_stores_each_line_once,
    assert_ok, assert_partial_line_replaced_once_completed, assert_refused_as_not_pc_hosts,
    assert_restart_mid_ingest_loses_nothing, assert_url_refused, closed_port, dead_letters,
    not_a_server, record, refs, run_id, wait_until, with_database, with_user, write_input,
};
use common::{Scratch, finish, json, u};
use pc_host::position::FileKey;
use pc_host::sink::{ErrorKind, Sink as _};

// ---------------------------------------------------------------------------------------------
// The server and the test databases

/// MySQL or MariaDB, through the `mysql` crate.
struct MySql;

type Db = TestDb<MySql>;

impl Server for MySql {
    const VAR: &'static str = "PC_TEST_MYSQL_URL";

    fn execute(url: &str, sql: &str) -> Result<(), String> {
        connect(url)
            .and_then(|mut c| c.query_drop(sql))
            .map_err(|e| e.to_string())
    }

    fn drop_database(name: &str) -> String {
        format!("DROP DATABASE IF EXISTS {name}")
    }

    fn kill_sessions(url: &str) -> usize {
        let mut admin = conn(url);
        let ids: Vec<u64> = admin
            .query(
                "SELECT ID FROM information_schema.PROCESSLIST \
                 WHERE DB = DATABASE() AND ID <> CONNECTION_ID()",
            )
            .unwrap();
        for id in &ids {
            // A connection may have closed meanwhile.
            let _ = admin.query_drop(format!("KILL {id}"));
        }
        ids.len()
    }

    fn rows(url: &str) -> Vec<(i64, i64, String)> {
        conn(url)
            .query("SELECT producer, seq, message FROM messages ORDER BY id")
            .unwrap()
    }

    fn inputs(url: &str) -> Vec<(i64, i64, i64)> {
        conn(url)
            .query("SELECT input_id, `offset`, line FROM inputs ORDER BY input_id")
            .unwrap()
    }

    /// `PC_TEST_MYSQL_RESTART` (a shell command) if set, else `SHUTDOWN` and a new server.
    fn restart(admin: &str) {
        if std::env::var_os("PC_TEST_MYSQL_RESTART").is_none() {
            let mut c = conn(admin);
            let pid_file: String = c.query_first("SELECT @@pid_file").unwrap().unwrap();
            let pid = std::fs::read_to_string(&pid_file).unwrap();
            let proc = format!("/proc/{}", pid.trim());
            c.query_drop("SHUTDOWN").unwrap();
            drop(c);
            wait_until("the server stopped", || !Path::new(&proc).exists());
        }
        let mut start = start_command();
        let status = start.status().unwrap();
        assert!(status.success(), "{start:?}: {status}");
    }

    fn start(_admin: &str) {
        let _ = start_command().status();
    }
}

/// `sh -c PC_TEST_MYSQL_RESTART` if set, else `/usr/sbin/mariadbd` (reading the server's own
/// configuration) started by a shell that exits at once: the server is nobody's child here.
fn start_command() -> Command {
    let line = std::env::var("PC_TEST_MYSQL_RESTART")
        .unwrap_or_else(|_| "setsid /usr/sbin/mariadbd </dev/null >/dev/null 2>&1 &".to_string());
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &line]);
    cmd
}

fn connect(url: &str) -> mysql::Result<Conn> {
    let url = url.replacen("mariadb://", "mysql://", 1);
    Conn::new(Opts::from_url(&url).expect("a valid URL"))
}

fn conn(url: &str) -> Conn {
    connect(url).unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

impl TestDb<MySql> {
    fn conn(&self) -> Conn {
        conn(&self.url)
    }

    fn count(&self, sql: &str) -> i64 {
        self.conn().query_first::<i64, _>(sql).unwrap().unwrap_or(0)
    }

    /// The text of every message row, in id order.
    fn texts(&self) -> Vec<String> {
        self.rows().into_iter().map(|r| r.2).collect()
    }
}

fn numbered_lines(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("line {i:05} of the input"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Runs of the binary

#[test]
fn a_generated_run_stores_every_message_once_and_verify_says_ok() {
    let Some(db) = Db::shared("gen") else { return };
    let s = Scratch::new("mysql-gen");
    let args = "--producers 3 --consumers 3 --messages 30000 --rps 0";
    let v = assert_ok(&db.run_json(&s, args));
    assert_eq!((u(&v, "produced"), u(&v, "stored")), (30_000, 30_000));
    let run_id = run_id(&v);
    let distinct = "SELECT COUNT(DISTINCT run_id, producer, seq) FROM messages";
    assert_eq!(db.count(distinct), 30_000);
    let produced = format!("SELECT SUM(produced) FROM run_producers WHERE run_id = {run_id}");
    assert_eq!(db.count(&produced), 30_000);
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
    db.assert_verify(&s);
}

#[test]
fn a_file_ingest_is_exactly_once_across_kill_9_and_a_rerun() {
    let Some(db) = Db::shared("kill9") else {
        return;
    };
    let s = Scratch::new("mysql-kill9");
    let (args, kills) = ("--rps 2000 --report-interval 0.05", [(1, "")]);
    assert_kill_9_then_rerun_stores_each_line_once(&db, &s, &numbered_lines(20_000), args, &kills);
}

#[test]
fn a_partial_last_line_completed_by_a_later_run_replaces_its_row() {
    let Some(db) = Db::shared("partial") else {
        return;
    };
    let s = Scratch::new("mysql-partial");
    let (first, rest) = ("first\nsecond\nthi", "rd\nfourth\n");
    assert_partial_line_replaced_once_completed(&db, &s, first, rest);
    let tail: Option<i64> = db.conn().query_first("SELECT tail FROM inputs").unwrap();
    assert_eq!(tail, Some(0), "no partial line left");
}

#[test]
fn a_foreign_messages_table_is_refused_and_left_as_it_was() {
    let Some(db) = Db::shared("foreign") else {
        return;
    };
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

    assert_refused_as_not_pc_hosts(&db, &s);

    assert_eq!(show(&mut c), before, "the table was altered");
    let tables: Vec<String> = c.query("SHOW TABLES").unwrap();
    assert_eq!(tables, ["messages"], "pc-host created tables beside it");
    let rows: Vec<String> = c.query("SELECT message FROM messages").unwrap();
    assert_eq!(rows, ["seed"]);
}

/// Makes the server refuse texts with `poison` (a trigger) or `venom` (a CHECK constraint)
/// in pc-host's tables, which a first run creates.
fn refuse_poison_and_venom(db: &Db, s: &Scratch) {
    assert_ok(&db.run_json(s, "--messages 1 --rps 0"));
    let mut c = db.conn();
    c.query_drop(
        "CREATE TRIGGER no_poison BEFORE INSERT ON messages FOR EACH ROW \
         IF NEW.message LIKE '%poison%' THEN \
         SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poison refused'; END IF",
    )
    .unwrap();
    c.query_drop("ALTER TABLE messages ADD CONSTRAINT no_venom CHECK (message NOT LIKE '%venom%')")
        .unwrap();
}

#[test]
fn a_record_the_server_refuses_is_dead_lettered_and_the_rest_stored() {
    let Some(db) = Db::shared("refused") else {
        return;
    };
    let s = Scratch::new("mysql-refused");
    refuse_poison_and_venom(&db, &s);
    let lines: Vec<String> = (1..=10)
        .map(|n| match n {
            4 => "this line is poison".to_string(),
            7 => "this line is venom".to_string(),
            _ => format!("good line {n}"),
        })
        .collect();
    let source = write_input(&s, "in.log", &lines);
    let v = assert_ok(&db.run_json(&s, &format!("--source {source} --dead-letter dead.jsonl")));
    assert_eq!(
        (u(&v, "produced"), u(&v, "stored"), u(&v, "dead_lettered")),
        (10, 8, 2),
        "{v}"
    );
    let stored = db.texts().split_off(1);
    let good: Vec<&String> = lines.iter().filter(|l| l.starts_with("good")).collect();
    assert_eq!(stored.iter().collect::<Vec<_>>(), good);
    let dead = dead_letters(&s.path("dead.jsonl"));
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0]["record"], "this line is poison");
    assert_eq!(dead[0]["reason"], "refused");
    let error = |i: usize| dead[i]["error"].as_str().unwrap();
    assert!(error(0).contains("poison refused"), "{}", error(0));
    assert_eq!(dead[1]["record"], "this line is venom");
    assert!(error(1).contains("no_venom"), "{}", error(1));

    // Without --dead-letter the refused record fails the run, and the error says what helps.
    let source = write_input(&s, "again.log", &lines);
    let out = db.run_json(&s, &format!("--source {source}"));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let error = json(&out)["error"].as_str().unwrap().to_string();
    assert!(error.contains("--dead-letter"), "{error}");
}

#[test]
fn messages_too_big_to_share_a_packet_are_split_and_one_over_the_packet_is_dead_lettered() {
    let Some(db) = Db::shared("big") else { return };
    let s = Scratch::new("mysql-big");
    let packet: u64 = db
        .conn()
        .query_first("SELECT @@max_allowed_packet")
        .unwrap()
        .unwrap();
    let one_batch = format!("--max-record-bytes {} --batch-wait-ms 10000", 2 * packet);

    // Ten lines that together are twice the packet, committed in one transaction.
    let big = (packet / 5) as usize;
    let lines: Vec<String> = (0..10).map(|i| format!("{i}{}", "x".repeat(big))).collect();
    let source = write_input(&s, "big.log", &lines);
    let v = assert_ok(&db.run_json(&s, &format!("--source {source} {one_batch}")));
    assert_eq!((u(&v, "stored"), u(&v, "batches")), (10, 1), "{v}");
    let of_length = format!(
        "SELECT COUNT(*) FROM messages WHERE LENGTH(message) = {}",
        big + 1
    );
    assert_eq!(db.count(&of_length), 10);

    // A line longer than the packet, between two short ones.
    let lines = [
        "first".to_string(),
        "y".repeat(packet as usize + 1),
        "last".to_string(),
    ];
    let source = write_input(&s, "huge.log", &lines);
    let args = format!("--source {source} {one_batch} --dead-letter dead.jsonl");
    let v = assert_ok(&db.run_json(&s, &args));
    assert_eq!((u(&v, "stored"), u(&v, "dead_lettered")), (2, 1), "{v}");
    let entry = &dead_letters(&s.path("dead.jsonl"))[0];
    assert_eq!(entry["reason"], "refused");
    let error = entry["error"].as_str().unwrap();
    assert!(error.contains("max_allowed_packet"), "{error}");
}

/// Bad connections, most with the password `secret`, and what the error must say.
fn bad_urls(base: &str, secret: &str) -> [(String, &'static str); 5] {
    let stranger = with_user(base, &format!("pc_no_such_user:{secret}"));
    let missing = format!("pc_missing_{}", std::process::id());
    let at = |port: u16| format!("mysql://root:{secret}@127.0.0.1:{port}/test");
    [
        // Nothing listening.
        (at(closed_port()), "Connection refused"),
        // Something listening that is not a MySQL server.
        (at(not_a_server()), "127.0.0.1:"),
        // A user the server does not know, with a password.
        (stranger.clone(), "Access denied"),
        // A database that does not exist.
        (with_database(base, &missing), "Unknown database"),
        (with_database(&stranger, &missing), "Access denied"),
    ]
}

#[test]
fn bad_connections_fail_with_one_line_naming_the_url_without_its_password() {
    let Some((base, _shared)) = common::server::shared::<MySql>() else {
        return;
    };
    let s = Scratch::new("mysql-bad");
    for (url, needle) in &bad_urls(&base, "s3cret-pw") {
        let args = ["--sink", url, "--messages", "10", "--report-interval", "0"];
        assert_url_refused(&s, &args, url, needle);
    }
}

#[test]
fn a_connection_killed_mid_run_is_retried_without_loss_or_duplicates() {
    let Some(db) = Db::shared("killgen") else {
        return;
    };
    let s = Scratch::new("mysql-killed");

    // A generated run with a connection per consumer.
    let args = "--producers 2 --consumers 2 --rps 4000 --messages 12000 \
                --report-interval 0.05 --output json";
    let mut r = db.start(&s, args);
    r.err.wait_stored_at_least(1);
    assert!(db.kill_sessions() >= 1, "no connection to kill");
    let v = assert_ok(&finish(r));
    let produced_stored = (u(&v, "produced"), u(&v, "stored"));
    assert_eq!(produced_stored, (12_000, 12_000), "{v}");
    assert!(u(&v, "retries") >= 1, "{v}");
    let distinct = "SELECT COUNT(DISTINCT producer, seq) FROM messages";
    assert_eq!(db.count(distinct), 12_000);
    db.assert_verify(&s);

    // A file ingest: one connection, committing the file's position with its rows.
    let db = db.beside("killfile");
    let lines = numbered_lines(12_000);
    let source = write_input(&s, "in.log", &lines);
    let args = format!("--source {source} --rps 4000 --report-interval 0.05 --output json");
    let mut r = db.start(&s, &args);
    r.err.wait_stored_at_least(1);
    assert!(db.kill_sessions() >= 1, "no connection to kill");
    let v = assert_ok(&finish(r));
    assert_eq!(u(&v, "stored"), 12_000, "{v}");
    assert!(u(&v, "retries") >= 1, "{v}");
    assert_file_stored_once(&db, &lines);
}

// ---------------------------------------------------------------------------------------------
// The writer through the library

#[test]
fn a_batch_whose_commit_reply_was_lost_is_not_stored_twice() {
    let Some(db) = Db::shared("lost") else { return };
    let busy = Duration::from_secs(5);
    let (mut w, run_id) = db.open_writer(0, busy, pc_host::sink::mysql::open);
    let key = FileKey {
        path: "/nonexistent/lost-reply.log".into(),
        dev: 1,
        ino: 2,
        born: None,
    };
    let input = w.register(Some(&key)).unwrap().input;
    let batch = |from: u64| -> Vec<_> {
        (from..from + 100)
            .map(|q| record(input, q, (q + 1) * 10))
            .collect()
    };
    let (b1, b2, b3) = (batch(0), batch(100), batch(200));
    let of_run = format!("SELECT COUNT(*) FROM messages WHERE run_id = {run_id}");
    let count = || db.count(&of_run);

    w.write(&refs(&b1)).unwrap();
    assert_eq!(count(), 100);
    // Committed, reply lost: the retry finds the batch and stores nothing.
    w.lose_commit_reply();
    w.write(&refs(&b1)).unwrap();
    assert_eq!(count(), 100);
    // Not committed, reply lost: the retry stores it.
    w.lose_commit_reply();
    w.write(&refs(&b2)).unwrap();
    assert_eq!(count(), 200);
    // The input's position moved with the batch found: the next batch commits after it.
    w.lose_commit_reply();
    w.write(&refs(&b2)).unwrap();
    w.write(&refs(&b3)).unwrap();
    assert_eq!(count(), 300);
    assert_eq!(db.inputs(), [(i64::from(input), 3000, 300)]);
    // Without the doubt, writing a stored batch again is refused by the unique key.
    let e = w.write(&refs(&b3)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    assert_eq!(count(), 300);
    assert_eq!(w.count_stored().unwrap(), 300);
}

#[test]
fn a_server_restart_mid_run_is_retried_without_loss() {
    let Some(db) = Db::alone("restart") else {
        return;
    };
    let s = Scratch::new("mysql-restart");
    let args = "--rps 5000 --retry-for 120";
    assert_restart_mid_ingest_loses_nothing(&db, &s, &numbered_lines(15_000), 1, args);
}
