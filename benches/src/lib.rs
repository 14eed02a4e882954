//! Shared helpers for pc's benches and comparison binaries.

pub mod ring;
