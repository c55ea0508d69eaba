//! Attach, replace, re-attach, detach, and the bad inputs around them, on a
//! real veth pair in a throwaway namespace.

mod common;

use std::{
    io::{BufRead, BufReader},
    os::fd::AsFd,
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use common::{assert_fails, bpf_object, privileged, settle, stderr, VethNs};
use serde_json::Value;
use xdpstat::kernel::netlink;
use xdpstat::kernel::sys;

fn packets(ns: &VethNs) -> (u64, u64) {
    let json = ns.show_json(&ns.a);
    (
        json["total"]["packets"].as_u64().unwrap(),
        json["total"]["bytes"].as_u64().unwrap(),
    )
}

fn attach_json(ns: &VethNs, extra: &[&str]) -> Value {
    let mut args = vec!["attach", ns.a.as_str(), "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ns.xdpstat_ok(&args)).unwrap()
}

/// The XDP programs on `iface`, from netlink inside the namespace.
fn xdp_on(ns: &VethNs, iface: &str) -> Vec<netlink::AttachedProgram> {
    let ifindex = ns.ifindex(iface);
    ns.run(move || netlink::interface(ifindex).unwrap().expect("interface").xdp)
}

/// Waits until the kernel has freed an object (programs and maps go after
/// an RCU grace period).
fn gone(what: &str, mut exists: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while exists() {
        assert!(Instant::now() < deadline, "{what} still exists");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn attach_twice_is_refused_and_force_replaces_atomically() {
    if !privileged("attach_twice_is_refused_and_force_replaces_atomically") {
        return;
    }
    let ns = VethNs::new();
    let first = attach_json(&ns, &[]);
    let again = ns.xdpstat(&["attach", &ns.a]);
    assert_fails(
        &again,
        1,
        &[
            &ns.a,
            "already runs",
            "xdpstat_percpu",
            "attached by xdpstat",
            "--force",
        ],
    );
    assert_eq!(xdp_on(&ns, &ns.a).len(), 1);

    let second = attach_json(&ns, &["--force"]);
    assert_ne!(first["prog_id"], second["prog_id"], "a new program");
    let on = xdp_on(&ns, &ns.a);
    assert_eq!(on.len(), 1, "exactly one program after the replace");
    assert_eq!(
        u64::from(on[0].prog_id),
        second["prog_id"].as_u64().unwrap()
    );
    assert_eq!(
        second["holder"], "link",
        "still held by the same pinned link"
    );
    ns.xdpstat_ok(&["detach", &ns.a]);
}

#[test]
fn force_cannot_move_a_program_to_another_mode() {
    if !privileged("force_cannot_move_a_program_to_another_mode") {
        return;
    }
    let ns = VethNs::new();
    attach_json(&ns, &["--mode", "native"]);
    let out = ns.xdpstat(&["attach", &ns.a, "--force", "--mode", "generic"]);
    assert_fails(&out, 1, &["native mode", "generic mode", "detach"]);
    ns.xdpstat_ok(&["detach", &ns.a]);
}

#[test]
fn counters_survive_a_reattach_of_the_same_layout() {
    if !privileged("counters_survive_a_reattach_of_the_same_layout") {
        return;
    }
    let ns = VethNs::new();
    let first = attach_json(&ns, &["--map", "percpu"]);
    ns.send_frames(vec![100; 7], None);
    assert_eq!(settle(&(7, 700), || packets(&ns)), (7, 700));

    let second = attach_json(&ns, &["--force", "--map", "percpu"]);
    assert_ne!(first["prog_id"], second["prog_id"]);
    assert_eq!(
        first["map_id"], second["map_id"],
        "the pinned map is reused"
    );
    assert_eq!(packets(&ns), (7, 700), "counts kept across the reload");

    ns.send_frames(vec![200; 3], None);
    assert_eq!(
        settle(&(10, 1300), || packets(&ns)),
        (10, 1300),
        "the new program counts on"
    );

    // Another layout needs another map: counting restarts from zero.
    let third = attach_json(&ns, &["--force", "--map", "shared"]);
    assert_ne!(third["map_id"], second["map_id"]);
    assert_eq!(packets(&ns), (0, 0));
    ns.xdpstat_ok(&["detach", &ns.a]);
}

#[test]
fn detach_leaves_no_link_pin_or_program() {
    if !privileged("detach_leaves_no_link_pin_or_program") {
        return;
    }
    let ns = VethNs::new();
    let attached = attach_json(&ns, &[]);
    let dir = ns.pin_dir(&ns.a);
    let link = sys::obj_get(&dir.link()).expect("link pinned");
    let link_id = sys::link_info(link.as_fd()).unwrap().id;
    drop(link);
    let prog_id = attached["prog_id"].as_u64().unwrap() as u32;
    let map_id = attached["map_id"].as_u64().unwrap() as u32;

    let out = ns.xdpstat_ok(&["detach", &ns.a]);
    assert!(
        out.contains(&format!("detached prog id {prog_id}")),
        "{out}"
    );
    assert!(!dir.exists(), "no pin directory left");
    assert!(
        xdp_on(&ns, &ns.a).is_empty(),
        "no XDP program on the interface"
    );
    gone("the link", || sys::link_fd_by_id(link_id).is_ok());
    gone("the program", || sys::prog_fd_by_id(prog_id).is_ok());
    gone("the map", || aya::maps::MapInfo::from_id(map_id).is_ok());

    let again = ns.xdpstat(&["detach", &ns.a]);
    assert_fails(&again, 1, &["nothing attached", &ns.a]);
}

#[test]
fn a_missing_interface_is_a_usage_error() {
    if !privileged("a_missing_interface_is_a_usage_error") {
        return;
    }
    let ns = VethNs::new();
    for args in [
        vec!["attach", "nosuch0"],
        vec!["detach", "nosuch0"],
        vec!["show", "nosuch0"],
        vec!["run", "nosuch0", "--count", "1"],
        vec!["attach", "../../etc"],
    ] {
        let out = ns.xdpstat(&args);
        assert_fails(&out, 2, &["no interface named"]);
    }
    assert!(!ns.ns_dir().path().exists());
}

#[test]
fn without_privileges_every_command_says_so() {
    if !privileged("without_privileges_every_command_says_so") || !common::have_tool("setpriv") {
        return;
    }
    let ns = VethNs::new();
    let dropped = |args: &[&str]| {
        ns.command("setpriv")
            .args([
                "--inh-caps=-all",
                "--ambient-caps=-all",
                "--bounding-set=-all",
                "--",
            ])
            .arg(env!("CARGO_BIN_EXE_xdpstat"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = dropped(&["attach", &ns.a]);
    assert_fails(&out, 1, &["needs root", "CAP_BPF", "CAP_NET_ADMIN", "sudo"]);
    assert!(!ns.pin_dir(&ns.a).exists(), "nothing pinned");
    assert!(xdp_on(&ns, &ns.a).is_empty(), "nothing attached");

    ns.xdpstat_ok(&["attach", &ns.a]);
    for args in [vec!["detach", ns.a.as_str()], vec!["show", ns.a.as_str()]] {
        let out = dropped(&args);
        assert_fails(&out, 1, &["needs root", "CAP_BPF"]);
    }
    assert_eq!(xdp_on(&ns, &ns.a).len(), 1, "still attached");
    ns.xdpstat_ok(&["detach", &ns.a]);
}

#[test]
fn detach_after_the_interface_was_deleted_removes_the_stale_pins() {
    if !privileged("detach_after_the_interface_was_deleted_removes_the_stale_pins") {
        return;
    }
    let ns = VethNs::new();
    attach_json(&ns, &[]);
    let dir = ns.pin_dir(&ns.a);
    assert!(dir.exists());
    ns.delete(&ns.a);
    let out = ns.xdpstat_ok(&["detach", &ns.a]);
    assert!(out.contains("no longer exists"), "{out}");
    assert!(!dir.exists());
    assert!(!ns.ns_dir().path().exists());
    let again = ns.xdpstat(&["detach", &ns.a]);
    assert_fails(&again, 2, &["no interface named"]);
}

#[test]
fn a_program_from_another_loader_is_refused_then_replaced_with_force() {
    if !privileged("a_program_from_another_loader_is_refused_then_replaced_with_force") {
        return;
    }
    let ns = VethNs::new();
    let foreign = ns.attach_foreign(&ns.a, netlink::XDP_FLAGS_DRV_MODE);
    let out = ns.xdpstat(&["attach", &ns.a]);
    assert_fails(
        &out,
        1,
        &[
            "already runs",
            "xdpstat_pass",
            "another loader",
            "xdp off",
            "--force",
        ],
    );
    let detach = ns.xdpstat(&["detach", &ns.a]);
    assert_fails(&detach, 1, &["nothing attached", &foreign.to_string()]);

    let replaced = attach_json(&ns, &["--force"]);
    assert_eq!(replaced["holder"], "netlink");
    let on = xdp_on(&ns, &ns.a);
    assert_eq!(on.len(), 1);
    assert_eq!(
        u64::from(on[0].prog_id),
        replaced["prog_id"].as_u64().unwrap()
    );
    ns.send_frames(vec![64; 5], None);
    assert_eq!(settle(&(5, 320), || packets(&ns)), (5, 320));

    ns.xdpstat_ok(&["detach", &ns.a]);
    assert!(xdp_on(&ns, &ns.a).is_empty());
    assert!(!ns.pin_dir(&ns.a).exists());
}

#[test]
fn a_program_held_by_another_loaders_link_is_replaced_through_that_link() {
    if !privileged("a_program_held_by_another_loaders_link_is_replaced_through_that_link") {
        return;
    }
    let ns = VethNs::new();
    // Like a libbpf loader that attaches with bpf_link and pins the link.
    ns.attach_link(&ns.a, &bpf_object("xdpstat_pass"), "xdpstat_pass");
    let link_id = sys::link_info(sys::obj_get(&ns.scratch_pin).unwrap().as_fd())
        .unwrap()
        .id;
    let held = format!("held by BPF link id {link_id}");
    // netlink cannot take off a program a link holds: no `xdp off` advice.
    for args in [["attach", &ns.a], ["detach", &ns.a]] {
        let out = ns.xdpstat(&args);
        assert_fails(&out, 1, &[&held]);
        assert!(!stderr(&out).contains("xdp off"), "{}", stderr(&out));
    }

    let replaced = attach_json(&ns, &["--force"]);
    assert_eq!(replaced["holder"], "link");
    assert_eq!(replaced["mode"], "generic", "the link keeps its mode");
    let theirs = sys::obj_get(&ns.scratch_pin).unwrap();
    let info = sys::link_info(theirs.as_fd()).unwrap();
    assert_eq!(
        u64::from(info.prog_id),
        replaced["prog_id"].as_u64().unwrap(),
        "their link now runs ours"
    );
    ns.send_frames(vec![77; 4], None);
    assert_eq!(settle(&(4, 308), || packets(&ns)), (4, 308));

    ns.xdpstat_ok(&["detach", &ns.a]);
    assert!(
        xdp_on(&ns, &ns.a).is_empty(),
        "detached although their pin still holds the link"
    );
}

#[test]
fn run_attaches_reports_and_detaches_after_count() {
    if !privileged("run_attaches_reports_and_detaches_after_count") {
        return;
    }
    let ns = VethNs::new();
    let out = ns.xdpstat_ok(&[
        "run",
        &ns.a,
        "--interval",
        "100ms",
        "--count",
        "3",
        "--json",
    ]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    let mut seconds = 0.0;
    for line in &lines {
        assert_eq!(line["interface"], ns.a.as_str());
        let rates = &line["rates"];
        // Each period is measured; on a loaded machine one sample can come
        // late and the next one early, but together they span the run.
        let period = rates["seconds"].as_f64().unwrap();
        assert!(period > 0.0, "{line}");
        seconds += period;
        assert!(rates["pps"].as_f64().unwrap() >= 0.0);
    }
    assert!(seconds > 0.15, "3 periods of 100 ms took {seconds} s");
    assert!(
        xdp_on(&ns, &ns.a).is_empty(),
        "run detached what it attached"
    );
    assert!(!ns.pin_dir(&ns.a).exists());

    // When xdpstat already counts there, run leaves it attached.
    attach_json(&ns, &[]);
    ns.xdpstat_ok(&["run", &ns.a, "--interval", "50ms", "--count", "1"]);
    assert_eq!(
        xdp_on(&ns, &ns.a).len(),
        1,
        "run left the earlier attachment alone"
    );
    ns.xdpstat_ok(&["detach", &ns.a]);
}

#[test]
fn run_counts_live_traffic_and_sigterm_detaches() {
    if !privileged("run_counts_live_traffic_and_sigterm_detaches") {
        return;
    }
    let ns = VethNs::new();
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["run", &ns.a, "--interval", "200ms", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["total"]["packets"], 0);
    ns.send_frames(vec![1000; 20], None);
    // The totals reach exactly 20 frames within a few intervals.
    let mut last = first;
    for line in lines.by_ref().take(10) {
        last = serde_json::from_str(&line.unwrap()).unwrap();
        if last["total"]["packets"] == 20 {
            break;
        }
    }
    assert_eq!(last["total"]["packets"], 20);
    assert_eq!(last["total"]["bytes"], 20_000);

    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "run exits 0 on SIGTERM: {status}");
    assert!(xdp_on(&ns, &ns.a).is_empty(), "SIGTERM detached");
    assert!(!ns.pin_dir(&ns.a).exists());
}

#[test]
fn attach_mounts_bpffs_when_it_is_not_mounted() {
    if !privileged("attach_mounts_bpffs_when_it_is_not_mounted") || !common::have_tool("unshare") {
        return;
    }
    let ns = VethNs::new();
    // A private mount namespace without bpffs: the host's mount is untouched,
    // and the pins vanish with the namespace.
    let script = format!(
        "umount /sys/fs/bpf && ! grep -q ' /sys/fs/bpf bpf ' /proc/self/mounts \
         && {bin} attach {a} && grep -q ' /sys/fs/bpf bpf ' /proc/self/mounts \
         && test -e {dir}/link && {bin} detach {a}",
        bin = env!("CARGO_BIN_EXE_xdpstat"),
        a = ns.a,
        dir = ns.pin_dir(&ns.a).path().display()
    );
    let out = ns
        .command("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    assert!(xdp_on(&ns, &ns.a).is_empty());
}
