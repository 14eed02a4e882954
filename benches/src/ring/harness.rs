//! The measuring loops and the endpoint abstraction every ring comparison runs through, kept
//! apart from the peers so that the A/B tool (`benches/ab/`, two builds of pc-core in one
//! process) can compile the very same loops with nothing but `std`, `crossbeam-utils` and
//! `core_affinity` (it includes this file by path; keep it free of other dependencies and of
//! `crate::` paths).
//!
//! Every run checks what it measured: consumers add up what they pop and the sum must match
//! what was pushed, so a broken queue cannot post a good number.

use std::hint::spin_loop;
use std::sync::{Arc, Barrier};
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
    /// What the flavour's consumer takes in one step of a stream of single messages, adding it
    /// to `sum`; returns how many. One value ([`Rx::try_pop`]) for every queue; a flavour
    /// whose consumers always take all that is published (the disruptor) overrides it.
    #[inline]
    fn try_pop_some(&mut self, sum: &mut u64) -> usize {
        match self.try_pop() {
            Some(v) => {
                *sum = sum.wrapping_add(v);
                1
            }
            None => 0,
        }
    }
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
    /// Single-producer single-consumer only: shown, but not counted as an MPMC peer.
    const SPSC: bool = false;
    /// Another way of using pc's ring (its split handles): shown beside pc, never a peer.
    const PC_VARIANT: bool = false;
    /// The producer end.
    type Tx: Tx;
    /// The consumer end.
    type Rx: Rx;
    /// A queue of [`CAPACITY`] slots.
    fn endpoints() -> (Self::Tx, Self::Rx);
}

/// An `Extend` that sums what it is given, so batch pops need no buffer.
///
/// It owns its sum (which the caller adds into its own after the pop) and its count: the pop
/// reaches the adder through the one `&mut` it is given, so the compiler keeps both in
/// registers across the batch, as it does the sum in rtrb's loop (`sum` is a `&mut` argument
/// there). Holding the sum behind a `&mut u64` would make the batch loop load and store it
/// through that pointer at every value (the compiler cannot tell it apart from the ring's
/// slots), work rtrb's loop does not do.
#[derive(Debug, Default)]
pub struct Adder {
    sum: u64,
    count: usize,
}

impl Adder {
    /// The sum of the values it was given (wrapping).
    #[must_use]
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// How many values it was given.
    #[must_use]
    pub fn count(&self) -> usize {
        self.count
    }
}

impl Extend<u64> for Adder {
    #[inline]
    fn extend<I: IntoIterator<Item = u64>>(&mut self, iter: I) {
        for v in iter {
            self.sum = self.sum.wrapping_add(v);
            self.count += 1;
        }
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
/// and empty; `batch` > 1 uses the batch API, 1 single pushes and [`Rx::try_pop_some`].
/// Returns the elapsed time.
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
                rx.try_pop_some(&mut sum) as u64
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
    mpmc_blocking_placed::<F>(&[], msgs, Placement::Free)
}

/// Where [`mpmc_blocking_placed`] runs its four threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Wherever the scheduler puts them: the 2P2C row.
    Free,
    /// Producer `i` and consumer `i` pinned to core `i`: on each core a producer and a
    /// consumer take turns, and a producer on one core can run beside a consumer on the other.
    Mixed,
    /// Both producers pinned to the first core, both consumers to the second.
    Split,
}

impl Placement {
    /// The core index (into the process's cores) for thread `i` of a side, if pinned.
    fn core(self, producer: bool, i: usize) -> Option<usize> {
        match self {
            Placement::Free => None,
            Placement::Mixed => Some(i),
            Placement::Split => Some(usize::from(!producer)),
        }
    }
}

/// [`mpmc_blocking`] with the threads placed by `placement` (on `cores`). The unpinned row
/// depends on where the scheduler happens to put the threads; the pinned placements measure
/// each arrangement on its own (the A/B tool's `2p2c-mixed` and `2p2c-split`).
pub fn mpmc_blocking_placed<F>(
    cores: &[core_affinity::CoreId],
    msgs: u64,
    placement: Placement,
) -> Duration
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
            let core = placement.core(true, p as usize);
            let cores = cores.to_vec();
            thread::spawn(move || {
                if let Some(i) = core {
                    pin(&cores, i);
                }
                start.wait();
                for v in (p..msgs).step_by(SIDES as usize) {
                    tx.push(v);
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..SIDES)
        .map(|c| {
            let (mut rx, start) = (rx.clone(), Arc::clone(&start));
            let core = placement.core(false, c as usize);
            let cores = cores.to_vec();
            thread::spawn(move || {
                if let Some(i) = core {
                    pin(&cores, i);
                }
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

#[cfg(test)]
mod tests {
    use super::Placement;

    #[test]
    fn placements_pin_each_thread_where_their_docs_say() {
        let at = |p: Placement| {
            [(true, 0), (true, 1), (false, 0), (false, 1)].map(|(pr, i)| p.core(pr, i))
        };
        assert_eq!(at(Placement::Free), [None; 4]);
        assert_eq!(at(Placement::Mixed), [Some(0), Some(1), Some(0), Some(1)]);
        assert_eq!(at(Placement::Split), [Some(0), Some(0), Some(1), Some(1)]);
    }
}
