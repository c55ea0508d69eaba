//! `unknown`: a message no other rule knows. It fits everything, so it is
//! the table's last row.

use super::{Clues, Finding, Rule};
use crate::verifier::diagnose::{facts::Facts, Evidence, Kind};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::Unknown,
    fits,
    explain,
};

fn fits(_: &Clues<'_>) -> bool {
    true
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let origin = f.traced_origin();
    let summary = format!(
        "the verifier rejected the instruction at {}: {}",
        f.here,
        f.messages.first()
    );
    let fix = "xdpstat has no rule for this message yet; read the verifier analysis above around the failing instruction".to_owned();
    let evidence = if origin.is_some() {
        Evidence::Path
    } else {
        Evidence::NoRule
    };
    Finding {
        summary,
        origin,
        fix,
        evidence,
    }
}
