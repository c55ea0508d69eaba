//! Attachments belong to one interface of one network namespace, whatever
//! its name: the same name in two namespaces, renames, moves between
//! namespaces, `ip netns exec`, pins of the layout before namespaces, and
//! a `run` whose program someone replaced. Each test makes its own
//! namespaces and tears them down, however it ends.

mod common;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::{assert_fails, privileged, settle, stderr, VethNs};
use serde_json::Value;

fn packets(ns: &VethNs, iface: &str) -> (u64, u64) {
    let v = ns.show_json(iface);
    (
        v["total"]["packets"].as_u64().unwrap(),
        v["total"]["bytes"].as_u64().unwrap(),
    )
}

fn sizes(k: usize, len: usize) -> (Vec<usize>, u64) {
    (vec![len; k], (k * len) as u64)
}

fn attach_json(ns: &VethNs, args: &[&str]) -> Value {
    let mut all = vec!["attach"];
    all.extend_from_slice(args);
    all.push("--json");
    serde_json::from_str(&ns.xdpstat_ok(&all)).expect("attach --json")
}

/// xdpstat run on the host, in no test's namespace.
fn on_host(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xdpstat"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_same_name_in_two_namespaces_is_two_attachments() {
    if !privileged("the_same_name_in_two_namespaces_is_two_attachments") {
        return;
    }
    let one = VethNs::with_names("v0", "v1");
    let two = VethNs::with_names("v0", "v1");
    let a1 = attach_json(&one, &["v0"]);
    let out = two.xdpstat_ok(&["attach", "v0"]);
    assert!(!out.contains("kept from before"), "{out}");
    let a2: Value = serde_json::from_str(&two.xdpstat_ok(&["show", "v0", "--json"])).unwrap();
    assert_ne!(a1["map_id"], a2["map_id"], "each namespace has its own map");
    assert_eq!(one.xdp_on("v0").len(), 1, "the first keeps its program");

    let (f1, b1) = sizes(100, 64);
    let (f2, b2) = sizes(200, 128);
    one.send_frames(f1, None);
    two.send_frames(f2, None);
    assert_eq!(settle(&(100, b1), || packets(&one, "v0")), (100, b1));
    assert_eq!(settle(&(200, b2), || packets(&two, "v0")), (200, b2));

    // The host has no v0: it sees neither, and cannot detach either.
    let host = on_host(&["detach", "v0"]);
    assert_fails(&host, 2, &["no interface named 'v0'"]);
    let status = on_host(&["status", "--json"]);
    let text = String::from_utf8_lossy(&status.stdout);
    for ns in [&one, &two] {
        let dir = ns.ns_dir().path().display().to_string();
        assert!(!text.contains(&dir), "host status lists {dir}: {text}");
    }

    one.xdpstat_ok(&["detach", "v0"]);
    assert!(one.xdp_on("v0").is_empty());
    assert_eq!(two.xdp_on("v0").len(), 1, "the other keeps its program");
    assert_eq!(packets(&two, "v0"), (200, b2), "and its counts");
    assert!(one.pins().is_empty(), "{:?}", one.pins());
    two.xdpstat_ok(&["detach", "v0"]);
    assert!(two.pins().is_empty());
}

/// A plain HTTP GET from inside `ns`.
fn http_get(ns: &VethNs, addr: SocketAddr) -> String {
    ns.run(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpStream::connect(addr) {
                Ok(mut s) => {
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    write!(
                        s,
                        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    )
                    .unwrap();
                    let mut body = String::new();
                    s.read_to_string(&mut body).unwrap();
                    return body;
                }
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("connect {addr}: {e}"),
            }
        }
    })
}

#[test]
fn watch_and_export_list_only_this_namespaces_interfaces() {
    if !privileged("watch_and_export_list_only_this_namespaces_interfaces") {
        return;
    }
    let one = VethNs::new();
    let two = VethNs::new();
    one.xdpstat_ok(&["attach", &one.a]);
    two.xdpstat_ok(&["attach", &two.a]);
    let lines = one.xdpstat_ok(&["watch", "--json", "--count", "1", "--interval", "100ms"]);
    let seen: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(seen.len(), 1, "{lines}");
    assert_eq!(seen[0]["interface"], one.a.as_str());

    one.ip(&["link", "set", "lo", "up"]);
    let addr: SocketAddr = "127.0.0.1:9471".parse().unwrap();
    let mut export = one
        .command(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["export", "--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let body = http_get(&one, addr);
    let _ = export.kill();
    let _ = export.wait();
    assert!(body.contains(&format!("interface=\"{}\"", one.a)), "{body}");
    assert!(!body.contains(&two.a), "{body}");
    one.xdpstat_ok(&["detach", &one.a]);
    two.xdpstat_ok(&["detach", &two.a]);
}

#[test]
fn counters_follow_a_renamed_interface_and_a_newcomer_starts_from_zero() {
    if !privileged("counters_follow_a_renamed_interface_and_a_newcomer_starts_from_zero") {
        return;
    }
    let ns = VethNs::with_names("x0", "x1");
    ns.xdpstat_ok(&["attach", "x0"]);
    let (frames, bytes) = sizes(7, 100);
    ns.send_frames(frames, None);
    assert_eq!(settle(&(7, bytes), || packets(&ns, "x0")), (7, bytes));

    // Before 6.2 a running interface cannot be renamed (EBUSY).
    ns.ip(&["link", "set", "x0", "down"]);
    ns.ip(&["link", "set", "x0", "name", "y0"]);
    ns.ip(&["link", "set", "y0", "up"]);
    let out = ns.xdpstat(&["detach", "x0"]);
    assert_fails(&out, 2, &["renamed to 'y0'", "xdpstat detach y0"]);
    assert_eq!(packets(&ns, "y0"), (7, bytes), "show NEWNAME finds them");

    // A newcomer with the old name.
    ns.ip(&["link", "add", "x0", "type", "veth", "peer", "name", "x2"]);
    ns.ip(&["link", "set", "x0", "up"]);
    ns.ip(&["link", "set", "x2", "up"]);
    let out = ns.xdpstat_ok(&["attach", "x0"]);
    assert!(!out.contains("kept from before"), "{out}");
    assert_eq!(packets(&ns, "x0"), (0, 0), "the newcomer starts from zero");
    assert_eq!(
        ns.xdp_on("y0").len(),
        1,
        "the renamed one keeps its program"
    );
    assert_eq!(packets(&ns, "y0"), (7, bytes));

    ns.xdpstat_ok(&["detach", "y0"]);
    ns.xdpstat_ok(&["detach", "x0"]);
    assert!(ns.pins().is_empty(), "{:?}", ns.pins());
}

#[test]
fn an_interface_moved_to_another_namespace_is_handled_from_there() {
    if !privileged("an_interface_moved_to_another_namespace_is_handled_from_there") {
        return;
    }
    let from = VethNs::new();
    let to = VethNs::new();
    from.xdpstat_ok(&["attach", &from.a]);
    let (frames, bytes) = sizes(5, 80);
    from.send_frames(frames, None);
    assert_eq!(settle(&(5, bytes), || packets(&from, &from.a)), (5, bytes));

    from.ip(&["link", "set", &from.a, "netns", &to.ns]);
    let out = from.xdpstat(&["detach", &from.a]);
    assert_fails(
        &out,
        1,
        &["no longer in this network namespace", "still runs"],
    );
    to.ip(&["link", "set", &from.a, "up"]);
    assert_eq!(to.xdp_on(&from.a).len(), 1, "the program still runs there");
    assert_eq!(packets(&to, &from.a), (5, bytes), "its counters with it");

    let out = to.xdpstat_ok(&["detach", &from.a]);
    assert!(out.contains("detached prog id"), "{out}");
    assert!(to.xdp_on(&from.a).is_empty());
    assert!(from.pins().is_empty(), "{:?}", from.pins());
    assert!(to.pins().is_empty(), "{:?}", to.pins());
}

#[test]
fn ip_netns_exec_refuses_rather_than_attach_for_a_moment() {
    if !privileged("ip_netns_exec_refuses_rather_than_attach_for_a_moment") {
        return;
    }
    let ns = VethNs::new();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.ns,
            env!("CARGO_BIN_EXE_xdpstat"),
            "attach",
            &ns.a,
        ])
        .output()
        .unwrap();
    assert_fails(&out, 2, &["ip netns exec", "nsenter --net=/run/netns/NS"]);
    assert!(ns.xdp_on(&ns.a).is_empty(), "nothing attached");
    assert!(ns.pins().is_empty());
}

#[test]
fn pins_of_the_layout_before_namespaces_are_taken_over() {
    if !privileged("pins_of_the_layout_before_namespaces_are_taken_over") {
        return;
    }
    let ns = VethNs::new();
    ns.xdpstat_ok(&["attach", &ns.a]);
    let (frames, bytes) = sizes(9, 70);
    ns.send_frames(frames, None);
    assert_eq!(settle(&(9, bytes), || packets(&ns, &ns.a)), (9, bytes));
    // Made into what an older xdpstat pinned: /sys/fs/bpf/xdpstat/<iface>/.
    let legacy = std::path::Path::new("/sys/fs/bpf/xdpstat").join(&ns.a);
    std::fs::rename(ns.pin_dir(&ns.a).path(), &legacy).unwrap();
    let prog = ns.xdp_on(&ns.a)[0].prog_id;

    assert_eq!(packets(&ns, &ns.a), (9, bytes), "show reads it where it is");
    let out = ns.xdpstat_ok(&["attach", &ns.a, "--force"]);
    assert!(out.contains("kept from before"), "{out}");
    assert!(!legacy.exists(), "moved into the namespace's directory");
    assert!(ns.pin_dir(&ns.a).exists());
    assert_ne!(ns.xdp_on(&ns.a)[0].prog_id, prog, "replaced");
    assert_eq!(packets(&ns, &ns.a), (9, bytes), "no count lost");
    ns.xdpstat_ok(&["detach", &ns.a]);
    assert!(ns.pins().is_empty());
}

#[test]
fn run_leaves_alone_a_program_that_replaced_its_own() {
    if !privileged("run_leaves_alone_a_program_that_replaced_its_own") {
        return;
    }
    let ns = VethNs::new();
    let run = ns
        .command(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["run", &ns.a, "--count", "15", "--interval", "100ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while ns.xdp_on(&ns.a).is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ns.xdp_on(&ns.a).len(), 1, "run attached");
    let newer: Value = serde_json::from_str(
        &ns.xdpstat_ok(&["attach", &ns.a, "--force", "--map", "shared", "--json"]),
    )
    .unwrap();
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let on = ns.xdp_on(&ns.a);
    assert_eq!(
        on.len(),
        1,
        "the newer program is still there: {}",
        stderr(&out)
    );
    assert_eq!(Some(u64::from(on[0].prog_id)), newer["prog_id"].as_u64());
    assert!(stderr(&out).contains("leaving it"), "{}", stderr(&out));
    ns.xdpstat_ok(&["detach", &ns.a]);
}

#[test]
fn racing_force_replacements_all_succeed_or_say_so_in_one_line() {
    if !privileged("racing_force_replacements_all_succeed_or_say_so_in_one_line") {
        return;
    }
    let ns = VethNs::new();
    ns.xdpstat_ok(&["attach", &ns.a]);
    for _ in 0..10 {
        let racers: Vec<_> = ["percpu", "shared", "percpu"]
            .iter()
            .map(|layout| {
                ns.command(env!("CARGO_BIN_EXE_xdpstat"))
                    .args(["attach", &ns.a, "--force", "--map", layout])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for racer in racers {
            let out = racer.wait_with_output().unwrap();
            if !out.status.success() {
                assert_fails(
                    &out,
                    1,
                    &["something else replaced", "run the command again"],
                );
            }
            assert!(
                !stderr(&out).contains("BPF_LINK_UPDATE"),
                "{}",
                stderr(&out)
            );
        }
        assert_eq!(ns.xdp_on(&ns.a).len(), 1);
        let show = ns.show_json(&ns.a);
        assert!(show["map_id"].as_u64().unwrap() > 0);
    }
    ns.xdpstat_ok(&["detach", &ns.a]);
    assert!(ns.pins().is_empty(), "{:?}", ns.pins());
}

#[test]
fn without_root_watch_and_export_name_the_eacces() {
    if !privileged("without_root_watch_and_export_name_the_eacces") || !common::have_tool("setpriv")
    {
        return;
    }
    let ns = VethNs::new();
    ns.xdpstat_ok(&["attach", &ns.a]);
    // The test binary's directory is root's; the user needs to reach it.
    let bin = std::env::temp_dir().join(format!("xdpstat-eacces-{}", std::process::id()));
    std::fs::copy(env!("CARGO_BIN_EXE_xdpstat"), &bin).unwrap();
    let _cleanup = RemoveOnDrop(bin.clone());
    let as_nobody = |args: &[&str]| {
        let mut cmd = ns.command("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=+bpf",
            "--ambient-caps=+bpf",
            "--",
        ])
        .arg(&bin)
        .args(args);
        cmd
    };
    let out = as_nobody(&["watch", "--json", "--count", "1"])
        .output()
        .unwrap();
    assert_fails(&out, 1, &["permission denied (EACCES)", "root"]);

    ns.ip(&["link", "set", "lo", "up"]);
    let addr: SocketAddr = "127.0.0.1:9472".parse().unwrap();
    let mut export = as_nobody(&["export", "--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let body = http_get(&ns, addr);
    let _ = export.kill();
    let out = export.wait_with_output().unwrap();
    assert!(body.contains("xdpstat_scrape_errors_total 1"), "{body}");
    assert!(stderr(&out).contains("EACCES"), "{}", stderr(&out));
    ns.xdpstat_ok(&["detach", &ns.a]);
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn records_of_interfaces_gone_for_good_are_removed_by_the_next_attach() {
    if !privileged("records_of_interfaces_gone_for_good_are_removed_by_the_next_attach") {
        return;
    }
    // A namespace deleted with xdpstat attached in it: its interfaces go,
    // the link is defunct, and nobody will ever detach there.
    let dead = VethNs::new();
    dead.xdpstat_ok(&["attach", &dead.a]);
    let dir = dead.pin_dir(&dead.a);
    assert!(dir.exists());
    // A namespace that lives on keeps its stale record for its own
    // `detach`, which says the interface is gone.
    let alive = VethNs::new();
    alive.xdpstat_ok(&["attach", &alive.a]);
    let kept = alive.pin_dir(&alive.a);
    alive.delete(&alive.a);
    // (Another test's attach, running meanwhile, may remove it first.)
    dead.delete_namespace();
    let other = VethNs::new();
    // The kernel takes the namespace's devices down after `ip netns del`
    // returns, so the link turns defunct a little later.
    let gone = settle(&false, || {
        other.xdpstat_ok(&["attach", &other.a]);
        other.xdpstat_ok(&["detach", &other.a]);
        dir.exists()
    });
    assert!(!gone, "{} is left", dir.path().display());
    assert!(
        kept.exists(),
        "{} of a living namespace is kept",
        kept.path().display()
    );
    let out = alive.xdpstat_ok(&["detach", &alive.a]);
    assert!(out.contains("no longer exists"), "{out}");
    assert!(!kept.exists());
}
