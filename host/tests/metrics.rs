//! Watching a run from outside: the `--metrics-addr` HTTP endpoint (/metrics, /health,
//! /ready), the `run_intervals` rows and `runs` summary kept with the data, and the
//! `--latency-log` file. Each test pins that what is exposed agrees with the run's own summary.
//!
//! The endpoint is read with plain HTTP/1.0 requests over `TcpStream`; waits poll a condition
//! with a deadline ([`WAIT`]); the only sleeps are short naps between polls.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::scrape::{Reply, count, get, metrics_addr, request, sample, scrape};
use common::{
    Running, Scratch, WAIT, assert_one_line_error, finish, hold_write_lock, json, pc_host, run,
    start_command, u,
};
use rusqlite::Connection;
use serde_json::Value;

/// Polls `check` (Ok: done; Err: what it saw) until it is done, at most [`WAIT`].
fn poll<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match check() {
            Ok(v) => return v,
            Err(seen) if Instant::now() >= deadline => {
                panic!("{what}: not within {WAIT:?}; last seen: {seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Polls `path` until it answers `status`; returns that reply.
fn poll_status(addr: &str, path: &str, status: u16) -> Reply {
    poll(&format!("{path} {status}"), || {
        let reply = get(addr, path, None);
        if reply.status == status {
            Ok(reply)
        } else {
            Err(format!("{reply:?}"))
        }
    })
}

/// A generated run at 2000 msg/s for up to 600 s that retries a locked database for
/// `retry_for` seconds, its busy timeout 100 ms, with a metrics endpoint; and its address.
fn start_lock_waiting(s: &Scratch, retry_for: &str) -> (Running, String) {
    let mut r = Running::start(
        s,
        &[
            "--rps",
            "2000",
            "--duration",
            "600",
            "--busy-timeout-ms",
            "100",
            "--retry-for",
            retry_for,
            "--metrics-addr",
            "127.0.0.1:0",
            "--output",
            "json",
        ],
    );
    let addr = metrics_addr(&mut r);
    (r, addr)
}

/// Starts pc-host with `args`, its metrics on a free port and the JSON summary (stdin piped
/// if `stdin`); returns the run and the address it serves metrics at.
fn start_scraped(s: &Scratch, args: &[&str], stdin: bool) -> (Running, String) {
    let mut cmd = pc_host(s.dir());
    cmd.args(args)
        .args(["--metrics-addr", "127.0.0.1:0", "--output", "json"]);
    if stdin {
        cmd.stdin(Stdio::piped());
    }
    let mut r = start_command(cmd);
    let addr = metrics_addr(&mut r);
    (r, addr)
}

/// Every metric the README names, as the sample keys a Prometheus text scrape holds.
const EXPOSED: [&str; 25] = [
    "pc_messages_produced_total",
    "pc_messages_consumed_total",
    "pc_messages_stored_total",
    "pc_messages_rejected_total",
    "pc_messages_dead_lettered_total",
    "pc_messages_not_stored_total",
    "pc_messages_unconfirmed_total",
    "pc_producer_blocked_seconds_total",
    "pc_sink_retries_total",
    "pc_sink_errors_total{kind=\"retryable\"}",
    "pc_sink_errors_total{kind=\"record\"}",
    "pc_sink_errors_total{kind=\"fatal\"}",
    "pc_sink_retrying",
    "pc_queue_depth",
    "pc_queue_capacity",
    "pc_consumers",
    "pc_wal_bytes",
    "pc_latency_seconds_sum",
    "pc_latency_seconds_count",
    "pc_built_late_seconds_sum",
    "pc_built_late_seconds_count",
    "pc_commit_duration_seconds_sum",
    "pc_commit_duration_seconds_count",
    "pc_batch_rows_sum",
    "pc_batch_rows_count",
];

/// Runs `promtool check metrics` on `text`; prints one SKIP line if promtool is not installed.
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // CI installs promtool and sets this: there the check must run.
            assert!(
                std::env::var_os("PC_TEST_REQUIRE_PROMTOOL").is_none(),
                "promtool is required (PC_TEST_REQUIRE_PROMTOOL is set) but not installed"
            );
            common::skip("promtool not installed");
            return;
        }
        Err(e) => panic!("start promtool: {e}"),
    };
    let mut stdin = child.stdin.take().unwrap();
    let body = text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(body.as_bytes()));
    let out = child.wait_with_output().expect("wait for promtool");
    writer
        .join()
        .expect("the promtool writer")
        .expect("write to promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- the scrape:\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_live_scrape_passes_promtool_and_its_counters_equal_the_summary() {
    const LINES: usize = 5000;
    const BAD: usize = 2500;
    let s = Scratch::new("metrics-live-scrape");
    let (mut r, addr) = start_scraped(&s, &["--source", "stdin", "--report-interval", "0.1"], true);
    let mut input = Vec::new();
    for i in 0..LINES {
        if i == BAD {
            input.extend_from_slice(b"\xff not UTF-8\n");
        } else {
            input.extend_from_slice(format!("message {i}\n").as_bytes());
        }
    }
    let mut stdin = r.child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(&input)
        .unwrap_or_else(|e| panic!("write to pc-host's stdin: {e}; stderr:\n{}", r.err.tail()));
    // Stdin stays open: the run is live while it is scraped.
    let want = (LINES - 1) as u64;
    let (text, last) = poll("every valid line stored and its latency recorded", || {
        let (text, m) = scrape(&addr);
        // No run counters until the run has started.
        let Some(&stored) = m.get("pc_messages_stored_total") else {
            return Err("no run counters yet".into());
        };
        let stored = stored as u64;
        let measured = count(&m, "pc_latency_seconds_count");
        assert!(stored <= want, "stored {stored} of {want} lines:\n{text}");
        if stored == want && measured == want {
            Ok((text, m))
        } else {
            Err(format!("stored {stored}, latency count {measured}"))
        }
    });
    for key in EXPOSED {
        sample(&last, key);
    }
    let build: Vec<_> = last
        .iter()
        .filter(|(k, _)| k.starts_with("pc_build_info{version=\""))
        .collect();
    assert_eq!(build.len(), 1, "one pc_build_info{{version}}:\n{text}");
    assert_eq!(*build[0].1, 1.0, "pc_build_info is 1:\n{text}");
    assert_eq!(
        sample(&last, "pc_latency_seconds_bucket{le=\"+Inf\"}"),
        sample(&last, "pc_latency_seconds_count"),
        "the +Inf bucket holds every message"
    );
    assert_eq!(
        count(&last, "pc_built_late_seconds_count"),
        0,
        "stdin's lines are read, not built on a schedule: none is built late"
    );
    promtool_check(&text);

    let om = get(&addr, "/metrics", Some("application/openmetrics-text"));
    assert_eq!(om.status, 200, "{om:?}");
    assert!(
        om.content_type.starts_with("application/openmetrics-text"),
        "OpenMetrics content type: {om:?}"
    );
    assert!(
        om.body.ends_with("# EOF\n") || om.body.ends_with("# EOF"),
        "OpenMetrics ends with # EOF:\n{}",
        om.body
    );
    let ready = get(&addr, "/ready", None);
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    let health = get(&addr, "/health", None);
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    // The endpoints only read: anything but GET is refused.
    for path in ["/metrics", "/health", "/ready"] {
        let post = request("POST", &addr, path, None);
        assert_eq!(post.status, 405, "POST {path}: {post:?}");
    }

    drop(stdin); // EOF: the run drains and ends
    let out = finish(r);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["stop_reason"], "eof", "{v}");
    assert_eq!(u(&v, "rejected"), 1, "the invalid UTF-8 line: {v}");
    assert_eq!(u(&v, "stored"), want, "{v}");
    for (field, key) in [
        ("produced", "pc_messages_produced_total"),
        ("consumed", "pc_messages_consumed_total"),
        ("stored", "pc_messages_stored_total"),
        ("rejected", "pc_messages_rejected_total"),
        ("dead_lettered", "pc_messages_dead_lettered_total"),
        ("not_stored", "pc_messages_not_stored_total"),
        ("retries", "pc_sink_retries_total"),
    ] {
        assert_eq!(
            u(&v, field),
            count(&last, key),
            "summary `{field}` vs the last scrape's {key}; summary: {v}\nscrape:\n{text}"
        );
    }
    assert_eq!(
        v["latency_ns"]["count"].as_u64(),
        Some(count(&last, "pc_latency_seconds_count")),
        "summary latency_ns.count vs pc_latency_seconds_count; summary: {v}"
    );
}

#[test]
fn generated_messages_are_scraped_as_built_late_and_the_summary_counts_at_least_as_many() {
    let s = Scratch::new("metrics-built-late");
    let (r, addr) = start_scraped(
        &s,
        &[
            "--rps",
            "2000",
            "--duration",
            "600",
            "--report-interval",
            "0",
        ],
        false,
    );
    let (text, last) = poll("generated messages measured as built late", || {
        let (text, m) = scrape(&addr);
        match m.get("pc_built_late_seconds_count") {
            Some(&n) if n >= 200.0 => Ok((text, m)),
            other => Err(format!("pc_built_late_seconds_count {other:?}")),
        }
    });
    let scraped = count(&last, "pc_built_late_seconds_count");
    assert_eq!(
        sample(&last, "pc_built_late_seconds_bucket{le=\"+Inf\"}"),
        scraped as f64,
        "the +Inf bucket holds every message:\n{text}"
    );
    assert!(
        sample(&last, "pc_built_late_seconds_sum") > 0.0,
        "every message is built some time after it was due:\n{text}"
    );
    promtool_check(&text);

    common::signal(&r.child, libc::SIGINT);
    let out = finish(r);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    let summary = v["built_late_ns"]["count"]
        .as_u64()
        .expect("built_late_ns.count");
    assert!(
        summary >= scraped,
        "the summary counts everything the scrape did and what came after: {summary} < {scraped}"
    );
    assert_eq!(
        summary,
        u(&v, "produced"),
        "one per generated message that went into the ring: {v}"
    );
}

/// With `--metrics-linger`, the endpoint outlives the run: a scrape after the summary reads
/// the final counts, the same as the summary's, with no consumer running and `/ready` 503
/// `finished`; a signal ends the wait with the run's own exit status.
#[test]
fn metrics_linger_serves_the_final_counts_and_not_ready_after_the_summary_until_a_signal() {
    let s = Scratch::new("metrics-linger");
    let (mut r, addr) = start_scraped(
        &s,
        &[
            "--messages",
            "3000",
            "--rps",
            "0",
            "--report-interval",
            "0",
            "--metrics-linger",
            "3600",
        ],
        false,
    );
    r.err
        .wait("saying the run has ended and the endpoint stays", |l| {
            l.starts_with("pc-host: the run has ended; serving its final metrics for 3600 s")
        });
    let (text, last) = scrape(&addr);
    let health = get(&addr, "/health", None);
    assert_eq!(health.status, 200, "{health:?}");
    // Over: not ready for work, and no consumer runs.
    let ready = get(&addr, "/ready", None);
    assert_eq!((ready.status, ready.body.as_str()), (503, "finished\n"));
    assert_eq!(count(&last, "pc_consumers"), 0, "{text}");
    common::signal(&r.child, libc::SIGINT);
    let out = finish(r);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    assert_eq!(u(&v, "produced"), 3000, "{v}");
    for (metric, key) in [
        ("pc_messages_produced_total", "produced"),
        ("pc_messages_consumed_total", "consumed"),
        ("pc_messages_stored_total", "stored"),
    ] {
        assert_eq!(count(&last, metric), u(&v, key), "{metric}:\n{text}");
    }
    assert_eq!(v["config"]["metrics_linger_s"], 3600.0, "{v}");
}

/// A signal during the linger of a run a signal stopped ends the wait and keeps the run's
/// exit status: the run is over, so no later signal forces an exit (130).
#[test]
fn a_signal_during_the_linger_of_a_signalled_run_exits_with_the_runs_status() {
    let s = Scratch::new("metrics-linger-signalled");
    let (mut r, _addr) = start_scraped(
        &s,
        &[
            "--rps",
            "1000",
            "--report-interval",
            "0.1",
            "--metrics-linger",
            "3600",
        ],
        false,
    );
    r.err.wait("storing", common::stored_some);
    common::signal(&r.child, libc::SIGINT);
    r.err
        .wait("saying the run has ended and the endpoint stays", |l| {
            l.starts_with("pc-host: the run has ended; serving its final metrics")
        });
    common::signal(&r.child, libc::SIGINT);
    let out = finish(r);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(json(&out)["stop_reason"], "signal");
}

#[test]
fn a_lanes_scrape_labels_each_lane_passes_promtool_and_equals_the_lanes_summary() {
    const LINES: u64 = 3000;
    let s = Scratch::new("metrics-lanes");
    let (mut r, addr) = start_scraped(
        &s,
        &[
            "--source",
            "stdin?lane=high",
            "--lanes",
            "high:1,low:9",
            "--report-interval",
            "0",
        ],
        true,
    );
    let input: String = (0..LINES).map(|i| format!("message {i}\n")).collect();
    let mut stdin = r.child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(input.as_bytes())
        .unwrap_or_else(|e| panic!("write to pc-host's stdin: {e}; stderr:\n{}", r.err.tail()));
    let high = |name: &str| format!("{name}{{lane=\"high\"}}");
    let low = |name: &str| format!("{name}{{lane=\"low\"}}");
    let (text, last) = poll("every line stored in lane high and measured", || {
        let (text, m) = scrape(&addr);
        let Some(&stored) = m.get(&high("pc_lane_messages_stored_total")) else {
            return Err("no lane counters yet".into());
        };
        let measured = count(&m, &high("pc_lane_latency_seconds_count"));
        if stored as u64 == LINES && measured == LINES {
            Ok((text, m))
        } else {
            Err(format!("stored {stored}, latency count {measured}"))
        }
    });
    for name in [
        "pc_lane_messages_produced_total",
        "pc_lane_messages_stored_total",
        "pc_lane_messages_duplicate_total",
        "pc_lane_messages_dead_lettered_total",
        "pc_lane_messages_not_stored_total",
        "pc_lane_queue_depth",
        "pc_lane_latency_seconds_count",
    ] {
        sample(&last, &high(name));
        sample(&last, &low(name));
    }
    assert_eq!(count(&last, &low("pc_lane_messages_produced_total")), 0);
    assert_eq!(
        sample(
            &last,
            "pc_lane_latency_seconds_bucket{lane=\"high\",le=\"+Inf\"}"
        ),
        LINES as f64,
        "the +Inf bucket holds every message of the lane:\n{text}"
    );
    promtool_check(&text);

    drop(stdin); // EOF: the run drains and ends
    let out = finish(r);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    for (lane, key) in [("high", high("")), ("low", low(""))] {
        for (field, name) in [
            ("produced", "pc_lane_messages_produced_total"),
            ("stored", "pc_lane_messages_stored_total"),
            ("not_stored", "pc_lane_messages_not_stored_total"),
        ] {
            assert_eq!(
                u(&v["lanes"][lane], field),
                count(&last, &format!("{name}{key}")),
                "summary lanes.{lane}.{field} vs the last scrape; summary: {v}"
            );
        }
    }
}

/// Once the sources have stopped, the process takes no more work: `/ready` says `stopping`
/// (503) while the ring drains, here held up by another process's write lock; the drain then
/// stores everything once the lock is released.
#[test]
fn ready_is_503_stopping_while_the_ring_drains_after_the_sources_stopped() {
    let s = Scratch::new("metrics-ready-stopping");
    let (r, addr) = start_lock_waiting(&s, "600");
    poll_status(&addr, "/ready", 200);
    let holder = hold_write_lock(&s.path("pc-host.db"));
    poll_status(&addr, "/health", 503);
    common::signal(&r.child, libc::SIGINT);
    let stopping = poll_status(&addr, "/ready", 503);
    assert_eq!(stopping.body, "stopping\n", "{stopping:?}");
    holder.execute_batch("ROLLBACK").expect("release the lock");
    drop(holder);
    let out = finish(r);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    assert_eq!(v["stop_reason"], "signal", "{v}");
    assert_eq!(u(&v, "stored"), u(&v, "produced"), "{v}");
}

/// A run at 1,000 records a second for up to ten minutes, without progress lines, its
/// metrics endpoint ready; and the endpoint's address.
fn start_ready_for_a_while(s: &Scratch) -> (Running, String) {
    let args = [
        "--rps",
        "1000",
        "--duration",
        "600",
        "--report-interval",
        "0",
    ];
    let (r, addr) = start_scraped(s, &args, false);
    poll_status(&addr, "/ready", 200);
    (r, addr)
}

/// A client that sends requests and never reads the answers holds up only its own
/// connection: `/health` and `/metrics` still answer everyone else. One thread answered every
/// client, and stalled on that one's full socket for as long as it stayed connected.
#[test]
fn a_client_that_stops_reading_holds_up_only_its_own_connection() {
    use std::os::fd::AsRawFd as _;
    let s = Scratch::new("metrics-stuck-client");
    let (r, addr) = start_ready_for_a_while(&s);
    let mut stuck = std::net::TcpStream::connect(&addr).expect("connect");
    let small: libc::c_int = 4096;
    // SAFETY: a valid socket and a c_int option value of the size given.
    let set = unsafe {
        libc::setsockopt(
            stuck.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const small).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "SO_RCVBUF");
    let requests = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").repeat(3000);
    let (sent_tx, sent) = std::sync::mpsc::channel();
    let (done, done_rx) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let _ = stuck.write_all(requests.as_bytes());
        let _ = sent_tx.send(());
        // Connected, unread, until the test is done.
        let _ = done_rx.recv();
    });
    sent.recv_timeout(WAIT).expect("the requests sent");
    for _ in 0..5 {
        let health = get(&addr, "/health", None);
        assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
        let (text, m) = scrape(&addr);
        assert!(m.contains_key("pc_messages_stored_total"), "{text}");
    }
    let _ = done.send(());
    writer.join().expect("the stuck client's thread");
    let out = r.interrupt();
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
}

/// A request that declares a body it never sends, of any size, is answered and costs nothing
/// but its connection, which ends at the next bytes sent on it: the run goes on and ends with
/// every record stored. The HTTP server drained an unread body into a buffer as large as its
/// declared `Content-Length`, so 99 GB aborted pc-host (the allocation failed) and
/// `usize::MAX` panicked its thread.
#[test]
fn a_request_declaring_a_huge_body_neither_aborts_nor_stops_the_run() {
    let s = Scratch::new("metrics-huge-body");
    let (r, addr) = start_ready_for_a_while(&s);
    for length in ["99999999999", "18446744073709551615"] {
        let mut conn = std::net::TcpStream::connect(&addr).expect("connect");
        let request =
            format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {length}\r\n\r\n");
        conn.write_all(request.as_bytes()).expect("send");
        let mut answer = [0u8; 12];
        conn.read_exact(&mut answer).expect("an answer");
        assert_eq!(&answer, b"HTTP/1.1 200", "{length}");
        // The connection stays open, the body unsent, while others are answered.
        let health = get(&addr, "/health", None);
        assert_eq!(
            (health.status, health.body.as_str()),
            (200, "ok\n"),
            "{length}"
        );
        // The answering thread drops the request right after its answer; 300 records stored
        // later, the process is still there to be scraped.
        let then = count(&scrape(&addr).1, "pc_messages_stored_total");
        poll("300 more records stored", || {
            let now = count(&scrape(&addr).1, "pc_messages_stored_total");
            if now >= then + 300 {
                Ok(())
            } else {
                Err(now.to_string())
            }
        });
        // What comes next on the connection is no request: refused, and the connection ends.
        conn.set_read_timeout(Some(WAIT)).expect("a read timeout");
        conn.write_all(b"more\r\n\r\n").expect("send");
        let mut rest = String::new();
        let _ = conn.read_to_string(&mut rest);
        assert!(rest.contains("HTTP/1.1 400"), "{length}: {rest:?}");
    }
    let out = r.interrupt();
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "stderr:\n{}", out.stderr);
    assert!(
        !out.stderr.contains("memory allocation"),
        "stderr:\n{}",
        out.stderr
    );
    let v = json(&out);
    assert_eq!(u(&v, "stored"), u(&v, "produced"), "{v}");
}

/// A followed file rotated to a new file the source cannot read (a directory at the path) is
/// a stalled source: `/health` says so, 503 and one line with why, until a readable file is
/// there and read; then 200 again.
#[test]
fn health_is_503_while_a_followed_files_new_file_cannot_be_read_and_200_after() {
    let s = Scratch::new("metrics-health-stalled");
    let file = s.path("app.log");
    std::fs::write(&file, "old 0\nold 1\n").unwrap();
    let source = format!("file:{}?follow=true", file.display());
    let args = ["--source", &source, "--report-interval", "0.02"];
    let mut r = Running::start(
        &s,
        &[&args[..], &["--metrics-addr", "127.0.0.1:0"]].concat(),
    );
    let addr = metrics_addr(&mut r);
    r.err.wait_stored(2);
    let health = get(&addr, "/health", None);
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    std::fs::rename(&file, s.path("app.log.1")).unwrap();
    std::fs::create_dir(&file).unwrap();
    let stalled = poll_status(&addr, "/health", 503);
    assert!(
        stalled.body.starts_with("source stalled: ") && stalled.body.contains("is a directory"),
        "the 503 says why the source cannot read on: {stalled:?}"
    );
    assert_eq!(stalled.body.lines().count(), 1, "one line: {stalled:?}");

    std::fs::remove_dir(&file).unwrap();
    std::fs::write(&file, "new 0\n").unwrap();
    r.err.wait_stored(3);
    let health = get(&addr, "/health", None);
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let out = r.interrupt();
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
}

#[test]
fn health_is_503_while_another_process_holds_the_write_lock_and_200_after() {
    let s = Scratch::new("metrics-health-lock");
    let (r, addr) = start_lock_waiting(&s, "60");
    poll("rows stored", || {
        let (_, m) = scrape(&addr);
        match m.get("pc_messages_stored_total") {
            Some(&n) if n > 0.0 => Ok(n),
            seen => Err(format!("pc_messages_stored_total {seen:?}")),
        }
    });
    let health = get(&addr, "/health", None);
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    let holder = hold_write_lock(&s.path("pc-host.db"));
    let unhealthy = poll_status(&addr, "/health", 503);
    assert!(
        unhealthy.body.starts_with("sink retrying: ") && unhealthy.body.contains("lock"),
        "the 503 says the sink is retrying on a lock: {unhealthy:?}"
    );
    assert_eq!(unhealthy.body.lines().count(), 1, "one line: {unhealthy:?}");
    // The lock is still held (and --retry-for is far off): the sink is still retrying.
    let (text, m) = scrape(&addr);
    assert_eq!(sample(&m, "pc_sink_retrying"), 1.0, "{text}");
    assert!(
        count(&m, "pc_sink_errors_total{kind=\"retryable\"}") > 0,
        "{text}"
    );
    assert_eq!(
        count(&m, "pc_sink_errors_total{kind=\"fatal\"}"),
        0,
        "{text}"
    );

    holder.execute_batch("ROLLBACK").expect("release the lock");
    drop(holder);
    poll("/health 200 once the lock is released", || {
        let h = get(&addr, "/health", None);
        if (h.status, h.body.as_str()) == (200, "ok\n") {
            Ok(())
        } else {
            Err(format!("{h:?}"))
        }
    });
    let (text, m) = scrape(&addr);
    assert_eq!(sample(&m, "pc_sink_retrying"), 0.0, "{text}");
    let retries_seen = count(&m, "pc_sink_retries_total");
    assert!(retries_seen > 0, "{text}");

    let out = r.interrupt();
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    assert_eq!((v["ok"].as_bool(), v["error"].as_str()), (Some(true), None));
    assert_eq!(v["stop_reason"], "signal", "{v}");
    assert!(
        u(&v, "retries") >= retries_seen,
        "summary retries vs {retries_seen} scraped: {v}"
    );
    assert_eq!(
        (u(&v, "stored"), u(&v, "dead_lettered"), u(&v, "not_stored")),
        (u(&v, "produced"), 0, 0),
        "{v}"
    );
}

#[test]
fn ready_is_503_until_the_run_starts_then_200() {
    let s = Scratch::new("metrics-ready");
    let db = s.path("pc-host.db");
    // The database exists first: an empty file that the holder left empty would be refused
    // once its lock is gone, if the run looked at it only then.
    let made = run(
        s.dir(),
        &["--messages", "1", "--rps", "0", "--report-interval", "0"],
    );
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    // pc-host cannot set up its run while another process holds the write lock: it waits
    // (busy timeout) with the endpoint already up.
    let holder = hold_write_lock(&db);
    let mut r = Running::start(
        &s,
        &[
            "--rps",
            "100",
            "--duration",
            "600",
            "--busy-timeout-ms",
            "60000",
            "--metrics-addr",
            "0",
            "--output",
            "json",
        ],
    );
    let addr = metrics_addr(&mut r);
    assert!(
        addr.starts_with("127.0.0.1:"),
        "a bare port listens on 127.0.0.1: {addr}"
    );
    let starting = get(&addr, "/ready", None);
    assert_eq!(
        (starting.status, starting.body.as_str()),
        (503, "starting\n"),
        "before the run starts"
    );
    let (text, m) = scrape(&addr);
    assert!(
        !m.contains_key("pc_messages_stored_total"),
        "no run counters before the run:\n{text}"
    );
    holder.execute_batch("ROLLBACK").expect("release the lock");
    drop(holder);
    poll("/ready 200 once the run started", || {
        let ready = get(&addr, "/ready", None);
        if (ready.status, ready.body.as_str()) == (200, "ready\n") {
            Ok(())
        } else {
            Err(format!("{ready:?}"))
        }
    });
    let out = r.interrupt();
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(json(&out)["ok"], true);
}

/// A generated run of 3000 messages at 3000 msg/s with a report every 0.1 s, to its end.
fn short_run(s: &Scratch, extra: &[&str]) -> Value {
    let mut args = vec![
        "--messages",
        "3000",
        "--rps",
        "3000",
        "--report-interval",
        "0.1",
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = run(s.dir(), &args);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(u(&v, "produced"), 3000, "{v}");
    v
}

/// One `run_intervals` row.
#[derive(Debug)]
struct IntervalRow {
    t_s: f64,
    produced: i64,
    stored: i64,
    rejected: i64,
    queue_depth: i64,
    p50: Option<i64>,
    p99: Option<i64>,
    max: Option<i64>,
    consumers: i64,
}

/// The `run_intervals` rows of `run_id`, by time.
fn interval_rows(db: &Path, run_id: i64) -> Vec<IntervalRow> {
    let conn = Connection::open(db).expect("open db");
    let mut stmt = conn
        .prepare(
            "SELECT t_s, produced, stored, rejected, queue_depth, latency_p50_ns, \
             latency_p99_ns, latency_max_ns, consumers FROM run_intervals WHERE run_id = ?1 \
             ORDER BY t_s",
        )
        .expect("prepare");
    stmt.query_map([run_id], |r| {
        Ok(IntervalRow {
            t_s: r.get(0)?,
            produced: r.get(1)?,
            stored: r.get(2)?,
            rejected: r.get(3)?,
            queue_depth: r.get(4)?,
            p50: r.get(5)?,
            p99: r.get(6)?,
            max: r.get(7)?,
            consumers: r.get(8)?,
        })
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

#[test]
fn run_intervals_add_up_to_the_run_and_runs_keeps_the_summary() {
    let s = Scratch::new("metrics-run-intervals");
    let v = short_run(&s, &[]);
    let db = s.path("pc-host.db");
    let run_id = v["run_id"].as_i64().unwrap();
    let rows = interval_rows(&db, run_id);
    assert!(!rows.is_empty(), "no run_intervals rows for run {run_id}");
    let mut before = 0.0;
    for row in &rows {
        assert!(row.t_s > before, "t_s not strictly increasing: {rows:?}");
        before = row.t_s;
        if let (Some(p50), Some(p99), Some(max)) = (row.p50, row.p99, row.max) {
            assert!(p50 <= p99 && p99 <= max, "p50 <= p99 <= max: {row:?}");
        } else {
            assert_eq!(
                (row.p50, row.p99, row.max),
                (None, None, None),
                "latency all NULL or none: {row:?}"
            );
        }
        assert!((0..=65536).contains(&row.queue_depth), "{row:?}");
        assert_eq!(row.consumers, u(&v["consumers"], "max") as i64, "{row:?}");
    }
    let elapsed = v["elapsed_s"].as_f64().unwrap();
    assert_eq!(
        rows.last().unwrap().t_s,
        elapsed,
        "the last row ends where the run ends (elapsed_s): {rows:?}"
    );
    let sum = |f: fn(&IntervalRow) -> i64| rows.iter().map(f).sum::<i64>() as u64;
    assert_eq!(sum(|r| r.produced), u(&v, "produced"), "{rows:?}");
    assert_eq!(sum(|r| r.stored), u(&v, "stored"), "{rows:?}");
    assert_eq!(sum(|r| r.rejected), u(&v, "rejected"), "{rows:?}");

    let conn = Connection::open(&db).expect("open db");
    let (kept, elapsed_kept): (Vec<Option<i64>>, Option<f64>) = conn
        .query_row(
            "SELECT stored, dead_lettered, not_stored, retries, latency_p50_ns, latency_p99_ns, \
             latency_p999_ns, latency_max_ns, duplicates, elapsed_s FROM runs WHERE run_id = ?1",
            [run_id],
            |r| {
                Ok((
                    (0..9).map(|i| r.get(i)).collect::<Result<_, _>>()?,
                    r.get(9)?,
                ))
            },
        )
        .expect("the runs row");
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
    assert_eq!(
        kept, want,
        "runs (stored, dead_lettered, not_stored, retries, latency p50/p99/p999/max, \
         duplicates) vs the \
         summary {v}"
    );
    assert_eq!(elapsed_kept, Some(elapsed), "runs.elapsed_s vs the summary");
}

/// Decodes standard base64 (with `=` padding).
fn base64(text: &str) -> Vec<u8> {
    let digit = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?} in {text}", char::from(c)),
        }
    };
    let bytes = text.as_bytes();
    assert_eq!(bytes.len() % 4, 0, "base64 length: {text}");
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for quad in bytes.chunks(4) {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        let n = quad[..4 - pad]
            .iter()
            .enumerate()
            .fold(0, |n, (i, &c)| n | digit(c) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    out
}

/// The cookie of a deflate-compressed V2 HdrHistogram.
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;

/// The interval that ends as production ends (a duration of whole intervals) has its row and
/// its progress line, also when the drain that follows takes longer than an interval: the
/// wait ended at the deadline before it reported that tick, and the drain started a schedule
/// of its own, so its first row covered two intervals.
#[test]
fn the_interval_ending_at_the_deadline_is_reported_though_the_drain_is_long() {
    let s = Scratch::new("metrics-deadline-tick");
    let mut r = Running::start(
        &s,
        &[
            "--rps",
            "1000",
            "--duration",
            "2",
            "--report-interval",
            "1",
            "--output",
            "json",
        ],
    );
    r.err.wait_stored_at_least(1);
    // Commits wait from here: the drain lasts until the lock is given back.
    let lock = hold_write_lock(&s.path("pc-host.db"));
    r.err.wait("a progress line past 3 s", |l| {
        common::time_of(l).is_some_and(|t| t >= 3.0)
    });
    drop(lock);
    let out = finish(r);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let v = json(&out);
    let rows = interval_rows(&s.path("pc-host.db"), v["run_id"].as_i64().unwrap());
    let times: Vec<f64> = rows.iter().map(|r| r.t_s).collect();
    // A row for each interval up to the drain's first: its tick reported within the
    // interval after it (a main thread held up for longer than an interval makes one row of
    // two).
    for k in 1..=3 {
        let boundary = f64::from(k);
        assert!(
            times.iter().any(|&t| t >= boundary && t < boundary + 1.0),
            "no row for the interval ending at {boundary} s: {times:?}"
        );
    }
}

/// A latency log another run is writing (its lock held) is refused before the run starts,
/// and left as it was: two runs given one path each emptied and wrote it, and the log they
/// left could not be read.
#[test]
fn a_latency_log_another_run_writes_is_refused_and_left_as_it_was() {
    let s = Scratch::new("metrics-latency-log-locked");
    short_run(&s, &["--latency-log", "lat.hlog"]);
    let before = std::fs::read(s.path("lat.hlog")).expect("read the log");
    // The lock a writing run holds on it.
    let held = std::fs::File::open(s.path("lat.hlog")).expect("open the log");
    held.lock().expect("lock the log");
    let out = run(s.dir(), &["--messages", "10", "--latency-log", "lat.hlog"]);
    assert_one_line_error(&out, 2, "another process holds its lock");
    assert_eq!(
        std::fs::read(s.path("lat.hlog")).unwrap(),
        before,
        "left as it was"
    );
    drop(held);
    short_run(&s, &["--latency-log", "lat.hlog"]);
}

#[test]
fn the_latency_log_holds_every_measured_message() {
    let s = Scratch::new("metrics-latency-log");
    let v = short_run(&s, &["--latency-log", "lat.hlog"]);
    let run_id = v["run_id"].as_i64().unwrap();
    let text = std::fs::read_to_string(s.path("lat.hlog")).expect("read the latency log");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 3, "header and intervals:\n{text}");
    assert_eq!(
        lines[0],
        format!("#pc-host latency log: run {run_id}, values in nanoseconds")
    );
    for (line, tag) in [(lines[1], "StartTime"), (lines[2], "BaseTime")] {
        let secs = line
            .strip_prefix(&format!("#[{tag}: "))
            .and_then(|r| r.strip_suffix(" (seconds since epoch)]"))
            .and_then(|n| n.parse::<f64>().ok());
        assert!(secs.is_some_and(|s| s > 0.0), "the {tag} line: {line}");
    }

    // Without the hdrhistogram crate (not a dev-dependency) the histograms are checked as far
    // as their envelope: each is one interval row's, with its max, and a V2 deflate histogram.
    let rows = interval_rows(&s.path("pc-host.db"), run_id);
    let intervals = &lines[3..];
    assert_eq!(
        intervals.len(),
        rows.len(),
        "one log line per run_intervals row:\n{text}\n{rows:?}"
    );
    let mut previous_end = 0.0;
    for (line, row) in intervals.iter().zip(&rows) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 4, "start,length,max,histogram: {line}");
        let num = |i: usize| -> f64 {
            fields[i]
                .parse()
                .unwrap_or_else(|e| panic!("field {i} is not a number ({e}): {line}"))
        };
        let (start, length, max) = (num(0), num(1), num(2));
        // The log writes 3 decimals: 1.5 ms of slack is rounding, not timing.
        assert!(
            (start - previous_end).abs() < 0.0015,
            "starts where the previous ended ({previous_end}): {line}"
        );
        assert!(
            (start + length - row.t_s).abs() < 0.0015,
            "ends at the row's t_s {}: {line}",
            row.t_s
        );
        previous_end = row.t_s;
        assert_eq!(
            max,
            row.max.unwrap_or(0) as f64,
            "the interval's max is the row's latency_max_ns: {line}\n{row:?}"
        );
        assert!(
            fields[3].starts_with("HISTF"),
            "a V2 compressed histogram: {line}"
        );
        let bytes = base64(fields[3]);
        assert!(bytes.len() > 8, "{line}");
        let cookie = u32::from_be_bytes(bytes[0..4].try_into().unwrap());
        assert_eq!(cookie, V2_DEFLATE_COOKIE, "{line}");
        let len = u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 8, "compressed length: {line}");
        assert_eq!(bytes[8] & 0x0f, 8, "a zlib (deflate) stream: {line}");
    }
    assert!(
        (previous_end - v["elapsed_s"].as_f64().unwrap()).abs() < 1e-9,
        "the log runs to the end of the run: {v}"
    );
    // Every message measured was settled in one of the intervals.
    assert_eq!(
        v["latency_ns"]["count"].as_i64(),
        Some(rows.iter().map(|r| r.stored).sum()),
        "{v}"
    );
    // And the log read back by HdrHistogram's own reader holds every one of them, each in
    // the interval whose row counts it stored.
    let mut per_interval = Vec::new();
    let mut deserializer = hdrhistogram::serialization::Deserializer::new();
    for entry in
        hdrhistogram::serialization::interval_log::IntervalLogIterator::new(text.as_bytes())
    {
        let hdrhistogram::serialization::interval_log::LogEntry::Interval(h) =
            entry.expect("a well-formed interval log")
        else {
            continue;
        };
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            h.encoded_histogram(),
        )
        .expect("base64");
        let hist: hdrhistogram::Histogram<u64> = deserializer
            .deserialize(&mut bytes.as_slice())
            .expect("a V2 histogram");
        per_interval.push(hist.len());
    }
    let stored: Vec<u64> = rows.iter().map(|r| r.stored as u64).collect();
    assert_eq!(
        per_interval, stored,
        "each interval's latencies, its row's stored"
    );
    assert_eq!(
        Some(per_interval.iter().sum()),
        v["latency_ns"]["count"].as_u64(),
        "{v}"
    );
}

#[test]
fn bad_metrics_addr_and_latency_log_are_one_line_errors_with_exit_2() {
    let s = Scratch::new("metrics-bad-flags");
    let db = s.path("pc-host.db");
    let quick = ["--messages", "10", "--output", "json"];
    let with = |extra: &[&str]| -> Vec<String> {
        quick
            .iter()
            .chain(extra)
            .map(|a| (*a).to_string())
            .collect()
    };
    let run_with = |extra: &[&str]| {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(s.dir(), &args)
    };

    let out = run_with(&["--metrics-addr", "nonsense"]);
    assert_one_line_error(&out, 2, "nonsense");
    assert!(out.stderr.contains("--metrics-addr"), "{}", out.stderr);
    assert!(!db.exists(), "no database for a bad --metrics-addr");

    let taken = TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let port = taken.local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let out = run_with(&["--metrics-addr", &addr]);
    assert_one_line_error(&out, 2, &addr);
    assert!(out.stderr.contains("--metrics-addr"), "{}", out.stderr);
    assert!(!db.exists(), "no database for a port in use");
    // Named as typed (a bare port), then what it resolved to.
    let out = run_with(&["--metrics-addr", &port.to_string()]);
    assert_one_line_error(
        &out,
        2,
        &format!("error: --metrics-addr {port}: cannot listen on 127.0.0.1:{port}"),
    );
    assert!(!db.exists(), "no database for a port in use");
    drop(taken);

    let foreign = s.path("notes.txt");
    let notes = b"my own notes\nnot a latency log\n";
    std::fs::write(&foreign, notes).unwrap();
    let out = run_with(&["--latency-log", "notes.txt"]);
    assert_one_line_error(&out, 2, "--latency-log");
    assert!(out.stderr.contains("notes.txt"), "{}", out.stderr);
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        notes,
        "a foreign file is left as it was"
    );
    assert!(!db.exists(), "no database for a foreign --latency-log");

    // A FIFO is not looked into (the read would block), a link to nothing not followed.
    let fifo = s.path("pipe.hlog");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|st| st.success()), "mkfifo");
    std::os::unix::fs::symlink(s.path("nowhere/x.hlog"), s.path("dangling.hlog")).unwrap();
    std::os::unix::fs::symlink(s.path("absent.svg"), s.path("dangling.svg")).unwrap();
    for (flag, path, says) in [
        (
            "--latency-log",
            "pipe.hlog",
            "exists and is not a regular file",
        ),
        ("--profile", "pipe.hlog", "exists and is not a regular file"),
        (
            "--latency-log",
            "dangling.hlog",
            "is a link to a file that does not exist",
        ),
        (
            "--profile",
            "dangling.svg",
            "is a link to a file that does not exist",
        ),
    ] {
        let out = run_with(&[flag, path]);
        assert_one_line_error(&out, 2, &format!("{flag} {path} {says}"));
        assert!(!db.exists(), "no database for {flag} {path}");
    }
    assert!(
        !s.path("absent.svg").exists(),
        "nothing made through the link"
    );

    let out = run_with(&["--latency-log", "missing/dir/x.hlog"]);
    assert_one_line_error(&out, 2, "--latency-log");
    assert!(out.stderr.contains("missing/dir"), "{}", out.stderr);
    assert!(!s.path("missing").exists(), "no directory created");
    assert!(!db.exists(), "no database for a missing directory");

    // A run refused after the log was opened (the database is not SQLite) leaves no log of
    // its own, and a log of an earlier run as it was; the next run then writes it.
    std::fs::write(s.path("keep.txt"), "not a database\n").unwrap();
    let refused = run_with(&["--db", "keep.txt", "--latency-log", "new.hlog"]);
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(!s.path("new.hlog").exists(), "no empty log left behind");
    assert_eq!(run_with(&["--latency-log", "new.hlog"]).code, Some(0));
    let log = std::fs::read(s.path("new.hlog")).unwrap();
    let refused = run_with(&["--db", "keep.txt", "--latency-log", "new.hlog"]);
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert_eq!(
        std::fs::read(s.path("new.hlog")).unwrap(),
        log,
        "the earlier log kept"
    );
    assert_eq!(
        run_with(&["--latency-log", "new.hlog"]).code,
        Some(0),
        "and rewritten next"
    );
}

/// The files a run writes besides its sink never take the place of the database, its WAL, an
/// input or each other: refused before anything is written (one of them once replaced the
/// database with a flame graph and the run still said OK).
#[test]
fn outputs_that_would_overwrite_the_database_an_input_or_each_other_are_refused() {
    let s = Scratch::new("metrics-output-clash");
    std::fs::write(s.path("in.log"), "a\nb\n").unwrap();
    let cases: [&[&str]; 5] = [
        &["--db", "x.db", "--profile", "x.db"],
        &["--db", "x.db", "--latency-log", "x.db-wal"],
        &[
            "--db",
            "x.db",
            "--source",
            "file:in.log",
            "--latency-log",
            "in.log",
        ],
        &[
            "--db",
            "x.db",
            "--dead-letter",
            "o.jsonl",
            "--latency-log",
            "o.jsonl",
        ],
        &[
            "--db",
            "x.db",
            "--latency-log",
            "o.hlog",
            "--profile",
            "./o.hlog",
        ],
    ];
    for args in cases {
        let mut all = vec!["--messages", "10"];
        all.extend_from_slice(args);
        let out = common::run(s.dir(), &all);
        assert_one_line_error(&out, 2, "already uses");
        assert!(
            !s.path("x.db").exists(),
            "{args:?}: the database was created"
        );
    }
    assert_eq!(std::fs::read_to_string(s.path("in.log")).unwrap(), "a\nb\n");
}
