//! pc-host: parse, validate, run, print. Nothing else: the rest is the `pc_host` library.
//!
//! Exit status: 0 when every accepted message is in the database (or `verify` found no
//! problem); 1 on a MISMATCH, a failed run or a database that cannot be used; 2 on bad flags,
//! environment or config file; 130/143 on a second SIGINT/SIGTERM.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};

use pc_host::cli::{Cli, Command, Output};
use pc_host::{config, pipeline, signals, verify};

fn main() -> ExitCode {
    let matches = Cli::command().get_matches(); // clap prints its own errors and exits 2
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    if let Some(Command::Verify(args)) = &cli.command {
        return match verify::run(args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => fail(&e),
        };
    }

    let cfg = match config::resolve(cli.run, &matches) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    if let Err(e) = signals::install(tx.clone()) {
        return fail(&anyhow::anyhow!("cannot install signal handlers: {e}"));
    }
    let prepared = match pipeline::prepare(&cfg) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    eprintln!("{}", pipeline::header(&cfg, &prepared));
    let summary = pipeline::run(&cfg, prepared, &tx, &rx);

    let out = match cfg.output {
        Output::Text => summary.text(),
        Output::Json => format!("{}\n", summary.json()),
    };
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::from(1);
    }
    if summary.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(1)
}
