//! What a failed write means for the records in it: worth another try, one record the sink
//! can never take, or the end of this sink for the run.

use std::fmt;

/// How a sink's write failed; decides what [`super::GroupCommit`] does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The same write may succeed later: a lock held past the busy timeout, an I/O error, a
    /// full disk, a lost connection. Retried with backoff up to `--retry-for`.
    Retryable,
    /// One record in the write can never be stored (a constraint or trigger refused it, or it
    /// is too big). The write is split until that record is alone, and it is dead-lettered.
    Record,
    /// Nothing more can be written: a schema the sink refuses, no permission, another process
    /// moving this run's inputs. No retry.
    Fatal,
}

impl ErrorKind {
    /// The label the summary, the logs and the dead-letter file use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::Record => "record",
            Self::Fatal => "fatal",
        }
    }
}

/// A failed write: its kind and one line for the user. Nothing of the write was stored,
/// unless `unconfirmed`.
#[derive(Debug)]
pub struct SinkError {
    pub kind: ErrorKind,
    pub error: anyhow::Error,
    /// Some of the write may be stored all the same: records were sent and their outcome is
    /// unknown (a broker's publish whose ack never came; a database's COMMIT whose reply was
    /// lost, while the server cannot be asked what became of it). Any other failed database
    /// write rolled back.
    pub unconfirmed: bool,
    /// How many of the write's records, from its first, the sink confirmed stored before it
    /// failed: a broker acknowledges each publish, so a write can fail after storing some. A
    /// failed database write rolled back: 0.
    pub stored: usize,
}

impl SinkError {
    pub fn new(kind: ErrorKind, error: anyhow::Error) -> Self {
        Self {
            kind,
            error,
            unconfirmed: false,
            stored: 0,
        }
    }

    /// The same error, of a write whose first `n` records were confirmed stored.
    #[must_use]
    pub fn after_storing(mut self, n: usize) -> Self {
        self.stored = n;
        self
    }

    /// The same error, of a write whose records may be stored (see `unconfirmed`).
    #[must_use]
    pub fn unconfirmed(mut self) -> Self {
        self.unconfirmed = true;
        self
    }

    pub fn fatal(error: anyhow::Error) -> Self {
        Self::new(ErrorKind::Fatal, error)
    }

    /// The error of a call that writes no records (recording a publishing run), whose
    /// failure a write would have had as `kind`: retryable as a write is, else fatal (there
    /// is no record to set aside).
    pub fn of_bookkeeping(kind: ErrorKind, error: anyhow::Error) -> Self {
        match kind {
            ErrorKind::Retryable => Self::new(kind, error),
            ErrorKind::Record | ErrorKind::Fatal => Self::fatal(error),
        }
    }
}

/// The sink was locked by another client (or, for a call that must not wait, busy): callers
/// that can try again later tell it from other errors by this type.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Busy(pub String);

/// "committing a batch of 3 messages" (or "of 1 message"): how each sink's write errors begin.
pub fn committing(rows: usize) -> String {
    let noun = if rows == 1 { "message" } else { "messages" };
    format!("committing a batch of {rows} {noun}")
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for SinkError {}
