//! pc-host: parse, validate, run, print. Nothing else: the rest is the `pc_host` library.
//!
//! Exit status: 0 when every accepted record is in the database (or `verify` found no
//! problem); 1 on a MISMATCH or FAILED run or a database that cannot be used; 2 on bad flags,
//! environment, config file or inputs; 130/143/129 on a second SIGINT/SIGTERM/SIGHUP, or a
//! first one while the start waits for a lock (SQLite, PostgreSQL).

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory as _, FromArgMatches as _};

use pc_host::config::cli::{Cli, Command};
use pc_host::config::{self, Layers, Output};
use pc_host::observe::profile::Profile;
use pc_host::observe::{Live, http};
use pc_host::run::{self, PrepareError, signals};
use pc_host::{plot, verify};

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = match Cli::command().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version: printed to stdout, exit 0
        Err(e) => {
            let line = config::layers::usage_error_line(&e, &argv);
            let _ = writeln!(std::io::stderr(), "error: {line}");
            return ExitCode::from(2);
        }
    };
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Err(e) = config::layers::check_variables() {
        return fail(&e.into(), 2);
    }
    init_logging();
    if cli.command.is_some() {
        // Set for the runs, perhaps; a subcommand takes its own flags and variables only.
        if let Some(file) = std::env::var_os("PC_HOST_CONFIG") {
            tracing::warn!(
                "PC_HOST_CONFIG={} is set, but verify and plot read no config file: give them \
                 --db or --sink (or PC_HOST_DB, PC_HOST_SINK)",
                file.to_string_lossy()
            );
        }
    }
    match &mut cli.command {
        Some(Command::Verify(args)) => {
            let given = matches
                .subcommand_matches("verify")
                .expect("parsed as verify");
            match config::layers::read_sink_from(given, "check") {
                Ok(Some(from)) => args.sink_from = from,
                Ok(None) => args.sink = None,
                Err(e) => return fail(&e.into(), 2),
            }
            match verify::run(args) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => fail_config_or(&e, 1),
            }
        }
        Some(Command::Plot(args)) => {
            let given = matches.subcommand_matches("plot").expect("parsed as plot");
            match config::layers::read_sink_from(given, "plot") {
                Ok(Some(from)) => args.sink_from = from,
                Ok(None) => args.sink = None,
                Err(e) => return fail(&e.into(), 2),
            }
            match plot::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail_config_or(&e, 1),
            }
        }
        None => match Layers::load(matches).and_then(|layers| config::resolve(&layers)) {
            Ok(cfg) => run_pipeline(&cfg),
            Err(e) => fail(&e.into(), 2),
        },
    }
}

/// Log lines go to stderr, through the progress line's writer, without times or targets;
/// the NATS client's own lines only when they are warnings: pc-host says what matters.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let quiet_clients = tracing_subscriber::filter::Targets::new()
        .with_target("async_nats", tracing::Level::WARN)
        .with_default(tracing::Level::TRACE);
    tracing_subscriber::fmt()
        .with_writer(pc_host::telemetry::progress::Stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .event_format(LevelFirst)
        .finish()
        .with(quiet_clients)
        .init();
}

/// A log line as `LEVEL message fields`: the level unpadded at the line's start (the default
/// format pads it to five columns, so `WARN` and `INFO` lines began with a space), coloured on
/// a terminal.
struct LevelFirst;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for LevelFirst
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = *event.metadata().level();
        let colour = match level {
            tracing::Level::ERROR => "31",
            tracing::Level::WARN => "33",
            tracing::Level::INFO => "32",
            _ => "34",
        };
        if writer.has_ansi_escapes() {
            write!(writer, "\x1b[{colour}m{level}\x1b[0m ")?;
        } else {
            write!(writer, "{level} ")?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// A run of the pipeline `cfg` describes: its start (signals, metrics, profiler, the sink and
/// sources), the run, its summary on stdout; the exit status says how it went.
fn run_pipeline(cfg: &config::Config) -> ExitCode {
    for warning in &cfg.warnings {
        tracing::warn!("{warning}");
    }
    let (tx, rx) = std::sync::mpsc::channel();
    if let Err(e) = signals::install(tx.clone()) {
        return fail(&anyhow::anyhow!("cannot install signal handlers: {e}"), 1);
    }
    let live = match serve_metrics(cfg) {
        Ok(live) => live,
        Err(code) => return code,
    };
    // Started before the sink is opened: a profiler that cannot start touches nothing.
    let profile = match cfg.profile.as_deref().map(Profile::start).transpose() {
        Ok(p) => p,
        Err(e) => return fail(&anyhow::anyhow!(e), 1),
    };
    let prepared = match run::prepare(cfg) {
        Ok(p) => p,
        Err(PrepareError::Input(e)) => return fail(&anyhow::anyhow!(e), 2),
        Err(PrepareError::Failed(e)) => {
            if let Some(stop) = e.downcast_ref::<pc_host::interrupt::Interrupted>() {
                let _ = writeln!(std::io::stderr(), "pc-host: {stop}");
                return ExitCode::from(u8::try_from(128 + stop.signal).unwrap_or(1));
            }
            return fail(&e, 1);
        }
    };
    let _ = writeln!(std::io::stderr(), "{}", run::header(cfg, &prepared));
    let run_id = prepared.run_id;
    let summary = run::run(cfg, prepared, (&tx, &rx), live.as_deref());
    if let Some(live) = &live {
        live.finished();
    }
    if let Some(profile) = profile {
        match profile.finish(run_id) {
            Ok(path) => tracing::info!("CPU profile written to {}", path.display()),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    if let Some(e) = &summary.error {
        let _ = writeln!(std::io::stderr(), "error: {e}");
    }
    if let Err(code) = print_summary(cfg, &summary) {
        return code;
    }
    if live.is_some() && !cfg.metrics_linger.is_zero() {
        linger(cfg.metrics_linger, &rx);
    }
    if summary.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `--metrics-addr`: the metrics server, started (its address said on stderr); `None` without
/// the flag. `Err`: the exit status of an address it could not bind (exit 2).
fn serve_metrics(cfg: &config::Config) -> Result<Option<Arc<Live>>, ExitCode> {
    let Some((addr, given)) = &cfg.metrics_addr else {
        return Ok(None);
    };
    let live = Arc::new(Live::default());
    match http::serve(*addr, Arc::clone(&live)) {
        Ok(bound) => {
            let _ = writeln!(
                std::io::stderr(),
                "pc-host: metrics: http://{bound}/metrics (also /health, /ready)"
            );
            Ok(Some(live))
        }
        Err(e) => Err(fail(&anyhow::anyhow!("{given}: {e}"), 2)),
    }
}

/// Writes the run's summary to stdout in the `--output` format. A reader gone away (`| head
/// -1`) is said on stderr and the run's result stands; any other failure to write loses the
/// summary, so it is an error (exit 1) that says what the run did.
fn print_summary(cfg: &config::Config, summary: &pc_host::report::Summary) -> Result<(), ExitCode> {
    let out = match cfg.output {
        Output::Text => summary.text(),
        Output::Json => format!("{}\n", summary.json()),
    };
    let mut stdout = std::io::stdout().lock();
    let Err(e) = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    else {
        return Ok(());
    };
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        let _ = writeln!(
            std::io::stderr(),
            "pc-host: stdout was closed before the summary was written (result: {})",
            summary.result()
        );
        return Ok(());
    }
    Err(fail(
        &anyhow::anyhow!(
            "cannot write the summary to stdout: {e} (the run's result: {})",
            summary.result()
        ),
        1,
    ))
}

/// Exit 2 for a [`config::ConfigError`] (bad input named by the user), else `code`.
fn fail_config_or(e: &anyhow::Error, code: u8) -> ExitCode {
    if e.is::<config::ConfigError>() {
        fail(e, 2)
    } else {
        fail(e, code)
    }
}

/// `--metrics-linger`: the run is over and its summary written; the metrics thread keeps
/// serving the final figures until `linger` has passed or a signal comes.
fn linger(linger: std::time::Duration, events: &std::sync::mpsc::Receiver<run::Event>) {
    run::signals::finished();
    let _ = writeln!(
        std::io::stderr(),
        "pc-host: the run has ended; serving its final metrics for {} s (a signal ends this)",
        linger.as_secs_f64()
    );
    let deadline = std::time::Instant::now() + linger;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match events.recv_timeout(left) {
            // Threads of the run that ended meanwhile: not what this waits for.
            Ok(run::Event::SourceDone | run::Event::ConsumerDone | run::Event::Failed) => {}
            Ok(run::Event::Signal(_)) | Err(_) => return,
        }
    }
}

fn fail(e: &anyhow::Error, code: u8) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {e:#}");
    ExitCode::from(code)
}
