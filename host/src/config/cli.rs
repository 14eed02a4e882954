//! The command line, and with it the one table of run options: each option's flag, its
//! environment variable, its default and its help are stated once, here. The `--config` file
//! uses the flag names as keys and goes through the same parsers (see `layers.rs`).

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// The most bytes a record may have by default (`--max-record-bytes`).
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1 << 20;

/// pc-host moves records from sources through a bounded pc-core ring into a sink: by default,
/// N generator threads rate-limited by one shared token bucket, and M pinned consumers
/// committing to SQLite in batches. Reports produced, consumed and stored counts, throughput
/// and latency (intended send or read -> batch committed).
///
/// Every run option can also come from the environment (PC_HOST_<NAME>, e.g.
/// PC_HOST_PRODUCERS=4) or from a TOML file given with --config (same names as the flags,
/// without the dashes in front: `producers = 4`, `batch-size = 5000`, `source = ["file:a.log"]`).
/// Flags beat the environment, which beats the file.
#[derive(Debug, Parser)]
#[command(name = "pc-host", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a database written by pc-host: row counts; for every completed generated run,
    /// and every pc-host run that published through NATS once its end message is stored, that
    /// each producer's sequence numbers are all there exactly once (no duplicate, no gap);
    /// with --source, that the stored rows of a file are exactly its lines, in order.
    Verify(VerifyArgs),
    /// Draw a run's throughput (produced, stored) and latency (p50, p99, max) over time, from
    /// the `run_intervals` table, as an SVG file.
    Plot(PlotArgs),
}

/// How long `verify` and `plot` wait for a lock.
#[derive(Debug, Args)]
pub struct ReadBusy {
    /// How long to wait, in milliseconds, for a database or table another client holds
    /// locked before giving up
    #[arg(
        long = "busy-timeout-ms",
        value_name = "MS",
        env = "PC_HOST_BUSY_TIMEOUT_MS",
        default_value_t = 5000,
        allow_negative_numbers = true,
        value_parser = busy_ms
    )]
    pub ms: u64,
}

impl ReadBusy {
    /// The wait, as a duration.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.ms)
    }
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The SQLite database the run wrote (it must exist)
    #[arg(
        long,
        value_name = "PATH",
        env = "PC_HOST_DB",
        default_value = "pc-host.db",
        value_parser = sqlite_file()
    )]
    pub db: PathBuf,

    /// The sink to plot from instead of --db: `postgres://...` or `mysql://...` (or
    /// `sqlite:PATH`); as for a run, a flag beats a variable, and one layer giving both is an
    /// error
    #[arg(long, value_name = "URL", env = "PC_HOST_SINK")]
    pub sink: Option<String>,

    /// How `sink` was given, for messages: `--sink` or `PC_HOST_SINK=` (set by `main`).
    #[arg(skip = "--sink ".to_string())]
    pub sink_from: String,

    /// The run to draw [default: the last run that has interval rows]
    #[arg(long, value_name = "ID", allow_negative_numbers = true, value_parser = run_id)]
    pub run: Option<i64>,

    /// The SVG file to write (created; an existing file is not overwritten unless pc-host
    /// wrote it)
    #[arg(short = 'o', long = "output", value_name = "FILE.svg")]
    pub output: PathBuf,

    #[command(flatten)]
    pub busy: ReadBusy,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The SQLite database to check (it must exist)
    #[arg(
        long,
        value_name = "PATH",
        env = "PC_HOST_DB",
        default_value = "pc-host.db",
        value_parser = sqlite_file()
    )]
    pub db: PathBuf,

    /// The sink to check instead of --db: `postgres://...` or `mysql://...` (or `sqlite:PATH`);
    /// as for a run, a flag beats a variable, and one layer giving both is an error
    #[arg(long, value_name = "URL", env = "PC_HOST_SINK")]
    pub sink: Option<String>,

    /// How `sink` was given, for messages: `--sink` or `PC_HOST_SINK=` (set by `main`).
    #[arg(skip = "--sink ".to_string())]
    pub sink_from: String,

    /// Check only this run (see the `runs` table); default: every run
    #[arg(long, value_name = "ID", allow_negative_numbers = true, value_parser = run_id)]
    pub run: Option<i64>,

    /// Check that the rows stored from this file (`file:PATH`) are exactly its lines, in file
    /// order, read with the format its runs recorded unless `?format=` names one
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,

    /// As for the run: lines longer than this were rejected at ingest, not lost [default: the
    /// limit the runs that read the file recorded, else 1048576]
    #[arg(
        long,
        value_name = "BYTES",
        allow_negative_numbers = true,
        value_parser = not_negative::<u64>
    )]
    pub max_record_bytes: Option<u64>,

    /// The dead-letter file that holds the records expected missing from the rows: the seqs
    /// of every generated run checked, or with --source the file's lines [default: the file
    /// each run recorded]
    #[arg(long, value_name = "PATH")]
    pub dead_letter: Option<PathBuf>,

    #[command(flatten)]
    pub busy: ReadBusy,
}

/// The options of a run. An `Option` has no fixed default (it depends on other options, or
/// the option is off when not given).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where records come from: `generate` (synthetic messages), `stdin` (or `-`),
    /// `file:PATH[?follow=true[&rotate_wait=1s]][&format=text|jsonl|dead-letter]` (repeat for
    /// several files; `rotate_wait`: how long a rotated file must stop growing before the
    /// source moves to the new one), or
    /// `nats://HOST:PORT/STREAM[?consumer=NAME][&until=empty][&ack_wait=30s]` (a JetStream
    /// durable consumer); stdin, file: and nats:// sources may add `lane=NAME` (see --lanes)
    /// [default: generate]
    #[arg(long, value_name = "URL", env = "PC_HOST_SOURCE", action = ArgAction::Append)]
    pub source: Vec<String>,

    /// Where records go: `sqlite:PATH`, `postgres://USER@HOST:PORT/DB` (or `postgresql://`),
    /// `mysql://USER@HOST:PORT/DB` (or `mariadb://`), or `nats://HOST:PORT/SUBJECT[?stream=NAME]`
    /// (published to JetStream) [default: sqlite:pc-host.db]
    #[arg(long, value_name = "URL", env = "PC_HOST_SINK")]
    pub sink: Option<String>,

    /// Shorthand for --sink sqlite:PATH
    #[arg(long, value_name = "PATH", env = "PC_HOST_DB")]
    pub db: Option<PathBuf>,

    /// Generator threads (--source generate)
    #[arg(
        long,
        value_name = "N",
        env = "PC_HOST_PRODUCERS",
        default_value_t = 10,
        allow_negative_numbers = true,
        value_parser = not_negative::<u64>
    )]
    pub producers: u64,

    /// Consumer threads, each pinned, taking turns on the one SQLite writer (server sinks: a
    /// connection each). MIN..MAX (e.g. 1..8): start with MIN and let the scaler add or remove
    /// one at a time, never losing a record (see --scale-interval) [default: 1; 5 for generate
    /// into PostgreSQL, MySQL or NATS]
    #[arg(
        long,
        value_name = "N|MIN..MAX",
        env = "PC_HOST_CONSUMERS",
        allow_hyphen_values = true
    )]
    pub consumers: Option<String>,

    /// With --consumers MIN..MAX: seconds between the scaler's looks at the queue. A consumer it
    /// removes first commits what it took: nothing is lost. It adds one (up to MAX) after 2
    /// intervals in a row of pressure: the queue holds more than 1/64 of the ring and more than
    /// at the last look, or at least half the ring, or a record popped in the interval had
    /// waited in the ring a whole interval (from when it was read, or due). It removes one
    /// (down to MIN) after 3 intervals in a row with the queue at most 1/64 of the ring and no
    /// such wait. The queue counts the ring's records and those popped and not yet settled.
    /// Consumers past MIN run unpinned
    #[arg(
        value_parser = number,
        long,
        value_name = "SECS",
        env = "PC_HOST_SCALE_INTERVAL",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub scale_interval: f64,

    /// Target rate in records/s, in total across sources (one shared token bucket; with
    /// --lanes one per lane, split by weight over the lanes that have a source); 0 = unlimited
    /// [default: 500 for generate, unlimited for other sources]
    #[arg(
        long,
        value_name = "MSG_PER_S",
        env = "PC_HOST_RPS",
        allow_negative_numbers = true,
        value_parser = not_negative::<u64>
    )]
    pub rps: Option<u64>,

    /// Produce for SECS seconds (fractions allowed), then drain [default: 10 for generate
    /// unless --messages is given; other sources run to their end. If both are given, the one
    /// from the higher layer (flag, environment, config file) wins; both in one layer is an
    /// error]
    #[arg(
        value_parser = number,
        long,
        value_name = "SECS",
        env = "PC_HOST_DURATION",
        allow_negative_numbers = true
    )]
    pub duration: Option<f64>,

    /// Accept exactly N records in total (generate: split evenly across producers; with --lanes
    /// first by weight across the lanes), then drain
    #[arg(
        long,
        value_name = "N",
        env = "PC_HOST_MESSAGES",
        allow_negative_numbers = true,
        value_parser = not_negative::<u64>
    )]
    pub messages: Option<u64>,

    /// Priority lanes, highest first: NAME:WEIGHT,... (e.g. high:1,low:9). Each lane has its
    /// own ring of --capacity slots; consumers take from the highest non-empty lane first
    /// (after every 7 such pops one looks at a lower lane first, so none starves). The
    /// generator's --producers, --rps and --messages are split across the lanes by weight
    /// (largest remainder, then at least 1 each: fewer than the lanes is an error); a lane's
    /// producers take tokens only from the lane's own bucket (its share of --rps), so a full
    /// lower lane never delays a higher one. --rps 0: every lane produces as fast as its ring
    /// takes. Other sources go to the lane named by their `lane=NAME` (default: the last lane)
    /// and share its bucket; their --messages stays one total [default: no lanes, one ring]
    #[arg(long, value_name = "NAME:WEIGHT,...", env = "PC_HOST_LANES")]
    pub lanes: Option<String>,

    /// Ring capacity in slots (records; per lane with --lanes): a power of two, 2..=16777216
    #[arg(
        long,
        value_name = "SLOTS",
        env = "PC_HOST_CAPACITY",
        default_value_t = 65_536,
        allow_negative_numbers = true,
        value_parser = not_negative::<u64>
    )]
    pub capacity: u64,

    /// Maximum rows per transaction, any sink (1 to 1000000)
    #[arg(
        long,
        value_name = "ROWS",
        env = "PC_HOST_BATCH_SIZE",
        default_value_t = 10_000,
        allow_negative_numbers = true,
        value_parser = not_negative::<u64>
    )]
    pub batch_size: u64,

    /// By default batches adapt: a free sink gets a batch at once, and a consumer gathers more
    /// only while the sink is busy, for up to 2 ms. Given, a consumer waits up to MS for its
    /// batch to fill, busy or not (fractions allowed; 0 = commit whatever is ready)
    #[arg(
        value_parser = number,
        long,
        value_name = "MS",
        env = "PC_HOST_BATCH_WAIT_MS",
        default_value_t = 2.0,
        hide_default_value = true,
        allow_negative_numbers = true
    )]
    pub batch_wait_ms: f64,

    /// Generated message size in bytes: each text is padded with '.' to this length (texts
    /// already longer are kept whole); 0..=1048576
    #[arg(
        long,
        value_name = "BYTES",
        env = "PC_HOST_PAYLOAD_SIZE",
        default_value_t = 64,
        allow_negative_numbers = true,
        value_parser = not_negative::<u64>
    )]
    pub payload_size: u64,

    /// Longest record read from stdin, a file or a NATS stream; longer ones are rejected
    /// (counted and skipped); 1..=67108864
    #[arg(
        long,
        value_name = "BYTES",
        env = "PC_HOST_MAX_RECORD_BYTES",
        default_value_t = DEFAULT_MAX_RECORD_BYTES,
        allow_negative_numbers = true,
        value_parser = not_negative::<u64>
    )]
    pub max_record_bytes: u64,

    /// SQLite durability: normal = survives a process crash, full = also survives power loss
    /// [default: normal; full when a source reads NATS]
    #[arg(
        long,
        value_name = "MODE",
        env = "PC_HOST_SYNCHRONOUS",
        default_value = "normal",
        hide_default_value = true
    )]
    pub synchronous: Synchronous,

    /// SQLite page size in bytes for a new database, a power of two from 512 to 65536. Each
    /// commit writes at least one page to the WAL, so at moderate rates, where commits hold a
    /// few rows, smaller pages write less to disk and commit sooner; larger pages store faster
    /// in bulk. An existing database keeps the size its first run gave it: given, it must match
    /// [default: 4096 for a run throttled to 50000 records/s or less, 16384 for a faster or
    /// unthrottled one]
    #[arg(
        long,
        value_name = "BYTES",
        env = "PC_HOST_PAGE_SIZE",
        allow_negative_numbers = true,
        value_parser = not_negative::<u32>
    )]
    pub page_size: Option<u32>,

    /// Pin producer and consumer threads to cores (the default); threads that outnumber the
    /// cores share them round-robin [env: PC_HOST_PIN=true|false (also 1|0, yes|no, on|off)]
    #[arg(long, action = ArgAction::SetTrue, overrides_with = "no_pin")]
    pub pin: bool,

    /// Do not pin threads to cores
    #[arg(long, action = ArgAction::SetTrue, overrides_with = "pin")]
    pub no_pin: bool,

    /// Exclude records whose intended send time falls in the first SECS seconds from the
    /// latency figures (they still count everywhere else)
    #[arg(
        value_parser = number,
        long,
        value_name = "SECS",
        env = "PC_HOST_WARMUP",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub warmup: f64,

    /// Seconds between progress lines on stderr; 0 = none
    #[arg(
        value_parser = number,
        long,
        value_name = "SECS",
        env = "PC_HOST_REPORT_INTERVAL",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub report_interval: f64,

    /// Final summary format on stdout: text, or exactly one JSON object
    #[arg(
        long,
        value_name = "FORMAT",
        env = "PC_HOST_OUTPUT",
        default_value = "text"
    )]
    pub output: Output,

    /// How long one attempt waits, in milliseconds, for a database or table another client
    /// holds locked; a commit that waits longer fails and is retried for up to --retry-for (at
    /// the start, the run is refused instead)
    #[arg(
        long,
        value_name = "MS",
        env = "PC_HOST_BUSY_TIMEOUT_MS",
        default_value_t = 5000,
        allow_negative_numbers = true,
        value_parser = busy_ms
    )]
    pub busy_timeout_ms: u64,

    /// How long to keep retrying a commit that failed in a way that may pass (database locked
    /// past the busy timeout, I/O error, disk full), with backoff; meanwhile the ring fills and
    /// the sources wait. Then the run stops (exit 1). 0 = no retries; at most 86400
    #[arg(
        value_parser = number,
        long,
        value_name = "SECS",
        env = "PC_HOST_RETRY_FOR",
        default_value_t = 60.0,
        allow_negative_numbers = true
    )]
    pub retry_for: f64,

    /// JSON-lines file for records that cannot be stored: rejected lines, records the database
    /// refuses, and generated or stdin records given up on when the sink fails. Created if
    /// missing; an existing file must be a pc-host dead-letter file. Read one back with
    /// --source file:PATH?format=dead-letter
    #[arg(long, value_name = "FILE", env = "PC_HOST_DEAD_LETTER")]
    pub dead_letter: Option<PathBuf>,

    /// Serve Prometheus metrics (/metrics), /health and /ready over HTTP at HOST:PORT (a port
    /// alone listens on 127.0.0.1; port 0 picks a free one, printed on stderr before the header)
    #[arg(long, value_name = "HOST:PORT", env = "PC_HOST_METRICS_ADDR")]
    pub metrics_addr: Option<String>,

    /// With --metrics-addr: once the run has ended and its summary is written, keep serving
    /// /metrics, /health and /ready for up to SECS, so that a scraper reads the final counts;
    /// a signal ends the wait at once [default: 0]
    #[arg(
        value_parser = number,
        long,
        value_name = "SECS",
        env = "PC_HOST_METRICS_LINGER",
        allow_negative_numbers = true
    )]
    pub metrics_linger: Option<f64>,

    /// Write each report interval's latency histogram to FILE, in HdrHistogram's interval-log
    /// format
    #[arg(long, value_name = "FILE", env = "PC_HOST_LATENCY_LOG")]
    pub latency_log: Option<PathBuf>,

    /// Write a CPU flame graph of the run to FILE.svg when it ends
    #[arg(long, value_name = "FILE.svg", env = "PC_HOST_PROFILE")]
    pub profile: Option<PathBuf>,

    /// TOML file with any of the options above (keys as the flag names: `producers = 4`)
    #[arg(long, value_name = "FILE", env = "PC_HOST_CONFIG")]
    pub config: Option<PathBuf>,
}

/// SQLite's `synchronous` setting for the writer (the journal is always WAL).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Synchronous {
    /// fsync the WAL only at checkpoints: a process crash loses nothing committed; a power
    /// loss may roll back the last commits (the file stays consistent).
    Normal,
    /// fsync the WAL at every commit: committed data also survives power loss.
    Full,
}

impl Synchronous {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Full => "full",
        }
    }
}

/// The format of the final summary on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A human-readable summary.
    Text,
    /// Exactly one JSON object.
    Json,
}

/// `verify` and `plot`'s `--db`: a path SQLite will open as a file name, as a run's `--db` is
/// checked (`url::check_sqlite_path`); any bytes otherwise, as a path may hold.
fn sqlite_file() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PathBufValueParser::new().try_map(|path: PathBuf| {
        super::url::check_sqlite_path(&path.to_string_lossy()).map(|()| path)
    })
}

/// An unsigned number option's parser: a negative number is refused as one (the integer
/// parser alone says "invalid digit found in string"). The options that take these declare
/// `allow_negative_numbers`, so that `--rps -1` reaches this parser instead of clap taking
/// `-1` for an unknown flag.
fn not_negative<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr<Err = std::num::ParseIntError>,
{
    text.parse().map_err(|e: std::num::ParseIntError| {
        let negative = text
            .trim()
            .strip_prefix('-')
            .is_some_and(|n| n.parse::<f64>().is_ok());
        if negative {
            "it must not be negative".to_owned()
        } else if matches!(
            e.kind(),
            std::num::IntErrorKind::InvalidDigit | std::num::IntErrorKind::Empty
        ) {
            // `1.5`, `1e6`, `ten`, ``: std's "invalid digit found in string" names no fix.
            "it must be a whole number (digits only)".to_owned()
        } else if *e.kind() == std::num::IntErrorKind::PosOverflow {
            // std's "number too large to fit in target type" names a type, not the option.
            "it is too large for this option".to_owned()
        } else {
            e.to_string()
        }
    })
}

/// `--busy-timeout-ms`'s parser: a whole number of milliseconds, at most an hour (SQLite
/// takes a busy timeout of up to `i32::MAX` ms; a longer wait is a mistake).
fn busy_ms(text: &str) -> Result<u64, String> {
    let ms = not_negative::<u64>(text)?;
    if ms > 3_600_000 {
        return Err("it is too long: at most 3600000 ms (one hour)".to_owned());
    }
    Ok(ms)
}

/// A number option's parser (seconds, milliseconds): std's "invalid float literal" names no
/// fix, and the usual mistake is a unit (`--duration 10s`).
fn number(text: &str) -> Result<f64, String> {
    text.trim()
        .parse()
        .map_err(|_| "it must be a number, without a unit (e.g. 10 or 0.5)".to_owned())
}

/// `--run ID`'s parser: std's "invalid digit found in string" names no fix.
fn run_id(text: &str) -> Result<i64, String> {
    text.parse().map_err(|e: std::num::ParseIntError| {
        match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "no run id is that large"
            }
            _ => "a run id is a whole number (the database's `runs` table lists them)",
        }
        .to_owned()
    })
}
