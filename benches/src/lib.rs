//! Shared helpers for pc's benches and comparison binaries.

pub mod bucket;
pub mod ring;
pub mod sink;
