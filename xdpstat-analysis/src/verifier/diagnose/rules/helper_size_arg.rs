//! `helper-size-arg`: the size argument of a helper that reads or writes
//! memory (`bpf_probe_read_str(dst, len, src)`) has no proven bounds: it
//! may be negative (`R2 min value is negative, either use unsigned or
//! 'var &= const'`), zero where zero is refused (`R2 invalid zero-sized
//! read`), or too large (`R2 unbounded memory access, use 'var &= const'
//! or 'if (var < const)'`). These are the kernel's messages for sizes
//! only (`check_mem_size_reg`); its messages for memory offsets are worded
//! otherwise (`unsigned index`, `bounds check any such access`).

use super::{Clues, Finding, Rule};
use crate::verifier::diagnose::{facts::Facts, Evidence, Kind};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::HelperSizeArg,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&[
        "either use unsigned or 'var &= const'",
        "invalid zero-sized read",
        "use 'var &= const' or 'if (var < const)'",
    ])
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let reg = f
        .reg
        .map_or_else(|| "the size".to_owned(), |r| format!("R{r}"));
    let helper = f
        .error_insn
        .and_then(|i| f.call_name(i))
        .map_or_else(|| "the helper".to_owned(), |h| h.to_owned());
    let here = &f.here;
    let m = &f.messages;
    let (problem, fix) = if m.has("min value is negative") {
        (
            "may be negative: its lower bound is below 0",
            "make the length unsigned and cap it just before the call (`if (len > sizeof(buf)) len = sizeof(buf);`, or `len &= sizeof(buf) - 1` for a power of two), so that the verifier sees 0 <= len <= the buffer's size",
        )
    } else if m.has("zero-sized") {
        (
            "may be 0, which this helper refuses",
            "skip the call when the length is 0 (`if (len == 0) return …;`), or pass at least 1",
        )
    } else {
        (
            "has no proven upper bound",
            "cap the length before the call (`if (len > sizeof(buf)) len = sizeof(buf);`), so that the verifier sees its largest value",
        )
    };
    Finding {
        summary: format!("{reg}, the size argument of {helper} at {here}, {problem}"),
        origin: f.error_insn.map(|i| f.origin_at(i)),
        fix: fix.to_owned(),
        evidence: Evidence::FailingInsn,
    }
}
