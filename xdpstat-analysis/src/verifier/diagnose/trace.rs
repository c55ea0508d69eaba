//! The backward walk: from the failing instruction along the path the
//! verifier took, following a value through moves and stack spills to the
//! instruction that produced it.

use std::{collections::VecDeque, fmt};

use crate::verifier::{
    effect::{changes_packet_data, returns_or_null, Effect, Place},
    log::{ParsedLog, Step},
};

/// What a backward walk found.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The instruction where the value was born, if found.
    pub origin: Option<u32>,
    /// What kind of birth it was.
    pub birth: Option<Birth>,
    /// The places the value went through, newest first.
    pub hops: Vec<Hop>,
    /// A packet-changing helper call the walk crossed, newest first.
    pub crossed_packet_change: Option<u32>,
    /// The walk ran off the remembered path.
    pub ran_out: bool,
}

/// How a value was born.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Birth {
    /// The result of this helper (r0 after a call).
    Call(String),
    /// Loaded from memory other than the stack.
    Load {
        /// The base register.
        base: u8,
        /// The offset.
        off: i32,
    },
    /// A constant, or a constant stored to the stack.
    Const,
    /// r1–r5 after a call to this helper, which leaves them unreadable.
    Clobbered(String),
    /// Anything else that writes it.
    Other,
}

/// How a plain number (a scalar) came to be where a pointer was needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScalarBirth {
    /// Loaded from stack slot `slot`.
    Fill {
        /// The slot's offset from r10.
        slot: i32,
    },
    /// Loaded from memory other than the stack.
    Load {
        /// The base register.
        base: u8,
        /// The offset.
        off: i32,
    },
    /// Returned by (or left behind by) this helper.
    Call(String),
    /// Set to a constant.
    Const,
    /// Arithmetic on a pointer the verifier could not follow.
    Arithmetic,
}

/// One step of the value's way to the error, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// `rD = rS` at `at`.
    Move { dst: u8, src: u8, at: u32 },
    /// `rD` loaded from stack slot `slot` at `at`.
    Fill { dst: u8, slot: i32, at: u32 },
    /// Stack slot `slot` written from `rS` at `at`.
    Spill { slot: i32, src: u8, at: u32 },
    /// Arithmetic on `reg` at `at`.
    Adjusted { reg: u8, at: u32 },
    /// The place held the value when the program started.
    Start(Place),
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Move { dst, src, at } => write!(f, "r{dst} = r{src} at {at}"),
            Self::Fill { dst, slot, at } => write!(f, "r{dst} loaded from fp{slot} at {at}"),
            Self::Spill { slot, src, at } => write!(f, "spilled to fp{slot} from r{src} at {at}"),
            Self::Adjusted { reg, at } => write!(f, "r{reg} adjusted at {at}"),
            Self::Start(Place::Reg(r)) => write!(f, "r{r} at program start"),
            Self::Start(Place::Stack(off)) => write!(f, "fp{off} at program start"),
        }
    }
}

impl Trace {
    /// Follows `place` backward from just before path step `start`.
    pub fn back(log: &ParsedLog, start: usize, place: Place) -> Self {
        let path = &log.path;
        let mut walk = Walk {
            trace: Self::default(),
            place,
        };
        let mut pos = start;
        let mut budget = path.len() * 2;
        while pos > 0 && budget > 0 {
            budget -= 1;
            pos -= 1;
            let insn = match path[pos] {
                Step::Insn(i) => i,
                Step::Pop { from, .. } => match pushing_step(path, pos, from) {
                    // Resume just before the branch instruction itself.
                    Some(j) => {
                        pos = j;
                        continue;
                    }
                    None => {
                        walk.trace.ran_out = true;
                        return walk.trace;
                    }
                },
            };
            let Some(effect) = log.effects.get(&insn) else {
                continue;
            };
            if walk.step(insn, effect) {
                return walk.trace;
            }
        }
        let mut trace = walk.trace;
        trace.ran_out = log.path_clipped || pos > 0;
        if !trace.ran_out {
            // The start of the program: r1 is the context, r10 the frame.
            trace.hops.push(Hop::Start(walk.place));
        }
        trace
    }

    /// The call that produced the value, when it is a helper that may
    /// return NULL.
    pub fn nullable_call(&self) -> Option<u32> {
        match &self.birth {
            Some(Birth::Call(name)) if returns_or_null(name) => self.origin,
            _ => None,
        }
    }

    /// Where a value the verifier holds as a plain number (a scalar)
    /// became one, as far as the walk shows: the nearest fill from the
    /// stack, else the load, call or constant that produced it; when the
    /// walk found a pointer behind arithmetic (or nothing at all), the
    /// first arithmetic, as old kernels turned `ctx + 96` or a shifted
    /// pointer into a number.
    pub fn scalar_birth(&self) -> Option<(u32, ScalarBirth)> {
        let fill = self.hops.iter().find_map(|h| match *h {
            Hop::Fill { slot, at, .. } => Some((at, ScalarBirth::Fill { slot })),
            _ => None,
        });
        if fill.is_some() {
            return fill;
        }
        let born = match (&self.birth, self.origin) {
            (Some(Birth::Load { base, off }), Some(at)) => Some((
                at,
                ScalarBirth::Load {
                    base: *base,
                    off: *off,
                },
            )),
            (Some(Birth::Call(name) | Birth::Clobbered(name)), Some(at)) => {
                Some((at, ScalarBirth::Call(name.clone())))
            }
            (Some(Birth::Const), Some(at)) => Some((at, ScalarBirth::Const)),
            _ => None,
        };
        born.or_else(|| {
            self.first_adjustment()
                .map(|at| (at, ScalarBirth::Arithmetic))
        })
    }

    /// The earliest arithmetic on the value the walk saw.
    pub fn first_adjustment(&self) -> Option<u32> {
        self.hops.iter().rev().find_map(|h| match *h {
            Hop::Adjusted { at, .. } => Some(at),
            _ => None,
        })
    }

    /// The nearest fill from the stack on the value's way, if any.
    pub fn first_fill(&self) -> Option<u32> {
        self.hops.iter().find_map(|h| match *h {
            Hop::Fill { at, .. } => Some(at),
            _ => None,
        })
    }

    /// The nearest spill into the stack on the value's way, if any.
    pub fn first_spill(&self) -> Option<(u32, u8)> {
        self.hops.iter().find_map(|h| match *h {
            Hop::Spill { at, src, .. } => Some((at, src)),
            _ => None,
        })
    }

    /// The hops, as the report prints them.
    pub fn path(&self) -> Vec<String> {
        self.hops.iter().map(ToString::to_string).collect()
    }
}

/// Index into `path` of the step that pushed the state `Pop { from, .. }`
/// at `pop` resumed: the latest `Insn(from)` before it whose own pushes
/// were not popped later.
fn pushing_step(path: &VecDeque<Step>, pop: usize, from: u32) -> Option<usize> {
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

/// A walk in progress: where the value is now.
struct Walk {
    trace: Trace,
    place: Place,
}

impl Walk {
    /// Steps back over the instruction `insn`; `true` when it is the
    /// value's birth.
    fn step(&mut self, insn: u32, effect: &Effect) -> bool {
        match self.place {
            Place::Reg(r) => self.step_reg(insn, effect, r),
            Place::Stack(slot) => self.step_stack(insn, effect, slot),
        }
    }

    fn born(&mut self, insn: u32, birth: Birth) -> bool {
        self.trace.origin = Some(insn);
        self.trace.birth = Some(birth);
        true
    }

    fn crossed(&mut self, insn: u32, helper: &str) {
        if changes_packet_data(helper) && self.trace.crossed_packet_change.is_none() {
            self.trace.crossed_packet_change = Some(insn);
        }
    }

    fn step_reg(&mut self, insn: u32, effect: &Effect, r: u8) -> bool {
        match effect {
            Effect::Move { dst, src } if *dst == r => {
                let src = *src;
                self.trace.hops.push(Hop::Move {
                    dst: r,
                    src,
                    at: insn,
                });
                self.place = Place::Reg(src);
                src == 10 && self.born(insn, Birth::Other)
            }
            Effect::Load { dst, base, off } if *dst == r => {
                if *base != 10 {
                    return self.born(
                        insn,
                        Birth::Load {
                            base: *base,
                            off: *off,
                        },
                    );
                }
                self.trace.hops.push(Hop::Fill {
                    dst: r,
                    slot: *off,
                    at: insn,
                });
                self.place = Place::Stack(*off);
                false
            }
            Effect::Alu { dst, .. } if *dst == r => {
                self.trace.hops.push(Hop::Adjusted { reg: r, at: insn });
                false
            }
            Effect::Const { dst } if *dst == r => self.born(insn, Birth::Const),
            Effect::Def { dst } if *dst == r => self.born(insn, Birth::Other),
            Effect::Call { name, .. } => match r {
                0 => self.born(insn, Birth::Call(name.clone())),
                1..=5 => self.born(insn, Birth::Clobbered(name.clone())),
                _ => {
                    self.crossed(insn, name);
                    false
                }
            },
            Effect::SubCall if r <= 5 => self.born(insn, Birth::Other),
            _ => false,
        }
    }

    fn step_stack(&mut self, insn: u32, effect: &Effect, slot: i32) -> bool {
        match effect {
            Effect::Store { base: 10, off, src } if *off == slot => match src {
                Some(src) => {
                    self.trace.hops.push(Hop::Spill {
                        slot,
                        src: *src,
                        at: insn,
                    });
                    self.place = Place::Reg(*src);
                    false
                }
                None => self.born(insn, Birth::Const),
            },
            Effect::Call { name, .. } => {
                self.crossed(insn, name);
                false
            }
            _ => false,
        }
    }
}
