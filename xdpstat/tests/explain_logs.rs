//! `xdpstat explain` on saved verifier logs (fixtures/logs): the forms
//! loaders print them in, with and without the object, at log levels 1
//! and 2, truncated at the head or the tail. No kernel needed.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn log(name: &str) -> String {
    fixtures().join("logs").join(name).display().to_string()
}

/// A built object's path, as a string.
fn object(rel: &str) -> Option<String> {
    common::fixture(rel).map(|p| p.display().to_string())
}

/// Runs `explain --json` and returns (exit code, the one program).
fn explain(args: &[&str]) -> (i32, Value) {
    let repo = fixtures().join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["explain", "--json", "--src", repo.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        json["programs"].as_array().map(Vec::len),
        Some(1),
        "one program"
    );
    (out.status.code().unwrap(), json["programs"][0].clone())
}

fn line(v: &Value) -> Option<u64> {
    v["source"]["line"].as_u64()
}

#[test]
fn the_tutorial_log_in_every_form() {
    let obj = object("stats_kern/stats_kern_hash.o");
    for name in [
        "stats_kern_hash.level1.log",
        "stats_kern_hash.no-linfo.log",
        "stats_kern_hash.old-linfo.log",
        "stats_kern_hash.iproute2.log",
    ] {
        let (code, p) = explain(&["--log", &log(name)]);
        assert_eq!(code, 1, "{name}");
        assert_eq!(p["accepted"], false, "{name}");
        assert_eq!(p["truncated"], false, "{name}");
        assert_eq!(p["error"]["insn"], 10, "{name}");
        assert_eq!(
            p["error"]["message"],
            "R0 invalid mem access 'map_value_or_null'"
        );
        assert_eq!(p["diagnosis"]["kind"], "null-check", "{name}");
        assert_eq!(p["diagnosis"]["origin"]["insn"], 8, "{name}: the lookup");
        if name == "stats_kern_hash.level1.log" {
            // The kernel's own annotations give the lines without an object.
            assert_eq!(line(&p["error"]), Some(26));
            assert_eq!(line(&p["diagnosis"]["origin"]), Some(24));
        }
        // With the object, every form gets the lines from its BTF line info,
        // even when the log has no annotations at all.
        if let Some(obj) = &obj {
            let (_, p) = explain(&["--log", &log(name), "--obj", obj]);
            assert_eq!(line(&p["error"]), Some(26), "{name}");
            assert!(p["error"]["source"]["text"]
                .as_str()
                .unwrap()
                .contains("__sync_fetch_and_add(&cnt->packets, 1)"));
            assert_eq!(line(&p["diagnosis"]["origin"]), Some(24), "{name}");
            assert_eq!(p["insn_count"], 15);
        }
    }
    let (_, p) = explain(&["--log", &log("stats_kern_hash.iproute2.log")]);
    assert_eq!(p["section"], "stats");
    assert_eq!(p["errno"], "Permission denied (13)");
    assert_eq!(p["license"], "GPL");
}

#[test]
fn level_two_logs_follow_the_value_through_a_spill() {
    let (code, p) = explain(&["--log", &log("null_check_spill.level2.log")]);
    assert_eq!(code, 1);
    assert_eq!(p["diagnosis"]["kind"], "null-check");
    assert_eq!(
        p["error"]["message"],
        "R1 invalid mem access 'map_value_or_null'"
    );
    let origin = &p["diagnosis"]["origin"];
    assert!(
        origin["text"]
            .as_str()
            .unwrap()
            .starts_with("call bpf_map_lookup_elem"),
        "{origin}"
    );
    let (_, level1) = explain(&["--log", &log("null_check_spill.level1-stats.log")]);
    assert_eq!(
        level1["diagnosis"]["origin"]["insn"], origin["insn"],
        "same origin at level 1"
    );
    assert!(level1["stats"]["verification_time_usec"].as_u64().is_some());
    assert_eq!(level1["stats"]["stack_depth"][0], 16);
}

#[test]
fn reference_leaks_point_at_the_reservation() {
    for name in [
        "ref_leak_ringbuf.level2.log",
        "ref_leak_ringbuf.rotated.log",
    ] {
        let (_, p) = explain(&["--log", &log(name)]);
        assert_eq!(p["diagnosis"]["kind"], "reference-leak", "{name}");
        assert_eq!(p["diagnosis"]["origin"]["insn"], 5, "{name}: alloc_insn");
        assert_eq!(
            p["error"]["message"],
            "Unreleased reference id=2 alloc_insn=5"
        );
    }
}

#[test]
fn a_truncated_log_is_reported_as_truncated() {
    let (code, p) = explain(&["--log", &log("ref_leak_ringbuf.truncated.log")]);
    assert_eq!(code, 1);
    assert_eq!(p["truncated"], true);
    assert!(p["accepted"].is_null(), "no verdict in a truncated log");
    assert!(p["diagnosis"].is_null());
    // And the text form says so.
    let out = Command::new(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["explain", "--log", &log("ref_leak_ringbuf.truncated.log")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("truncated"), "{text}");
}

#[test]
fn a_cut_complexity_log_is_still_diagnosed() {
    let (_, p) = explain(&["--log", &log("complexity_runtime_loop.head-tail.log")]);
    assert_eq!(p["diagnosis"]["kind"], "complexity");
    assert_eq!(p["stats"]["insns_processed"], 1_000_001);
    assert!(
        p["diagnosis"]["origin"]["text"]
            .as_str()
            .unwrap()
            .starts_with("if "),
        "the loop's branch"
    );
}

#[test]
fn a_rust_log_gets_the_programs_own_lines_from_dwarf() {
    let Some(obj) = object("rust/null_check_hash.o") else {
        return;
    };
    let (_, p) = explain(&[
        "--log",
        &log("rust_null_check_hash.level1.log"),
        "--obj",
        &obj,
    ]);
    assert_eq!(p["diagnosis"]["kind"], "null-check");
    let origin = &p["diagnosis"]["origin"]["source"];
    assert!(
        origin["file"]
            .as_str()
            .unwrap()
            .ends_with("null_check_hash.rs"),
        "{origin}"
    );
    assert_eq!(
        origin["line"], 18,
        "the get_ptr_mut() call, not aya's helpers.rs"
    );
    assert_eq!(p["error"]["source"]["line"], 19);
    assert!(p["diagnosis"]["fix"]
        .as_str()
        .unwrap()
        .contains("let Some(count)"));
}

#[test]
fn explain_reads_standard_input() {
    let text = std::fs::read(log("stats_kern_hash.level1.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["explain", "--log", "-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &text).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["programs"][0]["diagnosis"]["kind"], "null-check");
}
