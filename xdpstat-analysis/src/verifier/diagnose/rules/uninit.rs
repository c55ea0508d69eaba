//! `uninit`: a register or stack slot read before anything wrote it on
//! the path.

use super::{Clues, Finding, Rule};
use crate::verifier::diagnose::{facts::Facts, trace::Birth, Evidence, Kind};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::Uninit,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    // Stack reads are `uninit-stack`'s, a row earlier.
    c.any(&["!read_ok", "uninit", "invalid size of register fill"])
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let stack = f.messages.has("from stack");
    let off = f
        .messages
        .number("off ")
        .or_else(|| f.messages.number("off="));
    let origin = f.traced_origin();
    let here = &f.here;
    let summary = if stack {
        format!(
            "the instruction at {here} reads stack{} that nothing wrote on this path, so it would read leftover kernel data",
            off.map(|o| format!(" at fp{o}")).unwrap_or_default()
        )
    } else {
        let r = f
            .reg
            .map_or_else(|| "a register".to_owned(), |r| format!("R{r}"));
        match f.trace.as_ref().and_then(|t| t.birth.as_ref()) {
            Some(Birth::Clobbered(helper)) => format!("{r} is read at {here}, but the call to {helper} before it clobbered R1-R5, so it holds no value"),
            _ => format!("{r} is read at {here} before anything wrote it on this path"),
        }
    };
    let fix = if stack {
        "initialize the variable before passing or reading it (`= {}`, `= 0`, or `__builtin_memset(&x, 0, sizeof(x))`) on every path".to_owned()
    } else {
        "give the variable a value on every path before using it (registers R1-R5 do not survive a helper call; keep values in R6-R9 or on the stack)".to_owned()
    };
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
