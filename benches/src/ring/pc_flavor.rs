//! pc's ring as a [`Flavor`](crate::harness::Flavor), written once as a macro over the crate
//! name, so that the A/B tool (`benches/ab/`) can instantiate it for two builds of pc-core
//! (`pc_core_a`, `pc_core_b`) exactly as `compare` and the criterion benches use the one in
//! the workspace. The invoking crate must have the harness at `crate::harness`.

/// The parts of a pc end's `Tx` that do not depend on how it pushes one value: batches (a
/// range, pushed as far as it fits) and the blocking push. Items for an `impl Tx` block whose
/// `self.0` is a ring or a producer handle.
macro_rules! pc_tx_batch_and_push {
    () => {
        #[inline]
        fn try_push_batch(&mut self, next: u64, end: u64, max: usize) -> usize {
            let mut items = next..end.min(next + max as u64);
            self.0.try_push_batch(&mut items).unwrap_or(0)
        }
        fn push(&mut self, v: u64) {
            self.0.push(v).expect("never closed while benchmarking");
        }
    };
}

/// `impl Rx for $end`, whose `self.0` is a ring or a consumer handle: the same calls either way,
/// its batch pop being `pop_batch_call` (`try_pop_batch_spinning` for `compare`, whose loops try
/// again at once on `Empty`; `try_pop_batch` for the A/B tool, which builds revisions from
/// before `try_pop_batch_spinning` too).
macro_rules! pc_rx {
    ($end:ty, $pop_batch:ident) => {
        impl crate::harness::Rx for $end {
            #[inline]
            fn try_pop(&mut self) -> Option<u64> {
                self.0.try_pop().ok()
            }
            #[inline]
            fn try_pop_batch(&mut self, max: usize, sum: &mut u64) -> usize {
                let mut adder = crate::harness::Adder::default();
                let _ = self.0.$pop_batch(&mut adder, max);
                *sum = sum.wrapping_add(adder.sum());
                adder.count()
            }
            fn pop(&mut self) -> u64 {
                self.0.pop().expect("never closed while benchmarking")
            }
        }
    };
}

/// `pc_flavor!(Flavor, End, crate_name, "row label", push_call, pop_batch_call)`: a `Flavor`
/// named `Flavor` over `crate_name::HeapRing<u64>`, both ends an `End` (the ring, shared),
/// whose `try_push` is the ring's `push_call` and whose batch pop is its `pop_batch_call`:
/// `try_push_spinning` and `try_pop_batch_spinning` for `compare` (every loop there tries
/// again at once on `Full` or `Empty`, the caller those calls are for), `try_push` and
/// `try_pop_batch` for the A/B tool, so that it builds revisions of pc-core from before them.
macro_rules! pc_flavor {
    ($flavor:ident, $end:ident, $krate:ident, $name:expr, $push:ident, $pop_batch:ident) => {
        /// pc-core's ring (see the `pc_flavor!` macro).
        #[derive(Debug)]
        pub struct $flavor;

        /// Both ends of pc's ring: the ring itself, shared.
        #[derive(Clone, Debug)]
        pub struct $end(::std::sync::Arc<$krate::HeapRing<u64>>);

        impl crate::harness::Tx for $end {
            #[inline]
            fn try_push(&mut self, v: u64) -> Result<(), u64> {
                self.0.$push(v).map_err($krate::PushError::into_inner)
            }
            pc_tx_batch_and_push!();
        }

        pc_rx!($end, $pop_batch);

        impl crate::harness::Flavor for $flavor {
            const NAME: &'static str = $name;
            type Tx = $end;
            type Rx = $end;
            fn endpoints() -> ($end, $end) {
                let ring = ::std::sync::Arc::new($krate::HeapRing::with_capacity(
                    crate::harness::CAPACITY,
                ));
                ($end(::std::sync::Arc::clone(&ring)), $end(ring))
            }
        }
    };
}

/// `pc_split_flavor!(Flavor, Producer, Consumer, crate_name, "row label", pop_batch_call)`: a
/// `Flavor` named `Flavor` over `crate_name`'s ring split into handles (`RingCore::split`): a
/// `Producer` and a `Consumer`, each claiming with a plain store while it is its side's only
/// handle; clones (the 2P2C rows) claim as the shared ring does. Its producer pushes with
/// `try_push_spinning`, the call for a caller that tries again at once on `Full`, as every
/// loop of the harness does (it waits for room for a run after a `Full`); `Producer<false>`
/// pushes with the exact `try_push` instead. Its consumer's batch pop is `pop_batch_call`, as
/// in `pc_flavor!`. `compare` uses it for pc-core, the A/B tool (`ab.sh --handles split`) for
/// two builds of it (revisions that have `split` and `try_push_spinning`).
///
/// Each run leaks its ring (12 KiB at the harness's capacity): the harness's endpoints must
/// be `'static`, and handles borrow their ring.
macro_rules! pc_split_flavor {
    (
        $flavor:ident,
        $producer:ident,
        $consumer:ident,
        $krate:ident,
        $name:expr,
        $pop_batch:ident
    ) => {
        /// pc-core's ring split into handles (see the `pc_split_flavor!` macro).
        #[derive(Debug)]
        pub struct $flavor;

        /// pc's producer handle; `SPINNING`: whether its `Tx::try_push` is the handle's
        /// `try_push_spinning` (else its `try_push`).
        #[derive(Clone, Debug)]
        pub struct $producer<const SPINNING: bool = true>(
            $krate::ring::Producer<'static, u64, $krate::ring::Boxed<u64>>,
        );

        /// pc's consumer handle.
        #[derive(Clone, Debug)]
        pub struct $consumer($krate::ring::Consumer<'static, u64, $krate::ring::Boxed<u64>>);

        impl<const SPINNING: bool> $producer<SPINNING> {
            /// A leaked ring of the harness's capacity, split.
            pub fn split_endpoints() -> (Self, $consumer) {
                let ring: &'static mut $krate::HeapRing<u64> =
                    ::std::boxed::Box::leak(::std::boxed::Box::new(
                        $krate::HeapRing::with_capacity(crate::harness::CAPACITY),
                    ));
                let (producer, consumer) = ring.split();
                (Self(producer), $consumer(consumer))
            }
        }

        impl<const SPINNING: bool> crate::harness::Tx for $producer<SPINNING> {
            /// `try_push_spinning`, or `try_push` where `SPINNING` is false.
            #[inline]
            fn try_push(&mut self, v: u64) -> Result<(), u64> {
                let pushed = if SPINNING {
                    self.0.try_push_spinning(v)
                } else {
                    self.0.try_push(v)
                };
                pushed.map_err($krate::PushError::into_inner)
            }
            pc_tx_batch_and_push!();
        }

        pc_rx!($consumer, $pop_batch);

        impl crate::harness::Flavor for $flavor {
            const NAME: &'static str = $name;
            const PC_VARIANT: bool = true;
            type Tx = $producer;
            type Rx = $consumer;
            fn endpoints() -> ($producer, $consumer) {
                $producer::split_endpoints()
            }
        }
    };
}
