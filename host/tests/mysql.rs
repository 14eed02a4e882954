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
use std::time::{Duration, Instant};

use mysql::prelude::Queryable as _;
use mysql::{Conn, Opts};

use common::server::{
    Forwarder, Server, TestDb, assert_birth_time_known_to_one_run_only_resumes,
    assert_file_stored_once, assert_fixed_width_rewrite_is_read_from_its_start,
    assert_kill_9_then_rerun_stores_each_line_once, assert_ok,
    assert_partial_line_replaced_once_completed, assert_refused_as_not_pc_hosts,
    assert_rejected_completion_leaves_no_fragment, assert_renamed_file_resumes,
    assert_restart_mid_ingest_loses_nothing, assert_url_refused, closed_port, dead_letters,
    not_a_server, now_ns, record, refs, run_id, wait_until, with_database, with_user, write_input,
};
use common::{Scratch, assert_one_line_error, finish, json, u};
use pc_host::position::{FileKey, Resume};
use pc_host::sink::sqlite::schema::Busy;
use pc_host::sink::{ErrorKind, RunEnd, Sink as _};
use pc_host::telemetry::Counts;
use pc_host::telemetry::interval::Interval;

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
fn a_last_line_completed_into_a_rejected_line_leaves_no_fragment_row() {
    for (name, then) in [("fragment_more", "three\n"), ("fragment_last", "")] {
        let Some(db) = Db::shared(name) else {
            return;
        };
        let s = Scratch::new(&format!("my-{name}"));
        assert_rejected_completion_leaves_no_fragment(&db, &s, then);
    }
}

#[test]
fn a_run_given_the_old_name_after_a_rotation_names_the_file_left_unread() {
    let Some(db) = Db::shared("rotated") else {
        return;
    };
    let s = Scratch::new("my-rotated-away");
    common::assert_rotation_names_the_file_left_unread(&s, |args| db.run_json(&s, args));
}

#[test]
fn a_file_whose_birth_time_is_known_to_one_run_only_resumes_at_its_path() {
    let Some(db) = Db::shared("birth_time") else {
        return;
    };
    let s = Scratch::new("mysql-birth-time");
    assert_birth_time_known_to_one_run_only_resumes(&db, &s);
}

#[test]
fn a_fixed_width_file_refilled_past_its_offset_is_read_from_its_start() {
    let Some(db) = Db::shared("fixed_width") else {
        return;
    };
    let s = Scratch::new("mysql-fixed-width");
    assert_fixed_width_rewrite_is_read_from_its_start(&db, &s);
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

/// A broker source's run keeps its delivery keys in `delivered` and `nats_origins`: tables of
/// those names that pc-host did not make (in a database without pc-host's tables, or with
/// other columns or types) are refused and left as they were, and no run is recorded.
#[test]
fn foreign_delivery_tables_are_refused_and_left_as_they_were() {
    let Some(db) = Db::shared("foreign_delivered") else {
        return;
    };
    let open = |db: &Db| {
        db.try_open_writer(0, Duration::from_secs(5), true, pc_host::sink::mysql::open)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let mut c = db.conn();
    // Exactly pc-host's shape, with a row of its own, in a database without pc-host's tables.
    c.query_drop(
        "CREATE TABLE delivered (key_run BIGINT NOT NULL, producer INT NOT NULL, \
         seq BIGINT NOT NULL, stored_by BIGINT NOT NULL, PRIMARY KEY (key_run, producer, seq))",
    )
    .unwrap();
    c.query_drop("INSERT INTO delivered VALUES (1, 2, 3, 4)")
        .unwrap();
    let err = open(&db).unwrap_err();
    assert!(
        err.contains("table named delivered") && err.contains("not pc-host's"),
        "{err}"
    );
    let tables: Vec<String> = c.query("SHOW TABLES").unwrap();
    assert_eq!(tables, ["delivered"], "nothing created beside it");
    c.query_drop("DROP TABLE delivered").unwrap();
    // A pc-host database, then a `delivered` of another shape.
    open(&db).expect("pc-host's tables and its delivery tables");
    c.query_drop("DROP TABLE delivered").unwrap();
    c.query_drop(
        "CREATE TABLE delivered (key_run BIGINT NOT NULL, producer BIGINT NOT NULL, \
         seq BIGINT NOT NULL, stored_by BIGINT NOT NULL, note TEXT)",
    )
    .unwrap();
    c.query_drop("INSERT INTO delivered VALUES (1, 2, 3, 4, 'theirs')")
        .unwrap();
    let before = db.count("SELECT COUNT(*) FROM runs");
    let err = open(&db).unwrap_err();
    assert!(
        err.contains("`delivered` has columns (key_run bigint, producer bigint"),
        "{err}"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM runs"),
        before,
        "no run recorded"
    );
    let kept: Vec<String> = c.query("SELECT note FROM delivered").unwrap();
    assert_eq!(kept, ["theirs"]);
}

/// `delivered` and `nats_origins` dedupe by their one unique key: a `delivered` of pc-host's
/// columns with no key (a record delivered twice would be stored twice), or with another
/// unique key besides (a new record could be taken for a duplicate), is refused before a run
/// is recorded.
#[test]
fn a_delivery_table_without_pc_hosts_one_unique_key_is_refused() {
    let Some(db) = Db::shared("delivered_keys") else {
        return;
    };
    let open = |db: &Db| {
        db.try_open_writer(0, Duration::from_secs(5), true, pc_host::sink::mysql::open)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    open(&db).expect("pc-host's tables and its delivery tables");
    let mut c = db.conn();
    let before = db.count("SELECT COUNT(*) FROM runs");
    c.query_drop("ALTER TABLE delivered DROP PRIMARY KEY")
        .unwrap();
    let err = open(&db).unwrap_err();
    assert!(
        err.contains(
            "`delivered` has unique keys none but pc-host's has one, on (key_run,producer,seq)"
        ),
        "{err}"
    );
    c.query_drop("ALTER TABLE delivered ADD PRIMARY KEY (key_run, producer, seq)")
        .unwrap();
    c.query_drop("CREATE UNIQUE INDEX theirs ON delivered (seq)")
        .unwrap();
    let err = open(&db).unwrap_err();
    assert!(
        err.contains("unique keys (key_run,producer,seq), (seq)"),
        "{err}"
    );
    c.query_drop("ALTER TABLE nats_origins DROP PRIMARY KEY")
        .unwrap();
    c.query_drop("DROP INDEX theirs ON delivered").unwrap();
    let err = open(&db).unwrap_err();
    assert!(err.contains("`nats_origins` has unique keys none"), "{err}");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM runs"),
        before,
        "no run recorded"
    );
    c.query_drop("ALTER TABLE nats_origins ADD PRIMARY KEY (origin)")
        .unwrap();
    open(&db).expect("pc-host's keys");
    assert_eq!(db.count("SELECT COUNT(*) FROM runs"), before + 1);
}

/// Only `delivered`'s key makes a record a duplicate: a claim `INSERT IGNORE` let through
/// as a warning for another reason (a foreign key someone added) fails the write instead of
/// dropping the record as a duplicate.
#[test]
fn only_the_key_makes_a_delivered_record_a_duplicate() {
    let Some(db) = Db::shared("delivered_check") else {
        return;
    };
    let (mut writer, _) = db
        .try_open_writer(0, Duration::from_secs(5), true, pc_host::sink::mysql::open)
        .expect("open");
    let mut c = db.conn();
    c.query_drop("CREATE TABLE their_seqs (id BIGINT PRIMARY KEY) ENGINE = InnoDB")
        .unwrap();
    c.query_drop("INSERT INTO their_seqs VALUES (7)").unwrap();
    c.query_drop(
        "ALTER TABLE delivered ADD CONSTRAINT theirs FOREIGN KEY (seq) REFERENCES their_seqs (id)",
    )
    .unwrap();
    // Seq 100 has no row in their table.
    common::server::assert_only_the_key_makes_a_duplicate(
        &mut writer,
        &common::server::delivered(0, 7),
        &common::server::delivered(0, 100),
        "theirs",
    );
}

/// A pc-host table moved to an engine without transactions (MyISAM keeps the part of a
/// write before a failed statement) is refused before a run is recorded.
#[test]
fn a_table_without_transactions_is_refused() {
    let Some(db) = Db::shared("myisam") else {
        return;
    };
    let open = |db: &Db| {
        db.try_open_writer(0, Duration::from_secs(5), false, pc_host::sink::mysql::open)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    open(&db).expect("pc-host's tables");
    let before = db.count("SELECT COUNT(*) FROM runs");
    db.conn()
        .query_drop("ALTER TABLE messages ENGINE = MyISAM")
        .unwrap();
    let err = open(&db).unwrap_err();
    assert!(
        err.contains("table `messages` uses the MyISAM engine, not InnoDB"),
        "{err}"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM runs"),
        before,
        "no run recorded"
    );
}

/// A second signal while the start still waits (here to register a file input, behind
/// pc-host's input lock another client holds, a wait the first signal does not cut short)
/// exits at once, saying the run had not started: nothing was stored, and a run recorded
/// already stays recorded as not completed. (It said "the run is recorded as not
/// completed", also where none was.)
#[test]
fn a_second_signal_before_the_run_started_says_nothing_was_stored() {
    let Some(db) = Db::shared("signal_at_start") else {
        return;
    };
    let s = Scratch::new("mysql-signal-at-start");
    std::fs::write(s.path("in.log"), "a\nb\n").unwrap();
    assert_ok(&db.run_json(&s, "--messages 10"));
    let mut holder = db.conn();
    let got: Option<i64> = holder
        .query_first("SELECT GET_LOCK(CONCAT('pc-host inputs ', MD5(DATABASE())), 0)")
        .unwrap();
    assert_eq!(got, Some(1));
    let args = ["--sink", &db.url, "--source", "file:in.log"];
    let (out, rest) = common::sigint_at_start(&s, &args, 2);
    holder
        .query_drop("DO RELEASE_LOCK(CONCAT('pc-host inputs ', MD5(DATABASE())))")
        .unwrap();
    assert_eq!(out.code, Some(130), "{rest:#?}");
    assert!(
        rest.iter().any(|l| l
            == "pc-host: SIGINT again: exiting at once: the run had not started: nothing was \
                stored (if it was recorded already, it stays recorded as not completed)"),
        "{rest:#?}"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM messages WHERE run_id = 2"),
        0
    );
}

/// A run whose `messages` table another client holds locked past `--busy-timeout-ms` is
/// refused with one line before it is recorded. (The start waited on the server's default
/// table-lock wait, a year, until the connection's reply timeout said "lost the connection";
/// the server then recorded the run once the lock was let go: a run row that never ran.)
#[test]
fn a_run_refused_by_a_held_lock_leaves_no_run_behind() {
    let Some(db) = Db::shared("held_lock") else {
        return;
    };
    let s = Scratch::new("mysql-held-lock");
    assert_ok(&db.run_json(&s, "--messages 10"));
    let mut holder = db.conn();
    holder.query_drop("LOCK TABLES messages WRITE").unwrap();
    let out = db.run(
        &s,
        "--messages 10 --busy-timeout-ms 200 --report-interval 0",
    );
    assert_one_line_error(
        &out,
        1,
        "another client held a lock on pc-host's tables for longer than --busy-timeout-ms",
    );
    holder.query_drop("UNLOCK TABLES").unwrap();
    drop(holder);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM runs"),
        1,
        "the refused run left no row"
    );
}

/// A signal while the start waits for a table lock another client holds ends the wait within
/// a second of it, before the run is recorded: exit 130, no summary, no run.
#[test]
fn a_signal_while_the_start_waits_for_a_lock_stops_it_without_recording_a_run() {
    let Some(db) = Db::shared("signal_at_lock") else {
        return;
    };
    let s = Scratch::new("mysql-signal-at-lock");
    assert_ok(&db.run_json(&s, "--messages 10"));
    let mut holder = db.conn();
    holder.query_drop("LOCK TABLES messages WRITE").unwrap();
    let args = [
        "--sink",
        &db.url,
        "--messages",
        "10",
        "--busy-timeout-ms",
        "120000",
    ];
    let (out, rest) = common::sigint_at_start(&s, &args, 1);
    holder.query_drop("UNLOCK TABLES").unwrap();
    drop(holder);
    assert_eq!(out.code, Some(130), "{rest:#?}");
    assert!(
        out.stdout.is_empty(),
        "no summary for a run that never started"
    );
    assert!(
        rest.iter().any(
            |l| l.starts_with("pc-host: stopped by SIGINT while waiting for ")
                && l.ends_with(
                    "(another client held a lock on pc-host's tables): the run did not start and \
                 nothing was recorded"
                )
        ),
        "{rest:#?}"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM runs"), 1, "no run recorded");
}

/// A `pc_host_schema` table that is not pc-host's mark (another column, or `version` of
/// another type) is refused with one line, not a server error.
#[test]
fn a_foreign_mark_table_is_refused_as_not_pc_hosts() {
    let Some(db) = Db::shared("foreign_mark") else {
        return;
    };
    let s = Scratch::new("mysql-foreign-mark");
    let mut c = db.conn();
    for table in [
        "pc_host_schema (note TEXT)",
        "pc_host_schema (version TEXT)",
    ] {
        c.query_drop("DROP TABLE IF EXISTS pc_host_schema").unwrap();
        c.query_drop(format!("CREATE TABLE {table}")).unwrap();
        c.query_drop("INSERT INTO pc_host_schema VALUES ('x')")
            .unwrap();
        assert_refused_as_not_pc_hosts(&db, &s);
        let tables: Vec<String> = c.query("SHOW TABLES").unwrap();
        assert_eq!(tables, ["pc_host_schema"], "nothing created beside it");
    }
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
        // verify --source connects before it looks at the file.
        let args = ["verify", "--sink", url, "--source", "file:in.log"];
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
    // No retry is asserted here: the one connection also keeps the report intervals, and
    // when the kill lands between commits an interval write may meet the dead connection
    // first; the next commit then connects anew without failing.
    assert_file_stored_once(&db, &lines);
}

// ---------------------------------------------------------------------------------------------
// The writer through the library

/// The URL's host and port are the server written to: a TCP URL to 127.0.0.1 is not swapped
/// for the socket path the server reports (the driver's `prefer_socket` default), which can be
/// another server's (a tunnelled or containerised server on a local port). The writer's
/// sessions are seen by the server as coming over TCP, with a client port, not `localhost`.
#[test]
fn a_loopback_url_is_written_over_tcp_not_through_the_servers_socket() {
    let Some(db) = Db::shared("tcp") else { return };
    if !db.url.contains("@127.0.0.1") {
        common::skip("PC_TEST_MYSQL_URL is not a TCP URL to 127.0.0.1");
        return;
    }
    let (w, _run_id) = db.open_writer(0, Duration::from_secs(5), pc_host::sink::mysql::open);
    let hosts: Vec<String> = db
        .conn()
        .query(
            "SELECT HOST FROM information_schema.PROCESSLIST \
             WHERE DB = DATABASE() AND ID <> CONNECTION_ID()",
        )
        .unwrap();
    assert!(!hosts.is_empty(), "the writer holds a session");
    // Over TCP the server shows the client's port (`127.0.0.1:PORT`, or `localhost:PORT`
    // where it resolves names); through the socket, `localhost` alone.
    for host in &hosts {
        let port = host.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
        assert!(matches!(port, Some(Ok(_))), "a session from {host:?}");
    }
    drop(w);
}

/// See `common::server::assert_stored_is_what_was_committed_when_the_count_back_fails`.
#[test]
fn the_summary_says_what_was_committed_when_the_count_back_fails() {
    let Some(db) = Db::shared("countback") else {
        return;
    };
    common::server::assert_stored_is_what_was_committed_when_the_count_back_fails(&db, 3306);
}

/// As in the PostgreSQL tests: a lost COMMIT that cannot be looked up leaves its batch
/// `unconfirmed`; a write that fails with no COMMIT in doubt is not.
#[test]
fn a_lost_commit_that_cannot_be_looked_up_leaves_its_batch_unconfirmed() {
    let Some(db) = Db::shared("unconfirmed") else {
        return;
    };
    let key = |ino: u64| FileKey {
        path: format!("/nonexistent/unconfirmed-{ino}.log").into(),
        dev: 1,
        ino,
        born: None,
    };
    for in_doubt in [true, false] {
        let (forwarder, via) = Forwarder::for_url(&db.url, 3306);
        let (mut w, _) = db.open_writer(0, Duration::from_secs(5), |_, start| {
            pc_host::sink::mysql::open(&via, start)
        });
        let input = w.register(Some(&key(u64::from(in_doubt)))).unwrap().input;
        let batch = |from: u64| -> Vec<_> {
            (from..from + 100)
                .map(|q| record(input, q, (q + 1) * 10))
                .collect()
        };
        w.write(&refs(&batch(0))).unwrap();
        if in_doubt {
            w.lose_commit_reply();
        }
        forwarder.cut();
        let e = w.write(&refs(&batch(100))).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
        assert_eq!(e.unconfirmed, in_doubt, "{e}");
    }
}

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

/// Another client's connection, in a transaction holding run `run_id`'s `runs` row (`FOR
/// UPDATE`); the row is free again once it rolls back or is dropped.
fn hold_run_row(db: &Db, run_id: i64) -> Conn {
    let mut other = db.conn();
    other.query_drop("START TRANSACTION").unwrap();
    let held: Option<i64> = other
        .exec_first(
            "SELECT run_id FROM runs WHERE run_id = ? FOR UPDATE",
            (run_id,),
        )
        .unwrap();
    assert_eq!(held, Some(run_id));
    other
}

/// Recording the run's end behind another client's lock on its `runs` row fails as
/// retryable, so the run tries it again for `--retry-for` as it would a write, and records it
/// once the lock is gone.
#[test]
fn a_lock_on_the_runs_row_makes_recording_the_end_retryable() {
    let Some(db) = Db::shared("end_lock") else {
        return;
    };
    let busy = Duration::from_secs(1);
    let (mut w, run_id) = db.open_writer(0, busy, pc_host::sink::mysql::open);
    let mut other = hold_run_row(&db, run_id);
    let end = RunEnd {
        completed: true,
        ..RunEnd::nothing(now_ns(), &[])
    };
    let e = w.finish_run(&end).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(
        e.to_string().contains("recording the end of the run"),
        "{e}"
    );
    other.query_drop("ROLLBACK").unwrap();
    w.finish_run(&end).unwrap();
    let finished =
        format!("SELECT COUNT(*) FROM runs WHERE run_id = {run_id} AND finished_at IS NOT NULL");
    assert_eq!(db.count(&finished), 1);
}

/// A commit behind another client's `LOCK TABLES` fails once `--busy-timeout-ms` (here the
/// least, 1 s) has passed, as a lock wait that ran out (retryable), as one behind a row lock
/// does (not as a lost connection once the reply timeout ran out: the server's own table-lock
/// wait is a year); once the lock is let go it commits.
#[test]
fn a_table_lock_held_past_the_busy_timeout_fails_the_commit_as_a_lock_wait() {
    let Some(db) = Db::shared("table_lock") else {
        return;
    };
    let (mut w, run_id) = db.open_writer(0, Duration::from_secs(1), pc_host::sink::mysql::open);
    let batch: Vec<_> = (0..10).map(|q| record(0, q, 0)).collect();
    let mut holder = db.conn();
    holder.query_drop("LOCK TABLES messages WRITE").unwrap();
    let e = w.write(&refs(&batch)).unwrap_err();
    holder.query_drop("UNLOCK TABLES").unwrap();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.to_string().contains("error 1205"), "{e}");
    w.write(&refs(&batch)).unwrap();
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM messages WHERE run_id = {run_id}"
        )),
        10
    );
}

/// A connection prepares each statement at its first use, so a user who may no longer insert
/// can still connect, settle a batch whose COMMIT reply was lost, and count back; a new write
/// fails, as a lack of permission.
#[test]
fn a_user_who_may_no_longer_insert_still_settles_a_batch_in_doubt_and_counts_back() {
    let Some(mut db) = Db::shared("no_insert") else {
        return;
    };
    let user = format!("pc_no_insert_{}", std::process::id());
    let name: String = db.conn().query_first("SELECT DATABASE()").unwrap().unwrap();
    let as_admin = |sql: &str| conn(&db.admin).query_drop(sql).unwrap();
    let drop_user = DropUser(&db.admin, user.clone());
    as_admin(&drop_user.statement());
    for host in ["%", "localhost"] {
        as_admin(&format!("CREATE USER '{user}'@'{host}'"));
        as_admin(&format!("GRANT ALL ON {name}.* TO '{user}'@'{host}'"));
    }
    let admin_url = db.url.clone();
    db.url = with_user(&admin_url, &user);
    let (mut w, run_id) = db.open_writer(0, Duration::from_secs(5), pc_host::sink::mysql::open);
    db.url = admin_url;
    let batch: Vec<_> = (0..10).map(|q| record(0, q, 0)).collect();
    w.write(&refs(&batch)).unwrap();
    for host in ["%", "localhost"] {
        as_admin(&format!("REVOKE INSERT ON {name}.* FROM '{user}'@'{host}'"));
    }
    assert!(db.kill_sessions() >= 1, "the writer's connection ended");
    w.lose_commit_reply();
    let e = w.write(&refs(&batch)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "the connection was lost: {e}");
    w.write(&refs(&batch))
        .expect("the retry connects, finds the batch stored, and does not write it again");
    assert_eq!(w.count_stored().unwrap(), 10);
    let more: Vec<_> = (10..20).map(|q| record(0, q, 0)).collect();
    let e = w.write(&refs(&more)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    assert!(e.to_string().contains("error 1142"), "{e}");
    drop(w);
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM messages WHERE run_id = {run_id}"
        )),
        10
    );
}

/// Drops a user of a test (`'NAME'@'%'` and `'NAME'@'localhost'`) at its end, also when it
/// fails; [`statement`](Self::statement) drops it first, should an earlier run of the same
/// process id have left it.
struct DropUser<'a>(&'a str, String);

impl DropUser<'_> {
    fn statement(&self) -> String {
        format!("DROP USER IF EXISTS '{0}'@'%', '{0}'@'localhost'", self.1)
    }
}

impl Drop for DropUser<'_> {
    fn drop(&mut self) {
        let _ = MySql::execute(self.0, &self.statement());
    }
}

#[test]
fn a_batch_still_committing_on_the_lost_connection_is_waited_for_not_stored_twice() {
    let Some(db) = Db::shared("lost_late") else {
        return;
    };
    let busy = Duration::from_secs(10);
    let (mut w, run_id) = db.open_writer(1, busy, pc_host::sink::mysql::open);
    let batch: Vec<_> = (0..50).map(|q| record(0, q, 0)).collect();
    // The lost connection's transaction: its rows written, its COMMIT not yet done.
    let mut old = db.conn();
    old.query_drop("START TRANSACTION").unwrap();
    old.exec_batch(
        "INSERT INTO messages (message, created_at, producer, seq, run_id) \
         VALUES (?, NOW(6), ?, ?, ?)",
        batch
            .iter()
            .map(|r| (r.text.as_str(), r.producer, r.seq, run_id)),
    )
    .unwrap();
    let late = Duration::from_secs(2);
    let committing = std::thread::spawn(move || {
        std::thread::sleep(late);
        old.query_drop("COMMIT").unwrap();
    });
    w.lose_commit_reply();
    let t = Instant::now();
    w.write(&refs(&batch)).unwrap();
    assert!(
        t.elapsed() >= late - Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    committing.join().unwrap();
    let of_run = format!("SELECT COUNT(*) FROM messages WHERE run_id = {run_id}");
    assert_eq!(db.count(&of_run), 50);
    // The writer goes on after it.
    w.write(&refs(&[record(0, 50, 0)])).unwrap();
    assert_eq!(w.count_stored().unwrap(), 51);
}

#[test]
fn a_bookkeeping_call_on_a_killed_connection_reconnects_once() {
    let Some(db) = Db::shared("bookkeeping") else {
        return;
    };
    let (mut w, run_id) = db.open_writer(1, Duration::from_secs(5), pc_host::sink::mysql::open);
    w.write(&refs(&[record(0, 0, 0), record(0, 1, 0)])).unwrap();
    let kill = || assert!(db.kill_sessions() >= 1, "no connection to kill");

    kill();
    assert_eq!(w.count_stored().unwrap(), 2);
    let key = FileKey {
        path: "/nonexistent/bookkeeping.log".into(),
        dev: 3,
        ino: 4,
        born: None,
    };
    kill();
    let input = w.register(Some(&key)).unwrap().input;
    let to = |line: u64| Resume {
        input,
        offset: line * 10,
        line,
        tail: 0,
        mark: None,
        restarted: false,
    };
    kill();
    w.commit_position(to(1)).unwrap();
    assert_eq!(db.inputs(), [(i64::from(input), 10, 1)]);
    // A retried position update whose first COMMIT landed finds the input already there.
    db.conn()
        .exec_drop(
            "UPDATE inputs SET `offset` = 20, line = 2 WHERE input_id = ?",
            (input,),
        )
        .unwrap();
    w.commit_position(to(2)).unwrap();
    // Anywhere else, it was moved by another process.
    db.conn()
        .exec_drop(
            "UPDATE inputs SET `offset` = 40, line = 4 WHERE input_id = ?",
            (input,),
        )
        .unwrap();
    let e = w.commit_position(to(3)).unwrap_err();
    assert!(e.to_string().contains("another process"), "{e:#}");

    let end = RunEnd {
        finished_at: now_ns(),
        completed: true,
        per_producer: &[2],
        produced: 3,
        stored: 2,
        duplicates: 1,
        dead_lettered: 0,
        not_stored: 0,
        retries: 0,
        latency: None,
        elapsed_s: 1.0,
    };
    kill();
    w.finish_run(&end).unwrap();
    // Twice (a retry whose first COMMIT landed) records the same.
    w.finish_run(&end).unwrap();
    let finished = format!(
        "SELECT COUNT(*) FROM runs WHERE run_id = {run_id} AND finished_at IS NOT NULL \
         AND completed AND stored = 2 AND duplicates = 1 \
         AND produced = stored + duplicates + dead_lettered + not_stored"
    );
    assert_eq!(db.count(&finished), 1);
    let producers = format!("SELECT SUM(produced) FROM run_producers WHERE run_id = {run_id}");
    assert_eq!(db.count(&producers), 2);
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

// ---------------------------------------------------------------------------------------------
// What a run keeps besides the data: its report intervals, its summary, schema upgrades

#[test]
fn run_intervals_add_up_to_the_run_and_runs_keeps_the_summary() {
    let Some(db) = Db::shared("intervals") else {
        return;
    };
    let s = Scratch::new("mysql-intervals");
    let out = db.run(
        &s,
        "--messages 3000 --rps 3000 --report-interval 0.1 --output json",
    );
    let v = assert_ok(&out);
    assert!(!out.stderr.contains("report intervals"), "{}", out.stderr);
    let run_id = run_id(&v);
    let rows: Vec<(f64, i64, i64, i64)> = db
        .conn()
        .exec(
            "SELECT t_s, produced, stored, rejected FROM run_intervals WHERE run_id = ? \
             ORDER BY t_s",
            (run_id,),
        )
        .unwrap();
    assert!(rows.len() >= 2, "one row per report interval: {rows:?}");
    assert!(
        rows.windows(2).all(|w| w[0].0 < w[1].0),
        "t_s strictly increasing: {rows:?}"
    );
    let elapsed = v["elapsed_s"].as_f64().unwrap();
    assert_eq!(rows.last().unwrap().0, elapsed, "the last row ends the run");
    let sum = |f: fn(&(f64, i64, i64, i64)) -> i64| rows.iter().map(f).sum::<i64>() as u64;
    assert_eq!(sum(|r| r.1), u(&v, "produced"), "{rows:?}");
    assert_eq!(sum(|r| r.2), u(&v, "stored"), "{rows:?}");
    assert_eq!(sum(|r| r.3), u(&v, "rejected"), "{rows:?}");

    let kept: mysql::Row = db
        .conn()
        .exec_first(
            "SELECT stored, dead_lettered, not_stored, retries, latency_p50_ns, latency_p99_ns, \
             latency_p999_ns, latency_max_ns, duplicates, elapsed_s FROM runs WHERE run_id = ?",
            (run_id,),
        )
        .unwrap()
        .expect("the run's row");
    let counts: Vec<Option<i64>> = (0..9).map(|i| kept.get(i).unwrap()).collect();
    let lat = &v["latency_ns"];
    let want: Vec<Option<i64>> = [
        &v["stored"],
        &v["dead_lettered"],
        &v["not_stored"],
        &v["retries"],
        &lat["p50"],
        &lat["p99"],
        &lat["p999"],
        &lat["max"],
        &v["duplicates"],
    ]
    .iter()
    .map(|x| x.as_i64())
    .collect();
    assert_eq!(counts, want, "runs vs the summary {v}");
    assert_eq!(kept.get::<Option<f64>, _>(9).unwrap(), Some(elapsed));
}

/// The tables as pc-host wrote them in schema version 1 (before `run_intervals` and the
/// summary columns of `runs`).
const SCHEMA_V1: [&str; 7] = [
    "CREATE TABLE pc_host_schema (version INT NOT NULL) ENGINE = InnoDB",
    "INSERT INTO pc_host_schema (version) VALUES (1)",
    "CREATE TABLE runs (
        run_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, started_at BIGINT NOT NULL,
        finished_at BIGINT NULL, completed BOOLEAN NOT NULL DEFAULT FALSE,
        producers INT NOT NULL, produced BIGINT NULL, config LONGTEXT NOT NULL
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
    "CREATE TABLE run_producers (
        run_id BIGINT NOT NULL, producer INT NOT NULL, produced BIGINT NOT NULL,
        PRIMARY KEY (run_id, producer), FOREIGN KEY (run_id) REFERENCES runs (run_id)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
    "CREATE TABLE messages (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, message LONGTEXT NOT NULL,
        created_at DATETIME(6) NOT NULL, producer INT NOT NULL, seq BIGINT NOT NULL,
        run_id BIGINT NOT NULL, UNIQUE KEY run_producer_seq (run_id, producer, seq)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
    "CREATE TABLE inputs (
        input_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, path TEXT NULL, dev BIGINT NULL,
        ino BIGINT NULL, born BIGINT NULL, `offset` BIGINT NOT NULL DEFAULT 0,
        line BIGINT NOT NULL DEFAULT 0, tail BIGINT NOT NULL DEFAULT 0, KEY file (dev, ino)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
    "CREATE TABLE run_inputs (
        run_id BIGINT NOT NULL, input_id BIGINT NOT NULL, PRIMARY KEY (run_id, input_id),
        KEY input (input_id), FOREIGN KEY (run_id) REFERENCES runs (run_id),
        FOREIGN KEY (input_id) REFERENCES inputs (input_id)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
];

/// Creates the version 1 tables holding one completed generated run of two messages.
fn version_1_with_a_run(db: &Db) {
    let mut c = db.conn();
    for sql in SCHEMA_V1 {
        c.query_drop(sql).unwrap();
    }
    c.query_drop(
        "INSERT INTO runs (run_id, started_at, finished_at, completed, producers, produced, \
         config) VALUES (1, 1, 2, TRUE, 1, 2, '{}')",
    )
    .unwrap();
    c.query_drop("INSERT INTO run_producers VALUES (1, 0, 2)")
        .unwrap();
    c.query_drop(
        "INSERT INTO messages (message, created_at, producer, seq, run_id) VALUES \
         ('Message from producer 0: #0', UTC_TIMESTAMP(6), 0, 0, 1), \
         ('Message from producer 0: #1', UTC_TIMESTAMP(6), 0, 1, 1)",
    )
    .unwrap();
}

impl TestDb<MySql> {
    fn schema_version(&self) -> i64 {
        self.count("SELECT MAX(version) FROM pc_host_schema")
    }

    fn columns(&self, table: &str) -> Vec<String> {
        self.conn()
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (table,),
            )
            .unwrap()
    }
}

/// The columns of `runs` in schema version 5 (version 2 has all but the last).
const RUNS_V5: [&str; 17] = [
    "run_id",
    "started_at",
    "finished_at",
    "completed",
    "producers",
    "produced",
    "config",
    "stored",
    "dead_lettered",
    "not_stored",
    "retries",
    "latency_p50_ns",
    "latency_p99_ns",
    "latency_p999_ns",
    "latency_max_ns",
    "elapsed_s",
    "duplicates",
];

#[test]
fn an_existing_version_1_schema_is_upgraded_in_place_keeping_its_runs() {
    let Some(db) = Db::shared("upgrade") else {
        return;
    };
    let s = Scratch::new("mysql-upgrade");
    version_1_with_a_run(&db);
    // verify reads version 1 as it is.
    db.assert_verify(&s);
    assert_eq!(db.schema_version(), 1, "verify changed the schema");

    let v = assert_ok(&db.run_json(&s, "--messages 10 --rps 0"));
    assert_eq!(db.schema_version(), 5);
    assert_eq!(db.columns("runs"), RUNS_V5);
    assert_eq!(
        db.columns("inputs").last().map(String::as_str),
        Some("mark")
    );
    let old = "SELECT COUNT(*) FROM messages WHERE run_id = 1";
    assert_eq!(db.count(old), 2, "the old run's rows are kept");
    let old_run = "SELECT COUNT(*) FROM runs WHERE run_id = 1 AND completed AND stored IS NULL \
                   AND duplicates IS NULL";
    assert_eq!(db.count(old_run), 1, "the old run is kept, with no summary");
    let new_run = format!("SELECT stored FROM runs WHERE run_id = {}", run_id(&v));
    assert_eq!(db.count(&new_run), 10);
    db.assert_verify(&s);
}

#[test]
fn an_upgrade_cut_short_is_completed_by_the_next_run() {
    let Some(db) = Db::shared("upgrade_cut") else {
        return;
    };
    let s = Scratch::new("mysql-upgrade-cut");
    version_1_with_a_run(&db);
    // Cut short after the new columns, before `run_intervals` and the new version.
    db.conn()
        .query_drop(
            "ALTER TABLE runs ADD COLUMN (stored BIGINT NULL, dead_lettered BIGINT NULL, \
             not_stored BIGINT NULL, retries BIGINT NULL, latency_p50_ns BIGINT NULL, \
             latency_p99_ns BIGINT NULL, latency_p999_ns BIGINT NULL, \
             latency_max_ns BIGINT NULL, elapsed_s DOUBLE NULL)",
        )
        .unwrap();
    assert_ok(&db.run_json(&s, "--messages 10 --rps 0"));
    assert_eq!(db.schema_version(), 5);
    assert_eq!(db.columns("runs"), RUNS_V5);
    assert_eq!(
        db.columns("run_intervals").last().map(String::as_str),
        Some("consumers")
    );
    db.assert_verify(&s);
}

#[test]
fn version_1_tables_marked_as_version_2_are_refused_as_altered() {
    let Some(db) = Db::shared("v1_as_v2") else {
        return;
    };
    let s = Scratch::new("mysql-v1-as-v2");
    version_1_with_a_run(&db);
    db.conn()
        .query_drop("UPDATE pc_host_schema SET version = 2")
        .unwrap();
    let out = db.run(&s, "--messages 10 --report-interval 0");
    assert_one_line_error(&out, 1, "table `runs` has columns");
    assert!(out.stderr.contains("altered"), "{}", out.stderr);
    assert_eq!(db.columns("runs").len(), 7, "the table was altered");
    assert!(
        db.columns("run_intervals").is_empty(),
        "a table was created"
    );
}

#[test]
fn verify_accepts_a_generated_run_missing_exactly_its_dead_letters() {
    let Some(db) = Db::shared("dead_gaps") else {
        return;
    };
    let s = Scratch::new("mysql-dead-gaps");
    assert_ok(&db.run_json(&s, "--messages 1 --rps 0"));
    db.conn()
        .query_drop(
            "CREATE TRIGGER odd_refused BEFORE INSERT ON messages FOR EACH ROW \
             IF NEW.seq % 2 = 1 AND NEW.run_id > 1 THEN \
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'odd seq refused'; END IF",
        )
        .unwrap();
    let args = "--producers 2 --messages 200 --rps 0 --dead-letter dl.jsonl";
    let v = assert_ok(&db.run_json(&s, args));
    assert_eq!((u(&v, "stored"), u(&v, "dead_lettered")), (100, 100), "{v}");
    let kept = format!(
        "SELECT dead_lettered FROM runs WHERE run_id = {}",
        run_id(&v)
    );
    assert_eq!(db.count(&kept), 100);
    let verify = common::run(s.dir(), &["verify", "--sink", &db.url]);
    assert_eq!(verify.code, Some(0), "{}", verify.stdout);
    assert!(
        verify
            .stdout
            .contains("(100 dead-lettered); each missing seq is in "),
        "{}",
        verify.stdout
    );
}

/// Report interval rows ending at `t_s`, one per second given.
fn intervals(t_s: &[f64]) -> Vec<Interval> {
    t_s.iter()
        .map(|&t_s| Interval {
            t_s,
            len_s: 1.0,
            counts: Counts::default(),
            produced: 10,
            stored: 9,
            rejected: 1,
            queue_depth: 2,
            latency_p50: Some(1_000),
            latency_p99: Some(2_000),
            latency_max: None,
            commit_p99: Some(3_000),
            consumers: 1,
        })
        .collect()
}

#[test]
fn intervals_kept_without_waiting_give_up_on_a_held_lock_at_once_and_then_wait_as_before() {
    let Some(db) = Db::shared("intervals_lock") else {
        return;
    };
    let busy = Duration::from_secs(5);
    let (mut w, run_id) = db.open_writer(0, busy, pc_host::sink::mysql::open);
    let of_run = format!("SELECT COUNT(*) FROM run_intervals WHERE run_id = {run_id}");
    w.record_intervals(&intervals(&[1.0, 2.0]), false).unwrap();
    // The same rows again (a COMMIT whose reply was lost) replace those kept.
    w.record_intervals(&intervals(&[2.0, 3.0]), false).unwrap();
    assert_eq!(db.count(&of_run), 3);

    // Another client holds the run's row (which each row's foreign key checks)...
    let mut other = hold_run_row(&db, run_id);
    let more = intervals(&[4.0]);
    let t = Instant::now();
    let e = w.record_intervals(&more, false).unwrap_err();
    assert!(e.is::<Busy>(), "{e:#}");
    assert!(
        t.elapsed() < busy - Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    // ... and waiting, the writer waits its own lock timeout again.
    let t = Instant::now();
    let e = w.record_intervals(&more, true).unwrap_err();
    assert!(e.to_string().contains("Lock wait timeout"), "{e:#}");
    assert!(
        t.elapsed() >= busy - Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    other.query_drop("COMMIT").unwrap();

    // A table lock too.
    other.query_drop("LOCK TABLES run_intervals WRITE").unwrap();
    let e = w.record_intervals(&more, false).unwrap_err();
    assert!(e.is::<Busy>(), "{e:#}");
    other.query_drop("UNLOCK TABLES").unwrap();

    w.record_intervals(&more, true).unwrap();
    assert_eq!(db.count(&of_run), 4);
    w.write(&refs(&[record(0, 0, 0)])).unwrap();
}

#[test]
fn intervals_kept_without_waiting_never_connect_again_and_waiting_does() {
    let Some(db) = Db::shared("intervals_lost") else {
        return;
    };
    let (mut w, run_id) = db.open_writer(0, Duration::from_secs(5), pc_host::sink::mysql::open);
    let of_run = format!("SELECT COUNT(*) FROM run_intervals WHERE run_id = {run_id}");
    assert!(db.kill_sessions() >= 1, "no connection to kill");
    // The lost connection is an error like any other; the writer then has none...
    let e = w.record_intervals(&intervals(&[1.0]), false).unwrap_err();
    assert!(!e.is::<Busy>(), "{e:#}");
    // ... and without waiting, does not connect.
    let e = w.record_intervals(&intervals(&[1.0]), false).unwrap_err();
    assert!(e.is::<Busy>(), "{e:#}");
    assert_eq!(db.count(&of_run), 0);
    w.record_intervals(&intervals(&[1.0, 2.0]), true).unwrap();
    assert_eq!(db.count(&of_run), 2);
}

#[test]
fn a_file_renamed_between_runs_resumes_where_it_was_committed() {
    let Some(db) = Db::shared("renamed") else {
        return;
    };
    let s = Scratch::new("mysql-renamed");
    assert_renamed_file_resumes(&db, &s);
}

/// `verify --source` reads the file's rows from the server: OK, then a changed row, lines not
/// read yet, a deleted row, rows past a truncated end and a file never ingested, each with
/// the report and exit status SQLite gives.
#[test]
fn verify_source_compares_a_file_with_its_rows_on_the_server() {
    let Some(db) = Db::shared("verify_source") else {
        return;
    };
    let s = Scratch::new("mysql-verify-source");
    common::assert_verify_source_judges_the_rows(&s, &["--sink", &db.url], |sql| {
        MySql::execute(&db.url, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

/// Recording a publishing run waits for pc-host's origin lock, held here by another client,
/// for the sessions' lock wait (`--busy-timeout-ms`, at least 1 s), then says so as a
/// retryable failure; once the lock is free the run is recorded, once. The wait ends before
/// the connection's reply timeout, so a held lock is never taken for a lost connection.
#[test]
fn recording_a_publisher_behind_a_held_origin_lock_waits_the_busy_timeout() {
    let Some(db) = Db::shared("origin_lock") else {
        return;
    };
    let (mut w, _) = db
        .try_open_writer(0, Duration::from_secs(1), true, pc_host::sink::mysql::open)
        .expect("open the writer");
    let lock = "CONCAT('pc-host origins ', MD5(DATABASE()))";
    let mut holder = db.conn();
    let got: Option<i64> = holder
        .query_first(format!("SELECT GET_LOCK({lock}, 0)"))
        .unwrap();
    assert_eq!(got, Some(1));
    let origin = pc_host::position::Origin {
        run: 7,
        producers: 1,
        started_at: 1,
    };
    let e = w.origin_run(&origin).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.to_string().contains("origin lock for 1 s"), "{e}");
    holder
        .query_drop(format!("DO RELEASE_LOCK({lock})"))
        .unwrap();
    let run = w
        .origin_run(&origin)
        .expect("recorded once the lock is free");
    assert_eq!(w.origin_run(&origin).unwrap(), run, "one run per origin");
}

/// `plot --sink` draws a run from MySQL's `run_intervals`, as `--db` does from SQLite's.
#[test]
fn plot_draws_a_run_from_the_database() {
    let Some(db) = Db::shared("plot") else { return };
    let s = Scratch::new("mysql-plot");
    db.assert_plots(&s, |run| {
        db.count(&format!(
            "SELECT COUNT(*) FROM run_intervals WHERE run_id = {run}"
        ))
    });
}

/// A pc-host database with one of its tables gone (or hidden from this user) is read by
/// neither `verify` nor `plot`, and each names the table: not "no pc-host tables".
#[test]
fn a_database_missing_one_of_its_tables_is_refused_naming_it() {
    let Some(db) = Db::shared("missing_table") else {
        return;
    };
    let s = Scratch::new("mysql-missing-table");
    assert_ok(&db.run_json(&s, "--messages 10"));
    db.conn().query_drop("DROP TABLE run_producers").unwrap();
    for args in [
        &["verify", "--sink", db.url.as_str()][..],
        &["plot", "--sink", db.url.as_str(), "-o", "p.svg"],
    ] {
        let out = common::run(s.dir(), args);
        assert_one_line_error(
            &out,
            1,
            "has pc-host's mark but not its table(s) run_producers",
        );
    }
}
