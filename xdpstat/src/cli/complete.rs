//! Shell completion: `xdpstat completions bash|zsh|fish` prints the script
//! that a shell sources, and the script asks xdpstat itself for each
//! completion (clap_complete's `COMPLETE=<shell> xdpstat -- …` protocol),
//! so that interface names come from the namespace the shell is in, and
//! map ids from the kernel, at the moment of the <Tab>.

use std::{ffi::OsStr, io::Write as _};

use clap::{Args, ValueEnum};
use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};

use crate::error::Result;
use crate::kernel::{iface, sys};

/// The environment variable of clap_complete's protocol.
pub const VAR: &str = "COMPLETE";

/// `xdpstat completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: `source <(xdpstat completions bash)`, or put its output
    /// where the shell looks for completions.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The shells xdpstat completes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash.
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
}

pub(super) fn completions_cmd(args: &CompletionsArgs) -> Result<()> {
    let shell: &dyn EnvCompleter = match args.shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
    };
    let mut out = std::io::stdout().lock();
    let written = shell
        .write_registration(VAR, "xdpstat", "xdpstat", "xdpstat", &mut out)
        .and_then(|()| out.flush());
    match written {
        // `xdpstat completions bash | head`.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Completes an interface name of this network namespace.
pub fn interfaces() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let current = current.to_string_lossy();
        iface::names()
            .into_iter()
            .filter(|n| n.starts_with(current.as_ref()))
            .map(CompletionCandidate::new)
            .collect::<Vec<_>>()
    })
}

/// Completes a map id, with the map's name as its help.
pub fn map_ids() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let current = current.to_string_lossy();
        sys::map_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|id| id.to_string())
            .filter(|id| id.starts_with(current.as_ref()))
            .map(|id| {
                let name = id
                    .parse()
                    .ok()
                    .and_then(|n| sys::maps::map_fd_by_id(n).ok())
                    .and_then(|fd| sys::maps::map_info(std::os::fd::AsFd::as_fd(&fd)).ok())
                    .map(|info| info.name);
                CompletionCandidate::new(id).help(name.map(Into::into))
            })
            .collect::<Vec<_>>()
    })
}
