//! Shared helpers for pc's benches and comparison binaries.

pub mod ab;
pub mod bucket;
pub mod ring;
pub mod sink;

/// The measuring loops at `crate::harness`, where `ring`'s pc flavour and [`ab`] expect them
/// (the A/B tool compiles those files into a crate of its own, with the harness at its root).
pub use ring::harness;
