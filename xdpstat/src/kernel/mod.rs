//! Everything that talks to the kernel: `bpf(2)` with safe wrappers
//! ([`sys`]), netlink ([`netlink`]), bpffs and the pin layout ([`bpffs`]),
//! interface names ([`iface`]) and the privilege check ([`privileges`]).
//! Nothing here formats text for people.

pub mod bpffs;
pub mod iface;
pub mod map;
pub mod netlink;
pub mod privileges;
pub mod sys;
