//! What the kernel's verifier log says each instruction does, and what
//! the decoded instruction does, agree for every program of the fixture
//! corpus: each is loaded at log level 2, so the log shows every
//! instruction the verifier walked, accepted or not, and each of them is
//! compared with the object's instruction at the same verifier index
//! (`Effect::parse` of the log's text against `Effect::from_insn`).
//! `xdpstat-analysis/tests/effect_agreement.rs` does the same without a
//! kernel, on the saved logs.

mod common;

use std::path::Path;

use xdpstat::model::workbench::{load, Verdict};
use xdpstat_analysis::{
    obj::BpfObject,
    verifier::{effect::Effect, log},
};

/// `BPF_LOG_LEVEL1 | BPF_LOG_LEVEL2 | BPF_LOG_STATS`.
const LOG_LEVEL_2: u32 = 1 | 2 | 4;

/// Programs whose level-2 log runs to gigabytes (the verifier walks a
/// loop a million instructions long); their level-1 path is in
/// fixtures/logs.
const TOO_LONG: &[&str] = &["complexity_runtime_loop"];

fn objects(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            objects(&path, out);
        } else if path.extension().is_some_and(|e| e == "o") {
            out.push(path);
        }
    }
}

#[test]
fn the_kernels_logs_and_the_decoded_instructions_agree_on_the_corpus() {
    if !common::privileged("effect agreement") {
        return;
    }
    let Some(any) = common::fixture("c/null_check_hash.o") else {
        return;
    };
    let mut paths = Vec::new();
    let build = any.parent().and_then(Path::parent).unwrap();
    objects(build, &mut paths);
    // The real-world corpus has its own test (real_objects), and level-2
    // logs of its biggest programs run to gigabytes.
    paths.retain(|p| !p.starts_with(build.join("real")));
    paths.sort();
    let (mut programs, mut compared, mut wrong) = (0, 0, Vec::new());
    for path in &paths {
        let obj = BpfObject::open(path).unwrap();
        for program in obj.programs() {
            if TOO_LONG.contains(&program.name.as_str()) {
                continue;
            }
            let linked = obj.linked(program).unwrap();
            let text = match load(
                &obj,
                program,
                LOG_LEVEL_2,
                &xdpstat::model::workbench::LoadOptions::check(),
            )
            .unwrap()
            {
                Verdict::Accepted { log, .. } | Verdict::Rejected { log, .. } => log,
            };
            let parsed = log::parse_str(&text);
            assert!(
                !parsed.insns.is_empty(),
                "{} {}: no instructions in the log",
                path.display(),
                program.name
            );
            programs += 1;
            for (&i, log_text) in &parsed.insns {
                let insn = linked
                    .insn_at(i as usize)
                    .unwrap_or_else(|| panic!("{} {}: no insn {i}", path.display(), program.name));
                let from_insn = Effect::from_insn(i as usize, insn, &linked);
                let from_log = &parsed.effects[&i];
                compared += 1;
                if *from_log != from_insn {
                    wrong.push(format!(
                        "{} {} insn {i} `{log_text}`: log {from_log:?}, insn {from_insn:?}",
                        path.display(),
                        program.name
                    ));
                }
            }
        }
    }
    eprintln!("{programs} programs, {compared} instructions");
    assert!(programs >= 40, "the whole corpus: {programs} programs");
    assert!(
        wrong.is_empty(),
        "{} of {compared} disagree:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
