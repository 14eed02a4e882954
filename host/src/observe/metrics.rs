//! The Prometheus metrics: read at each scrape from the run's own counters and histograms
//! (the ones the summary reads), so a scrape never disagrees with the summary and metrics cost
//! the pipeline nothing between scrapes.
//!
//! Names are a contract (see the README): base units, counters end in `_total`, no label with
//! unbounded values (no run id, no producer id). Histograms are built at scrape time from the
//! run's HdrHistograms (3 significant digits): `_bucket` counts are those of the recorded
//! values; a time histogram's `_sum` is its values as kept (each within those digits),
//! `pc_batch_rows_sum` the records committed transactions settled, counted exactly (stored
//! plus duplicates).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::queue::Queue;
use crate::sink::ErrorKind;
use crate::sink::retry::Health;
use crate::telemetry::lanes::LaneFigures;
use crate::telemetry::{Counts, NatsStats, Stats};

/// Bucket bounds of `pc_latency_seconds`, `pc_built_late_seconds` and
/// `pc_commit_duration_seconds`.
const SECONDS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
/// Bucket bounds of `pc_batch_rows`.
const ROWS: [f64; 15] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 50000.0,
    100000.0,
];

/// What a scrape reads of a running run.
#[derive(Debug)]
pub struct RunView {
    pub stats: Arc<Stats>,
    pub ring: Arc<Queue>,
    pub health: Arc<Health>,
    /// SQLite: the database file (its `-wal` beside it is measured).
    pub db: Option<PathBuf>,
    /// `--lanes`: the lanes' names, highest first (the `lane` label); empty without lanes.
    pub lanes: Vec<String>,
}

/// The process's observable state: the run once it started, and where it is.
#[derive(Debug, Default)]
pub struct Live {
    run: Mutex<Option<RunView>>,
    /// Where the run is, a [`Stage`] as a number. `Relaxed` (every load and store): `/ready`
    /// reads only this; the run's view is published under the `run` mutex.
    stage: AtomicU8,
}

/// Where the run is, as `/ready` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    /// Before the sink is open and the threads run.
    Starting,
    /// Taking work.
    Running,
    /// The sources have stopped; the consumers drain the ring.
    Stopping,
    /// The run is over (threads joined, summary made): only its figures remain.
    Finished,
}

impl Live {
    /// The run is under way: scrapes read `view` from now on.
    pub fn started(&self, view: RunView) {
        *self.run.lock().unwrap_or_else(PoisonError::into_inner) = Some(view);
        self.set(Stage::Running);
    }

    /// The sources have stopped: `/ready` says `stopping` (503) while the ring drains.
    pub fn stopping(&self) {
        self.set(Stage::Stopping);
    }

    /// The run is over: `/ready` says so (503) and no consumer runs any more
    /// (`pc_consumers` 0); the counts stay as they ended.
    pub fn finished(&self) {
        self.set(Stage::Finished);
    }

    fn set(&self, stage: Stage) {
        // Relaxed: see `stage`. Only moves forward (a later stage is never undone).
        self.stage.fetch_max(stage as u8, Ordering::Relaxed);
    }

    pub fn stage(&self) -> Stage {
        // Relaxed: see the field.
        match self.stage.load(Ordering::Relaxed) {
            0 => Stage::Starting,
            1 => Stage::Running,
            2 => Stage::Stopping,
            _ => Stage::Finished,
        }
    }

    /// `None` while healthy; otherwise why not (the sink retrying, or failed; or a source
    /// stalled: a followed file rotated to a new file it cannot read).
    pub fn unhealthy(&self) -> Option<String> {
        let run = self.run.lock().unwrap_or_else(PoisonError::into_inner);
        let run = run.as_ref()?;
        let health = &run.health;
        if let Some(why) = health.failure() {
            return Some(format!("sink failed: {why}"));
        }
        if let Some(e) = health.retrying() {
            return Some(format!("sink retrying: {e}"));
        }
        run.stats
            .producers
            .iter()
            .find_map(|p| p.stalled())
            .map(|why| format!("source stalled: {why}"))
    }

    /// The exposition: OpenMetrics text when `openmetrics`, else Prometheus text 0.0.4.
    pub fn encode(self: &Arc<Self>, openmetrics: bool) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Scrape(Arc::clone(self))));
        let mut out = String::new();
        let done = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        };
        // Writing into a String cannot fail.
        debug_assert!(done.is_ok());
        out
    }
}

/// The NATS side's counters.
fn nats(e: &mut DescriptorEncoder, n: &NatsStats) -> Result<(), std::fmt::Error> {
    let get = NatsStats::get;
    for (name, help, v) in [
        (
            "pc_nats_published",
            "Records JetStream acknowledged (the NATS sink).",
            get(&n.published),
        ),
        (
            "pc_nats_publish_duplicates",
            "Retried publishes JetStream dropped as duplicates.",
            get(&n.publish_duplicates),
        ),
        (
            "pc_nats_delivered",
            "Messages delivered to the NATS source.",
            get(&n.delivered),
        ),
        (
            "pc_nats_redelivered",
            "Deliveries after a message's first.",
            get(&n.redelivered),
        ),
        (
            "pc_nats_acked",
            "Messages acknowledged once settled.",
            get(&n.acked),
        ),
        (
            "pc_nats_nacked",
            "Messages handed back unsettled, to be delivered again.",
            get(&n.nacked),
        ),
        (
            "pc_nats_progress",
            "Progress acknowledgements sent for messages still being worked on.",
            get(&n.progress),
        ),
    ] {
        counter(e, name, help, v)?;
    }
    Ok(())
}

/// One scrape of [`Live`].
#[derive(Debug)]
struct Scrape(Arc<Live>);

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        info(&mut e)?;
        let run = self.0.run.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(run) = run.as_ref() else {
            return Ok(());
        };
        let s = &run.stats;
        // One snapshot for every record count, so they add up with one another.
        let c = s.counts();
        record_counts(&mut e, &c)?;
        if let Some(n) = &s.nats {
            nats(&mut e, n)?;
        }
        let blocked = ConstCounter::new(c.blocked_ns as f64 / 1e9);
        blocked.encode(e.encode_descriptor(
            "pc_producer_blocked_seconds",
            "Time sources waited on a full ring, summed over sources.",
            None,
            MetricType::Counter,
        )?)?;
        sink_health(&mut e, &run.health)?;
        let finished = self.0.stage() == Stage::Finished;
        ring_and_consumers(&mut e, run, finished)?;
        histograms(&mut e, s)
    }
}

/// The record counts, one snapshot (`c`) so that they add up.
fn record_counts(e: &mut DescriptorEncoder, c: &Counts) -> Result<(), std::fmt::Error> {
    let counters: [(&str, &str, u64); 8] = [
        (
            "pc_messages_produced",
            "Records accepted into the ring.",
            c.produced,
        ),
        (
            "pc_messages_consumed",
            "Records taken from the ring.",
            c.consumed,
        ),
        (
            "pc_messages_stored",
            "Records committed to the sink.",
            c.stored,
        ),
        (
            "pc_messages_rejected",
            "Lines a source could not make a record of.",
            c.rejected,
        ),
        (
            "pc_messages_dead_lettered",
            "Records written to the dead-letter file.",
            c.dead_lettered,
        ),
        (
            "pc_messages_not_stored",
            "Accepted records given up on, not dead-lettered.",
            c.not_stored,
        ),
        (
            "pc_messages_unconfirmed",
            "Of those dead-lettered or not stored, records given up on after a write whose \
                 outcome was unknown: the sink may hold them.",
            c.unconfirmed,
        ),
        (
            "pc_messages_duplicate",
            "Broker deliveries the sink already held: dropped, not stored again.",
            c.duplicates,
        ),
    ];
    for (name, help, v) in counters {
        counter(e, name, help, v)?;
    }
    Ok(())
}

/// The sink's retries, errors and whether it is retrying now.
fn sink_health(e: &mut DescriptorEncoder, health: &Health) -> Result<(), std::fmt::Error> {
    counter(
        e,
        "pc_sink_retries",
        "Writes (and recordings of publishing runs) tried again after a retryable failure.",
        health.retries(),
    )?;
    sink_errors(e, health)?;
    let retrying = i64::from(health.retrying().is_some());
    gauge(
        e,
        "pc_sink_retrying",
        "1 while a failed write (or recording of a publishing run) is being retried.",
        retrying,
    )?;
    Ok(())
}

/// The ring's depth and capacity, the consumers running (none once `finished`), the SQLite
/// WAL's size and the lanes.
fn ring_and_consumers(
    e: &mut DescriptorEncoder,
    run: &RunView,
    finished: bool,
) -> Result<(), std::fmt::Error> {
    let s = &run.stats;
    gauge(
        e,
        "pc_queue_depth",
        "Records in the ring.",
        run.ring.len() as i64,
    )?;
    gauge(
        e,
        "pc_consumers",
        "Consumer threads running (with --consumers MIN..MAX, as the scaler set them).",
        if finished {
            0
        } else {
            s.consumers_now() as i64
        },
    )?;
    gauge(
        e,
        "pc_queue_capacity",
        "Slots in the ring.",
        run.ring.capacity() as i64,
    )?;
    if let Some(db) = &run.db {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
        gauge(
            e,
            "pc_wal_bytes",
            "Size of the SQLite write-ahead log file.",
            bytes as i64,
        )?;
    }
    if !run.lanes.is_empty() {
        lanes(e, &run.lanes, s, &run.ring)?;
    }
    Ok(())
}

/// The latency, lateness, commit time and batch size histograms.
fn histograms(e: &mut DescriptorEncoder, s: &Stats) -> Result<(), std::fmt::Error> {
    let timed: [(&str, &str, Histogram<u64>); 3] = [
        (
            "pc_latency_seconds",
            "Intended send (or read) to committed (or given up), per message.",
            s.latency(),
        ),
        (
            "pc_built_late_seconds",
            "Intended send to the message being built, per generated message (other sources: none).",
            s.built_late(),
        ),
        (
            "pc_commit_duration_seconds",
            "Insert and commit time per transaction.",
            s.commit(),
        ),
    ];
    for (name, help, h) in &timed {
        histogram(e, name, help, h, approximate_sum(h) * 1e-9, 1e-9, &SECONDS)?;
    }
    let rows = s.batch_rows();
    histogram(
        e,
        "pc_batch_rows",
        "Rows per committed transaction.",
        &rows.histogram,
        rows.sum as f64,
        1.0,
        &ROWS,
    )
}

fn info(e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(
        "pc_build_info",
        "The pc-host build (value 1).",
        None,
        MetricType::Gauge,
    )?;
    let labels = [("version", env!("CARGO_PKG_VERSION"))];
    ConstGauge::new(1i64).encode(m.encode_family(&labels)?)
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    ConstCounter::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> Result<(), std::fmt::Error> {
    ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn sink_errors(e: &mut DescriptorEncoder, health: &Health) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(
        "pc_sink_errors",
        "Failed sink writes, by kind: retryable, record (one record refused), fatal.",
        None,
        MetricType::Counter,
    )?;
    for kind in [ErrorKind::Retryable, ErrorKind::Record, ErrorKind::Fatal] {
        let labels = [("kind", kind.as_str())];
        ConstCounter::new(health.errors(kind)).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// `--lanes`: the per-lane series, each with a `lane` label.
fn lanes(
    e: &mut DescriptorEncoder,
    names: &[String],
    s: &Stats,
    queue: &Queue,
) -> Result<(), std::fmt::Error> {
    let figures = s.lanes();
    type Count = fn(&LaneFigures) -> u64;
    let counters: [(&str, &str, Count); 5] = [
        (
            "pc_lane_messages_produced",
            "Records accepted into the lane.",
            |f| f.produced,
        ),
        (
            "pc_lane_messages_stored",
            "The lane's records committed to the sink.",
            |f| f.stored,
        ),
        (
            "pc_lane_messages_duplicate",
            "The lane's broker deliveries the sink already held.",
            |f| f.duplicates,
        ),
        (
            "pc_lane_messages_dead_lettered",
            "The lane's records written to the dead-letter file.",
            |f| f.dead_lettered,
        ),
        (
            "pc_lane_messages_not_stored",
            "The lane's records given up on, not dead-lettered.",
            |f| f.not_stored,
        ),
    ];
    for (name, help, get) in counters {
        let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (lane, f) in names.iter().zip(&figures) {
            ConstCounter::new(get(f)).encode(m.encode_family(&[("lane", lane.as_str())])?)?;
        }
    }
    let mut m = e.encode_descriptor(
        "pc_lane_queue_depth",
        "Records in the lane's ring.",
        None,
        MetricType::Gauge,
    )?;
    for (i, lane) in names.iter().enumerate() {
        let depth = ConstGauge::new(queue.lane_len(i) as i64);
        depth.encode(m.encode_family(&[("lane", lane.as_str())])?)?;
    }
    let mut m = e.encode_descriptor(
        "pc_lane_latency_seconds",
        "Intended send (or read) to committed (or given up), per message of the lane.",
        None,
        MetricType::Histogram,
    )?;
    for (lane, f) in names.iter().zip(&figures) {
        let buckets = buckets(&f.latency, 1e-9, &SECONDS);
        m.encode_family(&[("lane", lane.as_str())])?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                approximate_sum(&f.latency) * 1e-9,
                f.latency.len(),
                &buckets,
                None,
            )?;
    }
    Ok(())
}

/// One histogram: `h`'s buckets at `bounds` (its values times `scale`), its count, and `sum`.
fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &Histogram<u64>,
    sum: f64,
    scale: f64,
    bounds: &[f64],
) -> Result<(), std::fmt::Error> {
    let buckets = buckets(h, scale, bounds);
    e.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, h.len(), &buckets, None)
}

/// Each bucket's own count at `bounds` (`h`'s values times `scale`), then `+Inf`.
fn buckets(h: &Histogram<u64>, scale: f64, bounds: &[f64]) -> Vec<(f64, u64)> {
    // The encoder takes each bucket's own count and writes the cumulative ones.
    let mut below = 0;
    let mut buckets: Vec<(f64, u64)> = bounds
        .iter()
        .map(|&b| {
            let upto = h.count_between(0, (b / scale) as u64);
            let own = upto.saturating_sub(below);
            below = upto.max(below);
            (b, own)
        })
        .collect();
    buckets.push((f64::INFINITY, h.len().saturating_sub(below)));
    buckets
}

/// The sum of `h`'s values as far as it keeps them (each within its 3 significant digits).
fn approximate_sum(h: &Histogram<u64>) -> f64 {
    h.iter_recorded()
        .map(|v| h.median_equivalent(v.value_iterated_to()) as f64 * v.count_at_value() as f64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::{Live, Stage};
    use crate::telemetry::Stats;

    /// `/ready` follows the run forward only: a run that stops after it finished (a signal
    /// during the linger) is still finished.
    #[test]
    fn a_run_goes_from_starting_to_running_to_stopping_to_finished_and_never_back() {
        let live = Live::default();
        assert_eq!(live.stage(), Stage::Starting);
        live.set(Stage::Running);
        assert_eq!(live.stage(), Stage::Running);
        live.stopping();
        assert_eq!(live.stage(), Stage::Stopping);
        live.finished();
        assert_eq!(live.stage(), Stage::Finished);
        live.stopping();
        live.set(Stage::Running);
        assert_eq!(live.stage(), Stage::Finished);
    }

    /// Scrapes `stats`' histograms alone, as Prometheus text.
    fn histograms_text(stats: Stats) -> String {
        use prometheus_client::collector::Collector;
        use prometheus_client::encoding::DescriptorEncoder;
        #[derive(Debug)]
        struct Only(Stats);
        impl Collector for Only {
            fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                super::histograms(&mut e, &self.0)
            }
        }
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Only(stats)));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    /// `pc_batch_rows_sum` is the records the transactions settled: kept beside the
    /// histogram, not read back from it (it keeps 3 significant digits, so 10,000 would come
    /// back as 10,004).
    #[test]
    fn batch_rows_sum_is_the_records_committed_exactly() {
        let stats = Stats::new(1, 2);
        for (slot, rows) in [(0, 10_000), (0, 1), (1, 10_000), (1, 3)] {
            stats.consumer(slot).batch_rows.lock().unwrap().record(rows);
        }
        let text = histograms_text(stats);
        let line = |key: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .unwrap_or_else(|| panic!("no {key}:\n{text}"))
                .to_string()
        };
        assert_eq!(line("pc_batch_rows_sum "), "pc_batch_rows_sum 20004.0");
        assert_eq!(line("pc_batch_rows_count "), "pc_batch_rows_count 4");
    }
}
