//! Reading a run's `--metrics-addr` endpoint: plain HTTP/1.0 requests over `TcpStream`, the
//! Prometheus text parsed into samples, and the address from the line that announces it.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use super::{Running, WAIT};

/// One HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// `GET path` on `addr` (`HOST:PORT`) over HTTP/1.0, with an `Accept` header when given.
pub fn get(addr: &str, path: &str, accept: Option<&str>) -> Reply {
    request("GET", addr, path, accept)
}

/// `method path` on `addr` over HTTP/1.0, with an `Accept` header when given.
pub fn request(method: &str, addr: &str, path: &str, accept: Option<&str>) -> Reply {
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr} for {path}: {e}"));
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    if let Some(accept) = accept {
        request.push_str(&format!("Accept: {accept}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("send GET {path}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("read the reply to GET {path}: {e}"));
    let text = String::from_utf8(raw).unwrap_or_else(|e| panic!("GET {path}: not UTF-8: {e}"));
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no end of headers in:\n{text}"));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status line in:\n{head}"));
    let content_type = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Reply {
        status,
        content_type,
        body: body.to_string(),
    }
}

/// The samples of a Prometheus text exposition: `name{labels}` (as written) -> value.
pub fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("sample line without a value: {l}"));
            let value = value
                .parse()
                .unwrap_or_else(|e| panic!("sample value is not a number ({e}): {l}"));
            (key.to_string(), value)
        })
        .collect()
}

/// The value of sample `key` (`name` or `name{labels}`, as written) in a scrape.
pub fn sample(scrape: &HashMap<String, f64>, key: &str) -> f64 {
    *scrape
        .get(key)
        .unwrap_or_else(|| panic!("no sample `{key}` in the scrape: {scrape:?}"))
}

/// A counter's value as a count.
pub fn count(scrape: &HashMap<String, f64>, key: &str) -> u64 {
    let v = sample(scrape, key);
    assert!(
        v >= 0.0 && v.fract() == 0.0,
        "`{key}` is not a whole count: {v}"
    );
    v as u64
}

/// `/metrics` (Prometheus text) of `addr`, asserting the status and content type.
pub fn scrape(addr: &str) -> (String, HashMap<String, f64>) {
    let r = get(addr, "/metrics", None);
    assert_eq!(r.status, 200, "GET /metrics: {r:?}");
    assert!(
        r.content_type.starts_with("text/plain; version=0.0.4"),
        "GET /metrics content type: {r:?}"
    );
    let parsed = samples(&r.body);
    (r.body, parsed)
}

/// The `HOST:PORT` of the endpoint, from the stderr line that announces it.
pub fn metrics_addr(r: &mut Running) -> String {
    const PREFIX: &str = "pc-host: metrics: http://";
    let line = r
        .err
        .wait("naming the metrics address", |l| l.starts_with(PREFIX));
    let rest = line.strip_prefix(PREFIX).unwrap();
    let (addr, tail) = rest
        .split_once("/metrics")
        .unwrap_or_else(|| panic!("no /metrics in: {line}"));
    assert_eq!(tail, " (also /health, /ready)", "the announcement: {line}");
    addr.to_string()
}
