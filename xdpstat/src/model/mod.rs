//! What xdpstat does, as typed records: attachments and their pins
//! ([`attach`], and its `record` of an interface's pins), counters and their rates ([`counters`],
//! [`monitor`]), the counter layouts ([`layout`]), and the bpftool part of
//! the workflow ([`inspect`]). It asks the kernel through [`crate::kernel`]
//! and prints nothing: [`crate::output`] does.

pub mod attach;
pub mod counters;
pub mod inspect;
pub mod kernels;
pub mod layout;
pub mod monitor;
pub mod observe;
pub mod scrape;
pub mod workbench;
