//! The observers: a fentry and a fexit program that attach to someone
//! else's XDP program (`attach_prog_fd`) and count, per CPU, each frame
//! and its bytes under the verdict the program returned.
//!
//! The bytes are the frame's length on entry, before the program could
//! move `data` or `data_end` (`bpf_xdp_adjust_head`/`_tail`): fentry
//! keeps it in this CPU's slot, and fexit, which sees the verdict, adds it.
//! An XDP program does not nest on one CPU, so one slot per CPU is enough.
//! The slot and the counts share one per-CPU value, so that each observer
//! makes one map lookup: before Linux 6.11 the verifier does not inline a
//! per-CPU array's lookup in these programs, and each lookup is a call.
#![no_std]
#![no_main]

use aya_ebpf::{
    btf_maps::PerCpuArray,
    macros::{btf_map, fentry, fexit},
    programs::{FEntryContext, FExitContext},
};
use xdpstat_common::{ACTION_OTHER, ObserverSlot, XDP_BUFF_DATA, XDP_BUFF_DATA_END};

#[btf_map]
#[expect(non_upper_case_globals, reason = "the map's name, as bpftool shows it")]
static actions: PerCpuArray<ObserverSlot, 1> = PerCpuArray::new();

#[fentry]
pub fn xdpstat_observe_entry(ctx: FEntryContext) -> u32 {
    // The kernel's `struct xdp_buff *`, as the verifier types a tracing
    // program's view of an XDP program's context.
    let buff: *const u8 = ctx.arg(0);
    // SAFETY: the verifier checks both loads against xdp_buff's BTF.
    let (data, end) = unsafe {
        (
            core::ptr::read(buff.add(XDP_BUFF_DATA).cast::<u64>()),
            core::ptr::read(buff.add(XDP_BUFF_DATA_END).cast::<u64>()),
        )
    };
    if let Some(slot) = actions.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; nothing else runs here meanwhile.
        unsafe { (*slot).inflight = end.wrapping_sub(data) };
    }
    0
}

#[fexit]
pub fn xdpstat_observe_exit(ctx: FExitContext) -> u32 {
    // After the one argument: the observed program's return value, of
    // which the kernel reads the low 32 bits (`u32 act`).
    let verdict = ctx.arg::<u64>(1) as u32;
    let key = if verdict < ACTION_OTHER {
        verdict
    } else {
        ACTION_OTHER
    };
    if let Some(slot) = actions.get_ptr_mut(0) {
        // SAFETY: this CPU's slot, whose `inflight` fentry wrote for this
        // frame; `key` is below 6.
        unsafe {
            let len = (*slot).inflight;
            let cnt = &mut (*slot).actions[key as usize];
            cnt.packets += 1;
            cnt.bytes += len;
        }
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
