//! The A/B binary: two builds of pc-core linked into one process (`pc_core_a`, `pc_core_b`,
//! both the package `pc-core` from two source trees), measured by the ring comparisons' own
//! loops. Built by `benches/ab/ab.sh`, which generates its Cargo.toml; see `ab.sh --help`.
//!
//! Everything but the two flavours lives in pc-benches (`src/ab.rs`, `src/ring/harness.rs`,
//! `src/ring/pc_flavor.rs`), compiled here by path, so pc-benches' clippy and tests cover it.

// Shared with pc-benches, which uses all of it; this binary uses part.
#[allow(dead_code)]
#[path = "../../src/ring/harness.rs"]
mod harness;

#[path = "../../src/ab.rs"]
mod ab;

// A build uses either the shared or the split flavour's macro (feature `split`).
#[macro_use]
#[allow(unused_macros)]
#[path = "../../src/ring/pc_flavor.rs"]
mod pc_flavor;

#[cfg(not(feature = "split"))]
pc_flavor!(A, AEnd, pc_core_a, "A", try_push, try_pop_batch);
#[cfg(not(feature = "split"))]
pc_flavor!(B, BEnd, pc_core_b, "B", try_push, try_pop_batch);
#[cfg(feature = "split")]
pc_split_flavor!(A, AProducer, AConsumer, pc_core_a, "A", try_pop_batch);
#[cfg(feature = "split")]
pc_split_flavor!(B, BProducer, BConsumer, pc_core_b, "B", try_pop_batch);

fn main() {
    ab::main::<A, B>();
}
