//! `--metrics-addr`: a small synchronous HTTP server on its own thread, serving
//! - `GET /metrics`: Prometheus text (0.0.4), or OpenMetrics when the scraper's `Accept` asks
//!   for `application/openmetrics-text`;
//! - `GET /health`: 200 `ok` while the run is healthy, 503 and one line while the sink is
//!   retrying or has failed, or a source is stalled (a followed file's new file unreadable);
//! - `GET /ready`: 200 once the sink is open and the run's threads are running; 503
//!   `starting` before that, `stopping` once the sources stopped and the ring drains, and
//!   `finished` once the run is over (`--metrics-linger`).
//!
//! One thread takes the requests and hands each to the thread that answers its connection
//! (one per connection, ended once the connection is idle): a client that stops reading its
//! answers holds only its own connection's thread, not the health checks of everyone else.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tiny_http::{Header, Request, Response, Server};

use super::metrics::{Live, Stage};

/// Binds `addr` and serves `live` from a thread of its own, for as long as the process runs.
/// Returns the address bound (with the port chosen when `addr` asked for port 0).
///
/// # Errors
/// The address cannot be bound (in use, not allowed).
pub fn serve(addr: SocketAddr, live: Arc<Live>) -> Result<SocketAddr, String> {
    let server = Server::http(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| format!("{addr} is not an IP address"))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let answerers = Answerers::default();
            for request in server.incoming_requests() {
                answerers.hand(request, &live);
            }
        })
        .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
    Ok(bound)
}

/// How long a connection's thread waits for its next request before it ends.
const IDLE: Duration = Duration::from_secs(10);

/// The threads answering each connection, by the client's address, shared with them so that
/// each takes itself out when it ends.
#[derive(Debug, Default, Clone)]
struct Answerers(Arc<Mutex<HashMap<SocketAddr, Sender<Request>>>>);

impl Answerers {
    /// Hands `request` to its connection's thread, starting one if there is none (or it just
    /// ended). A client without an address is answered here; if no thread can be started,
    /// the request is dropped (tiny_http then answers 500).
    fn hand(&self, request: Request, live: &Arc<Live>) {
        let Some(&client) = request.remote_addr() else {
            return respond(request, live);
        };
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let request = match map.get(&client) {
            Some(tx) => match tx.send(request) {
                Ok(()) => return,
                Err(unsent) => unsent.0, // its thread ended meanwhile
            },
            None => request,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let _ = tx.send(request);
        let (answerers, live_) = (self.clone(), Arc::clone(live));
        let started = std::thread::Builder::new()
            .name("metrics-client".into())
            .spawn(move || answerers.answer(client, &rx, &live_));
        match started {
            Ok(_) => {
                map.insert(client, tx);
            }
            Err(_) => {
                drop(map);
                // The request went with the closure that never ran: nothing to answer.
                tracing::warn!("metrics: cannot start a thread for {client}: request dropped");
            }
        }
    }

    /// A connection's thread: answers its requests in order until one closes the connection
    /// or none came for [`IDLE`], then takes itself out (a request that came meanwhile is
    /// still answered).
    fn answer(&self, client: SocketAddr, rx: &Receiver<Request>, live: &Arc<Live>) {
        loop {
            let last = match rx.recv_timeout(IDLE) {
                Ok(request) => {
                    let last = closes_connection(&request);
                    respond(request, live);
                    last
                }
                Err(RecvTimeoutError::Timeout) => true,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if last && self.leave(client, rx, live) {
                return;
            }
        }
    }

    /// Takes `client`'s thread out of the map unless a request came for it meanwhile (which
    /// it then answers, and goes on: `false`).
    fn leave(&self, client: SocketAddr, rx: &Receiver<Request>, live: &Arc<Live>) -> bool {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Under the lock no request can be handed to this thread any more.
        match rx.try_recv() {
            Ok(request) => {
                drop(map);
                respond(request, live);
                false
            }
            Err(_) => {
                map.remove(&client);
                true
            }
        }
    }
}

/// Whether `request` is its connection's last: HTTP/1.0 without `Connection: keep-alive`,
/// or `Connection: close` (tiny_http closes the connection after answering it).
fn closes_connection(request: &Request) -> bool {
    let connection = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Connection"))
        .map(|h| h.value.as_str().to_ascii_lowercase());
    match connection {
        Some(c) if c.contains("close") => true,
        Some(c) if c.contains("keep-alive") => false,
        _ => *request.http_version() == tiny_http::HTTPVersion(1, 0),
    }
}

fn respond(request: Request, live: &Arc<Live>) {
    let path = request.url().split('?').next().unwrap_or("");
    // Every endpoint only reads: GET (and HEAD) are all it answers.
    let readable = matches!(
        request.method(),
        tiny_http::Method::Get | tiny_http::Method::Head
    );
    let (status, body, content_type) = match path {
        "/metrics" | "/health" | "/ready" if !readable => (
            405,
            "method not allowed: use GET\n".to_string(),
            "text/plain",
        ),
        "/metrics" => {
            let openmetrics = request.headers().iter().any(|h| {
                h.field.equiv("Accept") && h.value.as_str().contains("application/openmetrics-text")
            });
            let content_type = if openmetrics {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            } else {
                "text/plain; version=0.0.4; charset=utf-8"
            };
            (200, live.encode(openmetrics), content_type)
        }
        "/health" => match live.unhealthy() {
            None => (200, "ok\n".to_string(), "text/plain"),
            Some(why) => (503, format!("{why}\n"), "text/plain"),
        },
        "/ready" => match live.stage() {
            Stage::Running => (200, "ready\n".to_string(), "text/plain"),
            Stage::Starting => (503, "starting\n".to_string(), "text/plain"),
            Stage::Stopping => (503, "stopping\n".to_string(), "text/plain"),
            Stage::Finished => (503, "finished\n".to_string(), "text/plain"),
        },
        _ => (
            404,
            "not found: try /metrics, /health or /ready\n".into(),
            "text/plain",
        ),
    };
    let mut response = Response::from_string(body).with_status_code(status);
    if let Ok(h) = Header::from_bytes("Content-Type", content_type) {
        response = response.with_header(h);
    }
    // A scraper that hung up early is its own business.
    let _ = request.respond(response);
}
