//! The verifier log's view of each instruction and the decoder's agree on
//! the whole corpus: for every instruction of every fixture object, the
//! effect read from its printed text (what a log shows) is the effect
//! derived from the decoded instruction; and for the saved logs, the
//! effects the log parser took from the kernel's own text are the decoded
//! instructions' effects at the same indexes. No kernel needed.

mod common;

use std::{fs, path::Path};

use xdpstat_analysis::{
    obj::BpfObject,
    verifier::{effect::Effect, log},
};

fn objects(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            objects(&path, found);
        } else if path.extension().is_some_and(|e| e == "o") {
            found.push(path);
        }
    }
}

#[test]
fn printed_and_decoded_effects_agree_on_every_corpus_instruction() {
    let Some(one) = common::fixture("c/ok_parse_eth.o") else {
        return;
    };
    let build = one.parent().unwrap().parent().unwrap();
    let mut paths = Vec::new();
    objects(build, &mut paths);
    objects(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("bpf"),
        &mut paths,
    );
    assert!(paths.len() > 40, "{} objects", paths.len());
    let mut checked = 0;
    for path in &paths {
        let obj = BpfObject::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for program in obj.programs() {
            let Ok(linked) = obj.linked(program) else {
                continue;
            };
            for (i, insn) in &linked.insns {
                let text = insn.display(*i, &linked).to_string();
                assert_eq!(
                    Effect::from_insn(*i, insn, &linked),
                    Effect::parse(&text),
                    "{} {} insn {i}: {text}",
                    path.display(),
                    program.name
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "{checked} instructions");
    eprintln!("{checked} instructions of {} objects agree", paths.len());
}

#[test]
fn the_saved_logs_effects_are_the_decoded_ones() {
    let pairs = [
        ("stats_kern_hash.level1.log", "stats_kern/stats_kern_hash.o"),
        (
            "stats_kern_hash.iproute2.log",
            "stats_kern/stats_kern_hash.o",
        ),
        ("null_check_spill.level2.log", "c/null_check_spill.o"),
        ("null_check_spill.level1-stats.log", "c/null_check_spill.o"),
        ("ref_leak_ringbuf.level2.log", "c/ref_leak_ringbuf.o"),
        (
            "complexity_runtime_loop.head-tail.log",
            "c/complexity_runtime_loop.o",
        ),
    ];
    let logs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/logs");
    let mut checked = 0;
    for (log_name, obj_name) in pairs {
        let Some(obj_path) = common::fixture(obj_name) else {
            return;
        };
        let text = fs::read_to_string(logs.join(log_name)).unwrap();
        let parsed = log::parse_str(&text);
        let obj = BpfObject::open(&obj_path).unwrap();
        let program = obj.programs()[0].clone();
        let linked = obj.linked(&program).unwrap();
        assert!(!parsed.effects.is_empty(), "{log_name} has instructions");
        for (&i, from_log) in &parsed.effects {
            let Some((_, insn)) = linked.insns.iter().find(|(at, _)| *at == i as usize) else {
                panic!("{log_name}: insn {i} is not in {obj_name}");
            };
            assert_eq!(
                &Effect::from_insn(i as usize, insn, &linked),
                from_log,
                "{log_name} insn {i}: {:?}",
                parsed.insns.get(&i)
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked} instructions");
    eprintln!("{checked} logged instructions agree with their decoding");
}
