//! Golden tests of what the CLI prints: text and JSON of `show`, `run
//! --count`, `status`, `prog list`, `map list`, `map dump`, `check`,
//! `explain`, `objdump` and `load`, on fixed fixtures, with ids, times,
//! kernel pointers and namespace numbers normalised. They pin the output
//! byte for byte, so that moving code cannot change it unnoticed.
//!
//! `XDPSTAT_BLESS=1 cargo test --test golden` rewrites the files under
//! `tests/golden/` from what the commands print now.

mod common;

use std::{fs, path::Path, process::Output};

use common::{fixture, privileged, settle, VethNs};
use regex::Regex;
use serde_json::Value;

/// Ids, times and addresses that differ from run to run, replaced.
fn normalise(text: &str) -> String {
    let rules: &[(&str, &str)] = &[
        (r"netns:\d+", "netns:N"),
        (r"0xffff[0-9a-f]{12}", "0xPTR"),
        (
            r#""(id|prog_id|map_id|link_id|btf_id|loaded_at|run_time_ns|run_cnt|seconds|pps|bps|verification_time_usec)":-?[0-9.e+-]+"#,
            r#""$1":N"#,
        ),
        (r#""(map_ids|programs)":\[[0-9,]*\]"#, r#""$1":[N]"#),
        (
            r"\b(prog id|map id|link id|link|btf_id|map_ids|id|programs xdpstat_\w+\()\s?\d+",
            "$1 N",
        ),
        (r"(?m)^\d+: ", "N: "),
        (r"\b\d+ us\b", "N us"),
        (r"verification time \d+ usec", "verification time N usec"),
        (r"loaded_at \S+", "loaded_at T"),
    ];
    let mut out = text.to_owned();
    for (pattern, with) in rules {
        out = Regex::new(pattern)
            .unwrap()
            .replace_all(&out, *with)
            .into_owned();
    }
    out
}

/// [`golden`] for a table: its columns line up with the ids' widths, so
/// runs of blanks count as one, and the id columns are normalised.
fn golden_table(name: &str, out: &Output) {
    let text = String::from_utf8_lossy(&out.stdout);
    let spaced = Regex::new(r"(?m)[ \t]{2,}")
        .unwrap()
        .replace_all(&text, "  ");
    // status: INTERFACE IFINDEX MODE PROG-ID ...
    let ids = Regex::new(r"(?m)^(\S+  \d+  \S+  )\d+")
        .unwrap()
        .replace_all(&spaced, "${1}N");
    golden(
        name,
        &Output {
            status: out.status,
            stdout: ids.into_owned().into_bytes(),
            stderr: out.stderr.clone(),
        },
    );
}

/// Compares (or, with XDPSTAT_BLESS, writes) one golden file.
fn golden(name: &str, out: &Output) {
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.stderr.is_empty() {
        text.push_str("--- stderr\n");
        text.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    text.push_str(&format!("--- exit {}\n", out.status.code().unwrap_or(-1)));
    let text = normalise(&text);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    if std::env::var_os("XDPSTAT_BLESS").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &text).unwrap();
        return;
    }
    let want = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (XDPSTAT_BLESS=1 writes it)", path.display()));
    assert_eq!(text, want, "{name}: output differs from {}", path.display());
}

/// Only the entries of a JSON array whose `id` is one of `ids`, and only
/// the text records (a line starting `ID:` and its indented lines) of
/// those ids: the kernel holds other tests' programs and maps too.
fn only_ids(out: &Output, ids: &[u64], json: bool) -> Output {
    let text = String::from_utf8_lossy(&out.stdout);
    let kept = if json {
        let v: Value = serde_json::from_str(&text).unwrap();
        let kept: Vec<&Value> = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["id"].as_u64().is_some_and(|id| ids.contains(&id)))
            .collect();
        serde_json::to_string(&kept).unwrap() + "\n"
    } else {
        let mut kept = String::new();
        let mut keep = false;
        for line in text.lines() {
            if !line.starts_with(char::is_whitespace) {
                keep = line
                    .split(':')
                    .next()
                    .and_then(|id| id.parse::<u64>().ok())
                    .is_some_and(|id| ids.contains(&id));
            }
            if keep {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        kept
    };
    Output {
        status: out.status,
        stdout: kept.into_bytes(),
        stderr: out.stderr.clone(),
    }
}

#[test]
fn counters_and_inspection_print_what_they_printed() {
    if !privileged("counters_and_inspection_print_what_they_printed") {
        return;
    }
    let ns = VethNs::with_names("gold0", "gold1");
    let attached = ns.xdpstat(&["attach", "gold0", "--mode", "generic"]);
    golden("attach", &attached);
    // 3 frames of 64 and 2 of 1514 bytes, all from CPU 0 (generic mode
    // counts on the sending CPU).
    ns.send_frames(vec![64, 64, 64, 1514, 1514], Some(0));
    let total = || {
        let v = ns.show_json("gold0");
        (v["total"]["packets"].as_u64(), v["total"]["bytes"].as_u64())
    };
    assert_eq!(settle(&(Some(5), Some(3220)), total), (Some(5), Some(3220)));
    golden("show", &ns.xdpstat(&["show", "gold0"]));
    golden("show-per-cpu", &ns.xdpstat(&["show", "gold0", "--per-cpu"]));
    golden("show-json", &ns.xdpstat(&["show", "gold0", "--json"]));
    golden(
        "run-count",
        &ns.xdpstat(&["run", "gold0", "--count", "2", "--interval", "100ms"]),
    );
    golden(
        "run-count-json",
        &ns.xdpstat(&[
            "run",
            "gold0",
            "--count",
            "2",
            "--interval",
            "100ms",
            "--json",
        ]),
    );
    golden_table("status", &ns.xdpstat(&["status"]));
    golden("status-json", &ns.xdpstat(&["status", "--json"]));

    let a = ns.show_json("gold0");
    let map_id = a["map_id"].as_u64().unwrap();
    let prog_id = u64::from(ns.xdp_on("gold0")[0].prog_id);
    golden_table(
        "prog-list",
        &only_ids(&ns.xdpstat(&["prog", "list"]), &[prog_id], false),
    );
    golden(
        "prog-list-json",
        &only_ids(&ns.xdpstat(&["prog", "list", "--json"]), &[prog_id], true),
    );
    golden_table(
        "map-list",
        &only_ids(&ns.xdpstat(&["map", "list"]), &[map_id], false),
    );
    golden(
        "map-list-json",
        &only_ids(&ns.xdpstat(&["map", "list", "--json"]), &[map_id], true),
    );
    let id = map_id.to_string();
    golden("map-dump", &ns.xdpstat(&["map", "dump", &id]));
    golden(
        "map-dump-json",
        &ns.xdpstat(&["map", "dump", &id, "--json"]),
    );
    golden("detach", &ns.xdpstat(&["detach", "gold0"]));
}

#[test]
fn the_workbench_prints_what_it_printed() {
    if !privileged("the_workbench_prints_what_it_printed") {
        return;
    }
    let (Some(hash), Some(ok), Some(null)) = (
        fixture("stats_kern/stats_kern_hash.o"),
        fixture("c/ok_parse_eth.o"),
        fixture("c/null_check_hash.o"),
    ) else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_xdpstat");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .output()
            .unwrap()
    };
    // Relative to the workspace, so that the output names no checkout.
    let rel = |p: &Path| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let p = p.canonicalize().unwrap();
        p.strip_prefix(root.canonicalize().unwrap())
            .unwrap()
            .display()
            .to_string()
    };
    let (hash, ok, null) = (rel(&hash), rel(&ok), rel(&null));
    let src = "fixtures/stats_kern";
    let csrc = "fixtures/c";
    golden("check-rejected", &run(&["check", &null, "--src", csrc]));
    golden(
        "check-rejected-json",
        &run(&["check", &null, "--src", csrc, "--json"]),
    );
    golden("check-accepted", &run(&["check", &ok]));
    golden("check-accepted-json", &run(&["check", &ok, "--json"]));
    let log = "fixtures/logs/stats_kern_hash.level1.log";
    golden(
        "explain",
        &run(&["explain", "--log", log, "--obj", &hash, "--src", src]),
    );
    golden(
        "explain-json",
        &run(&[
            "explain", "--log", log, "--obj", &hash, "--src", src, "--json",
        ]),
    );
    golden("explain-no-obj", &run(&["explain", "--log", log]));
    golden("objdump", &run(&["objdump", &hash, "--src", src]));
    golden("objdump-c", &run(&["objdump", &null, "--src", csrc]));

    let ns = VethNs::with_names("gold0", "gold1");
    let load = |args: &[&str]| {
        ns.command(bin)
            .args(args)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .output()
            .unwrap()
    };
    golden(
        "load-rejected",
        &load(&[
            "load", &hash, "--dev", "gold0", "--sec", "stats", "--src", src,
        ]),
    );
    let fixed = rel(&fixture("stats_kern/stats_kern_fixed.o").unwrap());
    golden(
        "load-accepted",
        &load(&[
            "load", &fixed, "--dev", "gold0", "--sec", "stats", "--src", src,
        ]),
    );
    golden("load-show", &load(&["show", "gold0"]));
    golden("load-detach", &load(&["detach", "gold0"]));
}
