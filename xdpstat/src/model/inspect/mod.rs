//! Inspection, the bpftool part of the workflow: which interfaces run XDP
//! programs, the loaded programs and maps, dumping a map's contents, and
//! pinning maps by id. It works on any program or map, including those
//! xdpstat did not load.

pub mod dump;
pub mod maps;
pub mod progs;
pub mod status;
