//! Every renderer: typed records in, text or JSON out. No module here makes
//! a syscall.

pub mod kernels;
pub mod mapdump;
pub mod observe;
pub mod prometheus;
pub mod render;
pub mod report;
pub mod tables;
pub mod tui;
