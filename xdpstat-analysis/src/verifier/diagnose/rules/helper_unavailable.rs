//! `helper-unavailable`: a call to a helper or kfunc that XDP programs,
//! this kernel, or this program's license do not allow.

use super::{Clues, Finding, Rule};
use crate::verifier::diagnose::{facts::Facts, Evidence, Kind};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::HelperUnavailable,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&[
        "unknown func",
        "invalid func",
        "cannot use helper",
        "GPL-restricted",
        "calling kernel function",
        "helper call is not allowed",
    ]) || c.has("is not allowed") && c.any(&["helper", "kernel function", "kfunc"])
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let id = f.messages.helper_id();
    let helper = f
        .error_insn
        .and_then(|i| f.call_name(i))
        .or_else(|| f.messages.helper())
        // `unknown#666`: a number no kernel xdpstat knows has a name.
        .filter(|name| name != "unknown")
        .or_else(|| id.map(|n| format!("helper #{n}")))
        .unwrap_or_else(|| "this helper".to_owned());
    let gpl = f.messages.has("GPL");
    let unknown = f.messages.any(&["unknown func", "invalid func"]);
    let number = id
        .filter(|n| !helper.ends_with(&format!("#{n}")))
        .map(|n| format!(" (helper #{n})"))
        .unwrap_or_default();
    let summary = if gpl {
        format!("{helper} is GPL-only, and this program's license is not GPL-compatible")
    } else if unknown {
        format!("this kernel does not know {helper}{number}: the helper is newer than the kernel, or not available to this program type")
    } else if f.messages.has("of this type") || f.messages.has("not allowed in") {
        format!("programs of this type (or attached here) may not call {helper} on this kernel")
    } else {
        format!("XDP programs may not call {helper} on this kernel")
    };
    let fix = if gpl {
        "declare a GPL-compatible license: `char _license[] SEC(\"license\") = \"GPL\";`".to_owned()
    } else {
        format!("remove the call to {helper} at {}, or use a helper that XDP programs may call (see `bpftool feature probe | grep -A200 xdp`)", f.here)
    };
    Finding {
        summary,
        origin: f.error_insn.map(|i| f.origin_at(i)),
        fix,
        evidence: Evidence::FailingCall,
    }
}
