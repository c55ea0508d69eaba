//! How long `xdpstat prog list --all` takes as a whole process, text and
//! JSON, with 100 extra programs loaded, against `bpftool prog list` (and
//! `bpftool -j`) in the same run.
//!
//! The benchmark loads 100 copies of the committed `xdpstat_pass.o` and
//! keeps them loaded while it times; it then runs the four commands in
//! rounds, rotating their order, with output to /dev/null, and reports each
//! one's median wall time and xdpstat's ratio to bpftool. Medians, because
//! a process start now and then lands on a busy moment of a shared VM.
//!
//! `cargo bench -p xdpstat --bench prog_list` (root, bpftool).

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use aya::{programs::Xdp, Ebpf};

const EXTRA: usize = 100;
const ROUNDS: usize = 21;

struct Case {
    label: &'static str,
    program: String,
    args: &'static [&'static str],
    times: Vec<Duration>,
}

impl Case {
    fn new(label: &'static str, program: &str, args: &'static [&'static str]) -> Self {
        Self {
            label,
            program: program.to_owned(),
            args,
            times: Vec::new(),
        }
    }

    fn run(&self) -> Duration {
        let start = Instant::now();
        let status = Command::new(&self.program)
            .args(self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .expect("run the command");
        let took = start.elapsed();
        assert!(status.success(), "{} failed", self.label);
        took
    }

    fn median_ms(&self) -> f64 {
        let mut sorted = self.times.clone();
        sorted.sort();
        sorted[sorted.len() / 2].as_secs_f64() * 1e3
    }
}

fn load_copies(n: usize) -> Vec<Ebpf> {
    let bytes =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("bpf/xdpstat_pass.o")).unwrap();
    (0..n)
        .map(|_| {
            let mut ebpf = Ebpf::load(&bytes).expect("load the object");
            let prog: &mut Xdp = ebpf
                .program_mut("xdpstat_pass")
                .unwrap()
                .try_into()
                .unwrap();
            prog.load().expect("verifier accepts it");
            ebpf
        })
        .collect()
}

fn id_of(ebpf: &Ebpf) -> u64 {
    let prog: &Xdp = ebpf.program("xdpstat_pass").unwrap().try_into().unwrap();
    u64::from(prog.info().unwrap().id())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // we need. Either way, run only when asked to benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the benchmark loads BPF programs: run it as root"
    );
    let xdpstat = env!("CARGO_BIN_EXE_xdpstat");
    let loaded = load_copies(EXTRA);

    // The listing must hold every copy, or the timing means nothing.
    let out = Command::new(xdpstat)
        .args(["prog", "list", "--all", "--json"])
        .output()
        .expect("run xdpstat");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = listed.as_array().unwrap();
    for ebpf in &loaded {
        let id = id_of(ebpf);
        assert!(
            listed.iter().any(|p| p["id"].as_u64() == Some(id)),
            "program {id} is not listed"
        );
    }

    let mut cases = [
        Case::new(
            "xdpstat prog list --all",
            xdpstat,
            &["prog", "list", "--all"],
        ),
        Case::new(
            "xdpstat prog list --all --json",
            xdpstat,
            &["prog", "list", "--all", "--json"],
        ),
        Case::new("bpftool prog list", "bpftool", &["prog", "list"]),
        Case::new("bpftool -j prog list", "bpftool", &["-j", "prog", "list"]),
    ];
    // One untimed run each warms the page cache.
    for case in &cases {
        case.run();
    }
    for round in 0..ROUNDS {
        for i in 0..cases.len() {
            let case = &mut cases[(round + i) % 4];
            let took = case.run();
            case.times.push(took);
        }
    }
    drop(loaded);

    println!(
        "prog list, {} programs loaded ({EXTRA} extra), median of {ROUNDS} runs:",
        listed.len()
    );
    for case in &cases {
        println!("  {:32} {:8.2} ms", case.label, case.median_ms());
    }
    println!(
        "  ratio xdpstat / bpftool: text {:.2}, JSON {:.2}",
        cases[0].median_ms() / cases[2].median_ms(),
        cases[1].median_ms() / cases[3].median_ms()
    );
}
