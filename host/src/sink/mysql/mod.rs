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

use std::time::Instant;

use mysql::prelude::Queryable as _;

use connect::Target;
use error::{LockWaitRanOut, sink_error};

/// Connects, creates or checks the tables, records the run; returns the writer and run id.
///
/// # Errors
/// One line naming the URL (never its password): the server unreachable, access denied, no
/// such database, tables that are not pc-host's, a lock another client held past
/// `--busy-timeout-ms`; [`crate::interrupt::Interrupted`] for a signal while waiting.
pub fn open(url: &ServerUrl, start: &RunStart<'_>) -> anyhow::Result<(Writer, i64)> {
    let target = Target::new(url, start.busy)?;
    let mut connected = target.connect_or_explain()?;
    let run_id = prepare_run(&mut connected.conn, &target, start)?;
    let mut writer = Writer::new(target, connected, run_id);
    writer.delivered = start.delivered;
    Ok((writer, run_id))
}

/// Creates or checks the tables, makes sure no other client holds `messages` locked, and
/// records the run, each lock wait a second at a time (the server's least), tried again until
/// `start.busy` has passed: between two a signal ends the wait, before the run is recorded.
/// The session's own lock waits are put back after.
fn prepare_run(
    conn: &mut mysql::Conn,
    target: &Target,
    start: &RunStart<'_>,
) -> anyhow::Result<i64> {
    let shown = &target.url.shown;
    let err = |e: mysql::Error| sink_error(&e, shown);
    conn.query_drop(connect::SHORTEST_WAITS).map_err(err)?;
    let deadline = Instant::now() + start.busy;
    let run_id = loop {
        let attempt = schema::prepare(conn, &target.url, start.delivered)
            .and_then(|()| {
                // The lock the run's statements take, waited for here so that a table another
                // client holds refuses the run before it is recorded.
                conn.query_drop("SELECT 1 FROM messages LIMIT 0")
                    .map_err(err)
            })
            .and_then(|()| {
                runs::start_run(conn, start)
                    .map_err(|e| sink_error(&e, format_args!("{shown}: recording the run failed")))
            });
        match attempt {
            Err(e) if e.is::<LockWaitRanOut>() => {
                crate::interrupt::check(|| {
                    format!("{shown} (another client held a lock on pc-host's tables)")
                })?;
                if Instant::now() >= deadline {
                    return Err(anyhow!(
                        "sink {shown}: another client held a lock on pc-host's tables for longer \
                         than --busy-timeout-ms"
                    ));
                }
            }
            done => break done?,
        };
    };
    // The run is recorded: a session whose waits could not be put back (its connection lost)
    // is the writer's to replace, as after any lost connection; the start does not fail.
    let _ = conn.query_drop(target.session_waits());
    Ok(run_id)
}
