//! xdpstat counts every packet and byte an interface receives, with an XDP
//! program it embeds, and keeps the counters in pinned BPF maps.
//!
//! Data flows one way: [`kernel`] talks to the kernel, [`model`] turns what
//! it says into typed records, and [`output`] turns those into text, JSON,
//! the live view and Prometheus metrics. [`cli`] ties them together for
//! the binary. ARCHITECTURE.md has the map.

pub mod bpfobj;
pub mod cli;
pub mod dwarf;
pub mod error;
pub mod guard;
pub mod input;
pub mod insn;
pub mod inspect;
pub mod kernel;
pub mod model;
pub mod output;
pub mod report;
pub mod server;
pub mod verifier;
pub mod workbench;

pub use kernel::{bpffs, iface, netlink, privileges, sys};
pub use model::{attach, counters, layout, monitor, record};
pub use output::{render, tui};
