//! xdpstat's analysis of BPF programs, as pure functions of bytes: no aya
//! user space, no libc, no netlink, so it builds and tests without root
//! and serves as a library.
//!
//! - [`insn`]: decoding instructions, and the kernel's syntax for them;
//! - [`obj`]: ELF/BTF objects, their XDP sections, line info and DWARF
//!   inline sites;
//! - [`btf`]: BTF parsing and value formatting;
//! - [`verifier`]: the log parser, instruction effects, diagnoses and the
//!   static NULL-check pass;
//! - [`report`]: what the workbench says about a program and its log.
//!
//! `explain` over a log is one call: [`report::explain`].

pub mod btf;
pub mod error;
pub mod input;
pub mod insn;
pub mod obj;
pub mod report;
pub mod verifier;
