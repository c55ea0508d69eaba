//! The `xdpstat` binary: parse, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser};
use xdpstat::cli::{self, Cli};

fn main() -> ExitCode {
    // A shell asking for completions (`COMPLETE=bash xdpstat -- …`) gets
    // them, and the process exits here.
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(cli::COMPLETE_VAR)
        .complete();
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
