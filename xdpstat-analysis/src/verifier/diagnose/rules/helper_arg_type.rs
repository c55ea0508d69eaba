//! `helper-arg-type`: a helper or kfunc argument of the wrong type: `R3
//! type=inv expected=fp` (a number where a stack pointer belongs), `R1
//! type=scalar expected=map_ptr`, `arg#0 expected pointer to ctx`.

use super::{scalar_deref, Clues, Finding, Rule};
use crate::verifier::diagnose::{facts::Facts, trace::ScalarBirth, Evidence, Kind};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::HelperArgType,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.has(" type=") && c.has(" expected=")
        || c.any(&[
            "expected pointer to",
            "Caller passes invalid args",
            "is not a pointer to",
            "must be a known constant",
            "must point to",
        ])
        || c.has("arg#") && c.has("expected")
}

/// What a type in `type=… expected=…` is, in words.
fn words(ty: &str) -> String {
    let one = |t: &str| -> String {
        match t.trim() {
            "inv" | "scalar" => "a plain number".to_owned(),
            "fp" => "a pointer to the stack".to_owned(),
            "ctx" => "the program's context".to_owned(),
            "map_ptr" => "a map".to_owned(),
            "map_key" => "a pointer to a map key".to_owned(),
            "map_value" => "a pointer to a map value".to_owned(),
            "pkt" => "a packet pointer".to_owned(),
            "pkt_end" => "the packet's end".to_owned(),
            "mem" | "buf" | "ringbuf_mem" => "a pointer to memory".to_owned(),
            other => format!("`{other}`"),
        }
    };
    let parts: Vec<String> = ty.split(',').map(one).collect();
    match parts.as_slice() {
        [one] => one.clone(),
        _ => format!("one of {}", parts.join(", ")),
    }
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let first = f.messages.first().to_owned();
    let got = first
        .split_once(" type=")
        .map(|(_, rest)| rest.split(' ').next().unwrap_or(rest).to_owned());
    let expected = first
        .split_once(" expected=")
        .map(|(_, rest)| rest.trim().to_owned());
    let helper = f
        .error_insn
        .and_then(|i| f.call_name(i))
        .unwrap_or_else(|| "the helper".to_owned());
    let r = f
        .reg
        .map_or_else(|| "an argument".to_owned(), |r| format!("R{r}"));
    let here = f.here.clone();
    let found = f.scalar_origin();
    let whence = found
        .as_ref()
        .map(|(o, birth)| scalar_deref::describe(f, &r, o, birth))
        .unwrap_or_default();
    let summary = match (&got, &expected) {
        (Some(got), Some(expected)) => format!(
            "{helper} at {here} needs {} in {r}, but {r} holds {}{whence}",
            words(expected),
            words(got)
        ),
        _ => format!("an argument of the call at {here} has the wrong type: {first}"),
    };
    let expected = expected.unwrap_or_default();
    let unrelocated = matches!(found.as_ref().map(|(_, b)| b), Some(ScalarBirth::Const));
    let fix = if expected.starts_with("map_ptr") && unrelocated {
        format!("pass the map itself (`&my_map`) to {helper}: a constant where the map's address belongs (`r1 = 0x0`) means the loader did not relocate the map reference; load the object with a loader that understands its map definitions")
    } else if expected.starts_with("map_ptr") {
        format!("pass the map itself (`&my_map`) as {r} of {helper}")
    } else if expected.starts_with("fp") || expected.contains("map_key") || expected.contains("mem")
    {
        format!("pass a pointer to a local variable (`&key`, a buffer on the stack) as {r} of {helper}, not the value itself; to pass a value you read from memory, copy it into a local variable first")
    } else if expected.starts_with("ctx") {
        format!("pass the program's context argument (ctx) unchanged as {r} of {helper}, not a value read from it")
    } else {
        format!("pass {r} of {helper} the type its prototype asks for (see the helper's documentation in bpf-helpers(7))")
    };
    let (origin, evidence) = match found {
        Some((o, _)) => (Some(o), Evidence::PathThroughSpills),
        None => (f.error_insn.map(|i| f.origin_at(i)), Evidence::FailingCall),
    };
    Finding {
        summary,
        origin,
        fix,
        evidence,
    }
}
