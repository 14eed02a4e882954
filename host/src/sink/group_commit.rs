//! Group commit: many consumers, one sink writer, commits in ring order, and what happens to
//! records when the sink fails.
//!
//! Consumers fill batches from the ring one at a time (the hand-over turn) and queue them on a
//! pending list in the order they were popped; then each consumer takes the writer and commits
//! everything pending (its own batch and any that arrived meanwhile) in transactions of at most
//! `batch_size` rows, until nothing is pending. So:
//! - transactions commit records in ring order, so each input's rows are committed in its line
//!   order and a committed position never passes an uncommitted line (exactly-once resume);
//! - there is one write transaction at a time, and the number of commits per second adapts to
//!   the load instead of growing with the number of consumers;
//! - popping (outside the writer) overlaps with the previous commit.
//!
//! A sink that takes parallel writes (a server database) may have one writer per consumer when
//! no input needs ring order (no file inputs): a consumer then takes any free writer, and
//! transactions commit side by side in any order.
//!
//! When a write fails (see [`ErrorKind`]):
//! - retryable: the same records are written again after a backoff, for up to `--retry-for`.
//!   The writer is held meanwhile, so the other consumers stop after one batch each, the ring
//!   fills and the sources wait: backpressure, nothing dropped. A failed database write
//!   stored nothing, so records that finally commit are committed once; a broker's write may
//!   have stored its first records ([`SinkError::stored`]): they count as committed and only
//!   the rest are written again.
//!   Recording a publishing run (a NATS source's new publisher, or its end) is retried the
//!   same way, taking the first writer for each try.
//! - one record refused: the write is split in halves until that record is alone; it goes to
//!   the dead-letter file and the rest commit. Without a dead-letter file the sink fails.
//! - fatal, or retries exhausted: the sink has failed. Nothing more is committed by this
//!   process (a later commit would move a file's position past the records not stored); the
//!   consumers drain the ring, and each record goes to the dead-letter file if it has one and
//!   no file position (generated, stdin), or is counted as not stored. A file input's records
//!   are not dead-lettered: its committed position is before them, so the next run on the
//!   same database reads them again. Nor are a NATS source's: they are handed back to
//!   JetStream, which delivers them again.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use pc_core::Clock;

use super::retry::{Health, backoff};
use super::{ErrorKind, Sink, SinkError};
use crate::dead_letter::{DeadLetters, Reason};
use crate::message::Record;
use crate::position::{FileKey, Origin, OriginEnd, Positions, Resume, StoppedRetrying};

/// What becomes of records when the sink fails.
#[derive(Debug, Default)]
pub struct Policy {
    /// How long a retryable failure is retried (zero: not at all).
    pub retry_for: Duration,
    pub dead_letters: Option<Arc<DeadLetters>>,
    /// Records are generated (their dead-letter entries name producer and seq).
    pub generated: bool,
}

/// One sink shared by the consumers (see the module docs).
#[derive(Debug)]
pub struct GroupCommit<S> {
    /// The writers: the first `open` of these slots are set, in order, and [`Self::add_writer`]
    /// sets the next. The first also keeps positions and the run's row; ordered runs have only
    /// it.
    writers: Box<[OnceLock<Mutex<S>>]>,
    /// How many of `writers` are set.
    open: AtomicUsize,
    /// Held while a writer is added; `true` once the pool takes no more
    /// ([`Self::stop_adding`]).
    adding: Mutex<bool>,
    /// Held while a consumer fills a batch and queues it: pending is in ring order.
    turn: Mutex<()>,
    /// Batches handed over and not yet taken by a committer, oldest first.
    pending: Mutex<VecDeque<Vec<Record>>>,
    /// Emptied batch vectors, kept for reuse (a batch vector can be large).
    spares: Mutex<Vec<Vec<Record>>>,
    batch_size: usize,
    policy: Policy,
    health: Arc<Health>,
    /// The sink failed: no more commits. Set and read with a writer held (with one writer, the
    /// mutex orders them; with several, commits of other writers already under way may still
    /// land, which no input's order depends on); consumers also read it without, to stop the
    /// run (a late read only delays that).
    failed: AtomicBool,
    /// Work posted for a writer ([`Self::post_chore`]), and whether there is any (so a commit
    /// looks at the mutex only when there is).
    chore: Mutex<Option<Chore<S>>>,
    has_chore: AtomicBool,
    /// A refused record was dead-lettered and said so on stderr (once a run).
    refusal_said: AtomicBool,
}

/// Whether a record not stored can be read again without pc-host keeping it: a file input's
/// (the committed position is before it) or a broker's delivery (handed back, delivered again).
fn can_be_read_again(r: &Record) -> bool {
    r.end_offset > 0 || r.delivery.is_some()
}

/// Why records were given up on after their retries: unconfirmed when the sink may hold them.
fn exhausted(error: &SinkError) -> Reason {
    if error.unconfirmed {
        Reason::Unconfirmed
    } else {
        Reason::RetriesExhausted
    }
}

/// Work for a writer, run by the next consumer that commits with one, right after its commit
/// and before it lets the writer go.
pub struct Chore<S>(Box<dyn FnOnce(&mut S) + Send>);

impl<S> Chore<S> {
    pub fn new(work: impl FnOnce(&mut S) + Send + 'static) -> Self {
        Self(Box::new(work))
    }
}

impl<S> std::fmt::Debug for Chore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Chore")
    }
}

/// What became of some records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Committed,
    DeadLettered,
    /// Not stored: `rereadable` when a file input's committed position is before them.
    NotStored {
        rereadable: bool,
    },
}

/// Records settled together, as reported to the consumer that settled them.
#[derive(Debug)]
pub struct Settled<'a> {
    pub records: &'a [&'a Record],
    pub fate: Fate,
    /// Clock ns when the first write of these records started, and when their fate was known.
    pub started: u64,
    pub at: u64,
    /// Committed records the sink already held (broker deliveries), so not written again.
    pub duplicates: u64,
    /// Given up on (dead-lettered or not stored) after a write whose COMMIT may have landed:
    /// the sink may hold them after all, which only the count back at the run's end can tell.
    pub unconfirmed: bool,
}

/// What settling one take produces: its pieces, and the refused records' dead-letter entries
/// not written yet (with the index of their piece).
struct Out<'a> {
    pieces: &'a mut Vec<Piece>,
    refused: &'a mut Vec<(usize, serde_json::Value)>,
}

/// A run of records (indices into one take) and their fate.
#[derive(Debug)]
struct Piece {
    range: Range<usize>,
    fate: Fate,
    started: u64,
    at: u64,
    duplicates: u64,
    unconfirmed: bool,
}

impl Piece {
    /// A run of records committed: started at `started`, settled at `at`; `duplicates` of
    /// them the sink already held.
    fn committed(range: Range<usize>, started: u64, at: u64, duplicates: u64) -> Self {
        Self {
            range,
            fate: Fate::Committed,
            started,
            at,
            duplicates,
            unconfirmed: false,
        }
    }
}

impl<S: Sink> GroupCommit<S> {
    /// # Panics
    /// If `writers` is empty.
    pub fn new(writers: Vec<S>, batch_size: usize, policy: Policy) -> Self {
        assert!(!writers.is_empty(), "a group commit needs a writer");
        Self {
            open: AtomicUsize::new(writers.len()),
            adding: Mutex::new(false),
            writers: writers
                .into_iter()
                .map(|w| OnceLock::from(Mutex::new(w)))
                .collect(),
            turn: Mutex::new(()),
            pending: Mutex::new(VecDeque::new()),
            spares: Mutex::new(Vec::new()),
            batch_size,
            policy,
            health: Arc::default(),
            failed: AtomicBool::new(false),
            chore: Mutex::new(None),
            has_chore: AtomicBool::new(false),
            refusal_said: AtomicBool::new(false),
        }
    }

    /// Has `chore` run by the next consumer that commits, with its writer, right after that
    /// commit (it replaces a chore posted before and not run yet). For work that must go
    /// through a writer but must not wait for one: the report thread's interval rows, when
    /// each time it tries, a consumer holds the writer.
    pub fn post_chore(&self, chore: Chore<S>) {
        *lock(&self.chore) = Some(chore);
        // Release: the chore stored above is seen by whoever sees the flag (Acquire in
        // `run_chore`).
        self.has_chore.store(true, Ordering::Release);
    }

    /// Runs the posted chore, if any, with `writer`.
    fn run_chore(&self, writer: &mut S) {
        // Acquire pairs with the Release in `post_chore`.
        if !self.has_chore.load(Ordering::Acquire) {
            return;
        }
        let chore = {
            let mut slot = lock(&self.chore);
            // Relaxed: cleared under the mutex that holds the chore, which orders it.
            self.has_chore.store(false, Ordering::Relaxed);
            slot.take()
        };
        if let Some(Chore(work)) = chore {
            work(writer);
        }
    }

    /// Room for up to `most` writers in all, so that [`Self::add_writer`] can add more while
    /// the consumers run (`--consumers MIN..MAX` opens one as it starts each consumer past
    /// MIN, instead of MAX at the start).
    #[must_use]
    pub fn room_for(mut self, most: usize) -> Self {
        let mut slots = std::mem::take(&mut self.writers).into_vec();
        slots.resize_with(most.max(slots.len()), OnceLock::new);
        self.writers = slots.into_boxed_slice();
        self
    }

    /// Adds `writer` to the pool, for any consumer to commit with; hands it back when the pool
    /// has no room left or takes no more ([`Self::stop_adding`]).
    ///
    /// # Errors
    /// The writer, not added.
    pub fn add_writer(&self, writer: S) -> Result<(), S> {
        let stopped = lock(&self.adding);
        // Relaxed: adds are serialised by `adding`, so this is the last count stored.
        let n = self.open.load(Ordering::Relaxed);
        let Some(slot) = self.writers.get(n).filter(|_| !*stopped) else {
            return Err(writer);
        };
        slot.set(Mutex::new(writer))
            .map_err(|w| w.into_inner().unwrap_or_else(PoisonError::into_inner))?;
        // Release publishes the slot just set; pairs with the Acquire in `open_writers`. (The
        // OnceLock publishes its value by itself; this store is what makes the slot counted.)
        self.open.store(n + 1, Ordering::Release);
        Ok(())
    }

    /// From now on [`Self::add_writer`] adds nothing: the consumers are done, and a connection
    /// that opens later is closed unused instead of being counted as a writer of the run.
    pub fn stop_adding(&self) {
        *lock(&self.adding) = true;
    }

    /// How many writers the pool has.
    pub fn writers_open(&self) -> usize {
        self.open_writers().len()
    }

    /// The writers set so far.
    fn open_writers(&self) -> &[OnceLock<Mutex<S>>] {
        // Acquire pairs with the Release in `add_writer`: every slot below it is set.
        &self.writers[..self.open.load(Ordering::Acquire)]
    }

    /// An empty batch vector with room for `batch_size` records.
    pub fn spare(&self) -> Vec<Record> {
        lock(&self.spares)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.batch_size))
    }

    /// Runs `fill` (which pops a batch from the ring) in the hand-over turn and queues the
    /// batch it filled: batches are queued in the order they were popped.
    pub fn hand_over<R>(&self, batch: Vec<Record>, fill: impl FnOnce(&mut Vec<Record>) -> R) -> R {
        let mut batch = batch;
        let _turn = lock(&self.turn);
        let result = fill(&mut batch);
        if batch.is_empty() {
            lock(&self.spares).push(batch);
        } else {
            lock(&self.pending).push_back(batch);
        }
        result
    }

    /// Settles everything pending (see the module docs), reporting each run of records and its
    /// fate to `report`, without the writer held. When it returns with one writer, every batch
    /// this thread handed over is settled, by this call or by another consumer's; with several,
    /// another consumer may still be writing it.
    pub fn commit_pending(&self, clock: &Clock, mut report: impl FnMut(&Settled<'_>)) {
        let mut take = Vec::new();
        let mut pieces = Vec::new();
        let mut refused = Vec::new();
        loop {
            let mut writer = self.acquire();
            // Holding the (one) writer: whatever a previous holder took is settled.
            self.take_pending(&mut take);
            if take.is_empty() {
                return;
            }
            let records: Vec<&Record> = take.iter().flatten().collect();
            let mut out = Out {
                pieces: &mut pieces,
                refused: &mut refused,
            };
            self.write_or_give_up(&mut writer, &records, 0..records.len(), clock, &mut out);
            self.flush_refused(&records, clock, &mut out);
            self.run_chore(&mut writer);
            drop(writer);
            for p in pieces.drain(..) {
                report(&Settled {
                    records: &records[p.range],
                    fate: p.fate,
                    started: p.started,
                    at: p.at,
                    duplicates: p.duplicates,
                    unconfirmed: p.unconfirmed,
                });
            }
            drop(records);
            // Drop the records before taking the pool's lock: freeing them takes a while.
            take.iter_mut().for_each(Vec::clear);
            lock(&self.spares).append(&mut take);
        }
    }

    /// Writes `all[range]` in one transaction, retrying, splitting around a refused record,
    /// or giving the records up once the sink has failed.
    fn write_or_give_up(
        &self,
        writer: &mut S,
        all: &[&Record],
        range: Range<usize>,
        clock: &Clock,
        out: &mut Out<'_>,
    ) {
        let started = clock.now();
        // A file input's position must not pass a refused record before its entry is durable.
        if !out.refused.is_empty() && all[range.clone()].iter().any(|r| r.end_offset > 0) {
            self.flush_refused(all, clock, out);
        }
        // Relaxed: with one writer its mutex orders this after any `fail`; with several, a
        // commit that misses a concurrent failure lands, which no input's order depends on.
        if self.failed.load(Ordering::Relaxed) {
            self.give_up_to_the_failure(all, range, false, (started, clock), out.pieces);
            return;
        }
        let (stored, error) = match self.write_retrying(writer, &all[range.clone()]) {
            Ok(()) => {
                let duplicates = writer.duplicates();
                out.pieces
                    .push(Piece::committed(range, started, clock.now(), duplicates));
                return;
            }
            Err(e) => e,
        };
        // What the sink confirmed before it failed is committed; the rest fails below.
        let rest = range.start + stored..range.end;
        if stored > 0 {
            let confirmed = range.start..rest.start;
            out.pieces
                .push(Piece::committed(confirmed, started, clock.now(), 0));
        }
        if !rest.is_empty() {
            self.after_failure(writer, all, rest, &error, (started, clock), out);
        }
    }

    /// What becomes of `all[range]` after writing it failed with `error` (its retries, if it
    /// was retryable, over): given up to a sink another writer failed; for a refused record,
    /// halves written again until the one refused is alone, then set aside in the dead-letter
    /// file if there is one; else given up, and the sink fails.
    fn after_failure(
        &self,
        writer: &mut S,
        all: &[&Record],
        range: Range<usize>,
        error: &SinkError,
        (started, clock): (u64, &Clock),
        out: &mut Out<'_>,
    ) {
        // Relaxed: as the look before the write.
        if error.kind == ErrorKind::Retryable && self.failed.load(Ordering::Relaxed) {
            // Another writer failed the sink while this one retried (`retrying` stops then).
            let at = (started, clock);
            self.give_up_to_the_failure(all, range, error.unconfirmed, at, out.pieces);
            return;
        }
        let (reason, why) = match error.kind {
            ErrorKind::Record if range.len() > 1 => {
                let mid = range.start + range.len() / 2;
                self.write_or_give_up(writer, all, range.start..mid, clock, out);
                self.write_or_give_up(writer, all, mid..range.end, clock, out);
                return;
            }
            ErrorKind::Record if let Some(dead) = &self.policy.dead_letters => {
                // Written with the take's other refused records: one sync, not one each.
                let r = all[range.start];
                let entry = dead.record_entry(
                    r,
                    self.policy.generated,
                    Reason::Refused,
                    &format!("{error}"),
                );
                out.refused.push((out.pieces.len(), entry));
                out.pieces.push(Piece {
                    range,
                    fate: Fate::DeadLettered,
                    started,
                    at: clock.now(),
                    duplicates: 0,
                    unconfirmed: error.unconfirmed,
                });
                if r.restarted && r.end_offset > 0 {
                    self.commit_start_over(writer, r, all, clock, out);
                }
                return;
            }
            // No dead-letter file, so the reason only says whether the sink may hold them.
            ErrorKind::Record => (
                if error.unconfirmed {
                    Reason::Unconfirmed
                } else {
                    Reason::SinkFailed
                },
                format!(
                    "the sink refused a record: {error} (give --dead-letter FILE to set such \
                     records aside and go on)"
                ),
            ),
            ErrorKind::Retryable => (exhausted(error), self.retries_ended(error)),
            ErrorKind::Fatal if error.unconfirmed => (Reason::Unconfirmed, format!("{error}")),
            ErrorKind::Fatal => (Reason::SinkFailed, format!("{error}")),
        };
        self.fail(why.clone());
        self.give_up(all, range, reason, &why, (started, clock), out.pieces);
    }

    /// `r`, refused and set aside, was the first record of its file input after the input
    /// started over (`restarted`): its position is committed on its own once its entry is
    /// durable. The start over goes with it, so the sink keeps the row of the earlier text's
    /// last line (`position::stale_fragment`), which the next commit, holding no record that
    /// says so, would take for a line the file no longer has and remove.
    fn commit_start_over(
        &self,
        writer: &mut S,
        r: &Record,
        all: &[&Record],
        clock: &Clock,
        out: &mut Out<'_>,
    ) {
        self.flush_refused(all, clock, out);
        // Relaxed: as in `write_or_give_up`.
        if self.failed.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = writer.commit_position(r.resume_after()) {
            self.fail(format!(
                "committing an input's position past a refused record failed: {e:#}"
            ));
        }
    }

    /// Writes the refused records' entries held back so far (one write, one sync). If that
    /// fails, they are not stored and the sink has failed.
    fn flush_refused(&self, all: &[&Record], clock: &Clock, out: &mut Out<'_>) {
        let (Some(dead), false) = (&self.policy.dead_letters, out.refused.is_empty()) else {
            return;
        };
        let (slots, entries): (Vec<usize>, Vec<serde_json::Value>) = out.refused.drain(..).unzip();
        let written = dead.write(&entries);
        let at = clock.now();
        match &written {
            Err(e) => self.fail(format!(
                "writing to the dead-letter file {} failed: {e}",
                dead.path().display()
            )),
            // Said once a run, once the entry is in the file; the summary counts them all.
            // Relaxed: only which thread says it.
            Ok(()) if !self.refusal_said.swap(true, Ordering::Relaxed) => tracing::warn!(
                "the sink refused a record ({}): set aside in the dead-letter file {}; the \
                 summary counts any more",
                entries[0]["error"].as_str().unwrap_or("no reason given"),
                dead.path().display()
            ),
            Ok(()) => {}
        }
        for i in slots {
            let piece = &mut out.pieces[i];
            piece.at = at;
            if written.is_err() {
                // Nothing commits after a failure: a file input's position stays before it.
                let rereadable = can_be_read_again(all[piece.range.start]);
                piece.fate = Fate::NotStored { rereadable };
            }
        }
    }

    /// Writes `records`, retrying a retryable failure with backoff for up to `--retry-for`
    /// (each try writes what the sink has not confirmed stored yet). On failure, how many of
    /// them, from the first, the sink confirmed stored, and the error.
    fn write_retrying(
        &self,
        writer: &mut S,
        records: &[&Record],
    ) -> Result<(), (usize, SinkError)> {
        let mut stored = 0;
        let written = self.retrying(|| {
            writer.write(&records[stored..]).inspect_err(|error| {
                stored = (stored + error.stored).min(records.len());
            })
        });
        written.map_err(|error| (stored, error))
    }

    /// Runs `op` until it succeeds, retrying a retryable failure with backoff for up to
    /// `--retry-for`, or until the sink has failed (and saying so, in the log and the health
    /// the metrics show); returns its last error otherwise.
    fn retrying<T>(&self, op: impl FnMut() -> Result<T, SinkError>) -> Result<T, SinkError> {
        self.retrying_until(|| false, op)
    }

    /// [`retrying`](Self::retrying), giving up also once `give_up` says so (looked at after
    /// each failure).
    fn retrying_until<T>(
        &self,
        give_up: impl Fn() -> bool,
        mut op: impl FnMut() -> Result<T, SinkError>,
    ) -> Result<T, SinkError> {
        let mut first_failure: Option<Instant> = None;
        let mut attempt = 0u32;
        // The health says "retrying" while this is held (dropped on every return).
        let mut episode = None;
        loop {
            let error = match op() {
                Ok(done) => {
                    if let Some(since) = first_failure {
                        tracing::info!(
                            "the sink recovered after {attempt} retries ({:.1} s)",
                            since.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(done);
                }
                Err(e) => e,
            };
            self.health.count_error(error.kind);
            if error.kind != ErrorKind::Retryable {
                // The lock (or whatever failed before) is gone: this call is no longer retried.
                return Err(error);
            }
            let since = *first_failure.get_or_insert_with(Instant::now);
            let left = self.policy.retry_for.saturating_sub(since.elapsed());
            // Relaxed: a flag read on its own. Once the sink has failed nothing more is
            // committed (a parallel writer's commit may still land): no use retrying.
            if left.is_zero() || self.failed.load(Ordering::Relaxed) || give_up() {
                return Err(error);
            }
            match &mut episode {
                None => {
                    tracing::warn!(
                        "{error}; retrying for up to {:.1} s (--retry-for)",
                        left.as_secs_f64()
                    );
                    episode = Some(self.health.start_retrying(error.to_string()));
                }
                Some(episode) => {
                    if episode.failed_again(error.to_string()) {
                        tracing::warn!(
                            "{error}; still retrying, for up to {:.1} s more (--retry-for)",
                            left.as_secs_f64()
                        );
                    }
                }
            }
            std::thread::sleep(backoff(attempt, left));
            attempt += 1;
            self.health.retried();
        }
    }

    /// The error of a call that [`retrying`](Self::retrying) gave up on, saying whether it was
    /// retried.
    fn given_up(&self, error: SinkError) -> anyhow::Error {
        match error.kind {
            // Relaxed: a flag read on its own (see `retrying`).
            ErrorKind::Retryable if self.failed.load(Ordering::Relaxed) => {
                anyhow::anyhow!("{error} (not retried further: the sink has failed)")
            }
            ErrorKind::Retryable => anyhow::anyhow!(self.retries_ended(&error)),
            ErrorKind::Record | ErrorKind::Fatal => error.error,
        }
    }

    /// What became of the retries of a retryable `error`, as one line: none (`--retry-for 0`),
    /// or all of `--retry-for` spent.
    fn retries_ended(&self, error: &SinkError) -> String {
        if self.policy.retry_for.is_zero() {
            format!("gave up at once (retries are off: --retry-for 0): {error}")
        } else {
            format!(
                "gave up after retrying for {:.1} s (--retry-for): {error}",
                self.policy.retry_for.as_secs_f64()
            )
        }
    }

    /// The sink has failed for good: commit nothing more. Each distinct reason is said once
    /// and kept for the summary.
    fn fail(&self, why: String) {
        if self.health.fail(why.clone()) {
            tracing::error!("{why}");
        }
        // Relaxed: publishes nothing; readers act on the flag alone (see `write_or_give_up`).
        self.failed.store(true, Ordering::Relaxed);
    }

    /// [`give_up`](Self::give_up) on `all[range]` because the sink has already failed: for
    /// the reasons it failed, as records the sink may hold if the last try of them was
    /// `unconfirmed`.
    fn give_up_to_the_failure(
        &self,
        all: &[&Record],
        range: Range<usize>,
        unconfirmed: bool,
        at: (u64, &Clock),
        out: &mut Vec<Piece>,
    ) {
        let reason = if unconfirmed {
            Reason::Unconfirmed
        } else {
            Reason::SinkFailed
        };
        let why = self.health.failure().unwrap_or_default();
        self.give_up(all, range, reason, &why, at, out);
    }

    /// Dead-letters `all[range]` where that keeps them (see the module docs), or counts them
    /// as not stored, as pieces of the same fate.
    fn give_up(
        &self,
        all: &[&Record],
        range: Range<usize>,
        reason: Reason,
        why: &str,
        (started, clock): (u64, &Clock),
        out: &mut Vec<Piece>,
    ) {
        let mut i = range.start;
        while i < range.end {
            let rereadable = reason != Reason::Refused && can_be_read_again(all[i]);
            let mut j = i + 1;
            while j < range.end
                && (reason != Reason::Refused && can_be_read_again(all[j])) == rereadable
            {
                j += 1;
            }
            let fate = if rereadable {
                Fate::NotStored { rereadable: true }
            } else {
                self.dead_letter(&all[i..j], reason, why)
            };
            out.push(Piece {
                range: i..j,
                fate,
                started,
                at: clock.now(),
                duplicates: 0,
                unconfirmed: reason == Reason::Unconfirmed,
            });
            i = j;
        }
    }

    /// Writes `records` to the dead-letter file, if there is one.
    fn dead_letter(&self, records: &[&Record], reason: Reason, why: &str) -> Fate {
        let Some(dead) = &self.policy.dead_letters else {
            return Fate::NotStored { rereadable: false };
        };
        let entries: Vec<_> = records
            .iter()
            .map(|r| dead.record_entry(r, self.policy.generated, reason, why))
            .collect();
        match dead.write(&entries) {
            Ok(()) => Fate::DeadLettered,
            Err(e) => {
                self.fail(format!(
                    "writing to the dead-letter file {} failed: {e}",
                    dead.path().display()
                ));
                // Nothing commits after a failure: a file input's position stays before them.
                let rereadable = records.iter().all(|r| can_be_read_again(r));
                Fate::NotStored { rereadable }
            }
        }
    }

    /// A free writer, or (all busy) one of them once it is free.
    fn acquire(&self) -> MutexGuard<'_, S> {
        let open = self.open_writers();
        for w in open.iter().filter_map(OnceLock::get) {
            match w.try_lock() {
                Ok(g) => return g,
                Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        let any = &open[fastrand::usize(..open.len())];
        lock(any.get().expect("a counted writer is set"))
    }

    /// Moves pending batches into `take`, oldest first: at least one, and no more than
    /// `batch_size` rows.
    fn take_pending(&self, take: &mut Vec<Vec<Record>>) {
        let mut pending = lock(&self.pending);
        let mut rows = 0;
        while let Some(next) = pending.front() {
            if !take.is_empty() && rows + next.len() > self.batch_size {
                break;
            }
            rows += next.len();
            take.extend(pending.pop_front());
        }
    }

    /// Whether every writer is held now (a commit or a checkpoint under way): a batch handed
    /// over now would wait for it.
    pub fn is_busy(&self) -> bool {
        self.open_writers()
            .iter()
            .filter_map(OnceLock::get)
            .all(|w| matches!(w.try_lock(), Err(std::sync::TryLockError::WouldBlock)))
    }

    /// Whether the sink has failed for good (the run must stop).
    pub fn has_failed(&self) -> bool {
        // Relaxed: a late read only delays the stop.
        self.failed.load(Ordering::Relaxed)
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The first writer (with one writer, holding it keeps commits out).
    pub fn writer(&self) -> &Mutex<S> {
        self.writers[0]
            .get()
            .expect("the first writer is set at construction")
    }

    /// The first writer, once the consumers are done.
    pub fn into_writer(self) -> S {
        let first = self
            .writers
            .into_vec()
            .into_iter()
            .next()
            .and_then(OnceLock::into_inner)
            .expect("the first writer is set at construction");
        first.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: Sink> Positions for GroupCommit<S> {
    /// Retried as a write is (`--retry-for`), until `stop`: a followed file's rotation must not
    /// end the run on a lock a write would have waited out, nor hold up a stop (nothing of the
    /// new file has been read: the next run reads it).
    fn register(&self, file: Option<&FileKey>, stop: &AtomicBool) -> anyhow::Result<Resume> {
        // Relaxed: a flag read on its own; a late read costs one more backoff.
        let stopped = || stop.load(Ordering::Relaxed);
        self.retrying_until(stopped, || lock(self.writer()).register(file))
            .map_err(|e| match e.kind {
                ErrorKind::Retryable if stopped() => {
                    anyhow::Error::new(StoppedRetrying(e.to_string()))
                }
                _ => self.given_up(e),
            })
    }

    /// Retried as a write is (`--retry-for`), taking the first writer for each try.
    fn origin_run(&self, origin: &Origin) -> anyhow::Result<i64> {
        self.retrying(|| lock(self.writer()).origin_run(origin))
            .map_err(|e| self.given_up(e))
    }

    /// Retried as [`origin_run`](Self::origin_run) is.
    fn origin_ended(&self, run_id: i64, end: &OriginEnd) -> anyhow::Result<()> {
        self.retrying(|| lock(self.writer()).origin_ended(run_id, end))
            .map_err(|e| self.given_up(e))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
