//! The benchmark's floor for the observers: an empty fentry and an empty
//! fexit program, attached as `xdpstat_observe` is, so that what the
//! trampoline costs alone can be told from what the observers add.
#![no_std]
#![no_main]

use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};

#[fentry]
pub fn xdpstat_observe_entry(_ctx: FEntryContext) -> u32 {
    0
}

#[fexit]
pub fn xdpstat_observe_exit(_ctx: FExitContext) -> u32 {
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
