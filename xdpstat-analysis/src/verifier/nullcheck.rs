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

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::effect::{returns_or_null, Effect, Place};

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

type State = HashMap<Place, u32>;

/// The jump target of `text` at `index`: `goto pc+N`, `if … goto pc-N`.
fn jump_target(index: u32, text: &str) -> Option<u32> {
    let rel = text.rsplit_once("pc")?.1;
    let rel: i64 = rel.trim_start_matches('+').parse().ok()?;
    u32::try_from(i64::from(index).checked_add(1)?.checked_add(rel)?).ok()
}

/// Finds every dereference of a possibly-NULL helper result before it is
/// tested, in a program given as (verifier index, kernel-syntax text).
pub fn find_unchecked(insns: &[(u32, String)]) -> Vec<Unchecked> {
    let effects: BTreeMap<u32, (Effect, &str)> = insns
        .iter()
        .map(|(i, t)| (*i, (Effect::parse(t), t.as_str())))
        .collect();
    let next_of: HashMap<u32, u32> = insns.windows(2).map(|w| (w[0].0, w[1].0)).collect();
    let helpers: HashMap<u32, String> = effects
        .iter()
        .filter_map(|(i, (e, _))| match e {
            Effect::Call { name, .. } if returns_or_null(name) => Some((*i, name.clone())),
            _ => None,
        })
        .collect();
    if helpers.is_empty() {
        return Vec::new();
    }

    let mut in_states: HashMap<u32, State> = HashMap::new();
    let mut found: BTreeMap<(u32, u32), Unchecked> = BTreeMap::new();
    let Some(&first) = effects.keys().next() else {
        return Vec::new();
    };
    in_states.insert(first, State::new());
    let mut work: VecDeque<u32> = VecDeque::from([first]);
    // Each pass can only add tags, so this terminates; the cap guards
    // against a malformed program.
    let mut budget = insns.len().saturating_mul(64).max(1024);
    while let Some(index) = work.pop_front() {
        if budget == 0 {
            break;
        }
        budget -= 1;
        let Some((effect, text)) = effects.get(&index) else {
            continue;
        };
        let mut state = in_states.get(&index).cloned().unwrap_or_default();

        if let Some(base) = effect.deref_base() {
            if let Some(&origin) = state.get(&Place::Reg(base)) {
                found.entry((index, origin)).or_insert_with(|| Unchecked {
                    insn: index,
                    reg: base,
                    origin,
                    helper: helpers.get(&origin).cloned().unwrap_or_default(),
                });
                forget_origin(&mut state, origin);
            }
        }
        match effect {
            Effect::Call { name, .. } => {
                for r in 0..=5 {
                    state.remove(&Place::Reg(r));
                }
                if returns_or_null(name) {
                    state.insert(Place::Reg(0), index);
                }
            }
            Effect::SubCall => {
                for r in 0..=5 {
                    state.remove(&Place::Reg(r));
                }
            }
            Effect::Move { dst, src } => copy(&mut state, Place::Reg(*src), Place::Reg(*dst)),
            Effect::Load { dst, base: 10, off } => {
                copy(&mut state, Place::Stack(*off), Place::Reg(*dst))
            }
            Effect::Store { base: 10, off, src } => match src {
                Some(src) => copy(&mut state, Place::Reg(*src), Place::Stack(*off)),
                None => {
                    state.remove(&Place::Stack(*off));
                }
            },
            Effect::Alu { dst, .. } => {
                // Arithmetic on a NULL-able pointer is refused as well.
                if let Some(&origin) = state.get(&Place::Reg(*dst)) {
                    found.entry((index, origin)).or_insert_with(|| Unchecked {
                        insn: index,
                        reg: *dst,
                        origin,
                        helper: helpers.get(&origin).cloned().unwrap_or_default(),
                    });
                    forget_origin(&mut state, origin);
                }
            }
            Effect::Branch {
                reg,
                other: None,
                imm: Some(0),
                ..
            } => {
                // Any comparison with 0 tests it, and, as in the verifier,
                // tests every copy of it.
                if let Some(&origin) = state.get(&Place::Reg(*reg)) {
                    forget_origin(&mut state, origin);
                }
            }
            other => {
                if let Some(dst) = other.defines() {
                    state.remove(&Place::Reg(dst));
                }
            }
        }

        let mut successors = Vec::with_capacity(2);
        match effect {
            Effect::Exit => {}
            Effect::Goto => successors.extend(jump_target(index, text)),
            Effect::Branch { .. } => {
                successors.extend(next_of.get(&index).copied());
                successors.extend(jump_target(index, text));
            }
            _ => successors.extend(next_of.get(&index).copied()),
        }
        for succ in successors {
            let entry = in_states.entry(succ);
            let changed = match entry {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(state.clone());
                    true
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let target = o.get_mut();
                    let mut changed = false;
                    for (place, origin) in &state {
                        if target.get(place) != Some(origin) && !target.contains_key(place) {
                            target.insert(*place, *origin);
                            changed = true;
                        }
                    }
                    changed
                }
            };
            if changed && !work.contains(&succ) {
                work.push_back(succ);
            }
        }
    }
    found.into_values().collect()
}

fn copy(state: &mut State, from: Place, to: Place) {
    match state.get(&from).copied() {
        Some(origin) => {
            state.insert(to, origin);
        }
        None => {
            state.remove(&to);
        }
    }
}

fn forget_origin(state: &mut State, origin: u32) {
    state.retain(|_, o| *o != origin);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(lines: &[&str]) -> Vec<(u32, String)> {
        lines
            .iter()
            .map(|l| {
                let (i, t) = l.split_once(": ").unwrap();
                (i.parse().unwrap(), t.to_owned())
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
        let found = find_unchecked(&p);
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
        assert!(find_unchecked(&p).is_empty());
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
        let found = find_unchecked(&p);
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
        let found = find_unchecked(&p);
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
        let _ = find_unchecked(&p);
    }
}
