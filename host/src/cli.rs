//! The command line: clap definitions only. Every run option is an `Option` so that
//! `config.rs` can tell "not given" from a value and layer flags > env > file > default.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

/// pc-host: N producers push messages through one shared token bucket and a bounded pc-core
/// ring; M pinned consumers commit them to SQLite in batches. Reports produced, consumed and
/// stored counts, throughput and latency (intended send time -> batch committed).
///
/// Every run option can also come from the environment (PC_HOST_<NAME>, e.g.
/// PC_HOST_PRODUCERS=4) or from a TOML file given with --config (same names as the flags,
/// without the dashes in front: `producers = 4`, `batch-size = 5000`). Flags beat the
/// environment, which beats the file.
#[derive(Debug, Parser)]
#[command(name = "pc-host", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a database written by pc-host: row counts, and for every completed run that each
    /// producer's sequence numbers are all there exactly once (no duplicate, no gap).
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The SQLite database to check (it must exist) [default: pc-host.db]
    #[arg(long, value_name = "PATH", env = "PC_HOST_DB")]
    pub db: Option<PathBuf>,

    /// Check only this run (see the `runs` table); default: every run
    #[arg(long, value_name = "ID")]
    pub run: Option<i64>,
}

/// The options of a load run. `None` means "not given on the command line or in the
/// environment".
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Producer threads [default: 10]
    #[arg(long, value_name = "N", env = "PC_HOST_PRODUCERS")]
    pub producers: Option<u64>,

    /// Consumer threads, each pinned, taking turns on the one SQLite writer [default: 5]
    #[arg(long, value_name = "M", env = "PC_HOST_CONSUMERS")]
    pub consumers: Option<u64>,

    /// Target rate in messages/s, in total across producers (one shared token bucket);
    /// 0 = unlimited [default: 500]
    #[arg(long, value_name = "MSG_PER_S", env = "PC_HOST_RPS")]
    pub rps: Option<u64>,

    /// Produce for SECS seconds (fractions allowed), then drain [default: 10, unless
    /// --messages is given; if both are, the one from the higher layer wins]
    #[arg(long, value_name = "SECS", env = "PC_HOST_DURATION")]
    pub duration: Option<f64>,

    /// Produce exactly N messages in total (split evenly across producers), then drain
    #[arg(long, value_name = "N", env = "PC_HOST_MESSAGES")]
    pub messages: Option<u64>,

    /// Ring capacity in slots (messages): a power of two, 2..=16777216 [default: 65536]
    #[arg(long, value_name = "SLOTS", env = "PC_HOST_CAPACITY")]
    pub capacity: Option<u64>,

    /// Maximum rows per SQLite transaction [default: 10000]
    #[arg(long, value_name = "ROWS", env = "PC_HOST_BATCH_SIZE")]
    pub batch_size: Option<u64>,

    /// Maximum time in milliseconds a consumer waits for its batch to fill before committing
    /// what it has (fractions allowed; 0 = commit whatever is ready) [default: 2]
    #[arg(long, value_name = "MS", env = "PC_HOST_BATCH_WAIT_MS")]
    pub batch_wait_ms: Option<f64>,

    /// Message size in bytes: each message text is padded with '.' to this length (texts
    /// already longer are kept whole); 0..=1048576 [default: 64]
    #[arg(long, value_name = "BYTES", env = "PC_HOST_PAYLOAD_SIZE")]
    pub payload_size: Option<u64>,

    /// SQLite database file, created if missing [default: pc-host.db in the current directory]
    #[arg(long, value_name = "PATH", env = "PC_HOST_DB")]
    pub db: Option<PathBuf>,

    /// SQLite durability: normal = survives a process crash, full = also survives power loss
    /// [default: normal]
    #[arg(long, value_name = "MODE", env = "PC_HOST_SYNCHRONOUS")]
    pub synchronous: Option<Synchronous>,

    /// Pin producer and consumer threads to cores (the default); threads that outnumber the
    /// cores share them round-robin [env: PC_HOST_PIN=true|false]
    #[arg(long, action = ArgAction::SetTrue, overrides_with = "no_pin")]
    pub pin: bool,

    /// Do not pin threads to cores
    #[arg(long, action = ArgAction::SetTrue, overrides_with = "pin")]
    pub no_pin: bool,

    /// Exclude messages whose intended send time falls in the first SECS seconds from the
    /// latency figures (they still count everywhere else) [default: 0]
    #[arg(long, value_name = "SECS", env = "PC_HOST_WARMUP")]
    pub warmup: Option<f64>,

    /// Seconds between progress lines on stderr; 0 = none [default: 1]
    #[arg(long, value_name = "SECS", env = "PC_HOST_REPORT_INTERVAL")]
    pub report_interval: Option<f64>,

    /// Final summary format on stdout: text, or exactly one JSON object [default: text]
    #[arg(long, value_name = "FORMAT", env = "PC_HOST_OUTPUT")]
    pub output: Option<Output>,

    /// How long to wait, in milliseconds, for a database locked by another process before
    /// giving up with an error [default: 5000]
    #[arg(long, value_name = "MS", env = "PC_HOST_BUSY_TIMEOUT_MS")]
    pub busy_timeout_ms: Option<u64>,

    /// TOML file with any of the options above (keys as the flag names: `producers = 4`)
    #[arg(long, value_name = "FILE", env = "PC_HOST_CONFIG")]
    pub config: Option<PathBuf>,
}

/// SQLite's `synchronous` setting for the writer (the journal is always WAL).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync the WAL only at checkpoints: a process crash loses nothing committed; a power
    /// loss may roll back the last commits (the file stays consistent).
    Normal,
    /// fsync the WAL at every commit: committed data also survives power loss.
    Full,
}

impl Synchronous {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Full => "full",
        }
    }
}

/// The format of the final summary on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// A human-readable summary.
    Text,
    /// Exactly one JSON object.
    Json,
}
