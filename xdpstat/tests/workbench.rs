//! The verifier workbench against the real kernel: the tutorial's program
//! through `load`, `check --json`'s shape, and bad input.

mod common;

use std::{io::Write, path::PathBuf, process::Output};

use common::{fixture, privileged, repo, settle, xdpstat, VethNs};
use serde_json::Value;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_usage_error(out: &Output, says: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit 2; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for word in says {
        assert!(err.contains(word), "{err:?} should mention {word:?}");
    }
    assert!(!err.contains("panicked"));
}

#[test]
fn load_reports_the_tutorials_hash_program_at_source_level() {
    if !privileged("load_reports_the_tutorials_hash_program_at_source_level") {
        return;
    }
    let Some(obj) = fixture("stats_kern/stats_kern_hash.o") else {
        return;
    };
    let ns = VethNs::new();
    let out = ns.xdpstat(&[
        "load",
        obj.to_str().unwrap(),
        "--dev",
        &ns.a,
        "--sec",
        "stats",
        "--src",
        &repo(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "rejected: exit 1\n{text}");
    for line in [
        "Prog section 'stats' rejected: Permission denied (13)!",
        " - Type:         6",
        " - Instructions: 15 (0 over limit)",
        " - License:      GPL",
        "Verifier analysis:",
        "R0 invalid mem access 'map_value_or_null'",
        "Diagnosis: null-check",
    ] {
        assert!(
            text.lines().any(|l| l == line || l.starts_with(line)),
            "missing {line:?} in\n{text}"
        );
    }
    // The failing instruction carries its source line.
    let failing = text
        .lines()
        .find(|l| l.starts_with("10: (db) lock *(u64 *)(r0 +0) += r1"))
        .expect("insn 10");
    assert!(
        failing.contains("__sync_fetch_and_add(&cnt->packets, 1)"),
        "{failing}"
    );
    // The origin is the lookup.
    let origin = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("origin:"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        origin.contains("bpf_map_lookup_elem(&counters, &counter_idx)"),
        "{text}"
    );
    assert!(text.contains("if (!cnt) return XDP_ABORTED;"), "{text}");
    // Nothing attached, nothing pinned.
    assert!(!ns.pin_dir(&ns.a).exists());
    let ifindex = ns.ifindex(&ns.a);
    assert!(ns.run(move || xdpstat::kernel::netlink::interface(ifindex)
        .unwrap()
        .unwrap()
        .xdp
        .is_empty()));
}

#[test]
fn load_attaches_the_fixed_tutorial_program_and_show_reads_its_map() {
    if !privileged("load_attaches_the_fixed_tutorial_program_and_show_reads_its_map") {
        return;
    }
    let Some(obj) = fixture("stats_kern/stats_kern_fixed.o") else {
        return;
    };
    let ns = VethNs::new();
    let out = ns.xdpstat_ok(&["load", obj.to_str().unwrap(), "--dev", &ns.a]);
    assert!(out.contains("attached stats_fn"), "{out}");
    assert!(
        ns.pin_dir(&ns.a).counters().exists(),
        "the tutorial's map `counters` is pinned by name"
    );
    ns.send_frames(vec![60, 100, 1514], None);
    let totals = settle(&(3, 1674), || {
        let j = ns.show_json(&ns.a);
        (
            j["total"]["packets"].as_u64().unwrap(),
            j["total"]["bytes"].as_u64().unwrap(),
        )
    });
    assert_eq!(totals, (3, 1674));
    let again = ns.xdpstat(&["load", obj.to_str().unwrap(), "--dev", &ns.a]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "a second load is refused without --force"
    );
    ns.xdpstat_ok(&["detach", &ns.a]);
    assert!(!ns.pin_dir(&ns.a).exists());
}

#[test]
fn check_json_has_the_documented_shape() {
    if !privileged("check_json_has_the_documented_shape") {
        return;
    }
    let (Some(hash), Some(array)) = (
        fixture("stats_kern/stats_kern_hash.o"),
        fixture("stats_kern/stats_kern.o"),
    ) else {
        return;
    };
    let out = xdpstat(&["check", hash.to_str().unwrap(), "--json", "--src", &repo()]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &json["programs"][0];
    assert_eq!(p["section"], "stats");
    assert_eq!(p["name"], "stats_fn");
    assert_eq!(p["accepted"], false);
    assert!(p["stats"]["insns_processed"].as_u64().unwrap() > 0);
    assert_eq!(p["error"]["insn"], 10);
    assert_eq!(
        p["error"]["message"],
        "R0 invalid mem access 'map_value_or_null'"
    );
    assert!(p["error"]["source"]["file"]
        .as_str()
        .unwrap()
        .ends_with("stats_kern_hash.c"));
    assert!(p["error"]["source"]["line"].as_u64().is_some());
    assert!(p["error"]["source"]["text"]
        .as_str()
        .unwrap()
        .contains("__sync_fetch_and_add(&cnt->packets, 1)"));
    assert_eq!(p["diagnosis"]["kind"], "null-check");
    assert!(!p["diagnosis"]["summary"].as_str().unwrap().is_empty());
    assert_eq!(p["diagnosis"]["origin"]["insn"], 8);
    assert!(p["diagnosis"]["origin"]["source"]["line"]
        .as_u64()
        .is_some());
    assert!(p["diagnosis"]["fix"]
        .as_str()
        .unwrap()
        .contains("if (!cnt)"));
    assert!(
        p["warnings"].as_array().unwrap().is_empty(),
        "the error is not repeated as a warning"
    );

    // The ARRAY version: 6.18 accepts it, with a portability warning (exit
    // 0 unless --strict); 6.1 and 6.12 reject it (fixtures/expected.json),
    // and the warning's text becomes the diagnosis.
    let out = xdpstat(&["check", array.to_str().unwrap(), "--json", "--src", &repo()]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &json["programs"][0];
    let expected = common::expected_entry("stats_kern/stats_kern.o", "stats_fn");
    if expected["accepted"] == false {
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(p["accepted"], false);
        assert_eq!(p["error"]["message"], expected["message"]);
        assert_eq!(p["error"]["insn"], 10);
        assert_eq!(p["diagnosis"]["kind"], "null-check");
        assert_eq!(p["diagnosis"]["origin"]["insn"], 8);
        assert!(p["diagnosis"]["fix"]
            .as_str()
            .unwrap()
            .contains("if (!cnt) return XDP_ABORTED;"));
        return;
    }
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(p["accepted"], true);
    assert!(p["error"].is_null() && p["diagnosis"].is_null());
    let w = &p["warnings"][0];
    assert_eq!(w["kind"], "null-check");
    assert_eq!(w["insn"], 10);
    assert!(w["source"]["text"]
        .as_str()
        .unwrap()
        .contains("__sync_fetch_and_add(&cnt->packets, 1)"));
    assert!(!w["summary"].as_str().unwrap().is_empty());
    assert!(w["fix"]
        .as_str()
        .unwrap()
        .contains("if (!cnt) return XDP_ABORTED;"));
    assert_eq!(w["origin"]["insn"], 8);
    let strict = xdpstat(&["check", array.to_str().unwrap(), "--strict"]);
    assert_eq!(strict.status.code(), Some(1), "--strict fails on warnings");
}

#[test]
fn bad_objects_and_logs_are_usage_errors() {
    let dir = tempdir();
    let text = dir.join("notes.o");
    std::fs::write(&text, "this is not an object\n").unwrap();
    let whole = xdpstat::model::layout::Layout::Percpu.object();
    let truncated = dir.join("truncated.o");
    std::fs::write(&truncated, &whole[..whole.len() / 3]).unwrap();
    let ok = dir.join("percpu.o");
    std::fs::write(&ok, whole).unwrap();
    let x86 = dir.join("x86.o");
    std::fs::copy(env!("CARGO_BIN_EXE_xdpstat"), &x86).unwrap();

    for cmd in ["check", "objdump"] {
        assert_usage_error(
            &xdpstat(&[cmd, text.to_str().unwrap()]),
            &["not a valid ELF object"],
        );
        assert_usage_error(
            &xdpstat(&[cmd, truncated.to_str().unwrap()]),
            &["truncated"],
        );
        assert_usage_error(&xdpstat(&[cmd, x86.to_str().unwrap()]), &["not BPF"]);
        assert_usage_error(&xdpstat(&[cmd, "/nonexistent/x.o"]), &["cannot read"]);
        assert_usage_error(
            &xdpstat(&[cmd, ok.to_str().unwrap(), "--sec", "nosuch"]),
            &["no section 'nosuch'", "xdp"],
        );
    }
    assert_usage_error(
        &xdpstat(&["explain", "--log", "/nonexistent.log"]),
        &["cannot read the log"],
    );
    assert_usage_error(
        &xdpstat(&["load", ok.to_str().unwrap(), "--dev", "nosuch0"]),
        &["no interface named"],
    );

    // A garbage log is refused, not crashed on nor echoed.
    let garbage = dir.join("garbage.log");
    let mut f = std::fs::File::create(&garbage).unwrap();
    f.write_all(b"\x00\xff\xfegarbage\n12: (zz) ???\nfrom x to y\n")
        .unwrap();
    let out = xdpstat(&["explain", "--log", garbage.to_str().unwrap(), "--json"]);
    assert_usage_error(&out, &["is not a verifier log", "binary content"]);
    assert!(out.stdout.is_empty());
    // Text without one verifier line in it is refused too, but a log the
    // kernel cut down to its error message is still explained.
    std::fs::write(&garbage, "12: (zz) ???\nfrom x to y\n").unwrap();
    assert_usage_error(
        &xdpstat(&["explain", "--log", garbage.to_str().unwrap()]),
        &["is not a verifier log", "no line looks like"],
    );
    std::fs::write(&garbage, "R0 invalid mem access 'map_value_or_null'\n").unwrap();
    let out = xdpstat(&["explain", "--log", garbage.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).expect("a report");
    assert_eq!(json["programs"][0]["diagnosis"]["kind"], "null-check");
    let empty = dir.join("empty.log");
    std::fs::write(&empty, "").unwrap();
    let out = xdpstat(&["explain", "--log", empty.to_str().unwrap(), "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["programs"][0]["truncated"], true);
    assert!(json["programs"][0]["accepted"].is_null());
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xdpstat-wb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
