//! After the threads: the database's side of the end of a run, and the warnings about
//! rejected records.

use std::sync::atomic::Ordering;

use pc_core::Clock;

use crate::config::Config;
use crate::position::{InputStart, Resume};
use crate::sink::sqlite::checkpoint;
use crate::sink::sqlite::runs::{self, RunRow};
use crate::sink::sqlite::{Writer, schema};
use crate::telemetry::Stats;

/// How the threads ended: their errors, and the input positions to commit.
#[derive(Debug)]
pub struct Ends {
    pub errors: Vec<String>,
    pub settle: Vec<Resume>,
}

/// The end of a run in the database: final checkpoint, the count back, the `runs` row.
/// Returns the stored count and the run's errors, with any from here added.
pub fn finish(
    cfg: &Config,
    run: &RunRow,
    writer: &mut Writer,
    stats: &Stats,
    ends: Ends,
    unix_base: i64,
    clock: &Clock,
) -> (u64, Vec<String>) {
    let Ends { mut errors, settle } = ends;
    let db = cfg.db();
    // Every record is committed only if nothing failed; then the inputs' last positions
    // (rejected lines after the last stored one) can be committed too.
    if errors.is_empty() {
        for to in settle {
            if let Err(e) = writer.settle(to) {
                errors.push(format!("{e:#}"));
            }
        }
    }
    if let Err(e) = checkpoint::final_checkpoint(writer.conn(), db) {
        tracing::warn!("{e:#}");
    }
    let stored = match runs::count_stored(writer.conn(), run, writer.last_id()) {
        Ok(n) => n,
        Err(e) => {
            let e = schema::db_error(db, e, cfg.busy_timeout);
            errors.push(format!("counting the stored messages failed: {e}"));
            0
        }
    };
    // Generated runs record each producer's count for verify; ingest rows carry their input.
    let per_producer: Vec<u64> = if cfg.generated() {
        stats
            .producers
            .iter()
            .map(|p| p.produced.load(Ordering::Relaxed))
            .collect()
    } else {
        Vec::new()
    };
    let finished_at = unix_base.saturating_add(clock.now() as i64);
    if let Err(e) = runs::finish_run(
        writer.conn(),
        run.run_id,
        finished_at,
        errors.is_empty(),
        &per_producer,
        stats.produced(),
        writer.last_id(),
    ) {
        errors.push(format!(
            "recording the end of run {} failed: {e}",
            run.run_id
        ));
    }
    (stored, errors)
}

/// One warning line per input that had records rejected, with the first few positions.
pub fn warn_rejects(cfg: &Config, starts: &[InputStart], stats: &Stats) {
    if cfg.generated() {
        return;
    }
    for (start, p) in starts.iter().zip(&stats.producers) {
        let n = p.rejected.load(Ordering::Relaxed);
        if n == 0 {
            continue;
        }
        let samples = p
            .reject_samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let more = if n as usize > samples.len() {
            ", ..."
        } else {
            ""
        };
        tracing::warn!(
            "{}: {n} {} rejected (not stored): {}{more}",
            start.name,
            if n == 1 { "record" } else { "records" },
            samples.join(", ")
        );
    }
}
