//! The fuzz targets, one per parser of untrusted input. `cargo fuzz` (the
//! `fuzz/` crate) and the seeded mutation test (`tests/fuzz.rs`) run the
//! same bodies.
//!
//! A target takes any bytes and must return: every malformed input is an
//! error somewhere inside, never a panic, a hang or an unbounded
//! allocation. The only panics caught are aya-obj's, by
//! [`xdpstat_analysis::obj::guard`]; a panic anywhere else is a bug in xdpstat.
//!
//! Not a stable interface; it exists for the fuzzers.

use std::{path::Path, sync::OnceLock};

use xdpstat_analysis::{
    btf::Btf,
    insn::{self, Insn, NoNames, Resolver},
    obj::{BpfObject, LinkedProgram, SourceFiles},
    report::{self as workbench, ReportInput, SourceMap},
    verifier::{effect::Effect, log, nullcheck},
};

use crate::output::report;

/// Types looked at per BTF input beyond the one it names: enough to reach
/// every kind in a small blob, few enough that one input stays fast.
const BTF_TYPES: u32 = 16;

/// An object file: reading and checking it, linking each program with
/// aya-obj, its line info and DWARF call sites, the `objdump` listing
/// and the NULL-check warnings.
pub fn object(data: &[u8]) {
    let Ok(obj) = BpfObject::from_bytes(Path::new("fuzz.o"), data.to_vec()) else {
        // DWARF is read only from objects that pass the checks (in
        // `linked`); read it from the rest too, as it is xdpstat's own
        // parser.
        let _ = xdpstat_analysis::obj::dwarf::call_sites(data, "xdpstat_percpu");
        return;
    };
    let _ = (obj.license(), obj.select(None), obj.single(None));
    for program in obj.programs() {
        let _ = obj.select(Some(&program.section));
        let Ok(linked) = obj.linked(program) else {
            continue;
        };
        linked_program(&linked);
    }
}

fn linked_program(linked: &LinkedProgram) {
    for index in 0..linked.slot_count() + 2 {
        let _ = (
            linked.lines.at(index),
            linked.lines.starting_at(index),
            linked.call_site(index),
            linked.insn_at(index),
        );
    }
    // No search directories: sources are looked up only where the line
    // info says they are.
    let mut out = Vec::new();
    let _ = report::write_objdump(&mut out, linked, &mut SourceFiles::new(Vec::new()));
    let mut sources = SourceMap::new(Some(linked), None, Vec::new());
    let _ = workbench::warnings(linked, &mut sources);
}

/// The embedded per-CPU program, linked once: the object `explain --obj`
/// would give, so that diagnoses run with instruction texts too.
fn known_program() -> Option<&'static LinkedProgram> {
    static PROGRAM: OnceLock<Option<LinkedProgram>> = OnceLock::new();
    PROGRAM
        .get_or_init(|| {
            let obj = BpfObject::from_bytes(
                Path::new("percpu.o"),
                crate::model::layout::Layout::Percpu.object().to_vec(),
            )
            .ok()?;
            let program = obj.programs().first()?.clone();
            obj.linked(&program).ok()
        })
        .as_ref()
}

/// A verifier log: read as `explain` reads a file (and refused when it is
/// none), and taken whole as `check` takes the kernel's; then diagnosed,
/// with and without a program, and printed as the report prints it.
pub fn verifier_log(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let logs = [log::parse_reader(data).ok(), Some(log::parse_str(&text))];
    for parsed in logs.iter().flatten() {
        for program in [None, known_program()] {
            let mut r = workbench::report(ReportInput {
                section: "xdp".to_owned(),
                name: "fuzz".to_owned(),
                log: Some(parsed),
                program,
                src_dirs: Vec::new(),
            });
            r.accepted = r.accepted.or(Some(false));
            let mut out = Vec::new();
            let mut sources = SourceMap::new(program, Some(parsed), Vec::new());
            let _ = report::write_header(&mut out, &r);
            let _ = report::write_annotated_log(
                &mut out,
                text.lines().take(1 << 12).map(str::to_owned),
                &mut sources,
            );
            let _ = report::write_summary(&mut out, &r);
            let _ = serde_json::to_string(&r);
        }
    }
}

/// The layout [`btf`] reads its input in: a type id, the length of the
/// BTF blob that follows, the blob, then the value's bytes.
pub fn btf_input(id: u32, blob: &[u8], value: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(8 + blob.len() + value.len());
    data.extend_from_slice(&id.to_le_bytes());
    data.extend_from_slice(&(blob.len() as u32).to_le_bytes());
    data.extend_from_slice(blob);
    data.extend_from_slice(value);
    data
}

/// The BTF value formatter (`map dump`): parsing raw BTF, then formatting
/// a value as the type the input names and as the first few types, with
/// every lookup the dump makes on the way. Input as [`btf_input`] lays it
/// out.
pub fn btf(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let id = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let blob_len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let (blob, value) = rest.split_at(blob_len.min(rest.len()));
    let Ok(btf) = Btf::parse(blob.to_vec()) else {
        return;
    };
    let last = u32::try_from(btf.len()).unwrap_or(u32::MAX);
    let ids = [id, 0, last, last.saturating_add(1)]
        .into_iter()
        .chain(1..=last.min(BTF_TYPES));
    for id in ids {
        if let Ok(t) = btf.type_by_id(id) {
            let _ = btf.name(t.name_off);
            for m in btf.members(&t) {
                let _ = (btf.name(m.name_off), btf.resolve(m.type_id));
            }
        }
        let _ = (btf.resolve(id), btf.size_of(id));
        let _ = btf.check_size(id, u32::try_from(value.len()).unwrap_or(u32::MAX), "value");
        if let Ok(v) = btf.format(id, value) {
            let _ = v.to_json().to_string();
        }
    }
}

/// Names every map reference and kfunc, so that the printer's resolver
/// paths run too.
struct AllNames;

impl Resolver for AllNames {
    fn ld_imm64(&self, index: usize, _insn: &Insn) -> Option<String> {
        Some(format!("map[m{index}]"))
    }

    fn kfunc_name(&self, index: usize, _insn: &Insn) -> Option<String> {
        index.is_multiple_of(2).then(|| format!("kf{index}"))
    }
}

/// The instruction decoder and printer: every 8-byte slot on its own, and
/// the whole program as the verifier counts it, with every accessor the
/// analyses use, the NULL-check pass over the printed program, and the
/// encoding back to the same bytes.
///
/// # Panics
///
/// When a decoded program does not encode back to its bytes, or an
/// instruction prints as nothing: those are decoder bugs.
pub fn insns(data: &[u8]) {
    for (slot, chunk) in data.chunks_exact(8).enumerate() {
        let mut raw = [0; 8];
        raw.copy_from_slice(chunk);
        one_insn(slot, &Insn::from_slot(raw));
    }
    let Ok(program) = Insn::decode_all(data) else {
        return;
    };
    let encoded: Vec<u8> = program.iter().flat_map(|(_, i)| i.to_bytes()).collect();
    assert_eq!(encoded, data, "decoding then encoding changed the bytes");
    for (index, insn) in &program {
        let text = one_insn(*index, insn);
        assert!(
            !text.is_empty(),
            "insn {index} ({insn:?}) prints as nothing"
        );
        let effect = Effect::parse(&text);
        let _ = (effect.defines(), effect.deref_base());
        // The instruction-side effect must not panic either.
        let _ = Effect::from_insn(*index, insn, &NoNames);
    }
    let _ = nullcheck::find_unchecked(&program, &NoNames);
}

fn one_insn(index: usize, insn: &Insn) -> String {
    let _ = (
        insn.class(),
        insn.width(),
        insn.imm64(),
        insn.is_exit(),
        insn.is_helper_call(),
        insn.is_pseudo_call(),
        insn.is_kfunc_call(),
        insn.call_target(index),
        insn.jump_target(index),
        insn.is_conditional_jump(),
        insn.falls_through(),
        insn.defined_reg(),
        insn.clobbers(),
        insn.used_regs(),
        insn.mem_access(),
        insn::helper_name(insn.imm),
        insn.to_string(),
        insn.display(index, &AllNames).to_string(),
    );
    insn.display(index, &NoNames).to_string()
}
