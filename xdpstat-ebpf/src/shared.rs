//! Shared layout: one `Counters` for all CPUs, updated with atomic adds so
//! concurrent CPUs never lose an increment (`lock *(u64 *)(r0 +0) += r1`).
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![expect(
    internal_features,
    reason = "core::sync::atomic has no 64-bit atomics on bpfel"
)]

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    bindings::xdp_action, btf_maps::Array, macros::btf_map, macros::xdp, programs::XdpContext,
};
use xdpstat_common::{COUNTERS_KEY, Counters};

#[btf_map]
#[expect(
    non_upper_case_globals,
    reason = "the tutorial's map name, as bpftool shows it"
)]
static counters: Array<Counters, 1> = Array::new();

#[xdp]
pub fn xdpstat_shared(ctx: XdpContext) -> u32 {
    let len = xdpstat_ebpf::frame_len(&ctx);
    if let Some(cnt) = counters.get_ptr_mut(COUNTERS_KEY) {
        // SAFETY: the pointer is the map's value, valid for the program's run;
        // every writer uses atomic adds.
        unsafe {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*cnt).packets, 1);
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*cnt).bytes, len);
        }
    }
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
