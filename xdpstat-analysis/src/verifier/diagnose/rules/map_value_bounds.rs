//! `map-value-bounds`: an access outside the value a map lookup returned.

use super::{Clues, Finding, Rule};
use crate::verifier::{
    diagnose::{facts::Facts, trace::Trace, Evidence, Kind},
    effect::Effect,
};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::MapValueBounds,
    fits,
    explain,
};

/// The row for an out-of-range value that points anywhere else (a map
/// value, other memory, or no register the log shows): after the other
/// `OUT_OF_RANGE` rows.
pub const OUT_OF_RANGE: Rule = Rule {
    kind: Kind::MapValueBounds,
    fits: |c| {
        // `R2 min value is negative` at a call is about a size argument,
        // not memory: unless the register is known to point somewhere.
        let size_argument = c.region.is_none() && matches!(c.failing, Some(Effect::Call { .. }));
        c.out_of_range() && !size_argument
    },
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&[
        "invalid access to map value",
        "invalid variable-offset access to map",
        "between map_value pointer",
        "invalid access to memory",
        "ptr_to_map_value",
    ])
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let m = &f.messages;
    let (value_size, off, size) = (m.number("value_size="), m.number("off="), m.number("size="));
    let unbounded = m.has("unbounded") || m.has("min value");
    let by_path = f.trace.as_ref().and_then(Trace::nullable_call);
    // Else where the pointer (or the offset added to it) was last loaded
    // from the stack: the log shows no more of its history.
    let by_fill = f.trace.as_ref().and_then(Trace::first_fill);
    let origin = f
        .id_origin()
        .or(by_path)
        .or(by_fill)
        .map(|i| f.origin_via_trace(i));
    let here = &f.here;
    let end = off.zip(size).and_then(|(o, s)| o.checked_add(s));
    let summary = match (value_size, off, end) {
        (Some(v), Some(o), Some(end)) => format!(
            "the access at {here} touches bytes {o}..{end} of a map value that is only {v} bytes long"
        ),
        _ if unbounded => format!(
            "the offset into the map value at {here} has no proven bound, so the access could land outside the value"
        ),
        _ => format!("the access at {here} may fall outside the map value"),
    };
    let fix = match (value_size, size) {
        (Some(v), Some(s)) => format!(
            "bound the index or offset before the access so that offset + {s} <= {v} (e.g. `if (idx >= N) return XDP_ABORTED;` with N elements), then index the value"
        ),
        _ => "compare the index or offset against the value size (an unsigned check like `if (idx >= N) return XDP_ABORTED;`) before using it".to_owned(),
    };
    let evidence = if origin.is_some() {
        Evidence::MapValueIdOrPath
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
