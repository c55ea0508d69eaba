//! `xdpstat export`: Prometheus metrics.

use anyhow::Result;
use clap::Args;

/// `xdpstat export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Interfaces to export; all that xdpstat counts on when none is given.
    pub ifaces: Vec<String>,
    /// Address to serve /metrics on. Loopback unless given.
    #[arg(long, default_value = "127.0.0.1:9435")]
    pub listen: std::net::SocketAddr,
    /// Export per-CPU series (a `cpu` label) instead of the sums.
    #[arg(long)]
    pub per_cpu: bool,
}

pub(super) fn export_cmd(_args: &ExportArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
