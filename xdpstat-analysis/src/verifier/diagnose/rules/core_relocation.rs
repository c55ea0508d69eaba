//! `core-relocation`: a CO-RE relocation the loader could not resolve.
//! libbpf and aya then write a call of the poison helper `0xbad2310`
//! (195896080) in place of the instruction, so that the program fails
//! only if that path is reached; the verifier reports it as an unknown
//! helper (`invalid func unknown#195896080`).

use super::{Clues, Finding, Rule};
use crate::verifier::diagnose::{facts::Facts, Evidence, Kind};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::CoreRelocation,
    fits,
    explain,
};

/// The poison helper number, `0xbad2310`.
const POISON: &str = "195896080";

fn fits(c: &Clues<'_>) -> bool {
    c.any(&["unknown func", "invalid func"]) && c.has(POISON)
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let here = &f.here;
    Finding {
        summary: format!(
            "the instruction at {here} is where a CO-RE relocation failed: the loader found no match in the kernel's BTF for a type or field the program reads there, and put the poison call 0xbad2310 in its place"
        ),
        origin: f.error_insn.map(|i| f.origin_at(i)),
        fix: "check that the running kernel has the type and field (`bpftool btf dump file /sys/kernel/btf/vmlinux`, or the module's file there if the type is a module's: aya relocates against vmlinux's BTF alone), or guard the access with `bpf_core_field_exists()` / `bpf_core_type_exists()`".to_owned(),
        evidence: Evidence::FailingCall,
    }
}
