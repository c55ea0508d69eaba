//! Exact counts on a real veth pair: K frames of known lengths in, exactly
//! K packets and the sum of the lengths in bytes out, read through
//! `xdpstat show --json`, the library API and (when installed) bpftool.

mod common;

use std::{process::Command, thread};

use common::{have_tool, privileged, settle, VethNs};
use serde_json::Value;
use xdpstat::model::counters::CountersMap;
use xdpstat::model::layout::Layout;

/// Frame lengths from the 42-byte ARP-sized minimum to a full 1514-byte
/// frame, so that a wrong length computation cannot hide in the sum.
fn lengths(rounds: usize) -> Vec<usize> {
    let one = [42, 60, 64, 65, 100, 333, 512, 1000, 1500, 1514];
    one.iter()
        .copied()
        .cycle()
        .take(one.len() * rounds)
        .collect()
}

fn totals(json: &Value) -> (u64, u64) {
    (
        json["total"]["packets"].as_u64().expect("total.packets"),
        json["total"]["bytes"].as_u64().expect("total.bytes"),
    )
}

/// Sums a bpftool `-j map dump` of a counters map (formatted with BTF).
fn bpftool_totals(pin: &str) -> (u64, u64) {
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned", pin])
        .output()
        .expect("bpftool runs");
    assert!(
        out.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump: Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    // `-j` gives raw hex bytes plus, with BTF, a "formatted" copy by field.
    let element = &dump[0]["formatted"];
    let values: Vec<&Value> = match element.get("values") {
        Some(per_cpu) => per_cpu
            .as_array()
            .unwrap()
            .iter()
            .map(|v| &v["value"])
            .collect(),
        None => vec![&element["value"]],
    };
    values.iter().fold((0, 0), |(p, b), v| {
        (
            p + v["packets"].as_u64().unwrap(),
            b + v["bytes"].as_u64().unwrap(),
        )
    })
}

fn check_exact_counts(test: &str, mode: &str, layout: Layout) {
    if !privileged(test) {
        return;
    }
    let ns = VethNs::new();
    let attached: Value = serde_json::from_str(&ns.xdpstat_ok(&[
        "attach",
        &ns.a,
        "--mode",
        mode,
        "--map",
        layout.name(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(attached["mode"], mode, "attached in the requested mode");
    assert_eq!(attached["layout"], layout.name());

    let frames = lengths(5);
    let k = frames.len() as u64;
    let bytes: u64 = frames.iter().map(|&l| l as u64).sum();
    ns.send_frames(frames, None);

    let json = settle(&(k, bytes), || totals(&ns.show_json(&ns.a)));
    assert_eq!(json, (k, bytes), "exactly K frames and their bytes");

    let shown = ns.show_json(&ns.a);
    assert_eq!(shown["interface"], ns.a.as_str());
    assert_eq!(shown["map"], layout.name());
    let cpus = shown["cpus"].as_array().expect("cpus is an array");
    match layout {
        Layout::Percpu => {
            let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap();
            let n = xdpstat::kernel::map::parse_cpu_list(&possible)
                .unwrap()
                .len();
            assert_eq!(cpus.len(), n, "one entry per possible CPU");
            let sum = cpus.iter().fold((0, 0), |(p, b), c| {
                (
                    p + c["packets"].as_u64().unwrap(),
                    b + c["bytes"].as_u64().unwrap(),
                )
            });
            assert_eq!(sum, (k, bytes), "per-CPU values sum to the total");
        }
        Layout::Shared => assert!(cpus.is_empty(), "a shared map has no per-CPU entries"),
    }

    // The library API reads the same pinned map.
    let snapshot = CountersMap::open(&ns.pin_dir(&ns.a).counters())
        .expect("open pinned counters")
        .read()
        .expect("read counters");
    assert_eq!((snapshot.total.packets, snapshot.total.bytes), (k, bytes));
    assert_eq!(snapshot.layout, layout);

    if have_tool("bpftool") {
        let pin = ns.pin_dir(&ns.a).counters();
        assert_eq!(
            bpftool_totals(pin.to_str().unwrap()),
            (k, bytes),
            "bpftool agrees"
        );
    }

    ns.xdpstat_ok(&["detach", &ns.a]);
}

#[test]
fn native_percpu_counts_exactly() {
    check_exact_counts("native_percpu_counts_exactly", "native", Layout::Percpu);
}

#[test]
fn native_shared_counts_exactly() {
    check_exact_counts("native_shared_counts_exactly", "native", Layout::Shared);
}

#[test]
fn generic_percpu_counts_exactly() {
    check_exact_counts("generic_percpu_counts_exactly", "generic", Layout::Percpu);
}

#[test]
fn generic_shared_counts_exactly() {
    check_exact_counts("generic_shared_counts_exactly", "generic", Layout::Shared);
}

/// Two senders pinned to different CPUs at once: the shared map's atomic
/// adds must not lose a single increment.
fn check_two_cpus_shared(test: &str, mode: &str) {
    if !privileged(test) {
        return;
    }
    let cpus = thread::available_parallelism().map_or(1, usize::from);
    assert!(cpus >= 2, "{test} needs two CPUs, this machine has {cpus}");
    let ns = VethNs::new();
    ns.xdpstat_ok(&["attach", &ns.a, "--mode", mode, "--map", "shared"]);

    let per_thread = lengths(200);
    let k = 2 * per_thread.len() as u64;
    let bytes = 2 * per_thread.iter().map(|&l| l as u64).sum::<u64>();
    thread::scope(|s| {
        for cpu in 0..2 {
            let ns = &ns;
            let frames = per_thread.clone();
            s.spawn(move || ns.send_frames(frames, Some(cpu)));
        }
    });

    let got = settle(&(k, bytes), || totals(&ns.show_json(&ns.a)));
    assert_eq!(got, (k, bytes), "no increment lost across CPUs");
    ns.xdpstat_ok(&["detach", &ns.a]);
}

#[test]
fn shared_counts_exactly_from_two_cpus_generic() {
    check_two_cpus_shared("shared_counts_exactly_from_two_cpus_generic", "generic");
}

#[test]
fn shared_counts_exactly_from_two_cpus_native() {
    check_two_cpus_shared("shared_counts_exactly_from_two_cpus_native", "native");
}

/// The same two pinned senders against the per-CPU layout in generic mode,
/// where each frame is processed on the CPU that sent it: each CPU's slot
/// holds exactly its sender's frames. This also shows the two-CPU tests
/// above really run the program on both CPUs at once.
#[test]
fn percpu_slots_hold_each_cpus_frames_generic() {
    if !privileged("percpu_slots_hold_each_cpus_frames_generic") {
        return;
    }
    let ns = VethNs::new();
    ns.xdpstat_ok(&["attach", &ns.a, "--mode", "generic", "--map", "percpu"]);
    let per_thread = lengths(100);
    let k = per_thread.len() as u64;
    let bytes = per_thread.iter().map(|&l| l as u64).sum::<u64>();
    thread::scope(|s| {
        for cpu in 0..2 {
            let ns = &ns;
            let frames = per_thread.clone();
            s.spawn(move || ns.send_frames(frames, Some(cpu)));
        }
    });
    settle(&(2 * k, 2 * bytes), || totals(&ns.show_json(&ns.a)));
    let shown = ns.show_json(&ns.a);
    for cpu in 0..2 {
        let slot = &shown["cpus"][cpu];
        assert_eq!(slot["cpu"], cpu);
        assert_eq!(
            (slot["packets"].as_u64(), slot["bytes"].as_u64()),
            (Some(k), Some(bytes)),
            "CPU {cpu}"
        );
    }
    ns.xdpstat_ok(&["detach", &ns.a]);
}
