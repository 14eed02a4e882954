//! The bare async-nats baseline of `benches/nats/compare.sh`: JetStream publish and consume
//! loops with no pc code and no database, so the ratio pc-host / this shows what pc's part
//! costs. It does what pc-host does on the wire, nothing more:
//!
//! - `publish`: creates the stream if missing (work-queue retention, file storage, like
//!   pc-host's sink), then publishes N payloads of the given size, at most 4096 awaiting their
//!   ack at once (pc-host's `IN_FLIGHT`), and waits for every ack;
//! - `consume`: a durable pull consumer (explicit ack, like pc-host's source), pulling in
//!   batches of 256 (pc-host's chunk at `--rps 0`) and acking each message once received;
//! - `delete`: deletes the stream (a missing stream is fine);
//! - `pending`: prints `{"pending":P,"ack_pending":A}` of a durable consumer (what it has
//!   not been delivered yet, and delivered but not acknowledged): how far a consumer lags.
//!
//! `publish` and `consume` print `{"messages":N,"seconds":S,"per_s":R}`: S from the first
//! publish (pull) to the last ack received (sent and flushed), connecting and stream and
//! consumer setup left out.
//!
//! ```text
//! nats_loop publish --url nats://127.0.0.1:4222 --subject S --stream NAME --messages N [--payload 64]
//! nats_loop consume --url nats://127.0.0.1:4222 --stream NAME --consumer C --messages N
//! nats_loop delete  --url nats://127.0.0.1:4222 --stream NAME
//! nats_loop pending --url nats://127.0.0.1:4222 --stream NAME --consumer C
//! ```
//!
//! Like pc-host, the client runs on a tokio runtime with one worker thread.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, ErrorCode};
use futures_util::StreamExt as _;

/// Publishes awaiting their ack at once (pc-host's sink: `IN_FLIGHT`).
const IN_FLIGHT: usize = 4096;
/// Messages per pull request (pc-host's source at `--rps 0`: its chunk, 256).
const BATCH: usize = 256;
/// Delivered, unacknowledged messages the server allows (pc-host's: 4 x its default ring
/// capacity of 65 536).
const MAX_ACK_PENDING: i64 = 4 * 65_536;
/// `consume` fails when no message came for this long (the stream holds fewer than N).
const IDLE_LIMIT: Duration = Duration::from_secs(10);

const USAGE: &str = "usage:
  nats_loop publish --url URL --subject S --stream NAME --messages N [--payload BYTES]
  nats_loop consume --url URL --stream NAME --consumer C --messages N
  nats_loop delete  --url URL --stream NAME
  nats_loop pending --url URL --stream NAME --consumer C
URL defaults to nats://127.0.0.1:4222, --payload to 64.";

#[derive(Debug)]
struct Args {
    command: String,
    url: String,
    subject: Option<String>,
    stream: Option<String>,
    consumer: Option<String>,
    messages: Option<u64>,
    payload: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let command = it.next().ok_or_else(|| anyhow!("no command\n{USAGE}"))?;
    if command == "-h" || command == "--help" {
        println!("{USAGE}");
        std::process::exit(0);
    }
    let mut a = Args {
        command,
        url: "nats://127.0.0.1:4222".into(),
        subject: None,
        stream: None,
        consumer: None,
        messages: None,
        payload: 64,
    };
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| anyhow!("{flag} needs a number, not `{value}`"))
        };
        match flag.as_str() {
            "--url" => a.url = value.clone(),
            "--subject" => a.subject = Some(value.clone()),
            "--stream" => a.stream = Some(value.clone()),
            "--consumer" => a.consumer = Some(value.clone()),
            "--messages" => a.messages = Some(number()?),
            "--payload" => a.payload = usize::try_from(number()?)?,
            _ => bail!("unknown argument `{flag}`\n{USAGE}"),
        }
    }
    Ok(a)
}

fn need<T>(v: Option<T>, flag: &str, command: &str) -> anyhow::Result<T> {
    v.ok_or_else(|| anyhow!("{command} needs {flag}\n{USAGE}"))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("nats_loop: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let a = parse_args()?;
    if !["publish", "consume", "delete", "pending"].contains(&a.command.as_str()) {
        bail!("unknown command `{}`\n{USAGE}", a.command);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = async_nats::connect(a.url.as_str())
            .await
            .with_context(|| format!("cannot connect to {}", a.url))?;
        let js = jetstream::new(client.clone());
        let stream = need(a.stream.clone(), "--stream", &a.command)?;
        let (n, elapsed) = match a.command.as_str() {
            "publish" => {
                let subject = need(a.subject.clone(), "--subject", "publish")?;
                let n = need(a.messages, "--messages", "publish")?;
                (n, publish(&js, &subject, &stream, n, a.payload).await?)
            }
            "consume" => {
                let consumer = need(a.consumer.clone(), "--consumer", "consume")?;
                let n = need(a.messages, "--messages", "consume")?;
                (n, consume(&client, &js, &stream, &consumer, n).await?)
            }
            "pending" => {
                let consumer = need(a.consumer.clone(), "--consumer", "pending")?;
                return pending(&js, &stream, &consumer).await;
            }
            _ => return delete(&js, &stream).await,
        };
        let s = elapsed.as_secs_f64();
        println!(
            "{{\"messages\":{n},\"seconds\":{s:.6},\"per_s\":{:.1}}}",
            n as f64 / s
        );
        Ok(())
    })
}

/// Creates the stream if missing, then publishes `n` payloads with at most [`IN_FLIGHT`]
/// acks outstanding; the time from the first publish to the last ack.
async fn publish(
    js: &jetstream::Context,
    subject: &str,
    stream: &str,
    n: u64,
    payload: usize,
) -> anyhow::Result<Duration> {
    js.get_or_create_stream(Config {
        name: stream.to_string(),
        subjects: vec![subject.to_string()],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .with_context(|| format!("cannot create stream {stream}"))?;
    let body = bytes::Bytes::from(vec![b'.'; payload]);
    let subject = async_nats::Subject::from(subject);
    let mut waiting = VecDeque::with_capacity(IN_FLIGHT);
    let t0 = Instant::now();
    for _ in 0..n {
        waiting.push_back(js.publish(subject.clone(), body.clone()).await?);
        if waiting.len() >= IN_FLIGHT
            && let Some(ack) = waiting.pop_front()
        {
            ack.await?;
        }
    }
    while let Some(ack) = waiting.pop_front() {
        ack.await?;
    }
    Ok(t0.elapsed())
}

/// Pulls `n` messages with the durable pull consumer `name` (created if missing), acking
/// each as it arrives; the time from the first pull to the last ack flushed to the server.
async fn consume(
    client: &async_nats::Client,
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    n: u64,
) -> anyhow::Result<Duration> {
    let stream_handle = js
        .get_stream(stream)
        .await
        .with_context(|| format!("no stream {stream}"))?;
    let consumer: PullConsumer = stream_handle
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.to_string()),
                ack_policy: AckPolicy::Explicit,
                max_ack_pending: MAX_ACK_PENDING,
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("stream {stream}: cannot create consumer {name}"))?;
    let t0 = Instant::now();
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(BATCH)
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .context("cannot pull from the consumer")?;
    let mut got = 0;
    while got < n {
        let m = match tokio::time::timeout(IDLE_LIMIT, messages.next()).await {
            Ok(Some(m)) => m.context("pulling")?,
            Ok(None) => bail!("the pull ended after {got} of {n} messages"),
            Err(_) => bail!("no message for {IDLE_LIMIT:?} after {got} of {n}"),
        };
        m.ack().await.map_err(|e| anyhow!("acking: {e}"))?;
        got += 1;
    }
    client.flush().await.context("sending the last acks")?;
    Ok(t0.elapsed())
}

/// Deletes the stream; one that is not there is fine.
async fn delete(js: &jetstream::Context, stream: &str) -> anyhow::Result<()> {
    match js.delete_stream(stream).await {
        Ok(_) => Ok(()),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                Ok(())
            }
            _ => Err(anyhow!("cannot delete stream {stream}: {e}")),
        },
    }
}

/// Prints what the durable consumer `name` has not been delivered, and not acknowledged.
async fn pending(js: &jetstream::Context, stream: &str, name: &str) -> anyhow::Result<()> {
    let mut consumer: PullConsumer = js
        .get_consumer_from_stream(name, stream)
        .await
        .with_context(|| format!("stream {stream}: no consumer {name}"))?;
    let info = consumer.info().await?;
    println!(
        "{{\"pending\":{},\"ack_pending\":{}}}",
        info.num_pending, info.num_ack_pending
    );
    Ok(())
}
