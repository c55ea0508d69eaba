//! `status`, `prog list`, `map list`, `map pin` and `map unpin` against the
//! real kernel, cross-checked with bpftool.
//!
//! Programs and maps are global, and other tests load and unload theirs
//! meanwhile: every assertion is about the objects this test made, found
//! by id, never about totals.

mod common;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::Duration,
};

use common::{assert_fails, have_tool, privileged, settle, stderr, VethNs};
use serde_json::Value;
use xdpstat::kernel::netlink;

fn json(ns: &VethNs, args: &[&str]) -> Value {
    let text = ns.xdpstat_ok(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

/// Attaches xdpstat's program to `ns.a`; returns `attach --json`.
fn attach(ns: &VethNs, mode: &str) -> Value {
    json(ns, &["attach", &ns.a, "--mode", mode, "--json"])
}

/// The entry with `"id": id` in a JSON list.
fn by_id(list: &Value, id: u64) -> &Value {
    list.as_array()
        .expect("a JSON list")
        .iter()
        .find(|v| v["id"].as_u64() == Some(id))
        .unwrap_or_else(|| panic!("no entry with id {id}"))
}

fn bpftool_json(args: &[&str]) -> Value {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .expect("run bpftool");
    assert!(out.status.success(), "bpftool {args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("bpftool -j prints JSON")
}

static PINS: AtomicU32 = AtomicU32::new(0);

/// A fresh pin path on bpffs, removed on drop even when the test fails.
struct PinGuard(PathBuf);

impl PinGuard {
    fn new() -> Self {
        let n = PINS.fetch_add(1, Ordering::Relaxed);
        Self(PathBuf::from(format!(
            "/sys/fs/bpf/xdpstat-test-inspect-{}-{n}",
            std::process::id()
        )))
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn status_tells_xdpstats_attachment_from_another_loaders() {
    if !privileged("status_tells_xdpstats_attachment_from_another_loaders") {
        return;
    }
    let ns = VethNs::new();
    let ours = attach(&ns, "native");
    let foreign = ns.attach_foreign(&ns.b, netlink::XDP_FLAGS_SKB_MODE);

    let status = json(&ns, &["status", "--json"]);
    let entry = |iface: &str| -> &Value {
        let found: Vec<&Value> = status
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["interface"] == iface)
            .collect();
        assert_eq!(found.len(), 1, "one program on {iface}: {status}");
        found[0]
    };
    let a = entry(&ns.a);
    assert_eq!(a["owner"], "xdpstat");
    assert_eq!(a["mode"], "native");
    assert_eq!(a["prog_id"], ours["prog_id"]);
    assert_eq!(a["ifindex"], ns.ifindex(&ns.a));
    assert_eq!(a["name"], "xdpstat_percpu");
    assert_eq!(a["held_by"], "link");
    assert!(a["link_id"].as_u64().is_some(), "{a}");
    assert_eq!(a["tag"].as_str().unwrap().len(), 16);
    assert_eq!(a["pin_dir"], ours["pin_dir"]);

    let b = entry(&ns.b);
    assert_eq!(b["owner"], "other");
    assert_eq!(b["mode"], "generic");
    assert_eq!(b["prog_id"], foreign);
    assert_eq!(b["name"], "xdpstat_pass");
    assert_eq!(b["held_by"], "netlink");
    assert!(b.get("link_id").is_none() && b.get("pin_dir").is_none());

    let text = ns.xdpstat_ok(&["status"]);
    let row = |iface: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(iface))
            .unwrap_or_else(|| panic!("a row for {iface}: {text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert!(text.starts_with("INTERFACE "), "{text}");
    let prog_id = ours["prog_id"].to_string();
    assert_eq!(row(&ns.a)[2..4], ["native", prog_id.as_str()]);
    assert_eq!(row(&ns.a)[6..8], ["xdpstat", "link"]);
    assert_eq!(row(&ns.b)[2..4], ["generic", &foreign.to_string()]);
    assert_eq!(row(&ns.b)[6..], ["other", "netlink"]);
}

#[test]
fn status_says_when_nothing_is_attached() {
    if !privileged("status_says_when_nothing_is_attached") {
        return;
    }
    let ns = VethNs::new();
    // The namespace has lo and the veth pair, none running XDP.
    assert_eq!(json(&ns, &["status", "--json"]), Value::Array(Vec::new()));
    let text = ns.xdpstat_ok(&["status"]);
    assert_eq!(
        text,
        "no interface in this network namespace runs an XDP program\n"
    );
}

#[test]
fn prog_list_shows_the_attached_program_and_agrees_with_bpftool() {
    if !privileged("prog_list_shows_the_attached_program_and_agrees_with_bpftool") {
        return;
    }
    let ns = VethNs::new();
    let ours = attach(&ns, "native");
    let id = ours["prog_id"].as_u64().unwrap();
    let map_id = ours["map_id"].as_u64().unwrap();
    let ifindex = ns.ifindex(&ns.a);

    let list = json(&ns, &["prog", "list", "--json"]);
    let p = by_id(&list, id);
    assert_eq!(p["type"], "xdp");
    assert_eq!(p["name"], "xdpstat_percpu");
    assert_eq!(
        p["attached"],
        serde_json::json!([{"interface": ns.a, "ifindex": ifindex, "mode": "native"}])
    );
    assert_eq!(p["map_ids"], serde_json::json!([map_id]));
    // Every listed program is XDP without --all.
    assert!(list.as_array().unwrap().iter().all(|p| p["type"] == "xdp"));

    if have_tool("bpftool") {
        let theirs = bpftool_json(&["prog", "show", "id", &id.to_string()]);
        for field in [
            "id",
            "type",
            "name",
            "tag",
            "gpl_compatible",
            "uid",
            "bytes_xlated",
            "jited",
            "bytes_jited",
            "bytes_memlock",
            "map_ids",
            "btf_id",
        ] {
            assert_eq!(
                p[field], theirs[field],
                "{field}: ours {p}, bpftool {theirs}"
            );
        }
        let (at, their_at) = (
            p["loaded_at"].as_i64().unwrap(),
            theirs["loaded_at"].as_i64().unwrap(),
        );
        // Both derive it from the boot time, read a moment apart.
        assert!((at - their_at).abs() <= 1, "loaded_at {at} vs {their_at}");
    }

    let all = json(&ns, &["prog", "list", "--all", "--json"]);
    assert_eq!(by_id(&all, id)["tag"], p["tag"]);

    let text = ns.xdpstat_ok(&["prog", "list"]);
    let first = format!(
        "{id}: xdp  name xdpstat_percpu  tag {}  gpl",
        p["tag"].as_str().unwrap()
    );
    let block: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with(&first))
        .take_while(|l| l.starts_with(&first) || l.starts_with('\t'))
        .collect();
    assert!(!block.is_empty(), "{first:?} in {text}");
    assert!(block[1].starts_with("\tloaded_at ") && block[1].ends_with("  uid 0"));
    assert_eq!(
        block[2],
        format!(
            "\txlated {}B  jited {}B  memlock {}B  map_ids {map_id}",
            p["bytes_xlated"], p["bytes_jited"], p["bytes_memlock"]
        )
    );
    assert!(
        block.contains(&format!("\tattached {}({ifindex}) native", ns.a).as_str()),
        "{block:?}"
    );
}

#[test]
fn prog_list_stats_counts_the_frames_sent_during_the_window() {
    if !privileged("prog_list_stats_counts_the_frames_sent_during_the_window") {
        return;
    }
    const K: usize = 300;
    let ns = VethNs::new();
    let ours = attach(&ns, "native");
    let id = ours["prog_id"].as_u64().unwrap();

    let child = ns
        .command(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["prog", "list", "--stats", "--interval", "3s", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run xdpstat");
    // The first reading takes milliseconds; send well inside the window.
    thread::sleep(Duration::from_secs(1));
    ns.send_frames(vec![64; K], None);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = by_id(&list, id);
    let window = &p["window"];
    let runs = window["run_cnt"].as_u64().unwrap();
    assert!(runs >= K as u64, "{runs} runs in the window, sent {K}: {p}");
    assert!(window["run_time_ns"].as_u64().unwrap() > 0, "{p}");
    assert!(window["ns_per_run"].as_f64().unwrap() > 0.0, "{p}");
    let seconds = window["seconds"].as_f64().unwrap();
    assert!((2.9..10.0).contains(&seconds), "{seconds}");
    assert!(p["run_cnt"].as_u64().unwrap() >= runs, "{p}");
    // The frames were counted by xdpstat's map too.
    assert_eq!(
        settle(&(K as u64), || {
            ns.show_json(&ns.a)["total"]["packets"].as_u64().unwrap()
        }),
        K as u64
    );

    // The text names the window, its runs and their average.
    let text = ns.xdpstat_ok(&["prog", "list", "--stats", "--interval", "100ms"]);
    assert!(text.contains("\tstats over 0."), "{text}");
    // --interval only means something with --stats.
    let out = ns.xdpstat(&["prog", "list", "--interval", "1s"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn map_list_shows_the_map_with_its_programs_and_agrees_with_bpftool() {
    if !privileged("map_list_shows_the_map_with_its_programs_and_agrees_with_bpftool") {
        return;
    }
    let ns = VethNs::new();
    let ours = attach(&ns, "native");
    let prog_id = ours["prog_id"].as_u64().unwrap();
    let map_id = ours["map_id"].as_u64().unwrap();

    let list = json(&ns, &["map", "list", "--json"]);
    let m = by_id(&list, map_id);
    assert_eq!(m["type"], "percpu_array");
    assert_eq!(m["name"], "counters");
    assert_eq!(m["bytes_key"], 4);
    assert_eq!(m["bytes_value"], 16);
    assert_eq!(m["max_entries"], 1);
    assert_eq!(m["programs"], serde_json::json!([prog_id]));

    if have_tool("bpftool") {
        let theirs = bpftool_json(&["map", "show", "id", &map_id.to_string()]);
        for field in [
            "id",
            "type",
            "name",
            "flags",
            "bytes_key",
            "bytes_value",
            "max_entries",
            "bytes_memlock",
        ] {
            assert_eq!(
                m[field], theirs[field],
                "{field}: ours {m}, bpftool {theirs}"
            );
        }
    }

    let text = ns.xdpstat_ok(&["map", "list"]);
    let first = format!("{map_id}: percpu_array  name counters  flags 0x0");
    let block: Vec<&str> = text.lines().skip_while(|l| *l != first).take(3).collect();
    assert_eq!(
        block,
        [
            first.as_str(),
            &format!(
                "\tkey 4B  value 16B  max_entries 1  memlock {}B",
                m["bytes_memlock"]
            ),
            &format!("\tprograms xdpstat_percpu({prog_id})"),
        ],
        "{text}"
    );
}

#[test]
fn map_pin_by_id_pins_the_map_and_refuses_bad_paths() {
    if !privileged("map_pin_by_id_pins_the_map_and_refuses_bad_paths") {
        return;
    }
    let ns = VethNs::new();
    let ours = attach(&ns, "native");
    let map_id = ours["map_id"].as_u64().unwrap();
    let id = map_id.to_string();
    let pin = PinGuard::new();

    let pinned = json(&ns, &["map", "pin", &id, pin.path(), "--json"]);
    assert_eq!(pinned["id"], map_id);
    assert_eq!(pinned["name"], "counters");
    assert_eq!(pinned["path"], pin.path());

    // The pin is the map: xdpstat reads the counters through it, and
    // bpftool sees the same map.
    ns.send_frames(vec![64; 5], None);
    let packets = || {
        json(&ns, &["show", "--map-path", pin.path(), "--json"])["total"]["packets"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(settle(&5, packets), 5);
    if have_tool("bpftool") {
        let theirs = bpftool_json(&["map", "show", "pinned", pin.path()]);
        assert_eq!(theirs["id"], map_id);
    }

    // An existing path is never replaced.
    let again = ns.xdpstat(&["map", "pin", &id, pin.path()]);
    assert_fails(
        &again,
        2,
        &[
            pin.path(),
            &format!("already holds a pinned BPF map (id {map_id})"),
            "xdpstat map unpin",
        ],
    );
    // Nor is a file xdpstat did not pin.
    let link = format!("{}/link", ours["pin_dir"].as_str().unwrap());
    assert_fails(
        &ns.xdpstat(&["map", "pin", &id, &link]),
        2,
        &["already holds a pinned BPF link (id "],
    );
    // Off bpffs.
    let tmp = format!("/tmp/xdpstat-test-inspect-{}", std::process::id());
    let off = ns.xdpstat(&["map", "pin", &id, &tmp]);
    assert_fails(&off, 2, &[&tmp, "not on a BPF filesystem"]);
    assert!(!Path::new(&tmp).exists());
    // A directory that does not exist.
    let nowhere = format!("{}-nodir/x", pin.path());
    assert_fails(
        &ns.xdpstat(&["map", "pin", &id, &nowhere]),
        2,
        &["does not exist"],
    );
    // No such map.
    let missing = ns.xdpstat(&["map", "pin", "4294967295", &format!("{}-x", pin.path())]);
    assert_fails(&missing, 2, &["no BPF map has id 4294967295"]);

    let unpinned = json(&ns, &["map", "unpin", pin.path(), "--json"]);
    assert_eq!(unpinned["id"], map_id);
    assert!(!pin.0.exists());
    // The map lives on with the program: xdpstat's own pin still reads it.
    assert_eq!(ns.show_json(&ns.a)["map_id"], map_id);
}

#[test]
fn map_unpin_refuses_what_is_not_a_pinned_map() {
    if !privileged("map_unpin_refuses_what_is_not_a_pinned_map") {
        return;
    }
    let ns = VethNs::new();
    let ours = attach(&ns, "native");
    let pin_dir = ours["pin_dir"].as_str().unwrap();

    let missing = PinGuard::new();
    assert_fails(
        &ns.xdpstat(&["map", "unpin", missing.path()]),
        2,
        &[missing.path(), "nothing is pinned"],
    );
    assert_fails(
        &ns.xdpstat(&["map", "unpin", pin_dir]),
        2,
        &["a directory, not a pin"],
    );
    // xdpstat's pinned link is a pin, but not of a map: it stays.
    let link = format!("{pin_dir}/link");
    assert_fails(
        &ns.xdpstat(&["map", "unpin", &link]),
        2,
        &["pinned BPF link, not a map"],
    );
    assert!(Path::new(&link).exists());
    // A file off bpffs is left alone.
    let tmp = std::env::temp_dir().join(format!("xdpstat-test-unpin-{}", std::process::id()));
    std::fs::write(&tmp, b"not a pin").unwrap();
    let off = ns.xdpstat(&["map", "unpin", tmp.to_str().unwrap()]);
    let exists = tmp.exists();
    let _ = std::fs::remove_file(&tmp);
    assert_fails(&off, 2, &["not on a BPF filesystem"]);
    assert!(exists, "unpin must not remove a file off bpffs");
    // xdpstat still counts.
    assert_eq!(ns.show_json(&ns.a)["map_id"], ours["map_id"]);
}

/// The link id of xdpstat's attachment to `ns.a`, from `status --json`.
fn link_id(ns: &VethNs) -> u64 {
    let status = json(ns, &["status", "--json"]);
    status
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["interface"] == ns.a.as_str())
        .and_then(|e| e["link_id"].as_u64())
        .unwrap_or_else(|| panic!("no link for {} in {status}", ns.a))
}

#[test]
fn map_pin_says_what_is_wrong_with_the_path() {
    if !privileged("map_pin_says_what_is_wrong_with_the_path") {
        return;
    }
    let ns = VethNs::new();
    let ours = attach(&ns, "native");
    let id = ours["map_id"].as_u64().unwrap().to_string();
    let pin_dir = ours["pin_dir"].as_str().unwrap();
    let link = format!("{pin_dir}/link");
    let pin = PinGuard::new();
    let pin_something = |path: &str| ns.xdpstat(&["map", "pin", &id, path]);

    // A directory on bpffs: the new pin's path goes inside it.
    for dir in ["/sys/fs/bpf", "/sys/fs/bpf/"] {
        assert_fails(
            &pin_something(dir),
            2,
            &[dir, "is a directory", "inside it", "/sys/fs/bpf/NAME"],
        );
    }
    assert_fails(
        &pin_something(pin_dir),
        2,
        &[
            &format!("{pin_dir} is a directory"),
            &format!("{pin_dir}/NAME"),
        ],
    );

    // A parent that does not exist, at one level or more.
    let nodir = format!("{}-nodir", pin.path());
    for path in [format!("{nodir}/x"), format!("{nodir}/a/x")] {
        let parent = Path::new(&path).parent().unwrap().to_str().unwrap();
        assert_fails(
            &pin_something(&path),
            2,
            &[
                &format!("{parent} does not exist"),
                &format!("mkdir -p {parent}"),
            ],
        );
    }
    assert!(!Path::new(&nodir).exists());
    // A parent that does not exist off bpffs: mkdir would not help.
    let off = format!("/nonexistent-xdpstat-test-{}/x", std::process::id());
    assert_fails(&pin_something(&off), 2, &[&off, "not on a BPF filesystem"]);
    // A parent that is a file (a pin).
    assert_fails(
        &pin_something(&format!("{link}/x")),
        2,
        &[&format!("{link} is not a directory"), "/sys/fs/bpf/NAME"],
    );

    // Something pinned already: what it is, and its id.
    assert_fails(
        &pin_something(&link),
        2,
        &[
            &link,
            &format!("already holds a pinned BPF link (id {})", link_id(&ns)),
            "choose another path",
        ],
    );
    let counters = format!("{pin_dir}/counters");
    assert_fails(
        &pin_something(&counters),
        2,
        &[&format!("already holds a pinned BPF map (id {id})")],
    );
    // Nothing was pinned by any of these.
    assert!(!pin.0.exists());
    let entries: Vec<_> = fs::read_dir(pin_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
}

#[test]
fn map_dump_and_show_name_the_program_or_link_pinned_instead_of_a_map() {
    if !privileged("map_dump_and_show_name_the_program_or_link_pinned_instead_of_a_map") {
        return;
    }
    let ns = VethNs::new();
    let ours = attach(&ns, "native");
    let link = format!("{}/link", ours["pin_dir"].as_str().unwrap());
    let link_id = link_id(&ns);

    // A program pinned by this test.
    let prog_pin = PinGuard::new();
    let mut ebpf = aya::Ebpf::load_file(common::bpf_object("xdpstat_pass")).unwrap();
    let prog: &mut aya::programs::Xdp = ebpf
        .program_mut("xdpstat_pass")
        .unwrap()
        .try_into()
        .unwrap();
    prog.load().unwrap();
    prog.pin(&prog_pin.0).unwrap();
    let prog_id = prog.info().unwrap().id();

    for (path, what) in [
        (
            link.as_str(),
            format!("is a pinned BPF link (id {link_id}), not a map"),
        ),
        (
            prog_pin.path(),
            format!("is a pinned BPF program (id {prog_id}), not a map"),
        ),
    ] {
        assert_fails(
            &ns.xdpstat(&["map", "dump", path]),
            2,
            &[
                "map dump needs a map's pin or id",
                path,
                &what,
                "xdpstat map list",
            ],
        );
        assert_fails(
            &ns.xdpstat(&["map", "dump", path, "--json"]),
            2,
            &[path, &what],
        );
        // show --map-path opens the pin the same way.
        assert_fails(
            &ns.xdpstat(&["show", "--map-path", path]),
            2,
            &[path, &what, "xdpstat map pin ID PATH"],
        );
    }
    // Both are still there.
    assert!(Path::new(&link).exists() && prog_pin.0.exists());
}
