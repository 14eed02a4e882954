//! The Grafana dashboard `grafana/pc-host.json`: it is provisionable JSON whose panels all use
//! one Prometheus datasource variable, and every metric its queries name is one that a live
//! pc-host exports (scraped from `--metrics-addr`).

mod common;

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use common::{Running, Scratch, WAIT, stored_some};
use serde_json::Value;

/// The datasource every panel and query uses: a dashboard variable.
const DATASOURCE: &str = "${DS_PROMETHEUS}";

/// The metrics the dashboard must show: pc-host's export contract.
const CONTRACT: [&str; 18] = [
    "pc_messages_produced_total",
    "pc_messages_stored_total",
    "pc_messages_rejected_total",
    "pc_messages_dead_lettered_total",
    "pc_messages_not_stored_total",
    "pc_queue_depth",
    "pc_queue_capacity",
    "pc_latency_seconds_bucket",
    "pc_built_late_seconds_bucket",
    "pc_commit_duration_seconds_bucket",
    "pc_batch_rows_bucket",
    "pc_producer_blocked_seconds_total",
    "pc_sink_errors_total",
    "pc_sink_retries_total",
    "pc_sink_retrying",
    "pc_wal_bytes",
    "pc_consumers",
    "pc_build_info",
];

fn dashboard() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../grafana/pc-host.json");
    let text = std::fs::read_to_string(path).expect("read grafana/pc-host.json");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("grafana/pc-host.json: {e}"))
}

/// Every panel, those inside collapsed rows included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut all = vec![];
    let mut todo: Vec<&Value> = d["panels"].as_array().expect("panels").iter().collect();
    while let Some(p) = todo.pop() {
        todo.extend(p["panels"].as_array().into_iter().flatten());
        all.push(p);
    }
    all
}

/// Every PromQL expression: the panels' targets and the query variables.
fn expressions(d: &Value) -> Vec<String> {
    let targets = panels(d)
        .into_iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| {
            t["expr"]
                .as_str()
                .expect("a target without expr")
                .to_owned()
        });
    let variables = d["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .map(|v| match &v["query"] {
            Value::String(q) => q.clone(),
            q => q["query"].as_str().expect("variable query").to_owned(),
        });
    targets.chain(variables).collect()
}

/// The metric names in a PromQL expression: whole identifiers matching `pc_[a-z0-9_]+`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let b = expr.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        let starts = b[i..].starts_with(b"pc_") && (i == 0 || !ident(b[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        let len = b[i..]
            .iter()
            .take_while(|&&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
            .count();
        names.insert(expr[i..i + len].to_owned());
        i += len;
    }
    names
}

/// The series names a Prometheus text exposition offers: every sample's name, and for each
/// `# TYPE` line its name (a histogram's as `_bucket`, `_sum` and `_count`).
fn exported(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let mut words = decl.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                panic!("bad TYPE line: {line}");
            };
            if kind == "histogram" {
                names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
            } else {
                names.insert(name.to_owned());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// `GET /metrics` from `addr` (HOST:PORT) over HTTP/1.0; the body of a 200 response.
fn scrape(addr: &str) -> String {
    let mut conn = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    conn.set_read_timeout(Some(WAIT)).unwrap();
    write!(conn, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    body.to_owned()
}

#[test]
fn metric_names_are_whole_pc_identifiers_in_promql() {
    let expr = "histogram_quantile(0.99, sum by (le) (rate(pc_latency_seconds_bucket\
                {instance=~\"$instance\"}[$__rate_interval]))) / xpc_other + pc_b:c";
    let want = ["pc_b", "pc_latency_seconds_bucket"].map(String::from);
    assert_eq!(metric_names(expr), BTreeSet::from(want));
}

#[test]
fn an_exposition_exports_its_samples_and_each_histogram_series() {
    let text = "# HELP pc_a_total A.\n# TYPE pc_a_total counter\npc_a_total 3\n\
                # TYPE pc_h histogram\npc_h_bucket{le=\"+Inf\"} 0\n\
                # TYPE pc_k counter\npc_k_total{kind=\"x\"} 1\n";
    let want = [
        "pc_a_total",
        "pc_h_bucket",
        "pc_h_count",
        "pc_h_sum",
        "pc_k",
        "pc_k_total",
    ];
    assert_eq!(exported(text), BTreeSet::from(want.map(String::from)));
}

#[test]
fn every_panel_and_query_uses_the_prometheus_datasource_variable() {
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64() >= Some(36), "schemaVersion");
    assert!(
        d["uid"].is_string() && d["id"].is_null(),
        "uid set, id null"
    );
    let vars = d["templating"]["list"].as_array().expect("templating");
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == DATASOURCE[2..DATASOURCE.len() - 1]),
        "no datasource variable for {DATASOURCE}"
    );
    let mut ids = BTreeSet::new();
    for p in panels(&d).into_iter().filter(|p| p["type"] != "row") {
        let title = &p["title"];
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "{title}: id reused"
        );
        assert_eq!(p["datasource"]["uid"], DATASOURCE, "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], DATASOURCE, "{title}: {t}");
        }
    }
}

#[test]
fn every_metric_the_dashboard_queries_is_exported_by_a_live_pc_host() {
    let d = dashboard();
    let wanted: BTreeSet<String> = expressions(&d)
        .iter()
        .flat_map(|e| metric_names(e))
        .collect();
    let missing: Vec<_> = CONTRACT.iter().filter(|&&m| !wanted.contains(m)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard does not show {missing:?}"
    );

    let s = Scratch::new("grafana-live");
    let args = [
        "--metrics-addr",
        "127.0.0.1:0",
        "--duration",
        "30",
        "--rps",
        "1000",
        "--report-interval",
        "0.1",
    ];
    let mut r = Running::start(&s, &args);
    let line = r
        .err
        .wait("naming the metrics URL", |l| l.contains("metrics: http://"));
    let addr = line
        .split("metrics: http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    // The run's metrics appear once it runs: after its first stored message.
    r.err.wait("showing a stored message", stored_some);
    let names = exported(&scrape(&addr));
    let out = r.interrupt();
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    let absent: Vec<_> = wanted.difference(&names).collect();
    assert!(
        absent.is_empty(),
        "the dashboard queries {absent:?}, which pc-host does not export; it exports {names:?}"
    );
}
