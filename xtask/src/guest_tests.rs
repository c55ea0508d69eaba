//! `cargo xtask test --kernel 6.1|6.12|PATH`: the kernel-facing test
//! binaries, built on the host, run inside other kernels under qemu.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context, Result};
use xdpstat::vm::{
    image::{self, Kernel},
    qemu,
};

use super::{
    cargo, deps, fixtures, root,
    vm::{self, Binary, End, Guest, Options, Outcome},
};

/// The test binaries run in each guest unless `--test` names others: the
/// kernel-facing ones that are worth their minutes under the emulator (see
/// README, "Kernels tested"), with [`subset_filters`].
pub const SUBSET: [&str; 11] = [
    "counting",
    "lifecycle",
    "namespaces",
    "test_run",
    "corpus",
    "workbench",
    "tutorial",
    "map_dump",
    "inspect",
    "observe",
    "capabilities",
];

/// The subset's filters for a binary in a kernel. The corpus's two
/// 1M-instruction loops take 1 to 4.5 minutes each in a guest. The C one
/// stays where a log overflow goes another way: before 6.4 (no
/// `log_true_size`) the load fails with ENOSPC and keeps the log's head.
fn subset_filters(name: &str, kernel: &Kernel) -> Vec<String> {
    let filters: &[&str] = match name {
        "corpus" if kernel.older_than(6, 4) => &["--skip", "a_runaway_rust_loop"],
        "corpus" => &["--skip", "a_runaway_"],
        _ => &[],
    };
    filters.iter().map(|f| (*f).to_owned()).collect()
}

/// The cargo profile of the binaries the guests run: the dev profile
/// (debug assertions, overflow checks) at opt-level 1, because under the
/// emulator a debug build of xdpstat takes ~3× longer over the corpus.
const PROFILE: [&str; 4] = [
    "--config=profile.guest.inherits=\"dev\"",
    "--config=profile.guest.opt-level=1",
    "--config=profile.guest.debug=\"line-tables-only\"",
    "--profile=guest",
];

/// How a run went, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Passed,
    /// A test failed, or a binary timed out: exit code 101, as cargo test.
    TestsFailed,
    /// A guest died or hung, so some tests did not run: exit code 3.
    GuestBroke,
}

impl Verdict {
    fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Self::Passed => 0,
            Self::TestsFailed => 101,
            Self::GuestBroke => 3,
        })
    }
}

pub struct Request {
    pub kernels: Vec<String>,
    pub tests: Vec<String>,
    /// For each test binary, after the subset's own filters.
    pub args: Vec<String>,
    /// Instead of tests: one shell command (`sh -c`).
    pub command: Option<String>,
    pub timeout: Duration,
    pub cpus: u32,
    /// Run the kernels' guests at the same time.
    pub parallel: bool,
}

pub fn run(req: &Request) -> Result<ExitCode> {
    deps()?;
    fixtures::build()?;
    let kernels = req
        .kernels
        .iter()
        .map(|k| {
            image::resolve(k, &mut |msg| println!("xtask: --kernel {k}: {msg}"))
                .map_err(anyhow::Error::from)
        })
        .collect::<Result<Vec<_>>>()?;
    let binaries = match &req.command {
        Some(command) => vec![Binary {
            name: "command".to_owned(),
            path: PathBuf::from("/bin/sh"),
            args: vec!["-c".to_owned(), command.clone()],
            cwd: root(),
        }],
        None => {
            let names: Vec<&str> = if req.tests.is_empty() {
                SUBSET.to_vec()
            } else {
                req.tests.iter().map(String::as_str).collect()
            };
            let mut binaries = build_binaries(&names)?;
            for binary in &mut binaries {
                binary.args.clone_from(&req.args);
            }
            binaries
        }
    };
    let subset = req.command.is_none() && req.tests.is_empty();
    let opts = Options {
        timeout: req.timeout,
        env: passthrough_env(),
        cpus: req.cpus,
    };
    let started = Instant::now();
    let reports: Vec<Result<Report>> = if req.parallel {
        thread::scope(|s| {
            let handles: Vec<_> = kernels
                .iter()
                .map(|k| s.spawn(|| run_kernel(k, &binaries, subset, &opts)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a kernel's thread panicked"))
                .collect()
        })
    } else {
        kernels
            .iter()
            .map(|k| run_kernel(k, &binaries, subset, &opts))
            .collect()
    };
    let mut verdict = Verdict::Passed;
    println!();
    for report in reports {
        let report = report?;
        report.print();
        verdict = verdict.max(report.verdict());
    }
    println!(
        "xtask: {} kernel(s) in {:.0} s; {}",
        kernels.len(),
        started.elapsed().as_secs_f64(),
        match verdict {
            Verdict::Passed => "every test binary passed",
            Verdict::TestsFailed => "TESTS FAILED",
            Verdict::GuestBroke => "A GUEST DIED OR HUNG",
        }
    );
    Ok(verdict.exit_code())
}

/// Variables the host's caller meant for the tests.
fn passthrough_env() -> Vec<(String, String)> {
    env::vars()
        .filter(|(k, _)| {
            (k.starts_with("XDPSTAT_") && k != "XDPSTAT_KERNEL_CACHE")
                || ["RUST_LOG", "RUST_TEST_THREADS", "RUST_BACKTRACE"].contains(&k.as_str())
        })
        .collect()
}

/// Builds the named test targets of the xdpstat package as `cargo test`
/// would, and returns their executables in the order asked.
fn build_binaries(names: &[&str]) -> Result<Vec<Binary>> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root())
        .args([
            "test",
            "-p",
            "xdpstat",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .args(PROFILE);
    for name in names {
        cmd.args(["--test", name]);
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the test binaries failed: {}", out.status);
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(exe), Some(name), Some(manifest)) = (
            msg["executable"].as_str(),
            msg["target"]["name"].as_str(),
            msg["manifest_path"].as_str(),
        ) else {
            continue;
        };
        let is_test = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        if msg["reason"] == "compiler-artifact" && is_test {
            found.push(Binary {
                name: name.to_owned(),
                path: PathBuf::from(exe),
                args: Vec::new(),
                cwd: Path::new(manifest)
                    .parent()
                    .context("a manifest has a directory")?
                    .to_owned(),
            });
        }
    }
    names
        .iter()
        .map(|name| {
            found
                .iter()
                .find(|b| b.name == *name)
                .cloned()
                .with_context(|| format!("cargo built no test binary {name}"))
        })
        .collect()
}

/// Every guest that one kernel needed.
struct Report {
    kernel: Kernel,
    guests: Vec<Guest>,
    dir: PathBuf,
    secs: f64,
}

/// Runs the binaries in `kernel`'s guest. When a guest dies or hangs, the
/// binary it was running is charged with it and a new guest runs the rest.
fn run_kernel(
    kernel: &Kernel,
    binaries: &[Binary],
    subset: bool,
    opts: &Options,
) -> Result<Report> {
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let runs = image::cache_dir().join("runs").join(&kernel.release);
    let dir = runs.join(stamp.to_string());
    fs::create_dir_all(&dir)?;
    let latest = runs.join("latest");
    let _ = fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(stamp.to_string(), &latest);
    println!(
        "[{}] booting {} with {} test binaries; logs in {}",
        kernel.release,
        kernel.vmlinuz.display(),
        binaries.len(),
        dir.display()
    );
    let started = Instant::now();
    let mut guests = Vec::new();
    let mut remaining = binaries.to_vec();
    if subset {
        for binary in &mut remaining {
            let mut args = subset_filters(&binary.name, kernel);
            args.append(&mut binary.args);
            binary.args = args;
        }
    }
    while !remaining.is_empty() {
        let guest_dir = dir.join(format!("guest-{}", guests.len() + 1));
        let guest = vm::boot(kernel, &remaining, opts, &guest_dir)?;
        let ran = guest
            .results
            .iter()
            .filter(|r| r.outcome != Outcome::NotRun)
            .count();
        if guest.end != End::Completed {
            println!(
                "[{}] GUEST {} after {:.0} s (qemu: {}); console log {}:\n{}",
                kernel.release,
                if guest.end == End::Died {
                    "DIED"
                } else {
                    "HUNG"
                },
                guest.wall_secs,
                guest.qemu_status,
                guest.console.display(),
                qemu::console_excerpt(&guest.console, 40)
            );
            let qemu = fs::read_to_string(guest_dir.join("qemu.log")).unwrap_or_default();
            if !qemu.trim().is_empty() {
                println!("[{}] qemu said:\n{}", kernel.release, qemu.trim_end());
            }
        }
        let stop = guest.end == End::Completed || ran == 0;
        remaining.drain(..ran);
        guests.push(guest);
        if stop || remaining.is_empty() {
            break;
        }
        println!(
            "[{}] a new guest runs the {} binaries left",
            kernel.release,
            remaining.len()
        );
    }
    Ok(Report {
        kernel: kernel.clone(),
        guests,
        dir,
        secs: started.elapsed().as_secs_f64(),
    })
}

impl Report {
    fn verdict(&self) -> Verdict {
        let mut verdict = Verdict::Passed;
        for guest in &self.guests {
            if guest.end != End::Completed {
                verdict = Verdict::GuestBroke;
            }
            for r in &guest.results {
                verdict = verdict.max(match r.outcome {
                    Outcome::Passed => Verdict::Passed,
                    Outcome::Failed(_) | Outcome::TimedOut => Verdict::TestsFailed,
                    Outcome::GuestDied | Outcome::GuestHung | Outcome::NotRun => {
                        Verdict::GuestBroke
                    }
                });
            }
        }
        verdict
    }

    fn print(&self) {
        let uname = self
            .guests
            .iter()
            .find_map(|g| g.uname.clone())
            .unwrap_or_else(|| "(never reported)".to_owned());
        println!(
            "xtask: --kernel {}: uname -r {uname}, {} guest(s), {:.0} s in all; logs in {}",
            self.kernel.spec,
            self.guests.len(),
            self.secs,
            self.dir.display()
        );
        for (i, guest) in self.guests.iter().enumerate() {
            println!(
                "  guest {}: {} (qemu: {}), up after {}, {:.0} s",
                i + 1,
                match guest.end {
                    End::Completed => "completed",
                    End::Died => "DIED",
                    End::Hung => "HUNG (killed)",
                },
                guest.qemu_status,
                guest
                    .boot_secs
                    .map_or_else(|| "never".to_owned(), |s| format!("{s:.1} s")),
                guest.wall_secs
            );
            for r in guest
                .results
                .iter()
                .filter(|r| r.outcome != Outcome::NotRun || i + 1 == self.guests.len())
            {
                println!(
                    "    {:<12} {:<32} {}",
                    r.name,
                    r.outcome.to_string(),
                    r.secs.map_or_else(String::new, |s| format!("{s:.1} s"))
                );
                if matches!(r.outcome, Outcome::Failed(_) | Outcome::TimedOut) {
                    for line in failure_lines(&r.log) {
                        println!("        {line}");
                    }
                }
            }
            if !guest.complaints.is_empty() {
                println!(
                    "    kernel complaints on the console ({}):",
                    guest.console.display()
                );
                for line in guest.complaints.iter().take(20) {
                    println!("        {line}");
                }
            }
        }
    }
}

/// The lines of a libtest log that say what failed: each panic with its
/// message, and the summary.
fn failure_lines(log: &Path) -> Vec<String> {
    let text = fs::read_to_string(log).unwrap_or_default();
    let mut lines = Vec::new();
    let mut in_panic = 0;
    for line in text.lines() {
        if line.contains(" panicked at ") {
            in_panic = 8;
        } else if line.starts_with("stack backtrace:") || line.starts_with("note: ") {
            in_panic = 0;
        }
        if in_panic > 0 && !line.trim().is_empty() {
            lines.push(line.to_owned());
            in_panic -= 1;
        } else if line.starts_with("test result:") {
            lines.push(line.to_owned());
        }
    }
    lines
}
