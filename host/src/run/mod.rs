//! Wiring: the only module that knows every stage. [`prepare`] opens the inputs, the database
//! and the ring before any thread starts; [`run`] spawns consumers, the checkpointer and the
//! sources, watches, and shuts down in order: stop sources -> close the ring -> consumers drain
//! and commit -> final checkpoint -> count back from the database -> summary.

pub mod pinning;
pub mod signals;
mod threads;
mod watch;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use pc_core::{Clock, HeapRing, TokenBucket};

use crate::config::{Config, SourceSpec, Stop};
use crate::consumer::Consumer;
use crate::flow::{ByteGate, IN_FLIGHT_BYTES};
use crate::message::Record;
use crate::position::InputStart;
use crate::report::{self, Ingest, StopReason, Summary};
use crate::sink::sqlite::checkpoint::{self, Checkpointer, StopSignal};
use crate::sink::sqlite::runs::{self, RunRow};
use crate::sink::sqlite::{Writer, schema};
use crate::sink::{GroupCommit, Sink as _};
use crate::source::generate::Generator;
use crate::source::input::{OpenFile, open_file};
use crate::source::lines::{Input, LineSource, file_input, stdin_input};
use crate::source::{Context, rate};
use crate::telemetry::Stats;
use pinning::PinPlan;
use threads::{OnDrop, spawn};

/// What the main thread hears about.
#[derive(Debug)]
pub enum Event {
    /// The first SIGINT or SIGTERM.
    Signal(&'static str),
    /// A source thread ended (however it ended).
    SourceDone,
    /// A consumer or source failed: the run stops.
    Failed,
}

/// Why a run could not start.
#[derive(Debug)]
pub enum PrepareError {
    /// Bad input named by the user (a missing file, a directory...): exit 2.
    Input(String),
    /// The database or the machine: exit 1.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for PrepareError {
    fn from(e: anyhow::Error) -> Self {
        Self::Failed(e)
    }
}

/// A line source, opened and positioned.
#[derive(Debug)]
struct LineInput {
    input: Input,
    start: InputStart,
    format: crate::config::Format,
}

/// Everything a run needs, opened and checked before any thread starts.
#[derive(Debug)]
pub struct Prepared {
    run: RunRow,
    writer: Writer,
    checkpointer: Checkpointer,
    ring: HeapRing<Record>,
    /// Unlimited rate: `None`.
    bucket: Option<TokenBucket>,
    burst: u64,
    chunk: u64,
    clock: Clock,
    /// Unix ns at the clock's 0.
    unix_base: i64,
    pins: PinPlan,
    lines: Vec<LineInput>,
}

/// Opens the inputs, then the database (recording the run), allocates the ring and makes the
/// bucket. Nothing is written to the database if an input cannot be opened.
///
/// # Errors
/// [`PrepareError::Input`] for an input the user named that cannot be read;
/// [`PrepareError::Failed`] for the database.
pub fn prepare(cfg: &Config) -> Result<Prepared, PrepareError> {
    let files = open_files(cfg)?;
    let clock = Clock::new();
    let unix_base = unix_now_ns().saturating_sub(clock.now() as i64);
    let threads = if cfg.generated() {
        cfg.producers
    } else {
        cfg.sources.len()
    };
    let chunk = rate::chunk(cfg.rps, threads, cfg.capacity);
    // The bucket holds 100 ms of tokens: a stall shorter than that is caught up afterwards,
    // with the records keeping their scheduled times (so the stall shows in the latency).
    let burst = (cfg.rps / 10).max(chunk);
    let bucket = match cfg.rps {
        0 => None,
        rps => {
            Some(TokenBucket::try_per_second(rps, burst).map_err(|e| anyhow!("--rps {rps}: {e}"))?)
        }
    };
    let ring = HeapRing::try_with_capacity(cfg.capacity)
        .map_err(|e| anyhow!("--capacity {}: {e}", cfg.capacity))?;
    let db = cfg.db();
    let started_at = unix_base.saturating_add(clock.now() as i64);
    let config_json = cfg.to_json().to_string();
    let (conn, run) = runs::prepare_run(
        db,
        cfg.busy_timeout,
        cfg.producers,
        &config_json,
        started_at,
    )?;
    let mut writer = Writer::new(conn, run.run_id, cfg.synchronous, db, cfg.busy_timeout)?;
    let checkpointer = Checkpointer::open(db, cfg.busy_timeout)?;
    let lines = position_inputs(cfg, files, &mut writer)?;
    let pins = pinning::plan(cfg.pin, cfg.consumers, threads);
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
        lines,
    })
}

/// Opens every file source (in `cfg.sources` order; `None` for other sources).
fn open_files(cfg: &Config) -> Result<Vec<Option<OpenFile>>, PrepareError> {
    let mut files: Vec<Option<OpenFile>> = Vec::new();
    for spec in &cfg.sources {
        let SourceSpec::File { path, .. } = spec else {
            files.push(None);
            continue;
        };
        let opened = open_file(path).map_err(PrepareError::Input)?;
        if let Some(twin) = files
            .iter()
            .flatten()
            .find(|f| f.key.dev == opened.key.dev && f.key.ino == opened.key.ino)
        {
            return Err(PrepareError::Input(format!(
                "--source file:{} and file:{} are the same file: give it once",
                twin.key.path.display(),
                path.display()
            )));
        }
        files.push(Some(opened));
    }
    Ok(files)
}

/// Registers each line source with the sink and positions it where its last run committed.
fn position_inputs(
    cfg: &Config,
    files: Vec<Option<OpenFile>>,
    writer: &mut Writer,
) -> anyhow::Result<Vec<LineInput>> {
    let mut lines = Vec::new();
    for (spec, file) in cfg.sources.iter().zip(files) {
        let line = match (spec, file) {
            (SourceSpec::Stdin { format }, _) => {
                let resume = writer.register(None)?;
                LineInput {
                    input: stdin_input(cfg.max_record_bytes),
                    start: InputStart {
                        name: "stdin".into(),
                        resume,
                    },
                    format: *format,
                }
            }
            (
                SourceSpec::File {
                    path,
                    follow,
                    format,
                },
                Some(opened),
            ) => {
                let mut resume = writer.register(Some(&opened.key))?;
                let name = opened.key.path.display().to_string();
                let input = file_input(
                    opened,
                    path.clone(),
                    *follow,
                    &mut resume,
                    cfg.max_record_bytes,
                )?;
                LineInput {
                    input,
                    start: InputStart { name, resume },
                    format: *format,
                }
            }
            _ => continue,
        };
        lines.push(line);
    }
    Ok(lines)
}

fn unix_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The header (stderr): the effective configuration.
pub fn header(cfg: &Config, prepared: &Prepared) -> String {
    let starts: Vec<InputStart> = prepared.lines.iter().map(|l| l.start.clone()).collect();
    report::header(
        cfg,
        prepared.run.run_id,
        prepared.burst,
        &prepared.pins.desc,
        &starts,
    )
}

/// What the threads leave behind for the summary.
#[derive(Debug, Default)]
struct Outcome {
    reason: Option<StopReason>,
    errors: Vec<String>,
    /// Clock ns: production ended; sources joined; consumers joined.
    producing_end: u64,
    sources_stopped: u64,
    /// Inputs met while following (rotations).
    moved_to: Vec<InputStart>,
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
        lines,
        ..
    } = prepared;
    let sources = if cfg.generated() {
        cfg.producers
    } else {
        lines.len()
    };
    let starts: Vec<InputStart> = lines.iter().map(|l| l.start.clone()).collect();
    let stats = Stats::new(sources, cfg.consumers);
    let sink = GroupCommit::new(writer, cfg.batch_size);
    let stop = AtomicBool::new(false);
    let start = clock.now();
    let bucket = bucket.map(|b| b.starting_empty_at(start));
    let deadline = match cfg.stop {
        Stop::After(d) => Some(start.saturating_add(d.as_nanos() as u64)),
        _ => None,
    };
    let cx = Context {
        ring: &ring,
        clock: &clock,
        unix_base,
        stop: &stop,
        deadline,
        bucket: bucket.as_ref(),
        chunk,
    };
    let budget = AtomicU64::new(match cfg.stop {
        Stop::Messages(n) => n,
        _ => u64::MAX,
    });
    let mut out = Outcome {
        producing_end: start,
        sources_stopped: start,
        ..Outcome::default()
    };
    let checkpoint_stop = StopSignal::default();
    let padding = ".".repeat(cfg.payload_size);
    let pin_failed = AtomicBool::new(false);
    let gate = ByteGate::new(IN_FLIGHT_BYTES);
    let release = (!cfg.generated()).then_some(&gate);
    let warmup_end_ns = start.saturating_add(cfg.warmup.as_nanos() as u64);

    std::thread::scope(|s| {
        let checkpoints = spawn(s, "checkpoint".into(), &mut out.errors, || {
            checkpointer.run(sink.writer(), &checkpoint_stop);
        });
        let mut consumers = Vec::new();
        for (i, core) in pins.consumers.iter().enumerate() {
            let (stats, ring, sink, clock, pin_failed) =
                (&stats.consumers[i], &ring, &sink, &clock, &pin_failed);
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
                    gate: release,
                };
                // A failed (or panicking) consumer closes the ring: sources stop at once
                // instead of waiting on a ring nobody may drain, and the other consumers
                // commit what is left.
                let mut failed = OnDrop(Some(|| {
                    ring.close();
                    let _ = tx.send(Event::Failed);
                }));
                let result = consumer.run();
                if result.is_ok() {
                    failed.0 = None;
                }
                result
            };
            consumers.extend(spawn(s, format!("consumer-{i}"), &mut out.errors, body));
        }

        let mut generators = Vec::new();
        let mut readers = Vec::new();
        if cfg.generated() {
            let quotas = quotas(cfg);
            for (i, core) in pins.producers.iter().enumerate() {
                let generator = Generator {
                    id: i as u32,
                    cx,
                    quota: quotas.as_ref().map(|q| q[i]),
                    padding: &padding,
                    stats: &stats.producers[i],
                };
                let (tx, pin_failed) = (tx.clone(), &pin_failed);
                let body = move || {
                    let _done = OnDrop(Some(move || drop(tx.send(Event::SourceDone))));
                    pinning::pin(*core, pin_failed);
                    generator.run();
                };
                generators.extend(spawn(s, format!("producer-{i}"), &mut out.errors, body));
            }
        } else {
            for (i, (line, core)) in lines.into_iter().zip(&pins.producers).enumerate() {
                let source = LineSource {
                    cx,
                    input: line.input,
                    format: line.format,
                    max_record_bytes: cfg.max_record_bytes,
                    resume: line.start.resume,
                    positions: &sink,
                    budget: &budget,
                    gate: &gate,
                    stats: &stats.producers[i],
                };
                let (tx, pin_failed) = (tx.clone(), &pin_failed);
                let body = move || {
                    let _done = OnDrop(Some(|| drop(tx.send(Event::SourceDone))));
                    pinning::pin(*core, pin_failed);
                    let result = source.run();
                    if result.is_err() {
                        let _ = tx.send(Event::Failed);
                    }
                    result
                };
                readers.extend(spawn(s, format!("source-{i}"), &mut out.errors, body));
            }
        }

        let started = generators.len() + readers.len();
        let reason = if out.errors.is_empty() {
            watch::Watch {
                cfg,
                clock: &clock,
                start,
                deadline,
                events: rx,
                sources: started,
                stats: &stats,
                ring: &ring,
            }
            .wait()
        } else {
            StopReason::Error
        };
        // Sources take no token due after the deadline, so that is when production ended.
        out.producing_end = match (reason, deadline) {
            (StopReason::Duration, Some(d)) => d,
            _ => clock.now(),
        };
        out.reason = Some(reason);
        stop.store(true, Ordering::Relaxed);
        if reason == StopReason::Error {
            ring.close(); // unblock sources at once: the run is failing
        }
        for handle in generators {
            if handle.join().is_err() {
                out.errors.push("a producer thread panicked".into());
            }
        }
        for handle in readers {
            match handle.join() {
                Ok(Ok(moved)) => out.moved_to.extend(moved),
                Ok(Err(e)) => out.errors.push(format!("{e:#}")),
                Err(_) => out.errors.push("a source thread panicked".into()),
            }
        }
        out.sources_stopped = clock.now();
        ring.close();
        for handle in consumers {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => out.errors.push(format!("{e:#}")),
                Err(_) => out.errors.push("a consumer thread panicked".into()),
            }
        }
        checkpoint_stop.stop();
        if let Some(handle) = checkpoints
            && handle.join().is_err()
        {
            out.errors.push("the checkpoint thread panicked".into());
        }
    });
    let drained = clock.now();
    if !ring.is_empty() {
        out.errors.push(format!(
            "{} records were left in the ring when the consumers ended",
            ring.len()
        ));
    }
    drop(ring);
    warn_rejects(cfg, &starts, &stats);
    let mut inputs = starts;
    inputs.append(&mut out.moved_to);
    let writer = sink.into_writer();
    let (stored, errors) = finish(cfg, &run, &writer, &stats, out.errors, unix_base, &clock);
    let secs = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e9;
    Summary {
        config: cfg.to_json(),
        run_id: run.run_id,
        db: cfg.db().display().to_string(),
        produced: stats.produced(),
        consumed: stats.consumed(),
        stored,
        stop_reason: out.reason.unwrap_or(StopReason::Error),
        error: (!errors.is_empty()).then(|| errors.join("; ")),
        elapsed_s: secs(start, drained),
        producing_s: secs(start, out.producing_end),
        drain_s: secs(out.sources_stopped, drained),
        bytes: stats.bytes(),
        target_rps: cfg.rps,
        latency: stats.latency(),
        commit: stats.commit(),
        batches: stats.batches(),
        blocked_s: stats.blocked_ns() as f64 / 1e9,
        wal_max_bytes: checkpointer.wal_max_bytes,
        ingest: (!cfg.generated()).then(|| Ingest {
            read: stats.read(),
            read_bytes: stats.read_bytes(),
            rejected: stats.rejected(),
            inputs,
        }),
    }
}

/// The end of a run in the database: final checkpoint, the count back, the `runs` row.
/// Returns the stored count and the run's errors, with any from here added.
fn finish(
    cfg: &Config,
    run: &RunRow,
    writer: &Writer,
    stats: &Stats,
    mut errors: Vec<String>,
    unix_base: i64,
    clock: &Clock,
) -> (u64, Vec<String>) {
    let db = cfg.db();
    if let Err(e) = checkpoint::final_checkpoint(writer.conn(), db) {
        tracing::warn!("{e:#}");
    }
    let stored = match runs::count_stored(writer.conn(), run) {
        Ok(n) => n,
        Err(e) => {
            let e = schema::db_error(db, e, cfg.busy_timeout);
            errors.push(format!("counting the stored messages failed: {e}"));
            0
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
    let finished_at = unix_base.saturating_add(clock.now() as i64);
    if let Err(e) = runs::finish_run(
        writer.conn(),
        run.run_id,
        finished_at,
        errors.is_empty(),
        &per_producer,
        stats.produced(),
        writer.last_id(),
    ) {
        errors.push(format!(
            "recording the end of run {} failed: {e}",
            run.run_id
        ));
    }
    (stored, errors)
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
            "{}: {n} records rejected (not stored): {}{more}",
            start.name,
            samples.join(", ")
        );
    }
}

/// Each generator's share of `--messages` (the first ones take the remainder).
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
