//! pc-host as a library: the modules of the `pc-host` binary (`main.rs` parses, runs and
//! prints; everything else lives here), so that benches drive exactly the code the binary runs,
//! pc-host's SQLite sink above all (`benches/benches/sink.rs`).
//!
//! The API is pc-host's internals, not a stable interface: it changes with the binary.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod consumer;
pub mod layers;
pub mod pinning;
pub mod pipeline;
pub mod producer;
pub mod report;
pub mod schema;
pub mod signals;
pub mod sink;
pub mod summary;
pub mod verify;
