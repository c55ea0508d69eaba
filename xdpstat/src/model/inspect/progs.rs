//! Loaded BPF programs, as `bpftool prog list` reports them, plus the
//! interfaces each XDP program is attached to in this network namespace,
//! and run-time statistics sampled over a window.
//!
//! Programs are global (not per network namespace), and load and unload
//! while they are listed: a program that goes away half-way through being
//! read is left out rather than failing the listing.

use std::{
    collections::HashMap,
    fmt,
    os::fd::AsFd,
    thread,
    time::{Duration, Instant, UNIX_EPOCH},
};

use aya::programs::{loaded_programs, ProgramError, ProgramFd, ProgramInfo};

use crate::kernel::map::MapError;
use serde::{Serialize, Serializer};
use thiserror::Error;

use crate::kernel::netlink::{self, AttachedMode, NetlinkError};
use crate::kernel::privileges::PrivilegeError;
use crate::kernel::sys::{
    stats::{self, RunTimeStats},
    SyscallError,
};
use crate::model::attach::AttachError;

/// Reading programs, maps or interfaces failed.
#[derive(Debug, Error)]
pub enum InspectError {
    /// The process lacks privileges.
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
    /// Asking netlink for the interfaces failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// Walking or reading the loaded programs failed.
    #[error("reading the loaded BPF programs")]
    Programs(#[source] ProgramError),
    /// Walking or reading the loaded maps failed.
    #[error("reading the loaded BPF maps")]
    Maps(#[source] MapError),
    /// A raw bpf syscall failed.
    #[error(transparent)]
    Syscall(#[from] SyscallError),
    /// Reading `/proc/self/fdinfo` failed.
    #[error("reading /proc/self/fdinfo")]
    FdInfo(#[source] std::io::Error),
    /// Asking what xdpstat has attached failed.
    #[error(transparent)]
    Attach(#[from] AttachError),
}

pub use crate::kernel::sys::PROG_TYPE_XDP;

/// libbpf's names of `BPF_PROG_TYPE_*`, by number, as bpftool prints them.
const PROG_TYPE_NAMES: [&str; 33] = [
    "unspec",
    "socket_filter",
    "kprobe",
    "sched_cls",
    "sched_act",
    "tracepoint",
    "xdp",
    "perf_event",
    "cgroup_skb",
    "cgroup_sock",
    "lwt_in",
    "lwt_out",
    "lwt_xmit",
    "sock_ops",
    "sk_skb",
    "cgroup_device",
    "sk_msg",
    "raw_tracepoint",
    "cgroup_sock_addr",
    "lwt_seg6local",
    "lirc_mode2",
    "sk_reuseport",
    "flow_dissector",
    "cgroup_sysctl",
    "raw_tracepoint_writable",
    "cgroup_sockopt",
    "tracing",
    "struct_ops",
    "ext",
    "lsm",
    "sk_lookup",
    "syscall",
    "netfilter",
];

/// A program type (`BPF_PROG_TYPE_*`). It serializes as bpftool's name,
/// or as the bare number for a type newer than xdpstat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProgType(pub u32);

impl ProgType {
    /// bpftool's name for the type, if xdpstat knows it.
    pub fn name(self) -> Option<&'static str> {
        PROG_TYPE_NAMES.get(self.0 as usize).copied()
    }
}

impl fmt::Display for ProgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "type {}", self.0),
        }
    }
}

impl Serialize for ProgType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(name) => s.serialize_str(name),
            None => s.serialize_u32(self.0),
        }
    }
}

/// A program's tag: the hash of its instructions, which stays the same
/// when the same program is loaded again. It prints and serializes as 16
/// hex digits, as bpftool does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tag(pub u64);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for Tag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where an XDP program runs, in this network namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttachPoint {
    /// Interface name.
    pub interface: String,
    /// Interface index.
    pub ifindex: u32,
    /// Native, generic or offload.
    pub mode: AttachedMode,
}

/// Run-time statistics over a sampling window (`prog list --stats`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Window {
    /// How long the window was.
    pub seconds: f64,
    /// Nanoseconds the program ran during the window.
    pub run_time_ns: u64,
    /// Runs during the window.
    pub run_cnt: u64,
    /// Average nanoseconds per run, when it ran at all.
    pub ns_per_run: Option<f64>,
}

impl Window {
    /// The window between two readings of one program's cumulative
    /// counters, `(run_time_ns, run_cnt)`.
    pub fn between(before: (u64, u64), after: (u64, u64), seconds: f64) -> Self {
        let run_time_ns = after.0.saturating_sub(before.0);
        let run_cnt = after.1.saturating_sub(before.1);
        Self {
            seconds,
            run_time_ns,
            run_cnt,
            ns_per_run: ns_per_run(run_time_ns, run_cnt),
        }
    }
}

/// Average nanoseconds per run, or `None` when there was no run.
pub fn ns_per_run(run_time_ns: u64, run_cnt: u64) -> Option<f64> {
    (run_cnt > 0).then(|| run_time_ns as f64 / run_cnt as f64)
}

/// A loaded program. Field names follow `bpftool -j prog show`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Program {
    /// Program id.
    pub id: u32,
    /// Program type.
    #[serde(rename = "type")]
    pub prog_type: ProgType,
    /// Name (at most 15 bytes; empty if it was loaded without one).
    pub name: String,
    /// Hash of the instructions.
    pub tag: Tag,
    /// Whether the license is GPL-compatible.
    pub gpl_compatible: bool,
    /// When it was loaded, in seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loaded_at: Option<u64>,
    /// The user that loaded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Size of the instructions after the verifier rewrote them.
    pub bytes_xlated: u32,
    /// Whether the JIT compiled it.
    pub jited: bool,
    /// Size of the machine code (0 when not JIT-compiled).
    pub bytes_jited: u32,
    /// Bytes charged to memlock.
    pub bytes_memlock: u64,
    /// The maps it uses.
    pub map_ids: Vec<u32>,
    /// Its BTF object, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub btf_id: Option<u32>,
    /// Cumulative nanoseconds spent running, counted only while run-time
    /// statistics are on; 0 if they never were.
    pub run_time_ns: u64,
    /// Cumulative runs, counted only while run-time statistics are on.
    pub run_cnt: u64,
    /// The interfaces it is attached to (XDP, in this network namespace).
    pub attached: Vec<AttachPoint>,
    /// Statistics over the sampling window of `prog list --stats`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
}

/// Which programs to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Every type, not only XDP.
    pub all: bool,
    /// Turn run-time statistics on and sample them over this long.
    pub sample: Option<Duration>,
}

/// Whether an aya error says the object went away (`ENOENT`) while it was
/// being read.
fn gone_program(error: &ProgramError) -> bool {
    match error {
        ProgramError::SyscallError(e) => e.io_error.raw_os_error() == Some(libc::ENOENT),
        ProgramError::IOError(e) => e.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

/// Each loaded program's info, skipping those that were unloaded while the
/// walk went on.
pub(crate) fn program_infos() -> impl Iterator<Item = Result<ProgramInfo, InspectError>> {
    loaded_programs().filter_map(|result| match result {
        Ok(info) => Some(Ok(info)),
        Err(e) if gone_program(&e) => None,
        Err(e) => Some(Err(InspectError::Programs(e))),
    })
}

/// Opens a program listed by [`program_infos`], or `None` if it was
/// unloaded meanwhile. The descriptor keeps it loaded while it is read.
pub(crate) fn open(info: &ProgramInfo) -> Result<Option<ProgramFd>, InspectError> {
    match info.fd() {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if gone_program(&e) => Ok(None),
        Err(e) => Err(InspectError::Programs(e)),
    }
}

/// The maps a program uses, read through its descriptor (aya's
/// `ProgramInfo::map_ids` would open it again).
pub(crate) fn map_ids(fd: &ProgramFd) -> Result<Vec<u32>, InspectError> {
    Ok(stats::prog_map_ids(fd.as_fd())?)
}

/// Whether to list a program: every one with `all`, else XDP ones. (For
/// the record, the type comes from fdinfo: aya folds types newer than
/// itself into one value.)
fn is_wanted(info: &ProgramInfo, all: bool) -> bool {
    all || info.program_type() as u32 == PROG_TYPE_XDP
}

/// Reads one program in full, or `None` if it was unloaded meanwhile.
fn read_program(info: &ProgramInfo) -> Result<Option<Program>, InspectError> {
    let Some(fd) = open(info)? else {
        return Ok(None);
    };
    let fdinfo = stats::fdinfo(fd.as_fd()).map_err(InspectError::FdInfo)?;
    let map_ids = map_ids(&fd)?;
    let jited = info.size_jitted();
    Ok(Some(Program {
        id: info.id(),
        prog_type: ProgType(fdinfo.raw_type),
        // The whole name of its function, from its BTF, as bpftool shows
        // it; the kernel keeps only 15 bytes.
        name: crate::kernel::sys::prog_identity(fd.as_fd()).map_or_else(
            |_| String::from_utf8_lossy(info.name()).into_owned(),
            |identity| crate::model::observe::ProgRef::from(&identity).name,
        ),
        tag: Tag(info.tag()),
        // `None` only before Linux 4.18.
        gpl_compatible: info.gpl_compatible().unwrap_or(false),
        loaded_at: info
            .loaded_at()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
        uid: info.created_by_uid(),
        bytes_xlated: info.size_translated().unwrap_or(0),
        jited: jited > 0,
        bytes_jited: jited,
        bytes_memlock: fdinfo.memlock,
        map_ids,
        btf_id: info.btf_id(),
        run_time_ns: info.run_time().as_nanos() as u64,
        run_cnt: info.run_count(),
        attached: Vec::new(),
        window: None,
    }))
}

/// The XDP programs attached in this network namespace, by program id.
pub fn attach_points() -> Result<HashMap<u32, Vec<AttachPoint>>, InspectError> {
    let mut by_prog: HashMap<u32, Vec<AttachPoint>> = HashMap::new();
    for iface in netlink::interfaces()? {
        for p in &iface.xdp {
            by_prog.entry(p.prog_id).or_default().push(AttachPoint {
                interface: iface.name.clone(),
                ifindex: iface.index,
                mode: p.mode,
            });
        }
    }
    Ok(by_prog)
}

fn read_programs(all: bool) -> Result<Vec<Program>, InspectError> {
    let mut programs = Vec::new();
    for info in program_infos() {
        let info = info?;
        if !is_wanted(&info, all) {
            continue;
        }
        if let Some(program) = read_program(&info)? {
            programs.push(program);
        }
    }
    Ok(programs)
}

/// Each program's cumulative `(run_time_ns, run_cnt)`, read cheaply (one
/// info call per program), for the start of a sampling window.
fn run_counters(all: bool) -> Result<HashMap<u32, (u64, u64)>, InspectError> {
    let mut counters = HashMap::new();
    for info in program_infos() {
        let info = info?;
        if is_wanted(&info, all) {
            counters.insert(
                info.id(),
                (info.run_time().as_nanos() as u64, info.run_count()),
            );
        }
    }
    Ok(counters)
}

/// Lists the loaded programs (XDP ones unless `opts.all`), in id order.
///
/// With `opts.sample`, run-time statistics are turned on for the call
/// (`BPF_ENABLE_STATS`; they go off again when it returns, unless someone
/// else keeps them on), the counters are read, the call sleeps for the
/// sample time, and the programs are then read in full: each program's
/// [`Window`] is the difference. A program loaded during the window has
/// none.
///
/// # Errors
///
/// [`InspectError`] if the kernel cannot be asked; callers check
/// privileges first (listing needs `CAP_SYS_ADMIN`).
pub fn list(opts: ListOptions) -> Result<Vec<Program>, InspectError> {
    let mut programs = match opts.sample {
        None => read_programs(opts.all)?,
        Some(interval) => {
            let stats_on = RunTimeStats::enable()?;
            let before = run_counters(opts.all)?;
            let start = Instant::now();
            thread::sleep(interval);
            let seconds = start.elapsed().as_secs_f64();
            let mut programs = read_programs(opts.all)?;
            drop(stats_on);
            for p in &mut programs {
                if let Some(&b) = before.get(&p.id) {
                    p.window = Some(Window::between(b, (p.run_time_ns, p.run_cnt), seconds));
                }
            }
            programs
        }
    };
    let mut attached = attach_points()?;
    for p in &mut programs {
        p.attached = attached.remove(&p.id).unwrap_or_default();
    }
    programs.sort_by_key(|p| p.id);
    Ok(programs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_follow_bpftool() {
        assert_eq!(ProgType(6).to_string(), "xdp");
        assert_eq!(ProgType(8).to_string(), "cgroup_skb");
        assert_eq!(ProgType(32).to_string(), "netfilter");
        assert_eq!(ProgType(99).to_string(), "type 99");
        assert_eq!(serde_json::to_string(&ProgType(26)).unwrap(), "\"tracing\"");
        assert_eq!(serde_json::to_string(&ProgType(99)).unwrap(), "99");
    }

    #[test]
    fn tags_are_sixteen_hex_digits() {
        assert_eq!(Tag(0x5b7c_a179_fe07_310a).to_string(), "5b7ca179fe07310a");
        assert_eq!(Tag(0xab).to_string(), "00000000000000ab");
        assert_eq!(
            serde_json::to_string(&Tag(1)).unwrap(),
            "\"0000000000000001\""
        );
    }

    #[test]
    fn a_window_is_the_difference() {
        let w = Window::between((1_000, 10), (26_000, 1_010), 1.0);
        assert_eq!((w.run_time_ns, w.run_cnt), (25_000, 1_000));
        assert_eq!(w.ns_per_run, Some(25.0));
    }

    #[test]
    fn a_window_without_runs_has_no_average() {
        let w = Window::between((5, 1), (5, 1), 0.5);
        assert_eq!((w.run_time_ns, w.run_cnt, w.ns_per_run), (0, 0, None));
    }

    #[test]
    fn a_window_never_goes_negative() {
        let w = Window::between((50, 5), (10, 1), 1.0);
        assert_eq!((w.run_time_ns, w.run_cnt), (0, 0));
    }
}
