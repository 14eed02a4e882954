//! A `--lanes` run: each settled record counted in its own lane too, with its latency.

use std::sync::PoisonError;

use crate::config::lanes::MAX_LANES;
use crate::sink::{Fate, Settled};
use crate::telemetry::bump;
use crate::telemetry::lanes::LaneCounters;

/// Counts `s`'s records in their lanes, and their latency.
///
/// Duplicates are broker deliveries, and a broker source runs alone (so in one lane): they
/// are counted in the lane of the batch's first record.
pub fn record(lanes: &[LaneCounters], s: &Settled<'_>, warmup_end_ns: u64) {
    let mut rows = [0u64; MAX_LANES];
    for m in s.records {
        let lane = usize::from(m.lane);
        let Some(counters) = lanes.get(lane) else {
            continue;
        };
        rows[lane] += 1;
        if m.intended_ns >= warmup_end_ns {
            counters
                .latency
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .saturating_record(s.at.saturating_sub(m.intended_ns).max(1));
        }
    }
    let first = s.records.first().map_or(0, |m| usize::from(m.lane));
    for (lane, counters) in lanes.iter().enumerate() {
        let n = rows[lane];
        match s.fate {
            Fate::Committed if lane == first => {
                bump(&counters.stored, n.saturating_sub(s.duplicates));
                bump(&counters.duplicates, s.duplicates.min(n));
            }
            Fate::Committed => bump(&counters.stored, n),
            Fate::DeadLettered => bump(&counters.dead_lettered, n),
            Fate::NotStored { .. } => bump(&counters.not_stored, n),
        }
    }
}
