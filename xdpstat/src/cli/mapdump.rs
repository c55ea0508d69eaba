//! `map dump`: a map's keys and values in bpftool's formats
//! ([`crate::output::mapdump`]).
use std::io::{self, BufWriter, Write};

use crate::error::{Error, Result};
use clap::Args;

use crate::kernel::map::MapError;
use crate::kernel::privileges::{self, Capability};
use crate::model::inspect::dump::{DumpError, MapReader, MapRef};
use crate::output::mapdump::{write_btf_text, write_json, write_plain};

/// `xdpstat map dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The map: its id, or the path where it is pinned.
    #[arg(add = super::complete::map_ids())]
    pub map: String,
    /// Print JSON, in bpftool's `-j` shape.
    #[arg(long)]
    pub json: bool,
    /// With --json, indent as bpftool's `-p` does.
    #[arg(long, requires = "json")]
    pub pretty: bool,
    /// Ignore the map's BTF: print bytes only.
    #[arg(long)]
    pub raw: bool,
}

/// Prints a map's entries. Exit code 2 (bad input) for an id no map has, a
/// path where nothing is pinned, a path off bpffs, a pin that is not a map,
/// and a map whose values no lookup can read (ring buffers, queues, perf
/// event arrays…: see [`crate::model::inspect::dump`]); 1 when the kernel fails a
/// read. A map whose BTF cannot be used is printed as bytes, with a warning.
pub(super) fn dump_cmd(args: &DumpArgs) -> Result<()> {
    let map = MapRef::parse(&args.map)?;
    privileges::require("xdpstat map dump", &[Capability::Bpf])?;
    let map = MapReader::open(&map).map_err(|e| match e {
        // The path names something real, just not a map: say what the
        // command takes.
        DumpError::Map(MapError::NotAMap { .. } | MapError::IsDirectory { .. }) => {
            Error::from(e).context("map dump needs a map's pin or id")
        }
        e => e.into(),
    })?;
    if let (Some(why), false) = (&map.btf_error, args.raw) {
        eprintln!(
            "xdpstat: warning: map {} has BTF that cannot be used ({why}); printing bytes",
            map.info.id
        );
    }
    let btf = map.btf.as_ref().filter(|_| !args.raw);
    // Entries are written as they are read, so a large map needs no more
    // memory than one entry.
    let entries = map.entries();
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let written = if args.json {
        write_json(&mut out, btf, entries, args.pretty)
    } else if let Some(btf) = btf {
        write_btf_text(&mut out, btf, entries)
    } else {
        write_plain(&mut out, &map.info, entries)
    };
    // What was read before a failure is still printed.
    out.flush()?;
    written
}
