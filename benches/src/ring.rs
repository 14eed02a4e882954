//! The ring comparisons, written once over a small endpoint abstraction so that pc's ring and
//! every peer run the very same loops. Used by `benches/ring.rs` (criterion) and by the
//! `compare` binary (the README table).
//!
//! Every run checks what it measured: consumers add up what they pop and the sum must match
//! what was pushed, so a broken queue cannot post a good number.

use std::hint::spin_loop;
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

/// Capacity used by every ring comparison.
pub const CAPACITY: usize = 1024;

/// A queue endpoint that pushes `u64`s.
pub trait Tx: Send + 'static {
    /// Pushes one value; hands it back if the queue is full.
    fn try_push(&mut self, v: u64) -> Result<(), u64>;
    /// Pushes values from `next` onwards, at most up to `end` and `max` of them; returns how
    /// many. Peers without a batch API push one at a time.
    fn try_push_batch(&mut self, next: u64, end: u64, max: usize) -> usize {
        let mut n = 0;
        while n < max && next + (n as u64) < end && self.try_push(next + n as u64).is_ok() {
            n += 1;
        }
        n
    }
    /// Pushes, waiting the flavour's own way (its blocking API, or spin-then-yield).
    fn push(&mut self, mut v: u64) {
        let backoff = Backoff::new();
        while let Err(back) = self.try_push(v) {
            v = back;
            backoff.snooze();
        }
    }
}

/// A queue endpoint that pops `u64`s.
pub trait Rx: Send + 'static {
    /// Pops one value if one is ready.
    fn try_pop(&mut self) -> Option<u64>;
    /// Pops up to `max` values, adding them to `sum`; returns how many.
    fn try_pop_batch(&mut self, max: usize, sum: &mut u64) -> usize {
        let mut n = 0;
        while n < max {
            let Some(v) = self.try_pop() else { break };
            *sum = sum.wrapping_add(v);
            n += 1;
        }
        n
    }
    /// Pops, waiting the flavour's own way (its blocking API, or spin-then-yield).
    fn pop(&mut self) -> u64 {
        let backoff = Backoff::new();
        loop {
            if let Some(v) = self.try_pop() {
                return v;
            }
            backoff.snooze();
        }
    }
}

/// A queue implementation under test.
pub trait Flavor {
    /// The row label.
    const NAME: &'static str;
    /// The producer end.
    type Tx: Tx;
    /// The consumer end.
    type Rx: Rx;
    /// A queue of [`CAPACITY`] slots.
    fn endpoints() -> (Self::Tx, Self::Rx);
}

// ---- pc ----------------------------------------------------------------------------------

/// pc-core's ring.
#[derive(Debug)]
pub struct Pc;
/// Both ends of pc's ring: the ring itself, shared.
#[derive(Clone, Debug)]
pub struct PcEnd(Arc<pc_core::HeapRing<u64>>);

impl Tx for PcEnd {
    #[inline]
    fn try_push(&mut self, v: u64) -> Result<(), u64> {
        self.0.try_push(v).map_err(pc_core::PushError::into_inner)
    }
    #[inline]
    fn try_push_batch(&mut self, next: u64, end: u64, max: usize) -> usize {
        let mut items = next..end.min(next + max as u64);
        self.0.try_push_batch(&mut items).unwrap_or(0)
    }
    fn push(&mut self, v: u64) {
        self.0.push(v).expect("never closed while benchmarking");
    }
}

impl Rx for PcEnd {
    #[inline]
    fn try_pop(&mut self) -> Option<u64> {
        self.0.try_pop().ok()
    }
    #[inline]
    fn try_pop_batch(&mut self, max: usize, sum: &mut u64) -> usize {
        let mut adder = Adder(sum, 0);
        let _ = self.0.try_pop_batch(&mut adder, max);
        adder.1
    }
    fn pop(&mut self) -> u64 {
        self.0.pop().expect("never closed while benchmarking")
    }
}

/// An `Extend` that sums what it is given, so batch pops need no buffer.
struct Adder<'a>(&'a mut u64, usize);

impl Extend<u64> for Adder<'_> {
    #[inline]
    fn extend<I: IntoIterator<Item = u64>>(&mut self, iter: I) {
        for v in iter {
            *self.0 = self.0.wrapping_add(v);
            self.1 += 1;
        }
    }
}

impl Flavor for Pc {
    const NAME: &'static str = "pc::Ring";
    type Tx = PcEnd;
    type Rx = PcEnd;
    fn endpoints() -> (PcEnd, PcEnd) {
        let ring = Arc::new(pc_core::HeapRing::with_capacity(CAPACITY));
        (PcEnd(Arc::clone(&ring)), PcEnd(ring))
    }
}

// ---- crossbeam-queue ArrayQueue ------------------------------------------------------------

/// crossbeam-queue's `ArrayQueue`.
#[derive(Debug)]
pub struct ArrayQueue;
/// Both ends of an `ArrayQueue`.
#[derive(Clone, Debug)]
pub struct ArrayQueueEnd(Arc<crossbeam_queue::ArrayQueue<u64>>);

impl Tx for ArrayQueueEnd {
    #[inline]
    fn try_push(&mut self, v: u64) -> Result<(), u64> {
        self.0.push(v)
    }
}
impl Rx for ArrayQueueEnd {
    #[inline]
    fn try_pop(&mut self) -> Option<u64> {
        self.0.pop()
    }
}
impl Flavor for ArrayQueue {
    const NAME: &'static str = "crossbeam ArrayQueue";
    type Tx = ArrayQueueEnd;
    type Rx = ArrayQueueEnd;
    fn endpoints() -> (ArrayQueueEnd, ArrayQueueEnd) {
        let q = Arc::new(crossbeam_queue::ArrayQueue::new(CAPACITY));
        (ArrayQueueEnd(Arc::clone(&q)), ArrayQueueEnd(q))
    }
}

// ---- heapless::mpmc ------------------------------------------------------------------------

/// `heapless::mpmc::Queue` (deprecated upstream for not being lock-free; measured as users
/// still pick it).
#[derive(Debug)]
pub struct Heapless;
/// Both ends of a heapless queue.
#[derive(Clone)]
pub struct HeaplessEnd(Arc<heapless::mpmc::Queue<u64, CAPACITY>>);

impl std::fmt::Debug for HeaplessEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaplessEnd")
    }
}

impl Tx for HeaplessEnd {
    #[inline]
    fn try_push(&mut self, v: u64) -> Result<(), u64> {
        self.0.enqueue(v)
    }
}
impl Rx for HeaplessEnd {
    #[inline]
    fn try_pop(&mut self) -> Option<u64> {
        self.0.dequeue()
    }
}
impl Flavor for Heapless {
    const NAME: &'static str = "heapless mpmc";
    type Tx = HeaplessEnd;
    type Rx = HeaplessEnd;
    #[expect(deprecated)]
    fn endpoints() -> (HeaplessEnd, HeaplessEnd) {
        let q = Arc::new(heapless::mpmc::Queue::new());
        (HeaplessEnd(Arc::clone(&q)), HeaplessEnd(q))
    }
}

// ---- rtrb (SPSC) ---------------------------------------------------------------------------

/// `rtrb`, single-producer single-consumer (only the SPSC rows), with its chunk API for batches.
#[derive(Debug)]
pub struct Rtrb;
impl Tx for rtrb::Producer<u64> {
    #[inline]
    fn try_push(&mut self, v: u64) -> Result<(), u64> {
        self.push(v).map_err(|rtrb::PushError::Full(v)| v)
    }
    #[inline]
    fn try_push_batch(&mut self, next: u64, end: u64, max: usize) -> usize {
        let n = self.slots().min(max).min((end - next) as usize);
        match self.write_chunk_uninit(n) {
            Ok(chunk) => chunk.fill_from_iter(next..),
            Err(_) => 0,
        }
    }
}
impl Rx for rtrb::Consumer<u64> {
    #[inline]
    fn try_pop(&mut self) -> Option<u64> {
        self.pop().ok()
    }
    #[inline]
    fn try_pop_batch(&mut self, max: usize, sum: &mut u64) -> usize {
        let n = self.slots().min(max);
        match self.read_chunk(n) {
            Ok(chunk) => {
                for v in chunk {
                    *sum = sum.wrapping_add(v);
                }
                n
            }
            Err(_) => 0,
        }
    }
}
impl Flavor for Rtrb {
    const NAME: &'static str = "rtrb (SPSC)";
    type Tx = rtrb::Producer<u64>;
    type Rx = rtrb::Consumer<u64>;
    fn endpoints() -> (Self::Tx, Self::Rx) {
        rtrb::RingBuffer::new(CAPACITY)
    }
}

// ---- crossbeam-channel ---------------------------------------------------------------------

/// crossbeam-channel `bounded`.
#[derive(Debug)]
pub struct CrossbeamChannel;

impl Tx for crossbeam_channel::Sender<u64> {
    #[inline]
    fn try_push(&mut self, v: u64) -> Result<(), u64> {
        self.try_send(v)
            .map_err(crossbeam_channel::TrySendError::into_inner)
    }
    fn push(&mut self, v: u64) {
        self.send(v).expect("receivers outlive the run");
    }
}
impl Rx for crossbeam_channel::Receiver<u64> {
    #[inline]
    fn try_pop(&mut self) -> Option<u64> {
        self.try_recv().ok()
    }
    fn pop(&mut self) -> u64 {
        self.recv().expect("senders outlive the run")
    }
}
impl Flavor for CrossbeamChannel {
    const NAME: &'static str = "crossbeam-channel";
    type Tx = crossbeam_channel::Sender<u64>;
    type Rx = crossbeam_channel::Receiver<u64>;
    fn endpoints() -> (Self::Tx, Self::Rx) {
        crossbeam_channel::bounded(CAPACITY)
    }
}

// ---- std sync_channel ----------------------------------------------------------------------

/// std's `sync_channel`. Its receiver cannot be shared, so in the 2P2C row the two consumers
/// take turns on it behind a `Mutex` (as a user would have to).
#[derive(Debug)]
pub struct StdSyncChannel;
/// std's receiver behind a mutex, so it can be cloned into two consumers.
#[derive(Clone, Debug)]
pub struct StdRx(Arc<Mutex<mpsc::Receiver<u64>>>);

impl Tx for mpsc::SyncSender<u64> {
    #[inline]
    fn try_push(&mut self, v: u64) -> Result<(), u64> {
        self.try_send(v).map_err(|e| match e {
            mpsc::TrySendError::Full(v) | mpsc::TrySendError::Disconnected(v) => v,
        })
    }
    fn push(&mut self, v: u64) {
        self.send(v).expect("receiver outlives the run");
    }
}
impl Rx for StdRx {
    #[inline]
    fn try_pop(&mut self) -> Option<u64> {
        self.0.lock().unwrap().try_recv().ok()
    }
    fn pop(&mut self) -> u64 {
        self.0
            .lock()
            .unwrap()
            .recv()
            .expect("senders outlive the run")
    }
}
impl Flavor for StdSyncChannel {
    const NAME: &'static str = "std sync_channel";
    type Tx = mpsc::SyncSender<u64>;
    type Rx = StdRx;
    fn endpoints() -> (Self::Tx, Self::Rx) {
        let (tx, rx) = mpsc::sync_channel(CAPACITY);
        (tx, StdRx(Arc::new(Mutex::new(rx))))
    }
}

// ---- the measurements ----------------------------------------------------------------------

/// Pins the calling thread to the `i`-th core of the process's allowed set (if there is one).
fn pin(cores: &[core_affinity::CoreId], i: usize) {
    if let Some(&id) = cores.get(i % cores.len().max(1)) {
        core_affinity::set_for_current(id);
    }
}

/// Runs `f` on a new thread pinned to core `i` (of `cores`) and returns its result. The calling
/// thread's affinity is never changed: threads spawned later inherit their parent's affinity,
/// so a pinned main thread would have put every thread of the unpinned 2P2C run on one core
/// (it did, until this helper: that row measured four threads sharing one core).
fn pinned<R: Send>(cores: &[core_affinity::CoreId], i: usize, f: impl FnOnce() -> R + Send) -> R {
    thread::scope(|s| {
        s.spawn(|| {
            pin(cores, i);
            f()
        })
        .join()
        .expect("pinned thread")
    })
}

/// The process's allowed cores, read once before any thread is pinned.
#[must_use]
pub fn cores() -> Vec<core_affinity::CoreId> {
    core_affinity::get_core_ids().unwrap_or_default()
}

/// (a) One thread pushes then pops `iters` times; returns the elapsed time.
pub fn single_thread_pairs<F: Flavor>(iters: u64) -> Duration {
    let (mut tx, mut rx) = F::endpoints();
    let mut sum = 0u64;
    let start = Instant::now();
    for i in 0..iters {
        tx.try_push(i).expect("room for one");
        sum = sum.wrapping_add(rx.try_pop().expect("the value just pushed"));
    }
    let elapsed = start.elapsed();
    assert_eq!(sum, (0..iters).fold(0u64, u64::wrapping_add));
    elapsed
}

/// (b) One producer and one consumer on different cores move `msgs` values, spinning on full
/// and empty; `batch` > 1 uses the batch API. Returns the elapsed time.
pub fn spsc_throughput<F: Flavor>(
    cores: &[core_affinity::CoreId],
    msgs: u64,
    batch: usize,
) -> Duration {
    let (mut tx, mut rx) = F::endpoints();
    let start = Arc::new(Barrier::new(2));
    let producer = {
        let (start, cores) = (Arc::clone(&start), cores.to_vec());
        thread::spawn(move || {
            pin(&cores, 0);
            start.wait();
            let mut next = 0;
            while next < msgs {
                let n = if batch > 1 {
                    tx.try_push_batch(next, msgs, batch) as u64
                } else {
                    u64::from(tx.try_push(next).is_ok())
                };
                if n == 0 {
                    spin_loop();
                }
                next += n;
            }
        })
    };
    let (elapsed, sum) = pinned(cores, 1, || {
        start.wait();
        let t0 = Instant::now();
        let (mut got, mut sum) = (0u64, 0u64);
        while got < msgs {
            let n = if batch > 1 {
                rx.try_pop_batch(batch, &mut sum) as u64
            } else {
                match rx.try_pop() {
                    Some(v) => {
                        sum = sum.wrapping_add(v);
                        1
                    }
                    None => 0,
                }
            };
            if n == 0 {
                spin_loop();
            }
            got += n;
        }
        (t0.elapsed(), sum)
    });
    producer.join().expect("producer");
    assert_eq!(
        sum,
        (0..msgs).fold(0u64, u64::wrapping_add),
        "{}: lost or duplicated",
        F::NAME
    );
    elapsed
}

/// (c) Ping-pong: a value goes A -> B and back, `rounds` times; returns each round trip.
pub fn ping_pong<F: Flavor>(cores: &[core_affinity::CoreId], rounds: u64) -> Vec<Duration> {
    let (mut to_b, mut at_b) = F::endpoints();
    let (mut to_a, mut at_a) = F::endpoints();
    let echo = {
        let cores = cores.to_vec();
        thread::spawn(move || {
            pin(&cores, 1);
            for _ in 0..rounds {
                let v = loop {
                    if let Some(v) = at_b.try_pop() {
                        break v;
                    }
                    spin_loop();
                };
                while to_a.try_push(v).is_err() {
                    spin_loop();
                }
            }
        })
    };
    let trips = pinned(cores, 0, || {
        let mut trips = Vec::with_capacity(rounds as usize);
        for i in 0..rounds {
            let t0 = Instant::now();
            while to_b.try_push(i).is_err() {
                spin_loop();
            }
            let back = loop {
                if let Some(v) = at_a.try_pop() {
                    break v;
                }
                spin_loop();
            };
            trips.push(t0.elapsed());
            assert_eq!(back, i);
        }
        trips
    });
    echo.join().expect("echo");
    trips
}

/// (d) 2 producers and 2 consumers (more threads than this machine's 2 cores), each using the
/// flavour's blocking API (or spin-then-yield where it has none), unpinned, move `msgs` values
/// in total. Returns the elapsed time.
pub fn mpmc_blocking<F>(msgs: u64) -> Duration
where
    F: Flavor<Tx: Clone, Rx: Clone>,
{
    const SIDES: u64 = 2;
    /// Tells a consumer to stop; never a real value (values are < msgs).
    const STOP: u64 = u64::MAX;
    let (tx, rx) = F::endpoints();
    let start = Arc::new(Barrier::new(2 * SIDES as usize + 1));
    let producers: Vec<_> = (0..SIDES)
        .map(|p| {
            let (mut tx, start) = (tx.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                for v in (p..msgs).step_by(SIDES as usize) {
                    tx.push(v);
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..SIDES)
        .map(|_| {
            let (mut rx, start) = (rx.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let mut sum = 0u64;
                loop {
                    match rx.pop() {
                        STOP => return sum,
                        v => sum = sum.wrapping_add(v),
                    }
                }
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    for h in producers {
        h.join().expect("producer");
    }
    let mut tx = tx;
    for _ in 0..SIDES {
        tx.push(STOP);
    }
    let sum = consumers
        .into_iter()
        .map(|h| h.join().expect("consumer"))
        .fold(0u64, u64::wrapping_add);
    let elapsed = t0.elapsed();
    assert_eq!(
        sum,
        (0..msgs).fold(0u64, u64::wrapping_add),
        "{}: lost or duplicated",
        F::NAME
    );
    elapsed
}

/// The `q`-quantile (0..=1) of `samples`, which it sorts.
#[must_use]
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples.get(i).copied().unwrap_or_default()
}
