//! `ctx-access`: a read or write of the context (`struct xdp_md`) that is
//! no whole field, or a write at all.

use super::{Clues, Finding, Rule};
use crate::verifier::{
    diagnose::{facts::Facts, trace::Trace, Evidence, Kind},
    effect::Effect,
    regstate::Region,
};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::CtxAccess,
    fits,
    explain,
};

/// The row for an out-of-range value that points into the context.
pub const OUT_OF_RANGE: Rule = Rule {
    kind: Kind::CtxAccess,
    fits: |c| c.out_of_range() && c.region == Some(Region::Ctx),
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&[
        "bpf_context access",
        "modified ctx ptr",
        "ctx access",
        "invalid access to context",
        "pointer arithmetic on ctx",
    ])
}

/// `struct xdp_md` fields by offset.
fn xdp_md_field(off: i64) -> Option<&'static str> {
    Some(match off {
        0 => "data",
        4 => "data_end",
        8 => "data_meta",
        12 => "ingress_ifindex",
        16 => "rx_queue_index",
        20 => "egress_ifindex",
        _ => return None,
    })
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let (off, size) = (f.messages.number("off="), f.messages.number("size="));
    let field = off.and_then(xdp_md_field);
    let writes = matches!(f.error_effect, Some(Effect::Store { .. }));
    let summary = match (off, size) {
        (Some(o), Some(s)) => format!(
            "the program {} {s} bytes at offset {o} of its context (struct xdp_md){}, which the verifier does not allow",
            if writes { "writes" } else { "reads" },
            field.map(|f| format!(", field {f}")).unwrap_or_else(|| ", which is no field".to_owned())
        ),
        _ if f.messages.has("modified ctx") => format!(
            "the access at {} goes through a pointer into the context that was moved off its start; the verifier allows ctx fields only as ctx->field from the unmodified pointer",
            f.here
        ),
        _ => format!("the context access at {} is not allowed", f.here),
    };
    let fix = if f.messages.has("modified ctx") {
        "read each context field directly as ctx->field from the pointer the program was given; do not add offsets to ctx or copy it through arithmetic first (use the field's name, not a computed address)".to_owned()
    } else if writes {
        "do not write to ctx: struct xdp_md is read-only; to move the packet start use bpf_xdp_adjust_head()".to_owned()
    } else {
        "read only the fields of struct xdp_md (data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex), each as a whole 4-byte __u32, directly from the ctx pointer".to_owned()
    };
    // `dereference of modified ctx ptr`: where the pointer was moved.
    let moved = f
        .messages
        .has("modified ctx")
        .then(|| f.trace.as_ref().and_then(Trace::first_adjustment))
        .flatten();
    let (origin, evidence) = match moved {
        Some(i) => (Some(f.origin_via_trace(i)), Evidence::Path),
        None => (f.error_insn.map(|i| f.origin_at(i)), Evidence::FailingInsn),
    };
    Finding {
        summary,
        origin,
        fix,
        evidence,
    }
}
