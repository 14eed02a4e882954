//! A NATS JetStream source: a durable pull consumer shared by any number of pc-host
//! processes (JetStream gives each message to one of them), one record per message.
//!
//! - Acknowledged only once settled ([`NatsAcks`], called by the consumers): stored (or found
//!   already stored) or dead-lettered. Until then JetStream is told every third of the ack
//!   wait that the message is still being worked on ([`keepalive`]), so a long retry or a
//!   slow sink does not have it delivered again meanwhile. A record not stored is handed
//!   back (`-NAK`, delivered again after [`NAK_DELAY`]), as are messages fetched beyond
//!   `--messages` or after a stop; a process killed before its commit leaves its messages
//!   unacknowledged, and JetStream delivers them to the others after the consumer's ack wait.
//! - Exactly once in the database: a message redelivered after its commit (the ack was lost,
//!   or the process died between commit and ack) is dropped by the sink on its key (see
//!   [`crate::message::Delivery`]). A record pc-host published is keyed by its publisher's
//!   (run, producer, seq) and stored as a row of that run; any other message by its stream
//!   sequence, as a line of the stream (an input).
//! - Latency starts when the record was built by its publisher (`Pc-Created`), or when
//!   JetStream stored a foreign message: end to end, as exact as the hosts' clocks agree; for
//!   a message older than the run, when the run started.
//! - Runs until a signal, `--duration`, `--messages`, or, with `until=empty`, until the
//!   consumer has nothing pending and nothing unacknowledged.
//! - A payload that is not UTF-8 or is over `--max-record-bytes` is rejected: counted,
//!   dead-lettered if `--dead-letter` is given, and terminated (never delivered again).

pub mod keepalive;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::context::{ConsumerInfoError, ConsumerInfoErrorKind};
use futures_util::{FutureExt as _, StreamExt as _};

use super::Context;
use super::rate::{Reserved, Take};
use crate::config::url::NatsSource as Spec;
use crate::dead_letter::DeadLetters;
use crate::flow::ByteGate;
use crate::message::{Acknowledge, Delivery, Record};
use crate::nats::{self, RUN_END};
use crate::position::{FileKey, Origin, OriginEnd, Positions};
use crate::telemetry::{NatsStats, ProducerStats, bump};
use keepalive::Held;

/// How long the source waits for a message before it looks at the stop flag (and, with
/// `until=empty`, asks JetStream whether anything is left).
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// How long each pull request lives, and the longest the source hands back what the pull
/// delivers once it stops (a pull still open then, on a backlog, can deliver a message after
/// that: it comes again after the consumer's ack wait).
const PULL_EXPIRES: Duration = Duration::from_secs(1);

/// A message handed back is delivered again after this long: past this process's last pull
/// request (so it goes to another consumer, not back here while this one stops), and long
/// before a usual ack wait.
const NAK_DELAY: Duration = Duration::from_secs(2);

/// A stream found before the run starts, with nothing made on the server yet.
#[derive(Debug)]
pub struct Found {
    client: async_nats::Client,
    stream: async_nats::jetstream::stream::Stream,
    /// The stream as an input (its id keys messages pc-host did not publish).
    pub stream_key: FileKey,
}

/// A stream and its durable consumer, bound once the run's database is ready.
#[derive(Debug)]
pub struct Opened {
    pub client: async_nats::Client,
    pub consumer: PullConsumer,
    /// The stream as an input (its id keys messages pc-host did not publish).
    pub stream_key: FileKey,
    /// For the header: the stream, the consumer and their settings.
    pub desc: String,
    /// The consumer's ack wait (as the server has it: an existing consumer keeps its own).
    pub ack_wait: Duration,
}

/// Connects and finds the stream; makes nothing on the server. The durable consumer is bound
/// by [`Found::bind`] once the run's database is ready, so a run refused before (its database
/// is another program's, say) leaves no consumer behind.
///
/// # Errors
/// One line: the server cannot be reached, the stream does not exist.
pub fn find(spec: &Spec) -> anyhow::Result<Found> {
    let client = nats::connect(&spec.server)?;
    let js = nats::jetstream(client.clone());
    let rt = nats::runtime();
    let server = &spec.server;
    let mut stream = rt.block_on(js.get_stream(&spec.stream)).map_err(|e| {
        anyhow!(
            "NATS server {server}: stream {} is not there ({e}); a nats:// sink creates it when \
             it first publishes",
            spec.stream
        )
    })?;
    let created = rt
        .block_on(stream.info())
        .map(|i| i.created.unix_timestamp_nanos() as i64)
        .map_err(|e| anyhow!("NATS server {server}: stream {}: {e}", spec.stream))?;
    Ok(Found {
        client,
        stream,
        stream_key: FileKey {
            path: format!("nats:{}", spec.stream).into(),
            dev: 0,
            ino: 0,
            born: Some(created),
        },
    })
}

impl Found {
    /// Binds the durable consumer of `spec`, creating it if it is missing (an existing one is
    /// used as it is).
    ///
    /// # Errors
    /// One line: JetStream refused the consumer (another one on a work-queue stream, say), or
    /// the server cannot be reached.
    pub fn bind(self, spec: &Spec, max_ack_pending: usize) -> anyhow::Result<Opened> {
        let (rt, server) = (nats::runtime(), &spec.server);
        let config = pull::Config {
            durable_name: Some(spec.consumer.clone()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: spec.ack_wait,
            max_ack_pending: i64::try_from(max_ack_pending).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let mut consumer: PullConsumer = rt
            .block_on(self.stream.get_or_create_consumer(&spec.consumer, config))
            .map_err(|e| {
                anyhow!(
                    "NATS server {server}: stream {}: consumer {}: {e}",
                    spec.stream,
                    spec.consumer
                )
            })?;
        let info = rt
            .block_on(consumer.info())
            .map_err(|e| anyhow!("NATS server {server}: consumer {}: {e}", spec.consumer))?;
        // A consumer made elsewhere with acks of another policy: with `none` the server
        // forgets each message as it delivers it, so one taken and not stored (a stop, a
        // failed commit) is lost to this consumer; with `all`, one ack would settle every
        // message before it, stored or not.
        if info.config.ack_policy != AckPolicy::Explicit {
            return Err(anyhow!(
                "NATS server {server}: stream {}: consumer {} acknowledges with policy {}; \
                 pc-host needs explicit acks to settle each message only once it is stored: \
                 name a consumer that does not exist yet (pc-host creates it)",
                spec.stream,
                spec.consumer,
                // As the server writes it (`none`, `all`).
                format!("{:?}", info.config.ack_policy).to_lowercase()
            ));
        }
        let ack_wait = info.config.ack_wait;
        // Pending: never delivered; unacknowledged: delivered (or handed back) and waiting for
        // their ack or redelivery, which this run may get too.
        let desc = format!(
            "{server} stream {} consumer {} (ack wait {:?}, max ack pending {}, {} pending, {} \
             delivered and unacknowledged)",
            spec.stream,
            spec.consumer,
            info.config.ack_wait,
            info.config.max_ack_pending,
            info.num_pending,
            info.num_ack_pending
        );
        Ok(Opened {
            client: self.client,
            consumer,
            stream_key: self.stream_key,
            desc,
            ack_wait,
        })
    }
}

/// One NATS source thread.
#[derive(Debug)]
pub struct NatsSource<'a> {
    pub cx: Context<'a>,
    pub opened: Opened,
    pub until_empty: bool,
    /// The stream's input id.
    pub stream_input: u32,
    pub max_record_bytes: usize,
    pub positions: &'a dyn Positions,
    /// Records still to accept under `--messages` (`u64::MAX`: no limit).
    pub budget: &'a super::Budget,
    pub gate: &'a ByteGate,
    pub stats: &'a ProducerStats,
    pub nats: &'a NatsStats,
    pub dead_letters: Option<&'a DeadLetters>,
    /// The messages taken and not yet acknowledged or handed back (kept alive meanwhile).
    pub held: &'a Held,
    /// Clock ns when the run started: latency is counted from the record's creation or from
    /// here, whichever is later (a backlog older than the run is not this run's latency).
    pub started_ns: u64,
}

/// A run's end as a publishing pc-host writes it: the run in its header, its figures in the
/// payload; why not, for a message that only claims to be one.
fn parse_run_end(run: &str, payload: &[u8]) -> Result<(i64, OriginEnd), String> {
    let run: i64 = run
        .parse()
        .map_err(|_| format!("a run's end that names no run (`{run}`)"))?;
    let end: OriginEnd = serde_json::from_slice(payload)
        .map_err(|e| format!("run {run}'s end is not readable: {e}"))?;
    if run <= 0 {
        return Err(format!("a run's end that names no run (`{run}`)"));
    }
    if end.per_producer.len() as u64 > crate::config::MAX_THREADS {
        return Err(format!(
            "run {run}'s end names {} producers, more than a pc-host run has ({})",
            end.per_producer.len(),
            crate::config::MAX_THREADS
        ));
    }
    Ok((run, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's end naming no run, or more producers than a pc-host run has, is not a
    /// publisher's: refused (and rejected by the source) rather than recorded as a run
    /// `verify` would call altered.
    #[test]
    fn a_run_end_naming_more_producers_than_a_run_has_is_refused() {
        let end = |n: usize| {
            let counts = vec!["1"; n].join(",");
            format!(
                r#"{{"finished_at":1,"completed":true,"per_producer":[{counts}],"produced":{n},
                "stored":{n},"dead_lettered":0,"not_stored":0,"elapsed_s":1.0}}"#
            )
        };
        assert!(parse_run_end("7", end(3).as_bytes()).is_ok());
        let e = parse_run_end("7", end(1025).as_bytes()).unwrap_err();
        assert!(e.contains("1025 producers"), "{e}");
        let e = parse_run_end("-7", end(1).as_bytes()).unwrap_err();
        assert!(e.contains("names no run"), "{e}");
    }
}

/// What one delivered message became.
enum Taken {
    Record(Record),
    /// A publishing run's end, recorded; or a rejected payload, terminated.
    Settled,
}

impl NatsSource<'_> {
    /// Reads until a stop (signal, duration, `--messages`, `until=empty`) or the ring is
    /// closed. Messages delivered and not pushed are handed back.
    ///
    /// # Errors
    /// JetStream refusing the pull, or the sink failing to record a publishing run.
    pub fn run(self) -> anyhow::Result<()> {
        // Sync code between the async steps: the sink's calls (origin runs) may block on a
        // runtime of their own (the `postgres` crate), which cannot nest in this one.
        let rt = nats::runtime();
        let chunk = usize::try_from(self.cx.chunk).unwrap_or(1024).max(1);
        let mut messages = rt
            .block_on(
                self.opened
                    .consumer
                    .stream()
                    .max_messages_per_batch(chunk)
                    .expires(PULL_EXPIRES)
                    .heartbeat(PULL_EXPIRES / 2)
                    .messages(),
            )
            .context("NATS: cannot pull from the consumer")?;
        let mut origins: HashMap<i64, i64> = HashMap::new();
        let mut buf: Vec<Record> = Vec::with_capacity(chunk);
        let ended = self.read(&mut messages, &mut origins, &mut buf, chunk);
        self.hand_back_pulled(&mut messages);
        ended
    }

    /// The reading loop of [`NatsSource::run`].
    fn read(
        &self,
        messages: &mut pull::Stream,
        origins: &mut HashMap<i64, i64>,
        buf: &mut Vec<Record>,
        chunk: usize,
    ) -> anyhow::Result<()> {
        let rt = nats::runtime();
        // `until=empty` asked what is left and had no answer, and said so (once an outage).
        let mut unanswered = false;
        // The source could not pull or ask, and `/health` says so until it can again: until a
        // message comes, the consumer answers, or a whole pull has gone by without an error
        // since the last one (`last_error`) on a connected client.
        let mut stalled = false;
        let mut last_error = Instant::now();
        let mut gone = Gone::default();
        loop {
            if self.cx.stop.load(Ordering::Relaxed) || self.budget.none_left() {
                return Ok(());
            }
            let waited =
                rt.block_on(async { tokio::time::timeout(IDLE_CHECK, messages.next()).await });
            let first = match waited {
                Err(_idle) if self.until_empty => match gone.asked(self.is_drained()) {
                    Ok(true) => return Ok(()),
                    Ok(false) => {
                        unanswered = false;
                        self.stalls(&mut stalled, None);
                        continue;
                    }
                    Err(e) if gone.ends_the_run(&e) => {
                        return Err(anyhow!("NATS: asking the consumer what is left: {e}"));
                    }
                    // The server restarting, or the client reconnecting: asked again at the
                    // next idle moment, as a failed pull is tried again.
                    Err(e) => {
                        let why = format!("NATS: asking the consumer what is left: {e}");
                        self.stalls(&mut stalled, Some(why.clone()));
                        if !std::mem::replace(&mut unanswered, true) {
                            tracing::warn!("{why}; asking again until the server answers");
                        }
                        continue;
                    }
                },
                Err(_idle) => {
                    self.recovered(&mut stalled, last_error);
                    continue;
                }
                // The pull ends only after an error that ends it (below): never a stop.
                Ok(None) => return Err(anyhow!("NATS: the server ended the pull")),
                Ok(Some(Err(e))) if ends_pull(&e) => {
                    return Err(anyhow!("NATS: pulling from the consumer: {e}"));
                }
                Ok(Some(Err(e))) => {
                    // A consumer deleted looks like an outage to a server that ends no pull
                    // for it (missed heartbeats): asked, it says it is gone.
                    if let Some(answer) = self.consumer_gone(&mut gone) {
                        return Err(anyhow!(
                            "NATS: pulling from the consumer: {e}; asking for it: {answer}"
                        ));
                    }
                    let why = format!("NATS: pulling from the consumer: {e}");
                    // Once a stall: a server away for an hour is one line, not one a pull.
                    if !stalled {
                        tracing::warn!("{why}; pulling again until the server answers");
                    }
                    self.stalls(&mut stalled, Some(why));
                    last_error = Instant::now();
                    continue;
                }
                Ok(Some(Ok(m))) => {
                    self.stalls(&mut stalled, None);
                    unanswered = false;
                    gone.since = None;
                    m
                }
            };
            let mut next = Some(first);
            while let Some(m) = next.take() {
                let taken = match self.take(&m, origins) {
                    Ok(taken) => taken,
                    Err(e) => {
                        // The chunk so far goes back at once, counted, as at a stop.
                        self.hand_back_unqueued(buf);
                        return Err(e);
                    }
                };
                if let Taken::Record(r) = taken {
                    buf.push(r);
                }
                if buf.len() >= chunk {
                    break;
                }
                // More already here: take it into this chunk; otherwise push now.
                if let Some(Some(Ok(m))) = rt.block_on(async { messages.next().now_or_never() }) {
                    next = Some(m);
                }
            }
            if !self.push(buf) {
                return Ok(());
            }
        }
    }

    /// Once reading ended: hands back (`-NAK`) the messages the pull already delivered to this
    /// process and that were not taken, so another consumer gets them at once rather than
    /// after the ack wait. Stops at the first pause of [`IDLE_CHECK`], and after
    /// [`PULL_EXPIRES`] at most; a message an open pull request delivers later waits out the
    /// ack wait.
    fn hand_back_pulled(&self, messages: &mut pull::Stream) {
        let rt = nats::runtime();
        let until = std::time::Instant::now() + PULL_EXPIRES;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let wait = left.min(IDLE_CHECK);
            let next = rt.block_on(async { tokio::time::timeout(wait, messages.next()).await });
            let Ok(Some(Ok(m))) = next else { return };
            NatsStats::add(&self.nats.delivered, 1);
            if let Err(e) = rt.block_on(m.ack_with(AckKind::Nak(Some(NAK_DELAY)))) {
                tracing::debug!("NATS: handing a message back failed: {e}");
                return;
            }
            NatsStats::add(&self.nats.nacked, 1);
        }
    }

    /// Makes a record of a delivered message (or settles it here).
    fn take(
        &self,
        m: &async_nats::jetstream::Message,
        origins: &mut HashMap<i64, i64>,
    ) -> anyhow::Result<Taken> {
        NatsStats::add(&self.nats.delivered, 1);
        let Ok(info) = m.info() else {
            return Err(anyhow!(
                "NATS: a message came without its JetStream metadata"
            ));
        };
        let (stream_seq, redelivered) = (info.stream_sequence, info.delivered > 1);
        let published = info.published.unix_timestamp_nanos() as i64;
        if redelivered {
            NatsStats::add(&self.nats.redelivered, 1);
        }
        let ack = m
            .reply
            .as_ref()
            .map(ToString::to_string)
            .ok_or_else(|| anyhow!("NATS: a message came without its reply subject"))?;
        let headers = m.headers.as_ref();
        if let Some(run) = headers.and_then(|h| h.get(RUN_END)) {
            let (run, end) = match parse_run_end(run.as_str(), &m.payload) {
                Ok(parsed) => parsed,
                Err(why) => {
                    // Not a run's end pc-host wrote: rejected as a bad record would be, so
                    // that it does not come back to every consumer in turn.
                    bump(&self.stats.read, 1);
                    bump(&self.stats.read_bytes, m.payload.len() as u64);
                    return self.reject(m, stream_seq, &why, false);
                }
            };
            // Held while recorded, as a record is while its publisher is (below).
            self.held.hold(&ack);
            self.record_run_end(run, &end, published, origins, &ack)
                .inspect_err(|_| self.hand_back_held(m, &ack))?;
            self.held.release([ack.as_str()]);
            nats::runtime()
                .block_on(m.ack())
                .map_err(|e| anyhow!("NATS: acknowledging a run's end: {e}"))?;
            NatsStats::add(&self.nats.acked, 1);
            return Ok(Taken::Settled);
        }
        bump(&self.stats.read, 1);
        bump(&self.stats.read_bytes, m.payload.len() as u64);
        let text = match std::str::from_utf8(&m.payload) {
            Ok(t) if t.len() <= self.max_record_bytes => t.to_string(),
            Ok(_) => return self.reject(m, stream_seq, "longer than --max-record-bytes", true),
            Err(_) => return self.reject(m, stream_seq, "not valid UTF-8", true),
        };
        // Held from here: recording a new publisher is retried for up to `--retry-for`, which
        // can outlast the ack wait.
        self.held.hold(&ack);
        let identity = headers.and_then(nats::record_identity);
        let (key_run, published_by, producer, seq, created_at) = match identity {
            Some((run, producers, producer, seq, created)) => {
                let origin = Origin {
                    run,
                    producers,
                    started_at: created,
                };
                let local = self.local_run(origins, &origin).inspect_err(|_| {
                    // Read and never queued: handed back now, counted as such (the run fails).
                    bump(&self.stats.not_queued_rereadable, 1);
                    self.hand_back_held(m, &ack);
                })?;
                (local, run, producer, seq, created)
            }
            None => (0, 0, self.stream_input, stream_seq, published),
        };
        let now = self.cx.clock.now();
        let age = u64::try_from(self.cx.unix(now).saturating_sub(created_at)).unwrap_or(0);
        Ok(Taken::Record(Record {
            intended_ns: now.saturating_sub(age).max(self.started_ns),
            created_at,
            producer,
            seq,
            end_offset: 0,
            tail: 0,
            mark: 0,
            replaces: false,
            restarted: false,
            text,
            delivery: Some(Box::new(Delivery {
                key_run,
                published_by,
                ack,
            })),
            lane: self.cx.lane,
        }))
    }

    /// The run that holds `origin`'s records in the sink (recorded there the first time this
    /// source sees it), cached in `origins`.
    fn local_run(&self, origins: &mut HashMap<i64, i64>, origin: &Origin) -> anyhow::Result<i64> {
        if let Some(&id) = origins.get(&origin.run) {
            return Ok(id);
        }
        let id = self.positions.origin_run(origin)?;
        origins.insert(origin.run, id);
        Ok(id)
    }

    /// Records publishing run `run`'s end (its figures, for `verify`).
    fn record_run_end(
        &self,
        run: i64,
        end: &OriginEnd,
        published: i64,
        origins: &mut HashMap<i64, i64>,
        ack: &str,
    ) -> anyhow::Result<()> {
        let origin = Origin {
            run,
            producers: u32::try_from(end.per_producer.len()).unwrap_or(u32::MAX),
            started_at: published,
        };
        let local = self.local_run(origins, &origin)?;
        // Held afresh: each of the two recordings may retry for up to `--retry-for`, and is
        // kept alive for as long.
        self.held.hold(ack);
        self.positions.origin_ended(local, end)
    }

    /// A payload that cannot be a record: counted, dead-lettered if there is a file for it,
    /// and terminated. `record`: it came as a record, so a publisher's identity in its
    /// headers names it (a run's end message that cannot be read does not).
    fn reject(
        &self,
        m: &async_nats::jetstream::Message,
        stream_seq: u64,
        why: &str,
        record: bool,
    ) -> anyhow::Result<Taken> {
        bump(&self.stats.rejected, 1);
        {
            let mut samples = self
                .stats
                .reject_samples
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if samples.len() < crate::telemetry::REJECT_SAMPLES {
                samples.push(format!("stream sequence {stream_seq}: {why}"));
            }
        }
        if let Some(dead) = self.dead_letters {
            // The payload whatever its length: the message is terminated, so the entry is
            // all that is left of it (a file's long line stays in the file; this does not).
            let identity = m
                .headers
                .as_ref()
                .filter(|_| record)
                .and_then(nats::record_identity);
            let entry = match identity {
                Some((run, _, producer, seq, _)) => {
                    dead.published_message_entry((run, producer, seq), stream_seq, &m.payload, why)
                }
                None => dead.message_entry(self.stream_input, stream_seq, Some(&m.payload), why),
            };
            dead.write(&[entry])
                .context("writing a rejected NATS message to the dead-letter file")?;
            bump(&self.stats.rejected_dead_lettered, 1);
        }
        nats::runtime()
            .block_on(m.ack_with(AckKind::Term))
            .map_err(|e| anyhow!("NATS: terminating a rejected message: {e}"))?;
        NatsStats::add(&self.nats.acked, 1);
        Ok(Taken::Settled)
    }

    /// Pushes `buf` into the ring (through the budget and the byte gate); `false` when the
    /// run stops here. What the budget leaves out, or the byte gate refuses at a stop, is
    /// handed back to JetStream, as is what a closed ring (a failing run) refuses.
    fn push(&self, buf: &mut Vec<Record>) -> bool {
        if buf.is_empty() {
            return true;
        }
        let want = buf.len();
        let granted = usize::try_from(self.claim(want as u64)).unwrap_or(0);
        let mut over = buf.split_off(granted);
        self.hand_back_unqueued(&mut over);
        if buf.is_empty() {
            return false;
        }
        if !self.paced(buf.len() as u64) {
            self.hand_back_unqueued(buf);
            return false;
        }
        let bytes: u64 = buf.iter().map(|r| r.text.len() as u64).sum();
        let began = self.stats.blocked.begin();
        let admitted = self.gate.acquire(self.cx.lane, bytes, self.cx.stop);
        self.stats.blocked.end(began);
        if admitted && self.cx.push(buf, self.stats) {
            return granted == want;
        }
        // The run stopped first: what was not queued goes back to the stream now, not after
        // its ack wait.
        self.hand_back_unqueued(buf);
        false
    }

    /// Hands back records read and never queued, counting them as such (so that `read` is
    /// rejected + produced + not queued); `records` is left empty.
    fn hand_back_unqueued(&self, records: &mut Vec<Record>) {
        bump(&self.stats.not_queued_rereadable, records.len() as u64);
        let refs: Vec<&Record> = records.iter().collect();
        nak(&self.opened.client, &refs, self.nats, self.held);
        records.clear();
    }

    /// Takes `n` tokens from the run's token bucket (`--rps`, shared with every source),
    /// waiting while none is due; `false` if the run stops first.
    fn paced(&self, mut n: u64) -> bool {
        // Each take reserves at most the `n` still wanted, so none is left reserved at the end.
        let mut reserved = Reserved::default();
        while n > 0 {
            let Take::Go { grant, .. } = self.cx.take(n, &mut reserved) else {
                return false;
            };
            n -= grant.map_or(n, |g| g.count()).min(n);
        }
        true
    }

    /// Takes up to `n` of the `--messages` budget.
    fn claim(&self, n: u64) -> u64 {
        // The one source of a NATS run: what it takes is settled at once (nothing waits on
        // its claims, and what it does not push it hands back to JetStream, not the budget).
        let got = self.budget.claim(n);
        self.budget.release(got);
        got
    }

    /// Hands one delivered message back (`-NAK`), as [`NatsSource::hand_back_pulled`] does: on
    /// a failure that ends the run, so another consumer gets it after [`NAK_DELAY`], not after
    /// the ack wait. `m` is held under its reply subject `ack` until then, and no keeper's
    /// round comes between its release and its `-NAK` (see `Held::hand_back`).
    fn hand_back_held(&self, m: &async_nats::jetstream::Message, ack: &str) {
        let _round = self.held.hand_back();
        self.held.release([ack]);
        match nats::runtime().block_on(m.ack_with(AckKind::Nak(Some(NAK_DELAY)))) {
            Ok(()) => NatsStats::add(&self.nats.nacked, 1),
            Err(e) => tracing::debug!("NATS: handing a message back failed: {e}"),
        }
    }

    /// Says why the source cannot pull (`Some`), for `/health`, or that it can again; `stalled`
    /// is whether it said so last, so that a message pulled costs no lock.
    fn stalls(&self, stalled: &mut bool, why: Option<String>) {
        if *stalled || why.is_some() {
            *stalled = why.is_some();
            self.stats.set_stalled(why);
        }
    }

    /// Clears the stalled reason of [`Self::stalls`] at an idle moment once the client is
    /// connected and a whole pull ([`PULL_EXPIRES`]) has gone by since the last pull error:
    /// a quiet stream after an outage is not a stalled source.
    fn recovered(&self, stalled: &mut bool, last_error: Instant) {
        if *stalled && self.connected() && last_error.elapsed() > PULL_EXPIRES {
            self.stalls(stalled, None);
        }
    }

    fn connected(&self) -> bool {
        matches!(
            self.opened.client.connection_state(),
            async_nats::connection::State::Connected
        )
    }

    /// After a failed pull on a connected client (asking at most once per [`PULL_EXPIRES`]):
    /// the server's answer if it confirms the consumer (or its stream) gone ([`Gone`]); `None`
    /// if it is there, or not confirmed gone (an outage: the pull is tried again).
    fn consumer_gone(&self, gone: &mut Gone) -> Option<ConsumerInfoError> {
        if !self.connected() || gone.last.is_some_and(|at| at.elapsed() < PULL_EXPIRES) {
            return None;
        }
        let answer = gone.asked(self.is_drained()).err()?;
        gone.ends_the_run(&answer).then_some(answer)
    }

    /// Nothing pending for the consumer and nothing delivered unacknowledged (by anyone).
    /// Waits at most [`PULL_EXPIRES`] for the answer (a server that does not answer is an
    /// outage, as a failed pull is), so a stop is not held up longer.
    fn is_drained(&self) -> Result<bool, ConsumerInfoError> {
        let mut consumer = self.opened.consumer.clone();
        let info = nats::runtime()
            .block_on(async { tokio::time::timeout(PULL_EXPIRES, consumer.info()).await })
            .map_err(|_| ConsumerInfoError::new(ConsumerInfoErrorKind::TimedOut))??;
        Ok(info.num_pending == 0 && info.num_ack_pending == 0)
    }
}

/// Whether JetStream refuses the question for good (an invalid name, or an error other than
/// being unavailable for now): the run fails at once. Unavailable (503), out of reach, timed
/// out, offline, or gone ([`Gone`]) are not.
fn refused(e: &ConsumerInfoError) -> bool {
    match e.kind() {
        ConsumerInfoErrorKind::InvalidName => true,
        ConsumerInfoErrorKind::JetStream(js) => js.code() != 503,
        _ => false,
    }
}

/// The server's answers that the consumer (or its stream) is gone. One such answer can come
/// from a server still recovering its state after a restart, so the run fails only on such
/// answers for [`GONE_CONFIRM`], no other answer nor a message between (a message clears
/// them); every other failed question passes (the server restarting or out of reach,
/// JetStream not ready), asked again.
#[derive(Debug, Default)]
struct Gone {
    /// When the first of the answers in a row saying it is gone came.
    since: Option<Instant>,
    /// When the consumer was last asked.
    last: Option<Instant>,
}

/// How long answers that the consumer is gone must go on to confirm it.
const GONE_CONFIRM: Duration = Duration::from_secs(5);

impl Gone {
    /// Notes the answer to a question to the consumer, and passes it on.
    fn asked<T>(&mut self, answer: Result<T, ConsumerInfoError>) -> Result<T, ConsumerInfoError> {
        let now = Instant::now();
        // Answers far apart are not a row: the first of them may be an old restart's.
        let apart = self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) > GONE_CONFIRM);
        self.last = Some(now);
        if apart {
            self.since = None;
        }
        let says_gone = answer.as_ref().is_err_and(|e| {
            matches!(
                e.kind(),
                ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound
            )
        });
        if !says_gone {
            self.since = None;
        } else if self.since.is_none() {
            self.since = Some(now);
        }
        answer
    }

    /// Whether the last answer, `e`, ends the run: the answers so far confirm the consumer
    /// gone, or JetStream refuses the question for good ([`refused`]).
    fn ends_the_run(&self, e: &ConsumerInfoError) -> bool {
        self.since
            .is_some_and(|since| since.elapsed() >= GONE_CONFIRM)
            || refused(e)
    }
}

/// Whether a failed pull ends the pull stream (the client stops pulling after it): the
/// consumer deleted, a push consumer, or a request over the consumer's limits. Other errors
/// (a missed heartbeat, a failed request) pass, and the client pulls again.
fn ends_pull(e: &pull::MessagesError) -> bool {
    matches!(
        e.kind(),
        pull::MessagesErrorKind::ConsumerDeleted
            | pull::MessagesErrorKind::PushBasedConsumer
            | pull::MessagesErrorKind::RequestLimitExceeded
    )
}

/// Acknowledges settled records to JetStream (see the module docs).
#[derive(Debug, Clone)]
pub struct NatsAcks {
    pub client: async_nats::Client,
    pub stats: Arc<NatsStats>,
    /// Shared with the sources: what is acknowledged or handed back is no longer held.
    pub held: Arc<Held>,
}

impl Acknowledge for NatsAcks {
    fn settled(&self, records: &[&Record], kept: bool) {
        if kept {
            let ack = bytes::Bytes::from_static(b"+ACK");
            let sent = publish_to_replies(&self.client, records, ack, &self.held);
            NatsStats::add(&self.stats.acked, sent);
        } else {
            nak(&self.client, records, &self.stats, &self.held);
        }
    }
}

impl NatsAcks {
    /// Waits until every acknowledgement sent has left for the server.
    ///
    /// # Errors
    /// The connection's, as one line.
    pub fn flush(&self) -> anyhow::Result<()> {
        nats::runtime()
            .block_on(self.client.flush())
            .map_err(|e| anyhow!("NATS: sending the last acknowledgements: {e}"))
    }
}

/// Hands records back: JetStream delivers them again after [`NAK_DELAY`] (to any consumer).
fn nak(client: &async_nats::Client, records: &[&Record], stats: &NatsStats, held: &Held) {
    let body = format!("-NAK {{\"delay\":{}}}", NAK_DELAY.as_nanos());
    // No keeper's round between the release and the `-NAK`s (see `Held::hand_back`).
    let _round = held.hand_back();
    let sent = publish_to_replies(client, records, bytes::Bytes::from(body), held);
    NatsStats::add(&stats.nacked, sent);
}

/// Publishes `body` (an acknowledgement or a hand-back) to the reply subject of each delivery
/// among `records`, which are then no longer `held`; returns how many.
fn publish_to_replies(
    client: &async_nats::Client,
    records: &[&Record],
    body: bytes::Bytes,
    held: &Held,
) -> u64 {
    let subjects: Vec<String> = records
        .iter()
        .filter_map(|r| r.delivery.as_ref().map(|d| d.ack.clone()))
        .collect();
    if subjects.is_empty() {
        return 0;
    }
    // Before the publish. A progress ack of an earlier round queued after a `+ACK` is ignored;
    // after a `-NAK`, it is kept out by `Held::hand_back`, which `nak` holds.
    held.release(subjects.iter().map(String::as_str));
    let sent = subjects.len() as u64;
    nats::publish_each(client, subjects, &body, "an acknowledgement");
    sent
}
