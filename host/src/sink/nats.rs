//! The NATS JetStream sink: each consumer publishes its batches to one subject, pipelined,
//! and a write succeeds once JetStream acknowledged every record of it.
//!
//! - Records carry their identity (`crate::nats`): a write retried after a lost ack (the
//!   connection dropped, the server restarted) publishes the same message ids, and JetStream
//!   keeps one of each within the stream's duplicate window.
//! - At most [`IN_FLIGHT`] publishes wait for their ack at once per connection; a consumer
//!   whose write waits holds its batch, so the ring fills and sources wait (backpressure).
//! - The stream is created if missing (file storage, work-queue retention: a message is
//!   removed once a consumer acknowledges it). An existing stream is used as it is; its
//!   settings are shown in the header.
//! - After the run, one more message (`Pc-Run-End`) says what the run produced, so a
//!   database fed from the stream can be verified.
//!
//! A file input cannot be published (its position needs a database); stdin can: its records
//! reach the database as the stream's messages, keyed by stream sequence.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};

use super::{ErrorKind, RunEnd, RunStart, Sink, SinkError};
use crate::config::url::NatsSink as Spec;
use crate::message::Record;
use crate::nats::{self, RUN_END};
use crate::position::{FileKey, OriginEnd, Resume};
use crate::telemetry::NatsStats;

/// Publishes awaiting their ack, per connection.
pub const IN_FLIGHT: usize = 4096;

/// One connection publishing for one run.
#[derive(Debug)]
pub struct Writer {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    spec: Spec,
    run_id: i64,
    producers: u32,
    stats: Arc<NatsStats>,
    /// The stream's `max_msg_size` (headers and payload), if it sets one.
    max_message: Option<usize>,
}

/// Connects, creates the stream if it is missing, and describes it for the header.
///
/// # Errors
/// One line: the server cannot be reached, or JetStream refused the stream.
pub fn open(
    spec: &Spec,
    start: &RunStart<'_>,
    stats: Arc<NatsStats>,
) -> anyhow::Result<(Writer, String)> {
    let client = nats::connect(&spec.server)?;
    let js = nats::jetstream(client.clone());
    let (desc, max_message) = ensure_stream(&js, spec, start.retry_for)?;
    let writer = Writer {
        client,
        js,
        spec: spec.clone(),
        run_id: nats::new_run_id(),
        producers: u32::try_from(start.producers).unwrap_or(u32::MAX),
        stats,
        max_message,
    };
    Ok((writer, desc))
}

/// The stream named in `spec`, created (for the subject) if missing; its settings, shown, and
/// its `max_msg_size` if it sets one. Warns if it drops records it acknowledged, or if a write
/// retried for `retry_for` can outlast its duplicate window ([`outlasts_dedup`]).
fn ensure_stream(
    js: &async_nats::jetstream::Context,
    spec: &Spec,
    retry_for: Duration,
) -> anyhow::Result<(String, Option<usize>)> {
    let server = &spec.server;
    let (mut stream, created) = find_or_create(js, spec)?;
    let info = nats::runtime()
        .block_on(stream.info())
        .map_err(|e| anyhow!("NATS server {server}: stream {}: {e}", spec.stream))?;
    let c = &info.config;
    let covers = c.subjects.iter().any(|s| subject_matches(s, &spec.subject));
    if !covers {
        return Err(anyhow!(
            "NATS server {server}: stream {} does not keep subject {} (its subjects: {}); name \
             the stream that does with ?stream=NAME",
            spec.stream,
            spec.subject,
            c.subjects.join(", ")
        ));
    }
    warn_of_losses(&spec.stream, c, retry_for);
    let limits = limits(c);
    let max_message = usize::try_from(c.max_message_size).ok().filter(|&m| m > 0);
    let desc = format!(
        "{server} subject {} -> stream {} ({}: retention {:?}, storage {:?}, duplicate window \
         {:?}, limits: {}, discard {:?}, {} messages in it)",
        spec.subject,
        spec.stream,
        if created {
            "created"
        } else {
            "existing, used as is"
        },
        c.retention,
        c.storage,
        c.duplicate_window,
        if limits.is_empty() {
            "none".to_string()
        } else {
            limits.join(", ")
        },
        c.discard,
        info.state.messages
    );
    Ok((desc, max_message))
}

/// The stream `spec` names, and whether this call created it (work-queue retention, file
/// storage, a two-minute duplicate window); one another publisher created at the same moment
/// is used.
fn find_or_create(
    js: &async_nats::jetstream::Context,
    spec: &Spec,
) -> anyhow::Result<(async_nats::jetstream::stream::Stream, bool)> {
    let rt = nats::runtime();
    if let Ok(s) = rt.block_on(js.get_stream(&spec.stream)) {
        return Ok((s, false));
    }
    let config = Config {
        name: spec.stream.clone(),
        subjects: vec![spec.subject.clone()],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    match rt.block_on(js.create_stream(config)) {
        Ok(s) => Ok((s, true)),
        Err(create) => rt
            .block_on(js.get_stream(&spec.stream))
            .map(|s| (s, false))
            .map_err(|_| {
                anyhow!(
                    "NATS server {}: cannot create stream {}: {create}",
                    spec.server,
                    spec.stream
                )
            }),
    }
}

/// Warns of the ways stream `name` (configured as `c`) can lose what it acknowledged: limits
/// that drop stored messages, and a duplicate window shorter than a write's retries.
fn warn_of_losses(name: &str, c: &Config, retry_for: Duration) {
    if let Some(drops) = drops_stored(c) {
        tracing::warn!(
            "NATS stream {name} {drops}: records it acknowledged (counted as stored) may leave \
             it before a consumer reads them"
        );
    }
    if outlasts_dedup(retry_for, c.duplicate_window) {
        tracing::warn!(
            "NATS stream {name} drops repeated message ids after {:?} (its duplicate window), \
             less than --retry-for ({} s) plus two publish ack waits ({} s): a record whose ack \
             was lost and whose publish is retried after that can be stored twice; raise the \
             stream's duplicate window or lower --retry-for",
            c.duplicate_window,
            retry_for.as_secs_f64(),
            (nats::TIMEOUT * 2).as_secs()
        );
    }
}

/// Whether a write retried for `retry_for` can publish a record again after the stream's
/// `window` has forgotten its id. As a write's retries go: its failure comes within a
/// publish's ack wait ([`nats::TIMEOUT`]) of the publish whose ack was lost (its acks are
/// collected as they come, a connection's worth at most in flight), the retries start for
/// `retry_for` after that, and the last one's publishes wait at most another ack wait for
/// room (an abandoned ack holds its place that long: `nats::jetstream`). Not covered: a
/// write whose retries end in a refused record, whose halves are retried for `retry_for`
/// again (`GroupCommit`). No retries, no repeats.
fn outlasts_dedup(retry_for: Duration, window: Duration) -> bool {
    !retry_for.is_zero() && retry_for.saturating_add(nats::TIMEOUT * 2) > window
}

/// The stream's limits that are set (JetStream's "unlimited" is -1 for the counts and 0 for
/// the age), as `name value`.
fn limits(c: &Config) -> Vec<String> {
    let mut set = counted_limits(c, true);
    if !c.max_age.is_zero() {
        set.push(format!("max_age {:?}", c.max_age));
    }
    set
}

/// The stream's count limits that are set, as `name value`: every one, or (`all` false) those
/// past which it drops its oldest messages (rather than refuse a publish) under its discard
/// policy: `max_msgs` and `max_bytes` with `discard: old`, `max_msgs_per_subject` unless
/// `discard: new` holds per subject too (`discard_new_per_subject`).
fn counted_limits(c: &Config, all: bool) -> Vec<String> {
    let old = c.discard == DiscardPolicy::Old;
    let per_subject_old = !(c.discard == DiscardPolicy::New && c.discard_new_per_subject);
    [
        ("max_msgs", c.max_messages, old),
        ("max_bytes", c.max_bytes, old),
        (
            "max_msgs_per_subject",
            c.max_messages_per_subject,
            per_subject_old,
        ),
    ]
    .into_iter()
    .filter(|&(_, v, drops)| v > 0 && (all || drops))
    .map(|(name, v, _)| format!("{name} {v}"))
    .collect()
}

/// How the stream removes messages it acknowledged, without a consumer's ack, if it does:
/// with interest retention (a message goes once the consumers it had when it came have it,
/// at once if it had none), past its age limit (whatever its discard policy), or past the
/// count limits at which it drops its oldest messages ([`counted_limits`]). (A full stream
/// that refuses the publish instead makes the run count the record as not stored.)
fn drops_stored(c: &Config) -> Option<String> {
    if c.retention == RetentionPolicy::Interest {
        return Some(
            "keeps a message only for the consumers it has when the message comes (interest \
             retention; with none, it is removed at once)"
                .to_string(),
        );
    }
    if !c.max_age.is_zero() {
        return Some(format!(
            "removes messages older than {:?} (its max_age)",
            c.max_age
        ));
    }
    let dropping = counted_limits(c, false);
    (!dropping.is_empty()).then(|| {
        format!(
            "discards its oldest messages past its limits ({})",
            dropping.join(", ")
        )
    })
}

/// Whether the subject pattern `pattern` (with `*` and `>`) matches `subject`.
fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

impl Writer {
    /// What opens further connections for the same run (consumers publish in parallel), from
    /// any thread and without this writer (which may be busy publishing meanwhile). Each call
    /// opens one, or fails: the server cannot be reached.
    pub fn connector(&self) -> impl Fn() -> anyhow::Result<Self> + Send + Sync + 'static {
        let (spec, run_id, producers) = (self.spec.clone(), self.run_id, self.producers);
        let stats = Arc::clone(&self.stats);
        let max_message = self.max_message;
        move || {
            let client = nats::connect(&spec.server)?;
            Ok(Self {
                js: nats::jetstream(client.clone()),
                client,
                spec: spec.clone(),
                run_id,
                producers,
                stats: Arc::clone(&stats),
                max_message,
            })
        }
    }

    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// Publishes `records`; on failure, the error says how many of them, from the first,
    /// JetStream acknowledged (those are stored, and counted as published).
    async fn publish_all(&self, records: &[&Record]) -> Result<(), SinkError> {
        let mut acked = Vec::with_capacity(records.len());
        let result = self.publish_acked(records, &mut acked).await;
        let duplicates = acked.iter().filter(|a| a.duplicate).count() as u64;
        NatsStats::add(&self.stats.published, acked.len() as u64);
        NatsStats::add(&self.stats.publish_duplicates, duplicates);
        result.map_err(|e| e.after_storing(acked.len()))
    }

    /// Publishes `records`, up to [`IN_FLIGHT`] awaiting their acks, and collects the acks in
    /// order into `acked` until the first failure.
    async fn publish_acked(
        &self,
        records: &[&Record],
        acked: &mut Vec<async_nats::jetstream::publish::PublishAck>,
    ) -> Result<(), SinkError> {
        let mut waiting: VecDeque<PublishAckFuture> = VecDeque::with_capacity(IN_FLIGHT);
        for r in records {
            let headers =
                nats::record_headers(self.run_id, self.producers, r.producer, r.seq, r.created_at);
            let payload = bytes::Bytes::copy_from_slice(r.text.as_bytes());
            let size = wire_len(&headers) + payload.len();
            if let Some(most) = self.max_message.filter(|&most| size > most) {
                // Settled up to it, and nothing after it sent: the write's first records
                // stored, this one refused for its size however often it is sent.
                while let Some(f) = waiting.pop_front() {
                    acked.push(self.settle(f, &mut waiting).await?);
                }
                return Err(self.failed(
                    ErrorKind::Record,
                    format_args!(
                        "{size} bytes with its headers, over stream {}'s max_msg_size of {most}",
                        self.spec.stream
                    ),
                ));
            }
            let sent = self
                .js
                .publish_with_headers(self.spec.subject.clone(), headers, payload)
                .await
                .map_err(|e| self.error(e.kind(), &e, true))?;
            waiting.push_back(sent);
            if waiting.len() >= IN_FLIGHT
                && let Some(f) = waiting.pop_front()
            {
                acked.push(self.settle(f, &mut waiting).await?);
            }
        }
        while let Some(f) = waiting.pop_front() {
            acked.push(self.settle(f, &mut waiting).await?);
        }
        Ok(())
    }

    /// The ack of publish `f`, or the write's error: a record error if JetStream refused `f`
    /// for its size with nothing sent after it. When JetStream refused `f` otherwise, the
    /// publishes sent after it (`waiting`) are awaited in turn while JetStream refuses them: the
    /// error is unconfirmed (JetStream may hold some of them) unless it refused every one. The
    /// first that is not a refusal (an ack, a timeout, a lost connection) ends the wait, so a
    /// failure costs at most one more ack wait; after any other failure none is awaited.
    async fn settle(
        &self,
        f: PublishAckFuture,
        waiting: &mut VecDeque<PublishAckFuture>,
    ) -> Result<async_nats::jetstream::publish::PublishAck, SinkError> {
        let e = match f.await {
            Ok(ack) => return Ok(ack),
            Err(e) => e,
        };
        // Refused for its size (the stream's limit raised since the run began, say, past the
        // check before each publish) with nothing after it in flight: a record error, exact.
        // With publishes after it in flight, JetStream may hold some of them: the write fails
        // as below, unconfirmed.
        if too_big_for_the_stream(&e) && waiting.is_empty() {
            return Err(self.failed(ErrorKind::Record, &e));
        }
        let mut may_be_stored = !refused(&e);
        while !may_be_stored && let Some(later) = waiting.pop_front() {
            may_be_stored = !matches!(later.await, Err(e) if refused(&e));
        }
        Err(self.error(e.kind(), &e, may_be_stored))
    }

    /// The write's error; `may_be_stored`: publishes were sent that JetStream may hold.
    fn error(
        &self,
        kind: PublishErrorKind,
        e: &dyn std::fmt::Display,
        may_be_stored: bool,
    ) -> SinkError {
        let kind = match kind {
            PublishErrorKind::MaxPayloadExceeded => ErrorKind::Record,
            PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence => {
                ErrorKind::Fatal
            }
            _ => ErrorKind::Retryable,
        };
        let error = self.failed(kind, e);
        // A retryable failure after some of the write's publishes were sent (an ack that never
        // came, a connection lost with publishes in flight): JetStream may hold them.
        if kind == ErrorKind::Retryable && may_be_stored {
            error.unconfirmed()
        } else {
            error
        }
    }

    /// A write's error of `kind`, saying where it published and why it failed.
    fn failed(&self, kind: ErrorKind, why: impl std::fmt::Display) -> SinkError {
        SinkError::new(
            kind,
            anyhow!(
                "publishing to {} on NATS server {}: {why}",
                self.spec.subject,
                self.spec.server
            ),
        )
    }
}

/// Whether JetStream answered the publish with a refusal (no stream for the subject, or an
/// error such as a full stream that discards new messages): it did not store it. (A clustered
/// stream's leader answers so when its own store failed; a follower may have stored it then,
/// which a replay would store twice.) A timeout, a broken connection or an unreadable answer
/// says nothing of its fate.
fn refused(e: &async_nats::jetstream::context::PublishError) -> bool {
    e.kind() == PublishErrorKind::StreamNotFound
        || std::error::Error::source(e).is_some_and(|s| s.is::<async_nats::jetstream::Error>())
}

/// The size of `headers` on the wire (as the client writes them, and as the server counts
/// them against a stream's `max_msg_size`): `NATS/1.0\r\n`, each `name: value\r\n`, `\r\n`.
fn wire_len(headers: &async_nats::HeaderMap) -> usize {
    let fields: usize = headers
        .iter()
        .map(|(name, values)| {
            values
                .iter()
                .map(|v| AsRef::<str>::as_ref(name).len() + 2 + v.as_str().len() + 2)
                .sum::<usize>()
        })
        .sum();
    "NATS/1.0\r\n".len() + fields + 2
}

/// Whether JetStream refused the publish for its size alone (over the stream's
/// `max_msg_size`, or its headers over the server's limit): the same record is refused again
/// however often it is sent.
fn too_big_for_the_stream(e: &async_nats::jetstream::context::PublishError) -> bool {
    use async_nats::jetstream::ErrorCode;
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|j| {
            matches!(
                j.error_code(),
                ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM
                    | ErrorCode::STREAM_HEADER_EXCEEDS_MAXIMUM
            )
        })
}

impl Sink for Writer {
    fn write(&mut self, records: &[&Record]) -> Result<(), SinkError> {
        nats::runtime().block_on(self.publish_all(records))
    }

    fn register(&mut self, file: Option<&FileKey>) -> Result<Resume, SinkError> {
        match file {
            // Published with the run's identity as producer 0 of no producers: the consuming
            // side keys them by stream sequence.
            None => Ok(Resume::default()),
            Some(_) => Err(SinkError::fatal(anyhow!(
                "a file input cannot be published to NATS"
            ))),
        }
    }

    fn commit_position(&mut self, _to: Resume) -> anyhow::Result<()> {
        Ok(())
    }

    /// The records JetStream acknowledged in this run (all connections).
    fn count_stored(&mut self) -> anyhow::Result<u64> {
        Ok(NatsStats::get(&self.stats.published))
    }

    /// A failure is not retried: it is fatal.
    fn finish_run(&mut self, end: &RunEnd<'_>) -> Result<(), SinkError> {
        let end = OriginEnd {
            finished_at: end.finished_at,
            completed: end.completed,
            per_producer: end.per_producer.to_vec(),
            produced: end.produced,
            stored: end.stored,
            dead_lettered: end.dead_lettered,
            not_stored: end.not_stored,
            elapsed_s: end.elapsed_s,
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(RUN_END, self.run_id.to_string().as_str());
        headers.insert(nats::MSG_ID, format!("pc-{}-end", self.run_id).as_str());
        let payload = serde_json::to_vec(&end).map_err(|e| SinkError::fatal(e.into()))?;
        let rt = nats::runtime();
        rt.block_on(async {
            self.js
                .publish_with_headers(self.spec.subject.clone(), headers, payload.into())
                .await?
                .await?;
            self.client.flush().await?;
            Ok::<_, async_nats::Error>(())
        })
        .map_err(|e| {
            SinkError::fatal(anyhow!(
                "NATS: publishing the run's end to {}: {e}",
                self.spec.subject
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy};

    use super::{drops_stored, outlasts_dedup, subject_matches, wire_len};

    /// A retried publish must land inside the window that drops a repeated id: retries for
    /// 60 s between two ack waits of 5 s fit JetStream's default 2 minutes, not 1 minute;
    /// none at all always fit.
    #[test]
    fn retries_that_can_outlast_the_duplicate_window_are_found() {
        let s = Duration::from_secs;
        assert!(!outlasts_dedup(s(60), s(120)));
        assert!(!outlasts_dedup(s(110), s(120)));
        assert!(outlasts_dedup(s(111), s(120)));
        assert!(outlasts_dedup(s(60), s(60)));
        assert!(!outlasts_dedup(Duration::ZERO, s(1)));
    }

    /// Every way a stream removes messages it acknowledged is warned of, and a stream that
    /// refuses publishes past its limits instead is not.
    #[test]
    fn the_warning_names_every_way_a_stream_drops_what_it_acknowledged() {
        let unlimited = Config {
            max_messages: -1,
            max_bytes: -1,
            max_messages_per_subject: -1,
            discard: DiscardPolicy::Old,
            retention: RetentionPolicy::WorkQueue,
            ..Default::default()
        };
        let refuses = |c: Config| Config {
            discard: DiscardPolicy::New,
            ..c
        };
        let cases = [
            (unlimited.clone(), None),
            (
                Config {
                    max_messages: 10,
                    ..unlimited.clone()
                },
                Some("discards its oldest messages past its limits (max_msgs 10)"),
            ),
            (
                refuses(Config {
                    max_messages: 10,
                    max_bytes: 1000,
                    ..unlimited.clone()
                }),
                None,
            ),
            (
                refuses(Config {
                    max_messages_per_subject: 5,
                    ..unlimited.clone()
                }),
                Some("discards its oldest messages past its limits (max_msgs_per_subject 5)"),
            ),
            (
                refuses(Config {
                    max_messages_per_subject: 5,
                    discard_new_per_subject: true,
                    ..unlimited.clone()
                }),
                None,
            ),
            (
                refuses(Config {
                    max_age: Duration::from_secs(60),
                    ..unlimited.clone()
                }),
                Some("removes messages older than 60s (its max_age)"),
            ),
            (
                Config {
                    retention: RetentionPolicy::Interest,
                    ..unlimited.clone()
                },
                Some(
                    "keeps a message only for the consumers it has when the message comes \
                     (interest retention; with none, it is removed at once)",
                ),
            ),
        ];
        for (config, want) in cases {
            assert_eq!(drops_stored(&config).as_deref(), want, "{config:?}");
        }
    }

    #[test]
    fn a_records_size_counts_its_headers_as_the_wire_carries_them() {
        let mut headers = async_nats::HeaderMap::new();
        assert_eq!(wire_len(&headers), "NATS/1.0\r\n\r\n".len());
        headers.insert("A", "1");
        headers.insert("Bb", "22");
        assert_eq!(
            wire_len(&headers),
            "NATS/1.0\r\nA: 1\r\nBb: 22\r\n\r\n".len()
        );
        headers.append("A", "333");
        assert_eq!(
            wire_len(&headers),
            "NATS/1.0\r\nA: 1\r\nA: 333\r\nBb: 22\r\n\r\n".len()
        );
    }

    #[test]
    fn stream_subjects_match_like_nats() {
        assert!(subject_matches("pc.records", "pc.records"));
        assert!(subject_matches("pc.*", "pc.records"));
        assert!(subject_matches("pc.>", "pc.a.b"));
        assert!(subject_matches(">", "x"));
        assert!(!subject_matches("pc.*", "pc.a.b"));
        assert!(!subject_matches("pc", "pc.records"));
        assert!(!subject_matches("pc.records", "pc"));
    }
}
