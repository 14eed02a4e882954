//! Flags + environment + TOML file -> one validated [`Config`]. Errors are user-facing: one
//! line naming the option, where its value came from and what would be accepted.
//!
//! Layers, highest first: command-line flag, environment (`PC_HOST_*`), `--config` file,
//! built-in default. `--duration` and `--messages` are one choice: the highest layer that
//! sets either decides; one layer setting both is an error.

use std::path::PathBuf;
use std::time::Duration;

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde_json::json;

use crate::cli::{Output, RunArgs, Synchronous};
use crate::layers::{FileConfig, Layers, Picked, read_file};
use crate::producer::Msg;

/// The default database file, in the current directory.
pub const DEFAULT_DB: &str = "pc-host.db";

/// Limits that keep values sane; beyond them a value is a typo, not a load test.
pub const MAX_THREADS: u64 = 1024;
pub const MAX_CAPACITY: u64 = 1 << 24;
pub const MAX_PAYLOAD: u64 = 1 << 20;
pub const MAX_BATCH: u64 = 1_000_000;
pub const MAX_RPS: u64 = 1_000_000_000;
pub const MAX_SECS: f64 = 1_000_000.0;
/// Memory the ring and the consumers' batches may hold at most when full.
pub const MAX_BUFFER_BYTES: u128 = 8 << 30;

/// When producers stop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stop {
    /// After this long.
    After(Duration),
    /// After this many messages in total.
    Messages(u64),
}

/// The validated configuration of a run.
#[derive(Clone, Debug)]
pub struct Config {
    pub producers: usize,
    pub consumers: usize,
    /// Messages per second across all producers; 0 = unlimited.
    pub rps: u64,
    pub stop: Stop,
    pub capacity: usize,
    pub batch_size: usize,
    pub batch_wait: Duration,
    pub payload_size: usize,
    pub db: PathBuf,
    pub synchronous: Synchronous,
    pub pin: bool,
    pub warmup: Duration,
    /// `None`: no progress lines.
    pub report_interval: Option<Duration>,
    pub output: Output,
    pub busy_timeout: Duration,
}

/// A configuration error: print it as one line, exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Builds the run configuration from parsed flags (with the environment already applied by
/// clap) and the `--config` file, if any.
pub fn resolve(args: RunArgs, matches: &ArgMatches) -> Result<Config, ConfigError> {
    let (file, file_path) = match &args.config {
        Some(path) => (read_file(path)?, Some(path.clone())),
        None => (FileConfig::default(), None),
    };
    let l = Layers { matches, file_path };
    let pin = pick_pin(&args, matches, &l, file.pin)?;
    macro_rules! pick {
        ($field:ident, $flag:literal, $env:literal) => {
            l.pick(args.$field, stringify!($field), $flag, $env, file.$field)
        };
    }

    let producers = Layers::or(pick!(producers, "producers", "PC_HOST_PRODUCERS"), 10);
    let consumers = Layers::or(pick!(consumers, "consumers", "PC_HOST_CONSUMERS"), 5);
    let rps = Layers::or(pick!(rps, "rps", "PC_HOST_RPS"), 500);
    let duration = pick!(duration, "duration", "PC_HOST_DURATION");
    let messages = pick!(messages, "messages", "PC_HOST_MESSAGES");
    let capacity = Layers::or(pick!(capacity, "capacity", "PC_HOST_CAPACITY"), 65_536);
    let batch_size = Layers::or(
        pick!(batch_size, "batch-size", "PC_HOST_BATCH_SIZE"),
        10_000,
    );
    let batch_wait = Layers::or(
        pick!(batch_wait_ms, "batch-wait-ms", "PC_HOST_BATCH_WAIT_MS"),
        2.0,
    );
    let payload = Layers::or(
        pick!(payload_size, "payload-size", "PC_HOST_PAYLOAD_SIZE"),
        64,
    );
    let db = Layers::or(pick!(db, "db", "PC_HOST_DB"), PathBuf::from(DEFAULT_DB));
    let sync = Layers::or(
        pick!(synchronous, "synchronous", "PC_HOST_SYNCHRONOUS"),
        Synchronous::Normal,
    );
    let warmup = Layers::or(pick!(warmup, "warmup", "PC_HOST_WARMUP"), 0.0);
    let interval = Layers::or(
        pick!(
            report_interval,
            "report-interval",
            "PC_HOST_REPORT_INTERVAL"
        ),
        1.0,
    );
    let output = Layers::or(pick!(output, "output", "PC_HOST_OUTPUT"), Output::Text);
    let busy = Layers::or(
        pick!(
            busy_timeout_ms,
            "busy-timeout-ms",
            "PC_HOST_BUSY_TIMEOUT_MS"
        ),
        5000,
    );

    let producers = count(&producers, "producers", 1, MAX_THREADS)?;
    let consumers = count(&consumers, "consumers", 1, MAX_THREADS)?;
    if rps.value > MAX_RPS {
        return err(format!(
            "{} is too high: the rate can be at most {MAX_RPS} messages/s (0 = unlimited)",
            rps.show()
        ));
    }
    let stop = stop(duration, messages)?;
    let capacity_n = capacity.value;
    if !(2..=MAX_CAPACITY).contains(&capacity_n) || !capacity_n.is_power_of_two() {
        let hint = capacity_n
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
    let batch_size = count(&batch_size, "batch-size", 1, MAX_BATCH)?;
    let batch_wait = millis(&batch_wait)?;
    if payload.value > MAX_PAYLOAD {
        return err(format!(
            "{} is too large: a message can be at most {MAX_PAYLOAD} bytes (1 MiB)",
            payload.show()
        ));
    }
    let payload_size = payload.value as usize;
    let per_message = (std::mem::size_of::<Msg>() + payload_size) as u128;
    let buffered = per_message * (capacity_n as u128 + consumers as u128 * batch_size as u128);
    if buffered > MAX_BUFFER_BYTES {
        return err(format!(
            "capacity {capacity_n} + {consumers} consumers x batch-size {batch_size} messages of \
             {payload_size} bytes could hold {:.1} GiB in memory; keep it under {} GiB (lower \
             --capacity, --batch-size or --payload-size)",
            buffered as f64 / f64::from(1u32 << 30),
            MAX_BUFFER_BYTES >> 30
        ));
    }
    if db.value.as_os_str().is_empty() {
        return err(format!("{} is empty: give a database file path", db.from));
    }
    let warmup_d = secs(&warmup, false)?;
    if let Stop::After(d) = stop
        && warmup_d >= d
    {
        return err(format!(
            "{} leaves nothing to measure: the warm-up must be shorter than the duration ({} s)",
            warmup.show(),
            d.as_secs_f64()
        ));
    }
    let report_interval = if interval.value == 0.0 {
        None
    } else {
        let d = secs(&interval, true)?;
        if d < Duration::from_millis(10) {
            return err(format!(
                "{} is too short: use at least 0.01 s, or 0 for no progress lines",
                interval.show()
            ));
        }
        Some(d)
    };
    if busy.value > 3_600_000 {
        return err(format!(
            "{} is too long: at most 3600000 ms (one hour)",
            busy.show()
        ));
    }

    Ok(Config {
        producers,
        consumers,
        rps: rps.value,
        stop,
        capacity: capacity_n as usize,
        batch_size,
        batch_wait,
        payload_size,
        db: db.value,
        synchronous: sync.value,
        pin,
        warmup: warmup_d,
        report_interval,
        output: output.value,
        busy_timeout: Duration::from_millis(busy.value),
    })
}

/// `--pin` / `--no-pin` on the command line (the last one wins), then `PC_HOST_PIN`, then
/// the file, then pinned. (The variable is read here, not by clap, so that a flag can beat it.)
fn pick_pin(
    args: &RunArgs,
    matches: &ArgMatches,
    l: &Layers<'_>,
    file: Option<bool>,
) -> Result<bool, ConfigError> {
    if matches.value_source("no_pin") == Some(ValueSource::CommandLine) && args.no_pin {
        return Ok(false);
    }
    if matches.value_source("pin") == Some(ValueSource::CommandLine) && args.pin {
        return Ok(true);
    }
    if let Some(value) = std::env::var_os("PC_HOST_PIN").filter(|v| !v.is_empty()) {
        let value = value.to_string_lossy();
        return match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => err(format!(
                "PC_HOST_PIN={value} is not a boolean: use true or false"
            )),
        };
    }
    Ok(l.file_path.as_ref().and(file).unwrap_or(true))
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

/// Seconds to a `Duration`: finite, not negative, at most `MAX_SECS`; `positive` also rejects 0.
fn secs(p: &Picked<f64>, positive: bool) -> Result<Duration, ConfigError> {
    let v = p.value;
    if !v.is_finite() || v < 0.0 || (positive && v == 0.0) {
        let want = if positive { "more than 0" } else { "0 or more" };
        return err(format!(
            "{} is not a usable number of seconds: it must be {want}",
            p.show()
        ));
    }
    if v > MAX_SECS {
        return err(format!("{} is too long: at most {MAX_SECS} s", p.show()));
    }
    Ok(Duration::from_secs_f64(v))
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
fn stop(duration: Option<Picked<f64>>, messages: Option<Picked<u64>>) -> Result<Stop, ConfigError> {
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
        (None, None) => return Ok(Stop::After(Duration::from_secs(10))),
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
        };
        json!({
            "producers": self.producers,
            "consumers": self.consumers,
            "rps": self.rps,
            "duration_s": duration_s,
            "messages": messages,
            "capacity": self.capacity,
            "batch_size": self.batch_size,
            "batch_wait_ms": self.batch_wait.as_secs_f64() * 1000.0,
            "payload_size": self.payload_size,
            "db": self.db.display().to_string(),
            "synchronous": self.synchronous.as_str(),
            "pin": self.pin,
            "warmup_s": self.warmup.as_secs_f64(),
            "report_interval_s": self.report_interval.map_or(0.0, |d| d.as_secs_f64()),
            "busy_timeout_ms": self.busy_timeout.as_millis() as u64,
        })
    }
}
