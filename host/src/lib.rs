//! pc-host as a library: the modules of the `pc-host` binary (`main.rs` parses, runs and
//! prints; everything else lives here), so that benches drive exactly the code the binary runs,
//! pc-host's SQLite sink above all (`benches/benches/sink.rs`).
//!
//! The stages, lowest first; a module imports only from the ones above it in this list:
//! `config`, `message`, `position`, `flow`, `queue` -> `telemetry`, `nats` -> `source`, `sink` -> `consumer` -> `report`
//! -> `verify`, `run`. `run` is the only one that knows every stage.
//!
//! The API is pc-host's internals, not a stable interface: it changes with the binary.

pub mod config;
pub mod consumer;
pub mod dead_letter;
pub mod flow;
pub mod interrupt;
pub mod message;
pub mod nats;
pub mod observe;
pub mod paths;
pub mod plot;
pub mod position;
pub mod queue;
pub mod report;
pub mod run;
pub mod sink;
pub mod source;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod verify;
