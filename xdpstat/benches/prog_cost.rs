//! Per-packet cost of the embedded programs, measured by the kernel's
//! `BPF_PROG_TEST_RUN` against an empty `return XDP_PASS` program in the
//! same run, on one CPU and on both CPUs at once.
//!
//! Each round runs every program once, back to back, in a rotating order;
//! a program's ratio is the trimmed mean over rounds of its time divided by
//! the empty program's time in the same round. Pairing within a round
//! cancels the slow drift of a shared machine (frequency, steal time), and
//! trimming drops the rounds a neighbour disturbed. Ratios are the figure to
//! read: absolute nanoseconds vary from machine to machine.
//!
//! `cargo xtask bench` (root needed).

mod common;

use std::{path::Path, thread};

use aya::{programs::Xdp, Ebpf};
use common::{ns_per_run, trimmed_mean};
use xdpstat::model::layout::Layout;

const RUNS: u32 = 1_000_000;
const ROUNDS: usize = 41;

struct Program {
    label: String,
    ebpf: Ebpf,
    name: String,
}

impl Program {
    fn load(label: String, bytes: &[u8], name: String) -> Self {
        let mut ebpf = Ebpf::load(bytes).expect("load object");
        let prog: &mut Xdp = ebpf.program_mut(&name).unwrap().try_into().unwrap();
        prog.load().expect("verifier accepts it");
        Self { label, ebpf, name }
    }

    fn xdp(&self) -> &Xdp {
        self.ebpf.program(&self.name).unwrap().try_into().unwrap()
    }
}

fn main() {
    if !common::asked() {
        return;
    }
    let pass =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("bpf/xdpstat_pass.o")).unwrap();
    let mut programs = vec![
        Program::load("empty (XDP_PASS)".into(), &pass, "xdpstat_pass".into()),
        Program::load(
            "percpu".into(),
            Layout::Percpu.object(),
            Layout::Percpu.program_name().into(),
        ),
        Program::load(
            "shared".into(),
            Layout::Shared.object(),
            Layout::Shared.program_name().into(),
        ),
    ];
    // XDPSTAT_BENCH_OBJECT=path.o adds every XDP program of another object
    // (e.g. the tutorial's C programs built by clang) to the table.
    if let Some(path) = std::env::var_os("XDPSTAT_BENCH_OBJECT") {
        let bytes = std::fs::read(&path).expect("read XDPSTAT_BENCH_OBJECT");
        let names: Vec<String> = Ebpf::load(&bytes)
            .expect("load XDPSTAT_BENCH_OBJECT")
            .programs()
            .filter(|(_, p)| matches!(p, aya::programs::Program::Xdp(_)))
            .map(|(name, _)| name.to_owned())
            .collect();
        for name in names {
            programs.push(Program::load(name.clone(), &bytes, name));
        }
    }
    let frame = vec![0u8; 64];
    let cpus = thread::available_parallelism()
        .map_or(1, usize::from)
        .min(2);
    println!("BPF_PROG_TEST_RUN, 64-byte frame, {RUNS} runs per call, trimmed mean of {ROUNDS} interleaved rounds, ratios paired per round");
    println!(
        "{:<18} {:>14} {:>8} {:>16} {:>8}",
        "program", "1 CPU ns/pkt", "ratio", "2 CPUs ns/pkt", "ratio"
    );
    let configs: Vec<Vec<usize>> = vec![vec![0], (0..cpus).collect()];
    let mut results = vec![vec![Vec::new(); configs.len()]; programs.len()];
    for round in 0..ROUNDS {
        for (c, config) in configs.iter().enumerate() {
            // Rotate the order, so no program is always first after a switch.
            for i in 0..programs.len() {
                let p = (i + round) % programs.len();
                results[p][c].push(ns_per_run(programs[p].xdp(), config, &frame, RUNS, 2));
            }
        }
    }
    if std::env::var_os("XDPSTAT_BENCH_RAW").is_some() {
        for (p, program) in programs.iter().enumerate() {
            for (c, config) in configs.iter().enumerate() {
                let raw: Vec<String> = results[p][c].iter().map(|v| format!("{v:.1}")).collect();
                println!("{} {:?}: {}", program.label, config, raw.join(" "));
            }
        }
    }
    for (p, program) in programs.iter().enumerate() {
        let ratio = |c: usize| {
            trimmed_mean(
                results[p][c]
                    .iter()
                    .zip(&results[0][c])
                    .map(|(x, empty)| x / empty)
                    .collect(),
            )
        };
        println!(
            "{:<18} {:>14.2} {:>7.3}x {:>16.2} {:>7.3}x",
            program.label,
            trimmed_mean(results[p][0].clone()),
            ratio(0),
            trimmed_mean(results[p][1].clone()),
            ratio(1),
        );
    }
}
