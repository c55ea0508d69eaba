//! `xdpstat map dump` against `bpftool map dump`, as whole processes, on
//! the same maps in the same run: what a user waits for.
//!
//! The maps: xdpstat's own per-CPU counters (attached to a throwaway veth
//! pair in a throwaway namespace), and hash maps of 1000 entries made here,
//! with BTF (a typed struct value) and without. For each map and each
//! output (text, JSON), the two commands run 30 times, interleaved and
//! alternating which goes first; the table shows each one's median wall
//! time and the median of the per-round ratios (target ≤ 1.0). The outputs
//! are checked equal once before timing (bar the `Found` line that
//! xdpstat adds after a BTF listing). A first row times `--version` against
//! `bpftool version`: process start-up alone, which is most of a small
//! map's time.
//!
//! `cargo bench -p xdpstat --bench map_dump` (root, bpftool, iproute2).
//! Everything it makes is removed on exit, even on a panic.

use std::{
    ffi::CString,
    mem::size_of,
    os::{
        fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
        unix::process::CommandExt,
    },
    path::PathBuf,
    process::{Command, Stdio},
    time::Instant,
};

const ROUNDS: usize = 30;
const ENTRIES: u32 = 1000;

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace with a veth pair and xdpstat attached to one end; removed
/// on drop.
struct Veth {
    ns: String,
    iface: String,
    /// Where xdpstat pinned the counters, as `attach --json` says.
    counters: String,
}

impl Veth {
    fn new() -> Self {
        let tag = std::process::id();
        let mut this = Self {
            ns: format!("xdpstat-bench-{tag}"),
            iface: format!("xbd{tag}"),
            counters: String::new(),
        };
        sh(&["ip", "netns", "add", &this.ns]);
        sh(&[
            "ip",
            "-n",
            &this.ns,
            "link",
            "add",
            &this.iface,
            "type",
            "veth",
            "peer",
            "name",
            &format!("xbe{tag}"),
        ]);
        sh(&["ip", "-n", &this.ns, "link", "set", &this.iface, "up"]);
        let out = this.xdpstat(&["attach", &this.iface, "--json"]);
        assert!(
            out.status.success(),
            "attach: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let attached: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("attach --json");
        let dir = attached["attachment"]["pin_dir"]
            .as_str()
            .or_else(|| attached["pin_dir"].as_str())
            .expect("attach --json names the pin directory");
        this.counters = format!("{dir}/counters");
        this
    }

    /// xdpstat with only the network namespace changed (bpffs stays the
    /// host's, unlike `ip netns exec`).
    fn xdpstat(&self, args: &[&str]) -> std::process::Output {
        let path = CString::new(format!("/run/netns/{}", self.ns)).unwrap();
        // SAFETY: a NUL-terminated path; the result is checked.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        assert!(fd >= 0, "open the namespace");
        // SAFETY: a descriptor we just opened.
        let ns = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdpstat"));
        cmd.args(args);
        // SAFETY: setns is async-signal-safe; the fd lives until exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.output().unwrap()
    }

    fn counters(&self) -> String {
        self.counters.clone()
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = self.xdpstat(&["detach", &self.iface]);
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

#[path = "../tests/common/btf_writer.rs"]
mod btf_writer;
use btf_writer::BtfWriter;

fn bpf<T>(cmd: i32, attr: &mut T) -> i64 {
    // SAFETY: `attr` is a live prefix of `union bpf_attr` for `cmd`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            size_of::<T>() as u32,
        )
    };
    assert!(ret >= 0, "bpf({cmd}): {}", std::io::Error::last_os_error());
    ret
}

/// BTF for `unsigned int` (id 1) and `struct counters { unsigned long
/// long packets, bytes; }` (id 3).
fn counters_btf() -> OwnedFd {
    let mut b = BtfWriter::new();
    b.int("unsigned int", 4, 0);
    let u64_t = b.int("unsigned long long", 8, 0);
    b.record(
        4,
        "counters",
        16,
        false,
        &[("packets", u64_t, 0, 0), ("bytes", u64_t, 64, 0)],
    );
    xdpstat::kernel::sys::btf_load(&b.blob()).expect("BPF_BTF_LOAD")
}

/// A pinned hash map of `ENTRIES` u32 keys and 16-byte values; unpinned
/// on drop.
struct Pinned(PathBuf);

impl Pinned {
    fn hash(name: &str, btf: Option<&OwnedFd>) -> Self {
        #[repr(C)]
        struct Update {
            map_fd: u32,
            _pad: u32,
            key: u64,
            value: u64,
            flags: u64,
        }
        let fd = xdpstat::kernel::sys::maps::map_create(&xdpstat::kernel::sys::maps::MapCreate {
            map_type: 1,
            key_size: 4,
            value_size: 16,
            max_entries: ENTRIES,
            name,
            btf: btf.map(|fd| (fd.as_fd(), 1, 3)),
            ..Default::default()
        })
        .unwrap();
        for k in 0..ENTRIES {
            let key = k.to_ne_bytes();
            let value = [u64::from(k) * 3, u64::from(k) * 1500]
                .map(u64::to_ne_bytes)
                .concat();
            let mut update = Update {
                map_fd: fd.as_raw_fd() as u32,
                _pad: 0,
                key: key.as_ptr() as u64,
                value: value.as_ptr() as u64,
                flags: 0,
            };
            bpf(2, &mut update);
        }
        let path = PathBuf::from(format!(
            "/sys/fs/bpf/xdpstat-bench-{}-{name}",
            std::process::id()
        ));
        xdpstat::kernel::sys::obj_pin(fd.as_fd(), &path).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn xdpstat_cmd(pin: &str, json: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdpstat"));
    cmd.args(["map", "dump", pin]);
    if json {
        cmd.arg("--json");
    }
    cmd
}

fn bpftool_cmd(pin: &str, json: bool) -> Command {
    let mut cmd = Command::new("bpftool");
    if json {
        cmd.arg("-j");
    }
    cmd.args(["map", "dump", "pinned", pin]);
    cmd
}

fn output(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Seconds one run takes, output discarded.
fn time(mut cmd: Command) -> f64 {
    let start = Instant::now();
    let status = cmd.stdout(Stdio::null()).status().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(status.success());
    secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: run
    // only when asked to benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the benchmark needs root");

    let veth = Veth::new();
    let btf = counters_btf();
    let plain = Pinned::hash("hash_plain", None);
    let typed = Pinned::hash("hash_btf", Some(&btf));
    let counters = veth.counters();
    let maps = [
        ("percpu counters (BTF)", counters.as_str(), true),
        ("hash, 1000 entries", plain.path(), false),
        ("hash, 1000 entries (BTF)", typed.path(), true),
    ];

    for &(label, pin, has_btf) in &maps {
        let ours = output(xdpstat_cmd(pin, false));
        let theirs = output(bpftool_cmd(pin, false));
        if has_btf {
            assert!(ours.starts_with(&theirs), "{label}: text differs");
        } else {
            assert_eq!(ours, theirs, "{label}: text differs");
        }
        assert_eq!(
            output(xdpstat_cmd(pin, true)),
            output(bpftool_cmd(pin, true)),
            "{label}: JSON differs"
        );
    }

    println!(
        "{:<26} {:<5} {:>12} {:>12} {:>7}",
        "map", "out", "xdpstat ms", "bpftool ms", "ratio"
    );
    // What the two binaries cost before they read anything: the floor
    // under the small map's times.
    let version = |ours: bool| {
        let mut cmd = Command::new(if ours {
            env!("CARGO_BIN_EXE_xdpstat")
        } else {
            "bpftool"
        });
        cmd.arg(if ours { "--version" } else { "version" });
        cmd
    };
    row(
        "startup (version)",
        "-",
        || version(true),
        || version(false),
    );
    for &(label, pin, _) in &maps {
        for json in [false, true] {
            row(
                label,
                if json { "json" } else { "text" },
                || xdpstat_cmd(pin, json),
                || bpftool_cmd(pin, json),
            );
        }
    }
    // `stats_user`'s job on the same counters map, against bpftool's dump.
    for json in [false, true] {
        row(
            "show --map-path (counters)",
            if json { "json" } else { "text" },
            || {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdpstat"));
                cmd.args(["show", "--map-path", counters.as_str()]);
                if json {
                    cmd.arg("--json");
                }
                cmd
            },
            || bpftool_cmd(counters.as_str(), json),
        );
    }
}

/// Times both commands `ROUNDS` times, interleaved, alternating which goes
/// first, after a warm-up; prints their medians and the median ratio.
fn row(label: &str, out: &str, ours: impl Fn() -> Command, theirs: impl Fn() -> Command) {
    for _ in 0..3 {
        time(ours());
        time(theirs());
    }
    let (mut a_times, mut b_times, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (a, b) = if round % 2 == 0 {
            let a = time(ours());
            (a, time(theirs()))
        } else {
            let b = time(theirs());
            (time(ours()), b)
        };
        a_times.push(a);
        b_times.push(b);
        ratios.push(a / b);
    }
    println!(
        "{label:<26} {out:<5} {:>12.3} {:>12.3} {:>7.3}",
        median(a_times) * 1e3,
        median(b_times) * 1e3,
        median(ratios)
    );
}
