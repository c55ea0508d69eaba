//! The tutorial (../shared/reference/stats-exercise.md), end to end, with
//! xdpstat in place of ip, bpftool and stats_user: load the fixed program,
//! send K frames, find its map, dump it, pin it by id, and read it with
//! `show --map-path`. Exact counts at every step, and bpftool agrees.

mod common;

use std::{path::PathBuf, process::Command};

use common::{fixture, have_tool, privileged, settle, VethNs};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Sums a `map dump --json` (bpftool's `-j` shape) of tutorial counters:
/// key 0, values of two native-endian u64s, per CPU or not.
fn dump_totals(dump: &Value) -> (u64, u64) {
    let entry = &dump[0];
    let hex_u64 = |bytes: &[Value], at: usize| -> u64 {
        let raw: Vec<u8> = bytes[at..at + 8]
            .iter()
            .map(|b| u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
            .collect();
        u64::from_ne_bytes(raw.try_into().unwrap())
    };
    let values: Vec<&Vec<Value>> = match entry.get("values") {
        Some(per_cpu) => per_cpu
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["value"].as_array().unwrap())
            .collect(),
        None => vec![entry["value"].as_array().unwrap()],
    };
    values
        .iter()
        .fold((0, 0), |(p, b), v| (p + hex_u64(v, 0), b + hex_u64(v, 8)))
}

/// Removes a pin when the test ends, however it ends.
struct Pin(PathBuf);

impl Drop for Pin {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tutorial(test: &str, object: &str, map_type: &str) {
    if !privileged(test) {
        return;
    }
    let Some(obj) = fixture(object) else { return };
    let ns = VethNs::new();

    // 1. `ip link set dev … xdp obj stats_kern.o sec stats`
    ns.xdpstat_ok(&[
        "load",
        obj.to_str().unwrap(),
        "--dev",
        &ns.a,
        "--sec",
        "stats",
    ]);

    // 2. Traffic: K frames of known lengths.
    let frames = vec![60, 64, 100, 333, 1000, 1514, 42, 60, 60, 1500];
    let k = frames.len() as u64;
    let bytes: u64 = frames.iter().map(|&l| l as u64).sum();
    ns.send_frames(frames, None);

    // 3. `bpftool prog list` / `map list`: find the program and its map.
    let status = json(&ns.xdpstat_ok(&["status", "--json"]));
    let prog_id = status
        .as_array()
        .or_else(|| status["interfaces"].as_array())
        .expect("status lists interfaces")
        .iter()
        .find(|i| i["interface"] == ns.a.as_str())
        .map(|i| i["prog_id"].as_u64().expect("prog_id"))
        .expect("the veth is in status");
    let progs = json(&ns.xdpstat_ok(&["prog", "list", "--json"]));
    let prog = progs
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"].as_u64() == Some(prog_id))
        .expect("prog list shows the program");
    let map_id = prog["map_ids"][0].as_u64().expect("the program uses a map");
    let maps = json(&ns.xdpstat_ok(&["map", "list", "--json"]));
    let map = maps
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"].as_u64() == Some(map_id))
        .expect("map list shows the map");
    assert_eq!(map["type"], map_type);
    assert_eq!(map["name"], "counters");
    assert_eq!(map["bytes_key"], 4);
    assert_eq!(map["bytes_value"], 16);

    // 4. `bpftool map dump id N`
    let id = map_id.to_string();
    let dump = settle(&(k, bytes), || {
        dump_totals(&json(&ns.xdpstat_ok(&["map", "dump", &id, "--json"])))
    });
    assert_eq!(dump, (k, bytes), "map dump shows exactly K frames");
    let text = ns.xdpstat_ok(&["map", "dump", &id]);
    assert!(text.trim_end().ends_with("Found 1 element"), "{text}");
    if map_type == "percpu_array" {
        assert!(text.contains("value (CPU 00):"), "{text}");
    }
    if have_tool("bpftool") {
        let out = Command::new("bpftool")
            .args(["-j", "map", "dump", "id", &id])
            .output()
            .unwrap();
        let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ours = json(&ns.xdpstat_ok(&["map", "dump", &id, "--json"]));
        assert_eq!(ours, theirs, "xdpstat and bpftool dump the same");
    }

    // 5. `bpftool map pin id N /sys/fs/bpf/counters`
    let pin = Pin(PathBuf::from(format!("/sys/fs/bpf/{}-counters", ns.ns)));
    ns.xdpstat_ok(&["map", "pin", &id, pin.0.to_str().unwrap()]);

    // 6. `stats_user`
    let shown = json(&ns.xdpstat_ok(&["show", "--map-path", pin.0.to_str().unwrap(), "--json"]));
    assert_eq!(shown["total"]["packets"], k);
    assert_eq!(shown["total"]["bytes"], bytes);
    let per_cpu: u64 = shown["cpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["packets"].as_u64().unwrap())
        .sum();
    match map_type {
        "percpu_array" => assert_eq!(per_cpu, k, "per-CPU values sum to the total"),
        _ => assert_eq!(per_cpu, 0, "a shared array has no per-CPU values"),
    }
    let text = ns.xdpstat_ok(&["show", "--map-path", pin.0.to_str().unwrap()]);
    assert!(
        text.contains(&format!(
            "Overall:\n\tPackets: {k}\n\tBytes:   {bytes} Bytes"
        )),
        "{text}"
    );

    ns.xdpstat_ok(&["map", "unpin", pin.0.to_str().unwrap()]);
    ns.xdpstat_ok(&["detach", &ns.a]);
}

#[test]
fn tutorial_solution_1_shared_array() {
    tutorial(
        "tutorial_solution_1_shared_array",
        "stats_kern/stats_kern_fixed.o",
        "array",
    );
}

#[test]
fn tutorial_solution_2_percpu_array() {
    tutorial(
        "tutorial_solution_2_percpu_array",
        "stats_kern/stats_kern_percpu.o",
        "percpu_array",
    );
}

#[test]
fn show_refuses_a_map_of_the_wrong_shape() {
    if !privileged("show_refuses_a_map_of_the_wrong_shape") {
        return;
    }
    // A program with a hash map, loaded and pinned by `load`.
    let Some(hash_obj) = fixture("rust/ok_hash_checked.o") else {
        return;
    };
    let ns = VethNs::new();
    ns.xdpstat_ok(&["load", hash_obj.to_str().unwrap(), "--dev", &ns.a]);
    let dir = ns.pin_dir(&ns.a);
    let hash_pin = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n != "link" && n != "prog"))
        .expect("the fixture's map is pinned");
    let out = ns.xdpstat(&["show", "--map-path", hash_pin.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("expected an array or percpu_array"), "{err}");
    assert!(err.contains("found hash"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1);
    ns.xdpstat_ok(&["detach", &ns.a]);
}
