//! After the threads: the database's side of the end of a run, and the warnings about
//! rejected records.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pc_core::Clock;

use crate::config::Config;
use crate::position::{InputStart, Resume};
use crate::report::summary::{self, ConsumerCounts, Fates, NatsFigures, WalEnd};
use crate::report::{Ingest, StopReason, Summary, Wal};
use crate::sink::retry::backoff;
use crate::sink::{AnySink, ErrorKind, RunEnd, Sink as _, SinkError};
use crate::telemetry::lanes::LaneFigures;
use crate::telemetry::{Stats, machine};

/// What the threads leave behind for the summary.
#[derive(Debug, Default)]
pub struct Outcome {
    pub reason: Option<StopReason>,
    pub errors: Vec<String>,
    /// Clock ns: the run started; production ended; the sources were joined; the consumers
    /// had drained the ring.
    pub start: u64,
    pub producing_end: u64,
    pub sources_stopped: u64,
    pub drained: u64,
    /// Inputs met while following (rotations).
    pub moved_to: Vec<InputStart>,
    /// Positions to commit once everything is (see `source::lines::Ended::final_positions`).
    pub final_positions: Vec<Resume>,
    /// Writes (and recordings of publishing runs) tried again after a retryable failure.
    pub retries: u64,
    /// The sink connections opened for writing (server sinks: one per consumer thread).
    pub writers: usize,
    /// The machine's counters when production started (Linux).
    pub machine: Option<machine::Snapshot>,
}

impl Outcome {
    /// The outcome of a run whose production starts at clock ns `start`, with the machine's
    /// counters read now.
    pub fn starting_at(start: u64) -> Self {
        Self {
            start,
            machine: machine::snapshot(),
            producing_end: start,
            sources_stopped: start,
            drained: start,
            ..Self::default()
        }
    }
}

/// What the end of a run reads.
#[derive(Debug)]
pub struct Done<'a> {
    pub cfg: &'a Config,
    pub run_id: i64,
    pub stats: &'a Stats,
    pub clock: &'a Clock,
    /// Unix ns at the clock's 0.
    pub unix_base: i64,
    /// SQLite: the largest WAL the checkpointer saw.
    /// The checkpointer's figures (`truncated` is filled in here).
    pub wal: Option<Wal>,
    /// Writes retried, and the run's length (start of production to the last commit).
    pub retries: u64,
    pub elapsed_s: f64,
}

/// Finishes the run in the database and sums it up.
pub fn summary(
    d: Done<'_>,
    writer: &mut AnySink,
    out: Outcome,
    starts: Vec<InputStart>,
) -> Summary {
    let (cfg, stats) = (d.cfg, d.stats);
    warn_rejects(cfg, &starts, stats);
    let (
        Stored {
            stored,
            counted_back,
            end_retries,
        },
        flushed,
        mut errors,
    ) = finish(&d, writer, out.errors, out.final_positions);
    // After the final checkpoint, so its writes count too.
    let machine = out
        .machine
        .zip(machine::snapshot())
        .map(|(start, end)| start.until(&end));
    let fates = Fates {
        produced: stats.produced(),
        stored,
        duplicates: stats.duplicates(),
        dead_lettered: stats.dead_lettered(),
        not_stored: stats.not_stored(),
        unconfirmed: stats.unconfirmed(),
    };
    let reconciled = summary::stored_after_all(fates);
    // Only a count back from a database can find records given up on: a NATS sink's `stored`
    // is what JetStream acknowledged, and without a count back it is what was committed.
    let stored_after_all = reconciled.filter(|_| counted_back && cfg.sink_counts_back());
    let lanes: Vec<_> = cfg
        .lanes
        .iter()
        .map(|l| l.name.clone())
        .zip(stats.lanes())
        .collect();
    accounting_errors(fates, reconciled.is_some(), &lanes, &mut errors);
    let secs = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e9;
    let mut inputs = starts;
    inputs.extend(out.moved_to);
    Summary {
        config: cfg.to_json(),
        run_id: d.run_id,
        db: cfg.sink_name(),
        produced: fates.produced,
        consumed: stats.consumed(),
        stored,
        stored_counted_back: counted_back,
        duplicates: fates.duplicates,
        dead_lettered: fates.dead_lettered,
        not_stored: fates.not_stored,
        rereadable: stats.rereadable(),
        unconfirmed: fates.unconfirmed,
        stored_after_all,
        nats: stats.nats.as_deref().map(NatsFigures::read),
        retries: out.retries + end_retries,
        dead_letter: cfg.dead_letter.as_ref().map(|p| p.display().to_string()),
        stop_reason: out.reason.unwrap_or(StopReason::Error),
        error: (!errors.is_empty()).then(|| errors.join("; ")),
        elapsed_s: secs(out.start, out.drained),
        producing_s: secs(out.start, out.producing_end),
        stopping_s: secs(out.producing_end, out.sources_stopped),
        drain_s: secs(out.sources_stopped, out.drained),
        bytes: stats.bytes(),
        target_rps: cfg.rps,
        latency: stats.latency(),
        built_late: stats.built_late(),
        commit: stats.commit(),
        batches: stats.batches(),
        blocked_s: stats.blocked_ns() as f64 / 1e9,
        consumers: ConsumerCounts {
            min: cfg.consumers,
            max: cfg.consumers_max,
            peak: stats.consumers_peak(),
            writers: out.writers,
        },
        machine,
        wal: d.wal.map(|wal| Wal {
            end: flushed.unwrap_or(WalEnd::Failed),
            ..wal
        }),
        ingest: (!cfg.generated()).then(|| ingest(stats, inputs)),
        lanes,
    }
}

/// An error for each count that does not add up: the run's (unless `reconciled`) and each
/// lane's.
fn accounting_errors(
    fates: Fates,
    reconciled: bool,
    lanes: &[(String, LaneFigures)],
    errors: &mut Vec<String>,
) {
    if !reconciled {
        let Fates {
            produced,
            stored,
            duplicates,
            dead_lettered,
            not_stored,
            unconfirmed,
        } = fates;
        errors.push(format!(
            "accounting: produced {produced} != stored {stored} + duplicates {duplicates} + \
             dead-lettered {dead_lettered} + not stored {not_stored} ({unconfirmed} of the last \
             two given up on unconfirmed)"
        ));
    }
    for (name, lane) in lanes {
        if !lane.adds_up() {
            errors.push(format!(
                "accounting: lane {name} produced {} != stored {} + duplicates {} + \
                 dead-lettered {} + not stored {}",
                lane.produced, lane.stored, lane.duplicates, lane.dead_lettered, lane.not_stored
            ));
        }
    }
}

/// What a run that read its input read, rejected and left unqueued, and its `inputs`.
fn ingest(stats: &Stats, inputs: Vec<InputStart>) -> Ingest {
    Ingest {
        read: stats.read(),
        read_bytes: stats.read_bytes(),
        rejected: stats.rejected(),
        rejected_dead_lettered: stats.rejected_dead_lettered(),
        not_queued: stats.not_queued().0,
        not_queued_dead_lettered: stats.not_queued().1,
        not_queued_rereadable: stats.not_queued_rereadable(),
        unpaced: stats.unpaced(),
        inputs,
        unread_elsewhere: crate::position::unread_elsewhere(),
    }
}

/// The end of a run in the sink: commit the final positions, flush (SQLite: final checkpoint), count
/// back, record the run's end. Returns the stored count, what the flush did (`None`:
/// nothing to flush), and the run's errors, with any from here added.
fn finish(
    d: &Done<'_>,
    writer: &mut AnySink,
    mut errors: Vec<String>,
    final_positions: Vec<Resume>,
) -> (Stored, Option<WalEnd>, Vec<String>) {
    let Done {
        cfg,
        stats,
        clock,
        unix_base,
        ..
    } = *d;
    // A database removed or replaced during the run: its end goes nowhere (the run's rows
    // went with the file pc-host has open), and nothing may be written at its path.
    let there = writer.still_there();
    if let Err(e) = &there {
        errors.push(format!("{e:#}"));
    }
    // Every record is committed only if nothing failed; then the inputs' last positions
    // (rejected lines after the last stored one) can be committed too.
    if errors.is_empty() {
        for to in final_positions {
            if let Err(e) = writer.commit_position(to) {
                errors.push(format!("{e:#}"));
            }
        }
    }
    let flushed = writer.final_flush().map(|r| match r {
        Ok(()) => WalEnd::Truncated,
        // Expected where processes share the file: said, not warned about.
        Err(e) if e.is::<crate::sink::sqlite::checkpoint::LeftToOthers>() => {
            tracing::info!("{e:#}");
            WalEnd::LeftToOthers
        }
        Err(e) => {
            tracing::warn!("{e:#}");
            WalEnd::Failed
        }
    });
    let emptied = flushed.is_none_or(|end| end == WalEnd::Truncated);
    if there.is_err() && !emptied {
        errors.push(format!(
            "the final checkpoint did not empty this run's write-ahead log beside {}: a database \
             there now may read its pages as its own",
            cfg.sink_name()
        ));
    }
    // Without the count back (the database unreachable at the end), what the consumers saw
    // committed: a 0 here made a run that stored everything look like it stored nothing.
    let (stored, counted_back) = match writer.count_stored() {
        Ok(n) => (n, true),
        Err(e) => {
            // The sinks' errors say what failed ("counting the stored messages failed: ...").
            errors.push(format!("{e:#}"));
            (stats.stored(), false)
        }
    };
    // Generated runs record each producer's count for verify; ingest rows carry their input.
    let per_producer: Vec<u64> = if cfg.generated() {
        stats
            .producers
            .iter()
            .map(|p| p.produced.load(Ordering::Relaxed))
            .collect()
    } else {
        Vec::new()
    };
    let latency = stats.latency();
    let end = RunEnd {
        finished_at: unix_base.saturating_add(clock.now() as i64),
        completed: errors.is_empty(),
        per_producer: &per_producer,
        produced: stats.produced(),
        stored,
        duplicates: stats.duplicates(),
        dead_lettered: stats.dead_lettered(),
        not_stored: stats.not_stored(),
        retries: d.retries,
        latency: (!latency.is_empty())
            .then(|| [0.5, 0.99, 0.999, 1.0].map(|q| latency.value_at_quantile(q))),
        elapsed_s: d.elapsed_s,
    };
    let mut end_retries = 0;
    if there.is_err() {
        // The final checkpoint above emptied the WAL this run wrote (through the file it has
        // open), or it holds a moved database's newest rows; a record of the end would put
        // frames of the old database in it again.
        if let Some(kept) = writer.forget_removed(emptied) {
            errors.push(kept);
        }
    } else {
        // Retried only in a run that went well so far: after a failure (the sink's, or the
        // count back's) the writes have waited out `--retry-for` already.
        let retry_for = if errors.is_empty() {
            cfg.retry_for
        } else {
            Duration::ZERO
        };
        if let Err(e) = record_end(writer, &end, retry_for, &mut end_retries) {
            // The sinks' errors say what failed ("recording the end of the run failed: ...").
            errors.push(e.to_string());
        }
    }
    (
        Stored {
            stored,
            counted_back,
            end_retries,
        },
        flushed,
        errors,
    )
}

/// Records the run's end, trying again after a failure that may pass (another client's lock,
/// a lost connection) with the writes' backoff, for up to `retry_for` (`--retry-for`), as a
/// write would be: the records are all settled by now, and a lock held for a moment on
/// `runs` would otherwise fail a run that stored everything.
///
/// Counts its retries in `retries`.
///
/// # Errors
/// The sink's last error.
fn record_end(
    writer: &mut AnySink,
    end: &RunEnd<'_>,
    retry_for: Duration,
    retries: &mut u64,
) -> Result<(), SinkError> {
    let since = Instant::now();
    let mut attempt = 0;
    loop {
        let e = match writer.finish_run(end) {
            Ok(()) => {
                if attempt > 0 {
                    tracing::info!(
                        "recorded the end of the run after {attempt} retries ({:.1} s)",
                        since.elapsed().as_secs_f64()
                    );
                }
                return Ok(());
            }
            Err(e) => e,
        };
        let left = retry_for.saturating_sub(since.elapsed());
        if e.kind != ErrorKind::Retryable || left.is_zero() {
            return Err(e);
        }
        if attempt == 0 {
            tracing::warn!(
                "{e}; retrying for up to {:.1} s (--retry-for)",
                left.as_secs_f64()
            );
        }
        std::thread::sleep(backoff(attempt, left));
        attempt += 1;
        *retries += 1;
    }
}

/// The run's stored count, whether it was counted back from the sink, and how many times
/// recording its end was tried again.
struct Stored {
    stored: u64,
    counted_back: bool,
    end_retries: u64,
}

/// One warning line per input that had records rejected, with the first few positions.
fn warn_rejects(cfg: &Config, starts: &[InputStart], stats: &Stats) {
    if cfg.generated() {
        return;
    }
    for (start, p) in starts.iter().zip(&stats.producers) {
        let n = p.rejected.load(Ordering::Relaxed);
        if n == 0 {
            continue;
        }
        let samples = p
            .reject_samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let more = if n as usize > samples.len() {
            ", ..."
        } else {
            ""
        };
        tracing::warn!(
            "{}: {n} {} rejected (not stored): {}{more}",
            start.name,
            if n == 1 { "record" } else { "records" },
            samples.join(", ")
        );
    }
}
