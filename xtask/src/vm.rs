//! One guest for the tests: xdpstat's own [`xdpstat::vm::qemu`] boots the
//! kernel on the host's root; there `guest.sh` runs each test binary under
//! `timeout`, writing `<name>.log` and `<name>.rc` into the run's
//! directory, and powers off.
//!
//! The host watches that directory and the qemu process, so it tells apart
//! tests that failed (an exit code), a test binary that hung (`timeout`
//! killed it), a guest that died (qemu exited before `done`: a panic, with
//! `oops=panic`, reboots and `-no-reboot` ends qemu) and a guest that hung
//! (no progress by the deadline: qemu is killed). The console log stays in
//! the run's directory either way.

use std::{
    fmt, fs,
    io::Write,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use xdpstat::vm::{
    image::Kernel,
    qemu::{self, quote, BOOT_TIMEOUT},
};

pub use xdpstat::vm::qemu::End;

/// How much longer than a binary's own timeout the host waits before it
/// calls the guest hung (the guest's `timeout` kills first, and then
/// SIGKILLs 10 s later).
const GRACE: Duration = Duration::from_secs(60);

/// A test binary, as cargo built it on the host.
#[derive(Debug, Clone)]
pub struct Binary {
    /// The test target's name (`counting` for tests/counting.rs).
    pub name: String,
    pub path: PathBuf,
    pub args: Vec<String>,
    /// The package's directory, where cargo would run it.
    pub cwd: PathBuf,
}

/// How each binary runs.
pub struct Options {
    /// Per binary, enforced inside the guest.
    pub timeout: Duration,
    /// Environment for the binaries, beyond the fixed `CI=true`,
    /// `XDPSTAT_REQUIRE_PRIVILEGED=1`.
    pub env: Vec<(String, String)>,
    /// `-smp`.
    pub cpus: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// The binary exited with this code (101: a test failed).
    Failed(i32),
    /// The guest's `timeout` killed it.
    TimedOut,
    /// The guest died while this binary ran.
    GuestDied,
    /// The guest stopped making progress while this binary ran.
    GuestHung,
    /// An earlier binary's guest died or hung, or the guest never booted.
    NotRun,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Passed => write!(f, "passed"),
            Self::Failed(code) => write!(f, "FAILED (exit {code})"),
            Self::TimedOut => write!(f, "TIMED OUT (killed in the guest)"),
            Self::GuestDied => write!(f, "GUEST DIED"),
            Self::GuestHung => write!(f, "GUEST HUNG"),
            Self::NotRun => write!(f, "not run"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BinaryResult {
    pub name: String,
    pub outcome: Outcome,
    /// Wall time in the guest, when it finished.
    pub secs: Option<f64>,
    pub log: PathBuf,
}

/// What one guest did.
pub struct Guest {
    pub end: End,
    /// How qemu ended (`exit status: 0`, `signal: 9 (SIGKILL)`).
    pub qemu_status: String,
    pub results: Vec<BinaryResult>,
    /// `uname -r`, as the guest reported it.
    pub uname: Option<String>,
    /// From qemu's start to `guest.sh`.
    pub boot_secs: Option<f64>,
    /// qemu's whole run.
    pub wall_secs: f64,
    pub console: PathBuf,
    /// Kernel warnings, BUGs and oopses on the console.
    pub complaints: Vec<String>,
}

/// Boots `kernel` and runs `binaries` in it, in order; results and logs
/// go into `dir`.
pub fn boot(kernel: &Kernel, binaries: &[Binary], opts: &Options, dir: &Path) -> Result<Guest> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = fs::canonicalize(dir)?;
    let console = dir.join("console.log");
    let label = kernel.release.as_str();

    let started = Instant::now();
    let script = guest_script(&dir, binaries, opts);
    // The tests write to all of these.
    let scratch = ["/tmp", "/run", "/var", "/root"];
    let mut qemu = qemu::start(kernel, &dir, &script, opts.cpus, &scratch)?;
    let mut results: Vec<BinaryResult> = Vec::new();
    let mut boot_secs = None;
    // The binary running, and when it started.
    let mut current: Option<(usize, Instant)> = None;
    let mut last_event = started;
    let (end, status) = loop {
        thread::sleep(Duration::from_millis(250));
        if boot_secs.is_none() && dir.join("uname").exists() {
            boot_secs = Some(started.elapsed().as_secs_f64());
            last_event = Instant::now();
            println!(
                "[{label}] guest up after {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        // Every binary that finished since the last look.
        while let Some(binary) = binaries.get(results.len()) {
            let Some((code, ms)) = read_rc(&dir, &binary.name) else {
                break;
            };
            let outcome = match code {
                0 => Outcome::Passed,
                124 | 137 => Outcome::TimedOut,
                code => Outcome::Failed(code),
            };
            let result = BinaryResult {
                name: binary.name.clone(),
                outcome,
                secs: Some(ms as f64 / 1000.0),
                log: dir.join(format!("{}.log", binary.name)),
            };
            print_result(label, &result);
            results.push(result);
            current = None;
            last_event = Instant::now();
        }
        if let Some(binary) = binaries.get(results.len()) {
            if current.is_none_or(|(i, _)| i != results.len())
                && dir.join(format!("{}.start", binary.name)).exists()
            {
                println!(
                    "[{label}] {}: running {}",
                    binary.name,
                    binary.args.join(" ")
                );
                current = Some((results.len(), Instant::now()));
            }
        }
        if dir.join("done").exists() {
            break (
                End::Completed,
                qemu::wait_or_kill(&mut qemu, Duration::from_secs(30)),
            );
        }
        if let Some(status) = qemu.try_wait()? {
            break (End::Died, Some(status));
        }
        let deadline = match current {
            Some((_, since)) => since + opts.timeout + GRACE,
            None if boot_secs.is_none() => started + BOOT_TIMEOUT,
            // Between two binaries, or after the last.
            None => last_event + GRACE,
        };
        if Instant::now() > deadline {
            let _ = qemu.kill();
            break (End::Hung, qemu.wait().ok());
        }
    };
    let wall_secs = started.elapsed().as_secs_f64();
    let broken = match end {
        End::Completed => Outcome::NotRun,
        End::Died => Outcome::GuestDied,
        End::Hung => Outcome::GuestHung,
    };
    for binary in binaries.iter().skip(results.len()) {
        // Only the binary that was running has started.
        let ran = dir.join(format!("{}.start", binary.name)).exists();
        results.push(BinaryResult {
            name: binary.name.clone(),
            outcome: if ran { broken } else { Outcome::NotRun },
            secs: None,
            log: dir.join(format!("{}.log", binary.name)),
        });
    }
    let uname = fs::read_to_string(dir.join("uname"))
        .ok()
        .map(|s| s.trim().to_owned());
    let complaints = qemu::complaints(&console);
    Ok(Guest {
        end,
        qemu_status: status.map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
        results,
        uname,
        boot_secs,
        wall_secs,
        console,
        complaints,
    })
}

/// `<name>.rc` holds "<exit code> <milliseconds>" once the binary ended.
fn read_rc(dir: &Path, name: &str) -> Option<(i32, u64)> {
    let text = fs::read_to_string(dir.join(format!("{name}.rc"))).ok()?;
    let mut words = text.split_whitespace();
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

fn print_result(label: &str, result: &BinaryResult) {
    let log = fs::read_to_string(&result.log).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "──── [{label}] {} output ────", result.name);
    let _ = write!(out, "{log}");
    let _ = writeln!(
        out,
        "──── [{label}] {}: {} in {:.1} s",
        result.name,
        result.outcome,
        result.secs.unwrap_or_default()
    );
}

/// The second stage's body: each binary in turn, with its log, exit code
/// and time in the run's directory.
fn guest_script(out: &Path, binaries: &[Binary], opts: &Options) -> String {
    let mut env = vec![
        ("CI".to_owned(), "true".to_owned()),
        ("XDPSTAT_REQUIRE_PRIVILEGED".to_owned(), "1".to_owned()),
        ("RUST_BACKTRACE".to_owned(), "1".to_owned()),
    ];
    env.extend(opts.env.iter().cloned());
    let mut s = format!(
        r#"ip link set lo up
run() {{
  name=$1; cwd=$2; shift 2
  echo "xtask-guest: start $name at $(cut -d' ' -f1 /proc/uptime) s"
  : > "$OUT/$name.start"
  t0=$(date +%s%N)
  (cd "$cwd" && exec timeout -k 10 {timeout} "$@") > "$OUT/$name.log" 2>&1
  rc=$?
  t1=$(date +%s%N)
  echo "$rc $(( (t1 - t0) / 1000000 ))" > "$OUT/$name.rc.tmp" && mv "$OUT/$name.rc.tmp" "$OUT/$name.rc"
  echo "xtask-guest: end $name: exit $rc at $(cut -d' ' -f1 /proc/uptime) s"
}}
"#,
        timeout = opts.timeout.as_secs()
    );
    for b in binaries {
        let mut line = format!(
            "run {} {} {}",
            quote(&b.name),
            quote(&b.cwd.display().to_string()),
            quote(&b.path.display().to_string())
        );
        for arg in &b.args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        s.push_str(&line);
        s.push('\n');
    }
    qemu::script(out, &env, &s)
}
