//! The BTF value formatter: a type id, a BTF blob and a value, as
//! `xdpstat::fuzz_targets::btf_input` lays them out.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpstat::fuzz_targets::btf(data));
