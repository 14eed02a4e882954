//! Wiring: the only module that knows every stage. [`prepare`] opens the inputs, the database
//! and the ring before any thread starts; [`run`] spawns consumers, the checkpointer and the
//! sources, watches, and shuts down in order: stop sources -> close the ring -> consumers drain
//! and commit -> final checkpoint -> count back from the database -> summary.

mod finish;
mod intervals;
mod lanes;
pub mod pinning;
mod prepare;
mod scaling;
pub mod signals;
mod threads;
mod watch;

pub use prepare::{PrepareError, Prepared, prepare};

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Duration;

use pc_core::TokenBucket;

use crate::config::{Config, Stop};
use crate::consumer::{Consumer, scaler};
use crate::dead_letter::DeadLetters;
use crate::flow::{ByteGate, IN_FLIGHT_BYTES};
use crate::message::Acknowledge;
use crate::observe::{Live, RunView};
use crate::position::InputStart;
use crate::queue::Queue;
use crate::report::{self, StopReason, Summary, Wal};
use crate::sink::sqlite::checkpoint::{Checkpointer, StopSignal};
use crate::sink::{AnySink, Connector, GroupCommit, Policy};
use crate::source::Context;
use crate::source::generate::Generator;
use crate::source::lines::{Ended, FilesRead, Input, LineSource};
use crate::source::nats::{NatsAcks, NatsSource, keepalive};
use crate::source::rate;
use crate::telemetry::progress::Display;
use crate::telemetry::{NatsStats, Stats};
use finish::Outcome;
use intervals::Reporter;
use pinning::PinPlan;
use prepare::{LineInput, NatsInput};
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
    /// A consumer thread ended (however it ended).
    ConsumerDone,
}

/// The header (stderr): the effective configuration.
pub fn header(cfg: &Config, prepared: &Prepared) -> String {
    let starts: Vec<InputStart> = prepared.lines.iter().map(|l| l.start.clone()).collect();
    let mut notes: Vec<String> = prepared
        .sink_desc
        .iter()
        .map(|d| format!("NATS sink: {d}"))
        .collect();
    notes.extend(
        prepared
            .nats_inputs
            .iter()
            .map(|n| format!("NATS source: {}", n.opened.desc)),
    );
    notes.extend(lanes::describe(cfg, &prepared.lanes));
    report::header(
        cfg,
        prepared.run_id,
        prepared.burst,
        &prepared.pins.desc,
        &starts,
        &notes,
        prepared.checkpointer.as_ref().map(Checkpointer::page_size),
    )
}

/// What every thread of a run borrows.
#[derive(Debug)]
struct Shared<'a> {
    cfg: &'a Config,
    cx: Context<'a>,
    sink: GroupCommit<AnySink>,
    /// A scaled run on a sink that writes in parallel: opens a writer for each consumer the
    /// scaler starts past the writers already open.
    connector: Option<Connector>,
    dead_letters: Option<Arc<DeadLetters>>,
    stats: Arc<Stats>,
    pins: PinPlan,
    pin_failed: AtomicBool,
    /// Ingest runs: the in-flight byte budget.
    gate: ByteGate,
    /// Records still to accept under `--messages` (ingest sources).
    budget: crate::source::Budget,
    /// The generator's padding, `payload_size` dots.
    padding: String,
    events: Sender<Event>,
    /// A NATS source: acknowledges records once settled.
    acks: Option<NatsAcks>,
    /// A scaled run: what its consumers share with the scaler.
    scaling: scaler::Shared,
    /// Clock ns at the run's start.
    started: u64,
    /// `--lanes`: each lane's source context (its bucket and chunk); empty without lanes.
    lanes: Vec<Context<'a>>,
    /// Each generator's share of `--messages` (`None`: until stopped).
    quotas: Vec<Option<u64>>,
    /// The files the line sources read: none is read twice in a run (rotations).
    files_read: FilesRead,
}

type Handle<'scope, T> = ScopedJoinHandle<'scope, T>;

/// Runs the pipeline to the end and returns its summary. Never fails: errors during the run
/// are reported in the summary (and make it not OK).
/// `live`: the metrics endpoint's view, told when the run is under way.
pub fn run(
    cfg: &Config,
    prepared: Prepared,
    (tx, rx): (&Sender<Event>, &Receiver<Event>),
    live: Option<&Live>,
) -> Summary {
    let Prepared {
        run_id,
        writers,
        connector,
        mut checkpointer,
        ring,
        bucket,
        chunk,
        clock,
        unix_base,
        pins,
        lines,
        dead_letters,
        latency_log,
        nats_inputs,
        nats,
        lanes: mut lane_plan,
        ..
    } = prepared;
    let ring = Arc::new(ring);
    let starts = input_starts(&lines, &nats_inputs);
    // Every counter the run starts with is made before its clock starts: a thousand
    // consumers' histograms take most of a second to allocate, and the buckets would pass
    // their first tokens by meanwhile, unsent and uncounted.
    let stats = run_stats(cfg, nats.clone(), &lane_plan);
    let start = clock.now();
    let bucket = bucket.map(|b| b.starting_empty_at(start));
    let lane_buckets = lanes::buckets(&mut lane_plan, start);
    let deadline = match cfg.stop {
        Stop::After(d) => Some(start.saturating_add(d.as_nanos() as u64)),
        _ => None,
    };
    let stop = AtomicBool::new(false);
    let cx = Context {
        ring: ring.as_ref(),
        clock: &clock,
        unix_base,
        stop: &stop,
        deadline,
        bucket: bucket.as_ref(),
        chunk,
        lane: 0,
        warmup_end_ns: start.saturating_add(cfg.warmup.as_nanos() as u64),
    };
    let acks = nats_acks(&nats_inputs, nats.as_ref());
    let ack_wait = nats_inputs.first().map(|n| n.opened.ack_wait);
    let mut shared = Shared::new(
        cfg,
        cx,
        start,
        stats,
        (writers, dead_letters),
        pins,
        tx.clone(),
    );
    shared.acks = acks;
    shared.connector = connector;
    shared.lanes = lanes::contexts(cx, &lane_plan, &lane_buckets);
    shared.quotas = lanes::generators(cfg, &lane_plan)
        .into_iter()
        .map(|(_, quota)| quota)
        .collect();
    let recorded = !matches!(cfg.sink, crate::config::SinkSpec::Nats(_));
    signals::counting(Arc::clone(&shared.stats), recorded);
    let checkpoint_stop = StopSignal::default();
    let display = progress_display(cfg, &lines);
    let mut reporter = Reporter::new(latency_log, display);
    let mut out = Outcome::starting_at(start);
    std::thread::scope(|s| {
        let threads = Threads::spawn(
            s,
            &shared,
            (checkpointer.as_mut(), &checkpoint_stop),
            (lines, nats_inputs, ack_wait),
            &mut out.errors,
        );
        if let Some(live) = live {
            live.started(RunView {
                stats: Arc::clone(&shared.stats),
                ring: Arc::clone(&ring),
                health: Arc::clone(shared.sink.health()),
                db: cfg.sqlite_path().map(Into::into),
                lanes: cfg.lanes.iter().map(|l| l.name.clone()).collect(),
            });
        }
        watch_then_stop(&shared, threads, (rx, live), &mut reporter, &mut out);
    });
    conclude(shared, run_id, reporter, checkpointer, out, starts)
}

/// Watches the run until production ends (reporting each interval), then stops its threads
/// in order. `live`: the metrics endpoint, told when the run is stopping.
fn watch_then_stop(
    sh: &Shared<'_>,
    threads: Threads<'_>,
    (events, live): (&Receiver<Event>, Option<&Live>),
    reporter: &mut Reporter,
    out: &mut Outcome,
) {
    let (clock, deadline) = (sh.cx.clock, sh.cx.deadline);
    let watch = watch::Watch {
        cfg: sh.cfg,
        clock,
        start: sh.started,
        deadline,
        events,
        sources: threads.sources(),
        stats: &sh.stats,
        ring: sh.cx.ring,
        sink: &sh.sink,
        consumers_done: Cell::new(0),
        next_tick: Cell::new(None),
    };
    let reason = if out.errors.is_empty() {
        watch.wait(reporter)
    } else {
        StopReason::Error
    };
    // Sources take no token due after the deadline, so that is when production ended.
    out.producing_end = match (reason, deadline) {
        (StopReason::Duration, Some(d)) => d,
        _ => clock.now(),
    };
    out.reason = Some(reason);
    // Relaxed: a flag the sources poll; what they then do is joined before anything reads it.
    sh.cx.stop.store(true, Ordering::Relaxed);
    if let Some(live) = live {
        live.stopping();
    }
    if reason == StopReason::Error {
        sh.cx.ring.close(); // unblock sources at once: the run is failing
    }
    threads.stop(sh, (&watch, reporter), out);
}

/// A NATS source's acknowledgements, made with its counters; none without a NATS source.
fn nats_acks(inputs: &[NatsInput], nats: Option<&Arc<NatsStats>>) -> Option<NatsAcks> {
    inputs.first().map(|n| NatsAcks {
        client: n.opened.client.clone(),
        stats: Arc::clone(nats.expect("a NATS source has its counters")),
        held: Arc::default(),
    })
}

/// Every input, in the order of the producers' stats: the line inputs', or a NATS stream's (a
/// NATS source runs alone).
fn input_starts(lines: &[LineInput], nats_inputs: &[NatsInput]) -> Vec<InputStart> {
    let mut starts: Vec<InputStart> = lines.iter().map(|l| l.start.clone()).collect();
    starts.extend(nats_inputs.iter().map(|n| InputStart {
        name: n.opened.stream_key.path.display().to_string(),
        resume: crate::position::Resume {
            input: n.stream_input,
            ..Default::default()
        },
    }));
    starts
}

/// The run's threads, started together and stopped in order.
struct Threads<'scope> {
    checkpoints: Option<Handle<'scope, ()>>,
    consumers: Consumers<'scope>,
    generators: Vec<Handle<'scope, ()>>,
    readers: Vec<Handle<'scope, anyhow::Result<Ended>>>,
    /// The NATS keepalive, and the sender that stops it when dropped.
    keeper: Option<(Sender<()>, Handle<'scope, ()>)>,
    /// Stops the checkpointer.
    checkpoint_stop: &'scope StopSignal,
}

impl<'scope> Threads<'scope> {
    /// Starts the checkpointer (SQLite), the consumers, then the sources: the generator's
    /// threads, or a reader per line input and per NATS input. A thread that cannot start is
    /// an error in `errors` (the run then stops at once).
    fn spawn(
        s: &'scope Scope<'scope, '_>,
        sh: &'scope Shared<'_>,
        (checkpointer, checkpoint_stop): (Option<&'scope mut Checkpointer>, &'scope StopSignal),
        (lines, nats_inputs, ack_wait): (Vec<LineInput>, Vec<NatsInput>, Option<Duration>),
        errors: &mut Vec<String>,
    ) -> Self {
        let checkpoints = checkpointer.and_then(|c| {
            spawn(s, "checkpoint".into(), errors, || {
                c.run(sh.sink.writer(), checkpoint_stop);
            })
        });
        let consumers = spawn_consumers(s, sh, errors);
        let (generators, mut readers) = if sh.cfg.generated() {
            (spawn_generators(s, sh, errors), Vec::new())
        } else {
            (Vec::new(), spawn_readers(s, sh, lines, errors))
        };
        // Before the NATS sources, so that it keeps alive whatever they take.
        let keeper = spawn_keepalive(s, sh, ack_wait, errors);
        readers.extend(spawn_nats_readers(s, sh, nats_inputs, errors));
        Self {
            checkpoints,
            consumers,
            generators,
            readers,
            keeper,
            checkpoint_stop,
        }
    }

    /// Source threads, each of which sends [`Event::SourceDone`] when it ends.
    fn sources(&self) -> usize {
        self.generators.len() + self.readers.len()
    }

    /// Once the sources are told to stop: joins them, closes the ring, reports while the
    /// consumers drain it and joins them, flushes the NATS acknowledgements, then stops the
    /// keepalive and the checkpointer. Each failure is an error in `out`.
    fn stop(
        self,
        sh: &Shared<'_>,
        (watch, reporter): (&watch::Watch<'_>, &mut Reporter),
        out: &mut Outcome,
    ) {
        join_sources(self.generators, self.readers, out);
        out.sources_stopped = sh.cx.clock.now();
        sh.cx.ring.close();
        watch.drain(reporter, self.consumers.reporting());
        self.consumers.join(&mut out.errors);
        if let Some(acks) = &sh.acks
            && let Err(e) = acks.flush()
        {
            out.errors.push(format!("{e:#}"));
        }
        // The consumers are done: the keeper's sender dropped stops it.
        if let Some((stop, handle)) = self.keeper {
            drop(stop);
            if handle.join().is_err() {
                out.errors.push("the NATS keepalive thread panicked".into());
            }
        }
        self.checkpoint_stop.stop();
        if let Some(handle) = self.checkpoints
            && handle.join().is_err()
        {
            out.errors.push("the checkpoint thread panicked".into());
        }
    }
}

/// After the threads: what the ring and the sink's health say, the last report interval,
/// then the run finished in the sink and summed up.
fn conclude(
    shared: Shared<'_>,
    run_id: i64,
    mut reporter: Reporter,
    checkpointer: Option<Checkpointer>,
    mut out: Outcome,
    starts: Vec<InputStart>,
) -> Summary {
    let (cfg, clock, unix_base) = (shared.cfg, shared.cx.clock, shared.cx.unix_base);
    out.drained = clock.now();
    left_in_ring(shared.cx.ring, &mut out.errors);
    if let Some(why) = shared.sink.health().failure() {
        out.errors.push(why);
    }
    out.retries = shared.sink.health().retries();
    let Shared { sink, stats, .. } = shared;
    out.writers = sink.writers_open();
    let mut writer = sink.into_writer();
    let t_end = out.drained.saturating_sub(out.start) as f64 / 1e9;
    reporter.finish(t_end, &stats, &mut writer);
    finish::summary(
        finish::Done {
            cfg,
            run_id,
            stats: &stats,
            clock,
            unix_base,
            wal: checkpointer.map(|mut c| Wal {
                max_bytes: c.wal_max_now(),
                writer_holds: c.writer_holds,
                writer_held_max_ns: c.writer_held_max_ns,
                end: crate::report::summary::WalEnd::Failed,
                page_size: c.page_size(),
            }),
            retries: out.retries,
            elapsed_s: out.drained.saturating_sub(out.start) as f64 / 1e9,
        },
        &mut writer,
        out,
        starts,
    )
}

/// The run's counters, with those of the consumers that start with it (those a scaler adds
/// get theirs as they start).
fn run_stats(cfg: &Config, nats: Option<Arc<NatsStats>>, lane_plan: &[lanes::Lane]) -> Arc<Stats> {
    let mut stats = Stats::new(cfg.source_threads(), cfg.consumers_max);
    stats.set_consumers(cfg.consumers);
    stats.nats = nats;
    stats.set_lanes(&lanes::producer_lanes(cfg, lane_plan), lane_plan.len());
    for slot in 0..cfg.consumers {
        stats.consumer(slot);
    }
    Arc::new(stats)
}

impl<'a> Shared<'a> {
    /// `start`: when the buckets started, the instant the warm-up is counted from (a later
    /// reading would leave the first tokens' records out of the latency figures).
    fn new(
        cfg: &'a Config,
        cx: Context<'a>,
        start: u64,
        stats: Arc<Stats>,
        (writers, dead_letters): (Vec<AnySink>, Option<Arc<DeadLetters>>),
        pins: PinPlan,
        events: Sender<Event>,
    ) -> Self {
        let policy = Policy {
            retry_for: cfg.retry_for,
            dead_letters: dead_letters.clone(),
            generated: cfg.generated(),
        };
        Self {
            cfg,
            cx,
            // Room for a writer per consumer: only a scaled run with a connector adds any.
            sink: GroupCommit::new(writers, cfg.batch_size, policy).room_for(cfg.consumers_max),
            connector: None,
            dead_letters,
            stats,
            pins,
            pin_failed: AtomicBool::new(false),
            gate: ByteGate::per_lane(
                IN_FLIGHT_BYTES,
                cfg.lanes.len(),
                cfg.fed_lanes().iter().filter(|&&f| f).count(),
            ),
            budget: crate::source::Budget::new(match cfg.stop {
                Stop::Messages(n) => Some(n),
                _ => None,
            }),
            padding: ".".repeat(cfg.payload_size),
            events,
            acks: None,
            scaling: scaler::Shared::default(),
            started: start,
            lanes: Vec::new(),
            quotas: Vec::new(),
            files_read: FilesRead::default(),
        }
    }

    /// The source context of `lane`: its own bucket and chunk with `--lanes`, else the run's.
    fn lane_cx(&self, lane: u8) -> Context<'a> {
        self.lanes
            .get(usize::from(lane))
            .copied()
            .unwrap_or(self.cx)
    }
}

/// A progress bar when the run's end is known (`--messages`, or files not followed) and
/// stderr is a terminal; lines otherwise.
fn progress_display(cfg: &Config, lines: &[LineInput]) -> Display {
    let messages = match cfg.stop {
        Stop::Messages(n) => Some(n),
        _ => None,
    };
    let bytes: Option<u64> = lines.iter().map(|l| l.left).sum();
    match cfg.report_interval {
        Some(_) => Display::choose(messages, bytes.filter(|_| !lines.is_empty())),
        None => Display::Lines,
    }
}

/// The consumers' threads: a fixed number, or (`--consumers MIN..MAX`) one scaler thread that
/// starts and retires them (see `scaling`).
enum Consumers<'scope> {
    Fixed(Vec<Handle<'scope, ()>>),
    Scaled(Option<Handle<'scope, Vec<String>>>),
}

impl Consumers<'_> {
    /// Threads that send [`Event::ConsumerDone`] when they end.
    fn reporting(&self) -> usize {
        match self {
            Self::Fixed(handles) => handles.len(),
            Self::Scaled(handle) => usize::from(handle.is_some()),
        }
    }

    fn join(self, errors: &mut Vec<String>) {
        match self {
            Self::Fixed(handles) => join_consumers(handles, errors),
            Self::Scaled(Some(handle)) => match handle.join() {
                Ok(more) => errors.extend(more),
                Err(_) => errors.push("the consumers' scaler thread panicked".into()),
            },
            Self::Scaled(None) => {}
        }
    }
}

/// Consumers, each pinned. A failed sink (or a panicking consumer) closes the ring: sources
/// stop at once instead of filling a ring nobody can store, and the consumers settle what is
/// left (see `sink::group_commit`).
fn spawn_consumers<'scope>(
    s: &'scope Scope<'scope, '_>,
    sh: &'scope Shared<'_>,
    errors: &mut Vec<String>,
) -> Consumers<'scope> {
    if sh.cfg.scaled() {
        return Consumers::Scaled(scaling::spawn(s, sh, errors));
    }
    let mut handles = Vec::new();
    for (i, core) in sh.pins.consumers.iter().enumerate() {
        let ended = || drop(sh.events.send(Event::ConsumerDone));
        let body = consumer_body(sh, i, *core, ended);
        handles.extend(spawn(s, format!("consumer-{i}"), errors, body));
    }
    Consumers::Fixed(handles)
}

/// A consumer thread's body: pinned to `core`, counting in `slot`'s counters; `ended` runs
/// when it ends, however it ends (a panic also closes the ring and stops the run). In a scaled
/// run it may retire (see `consumer::scaler`).
fn consumer_body<'scope>(
    sh: &'scope Shared<'_>,
    slot: usize,
    core: Option<core_affinity::CoreId>,
    ended: impl FnOnce() + Send + 'scope,
) -> impl FnOnce() + Send + 'scope {
    let tx = sh.events.clone();
    move || {
        let _done = OnDrop(Some(ended));
        pinning::pin(core, &sh.pin_failed);
        // Failed goes out before the close: sources the close unblocks then say they are done
        // after it, and the run's stop reason is the failure, not the sources' end.
        let stop_run = || {
            let _ = sh.events.send(Event::Failed);
            sh.cx.ring.close();
        };
        let consumer = Consumer {
            ring: sh.cx.ring,
            sink: &sh.sink,
            clock: sh.cx.clock,
            batch_size: sh.cfg.batch_size,
            batch_wait: sh.cfg.batch_wait,
            batch_wait_fixed: sh.cfg.batch_wait_fixed,
            warmup_end_ns: sh.cx.warmup_end_ns,
            stats: sh.stats.consumer(slot),
            gate: (!sh.cfg.generated()).then_some(&sh.gate),
            on_sink_failure: &stop_run,
            acks: sh.acks.as_ref().map(|a| a as &dyn Acknowledge),
            scaling: sh.cfg.scaled().then_some(&sh.scaling),
        };
        // Only a panic leaves it armed.
        let mut panicked = OnDrop(Some(|| {
            let _ = tx.send(Event::Failed);
            sh.cx.ring.close();
        }));
        consumer.run();
        panicked.0 = None;
    }
}

/// The generator's threads, each with its share of `--messages`.
fn spawn_generators<'scope>(
    s: &'scope Scope<'scope, '_>,
    sh: &'scope Shared<'_>,
    errors: &mut Vec<String>,
) -> Vec<Handle<'scope, ()>> {
    let mut handles = Vec::new();
    for (i, core) in sh.pins.producers.iter().enumerate() {
        let generator = Generator {
            id: i as u32,
            cx: sh.lane_cx(sh.stats.producers[i].lane),
            quota: sh.quotas.get(i).copied().flatten(),
            padding: &sh.padding,
            stats: &sh.stats.producers[i],
        };
        let tx = sh.events.clone();
        let body = move || {
            let _done = OnDrop(Some(move || drop(tx.send(Event::SourceDone))));
            pinning::pin(*core, &sh.pin_failed);
            rate::wake_on_time(generator.cx.bucket);
            generator.run();
        };
        handles.extend(spawn(s, format!("producer-{i}"), errors, body));
    }
    handles
}

/// One thread per line source (stdin or a file).
fn spawn_readers<'scope>(
    s: &'scope Scope<'scope, '_>,
    sh: &'scope Shared<'_>,
    lines: Vec<LineInput>,
    errors: &mut Vec<String>,
) -> Vec<Handle<'scope, anyhow::Result<Ended>>> {
    let mut handles = Vec::new();
    for line in &lines {
        if let Input::File { key, .. } = &line.input {
            sh.files_read.take(key);
        }
    }
    for (i, (line, core)) in lines.into_iter().zip(&sh.pins.producers).enumerate() {
        let source = LineSource {
            cx: sh.lane_cx(sh.stats.producers[i].lane),
            input: line.input,
            format: line.format,
            max_record_bytes: sh.cfg.max_record_bytes,
            resume: line.start.resume,
            positions: &sh.sink,
            files_read: &sh.files_read,
            budget: &sh.budget,
            gate: &sh.gate,
            stats: &sh.stats.producers[i],
            dead_letters: sh.dead_letters.as_deref(),
            rejects: Vec::new(),
            left_behind: None,
            claimed: std::cell::Cell::new(0),
        };
        let body = reader_body(sh, *core, source.cx.bucket, move || source.run());
        handles.extend(spawn(s, format!("source-{i}"), errors, body));
    }
    handles
}

/// One thread per NATS source.
fn spawn_nats_readers<'scope>(
    s: &'scope Scope<'scope, '_>,
    sh: &'scope Shared<'_>,
    inputs: Vec<NatsInput>,
    errors: &mut Vec<String>,
) -> Vec<Handle<'scope, anyhow::Result<Ended>>> {
    let mut handles = Vec::new();
    for (i, (input, core)) in inputs.into_iter().zip(&sh.pins.producers).enumerate() {
        let nats = sh
            .stats
            .nats
            .as_deref()
            .expect("a NATS source has its counters");
        let source = NatsSource {
            cx: sh.lane_cx(sh.stats.producers[i].lane),
            opened: input.opened,
            until_empty: input.until_empty,
            stream_input: input.stream_input,
            max_record_bytes: sh.cfg.max_record_bytes,
            positions: &sh.sink,
            budget: &sh.budget,
            gate: &sh.gate,
            stats: &sh.stats.producers[i],
            nats,
            dead_letters: sh.dead_letters.as_deref(),
            held: &sh.acks.as_ref().expect("a NATS source has its acks").held,
            started_ns: sh.started,
        };
        let bucket = source.cx.bucket;
        let body = reader_body(sh, *core, bucket, move || {
            source.run().map(|()| Ended::default())
        });
        handles.extend(spawn(s, format!("nats-{i}"), errors, body));
    }
    handles
}

/// The thread that keeps the NATS sources' held messages alive (`source::nats::keepalive`),
/// with the sender that stops it when dropped; none without a NATS source.
fn spawn_keepalive<'scope>(
    s: &'scope Scope<'scope, '_>,
    sh: &'scope Shared<'_>,
    ack_wait: Option<std::time::Duration>,
    errors: &mut Vec<String>,
) -> Option<(Sender<()>, Handle<'scope, ()>)> {
    let (acks, ack_wait) = (sh.acks.as_ref()?, ack_wait?);
    let sent = &sh.stats.nats.as_deref()?.progress;
    let (stop, stopped) = std::sync::mpsc::channel();
    let keep = keepalive::Keep::new(ack_wait, sh.cfg.retry_for);
    let body = move || keepalive::keep(&acks.held, &acks.client, keep, &stopped, sent);
    let handle = spawn(s, "nats-keepalive".into(), errors, body)?;
    Some((stop, handle))
}

/// A reading source thread's body: pinned, its timer slack set for `bucket` (its rate),
/// `read`, and the watcher told that it ended (and that it failed, if it did).
fn reader_body<'scope>(
    sh: &'scope Shared<'_>,
    core: Option<core_affinity::CoreId>,
    bucket: Option<&'scope TokenBucket>,
    read: impl FnOnce() -> anyhow::Result<Ended> + Send + 'scope,
) -> impl FnOnce() -> anyhow::Result<Ended> + Send + 'scope {
    let tx = sh.events.clone();
    move || {
        let _done = OnDrop(Some(|| drop(tx.send(Event::SourceDone))));
        pinning::pin(core, &sh.pin_failed);
        rate::wake_on_time(bucket);
        let result = read();
        if result.is_err() {
            let _ = tx.send(Event::Failed);
        }
        result
    }
}

fn join_sources(
    generators: Vec<Handle<'_, ()>>,
    readers: Vec<Handle<'_, anyhow::Result<Ended>>>,
    out: &mut Outcome,
) {
    for handle in generators {
        if handle.join().is_err() {
            out.errors.push("a producer thread panicked".into());
        }
    }
    for handle in readers {
        match handle.join() {
            Ok(Ok(ended)) => {
                out.moved_to.extend(ended.moved_to);
                out.final_positions.extend(ended.final_positions);
            }
            Ok(Err(e)) => out.errors.push(format!("{e:#}")),
            Err(_) => out.errors.push("a source thread panicked".into()),
        }
    }
}

fn join_consumers(consumers: Vec<Handle<'_, ()>>, errors: &mut Vec<String>) {
    for handle in consumers {
        if handle.join().is_err() {
            errors.push("a consumer thread panicked".into());
        }
    }
}

fn left_in_ring(ring: &Queue, errors: &mut Vec<String>) {
    if !ring.is_empty() {
        errors.push(format!(
            "{} records were left in the ring when the consumers ended",
            ring.len()
        ));
    }
}
