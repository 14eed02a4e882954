//! The progress line on stderr: per-interval rates and the queue depth.

use super::{Stats, ms};

/// The progress line's memory of the previous tick, for per-interval rates.
#[derive(Debug, Default)]
pub struct Progress {
    last_s: f64,
    last_produced: u64,
    last_stored: u64,
}

impl Progress {
    /// One progress line (for stderr) at `t_s` seconds into the run.
    /// `retrying`: the sink's error while a write is being retried.
    pub fn line(
        &mut self,
        t_s: f64,
        stats: &Stats,
        (ring_len, capacity): (usize, usize),
        retrying: Option<&str>,
    ) -> String {
        let produced = stats.produced();
        let stored = stats.stored();
        let dt = (t_s - self.last_s).max(1e-9);
        let in_rate = (produced - self.last_produced) as f64 / dt;
        let out_rate = (stored - self.last_stored) as f64 / dt;
        *self = Self {
            last_s: t_s,
            last_produced: produced,
            last_stored: stored,
        };
        let lat = stats.latency();
        let p99 = if lat.is_empty() {
            "-".to_string()
        } else {
            ms(lat.value_at_quantile(0.99))
        };
        let sink = match retrying {
            Some(e) => format!(" | RETRYING: {e}"),
            None => String::new(),
        };
        format!(
            "[{t_s:7.1} s] produced {produced} ({in_rate:.0} msg/s) | stored {stored} \
             ({out_rate:.0} msg/s) | ring {ring_len}/{capacity} | p99 {p99} ms | blocked {:.3} s{sink}",
            stats.blocked_ns() as f64 / 1e9
        )
    }
}
