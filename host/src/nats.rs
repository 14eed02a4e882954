//! What the NATS source and sink share: the small async runtime the official `async-nats`
//! client runs on, connecting (one line on failure), and how a record is named on the wire.
//!
//! The rest of pc-host is threads and the ring. The runtime has one worker thread, which
//! drives the connections; source and sink threads wait on it with `block_on`, so an async
//! call is only ever made from a thread that is a NATS source or a sink writer.
//!
//! A record published by pc-host carries its identity in headers:
//! - `Nats-Msg-Id: pc-<run>-<producer>-<seq>`: JetStream drops a publish retried after a lost
//!   ack within the stream's duplicate window;
//! - `Pc-Producers: <n>` (the publishing run's producers) and `Pc-Created: <unix ns>`.
//!
//! After its last record, a publishing run sends one more message with `Pc-Run-End: <run>`
//! and its [`crate::position::OriginEnd`] as JSON, so a database fed from the stream knows
//! what the run produced (`verify` checks it).

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::anyhow;
use async_nats::header::HeaderMap;
use async_nats::{Client, ConnectOptions};

use crate::config::url::NatsServer;

pub const MSG_ID: &str = "Nats-Msg-Id";
pub const PRODUCERS: &str = "Pc-Producers";
pub const CREATED: &str = "Pc-Created";
pub const RUN_END: &str = "Pc-Run-End";

/// How long connecting may take, and how long a JetStream request or publish ack is waited
/// for before the call fails (a sink write is then retried).
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The process's NATS runtime (one worker thread), started on first use.
///
/// # Panics
/// If the operating system refuses a thread for it.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("nats")
            .enable_all()
            .build()
            .expect("cannot start the NATS runtime thread")
    })
}

/// Connects to `server` (no retry: an unreachable server at start is an error). A connection
/// lost later is re-established by the client, which says so on stderr.
///
/// # Errors
/// One line naming the server (never its password) and what failed.
pub fn connect(server: &NatsServer) -> anyhow::Result<Client> {
    let mut options = ConnectOptions::new()
        .connection_timeout(TIMEOUT)
        .request_timeout(Some(TIMEOUT))
        .name("pc-host")
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Disconnected => {
                    tracing::warn!("NATS: disconnected; reconnecting");
                }
                async_nats::Event::Connected => tracing::debug!("NATS: connected"),
                async_nats::Event::SlowConsumer(_)
                | async_nats::Event::Draining
                | async_nats::Event::Closed => {}
                other => tracing::warn!("NATS: {other}"),
            }
        });
    if let Some(user) = &server.user {
        options =
            options.user_and_password(user.clone(), server.password.clone().unwrap_or_default());
    }
    let addr = server.addr.clone();
    runtime()
        .block_on(options.connect(addr))
        .map_err(|e| anyhow!("NATS server {server}: cannot connect: {e}"))
}

/// A JetStream context on `client` whose requests and acks time out after [`TIMEOUT`].
pub fn jetstream(client: Client) -> async_nats::jetstream::Context {
    // The context starts a task of its own: on the NATS runtime.
    let _in_runtime = runtime().enter();
    // A publish's ack, and one a failed write no longer waits for (which holds a publish's
    // place until then): both given up after `TIMEOUT`, so that a retry's publishes find room
    // within it (the sink's duplicate-window check counts on that).
    async_nats::jetstream::ContextBuilder::new()
        .timeout(TIMEOUT)
        .ack_timeout(TIMEOUT)
        .build(client)
}

/// The headers of a record pc-host publishes.
pub fn record_headers(
    run: i64,
    producers: u32,
    producer: u32,
    seq: u64,
    created: i64,
) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(MSG_ID, format!("pc-{run}-{producer}-{seq}").as_str());
    h.insert(PRODUCERS, producers.to_string().as_str());
    h.insert(CREATED, created.to_string().as_str());
    h
}

/// A record's identity, read back from its headers: `(run, producers, producer, seq,
/// created)`; `None` for a message pc-host did not publish.
pub fn record_identity(h: &HeaderMap) -> Option<(i64, u32, u32, u64, i64)> {
    let id = h.get(MSG_ID)?.as_str();
    let mut parts = id.strip_prefix("pc-")?.split('-');
    let run: i64 = parts.next()?.parse().ok()?;
    let producer: u32 = parts.next()?.parse().ok()?;
    let seq: u64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || run <= 0 {
        return None;
    }
    let producers: u32 = h.get(PRODUCERS)?.as_str().parse().ok()?;
    let created: i64 = h.get(CREATED)?.as_str().parse().ok()?;
    // More producers than a run can have is no pc-host publisher's: taken as one, it would
    // be recorded as a run that `verify` then calls altered.
    let possible = u64::from(producers) <= crate::config::MAX_THREADS;
    (producer < producers && possible).then_some((run, producers, producer, seq, created))
}

/// A run id for a publishing run: random, positive, unique among publishers in practice
/// (62 random bits).
pub fn new_run_id() -> i64 {
    let mut rng = fastrand::Rng::new();
    // Mix in the time and the process: two processes seeded alike still differ.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let bits = rng.u64(..) ^ t.rotate_left(17) ^ u64::from(std::process::id()).rotate_left(40);
    ((bits >> 2) | 1) as i64
}

/// Publishes `body` to each of `subjects`, in order; returns how many publishes the client
/// took. One that fails is logged (at debug, naming it `what`) and skipped: a lost
/// acknowledgement of any kind only lets a message be delivered again, which the sink drops
/// as a duplicate.
pub fn publish_each(
    client: &async_nats::Client,
    subjects: Vec<String>,
    body: &bytes::Bytes,
    what: &str,
) -> u64 {
    runtime().block_on(async {
        let mut sent = 0;
        for s in subjects {
            match client.publish(s, body.clone()).await {
                Ok(()) => sent += 1,
                Err(e) => tracing::debug!("NATS: {what} was not sent: {e}"),
            }
        }
        sent
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_identity_reads_back_from_its_headers() {
        let h = record_headers(77, 4, 3, 1_000_000, 123);
        assert_eq!(record_identity(&h), Some((77, 4, 3, 1_000_000, 123)));
        let mut foreign = HeaderMap::new();
        foreign.insert(MSG_ID, "order-17");
        assert_eq!(record_identity(&foreign), None);
        // A producer outside the run's producers is not pc-host's.
        let mut bad = record_headers(77, 4, 3, 1, 1);
        bad.insert(PRODUCERS, "3");
        assert_eq!(record_identity(&bad), None);
        // Nor is a run of more producers than a run can have.
        let mut huge = record_headers(77, 4, 3, 1, 1);
        huge.insert(PRODUCERS, "100000000");
        assert_eq!(record_identity(&huge), None);
    }

    #[test]
    fn run_ids_are_positive_and_differ() {
        let a = new_run_id();
        let b = new_run_id();
        assert!(a > 0 && b > 0);
        assert_ne!(a, b);
    }
}
