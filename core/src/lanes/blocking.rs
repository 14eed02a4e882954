//! Sleeping for the lanes: consumers wait on all lanes with one [`Waiters`], and pushes and
//! the close wake them. The only file of `lanes` that uses `Waiters`.
//!
//! Why no wake-up is lost: the handshake of `ring/wait.rs`, spread over the lanes. A consumer
//! registers in the lanes' `Waiters` (then the heavy half of the asymmetric fence), then
//! re-checks the head slot of every lane (`blocked`: no lane has a value ready, and some lane
//! is open); a push publishes its
//! slot inside its lane's `try_push`, then calls [`Parking::pushed`] (the light half, then a
//! load of the sleeper count), and a close does the same after marking every lane. Either the
//! consumer's fence comes first and the pusher sees it registered and wakes it, or the push's
//! comes first and the re-check sees its slot. A slot held by a push in progress is covered
//! the same way: its publication is followed by `pushed`.
//!
//! One wake-up per push; a batch push (`try_push_batch`, `push_batch`) wakes up to as many as
//! it published after each batch of claims, holes included, and once if its iterator panics
//! (what it yielded before stays published); a consumer that was woken and then popped passes
//! one on if a lane still has a value ready (the wake-up it took may have been for that one),
//! as the ring's do.
//!
//! Blocking pushes need nothing here: they are the lane's own ring `push`, which sleeps on that
//! ring's producers and is woken by the pops (every lanes pop is a ring pop). The blocking
//! operations themselves are in `blocking_ops.rs`.

#[cfg(any(feature = "std", loom))]
use crate::sync::{Instant, LostRaces};

use crate::ring::Waiters;
#[cfg(any(feature = "std", loom))]
use crate::ring::{PopError, RingCore, Step, Storage};

/// The consumers asleep on all lanes at once.
#[derive(Debug)]
pub(crate) struct Parking {
    consumers: Waiters,
}

impl Parking {
    crate::sync::const_fn_unless_loom! {
        pub(crate) fn new() -> Self {
            Self {
                consumers: Waiters::new(),
            }
        }
    }

    /// A value was published in some lane: wakes one sleeping consumer, if any (a compiler
    /// fence and one load when nobody sleeps).
    #[inline]
    pub(crate) fn pushed(&self) {
        self.consumers.notify(1);
    }

    /// A batch push published `n` values in some lane (0: only holes, a claim it could not
    /// fill): wakes up to `n` sleeping consumers (at least one), as the ring's batch push wakes
    /// its own.
    #[inline]
    pub(crate) fn published(&self, n: usize) {
        self.consumers.notify(n.max(1));
    }

    /// How many consumers are asleep now (test support).
    #[cfg(all(test, feature = "std", not(loom)))]
    pub(crate) fn registered(&self) -> usize {
        self.consumers.asleep()
    }

    /// Every lane was closed: wakes every sleeping consumer.
    #[inline]
    pub(crate) fn closed(&self) {
        self.consumers.notify_all();
    }
}

#[cfg(any(feature = "std", loom))]
impl Parking {
    /// Retries `attempt` while it says `Empty`, with the ring's wait loop
    /// ([`Waiters::wait_for`]), until `deadline` (then `Empty`). Sleeps only while no lane of
    /// `rings` has a value ready after registering; a woken consumer that popped passes a
    /// wake-up on if a lane still has one. `attempt` reports its lost races to the
    /// [`LostRaces`] it is given, one for the whole wait, as the ring's blocking pops do.
    pub(crate) fn wait<T, S: Storage<T>, R>(
        &self,
        rings: &[RingCore<T, S>],
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&mut LostRaces) -> Result<R, PopError>,
    ) -> Result<R, PopError> {
        let mut races = LostRaces::new();
        self.consumers
            .wait_for(
                deadline,
                || blocked(rings),
                || match attempt(&mut races) {
                    Err(PopError::Empty) => Step::Blocked,
                    done => Step::Done(done),
                },
            )
            .unwrap_or(Err(PopError::Empty))
    }
}

#[cfg(any(feature = "std", loom))]
impl Parking {
    /// Waits until some lane's head is ready for a pop (`Ok`), every lane is closed and drained
    /// (`Closed`), or `deadline` passes (`Empty`); pops nothing and passes no wake-up on.
    pub(crate) fn wait_ready<T, S: Storage<T>>(
        &self,
        rings: &[RingCore<T, S>],
        deadline: Option<Instant>,
    ) -> Result<(), PopError> {
        self.consumers
            .wait_until_ready(
                deadline,
                || blocked(rings),
                || match heads_state(rings) {
                    Err(PopError::Empty) => Step::Blocked,
                    done => Step::Done(done),
                },
            )
            .unwrap_or(Err(PopError::Empty))
    }
}

/// What a lanes pop would find: `Ok` if some lane's head is ready, `Closed` if every lane is
/// closed and drained, else `Empty`.
#[cfg(any(feature = "std", loom))]
fn heads_state<T, S: Storage<T>>(rings: &[RingCore<T, S>]) -> Result<(), PopError> {
    let mut all_closed = true;
    for ring in rings {
        match ring.head_state() {
            Ok(()) => return Ok(()),
            Err(PopError::Empty) => all_closed = false,
            Err(PopError::Closed) => {}
        }
    }
    Err(if all_closed {
        PopError::Closed
    } else {
        PopError::Empty
    })
}

/// Sleep re-check over all lanes: blocked while no lane's head slot holds a value or hole and
/// some lane is still open. A lane closed and drained while others are open (a `close` half
/// way through its lanes) leaves the consumer blocked: the close's wake-up comes once every
/// lane is closed (`Parking::closed`), and a push to an open lane wakes it as ever.
#[cfg(any(feature = "std", loom))]
fn blocked<T, S: Storage<T>>(rings: &[RingCore<T, S>]) -> bool {
    if cfg!(pc_mutant = "lanes_blocked_on_a_drained_lane") {
        // A closed, drained lane taken for a ready one: never blocked during a close.
        return rings.iter().all(|r| r.head_state() == Err(PopError::Empty));
    }
    heads_state(rings) == Err(PopError::Empty)
}
