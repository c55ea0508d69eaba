//! The `xdpstat` binary: parse, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use xdpstat::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) if cli::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xdpstat: {}", cli::message(&error));
            ExitCode::from(cli::exit_code(&error))
        }
    }
}
