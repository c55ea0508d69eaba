//! `invalid-return`: `exit` with a value the program type does not allow,
//! or with R0 never set on the path.

use super::{Clues, Finding, Rule};
use crate::verifier::{
    diagnose::{facts::Facts, Evidence, Kind},
    effect::Effect,
};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::InvalidReturn,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&[
        "At program exit",
        "should have been in",
        "leaks addr as return value",
    ]) || c.failing == Some(&Effect::Exit) && c.has("R0 !read_ok")
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let origin = f.traced_origin();
    let here = &f.here;
    let summary = if f.messages.has("!read_ok") {
        format!("the program returns at {here} without setting R0 on this path, so its verdict is undefined")
    } else {
        format!("the value returned at {here} is not one the program type allows")
    };
    let fix = "return one of XDP_ABORTED (0), XDP_DROP (1), XDP_PASS (2), XDP_TX (3) or XDP_REDIRECT (4) on every path".to_owned();
    Finding {
        summary,
        origin,
        fix,
        evidence: Evidence::Path,
    }
}
