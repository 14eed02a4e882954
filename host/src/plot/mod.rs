//! `pc-host plot`: draws one run's throughput and latency over time, from the `run_intervals`
//! rows of a pc-host database (SQLite, `--db`; PostgreSQL or MySQL, `--sink`), as an SVG file.
//!
//! The database is opened read-only. The SVG holds two charts, one above the other, over the
//! run's time: produced/s and stored/s (each interval's count over its length), and the p50,
//! p99 and max latency in ms of the messages settled in each interval (a logarithmic axis when
//! they span more than two decades; an interval where none settled leaves a gap). Every file
//! `plot` writes starts with [`MARKER`]; an existing output file without it is never
//! overwritten.

mod data;
mod draw;
mod output;
mod series;

use std::io::Write as _;

use crate::config::cli::PlotArgs;
use crate::config::url::database_to_read;

pub use output::MARKER;

/// Draws the run `args` names (default: the last run with intervals) into `args.output`, then
/// prints one line saying what it drew. Nothing is written unless the drawing is complete; an
/// earlier plot at `args.output` is replaced whole.
///
/// # Errors
/// A [`crate::config::ConfigError`] (exit 2) for bad input named by the user: `--run` naming a
/// run with no intervals, an output whose directory is missing, or an existing output file
/// that `plot` did not write (left untouched). Others (exit 1) for a database that is missing,
/// not pc-host's, holds no intervals or cannot be read, and for a failed write.
pub fn run(args: &PlotArgs) -> anyhow::Result<()> {
    let (spec, name) = database_to_read(args.sink.as_deref(), &args.sink_from, &args.db, "plot")?;
    let target = output::check(&args.output)?;
    let busy = args.busy.duration();
    let run = data::load(&spec, &name, args.run, busy)?;
    let svg = render(&name, &run)?;
    output::write(&target, &svg)?;
    let skipped = match run.skipped {
        0 => String::new(),
        1 => "; the 1 run after it has no intervals".to_owned(),
        n => format!("; the {n} runs after it have no intervals"),
    };
    let intervals = match run.intervals.len() {
        1 => "1 interval".to_owned(),
        n => format!("{n} intervals"),
    };
    let _ = writeln!(
        std::io::stdout(),
        "plot: run {} of {name} ({intervals}{skipped}) -> {}",
        run.id,
        args.output.display()
    );
    Ok(())
}

/// The SVG document of `run`, starting with [`MARKER`].
fn render(name: &str, run: &data::Run) -> anyhow::Result<String> {
    let title = format!("pc-host run {} of {name}", run.id);
    let end_s = run.intervals.last().map_or(0.0, |i| i.t_s);
    let svg = draw::svg(
        &title,
        end_s,
        &series::throughput(&run.intervals),
        &series::latency(&run.intervals),
    )?;
    Ok(format!("{MARKER}\n{svg}"))
}
