//! SIGKILL at random moments of every command that changes pins: attach,
//! `attach --force` switching layouts (over percpu, and back), run and
//! load. After each kill, whatever runs on the interface counts into the
//! map that `show` reads, with the layout `show` names; and after `detach`
//! nothing of xdpstat's is left: no program, link, pin or staging pin.
//!
//! The moments are spread over the whole of the command: 0 to 50 ms, or to
//! a little past the time one uninterrupted run takes (longer in a debug
//! build), measured first.

mod common;

use std::{
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use common::{bpf_object, privileged, VethNs};
use serde_json::Value;

const KILLS: u32 = 50;

/// A small deterministic generator (splitmix64), seeded per test so that a
/// failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn seed() -> u64 {
    std::env::var("XDPSTAT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// Waits until the kernel has freed a program (after an RCU grace period).
fn gone(prog_id: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while xdpstat::kernel::sys::prog_fd_by_id(prog_id).is_ok() {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The layout of one of xdpstat's embedded programs, by its name.
fn layout_of(prog_id: u32) -> Option<&'static str> {
    let name = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == prog_id)?
        .name_as_str()?
        .to_owned();
    match name.as_str() {
        "xdpstat_percpu" => Some("percpu"),
        "xdpstat_shared" => Some("shared"),
        _ => None,
    }
}

/// What the kill left: checked, then detached and checked clean. Returns
/// the programs it saw and whether it left staged pins, for the caller's
/// tally.
fn check_and_detach(ns: &VethNs, what: &str, i: u32, seed: u64) -> (Vec<u32>, bool) {
    let staged = ns
        .pins()
        .iter()
        .any(|p| p.to_string_lossy().contains("-staging-"));
    let on = ns.xdp_on(&ns.a);
    let ctx = format!("{what}, kill {i}, XDPSTAT_KILL_SEED={seed}");
    for p in &on {
        let show = ns.xdpstat(&["show", &ns.a, "--json"]);
        assert!(
            show.status.success(),
            "{ctx}: show failed with prog {} running: {}",
            p.prog_id,
            common::stderr(&show)
        );
        let v: Value = serde_json::from_slice(&show.stdout).unwrap();
        let map_id = v["map_id"].as_u64().unwrap() as u32;
        let fd = xdpstat::kernel::sys::prog_fd_by_id(p.prog_id).unwrap();
        let maps =
            xdpstat::kernel::sys::stats::prog_map_ids(std::os::fd::AsFd::as_fd(&fd)).unwrap();
        assert!(
            maps.contains(&map_id),
            "{ctx}: show reads map {map_id}, the program counts into {maps:?}"
        );
        if let Some(layout) = layout_of(p.prog_id) {
            assert_eq!(v["map"], layout, "{ctx}: layout");
        }
    }
    // The next command on the interface, whatever it is, clears the
    // staging pins the killed one left.
    let _ = ns.xdpstat(&["show", &ns.a]);
    let left: Vec<_> = ns
        .pins()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("-staging-"))
        .collect();
    assert!(left.is_empty(), "{ctx}: show left staging pins {left:?}");
    let out = ns.xdpstat(&["detach", &ns.a]);
    let code = out.status.code();
    assert!(
        code == Some(0) || (on.is_empty() && code == Some(1)),
        "{ctx}: detach: {}",
        common::stderr(&out)
    );
    assert!(ns.xdp_on(&ns.a).is_empty(), "{ctx}: still attached");
    assert!(ns.pins().is_empty(), "{ctx}: pins left: {:?}", ns.pins());
    assert!(!ns.ns_dir().path().exists(), "{ctx}: directory left");
    for p in &on {
        assert!(gone(p.prog_id), "{ctx}: prog {} still loaded", p.prog_id);
    }
    (on.iter().map(|p| p.prog_id).collect(), staged)
}

/// How long one uninterrupted run of the command takes: to its exit, or
/// for `run` (which goes on) until its program is attached, when nothing
/// was.
fn duration(ns: &VethNs, args: &[String]) -> Duration {
    let had = !ns.xdp_on(&ns.a).is_empty();
    let start = Instant::now();
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_xdpstat"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let took = loop {
        if child.try_wait().unwrap().is_some() || !had && !ns.xdp_on(&ns.a).is_empty() {
            break start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{args:?} hangs");
        thread::sleep(Duration::from_millis(1));
    };
    let _ = child.kill();
    let _ = child.wait();
    took
}

/// Runs `args(i)` in the namespace `KILLS` times, each killed after 0 to 50
/// ms, with `before(i)` first.
fn kill_loop(
    what: &str,
    before: impl Fn(&VethNs, u32),
    args: impl Fn(&VethNs, u32) -> Vec<String>,
) {
    let ns = VethNs::new();
    let seed = seed();
    let mut rng = Rng(seed);
    before(&ns, 0);
    let took = duration(&ns, &args(&ns, 0));
    check_and_detach(&ns, what, 0, seed);
    let window = (took + took / 5).max(Duration::from_millis(50));
    let (mut attached, mut staged) = (0, 0);
    for i in 0..KILLS {
        before(&ns, i);
        let mut child = ns
            .command(env!("CARGO_BIN_EXE_xdpstat"))
            .args(args(&ns, i))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_micros(
            rng.next() % window.as_micros() as u64,
        ));
        let _ = child.kill();
        let _ = child.wait();
        let (on, left_staged) = check_and_detach(&ns, what, i, seed);
        attached += u32::from(!on.is_empty());
        staged += u32::from(left_staged);
    }
    eprintln!(
        "{what}: {KILLS} kills over 0-{window:?} (one run takes {took:?}; seed {seed}): {attached} left a program running, {staged} left staged pins"
    );
}

#[test]
fn killed_attach_leaves_a_consistent_or_clean_interface() {
    if !privileged("killed_attach_leaves_a_consistent_or_clean_interface") {
        return;
    }
    kill_loop(
        "attach",
        |_, _| {},
        |ns, i| {
            let layout = if i.is_multiple_of(2) {
                "percpu"
            } else {
                "shared"
            };
            vec!["attach".into(), ns.a.clone(), "--map".into(), layout.into()]
        },
    );
}

#[test]
fn killed_force_layout_switch_keeps_show_on_the_running_map() {
    if !privileged("killed_force_layout_switch_keeps_show_on_the_running_map") {
        return;
    }
    let from = |i: u32| {
        if i.is_multiple_of(2) {
            "percpu"
        } else {
            "shared"
        }
    };
    let to = |i: u32| {
        if i.is_multiple_of(2) {
            "shared"
        } else {
            "percpu"
        }
    };
    kill_loop(
        "attach --force",
        |ns, i| {
            ns.xdpstat_ok(&["attach", &ns.a, "--map", from(i)]);
        },
        |ns, i| {
            vec![
                "attach".into(),
                ns.a.clone(),
                "--force".into(),
                "--map".into(),
                to(i).into(),
            ]
        },
    );
}

#[test]
fn killed_run_leaves_a_consistent_or_clean_interface() {
    if !privileged("killed_run_leaves_a_consistent_or_clean_interface") {
        return;
    }
    kill_loop(
        "run",
        |_, _| {},
        |ns, _| {
            vec![
                "run".into(),
                ns.a.clone(),
                "--interval".into(),
                "10ms".into(),
                "--count".into(),
                "1000".into(),
            ]
        },
    );
}

#[test]
fn killed_load_leaves_a_consistent_or_clean_interface() {
    if !privileged("killed_load_leaves_a_consistent_or_clean_interface") {
        return;
    }
    let obj = bpf_object("xdpstat_percpu").display().to_string();
    kill_loop(
        "load",
        |_, _| {},
        |ns, _| vec!["load".into(), obj.clone(), "--dev".into(), ns.a.clone()],
    );
}
