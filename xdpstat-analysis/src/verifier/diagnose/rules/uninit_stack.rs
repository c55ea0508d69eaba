//! `uninit-stack`: stack bytes read, by an instruction or by a helper
//! given a pointer to them, that nothing wrote on the path, or that hold a
//! spilled register where the reader needs data (`invalid indirect read
//! from stack off -8+0 size 8`).

use super::{Clues, Finding, Rule};
use crate::verifier::diagnose::{
    facts::{at, Facts},
    Evidence, Kind,
};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::UninitStack,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&[
        "invalid read from stack",
        "invalid indirect read from stack",
        "invalid indirect access to stack",
        "invalid stack type",
    ])
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let m = &f.messages;
    let off = m.number("off ").or_else(|| m.number("off="));
    let size = m.number("size ").or_else(|| m.number("size="));
    let indirect = m.has("indirect");
    let slot = off.and_then(|o| i32::try_from(o).ok());
    let write = slot.and_then(|s| {
        let trace = f.trace_slot(s);
        trace
            .first_spill()
            .map(|(at, src)| (at, Some(src)))
            .or_else(|| {
                trace
                    .origin
                    .filter(|_| trace.hops.is_empty())
                    .map(|at| (at, None))
            })
    });
    let origin = write.map(|(i, _)| f.origin_at(i));
    let here = &f.here;
    let bytes = match (size, off) {
        (Some(s), Some(o)) => format!("{s} bytes of stack from fp{o}"),
        (None, Some(o)) => format!("the stack at fp{o}"),
        _ => "stack".to_owned(),
    };
    let reader = if indirect {
        let helper = f
            .error_insn
            .and_then(|i| f.call_name(i))
            .unwrap_or_else(|| "the helper".to_owned());
        format!("the call to {helper} at {here} reads {bytes}")
    } else {
        format!("the instruction at {here} reads {bytes}")
    };
    let summary = match (&origin, write) {
        (Some(o), Some((_, Some(src)))) => format!(
            "{reader}, but fp{} holds a register spilled there from r{src} at {}, not data the reader may see as bytes (older kernels refuse that)",
            off.unwrap_or_default(),
            at(o.source.as_ref(), o.insn)
        ),
        (Some(o), _) => format!(
            "{reader}, but not all of it is initialized: the path writes only part of it (last at {})",
            at(o.source.as_ref(), o.insn)
        ),
        (None, _) => format!("{reader}, but nothing wrote (all of) those bytes on this path, so it would read leftover kernel data"),
    };
    let fix = "initialize the whole variable before reading it or passing its address to a helper (`struct key k = {};` or `__builtin_memset(&k, 0, sizeof(k))`, padding included), and store data, not pointers, in a buffer a helper reads".to_owned();
    let evidence = if origin.is_some() {
        Evidence::Path
    } else {
        Evidence::PathNeverWrites
    };
    Finding {
        summary,
        origin,
        fix,
        evidence,
    }
}
