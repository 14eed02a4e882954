//! Sinks: where committed records go. A sink takes batches and commits each call atomically,
//! together with the position every file input reaches in it, so a restart resumes exactly
//! after what was stored.
//!
//! [`GroupCommit`] shares one sink among the consumers; `sqlite/` is the embedded default.

pub mod group_commit;
pub mod sqlite;

pub use group_commit::{Commit, GroupCommit};

use crate::message::Record;
use crate::position::{FileKey, Resume};

/// A destination for records.
pub trait Sink: Send + std::fmt::Debug {
    /// Stores `batches` (in order) in one transaction, with the position each file input
    /// reaches in them. On error nothing of it is stored.
    ///
    /// # Errors
    /// One line saying what failed and what to do.
    fn write(&mut self, batches: &[Vec<Record>]) -> anyhow::Result<()>;

    /// Where `file` resumes (registering it if new); `None` registers a stdin input. See
    /// [`crate::position::Positions`].
    ///
    /// # Errors
    /// One line saying what failed.
    fn register(&mut self, file: Option<&FileKey>) -> anyhow::Result<Resume>;
}
