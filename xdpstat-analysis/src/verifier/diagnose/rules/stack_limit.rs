//! `stack-limit`: stack use beyond the 512 bytes BPF programs have across
//! all frames, or a variable-offset stack write the verifier cannot size.
//! A fixed offset outside the frame is `stack-bounds`.

use super::{Clues, Finding, Rule};
use crate::{
    insn::Insn,
    verifier::diagnose::{facts::Facts, Evidence, Kind},
};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::StackLimit,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&["combined stack size", "stack frames exceeded"])
        || c.has("variable-offset") && c.has("stack") && !c.has("read from stack")
        || c.has("stack depth") && c.has("exceeds")
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let frame = locate_overflow(f);
    let combined = f.messages.number("calls is");
    let off = f.messages.number("off=");
    let here = &f.here;
    let summary = match (combined, off) {
        (Some(total), _) => format!("the call chain ending at {here} needs {total} bytes of stack, over the 512 bytes BPF programs have across all frames"),
        (None, Some(o)) => format!("the access at {here} reaches offset {o} from the frame pointer, outside the 512-byte BPF stack"),
        _ => format!("the program at {here} uses more stack than BPF allows (512 bytes across all frames)"),
    };
    let fix = "shrink the stack: keep large buffers in a per-CPU array map used as scratch space instead of local variables, and mark fewer functions __noinline (each frame adds up)".to_owned();
    // The origin is the frame that does not fit: the callee's entry.
    let origin = frame.or(f.error_insn).map(|i| f.origin_at(i));
    Finding {
        summary,
        origin,
        fix,
        evidence: Evidence::FailingInsn,
    }
}

/// The stack check runs after the walk and names no instruction: makes
/// the call that makes the chain too deep the failing instruction, found
/// from the program itself, and returns its callee's entry.
fn locate_overflow(f: &mut Facts<'_>) -> Option<u32> {
    if f.error_insn.is_some() || !f.messages.first().contains("combined stack size") {
        return None;
    }
    let program = f.program?;
    let depths = &f.log.stats.as_ref()?.stack_depth;
    let (call, callee) = overflowing_call(program.insns, depths)?;
    f.locate(Some(call));
    Some(callee)
}

/// The call that makes the stack too deep: walks the call graph of the
/// program's subprograms (entry, then every `call pc+N` target) with the
/// frame sizes the verifier printed (`stack depth 0+320+320`), and returns
/// the first call whose chain exceeds 512 bytes, with its callee's entry.
fn overflowing_call(program: &[(usize, Insn)], depths: &[u64]) -> Option<(u32, u32)> {
    const LIMIT: u64 = 512;
    let index = |i: usize| u32::try_from(i).ok();
    let calls: Vec<(u32, u32)> = program
        .iter()
        .filter_map(|(i, insn)| Some((index(*i)?, index(insn.call_target(*i)?)?)))
        .collect();
    let mut starts: Vec<u32> = std::iter::once(index(program.first()?.0)?)
        .chain(calls.iter().map(|c| c.1))
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let subprog_of = |i: u32| starts.iter().rposition(|&s| s <= i).unwrap_or(0);
    let depth_of = |sub: usize| {
        let depth = depths.get(sub).copied().unwrap_or(0);
        depth.checked_next_multiple_of(32).unwrap_or(depth)
    };
    // Depth-first along the call graph, carrying the chain's stack use.
    let mut stack = vec![(0usize, depth_of(0), 0usize)];
    while let Some((sub, used, hops)) = stack.pop() {
        if hops > 8 {
            continue;
        }
        for &(call, callee) in calls.iter().filter(|(c, _)| subprog_of(*c) == sub) {
            let callee_sub = subprog_of(callee);
            let total = used.saturating_add(depth_of(callee_sub));
            if total > LIMIT {
                return Some((call, callee));
            }
            stack.push((callee_sub, total, hops + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::NoNames;

    #[test]
    fn the_call_that_overflows_the_stack() {
        let ins = |code, dst, src, imm| Insn {
            code,
            dst,
            src,
            off: 0,
            imm,
            imm_hi: 0,
        };
        let program: Vec<(usize, Insn)> = [
            (0, "r1 = 1", ins(0xb7, 1, 0, 1)),
            (1, "call pc+2", ins(0x85, 0, 1, 2)),
            (2, "r0 = 2", ins(0xb7, 0, 0, 2)),
            (3, "exit", ins(0x95, 0, 0, 0)),
            (4, "call pc+1", ins(0x85, 0, 1, 1)),
            (5, "exit", ins(0x95, 0, 0, 0)),
            (6, "r0 = 0", ins(0xb7, 0, 0, 0)),
            (7, "exit", ins(0x95, 0, 0, 0)),
        ]
        .into_iter()
        .map(|(i, text, insn)| {
            assert_eq!(insn.display(i, &NoNames).to_string(), text);
            (i, insn)
        })
        .collect();
        assert_eq!(overflowing_call(&program, &[0, 320, 320]), Some((4, 6)));
        assert_eq!(overflowing_call(&program, &[0, 100, 100]), None);
    }
}
