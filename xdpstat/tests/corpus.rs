//! The corpus of broken programs (C and Rust, fixtures/expected.json),
//! checked in the real kernel: for each program, the verdict, the error
//! message, the diagnosis kind, the error's source line and the origin's
//! source line must be what the manifest says.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct Expected {
    object: String,
    source: String,
    section: String,
    program: String,
    accepted: bool,
    kind: Option<String>,
    message: Option<String>,
    error_line: Option<u64>,
    origin_line: Option<u64>,
    warning: Option<String>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// The manifest, with the running kernel's own expectations where they
/// differ (`kernels.<line>`).
fn manifest() -> Vec<Expected> {
    common::expected_manifest()
        .into_iter()
        .map(|e| serde_json::from_value(e).expect("a valid manifest entry"))
        .collect()
}

/// Checks one program; returns what did not match.
fn check_one(e: &Expected) -> Result<(), String> {
    let obj = fixtures().join("build").join(&e.object);
    if !obj.is_file() {
        return Err(format!(
            "{} is missing: run `cargo xtask build-fixtures`",
            obj.display()
        ));
    }
    let repo = fixtures().join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["check", "--json", "--sec", &e.program, "--src"])
        .arg(&repo)
        .arg(&obj)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout)
        .map_err(|err| format!("no JSON ({err}): {}", String::from_utf8_lossy(&out.stderr)))?;
    let p = json["programs"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == e.program.as_str()))
        .ok_or("program missing from the report")?;
    let mut wrong = Vec::new();
    let mut expect = |what: &str, got: Value, want: Value| {
        if got != want {
            wrong.push(format!("{what}: got {got}, want {want}"));
        }
    };
    expect("section", p["section"].clone(), e.section.clone().into());
    expect("accepted", p["accepted"].clone(), e.accepted.into());
    let source_file = Path::new(&e.source)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let line_of = |v: &Value| -> Value {
        let file = v["source"]["file"].as_str().unwrap_or_default();
        if file.ends_with(&source_file) {
            v["source"]["line"].clone()
        } else {
            Value::String(format!("{file}:{}", v["source"]["line"]))
        }
    };
    if e.accepted {
        expect("code", out.status.code().into(), 0.into());
        if let Some(kind) = &e.warning {
            let w = &p["warnings"][0];
            expect("warning kind", w["kind"].clone(), kind.clone().into());
            expect("warning line", line_of(w), e.error_line.into());
            expect(
                "warning origin line",
                line_of(&w["origin"]),
                e.origin_line.into(),
            );
        } else {
            expect("warnings", p["warnings"].clone(), Value::Array(Vec::new()));
        }
    } else {
        expect("code", out.status.code().into(), 1.into());
        expect(
            "message",
            p["error"]["message"].clone(),
            e.message.clone().into(),
        );
        expect(
            "kind",
            p["diagnosis"]["kind"].clone(),
            e.kind.clone().into(),
        );
        expect("error line", line_of(&p["error"]), e.error_line.into());
        if e.origin_line.is_some() {
            expect(
                "origin line",
                line_of(&p["diagnosis"]["origin"]),
                e.origin_line.into(),
            );
        }
        for field in ["summary", "fix"] {
            if p["diagnosis"][field].as_str().is_none_or(str::is_empty) {
                wrong.push(format!("empty {field}"));
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

fn check_corpus(test: &str, filter: impl Fn(&Expected) -> bool) {
    if !common::privileged(test) {
        return;
    }
    let entries: Vec<Expected> = manifest().into_iter().filter(|e| filter(e)).collect();
    assert!(!entries.is_empty(), "no fixtures selected");
    let mut failures = Vec::new();
    for e in &entries {
        match check_one(e) {
            Ok(()) => eprintln!("ok   {} {}", e.object, e.program),
            Err(why) => failures.push(format!("{} ({}): {why}", e.object, e.program)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures differ:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
}

/// The 1M-instruction fixtures take seconds each to verify; they get their
/// own test so the rest run in parallel with them.
fn is_slow(e: &Expected) -> bool {
    e.kind.as_deref() == Some("complexity") && e.object.contains("runtime")
}

#[test]
fn c_corpus_matches_the_kernel() {
    check_corpus("c_corpus_matches_the_kernel", |e| {
        !e.object.starts_with("rust/") && !is_slow(e)
    });
}

#[test]
fn rust_corpus_matches_the_kernel() {
    check_corpus("rust_corpus_matches_the_kernel", |e| {
        e.object.starts_with("rust/") && !is_slow(e)
    });
}

#[test]
fn a_runaway_c_loop_is_diagnosed_as_complexity() {
    check_corpus("a_runaway_c_loop_is_diagnosed_as_complexity", |e| {
        is_slow(e) && e.object.starts_with("c/")
    });
}

#[test]
fn a_runaway_rust_loop_is_diagnosed_as_complexity() {
    check_corpus("a_runaway_rust_loop_is_diagnosed_as_complexity", |e| {
        is_slow(e) && e.object.starts_with("rust/")
    });
}
