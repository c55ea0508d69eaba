//! What observing costs per packet, measured by the kernel's
//! `BPF_PROG_TEST_RUN` on the observed program itself, on both CPUs at
//! once, in one run:
//!
//! 1. the program alone;
//! 2. the program with an empty fentry/fexit pair attached as xdpstat's
//!    observers are (`xdpstat_observe_floor`): the trampoline's floor;
//! 3. the program observed by xdpstat.
//!
//! Three copies of the program are loaded, one per case, and each round
//! measures all three in a rotating order; added costs are paired within a
//! round. Five trials of 17 rounds each give five ratios, and their median
//! is the figure. The target is (3) − (1) ≤ 1.2 × ((2) − (1)).
//!
//! Tracing programs load only where the kernel allows them (not on this
//! machine's 6.18): `cargo xtask bench --kernel 6.12` runs it in a guest,
//! where the figures are emulated, so only the ratio means anything.

mod common;

use std::{os::fd::AsFd as _, path::Path, process::Command};

use aya::{programs::Xdp, Ebpf};
use common::{ns_per_run, trimmed_mean};

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Builds fixtures/observe/verdicts.c, the observed program.
fn build_verdicts() -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("xdpstat-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("verdicts.o");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/observe/verdicts.c");
    let status = Command::new("clang")
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("clang");
    assert!(status.success(), "clang {}", src.display());
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

fn main() {
    if !common::asked() {
        return;
    }
    let runs = env_or("XDPSTAT_BENCH_RUNS", 200_000);
    let rounds = env_or("XDPSTAT_BENCH_ROUNDS", 17) as usize;
    let trials_n = env_or("XDPSTAT_BENCH_TRIALS", 5).max(1) as usize;
    let verdicts = build_verdicts();
    let load = || {
        let mut ebpf = Ebpf::load(&verdicts).expect("load verdicts.o");
        let prog: &mut Xdp = ebpf
            .program_mut("verdict_by_length")
            .unwrap()
            .try_into()
            .unwrap();
        prog.load().expect("the verifier accepts it");
        ebpf
    };
    let copies = [load(), load(), load()];
    let xdp = |i: usize| -> &Xdp {
        copies[i]
            .program("verdict_by_length")
            .unwrap()
            .try_into()
            .unwrap()
    };
    let attach = |i: usize, object: &[u8]| {
        let fd = xdp(i).fd().unwrap().as_fd().try_clone_to_owned().unwrap();
        let id = xdpstat::kernel::sys::prog_identity(fd.as_fd()).unwrap();
        let func = id.func_btf_id.expect("verdicts.o has BTF");
        xdpstat::model::observe::attach_object(fd.as_fd(), func, object)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let floor =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("bpf/xdpstat_observe_floor.o"))
            .unwrap();
    let _floor = attach(1, &floor);
    let (_links, actions) = attach(2, xdpstat::model::layout::observe_object());

    // 600 bytes: the program's PASS path.
    let frame = vec![0u8; 600];
    let cpus: Vec<usize> = (0..std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(2))
        .collect();
    // Independent trials of interleaved rounds: the spread of their
    // ratios says how far one figure can be trusted under emulation.
    let mut trials = Vec::with_capacity(trials_n);
    let mut all = vec![Vec::new(); 3];
    for _ in 0..trials_n {
        let mut times = vec![Vec::new(); 3];
        for round in 0..rounds {
            for i in 0..3 {
                let p = (i + round) % 3;
                times[p].push(ns_per_run(xdp(p), &cpus, &frame, runs, 2));
            }
        }
        let added: Vec<f64> = times[2].iter().zip(&times[0]).map(|(o, a)| o - a).collect();
        let floor_cost: Vec<f64> = times[1].iter().zip(&times[0]).map(|(f, a)| f - a).collect();
        let means: Vec<f64> = times.iter().map(|t| trimmed_mean(t.clone())).collect();
        let (added, floor_cost) = (trimmed_mean(added), trimmed_mean(floor_cost));
        trials.push((means, added, floor_cost));
        for (pool, t) in all.iter_mut().zip(times) {
            pool.extend(t);
        }
    }
    let uname = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "BPF_PROG_TEST_RUN on verdicts.o (600-byte frame, XDP_PASS), {} CPU(s) at once, {runs} runs per call; {trials_n} trials of {rounds} interleaved rounds, trimmed means; kernel {}",
        cpus.len(),
        uname.trim()
    );
    println!(
        "{:<7} {:>11} {:>11} {:>11} {:>11} {:>11} {:>9}",
        "trial", "(1) alone", "(2) floor", "(3) xdpstat", "(2)-(1)", "(3)-(1)", "ratio"
    );
    let mut ratios = Vec::with_capacity(trials.len());
    for (i, (m, added, floor_cost)) in trials.iter().enumerate() {
        let ratio = added / floor_cost;
        ratios.push(ratio);
        println!(
            "{:<7} {:>11.1} {:>11.1} {:>11.1} {:>11.1} {:>11.1} {:>9.3}",
            i + 1,
            m[0],
            m[1],
            m[2],
            floor_cost,
            added,
            ratio
        );
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let pooled: Vec<f64> = all.into_iter().map(trimmed_mean).collect();
    println!(
        "ns per packet over all trials: (1) {:.1}, (2) {:.1}, (3) {:.1}",
        pooled[0], pooled[1], pooled[2]
    );
    println!(
        "xdpstat's added cost / the trampoline's floor: median {median:.3} of {} trials (from {:.3} to {:.3}; target ≤ 1.2)",
        ratios.len(),
        ratios[0],
        ratios[ratios.len() - 1]
    );
    // The observers really ran: every run of copy 3 is a counted PASS.
    let map = xdpstat::kernel::map::OpenMap::from_fd(actions.expect("actions map")).unwrap();
    let raw = map.lookup(&0u32.to_ne_bytes()).unwrap();
    let stride = map.stride();
    // Each CPU's slot: `inflight`, then per verdict packets and bytes;
    // PASS (2) is at 8 + 2 * 16.
    let passes: u64 = raw
        .chunks(stride)
        .map(|v| u64::from_ne_bytes(v[40..48].try_into().unwrap()))
        .sum();
    let expected = u64::from(runs) * (rounds * trials_n) as u64 * cpus.len() as u64;
    assert_eq!(passes, expected, "the observers counted every run");
    println!("the observers counted {passes} PASS verdicts, every run");
}
