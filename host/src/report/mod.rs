//! What a run tells its user: the header (stderr) and the final summary (stdout, text or JSON).

pub mod summary;

pub use summary::{Ingest, StopReason, Summary, Wal, start_line};

use crate::config::{Config, Stop};
use crate::position::InputStart;

/// The header (for stderr): the effective configuration of a run, and where each input starts.
pub fn header(
    cfg: &Config,
    run_id: i64,
    burst: u64,
    pinning: &str,
    inputs: &[InputStart],
    notes: &[String],
    page_size: Option<u64>,
) -> String {
    let rate = match cfg.rps {
        0 => "unlimited rate (no bucket)".to_string(),
        r if !cfg.lanes.is_empty() => format!("{r} records/s in total, split across the lanes"),
        r => format!("{r} records/s in total through one shared token bucket (burst {burst})"),
    };
    let stop = match cfg.stop {
        Stop::After(d) => format!("for {} s", d.as_secs_f64()),
        Stop::Messages(n) => format!("{} in total", summary::plural(n, "record")),
        Stop::AtEnd if cfg.follows() => "until a signal (following)".to_string(),
        Stop::AtEnd if cfg.reads_nats() => {
            let empty = cfg
                .sources
                .iter()
                .any(|s| matches!(s, crate::config::SourceSpec::Nats(n) if n.until_empty));
            if empty {
                "until the consumer has nothing left (until=empty) or a signal".to_string()
            } else {
                "until a signal".to_string()
            }
        }
        Stop::AtEnd => "until the end of the input".to_string(),
    };
    let progress = cfg
        .report_interval
        .map_or("no progress lines".to_string(), |d| {
            format!("progress every {} s", d.as_secs_f64())
        });
    let from = if cfg.generated() {
        format!(
            "{} generating messages padded to {} bytes",
            summary::plural(cfg.producers, "producer"),
            cfg.payload_size
        )
    } else {
        let names: Vec<String> = cfg.sources.iter().map(ToString::to_string).collect();
        format!(
            "{} (records up to {} bytes)",
            names.join(", "),
            cfg.max_record_bytes
        )
    };
    let durability = match cfg.sink {
        crate::config::SinkSpec::Sqlite(_) => {
            let pages = page_size.map_or_else(String::new, |p| format!(", {p}-byte pages"));
            format!(" (WAL, synchronous={}{pages})", cfg.synchronous.as_str())
        }
        _ => String::new(),
    };
    let wait_ms = cfg.batch_wait.as_secs_f64() * 1000.0;
    let batching = if cfg.batch_wait_fixed {
        format!("each waiting up to {wait_ms} ms to fill")
    } else {
        format!("grown for up to {wait_ms} ms while the sink is busy")
    };
    let mut s = format!(
        "pc-host run {run_id} -> {}{durability}\n  \
         {from}, {}, {rate}, {stop}\n  \
         ring {} slots{}; batches of up to {} rows, {batching}; warm-up {} s; {progress}\n  \
         pinning: {pinning}",
        cfg.sink,
        consumers(cfg),
        cfg.capacity,
        if cfg.lanes.is_empty() {
            ""
        } else {
            " per lane"
        },
        cfg.batch_size,
        cfg.warmup.as_secs_f64(),
    );
    s.push_str("\n  ");
    s.push_str(&failures(cfg));
    for input in inputs {
        s.push_str("\n  ");
        s.push_str(&start_line(input));
    }
    for note in notes {
        s.push_str("\n  ");
        s.push_str(note);
    }
    s
}

/// "3 consumers", or "1..8 consumers (scaled every 1 s; past 1 unpinned)".
fn consumers(cfg: &Config) -> String {
    if !cfg.scaled() {
        return summary::plural(cfg.consumers, "consumer");
    }
    let pinned = if cfg.pin {
        format!("; past {} unpinned", cfg.consumers)
    } else {
        String::new()
    };
    format!(
        "{}..{} consumers (scaled every {} s{pinned})",
        cfg.consumers,
        cfg.consumers_max,
        cfg.scale_interval.as_secs_f64()
    )
}

/// "on failure: retry for 60 s, then dead letters to dl.jsonl; latency log lat.hlog": what
/// the run does when the sink fails, and the files it writes besides the sink.
fn failures(cfg: &Config) -> String {
    let retry = match cfg.retry_for.as_secs_f64() {
        0.0 => "no retries".to_string(),
        s => format!("retry for up to {s} s"),
    };
    let dead = match &cfg.dead_letter {
        Some(p) => format!("dead letters to {}", p.display()),
        None => "no dead-letter file".to_string(),
    };
    let mut s = format!("on sink failure: {retry}, then stop; {dead}");
    if let Some(p) = &cfg.latency_log {
        s.push_str(&format!("; latency log {}", p.display()));
    }
    if let Some(p) = &cfg.profile {
        s.push_str(&format!("; profile {}", p.display()));
    }
    s
}
