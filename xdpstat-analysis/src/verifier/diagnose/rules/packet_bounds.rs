//! `packet-bounds`: a packet access the bounds checks on its path do not
//! prove inside `data_end`.

use super::{Clues, Finding, Rule};
use crate::verifier::{
    diagnose::{
        facts::{at, Facts},
        Evidence, Kind,
    },
    regstate::Region,
};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::PacketBounds,
    fits,
    explain,
};

/// The row for an out-of-range value that points into the packet.
pub const OUT_OF_RANGE: Rule = Rule {
    kind: Kind::PacketBounds,
    fits: |c| c.out_of_range() && c.region == Some(Region::Packet),
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&[
        "invalid access to packet",
        "outside of the packet",
        "variable-offset packet",
        "pointer arithmetic on pkt",
        "between pkt pointer",
        "packet pointer",
        "ptr_to_packet",
    ])
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let m = &f.messages;
    let (off, size, range) = (m.number("off="), m.number("size="), m.number("r="));
    // Numbers from the log may be anything; a sum that overflows is no
    // byte count.
    let need = off.zip(size).and_then(|(o, s)| o.checked_add(s));
    let origin = f.traced_origin();
    let origin_at = origin.as_ref().map(|o| at(o.source.as_ref(), o.insn));
    let proven = match range {
        Some(0) | None => "no bytes".to_owned(),
        Some(r) => format!("only {r} bytes"),
    };
    let here = &f.here;
    let summary = match need {
        Some(n) => format!(
            "the access at {here} reads up to byte {n} of the packet, but the bounds checks on this path prove {proven} before data_end, so it could read past the end of the frame"
        ),
        None => format!("the access at {here} is not proven to stay inside the packet (before data_end)"),
    };
    let n = need.map_or_else(|| "N".to_owned(), |n| n.to_string());
    let fix = format!(
        "check the bound before the access: `if (data + {n} > data_end) return XDP_DROP;`{} (with data and data_end read from ctx)",
        origin_at.map(|a| format!(", where the pointer is derived from the packet start at {a}")).unwrap_or_default()
    );
    let evidence = if origin.is_some() {
        Evidence::PathToPacketLoad
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
