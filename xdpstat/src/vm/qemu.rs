//! One guest under qemu's emulator (`-accel tcg`: this machine kind's KVM
//! runs only kernels built for its nested hypervisor).
//!
//! The initramfs's `/init` (busybox) loads the 9p and veth modules, mounts
//! the host's root read-only over 9p, with tmpfs over the writable
//! directories and bpffs on `/sys/fs/bpf`, mounts the run's directory
//! writable at its own path, and switches to the host's root. There
//! `guest.sh`, which the caller writes with [`script`], runs as PID 1 and
//! powers off. `uname` appears in the run's directory once the guest is
//! up, and `done` once its script has ended.
//!
//! A panic ends qemu (`panic=-1 oops=panic` and `-no-reboot`), so a guest
//! that died is qemu exiting before `done`; one that hung is no `done` by
//! the deadline.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::{image::Kernel, initramfs, VmError};

/// The emulator.
pub const QEMU: &str = "qemu-system-x86_64";

/// The guest's memory.
pub const MEMORY_MIB: u64 = 2048;

/// The modules the guest loads before switching to the host's root
/// (`virtio_pci` is built into 6.12, a module in 6.1), with their
/// dependencies.
pub const MODULES: [&str; 4] = ["virtio_pci", "9pnet_virtio", "9p", "veth"];

/// How long a guest may take to come up.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// What a guest needs of the host: qemu, busybox, and memory for
/// `guests` guests at once.
///
/// # Errors
///
/// [`VmError::NoQemu`], [`VmError::NoBusybox`], [`VmError::Memory`].
pub fn require(guests: usize) -> Result<(), VmError> {
    find_qemu()?;
    if !Path::new(initramfs::BUSYBOX).is_file() {
        return Err(VmError::NoBusybox {
            path: initramfs::BUSYBOX,
        });
    }
    let need_mib = MEMORY_MIB * guests as u64 + 256;
    if let Some(available_mib) = available_mib() {
        if available_mib < need_mib {
            return Err(VmError::Memory {
                guests,
                need_mib,
                available_mib,
            });
        }
    }
    Ok(())
}

fn find_qemu() -> Result<PathBuf, VmError> {
    env::var_os("PATH")
        .iter()
        .flat_map(env::split_paths)
        .map(|dir| dir.join(QEMU))
        .find(|p| p.is_file())
        .ok_or(VmError::NoQemu { binary: QEMU })
}

/// `MemAvailable` in /proc/meminfo.
fn available_mib() -> Option<u64> {
    let info = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// A shell word.
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The second stage, `guest.sh`: `body` between a fixed head (PATH, HOME,
/// `env`, `$OUT` the run's directory, `uname` written) and a fixed tail
/// (`done` written, power off).
pub fn script(out: &Path, env: &[(String, String)], body: &str) -> String {
    let mut s = format!(
        r#"#!/bin/sh
OUT={out}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8
"#,
        out = quote(&out.display().to_string())
    );
    for (k, v) in env {
        s.push_str(&format!("export {k}={}\n", quote(v)));
    }
    s.push_str(
        r#"uname -r > "$OUT/uname.tmp" && mv "$OUT/uname.tmp" "$OUT/uname"
echo "xdpstat-guest: $(uname -r) up, $(nproc) CPUs, $(cut -d' ' -f1 /proc/uptime) s since boot"
"#,
    );
    s.push_str(body);
    s.push_str(
        r#"
echo "xdpstat-guest: done"
: > "$OUT/done"
sync
# busybox-static is on the host's root: reboot(2) at once, no init to ask.
/bin/busybox poweroff -f
echo o > /proc/sysrq-trigger
"#,
    );
    s
}

/// The first stage, `/init` in the initramfs: load the modules, mount the
/// host's root and the run's directory, switch to the host's root and run
/// `guest.sh` there as PID 1. Each of `scratch` gets an empty tmpfs.
fn init_script(out: &Path, scratch: &[&str]) -> String {
    let out = quote(&out.display().to_string());
    let mut mounts = String::new();
    for dir in scratch {
        if *dir == "/var" {
            // /var becomes a tmpfs that keeps the host's top-level symlinks
            // (/var/run) and directories, empty.
            mounts.push_str(
                r#"links=""; dirs=""
for e in $R/var/*; do
  n=${e##*/}
  if [ -L "$e" ]; then links="$links $n:$(readlink "$e")"; elif [ -d "$e" ]; then dirs="$dirs $n"; fi
done
mount -t tmpfs -o mode=755 tmpfs $R/var
for d in $dirs; do mkdir -p "$R/var/$d"; done
chmod 1777 $R/var/tmp 2>/dev/null
for l in $links; do ln -s "${l#*:}" "$R/var/${l%%:*}"; done
"#,
            );
        } else {
            let mode = match *dir {
                "/tmp" => "1777",
                "/root" => "700",
                _ => "755",
            };
            mounts.push_str(&format!(
                "mount -t tmpfs -o mode={mode} tmpfs $R{}\n",
                quote(dir)
            ));
        }
    }
    let scratch = mounts;
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() {{ echo "xdpstat-init: $*"; poweroff -f; sleep 5; }}
echo "xdpstat-init: loading modules"
for m in /modules/*.ko; do insmod "$m" || fail "insmod $m"; done
R=/newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot $R || fail "mounting the host's root"
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
{scratch}mount -t bpf bpf $R/sys/fs/bpf || fail "mounting bpffs"
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mkdir -p $R{out} 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out $R{out} || fail "mounting the run's directory"
echo "xdpstat-init: switching to the host's root"
exec switch_root $R /bin/sh {out}/guest.sh
"#
    )
}

/// Writes `guest.sh` and the initramfs into `dir` and starts qemu, its
/// console going to `dir/console.log` and its own messages to
/// `dir/qemu.log`. `scratch` are the host's directories the guest sees
/// as empty tmpfs instead (it cannot write to the host's root).
///
/// # Errors
///
/// [`VmError`] when the initramfs cannot be built or qemu not started.
pub fn start(
    kernel: &Kernel,
    dir: &Path,
    guest_script: &str,
    cpus: u32,
    scratch: &[&str],
) -> Result<Child, VmError> {
    fs::write(dir.join("guest.sh"), guest_script)
        .map_err(VmError::io(format!("writing {}/guest.sh", dir.display())))?;
    let initrd = dir.join("initramfs.cpio");
    initramfs::build(kernel, &MODULES, &init_script(dir, scratch), &initrd)?;
    let qemu = find_qemu()?;
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
    let io = |what: &str| VmError::io(format!("{what} in {}", dir.display()));
    let log = fs::File::create(dir.join("qemu.log")).map_err(io("creating qemu.log"))?;
    let mut cmd = Command::new(qemu);
    // One host thread for all the vCPUs: with multi-threaded TCG, a guest
    // running BPF_PROG_TEST_RUN on two CPUs died in 2 of 4 runs with
    // "Oops: int3" in bpf_dispatcher_xdp_func, which test runs re-patch
    // (text_poke_bp) while the other CPU runs it; single-threaded, 0 of 4.
    // It also lets two guests share a 2-core machine.
    cmd.args(["-accel", "tcg,thread=single", "-cpu", "max"])
        .args(["-m", &format!("{MEMORY_MIB}M")])
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
        .arg(format!("file:{}", dir.join("console.log").display()))
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            // A panic reboots at once, and -no-reboot turns that into
            // qemu's exit; an oops anywhere is a panic.
            "console=ttyS0 rdinit=/init panic=-1 oops=panic 8250.nr_uarts=1",
        ])
        .args(share("hostroot", Path::new("/"), true))
        .args(share("out", dir, false))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io("opening qemu.log"))?)
        .stderr(log);
    let _ = fs::write(dir.join("qemu.cmd"), format!("{cmd:?}\n"));
    cmd.spawn().map_err(VmError::io(format!("starting {QEMU}")))
}

/// How a guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Its script ran to the end and it powered off.
    Completed,
    /// qemu exited first: a panic, or qemu itself failed.
    Died,
    /// Killed at a deadline.
    Hung,
}

/// Boots `kernel`, runs `guest_script` in it and waits for it to power
/// off: at most [`BOOT_TIMEOUT`] to come up, then `timeout`.
/// `progress` hears when the guest is up.
///
/// # Errors
///
/// [`VmError::Guest`] when the guest died or hung, with its console log.
pub fn run(
    kernel: &Kernel,
    dir: &Path,
    guest_script: &str,
    cpus: u32,
    scratch: &[&str],
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<(), VmError> {
    let started = Instant::now();
    let mut qemu = start(kernel, dir, guest_script, cpus, scratch)?;
    let mut up: Option<Instant> = None;
    let (end, status) = loop {
        thread::sleep(Duration::from_millis(200));
        if up.is_none() && dir.join("uname").exists() {
            up = Some(Instant::now());
            progress(&format!(
                "up after {:.0} s",
                started.elapsed().as_secs_f64()
            ));
        }
        if dir.join("done").exists() {
            break (
                End::Completed,
                wait_or_kill(&mut qemu, Duration::from_secs(30)),
            );
        }
        match qemu.try_wait() {
            Ok(Some(status)) => break (End::Died, Some(status)),
            Ok(None) => {}
            Err(_) => break (End::Died, None),
        }
        let deadline = match up {
            Some(t) => t + timeout,
            None => started + BOOT_TIMEOUT,
        };
        if Instant::now() > deadline {
            let _ = qemu.kill();
            break (End::Hung, qemu.wait().ok());
        }
    };
    if end == End::Completed {
        return Ok(());
    }
    let console = dir.join("console.log");
    let qemu_said = fs::read_to_string(dir.join("qemu.log")).unwrap_or_default();
    let status = status.map_or_else(|| "unknown".to_owned(), |s| s.to_string());
    let how = match (end, up) {
        (End::Hung, None) => format!("did not come up in {} s", BOOT_TIMEOUT.as_secs()),
        (End::Hung, Some(_)) => format!("hung: no result in {} s", timeout.as_secs()),
        _ => format!(
            "died (qemu: {status}{})",
            if qemu_said.trim().is_empty() {
                String::new()
            } else {
                format!("; it said: {}", qemu_said.trim())
            }
        ),
    };
    Err(VmError::Guest {
        release: kernel.release.clone(),
        how,
        excerpt: console_excerpt(&console, 30),
        console,
    })
}

/// Waits up to `patience` for the child, then kills it.
pub fn wait_or_kill(child: &mut Child, patience: Duration) -> Option<ExitStatus> {
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

/// Kernel complaints on the console: warnings, BUGs, oopses, panics.
pub fn complaints(console: &Path) -> Vec<String> {
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
