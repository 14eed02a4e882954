//! PostgreSQL, a server sink: rows sent by binary COPY, one transaction per write holding the
//! rows and the positions their file inputs reach, several connections writing one run side by
//! side (when no input needs ring order), and a lost connection made again by the next write.
//!
//! Same tables and meanings as SQLite's (see `schema.rs`), marked as pc-host's by the table
//! `pc_host_schema`; `created_at` is a `timestamptz` (microseconds). Errors are classified by
//! SQLSTATE (see `error.rs`); retrying is `sink::GroupCommit`'s, never the writer's.

mod commit_watch;
mod connect;
mod delivered;
pub mod encode;
mod error;
mod notices;
mod read;
mod runs;
mod schema;
mod session;
mod writer;

pub use read::Reader;
pub use writer::{Writer, open};
