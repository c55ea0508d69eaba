//! Diagnoses: from a parsed verifier log to what went wrong, where the
//! offending value was born, and how to fix it.
//!
//! The origin comes from the verifier's own bookkeeping, not from the
//! message text: first the `id` the verifier gave the value (where the log
//! carries ids), then a backward walk along the path the verifier took,
//! following the value through moves and stack spills to the instruction
//! that produced it (`trace.rs`).
//!
//! # How it works
//!
//! [`diagnose`] first reads what every rule needs, once (`Facts` in
//! `facts.rs`: the error's lines, the failing instruction and its
//! effect, the register the error is about and its type, the backward
//! walk). Then it walks the rule table, `RULES` in `rules/mod.rs`: the
//! first row whose test fits the error explains it. [`classify`] walks the
//! same table knowing only the message.
//!
//! # Adding a diagnosis kind
//!
//! 1. Add its variant to [`Kind`] (with its kebab-case name in
//!    [`Kind::name`]).
//! 2. Write `rules/<kind>.rs` with `pub const RULE: Rule`: the kind, a
//!    `fits` test over `Clues` (usually `c.any(&[…messages…])`), and an
//!    `explain` that turns `Facts` into a `Finding` (summary, origin, fix
//!    and [`Evidence`]; add an `Evidence` variant only if none says how
//!    the rule found the origin). `rules/ctx_access.rs` is a short one to
//!    copy.
//! 3. Add the row, `<kind>::RULE`, to `RULES`, after the rows whose
//!    messages it must not shadow.
//! 4. Add one fixture: `fixtures/c/<kind>_….c`, which the verifier rejects
//!    with that message, and its entry in `fixtures/expected.json`; the
//!    corpus test (`xdpstat/tests/corpus.rs`) loads it and checks the
//!    kind, the message and the source lines.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::insn::{Insn, Resolver};

use super::{effect::Effect, log::ParsedLog, regstate::Region};

mod evidence;
mod facts;
mod kind;
mod messages;
mod rules;
mod trace;

pub use evidence::Evidence;
pub use kind::Kind;

/// A source line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// File, as recorded in the object or log.
    pub file: String,
    /// Line number.
    pub line: u32,
    /// The line's text, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.rsplit('/').next().unwrap_or(&self.file);
        write!(f, "{file}:{}", self.line)
    }
}

/// Where instruction indexes come from in source.
pub trait Sources {
    /// The source line of instruction `insn`.
    fn source(&mut self, insn: u32) -> Option<SourceRef>;
}

/// The instruction an error is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSite {
    /// Verifier index.
    pub insn: Option<u32>,
    /// The instruction, in the kernel's syntax.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The verifier's message (first line).
    pub message: String,
    /// Its source line.
    pub source: Option<SourceRef>,
}

/// Where the offending value was born.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Verifier index.
    pub insn: u32,
    /// The instruction.
    pub text: String,
    /// Its source line.
    pub source: Option<SourceRef>,
    /// How the value got from there to the error, e.g. `r0 ← r7 ← fp-8`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
}

/// What went wrong, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// The kind.
    pub kind: Kind,
    /// One sentence: what the verifier proved could go wrong.
    pub summary: String,
    /// The origin, when the kind has one and it could be found.
    pub origin: Option<Origin>,
    /// A concrete fix.
    pub fix: String,
    /// How the origin was found, or why it could not be.
    pub evidence: Evidence,
}

impl Diagnosis {
    /// The log lacked the state to find the origin: a log-level-2 log may
    /// have it.
    pub fn lacks_state(&self) -> bool {
        self.evidence == Evidence::LacksState
    }
}

/// A program's decoded instructions, when the object is at hand.
#[derive(Clone, Copy)]
pub struct Program<'a> {
    /// The instructions, by verifier index.
    pub insns: &'a [(usize, Insn)],
    /// Names for its helpers, kfuncs and maps.
    pub names: &'a dyn Resolver,
}

impl Program<'_> {
    fn insn(&self, index: u32) -> Option<(usize, &Insn)> {
        let index = usize::try_from(index).ok()?;
        self.insns
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(i, insn)| (*i, insn))
    }

    /// Instruction `index` in the kernel's syntax.
    fn text(&self, index: u32) -> Option<String> {
        let (i, insn) = self.insn(index)?;
        Some(insn.display(i, self.names).to_string())
    }

    /// What instruction `index` does.
    fn effect(&self, index: u32) -> Option<Effect> {
        let (i, insn) = self.insn(index)?;
        Some(Effect::from_insn(i, insn, self.names))
    }
}

/// Everything a diagnosis needs.
pub struct Input<'a> {
    /// The parsed log.
    pub log: &'a ParsedLog,
    /// Source lines for instruction indexes.
    pub sources: &'a mut dyn Sources,
    /// The program, when the object is at hand: for errors the log ties
    /// to no instruction.
    pub program: Option<Program<'a>>,
}

/// Diagnoses a rejection. `None` when the log shows no rejection.
pub fn diagnose(input: Input<'_>) -> Option<(ErrorSite, Diagnosis)> {
    let mut facts = facts::Facts::gather(input)?;
    let rule = rules::find(&rules::Clues {
        messages: &facts.messages,
        failing: facts.error_effect.as_ref(),
        region: facts.region,
        trace: facts.trace.as_ref(),
    });
    let rules::Finding {
        summary,
        origin,
        fix,
        evidence,
    } = (rule.explain)(&mut facts);
    let diagnosis = Diagnosis {
        kind: rule.kind,
        summary,
        origin,
        fix,
        evidence,
    };
    Some((facts.site(), diagnosis))
}

/// Classifies an error message by the rule table, knowing only the
/// messages and the failing instruction's text.
pub fn classify(messages: &[String], failing_insn_text: Option<&str>) -> Kind {
    classify_with_region(messages, failing_insn_text, None)
}

/// [`classify`], knowing the region the register the message is about
/// points into, when the log says: some messages (`R0 min value is
/// negative`) name the memory only by the register's type.
pub fn classify_with_region(
    messages: &[String],
    failing_insn_text: Option<&str>,
    region: Option<Region>,
) -> Kind {
    let messages = messages::Messages::new(messages);
    let failing = failing_insn_text.map(Effect::parse);
    rules::find(&rules::Clues {
        messages: &messages,
        failing: failing.as_ref(),
        region,
        trace: None,
    })
    .kind
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::{log::parse_str, regstate::Region};

    struct NoSources;
    impl Sources for NoSources {
        fn source(&mut self, _: u32) -> Option<SourceRef> {
            None
        }
    }

    fn run(text: &str) -> (ErrorSite, Diagnosis) {
        let log = parse_str(text);
        diagnose(Input {
            log: &log,
            sources: &mut NoSources,
            program: None,
        })
        .expect("a rejection")
    }

    #[test]
    fn null_check_through_a_move_and_a_spill_without_ids() {
        let (site, d) = run("0: (b7) r1 = 0
1: (63) *(u32 *)(r10 -4) = r1
2: (bf) r2 = r10
3: (07) r2 += -4
4: (18) r1 = 0xffff9c97f6e41a00
6: (85) call bpf_map_lookup_elem#1
7: (bf) r7 = r0
8: (7b) *(u64 *)(r10 -16) = r7
9: (79) r3 = *(u64 *)(r10 -16)
10: (b7) r1 = 1
11: (db) lock *(u64 *)(r3 +0) += r1
R3 invalid mem access 'map_value_or_null'
");
        assert_eq!(site.insn, Some(11));
        assert_eq!(d.kind, Kind::NullCheck);
        let origin = d.origin.unwrap();
        assert_eq!(origin.insn, 6);
        assert_eq!(origin.path.len(), 3, "{:?}", origin.path);
        assert!(d.fix.contains("if (!ptr) return XDP_ABORTED;"), "{}", d.fix);
    }

    #[test]
    fn the_walk_follows_pops_back_to_the_branch() {
        let (_, d) = run("0: (85) call bpf_map_lookup_elem#1
1: (bf) r6 = r0
2: (15) if r1 == 0x0 goto pc+2
3: (b7) r0 = 2
4: (95) exit
from 2 to 5: R6=map_value_or_null R10=fp0
5: (79) r2 = *(u64 *)(r6 +0)
R6 invalid mem access 'map_value_or_null'
");
        assert_eq!(d.kind, Kind::NullCheck);
        assert_eq!(d.origin.unwrap().insn, 0);
    }

    #[test]
    fn classification_of_known_messages() {
        let k = |m: &str| classify(&[m.to_owned()], None);
        assert_eq!(
            k("R0 invalid mem access 'map_value_or_null'"),
            Kind::NullCheck
        );
        assert_eq!(
            k("R1 invalid mem access 'ringbuf_mem_or_null'"),
            Kind::NullCheck
        );
        assert_eq!(
            k("invalid access to packet, off=0 size=2, R1(id=0,off=0,r=0)"),
            Kind::PacketBounds
        );
        assert_eq!(
            k("invalid access to map value, value_size=16 off=16 size=8"),
            Kind::MapValueBounds
        );
        assert_eq!(
            k("invalid bpf_context access off=24 size=4"),
            Kind::CtxAccess
        );
        assert_eq!(
            k("unknown func bpf_get_current_pid_tgid#14"),
            Kind::HelperUnavailable
        );
        assert_eq!(
            k("program of this type cannot use helper bpf_probe_read#4"),
            Kind::HelperUnavailable
        );
        assert_eq!(
            k("cannot call GPL-restricted function from non-GPL compatible program"),
            Kind::HelperUnavailable
        );
        assert_eq!(
            k("Unreleased reference id=2 alloc_insn=7"),
            Kind::ReferenceLeak
        );
        assert_eq!(
            k("combined stack size of 2 calls is 576. Too large"),
            Kind::StackLimit
        );
        assert_eq!(
            k("BPF program is too large. Processed 1000001 insn"),
            Kind::Complexity
        );
        assert_eq!(k("infinite loop detected at insn 5"), Kind::Complexity);
        assert_eq!(k("R2 !read_ok"), Kind::Uninit);
        assert_eq!(
            k("invalid read from stack R2 off -8+0 size 8"),
            Kind::UninitStack
        );
        assert_eq!(
            k("invalid indirect read from stack R4 off -64+0 size 64"),
            Kind::UninitStack
        );
        assert_eq!(k("R3 type=inv expected=fp"), Kind::HelperArgType);
        assert_eq!(
            k("R1 type=scalar expected=fp, pkt, pkt_meta, map_key, map_value"),
            Kind::HelperArgType
        );
        assert_eq!(
            k("arg#0 expected pointer to ctx, but got PTR"),
            Kind::HelperArgType
        );
        assert_eq!(k("R9 invalid mem access 'inv'"), Kind::ScalarDeref);
        assert_eq!(k("R1 invalid mem access 'scalar'"), Kind::ScalarDeref);
        assert_eq!(k("invalid stack off=-520 size=8"), Kind::StackBounds);
        assert_eq!(
            k("cannot access ptr member ops with moff 0 in struct bpf_map with off 0 size 4"),
            Kind::BtfAccess
        );
        assert_eq!(
            k("R1 pointer arithmetic on map_ptr prohibited"),
            Kind::PointerArith
        );
        assert_eq!(
            k("misaligned packet access off 2+0+14 size 4"),
            Kind::Misaligned
        );
        assert_eq!(
            k("addition of negative constant to packet pointer is not allowed"),
            Kind::PacketBounds
        );
        assert_eq!(
            k("cannot add integer value with 0 upper zero bits to ptr_to_packet"),
            Kind::PacketBounds
        );
        assert_eq!(k("invalid func unknown#182"), Kind::HelperUnavailable);
        assert_eq!(k("invalid func unknown#195896080"), Kind::CoreRelocation);
        let r = |m: &str, region| classify_with_region(&[m.to_owned()], None, Some(region));
        let unbounded =
            "math between fp pointer and register with unbounded min value is not allowed";
        assert_eq!(r(unbounded, Region::Stack), Kind::StackBounds);
        let negative =
            "R6 min value is negative, either use unsigned index or do a if (index >=0) check.";
        assert_eq!(r(negative, Region::Packet), Kind::PacketBounds);
        assert_eq!(r(negative, Region::MapValue), Kind::MapValueBounds);
        assert_eq!(r(negative, Region::Stack), Kind::StackBounds);
        // A helper's size argument is no memory: its own kind.
        assert_eq!(
            classify(
                &["R2 min value is negative, either use unsigned or 'var &= const'".to_owned()],
                Some("call bpf_probe_read_str#45")
            ),
            Kind::HelperSizeArg
        );
        assert_eq!(
            k("R3 unbounded memory access, use 'var &= const' or 'if (var < const)'"),
            Kind::HelperSizeArg
        );
        assert_eq!(
            k("R2 invalid zero-sized read: u64=[0,31]"),
            Kind::HelperSizeArg
        );
        assert_eq!(
            classify(&["R0 !read_ok".to_owned()], Some("exit")),
            Kind::InvalidReturn
        );
        assert_eq!(
            k("At program exit the register R0 has smin=5 smax=5 should have been in [0, 4]"),
            Kind::InvalidReturn
        );
        assert_eq!(k("something new"), Kind::Unknown);
    }

    #[test]
    fn old_kernel_logs_name_helpers_and_find_scalar_origins() {
        // bcc on 4.x: helpers by number, `inv` states, `R10=fp`.
        let (site, d) = run("bpf: Permission denied
0: (79) r1 = *(u64 *)(r1 +112)
1: (18) r2 = 0x6b408000
3: (b7) r3 = 1024
4: (85) call 27
R1 type=inv expected=ctx

Traceback (most recent call last):
");
        assert_eq!(site.insn, Some(4));
        assert_eq!(site.message, "R1 type=inv expected=ctx");
        assert_eq!(d.kind, Kind::HelperArgType);
        assert_eq!(d.origin.unwrap().insn, 0);
        assert!(d.summary.contains("bpf_get_stackid"), "{}", d.summary);
        assert!(d.summary.contains("context"), "{}", d.summary);
        // A pointer shifted into a number.
        let (_, d) = run(" R9=pkt(id=0,off=0,r=0) R10=fp
413: (67) r9 <<= 32
414: (77) r9 >>= 32
415: (bf) r1 = r9
416: (73) *(u8 *)(r9 +0) = r1
R9 invalid mem access 'inv'
");
        assert_eq!(d.kind, Kind::ScalarDeref);
        assert_eq!(d.origin.unwrap().insn, 413);
        // A value read from a map value.
        let (_, d) = run("6: (85) call 1
7: (15) if r0 == 0x0 goto pc+18
 R0=map_value(ks=4,vs=8) R10=fp
8: (79) r1 = *(u64 *)(r0 +0)
16: (61) r3 = *(u32 *)(r1 +0)
R1 invalid mem access 'inv'
");
        assert_eq!(d.kind, Kind::ScalarDeref);
        assert_eq!(d.origin.unwrap().insn, 8);
        assert!(d.summary.contains("map value"), "{}", d.summary);
    }

    #[test]
    fn an_error_that_names_its_instruction_is_there() {
        let (site, d) = run("260: (61) r1 = *(u32 *)(r6 +3044)
261: (61) r2 = *(u32 *)(r6 +3040)
infinite loop detected at insn 262
");
        assert_eq!((site.insn, d.kind), (Some(262), Kind::Complexity));
        let (site, _) = run("2400: (b7) r2 = 8
BPF program is too large. Processed 1000001 insn
processed 1000001 insns (limit 1000000) max_states_per_insn 22 total_states 38642 peak_states 2336 mark_read 177
");
        assert_eq!(site.insn, None, "the limit names no instruction");
    }

    #[test]
    fn a_spilled_register_is_no_data_for_a_helper() {
        let (_, d) = run("1: (79) r1 = *(u64 *)(r6 +80)
2: (7b) *(u64 *)(r10 -8) = r1
33: (07) r2 += -8
37: (85) call 2
invalid indirect read from stack off -8+0 size 8
");
        assert_eq!(d.kind, Kind::UninitStack);
        assert_eq!(d.origin.unwrap().insn, 2);
        assert!(d.summary.contains("bpf_map_update_elem"), "{}", d.summary);
    }

    #[test]
    fn reference_leak_origin_is_alloc_insn() {
        let (site, d) = run("7: (85) call bpf_ringbuf_reserve#131\n8: (b7) r0 = 2\n9: (95) exit\nUnreleased reference id=2 alloc_insn=7\n");
        assert_eq!(site.insn, Some(9));
        assert_eq!(d.kind, Kind::ReferenceLeak);
        assert_eq!(d.origin.unwrap().insn, 7);
        assert!(d.fix.contains("bpf_ringbuf_submit"));
    }

    #[test]
    fn stale_packet_pointer_is_told_apart_from_a_plain_scalar() {
        let (_, d) = run("0: (bf) r6 = r1
1: (61) r7 = *(u32 *)(r6 +0)
2: (bf) r1 = r6
3: (b7) r2 = 4
4: (85) call bpf_xdp_adjust_head#44
5: (71) r0 = *(u8 *)(r7 +0)
R7 invalid mem access 'scalar'
");
        assert_eq!(d.kind, Kind::StalePacketPointer);
        assert_eq!(d.origin.unwrap().insn, 4);
    }

    /// Found by the seeded fuzz test (xdpstat/tests/fuzz.rs): offsets and
    /// sizes whose sum overflowed an i64 panicked the summary.
    #[test]
    fn numbers_whose_sum_overflows_are_no_byte_counts() {
        let (_, d) = run("0: (71) r3 = *(u8 *)(r1 +12)
invalid access to packet, off=9223372036854775807 size=1, R1(id=0,off=0,r=0)
");
        assert_eq!(d.kind, Kind::PacketBounds);
        assert!(
            d.summary.contains("is not proven to stay inside"),
            "{}",
            d.summary
        );
        let (_, d) = run("0: (79) r1 = *(u64 *)(r0 +64)
invalid access to map value, value_size=16 off=-9223372036854775808 size=-8
");
        assert_eq!(d.kind, Kind::MapValueBounds);
        assert!(
            d.summary.contains("may fall outside the map value"),
            "{}",
            d.summary
        );
    }

    #[test]
    fn a_log_without_state_says_so_in_its_evidence() {
        let (_, d) = run("R0 invalid mem access 'map_value_or_null'\n");
        assert_eq!(d.kind, Kind::NullCheck);
        assert_eq!(d.evidence, Evidence::LacksState);
        assert!(d.lacks_state());
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["evidence"], Evidence::LacksState.text());
        assert!(json["evidence"]
            .as_str()
            .unwrap()
            .ends_with("load it with log level 2 to get more"));
        let (_, d) = run("0: (b7) r0 = 0\nsomething new\n");
        assert_eq!((d.kind, d.evidence), (Kind::Unknown, Evidence::NoRule));
        assert!(!d.lacks_state());
    }
}
