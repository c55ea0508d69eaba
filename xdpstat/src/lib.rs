//! xdpstat counts every packet and byte an interface receives, with an XDP
//! program it embeds, and keeps the counters in pinned BPF maps.
//!
//! Data flows one way: the kernel (through [`attach`], [`counters`],
//! [`netlink`] and [`sys`]) gives typed records, and [`render`] turns them
//! into text or JSON. [`cli`] ties the two together for the binary.

pub mod attach;
pub mod bpffs;
pub mod bpfobj;
pub mod cli;
pub mod counters;
pub mod dwarf;
pub mod error;
pub mod export;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod guard;
pub mod iface;
pub mod input;
pub mod insn;
pub mod inspect;
pub mod layout;
pub mod monitor;
pub mod netlink;
pub mod privileges;
pub mod render;
pub mod report;
pub mod sys;
pub mod tui;
pub mod verifier;
pub mod workbench;
