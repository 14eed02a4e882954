//! Pinning producers and consumers to cores. The CPU set is read once, on the main thread,
//! before anything is pinned (`get_core_ids` returns the calling thread's set). Consumers
//! take the first cores, producers the next; threads that outnumber the cores share them
//! round-robin, which the header says (`pinning: N threads on M cores, shared round-robin`).

use std::sync::atomic::{AtomicBool, Ordering};

use core_affinity::CoreId;

/// Which core each consumer and producer goes on (`None`: not pinned).
#[derive(Debug)]
pub struct PinPlan {
    pub consumers: Vec<Option<CoreId>>,
    pub producers: Vec<Option<CoreId>>,
    pub desc: String,
}

/// Plans the pinning of `consumers` and `producers` (source threads). Must run on the main
/// thread before any thread is pinned: the CPU set read is the calling thread's.
pub fn plan(pin: bool, consumers: usize, producers: usize) -> PinPlan {
    let none = |desc: &str| PinPlan {
        consumers: vec![None; consumers],
        producers: vec![None; producers],
        desc: desc.into(),
    };
    if !pin {
        return none("off");
    }
    // Read once, on the main thread, before anything is pinned: it returns this thread's set.
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if cores.is_empty() {
        tracing::warn!("cannot read this process's CPU set: threads are not pinned");
        return none("off (CPU set unreadable)");
    }
    let n = cores.len();
    let threads = consumers + producers;
    let at = |i: usize| Some(cores[i % n]);
    let first_producer = consumers;
    let consumers = (0..consumers).map(at).collect();
    let producers = (first_producer..threads).map(at).collect();
    let desc = if threads > n {
        format!("{threads} threads on {n} cores, shared round-robin")
    } else {
        format!("{threads} threads on {n} cores, one each")
    };
    PinPlan {
        consumers,
        producers,
        desc,
    }
}

/// Pins the calling thread to `core`; warns once (per run) if that fails.
pub fn pin(core: Option<CoreId>, failed: &AtomicBool) {
    if let Some(core) = core
        && !core_affinity::set_for_current(core)
        && !failed.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            "could not pin a thread to core {}: it runs unpinned",
            core.id
        );
    }
}
