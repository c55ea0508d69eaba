//! Every renderer: typed records in, text or JSON out. No module here makes
//! a syscall.

pub mod prometheus;
pub mod render;
pub mod tui;
