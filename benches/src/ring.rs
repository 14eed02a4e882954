//! The ring comparisons, written once over a small endpoint abstraction ([`harness`]) so that
//! pc's ring and every peer run the very same loops. Used by `benches/ring.rs` (criterion), by
//! the `compare` binary (the README table) and, for pc-core alone, by the A/B tool
//! (`benches/ab/`).
//!
//! Every run checks what it measured: consumers add up what they pop and the sum must match
//! what was pushed, so a broken queue cannot post a good number.
//!
//! Fairness: every peer gets the same capacity ([`CAPACITY`]), the same message (`u64`), the
//! same thread counts and the same loops; where a peer's model differs, its section says how
//! it was fitted and what that costs or saves it.

pub mod floor;
pub mod harness;

use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

pub use harness::*;

// ---- pc ----------------------------------------------------------------------------------

#[macro_use]
mod pc_flavor;

pc_flavor!(
    Pc,
    PcEnd,
    pc_core,
    "pc::Ring",
    try_push_spinning,
    try_pop_batch_spinning
);

pc_split_flavor!(
    PcSplit,
    PcProducer,
    PcConsumer,
    pc_core,
    "pc::Ring split",
    try_pop_batch_spinning
);

/// [`PcSplit`] with a producer that pushes with the exact `try_push`, retrying the moment a
/// slot frees: not in `compare` (its loops are `try_push_spinning`'s callers); `ring_floor`
/// runs it beside [`PcSplit`] so that what the wait for a run does on a CPU shows in one run.
#[derive(Debug)]
pub struct PcSplitTryPush;

impl Flavor for PcSplitTryPush {
    const NAME: &'static str = "pc::Ring split, try_push";
    const PC_VARIANT: bool = true;
    type Tx = PcProducer<false>;
    type Rx = PcConsumer;
    fn endpoints() -> (PcProducer<false>, PcConsumer) {
        PcProducer::split_endpoints()
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
    const SPSC: bool = true;
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

// ---- kanal ---------------------------------------------------------------------------------

/// kanal `bounded`, its sync API. A channel (one channel serves sync and async ends), not a
/// ring: a `VecDeque` and the waiting senders/receivers behind one lock (its docs: `try_send`
/// and `try_recv` "not lock-free"); `send`/`recv` block. `try_send` drops the value when the
/// channel is full, so a retry that keeps it goes through `try_send_option`, the variant kanal
/// documents for that. No batch send (its `drain_into` batches the receive side only): batch
/// rows n/a.
#[derive(Debug)]
pub struct Kanal;

impl Tx for kanal::Sender<u64> {
    #[inline]
    fn try_push(&mut self, v: u64) -> Result<(), u64> {
        let mut slot = Some(v);
        match self.try_send_option(&mut slot) {
            Ok(true) => Ok(()),
            _ => Err(slot.unwrap_or(v)),
        }
    }
    fn push(&mut self, v: u64) {
        self.send(v).expect("receivers outlive the run");
    }
}
impl Rx for kanal::Receiver<u64> {
    #[inline]
    fn try_pop(&mut self) -> Option<u64> {
        self.try_recv().ok().flatten()
    }
    fn pop(&mut self) -> u64 {
        self.recv().expect("senders outlive the run")
    }
}
impl Flavor for Kanal {
    const NAME: &'static str = "kanal";
    type Tx = kanal::Sender<u64>;
    type Rx = kanal::Receiver<u64>;
    fn endpoints() -> (Self::Tx, Self::Rx) {
        kanal::bounded(CAPACITY)
    }
}

// ---- flume ---------------------------------------------------------------------------------

/// flume `bounded`, its sync API (default features, so with its async support compiled in, as
/// users get it). A channel: a queue behind a spin/mutex lock plus waiter lists; `send`/`recv`
/// block. No batch send (`drain` empties the channel on the receive side only): batch rows n/a.
#[derive(Debug)]
pub struct Flume;

impl Tx for flume::Sender<u64> {
    #[inline]
    fn try_push(&mut self, v: u64) -> Result<(), u64> {
        self.try_send(v).map_err(flume::TrySendError::into_inner)
    }
    fn push(&mut self, v: u64) {
        self.send(v).expect("receivers outlive the run");
    }
}
impl Rx for flume::Receiver<u64> {
    #[inline]
    fn try_pop(&mut self) -> Option<u64> {
        self.try_recv().ok()
    }
    fn pop(&mut self) -> u64 {
        self.recv().expect("senders outlive the run")
    }
}
impl Flavor for Flume {
    const NAME: &'static str = "flume";
    type Tx = flume::Sender<u64>;
    type Rx = flume::Receiver<u64>;
    fn endpoints() -> (Self::Tx, Self::Rx) {
        flume::bounded(CAPACITY)
    }
}

// ---- concurrent-queue ----------------------------------------------------------------------

/// concurrent-queue's `ConcurrentQueue::bounded` (smol's queue under async-channel): a
/// per-slot-stamp MPMC ring like `ArrayQueue`. It has no blocking API (smol pairs it with
/// `event-listener`), so the 2P2C row waits with spin-then-yield, as for `ArrayQueue`; no batch
/// API: batch rows n/a.
#[derive(Debug)]
pub struct ConcurrentQueue;
/// Both ends of a `ConcurrentQueue`.
#[derive(Clone, Debug)]
pub struct ConcurrentQueueEnd(Arc<concurrent_queue::ConcurrentQueue<u64>>);

impl Tx for ConcurrentQueueEnd {
    #[inline]
    fn try_push(&mut self, v: u64) -> Result<(), u64> {
        self.0
            .push(v)
            .map_err(concurrent_queue::PushError::into_inner)
    }
}
impl Rx for ConcurrentQueueEnd {
    #[inline]
    fn try_pop(&mut self) -> Option<u64> {
        self.0.pop().ok()
    }
}
impl Flavor for ConcurrentQueue {
    const NAME: &'static str = "concurrent-queue";
    type Tx = ConcurrentQueueEnd;
    type Rx = ConcurrentQueueEnd;
    fn endpoints() -> (Self::Tx, Self::Rx) {
        let q = Arc::new(concurrent_queue::ConcurrentQueue::bounded(CAPACITY));
        (ConcurrentQueueEnd(Arc::clone(&q)), ConcurrentQueueEnd(q))
    }
}

// ---- disruptor -----------------------------------------------------------------------------

/// The `disruptor` crate (disruptor-rs), built with `build_multi_producer` (the issue asks for
/// the multi-producer flavour; its single-producer builder would be faster in the 1P1C rows),
/// consumed through its `EventPoller` API (the crate documents it as performing like its
/// managed handler threads; it lets the harness own and pin the consumer thread as for every
/// other peer).
///
/// Its model differs: a ring of pre-allocated events (here `u64`s made by the factory) that a
/// producer overwrites in place through a closure, and consumers that each see EVERY event
/// (broadcast), each gating the producers, rather than competing for them. So:
/// - push is `try_publish(|e| *e = v)`; batches are `try_batch_publish(n, ..)`, shrunk by the
///   `MissingFreeSlots` count it reports when the whole batch does not fit (as pc and rtrb push
///   what fits);
/// - consumers take what is published with `poll()` (the first way its docs show, and what its
///   handler threads do), in the single and the batch 1P1C rows alike: up to the whole ring,
///   where pc and rtrb take at most the row's batch. That favours it, and is its model: with
///   `take(1)` per message (or `take(batch)`) it measured 0.4 M msg/s (13–34 M) here, because
///   the multi-producer barrier finds the newest published event by walking one availability
///   bit per event from the consumer's position on every take, so a consumer that takes less
///   than the backlog pays for the backlog again and again. Where only one event can be there
///   (ping-pong, single-thread push+pop) pop is `take(1)`;
/// - it has no blocking publish (`publish` busy-spins on a full ring) and pollers no wait, so
///   the 2P2C row waits with the harness's spin-then-yield, like the other peers without one;
/// - 2P2C has two pollers that each read every event and keep the ones at their parity
///   (position % 2), the Disruptor's way of sharing work among consumers ([`mpmc_disruptor`]),
///   and a run ends with the crate's shutdown (last producer dropped) instead of stop values.
#[derive(Debug)]
pub struct Disruptor;

impl<C: Send + Sync + 'static> Tx for disruptor::MultiProducer<u64, C>
where
    Self: disruptor::Producer<u64>,
{
    #[inline]
    fn try_push(&mut self, v: u64) -> Result<(), u64> {
        use disruptor::Producer;
        self.try_publish(|e| *e = v).map(drop).map_err(|_| v)
    }
    #[inline]
    fn try_push_batch(&mut self, next: u64, end: u64, max: usize) -> usize {
        use disruptor::Producer;
        let mut n = max.min((end - next) as usize);
        while n > 0 {
            let written = self.try_batch_publish(n, |events| {
                for (e, v) in events.zip(next..) {
                    *e = v;
                }
            });
            match written {
                Ok(_) => return n,
                Err(disruptor::MissingFreeSlots(missing)) => {
                    n = n.saturating_sub(usize::try_from(missing).unwrap_or(usize::MAX));
                }
            }
        }
        0
    }
}

/// The consumer end of a [`Disruptor`]: one event poller.
pub type DisruptorRx = disruptor::EventPoller<u64, disruptor::MultiProducerBarrier>;

impl Rx for DisruptorRx {
    /// `take(1)`: one event per guard (ping-pong and single-thread rows, where one is there).
    #[inline]
    fn try_pop(&mut self) -> Option<u64> {
        let mut events = self.take(1).ok()?;
        (&mut events).next().copied()
    }
    /// All that is published, one event at a time: `poll()`, as its handler threads consume.
    #[inline]
    fn try_pop_some(&mut self, sum: &mut u64) -> usize {
        let Ok(mut events) = self.poll() else {
            return 0;
        };
        let mut n = 0;
        for &v in &mut events {
            *sum = sum.wrapping_add(v);
            n += 1;
        }
        n
    }
    /// Also `poll()`: all that is published, not at most `max` (see [`Disruptor`]).
    #[inline]
    fn try_pop_batch(&mut self, _max: usize, sum: &mut u64) -> usize {
        self.try_pop_some(sum)
    }
}
impl Flavor for Disruptor {
    const NAME: &'static str = "disruptor (MP)";
    type Tx = disruptor::MultiProducer<u64, disruptor::SingleConsumerBarrier>;
    type Rx = DisruptorRx;
    fn endpoints() -> (Self::Tx, Self::Rx) {
        // The wait strategy only applies to managed handler threads; pollers have none.
        let (poller, builder) =
            disruptor::build_multi_producer(CAPACITY, || 0u64, disruptor::BusySpin)
                .new_event_poller();
        (builder.build(), poller)
    }
}

/// (d) for [`Disruptor`]: [`mpmc_blocking`]'s run (2 producers, 2 consumers, unpinned, `msgs`
/// values in total, spin-then-yield waits) fitted to its model: two pollers each read every
/// event and keep those at their parity; the run ends when both have seen the shutdown that
/// dropping the last producer starts. Returns the elapsed time.
pub fn mpmc_disruptor(msgs: u64) -> Duration {
    const SIDES: u64 = 2;
    let (first, builder) =
        disruptor::build_multi_producer(CAPACITY, || 0u64, disruptor::BusySpin).new_event_poller();
    let (second, builder) = builder.new_event_poller();
    let tx = builder.build();
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
    // From now on only the producers hold handles: the last one to finish starts the shutdown.
    drop(tx);
    let consumers: Vec<_> = [first, second]
        .into_iter()
        .zip(0..)
        .map(|(mut poller, shard)| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let (mut sum, mut position) = (0u64, 0u64);
                let backoff = Backoff::new();
                loop {
                    match poller.poll() {
                        Ok(mut events) => {
                            for &v in &mut events {
                                if position % SIDES == shard {
                                    sum = sum.wrapping_add(v);
                                }
                                position += 1;
                            }
                            backoff.reset();
                        }
                        Err(disruptor::Polling::NoEvents) => backoff.snooze(),
                        Err(disruptor::Polling::Shutdown) => return sum,
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
    let sum = consumers
        .into_iter()
        .map(|h| h.join().expect("consumer"))
        .fold(0u64, u64::wrapping_add);
    let elapsed = t0.elapsed();
    assert_eq!(
        sum,
        (0..msgs).fold(0u64, u64::wrapping_add),
        "{}: lost or duplicated",
        Disruptor::NAME
    );
    elapsed
}
