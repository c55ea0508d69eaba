//! `pointer-arith`: arithmetic the verifier does not allow on a pointer
//! (on a map pointer, a bitwise operation, a subtraction of pointers, a
//! 32-bit operation), for pointers other than the packet's and the
//! context's, which have rows of their own.

use super::{Clues, Finding, Rule};
use crate::verifier::diagnose::{facts::Facts, Evidence, Kind};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::PointerArith,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&[
        "pointer arithmetic",
        "pointer comparison prohibited",
        "bitwise operator",
        "subtraction from stack pointer",
        "subtract pointer",
        "ptr arithmetic",
        "pointer operation",
        "alu ops on ptr",
    ])
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let here = &f.here;
    let summary = format!(
        "the instruction at {here} does arithmetic on a pointer that the verifier does not allow: {}",
        f.messages.first()
    );
    let fix = "on pointers, only add or subtract (bounded) integers; compute offsets as integers and add them to the pointer last, and do not mask, shift, multiply or narrow a pointer to 32 bits".to_owned();
    let (origin, evidence) = match f.traced_origin() {
        Some(o) => (Some(o), Evidence::Path),
        None => (f.error_insn.map(|i| f.origin_at(i)), Evidence::FailingInsn),
    };
    Finding {
        summary,
        origin,
        fix,
        evidence,
    }
}
