//! What the rules know about a rejection: everything read once from the
//! log (and the program, when the object is at hand) before a rule
//! explains it.

use super::{
    messages::Messages,
    trace::{ScalarBirth, Trace},
    ErrorSite, Input, Origin, Program, SourceRef, Sources,
};
use crate::verifier::{
    effect::{Effect, Place},
    log::{ParsedLog, Step},
    regstate::{RegState, Region},
};

/// A rejection, as the rules see it.
pub struct Facts<'a> {
    /// The parsed log.
    pub log: &'a ParsedLog,
    sources: &'a mut dyn Sources,
    /// The program, when the object is at hand.
    pub program: Option<Program<'a>>,
    /// The error.
    pub messages: Messages,
    /// The failing instruction.
    pub error_insn: Option<u32>,
    /// What it does.
    pub error_effect: Option<Effect>,
    error_text: Option<String>,
    error_source: Option<SourceRef>,
    /// Where the error is, for sentences: its source line, or `insn N`.
    pub here: String,
    /// The register the error is about: the one the message names, or
    /// the base of the failing memory access.
    pub reg: Option<u8>,
    /// The region the register the message names points into.
    pub region: Option<Region>,
    /// The backward walk from the error, following `reg`.
    pub trace: Option<Trace>,
}

impl<'a> Facts<'a> {
    /// Reads what the rules need; `None` when the log shows no rejection.
    pub fn gather(input: Input<'a>) -> Option<Self> {
        let Input {
            log,
            sources,
            program,
        } = input;
        log.message()?;
        let mut facts = Self {
            log,
            sources,
            program,
            messages: Messages::new(&log.messages),
            error_insn: None,
            error_effect: None,
            error_text: None,
            error_source: None,
            here: String::new(),
            reg: None,
            region: None,
            trace: None,
        };
        facts.locate(log.error_insn());
        let named = facts.messages.named_reg();
        facts.region = named
            .and_then(|r| log.reg_values.get(&r))
            .and_then(RegState::region);
        // `math between map_value pointer and register with unbounded min
        // value`: the register is the scalar operand.
        let operand = match facts.error_effect {
            Some(Effect::Alu { src: Some(src), .. }) if facts.messages.has("register") => Some(src),
            _ => None,
        };
        facts.reg = named
            .or_else(|| facts.error_effect.as_ref().and_then(Effect::deref_base))
            .or(operand);
        let end = log.path.len().saturating_sub(1);
        facts.trace = facts.reg.map(|r| Trace::back(log, end, Place::Reg(r)));
        Some(facts)
    }

    /// Makes `insn` the failing instruction (a rule may know better than
    /// the log, which for some errors names none).
    pub fn locate(&mut self, insn: Option<u32>) {
        self.error_insn = insn;
        self.error_text = insn.and_then(|i| self.text_of(i));
        self.error_effect = insn.and_then(|i| self.effect_of(i));
        self.error_source = insn.and_then(|i| self.sources.source(i));
        self.here = at(self.error_source.as_ref(), insn.unwrap_or(0));
    }

    /// The failing instruction, for the report.
    pub fn site(&self) -> ErrorSite {
        ErrorSite {
            insn: self.error_insn,
            text: self.error_text.clone(),
            message: self.messages.first().to_owned(),
            source: self.error_source.clone(),
        }
    }

    /// The text of instruction `insn`: from the log, else the program.
    pub fn text_of(&self, insn: u32) -> Option<String> {
        self.log
            .insns
            .get(&insn)
            .cloned()
            .or_else(|| self.program.and_then(|p| p.text(insn)))
    }

    /// What instruction `insn` does: from the log, else the program.
    pub fn effect_of(&self, insn: u32) -> Option<Effect> {
        self.log
            .effects
            .get(&insn)
            .cloned()
            .or_else(|| self.program.and_then(|p| p.effect(insn)))
    }

    /// The helper instruction `insn` calls, if it is a call.
    pub fn call_name(&self, insn: u32) -> Option<String> {
        match self.effect_of(insn)? {
            Effect::Call { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The origin at `insn`, without a path.
    pub fn origin_at(&mut self, insn: u32) -> Origin {
        self.origin(insn, Vec::new())
    }

    /// The origin at `insn`, with the path of the backward walk.
    pub fn origin_via_trace(&mut self, insn: u32) -> Origin {
        let path = self.trace.as_ref().map(Trace::path).unwrap_or_default();
        self.origin(insn, path)
    }

    /// Where the backward walk found the value born, if it did.
    pub fn traced_origin(&mut self) -> Option<Origin> {
        let insn = self.trace.as_ref()?.origin?;
        Some(self.origin_via_trace(insn))
    }

    /// Where the value the error is about became a plain number, and how.
    pub fn scalar_origin(&mut self) -> Option<(Origin, ScalarBirth)> {
        let (insn, birth) = self.trace.as_ref()?.scalar_birth()?;
        Some((self.origin_via_trace(insn), birth))
    }

    /// The backward walk for `reg` from just before the latest step at
    /// instruction `insn` (what a register held when `insn` ran).
    pub fn trace_before(&self, insn: u32, reg: u8) -> Option<Trace> {
        let pos = self.log.path.iter().rposition(|s| *s == Step::Insn(insn))?;
        Some(Trace::back(self.log, pos, Place::Reg(reg)))
    }

    /// The backward walk for a stack slot from the error.
    pub fn trace_slot(&self, slot: i32) -> Trace {
        let end = self.log.path.len().saturating_sub(1);
        Trace::back(self.log, end, Place::Stack(slot))
    }

    /// Where the verifier's `id` for the value says it was born.
    pub fn id_origin(&self) -> Option<u32> {
        let id = self.log.reg_values.get(&self.reg?)?.identity()?;
        self.log.births.get(&id).map(|b| b.insn)
    }

    fn origin(&mut self, insn: u32, path: Vec<String>) -> Origin {
        Origin {
            insn,
            text: self.text_of(insn).unwrap_or_default(),
            source: self.sources.source(insn),
            path,
        }
    }
}

/// `file:line` of `source`, or `insn N`.
pub fn at(source: Option<&SourceRef>, insn: u32) -> String {
    match source {
        Some(s) => s.to_string(),
        None => format!("insn {insn}"),
    }
}

/// Whether the source is Rust (aya), whose fixes are written differently.
pub fn is_rust(source: Option<&SourceRef>) -> bool {
    source.is_some_and(|s| s.file.ends_with(".rs"))
}
