//! `ctx-access`: a read or write of the context (`struct xdp_md`) that is
//! no whole field, or a write at all.

use super::{Clues, Finding, Rule};
use crate::verifier::{
    diagnose::{facts::Facts, Evidence, Kind},
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
        _ => format!("the context access at {} is not allowed", f.here),
    };
    let fix = if writes {
        "do not write to ctx: struct xdp_md is read-only; to move the packet start use bpf_xdp_adjust_head()".to_owned()
    } else {
        "read only the fields of struct xdp_md (data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex), each as a whole 4-byte __u32, directly from the ctx pointer".to_owned()
    };
    Finding {
        summary,
        origin: f.error_insn.map(|i| f.origin_at(i)),
        fix,
        evidence: Evidence::FailingInsn,
    }
}
