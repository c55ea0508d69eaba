//! `misaligned`: an access whose address is not a multiple of its size
//! where the verifier requires alignment (`misaligned packet access`,
//! `misaligned stack access`).

use super::{Clues, Finding, Rule};
use crate::verifier::diagnose::{facts::Facts, Evidence, Kind};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::Misaligned,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.has("misaligned")
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let size = f
        .messages
        .number("size ")
        .or_else(|| f.messages.number("size="));
    let here = &f.here;
    let summary = format!(
        "the {}access at {here} is not aligned to its size, which the verifier requires here{}",
        size.map(|s| format!("{s}-byte ")).unwrap_or_default(),
        if f.messages.has("packet") {
            " (packet data is only 2-byte aligned after the 14-byte Ethernet header on some drivers; strict alignment is enforced on some architectures and with BPF_F_STRICT_ALIGNMENT)"
        } else {
            ""
        }
    );
    let fix = "read the field with smaller accesses or copy it into an aligned local first (`__builtin_memcpy(&v, ptr, sizeof(v))`), and keep stack variables at offsets that are a multiple of their size".to_owned();
    Finding {
        summary,
        origin: f.error_insn.map(|i| f.origin_at(i)),
        fix,
        evidence: Evidence::FailingInsn,
    }
}
