//! Test fixtures: a network namespace with a veth pair that is torn down
//! even when the test fails, raw frame sending, and running the xdpstat
//! binary inside the namespace.
#![allow(dead_code, reason = "each test binary uses a different part")]

pub mod btf_writer;

use std::{
    ffi::CString,
    fs,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// Whether privileged tests must run (and fail rather than skip) here.
pub fn required() -> bool {
    std::env::var_os("CI").is_some_and(|v| v != "false" && !v.is_empty())
        || std::env::var_os("XDPSTAT_REQUIRE_PRIVILEGED").is_some()
}

/// Returns true if the test may go on. Without root it fails under CI (or
/// `cargo xtask test`), and otherwise says loudly that it skipped.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        !required(),
        "{test} needs root (CI=true or XDPSTAT_REQUIRE_PRIVILEGED is set, so it may not skip)"
    );
    eprintln!("SKIPPED {test}: needs root");
    false
}

/// A built fixture under fixtures/build (`cargo xtask build-fixtures`,
/// which `cargo xtask test` runs first); `None`, said loudly, when it is
/// missing, and a failure under CI.
pub fn fixture(rel: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/build")
        .join(rel);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        !required(),
        "{} is missing: run `cargo xtask build-fixtures`",
        path.display()
    );
    eprintln!(
        "SKIPPED: {} is missing (run `cargo xtask build-fixtures`)",
        path.display()
    );
    None
}

/// A command's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failed command: the given exit code and one line on stderr that
/// contains every word in `says`, and no panic.
pub fn assert_fails(out: &Output, code: i32, says: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line of error: {err}"
    );
    for word in says {
        assert!(err.contains(word), "{err:?} should mention {word:?}");
    }
    assert!(!err.contains("panicked"), "no panic: {err}");
}

/// Whether `tool` is on PATH; fails under CI when it is not.
pub fn have_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || !required(),
        "{tool} is not installed (`cargo xtask deps` installs it)"
    );
    if !found {
        eprintln!("SKIPPED part of the test: {tool} is not installed");
    }
    found
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace holding a veth pair `a` <-> `b`, both up, with IPv6
/// off so that the stack sends nothing of its own. Interface names are
/// unique across concurrent tests and processes, because xdpstat's pins are
/// keyed by name and bpffs is shared by every namespace.
pub struct VethNs {
    /// Namespace name.
    pub ns: String,
    /// The interface xdpstat attaches to.
    pub a: String,
    /// Its peer, which sends.
    pub b: String,
    /// A bpffs path the test may pin to; removed on drop.
    pub scratch_pin: PathBuf,
    /// Whether the names are this test's alone, so that pins named after
    /// them in the layout before namespaces are its own too.
    unique: bool,
}

impl VethNs {
    pub fn new() -> Self {
        let tag = Self::tag();
        let mut this = Self::with_names(&format!("xsa{tag}"), &format!("xsb{tag}"));
        this.unique = true;
        this
    }

    fn tag() -> String {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        format!("{:x}{n:x}", std::process::id() % 0x10000)
    }

    /// A namespace whose pair has the given names: names repeat across
    /// namespaces, and xdpstat must keep them apart.
    pub fn with_names(a: &str, b: &str) -> Self {
        let tag = Self::tag();
        let this = Self {
            ns: format!("xdpstat-test-{tag}"),
            a: a.to_owned(),
            b: b.to_owned(),
            scratch_pin: PathBuf::from(format!("/sys/fs/bpf/xdpstat-test-{tag}")),
            unique: false,
        };
        sh(&["ip", "netns", "add", &this.ns]);
        // From here on Drop cleans up, even if a later step panics.
        sh(&[
            "ip",
            "netns",
            "exec",
            &this.ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        sh(&[
            "ip", "-n", &this.ns, "link", "add", &this.a, "type", "veth", "peer", "name", &this.b,
        ]);
        sh(&["ip", "-n", &this.ns, "link", "set", &this.a, "up"]);
        sh(&["ip", "-n", &this.ns, "link", "set", &this.b, "up"]);
        this
    }

    fn ns_file(&self) -> OwnedFd {
        let path = CString::new(format!("/run/netns/{}", self.ns)).unwrap();
        // SAFETY: a NUL-terminated path; the fd is checked.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        assert!(fd >= 0, "open netns {}", self.ns);
        // SAFETY: a fresh fd we own.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    /// Runs `f` on a thread that has entered the namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = self.ns_file();
        thread::spawn(move || {
            // SAFETY: setns on this thread only, with a valid netns fd.
            let ret = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(ret, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// A command that runs inside the namespace (network only: bpffs and
    /// /sys stay the host's, unlike `ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let ns = self.ns_file();
        let mut cmd = Command::new(program);
        // SAFETY: setns is async-signal-safe; the fd stays open until exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs xdpstat with `args` in the namespace.
    pub fn xdpstat(&self, args: &[&str]) -> Output {
        self.command(env!("CARGO_BIN_EXE_xdpstat"))
            .args(args)
            .output()
            .expect("run xdpstat")
    }

    /// Runs xdpstat and insists on success.
    pub fn xdpstat_ok(&self, args: &[&str]) -> String {
        let out = self.xdpstat(args);
        assert!(
            out.status.success(),
            "xdpstat {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `xdpstat show IFACE --json`, parsed.
    pub fn show_json(&self, iface: &str) -> Value {
        serde_json::from_str(&self.xdpstat_ok(&["show", iface, "--json"]))
            .expect("show --json is JSON")
    }

    /// Sends raw Ethernet frames of the given lengths out of `b` (so they
    /// arrive on `a`), from the calling thread's CPU unless `cpu` pins it.
    pub fn send_frames(&self, lengths: Vec<usize>, cpu: Option<usize>) {
        self.send_raw(lengths.into_iter().map(frame).collect(), cpu);
    }

    /// Sends the given Ethernet frames out of `b`, as [`Self::send_frames`].
    pub fn send_raw(&self, frames: Vec<Vec<u8>>, cpu: Option<usize>) {
        let b = self.b.clone();
        self.run(move || {
            if let Some(cpu) = cpu {
                pin_to_cpu(cpu);
            }
            send_raw_on(&b, &frames);
        });
    }

    /// Index of an interface in the namespace.
    pub fn ifindex(&self, iface: &str) -> u32 {
        let name = iface.to_owned();
        self.run(move || xdpstat::kernel::iface::index(&name).expect("interface exists"))
    }

    /// Attaches the empty pass program to `iface` through netlink, as
    /// `ip link` or another loader would, and returns its id. The device
    /// keeps the program after this process lets go of it.
    pub fn attach_foreign(&self, iface: &str, flags: u32) -> u32 {
        let ifindex = self.ifindex(iface);
        self.run(move || {
            let mut ebpf = aya::Ebpf::load_file(bpf_object("xdpstat_pass")).unwrap();
            let prog: &mut aya::programs::Xdp = ebpf
                .program_mut("xdpstat_pass")
                .unwrap()
                .try_into()
                .unwrap();
            prog.load().unwrap();
            let fd = std::os::fd::AsFd::as_fd(prog.fd().unwrap());
            xdpstat::kernel::netlink::set_xdp(ifindex, Some(fd), None, flags).unwrap();
            prog.info().unwrap().id()
        })
    }

    /// Attaches XDP program `program` of `obj` to `iface` in generic mode
    /// through a BPF link, pinned at `scratch_pin` as a libbpf loader
    /// would pin it (`Drop` removes the pin).
    pub fn attach_link(&self, iface: &str, obj: &Path, program: &str) {
        let ifindex = self.ifindex(iface);
        let pin = self.scratch_pin.clone();
        let (obj, program) = (obj.to_owned(), program.to_owned());
        self.run(move || {
            let mut ebpf = aya::Ebpf::load_file(&obj).unwrap();
            let prog: &mut aya::programs::Xdp =
                ebpf.program_mut(&program).unwrap().try_into().unwrap();
            prog.load().unwrap();
            let id = prog
                .attach_to_if_index(ifindex, aya::programs::XdpMode::Skb)
                .unwrap();
            let link: aya::programs::links::FdLink =
                prog.take_link(id).unwrap().try_into().unwrap();
            link.pin(&pin).unwrap();
        });
    }

    /// xdpstat's directory for this namespace.
    pub fn ns_dir(&self) -> xdpstat::kernel::bpffs::NsDir {
        self.run(|| xdpstat::kernel::bpffs::NsDir::current().expect("name the namespace"))
    }

    /// xdpstat's pin directory for `iface` of this namespace.
    pub fn pin_dir(&self, iface: &str) -> xdpstat::kernel::bpffs::PinDir {
        let ifindex = self.ifindex(iface);
        self.ns_dir().pin_dir(ifindex, iface)
    }

    /// Runs `ip -n NS ARGS…`, insisting on success.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["ip", "-n", self.ns.as_str()];
        all.extend_from_slice(args);
        sh(&all);
    }

    /// The XDP programs on `iface`, as netlink in the namespace reports them.
    pub fn xdp_on(&self, iface: &str) -> Vec<xdpstat::kernel::netlink::AttachedProgram> {
        let ifindex = self.ifindex(iface);
        self.run(move || {
            xdpstat::kernel::netlink::interface(ifindex)
                .unwrap()
                .map_or_else(Vec::new, |i| i.xdp)
        })
    }

    /// Every pin under xdpstat's directory for this namespace.
    pub fn pins(&self) -> Vec<PathBuf> {
        let mut pins = Vec::new();
        if let Ok(dirs) = fs::read_dir(self.ns_dir().path()) {
            for dir in dirs.flatten() {
                pins.extend(
                    fs::read_dir(dir.path())
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|e| e.path()),
                );
            }
        }
        pins
    }

    /// Deletes an interface (and so its veth peer).
    pub fn delete(&self, iface: &str) {
        sh(&["ip", "-n", &self.ns, "link", "del", iface]);
    }

    /// Deletes the namespace itself, with its interfaces, and leaves
    /// xdpstat's pins for it as they are (`Drop` still removes them).
    pub fn delete_namespace(&self) {
        sh(&["ip", "netns", "del", &self.ns]);
    }
}

impl Drop for VethNs {
    fn drop(&mut self) {
        // The namespace is this test's, and so is xdpstat's directory for it.
        if let Ok(ns) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.ns_dir())) {
            if let Ok(dirs) = fs::read_dir(ns.path()) {
                for dir in dirs.flatten() {
                    remove_pins(&dir.path());
                }
            }
            let _ = fs::remove_dir(ns.path());
        }
        if self.unique {
            for iface in [&self.a, &self.b] {
                remove_pins(&Path::new("/sys/fs/bpf/xdpstat").join(iface));
            }
        }
        let _ = fs::remove_dir("/sys/fs/bpf/xdpstat");
        let _ = fs::remove_file(&self.scratch_pin);
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

fn remove_pins(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            // An observers' directory holds a directory per component.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_pins(&entry.path());
            } else {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Pins the calling thread to one CPU.
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: an all-zero cpu_set_t is empty; CPU_SET stays in bounds.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let ret = libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(ret, 0, "sched_setaffinity({cpu})");
    }
}

/// Builds an Ethernet frame of exactly `len` bytes: broadcast, from a
/// locally administered address, EtherType 0x88b5 (local experimental),
/// payload counting up.
pub fn frame(len: usize) -> Vec<u8> {
    assert!(len >= 14, "a frame has a 14-byte header");
    let mut f = vec![0xff; 6];
    f.extend([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
    f.extend([0x88, 0xb5]);
    f.extend((0..len - 14).map(|i| i as u8));
    f
}

/// Sends frames of the given lengths out of `iface` with an AF_PACKET
/// socket, in the calling thread's namespace.
pub fn send_frames_on(iface: &str, lengths: &[usize]) {
    let frames: Vec<Vec<u8>> = lengths.iter().map(|&len| frame(len)).collect();
    send_raw_on(iface, &frames);
}

/// Sends Ethernet frames out of `iface`, as [`send_frames_on`].
pub fn send_raw_on(iface: &str, frames: &[Vec<u8>]) {
    let ifindex = xdpstat::kernel::iface::index(iface).expect("sender interface exists");
    // SAFETY: plain socket calls on values we own; results are checked.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        let fd = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        for f in frames {
            let len = f.len();
            let mut tries = 0;
            let sent = loop {
                let sent = libc::sendto(
                    fd.as_raw_fd(),
                    f.as_ptr().cast(),
                    f.len(),
                    0,
                    std::ptr::from_ref(&addr).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                );
                // A full veth ring (native XDP's NAPI is behind, as on 6.1
                // under an emulator) drops the frame before XDP sees it
                // and says ENOBUFS: send it again.
                let full = std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS);
                if sent >= 0 || !full || tries == 2000 {
                    break sent;
                }
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            };
            assert_eq!(
                sent,
                len as isize,
                "sendto: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Polls `read` until it returns `want` (native XDP on veth runs from NAPI,
/// after `sendto` returns), then checks that it stays there: no frame is
/// counted twice or late. Returns the last value.
pub fn settle<T: PartialEq + std::fmt::Debug>(want: &T, mut read: impl FnMut() -> T) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = read();
    while &got != want && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        got = read();
    }
    thread::sleep(Duration::from_millis(100));
    read()
}

/// The committed BPF objects.
pub fn bpf_object(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bpf")
        .join(format!("{name}.o"))
}

/// The running kernel's line, `major.minor` of `uname -r` (`6.1`).
pub fn kernel_line() -> String {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    release
        .trim()
        .split('.')
        .take(2)
        .map(|p| p.trim_end_matches(|c: char| !c.is_ascii_digit()))
        .collect::<Vec<_>>()
        .join(".")
}

/// fixtures/expected.json as the running kernel should see it: each
/// entry's `kernels.<line>` fields, where the kernel's line has some, in
/// place of the default (this machine's kernel's).
pub fn expected_manifest() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/expected.json");
    let text = fs::read_to_string(&path).expect("fixtures/expected.json");
    let entries: Vec<Value> = serde_json::from_str(&text).expect("a valid manifest");
    let line = kernel_line();
    entries
        .into_iter()
        .map(|mut e| {
            if let Some(Value::Object(fields)) = e["kernels"].get(&line).cloned() {
                for (k, v) in fields {
                    e[k] = v;
                }
            }
            e
        })
        .collect()
}

/// The manifest's entry for one object's program.
pub fn expected_entry(object: &str, program: &str) -> Value {
    expected_manifest()
        .into_iter()
        .find(|e| e["object"] == object && e["program"] == program)
        .unwrap_or_else(|| panic!("no {object} {program} in fixtures/expected.json"))
}

/// The repository root, where the fixtures' sources are (`--src`).
pub fn repo() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

/// Runs the xdpstat binary here, in this process's namespace.
pub fn xdpstat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xdpstat"))
        .args(args)
        .output()
        .expect("run xdpstat")
}

/// llvm-objdump: `$XDPSTAT_LLVM_OBJDUMP`, else the one on PATH.
pub fn llvm_objdump() -> String {
    std::env::var("XDPSTAT_LLVM_OBJDUMP").unwrap_or_else(|_| "llvm-objdump".to_owned())
}

/// A scratch directory for a test's built objects and files, removed
/// even when the test fails.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh directory named after `name`, this process and a counter.
    pub fn new(name: &str) -> Self {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("xdpstat-test-{name}-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The source line each instruction belongs to, by its index, from a
/// listing in which a line of source (`;` …) precedes the instructions it
/// made and an instruction line starts with its index. With `function`,
/// only that function's part of an `llvm-objdump` listing (`<name>:` up to
/// the next function), indexed from its start.
fn lines_by_insn(
    listing: &str,
    function: Option<&str>,
) -> std::collections::BTreeMap<usize, String> {
    let mut current = None;
    let mut out = std::collections::BTreeMap::new();
    let mut inside = function.is_none();
    for line in listing.lines() {
        let trimmed = line.trim();
        if let (Some(f), Some(label)) = (function, trimmed.strip_suffix(">:")) {
            let name = label.rsplit('<').next().unwrap_or_default();
            // Branch targets (`LBB0_2`) stay inside the function.
            inside = name == f || (inside && name.starts_with("LBB"));
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(src) = trimmed.strip_prefix(';') {
            // xdpstat adds ` @ file:line`; llvm-objdump prints the text.
            let text = src.rsplit_once(" @ ").map_or(src, |(t, _)| t).trim();
            current = Some(text.to_owned());
            continue;
        }
        let Some((index, _)) = trimmed.split_once(':') else {
            continue;
        };
        if let (Ok(i), Some(text)) = (index.trim().parse::<usize>(), &current) {
            out.insert(i, text.clone());
        }
    }
    if function.is_some() {
        if let Some(&base) = out.keys().next() {
            return out.into_iter().map(|(i, t)| (i - base, t)).collect();
        }
    }
    out
}

/// `xdpstat objdump`'s source line for every instruction of `program` (a
/// section, or with `function` a program's name) equals `llvm-objdump
/// -S`'s; the mismatches, empty when they agree.
pub fn source_line_mismatches(obj: &Path, section: &str, function: Option<&str>) -> Vec<String> {
    let ours = xdpstat(&[
        "objdump",
        obj.to_str().unwrap(),
        "--sec",
        function.unwrap_or(section),
    ]);
    assert!(ours.status.success(), "{}", stderr(&ours));
    let ours = lines_by_insn(&String::from_utf8_lossy(&ours.stdout), None);
    let theirs = Command::new(llvm_objdump())
        .args(["-S", "--no-show-raw-insn"])
        .arg(format!("--section={section}"))
        .arg(obj)
        .output()
        .unwrap();
    let theirs = lines_by_insn(&String::from_utf8_lossy(&theirs.stdout), function);
    theirs
        .iter()
        .filter(|(insn, text)| ours.get(insn) != Some(text))
        .map(|(insn, text)| {
            format!(
                "{} {} insn {insn}: llvm-objdump {text:?}, xdpstat {:?}",
                obj.display(),
                function.unwrap_or(section),
                ours.get(insn)
            )
        })
        .collect()
}

/// Asserts [`source_line_mismatches`] finds none, and that llvm-objdump
/// shows lines at all.
pub fn assert_source_lines_agree(obj: &Path, section: &str, function: Option<&str>) {
    let wrong = source_line_mismatches(obj, section, function);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
