//! Counting for the XDP program another loader attached, without replacing
//! it: xdpstat's observers, a fentry and a fexit program, attach to that
//! program itself (`attach_prog_fd`) and count each frame and its bytes
//! under the verdict it returned, per CPU.
//!
//! Their links and their `actions` map are pinned in the namespace's
//! directory as `observe:<ifindex>:<name>/{entry,exit,actions}`, beside
//! (never inside) the directory of what xdpstat attached itself. A link
//! names the program it observes (`target_obj_id`); readers compare it with
//! what runs on the interface now, so counts of a program that was
//! replaced are never shown as live.
//!
//! A program that runs others in its slots by freplace, as libxdp's
//! dispatcher runs the programs `xdp-loader` loads, is observed whole (the
//! interface's verdicts) and each component apart, in
//! `component<slot>/{entry,exit,actions}` inside the same directory. The
//! components are found by their freplace links to the dispatcher, and
//! their slots by the function each replaces (libxdp's `prog<N>`), so no
//! libxdp pin layout is assumed.

use std::{
    collections::HashMap,
    fs,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    path::{Path, PathBuf},
};

use xdpstat_common::{Counters, ACTIONS, ACTIONS_MAP, XDP_BUFF_DATA, XDP_BUFF_DATA_END};

use super::{counters::CpuCounters, layout, workbench::KernelFeatures};
use crate::kernel::{
    bpffs::{self, BpffsError, NsDir},
    iface,
    map::{Cpus, MapError, MapRef, OpenMap},
    netlink::{self, NetlinkError},
    privileges::{self, Capability, PrivilegeError},
    sys::{self, ProgIdentity, SyscallError},
};

/// The observers' programs in the embedded object, and how each attaches.
const PROGRAMS: [(&str, &str, u32); 2] = [
    ("xdpstat_observe_entry", "entry", sys::TRACE_FENTRY),
    ("xdpstat_observe_exit", "exit", sys::TRACE_FEXIT),
];

/// Why observing failed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// No such interface here.
    #[error("no interface named '{0}' in this network namespace (list them with `ip link`)")]
    UnknownInterface(String),
    /// Nothing runs there.
    #[error("{0} runs no XDP program, so there is nothing to observe; `xdpstat attach {0}` counts its frames with xdpstat's own program")]
    NoProgram(String),
    /// What runs there is xdpstat's own.
    #[error("{iface} runs xdpstat's own program (prog id {prog_id}), which counts already: `xdpstat show {iface}`")]
    OwnProgram {
        /// The interface.
        iface: String,
        /// xdpstat's program.
        prog_id: u32,
    },
    /// The program has no BTF for fentry/fexit to attach to.
    #[error("{iface}'s program {} ({}) was loaded without BTF, and fentry/fexit attach to a program's function by its BTF; rebuild it with `clang -g`, or use `xdpstat prog list --stats` for its run count", .prog.id, .prog.name)]
    NoBtf {
        /// The interface.
        iface: String,
        /// The program.
        prog: ProgIdentity,
    },
    /// The kernel refuses the observers.
    #[error("this kernel refuses xdpstat's fentry/fexit observers ({errno}): observing needs tracing programs attached to BPF programs; `xdpstat prog list --stats` still gives the program's run count")]
    Unsupported {
        /// What `BPF_PROG_LOAD` or the attach said.
        errno: String,
    },
    /// The kernel's `struct xdp_buff` is not what the observers read.
    #[error("this kernel's struct xdp_buff has data and data_end at {found}, not at bytes {XDP_BUFF_DATA} and {XDP_BUFF_DATA_END} as xdpstat's observers read them; observing is not possible here")]
    Layout {
        /// What its BTF says.
        found: String,
    },
    /// Observed already.
    #[error("{iface} is observed already (prog id {prog_id}); `xdpstat show {iface}` reads it, `xdpstat detach {iface}` removes the observers")]
    AlreadyObserved {
        /// The interface.
        iface: String,
        /// The observed program.
        prog_id: u32,
    },
    /// Not observed.
    #[error("{0} is not observed by xdpstat; `xdpstat attach {0} --observe` observes its program")]
    NotObserved(String),
    /// A kernel call failed.
    #[error("{what}: {source}")]
    Kernel {
        /// What was being done.
        what: String,
        /// What the kernel said.
        #[source]
        source: SyscallError,
    },
    /// Preparing the embedded observers failed.
    #[error("preparing xdpstat's observers: {0}")]
    Prepare(String),
    /// Telling whether xdpstat's own program runs there.
    #[error(transparent)]
    Own(Box<super::attach::AttachError>),
    /// Reading the counts.
    #[error(transparent)]
    Map(#[from] MapError),
    /// bpffs.
    #[error(transparent)]
    Bpffs(#[from] BpffsError),
    /// netlink.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// Privileges.
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
}

impl ObserveError {
    /// Whether it is the input's fault or a kernel that cannot (exit 2).
    pub fn is_usage(&self) -> bool {
        match self {
            Self::UnknownInterface(_)
            | Self::NoProgram(_)
            | Self::OwnProgram { .. }
            | Self::NoBtf { .. }
            | Self::Unsupported { .. }
            | Self::Layout { .. }
            | Self::AlreadyObserved { .. }
            | Self::NotObserved(_) => true,
            Self::Map(e) => e.is_usage(),
            Self::Own(e) => e.is_usage(),
            Self::Bpffs(e) => matches!(e, BpffsError::Ephemeral),
            Self::Kernel { .. } | Self::Prepare(_) | Self::Netlink(_) | Self::Privilege(_) => false,
        }
    }
}

fn kernel(what: impl Into<String>) -> impl FnOnce(SyscallError) -> ObserveError {
    let what = what.into();
    move |source| ObserveError::Kernel { what, source }
}

/// A program, as people name it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProgRef {
    /// Its id.
    pub prog_id: u32,
    /// Its name.
    pub name: String,
    /// Its tag, 16 hex digits.
    pub tag: String,
}

impl From<&ProgIdentity> for ProgRef {
    /// The name is the function's, from the program's BTF, as bpftool
    /// prints it: the kernel keeps only 15 bytes of it.
    fn from(p: &ProgIdentity) -> Self {
        let full = p.func_btf_id.and_then(|func| btf_name(p.btf_id, func));
        Self {
            prog_id: p.id,
            name: full
                .filter(|f| f.starts_with(&p.name))
                .unwrap_or_else(|| p.name.clone()),
            tag: format!("{:016x}", p.tag),
        }
    }
}

/// What `observe` did.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The interface.
    pub interface: String,
    /// The program observed, which keeps running.
    pub observed: ProgRef,
    /// The programs it runs in its slots (a dispatcher's), observed too.
    pub components: Vec<(u32, ProgRef)>,
    /// The observers' pins.
    pub pin_dir: PathBuf,
}

/// Attaches xdpstat's observers to the program `iface` runs, and pins
/// them. The program stays attached, with its id and its behaviour.
///
/// # Errors
///
/// [`ObserveError`]; on any error nothing stays loaded or pinned.
pub fn observe(iface: &str) -> Result<Observed, ObserveError> {
    privileges::require(
        "xdpstat attach --observe",
        // The observed program is another loader's: it is opened by id
        // (CAP_SYS_ADMIN), and traced (CAP_PERFMON).
        &[
            Capability::Bpf,
            Capability::NetAdmin,
            Capability::Perfmon,
            Capability::SysAdmin,
        ],
    )?;
    let ifindex =
        iface::index(iface).ok_or_else(|| ObserveError::UnknownInterface(iface.to_owned()))?;
    bpffs::ensure_mounted()?;
    // Before the lock: `inspect` settles xdpstat's own record under it.
    let own = super::attach::inspect(iface).map_err(|e| ObserveError::Own(Box::new(e)))?;
    let ns = NsDir::current()?;
    let _lock = ns.lock()?;
    let current = netlink::interface(ifindex)?.map_or_else(Vec::new, |i| i.xdp);
    let Some(running) = current.first().copied() else {
        return Err(ObserveError::NoProgram(iface.to_owned()));
    };
    // What `xdpstat load` attached is the user's program, observed like
    // any other; xdpstat's own counting program is not.
    let counting = own.filter(|a| {
        a.prog_id == running.prog_id && layout::Layout::from_program_name(&a.program).is_some()
    });
    if let Some(a) = counting {
        return Err(ObserveError::OwnProgram {
            iface: iface.to_owned(),
            prog_id: a.prog_id,
        });
    }
    if let Some(dir) = ns.find_observe(ifindex) {
        match observed_by(&dir) {
            Some(id) if id == running.prog_id => {
                return Err(ObserveError::AlreadyObserved {
                    iface: iface.to_owned(),
                    prog_id: id,
                })
            }
            // The observers of a program that no longer runs here.
            _ => remove_dir(&dir),
        }
    }
    let target = sys::prog_fd_by_id(running.prog_id).map_err(kernel(format!(
        "opening {iface}'s program {}",
        running.prog_id
    )))?;
    let identity = sys::prog_identity(target.as_fd()).map_err(kernel("reading its info"))?;
    let Some(func) = identity.func_btf_id else {
        return Err(ObserveError::NoBtf {
            iface: iface.to_owned(),
            prog: identity,
        });
    };
    check_xdp_buff()?;
    let parts = components(&identity)?;
    let whole = load(target.as_fd(), func)?;
    let mut observers = Vec::with_capacity(parts.len());
    for part in &parts {
        let Some(func) = part.identity.func_btf_id else {
            return Err(ObserveError::NoBtf {
                iface: iface.to_owned(),
                prog: part.identity.clone(),
            });
        };
        observers.push((part.slot, load(part.fd.as_fd(), func)?));
    }
    let dir = ns.observe_dir(ifindex, iface);
    pin(&dir, &whole, &observers)?;
    Ok(Observed {
        interface: iface.to_owned(),
        observed: ProgRef::from(&identity),
        components: parts
            .iter()
            .map(|p| (p.slot, ProgRef::from(&p.identity)))
            .collect(),
        pin_dir: dir,
    })
}

/// A program that runs in one of a dispatcher's slots.
struct Part {
    slot: u32,
    fd: OwnedFd,
    identity: ProgIdentity,
}

/// The programs that replace functions of `target` (freplace), by slot:
/// the `N` of the function `prog<N>` each replaces, as in libxdp's
/// dispatcher, or else their order.
fn components(target: &ProgIdentity) -> Result<Vec<Part>, ObserveError> {
    let links = sys::links_to_prog(target.id).map_err(kernel("walking the BPF links"))?;
    let mut parts = Vec::new();
    for (_, info) in links {
        // Gone since the walk.
        let Ok(fd) = sys::prog_fd_by_id(info.prog_id) else {
            continue;
        };
        let identity = sys::prog_identity(fd.as_fd()).map_err(kernel(format!(
            "reading the info of program {}",
            info.prog_id
        )))?;
        if identity.prog_type != sys::PROG_TYPE_EXT {
            continue;
        }
        let slot = btf_name(target.btf_id, info.target_btf_id)
            .and_then(|f| f.strip_prefix("prog")?.parse().ok());
        parts.push((
            slot,
            Part {
                slot: 0,
                fd,
                identity,
            },
        ));
    }
    parts.sort_by_key(|(slot, p)| (slot.is_none(), *slot, p.identity.id));
    Ok(parts
        .into_iter()
        .enumerate()
        .map(|(i, (slot, mut p))| {
            p.slot = slot.unwrap_or(i as u32);
            p
        })
        .collect())
}

/// The name of type `type_id` in BTF object `btf_id`. Kept once found:
/// `run` and `watch` name the same programs at every interval, and a BTF
/// object never changes.
fn btf_name(btf_id: u32, type_id: u32) -> Option<String> {
    static NAMES: std::sync::Mutex<Vec<((u32, u32), String)>> = std::sync::Mutex::new(Vec::new());
    let names = || {
        NAMES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some((_, name)) = names().iter().find(|(key, _)| *key == (btf_id, type_id)) {
        return Some(name.clone());
    }
    let fd = sys::maps::btf_fd_by_id(btf_id).ok()?;
    let btf = xdpstat_analysis::btf::Btf::parse(sys::maps::btf_data(fd.as_fd()).ok()?).ok()?;
    let t = btf.type_by_id(type_id).ok()?;
    let name = btf.name(t.name_off).ok()?.to_owned();
    let mut names = names();
    // A long `watch` through many reloads keeps the newest names only.
    if names.len() == 64 {
        names.remove(0);
    }
    names.push(((btf_id, type_id), name.clone()));
    Some(name)
}

/// The program the observers in `dir` observe, if their link still holds.
fn observed_by(dir: &Path) -> Option<u32> {
    let link = sys::obj_get(&dir.join("exit")).ok()?;
    let info = sys::link_info(link.as_fd()).ok()?;
    (info.target_prog_id != 0).then_some(info.target_prog_id)
}

/// Checks the kernel's `struct xdp_buff` against the offsets the
/// observers read.
fn check_xdp_buff() -> Result<(), ObserveError> {
    let btf = xdpstat_analysis::btf::Btf::from_file(Path::new("/sys/kernel/btf/vmlinux")).map_err(
        |e| ObserveError::Layout {
            found: format!("no readable kernel BTF ({e})"),
        },
    )?;
    let found = btf.struct_offsets("xdp_buff", &["data", "data_end"]);
    let want = [Some(XDP_BUFF_DATA as u32), Some(XDP_BUFF_DATA_END as u32)];
    match found {
        Some(offsets) if offsets == want => Ok(()),
        Some(offsets) => Err(ObserveError::Layout {
            found: format!("{offsets:?}"),
        }),
        None => Err(ObserveError::Layout {
            found: "no struct xdp_buff in the kernel's BTF".to_owned(),
        }),
    }
}

/// The observers' links, by pin name.
pub type Links = Vec<(&'static str, OwnedFd)>;

/// One program's observers: their links, and their `actions` map.
type Observers = (Links, OwnedFd);

/// Loads both observers for `target`'s function `func` and attaches
/// them.
fn load(target: std::os::fd::BorrowedFd<'_>, func: u32) -> Result<Observers, ObserveError> {
    let (links, actions) = attach_object(target, func, layout::observe_object())?;
    let actions = actions.ok_or_else(|| ObserveError::Prepare("no actions map".to_owned()))?;
    Ok((links, actions))
}

/// Loads the fentry `xdpstat_observe_entry` and the fexit
/// `xdpstat_observe_exit` of `object` for `target`'s function `func` (its
/// BTF id in its BTF, [`ProgIdentity::func_btf_id`]) and attaches them:
/// their links, by pin name, which detach when dropped, and the object's
/// `actions` map if it has one. The benchmark attaches an empty pair this
/// way, to measure the trampoline alone.
///
/// # Errors
///
/// [`ObserveError::Unsupported`] when the kernel refuses them.
pub fn attach_object(
    target: std::os::fd::BorrowedFd<'_>,
    func: u32,
    object: &[u8],
) -> Result<(Links, Option<OwnedFd>), ObserveError> {
    let ebpf = aya::EbpfLoader::new()
        .load(object)
        .map_err(|e| ObserveError::Prepare(xdpstat_analysis::error::chain(&e)))?;
    let mut fds = HashMap::new();
    let mut actions = None;
    for (name, map) in ebpf.maps() {
        let aya::maps::Map::PerCpuArray(data) = map else {
            continue;
        };
        fds.insert(name.to_owned(), data.fd().as_fd().as_raw_fd());
        if name == ACTIONS_MAP {
            actions = Some(
                data.fd()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| ObserveError::Prepare(e.to_string()))?,
            );
        }
    }
    let features = KernelFeatures::probe();
    let mut links = Vec::new();
    for (program, pin_name, attach_type) in PROGRAMS {
        let prepared = xdpstat_analysis::obj::prepare_program(
            Path::new("xdpstat_observe.o"),
            object,
            program,
            &fds,
            &features,
        )
        .map_err(|e| ObserveError::Prepare(e.to_string()))?;
        let btf = prepared.btf.as_deref().and_then(|b| sys::btf_load(b).ok());
        let (result, log) = sys::prog_load_with_log(
            &sys::ProgLoad {
                prog_type: sys::PROG_TYPE_TRACING,
                attach: Some((target, func)),
                insns: &prepared.insns,
                license: &prepared.license,
                name: &prepared.name,
                kern_version: prepared.kern_version,
                expected_attach_type: attach_type,
                flags: 0,
                btf: btf.as_ref().map(AsFd::as_fd),
                fd_array: &[],
                func_info: (
                    prepared.func_info.0,
                    &prepared.func_info.1,
                    prepared.func_info.2,
                ),
                line_info: (
                    prepared.line_info.0,
                    &prepared.line_info.1,
                    prepared.line_info.2,
                ),
            },
            1,
            1 << 20,
        );
        let prog = result.map_err(|e| {
            let last = String::from_utf8_lossy(&log)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty() && !l.starts_with("processed"))
                .map(|l| format!("; the verifier: {}", l.trim()))
                .unwrap_or_default();
            ObserveError::Unsupported {
                errno: format!("{}{last}", errno_text(&e)),
            }
        })?;
        let link = sys::tracing_attach(prog.as_fd()).map_err(|e| ObserveError::Unsupported {
            errno: format!("attaching: {}", errno_text(&e)),
        })?;
        links.push((pin_name, link));
    }
    Ok((links, actions))
}

/// `Operation not permitted (errno 1)`.
fn errno_text(e: &SyscallError) -> String {
    match e.errno() {
        Some(n) => format!("{} (errno {n})", xdpstat_analysis::error::strerror(n)),
        None => e.source.to_string(),
    }
}

/// The files of one program's observers.
const FILES: [&str; 3] = ["entry", "exit", ACTIONS_MAP];

/// The directory, inside an observers' directory, of a component's.
const COMPONENT_PREFIX: &str = "component";

/// Pins the whole program's observers into `dir`, and each component's
/// into `dir/component<slot>` before them. The whole's go under a staging
/// name first and are then renamed into place (bpffs renames files, not
/// directories), `exit` last: a reader that finds `exit` finds the rest.
fn pin(dir: &Path, whole: &Observers, parts: &[(u32, Observers)]) -> Result<(), ObserveError> {
    // bpffs refuses dots in names.
    let staged = |name: &str| dir.join(format!("{name}-staging-{}", std::process::id()));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BpffsError::Io { path, source }
    };
    let result = (|| {
        fs::create_dir(dir).map_err(io(dir))?;
        for (slot, observers) in parts {
            let sub = dir.join(format!("{COMPONENT_PREFIX}{slot}"));
            fs::create_dir(&sub).map_err(io(&sub))?;
            for (name, fd) in pins(observers) {
                sys::obj_pin(fd, &sub.join(name))
                    .map_err(kernel(format!("pinning component {slot}'s {name}")))?;
            }
        }
        let pins = pins(whole);
        for (name, fd) in &pins {
            sys::obj_pin(*fd, &staged(name)).map_err(kernel(format!("pinning {name}")))?;
        }
        for (name, _) in &pins {
            fs::rename(staged(name), dir.join(name)).map_err(io(&dir.join(name)))?;
        }
        Ok(())
    })();
    if result.is_err() {
        for name in FILES {
            let _ = fs::remove_file(staged(name));
        }
        remove_dir(dir);
    }
    result
}

/// What to pin of one program's observers, by name.
fn pins((links, actions): &Observers) -> Vec<(&'static str, std::os::fd::BorrowedFd<'_>)> {
    let mut pins = vec![(ACTIONS_MAP, actions.as_fd())];
    pins.extend(links.iter().map(|(name, fd)| (*name, fd.as_fd())));
    pins
}

/// The components' directories in an observers' directory, by slot.
fn component_dirs(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let slot = name
                .to_str()?
                .strip_prefix(COMPONENT_PREFIX)?
                .parse()
                .ok()?;
            Some((slot, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Removes an observers' directory: unpinning the links detaches the
/// observers, once nothing else holds them.
fn remove_dir(dir: &Path) {
    let remove = |dir: &Path| {
        for name in FILES {
            let _ = fs::remove_file(dir.join(name));
        }
        let _ = fs::remove_dir(dir);
    };
    for (_, sub) in component_dirs(dir) {
        remove(&sub);
    }
    remove(dir);
}

/// Removes the observers of `iface`'s program, which keeps running; the
/// id of the program they observed, if it was still loaded.
///
/// # Errors
///
/// [`ObserveError::NotObserved`] when nothing observes it.
pub fn unobserve(iface: &str) -> Result<Option<u32>, ObserveError> {
    let ns = NsDir::current()?;
    let _lock = ns.lock()?;
    let dir = find(&ns, iface).ok_or_else(|| ObserveError::NotObserved(iface.to_owned()))?;
    let observed = observed_by(&dir);
    remove_dir(&dir);
    Ok(observed)
}

/// The observers' directory of `iface`, by its index, or by the name it
/// had when it was observed.
fn find(ns: &NsDir, iface: &str) -> Option<PathBuf> {
    if let Some(dir) = iface::index(iface).and_then(|i| ns.find_observe(i)) {
        return Some(dir);
    }
    ns.observe_dirs()
        .into_iter()
        .find_map(|(_, name, path)| (name == iface).then_some(path))
}

/// The program xdpstat's observers on `iface` observe, if any.
pub fn observed_prog_id(iface: &str) -> Option<u32> {
    let ns = NsDir::current().ok()?;
    observed_by(&find(&ns, iface)?)
}

/// The interfaces of this namespace whose programs xdpstat observes, by
/// their names now (or when observed, if they are gone).
pub fn observed_interfaces() -> Vec<String> {
    let Ok(ns) = NsDir::current() else {
        return Vec::new();
    };
    let mut names: Vec<String> = ns
        .observe_dirs()
        .into_iter()
        .map(|(index, name, _)| {
            netlink::interface(index)
                .ok()
                .flatten()
                .map_or(name, |i| i.name)
        })
        .collect();
    names.sort();
    names
}

/// Whether `iface` is observed by xdpstat.
pub fn is_observed(iface: &str) -> bool {
    NsDir::current().is_ok_and(|ns| find(&ns, iface).is_some())
}

/// One program's counts, as its observers keep them.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Per action (in [`ACTIONS`]' order): per CPU, and the sum.
    pub actions: Vec<(Vec<CpuCounters>, Counters)>,
    /// Per CPU, over the actions.
    pub cpus: Vec<CpuCounters>,
    /// Over the actions and the CPUs.
    pub total: Counters,
}

/// A program in one of the observed dispatcher's slots, and its counts:
/// the frames it saw, under the verdicts it returned.
#[derive(Clone, Debug)]
pub struct Component {
    /// The dispatcher's slot (libxdp runs slot 0 first).
    pub slot: u32,
    /// The program.
    pub program: ProgRef,
    /// Its counts.
    pub counts: Counts,
}

/// One reading of an observed interface's counts.
#[derive(Clone, Debug)]
pub struct Observation {
    /// The program observed.
    pub observed: ProgRef,
    /// What runs on the interface now, when that is another program: the
    /// counts are then frozen, not live.
    pub replaced_by: Option<u32>,
    /// The interface's: the observed program's verdicts.
    pub counts: Counts,
    /// The observed dispatcher's components, by slot; empty for a program
    /// that runs no others.
    pub components: Vec<Component>,
}

/// Reads the counts of `iface`'s observers.
///
/// # Errors
///
/// [`ObserveError::NotObserved`], or a map that cannot be read.
pub fn read(iface: &str) -> Result<Observation, ObserveError> {
    let ns = NsDir::current()?;
    let dir = find(&ns, iface).ok_or_else(|| ObserveError::NotObserved(iface.to_owned()))?;
    let online = Cpus::read()?;
    let (observed, counts) = read_dir(&dir, &online)?;
    let running = iface::index(iface)
        .and_then(|i| netlink::interface(i).ok().flatten())
        .and_then(|i| i.xdp.first().map(|p| p.prog_id));
    let replaced_by = running.filter(|&id| id != observed.prog_id);
    let mut components = Vec::new();
    for (slot, sub) in component_dirs(&dir) {
        let (program, counts) = read_dir(&sub, &online)?;
        components.push(Component {
            slot,
            program,
            counts,
        });
    }
    Ok(Observation {
        observed,
        replaced_by,
        counts,
        components,
    })
}

/// The program that the observers pinned in `dir` observe, and their
/// counts.
fn read_dir(dir: &Path, online: &Cpus) -> Result<(ProgRef, Counts), ObserveError> {
    let link = sys::obj_get(&dir.join("exit")).map_err(kernel("opening the observers' link"))?;
    let info = sys::link_info(link.as_fd()).map_err(kernel("reading the observers' link"))?;
    let observed = match sys::prog_fd_by_id(info.target_prog_id)
        .ok()
        .and_then(|fd| sys::prog_identity(fd.as_fd()).ok())
    {
        Some(p) => ProgRef::from(&p),
        None => ProgRef {
            prog_id: info.target_prog_id,
            name: String::new(),
            tag: String::new(),
        },
    };
    let map = OpenMap::open(&MapRef::Pinned(dir.join(ACTIONS_MAP)))?;
    let raw = map
        .lookup(&0u32.to_ne_bytes())
        .map_err(kernel("reading the actions map"))?;
    Ok((observed, decode_slots(&raw, map.stride(), online)))
}

/// Splits a lookup of the per-CPU [`xdpstat_common::ObserverSlot`]s (`stride` bytes
/// apart, for each possible CPU) into per-verdict counts per CPU and their
/// sums, the per-CPU totals, and the grand total.
fn decode_slots(raw: &[u8], stride: usize, online: &Cpus) -> Counts {
    let u64_at = |o: usize| {
        raw.get(o..o + 8)
            .map_or(0, |b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
    };
    let n_cpus = raw.len().checked_div(stride).unwrap_or(0);
    let mut actions: Vec<(Vec<CpuCounters>, Counters)> = Vec::new();
    // Slot i is the i-th possible CPU's.
    let mut cpus: Vec<CpuCounters> = (0..n_cpus)
        .map(|i| {
            let cpu = online.possible.get(i).copied().unwrap_or(i as u32);
            CpuCounters {
                cpu,
                packets: 0,
                bytes: 0,
                online: online.online.contains(&cpu),
            }
        })
        .collect();
    let mut total = Counters::default();
    for a in 0..ACTIONS.len() {
        let mut per_cpu = Vec::with_capacity(n_cpus);
        let mut sum = Counters::default();
        for (cpu, all) in cpus.iter_mut().enumerate() {
            // `inflight`, then a `Counters` per verdict.
            let at = cpu * stride + 8 + a * Counters::SIZE;
            let (packets, bytes) = (u64_at(at), u64_at(at + 8));
            per_cpu.push(CpuCounters {
                cpu: all.cpu,
                packets,
                bytes,
                online: all.online,
            });
            all.packets += packets;
            all.bytes += bytes;
            sum.packets += packets;
            sum.bytes += bytes;
        }
        total.packets += sum.packets;
        total.bytes += sum.bytes;
        actions.push((per_cpu, sum));
    }
    Counts {
        actions,
        cpus,
        total,
    }
}

/// Rates between two readings, per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Rate {
    /// Frames per second.
    pub pps: f64,
    /// Bits per second.
    pub bps: f64,
}

impl Rate {
    fn between(before: &Counters, after: &Counters, seconds: f64) -> Self {
        if seconds <= 0.0 {
            return Self::default();
        }
        Self {
            pps: after.packets.saturating_sub(before.packets) as f64 / seconds,
            bps: after.bytes.saturating_sub(before.bytes) as f64 * 8.0 / seconds,
        }
    }
}

/// One program's rates since the last step.
#[derive(Clone, Debug, PartialEq)]
pub struct Rates {
    /// Per action, in [`ACTIONS`]' order.
    pub actions: Vec<Rate>,
    /// Over the actions.
    pub total: Rate,
}

impl Rates {
    fn between(before: &Counts, after: &Counts, seconds: f64) -> Self {
        Self {
            actions: before
                .actions
                .iter()
                .zip(&after.actions)
                .map(|((_, b), (_, a))| Rate::between(b, a, seconds))
                .collect(),
            total: Rate::between(&before.total, &after.total, seconds),
        }
    }
}

/// One step of `run --observe`.
#[derive(Clone, Debug)]
pub struct Step {
    /// The reading.
    pub observation: Observation,
    /// The interface's, since the last step; `None` on the first step,
    /// and after a re-observe.
    pub rates: Option<Rates>,
    /// Each component's, as [`Observation::components`].
    pub component_rates: Option<Vec<Rates>>,
    /// What happened since the last step, for people.
    pub notice: Option<String>,
}

/// Follows the program on an interface over time: reads its observers,
/// and when the user replaces the program, observes the new one.
#[derive(Debug)]
pub struct Follow {
    iface: String,
    last: Option<(std::time::Instant, Observation)>,
}

impl Follow {
    /// Follows `iface`, observed already.
    pub fn new(iface: &str) -> Self {
        Self {
            iface: iface.to_owned(),
            last: None,
        }
    }

    /// The program observed at the last step.
    pub fn observed_prog_id(&self) -> Option<u32> {
        self.last.as_ref().map(|(_, o)| o.observed.prog_id)
    }

    /// Reads once; re-observes a replaced program first.
    ///
    /// # Errors
    ///
    /// [`ObserveError`] from reading or observing.
    pub fn step(&mut self) -> Result<Step, ObserveError> {
        let mut seen = read(&self.iface)?;
        let mut notice = None;
        if let Some(now) = seen.replaced_by {
            let old = seen.observed.prog_id;
            unobserve(&self.iface)?;
            let done = observe(&self.iface)?;
            notice = Some(format!(
                "{} now runs prog id {now} ({}), not {old}: observing it now; rates restart",
                self.iface, done.observed.name
            ));
            self.last = None;
            seen = read(&self.iface)?;
        }
        let taken = std::time::Instant::now();
        let (rates, component_rates) = match &self.last {
            Some((then, before)) => {
                let seconds = taken.duration_since(*then).as_secs_f64();
                let parts = before
                    .components
                    .iter()
                    .zip(&seen.components)
                    .map(|(b, a)| Rates::between(&b.counts, &a.counts, seconds))
                    .collect();
                (
                    Some(Rates::between(&before.counts, &seen.counts, seconds)),
                    Some(parts),
                )
            }
            None => (None, None),
        };
        self.last = Some((taken, seen.clone()));
        Ok(Step {
            observation: seen,
            rates,
            component_rates,
            notice,
        })
    }
}
