//! `complexity`: the verifier gave up (too many instructions or states),
//! or found a loop it cannot prove ends.

use std::collections::HashMap;

use super::{Clues, Finding, Rule};
use crate::verifier::{
    diagnose::{
        facts::{at, Facts},
        Evidence, Kind,
    },
    effect::Effect,
    log::{ParsedLog, Step},
};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::Complexity,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&[
        "program is too large",
        "infinite loop",
        "back-edge",
        "too complex",
        "loop detected",
        "too many states",
        "unbounded loop",
        "too many instructions",
    ])
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let m = &f.messages;
    let processed = m
        .number("Processed")
        .or_else(|| f.log.stats.as_ref().map(|s| s.insns_processed as i64));
    let named = m
        .number("at insn")
        .or_else(|| m.number("from insn"))
        .and_then(|i| u32::try_from(i).ok());
    let (too_large, infinite) = (m.has("too large"), m.has("infinite loop"));
    if infinite && named.is_some() {
        // The looping instruction, which the log may not show.
        f.locate(named);
    } else if too_large && named.is_none() && f.program.is_none() {
        // The limit falls on whichever instruction was the 1,000,001st;
        // from a log alone that names no culprit. With the object at hand
        // the report keeps it, for its source line.
        f.locate(None);
    }
    let m = &f.messages;
    let first = m.first().to_owned();
    let back_edge = named.or_else(|| hottest_branch(f.log));
    let origin = back_edge.map(|i| f.origin_at(i));
    let loop_at = origin.as_ref().map_or_else(
        || "a loop".to_owned(),
        |o| format!("the loop at {}", at(o.source.as_ref(), o.insn)),
    );
    let summary = match processed {
        Some(p) if too_large => format!(
            "the verifier gave up after exploring {p} instructions (its limit is 1000000): it could not prove that {loop_at} ends, or the program has too many paths"
        ),
        _ if infinite => format!("the verifier found that {loop_at} can run forever: its state repeats without progress"),
        _ => format!("the program is too complex for the verifier: {first}"),
    };
    let fix = format!(
        "bound {loop_at} by a constant the verifier can see (`for (int i = 0; i < 64 && i < n; i++)`), or use bpf_loop(); split long programs with tail calls"
    );
    let evidence = if back_edge.is_some() {
        Evidence::HottestBranch
    } else {
        Evidence::LacksState
    };
    Finding {
        summary,
        origin,
        fix,
        evidence,
    }
}

/// The conditional jump the log walks most often: the loop the verifier
/// kept unrolling.
fn hottest_branch(log: &ParsedLog) -> Option<u32> {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for step in &log.path {
        if let Step::Insn(i) = step {
            if matches!(log.effects.get(i), Some(Effect::Branch { .. })) {
                *counts.entry(*i).or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .max_by_key(|&(i, n)| (n, i))
        .map(|(i, _)| i)
}
