//! One guest: qemu's emulator (`-accel tcg`; this machine's KVM runs only
//! kernels built for its nested hypervisor) boots a kernel with a small
//! initramfs, which loads the 9p and veth modules, mounts the host's root
//! read-only over 9p with tmpfs over the writable directories and bpffs on
//! /sys/fs/bpf, mounts the run's directory writable at the same path, and
//! switches to the host's root. There `guest.sh` runs each test binary
//! under `timeout`, writing `<name>.log` and `<name>.rc` into the run's
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
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::{initramfs, kernel::Kernel};

/// The modules the guest loads before switching to the host's root
/// (`virtio_pci` is built into 6.12, a module in 6.1), with their
/// dependencies.
const MODULES: [&str; 4] = ["virtio_pci", "9pnet_virtio", "9p", "veth"];

/// How long the guest may take to reach `guest.sh`.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `guest.sh` ran every binary and powered off.
    Completed,
    /// qemu exited first: a panic, or qemu itself failed.
    Died,
    /// Killed by the host at a deadline.
    Hung,
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
    fs::write(dir.join("guest.sh"), guest_script(&dir, binaries, opts))?;
    let initrd = dir.join("initramfs.cpio");
    initramfs::build(kernel, &MODULES, &init_script(&dir), &initrd)?;
    let console = dir.join("console.log");
    let label = kernel.release.as_str();

    let started = Instant::now();
    let mut qemu = spawn_qemu(kernel, &initrd, &dir, &console, opts.cpus)?;
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
                wait_or_kill(&mut qemu, Duration::from_secs(30)),
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
    let complaints = complaints(&console);
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

fn spawn_qemu(
    kernel: &Kernel,
    initrd: &Path,
    dir: &Path,
    console: &Path,
    cpus: u32,
) -> Result<Child> {
    let share = |id: &str, path: &Path, readonly: bool| {
        [
            "-fsdev".to_owned(),
            format!(
                "local,id={id},path={},security_model=none,multidevs=remap{}",
                path.display(),
                if readonly { ",readonly=on" } else { "" }
            ),
            "-device".to_owned(),
            format!("virtio-9p-pci,fsdev={id},mount_tag={id}"),
        ]
    };
    let log = fs::File::create(dir.join("qemu.log"))?;
    let mut cmd = Command::new("qemu-system-x86_64");
    // One host thread for all the vCPUs: with multi-threaded TCG, a guest
    // running BPF_PROG_TEST_RUN on two CPUs died in 2 of 4 runs with
    // "Oops: int3" in bpf_dispatcher_xdp_func, which test runs re-patch
    // (text_poke_bp) while the other CPU runs it; single-threaded, 0 of 4.
    // It also lets two guests share this 2-core machine.
    cmd.args(["-accel", "tcg,thread=single", "-cpu", "max", "-m", "2G"])
        .args(["-smp", &cpus.to_string()])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-nic",
            "none",
        ])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            // A panic reboots at once, and -no-reboot turns that into
            // qemu's exit; an oops anywhere is a panic.
            "console=ttyS0 rdinit=/init panic=-1 oops=panic 8250.nr_uarts=1",
        ])
        .args(share("hostroot", Path::new("/"), true))
        .args(share("xtaskout", dir, false))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    fs::write(dir.join("qemu.cmd"), format!("{cmd:?}\n"))?;
    cmd.spawn().context("starting qemu-system-x86_64")
}

fn wait_or_kill(child: &mut Child, patience: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    child.wait().ok()
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

/// Kernel complaints on the console: warnings, BUGs, oopses, panics.
fn complaints(console: &Path) -> Vec<String> {
    let text = fs::read(console).unwrap_or_default();
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| PANIC_MARKS.iter().any(|m| l.contains(m)))
        .map(str::to_owned)
        .collect()
}

const PANIC_MARKS: [&str; 8] = [
    "Kernel panic",
    "BUG:",
    "Oops",
    "WARNING:",
    "general protection fault",
    "Fatal exception",
    "soft lockup",
    "rcu_sched self-detected stall",
];

/// The part of a console log worth showing: from a little before the first
/// complaint (60 lines), and the last `tail` lines.
pub fn console_excerpt(console: &Path, tail: usize) -> String {
    let text = fs::read(console).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let tail_from = lines.len().saturating_sub(tail);
    let mut shown: Vec<&str> = Vec::new();
    if let Some(first) = lines
        .iter()
        .position(|l| PANIC_MARKS.iter().any(|m| l.contains(m)))
    {
        let from = first.saturating_sub(5);
        let to = (first + 60).min(tail_from);
        if from < to {
            shown.extend_from_slice(&lines[from..to]);
            if to < tail_from {
                shown.push("[…]");
            }
        }
    }
    shown.extend_from_slice(&lines[tail_from..]);
    shown.join("\n")
}

/// A shell word.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The first stage, `/init` in the initramfs (busybox): load the modules,
/// mount the host's root and the run's directory, switch to the host's
/// root and run `guest.sh` there as PID 1.
fn init_script(out: &Path) -> String {
    let out = quote(&out.display().to_string());
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() {{ echo "xtask-init: $*"; poweroff -f; sleep 5; }}
echo "xtask-init: loading modules"
for m in /modules/*.ko; do insmod "$m" || fail "insmod $m"; done
R=/newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot $R || fail "mounting the host's root"
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
# /var becomes a tmpfs that keeps the host's top-level symlinks (/var/run)
# and directories, empty.
links=""; dirs=""
for e in $R/var/*; do
  n=${{e##*/}}
  if [ -L "$e" ]; then links="$links $n:$(readlink "$e")"; elif [ -d "$e" ]; then dirs="$dirs $n"; fi
done
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
mount -t tmpfs -o mode=755 tmpfs $R/run
mount -t tmpfs -o mode=755 tmpfs $R/var
mount -t tmpfs -o mode=700 tmpfs $R/root
for d in $dirs; do mkdir -p "$R/var/$d"; done
chmod 1777 $R/var/tmp 2>/dev/null
for l in $links; do ln -s "${{l#*:}}" "$R/var/${{l%%:*}}"; done
mount -t bpf bpf $R/sys/fs/bpf || fail "mounting bpffs"
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mkdir -p $R{out} 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 xtaskout $R{out} || fail "mounting the run's directory"
echo "xtask-init: switching to the host's root"
exec switch_root $R /bin/sh {out}/guest.sh
"#
    )
}

/// The second stage: runs on the host's root (read-only) as PID 1, with
/// the host's tools.
fn guest_script(out: &Path, binaries: &[Binary], opts: &Options) -> String {
    let out = quote(&out.display().to_string());
    let mut s = format!(
        r#"#!/bin/sh
OUT={out}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8
export CI=true XDPSTAT_REQUIRE_PRIVILEGED=1 RUST_BACKTRACE=1
"#
    );
    for (k, v) in &opts.env {
        s.push_str(&format!("export {k}={}\n", quote(v)));
    }
    s.push_str(&format!(
        r#"ip link set lo up
uname -r > "$OUT/uname.tmp" && mv "$OUT/uname.tmp" "$OUT/uname"
echo "xtask-guest: $(uname -r) up, $(nproc) CPUs, $(cut -d' ' -f1 /proc/uptime) s since boot"
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
    ));
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
    s.push_str(
        r#"echo "xtask-guest: done"
: > "$OUT/done"
sync
# busybox-static is on the host's root: reboot(2) at once, no init to ask.
/bin/busybox poweroff -f
echo o > /proc/sysrq-trigger
"#,
    );
    s
}
