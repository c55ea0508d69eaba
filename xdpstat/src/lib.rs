//! xdpstat counts every packet and byte an interface receives, with an XDP
//! program it embeds, and keeps the counters in pinned BPF maps.
//!
//! Data flows one way: [`kernel`] talks to the kernel, [`model`] turns what
//! it says into typed records, and [`output`] turns those into text, JSON,
//! the live view and Prometheus metrics. [`cli`] ties them together for
//! the binary. What needs no kernel, reading objects and verifier logs, is
//! the [`analysis`] crate. ARCHITECTURE.md has the map.

pub use xdpstat_analysis as analysis;

pub mod cli;
pub mod error;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod kernel;
pub mod man;
pub mod model;
pub mod output;
pub mod server;
pub mod vm;
