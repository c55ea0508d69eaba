//! `stale-packet-pointer`: a packet pointer used after a helper that may
//! move or resize the packet (`bpf_xdp_adjust_head()`…), after which the
//! verifier forgets every packet pointer. The message is a plain `invalid
//! mem access 'scalar'`; the backward walk tells it apart.

use super::{Clues, Finding, Rule};
use crate::verifier::diagnose::{
    facts::{at, Facts},
    Evidence, Kind,
};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::StalePacketPointer,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.trace.is_some_and(|t| t.crossed_packet_change.is_some()) && c.has("invalid mem access")
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let call = f
        .trace
        .as_ref()
        .and_then(|t| t.crossed_packet_change)
        .expect("the rule fits only a walk that crossed a packet change");
    let origin = f.origin_via_trace(call);
    let helper = f.call_name(call).unwrap_or_default();
    let call_at = at(origin.source.as_ref(), call);
    let here = &f.here;
    let summary = format!(
        "the pointer used at {here} points into the packet as it was before {helper} ({call_at}); that call may move or resize the packet, so the verifier forgot every packet pointer taken before it"
    );
    let fix = format!(
        "after {helper} at {call_at}, read ctx->data and ctx->data_end again, recompute the pointer from them, and check its bound again before using it"
    );
    Finding {
        summary,
        origin: Some(origin),
        fix,
        evidence: Evidence::PathCrossesPacketChange,
    }
}
