//! What the `BPF_PROG_TEST_RUN` benchmarks share: pinning to a CPU, the
//! kernel's own ns per run on several CPUs at once, and a trimmed mean.
#![allow(dead_code, reason = "each benchmark uses a different part")]

use std::thread;

use aya::programs::{TestRun, TestRunOptions, Xdp};

pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: an all-zero cpu_set_t is empty; CPU_SET stays in bounds.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
}

/// Nanoseconds per run, averaged over `cpus` all running at once, as the
/// kernel measures it: around its run loop only, and without the time the
/// thread spent scheduled out. (Wall time around the syscall is not usable
/// here: on this VM it carries tens of milliseconds of scheduling noise per
/// call.) The kernel truncates its average to whole nanoseconds. Every run
/// must return `verdict`.
pub fn ns_per_run(prog: &Xdp, cpus: &[usize], frame: &[u8], runs: u32, verdict: u32) -> f64 {
    let times: Vec<f64> = thread::scope(|s| {
        let handles: Vec<_> = cpus
            .iter()
            .map(|&cpu| {
                s.spawn(move || {
                    pin_to_cpu(cpu);
                    let result = prog
                        .test_run(TestRunOptions {
                            data_in: Some(frame),
                            repeat: runs,
                            ..TestRunOptions::default()
                        })
                        .expect("BPF_PROG_TEST_RUN");
                    assert_eq!(result.return_value, verdict, "the verdict");
                    // The kernel truncates to whole ns: +0.5 undoes the bias.
                    result.duration.as_nanos() as f64 + 0.5
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    times.iter().sum::<f64>() / times.len() as f64
}

/// The mean of the middle 80%: drops the rounds a neighbour disturbed,
/// while still averaging the whole-nanosecond steps of the kernel's figure
/// into a finer one (round-to-round noise dithers the truncation).
pub fn trimmed_mean(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let cut = v.len() / 10;
    let kept = &v[cut..v.len() - cut];
    kept.iter().sum::<f64>() / kept.len() as f64
}

/// Whether `cargo bench` asked for a run (`cargo test --benches` does not
/// pass `--bench`), and a refusal without root.
pub fn asked() -> bool {
    if !std::env::args().any(|a| a == "--bench") {
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the benchmark loads BPF programs: run it as root"
    );
    true
}
