//! Flags + environment + TOML file -> one validated [`Config`]. Errors are user-facing: one
//! line naming the option, where its value came from and what would be accepted.
//!
//! Layers, highest first: command-line flag, environment (`PC_HOST_*`), `--config` file,
//! built-in default (see `layers.rs`). `--duration` and `--messages` are one choice: the highest
//! layer that sets either decides; one layer setting both is an error. `--sink` and `--db`
//! likewise.

pub mod cli;
pub mod lanes;
pub mod layers;
pub mod url;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

pub use cli::{Output, Synchronous};
pub use lanes::Lane;
pub use layers::Layers;
pub use url::{Format, SinkSpec, SourceSpec};

use crate::message::Record;
use layers::Picked;

/// The default database file, in the current directory.
pub const DEFAULT_DB: &str = "pc-host.db";

/// Limits that keep values sane; beyond them a value is a typo, not a load test.
pub const MAX_THREADS: u64 = 1024;
pub const MAX_CAPACITY: u64 = 1 << 24;
pub const MAX_PAYLOAD: u64 = 1 << 20;
pub const MAX_RECORD: u64 = 64 << 20;
pub const MAX_BATCH: u64 = 1_000_000;
pub const MAX_RPS: u64 = 1_000_000_000;
pub const MAX_SECS: f64 = 1_000_000.0;
/// The longest `--retry-for`.
pub const MAX_RETRY: Duration = Duration::from_secs(86_400);
/// Memory the ring and the consumers' batches may hold at most when full.
pub const MAX_BUFFER_BYTES: u128 = 8 << 30;
/// The generator's rate when `--rps` is not given.
pub const DEFAULT_GENERATE_RPS: u64 = 500;
/// The generator's consumers when `--consumers` is not given and the sink writes over a
/// connection per consumer (PostgreSQL, MySQL, NATS). Into SQLite, and from other sources,
/// the default is one: SQLite has one writer, and more consumers only take turns on it (the
/// README's Performance section has what five cost against one there).
pub const DEFAULT_GENERATE_CONSUMERS: u64 = 5;

/// When sources stop (besides reaching the end of their input, or a signal).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stop {
    /// After this long.
    After(Duration),
    /// After this many records in total.
    Messages(u64),
    /// Only at the end of the input (or a signal): ingest sources without a limit.
    AtEnd,
}

/// The validated configuration of a run.
#[derive(Clone, Debug)]
pub struct Config {
    pub sources: Vec<SourceSpec>,
    /// Where `sources` came from (one layer gives them all), for errors about them found once
    /// the files are opened.
    pub sources_from: layers::Origin,
    pub sink: SinkSpec,
    /// Generator threads; 0 when the source is not `generate`.
    pub producers: usize,
    /// Consumers at the start; in a scaled run (`--consumers MIN..MAX`) the fewest.
    pub consumers: usize,
    /// The most consumers: `consumers` unless the run scales.
    pub consumers_max: usize,
    /// How often the scaler looks at the queue (a scaled run).
    pub scale_interval: Duration,
    /// Records per second across all sources; 0 = unlimited.
    pub rps: u64,
    pub stop: Stop,
    pub capacity: usize,
    pub batch_size: usize,
    pub batch_wait: Duration,
    /// `--batch-wait-ms` was given: a batch waits up to `batch_wait` to fill whether or not the
    /// sink is busy. By default batches adapt: see `consumer::Consumer::fill`.
    pub batch_wait_fixed: bool,
    pub payload_size: usize,
    pub max_record_bytes: usize,
    pub synchronous: Synchronous,
    /// `--page-size`: a new SQLite database's page size, which an existing one must match.
    /// `None`: the default for a new database (by `rps`), any for an existing one.
    pub page_size: Option<PageSize>,
    pub pin: bool,
    pub warmup: Duration,
    /// `None`: no progress lines.
    pub report_interval: Option<Duration>,
    pub output: Output,
    pub busy_timeout: Duration,
    /// How long a retryable sink failure is retried.
    pub retry_for: Duration,
    pub dead_letter: Option<PathBuf>,
    /// `--metrics-addr`, resolved, and as the user gave it (`--metrics-addr localhost:9100`,
    /// `PC_HOST_METRICS_ADDR=9100`), for messages.
    pub metrics_addr: Option<(std::net::SocketAddr, String)>,
    /// `--metrics-linger`: how long the endpoint stays up after the summary (zero: not at all).
    pub metrics_linger: Duration,
    pub latency_log: Option<PathBuf>,
    /// `--profile`: the flame graph's file.
    pub profile: Option<PathBuf>,
    /// `--lanes`, highest priority first; empty without it (one ring).
    pub lanes: Vec<Lane>,
    /// Options given that do not apply to this run, one line each, for stderr.
    pub warnings: Vec<String>,
}

impl Config {
    /// Whether the records are generated (not read from stdin or files).
    pub fn generated(&self) -> bool {
        self.sources == [SourceSpec::Generate]
    }

    /// Source threads: the generator's producers, or one per stdin or file source.
    pub fn source_threads(&self) -> usize {
        if self.generated() {
            self.producers
        } else {
            self.sources.len()
        }
    }

    /// Whether the number of consumers follows the load (`--consumers MIN..MAX`).
    pub fn scaled(&self) -> bool {
        self.consumers_max > self.consumers
    }

    /// Whether a source reads a JetStream stream.
    pub fn reads_nats(&self) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(s, SourceSpec::Nats(_)))
    }

    /// Whether a source follows its file (so the input has no end).
    pub fn follows(&self) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(s, SourceSpec::File { follow: true, .. }))
    }

    /// The lane a source's records go to: the one its `lane=` names, else the last (lowest)
    /// lane; 0 without lanes.
    pub fn lane_of(&self, spec: &SourceSpec) -> usize {
        lane_index(&self.lanes, spec)
    }

    /// Which lanes have a source: every lane of a generated run (each gets producers), else
    /// the lanes some `--source` names (or the last lane, for sources that name none).
    pub fn fed_lanes(&self) -> Vec<bool> {
        fed_lanes(&self.lanes, &self.sources, self.generated())
    }

    /// `why`, an error about the sources, saying where they came from when that is not the
    /// command line: `PC_HOST_SOURCE: file:app.log: no such file`, or `` `source` in
    /// cfg.toml: ...``. A source given as a flag is the one the user just typed.
    pub fn source_error(&self, why: &str) -> String {
        match &self.sources_from {
            from @ (layers::Origin::Env(_) | layers::Origin::File(..)) => format!("{from}: {why}"),
            layers::Origin::Flag(_) | layers::Origin::Default => why.to_owned(),
        }
    }

    /// The SQLite database file, when the sink is SQLite.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        match &self.sink {
            SinkSpec::Sqlite(path) => Some(path),
            SinkSpec::Postgres(_) | SinkSpec::Mysql(_) | SinkSpec::Nats(_) => None,
        }
    }

    /// Whether the run's `stored` is counted back from a database (every sink but NATS, whose
    /// `stored` is what JetStream acknowledged).
    pub fn sink_counts_back(&self) -> bool {
        !matches!(self.sink, SinkSpec::Nats(_))
    }

    /// The sink for messages: the SQLite path, or the server URL without its password.
    pub fn sink_name(&self) -> String {
        match &self.sink {
            SinkSpec::Sqlite(path) => path.display().to_string(),
            other => other.to_string(),
        }
    }
}

/// A configuration error: print it as one line, exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Builds the run configuration from all layers.
pub fn resolve(l: &Layers) -> Result<Config, ConfigError> {
    let a = &l.args;
    let sources = sources(l)?;
    let generated = sources == [SourceSpec::Generate];
    let sink = sink(l)?;
    pairing(&sources, &sink)?;
    let pin = pick_pin(l)?;
    let Threads {
        producers,
        consumers,
        consumers_max,
        scale_interval,
    } = threads(
        l,
        generated,
        generated && !matches!(sink, SinkSpec::Sqlite(_)),
    )?;
    let rps = rps(l, generated)?;
    let stop = stop(
        l.pick_set("duration", a.duration),
        l.pick_set("messages", a.messages),
        generated,
    )?;
    let capacity = capacity(l)?;
    let batch_size = count(
        &l.pick("batch_size", a.batch_size),
        "batch-size",
        1,
        MAX_BATCH,
    )?;
    let batch_wait_picked = l.pick("batch_wait_ms", a.batch_wait_ms);
    let batch_wait_fixed = !matches!(batch_wait_picked.from, layers::Origin::Default);
    let batch_wait = millis(&batch_wait_picked)?;
    let payload_size = payload_size(l)?;
    let max_record = l.pick("max_record_bytes", a.max_record_bytes);
    let max_record_bytes = record_limit(max_record.value, &max_record.show())?;
    let warmup = warmup(l, stop)?;
    let report_interval = report_interval(l)?;
    let page_size = page_size(l, &sink)?;
    let synchronous = synchronous(l, &sink, &sources, a.synchronous)?;
    // At most an hour: its parser (`cli::busy_ms`) says so for every layer.
    let busy = l.pick("busy_timeout_ms", a.busy_timeout_ms);
    let retry_for = retry_for(l)?;
    let dead_letter = l
        .pick_set("dead_letter", a.dead_letter.clone())
        .map(|p| p.value);
    let (metrics_addr, metrics_linger) = metrics(l)?;

    let mut cfg = Config {
        sources,
        sources_from: l.from("source"),
        sink,
        producers,
        consumers,
        consumers_max,
        scale_interval,
        rps,
        stop,
        capacity,
        batch_size,
        batch_wait,
        batch_wait_fixed,
        payload_size,
        max_record_bytes,
        synchronous,
        page_size,
        pin,
        warmup,
        report_interval,
        output: a.output,
        busy_timeout: Duration::from_millis(busy.value),
        retry_for,
        dead_letter,
        metrics_addr,
        metrics_linger,
        latency_log: a.latency_log.clone(),
        profile: a.profile.clone(),
        lanes: Vec::new(),
        warnings: unused_options(l, generated),
    };
    if l.is_set("scale_interval") && !cfg.scaled() {
        cfg.warnings.push(format!(
            "{} applies to --consumers MIN..MAX only: ignored",
            l.from("scale_interval")
        ));
    }
    let cfg = Config {
        lanes: pick_lanes(l, &cfg)?,
        ..cfg
    };
    memory_guard(&cfg)?;
    Ok(cfg)
}

/// The run's thread counts: `--producers` (the generator's only), `--consumers` (a count or
/// a range to scale within) and `--scale-interval`.
#[derive(Debug)]
struct Threads {
    producers: usize,
    consumers: usize,
    consumers_max: usize,
    scale_interval: Duration,
}

/// `parallel`: a generated run into a sink written over a connection per consumer, whose
/// consumers default to [`DEFAULT_GENERATE_CONSUMERS`] rather than one.
fn threads(l: &Layers, generated: bool, parallel: bool) -> Result<Threads, ConfigError> {
    let a = &l.args;
    let producers = if generated {
        count(
            &l.pick("producers", a.producers),
            "producers",
            1,
            MAX_THREADS,
        )?
    } else {
        0
    };
    let default_consumers = if parallel {
        DEFAULT_GENERATE_CONSUMERS
    } else {
        1
    };
    let (consumers, consumers_max) = match l.pick_set("consumers", a.consumers.as_deref()) {
        Some(p) => consumer_range(&p)?,
        None => (default_consumers as usize, default_consumers as usize),
    };
    let scale = l.pick("scale_interval", a.scale_interval);
    let scale_interval = secs(&scale, true)?;
    if scale_interval < Duration::from_millis(10) {
        return err(format!(
            "{} is too short: use at least 0.01 s",
            scale.show()
        ));
    }
    Ok(Threads {
        producers,
        consumers,
        consumers_max,
        scale_interval,
    })
}

/// `--rps`: the generator's default, or unlimited for a read source.
fn rps(l: &Layers, generated: bool) -> Result<u64, ConfigError> {
    let default_rps = if generated { DEFAULT_GENERATE_RPS } else { 0 };
    let rps = l.pick_set("rps", l.args.rps).unwrap_or(Picked {
        value: default_rps,
        from: layers::Origin::Default,
        raw: None,
    });
    if rps.value > MAX_RPS {
        return err(format!(
            "{} is too high: the rate can be at most {MAX_RPS} messages/s (0 = unlimited)",
            rps.show()
        ));
    }
    Ok(rps.value)
}

/// `--capacity`: a power of two the ring can have.
fn capacity(l: &Layers) -> Result<usize, ConfigError> {
    let capacity = l.pick("capacity", l.args.capacity);
    let n = capacity.value;
    if !(2..=MAX_CAPACITY).contains(&n) || !n.is_power_of_two() {
        let hint = n
            .clamp(2, MAX_CAPACITY)
            .checked_next_power_of_two()
            .unwrap_or(MAX_CAPACITY);
        return err(format!(
            "{} is not a usable ring capacity: it must be a power of two from 2 to \
             {MAX_CAPACITY} (e.g. {})",
            capacity.show(),
            hint.min(MAX_CAPACITY)
        ));
    }
    Ok(n as usize)
}

/// `--payload-size`, at most [`MAX_PAYLOAD`].
fn payload_size(l: &Layers) -> Result<usize, ConfigError> {
    let payload = l.pick("payload_size", l.args.payload_size);
    if payload.value > MAX_PAYLOAD {
        return err(format!(
            "{} is too large: a message can be at most {MAX_PAYLOAD} bytes (1 MiB)",
            payload.show()
        ));
    }
    Ok(payload.value as usize)
}

/// `--warmup`, shorter than a `--duration`.
fn warmup(l: &Layers, stop: Stop) -> Result<Duration, ConfigError> {
    let warmup = l.pick("warmup", l.args.warmup);
    let d = secs(&warmup, false)?;
    if let Stop::After(run) = stop
        && d >= run
    {
        return err(format!(
            "{} leaves nothing to measure: the warm-up must be shorter than the duration ({} s)",
            warmup.show(),
            run.as_secs_f64()
        ));
    }
    Ok(d)
}

/// `--report-interval`: none at 0, else at least 10 ms.
fn report_interval(l: &Layers) -> Result<Option<Duration>, ConfigError> {
    let interval = l.pick("report_interval", l.args.report_interval);
    if interval.value == 0.0 {
        return Ok(None);
    }
    // 0 (no progress lines) is taken above: a negative value is told it must be 0 or more.
    let d = secs(&interval, false)?;
    if d < Duration::from_millis(10) {
        return err(format!(
            "{} is too short: use at least 0.01 s, or 0 for no progress lines",
            interval.show()
        ));
    }
    Ok(Some(d))
}

/// `--retry-for`, at most [`MAX_RETRY`].
fn retry_for(l: &Layers) -> Result<Duration, ConfigError> {
    let retry = l.pick("retry_for", l.args.retry_for);
    if retry.value.is_finite() && retry.value > MAX_RETRY.as_secs_f64() {
        return err(format!(
            "{} is too long: at most {} s (one day)",
            retry.show(),
            MAX_RETRY.as_secs()
        ));
    }
    secs(&retry, false)
}

/// The metrics endpoint: `--metrics-addr` (with how it was given) and `--metrics-linger`,
/// which needs it.
type Metrics = (Option<(std::net::SocketAddr, String)>, Duration);

fn metrics(l: &Layers) -> Result<Metrics, ConfigError> {
    let a = &l.args;
    let addr = match l.pick_set("metrics_addr", a.metrics_addr.as_deref()) {
        Some(p) => Some((
            url::parse_addr(p.value)
                .map_err(|why| ConfigError(format!("{}: {why}", l.from("metrics_addr"))))?,
            p.show(),
        )),
        None => None,
    };
    let linger = match l.pick_set("metrics_linger", a.metrics_linger) {
        Some(p) if addr.is_none() && p.value != 0.0 => {
            return err(format!(
                "{} needs --metrics-addr: there is no endpoint to keep serving",
                p.show()
            ));
        }
        Some(p) => secs(&p, false)?,
        None => Duration::ZERO,
    };
    Ok((addr, linger))
}

/// The lane a source feeds: the one its `lane=` names, else the last.
fn lane_index(lanes: &[Lane], spec: &SourceSpec) -> usize {
    let named = spec
        .lane()
        .and_then(|n| lanes.iter().position(|l| l.name == n));
    named.unwrap_or(lanes.len().saturating_sub(1))
}

/// See [`Config::fed_lanes`].
fn fed_lanes(lanes: &[Lane], sources: &[SourceSpec], generated: bool) -> Vec<bool> {
    (0..lanes.len())
        .map(|i| generated || sources.iter().any(|s| lane_index(lanes, s) == i))
        .collect()
}

/// `--lanes`, checked against the sources' `lane=` and the totals split across the lanes.
fn pick_lanes(l: &Layers, c: &Config) -> Result<Vec<Lane>, ConfigError> {
    // A source as its layer gave it (`c.sources` is `l.args.source` parsed, in order).
    let given_source = |i: usize| l.pick("source", url::without_password(&l.args.source[i]));
    let Some(given) = l.pick_set("lanes", l.args.lanes.as_deref()) else {
        if let Some(i) = c.sources.iter().position(|s| s.lane().is_some()) {
            return err(format!(
                "{}: lane= needs --lanes to declare the lanes (e.g. --lanes high:1,low:9)",
                given_source(i).show()
            ));
        }
        return Ok(Vec::new());
    };
    let lanes =
        lanes::parse(given.value).map_err(|why| ConfigError(format!("{}: {why}", given.show())))?;
    let names: Vec<&str> = lanes.iter().map(|l| l.name.as_str()).collect();
    for (i, spec) in c.sources.iter().enumerate() {
        if let Some(lane) = spec.lane()
            && !names.contains(&lane)
        {
            return err(format!(
                "{}: lane `{lane}` is not declared by {} (lanes: {})",
                given_source(i).show(),
                given.show(),
                names.join(", ")
            ));
        }
    }
    let k = lanes.len() as u64;
    let too_few = |what: String| {
        err(format!(
            "{what} cannot be split across the {k} lanes of {}: every lane needs at least 1",
            given.show()
        ))
    };
    if c.generated() && (c.producers as u64) < k {
        return too_few(l.pick("producers", c.producers).show());
    }
    // The rate is split over the lanes that have a source only.
    let fed = fed_lanes(&lanes, &c.sources, c.generated());
    let fed = fed.iter().filter(|&&f| f).count() as u64;
    if c.rps > 0 && c.rps < fed {
        return err(format!(
            "{} cannot be split across the {fed} lanes that have a source: each needs at least 1",
            l.pick("rps", c.rps).show()
        ));
    }
    if let Stop::Messages(n) = c.stop
        && c.generated()
        && n < k
    {
        return too_few(l.pick("messages", n).show());
    }
    Ok(lanes)
}

/// Options set (by any layer) that the chosen sources ignore.
fn unused_options(l: &Layers, generated: bool) -> Vec<String> {
    let (ids, applies): (&[&str], &str) = if generated {
        (&["max_record_bytes"], "file and stdin sources")
    } else {
        (&["producers", "payload_size"], "--source generate")
    };
    ids.iter()
        .filter(|id| l.is_set(id))
        .map(|id| format!("{} applies to {applies} only: ignored", l.from(id)))
        .collect()
}

/// The ring, the records each source holds before pushing and the consumers' batches, full of
/// the largest records, plus the in-flight byte budget of read records, must fit the guard.
fn memory_guard(cfg: &Config) -> Result<(), ConfigError> {
    let threads = cfg.source_threads();
    let held = threads as u64 * crate::flow::chunk(cfg.rps, threads, cfg.capacity);
    let slots = cfg.capacity as u64 * cfg.lanes.len().max(1) as u64 + held;
    // Generated records have a fixed size; read ones share the in-flight byte budget.
    let (record_bytes, in_flight) = if cfg.generated() {
        (cfg.payload_size, 0)
    } else {
        (
            0,
            crate::flow::ingest_bound(cfg.sources.len(), cfg.max_record_bytes as u64),
        )
    };
    let (consumers, batch_size) = (cfg.consumers_max, cfg.batch_size);
    let per_record = (std::mem::size_of::<Record>() + record_bytes) as u128;
    let buffered = per_record * (slots as u128 + consumers as u128 * batch_size as u128)
        + u128::from(in_flight);
    if buffered > MAX_BUFFER_BYTES {
        return err(format!(
            "{slots} records in the ring and the sources' hands + {consumers} consumers x \
             batch-size {batch_size} records of \
             {record_bytes} bytes could hold {:.1} GiB in memory; keep it under {} GiB (lower \
             --capacity, --batch-size, --payload-size or --producers)",
            buffered as f64 / f64::from(1u32 << 30),
            MAX_BUFFER_BYTES >> 30
        ));
    }
    Ok(())
}

/// `--source`, each parsed; `generate` when none is given.
fn sources(l: &Layers) -> Result<Vec<SourceSpec>, ConfigError> {
    let from = l.from("source");
    if l.args.source.is_empty() {
        if l.is_set("source") {
            return err(format!(
                "{from} names no source: give at least one, or leave it out"
            ));
        }
        return Ok(vec![SourceSpec::Generate]);
    }
    let mut specs = Vec::new();
    for url in &l.args.source {
        let spec = url::parse_source(url).map_err(|why| {
            ConfigError(format!(
                "{}: {why}",
                Picked {
                    value: url::without_password(url),
                    from: from.clone(),
                    raw: None,
                }
                .show()
            ))
        })?;
        if specs.contains(&spec) {
            return err(format!("{from} names {spec} twice"));
        }
        specs.push(spec);
    }
    let stdins = specs
        .iter()
        .filter(|s| matches!(s, SourceSpec::Stdin { .. }))
        .count();
    if stdins > 1 {
        return err(format!("{from}: stdin can be read by one source only"));
    }
    if specs.iter().any(|s| matches!(s, SourceSpec::Nats(_))) && specs.len() > 1 {
        return err(format!(
            "{from}: a nats:// source cannot be combined with other sources; run it alone"
        ));
    }
    if specs.len() > 1 && specs.contains(&SourceSpec::Generate) {
        return err(format!(
            "{from}: generate cannot be combined with other sources; run it alone"
        ));
    }
    Ok(specs)
}

/// Sources and sinks that cannot work together.
fn pairing(sources: &[SourceSpec], sink: &SinkSpec) -> Result<(), ConfigError> {
    let nats_source = sources.iter().any(|s| matches!(s, SourceSpec::Nats(_)));
    match sink {
        SinkSpec::Nats(_) if nats_source => {
            err("a nats:// source and a nats:// sink: use NATS itself to copy between streams")
        }
        SinkSpec::Nats(_) if sources.iter().any(|s| matches!(s, SourceSpec::File { .. })) => err(
            "a file: source cannot be published to NATS: a file's position is kept in a \
             database sink (publish with --source stdin, e.g. `tail -F FILE | pc-host ...`)",
        ),
        _ => Ok(()),
    }
}

/// `--sink`, or `--db` as its shorthand: the higher layer wins; both in one layer is an error.
fn sink(l: &Layers) -> Result<SinkSpec, ConfigError> {
    let sink = l.pick_set("sink", l.args.sink.clone());
    let db = l.pick_set("db", l.args.db.clone());
    let use_db = match (&sink, &db) {
        (Some(s), Some(d)) if s.from.rank() == d.from.rank() => {
            return err(format!(
                "{} and {} both say where to write: give only one",
                s.from, d.from
            ));
        }
        (Some(s), Some(d)) => d.from.rank() > s.from.rank(),
        (None, Some(_)) => true,
        (_, None) => false,
    };
    if use_db {
        let d = db.expect("checked above");
        if d.value.as_os_str().is_empty() {
            return err(format!("{} is empty: give a database file path", d.from));
        }
        url::check_sqlite_path(&d.value.to_string_lossy())
            .map_err(|why| ConfigError(format!("{}: {why}", d.from)))?;
        return Ok(SinkSpec::Sqlite(d.value));
    }
    match sink {
        Some(s) => url::parse_sink(&s.value).map_err(|why| {
            let hidden = url::without_password(&s.value);
            ConfigError(format!("{}: {why}", s.show().replace(&s.value, &hidden)))
        }),
        None => Ok(SinkSpec::Sqlite(PathBuf::from(DEFAULT_DB))),
    }
}

/// `--page-size`, checked: a power of two SQLite accepts, for a SQLite sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSize {
    pub bytes: u32,
    /// Where it was set, for messages: `--page-size 4096`, `PC_HOST_PAGE_SIZE=4096`, or the
    /// config file's line.
    pub from: String,
}

/// `--page-size`: a power of two SQLite accepts, and only for a SQLite sink.
fn page_size(l: &Layers, sink: &SinkSpec) -> Result<Option<PageSize>, ConfigError> {
    let Some(p) = l.pick_set("page_size", l.args.page_size) else {
        return Ok(None);
    };
    if !matches!(sink, SinkSpec::Sqlite(_)) {
        return err(format!(
            "{}: only a SQLite database has a page size (the sink is {sink})",
            p.show()
        ));
    }
    if !(512..=65_536).contains(&p.value) || !p.value.is_power_of_two() {
        return err(format!(
            "{} is not a SQLite page size: use a power of two from 512 to 65536",
            p.show()
        ));
    }
    Ok(Some(PageSize {
        bytes: p.value,
        from: p.show(),
    }))
}

/// SQLite's `synchronous` for the run. Set anywhere, it is for a SQLite sink only: a server
/// keeps its own durability settings, and a NATS sink's is its stream's. Unset, it is `full`
/// into SQLite when a source reads NATS (a record is acknowledged to JetStream once its commit returns,
/// and the stream then deletes it: only a commit that survives power loss keeps that
/// promise), else `normal`.
fn synchronous(
    l: &Layers,
    sink: &SinkSpec,
    sources: &[SourceSpec],
    given: Synchronous,
) -> Result<Synchronous, ConfigError> {
    let p = l.pick("synchronous", given.as_str());
    if matches!(p.from, layers::Origin::Default) {
        let acks = sources.iter().any(|s| matches!(s, SourceSpec::Nats(_)));
        let sqlite = matches!(sink, SinkSpec::Sqlite(_));
        return Ok(if acks && sqlite {
            Synchronous::Full
        } else {
            given
        });
    }
    if !matches!(sink, SinkSpec::Sqlite(_)) {
        return err(format!(
            "{}: only a SQLite sink has this setting (the sink is {sink}: its durability is \
             the server's or the stream's own)",
            p.show()
        ));
    }
    Ok(given)
}

/// `--pin` / `--no-pin` on the command line (the last one wins), then `PC_HOST_PIN`, then
/// the file, then pinned. (The variable is read here, not by clap, so that a flag can beat it.)
fn pick_pin(l: &Layers) -> Result<bool, ConfigError> {
    let (pin, no_pin) = (l.args.pin, l.args.no_pin);
    if l.on_command_line("no_pin") && no_pin {
        return Ok(false);
    }
    if l.on_command_line("pin") && pin {
        return Ok(true);
    }
    if let Some(value) = std::env::var_os("PC_HOST_PIN") {
        let value = value.to_string_lossy();
        return match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            // As every other PC_HOST_ variable set to nothing is refused.
            "" => err("PC_HOST_PIN is set but empty: use true or false, or unset it".to_string()),
            _ => err(format!(
                "PC_HOST_PIN={value} is not a boolean: use true or false (or 1/0, yes/no, on/off)"
            )),
        };
    }
    // The file's `pin` arrives as the flag it stands for; neither means the default.
    Ok(!no_pin || pin)
}

fn count(p: &Picked<u64>, name: &str, min: u64, max: u64) -> Result<usize, ConfigError> {
    if p.value < min {
        return err(format!(
            "{} is too small: {name} must be at least {min}",
            p.show()
        ));
    }
    if p.value > max {
        return err(format!(
            "{} is too large: {name} can be at most {max}",
            p.show()
        ));
    }
    usize::try_from(p.value).or_else(|_| err(format!("{} does not fit this machine", p.show())))
}

/// `--consumers N` or `MIN..MAX` (MIN == MAX is N): the fewest and the most consumers.
fn consumer_range(p: &Picked<&str>) -> Result<(usize, usize), ConfigError> {
    let number = |v: &str| v.trim().parse::<u64>().ok();
    let bad = |why: &str| {
        err(format!(
            "{}: {why}: give a count N or a range MIN..MAX (e.g. 1..8)",
            p.show()
        ))
    };
    // The option takes values that start with `-` (so `-1..4` reaches the checks below), so
    // a following option is taken for its value when the value is missing.
    if p.value.starts_with("--") {
        return err(format!(
            "--consumers needs a value before {}: give a count N or a range MIN..MAX (e.g. 1..8)",
            p.value
        ));
    }
    let Some((lo, hi)) = p.value.split_once("..") else {
        let Some(n) = number(p.value) else {
            let negative = p
                .value
                .trim()
                .strip_prefix('-')
                .is_some_and(|n| n.parse::<f64>().is_ok());
            if negative {
                return bad("it must not be negative");
            }
            return bad(&format!("invalid value '{}'", p.value));
        };
        let n = count(
            &Picked {
                value: n,
                from: p.from.clone(),
                raw: None,
            },
            "consumers",
            1,
            MAX_THREADS,
        )?;
        return Ok((n, n));
    };
    let (Some(min), Some(max)) = (number(lo), number(hi)) else {
        return bad("MIN and MAX must both be whole numbers");
    };
    if min == 0 {
        return bad("MIN must be at least 1");
    }
    if min > max {
        return bad("MIN is more than MAX");
    }
    if max > MAX_THREADS {
        return bad(&format!("MAX can be at most {MAX_THREADS}"));
    }
    Ok((min as usize, max as usize))
}

/// `--max-record-bytes` (shown as `shown` in the error), checked: 1 to [`MAX_RECORD`] bytes.
///
/// # Errors
/// One line naming the value.
pub fn record_limit(value: u64, shown: &str) -> Result<usize, ConfigError> {
    if !(1..=MAX_RECORD).contains(&value) {
        return err(format!(
            "{shown} is not usable: a record limit must be 1..={MAX_RECORD} bytes"
        ));
    }
    Ok(usize::try_from(value).unwrap_or(usize::MAX))
}

/// Seconds to a `Duration`: finite, not negative, at most `MAX_SECS`; `positive` also rejects 0
/// and anything under a nanosecond.
fn secs(p: &Picked<f64>, positive: bool) -> Result<Duration, ConfigError> {
    let v = p.value;
    if !v.is_finite() {
        return err(format!(
            "{} is not a usable number of seconds: give a finite number",
            p.show()
        ));
    }
    if v < 0.0 || (positive && v == 0.0) {
        let want = if positive { "more than 0" } else { "0 or more" };
        return err(format!(
            "{} is not a usable number of seconds: it must be {want}",
            p.show()
        ));
    }
    if v > MAX_SECS {
        return err(format!("{} is too long: at most {MAX_SECS} s", p.show()));
    }
    let d = Duration::from_secs_f64(v);
    if positive && d.is_zero() {
        return err(format!(
            "{} is too short: it is less than a nanosecond",
            p.show()
        ));
    }
    Ok(d)
}

fn millis(p: &Picked<f64>) -> Result<Duration, ConfigError> {
    let v = p.value;
    if !v.is_finite() || !(0.0..=60_000.0).contains(&v) {
        return err(format!(
            "{} is not a usable wait: it must be 0..=60000 ms",
            p.show()
        ));
    }
    Ok(Duration::from_secs_f64(v / 1000.0))
}

/// `--duration` or `--messages`: the higher layer wins; both in one layer is an error.
/// For the generator: 10 s unless one is given; other sources run to their end unless one is.
fn stop(
    duration: Option<Picked<f64>>,
    messages: Option<Picked<u64>>,
    generated: bool,
) -> Result<Stop, ConfigError> {
    let pick_duration = match (&duration, &messages) {
        (Some(d), Some(m)) if d.from.rank() == m.from.rank() => {
            return err(format!(
                "{} and {} both say when to stop: give only one",
                d.from, m.from
            ));
        }
        (Some(d), Some(m)) => d.from.rank() > m.from.rank(),
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (None, None) if generated => return Ok(Stop::After(Duration::from_secs(10))),
        (None, None) => return Ok(Stop::AtEnd),
    };
    if pick_duration {
        let d = duration.expect("checked above");
        Ok(Stop::After(secs(&d, true)?))
    } else {
        let m = messages.expect("checked above");
        if m.value == 0 {
            return err(format!("{}: give at least 1 message", m.show()));
        }
        if m.value > 1 << 48 {
            return err(format!("{} is too many: at most 2^48", m.show()));
        }
        Ok(Stop::Messages(m.value))
    }
}

impl Config {
    /// The effective configuration as JSON: recorded in the database and in `--output json`.
    pub fn to_json(&self) -> serde_json::Value {
        let (duration_s, messages) = match self.stop {
            Stop::After(d) => (Some(d.as_secs_f64()), None),
            Stop::Messages(n) => (None, Some(n)),
            Stop::AtEnd => (None, None),
        };
        let sources: Vec<String> = self.sources.iter().map(ToString::to_string).collect();
        json!({
            "sources": sources,
            "sink": self.sink.to_string(),
            "producers": self.producers,
            "consumers": self.consumers,
            "consumers_max": self.consumers_max,
            "scale_interval_s": self.scale_interval.as_secs_f64(),
            "rps": self.rps,
            "duration_s": duration_s,
            "messages": messages,
            "capacity": self.capacity,
            "batch_size": self.batch_size,
            "batch_wait_ms": self.batch_wait.as_secs_f64() * 1000.0,
            "batch_wait_fixed": self.batch_wait_fixed,
            "payload_size": self.payload_size,
            "max_record_bytes": self.max_record_bytes,
            "db": self.sink_name(),
            // A SQLite setting: none for another sink.
            "synchronous": self.sqlite_path().map(|_| self.synchronous.as_str()),
            "page_size": self.page_size.as_ref().map(|p| p.bytes),
            "pin": self.pin,
            "warmup_s": self.warmup.as_secs_f64(),
            "report_interval_s": self.report_interval.map_or(0.0, |d| d.as_secs_f64()),
            "busy_timeout_ms": self.busy_timeout.as_millis() as u64,
            "retry_for_s": self.retry_for.as_secs_f64(),
            // Absolute, as the sources are: `verify --source` looks the file up from wherever
            // it runs.
            "dead_letter": self.dead_letter.as_ref().map(|p| {
                std::path::absolute(p).unwrap_or_else(|_| p.clone()).display().to_string()
            }),
            "metrics_addr": self.metrics_addr.as_ref().map(|(a, _)| a.to_string()),
            "metrics_linger_s": self.metrics_linger.as_secs_f64(),
            "latency_log": self.latency_log.as_ref().map(|p| p.display().to_string()),
            "profile": self.profile.as_ref().map(|p| p.display().to_string()),
            "lanes": (!self.lanes.is_empty()).then(|| self.lanes.iter().map(|l| json!({
                "name": l.name, "weight": l.weight,
            })).collect::<Vec<_>>()),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// The configuration `args` resolve to (with no `PC_HOST_*` variable set: see the test).
    fn resolved(args: &[&str]) -> super::Config {
        let argv = std::iter::once("pc-host").chain(args.iter().copied());
        let matches = super::cli::Cli::command()
            .try_get_matches_from(argv)
            .unwrap();
        super::resolve(&super::layers::Layers::load(matches).unwrap()).unwrap()
    }

    /// SQLite has one writer, so one consumer unless told; a generated run into a sink with a
    /// connection per consumer gets five; `--consumers` wins everywhere.
    #[test]
    fn consumers_default_to_one_but_five_for_generate_into_a_sink_written_in_parallel() {
        // clap reads the variables, and a set one would be a layer under these flags.
        if let Some((name, _)) =
            std::env::vars_os().find(|(k, _)| k.as_encoded_bytes().starts_with(b"PC_HOST_"))
        {
            println!(
                "SKIP: {} is set: the defaults are not what this run sees",
                name.display()
            );
            return;
        }
        let pg = "postgres://u@127.0.0.1:5432/db";
        let cases: [(&[&str], usize); 7] = [
            (&[], 1),
            (&["--db", "x.db"], 1),
            (&["--sink", pg], 5),
            (&["--sink", "mysql://root@127.0.0.1:3306/test"], 5),
            (&["--sink", "nats://127.0.0.1:4222/s?stream=S"], 5),
            (&["--source", "stdin", "--sink", pg], 1),
            (&["--consumers", "3"], 3),
        ];
        for (args, want) in cases {
            let cfg = resolved(args);
            assert_eq!((cfg.consumers, cfg.consumers_max), (want, want), "{args:?}");
        }
    }
}
