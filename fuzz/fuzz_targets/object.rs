//! An object file: its checks, aya-obj's linking (guarded), line info,
//! DWARF, the `objdump` listing and the NULL-check warnings.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpstat::fuzz_targets::object(data));
