//! NATS JetStream: publishing runs, consuming runs, exactly once into SQLite, against the real
//! server in `PC_TEST_NATS_URL` (SKIP when unset; `.ci/run` sets it). Each test uses streams
//! of its own, deleted when it ends. The mid-run outage test starts a private `nats-server`.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use async_nats::jetstream::stream::DiscardPolicy;
use common::OutputWithin as _;
use common::scrape::{count, metrics_addr, scrape};
use common::server::{dead_letters, server_url, wait_until};
use common::{Running, Scratch, assert_error, hold_write_lock, json, pc_host, start_command, u};
use pc_host::config::url::{NatsServer, SourceSpec, parse_source};
use serde_json::Value;

/// A stream of one test, deleted when the test ends.
struct TestStream {
    server: NatsServer,
    name: String,
}

impl TestStream {
    fn new(url: &str, test: &str) -> Self {
        let name = format!("PCT_{}_{}", test.to_uppercase(), std::process::id());
        let Ok(SourceSpec::Nats(spec)) = parse_source(&format!("{url}/{name}")) else {
            panic!("PC_TEST_NATS_URL is not a nats:// URL: {url}")
        };
        let stream = Self {
            server: spec.server,
            name,
        };
        stream.delete();
        stream
    }

    fn subject(&self) -> String {
        format!("pct.{}", self.name.to_lowercase())
    }

    /// `--sink` for publishing to this stream.
    fn sink(&self) -> String {
        format!(
            "{}/{}?stream={}",
            self.server.shown,
            self.subject(),
            self.name
        )
    }

    /// `--source` for consuming it.
    fn source(&self, params: &str) -> String {
        format!("{}/{}?{params}", self.server.shown, self.name)
    }

    fn context(&self) -> async_nats::jetstream::Context {
        let client = pc_host::nats::connect(&self.server).expect("connect to NATS");
        pc_host::nats::jetstream(client)
    }

    /// Messages in the stream now.
    fn messages(&self) -> u64 {
        let js = self.context();
        pc_host::nats::runtime().block_on(async {
            let mut s = js.get_stream(&self.name).await.expect("the stream");
            s.info().await.expect("stream info").state.messages
        })
    }

    /// Creates the stream with work-queue retention, `tune`d.
    fn create(&self, tune: impl FnOnce(&mut async_nats::jetstream::stream::Config)) {
        use async_nats::jetstream::stream::{Config, RetentionPolicy};
        let mut config = Config {
            name: self.name.clone(),
            subjects: vec![self.subject()],
            retention: RetentionPolicy::WorkQueue,
            ..Default::default()
        };
        tune(&mut config);
        pc_host::nats::runtime()
            .block_on(self.context().create_stream(config))
            .expect("create the stream");
    }

    /// Creates the stream to keep at most `most` messages; past them it refuses new ones
    /// (`DiscardPolicy::New`) or drops its oldest (`Old`).
    fn create_bounded(&self, most: i64, discard: DiscardPolicy) {
        self.create(|c| {
            c.max_messages = most;
            c.discard = discard;
        });
    }

    /// Publishes raw messages (not pc-host's: no identity headers).
    fn publish_raw(&self, payloads: &[&[u8]]) {
        let js = self.context();
        pc_host::nats::runtime().block_on(async {
            for p in payloads {
                js.publish(self.subject(), bytes::Bytes::copy_from_slice(p))
                    .await
                    .expect("publish")
                    .await
                    .expect("publish ack");
            }
        });
    }

    /// Publishes one message with a `Pc-Run-End` header of `run` and `payload`, as only a
    /// publishing pc-host should.
    fn publish_run_end(&self, run: &str, payload: &[u8]) {
        let js = self.context();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(pc_host::nats::RUN_END, run);
        pc_host::nats::runtime().block_on(async {
            js.publish_with_headers(
                self.subject(),
                headers,
                bytes::Bytes::copy_from_slice(payload),
            )
            .await
            .expect("publish")
            .await
            .expect("publish ack");
        });
    }

    /// The names of the stream's consumers.
    fn consumers(&self) -> Vec<String> {
        let js = self.context();
        pc_host::nats::runtime().block_on(async {
            let s = js.get_stream(&self.name).await.expect("the stream");
            let names: Vec<_> = futures_util::StreamExt::collect(s.consumer_names()).await;
            names
                .into_iter()
                .map(|n| n.expect("a consumer name"))
                .collect()
        })
    }

    fn delete(&self) {
        let js = self.context();
        let _ = pc_host::nats::runtime().block_on(js.delete_stream(&self.name));
    }

    /// Deletes the consumer `name` of the stream.
    fn delete_consumer(&self, name: &str) {
        let js = self.context();
        pc_host::nats::runtime().block_on(async {
            let s = js.get_stream(&self.name).await.expect("the stream");
            s.delete_consumer(name).await.expect("delete the consumer");
        });
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        self.delete();
    }
}

fn nats_url() -> Option<String> {
    server_url("PC_TEST_NATS_URL").map(|u| u.trim_end_matches('/').to_string())
}

/// Runs pc-host to its end with `--output json`; the summary.
fn run_json(dir: &Path, args: &[&str]) -> Value {
    let out: common::Out = pc_host(dir)
        .args(args)
        .args(["--output", "json"])
        .output_within()
        .expect("run pc-host")
        .into();
    assert_eq!(out.code, Some(0), "{args:?} failed:\n{}", out.stderr);
    json(&out)
}

fn start(s: &Scratch, args: &[&str]) -> Running {
    let mut cmd = pc_host(s.dir());
    cmd.args(args).args(["--output", "json"]);
    start_command(cmd)
}

/// Publishes `messages` generated records from `producers` threads; the run id.
fn publish(s: &Scratch, stream: &TestStream, producers: &str, messages: &str) -> Running {
    start(
        s,
        &[
            "--sink",
            &stream.sink(),
            "--producers",
            producers,
            "--messages",
            messages,
            "--rps",
            "0",
        ],
    )
}

/// A consuming run from `source` into `out.db` at 2,000 records a second, a progress line
/// every 0.2 s, with `extra` arguments: slow enough to be stopped in the middle of a stream.
fn paced_consumer(s: &Scratch, source: &str, extra: &[&str]) -> Running {
    let mut args = vec![
        "--source",
        source,
        "--db",
        "out.db",
        "--rps",
        "2000",
        "--report-interval",
        "0.2",
    ];
    args.extend_from_slice(extra);
    start(s, &args)
}

fn finish_json(r: Running) -> Value {
    let out = common::finish(r);
    assert_eq!(out.code, Some(0), "run failed:\n{}", out.stderr);
    json(&out)
}

fn rows(db: &Path) -> u64 {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get::<_, i64>(0))
        .expect("count") as u64
}

fn verify_ok(dir: &Path, db: &str) -> String {
    let out: common::Out = pc_host(dir)
        .args(["verify", "--db", db])
        .output_within()
        .expect("verify")
        .into();
    assert_eq!(out.code, Some(0), "verify failed:\n{}", out.stdout);
    out.stdout
}

#[test]
fn two_publishers_and_two_consumers_store_every_record_exactly_once() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-2x2");
    let stream = TestStream::new(&url, "twobytwo");
    let (a, b) = (
        publish(&s, &stream, "2", "4000"),
        publish(&s, &stream, "3", "3000"),
    );
    let (a, b) = (finish_json(a), finish_json(b));
    for p in [&a, &b] {
        assert_eq!(u(p, "stored"), u(p, "produced"));
        assert_eq!(p["nats"]["published"], p["produced"]);
        // Acknowledged by JetStream, not counted back from a database.
        assert!(p["stored_counted_back"].is_null(), "{p}");
    }
    assert_ne!(
        a["run_id"], b["run_id"],
        "publishing runs have ids of their own"
    );
    // 7000 records and one end message per publishing run.
    assert_eq!(stream.messages(), 7002);
    let source = stream.source("consumer=shared&until=empty");
    let args = ["--source", source.as_str(), "--db", "out.db"];
    // The first creates the database; the second starts once it has (its header), so two
    // processes never create one new SQLite file at the same moment.
    let mut c = start(&s, &args);
    c.err.wait("the first consumer's header", |l| {
        l.starts_with("pc-host run")
    });
    let d = start(&s, &args);
    let (c, d) = (finish_json(c), finish_json(d));
    assert_eq!(u(&c, "stored") + u(&d, "stored"), 7000, "{c}\n{d}");
    for v in [&c, &d] {
        assert_eq!(
            v["stop_reason"], "eof",
            "until=empty ends at the stream's end: {v}"
        );
    }
    assert_eq!(rows(&s.path("out.db")), 7000);
    assert_eq!(
        stream.messages(),
        0,
        "work-queue retention: acked messages are gone"
    );
    let report = verify_ok(s.dir(), "out.db");
    assert_eq!(
        report
            .matches("every producer's seq 0..n exactly once")
            .count(),
        2,
        "{report}"
    );
    // Each publisher's run is named by the id it printed, beside its number here.
    for p in [&a, &b] {
        let named = format!("(published by run {}): completed", p["run_id"]);
        assert!(report.contains(&named), "{named}\n{report}");
    }
}

#[test]
fn nats_ingest_is_exactly_once_across_kill() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-kill");
    let stream = TestStream::new(&url, "kill");
    finish_json(publish(&s, &stream, "2", "30000"));
    // Slow enough to be killed mid-run; a short ack wait so its messages come back soon.
    let source = stream.source("consumer=k&until=empty&ack_wait=1s");
    let slow = [
        "--source",
        source.as_str(),
        "--db",
        "out.db",
        "--rps",
        "5000",
    ];
    let victim = start(&s, &slow);
    let db = s.path("out.db");
    wait_until("the first consumer stored some", || {
        db.exists() && std::panic::catch_unwind(|| rows(&db)).unwrap_or(0) > 1000
    });
    let status = victim.kill();
    assert!(!status.success());
    let before = rows(&db);
    assert!(
        before < 30_000,
        "killed too late to test anything: {before}"
    );
    let fast = ["--source", source.as_str(), "--db", "out.db"];
    let (c, d) = (start(&s, &fast), start(&s, &fast));
    let (c, d) = (finish_json(c), finish_json(d));
    assert_eq!(
        before + u(&c, "stored") + u(&d, "stored"),
        30_000,
        "{c}\n{d}"
    );
    assert_eq!(rows(&db), 30_000);
    let report = verify_ok(s.dir(), "out.db");
    assert!(
        report.contains(
            "2 producers, 30000 produced, 30000 rows; every producer's seq 0..n exactly once"
        ),
        "{report}"
    );
}

#[test]
fn foreign_messages_are_stored_once_by_stream_sequence_and_bad_ones_dead_lettered() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-foreign");
    let stream = TestStream::new(&url, "foreign");
    // The stream is made by a publishing run (none of its records).
    finish_json(publish(&s, &stream, "1", "1"));
    let before = stream.messages();
    stream.publish_raw(&[b"order 1", b"\xff\xfe not text", b"order 2"]);
    let source = stream.source("consumer=f&until=empty");
    let out: common::Out = pc_host(s.dir())
        .args([
            "--source",
            &source,
            "--db",
            "out.db",
            "--dead-letter",
            "dl.jsonl",
        ])
        .args(["--output", "json"])
        .output_within()
        .expect("run pc-host")
        .into();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = json(&out);
    assert_eq!(u(&v, "stored"), 3, "{v}");
    assert_eq!(u(&v, "rejected"), 1);
    assert_eq!(
        v["inputs"][0]["name"],
        format!("nats:{}", stream.name),
        "{v}"
    );
    // The bad message is named by its stream and its own sequence number, on stderr and in
    // its dead-letter entry.
    let bad_seq = before + 2;
    let name = format!("nats:{}", stream.name);
    assert!(
        out.stderr.contains(&format!(
            "{name}: 1 record rejected (not stored): stream sequence {bad_seq}: not valid UTF-8"
        )),
        "{}",
        out.stderr
    );
    let dl = std::fs::read_to_string(s.path("dl.jsonl")).expect("dead letters");
    assert_eq!(dl.lines().count(), 1, "{dl}");
    let entry: Value = serde_json::from_str(dl.trim()).unwrap();
    assert_eq!(entry["source"]["input"], name.as_str(), "{entry}");
    assert_eq!(entry["source"]["stream_sequence"], bad_seq, "{entry}");
    assert!(entry["source"].get("line").is_none(), "{entry}");
    assert!(entry["record_base64"].is_string(), "{entry}");
    let conn = rusqlite::Connection::open(s.path("out.db")).unwrap();
    let texts: Vec<String> = conn
        .prepare("SELECT message FROM messages ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(texts[1..], ["order 1", "order 2"], "{texts:?}");
    // The foreign messages are this run's own rows, and they lie at or below its `last_id`
    // (written when it finished): another run counting at the same time relies on that.
    let run = v["run_id"].as_i64().unwrap();
    let (last, own): (Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT (SELECT last_id FROM runs WHERE run_id = ?1), \
             (SELECT MAX(id) FROM messages WHERE run_id = ?1)",
            [run],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        own.is_some() && last >= own,
        "last_id {last:?}, own rows up to {own:?}"
    );
    // Nothing left to deliver: a second run stores nothing and ends.
    let again = run_json(s.dir(), &["--source", &source, "--db", "out.db"]);
    assert_eq!(u(&again, "stored"), 0);
    verify_ok(s.dir(), "out.db");
}

/// A message that claims to be a run's end but cannot be read as one is rejected like a bad
/// record (counted, dead-lettered, terminated), not a fatal error: failing the run left it
/// unacknowledged, to fail every consumer it was delivered to next.
#[test]
fn a_run_end_that_cannot_be_read_is_rejected_not_fatal() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-bad-end");
    let stream = TestStream::new(&url, "badend");
    finish_json(publish(&s, &stream, "1", "10"));
    stream.publish_run_end("x", b"{}");
    stream.publish_run_end("7", b"not json");
    let source = stream.source("until=empty");
    let args = [
        "--source",
        source.as_str(),
        "--db",
        "out.db",
        "--dead-letter",
        "dl.jsonl",
    ];
    let v = run_json(s.dir(), &args);
    assert_eq!((u(&v, "stored"), u(&v, "rejected")), (10, 2), "{v}");
    let dl = std::fs::read_to_string(s.path("dl.jsonl")).expect("dead letters");
    assert_eq!(dl.lines().count(), 2, "{dl}");
    assert!(dl.contains("names no run"), "{dl}");
    assert_eq!(
        stream.messages(),
        0,
        "terminated, not left for the next consumer"
    );
    verify_ok(s.dir(), "out.db");
}

/// A record published by a pc-host run that the sink refuses is dead-lettered by the
/// consuming run under its publisher's run id, producer and seq (as the publisher's own entries
/// name its records), and `verify` given that file accepts the run with it missing.
#[test]
fn a_published_record_the_sink_refuses_is_dead_lettered_by_its_publisher_and_seq() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-refused");
    let stream = TestStream::new(&url, "refused");
    let published = finish_json(publish(&s, &stream, "1", "20"));
    let publisher = published["run_id"]
        .as_i64()
        .expect("the publisher's run id");
    // And a message no pc-host run published, refused too: named by its stream sequence.
    let foreign_seq = stream.messages() + 1;
    stream.publish_raw(&[b"foreign, refused"]);
    // The database, with a trigger that refuses seq 7.
    let made = run_json(
        s.dir(),
        &["--db", "out.db", "--messages", "1", "--rps", "0"],
    );
    assert_eq!(u(&made, "stored"), 1);
    rusqlite::Connection::open(s.path("out.db"))
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER no_seven BEFORE INSERT ON messages
             WHEN NEW.message LIKE 'Message from producer 0: #7.%'
               OR NEW.message = 'foreign, refused'
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .unwrap();
    let source = stream.source("consumer=r&until=empty");
    let v = run_json(
        s.dir(),
        &[
            "--source",
            &source,
            "--db",
            "out.db",
            "--dead-letter",
            "dl.jsonl",
        ],
    );
    assert_eq!((u(&v, "stored"), u(&v, "dead_lettered")), (19, 2), "{v}");
    let entries = dead_letters(&s.path("dl.jsonl"));
    let (ours, foreign): (Vec<_>, Vec<_>) = entries
        .iter()
        .partition(|e| e["record"] != "foreign, refused");
    let (entry, foreign) = (ours[0], foreign[0]);
    assert_eq!(entry["run_id"], publisher, "{entry}");
    assert_eq!(entry["source"]["producer"], 0, "{entry}");
    assert_eq!(entry["source"]["seq"], 7, "{entry}");
    assert!(entry["source"].get("line").is_none(), "{entry}");
    assert_eq!(
        foreign["run_id"], v["run_id"],
        "the consuming run's own row: {foreign}"
    );
    assert_eq!(
        foreign["source"]["stream_sequence"], foreign_seq,
        "{foreign}"
    );
    assert_eq!(
        foreign["source"]["input"],
        format!("nats:{}", stream.name),
        "{foreign}"
    );
    let verify = |extra: &[&str]| -> common::Out {
        pc_host(s.dir())
            .args(["verify", "--db", "out.db"])
            .args(extra)
            .output_within()
            .expect("verify")
            .into()
    };
    let out = verify(&["--dead-letter", "dl.jsonl"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    // By the id the publisher printed: the run that holds its 19 rows here.
    let by_publisher = publisher.to_string();
    let out = verify(&["--dead-letter", "dl.jsonl", "--run", &by_publisher]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains(&format!("(published by run {publisher})"))
            && out.stdout.contains("19 rows"),
        "{}",
        out.stdout
    );
    let out = verify(&[]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stdout.contains("give it with --dead-letter"),
        "{}",
        out.stdout
    );
}

/// A record published by a pc-host run that the consumer rejects (longer than its
/// `--max-record-bytes`) is terminated in the stream, so its dead-letter entry is all that is
/// left of it: the entry keeps the whole text and names the publisher's run, producer and
/// seq, and `verify` given the file accepts the run with those seqs missing.
#[test]
fn a_published_record_rejected_as_too_long_is_dead_lettered_whole_by_its_publisher_and_seq() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-too-long");
    let stream = TestStream::new(&url, "too_long");
    let published = finish_json(publish(&s, &stream, "1", "5"));
    let publisher = published["run_id"]
        .as_i64()
        .expect("the publisher's run id");
    let source = stream.source("consumer=r&until=empty");
    let v = run_json(
        s.dir(),
        &[
            "--source",
            &source,
            "--db",
            "out.db",
            "--max-record-bytes",
            "40",
            "--dead-letter",
            "dl.jsonl",
        ],
    );
    assert_eq!((u(&v, "rejected"), u(&v, "stored")), (5, 0), "{v}");
    let entries = dead_letters(&s.path("dl.jsonl"));
    assert_eq!(entries.len(), 5, "{entries:?}");
    for (seq, entry) in entries.iter().enumerate() {
        assert_eq!(entry["run_id"], publisher, "{entry}");
        assert_eq!(entry["reason"], "rejected", "{entry}");
        assert_eq!(entry["source"]["producer"], 0, "{entry}");
        assert_eq!(entry["source"]["seq"], seq, "{entry}");
        let text = entry["record"].as_str().expect("the whole text");
        assert!(
            text.starts_with(&format!("Message from producer 0: #{seq}.")) && text.len() > 40,
            "{entry}"
        );
    }
    let out: common::Out = pc_host(s.dir())
        .args(["verify", "--db", "out.db", "--dead-letter", "dl.jsonl"])
        .output_within()
        .expect("verify")
        .into();
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    // The publisher's run id, the one it printed, names the run that holds its records here.
    let run = publisher.to_string();
    let args = [
        "verify",
        "--db",
        "out.db",
        "--dead-letter",
        "dl.jsonl",
        "--run",
        &run,
    ];
    let out: common::Out = pc_host(s.dir())
        .args(args)
        .output_within()
        .expect("verify")
        .into();
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains(&format!("(published by run {publisher})")),
        "{}",
        out.stdout
    );
}

#[test]
fn a_lanes_publisher_counts_each_lane_and_a_nats_source_feeds_the_lane_it_names() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-lanes");
    let stream = TestStream::new(&url, "lanes");
    let sink = stream.sink();
    let lanes = [
        "--lanes",
        "high:1,low:9",
        "--rps",
        "0",
        "--report-interval",
        "0",
    ];
    let mut args = vec!["--sink", sink.as_str(), "--messages", "1000"];
    args.extend(lanes);
    let published = run_json(s.dir(), &args);
    assert_eq!(u(&published["lanes"]["high"], "stored"), 100, "{published}");
    assert_eq!(u(&published["lanes"]["low"], "stored"), 900, "{published}");
    let source = stream.source("consumer=l&until=empty&lane=high");
    let mut args = vec!["--source", source.as_str(), "--db", "out.db"];
    args.extend(lanes);
    let v = run_json(s.dir(), &args);
    assert_eq!(u(&v, "stored"), 1000, "{v}");
    for key in ["produced", "stored"] {
        assert_eq!(u(&v["lanes"]["high"], key), 1000, "{v}");
        assert_eq!(u(&v["lanes"]["low"], key), 0, "{v}");
    }
    verify_ok(s.dir(), "out.db");
}

#[test]
fn an_unreachable_nats_server_at_start_is_one_line_and_exit_1() {
    let s = Scratch::new("nats-unreachable");
    let port = free_port();
    for args in [
        vec!["--sink".to_string(), format!("nats://127.0.0.1:{port}/x")],
        vec!["--source".to_string(), format!("nats://127.0.0.1:{port}/X")],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out: common::Out = pc_host(s.dir())
            .args(&args)
            .args(["--messages", "10"])
            .output_within()
            .unwrap()
            .into();
        common::assert_one_line_error(&out, 1, &format!("127.0.0.1:{port}: cannot connect"));
        assert!(!s.path("pc-host.db").exists(), "nothing written");
    }
}

#[test]
fn sources_and_sinks_that_cannot_pair_are_refused() {
    let s = Scratch::new("nats-pairs");
    std::fs::write(s.path("in.txt"), "a\n").unwrap();
    for (args, needle) in [
        (
            vec!["--source", "nats://h/S", "--sink", "nats://h/s"],
            "use NATS itself",
        ),
        (
            vec!["--source", "file:in.txt", "--sink", "nats://h/s"],
            "cannot be published",
        ),
        (
            vec!["--source", "nats://h/S", "--source", "stdin"],
            "cannot be combined",
        ),
    ] {
        let out: common::Out = pc_host(s.dir()).args(&args).output_within().unwrap().into();
        assert_error(&out, 2, needle);
    }
}

/// A `nats-server` of this test's own, with JetStream, on a free port.
struct PrivateServer {
    child: Option<Child>,
    port: u16,
    store: std::path::PathBuf,
}

impl PrivateServer {
    fn start(store: &Path) -> Option<Self> {
        let mut server = Self {
            child: None,
            port: free_port(),
            store: store.to_path_buf(),
        };
        server.restart().then_some(server)
    }

    /// Starts it (again, on the same port and store); `false` if there is no `nats-server`.
    fn restart(&mut self) -> bool {
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        wait_until("the private nats-server listens", || {
            TcpStream::connect(&addr).is_ok()
        });
        true
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A publishing run and then a consuming run that ends `until=empty`, each with the server
/// stopped and started again under it: the publisher retries, and the consumer, whose question
/// of what is left goes unanswered meanwhile, asks again once the server is back (it failed
/// the run), its `/health` saying meanwhile that the source is stalled; every record is stored
/// once.
#[test]
fn publishing_and_consuming_ride_out_a_nats_outage_without_losing_a_record() {
    if nats_url().is_none() {
        return;
    }
    let s = Scratch::new("nats-outage");
    let Some(mut server) = PrivateServer::start(&s.path("store")) else {
        if std::env::var_os("PC_TEST_NATS_URL").is_some() {
            panic!("nats-server is not on PATH: the outage test needs its own server");
        }
        return;
    };
    let url = format!("nats://127.0.0.1:{}", server.port);
    let sink = format!("{url}/pct.outage?stream=OUTAGE");
    let publisher = start(
        &s,
        &[
            "--sink",
            &sink,
            "--producers",
            "2",
            "--rps",
            "4000",
            "--duration",
            "4",
            "--report-interval",
            "0.2",
        ],
    );
    let stream = TestStream {
        server: match parse_source(&format!("{url}/OUTAGE")) {
            Ok(SourceSpec::Nats(n)) => n.server,
            _ => unreachable!(),
        },
        name: "OUTAGE".into(),
    };
    wait_until("records in the stream", || {
        std::panic::catch_unwind(|| stream.messages()).unwrap_or(0) > 500
    });
    server.stop();
    let mut publisher = publisher;
    publisher
        .err
        .wait("the publisher notices", |l| l.contains("retrying"));
    assert!(server.restart());
    let summary = finish_json(publisher);
    assert_eq!(u(&summary, "stored"), u(&summary, "produced"), "{summary}");
    assert!(u(&summary, "retries") > 0, "the outage was seen: {summary}");
    let source = format!("{url}/OUTAGE?consumer=o&until=empty&ack_wait=2s");
    let mut consumer = paced_consumer(&s, &source, &["--metrics-addr", "0"]);
    let addr = metrics_addr(&mut consumer);
    consumer.err.wait_stored_at_least(1);
    server.stop();
    consumer.err.wait("the consumer asks again", |l| {
        l.contains("asking again until the server answers")
    });
    let health = common::scrape::get(&addr, "/health", None);
    assert_eq!(health.status, 503, "{health:?}");
    assert!(
        health.body.starts_with("source stalled: NATS"),
        "{health:?}"
    );
    assert!(server.restart());
    let v = finish_json(consumer);
    assert_eq!(u(&v, "stored"), u(&summary, "produced"), "{v}");
    let report = verify_ok(s.dir(), "out.db");
    assert!(report.contains("exactly once"), "{report}");
}

/// A consumer deleted under a run that ends `until=empty` is not an outage to wait out: the
/// run does not end as if the stream were drained, nor ask for ever; it fails, exit 1, and
/// what it stored is stored once.
#[test]
fn a_consumer_deleted_under_an_until_empty_run_fails_it() {
    let said = ["NATS: asking the consumer what is left: consumer not found"];
    consumer_deleted_under_a_run("gone", "&until=empty", &said);
}

/// A consumer deleted under a run with no end of its own: the run does not end as if a stop
/// had come, nor wait for ever on a pull nobody answers; it fails, exit 1, naming the
/// consumer, and what it stored is stored once.
#[test]
fn a_consumer_deleted_under_a_run_fails_it_instead_of_ending_it() {
    consumer_deleted_under_a_run("deleted", "", &["consumer deleted", "consumer not found"]);
}

/// Deletes consumer `name` while a paced run (source parameters `params` besides the
/// consumer) consumes it, and checks the run fails saying one of `said`, what it stored
/// stored once.
fn consumer_deleted_under_a_run(name: &str, params: &str, said: &[&str]) {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new(&format!("nats-consumer-{name}"));
    let stream = TestStream::new(&url, &format!("consumer_{name}"));
    stream.create_bounded(100_000, DiscardPolicy::Old);
    let published = finish_json(publish(&s, &stream, "1", "20000"));
    assert_eq!(u(&published, "stored"), 20_000, "{published}");
    let source = stream.source(&format!("consumer={name}{params}"));
    let mut consumer = paced_consumer(&s, &source, &[]);
    consumer.err.wait_stored_at_least(1);
    stream.delete_consumer(name);
    let out = common::finish(consumer);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        said.iter().any(|line| out.stderr.contains(line)),
        "{}",
        out.stderr
    );
    let v = json(&out);
    assert!(u(&v, "stored") < 20_000, "{v}");
    let report = verify_ok(s.dir(), "out.db");
    assert!(
        report.contains("at most once") || report.contains("exactly once"),
        "{report}"
    );
}

/// The sink's side of exactly once, without a broker: the same deliveries written twice are
/// stored once, and the second write reports them as duplicates.
#[test]
fn a_record_delivered_twice_is_stored_once() {
    use pc_host::message::{Delivery, Record};
    use pc_host::sink::{RunStart, Sink as _};
    let s = Scratch::new("nats-dedupe");
    let spec = pc_host::config::SinkSpec::Sqlite(s.path("d.db"));
    let start = RunStart {
        producers: 0,
        config_json: "{}",
        started_at: 1,
        busy: std::time::Duration::from_secs(5),
        retry_for: std::time::Duration::from_secs(60),
        synchronous: pc_host::config::Synchronous::Normal,
        page_size: None,
        rps: 0,
        delivered: true,
        nats: &std::sync::Arc::default(),
    };
    let mut opened = pc_host::sink::open(&spec, &start).expect("open");
    let origin = pc_host::position::Origin {
        run: 99,
        producers: 1,
        started_at: 1,
    };
    let key_run = opened.sink.origin_run(&origin).expect("origin run");
    assert_eq!(
        opened.sink.origin_run(&origin).unwrap(),
        key_run,
        "one run per origin"
    );
    let record = |seq: u64| Record {
        created_at: 1,
        seq,
        text: format!("Message from producer 0: #{seq}"),
        delivery: Some(Box::new(Delivery {
            key_run,
            published_by: origin.run,
            ack: String::new(),
        })),
        ..Record::default()
    };
    let (a, b, c) = (record(0), record(1), record(2));
    opened.sink.write(&[&a, &b]).expect("first delivery");
    assert_eq!(opened.sink.duplicates(), 0);
    opened.sink.write(&[&b, &c, &a]).expect("redelivery");
    assert_eq!(opened.sink.duplicates(), 2);
    assert_eq!(opened.sink.count_stored().unwrap(), 3);
    assert_eq!(rows(&s.path("d.db")), 3);
}

/// A PostgreSQL database of one test: created empty, dropped when the test ends.
struct PgDb {
    admin: String,
    name: String,
    url: String,
}

impl PgDb {
    fn new(admin: &str, test: &str) -> Self {
        let name = format!("pc_{test}_{}", std::process::id());
        let (base, _) = admin.rsplit_once('/').expect("a postgres://.../DB URL");
        let db = Self {
            admin: admin.to_string(),
            url: format!("{base}/{name}"),
            name,
        };
        db.execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name));
        db.execute(&format!("CREATE DATABASE {}", db.name));
        db
    }

    fn execute(&self, sql: &str) {
        let mut c = postgres::Client::connect(&self.admin, postgres::NoTls).expect("connect");
        c.batch_execute(sql).expect(sql);
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = postgres::Client::connect(&self.admin, postgres::NoTls).and_then(|mut c| {
            c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
        });
    }
}

/// Publishes 20000 records and one foreign message, consumes them into `sink` with a first
/// consumer killed mid-run and two more to the end; asserts every record stored once and
/// verify agrees. `count` counts the sink's message rows.
fn assert_consumed_once_across_kill(url: &str, test: &str, sink: &str, count: impl Fn() -> i64) {
    let s = Scratch::new(&format!("nats-{test}"));
    let stream = TestStream::new(url, test);
    finish_json(publish(&s, &stream, "2", "20000"));
    stream.publish_raw(&[b"a foreign message"]);
    let source = stream.source("consumer=db&until=empty&ack_wait=1s");
    let slow = ["--source", source.as_str(), "--sink", sink, "--rps", "4000"];
    let victim = start(&s, &slow);
    wait_until("the first consumer stored some", || count() > 1000);
    assert!(!victim.kill().success());
    let fast = ["--source", source.as_str(), "--sink", sink];
    let (c, d) = (start(&s, &fast), start(&s, &fast));
    let (c, d) = (finish_json(c), finish_json(d));
    assert_eq!(count(), 20_001, "{c}\n{d}");
    let out: common::Out = pc_host(s.dir())
        .args(["verify", "--sink", sink])
        .output_within()
        .expect("verify")
        .into();
    assert_eq!(out.code, Some(0), "verify failed:\n{}", out.stdout);
    assert!(
        out.stdout
            .contains("2 producers, 20000 produced, 20000 rows; every producer's seq"),
        "{}",
        out.stdout
    );
}

#[test]
fn two_consumers_into_postgres_store_every_record_exactly_once_across_kill() {
    let Some(url) = nats_url() else { return };
    let Some(admin) = server_url("PC_TEST_POSTGRES_URL") else {
        return;
    };
    let db = PgDb::new(&admin, "nats");
    let count = || -> i64 {
        postgres::Client::connect(&db.url, postgres::NoTls)
            .and_then(|mut c| c.query_one("SELECT count(*) FROM messages", &[]))
            .map_or(0, |r| r.get(0))
    };
    assert_consumed_once_across_kill(&url, "postgres", &db.url, count);
}

/// Once a first run made the delivery tables, a NATS source runs into the database as a user
/// who may read and write its tables but not create any: the tables were created (`IF NOT
/// EXISTS`) at every start, which needs CREATE on the schema even when they are there.
#[test]
fn a_nats_source_runs_into_postgres_as_a_user_who_may_not_create_tables() {
    let Some(url) = nats_url() else { return };
    let Some(admin) = server_url("PC_TEST_POSTGRES_URL") else {
        return;
    };
    let s = Scratch::new("nats-no-create");
    let db = PgDb::new(&admin, "nocreate");
    let stream = TestStream::new(&url, "nocreate");
    finish_json(publish(&s, &stream, "1", "200"));
    let first = stream.source("consumer=db&until=empty");
    let v = run_json(
        s.dir(),
        &["--source", &first, "--sink", &db.url, "--messages", "50"],
    );
    assert_eq!(u(&v, "stored"), 50, "{v}");
    let role = format!("pc_nocreate_{}", std::process::id());
    db.execute(&format!("DROP ROLE IF EXISTS {role}"));
    let grants = format!(
        "CREATE ROLE {role} LOGIN; \
         GRANT CONNECT ON DATABASE {name} TO {role}; \
         GRANT USAGE ON SCHEMA public TO {role}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}; \
         GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}; \
         REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        name = db.name
    );
    let in_db = |sql: &str| {
        let mut c = postgres::Client::connect(&db.url, postgres::NoTls).expect("connect");
        c.batch_execute(sql).expect(sql);
    };
    in_db(&grants);
    // The database's URL, as the role.
    let (scheme, after) = db.url.split_once("://").expect("a URL");
    let host_on = after.split_once('@').map_or(after, |(_, host_on)| host_on);
    let limited = format!("{scheme}://{role}@{host_on}");
    let rest = stream.source("consumer=db&until=empty");
    let out: common::Out = pc_host(s.dir())
        .args(["--source", &rest, "--sink", &limited, "--output", "json"])
        .output_within()
        .expect("run pc-host")
        .into();
    in_db(&format!(
        "REASSIGN OWNED BY {role} TO CURRENT_USER; DROP OWNED BY {role}"
    ));
    db.execute(&format!("DROP ROLE IF EXISTS {role}"));
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let w = json(&out);
    assert_eq!(u(&v, "stored") + u(&w, "stored"), 200, "{v}\n{w}");
}

/// A record over the stream's `max_msg_size`, which JetStream refuses for its size however
/// often it is sent, is one record refused: dead-lettered, the rest published and counted as
/// stored, the run OK. It failed the run after its retries, and counted the records after it,
/// which JetStream had acknowledged, as unconfirmed.
#[test]
fn a_record_too_big_for_the_stream_is_dead_lettered_and_the_rest_published() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-too-big");
    let stream = TestStream::new(&url, "toobig");
    // Room for the run's end, which the run publishes last.
    stream.create(|c| c.max_message_size = 4096);
    let mut lines: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
    lines[4] = "x".repeat(5000);
    std::fs::write(s.path("in.txt"), lines.join("\n") + "\n").unwrap();
    let input = std::fs::File::open(s.path("in.txt")).expect("open the input");
    let out: common::Out = pc_host(s.dir())
        .args(["--source", "-", "--sink", &stream.sink()])
        .args([
            "--dead-letter",
            "dead.jsonl",
            "--retry-for",
            "2",
            "--output",
            "json",
        ])
        .stdin(input)
        .output_within()
        .expect("run pc-host")
        .into();
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    assert_eq!(v["result"], "OK", "{v}");
    assert_eq!(u(&v, "stored"), 9, "{v}");
    assert_eq!(u(&v, "dead_lettered"), 1, "{v}");
    let dead = std::fs::read_to_string(s.path("dead.jsonl")).expect("the dead letters");
    assert_eq!(dead.lines().count(), 1, "{dead}");
    assert!(dead.contains(&"x".repeat(5000)), "{dead}");
    // The nine records, and the run's end.
    assert_eq!(stream.messages(), 10);
}

/// A second signal while a NATS sink's drain is stuck (a full stream that refuses new
/// messages, retried) exits at once with the counts, and says nothing of a run recorded as not
/// completed: a NATS sink records no run.
#[test]
fn a_forced_exit_of_a_nats_sink_run_claims_no_recorded_run() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-forced-exit");
    let stream = TestStream::new(&url, "forced");
    stream.create_bounded(10, DiscardPolicy::New);
    let mut r = start(
        &s,
        &[
            "--sink",
            &stream.sink(),
            "--rps",
            "100",
            "--duration",
            "600",
            "--retry-for",
            "600",
        ],
    );
    r.err.wait("saying the publish is retried", |l| {
        l.contains("retrying for up to")
    });
    common::signal(&r.child, libc::SIGINT);
    r.err.wait("saying SIGINT starts the drain", |l| {
        l.contains("SIGINT: stopping the producers and draining")
    });
    // The one-second rule (a repeat within it is the same request) waited out.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    common::signal(&r.child, libc::SIGINT);
    let out = common::finish(r);
    assert_eq!(out.code, Some(130), "{}", out.stderr);
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("exiting at once:"))
        .unwrap_or_else(|| panic!("no forced exit line:\n{}", out.stderr));
    assert!(line.ends_with(" not stored"), "{line}");
    assert!(!line.contains("recorded"), "{line}");
}

/// A MySQL/MariaDB database of one test: created empty, dropped when the test ends.
struct MyDb {
    admin: String,
    name: String,
    url: String,
}

impl MyDb {
    fn new(admin: &str, test: &str) -> Self {
        use mysql::prelude::Queryable as _;
        let name = format!("pc_{test}_{}", std::process::id());
        let (base, _) = admin.rsplit_once('/').expect("a mysql://.../DB URL");
        let db = Self {
            admin: admin.to_string(),
            url: format!("{base}/{name}"),
            name,
        };
        let mut c = mysql::Conn::new(mysql::Opts::from_url(admin).expect("URL")).expect("connect");
        c.query_drop(format!("DROP DATABASE IF EXISTS {}", db.name))
            .unwrap();
        c.query_drop(format!("CREATE DATABASE {}", db.name))
            .unwrap();
        db
    }

    fn count(&self) -> i64 {
        use mysql::prelude::Queryable as _;
        mysql::Opts::from_url(&self.url)
            .ok()
            .and_then(|o| mysql::Conn::new(o).ok())
            .and_then(|mut c| {
                c.query_first::<i64, _>("SELECT COUNT(*) FROM messages")
                    .ok()
            })
            .flatten()
            .unwrap_or(0)
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        use mysql::prelude::Queryable as _;
        if let Ok(mut c) = mysql::Opts::from_url(&self.admin)
            .map_err(|e| e.to_string())
            .and_then(|o| mysql::Conn::new(o).map_err(|e| e.to_string()))
        {
            let _ = c.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
        }
    }
}

#[test]
fn two_consumers_into_mysql_store_every_record_exactly_once_across_kill() {
    let Some(url) = nats_url() else { return };
    let Some(admin) = server_url("PC_TEST_MYSQL_URL") else {
        return;
    };
    let db = MyDb::new(&admin, "nats");
    assert_consumed_once_across_kill(&url, "mysql", &db.url, || db.count());
}

#[test]
fn a_nats_source_stops_after_messages_and_hands_the_rest_back() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-messages");
    let stream = TestStream::new(&url, "budget");
    finish_json(publish(&s, &stream, "1", "100"));
    let first = stream.source("consumer=b");
    let v = run_json(
        s.dir(),
        &["--source", &first, "--db", "out.db", "--messages", "30"],
    );
    assert_eq!(u(&v, "stored"), 30, "{v}");
    assert_eq!(v["stop_reason"], "messages");
    assert_eq!(
        u(&v, "read"),
        u(&v, "produced") + u(&v, "not_queued_rereadable"),
        "every message read is queued or counted as handed back: {v}"
    );
    // What it fetched beyond its 30 was handed back (delivered again after 2 s, not after
    // the 30 s ack wait).
    let rest = stream.source("consumer=b&until=empty");
    let w = run_json(s.dir(), &["--source", &rest, "--db", "out.db"]);
    assert_eq!(u(&w, "stored"), 70, "{w}");
    let report = verify_ok(s.dir(), "out.db");
    assert!(
        report.contains("1 producer, 100 produced, 100 rows"),
        "{report}"
    );
}

/// An existing consumer that does not acknowledge each message on its own (`ack_policy` none
/// or all) is refused before anything is read: with `none` the server forgot each message as
/// it delivered it, so the ones a stopped run had fetched and not stored were lost to the
/// consumer while the run said OK.
#[test]
fn a_consumer_without_explicit_acks_is_refused_before_anything_is_read() {
    use async_nats::jetstream::consumer::{AckPolicy, pull};
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-ack-none");
    let stream = TestStream::new(&url, "acknone");
    // A work-queue stream takes explicit acks only: these consumers need one that keeps its
    // messages by limits.
    stream.create(|c| c.retention = async_nats::jetstream::stream::RetentionPolicy::Limits);
    finish_json(publish(&s, &stream, "1", "20"));
    let published = stream.messages();
    assert!(published >= 20, "{published}");
    for (name, policy) in [("none", AckPolicy::None), ("all", AckPolicy::All)] {
        let js = stream.context();
        pc_host::nats::runtime().block_on(async {
            let st = js.get_stream(&stream.name).await.expect("the stream");
            let config = pull::Config {
                durable_name: Some(name.into()),
                ack_policy: policy,
                ..Default::default()
            };
            st.create_consumer(config)
                .await
                .expect("create the consumer");
        });
        let source = stream.source(&format!("consumer={name}&until=empty"));
        let out: common::Out = pc_host(s.dir())
            .args(["--source", &source, "--db", "out.db"])
            .output_within()
            .expect("run pc-host")
            .into();
        assert_error(&out, 1, &format!("acknowledges with policy {name};"));
    }
    // Nothing was fetched through either consumer.
    let js = stream.context();
    pc_host::nats::runtime().block_on(async {
        let st = js.get_stream(&stream.name).await.expect("the stream");
        for name in ["none", "all"] {
            let mut c: async_nats::jetstream::consumer::PullConsumer =
                st.get_consumer(name).await.expect("the consumer");
            let info = c.info().await.expect("consumer info");
            assert_eq!(info.delivered.consumer_sequence, 0, "{name}: {info:?}");
            assert_eq!(info.num_pending, published, "{name}: {info:?}");
        }
    });
}

/// When the sink fails under a NATS source, what it could not store is handed back to
/// JetStream: counted as delivered again, not as lost, and never dead-lettered (the stream
/// keeps it); a later run stores it.
#[test]
fn records_a_failed_sink_hands_back_to_jetstream_are_counted_as_delivered_again() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-handed-back");
    let stream = TestStream::new(&url, "handback");
    finish_json(publish(&s, &stream, "1", "1"));
    let texts: Vec<String> = (0..40)
        .map(|i| {
            if i == 5 {
                "poison".into()
            } else {
                format!("m {i}")
            }
        })
        .collect();
    let payloads: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
    stream.publish_raw(&payloads);
    // A database that refuses the poison message; no dead-letter file, so the sink fails.
    run_json(
        s.dir(),
        &["--db", "out.db", "--messages", "1", "--rps", "0"],
    );
    rusqlite::Connection::open(s.path("out.db"))
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER no_poison BEFORE INSERT ON messages WHEN NEW.message = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'poison refused'); END",
        )
        .unwrap();
    let source = stream.source("consumer=h&until=empty");
    let run = |output: &str| -> common::Out {
        pc_host(s.dir())
            .args(["--source", &source, "--db", "out.db", "--output", output])
            .output_within()
            .expect("run pc-host")
            .into()
    };
    let out = run("json");
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let v = json(&out);
    let not_stored = u(&v, "not_stored");
    assert!(not_stored > 0, "the poison message at least: {v}");
    assert_eq!(u(&v, "not_stored_rereadable"), not_stored, "{v}");
    assert_eq!(u(&v, "dead_lettered"), 0, "{v}");
    assert_eq!(v["result"], "FAILED", "{v}");
    let out = run("text");
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("handed back to JetStream, which delivers them again; 0 are lost"),
        "{}",
        out.stdout
    );
    // Messages pulled and not queued at the stop are no file's lines.
    assert!(
        !out.stdout.contains("a last line without its end"),
        "{}",
        out.stdout
    );
    // Without the trigger, every message is there to be stored.
    rusqlite::Connection::open(s.path("out.db"))
        .unwrap()
        .execute_batch("DROP TRIGGER no_poison")
        .unwrap();
    let w = run_json(s.dir(), &["--source", &source, "--db", "out.db"]);
    let conn = rusqlite::Connection::open(s.path("out.db")).unwrap();
    let stored: Vec<String> = conn
        // The stream's first message, from the run that made it, is stored too.
        .prepare(
            "SELECT message FROM messages WHERE message NOT LIKE 'Message from producer%' \
             ORDER BY message",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut want = texts.clone();
    want.sort();
    assert_eq!(stored, want, "{w}");
}

/// A backlog older than the run counts as intended at the run's start, so `--warmup` leaves
/// it out of the latency figures, as it does any record intended within the warm-up (a
/// source that counted from the warm-up's end put every such record in, at 1 ns).
#[test]
fn a_nats_source_leaves_a_backlog_taken_within_the_warmup_out_of_latency() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-warmup");
    let stream = TestStream::new(&url, "warmup");
    finish_json(publish(&s, &stream, "1", "1000"));
    let source = stream.source("until=empty");
    let args = ["--source", source.as_str(), "--db", "out.db"];
    let warm = run_json(s.dir(), &[&args[..], &["--warmup", "600"]].concat());
    assert_eq!(u(&warm, "stored"), 1000, "{warm}");
    assert_eq!(warm["latency_ns"]["count"], 0, "{warm}");
    // Without a warm-up the same backlog is in the figures, counted from the run's start.
    finish_json(publish(&s, &stream, "1", "1000"));
    let cold = run_json(s.dir(), &args);
    assert_eq!(u(&cold, "stored"), 1000, "{cold}");
    assert_eq!(cold["latency_ns"]["count"], 1000, "{cold}");
    assert!(u(&cold["latency_ns"], "p50") > 1, "{cold}");
}

/// A record read from JetStream is acknowledged once its commit returns, and the stream then
/// deletes it: into SQLite, such a run commits with `synchronous=full` (fsync per commit), so
/// an acknowledged record also survives power loss; `--synchronous normal` is still obeyed.
#[test]
fn a_nats_source_into_sqlite_commits_with_synchronous_full_unless_told_otherwise() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-sync");
    let stream = TestStream::new(&url, "sync");
    let source = stream.source("until=empty");
    for (extra, want) in [
        (&[][..], "full"),
        (&["--synchronous", "normal"][..], "normal"),
    ] {
        finish_json(publish(&s, &stream, "1", "10"));
        let mut r = start(
            &s,
            &[&["--source", source.as_str(), "--db", "out.db"][..], extra].concat(),
        );
        let header = r
            .err
            .wait("the header", |l| l.contains("(WAL, synchronous="));
        assert!(
            header.contains(&format!("synchronous={want},")),
            "{extra:?}: {header}"
        );
        let v = finish_json(r);
        assert_eq!(u(&v, "stored"), 10, "{v}");
        assert_eq!(v["config"]["synchronous"], want, "{v}");
    }
}

/// `pc-host --sink STREAM --messages 200 --rps 0 EXTRA`, run to its end.
fn publish_200(s: &Scratch, stream: &TestStream, extra: &[&str]) -> common::Out {
    pc_host(s.dir())
        .args(["--sink", &stream.sink(), "--messages", "200", "--rps", "0"])
        .args(extra)
        .output_within()
        .expect("run pc-host")
        .into()
}

/// A consumer run on `stream` (created here; `params` its source's parameters) into the
/// SQLite database `out.db` (made first by a generated run, so the consumer's run can start
/// and record itself), with a 100 ms busy timeout, `extra` arguments and, if `metrics`, a
/// metrics endpoint whose address is returned; once its header is out, the database's write
/// lock is taken and held by the returned connection: whatever the stream delivers from then
/// on waits for it.
fn consumer_behind_a_lock(
    s: &Scratch,
    stream: &TestStream,
    params: &str,
    extra: &[&str],
    metrics: bool,
) -> (Running, Option<String>, rusqlite::Connection) {
    stream.create_bounded(10_000, DiscardPolicy::Old);
    let made = run_json(s.dir(), &["--messages", "1", "--db", "out.db"]);
    assert_eq!(u(&made, "stored"), 1, "{made}");
    let source = stream.source(params);
    let mut args = vec![
        "--source",
        &source,
        "--db",
        "out.db",
        "--busy-timeout-ms",
        "100",
    ];
    args.extend(extra);
    if metrics {
        args.extend(["--metrics-addr", "127.0.0.1:0"]);
    }
    let mut r = start(s, &args);
    // The endpoint's line comes before the header.
    let addr = metrics.then(|| metrics_addr(&mut r));
    r.err
        .wait("the run's header", |l| l.starts_with("pc-host run"));
    let lock = hold_write_lock(&s.path("out.db"));
    (r, addr, lock)
}

/// Lets go of the lock of [`consumer_behind_a_lock`], waits until the run (its metrics at
/// `addr`) has acknowledged `acked` messages, then stops it with SIGINT; its JSON, once it
/// exited 0.
fn unlock_then_stop(r: Running, addr: &str, lock: rusqlite::Connection, acked: u64) -> Value {
    drop(lock);
    wait_until(&format!("{acked} acknowledged"), || {
        count(&scrape(addr).1, "pc_nats_acked_total") >= acked
    });
    let out = r.interrupt();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    json(&out)
}

/// Messages held longer than the consumer's ack wait (here 2 s) while the database is locked
/// are kept alive with progress acknowledgements, so JetStream does not deliver them again
/// meanwhile: once the lock goes, each is stored and acknowledged once, none redelivered (the
/// run keeps pulling throughout, so a redelivery would reach it and be counted).
#[test]
fn messages_held_past_the_ack_wait_are_kept_alive_not_delivered_again() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-progress");
    let stream = TestStream::new(&url, "progress");
    let (r, addr, lock) =
        consumer_behind_a_lock(&s, &stream, "consumer=slow&ack_wait=2s", &[], true);
    let addr = addr.expect("a metrics address");
    let payloads: Vec<Vec<u8>> = (0..100).map(|i| format!("m{i}").into_bytes()).collect();
    stream.publish_raw(&payloads.iter().map(Vec::as_slice).collect::<Vec<_>>());
    // Every progress round acknowledges the 100 held messages; rounds come a third of the ack
    // wait apart, so seven rounds (700 progress acks) span two ack waits.
    wait_until("all 100 held through seven progress rounds", || {
        let (_, now) = scrape(&addr);
        count(&now, "pc_nats_delivered_total") >= 100
            && count(&now, "pc_nats_progress_total") >= 700
    });
    let v = unlock_then_stop(r, &addr, lock, 100);
    assert_eq!(u(&v, "stored"), 100, "{v}");
    assert_eq!(v["nats"]["redelivered"], 0, "{v}");
    assert_eq!(v["nats"]["acked"], 100, "{v}");
    assert!(u(&v["nats"], "progress") >= 700, "{v}");
    assert_eq!(stream.messages(), 0, "{v}");
}

/// A publishing run's records can be stored only once that run is recorded in the database;
/// when that fails for good (the database locked past `--busy-timeout-ms`, with retries off),
/// the run fails, and the message it was taking is handed back at once and counted as read and
/// not queued, so that `read` = `rejected` + `produced` + `not_queued_rereadable` still holds.
/// A later run stores every record once.
#[test]
fn a_message_whose_publisher_cannot_be_recorded_is_handed_back_and_counted() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-origin-fails");
    let stream = TestStream::new(&url, "originfails");
    let no_retry = ["--retry-for", "0"];
    let (r, _, lock) = consumer_behind_a_lock(&s, &stream, "consumer=c", &no_retry, false);
    let published = publish_200(&s, &stream, &[]);
    assert_eq!(published.code, Some(0), "{}", published.stderr);
    let out = common::finish(r);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let v = json(&out);
    assert_eq!(v["result"], "FAILED", "{v}");
    assert!(u(&v, "read") >= 1, "{v}");
    common::assert_read_accounted(&v);
    assert!(u(&v["nats"], "nacked") >= 1, "{v}");
    drop(lock);
    let rest = run_json(
        s.dir(),
        &[
            "--source",
            &stream.source("consumer=c&until=empty"),
            "--db",
            "out.db",
        ],
    );
    assert_eq!(u(&rest, "stored") + u(&v, "stored"), 200, "{rest}");
    assert_eq!(stream.messages(), 0, "{rest}");
}

/// Recording a new publishing run is retried as a commit is (`--retry-for`): with the
/// database locked when the publisher's first message arrives, the run says it is retrying,
/// and once the lock goes it records the publisher and stores every record, handing none back.
#[test]
fn recording_a_publisher_is_retried_while_the_database_is_locked() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-origin-retried");
    let stream = TestStream::new(&url, "originretried");
    let (mut r, addr, lock) = consumer_behind_a_lock(&s, &stream, "consumer=c", &[], true);
    let addr = addr.expect("a metrics address");
    let published = publish_200(&s, &stream, &[]);
    assert_eq!(published.code, Some(0), "{}", published.stderr);
    r.err.wait("the recording of the publisher retried", |l| {
        l.contains("recording a publishing run failed") && l.contains("retrying for up to")
    });
    // The 200 records and the publisher's end message.
    let v = unlock_then_stop(r, &addr, lock, 201);
    assert_eq!(v["result"], "OK", "{v}");
    assert_eq!(u(&v, "stored"), 200, "{v}");
    assert!(u(&v, "retries") >= 1, "{v}");
    assert_eq!(v["nats"]["nacked"], 0, "{v}");
    assert_eq!(stream.messages(), 0, "{v}");
}

/// A stream that takes only some of a batch (full, discarding new messages): the messages
/// JetStream acknowledged count as stored, only the refused rest as not stored, and not as
/// unconfirmed: JetStream answered each of them with a refusal, so none can be in the stream.
#[test]
fn messages_jetstream_acknowledged_before_a_failure_count_as_stored() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-partial");
    let stream = TestStream::new(&url, "partial");
    stream.create_bounded(50, DiscardPolicy::New);
    let out = publish_200(&s, &stream, &["--retry-for", "0", "--output", "json"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        !out.stderr.contains("may leave it before"),
        "a stream that refuses new messages drops none it took: {}",
        out.stderr
    );
    let v = json(&out);
    assert_eq!(stream.messages(), 50, "{v}");
    // The failure stops the producers, so fewer than 200 may have been produced.
    assert_eq!(u(&v, "stored"), 50, "{v}");
    assert_eq!(u(&v, "not_stored"), u(&v, "produced") - 50, "{v}");
    assert_eq!(u(&v, "unconfirmed"), 0, "{v}");
    assert_eq!(v["result"], "FAILED", "{v}");
    // JetStream's acks are the only count: none is found stored after all.
    assert!(v["stored_after_all"].is_null(), "{v}");
}

/// An existing stream that discards its oldest messages past a limit acknowledges every
/// publish and then drops what is past the limit, so the run's `stored` overstates what the
/// stream keeps: the run warns so, and its header names the limits.
#[test]
fn a_stream_that_discards_old_messages_past_its_limits_is_warned_about() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-discard-old");
    let stream = TestStream::new(&url, "discardold");
    stream.create_bounded(50, DiscardPolicy::Old);
    let out = publish_200(&s, &stream, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let warning = format!(
        "NATS stream {} discards its oldest messages past its limits (max_msgs 50): records it \
         acknowledged (counted as stored) may leave it before a consumer reads them",
        stream.name
    );
    assert!(out.stderr.contains(&warning), "{}", out.stderr);
    assert!(
        out.stderr.contains("limits: max_msgs 50, discard Old"),
        "{}",
        out.stderr
    );
    assert_eq!(stream.messages(), 50);
}

/// A publish retried after the stream's duplicate window could store its record twice: a run
/// whose `--retry-for` (plus two publish ack waits of 5 s) is longer than the window says so,
/// and one whose retries fit it does not.
#[test]
fn a_stream_whose_duplicate_window_the_retries_can_outlast_is_warned_about() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-dedup-window");
    let stream = TestStream::new(&url, "dedupwindow");
    stream.create(|c| c.duplicate_window = std::time::Duration::from_secs(20));
    let warning = format!(
        "NATS stream {} drops repeated message ids after 20s (its duplicate window), less than \
         --retry-for (11 s)",
        stream.name
    );
    let outlasting = publish_200(&s, &stream, &["--retry-for", "11"]);
    assert_eq!(outlasting.code, Some(0), "{}", outlasting.stderr);
    assert!(
        outlasting.stderr.contains(&warning),
        "{}",
        outlasting.stderr
    );
    let fitting = publish_200(&s, &stream, &["--retry-for", "10"]);
    assert_eq!(fitting.code, Some(0), "{}", fitting.stderr);
    assert!(
        !fitting.stderr.contains("duplicate window), less than"),
        "{}",
        fitting.stderr
    );
    assert_eq!(stream.messages(), 2 * 201);
}

/// A run that published stdin is recorded in the consumer's database from its end message,
/// but its records are the consuming run's rows (keyed by stream sequence): verify says that
/// it cannot check that run, rather than "every producer's seq 0..n exactly once: OK".
#[test]
fn verify_says_a_stdin_publisher_run_is_not_checked() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-stdin-publisher");
    let stream = TestStream::new(&url, "stdinpub");
    let mut publisher = Running::start_piped(
        &s,
        &[
            "--source",
            "-",
            "--sink",
            &stream.sink(),
            "--report-interval",
            "0",
        ],
    );
    {
        use std::io::Write as _;
        let mut stdin = publisher.child.stdin.take().expect("stdin");
        stdin.write_all(b"one\ntwo\nthree\n").expect("write stdin");
    }
    let out = common::finish(publisher);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let source = stream.source("consumer=v&until=empty");
    let v = run_json(s.dir(), &["--source", &source, "--db", "out.db"]);
    assert_eq!(u(&v, "stored"), 3, "{v}");
    let report = verify_ok(s.dir(), "out.db");
    assert!(
        report.contains("a run that published stdin to NATS")
            && report.contains("so not checked")
            && !report.contains("0 produced"),
        "{report}"
    );
}

/// `--rps` is one token bucket for every source, a NATS source's too: over `--duration 1` at
/// 1000 msg/s it takes at most a second's tokens plus the burst (rps / 10), and what it has
/// pulled beyond them goes back to the stream for the next consumer.
#[test]
fn a_nats_source_takes_no_more_than_rps_allows_and_hands_the_rest_back() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-rps");
    let stream = TestStream::new(&url, "rps");
    finish_json(publish(&s, &stream, "1", "3000"));
    let paced = stream.source("consumer=r");
    let v = run_json(
        s.dir(),
        &[
            "--source",
            &paced,
            "--db",
            "out.db",
            "--rps",
            "1000",
            "--duration",
            "1",
        ],
    );
    let produced = u(&v, "produced");
    assert!(
        (1..=1100).contains(&produced),
        "at most 1000 tokens in 1 s plus a burst of 100, and some: {v}"
    );
    assert_eq!(u(&v, "stored"), produced, "{v}");
    let rest = stream.source("consumer=r&until=empty");
    let w = run_json(s.dir(), &["--source", &rest, "--db", "out.db"]);
    assert_eq!(
        u(&w, "stored"),
        3000 - produced,
        "the rest, handed back: {w}"
    );
    // The text summary says where a NATS record's latency starts.
    finish_json(publish(&s, &stream, "1", "5"));
    let out: common::Out = pc_host(s.dir())
        .args([
            "--source",
            &rest,
            "--db",
            "out.db",
            "--report-interval",
            "0",
        ])
        .output_within()
        .expect("run pc-host")
        .into();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains(
            "(5 messages; created by the publisher, or the run's start if later -> batch \
                 committed)"
        ),
        "{}",
        out.stdout
    );
}

/// A run whose durable consumer JetStream refuses (a second one without a filter on a
/// work-queue stream) was recorded by then: its end is recorded as failed, so verify says it
/// ended with an error (it said the run did not finish: still running, or killed).
#[test]
fn a_run_whose_consumer_jetstream_refuses_is_recorded_as_ended_with_an_error() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-consumer-refused");
    let stream = TestStream::new(&url, "consumer_refused");
    stream.create_bounded(100, DiscardPolicy::New);
    let first = run_json(
        s.dir(),
        &[
            "--source",
            &stream.source("consumer=first&until=empty"),
            "--db",
            "first.db",
        ],
    );
    assert_eq!(first["ok"], true, "{first}");
    let out: common::Out = pc_host(s.dir())
        .args([
            "--source",
            &stream.source("consumer=second&until=empty"),
            "--db",
            "second.db",
        ])
        .output_within()
        .expect("run pc-host")
        .into();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let verify = common::run(s.dir(), &["verify", "--db", "second.db"]);
    assert!(
        verify.stdout.contains("run 1: ingest ended with an error"),
        "{}{}",
        verify.stdout,
        verify.stderr
    );
    assert_eq!(stream.consumers(), ["first"]);
}

/// A run refused after its NATS stream was found (here: its database is another program's)
/// makes no durable consumer (it made one and left it, which on a work-queue stream then
/// blocked the consumer the operator meant); one that was there before is left as it is.
#[test]
fn a_run_refused_by_its_database_makes_no_consumer() {
    let Some(url) = nats_url() else { return };
    let s = Scratch::new("nats-refused");
    let stream = TestStream::new(&url, "refused");
    stream.create_bounded(100, DiscardPolicy::New);
    let foreign = s.path("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let refused = |consumer: &str| {
        let source = stream.source(&format!("consumer={consumer}&until=empty"));
        let out: common::Out = pc_host(s.dir())
            .args(["--source", &source, "--db", "foreign.db"])
            .output_within()
            .expect("run pc-host")
            .into();
        common::assert_one_line_error(&out, 1, "foreign.db is not a pc-host database");
    };
    refused("not_made");
    assert_eq!(
        stream.consumers(),
        Vec::<String>::new(),
        "the one it made is gone"
    );
    let v = run_json(
        s.dir(),
        &[
            "--source",
            &stream.source("consumer=kept&until=empty"),
            "--db",
            "ok.db",
        ],
    );
    assert_eq!(u(&v, "stored"), 0, "{v}");
    refused("kept");
    assert_eq!(stream.consumers(), ["kept"], "the one that was there stays");
}
