//! Diagnoses: from a parsed verifier log to what went wrong, where the
//! offending value was born, and how to fix it.
//!
//! The origin comes from the verifier's own bookkeeping, not from the
//! message text: first the `id` the verifier gave the value (where the log
//! carries ids), then a backward walk along the path the verifier took,
//! following the value through moves and stack spills to the instruction
//! that produced it.

use std::fmt;

use serde::Serialize;

use super::{
    effect::{changes_packet_data, returns_or_null, Effect, Place},
    log::{ParsedLog, Step},
};

/// The fixed names of what can go wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A possibly-NULL pointer used without a test.
    NullCheck,
    /// A packet access not proven inside `data_end`.
    PacketBounds,
    /// A packet pointer used after a helper that may move the packet.
    StalePacketPointer,
    /// A map value accessed outside its size.
    MapValueBounds,
    /// A bad access to the context (`struct xdp_md`).
    CtxAccess,
    /// A helper or kfunc this program may not call.
    HelperUnavailable,
    /// An acquired reference not released on some path.
    ReferenceLeak,
    /// Stack use beyond the 512-byte limit.
    StackLimit,
    /// Too many instructions or states, or a loop the verifier cannot bound.
    Complexity,
    /// An uninitialized register or stack slot.
    Uninit,
    /// A return value the program type does not allow.
    InvalidReturn,
    /// None of the above.
    Unknown,
}

impl Kind {
    /// The name JSON and the report use.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NullCheck => "null-check",
            Self::PacketBounds => "packet-bounds",
            Self::StalePacketPointer => "stale-packet-pointer",
            Self::MapValueBounds => "map-value-bounds",
            Self::CtxAccess => "ctx-access",
            Self::HelperUnavailable => "helper-unavailable",
            Self::ReferenceLeak => "reference-leak",
            Self::StackLimit => "stack-limit",
            Self::Complexity => "complexity",
            Self::Uninit => "uninit",
            Self::InvalidReturn => "invalid-return",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A source line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// Verifier index.
    pub insn: u32,
    /// The instruction.
    pub text: String,
    /// Its source line.
    pub source: Option<SourceRef>,
    /// How the value got from there to the error, e.g. `r0 ← r7 ← fp-8`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
}

/// What went wrong, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
    pub evidence: String,
    /// The log lacked the state to find the origin: a log-level-2 log may
    /// have it.
    #[serde(skip)]
    pub lacks_state: bool,
}

/// The first `Rn` a message names.
fn named_reg(message: &str) -> Option<u8> {
    message
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find_map(|w| {
            let n = w.strip_prefix('R')?;
            let n: u8 = n.parse().ok()?;
            (n <= 10).then_some(n)
        })
}

/// The number after `key`, where `key` starts a word (so `size=` does not
/// match inside `value_size=`).
fn number_after(text: &str, key: &str) -> Option<i64> {
    let start = text
        .match_indices(key)
        .find(|(i, _)| {
            *i == 0 || !text[..*i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })?
        .0;
    let rest = &text[start + key.len()..];
    let s: String = rest
        .chars()
        .skip_while(|c| *c == ' ')
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    s.parse().ok()
}

/// Classifies an error message. Order matters: the first rule that fits.
///
/// Some messages name only the memory region by the type of the pointer
/// (`math between pkt pointer and …`, `R0 min value is negative`); for those
/// the type of the register in the verifier's state decides, through
/// `region`.
pub fn classify(messages: &[String], failing_insn_text: Option<&str>) -> Kind {
    classify_with_region(messages, failing_insn_text, None)
}

/// [`classify`], knowing the type of the register the message is about
/// (`pkt`, `map_value`, `fp`, `ctx`…), when the log says.
pub fn classify_with_region(
    messages: &[String],
    failing_insn_text: Option<&str>,
    region: Option<&str>,
) -> Kind {
    let all = messages.join("\n");
    let has = |s: &str| all.contains(s);
    let any = |list: &[&str]| list.iter().any(|s| all.contains(s));
    let is_exit = failing_insn_text == Some("exit");
    let by_region = |region: &str| -> Option<Kind> {
        Some(if region.starts_with("pkt") {
            Kind::PacketBounds
        } else if region.starts_with("map_value") || region.contains("mem") {
            Kind::MapValueBounds
        } else if region.starts_with("fp") {
            Kind::StackLimit
        } else if region.starts_with("ctx") {
            Kind::CtxAccess
        } else {
            return None;
        })
    };
    if any(&["or_null", "Possibly NULL pointer", "null pointer passed"]) {
        Kind::NullCheck
    } else if any(&[
        "invalid access to packet",
        "outside of the packet",
        "variable-offset packet",
        "pointer arithmetic on pkt",
        "between pkt pointer",
        "misaligned packet access",
    ]) {
        Kind::PacketBounds
    } else if any(&[
        "invalid access to map value",
        "invalid variable-offset access to map",
        "between map_value pointer",
        "invalid access to memory",
    ]) {
        Kind::MapValueBounds
    } else if any(&[
        "bpf_context access",
        "modified ctx ptr",
        "ctx access",
        "invalid access to context",
        "pointer arithmetic on ctx",
    ]) {
        Kind::CtxAccess
    } else if any(&[
        "unknown func",
        "cannot use helper",
        "GPL-restricted",
        "calling kernel function",
        "helper call is not allowed",
    ]) || has("is not allowed") && any(&["helper", "kernel function", "kfunc"])
    {
        Kind::HelperUnavailable
    } else if any(&[
        "Unreleased reference",
        "reference has not been acquired",
        "reference leak",
    ]) {
        Kind::ReferenceLeak
    } else if any(&[
        "combined stack size",
        "invalid write to stack",
        "invalid stack off",
        "between fp pointer",
        "stack frames exceeded",
    ]) || has("variable-offset") && has("stack") && !has("read from stack")
        || has("stack depth") && has("exceeds")
    {
        Kind::StackLimit
    } else if any(&[
        "program is too large",
        "infinite loop",
        "back-edge",
        "too complex",
        "loop detected",
        "too many states",
        "unbounded loop",
        "too many instructions",
    ]) {
        Kind::Complexity
    } else if any(&[
        "At program exit",
        "should have been in",
        "leaks addr as return value",
    ]) || is_exit && has("R0 !read_ok")
    {
        Kind::InvalidReturn
    } else if any(&[
        "!read_ok",
        "invalid read from stack",
        "invalid indirect read from stack",
        "uninit",
        "invalid size of register fill",
        "invalid stack type",
    ]) {
        Kind::Uninit
    } else if any(&[
        "min value is negative",
        "unbounded min value",
        "max value is outside",
        "min value is outside",
        "unbounded memory access",
        "value is outside of the allowed memory range",
    ]) {
        region.and_then(by_region).unwrap_or(Kind::MapValueBounds)
    } else {
        Kind::Unknown
    }
}

/// What a backward walk found.
#[derive(Clone, Debug, Default)]
struct Trace {
    /// The instruction where the value was born, if found.
    origin: Option<u32>,
    /// What kind of birth it was.
    birth: Option<Birth>,
    /// The places the value went through, newest first.
    hops: Vec<String>,
    /// A packet-changing helper call the walk crossed, newest first.
    crossed_packet_change: Option<u32>,
    /// The walk ran off the remembered path.
    ran_out: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Birth {
    Call(String),
    Load { base: u8, off: i32 },
    Const,
    Clobbered(String),
    Other,
}

fn place_name(place: Place) -> String {
    match place {
        Place::Reg(r) => format!("r{r}"),
        Place::Stack(off) => format!("fp{off}"),
    }
}

/// Index into `log.path` of the step that pushed the state `Pop { from, .. }`
/// at `pop` resumed: the latest `Insn(from)` before it whose own pushes
/// were not popped later.
fn pushing_step(path: &[Step], pop: usize, from: u32) -> Option<usize> {
    let mut pending = 0usize;
    for j in (0..pop).rev() {
        match path[j] {
            Step::Pop { from: f, .. } if f == from => pending += 1,
            Step::Insn(i) if i == from => {
                if pending == 0 {
                    return Some(j);
                }
                pending -= 1;
            }
            _ => {}
        }
    }
    None
}

/// Follows `place` backward from just before path step `start`.
fn trace_back(log: &ParsedLog, path: &[Step], start: usize, mut place: Place) -> Trace {
    let mut trace = Trace::default();
    let mut pos = start;
    let mut budget = path.len() * 2;
    while pos > 0 && budget > 0 {
        budget -= 1;
        pos -= 1;
        let insn = match path[pos] {
            Step::Insn(i) => i,
            Step::Pop { from, .. } => match pushing_step(path, pos, from) {
                Some(j) => {
                    // Resume just before the branch instruction itself.
                    pos = j;
                    continue;
                }
                None => {
                    trace.ran_out = true;
                    return trace;
                }
            },
        };
        let Some(text) = log.insns.get(&insn) else {
            continue;
        };
        let effect = Effect::parse(text);
        match (&effect, place) {
            (Effect::Move { dst, src }, Place::Reg(r)) if *dst == r => {
                trace.hops.push(format!("r{r} = r{src} at {insn}"));
                place = Place::Reg(*src);
                if *src == 10 {
                    trace.origin = Some(insn);
                    trace.birth = Some(Birth::Other);
                    return trace;
                }
            }
            (Effect::Load { dst, base, off }, Place::Reg(r)) if *dst == r => {
                if *base == 10 {
                    trace
                        .hops
                        .push(format!("r{r} loaded from fp{off} at {insn}"));
                    place = Place::Stack(*off);
                } else {
                    trace.origin = Some(insn);
                    trace.birth = Some(Birth::Load {
                        base: *base,
                        off: *off,
                    });
                    return trace;
                }
            }
            (Effect::Store { base: 10, off, src }, Place::Stack(slot)) if *off == slot => match src
            {
                Some(src) => {
                    trace
                        .hops
                        .push(format!("spilled to fp{off} from r{src} at {insn}"));
                    place = Place::Reg(*src);
                }
                None => {
                    trace.origin = Some(insn);
                    trace.birth = Some(Birth::Const);
                    return trace;
                }
            },
            (Effect::Alu { dst, .. }, Place::Reg(r)) if *dst == r => {
                trace.hops.push(format!("r{r} adjusted at {insn}"));
            }
            (Effect::Const { dst } | Effect::Def { dst }, Place::Reg(r)) if *dst == r => {
                trace.origin = Some(insn);
                trace.birth = Some(if matches!(effect, Effect::Const { .. }) {
                    Birth::Const
                } else {
                    Birth::Other
                });
                return trace;
            }
            (Effect::Call { name, .. }, Place::Reg(r)) => {
                if r == 0 {
                    trace.origin = Some(insn);
                    trace.birth = Some(Birth::Call(name.clone()));
                    return trace;
                }
                if (1..=5).contains(&r) {
                    trace.origin = Some(insn);
                    trace.birth = Some(Birth::Clobbered(name.clone()));
                    return trace;
                }
                if changes_packet_data(name) && trace.crossed_packet_change.is_none() {
                    trace.crossed_packet_change = Some(insn);
                }
            }
            (Effect::Call { name, .. }, Place::Stack(_))
                if changes_packet_data(name) && trace.crossed_packet_change.is_none() =>
            {
                trace.crossed_packet_change = Some(insn);
            }
            (Effect::SubCall, Place::Reg(r)) if r <= 5 => {
                trace.origin = Some(insn);
                trace.birth = Some(Birth::Other);
                return trace;
            }
            _ => {}
        }
    }
    trace.ran_out = log.path_clipped || pos > 0;
    if !trace.ran_out {
        // The start of the program: r1 is the context, r10 the frame.
        trace
            .hops
            .push(format!("{} at program start", place_name(place)));
    }
    trace
}

/// The variable a source line assigns, e.g. `cnt` in
/// `struct counters *cnt = bpf_map_lookup_elem(…)` or `let cnt = …`.
fn assigned_variable(text: &str) -> Option<String> {
    let lhs = text.split(" = ").next().filter(|l| l.len() < text.len())?;
    let ident = lhs
        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|w| !w.is_empty() && *w != "mut")?;
    (!ident.chars().next()?.is_ascii_digit()).then(|| ident.to_owned())
}

fn is_rust(source: Option<&SourceRef>) -> bool {
    source.is_some_and(|s| s.file.ends_with(".rs"))
}

fn at(source: Option<&SourceRef>, insn: u32) -> String {
    match source {
        Some(s) => s.to_string(),
        None => format!("insn {insn}"),
    }
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

/// Everything a diagnosis needs.
pub struct Input<'a> {
    /// The parsed log.
    pub log: &'a ParsedLog,
    /// Source lines for instruction indexes.
    pub sources: &'a mut dyn Sources,
    /// The program's instructions (index, kernel-syntax text), when the
    /// object is at hand: for errors the log ties to no instruction.
    pub program: Option<&'a [(u32, String)]>,
}

/// Diagnoses a rejection. `None` when the log shows no rejection.
pub fn diagnose(input: Input<'_>) -> Option<(ErrorSite, Diagnosis)> {
    let Input {
        log,
        sources,
        program,
    } = input;
    let message = log.message()?.to_owned();
    let text_of = |i: u32| {
        log.insns.get(&i).cloned().or_else(|| {
            program.and_then(|p| p.iter().find(|(j, _)| *j == i).map(|(_, t)| t.clone()))
        })
    };
    let mut error_insn = log.error_insn();
    let mut frame_origin = None;
    // The stack check runs after the walk and names no instruction: find
    // the call that makes the chain too deep from the program itself.
    if error_insn.is_none() && message.contains("combined stack size") {
        if let (Some(p), Some(stats)) = (program, log.stats.as_ref()) {
            if let Some((call, callee)) = overflowing_call(p, &stats.stack_depth) {
                error_insn = Some(call);
                frame_origin = Some(callee);
            }
        }
    }
    let error_text = error_insn.and_then(text_of);
    let error_source = error_insn.and_then(|i| sources.source(i));
    let reg_hint = log.messages.iter().find_map(|m| named_reg(m));
    let region = reg_hint
        .and_then(|r| log.reg_values.get(&r))
        .map(|v| v.name.clone());
    let kind = classify_with_region(&log.messages, error_text.as_deref(), region.as_deref());
    let site = ErrorSite {
        insn: error_insn,
        text: error_text.clone(),
        message: message.clone(),
        source: error_source.clone(),
    };
    let path: Vec<Step> = log.path.iter().copied().collect();
    let end = path.len();
    // The register the error is about: the one a message names, or the
    // base of the failing memory access.
    let reg = log.messages.iter().find_map(|m| named_reg(m)).or_else(|| {
        error_text
            .as_deref()
            .and_then(|t| Effect::parse(t).deref_base())
    });
    let all = log.messages.join("\n");
    let here = at(error_source.as_ref(), error_insn.unwrap_or(0));

    // The verifier's own id for the value, when its state shows one.
    let id_origin = || -> Option<u32> {
        let id = log.reg_values.get(&reg?)?.identity()?;
        log.births.get(&id).map(|b| b.insn)
    };
    let trace = reg.map(|r| trace_back(log, &path, end.saturating_sub(1), Place::Reg(r)));
    let origin_of = |insn: u32, hops: Vec<String>, sources: &mut dyn Sources| Origin {
        insn,
        text: text_of(insn).unwrap_or_default(),
        source: sources.source(insn),
        path: hops,
    };
    let lacks_state = "the log lacks the state needed to find where the value came from (no register ids, and the path it shows does not reach the value's birth); load it with log level 2 to get more";

    let (summary, origin, fix, evidence) = match kind {
        Kind::NullCheck => {
            let by_id = id_origin();
            let by_path = trace.as_ref().and_then(|t| match &t.birth {
                Some(Birth::Call(name)) if returns_or_null(name) => t.origin,
                _ => None,
            });
            let evidence = match (by_id, by_path) {
                (Some(_), Some(_)) => {
                    "the value's id in the verifier's state, and the path it walked"
                }
                (Some(_), None) => "the value's id in the verifier's state",
                (None, Some(_)) => "the path the verifier walked (through moves and stack spills)",
                (None, None) => lacks_state,
            };
            let origin_insn = by_id.or(by_path);
            let hops = trace.as_ref().map(|t| t.hops.clone()).unwrap_or_default();
            let origin = origin_insn.map(|i| origin_of(i, hops, sources));
            let helper = origin
                .as_ref()
                .and_then(|o| match Effect::parse(&o.text) {
                    Effect::Call { name, .. } => Some(name),
                    _ => None,
                })
                .unwrap_or_else(|| "a helper that can return NULL".to_owned());
            let var = origin
                .as_ref()
                .and_then(|o| o.source.as_ref())
                .and_then(|s| s.text.as_deref())
                .and_then(assigned_variable)
                .unwrap_or_else(|| "ptr".to_owned());
            let why_null = match helper.as_str() {
                "bpf_map_lookup_elem" | "bpf_map_lookup_percpu_elem" => {
                    "it returns NULL when the key is not in the map"
                }
                "bpf_ringbuf_reserve" => "it returns NULL when the ring buffer is full",
                _ => "it returns NULL on failure",
            };
            let origin_at = origin
                .as_ref()
                .map_or_else(|| "the call".to_owned(), |o| at(o.source.as_ref(), o.insn));
            let r = reg.map_or_else(|| "the pointer".to_owned(), |r| format!("R{r}"));
            let summary = format!(
                "{r} may be NULL at {here}: it holds the result of {helper} ({origin_at}), and {why_null}, but the program uses it without testing it"
            );
            let fail = if helper == "bpf_ringbuf_reserve" {
                "XDP_PASS"
            } else {
                "XDP_ABORTED"
            };
            let fix = if is_rust(origin.as_ref().and_then(|o| o.source.as_ref())) {
                format!("test the result after the lookup at {origin_at} and return early when it is None: `let Some({var}) = … else {{ return xdp_action::{fail} }};` (aya's map getters return Option)")
            } else {
                format!("add `if (!{var}) return {fail};` after the lookup at {origin_at}")
            };
            (summary, origin, fix, evidence.to_owned())
        }
        Kind::PacketBounds => {
            let off = number_after(&all, "off=");
            let size = number_after(&all, "size=");
            let range = number_after(&all, "r=");
            let need = off.zip(size).map(|(o, s)| o + s);
            let origin = trace
                .as_ref()
                .and_then(|t| t.origin.map(|i| origin_of(i, t.hops.clone(), sources)));
            let origin_at = origin.as_ref().map(|o| at(o.source.as_ref(), o.insn));
            let proven = match range {
                Some(0) | None => "no bytes".to_owned(),
                Some(r) => format!("only {r} bytes"),
            };
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
                "the path the verifier walked, back to the packet pointer's load from ctx"
            } else {
                lacks_state
            };
            (summary, origin, fix, evidence.to_owned())
        }
        Kind::StalePacketPointer | Kind::Unknown
            if trace
                .as_ref()
                .is_some_and(|t| t.crossed_packet_change.is_some())
                && all.contains("invalid mem access") =>
        {
            let t = trace.as_ref().expect("checked");
            let call = t.crossed_packet_change.expect("checked");
            let origin = Some(origin_of(call, t.hops.clone(), sources));
            let helper = log
                .insns
                .get(&call)
                .map(|t| match Effect::parse(t) {
                    Effect::Call { name, .. } => name,
                    _ => t.clone(),
                })
                .unwrap_or_default();
            let call_at = at(origin.as_ref().and_then(|o| o.source.as_ref()), call);
            let summary = format!(
                "the pointer used at {here} points into the packet as it was before {helper} ({call_at}); that call may move or resize the packet, so the verifier forgot every packet pointer taken before it"
            );
            let fix = format!(
                "after {helper} at {call_at}, read ctx->data and ctx->data_end again, recompute the pointer from them, and check its bound again before using it"
            );
            return Some((
                site,
                Diagnosis {
                    kind: Kind::StalePacketPointer,
                    summary,
                    origin,
                    fix,
                    evidence: "the path the verifier walked crosses the packet-changing call between the pointer's load and its use".to_owned(),
                    lacks_state: false,
                },
            ));
        }
        Kind::MapValueBounds => {
            let value_size = number_after(&all, "value_size=");
            let off = number_after(&all, "off=");
            let size = number_after(&all, "size=");
            let by_id = id_origin();
            let by_path = trace.as_ref().and_then(|t| match &t.birth {
                Some(Birth::Call(name)) if returns_or_null(name) => t.origin,
                _ => None,
            });
            let origin = by_id.or(by_path).map(|i| {
                origin_of(
                    i,
                    trace.as_ref().map(|t| t.hops.clone()).unwrap_or_default(),
                    sources,
                )
            });
            let summary = match (value_size, off, size) {
                (Some(v), Some(o), Some(s)) => format!(
                    "the access at {here} touches bytes {o}..{} of a map value that is only {v} bytes long",
                    o + s
                ),
                _ if all.contains("unbounded") || all.contains("min value") => format!(
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
                "the map value's id or the path back to its lookup"
            } else {
                lacks_state
            };
            (summary, origin, fix, evidence.to_owned())
        }
        Kind::CtxAccess => {
            let off = number_after(&all, "off=");
            let size = number_after(&all, "size=");
            let field = off.and_then(xdp_md_field);
            let writes = error_text.as_deref().is_some_and(|t| t.starts_with("*("));
            let summary = match (off, size) {
                (Some(o), Some(s)) => format!(
                    "the program {} {s} bytes at offset {o} of its context (struct xdp_md){}, which the verifier does not allow",
                    if writes { "writes" } else { "reads" },
                    field.map(|f| format!(", field {f}")).unwrap_or_else(|| ", which is no field".to_owned())
                ),
                _ => format!("the context access at {here} is not allowed"),
            };
            let fix = if writes {
                "do not write to ctx: struct xdp_md is read-only; to move the packet start use bpf_xdp_adjust_head()".to_owned()
            } else {
                "read only the fields of struct xdp_md (data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex), each as a whole 4-byte __u32, directly from the ctx pointer".to_owned()
            };
            let origin = error_insn.map(|i| origin_of(i, Vec::new(), sources));
            (
                summary,
                origin,
                fix,
                "the failing instruction itself".to_owned(),
            )
        }
        Kind::HelperUnavailable => {
            let helper = error_text
                .as_deref()
                .and_then(|t| match Effect::parse(t) {
                    Effect::Call { name, .. } => Some(name),
                    _ => None,
                })
                .or_else(|| {
                    all.split_whitespace()
                        .find(|w| w.starts_with("bpf_"))
                        .map(|w| w.split('#').next().unwrap_or(w).to_owned())
                })
                .unwrap_or_else(|| "this helper".to_owned());
            let gpl = all.contains("GPL");
            let summary = if gpl {
                format!("{helper} is GPL-only, and this program's license is not GPL-compatible")
            } else {
                format!("XDP programs may not call {helper} on this kernel")
            };
            let fix = if gpl {
                "declare a GPL-compatible license: `char _license[] SEC(\"license\") = \"GPL\";`"
                    .to_owned()
            } else {
                format!("remove the call to {helper} at {here}, or use a helper that XDP programs may call (see `bpftool feature probe | grep -A200 xdp`)")
            };
            let origin = error_insn.map(|i| origin_of(i, Vec::new(), sources));
            (summary, origin, fix, "the failing call itself".to_owned())
        }
        Kind::ReferenceLeak => {
            let alloc = number_after(&all, "alloc_insn=").and_then(|i| u32::try_from(i).ok());
            let id = number_after(&all, "id=");
            let alloc =
                alloc.or_else(|| id.and_then(|id| log.births.get(&(id as u32)).map(|b| b.insn)));
            let origin = alloc.map(|i| origin_of(i, Vec::new(), sources));
            let helper = origin
                .as_ref()
                .and_then(|o| match Effect::parse(&o.text) {
                    Effect::Call { name, .. } => Some(name),
                    _ => None,
                })
                .unwrap_or_else(|| "the acquiring helper".to_owned());
            let origin_at = origin.as_ref().map_or_else(
                || "its acquisition".to_owned(),
                |o| at(o.source.as_ref(), o.insn),
            );
            let release = match helper.as_str() {
                "bpf_ringbuf_reserve" => "bpf_ringbuf_submit() or bpf_ringbuf_discard()",
                h if h.starts_with("bpf_sk_lookup") || h.starts_with("bpf_skc_lookup") => {
                    "bpf_sk_release()"
                }
                _ => "the matching release helper",
            };
            let summary = format!(
                "the program can return at {here} while still holding the reference that {helper} acquired at {origin_at}, which would leak it"
            );
            let fix = format!("release it on every path before returning: call {release} on the result of {helper} ({origin_at})");
            let evidence = if alloc.is_some() {
                "the verifier's alloc_insn for the reference"
            } else {
                lacks_state
            };
            (summary, origin, fix, evidence.to_owned())
        }
        Kind::StackLimit => {
            let combined = number_after(&all, "calls is");
            let off = number_after(&all, "off=");
            let summary = match (combined, off) {
                (Some(total), _) => format!("the call chain ending at {here} needs {total} bytes of stack, over the 512 bytes BPF programs have across all frames"),
                (None, Some(o)) => format!("the access at {here} reaches offset {o} from the frame pointer, outside the 512-byte BPF stack"),
                _ => format!("the program at {here} uses more stack than BPF allows (512 bytes across all frames)"),
            };
            let fix = "shrink the stack: keep large buffers in a per-CPU array map used as scratch space instead of local variables, and mark fewer functions __noinline (each frame adds up)".to_owned();
            // The origin is the frame that does not fit: the callee's entry.
            let origin = frame_origin
                .or(error_insn)
                .map(|i| origin_of(i, Vec::new(), sources));
            (
                summary,
                origin,
                fix,
                "the failing instruction itself".to_owned(),
            )
        }
        Kind::Complexity => {
            let processed = number_after(&all, "Processed")
                .or_else(|| log.stats.as_ref().map(|s| s.insns_processed as i64));
            let named = number_after(&all, "at insn")
                .or_else(|| number_after(&all, "from insn"))
                .and_then(|i| u32::try_from(i).ok());
            let back_edge = named.or_else(|| hottest_branch(log));
            let origin = back_edge.map(|i| origin_of(i, Vec::new(), sources));
            let loop_at = origin.as_ref().map_or_else(
                || "a loop".to_owned(),
                |o| format!("the loop at {}", at(o.source.as_ref(), o.insn)),
            );
            let summary = match processed {
                Some(p) if all.contains("too large") => format!(
                    "the verifier gave up after exploring {p} instructions (its limit is 1000000): it could not prove that {loop_at} ends, or the program has too many paths"
                ),
                _ if all.contains("infinite loop") => format!("the verifier found that {loop_at} can run forever: its state repeats without progress"),
                _ => format!("the program is too complex for the verifier: {}", log.messages.first().cloned().unwrap_or_default()),
            };
            let fix = format!(
                "bound {loop_at} by a constant the verifier can see (`for (int i = 0; i < 64 && i < n; i++)`), or use bpf_loop(); split long programs with tail calls"
            );
            let evidence = if back_edge.is_some() {
                "the branch the verifier walked most often in the log"
            } else {
                lacks_state
            };
            (summary, origin, fix, evidence.to_owned())
        }
        Kind::InvalidReturn => {
            let origin = trace
                .as_ref()
                .and_then(|t| t.origin.map(|i| origin_of(i, t.hops.clone(), sources)));
            let summary = if all.contains("!read_ok") {
                format!("the program returns at {here} without setting R0 on this path, so its verdict is undefined")
            } else {
                format!("the value returned at {here} is not one the program type allows")
            };
            let fix = "return one of XDP_ABORTED (0), XDP_DROP (1), XDP_PASS (2), XDP_TX (3) or XDP_REDIRECT (4) on every path".to_owned();
            (
                summary,
                origin,
                fix,
                "the path the verifier walked".to_owned(),
            )
        }
        Kind::Uninit => {
            let stack = all.contains("from stack");
            let off = number_after(&all, "off ").or_else(|| number_after(&all, "off="));
            let origin = trace
                .as_ref()
                .and_then(|t| t.origin.map(|i| origin_of(i, t.hops.clone(), sources)));
            let summary = if stack {
                format!(
                    "the instruction at {here} reads stack{} that nothing wrote on this path, so it would read leftover kernel data",
                    off.map(|o| format!(" at fp{o}")).unwrap_or_default()
                )
            } else {
                let r = reg.map_or_else(|| "a register".to_owned(), |r| format!("R{r}"));
                match trace.as_ref().and_then(|t| t.birth.clone()) {
                    Some(Birth::Clobbered(helper)) => format!("{r} is read at {here}, but the call to {helper} before it clobbered R1-R5, so it holds no value"),
                    _ => format!("{r} is read at {here} before anything wrote it on this path"),
                }
            };
            let fix = if stack {
                "initialize the variable before passing or reading it (`= {}`, `= 0`, or `__builtin_memset(&x, 0, sizeof(x))`) on every path".to_owned()
            } else {
                "give the variable a value on every path before using it (registers R1-R5 do not survive a helper call; keep values in R6-R9 or on the stack)".to_owned()
            };
            let evidence = if origin.is_some() {
                "the path the verifier walked"
            } else {
                "the path the verifier walked never writes it"
            };
            (summary, origin, fix, evidence.to_owned())
        }
        Kind::StalePacketPointer | Kind::Unknown => {
            let origin = trace
                .as_ref()
                .and_then(|t| t.origin.map(|i| origin_of(i, t.hops.clone(), sources)));
            let summary = format!("the verifier rejected the instruction at {here}: {message}");
            let fix = "xdpstat has no rule for this message yet; read the verifier analysis above around the failing instruction".to_owned();
            let evidence = if origin.is_some() {
                "the path the verifier walked"
            } else {
                "no rule for this message"
            };
            (summary, origin, fix, evidence.to_owned())
        }
    };
    Some((
        site,
        Diagnosis {
            kind,
            summary,
            origin,
            fix,
            lacks_state: evidence == lacks_state,
            evidence,
        },
    ))
}

/// The call that makes the stack too deep: walks the call graph of the
/// program's subprograms (entry, then every `call pc+N` target) with the
/// frame sizes the verifier printed (`stack depth 0+320+320`), and returns
/// the first call whose chain exceeds 512 bytes, with its callee's entry.
fn overflowing_call(program: &[(u32, String)], depths: &[u64]) -> Option<(u32, u32)> {
    const LIMIT: u64 = 512;
    let target = |i: u32, text: &str| -> Option<u32> {
        let rel: i64 = text
            .strip_prefix("call pc")?
            .trim_start_matches('+')
            .parse()
            .ok()?;
        u32::try_from(i64::from(i) + 1 + rel).ok()
    };
    let calls: Vec<(u32, u32)> = program
        .iter()
        .filter_map(|(i, t)| Some((*i, target(*i, t)?)))
        .collect();
    let mut starts: Vec<u32> = std::iter::once(program.first()?.0)
        .chain(calls.iter().map(|c| c.1))
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let subprog_of = |i: u32| starts.iter().rposition(|&s| s <= i).unwrap_or(0);
    let depth_of = |sub: usize| depths.get(sub).copied().unwrap_or(0).next_multiple_of(32);
    // Depth-first along the call graph, carrying the chain's stack use.
    let mut stack = vec![(0usize, depth_of(0), 0usize)];
    while let Some((sub, used, hops)) = stack.pop() {
        if hops > 8 {
            continue;
        }
        for &(call, callee) in calls.iter().filter(|(c, _)| subprog_of(*c) == sub) {
            let callee_sub = subprog_of(callee);
            let total = used + depth_of(callee_sub);
            if total > LIMIT {
                return Some((call, callee));
            }
            stack.push((callee_sub, total, hops + 1));
        }
    }
    None
}

/// The conditional jump the log walks most often: the loop the verifier
/// kept unrolling.
fn hottest_branch(log: &ParsedLog) -> Option<u32> {
    let mut counts: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for step in &log.path {
        if let Step::Insn(i) = step {
            if log.insns.get(i).is_some_and(|t| t.starts_with("if ")) {
                *counts.entry(*i).or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .max_by_key(|&(i, n)| (n, i))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::log::parse_str;

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
            Kind::Uninit
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

    #[test]
    fn the_call_that_overflows_the_stack() {
        let program: Vec<(u32, String)> = [
            (0, "r1 = 1"),
            (1, "call pc+2"),
            (2, "r0 = 2"),
            (3, "exit"),
            (4, "call pc+1"),
            (5, "exit"),
            (6, "r0 = 0"),
            (7, "exit"),
        ]
        .into_iter()
        .map(|(i, t)| (i, t.to_owned()))
        .collect();
        assert_eq!(overflowing_call(&program, &[0, 320, 320]), Some((4, 6)));
        assert_eq!(overflowing_call(&program, &[0, 100, 100]), None);
    }

    #[test]
    fn assigned_variables() {
        assert_eq!(
            assigned_variable(
                "struct counters *cnt = bpf_map_lookup_elem(&counters, &counter_idx);"
            )
            .as_deref(),
            Some("cnt")
        );
        assert_eq!(
            assigned_variable("let mut rec = unsafe { MAP.get_ptr_mut(0) };").as_deref(),
            Some("rec")
        );
        assert_eq!(
            assigned_variable("__sync_fetch_and_add(&cnt->packets, 1);"),
            None
        );
    }
}
