//! The command line: parsed arguments ([`args`]), resolved into library calls by one
//! module per command. Errors are printed as one line, then their causes and a hint.

mod args;
mod batch;
mod key;
mod list;
mod report;
mod sign;
mod verify;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// Exit code: everything done.
pub(crate) const SUCCESS: u8 = 0;
/// Exit code: some files failed (batch) or some signature is invalid (verify).
pub(crate) const PARTIAL: u8 = 1;
/// Exit code: nothing done.
pub(crate) const FAILURE: u8 = 2;

pub(crate) fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Sign(args) => sign::run(&args, cli.json),
        Command::Batch(args) => batch::run(&args, cli.json),
        Command::Verify(args) => verify::run(&args, cli.json),
        Command::List(args) => list::run(&args, cli.json),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            report::print_error(&error);
            ExitCode::from(FAILURE)
        }
    }
}

/// Logs to standard error: warnings by default, more with each -v; RUST_LOG wins.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(verbose >= 2)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .try_init();
}
