//! A static pass that finds possibly-NULL pointers used without a test,
//! without asking the kernel.
//!
//! Recent kernels let a program dereference `bpf_map_lookup_elem()` of an
//! array at a constant, in-bounds key without a NULL test: the verifier
//! proves the value exists. Older kernels reject the same object with
//! `invalid mem access 'map_value_or_null'`. So xdpstat looks for such uses
//! itself: a forward dataflow over the instructions tracks each result of
//! a helper that may return NULL through moves and stack spills, until a
//! comparison with 0 tests it; a dereference before that is a warning.
//!
//! The pass reads decoded instructions: their effects come from
//! [`Effect::from_insn`] (the same vocabulary the diagnoses read from the
//! log), their successors from [`Insn::falls_through`] and
//! [`Insn::jump_target`].

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::effect::{returns_or_null, Effect, Place};
use crate::insn::{Insn, Resolver};

/// A possibly-NULL pointer used without a test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unchecked {
    /// Where it is used.
    pub insn: u32,
    /// The register used.
    pub reg: u8,
    /// The call that produced it.
    pub origin: u32,
    /// That call's helper.
    pub helper: String,
}

/// Which call's result each place may hold, untested. A few entries at
/// most, and one state per instruction: a small vector is far smaller
/// than a hash map, which matters on programs of 100,000 instructions.
#[derive(Clone, Debug, Default)]
struct State(Vec<(Place, u32)>);

impl State {
    fn get(&self, place: Place) -> Option<u32> {
        self.0.iter().find(|(p, _)| *p == place).map(|(_, o)| *o)
    }

    fn insert(&mut self, place: Place, origin: u32) {
        match self.0.iter_mut().find(|(p, _)| *p == place) {
            Some(slot) => slot.1 = origin,
            None => self.0.push((place, origin)),
        }
    }

    fn remove(&mut self, place: Place) {
        self.0.retain(|(p, _)| *p != place);
    }

    fn copy(&mut self, from: Place, to: Place) {
        match self.get(from) {
            Some(origin) => self.insert(to, origin),
            None => self.remove(to),
        }
    }

    fn forget_origin(&mut self, origin: u32) {
        self.0.retain(|(_, o)| *o != origin);
    }

    /// Adds what `other` has and this lacks: a place keeps the first
    /// origin that reached it. Whether anything was added.
    fn join(&mut self, other: &Self) -> bool {
        let mut changed = false;
        for &(place, origin) in &other.0 {
            if self.get(place).is_none() {
                self.0.push((place, origin));
                changed = true;
            }
        }
        changed
    }
}

/// Where execution goes after each instruction, as positions in the
/// instruction list. Effects are not kept: each is worked out again when
/// the walk reaches its instruction, which keeps the pass at 16 bytes an
/// instruction.
fn successors(insns: &[(usize, Insn)]) -> Vec<[Option<u32>; 2]> {
    let position: HashMap<usize, u32> = insns
        .iter()
        .enumerate()
        .filter_map(|(pos, (i, _))| Some((*i, u32::try_from(pos).ok()?)))
        .collect();
    insns
        .iter()
        .map(|(i, insn)| {
            let next = insn.falls_through().then(|| i + insn.width());
            let at = |s: Option<usize>| s.and_then(|s| position.get(&s).copied());
            [at(next), at(insn.jump_target(*i))]
        })
        .collect()
}

/// Finds every dereference of a possibly-NULL helper result before it is
/// tested, in a program given as (verifier index, instruction), with
/// `names` for its helpers.
pub fn find_unchecked(insns: &[(usize, Insn)], names: &dyn Resolver) -> Vec<Unchecked> {
    let helpers: HashMap<u32, String> = insns
        .iter()
        .filter_map(|(i, insn)| match Effect::from_insn(*i, insn, names) {
            Effect::Call { name, .. } if returns_or_null(&name) => {
                Some((u32::try_from(*i).ok()?, name))
            }
            _ => None,
        })
        .collect();
    if insns.is_empty() || helpers.is_empty() {
        return Vec::new();
    }
    let successors = successors(insns);
    let mut pass = Pass {
        helpers: &helpers,
        found: BTreeMap::new(),
    };
    let mut in_states: Vec<Option<State>> = Vec::new();
    in_states.resize_with(insns.len(), || None);
    in_states[0] = Some(State::default());
    let mut queued = vec![false; insns.len()];
    queued[0] = true;
    let mut work: VecDeque<usize> = VecDeque::from([0]);
    // Each pass can only add tags, so this terminates; the cap guards
    // against a malformed program.
    let mut budget = insns.len().saturating_mul(64).max(1024);
    while let Some(pos) = work.pop_front() {
        queued[pos] = false;
        if budget == 0 {
            break;
        }
        budget -= 1;
        let (i, insn) = &insns[pos];
        let Ok(index) = u32::try_from(*i) else {
            continue;
        };
        let mut state = in_states[pos].clone().unwrap_or_default();
        pass.step(index, &Effect::from_insn(*i, insn, names), &mut state);
        for succ in successors[pos].into_iter().flatten() {
            let succ = succ as usize;
            let changed = match &mut in_states[succ] {
                Some(target) => target.join(&state),
                empty @ None => {
                    *empty = Some(state.clone());
                    true
                }
            };
            if changed && !queued[succ] {
                queued[succ] = true;
                work.push_back(succ);
            }
        }
    }
    pass.found.into_values().collect()
}

/// What the walk has found so far.
struct Pass<'a> {
    helpers: &'a HashMap<u32, String>,
    found: BTreeMap<(u32, u32), Unchecked>,
}

impl Pass<'_> {
    /// Reports the use of `reg` at `index` if it holds an untested result,
    /// and forgets that result (one warning per use and origin).
    fn use_of(&mut self, index: u32, reg: u8, state: &mut State) {
        if let Some(origin) = state.get(Place::Reg(reg)) {
            let helpers = self.helpers;
            self.found
                .entry((index, origin))
                .or_insert_with(|| Unchecked {
                    insn: index,
                    reg,
                    origin,
                    helper: helpers.get(&origin).cloned().unwrap_or_default(),
                });
            state.forget_origin(origin);
        }
    }

    /// The state after the instruction at `index`.
    fn step(&mut self, index: u32, effect: &Effect, state: &mut State) {
        if let Some(base) = effect.deref_base() {
            self.use_of(index, base, state);
        }
        match effect {
            Effect::Call { .. } | Effect::SubCall => {
                for r in 0..=5 {
                    state.remove(Place::Reg(r));
                }
                if self.helpers.contains_key(&index) {
                    state.insert(Place::Reg(0), index);
                }
            }
            Effect::Move { dst, src } => state.copy(Place::Reg(*src), Place::Reg(*dst)),
            Effect::Load { dst, base: 10, off } => state.copy(Place::Stack(*off), Place::Reg(*dst)),
            Effect::Store { base: 10, off, src } => match src {
                Some(src) => state.copy(Place::Reg(*src), Place::Stack(*off)),
                None => state.remove(Place::Stack(*off)),
            },
            // Arithmetic on a NULL-able pointer is refused as well.
            Effect::Alu { dst, .. } => self.use_of(index, *dst, state),
            Effect::Branch {
                reg,
                other: None,
                imm: Some(0),
                ..
            } => {
                // Any comparison with 0 tests it, and, as in the verifier,
                // tests every copy of it.
                if let Some(origin) = state.get(Place::Reg(*reg)) {
                    state.forget_origin(origin);
                }
            }
            other => {
                if let Some(dst) = other.defines() {
                    state.remove(Place::Reg(dst));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names the one map the tests use.
    struct Counters;

    impl Resolver for Counters {
        fn ld_imm64(&self, _: usize, _: &Insn) -> Option<String> {
            Some("map[counters]".to_owned())
        }
    }

    fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
            imm_hi: 0,
        }
    }

    /// `rN` or `wN`.
    fn r(token: &str) -> u8 {
        token
            .trim_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap()
    }

    /// `*(u64 *)(r10 -8)` → (size bits, base, off).
    fn operand(text: &str) -> (u8, u8, i16) {
        let (ty, rest) = text.trim_start_matches("*(").split_once(" *)(").unwrap();
        let (base, off) = rest.trim_end_matches(')').split_once(' ').unwrap();
        let size = match ty {
            "u32" => 0x00,
            "u16" => 0x08,
            "u8" => 0x10,
            _ => 0x18,
        };
        (size, r(base), off.trim_start_matches('+').parse().unwrap())
    }

    /// The few forms these tests write, in the kernel's syntax.
    fn assemble(text: &str) -> Insn {
        let words: Vec<&str> = text.split_whitespace().collect();
        let imm = |w: &str| -> i32 {
            match w.strip_prefix("0x") {
                Some(hex) => i32::from_str_radix(hex, 16).unwrap(),
                None => w.parse().unwrap(),
            }
        };
        let jump = |w: &str| -> i16 { w.trim_start_matches("pc").parse().unwrap() };
        match words.as_slice() {
            ["exit"] => ins(0x95, 0, 0, 0, 0),
            ["goto", pc] => ins(0x05, 0, 0, jump(pc), 0),
            ["call", f] => ins(
                0x85,
                0,
                0,
                0,
                f.rsplit('#').next().unwrap().parse().unwrap(),
            ),
            ["if", a, op, b, "goto", pc] => {
                let op = match *op {
                    "==" => 0x10,
                    ">" => 0x20,
                    _ => panic!("{text}"),
                };
                ins(0x05 | op, r(a), 0, jump(pc), imm(b))
            }
            ["lock", ..] => {
                let (size, base, off) = operand(&words[1..4].join(" "));
                ins(0xc3 | size, base, r(words[5]), off, 0)
            }
            [m, _, _, "=", v] if m.starts_with("*(") => {
                let (size, base, off) = operand(&words[..3].join(" "));
                match v.strip_prefix('r') {
                    Some(src) => ins(0x63 | size, base, src.parse().unwrap(), off, 0),
                    None => ins(0x62 | size, base, 0, off, imm(v)),
                }
            }
            [d, "=", m, _, _] if m.starts_with("*(") => {
                let (size, base, off) = operand(&words[2..].join(" "));
                ins(0x61 | size, r(d), base, off, 0)
            }
            [d, "=", v] if v.starts_with("map[") => Insn {
                imm_hi: 0,
                ..ins(0x18, r(d), 1, 0, 0)
            },
            [d, op, v] => {
                let alu = match *op {
                    "=" => 0xb0,
                    "+=" => 0x00,
                    "-=" => 0x10,
                    _ => panic!("{text}"),
                };
                match v.strip_prefix('r') {
                    Some(src) => ins(0x0f | alu, r(d), src.parse().unwrap(), 0, 0),
                    None => ins(0x07 | alu, r(d), 0, 0, imm(v)),
                }
            }
            _ => panic!("cannot assemble {text}"),
        }
    }

    /// A program written as `index: text` lines, decoded as the pass
    /// reads it; each instruction must print back as its line.
    fn program(lines: &[&str]) -> Vec<(usize, Insn)> {
        lines
            .iter()
            .map(|l| {
                let (i, t) = l.split_once(": ").unwrap();
                let (i, insn) = (i.parse().unwrap(), assemble(t));
                assert_eq!(insn.display(i, &Counters).to_string(), t);
                (i, insn)
            })
            .collect()
    }

    #[test]
    fn the_tutorials_missing_null_check() {
        let p = program(&[
            "0: r6 = *(u32 *)(r1 +0)",
            "1: r7 = *(u32 *)(r1 +4)",
            "2: r1 = 0",
            "3: *(u32 *)(r10 -4) = r1",
            "4: r2 = r10",
            "5: r2 += -4",
            "6: r1 = map[counters]",
            "8: call bpf_map_lookup_elem#1",
            "9: r1 = 1",
            "10: lock *(u64 *)(r0 +0) += r1",
            "11: r7 -= r6",
            "12: lock *(u64 *)(r0 +8) += r7",
            "13: r0 = 2",
            "14: exit",
        ]);
        let found = find_unchecked(&p, &Counters);
        assert_eq!(
            found,
            vec![Unchecked {
                insn: 10,
                reg: 0,
                origin: 8,
                helper: "bpf_map_lookup_elem".into()
            }],
            "one warning, at the first use"
        );
    }

    #[test]
    fn a_test_on_any_copy_clears_every_copy() {
        let p = program(&[
            "0: call bpf_map_lookup_elem#1",
            "1: r6 = r0",
            "2: *(u64 *)(r10 -8) = r6",
            "3: if r0 == 0x0 goto pc+3",
            "4: r1 = *(u64 *)(r10 -8)",
            "5: r2 = *(u64 *)(r1 +0)",
            "6: r3 = *(u64 *)(r6 +0)",
            "7: r0 = 2",
            "8: exit",
        ]);
        assert!(find_unchecked(&p, &Counters).is_empty());
    }

    #[test]
    fn a_spilled_copy_used_on_the_untested_path() {
        let p = program(&[
            "0: call bpf_ringbuf_reserve#131",
            "1: *(u64 *)(r10 -16) = r0",
            "2: if r6 > 0x5 goto pc+2",
            "3: r0 = 2",
            "4: exit",
            "5: r1 = *(u64 *)(r10 -16)",
            "6: *(u64 *)(r1 +0) = 0",
            "7: r0 = 2",
            "8: exit",
        ]);
        let found = find_unchecked(&p, &Counters);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].insn, found[0].reg, found[0].origin), (6, 1, 0));
        assert_eq!(found[0].helper, "bpf_ringbuf_reserve");
    }

    #[test]
    fn tested_in_one_branch_only_still_warns_at_the_join() {
        let p = program(&[
            "0: call bpf_map_lookup_elem#1",
            "1: if r6 == 0x1 goto pc+2",
            "2: if r0 == 0x0 goto pc+3",
            "3: goto pc+0",
            "4: r1 = *(u64 *)(r0 +0)",
            "5: r0 = 2",
            "6: exit",
        ]);
        let found = find_unchecked(&p, &Counters);
        assert_eq!(found.iter().map(|u| u.insn).collect::<Vec<_>>(), vec![4]);
    }

    #[test]
    fn loops_terminate() {
        let p = program(&[
            "0: call bpf_map_lookup_elem#1",
            "1: r1 = r0",
            "2: r0 = r1",
            "3: goto pc-3",
        ]);
        let _ = find_unchecked(&p, &Counters);
    }
}
