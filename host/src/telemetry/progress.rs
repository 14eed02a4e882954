//! Progress on stderr: a line per interval (rates, latency, queue depth), or a bar on a
//! terminal; and the one way to write to stderr while a bar may be drawn ([`say`], [`Stderr`]),
//! so that a warning never lands in the middle of the bar.

use std::io::Write as _;
use std::sync::{Mutex, PoisonError};

use super::interval::Interval;
use super::{Stats, ms};

/// The bar being drawn, if any.
static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Writes one line to stderr, with the bar (if one is drawn) cleared around it. A closed or
/// full stderr is ignored: the run's result is the summary's.
pub fn say(line: &str) {
    write_stderr(format!("{line}\n").as_bytes());
}

fn write_stderr(bytes: &[u8]) {
    let bar = BAR.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let write = || drop(std::io::stderr().write_all(bytes));
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// stderr for the log (`tracing`): each event written whole, around the bar.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stderr;

/// One log event being formatted; written when dropped.
#[derive(Debug, Default)]
pub struct Event(Vec<u8>);

impl std::io::Write for Event {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            write_stderr(&self.0);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Event;

    fn make_writer(&'a self) -> Event {
        Event::default()
    }
}

/// One progress line (for stderr) for `iv`; `retrying`: the sink's error while a write is
/// being retried. Every figure is the interval's (one snapshot at its end); latency is of the
/// messages settled in the interval.
pub fn line(iv: &Interval, capacity: usize, retrying: Option<&str>) -> String {
    let p99 = iv.latency_p99.map_or_else(|| "-".to_string(), ms);
    let sink = match retrying {
        Some(e) => format!(" | RETRYING: {e}"),
        None => String::new(),
    };
    format!(
        "[{:7.1} s] produced {} ({:.0} msg/s) | stored {} ({:.0} msg/s) | ring {}/{capacity} | \
         p99 {p99} ms | blocked {:.3} s{sink}",
        iv.t_s,
        iv.counts.produced,
        iv.rate(iv.produced),
        iv.counts.stored,
        iv.rate(iv.stored),
        iv.queue_depth,
        iv.counts.blocked_ns as f64 / 1e9
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
        *BAR.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.clone());
        Self::Bar(bar, measure)
    }

    /// Shows interval `iv`: a line, or the bar moved on.
    pub fn show(&self, iv: &Interval, stats: &Stats, capacity: usize, retrying: Option<&str>) {
        match self {
            Self::Lines => say(&line(iv, capacity, retrying)),
            Self::Bar(bar, measure) => {
                bar.set_position(match measure {
                    Measure::Stored => iv.counts.stored,
                    Measure::ReadBytes => stats.read_bytes(),
                });
                let p99 = iv.latency_p99.map_or_else(|| "-".to_string(), ms);
                let sink = retrying.map_or(String::new(), |_| " | RETRYING".to_string());
                let rate = iv.rate(iv.stored);
                bar.set_message(format!("| stored {rate:.0} msg/s | p99 {p99} ms{sink}"));
            }
        }
    }

    /// The run is over: the bar stays as it ended, on a line of its own.
    pub fn done(&self) {
        if let Self::Bar(bar, _) = self {
            bar.abandon();
            *BAR.lock().unwrap_or_else(PoisonError::into_inner) = None;
            let _ = std::io::stderr().write_all(b"\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::interval::Intervals;
    use super::super::{Stats, bump};
    use super::line;

    #[test]
    fn a_progress_line_shows_its_intervals_snapshot_not_counts_made_since() {
        let stats = Stats::new(1, 1);
        bump(&stats.producers[0].produced, 7);
        bump(&stats.consumer(0).consumed, 5);
        bump(&stats.consumer(0).stored, 3);
        let iv = Intervals::default().tick(1.0, &stats, 2);
        // Counted after the tick, before the line is printed: not in this line.
        bump(&stats.producers[0].produced, 100);
        bump(&stats.consumer(0).stored, 100);
        let shown = line(&iv, 8, None);
        assert!(
            shown.contains("produced 7 (7 msg/s) | stored 3 (3 msg/s) | ring 2/8"),
            "{shown}"
        );
    }
}
