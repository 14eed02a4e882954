//! The progress line on stderr: the interval's rates and latency, the queue depth.

use super::interval::Interval;
use super::{Stats, ms};

/// One progress line (for stderr) for `iv`; `retrying`: the sink's error while a write is
/// being retried. Latency is of the messages settled in the interval.
pub fn line(iv: &Interval, stats: &Stats, capacity: usize, retrying: Option<&str>) -> String {
    let p99 = iv.latency_p99.map_or_else(|| "-".to_string(), ms);
    let sink = match retrying {
        Some(e) => format!(" | RETRYING: {e}"),
        None => String::new(),
    };
    format!(
        "[{:7.1} s] produced {} ({:.0} msg/s) | stored {} ({:.0} msg/s) | ring {}/{capacity} | \
         p99 {p99} ms | blocked {:.3} s{sink}",
        iv.t_s,
        stats.produced(),
        iv.rate(iv.produced),
        stats.stored(),
        iv.rate(iv.stored),
        iv.queue_depth,
        stats.blocked_ns() as f64 / 1e9
    )
}

/// How progress shows on stderr.
#[derive(Debug)]
pub enum Display {
    /// One line per report interval (stderr is not a terminal, or the run has no known end).
    Lines,
    /// A bar with rate and ETA, on a terminal, for a run with a known end.
    Bar(indicatif::ProgressBar, Measure),
}

/// What a progress bar counts.
#[derive(Clone, Copy, Debug)]
pub enum Measure {
    /// Records stored, of `--messages`.
    Stored,
    /// Bytes read, of the files' unread bytes.
    ReadBytes,
}

impl Display {
    /// A bar when stderr is a terminal and the run's end is known: `messages` to store, or
    /// `bytes` left to read in files that are not followed; lines otherwise.
    pub fn choose(messages: Option<u64>, bytes: Option<u64>) -> Self {
        use std::io::IsTerminal as _;
        if !std::io::stderr().is_terminal() {
            return Self::Lines;
        }
        let (len, measure, unit) = match (messages, bytes) {
            (Some(n), _) => (n, Measure::Stored, "{human_pos}/{human_len} msgs"),
            (None, Some(b)) => (b, Measure::ReadBytes, "{bytes}/{total_bytes} read"),
            (None, None) => return Self::Lines,
        };
        let style = indicatif::ProgressStyle::with_template(&format!(
            "{{bar:32}} {unit} ETA {{eta}} {{msg}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(len),
            indicatif::ProgressDrawTarget::stderr(),
        )
        .with_style(style);
        Self::Bar(bar, measure)
    }

    /// Shows interval `iv`: a line, or the bar moved on.
    pub fn show(&self, iv: &Interval, stats: &Stats, capacity: usize, retrying: Option<&str>) {
        match self {
            Self::Lines => {
                // A closed or full stderr must not stop the run: the summary still counts.
                let text = line(iv, stats, capacity, retrying);
                let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("{text}\n"));
            }
            Self::Bar(bar, measure) => {
                bar.set_position(match measure {
                    Measure::Stored => stats.stored(),
                    Measure::ReadBytes => stats.read_bytes(),
                });
                let p99 = iv.latency_p99.map_or_else(|| "-".to_string(), ms);
                let sink = retrying.map_or(String::new(), |_| " | RETRYING".to_string());
                let rate = iv.rate(iv.stored);
                bar.set_message(format!("| stored {rate:.0} msg/s | p99 {p99} ms{sink}"));
            }
        }
    }

    /// The run is over: the bar stays as it ended.
    pub fn done(&self) {
        if let Self::Bar(bar, _) = self {
            bar.abandon();
        }
    }
}
