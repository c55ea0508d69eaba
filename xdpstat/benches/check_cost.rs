//! What `xdpstat check` costs against `bpftool prog load` on the biggest
//! real program of the corpus, Katran's balancer with every feature on
//! (`fixtures/real`, `balancer_full`, about 480,000 instructions
//! processed): wall time and peak RSS (`wait4`) of each whole process, in
//! alternating runs, and their ratios.
//!
//! bpftool runs in a mount namespace of its own, on a bpffs of its own,
//! so that its pins go with it; `unshare` and `mount` are not in its
//! figures, since it is bpftool's own rusage that is read (a wrapper
//! shell `exec`s it).
//!
//! `cargo xtask bench` (root, bpftool, `cargo xtask build-fixtures`).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `cmd`, and gives its wall time and its peak RSS in KiB.
#[expect(
    clippy::zombie_processes,
    reason = "wait4 reaps the child, for its rusage"
)]
fn measured(cmd: &mut Command) -> (f64, i64) {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, with valid out-pointers.
    let ret = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(ret, pid);
    assert_eq!(status, 0, "{cmd:?} failed");
    (start.elapsed().as_secs_f64(), usage.ru_maxrss)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let obj = root().join("fixtures/build/real/katran/balancer_full.o");
    assert!(
        obj.is_file(),
        "{} is missing: run `cargo xtask build-fixtures`",
        obj.display()
    );
    let xdpstat = Path::new(env!("CARGO_BIN_EXE_xdpstat"));
    let runs = std::env::var("XDPSTAT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut our_rss, mut their_rss) = (0, 0);
    for _ in 0..runs {
        let (t, rss) = measured(Command::new(xdpstat).arg("check").arg(&obj));
        ours.push(t);
        our_rss = our_rss.max(rss);
        // The shell mounts, then becomes bpftool: wait4 reports bpftool.
        let (t, rss) = measured(
            Command::new("unshare")
                .args(["-m", "--propagation", "private", "sh", "-c"])
                .arg("mount -t bpf bpf /sys/fs/bpf && exec bpftool prog load \"$1\" /sys/fs/bpf/p type xdp")
                .arg("sh")
                .arg(&obj),
        );
        theirs.push(t);
        their_rss = their_rss.max(rss);
    }
    let (ours, theirs) = (median(ours), median(theirs));
    println!(
        "check on katran/balancer_full.o, {runs} alternating runs, median wall time and peak RSS:"
    );
    println!("{:<28} {:>9} {:>12}", "", "seconds", "peak RSS");
    println!("{:<28} {ours:>9.3} {:>9} KiB", "xdpstat check", our_rss);
    println!(
        "{:<28} {theirs:>9.3} {:>9} KiB",
        "bpftool prog load", their_rss
    );
    println!(
        "xdpstat / bpftool: time {:.2} (target ≤ 1.2), peak RSS {:.1} (target ≤ 3)",
        ours / theirs,
        our_rss as f64 / their_rss as f64
    );
}
