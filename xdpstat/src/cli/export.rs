//! `xdpstat export`: Prometheus metrics.

use crate::error::{Error, Result};
use clap::Args;

use crate::kernel::iface;
use crate::kernel::privileges::{self, Capability};
use crate::model::attach::AttachError;
use crate::model::monitor;
use crate::model::scrape::KernelSource;
use crate::output::prometheus::Metrics;
use crate::server::{Limits, Server};

/// The address `--listen` defaults to: loopback only, so that exposing the
/// counters beyond the machine takes an explicit choice.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9435";

/// `xdpstat export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Interfaces to export; all that xdpstat counts on when none is given.
    #[arg(add = super::complete::interfaces())]
    pub ifaces: Vec<String>,
    /// Address to serve /metrics on. Loopback unless given.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// Export per-CPU series (a `cpu` label) instead of the sums.
    #[arg(long)]
    pub per_cpu: bool,
}

pub(super) fn export_cmd(args: &ExportArgs) -> Result<()> {
    if let Some(bad) = args.ifaces.iter().find(|n| !iface::is_valid_name(n)) {
        return Err(AttachError::UnknownInterface { name: bad.clone() }.into());
    }
    privileges::require("xdpstat export", &[Capability::Bpf])?;
    // Handlers before the socket, so that a signal never kills the process
    // with the port half served.
    let stop = super::stop_flag()?;
    let server = Server::bind(args.listen, Limits::default())
        .map_err(|e| Error::Failed(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = server
        .local_addr()
        .map_or_else(|_| args.listen.to_string(), |a| a.to_string());
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "xdpstat: warning: serving on {addr}, which is not loopback: anyone who can reach it can read the counters"
        );
    }
    let what = if args.ifaces.is_empty() {
        "every interface xdpstat counts on".to_owned()
    } else {
        let counted = monitor::counted_interfaces().unwrap_or_default();
        for name in args.ifaces.iter().filter(|n| !counted.contains(n)) {
            eprintln!(
                "xdpstat: note: xdpstat is not counting on {name} yet; each scrape counts it as an error until it does"
            );
        }
        args.ifaces.join(", ")
    };
    eprintln!("xdpstat: serving http://{addr}/metrics for {what}; Ctrl-C stops");
    let metrics = Metrics::new(KernelSource::new(&args.ifaces), args.per_cpu);
    server.serve(&metrics, &stop)?;
    eprintln!("xdpstat: export stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};

    fn parse(args: &[&str]) -> super::ExportArgs {
        let cli = Cli::try_parse_from(args).expect("parses");
        match cli.command {
            Command::Export(args) => args,
            other => panic!("not export: {other:?}"),
        }
    }

    #[test]
    fn listens_on_loopback_unless_told() {
        let args = parse(&["xdpstat", "export"]);
        assert_eq!(args.listen, "127.0.0.1:9435".parse().unwrap());
        assert!(args.listen.ip().is_loopback());
        assert!(args.ifaces.is_empty());
        assert!(!args.per_cpu);
        let args = parse(&[
            "xdpstat",
            "export",
            "--listen",
            "[::]:9000",
            "eth0",
            "eth1",
            "--per-cpu",
        ]);
        assert_eq!(args.listen, "[::]:9000".parse().unwrap());
        assert_eq!(args.ifaces, ["eth0", "eth1"]);
        assert!(args.per_cpu);
    }
}
