//! Per-CPU layout: each CPU owns its own `Counters`, so plain adds are safe
//! and no cache line bounces between CPUs. User space sums the CPUs.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action, btf_maps::PerCpuArray, macros::btf_map, macros::xdp, programs::XdpContext,
};
use xdpstat_common::{COUNTERS_KEY, Counters};

#[btf_map]
#[expect(
    non_upper_case_globals,
    reason = "the tutorial's map name, as bpftool shows it"
)]
static counters: PerCpuArray<Counters, 1> = PerCpuArray::new();

#[xdp]
pub fn xdpstat_percpu(ctx: XdpContext) -> u32 {
    let len = xdpstat_ebpf::frame_len(&ctx);
    if let Some(cnt) = counters.get_ptr_mut(COUNTERS_KEY) {
        // SAFETY: the pointer is this CPU's slot, and nothing else writes it
        // while this program runs on this CPU.
        unsafe {
            (*cnt).packets += 1;
            (*cnt).bytes += len;
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
