//! SQLite, the embedded default sink: one writer connection (group commit among consumers),
//! checkpoints on a thread of their own, and run and input bookkeeping in the same file.

pub mod checkpoint;
pub mod create;
pub mod delivered;
pub mod insert;
pub mod read;
pub mod runs;
pub mod schema;
pub mod writer;

pub use writer::Writer;
