//! Starts the producers, consumers and checkpointer, pins them, watches the clock, signals and
//! failures, and shuts down in order:
//! stop producers -> close the ring -> consumers drain and commit -> final checkpoint -> count
//! back from the database -> record the run -> summary.
//!
//! Everything that can fail on bad input (the database, the ring, the bucket) is done in
//! [`prepare`], before any thread starts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use pc_core::{Clock, HeapRing, TokenBucket};

use crate::checkpoint::{self, Checkpointer, StopSignal};
use crate::config::{Config, Stop};
use crate::consumer::Consumer;
use crate::pinning::{self, PinPlan};
use crate::producer::{self, Msg, Producer};
use crate::report::{self, Progress, Stats};
use crate::schema::{self, RunRow};
use crate::sink::{SharedWriter, Writer};
use crate::summary::{StopReason, Summary};

/// What the main thread waits for.
#[derive(Debug)]
pub enum Event {
    /// The first SIGINT or SIGTERM.
    Signal(&'static str),
    /// A producer thread ended (quota met, stopped, or failed).
    ProducerDone,
    /// A consumer failed (its error is in its join result).
    ConsumerFailed,
}

/// Everything a run needs, made before any thread starts.
#[derive(Debug)]
pub struct Prepared {
    run: RunRow,
    writer: Writer,
    checkpointer: Checkpointer,
    ring: HeapRing<Msg>,
    /// Unlimited rate: `None`.
    bucket: Option<TokenBucket>,
    burst: u64,
    chunk: u64,
    clock: Clock,
    /// Unix ns at the clock's 0.
    unix_base: i64,
    pins: PinPlan,
}

/// Opens and checks the database, records the run, allocates the ring and makes the bucket.
pub fn prepare(cfg: &Config) -> anyhow::Result<Prepared> {
    let clock = Clock::new();
    let unix_base = unix_now_ns().saturating_sub(clock.now() as i64);
    let chunk = producer::chunk(cfg.rps, cfg.producers, cfg.capacity);
    // The bucket holds 100 ms of tokens: a stall shorter than that is caught up afterwards,
    // with the messages keeping their scheduled times (so the stall shows in the latency).
    let burst = (cfg.rps / 10).max(chunk);
    let bucket = match cfg.rps {
        0 => None,
        rps => {
            Some(TokenBucket::try_per_second(rps, burst).map_err(|e| anyhow!("--rps {rps}: {e}"))?)
        }
    };
    let ring = HeapRing::try_with_capacity(cfg.capacity)
        .map_err(|e| anyhow!("--capacity {}: {e}", cfg.capacity))?;
    let config_json = cfg.to_json().to_string();
    let started_at = unix_base.saturating_add(clock.now() as i64);
    let (conn, run) = schema::prepare_run(
        &cfg.db,
        cfg.busy_timeout,
        cfg.producers,
        &config_json,
        started_at,
    )?;
    let writer = Writer::new(conn, run.run_id, cfg.synchronous, &cfg.db, cfg.busy_timeout)?;
    let checkpointer = Checkpointer::open(&cfg.db, cfg.busy_timeout)?;
    let pins = pinning::plan(cfg);
    Ok(Prepared {
        run,
        writer,
        checkpointer,
        ring,
        bucket,
        burst,
        chunk,
        clock,
        unix_base,
        pins,
    })
}

fn unix_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Runs the pipeline to the end and returns its summary. Never fails: errors during the run
/// are reported in the summary (and make it not OK).
pub fn run(cfg: &Config, prepared: Prepared, tx: &Sender<Event>, rx: &Receiver<Event>) -> Summary {
    let Prepared {
        run,
        writer,
        mut checkpointer,
        ring,
        bucket,
        chunk,
        clock,
        unix_base,
        pins,
        ..
    } = prepared;
    let stats = Stats::new(cfg.producers, cfg.consumers);
    let sink = SharedWriter::new(writer, cfg.batch_size);
    let stop = AtomicBool::new(false);
    let checkpoint_stop = StopSignal::default();
    let padding = ".".repeat(cfg.payload_size);
    let pin_failed = AtomicBool::new(false);
    let mut errors: Vec<String> = Vec::new();
    let quotas = quotas(cfg);

    let start = clock.now();
    let bucket = bucket.map(|b| b.starting_empty_at(start));
    let warmup_end_ns = start.saturating_add(cfg.warmup.as_nanos() as u64);
    let deadline = deadline(cfg, start);
    let mut reason = StopReason::Error;
    let mut producing_end = start;
    let mut producers_stopped = start;

    std::thread::scope(|s| {
        let checkpoints = spawn(s, "checkpoint".into(), &mut errors, || {
            checkpointer.run(sink.writer(), &checkpoint_stop);
        });
        let mut consumers = Vec::new();
        for (i, core) in pins.consumers.iter().enumerate() {
            let (stats, ring, sink, clock, pin_failed) =
                (&stats.consumers[i].0, &ring, &sink, &clock, &pin_failed);
            let tx = tx.clone();
            let body = move || {
                pinning::pin(*core, pin_failed);
                let consumer = Consumer {
                    ring,
                    sink,
                    clock,
                    batch_size: cfg.batch_size,
                    batch_wait: cfg.batch_wait,
                    warmup_end_ns,
                    stats,
                };
                // A failed (or panicking) consumer closes the ring: producers stop at once
                // instead of waiting on a ring nobody may drain, and the other consumers
                // commit what is left.
                let mut failed = OnDrop(Some(|| {
                    ring.close();
                    let _ = tx.send(Event::ConsumerFailed);
                }));
                let result = consumer.run();
                if result.is_ok() {
                    failed.0 = None;
                }
                result
            };
            consumers.extend(spawn(s, format!("consumer-{i}"), &mut errors, body));
        }
        let mut producers = Vec::new();
        for (i, core) in pins.producers.iter().enumerate() {
            let producer = Producer {
                id: i as u32,
                ring: &ring,
                bucket: bucket.as_ref(),
                clock: &clock,
                unix_base,
                stop: &stop,
                deadline,
                quota: quotas.as_ref().map(|q| q[i]),
                chunk,
                padding: &padding,
                stats: &stats.producers[i].0,
            };
            let (tx, pin_failed) = (tx.clone(), &pin_failed);
            let body = move || {
                let _done = OnDrop(Some(move || drop(tx.send(Event::ProducerDone))));
                pinning::pin(*core, pin_failed);
                producer.run();
            };
            producers.extend(spawn(s, format!("producer-{i}"), &mut errors, body));
        }

        reason = if errors.is_empty() {
            watch(cfg, &clock, start, rx, producers.len(), &stats, &ring)
        } else {
            StopReason::Error
        };
        // Producers take no token due after the deadline, so that is when production ended.
        producing_end = match (reason, deadline) {
            (StopReason::Duration, Some(d)) => d,
            _ => clock.now(),
        };
        stop.store(true, Ordering::Relaxed);
        if reason == StopReason::Error {
            ring.close(); // unblock producers at once: the run is failing
        }
        for handle in producers {
            if handle.join().is_err() {
                errors.push("a producer thread panicked".into());
            }
        }
        producers_stopped = clock.now();
        ring.close();
        for handle in consumers {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(format!("{e:#}")),
                Err(_) => errors.push("a consumer thread panicked".into()),
            }
        }
        checkpoint_stop.stop();
        if let Some(handle) = checkpoints
            && handle.join().is_err()
        {
            errors.push("the checkpoint thread panicked".into());
        }
    });
    let drained = clock.now();
    if !ring.is_empty() {
        errors.push(format!(
            "{} messages were left in the ring when the consumers ended",
            ring.len()
        ));
    }
    drop(ring);

    let writer = sink.into_writer();
    if let Err(e) = checkpoint::final_checkpoint(writer.conn(), &cfg.db) {
        tracing::warn!("{e:#}");
    }
    let stored = match schema::count_stored(writer.conn(), &run) {
        Ok(n) => n,
        Err(e) => {
            let e = schema::db_error(&cfg.db, e, cfg.busy_timeout);
            errors.push(format!("counting the stored messages failed: {e}"));
            0
        }
    };
    let per_producer: Vec<u64> = stats
        .producers
        .iter()
        .map(|p| p.produced.load(Ordering::Relaxed))
        .collect();
    let finished_at = unix_base.saturating_add(clock.now() as i64);
    if let Err(e) = schema::finish_run(
        writer.conn(),
        run.run_id,
        finished_at,
        errors.is_empty(),
        &per_producer,
        writer.last_id(),
    ) {
        errors.push(format!(
            "recording the end of run {} failed: {e}",
            run.run_id
        ));
    }
    let secs = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e9;
    Summary {
        config: cfg.to_json(),
        run_id: run.run_id,
        db: cfg.db.display().to_string(),
        produced: stats.produced(),
        consumed: stats.consumed(),
        stored,
        stop_reason: reason,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
        elapsed_s: secs(start, drained),
        producing_s: secs(start, producing_end),
        drain_s: secs(producers_stopped, drained),
        bytes: stats.bytes(),
        target_rps: cfg.rps,
        latency: stats.latency(),
        commit: stats.commit(),
        batches: stats.batches(),
        blocked_s: stats.blocked_ns() as f64 / 1e9,
        wal_max_bytes: checkpointer.wal_max_bytes,
    }
}

/// The main thread's wait: until the duration passes, every producer is done, a signal, or a
/// consumer fails; printing a progress line every interval.
fn watch(
    cfg: &Config,
    clock: &Clock,
    start: u64,
    rx: &Receiver<Event>,
    producers: usize,
    stats: &Stats,
    ring: &HeapRing<Msg>,
) -> StopReason {
    let deadline = deadline(cfg, start);
    let interval = cfg.report_interval.map(|d| d.as_nanos() as u64);
    let mut next_tick = interval.map(|i| start + i);
    let mut progress = Progress::default();
    let mut done = 0;
    loop {
        let now = clock.now();
        if deadline.is_some_and(|d| now >= d) {
            return StopReason::Duration;
        }
        if let (Some(tick), Some(i)) = (next_tick, interval)
            && now >= tick
        {
            let t = (now - start) as f64 / 1e9;
            eprintln!("{}", progress.line(t, stats, ring.len(), ring.capacity()));
            next_tick = Some(tick + i * ((now - tick) / i + 1));
        }
        let wake = [deadline, next_tick]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + 3_600_000_000_000);
        match rx.recv_timeout(Duration::from_nanos(wake.saturating_sub(now))) {
            Ok(Event::Signal(name)) => {
                eprintln!(
                    "pc-host: {name}: stopping the producers and draining the ring (send it \
                     again to exit at once)"
                );
                return StopReason::Signal;
            }
            Ok(Event::ProducerDone) => {
                done += 1;
                if done == producers {
                    return match cfg.stop {
                        Stop::Messages(_) => StopReason::Messages,
                        Stop::After(_) => StopReason::Error,
                    };
                }
            }
            Ok(Event::ConsumerFailed) | Err(RecvTimeoutError::Disconnected) => {
                return StopReason::Error;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// The end of `--duration`, in clock ns.
fn deadline(cfg: &Config, start: u64) -> Option<u64> {
    match cfg.stop {
        Stop::After(d) => Some(start.saturating_add(d.as_nanos() as u64)),
        Stop::Messages(_) => None,
    }
}

/// Each producer's share of `--messages` (the first ones take the remainder).
fn quotas(cfg: &Config) -> Option<Vec<u64>> {
    let Stop::Messages(total) = cfg.stop else {
        return None;
    };
    let p = cfg.producers as u64;
    Some(
        (0..p)
            .map(|i| total / p + u64::from(i < total % p))
            .collect(),
    )
}

/// Runs its closure when dropped (also when the thread unwinds), unless disarmed (`None`).
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// Spawns a named scoped thread; a failure to spawn is recorded as a run error.
fn spawn<'scope, T: Send + 'scope>(
    s: &'scope Scope<'scope, '_>,
    name: String,
    errors: &mut Vec<String>,
    body: impl FnOnce() -> T + Send + 'scope,
) -> Option<ScopedJoinHandle<'scope, T>> {
    match std::thread::Builder::new()
        .name(name.clone())
        .spawn_scoped(s, body)
    {
        Ok(handle) => Some(handle),
        Err(e) => {
            errors.push(format!("could not start thread {name}: {e}"));
            None
        }
    }
}

/// The header (stderr): the effective configuration.
pub fn header(cfg: &Config, prepared: &Prepared) -> String {
    report::header(
        cfg,
        prepared.run.run_id,
        prepared.burst,
        &prepared.pins.desc,
    )
}
