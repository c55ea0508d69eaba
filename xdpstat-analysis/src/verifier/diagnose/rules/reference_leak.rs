//! `reference-leak`: a reference (a ring buffer reservation, a socket)
//! still held at `exit` on some path.

use super::{Clues, Finding, Rule};
use crate::verifier::diagnose::{
    facts::{at, Facts},
    Evidence, Kind,
};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::ReferenceLeak,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&[
        "Unreleased reference",
        "reference has not been acquired",
        "reference leak",
    ])
}

/// What releases the reference `helper` acquired.
fn release_of(helper: &str) -> &'static str {
    match helper {
        "bpf_ringbuf_reserve" => "bpf_ringbuf_submit() or bpf_ringbuf_discard()",
        h if h.starts_with("bpf_sk_lookup") || h.starts_with("bpf_skc_lookup") => {
            "bpf_sk_release()"
        }
        _ => "the matching release helper",
    }
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let alloc = f
        .messages
        .number("alloc_insn=")
        .and_then(|i| u32::try_from(i).ok());
    let id = f.messages.number("id=");
    let alloc = alloc.or_else(|| id.and_then(|id| f.log.births.get(&(id as u32)).map(|b| b.insn)));
    let origin = alloc.map(|i| f.origin_at(i));
    let helper = origin
        .as_ref()
        .and_then(|o| f.call_name(o.insn))
        .unwrap_or_else(|| "the acquiring helper".to_owned());
    let origin_at = origin.as_ref().map_or_else(
        || "its acquisition".to_owned(),
        |o| at(o.source.as_ref(), o.insn),
    );
    let release = release_of(&helper);
    let here = &f.here;
    let summary = format!(
        "the program can return at {here} while still holding the reference that {helper} acquired at {origin_at}, which would leak it"
    );
    let fix = format!("release it on every path before returning: call {release} on the result of {helper} ({origin_at})");
    let evidence = if alloc.is_some() {
        Evidence::AllocInsn
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
