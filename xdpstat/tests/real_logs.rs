//! `xdpstat explain` on real verifier logs that people posted in public
//! (fixtures/logs/real, with manifest.json): other loaders' wrappers, old
//! and new kernel syntax, cut and elided logs, decoy lines. For every
//! file, the diagnosis kind, the failing instruction and the verifier's
//! message must be the manifest's, and so must the origin where the
//! manifest gives one. No root and no kernel needed.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use serde::Deserialize;
use serde_json::Value;

/// One entry of manifest.json (the fields this test checks).
#[derive(Debug, Deserialize)]
struct Entry {
    file: String,
    era: String,
    wrapper: String,
    failing_insn: Option<u64>,
    message: String,
    kind: String,
    origin_insn: Option<u64>,
}

/// Files explain is known not to get right yet, with why, and what it
/// says today (kind, failing insn, message, origin), so that a fix shows
/// up as a failure here to update. Empty: all 45 agree.
const KNOWN_GAPS: &[(&str, &str, Said)] = &[];

/// What explain says of a log: kind, failing instruction, message, origin.
type Said = (&'static str, Option<u64>, &'static str, Option<u64>);

fn real_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/logs/real")
}

fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(real_dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).expect("a valid manifest")
}

/// What explain said about one file.
#[derive(Debug, PartialEq)]
struct Got {
    kind: Option<String>,
    insn: Option<u64>,
    message: Option<String>,
    origin: Option<u64>,
}

fn explain(file: &str) -> Result<Got, String> {
    let path = real_dir().join(file);
    let out = Command::new(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["explain", "--json", "--log"])
        .arg(&path)
        .output()
        .map_err(|e| e.to_string())?;
    let json: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "exit {:?}, no JSON ({e}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    let p = &json["programs"][0];
    Ok(Got {
        kind: p["diagnosis"]["kind"].as_str().map(str::to_owned),
        insn: p["error"]["insn"].as_u64(),
        message: p["error"]["message"].as_str().map(str::to_owned),
        origin: p["diagnosis"]["origin"]["insn"].as_u64(),
    })
}

/// What is wrong with `got` for `e`, if anything.
fn mismatches(e: &Entry, got: &Got) -> Vec<String> {
    let mut wrong = Vec::new();
    if got.kind.as_deref() != Some(e.kind.as_str()) {
        wrong.push(format!("kind {:?}, want {}", got.kind, e.kind));
    }
    if got.insn != e.failing_insn {
        wrong.push(format!("insn {:?}, want {:?}", got.insn, e.failing_insn));
    }
    if got.message.as_deref() != Some(e.message.as_str()) {
        wrong.push(format!("message {:?}, want {:?}", got.message, e.message));
    }
    if e.origin_insn.is_some() && got.origin != e.origin_insn {
        wrong.push(format!("origin {:?}, want {:?}", got.origin, e.origin_insn));
    }
    wrong
}

#[test]
fn every_real_log_is_understood() {
    let entries = manifest();
    assert_eq!(entries.len(), 45, "the corpus has 45 logs");
    let mut table = String::new();
    let mut failures = 0;
    let mut passed: Vec<(&str, &str)> = Vec::new();
    for e in &entries {
        let result = explain(&e.file);
        let gap = KNOWN_GAPS.iter().find(|(f, _, _)| *f == e.file);
        let (status, detail) = match (&result, gap) {
            (Err(err), _) => (false, format!("error: {err}")),
            (Ok(got), None) => {
                let wrong = mismatches(e, got);
                if wrong.is_empty() {
                    passed.push((&e.era, &e.wrapper));
                }
                (wrong.is_empty(), wrong.join("; "))
            }
            (Ok(got), Some((_, why, (kind, insn, message, origin)))) => {
                // A known gap must still give today's wrong answer, so
                // that a fix is noticed (and the gap removed).
                let today = Got {
                    kind: Some((*kind).to_owned()),
                    insn: *insn,
                    message: Some((*message).to_owned()),
                    origin: *origin,
                };
                if *got == today {
                    (true, format!("known gap: {why}"))
                } else {
                    (false, format!("known gap changed: now {got:?} ({why})"))
                }
            }
        };
        if !status {
            failures += 1;
        }
        let got = result.as_ref().ok();
        writeln!(
            table,
            "{} {:<58} {:<5} {:<11} | want {:<18} {:>5} {:>5} | got {:<18} {:>5} {:>5} | {}",
            if status { "ok  " } else { "FAIL" },
            e.file,
            e.era,
            e.wrapper,
            e.kind,
            opt(e.failing_insn),
            opt(e.origin_insn),
            got.and_then(|g| g.kind.as_deref()).unwrap_or("-"),
            opt(got.and_then(|g| g.insn)),
            opt(got.and_then(|g| g.origin)),
            detail
        )
        .unwrap();
    }
    eprintln!("{table}");
    eprintln!("{} of {} agree", passed.len(), entries.len());
    assert_eq!(failures, 0, "{failures} files disagree:\n{table}");
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The manifest is what the test reads: every file in the directory has
/// one entry and every entry a file.
#[test]
fn the_manifest_covers_the_directory() {
    let mut files: Vec<String> = std::fs::read_dir(real_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.ends_with(".log").then_some(name)
        })
        .collect();
    files.sort();
    let mut listed: Vec<String> = manifest().into_iter().map(|e| e.file).collect();
    listed.sort();
    assert_eq!(files, listed);
}
