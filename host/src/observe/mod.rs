//! Watching a run from outside: the metrics endpoint (`metrics.rs`, `http.rs`), the latency
//! log (`latency_log.rs`) and the CPU profile (`profile.rs`). Reads the run's counters; never
//! changes them.

pub mod http;
pub mod latency_log;
pub mod metrics;
pub mod own_file;
pub mod profile;

pub use metrics::{Live, RunView};
