//! The columns of pc-host's tables, in order, as every sink lays them out and checks them.
//! SQLite's `runs` also keeps `first_id` and `last_id` (for its id-range count), so it states
//! its own list; the server sinks use [`RUNS`].

/// `runs` in the server sinks: the run, then its summary (kept when it ends).
pub const RUNS: &[&str] = &[
    "run_id",
    "started_at",
    "finished_at",
    "completed",
    "producers",
    "produced",
    "config",
    "stored",
    "dead_lettered",
    "not_stored",
    "retries",
    "latency_p50_ns",
    "latency_p99_ns",
    "latency_p999_ns",
    "latency_max_ns",
    "elapsed_s",
];

pub const RUN_PRODUCERS: &[&str] = &["run_id", "producer", "produced"];

/// The seed program's columns first (id, message, created_at).
pub const MESSAGES: &[&str] = &["id", "message", "created_at", "producer", "seq", "run_id"];

pub const INPUTS: &[&str] = &[
    "input_id", "path", "dev", "ino", "born", "offset", "line", "tail",
];

pub const RUN_INPUTS: &[&str] = &["run_id", "input_id"];

pub const RUN_INTERVALS: &[&str] = &[
    "run_id",
    "t_s",
    "produced",
    "stored",
    "rejected",
    "queue_depth",
    "latency_p50_ns",
    "latency_p99_ns",
    "latency_max_ns",
    "commit_p99_ns",
    "consumers",
];
