//! `stack-bounds`: a stack access outside the 512-byte frame (`invalid
//! stack off=-520 size=8`), or a stack pointer moved by a value with no
//! proven bound.

use super::{Clues, Finding, Rule};
use crate::verifier::{
    diagnose::{facts::Facts, Evidence, Kind},
    regstate::Region,
};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::StackBounds,
    fits,
    explain,
};

/// The row for an out-of-range value that points into the stack.
pub const OUT_OF_RANGE: Rule = Rule {
    kind: Kind::StackBounds,
    fits: |c| c.out_of_range() && c.region == Some(Region::Stack),
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&[
        "invalid stack off",
        "invalid write to stack",
        "between fp pointer",
        "ptr_to_stack",
    ])
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let m = &f.messages;
    let off = m.number("off=").or_else(|| m.number("off "));
    let size = m.number("size=").or_else(|| m.number("size "));
    let here = &f.here;
    let fixed = off.is_some() && !m.any(&["unbounded", "min value", "max value", "variable"]);
    let summary = match (off, size) {
        (Some(o), Some(s)) if fixed => format!(
            "the access at {here} touches {s} bytes at fp{o}, outside the 512-byte BPF stack frame (fp-512 up to fp-1)"
        ),
        _ => format!(
            "the stack pointer used at {here} is moved by a value with no proven bound, so the access could land outside the 512-byte frame"
        ),
    };
    let fix = if fixed {
        "use less stack: keep large buffers (a big struct, an event record) in a per-CPU array map used as scratch space instead of local variables".to_owned()
    } else {
        "bound the index before adding it to the stack pointer (an unsigned check such as `if (i >= sizeof(buf)) return 0;`), or index a fixed-size array with a masked index".to_owned()
    };
    let (origin, evidence) = if fixed {
        (f.error_insn.map(|i| f.origin_at(i)), Evidence::FailingInsn)
    } else {
        match f.traced_origin() {
            Some(o) => (Some(o), Evidence::Path),
            None => (None, Evidence::LacksState),
        }
    };
    Finding {
        summary,
        origin,
        fix,
        evidence,
    }
}
