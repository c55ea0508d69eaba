//! `xdpstat watch`: the live view.

use std::time::Duration;

use anyhow::Result;
use clap::Args;

/// `xdpstat watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Interfaces to watch; all that xdpstat counts on when none is given.
    pub ifaces: Vec<String>,
    /// Time between updates, e.g. 1s, 500ms.
    #[arg(long, default_value = "1s", value_parser = super::parse_interval)]
    pub interval: Duration,
    /// One line per interval per interface instead of the full-screen view
    /// (also what happens when stdout is not a terminal).
    #[arg(long)]
    pub plain: bool,
    /// With --plain: one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many intervals.
    #[arg(long)]
    pub count: Option<u64>,
}

pub(super) fn watch_cmd(_args: &WatchArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
