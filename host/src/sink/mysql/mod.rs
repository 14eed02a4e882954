//! MySQL and MariaDB: `mysql://USER[:PASSWORD]@HOST:PORT/DB` (or `mariadb://`). The same
//! tables and guarantees as the SQLite sink, in InnoDB: each write is one transaction holding
//! the rows and the positions of the file inputs they come from; a lost connection is retried
//! on a new one, without storing a batch twice (see `writer.rs`). A run without file inputs
//! may write through one connection per consumer.
//!
//! - `connect.rs`: the URL, the session settings, connection errors;
//! - `schema.rs`: recognising, refusing, creating or upgrading the tables;
//! - `writer.rs`, `encode.rs`: the writer and its statements;
//! - `runs.rs`: runs (their summary and report intervals) and inputs; `read.rs`: reading
//!   back for `verify`;
//! - `error.rs`: what each server error means for a write.

mod connect;
mod delivered;
mod encode;
mod error;
mod read;
mod runs;
mod schema;
mod writer;

pub use read::Reader;
pub use writer::Writer;

use anyhow::anyhow;

use crate::config::url::ServerUrl;
use crate::sink::RunStart;

use connect::Target;
use error::describe;

/// Connects, creates or checks the tables, records the run; returns the writer and run id.
///
/// # Errors
/// One line naming the URL (never its password): the server unreachable, access denied, no
/// such database, tables that are not pc-host's.
pub fn open(url: &ServerUrl, start: &RunStart<'_>) -> anyhow::Result<(Writer, i64)> {
    let target = Target::new(url, start.busy)?;
    let mut connected = target.connect_or_explain()?;
    schema::prepare(&mut connected.conn, url, start.delivered)?;
    let run_id = runs::start_run(&mut connected.conn, start).map_err(|e| {
        anyhow!(
            "sink {}: recording the run failed: {}",
            url.shown,
            describe(&e)
        )
    })?;
    let mut writer = Writer::new(target, connected, run_id)?;
    writer.delivered = start.delivered;
    Ok((writer, run_id))
}
