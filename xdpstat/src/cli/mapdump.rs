//! `map dump`.

use anyhow::Result;
use clap::Args;

/// `xdpstat map dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The map: its id, or the path where it is pinned.
    pub map: String,
    /// Print JSON, in bpftool's `-j` shape.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn dump_cmd(_args: &DumpArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
