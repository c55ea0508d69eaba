//! How fast `xdpstat explain` diagnoses a huge verifier log, and how much
//! memory it takes: the log is parsed as a stream, so peak memory must not
//! grow with the log.
//!
//! The log is real: bpftool loads the `complexity_runtime_loop` fixture (a
//! loop bounded only by `ctx->ingress_ifindex`) with the verifier at log
//! level 2, and the verifier walks a million instructions before it gives
//! up. The benchmark then runs `xdpstat explain --log … --json` as a whole
//! process on the full log and on its first 10% and 50% (which are
//! truncated logs), and reports wall time and peak RSS (`wait4`).
//!
//! `cargo xtask bench` (root, bpftool, `cargo xtask build-fixtures`).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Makes the level-2 log once (it takes bpftool ~20 s); later runs reuse it.
fn big_log() -> PathBuf {
    let log = root().join("target/bench/complexity_level2.log");
    if log.is_file() {
        return log;
    }
    fs::create_dir_all(log.parent().unwrap()).unwrap();
    let obj = root().join("fixtures/build/c/complexity_runtime_loop.o");
    assert!(
        obj.is_file(),
        "{} is missing: run `cargo xtask build-fixtures`",
        obj.display()
    );
    let pin = format!("/sys/fs/bpf/xdpstat-bench-{}", std::process::id());
    // bpftool -d asks libbpf for log level 1|2|4 and prints the whole log.
    let out = Command::new("bpftool")
        .args(["-d", "prog", "load"])
        .arg(&obj)
        .arg(&pin)
        .stdin(Stdio::null())
        .output()
        .expect("bpftool runs");
    let _ = fs::remove_file(&pin);
    assert!(!out.status.success(), "the fixture must be rejected");
    fs::write(&log, &out.stderr).unwrap();
    log
}

/// Runs explain on `log`; returns (seconds, peak RSS in KiB, output).
fn explain(log: &Path) -> (f64, i64, String) {
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["explain", "--json", "--log"])
        .arg(log)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let output = child.wait_with_output_rusage(pid);
    (start.elapsed().as_secs_f64(), output.0, output.1)
}

trait WaitRusage {
    fn wait_with_output_rusage(self, pid: i32) -> (i64, String);
}

impl WaitRusage for std::process::Child {
    fn wait_with_output_rusage(mut self, pid: i32) -> (i64, String) {
        let mut stdout = String::new();
        std::io::Read::read_to_string(self.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid out-parameter.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waiting for our own child, with valid out-pointers.
        let ret = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(ret, pid);
        (usage.ru_maxrss, stdout)
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let log = big_log();
    let len = fs::metadata(&log).unwrap().len();
    let dir = log.parent().unwrap();
    let mut cases = Vec::new();
    for percent in [10u64, 50] {
        let cut = dir.join(format!("complexity_level2_{percent}pct.log"));
        // Copied as a stream: a child's peak RSS counts what it inherited
        // from this process before exec, so this process stays small too.
        let mut from = std::io::Read::take(fs::File::open(&log).unwrap(), len * percent / 100);
        std::io::copy(&mut from, &mut fs::File::create(&cut).unwrap()).unwrap();
        cases.push((format!("first {percent}% (truncated)"), cut));
    }
    cases.push(("whole log".to_owned(), log.clone()));
    println!("xdpstat explain --json on a log-level-2 log of a 1M-instruction verification");
    println!(
        "{:<24} {:>10} {:>10} {:>12} {:>14}",
        "input", "MB", "seconds", "MB/s", "peak RSS KiB"
    );
    for (label, path) in &cases {
        let size = fs::metadata(path).unwrap().len() as f64 / 1e6;
        // Best of three, to drop the page-cache warm-up.
        let runs: Vec<(f64, i64, String)> = (0..3).map(|_| explain(path)).collect();
        let best = runs.iter().map(|r| r.0).fold(f64::MAX, f64::min);
        let rss = runs.iter().map(|r| r.1).max().unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&runs[0].2).expect("explain prints JSON");
        let p = &json["programs"][0];
        println!(
            "{label:<24} {size:>10.1} {best:>10.3} {:>12.0} {rss:>14}",
            size / best
        );
        if label == "whole log" {
            assert_eq!(p["diagnosis"]["kind"], "complexity", "{p}");
            assert_eq!(p["stats"]["insns_processed"], 1_000_001);
        } else {
            assert_eq!(p["truncated"], true);
        }
    }
}
