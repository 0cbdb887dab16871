//! arbor: compose, delta and publish image-based Linux operating systems as OSTree
//! repositories. `main` only parses, sets up logging, runs, and maps errors to exit codes.

mod cmd;
mod progress;
mod shared_cache;
mod sign;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    progress::install(cli.progress);
    init_logging(cli.verbose);
    match cmd::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(progress::LogWriter)
        .with_target(false)
        .without_time()
        // Colours only on a terminal: CI logs and captured stderr stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
