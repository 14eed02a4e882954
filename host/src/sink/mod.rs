//! Sinks: where committed records go. A sink takes records and commits each call atomically,
//! together with the position every file input reaches in them, so a restart resumes exactly
//! after what was stored.
//!
//! [`GroupCommit`] shares one sink among the consumers and decides, by the [`ErrorKind`] of a
//! failed write, whether to retry, split out a refused record, or give up; `sqlite/` is the
//! embedded default.

pub mod error;
pub mod group_commit;
pub mod retry;
pub mod sqlite;

pub use error::{ErrorKind, SinkError};
pub use group_commit::{Fate, GroupCommit, Policy, Settled};

use crate::message::Record;
use crate::position::{FileKey, Resume};

/// A destination for records.
pub trait Sink: Send + std::fmt::Debug {
    /// Stores `records` (in order) in one transaction, with the position each file input
    /// reaches in them. On error nothing of it is stored.
    ///
    /// # Errors
    /// What failed, as one line, and its [`ErrorKind`]: whether trying again may help.
    fn write(&mut self, records: &[&Record]) -> Result<(), SinkError>;

    /// Where `file` resumes (registering it if new); `None` registers a stdin input. See
    /// [`crate::position::Positions`].
    ///
    /// # Errors
    /// One line saying what failed.
    fn register(&mut self, file: Option<&FileKey>) -> anyhow::Result<Resume>;
}
