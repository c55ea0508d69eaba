//! `null-check`: a pointer that may be NULL (a map lookup's result, a
//! ring buffer reservation) used before the program tested it.

use super::{Clues, Finding, Rule};
use crate::verifier::diagnose::{
    facts::{at, is_rust, Facts},
    trace::Trace,
    Evidence, Kind,
};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::NullCheck,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&["or_null", "Possibly NULL pointer", "null pointer passed"])
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let by_id = f.id_origin();
    let by_path = f.trace.as_ref().and_then(Trace::nullable_call);
    let evidence = match (by_id, by_path) {
        (Some(_), Some(_)) => Evidence::IdAndPath,
        (Some(_), None) => Evidence::Id,
        (None, Some(_)) => Evidence::PathThroughSpills,
        (None, None) => Evidence::LacksState,
    };
    let origin = by_id.or(by_path).map(|i| f.origin_via_trace(i));
    let helper = origin
        .as_ref()
        .and_then(|o| f.call_name(o.insn))
        .unwrap_or_else(|| "a helper that can return NULL".to_owned());
    let source = origin.as_ref().and_then(|o| o.source.as_ref());
    let var = source
        .and_then(|s| s.text.as_deref())
        .and_then(assigned_variable)
        .unwrap_or_else(|| "ptr".to_owned());
    let why_null = match helper.as_str() {
        "bpf_map_lookup_elem" | "bpf_map_lookup_percpu_elem" => {
            "it returns NULL when the key is not in the map"
        }
        "bpf_ringbuf_reserve" => "it returns NULL when the ring buffer is full",
        _ => "it returns NULL on failure",
    };
    let origin_at = origin
        .as_ref()
        .map_or_else(|| "the call".to_owned(), |o| at(o.source.as_ref(), o.insn));
    let r = f
        .reg
        .map_or_else(|| "the pointer".to_owned(), |r| format!("R{r}"));
    let here = &f.here;
    let summary = format!(
        "{r} may be NULL at {here}: it holds the result of {helper} ({origin_at}), and {why_null}, but the program uses it without testing it"
    );
    let fail = if helper == "bpf_ringbuf_reserve" {
        "XDP_PASS"
    } else {
        "XDP_ABORTED"
    };
    let fix = if is_rust(source) {
        format!("test the result after the lookup at {origin_at} and return early when it is None: `let Some({var}) = … else {{ return xdp_action::{fail} }};` (aya's map getters return Option)")
    } else {
        format!("add `if (!{var}) return {fail};` after the lookup at {origin_at}")
    };
    Finding {
        summary,
        origin,
        fix,
        evidence,
    }
}

/// The variable a source line assigns, e.g. `cnt` in
/// `struct counters *cnt = bpf_map_lookup_elem(…)` or `let cnt = …`.
fn assigned_variable(text: &str) -> Option<String> {
    let lhs = text.split(" = ").next().filter(|l| l.len() < text.len())?;
    let ident = lhs
        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|w| !w.is_empty() && *w != "mut")?;
    (!ident.chars().next()?.is_ascii_digit()).then(|| ident.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigned_variables() {
        assert_eq!(
            assigned_variable(
                "struct counters *cnt = bpf_map_lookup_elem(&counters, &counter_idx);"
            )
            .as_deref(),
            Some("cnt")
        );
        assert_eq!(
            assigned_variable("let mut rec = unsafe { MAP.get_ptr_mut(0) };").as_deref(),
            Some("rec")
        );
        assert_eq!(
            assigned_variable("__sync_fetch_and_add(&cnt->packets, 1);"),
            None
        );
    }
}
