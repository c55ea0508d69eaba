//! The instruction decoder and printer, and the round trip back to the
//! same bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpstat::fuzz_targets::insns(data));
