//! `status`, `prog list`, `map list`, `map pin` and `map unpin`.

use anyhow::Result;
use clap::{Args, Subcommand};

/// `xdpstat status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `xdpstat prog …`.
#[derive(Debug, Subcommand)]
pub enum ProgCommand {
    /// List BPF programs (XDP ones unless --all).
    List(ProgListArgs),
}

/// `xdpstat prog list`.
#[derive(Debug, Args)]
pub struct ProgListArgs {
    /// Every program type, not only XDP.
    #[arg(long)]
    pub all: bool,
    /// Turn on the kernel's runtime statistics while the command runs.
    #[arg(long)]
    pub stats: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `xdpstat map list`.
#[derive(Debug, Args)]
pub struct MapListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `xdpstat map pin`.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// The map's id (`map list` shows it).
    pub id: u32,
    /// Where to pin it, on bpffs.
    pub path: std::path::PathBuf,
}

/// `xdpstat map unpin`.
#[derive(Debug, Args)]
pub struct UnpinArgs {
    /// The pinned map.
    pub path: std::path::PathBuf,
}

pub(super) fn status_cmd(_args: &StatusArgs) -> Result<()> {
    anyhow::bail!("not yet")
}

pub(super) fn prog_cmd(_cmd: &ProgCommand) -> Result<()> {
    anyhow::bail!("not yet")
}

pub(super) fn map_list_cmd(_args: &MapListArgs) -> Result<()> {
    anyhow::bail!("not yet")
}

pub(super) fn map_pin_cmd(_args: &PinArgs) -> Result<()> {
    anyhow::bail!("not yet")
}

pub(super) fn map_unpin_cmd(_args: &UnpinArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
