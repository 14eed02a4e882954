//! Counters and histograms of a run, and the progress line.
//!
//! Each thread writes only its own counters (each set on its own cache lines) and its own
//! histograms; the progress line and the summary read snapshots and merge them. (Readers also
//! write one word: the largest blocked time shown, `blocked::Blocked`.)

pub mod blocked;
pub mod interval;
pub mod lanes;
pub mod machine;
pub mod progress;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;

/// How many rejected records' positions a producer keeps for its warning line.
pub const REJECT_SAMPLES: usize = 5;

/// One producer's counters (a generator thread, or the thread reading one source); only that
/// producer writes them (but for the readers' guard in `blocked`).
#[derive(Debug, Default)]
pub struct ProducerStats {
    /// Records accepted into the ring, each counted as the ring takes it ([`Counts`]).
    pub produced: AtomicU64,
    /// Time spent waiting on a full ring (or the byte gate), readable while it waits.
    pub blocked: blocked::Blocked,
    /// Records read from the input (accepted or rejected); 0 for the generator.
    pub read: AtomicU64,
    /// Bytes read from the input, line ends included.
    pub read_bytes: AtomicU64,
    /// Records that could not be stored (invalid UTF-8 or JSON, over the size limit).
    pub rejected: AtomicU64,
    /// Of them, those written to the dead-letter file (counted once the write returned).
    pub rejected_dead_lettered: AtomicU64,
    /// Records read from an input that cannot be read again (stdin) that never reached the
    /// ring because the run was torn down first (the sink failed); of them, those written to
    /// the dead-letter file.
    pub not_queued: AtomicU64,
    pub not_queued_dead_lettered: AtomicU64,
    /// Records read from a file, or taken from NATS, that never reached the ring because the
    /// run stopped first: nothing is lost (the file's committed position is before them and
    /// the next run on the database reads them again; JetStream delivers the messages again).
    pub not_queued_rereadable: AtomicU64,
    /// Records read from stdin ahead of the rate that a stop pushed without waiting for
    /// tokens (stdin cannot be read again); 0 without a rate.
    pub unpaced: AtomicU64,
    /// The first few rejected records: where, and why.
    pub reject_samples: Mutex<Vec<String>>,
    /// Why the source cannot read on while it waits for its input to become readable (a
    /// followed file rotated to a new file it cannot open); `None` otherwise. `/health` says it.
    stalled: Mutex<Option<String>>,
    /// Its `--lanes` lane (0 without lanes).
    pub lane: u8,
    /// The generator with a rate: how late each message was built, ns (a token's due instant
    /// -> the clock reading when the producer took it), after the warm-up. Empty otherwise.
    pub built_late: BuiltLate,
}

impl ProducerStats {
    /// Says why the source cannot read on (`Some`), or that it reads again (`None`).
    pub fn set_stalled(&self, why: Option<String>) {
        *self.stalled.lock().unwrap_or_else(PoisonError::into_inner) = why;
    }

    /// Why the source cannot read on, while it cannot ([`set_stalled`](Self::set_stalled)).
    pub fn stalled(&self) -> Option<String> {
        self.stalled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A producer's histogram of how late it built its messages ([`ProducerStats::built_late`]).
#[derive(Debug)]
pub struct BuiltLate(pub Mutex<Histogram<u64>>);

impl Default for BuiltLate {
    fn default() -> Self {
        Self(Mutex::new(histogram()))
    }
}

/// One consumer's counters and histograms; only that consumer writes them.
#[derive(Debug)]
pub struct ConsumerStats {
    /// Messages taken from the ring.
    pub consumed: AtomicU64,
    /// Messages in committed transactions.
    pub stored: AtomicU64,
    /// Message text bytes in committed transactions.
    pub bytes: AtomicU64,
    /// Committed transactions.
    pub batches: AtomicU64,
    /// Broker deliveries the sink already held (redelivered or published twice): settled,
    /// not written again.
    pub duplicates: AtomicU64,
    /// Messages written to the dead-letter file instead.
    pub dead_lettered: AtomicU64,
    /// Messages given up on and not dead-lettered (the sink failed).
    pub not_stored: AtomicU64,
    /// Of `not_stored`, those from a file input whose committed position is before them: the
    /// next run on the same database reads them again.
    pub rereadable: AtomicU64,
    /// Of `dead_lettered` and `not_stored`, those given up on after a write whose COMMIT may
    /// have landed (`Settled::unconfirmed`): the count back tells how many did.
    pub unconfirmed: AtomicU64,
    /// Intended send -> batch committed (or given up on), ns, per message (after the warm-up).
    pub latency: Mutex<Histogram<u64>>,
    /// Insert + commit time per transaction, ns.
    pub commit: Mutex<Histogram<u64>>,
    /// Rows per committed transaction, and their exact sum.
    pub batch_rows: Mutex<BatchRows>,
    /// `--lanes`: the same counts per lane (see `lanes.rs`); empty without lanes.
    pub lanes: Vec<lanes::LaneCounters>,
}

impl Default for ConsumerStats {
    fn default() -> Self {
        Self::new(0)
    }
}

impl ConsumerStats {
    /// Counts a settled batch and records its records' latencies (ns) as one step: `count`
    /// bumps this consumer's settled counters (`stored`, `duplicates`, `dead_lettered`,
    /// `not_stored`, `unconfirmed`) while the latency histogram's lock is held, so that a
    /// reader holding it ([`Stats::counts_and_latency`]) sees both or neither.
    pub fn settle(&self, count: impl FnOnce(&Self), latencies: impl IntoIterator<Item = u64>) {
        let mut latency = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        count(self);
        for ns in latencies {
            latency.saturating_record(ns);
        }
    }

    /// Counters for a consumer of a run with `lanes` lanes (0 without lanes).
    pub fn new(lanes: usize) -> Self {
        Self {
            consumed: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            not_stored: AtomicU64::new(0),
            rereadable: AtomicU64::new(0),
            unconfirmed: AtomicU64::new(0),
            latency: Mutex::new(histogram()),
            commit: Mutex::new(histogram()),
            batch_rows: Mutex::new(BatchRows::default()),
            lanes: (0..lanes).map(|_| lanes::LaneCounters::default()).collect(),
        }
    }
}

/// Records per committed transaction (rows written, and duplicates a broker delivered again,
/// settled without a write): their histogram, and the records summed exactly (the histogram
/// keeps 3 significant digits, so a sum taken from it is off for batches of more than 2,048).
#[derive(Debug)]
pub struct BatchRows {
    pub histogram: Histogram<u64>,
    pub sum: u64,
}

impl Default for BatchRows {
    fn default() -> Self {
        Self {
            histogram: histogram(),
            sum: 0,
        }
    }
}

impl BatchRows {
    /// Records a committed transaction of `rows` rows (the histogram's least value is 1).
    pub fn record(&mut self, rows: u64) {
        self.histogram.saturating_record(rows.max(1));
        self.sum = self.sum.saturating_add(rows);
    }
}

/// A histogram of nanoseconds from 1 ns to one hour, 3 significant digits; larger values are
/// recorded as one hour.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant, valid bounds")
}

/// Adds to a counter only this thread writes (readers take snapshots): no read-modify-write.
///
/// Release: everything this thread counted before (upstream counts, see [`Counts`]) is seen by
/// a reader whose Acquire load ([`Stats::counts`]) sees this addition.
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Release);
}

/// The run's record counts at one moment, consistent with one another: in every `Counts`,
/// `settled() <= consumed <= produced`, whatever the threads were doing when it was read; and
/// each count only grows from one `Counts` to a later one.
///
/// Each record is counted downstream only after it was counted upstream: a source counts it
/// produced as the ring takes it, before the ring publishes it (`Queue::push_all`); a consumer
/// counts it consumed after popping it, and settled after that; each with a Release [`bump`].
/// [`Stats::counts`] reads downstream first, each with Acquire: a settled count it sees
/// brings the consumed and produced counts before it with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records accepted into the ring.
    pub produced: u64,
    /// Records taken from the ring by consumers.
    pub consumed: u64,
    /// Of those, settled: stored, dropped as duplicates, dead-lettered, or given up on.
    pub stored: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
    pub not_stored: u64,
    /// Of `dead_lettered` and `not_stored`, those given up on after a write whose outcome was
    /// unknown (the sink may hold them).
    pub unconfirmed: u64,
    /// Lines a source could not make a record of (never in the ring; not part of the above).
    pub rejected: u64,
    /// Time sources waited on a full ring, summed over sources, ns (a wait under way
    /// included).
    pub blocked_ns: u64,
}

impl Counts {
    /// Records consumed and settled one way or another.
    pub fn settled(&self) -> u64 {
        self.stored + self.duplicates + self.dead_lettered + self.not_stored
    }
}

/// The NATS side of a run: what the sink published, what the source was delivered and
/// acknowledged. Shared by the threads that use NATS (few, and not per record on the ring's
/// path), so these are read-modify-write counters.
#[derive(Debug, Default)]
pub struct NatsStats {
    /// Records JetStream acknowledged (the sink).
    pub published: AtomicU64,
    /// Of those, publishes JetStream reported as duplicates of an earlier one (a retry after
    /// a lost ack): stored once.
    pub publish_duplicates: AtomicU64,
    /// Messages delivered to the source.
    pub delivered: AtomicU64,
    /// Of those, deliveries after the first (JetStream redelivered them).
    pub redelivered: AtomicU64,
    /// Acknowledged after being settled (stored, duplicate, or dead-lettered).
    pub acked: AtomicU64,
    /// Handed back unsettled (not stored): JetStream delivers them again, here or elsewhere.
    pub nacked: AtomicU64,
    /// Progress acknowledgements sent (`+WPI`): one per held message every third of the ack
    /// wait (`source::nats::keepalive`).
    pub progress: AtomicU64,
}

impl NatsStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// All the counters of a run.
#[derive(Debug)]
pub struct Stats {
    pub producers: Vec<CachePadded<ProducerStats>>,
    /// One slot per consumer that may run, filled on first use ([`Stats::consumer`]): before
    /// the run for the consumers it starts with, as the scaler starts one for the others. A
    /// consumer's histograms take about a megabyte, so a run that may scale to a thousand
    /// consumers makes only those it starts.
    consumers: Vec<CachePadded<OnceLock<ConsumerStats>>>,
    /// `--lanes`: how many lanes each consumer counts (0 without lanes).
    lanes: usize,
    /// Set when the run publishes to or reads from NATS.
    pub nats: Option<std::sync::Arc<NatsStats>>,
    /// Consumers running now (in a scaled run, those asked to run), and the most at once.
    consumers_now: AtomicU64,
    consumers_peak: AtomicU64,
}

impl Stats {
    /// `consumers`: the most that may run (one set of counters each).
    pub fn new(producers: usize, consumers: usize) -> Self {
        Self {
            producers: (0..producers).map(|_| CachePadded::default()).collect(),
            consumers: (0..consumers).map(|_| CachePadded::default()).collect(),
            lanes: 0,
            nats: None,
            consumers_now: AtomicU64::new(0),
            consumers_peak: AtomicU64::new(0),
        }
    }

    /// The counters of consumer `slot` (`slot` < the most that may run), made on first use.
    ///
    /// # Panics
    /// If `slot` is not below the number of consumers given to [`Stats::new`].
    pub fn consumer(&self, slot: usize) -> &ConsumerStats {
        self.consumers[slot].get_or_init(|| ConsumerStats::new(self.lanes))
    }

    /// The counters of the consumers that have run (made by [`Stats::consumer`]).
    fn consumers_made(&self) -> impl Iterator<Item = &ConsumerStats> {
        self.consumers.iter().filter_map(|c| c.get())
    }

    /// `n` consumers run from now on.
    pub fn set_consumers(&self, n: usize) {
        self.consumers_now.store(n as u64, Ordering::Relaxed);
        self.consumers_peak.fetch_max(n as u64, Ordering::Relaxed);
    }

    /// Consumers running now.
    pub fn consumers_now(&self) -> u64 {
        self.consumers_now.load(Ordering::Relaxed)
    }

    /// The most consumers that ran at once.
    pub fn consumers_peak(&self) -> u64 {
        self.consumers_peak.load(Ordering::Relaxed)
    }

    pub fn produced(&self) -> u64 {
        self.producers
            .iter()
            // Acquire: pairs with the Release `bump`, as in `sum`.
            .map(|p| p.produced.load(Ordering::Acquire))
            .sum()
    }

    pub fn blocked_ns(&self) -> u64 {
        self.producers.iter().map(|p| p.blocked.total_ns()).sum()
    }

    pub fn read(&self) -> u64 {
        self.producers
            .iter()
            .map(|p| p.read.load(Ordering::Relaxed))
            .sum()
    }

    pub fn read_bytes(&self) -> u64 {
        self.producers
            .iter()
            .map(|p| p.read_bytes.load(Ordering::Relaxed))
            .sum()
    }

    pub fn rejected(&self) -> u64 {
        self.producers
            .iter()
            .map(|p| p.rejected.load(Ordering::Relaxed))
            .sum()
    }

    pub fn rejected_dead_lettered(&self) -> u64 {
        self.producers
            .iter()
            .map(|p| p.rejected_dead_lettered.load(Ordering::Relaxed))
            .sum()
    }

    /// Records pushed at a stop without waiting for the rate (see `ProducerStats::unpaced`).
    pub fn unpaced(&self) -> u64 {
        self.producers
            .iter()
            .map(|p| p.unpaced.load(Ordering::Relaxed))
            .sum()
    }

    /// Records read from files or taken from NATS that never reached the ring (see
    /// `ProducerStats::not_queued_rereadable`).
    pub fn not_queued_rereadable(&self) -> u64 {
        self.producers
            .iter()
            // Relaxed: read once the sources are done (joined), like the counts beside it.
            .map(|p| p.not_queued_rereadable.load(Ordering::Relaxed))
            .sum()
    }

    /// Records read from stdin that never reached the ring (the run was torn down), and of
    /// them those dead-lettered.
    pub fn not_queued(&self) -> (u64, u64) {
        self.producers.iter().fold((0, 0), |(n, dead), p| {
            (
                n + p.not_queued.load(Ordering::Relaxed),
                dead + p.not_queued_dead_lettered.load(Ordering::Relaxed),
            )
        })
    }

    /// The consumers' `field`s summed. Acquire: pairs with the Release `bump` each load
    /// reads (what `counts` relies on).
    fn sum(&self, field: impl Fn(&ConsumerStats) -> &AtomicU64) -> u64 {
        self.consumers_made()
            .map(|c| field(c).load(Ordering::Acquire))
            .sum()
    }

    /// The counts now, consistent with one another (see [`Counts`]).
    pub fn counts(&self) -> Counts {
        let mut settled = SettledCounts::default();
        for c in self.consumers_made() {
            settled.add(c);
        }
        self.counts_after(settled)
    }

    /// The counts now, and every latency recorded so far, taken together: the histogram
    /// holds the latencies of exactly the records the counts have settled (after the
    /// warm-up), since a consumer counts a batch and records its latencies as one step
    /// ([`ConsumerStats::settle`]) and this reads each consumer's counts under the same lock.
    /// So an interval's latency percentiles, and the latency log, cover the records counted
    /// in that interval, not a few more or fewer.
    pub fn counts_and_latency(&self) -> (Counts, Histogram<u64>) {
        let mut settled = SettledCounts::default();
        let mut latency = histogram();
        for c in self.consumers_made() {
            let h = c.latency.lock().unwrap_or_else(PoisonError::into_inner);
            settled.add(c);
            latency
                .add(&*h)
                .expect("histograms with the same bounds always add");
        }
        (self.counts_after(settled), latency)
    }

    /// `Counts` from the settled counts just read and the upstream counts read now: after,
    /// each with Acquire, so a settled count read carries the upstream counts of the same
    /// records (see `Counts`).
    fn counts_after(&self, settled: SettledCounts) -> Counts {
        let consumed = self.consumed();
        let produced = self.produced();
        Counts {
            produced,
            consumed,
            stored: settled.stored,
            duplicates: settled.duplicates,
            dead_lettered: settled.dead_lettered,
            not_stored: settled.not_stored,
            unconfirmed: settled.unconfirmed,
            rejected: self.rejected(),
            blocked_ns: self.blocked_ns(),
        }
    }

    pub fn consumed(&self) -> u64 {
        self.sum(|c| &c.consumed)
    }

    pub fn stored(&self) -> u64 {
        self.sum(|c| &c.stored)
    }

    pub fn bytes(&self) -> u64 {
        self.sum(|c| &c.bytes)
    }

    pub fn batches(&self) -> u64 {
        self.sum(|c| &c.batches)
    }

    pub fn dead_lettered(&self) -> u64 {
        self.sum(|c| &c.dead_lettered)
    }

    pub fn duplicates(&self) -> u64 {
        self.sum(|c| &c.duplicates)
    }

    pub fn not_stored(&self) -> u64 {
        self.sum(|c| &c.not_stored)
    }

    pub fn rereadable(&self) -> u64 {
        self.sum(|c| &c.rereadable)
    }

    pub fn unconfirmed(&self) -> u64 {
        self.sum(|c| &c.unconfirmed)
    }

    /// All consumers' latency histograms merged.
    pub fn latency(&self) -> Histogram<u64> {
        self.merge(|c| &c.latency)
    }

    /// All consumers' commit-time histograms merged.
    pub fn commit(&self) -> Histogram<u64> {
        self.merge(|c| &c.commit)
    }

    /// All consumers' rows per committed transaction, merged; each consumer's histogram and
    /// sum read under one lock, so the two agree.
    pub fn batch_rows(&self) -> BatchRows {
        let mut all = BatchRows::default();
        for c in self.consumers_made() {
            let c = c.batch_rows.lock().unwrap_or_else(PoisonError::into_inner);
            all.histogram
                .add(&c.histogram)
                .expect("histograms with the same bounds always add");
            all.sum = all.sum.saturating_add(c.sum);
        }
        all
    }

    /// All producers' built-late histograms merged.
    pub fn built_late(&self) -> Histogram<u64> {
        merged(self.producers.iter().map(|p| &p.built_late.0))
    }

    fn merge(&self, field: impl Fn(&ConsumerStats) -> &Mutex<Histogram<u64>>) -> Histogram<u64> {
        merged(self.consumers_made().map(field))
    }
}

/// The settled counts of some consumers, summed (read with Acquire: they pair with the
/// Release [`bump`]s that made them, as in [`Stats::counts`]).
#[derive(Clone, Copy, Debug, Default)]
struct SettledCounts {
    stored: u64,
    duplicates: u64,
    dead_lettered: u64,
    not_stored: u64,
    unconfirmed: u64,
}

impl SettledCounts {
    fn add(&mut self, c: &ConsumerStats) {
        let get = |n: &AtomicU64| n.load(Ordering::Acquire);
        self.stored += get(&c.stored);
        self.duplicates += get(&c.duplicates);
        self.dead_lettered += get(&c.dead_lettered);
        self.not_stored += get(&c.not_stored);
        self.unconfirmed += get(&c.unconfirmed);
    }
}

/// One histogram holding everything `hists` recorded.
fn merged<'a>(hists: impl Iterator<Item = &'a Mutex<Histogram<u64>>>) -> Histogram<u64> {
    let mut all = histogram();
    for h in hists {
        let h = h.lock().unwrap_or_else(PoisonError::into_inner);
        all.add(&*h)
            .expect("histograms with the same bounds always add");
    }
    all
}

/// Milliseconds with 3 decimals, from nanoseconds.
pub fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::{Stats, bump};

    #[test]
    fn a_snapshot_holds_the_latencies_of_exactly_the_records_it_counts_settled() {
        const BATCHES: u64 = 50_000;
        let stats = Stats::new(1, 1);
        let consumer = stats.consumer(0);
        std::thread::scope(|s| {
            let settling = s.spawn(|| {
                for i in 0..BATCHES {
                    consumer.settle(|c| bump(&c.stored, 2), [1_000 + i, 2_000 + i]);
                }
            });
            let mut snapshots = 0u64;
            loop {
                let finished = settling.is_finished();
                let (counts, latency) = stats.counts_and_latency();
                assert_eq!(latency.len(), counts.settled(), "snapshot {snapshots}");
                snapshots += 1;
                if finished {
                    assert_eq!(counts.stored, 2 * BATCHES);
                    break;
                }
            }
        });
    }

    #[test]
    fn a_consumer_that_never_ran_has_no_counters_made() {
        let mut stats = Stats::new(1, 1024);
        stats.set_lanes(&[2], 3);
        assert_eq!(stats.consumers_made().count(), 0);
        bump(&stats.consumer(700).stored, 4);
        bump(&stats.consumer(700).lanes[2].stored, 4);
        assert_eq!(stats.consumers_made().count(), 1);
        // The one made counts, with its lanes.
        assert_eq!(stats.stored(), 4);
        assert_eq!(stats.lanes()[2].stored, 4);
        assert_eq!(
            stats
                .consumer(700)
                .stored
                .load(std::sync::atomic::Ordering::Relaxed),
            4
        );
    }
}
