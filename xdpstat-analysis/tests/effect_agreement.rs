//! The two sides of the workbench read instructions the same way: what
//! the verifier log says each instruction does ([`Effect::parse`] of its
//! text, which the diagnoses read) and what the decoded instruction does
//! ([`Effect::from_insn`], which the static NULL-check pass reads) agree
//! on the whole fixture corpus, without a kernel:
//!
//! - every instruction of every program in `fixtures/build/**/*.o`,
//!   against its text in the kernel's syntax (what a log prints for it);
//! - every instruction of the saved logs in `fixtures/logs`, against the
//!   decoded instruction at the same verifier index of the object the log
//!   came from.
//!
//! `xdpstat/tests/effect_agreement.rs` does the same with logs the kernel
//! writes for every program of the corpus.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use xdpstat_analysis::{
    obj::{BpfObject, LinkedProgram},
    verifier::{effect::Effect, log},
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Whether missing fixtures must fail the test rather than skip it.
fn required() -> bool {
    std::env::var_os("CI").is_some_and(|v| v != "false" && !v.is_empty())
        || std::env::var_os("XDPSTAT_REQUIRE_PRIVILEGED").is_some()
}

/// Every built object, sorted; `None`, said loudly, before
/// `cargo xtask build-fixtures` (a failure under CI).
fn objects() -> Option<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "o") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&fixtures().join("build"), &mut out);
    out.sort();
    if out.is_empty() {
        assert!(
            !required(),
            "fixtures/build is empty: run `cargo xtask build-fixtures`"
        );
        eprintln!("SKIPPED: fixtures/build is empty (run `cargo xtask build-fixtures`)");
        return None;
    }
    Some(out)
}

/// The name of an effect's variant, for the tally.
fn variant(effect: &Effect) -> &'static str {
    match effect {
        Effect::Move { .. } => "move",
        Effect::Load { .. } => "load",
        Effect::Store { .. } => "store",
        Effect::Atomic { .. } => "atomic",
        Effect::Alu { .. } => "alu",
        Effect::Const { .. } => "const",
        Effect::Call { .. } => "call",
        Effect::SubCall => "subcall",
        Effect::Branch { .. } => "branch",
        Effect::Goto => "goto",
        Effect::Exit => "exit",
        Effect::Def { .. } => "def",
        Effect::Other => "other",
    }
}

/// Instructions compared, by effect, and what disagreed.
#[derive(Default)]
struct Tally {
    by_effect: BTreeMap<&'static str, usize>,
    wrong: Vec<String>,
}

impl Tally {
    fn compare(&mut self, what: &str, log_side: &Effect, insn_side: &Effect) {
        *self.by_effect.entry(variant(log_side)).or_default() += 1;
        if log_side != insn_side {
            self.wrong.push(format!(
                "{what}: log says {log_side:?}, insn says {insn_side:?}"
            ));
        }
    }

    fn total(&self) -> usize {
        self.by_effect.values().sum()
    }

    fn assert_agree(&self, what: &str) {
        eprintln!(
            "{what}: {} instructions, {:?}",
            self.total(),
            self.by_effect
        );
        assert!(
            self.wrong.is_empty(),
            "{} of {} disagree:\n{}",
            self.wrong.len(),
            self.total(),
            self.wrong.join("\n")
        );
    }
}

/// Every program of `obj`, linked as the verifier sees it. Of the
/// real-world corpus, only what xdpstat can link: `real_objects` lists and
/// checks what it cannot yet.
fn programs(path: &Path) -> Vec<(String, LinkedProgram)> {
    let real = path.starts_with(fixtures().join("build/real"));
    let obj = match BpfObject::open(path) {
        Ok(obj) => obj,
        Err(_) if real => return Vec::new(),
        Err(e) => panic!("{}: {e}", path.display()),
    };
    obj.programs()
        .iter()
        .filter_map(|p| match obj.linked(p) {
            Ok(linked) => Some((p.name.clone(), linked)),
            Err(_) if real => None,
            Err(e) => panic!("{} {}: {e}", path.display(), p.name),
        })
        .collect()
}

#[test]
fn every_instruction_of_the_corpus_reads_the_same_from_its_text() {
    let Some(objects) = objects() else {
        return;
    };
    let mut tally = Tally::default();
    let mut count = (0, 0);
    for path in &objects {
        count.0 += 1;
        for (name, program) in programs(path) {
            count.1 += 1;
            for (i, insn) in &program.insns {
                let text = insn.display(*i, &program).to_string();
                let what = format!("{} {name} insn {i} `{text}`", path.display());
                tally.compare(
                    &what,
                    &Effect::parse(&text),
                    &Effect::from_insn(*i, insn, &program),
                );
            }
        }
    }
    eprintln!("{} objects, {} programs", count.0, count.1);
    tally.assert_agree("objects");
    assert!(count.0 >= 40 && count.1 > count.0, "the whole corpus");
}

/// The object a saved log came from (see fixtures/logs/README.md).
fn object_of(log: &str) -> PathBuf {
    let stem = log.split('.').next().unwrap_or(log);
    let build = fixtures().join("build");
    match stem.strip_prefix("rust_") {
        Some(rust) => build.join("rust").join(format!("{rust}.o")),
        None => ["c", "stats_kern"]
            .iter()
            .map(|dir| build.join(dir).join(format!("{stem}.o")))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("no object for {log}")),
    }
}

#[test]
fn every_instruction_of_the_saved_logs_reads_the_same_from_the_object() {
    if objects().is_none() {
        return;
    }
    let mut names: Vec<String> = std::fs::read_dir(fixtures().join("logs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    let mut tally = Tally::default();
    for name in &names {
        let text = std::fs::read_to_string(fixtures().join("logs").join(name)).unwrap();
        let parsed = log::parse_str(&text);
        let programs = programs(&object_of(name));
        let [(_, program)] = programs.as_slice() else {
            panic!("{name}: its object has one program");
        };
        assert!(!parsed.insns.is_empty(), "{name} has instructions");
        let mut indexes: Vec<&u32> = parsed.insns.keys().collect();
        indexes.sort();
        for &i in indexes {
            let insn = program
                .insn_at(i as usize)
                .unwrap_or_else(|| panic!("{name}: no insn {i} in the object"));
            let what = format!("{name} insn {i} `{}`", parsed.insns[&i]);
            tally.compare(
                &what,
                &parsed.effects[&i],
                &Effect::from_insn(i as usize, insn, program),
            );
        }
    }
    eprintln!("{} logs", names.len());
    assert!(names.len() >= 11, "every saved log");
    tally.assert_agree("saved logs");
}
