//! `status`, `prog list`, `map list`, `map pin` and `map unpin`: the
//! library's records rendered as bpftool-style text or JSON.

use std::{
    io::{self, Write},
    path::PathBuf,
    time::Duration,
};

use crate::error::Result;
use clap::{Args, Subcommand};

use crate::kernel::privileges::{self, Capability};
use crate::model::inspect::{
    maps,
    progs::{self, ListOptions},
    status,
};
use crate::output::tables::{describe, map_text, program_text, status_table};

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
    /// Turn on the kernel's runtime statistics while the command runs: read
    /// the counters, wait --interval, read them again, and show the runs
    /// and ns/run of that window.
    #[arg(long)]
    pub stats: bool,
    /// The sampling window of --stats, e.g. 1s, 500ms.
    #[arg(long, default_value = "1s", value_parser = super::parse_interval, requires = "stats")]
    pub interval: Duration,
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
    pub path: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `xdpstat map unpin`.
#[derive(Debug, Args)]
pub struct UnpinArgs {
    /// The pinned map.
    pub path: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn write_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn write_text(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

pub(super) fn status_cmd(args: &StatusArgs) -> Result<()> {
    privileges::require("xdpstat status", &[Capability::SysAdmin])?;
    let found = status::status()?;
    if args.json {
        return write_json(&found);
    }
    if found.is_empty() {
        return write_text("no interface in this network namespace runs an XDP program\n");
    }
    write_text(&status_table(&found))
}

pub(super) fn prog_cmd(cmd: &ProgCommand) -> Result<()> {
    let ProgCommand::List(args) = cmd;
    privileges::require("xdpstat prog list", &[Capability::SysAdmin])?;
    let programs = progs::list(ListOptions {
        all: args.all,
        sample: args.stats.then_some(args.interval),
    })?;
    if args.json {
        return write_json(&programs);
    }
    let mut text = String::new();
    for p in &programs {
        program_text(&mut text, p, local_offset);
    }
    write_text(&text)
}

pub(super) fn map_list_cmd(args: &MapListArgs) -> Result<()> {
    privileges::require("xdpstat map list", &[Capability::SysAdmin])?;
    let found = maps::list()?;
    if args.json {
        return write_json(&found);
    }
    let mut text = String::new();
    for m in &found {
        map_text(&mut text, m);
    }
    write_text(&text)
}

pub(super) fn map_pin_cmd(args: &PinArgs) -> Result<()> {
    let pinned = maps::pin(args.id, &args.path)?;
    if args.json {
        return write_json(&pinned);
    }
    write_text(&format!(
        "pinned {} at {}\n",
        describe(&pinned),
        pinned.path.display()
    ))
}

pub(super) fn map_unpin_cmd(args: &UnpinArgs) -> Result<()> {
    let unpinned = maps::unpin(&args.path)?;
    if args.json {
        return write_json(&unpinned);
    }
    write_text(&format!(
        "removed the pin of {} at {}\n",
        describe(&unpinned),
        unpinned.path.display()
    ))
}

/// The local time zone's offset from UTC at `secs` since the epoch, in
/// seconds east: bpftool prints `loaded_at` in local time.
fn local_offset(secs: u64) -> i64 {
    crate::kernel::sys::time::utc_offset(secs).unwrap_or(0)
}
