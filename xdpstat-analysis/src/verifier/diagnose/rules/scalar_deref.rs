//! `scalar-deref`: a plain number used as a pointer: `invalid mem access
//! 'scalar'` (`'inv'` on kernels before 5.18). The number may be a
//! kernel address read from memory (which BPF must copy with a helper), a
//! pointer spilled to the stack that came back as a number, or a pointer
//! that arithmetic the verifier cannot follow turned into one.

use super::{Clues, Finding, Rule};
use crate::verifier::diagnose::{
    facts::{at, Facts},
    trace::{Birth, ScalarBirth},
    Evidence, Kind, Origin,
};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::ScalarDeref,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&["invalid mem access 'scalar'", "invalid mem access 'inv'"])
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let r = f
        .reg
        .map_or_else(|| "the register".to_owned(), |r| format!("R{r}"));
    let here = f.here.clone();
    let found = f.scalar_origin();
    let whence = found
        .as_ref()
        .map(|(o, birth)| describe(f, &r, o, birth))
        .unwrap_or_default();
    let summary = format!(
        "{r} is used as a pointer at {here}, but the verifier knows it only as a plain number (a scalar), which BPF may not dereference{whence}"
    );
    let fix = match found.as_ref().map(|(_, b)| b) {
        Some(ScalarBirth::Load { .. }) => "a pointer read out of memory (a map value, the context of a kprobe, a kernel struct) is only a number to the verifier: copy what it points to with bpf_probe_read_kernel() (bpf_probe_read() on old kernels, or BPF_CORE_READ()) into a stack variable, and read that".to_owned(),
        Some(ScalarBirth::Fill { .. }) => "keep the pointer in a register, or spill it as a whole 8-byte value the verifier can follow (no 32-bit stores, nothing written over the slot); if it is a kernel pointer, read through it with bpf_probe_read_kernel() or BPF_CORE_READ()".to_owned(),
        Some(ScalarBirth::Call(_)) => "test or convert the helper's result before using it as a pointer; a helper that returns an address as a number (bpf_get_current_task()) must be read through with bpf_probe_read_kernel(), or use its _btf variant".to_owned(),
        Some(ScalarBirth::Arithmetic) => "do only additions of constants or bounded values on a pointer; masks and shifts (such as a cast through a 32-bit type), and on old kernels any arithmetic on ctx, turn it into a number: read the field from the original pointer instead".to_owned(),
        _ => "make sure the register holds a pointer the verifier tracks (a map value checked for NULL, a packet pointer checked against data_end, the stack); read other memory with bpf_probe_read_kernel()".to_owned(),
    };
    let (origin, evidence) = match found {
        Some((o, _)) => (Some(o), Evidence::PathThroughSpills),
        None => (None, Evidence::LacksState),
    };
    Finding {
        summary,
        origin,
        fix,
        evidence,
    }
}

/// Where the number in `r` came from, as a clause (`: it was …`).
pub(super) fn describe(f: &Facts<'_>, r: &str, o: &Origin, birth: &ScalarBirth) -> String {
    let there = at(o.source.as_ref(), o.insn);
    match birth {
        ScalarBirth::Fill { slot } => format!(
            ": {r} was loaded from the stack slot fp{slot} at {there}, where the verifier saw data rather than a pointer it could follow (a pointer spilled there that lost its type, or bytes written over it)"
        ),
        ScalarBirth::Load { base, off } => {
            let from = match f.trace_before(o.insn, *base).and_then(|t| t.birth) {
                Some(Birth::Call(helper)) if helper.contains("map_lookup") => {
                    format!("a value read from a map value (r{base}{off:+}, the result of {helper})")
                }
                _ if *base == 1 && f.trace_before(o.insn, 1).is_some_and(|t| t.origin.is_none() && !t.ran_out) => {
                    format!("a value read from the program's context (ctx{off:+})")
                }
                _ => format!("a value read from memory at r{base}{off:+}"),
            };
            format!(": it is {from} at {there}")
        }
        ScalarBirth::Call(helper) => {
            format!(": it is the unchecked result of {helper} at {there}")
        }
        ScalarBirth::Const => format!(": it was set to a constant at {there}"),
        ScalarBirth::Arithmetic => format!(
            ": the pointer became a number at {there}, by arithmetic the verifier cannot follow on a pointer"
        ),
    }
}
