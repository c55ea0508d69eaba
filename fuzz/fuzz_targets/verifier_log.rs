//! A verifier log, as `explain` reads a file and as `check` takes the
//! kernel's, then diagnosed and printed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpstat::fuzz_targets::verifier_log(data));
