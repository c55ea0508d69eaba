//! A streaming parser for BPF verifier logs.
//!
//! It reads a log line by line and keeps only what a diagnosis needs, all
//! bounded by the size of the program rather than of the log: the text of
//! each instruction index, the source annotations, where values with an
//! `id` were born, a window of the most recent path steps, the lines after
//! the last instruction (the error) and the statistics. A log-level-2 log of
//! a big program runs to hundreds of megabytes; memory stays flat.
//!
//! It accepts logs as the kernel writes them, and as `ip` (iproute2),
//! bpftool/libbpf, aya, cilium/ebpf, bcc, bpftrace and veristat pass them
//! on, and as people paste them: behind journald or ctest prefixes,
//! indented or quoted, between shell prompts, with `...` gaps (see
//! `wrapping.rs`). Both the syntax of kernels before 5.10 (`R0=inv`,
//! `R1=imm5`, `R10=fp`, `call 14`) and today's (`R1_w=scalar()`,
//! `; … @ file.c:12`, `frame1:`) are read.
//!
//! The error is the last message the verifier printed after the last
//! instruction, with the lines that continue it (`R1 offset is outside of
//! the packet`): a loader's text after it (a traceback, a hint, the
//! statistics' end) ends it, and earlier message-like lines (`R1
//! type=ctx expected=fp` while checking a global function) do not win.

use std::{
    collections::{HashMap, VecDeque},
    io::{self, BufRead},
};

use serde::Serialize;
use thiserror::Error;

use super::{effect::Effect, helpers::helper_name, regstate::RegState};

mod wrapping;

use wrapping::{Unwrapper, Wrapped};

/// The longest line kept; the rest of a longer line is skipped. The kernel
/// prints at most 1 KiB per call and a line in a few calls: a level-2
/// state with a full 512-byte stack is a few KiB.
pub const MAX_LINE_BYTES: usize = 64 << 10;
/// The most of one log that is read. The kernel writes at most 1 GiB of
/// log per load (it refuses bigger buffers); this leaves room for a
/// loader's wrapping and for several logs in one file.
pub const MAX_LOG_BYTES: u64 = 4 << 30;

/// Why an input cannot be read as a verifier log.
#[derive(Debug, Error)]
pub enum LogError {
    /// Reading failed.
    #[error(transparent)]
    Read(#[from] io::Error),
    /// Binary content, or text with no line of a verifier log in it.
    #[error("not a verifier log ({0})")]
    NotALog(String),
    /// More than [`MAX_LOG_BYTES`].
    #[error(
        "longer than the {} a verifier log can be",
        crate::input::size_text(MAX_LOG_BYTES)
    )]
    TooLong,
}

/// One line of a log.
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    /// Its text, without the newline; at most [`MAX_LINE_BYTES`], decoded
    /// lossily (a stray non-UTF-8 byte must not end the log).
    pub text: String,
    /// Whether a newline ended it (the last line of a cut log has none).
    pub newline: bool,
}

/// The lines of a log, for the parser and for the annotated listing alike,
/// in memory bounded by [`MAX_LINE_BYTES`] whatever the input.
///
/// A log is text: tabs, CRs and newlines are its only control bytes. A NUL
/// ends it, as the kernel's log buffer is a C string (a loader may have
/// saved the whole buffer); any other control byte, or a NUL at the start,
/// is binary content and an error.
#[derive(Debug)]
pub struct LogLines<R> {
    reader: R,
    offset: u64,
    done: bool,
}

impl<R: BufRead> LogLines<R> {
    /// Lines from `reader`.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            offset: 0,
            done: false,
        }
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next line; `None` at the end.
    ///
    /// # Errors
    ///
    /// [`LogError`] for read errors, binary content and a log over
    /// [`MAX_LOG_BYTES`].
    pub fn next_line(&mut self) -> Result<Option<Line>, LogError> {
        let mut text = Vec::new();
        let mut any = false;
        while !self.done {
            let chunk = match self.reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if chunk.is_empty() {
                self.done = true;
                break;
            }
            let stop = chunk
                .iter()
                .position(|&b| b == b'\n' || (b < 0x20 && b != b'\t' && b != b'\r') || b == 0x7f);
            let used = stop.unwrap_or(chunk.len());
            let room = MAX_LINE_BYTES.saturating_sub(text.len());
            text.extend_from_slice(&chunk[..used.min(room)]);
            any |= used > 0;
            let at = self.offset + used as u64;
            let stop_byte = stop.map(|s| chunk[s]);
            self.reader.consume(used + usize::from(stop.is_some()));
            self.offset = at + u64::from(stop.is_some());
            if self.offset > MAX_LOG_BYTES {
                return Err(LogError::TooLong);
            }
            match stop_byte {
                None => {}
                Some(b'\n') => {
                    return Ok(Some(Line {
                        text: String::from_utf8_lossy(&text).into_owned(),
                        newline: true,
                    }))
                }
                Some(0) if at > 0 => self.done = true,
                Some(b) => {
                    return Err(LogError::NotALog(format!(
                        "binary content: byte {b:#04x} at offset {at}"
                    )))
                }
            }
        }
        Ok(any.then(|| Line {
            text: String::from_utf8_lossy(&text).into_owned(),
            newline: false,
        }))
    }
}

/// How many path steps to remember; older ones fall off.
const PATH_WINDOW: usize = 1 << 16;
/// How many lines after the last instruction to keep as the error.
const MAX_MESSAGE_LINES: usize = 32;

/// A source annotation the kernel printed (`; text @ file:line`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Annotation {
    /// The line's text.
    pub text: String,
    /// The file, when the kernel named it.
    pub file: Option<String>,
    /// The line number, when the kernel gave it.
    pub line: Option<u32>,
}

/// One step of the verifier's walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// It processed this instruction.
    Insn(u32),
    /// It went back to a branch it had pushed: `from A to B`.
    Pop {
        /// The branch instruction.
        from: u32,
        /// Where the popped path resumes.
        to: u32,
    },
}

/// Where a value with an `id` first appears in the log's register states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Birth {
    /// The instruction whose state first shows it.
    pub insn: u32,
    /// The register that held it there.
    pub reg: u8,
    /// Its type, e.g. `map_value_or_null`.
    pub kind: String,
}

/// The verifier's statistics line(s).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// `processed N insns`.
    pub insns_processed: u64,
    /// `(limit N)`.
    pub insn_limit: Option<u64>,
    /// `max_states_per_insn`.
    pub max_states_per_insn: Option<u64>,
    /// `total_states`.
    pub total_states: Option<u64>,
    /// `peak_states`.
    pub peak_states: Option<u64>,
    /// `mark_read`.
    pub mark_read: Option<u64>,
    /// `verification time N usec`.
    pub verification_time_usec: Option<u64>,
    /// `stack depth N[+M…]`, per subprogram.
    pub stack_depth: Vec<u64>,
}

/// iproute2's header (`Prog section 'stats' rejected: …`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LoaderHeader {
    /// The section.
    pub section: Option<String>,
    /// The errno text, e.g. `Permission denied (13)`.
    pub error: Option<String>,
    /// `Type:`.
    pub prog_type: Option<u32>,
    /// `Instructions:`.
    pub insns: Option<u32>,
    /// `License:`.
    pub license: Option<String>,
}

/// What the parser kept of a log.
#[derive(Clone, Debug, Default)]
pub struct ParsedLog {
    /// Instruction text by index, as the log prints it after `(op)`.
    pub insns: HashMap<u32, String>,
    /// What each instruction does, read once from its text.
    pub effects: HashMap<u32, Effect>,
    /// The opcode byte printed in `(op)`, by index.
    pub opcodes: HashMap<u32, u8>,
    /// Source annotations, by the index of the instruction they precede.
    pub annotations: HashMap<u32, Annotation>,
    /// The last steps of the walk, oldest first.
    pub path: VecDeque<Step>,
    /// Whether older steps fell out of `path`.
    pub path_clipped: bool,
    /// Where each `id` of a NULL-able or referenced value was born.
    pub births: HashMap<u32, Birth>,
    /// The last instruction the log shows.
    pub last_insn: Option<u32>,
    /// The register state printed last before the error, if any.
    pub last_state: Option<String>,
    /// The index the last state belongs to.
    pub last_state_insn: Option<u32>,
    /// The latest value the log shows for each register (`map_value_or_null(id=1,…)`),
    /// as of the error.
    pub reg_values: HashMap<u8, RegState>,
    /// The lines after the last instruction, which hold the error.
    pub messages: Vec<String>,
    /// The statistics, if the log got that far.
    pub stats: Option<Stats>,
    /// Whether the log ends early: mid-line, or before a verdict.
    pub truncated: bool,
    /// Whether it has per-instruction register state (log level 2, or
    /// the state the kernel prints with each instruction).
    pub has_states: bool,
    /// Whether the log carries `id=` on values.
    pub has_ids: bool,
    /// iproute2's header, if present.
    pub header: Option<LoaderHeader>,
    /// Lines in the verifier's own syntax (instructions, states, branch
    /// pops, statistics, a loader's header), which tell a log from other
    /// text.
    pub recognized: u64,
    /// Lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
}

impl ParsedLog {
    /// Whether the verifier accepted the program, if the log says.
    pub fn accepted(&self) -> Option<bool> {
        if !self.messages.is_empty() {
            Some(false)
        } else if self.stats.is_some() && !self.truncated {
            Some(true)
        } else {
            None
        }
    }

    /// The instruction the error is about: the last one processed.
    pub fn error_insn(&self) -> Option<u32> {
        if self.messages.is_empty() {
            None
        } else {
            self.last_insn
        }
    }

    /// The first line of the error.
    pub fn message(&self) -> Option<&str> {
        self.messages.first().map(String::as_str)
    }
}

/// Feeds lines in; [`LogParser::finish`] gives the [`ParsedLog`].
#[derive(Debug, Default)]
pub struct LogParser {
    log: ParsedLog,
    pending_annotation: Option<Annotation>,
    in_live_regs: bool,
    ended_with_newline: bool,
    unwrapper: Unwrapper,
    /// The error read so far is complete: a loader's line or the
    /// statistics followed it. Only a new instruction or log reopens it.
    error_closed: bool,
    /// The last line fed was kept as a line of the error.
    last_was_message: bool,
}

fn parse_u64_after(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// An instruction line, split into its parts.
struct InsnLine<'a> {
    index: u32,
    op: u8,
    text: &'a str,
    /// The state after it (`; R0=…`).
    state: Option<&'a str>,
    /// A full state the kernel printed on the same line for the next
    /// instruction (`N: R1=…`), as it does after a jump at level 1.
    next_state: Option<(u32, &'a str)>,
}

/// `N: (op) text[ ; state]`, or `N: (op) text M: state`.
fn insn_line(line: &str) -> Option<InsnLine<'_>> {
    let (index, rest) = line.split_once(": (")?;
    let index: u32 = index.parse().ok()?;
    let (op, rest) = rest.split_once(") ")?;
    if op.len() != 2 {
        return None;
    }
    let op = u8::from_str_radix(op, 16).ok()?;
    let (mut text, state) = match rest.split_once(';') {
        Some((text, state)) => (text.trim_end(), Some(state.trim())),
        None => (rest.trim_end(), None),
    };
    let mut next_state = None;
    // ` 0: R1=ctx() …` glued to the instruction.
    if let Some(pos) = text.find(": R").or_else(|| text.find(": frame")) {
        let head = &text[..pos];
        if let Some(space) = head.rfind(' ') {
            if let Ok(next) = head[space + 1..].parse::<u32>() {
                next_state = Some((next, text[pos + 2..].trim()));
                text = head[..space].trim_end();
            }
        }
    }
    Some(InsnLine {
        index,
        op,
        text,
        state,
        next_state,
    })
}

/// `N: R1=… ` or `N: safe` → (N, state).
fn state_line(line: &str) -> Option<(u32, &str)> {
    let (index, rest) = line.split_once(": ")?;
    let index: u32 = index.parse().ok()?;
    let rest = rest.trim();
    (rest.starts_with('R') || rest.starts_with("frame") || rest.starts_with("fp") || rest == "safe")
        .then_some((index, rest))
}

/// `from A to B: state`, or `A to B: state` as pasted with its start cut.
fn pop_line(line: &str) -> Option<(u32, u32, &str)> {
    let rest = line.strip_prefix("from ").unwrap_or(line);
    let (from, rest) = rest.split_once(" to ")?;
    let (to, state) = rest.split_once(':').unwrap_or((rest, ""));
    Some((
        from.trim().parse().ok()?,
        to.trim().parse().ok()?,
        state.trim(),
    ))
}

/// `; text @ file:line`, or `; text` from kernels that print no location.
fn annotation_line(line: &str) -> Option<Annotation> {
    let rest = line.strip_prefix(';')?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    if let Some((text, location)) = rest.rsplit_once(" @ ") {
        if let Some((file, number)) = location.rsplit_once(':') {
            if let Ok(number) = number.trim().parse() {
                return Some(Annotation {
                    text: text.trim().to_owned(),
                    file: Some(file.to_owned()),
                    line: Some(number),
                });
            }
        }
    }
    Some(Annotation {
        text: rest.trim().to_owned(),
        file: None,
        line: None,
    })
}

/// A state line without an index, as kernels before 5.10 print one after
/// a branch (` R0=inv R6=ctx R10=fp`), or a line of a state that a poster
/// re-wrapped (`fp-16=mmmmmmmm`).
fn bare_state_line(line: &str) -> bool {
    let Some((token, _)) = line.split_once('=') else {
        return false;
    };
    let reg = token
        .strip_prefix('R')
        .map(|r| r.split('_').next().unwrap_or(r))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let slot = token
        .strip_prefix("fp-")
        .map(|s| s.split('_').next().unwrap_or(s))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    reg || slot
}

/// An instruction line glued to the end of a state line (`… fp-8=ctx
/// 2592: (79) r7 = …`): the state and the instruction line.
fn split_glued_insn(state: &str) -> (&str, Option<&str>) {
    for (at, _) in state.match_indices(": (") {
        let head = &state[..at];
        let start = head.rfind(' ').map_or(0, |s| s + 1);
        let index = &head[start..];
        if start > 0
            && !index.is_empty()
            && index.bytes().all(|b| b.is_ascii_digit())
            && insn_line(&state[start..]).is_some()
        {
            return (state[..start].trim_end(), Some(&state[start..]));
        }
    }
    (state, None)
}

/// A row of the live-registers table (`0: .1........ (61) r6 = …`).
fn live_regs_row(line: &str) -> bool {
    line.split_once(": ").is_some_and(|(n, rest)| {
        n.parse::<u32>().is_ok()
            && rest.split(' ').next().is_some_and(|col| {
                !col.is_empty() && col.bytes().all(|b| b == b'.' || b.is_ascii_digit())
            })
    })
}

/// A line that continues the error before it rather than starting another.
fn continues_error(line: &str, first: &str) -> bool {
    line.contains("offset is outside of the packet")
        || line.contains("value is outside of the allowed memory range")
        || line.contains("would lead to reference leak")
        || line.starts_with("Unreleased reference") && first.starts_with("Unreleased reference")
}

/// Lines that belong to the verifier's commentary, not to an error.
fn is_noise(line: &str) -> bool {
    // `frame1: …` states, but not `frame pointer is read only`.
    if line
        .strip_prefix("frame")
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    {
        return true;
    }
    const PREFIXES: &[&str] = &[
        "func#",
        "mark_precise:",
        "last_idx ",
        "parent ",
        "regs=",
        "caller:",
        "callee:",
        "returning from callee:",
        "to caller at",
        "propagating",
        "Func#",
        "Validating ",
        "Live regs before insn:",
        "-- BEGIN PROG LOAD LOG --",
        "-- END PROG LOAD LOG --",
        "Verifier analysis:",
        "Error fetching program/map!",
        "reg type unsupported for arg#",
        "btf_vmlinux is malformed",
        "stack depth",
        "verification time",
        "processed ",
        "Unrecognized arg#",
        "safe",
        "live regs",
        "bpf_prog_load",
        "old state:",
        "cur state:",
        "new state:",
        "changing",
        "insn ",
        "jmp ",
    ];
    line.is_empty() || PREFIXES.iter().any(|p| line.starts_with(p))
}

/// A helper call the log names by number only (`call 14`, kernels before
/// 4.16; `call unknown#182`), with its name from the helper table.
fn name_call(effect: Effect) -> Effect {
    match effect {
        Effect::Call { name, id } => {
            let number = id.map(i64::from).or_else(|| name.parse().ok());
            let known = number
                .filter(|_| name == "unknown" || name.parse::<i64>().is_ok())
                .and_then(helper_name);
            match known {
                Some(helper) => Effect::Call {
                    name: helper.to_owned(),
                    id: number.and_then(|n| i32::try_from(n).ok()),
                },
                None => Effect::Call { name, id },
            }
        }
        other => other,
    }
}

/// The registers of a state string (`R0_w=map_value_or_null(id=1,…) R10=fp0`),
/// each with its value. Tokens that are no register (`fp-8=…`) are skipped.
fn registers(state: &str) -> impl Iterator<Item = (u8, RegState)> + '_ {
    state.split_whitespace().filter_map(|token| {
        let (reg, value) = token.split_once('=')?;
        let reg = reg.strip_prefix('R')?;
        let reg: u8 = reg.split('_').next()?.parse().ok()?;
        Some((reg, RegState::parse(value)))
    })
}

impl LogParser {
    /// A parser with nothing read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a register state. `full` states (at a pop, or a `N: R…`
    /// line) replace what is known; the state after an instruction lists
    /// only the registers it changed.
    /// `insn` is `None` for a state the log ties to no instruction (one
    /// before the first instruction a pasted fragment shows).
    fn note_state(&mut self, insn: Option<u32>, state: &str, full: bool) {
        if state.is_empty() || state == "safe" {
            return;
        }
        if full {
            self.log.reg_values.clear();
        }
        for (reg, value) in registers(state) {
            // Values that can be NULL or hold a reference: where each id
            // first appears.
            if let (Some(id), Some(insn)) = (value.identity().filter(|_| value.is_tracked()), insn)
            {
                self.log.births.entry(id).or_insert(Birth {
                    insn,
                    reg,
                    kind: value.name.clone(),
                });
            }
            self.log.reg_values.insert(reg, value);
        }
        self.log.last_state = Some(state.to_owned());
        self.log.last_state_insn = insn;
        if state.contains("id=") {
            self.log.has_ids = true;
        }
    }

    fn push_step(&mut self, step: Step) {
        if self.log.path.len() == PATH_WINDOW {
            self.log.path.pop_front();
            self.log.path_clipped = true;
        }
        self.log.path.push_back(step);
    }

    fn header_line(&mut self, line: &str) -> bool {
        if let Some(rest) = line.strip_prefix("Prog section '") {
            // iproute2 prints a header for each program it tried.
            self.log.messages.clear();
            self.error_closed = false;
            let (section, rest) = rest.split_once('\'').unwrap_or((rest, ""));
            let header = self.log.header.get_or_insert_with(Default::default);
            header.section = Some(section.to_owned());
            header.error = rest
                .trim()
                .strip_prefix("rejected:")
                .map(|e| e.trim().trim_end_matches('!').to_owned());
            return true;
        }
        let Some(field) = line.trim_start().strip_prefix("- ") else {
            return false;
        };
        let Some(header) = self.log.header.as_mut() else {
            return false;
        };
        let (key, value) = field.split_once(':').unwrap_or((field, ""));
        let value = value.trim();
        match key.trim() {
            "Type" => header.prog_type = value.parse().ok(),
            "Instructions" => {
                header.insns = value.split_whitespace().next().and_then(|v| v.parse().ok())
            }
            "License" => header.license = Some(value.to_owned()),
            _ => return false,
        }
        true
    }

    /// Reads one line (without its newline).
    pub fn feed_line(&mut self, raw: &str) {
        self.log.lines += 1;
        self.log.bytes += raw.len() as u64 + 1;
        self.last_was_message = false;
        let line = match self.unwrapper.unwrap(raw) {
            Wrapped::Log(line) => line,
            Wrapped::Start(rest) => {
                // A new log: what came before was no error of it.
                self.log.messages.clear();
                self.error_closed = false;
                if rest.is_empty() {
                    return;
                }
                rest
            }
            Wrapped::End => {
                self.close_error();
                return;
            }
            Wrapped::Skip => return,
        };
        if self.preamble_line(line) {
            return;
        }
        if let Some(insn) = insn_line(line) {
            self.log.recognized += 1;
            self.insn_seen(&insn);
            return;
        }
        if let Some(annotation) = annotation_line(line) {
            self.pending_annotation = Some(annotation);
            return;
        }
        if let Some((from, to, state)) = pop_line(line) {
            self.log.recognized += 1;
            self.push_step(Step::Pop { from, to });
            self.log.messages.clear();
            self.error_closed = false;
            let (state, glued) = split_glued_insn(state);
            self.note_state(Some(to), state, true);
            if let Some(insn) = glued.and_then(insn_line) {
                self.insn_seen(&insn);
            }
            return;
        }
        if let Some((index, state)) = state_line(line) {
            self.log.recognized += 1;
            let (state, glued) = split_glued_insn(state);
            self.note_state(Some(index), state, true);
            if let Some(insn) = glued.and_then(insn_line) {
                self.insn_seen(&insn);
            }
            return;
        }
        if bare_state_line(line) {
            self.log.recognized += 1;
            let (state, glued) = split_glued_insn(line);
            // Old kernels print the whole state, but a re-wrapped line
            // holds only part of one.
            let full = state.starts_with("R0");
            self.note_state(self.log.last_insn, state, full);
            if let Some(insn) = glued.and_then(insn_line) {
                self.insn_seen(&insn);
            }
            return;
        }
        if self.stats_line(line) {
            self.log.recognized += 1;
            self.close_error();
            return;
        }
        if line.trim().is_empty() {
            // The kernel's error lines come together: a blank line after
            // them is the loader's.
            self.close_error();
            return;
        }
        // Anything else after the last instruction is the error: the kernel
        // prints its verdict last.
        if self.error_closed || is_noise(line) {
            return;
        }
        let line = line.trim();
        let first = self.log.messages.first().map_or("", String::as_str);
        if !self.log.messages.is_empty() && !continues_error(line, first) {
            // A later message is the verdict; the earlier one was the
            // verifier's commentary on the way (or a loader's line).
            self.log.messages.clear();
        }
        if self.log.messages.len() < MAX_MESSAGE_LINES {
            self.log.messages.push(line.to_owned());
            self.last_was_message = true;
        }
    }

    /// The error read so far, if any, is complete.
    fn close_error(&mut self) {
        if !self.log.messages.is_empty() {
            self.error_closed = true;
        }
    }

    /// Lines around the instructions: a loader's chatter and header, the
    /// live-registers table, `func#N`. Whether `line` was one.
    fn preamble_line(&mut self, line: &str) -> bool {
        // Loader chatter around the log.
        if line.starts_with("libbpf: ")
            || line.starts_with("Warning: bpftool")
            || line.starts_with("If it used to work")
        {
            return true;
        }
        if self.header_line(line) {
            self.log.recognized += 1;
            return true;
        }
        if self.in_live_regs {
            // `      0: .1........ (61) r6 = …` until the block ends.
            if live_regs_row(line) {
                return true;
            }
            self.in_live_regs = false;
        }
        if line.starts_with("Live regs before insn:") {
            self.in_live_regs = true;
            self.log.recognized += 1;
            return true;
        }
        if line.starts_with("func#") {
            self.log.recognized += 1;
            return true;
        }
        false
    }

    /// An instruction the verifier processed, with the state after it.
    fn insn_seen(&mut self, insn: &InsnLine<'_>) {
        let index = insn.index;
        self.log
            .insns
            .entry(index)
            .or_insert_with(|| insn.text.to_owned());
        self.log
            .effects
            .entry(index)
            .or_insert_with(|| name_call(Effect::parse(insn.text)));
        self.log.opcodes.insert(index, insn.op);
        if let Some(annotation) = self.pending_annotation.take() {
            self.log.annotations.entry(index).or_insert(annotation);
        }
        self.log.last_insn = Some(index);
        self.log.messages.clear();
        self.error_closed = false;
        self.push_step(Step::Insn(index));
        if let Some(state) = insn.state.filter(|s| !s.starts_with('@')) {
            self.log.has_states = true;
            self.note_state(Some(index), state, false);
        }
        if let Some((next, state)) = insn.next_state {
            self.note_state(Some(next), state, true);
        }
    }

    /// The statistics lines (`processed N insns …`, `verification time`,
    /// `stack depth`). Whether `line` was one.
    fn stats_line(&mut self, line: &str) -> bool {
        if let Some(rest) = line.strip_prefix("processed ") {
            let stats = self.log.stats.get_or_insert_with(Default::default);
            stats.insns_processed = parse_u64_after(rest, "").unwrap_or(0);
            stats.insn_limit = parse_u64_after(rest, "(limit");
            stats.max_states_per_insn = parse_u64_after(rest, "max_states_per_insn");
            stats.total_states = parse_u64_after(rest, "total_states");
            stats.peak_states = parse_u64_after(rest, "peak_states");
            stats.mark_read = parse_u64_after(rest, "mark_read");
        } else if let Some(rest) = line.strip_prefix("verification time ") {
            self.log
                .stats
                .get_or_insert_with(Default::default)
                .verification_time_usec = parse_u64_after(rest, "");
        } else if let Some(rest) = line.strip_prefix("stack depth ") {
            self.log
                .stats
                .get_or_insert_with(Default::default)
                .stack_depth = rest
                .split('+')
                .filter_map(|d| d.trim().parse().ok())
                .collect();
        } else {
            return false;
        }
        true
    }

    /// Marks whether the input's last line had its newline; a log cut in
    /// the middle of a line is truncated.
    pub fn set_ended_with_newline(&mut self, ended: bool) {
        self.ended_with_newline = ended;
    }

    /// The parsed log.
    pub fn finish(mut self) -> ParsedLog {
        let log = &mut self.log;
        // A cut mid-line leaves half a line; it is not an error message
        // (a loader's line cut after a complete error leaves the error).
        if !self.ended_with_newline && log.lines > 0 {
            log.truncated = true;
            if log.stats.is_none() && self.last_was_message {
                log.messages.clear();
            }
        }
        if log.messages.is_empty() && log.stats.is_none() {
            log.truncated = true;
        }
        self.log
    }
}

/// Parses a whole log from a reader, line by line, in constant memory
/// (beyond what [`ParsedLog`] keeps), and makes sure it is one: text with
/// at least one line in the verifier's syntax or a message a diagnosis
/// knows. An empty log (or blank lines only) is not refused: it is a log
/// with nothing in it, reported as truncated.
///
/// # Errors
///
/// [`LogError`] for read errors, binary content, text that is no verifier
/// log and input over [`MAX_LOG_BYTES`].
pub fn parse_reader(reader: impl BufRead) -> Result<ParsedLog, LogError> {
    let mut lines = LogLines::new(reader);
    let mut parser = LogParser::new();
    let mut ended_with_newline = true;
    let mut blank = true;
    while let Some(line) = lines.next_line()? {
        ended_with_newline = line.newline;
        blank &= line.text.trim().is_empty();
        parser.feed_line(&line.text);
    }
    parser.set_ended_with_newline(ended_with_newline);
    let log = parser.finish();
    let known_message =
        super::diagnose::classify(&log.messages, None) != super::diagnose::Kind::Unknown;
    if !blank && log.recognized == 0 && !known_message {
        return Err(LogError::NotALog(
            "no line looks like a verifier instruction, state, statistic or error message"
                .to_owned(),
        ));
    }
    Ok(log)
}

/// Parses a log held in memory, as the kernel gave it: everything is taken
/// for log text, up to a NUL.
pub fn parse_str(text: &str) -> ParsedLog {
    let text = text.split('\0').next().unwrap_or_default();
    let mut parser = LogParser::new();
    for line in text.split_inclusive('\n') {
        parser.feed_line(line.strip_suffix('\n').unwrap_or(line));
    }
    parser.set_ended_with_newline(text.is_empty() || text.ends_with('\n'));
    parser.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH_LOG: &str = "\
func#0 @0
0: R1=ctx() R10=fp0
; void *data = (void *)(long)ctx->data; @ hash.c:14
0: (61) r6 = *(u32 *)(r1 +0)          ; R1=ctx() R6=pkt(r=0)
; void *data_end = (void *)(long)ctx->data_end; @ hash.c:13
1: (61) r7 = *(u32 *)(r1 +4)          ; R1=ctx() R7=pkt_end()
2: (b7) r1 = 0                        ; R1=0
; __u32 counter_idx = 0; @ hash.c:15
3: (63) *(u32 *)(r10 -4) = r1
mark_precise: frame0: last_idx 3 first_idx 0 subseq_idx -1
4: R1=0 R10=fp0 fp-8=0000????
4: (bf) r2 = r10                      ; R2=fp0 R10=fp0
5: (07) r2 += -4                      ; R2=fp-4
; struct counters *cnt = bpf_map_lookup_elem(&counters, &counter_idx); @ hash.c:16
6: (18) r1 = 0xffff8881025b8c00       ; R1=map_ptr(map=counters,ks=4,vs=16)
8: (85) call bpf_map_lookup_elem#1    ; R0=map_value_or_null(id=1,map=counters,ks=4,vs=16)
9: (b7) r1 = 1                        ; R1=1
; __sync_fetch_and_add(&cnt->packets, 1); @ hash.c:17
10: (db) lock *(u64 *)(r0 +0) += r1
R0 invalid mem access 'map_value_or_null'
verification time 335 usec
stack depth 8
processed 10 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
";

    #[test]
    fn a_rejection_with_states() {
        let log = parse_str(HASH_LOG);
        assert_eq!(log.accepted(), Some(false));
        assert!(!log.truncated);
        assert_eq!(log.error_insn(), Some(10));
        assert_eq!(
            log.message(),
            Some("R0 invalid mem access 'map_value_or_null'")
        );
        assert_eq!(log.insns[&8], "call bpf_map_lookup_elem#1");
        assert_eq!(log.opcodes[&10], 0xdb);
        assert_eq!(log.annotations[&10].line, Some(17));
        assert_eq!(log.annotations[&6].file.as_deref(), Some("hash.c"));
        assert_eq!(
            log.births[&1],
            Birth {
                insn: 8,
                reg: 0,
                kind: "map_value_or_null".into()
            }
        );
        let stats = log.stats.unwrap();
        assert_eq!(stats.insns_processed, 10);
        assert_eq!(stats.insn_limit, Some(1_000_000));
        assert_eq!(stats.verification_time_usec, Some(335));
        assert_eq!(stats.stack_depth, vec![8]);
        assert!(log.has_states && log.has_ids);
    }

    #[test]
    fn the_tutorial_log_through_iproute2() {
        let text = "Prog section 'stats' rejected: Permission denied (13)!
 - Type:         6
 - Instructions: 15 (0 over limit)
 - License:      GPL

Verifier analysis:

0: (61) r6 = *(u32 *)(r1 +0)
1: (61) r7 = *(u32 *)(r1 +4)
2: (b7) r1 = 0
3: (63) *(u32 *)(r10 -4) = r1
4: (bf) r2 = r10
5: (07) r2 += -4
6: (18) r1 = 0xffff9c97f6e41a00
8: (85) call bpf_map_lookup_elem#1
9: (b7) r1 = 1
10: (db) lock *(u64 *)(r0 +0) += r1
R0 invalid mem access 'map_value_or_null'

Error fetching program/map!
";
        let log = parse_str(text);
        assert_eq!(log.accepted(), Some(false));
        assert!(!log.truncated, "an old kernel prints no stats on error");
        assert_eq!(log.error_insn(), Some(10));
        assert_eq!(
            log.messages,
            vec!["R0 invalid mem access 'map_value_or_null'"]
        );
        let header = log.header.unwrap();
        assert_eq!(header.section.as_deref(), Some("stats"));
        assert_eq!(header.error.as_deref(), Some("Permission denied (13)"));
        assert_eq!(
            (header.prog_type, header.insns, header.license.as_deref()),
            (Some(6), Some(15), Some("GPL"))
        );
        assert!(!log.has_states);
    }

    #[test]
    fn a_log_cut_mid_line_is_truncated_not_an_error() {
        let cut = &HASH_LOG[..HASH_LOG.find("10: (db)").unwrap() + 9];
        let log = parse_str(cut);
        assert!(log.truncated);
        assert_eq!(log.accepted(), None);
        assert!(log.messages.is_empty());
        let cut_at_line = &HASH_LOG[..HASH_LOG.find("R0 invalid").unwrap()];
        let log = parse_str(cut_at_line);
        assert!(log.truncated);
        assert_eq!(log.last_insn, Some(10));
    }

    #[test]
    fn garbage_is_truncated_not_a_panic() {
        for text in [
            "",
            "\n\n",
            "hello\nworld",
            "\u{0}\u{ff}garbage",
            "12: (zz) what",
            "from x to y:",
            "; @ :",
            "processed",
        ] {
            let log = parse_str(text);
            let _ = (log.accepted(), log.error_insn(), log.message());
        }
        let log = parse_str("not a verifier log at all\n");
        assert_eq!(
            log.accepted(),
            Some(false),
            "unknown text after no instruction is still reported"
        );
        assert_eq!(log.error_insn(), None);
    }

    fn lines(bytes: &[u8]) -> Result<Vec<Line>, LogError> {
        let mut reader = LogLines::new(bytes);
        std::iter::from_fn(|| reader.next_line().transpose()).collect()
    }

    #[test]
    fn a_nul_ends_the_log_and_other_control_bytes_are_binary() {
        let got = lines(b"0: (b7) r0 = 0\r\n1: (95) exit\n\0\0\0garbage").unwrap();
        assert_eq!(
            got.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["0: (b7) r0 = 0\r", "1: (95) exit"]
        );
        let cut = lines(b"0: (b7) r0\0").unwrap();
        assert_eq!(cut.len(), 1);
        assert!(!cut[0].newline, "a line cut by the NUL");
        for (bytes, offset) in [(&b"\0log"[..], 0), (b"ab\x01c\n", 2), (b"ok\n\x7fELF", 3)] {
            match lines(bytes) {
                Err(LogError::NotALog(why)) => {
                    assert!(why.ends_with(&format!("at offset {offset}")), "{why}")
                }
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
        // Tabs and bytes above 0x7f are text.
        assert_eq!(
            lines("\tr1 = 0 ; ü\n".as_bytes()).unwrap()[0].text,
            "\tr1 = 0 ; ü"
        );
    }

    #[test]
    fn a_line_longer_than_the_limit_is_clipped() {
        let mut long = vec![b'x'; MAX_LINE_BYTES * 3];
        long.extend_from_slice(b"\nnext\n");
        // Through a small buffer, so the line spans many reads.
        let got = {
            let mut reader = LogLines::new(io::BufReader::with_capacity(100, &long[..]));
            std::iter::from_fn(|| reader.next_line().transpose())
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        };
        assert_eq!(got[0].text.len(), MAX_LINE_BYTES);
        assert_eq!(got[1].text, "next");
    }

    #[test]
    fn text_without_a_verifier_line_is_not_a_log() {
        for text in [
            "Dear reader,\nthis is a letter.\n",
            "12: (zz) what\nfrom x to y:\n",
        ] {
            let err = parse_reader(text.as_bytes()).unwrap_err();
            assert!(matches!(err, LogError::NotALog(_)), "{text:?}: {err}");
        }
        // Nothing at all is a log with nothing in it.
        for text in ["", "\n\n"] {
            assert!(parse_reader(text.as_bytes()).unwrap().truncated);
        }
        // One known error message is enough, as are instructions alone.
        let message = parse_reader(&b"R0 invalid mem access 'map_value_or_null'\n"[..]).unwrap();
        assert_eq!(message.accepted(), Some(false));
        let log = parse_reader(HASH_LOG.as_bytes()).unwrap();
        assert_eq!(log.error_insn(), Some(10));
        assert!(log.recognized > 10);
    }

    #[test]
    fn a_state_glued_to_a_jump_is_split_off() {
        let log = parse_str(
            "0: (61) r2 = *(u32 *)(r1 +16)
1: (55) if r2 != 0x0 goto pc-2 0: R1=ctx() R2=scalar(smin=umin=umin32=1) R10=fp0
0: (61) r2 = *(u32 *)(r1 +16)
1: (55) if r2 != 0x0 goto pc-2 ;  @ loop.c:10
infinite loop detected at insn 0
cur state: R1=ctx() R2=scalar() R10=fp0
old state: R1=ctx() R2=scalar() R10=fp0
",
        );
        assert_eq!(log.insns[&1], "if r2 != 0x0 goto pc-2");
        assert_eq!(log.messages, vec!["infinite loop detected at insn 0"]);
        assert!(log.reg_values.contains_key(&2));
    }

    #[test]
    fn wrapped_logs_give_the_verifiers_own_error() {
        // aya: the log glued to `Verifier output:`, a decoy before the
        // error, the whole log again in the `Caused by:` chain.
        let aya = "Error: the BPF_PROG_LOAD syscall failed. Verifier output: R1 type=ctx expected=fp
reg type unsupported for arg#0 function is_iter_type#258
math between map_value pointer and register with unbounded min value is not allowed
verification time 20319 usec
processed 1039 insns (limit 1000000) max_states_per_insn 2 total_states 77 peak_states 77 mark_read 55


Caused by:
    0: the BPF_PROG_LOAD syscall failed. Verifier output: R1 type=ctx expected=fp
       math between map_value pointer and register with unbounded min value is not allowed
       processed 1039 insns (limit 1000000) max_states_per_insn 2 total_states 77 peak_states 77 mark_read 55
       
    1: Invalid argument (os error 22)
";
        let log = parse_str(aya);
        assert_eq!(
            log.messages,
            ["math between map_value pointer and register with unbounded min value is not allowed"]
        );
        // ctest's prefix, a two-line error, then the test's own lines.
        let ctest = "5: Test command: /usr/bin/prog
5: 0: (61) r1 = *(u32 *)(r1 +0)
5: 1: (71) r1 = *(u8 *)(r1 +23)
5: invalid access to packet, off=23 size=1, R1(id=0,off=23,r=0)
5: R1 offset is outside of the packet
5: Exception: load failed
";
        let log = parse_str(ctest);
        assert_eq!(log.error_insn(), Some(1));
        assert_eq!(
            log.messages,
            [
                "invalid access to packet, off=23 size=1, R1(id=0,off=23,r=0)",
                "R1 offset is outside of the packet"
            ]
        );
        // veristat, and journald with a state line between.
        let veristat = "PROCESSING x.bpf.o/prog, DURATION US: 12, VERDICT: failure, VERIFIER LOG:
0: (79) r1 = *(u64 *)(r10 -8)
invalid read from stack R10 off=-8 size=8
processed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
File        Program  Verdict
";
        let log = parse_str(veristat);
        assert_eq!(log.messages, ["invalid read from stack R10 off=-8 size=8"]);
        let journald = "Apr 01 10:41:53 host sysmon[10491]: 2150: (73) *(u8 *)(r1 +4095) = r2
Apr 01 10:41:53 host sysmon[10491]:  R1_w=map_value(id=0,off=0,ks=4,vs=8192,smin_value=-4095) R2_w=inv47
Apr 01 10:41:53 host sysmon[10491]: R1 unbounded memory access, make sure to bounds check any such access
";
        let log = parse_str(journald);
        assert_eq!(log.error_insn(), Some(2150));
        assert_eq!(
            log.message(),
            Some("R1 unbounded memory access, make sure to bounds check any such access")
        );
        assert_eq!(
            log.reg_values[&1].region(),
            Some(crate::verifier::regstate::Region::MapValue)
        );
    }

    #[test]
    fn backtracking_and_glued_lines_are_no_instructions() {
        let log = parse_str(
            "578: (bf) r1 = r8
579: (79) r2 = *(u64 *)(r10 -32)
580: (0f) r1 += r2
last_idx 580 first_idx 578
regs=4 stack=0 before 579: (79) r2 = *(u64 *)(r10 -32)
regs=0 stack=8 before 578: (bf) r1 = r8
 R0=inv(id=0) R1=inv3 R8_r=map_value(id=0,off=0,ks=4,vs=262144,imm=0) R10=fp0
parent already had regs=0 stack=0 marks
math between map_value pointer and register with unbounded min value is not allowed
",
        );
        assert_eq!(log.error_insn(), Some(580));
        assert_eq!(log.path.len(), 3);
        // `from` cut off, and the next instruction glued to the state.
        let log = parse_str(
            "1256 to 2592: R8=inv(id=0) R10=fp0 fp-248=map_value 2592: (79) r7 = *(u64 *)(r10 -248)
2595: (71) r4 = *(u8 *)(r8 +59)
R8 invalid mem access 'inv'
",
        );
        assert_eq!(log.insns[&2592], "r7 = *(u64 *)(r10 -248)");
        assert_eq!(log.error_insn(), Some(2595));
        // Helpers by number get their names.
        let log = parse_str("0: (85) call 14\n1: (85) call unknown#182\n");
        assert!(
            matches!(&log.effects[&0], Effect::Call { name, id: Some(14) } if name == "bpf_get_current_pid_tgid")
        );
        assert!(matches!(&log.effects[&1], Effect::Call { name, .. } if name == "bpf_strncmp"));
    }

    #[test]
    fn an_accepted_log() {
        let log = parse_str("0: (b7) r0 = 2\n1: (95) exit\nprocessed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n");
        assert_eq!(log.accepted(), Some(true));
        assert_eq!(log.error_insn(), None);
    }

    #[test]
    fn pops_and_live_regs_are_understood() {
        let text = "Live regs before insn:
      0: .1........ (61) r6 = *(u32 *)(r1 +0)
      1: .1....6... (95) exit
0: (b7) r0 = 0
1: (15) if r0 == 0x0 goto pc+1
2: (95) exit
from 1 to 3: R0=map_value_or_null(id=4,map=m,ks=4,vs=8) R10=fp0
3: (79) r1 = *(u64 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
";
        let log = parse_str(text);
        let steps: Vec<Step> = log.path.iter().copied().collect();
        assert_eq!(
            steps,
            vec![
                Step::Insn(0),
                Step::Insn(1),
                Step::Insn(2),
                Step::Pop { from: 1, to: 3 },
                Step::Insn(3)
            ]
        );
        assert_eq!(log.births[&4].insn, 3);
        assert_eq!(
            log.insns.len(),
            4,
            "the live-regs block is not instructions"
        );
    }

    #[test]
    fn reading_is_streaming() {
        // 200k repetitions of the same instructions: what is kept stays small.
        let mut text = String::new();
        for _ in 0..20_000 {
            for i in 0..10 {
                text.push_str(&format!(
                    "{i}: (07) r1 += 1                  ; R1_w=scalar()\n"
                ));
            }
        }
        let log = parse_str(&text);
        assert_eq!(log.insns.len(), 10);
        assert_eq!(log.path.len(), PATH_WINDOW);
        assert!(log.path_clipped);
        assert!(log.truncated);
    }
}
