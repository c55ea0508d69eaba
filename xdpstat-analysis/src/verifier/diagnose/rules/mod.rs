//! The rule table: one row per message family, in the order they are
//! tried. The first row whose test fits the error diagnoses it.
//!
//! Each kind lives in its own file and exports its row as `RULE` (a kind
//! whose messages also come by the register's type exports an
//! `OUT_OF_RANGE` row too). See [`super`] for how to add a kind.

use super::{facts::Facts, messages::Messages, trace::Trace, Evidence, Kind, Origin};
use crate::verifier::{effect::Effect, regstate::Region};

mod btf_access;
mod complexity;
mod core_relocation;
mod ctx_access;
mod helper_arg_type;
mod helper_size_arg;
mod helper_unavailable;
mod invalid_return;
mod map_value_bounds;
mod misaligned;
mod null_check;
mod packet_bounds;
mod pointer_arith;
mod reference_leak;
mod scalar_deref;
mod stack_bounds;
mod stack_limit;
mod stale_packet_pointer;
mod uninit;
mod uninit_stack;
mod unknown;

/// The table. Order matters: the first row that fits wins, so a row with
/// broad messages goes after the narrower ones it would shadow.
pub const RULES: &[Rule] = &[
    null_check::RULE,
    // Before the packet's row: `misaligned packet access` is alignment.
    misaligned::RULE,
    packet_bounds::RULE,
    map_value_bounds::RULE,
    ctx_access::RULE,
    // Before the helper's row: the poison helper is no helper.
    core_relocation::RULE,
    helper_unavailable::RULE,
    helper_arg_type::RULE,
    reference_leak::RULE,
    stack_limit::RULE,
    stack_bounds::RULE,
    complexity::RULE,
    invalid_return::RULE,
    // Before `uninit`: stack reads are about memory, not a register.
    uninit_stack::RULE,
    uninit::RULE,
    btf_access::RULE,
    // After the packet's and the context's rows, which know their own
    // pointer arithmetic.
    pointer_arith::RULE,
    // Before the out-of-range rows: these words are only ever said of a
    // helper's size argument.
    helper_size_arg::RULE,
    // Messages that say a value is out of its range, but not which memory
    // it points into (`R0 min value is negative`): the type of the
    // register in the verifier's state decides, a map value if none (but
    // not for a helper's size argument).
    packet_bounds::OUT_OF_RANGE,
    stack_bounds::OUT_OF_RANGE,
    ctx_access::OUT_OF_RANGE,
    map_value_bounds::OUT_OF_RANGE,
    // Needs the backward walk; known messages never reach it.
    stale_packet_pointer::RULE,
    // `invalid mem access 'scalar'` that is no stale packet pointer.
    scalar_deref::RULE,
    // Fits everything: last.
    unknown::RULE,
];

/// One row: a kind, when it applies, and how it explains the error.
pub struct Rule {
    /// The kind it diagnoses.
    pub kind: Kind,
    /// Whether the rule applies to an error.
    pub fits: fn(&Clues<'_>) -> bool,
    /// What went wrong, where the value came from, and the fix.
    pub explain: fn(&mut Facts<'_>) -> Finding,
}

/// What a rule's test looks at.
pub struct Clues<'a> {
    /// The error's lines.
    pub messages: &'a Messages,
    /// What the failing instruction does, if known.
    pub failing: Option<&'a Effect>,
    /// The region the register the message names points into.
    pub region: Option<Region>,
    /// The backward walk from the error (none when only the message is
    /// known, as for [`super::classify`]).
    pub trace: Option<&'a Trace>,
}

impl Clues<'_> {
    /// Whether the messages contain one of `texts`.
    pub fn any(&self, texts: &[&str]) -> bool {
        self.messages.any(texts)
    }

    /// Whether the messages contain `text`.
    pub fn has(&self, text: &str) -> bool {
        self.messages.has(text)
    }

    /// Whether the error says a value is outside its proven range without
    /// naming the memory (the `OUT_OF_RANGE` rows).
    pub fn out_of_range(&self) -> bool {
        self.any(&[
            "min value is negative",
            "unbounded min value",
            "max value is outside",
            "min value is outside",
            "unbounded memory access",
            "value is outside of the allowed memory range",
        ])
    }
}

/// What a rule says about an error.
pub struct Finding {
    /// One sentence: what the verifier proved could go wrong.
    pub summary: String,
    /// Where the offending value was born.
    pub origin: Option<Origin>,
    /// A concrete fix.
    pub fix: String,
    /// How the origin was found, or why not.
    pub evidence: Evidence,
}

/// The first row of [`RULES`] that fits.
pub fn find(clues: &Clues<'_>) -> &'static Rule {
    RULES
        .iter()
        .find(|rule| (rule.fits)(clues))
        .unwrap_or(&unknown::RULE)
}
