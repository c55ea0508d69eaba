//! The part of xdpstat's XDP programs that both counter layouts share.
#![no_std]

use aya_ebpf::programs::XdpContext;

/// Length of the frame in `ctx`: `data_end - data`, what the XDP program sees.
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> u64 {
    (ctx.data_end() - ctx.data()) as u64
}
