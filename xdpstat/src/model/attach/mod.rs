//! Attaching the embedded counter program to an interface, and detaching it.
//!
//! An attachment belongs to one interface of one network namespace: its
//! pins live in `/sys/fs/bpf/xdpstat/netns:<inode>/<ifindex>:<name>/` (see
//! [`bpffs::PinDir`]), and are trusted only as far as the kernel confirms
//! them (see [`record`]):
//! - `counters`: the counters map, reused by the next attach of the same
//!   layout, so counters survive a program reload;
//! - `link`: the BPF link that keeps the program attached after xdpstat
//!   exits (as `ip link` does), when it was attached through a link;
//! - `prog`: the program, when it runs through a netlink attachment instead
//!   (after `--force` replaced a program that `ip link` or libbpf attached).
//!
//! Pins are made under a staging name and renamed into place only once the
//! program is attached, so a failure leaves nothing half-pinned. Commands
//! that change pins hold the namespace's lock ([`NsDir::lock`]); the next
//! one after a command that was killed midway settles what it left.

use std::{
    fs, io,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    path::{Path, PathBuf},
};

use aya::{
    programs::{links::FdLink, ProgramError, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use serde::Serialize;
use thiserror::Error;
use xdpstat_common::{Counters, COUNTERS_MAP};

use crate::kernel::bpffs::{self, BpffsError, NsDir, NsLock, PinDir};
use crate::kernel::iface;
use crate::kernel::map::{MapRef, OpenMap};
use crate::kernel::netlink::{self, AttachedMode, AttachedProgram, NetlinkError};
use crate::kernel::privileges::{self, Capability, PrivilegeError};
use crate::kernel::sys::{self, SyscallError};
use crate::model::layout::Layout;
pub mod record;

use record::{Held, Live, PinKind, Record};

/// The XDP mode to attach in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Native if the driver supports it, else generic (the kernel decides).
    #[default]
    Auto,
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the generic, skb-based path (`XDP_FLAGS_SKB_MODE`).
    Generic,
    /// On the NIC (`XDP_FLAGS_HW_MODE`); needs a NIC that offloads BPF.
    Offload,
}

impl Mode {
    /// The mode's name, as `--mode` spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Offload => "offload",
        }
    }

    fn xdp_mode(self) -> XdpMode {
        match self {
            Self::Auto => XdpMode::Default,
            Self::Native => XdpMode::Driver,
            Self::Generic => XdpMode::Skb,
            Self::Offload => XdpMode::Hardware,
        }
    }

    fn attached(self) -> Option<AttachedMode> {
        match self {
            Self::Auto => None,
            Self::Native => Some(AttachedMode::Native),
            Self::Generic => Some(AttachedMode::Generic),
            Self::Offload => Some(AttachedMode::Offload),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<AttachedMode> for Mode {
    fn from(mode: AttachedMode) -> Self {
        match mode {
            AttachedMode::Native => Self::Native,
            AttachedMode::Generic => Self::Generic,
            AttachedMode::Offload => Self::Offload,
        }
    }
}

/// What `attach` should do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachOptions {
    /// Where the program runs.
    pub mode: Mode,
    /// How it keeps its counters.
    pub layout: Layout,
    /// Replace a program already on the interface, atomically.
    pub force: bool,
}

/// How a program is held on its interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Holder {
    /// A BPF link, pinned.
    Link,
    /// A netlink attachment (the device holds the program).
    Netlink,
}

/// xdpstat's program on an interface, as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// Interface name.
    pub interface: String,
    /// Interface index.
    pub ifindex: u32,
    /// The program's name.
    pub program: String,
    /// Counter layout, when the program is xdpstat's own (or another with a
    /// counters map).
    pub layout: Option<Layout>,
    /// Where it runs.
    pub mode: AttachedMode,
    /// Program id.
    pub prog_id: u32,
    /// Counters map id.
    pub map_id: u32,
    /// Link or netlink.
    pub holder: Holder,
    /// The pin directory.
    pub pin_dir: PathBuf,
}

/// The pin-name prefix, in an interface's directory, of a map that `load`
/// also pinned by name in bpffs' root (`LIBBPF_PIN_BY_NAME`) where nothing
/// was pinned before: `detach` removes that pin too.
pub const BY_NAME_PREFIX: &str = "pinned-by-name-";

/// What `attach` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    /// The attachment now in place.
    pub attachment: Attachment,
    /// The program it replaced, with `--force`.
    pub replaced: Option<AttachedProgram>,
    /// Whether the pinned counters were kept from before.
    pub counters_kept: bool,
}

/// What `detach` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detached {
    /// Interface name.
    pub interface: String,
    /// The program that was detached, if it was still attached.
    pub prog_id: Option<u32>,
    /// The interface no longer exists; only stale pins were removed.
    pub interface_gone: bool,
    /// The pin directory that was removed.
    pub pin_dir: PathBuf,
}

/// Attaching or detaching failed.
#[derive(Debug, Error)]
pub enum AttachError {
    /// No interface by that name.
    #[error("no interface named '{name}' in this network namespace (list them with `ip link`)")]
    UnknownInterface {
        /// The name given.
        name: String,
    },
    /// The interface already runs an XDP program.
    #[error("{iface} already runs XDP program {}; {}replace it with --force, or remove it first ({})",
        describe(*.existing, .existing_name.as_deref(), *.ours),
        if *.ours { "" } else { "count for it with --observe, " },
        remove_advice(iface, *.ours, *.link_id))]
    Busy {
        /// Interface name.
        iface: String,
        /// The program on it.
        existing: AttachedProgram,
        /// Its name, if it could be read.
        existing_name: Option<String>,
        /// Whether xdpstat attached it.
        ours: bool,
        /// The BPF link that holds it, when another loader's link does.
        link_id: Option<u32>,
    },
    /// Something else replaced the program while `--force` was replacing it.
    #[error("something else replaced the XDP program on {iface} while xdpstat was replacing it; run the command again")]
    Raced {
        /// Interface name.
        iface: String,
    },
    /// The interface left this network namespace with xdpstat's program.
    #[error("{iface} is no longer in this network namespace, but xdpstat's program (prog id {prog_id}) still runs on it there (it was moved, e.g. with `ip link set {iface} netns NS`); detach it from that namespace: `nsenter --net=/run/netns/NS xdpstat detach NAME`")]
    Moved {
        /// The name it had here.
        iface: String,
        /// The program still running.
        prog_id: u32,
    },
    /// The interface was renamed; its attachment follows it.
    #[error("no interface named '{iface}' in this network namespace: it was renamed to '{now}', and xdpstat's attachment follows it (`xdpstat detach {now}`)")]
    Renamed {
        /// The old name.
        iface: String,
        /// Its name now.
        now: String,
    },
    /// `--force` cannot change the mode of a running program atomically.
    #[error("{iface} runs its XDP program in {} mode; an atomic replace cannot move it to {} mode (detach it first, or drop --mode)",
        .current.name(), .requested.name())]
    ModeChange {
        /// Interface name.
        iface: String,
        /// The mode it runs in.
        current: AttachedMode,
        /// The mode asked for.
        requested: AttachedMode,
    },
    /// xdpstat has nothing attached there.
    #[error("xdpstat has nothing attached to {iface} (no pins under {}){}", .pin_dir.display(),
        match .foreign { Some(p) => format!("; it runs XDP program id {} in {} mode that something else attached ({})", p.prog_id, p.mode.name(), remove_advice(iface, false, *.link_id)), None => String::new() })]
    NotAttached {
        /// Interface name.
        iface: String,
        /// Where xdpstat's pins would be.
        pin_dir: PathBuf,
        /// A program someone else attached, if any.
        foreign: Option<AttachedProgram>,
        /// The BPF link that holds it, if one does.
        link_id: Option<u32>,
    },
    /// The process lacks privileges.
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
    /// bpffs is missing or unusable.
    #[error(transparent)]
    Bpffs(#[from] BpffsError),
    /// Loading the program, or pinning its maps, failed.
    #[error("{what}: {source}")]
    Load {
        /// What was being done, e.g. "loading the embedded percpu program
        /// failed".
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The kernel refused to attach the program.
    #[error("attaching to {iface} in {mode} mode failed: {reason}")]
    Refused {
        /// Interface name.
        iface: String,
        /// The mode asked for.
        mode: Mode,
        /// The kernel's reason, in words.
        reason: String,
    },
    /// The program was attached, then was not there when read back.
    #[error("{iface}: the program was attached but is not there any more (something removed it meanwhile); run the command again")]
    Vanished {
        /// Interface name.
        iface: String,
    },
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// A bpf syscall failed.
    #[error(transparent)]
    Syscall(#[from] SyscallError),
    /// A pin could not be made or removed.
    #[error("{}: {source}", path.display())]
    Pin {
        /// The pin.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl AttachError {
    /// Whether the error is the user's input rather than an operation that
    /// failed (exit code 2 rather than 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::UnknownInterface { .. }
                | Self::Renamed { .. }
                | Self::Bpffs(BpffsError::Ephemeral)
        )
    }
}

/// How to take a program off an interface, by what holds it.
fn remove_advice(iface: &str, ours: bool, link_id: Option<u32>) -> String {
    match (ours, link_id) {
        (true, _) => format!("`xdpstat detach {iface}`"),
        // netlink cannot take off a program that a link holds.
        (false, Some(id)) => format!(
            "it is held by BPF link id {id}: remove that link's pin or stop the process that holds it; `bpftool link show id {id}` names it"
        ),
        (false, None) => format!("`ip link set dev {iface} xdp off`"),
    }
}

/// The id of the XDP link that runs `prog_id` on interface `ifindex`, if a
/// link holds it (rather than netlink).
fn holding_link(ifindex: u32, prog_id: u32) -> Option<u32> {
    sys::xdp_links_on(ifindex)
        .ok()?
        .into_iter()
        .find(|(_, info)| info.prog_id == prog_id)
        .map(|(_, info)| info.id)
}

fn describe(p: AttachedProgram, name: Option<&str>, ours: bool) -> String {
    let who = if ours {
        "attached by xdpstat"
    } else {
        "attached by another loader"
    };
    match name {
        Some(name) if !name.is_empty() => {
            format!("'{name}' (id {}, {} mode, {who})", p.prog_id, p.mode.name())
        }
        _ => format!("id {} ({} mode, {who})", p.prog_id, p.mode.name()),
    }
}

fn program_name(prog_id: u32) -> Option<String> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|info| info.id() == prog_id)
        .and_then(|info| info.name_as_str().map(str::to_owned))
}

/// xdpstat's own holder of the program on an interface: the pinned link,
/// or the pinned program of a netlink attachment.
#[derive(Debug, Default)]
struct Owned {
    /// The pinned link, and its info.
    link: Option<(OwnedFd, sys::LinkInfo)>,
    /// The pinned program (netlink attachments), and its id.
    prog: Option<(OwnedFd, u32)>,
}

impl Owned {
    fn of(settled: Option<(Record, Live)>) -> Self {
        let Some((record, live)) = settled else {
            return Self::default();
        };
        let mut owned = Self::default();
        for (i, pin) in record.pins.into_iter().enumerate() {
            match (live.held, pin.kind) {
                (Held::Link(at), PinKind::Link(info)) if at == i => {
                    owned.link = Some((pin.fd, info))
                }
                (Held::Prog(at), PinKind::Prog(id)) if at == i => owned.prog = Some((pin.fd, id)),
                _ => {}
            }
        }
        owned
    }

    /// Whether `program` on the interface is one xdpstat attached.
    fn owns(&self, program: &AttachedProgram) -> bool {
        self.link
            .as_ref()
            .is_some_and(|(_, info)| info.xdp_ifindex != 0 && info.prog_id == program.prog_id)
            || self
                .prog
                .as_ref()
                .is_some_and(|(_, id)| *id == program.prog_id)
    }
}

/// Removes the staging pins of a failed attach, unless disarmed.
struct Staging<'a> {
    dir: &'a PinDir,
    paths: Vec<PathBuf>,
}

impl<'a> Staging<'a> {
    /// Stages pins in `dir`.
    fn new(dir: &'a PinDir) -> Self {
        Self {
            dir,
            paths: Vec::new(),
        }
    }

    /// A staging path for the pin `name`, removed unless committed.
    fn stage(&mut self, name: &str) -> PathBuf {
        let path = self.dir.staging(name);
        self.paths.push(path.clone());
        path
    }

    /// Renames a staged pin into place.
    fn commit(&mut self, staged: &Path, final_path: &Path) -> Result<(), AttachError> {
        fs::rename(staged, final_path).map_err(|source| AttachError::Pin {
            path: final_path.to_owned(),
            source,
        })?;
        self.paths.retain(|p| p != staged);
        Ok(())
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = fs::remove_file(path);
        }
        self.dir.remove_if_empty();
    }
}

pub(crate) fn resolve(name: &str) -> Result<u32, AttachError> {
    iface::index(name).ok_or_else(|| AttachError::UnknownInterface {
        name: name.to_owned(),
    })
}

/// Attaches the embedded counter program to `iface` and pins it.
///
/// # Errors
///
/// [`AttachError`]: no such interface, another program is there (without
/// `force`), missing privileges, or the kernel refusing.
pub fn attach(iface: &str, opts: &AttachOptions) -> Result<Attached, AttachError> {
    // The counter program subtracts packet pointers (its byte count),
    // which the verifier allows only with CAP_PERFMON.
    privileges::require(
        "xdpstat attach",
        &[Capability::Bpf, Capability::NetAdmin, Capability::Perfmon],
    )?;
    attach_with(iface, opts, "xdpstat attach", |pins| {
        let counters = pins.dir().counters();
        let counters_kept = pinned_counters_fit(&counters, opts.layout);
        let map_pin = if counters_kept {
            pins.keep(counters)
        } else {
            pins.stage(COUNTERS_MAP)
        };
        let load_error = |source: Box<dyn std::error::Error + Send + Sync>| AttachError::Load {
            what: format!("loading the embedded {} program failed", opts.layout),
            source,
        };
        let mut ebpf = EbpfLoader::new()
            .map_pin_path(COUNTERS_MAP, map_pin.as_path())
            .load(opts.layout.object())
            .map_err(|e| load_error(e.into()))?;
        let program: &mut Xdp = ebpf
            .program_mut(opts.layout.program_name())
            .ok_or_else(|| load_error("the embedded object has no such program".into()))?
            .try_into()
            .map_err(|e: ProgramError| load_error(e.into()))?;
        program.load().map_err(|e| load_error(e.into()))?;
        Ok(Loaded {
            program: LoadedXdp::Object {
                ebpf,
                name: opts.layout.program_name().to_owned(),
            },
            counters_kept,
        })
    })
}

/// A program loaded for [`attach_with`].
pub struct Loaded {
    /// The program.
    pub program: LoadedXdp,
    /// Whether the pinned counters were kept from before.
    pub counters_kept: bool,
}

/// An XDP program loaded, in the two ways attach pipelines load one.
pub enum LoadedXdp {
    /// One program of an object aya loaded.
    Object {
        /// The object.
        ebpf: Ebpf,
        /// The program's name in it.
        name: String,
    },
    /// A program loaded on its own, which aya only attaches.
    Program(Box<Xdp>),
}

impl LoadedXdp {
    fn xdp(&mut self) -> Result<&mut Xdp, AttachError> {
        match self {
            Self::Program(xdp) => Ok(xdp.as_mut()),
            Self::Object { ebpf, name } => ebpf
                .program_mut(name)
                .ok_or_else(|| AttachError::Load {
                    what: format!("attaching {name}"),
                    source: "the loaded object lost its program".into(),
                })?
                .try_into()
                .map_err(|e: ProgramError| AttachError::Load {
                    what: format!("attaching {name}"),
                    source: e.into(),
                }),
        }
    }
}

/// The pins a loader makes for its maps: staged, and put in place only once
/// the program is attached.
pub struct PinPlan<'a> {
    staging: Staging<'a>,
    /// (staged, final) pairs.
    planned: Vec<(PathBuf, PathBuf)>,
    /// Pins already in place that the attachment goes on using.
    kept: Vec<PathBuf>,
}

impl PinPlan<'_> {
    /// The interface's pin directory.
    pub fn dir(&self) -> &PinDir {
        self.staging.dir
    }

    /// Where to pin the map that will be `name` in the directory: a staged
    /// path, renamed to `name` once the program is attached.
    pub fn stage(&mut self, name: &str) -> PathBuf {
        let staged = self.staging.stage(name);
        self.planned
            .push((staged.clone(), self.staging.dir.path().join(name)));
        staged
    }

    /// Takes a program loaded by xdpstat itself for aya to attach: aya
    /// 0.14 opens a program it did not load only from a pin, so it is
    /// pinned in the staging area for as long as aya opens it.
    ///
    /// # Errors
    ///
    /// [`AttachError::Load`] when the pin or aya's opening it fails.
    pub fn adopt(&mut self, program: std::os::fd::BorrowedFd<'_>) -> Result<Xdp, AttachError> {
        let path = self.staging.stage("adopted-program");
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| AttachError::Load {
            what: "handing the loaded program to aya".to_owned(),
            source,
        };
        let adopted = sys::obj_pin(program, &path)
            .map_err(|e| failed(e.into()))
            .and_then(|()| {
                Xdp::from_pin(&path, aya_obj::programs::XdpAttachType::Interface)
                    .map_err(|e| failed(e.into()))
            });
        let _ = fs::remove_file(&path);
        adopted
    }

    /// Keeps a pin that is already in place, and returns it.
    pub fn keep(&mut self, path: PathBuf) -> PathBuf {
        self.kept.push(path.clone());
        path
    }
}

/// The one attach pipeline, for `attach` and `load`: check the interface
/// and take the namespace's lock ([`Target::prepare`]), let `load` load the
/// object and stage its map pins, attach its program (or swap it in with
/// `--force`), put the pins in place, and remove what a program before
/// left behind. A failure at any step leaves nothing half-pinned.
///
/// # Errors
///
/// What `load` returns, and [`AttachError`] for every other step.
pub fn attach_with(
    iface: &str,
    opts: &AttachOptions,
    what: &str,
    load: impl FnOnce(&mut PinPlan<'_>) -> Result<Loaded, AttachError>,
) -> Result<Attached, AttachError> {
    let target = Target::prepare(iface, opts, what)?;
    let mut plan = PinPlan {
        staging: Staging::new(&target.dir),
        planned: Vec::new(),
        kept: Vec::new(),
    };
    let mut loaded = load(&mut plan)?;
    let program = loaded.program.xdp()?;
    let holder = target.install(program, opts.mode, &mut plan.staging)?;
    let PinPlan {
        mut staging,
        planned,
        mut kept,
    } = plan;
    for (staged, to) in &planned {
        staging.commit(staged, to)?;
    }
    drop(staging);
    kept.extend(planned.into_iter().map(|(_, to)| to));
    kept.push(holder_pin(&target.dir, holder));
    target.prune(&kept)?;
    // The program stays attached through its pin after `ebpf` is dropped.
    Ok(Attached {
        attachment: target.attached()?,
        replaced: target.existing,
        counters_kept: loaded.counters_kept,
    })
}

/// An interface ready for an attach: resolved, bpffs mounted, the
/// namespace locked, xdpstat's pins for it settled (see
/// [`record::settle`]), its pin directory made, and checked for a program
/// already there.
struct Target {
    iface: String,
    ifindex: u32,
    /// Where the pins go.
    dir: PinDir,
    existing: Option<AttachedProgram>,
    owned: Owned,
    /// Held until the attach is done: no other xdpstat changes this
    /// namespace's pins meanwhile.
    _lock: NsLock,
}

impl Target {
    /// Checks privileges and the interface, mounts bpffs, and refuses an
    /// interface that already runs a program unless `opts.force`.
    fn prepare(iface: &str, opts: &AttachOptions, what: &str) -> Result<Self, AttachError> {
        // Replacing a program opens it by id, which takes CAP_SYS_ADMIN.
        let mut needed = vec![Capability::Bpf, Capability::NetAdmin];
        if opts.force {
            needed.push(Capability::SysAdmin);
        }
        privileges::require(what, &needed)?;
        let ifindex = resolve(iface)?;
        bpffs::ensure_mounted()?;
        let ns = NsDir::current()?;
        let lock = ns.lock()?;
        let current = netlink::interface(ifindex)?
            .ok_or_else(|| AttachError::UnknownInterface {
                name: iface.to_owned(),
            })?
            .xdp;
        record::remove_dead(&ns);
        let (record, live) = record::locate(&ns, ifindex, &current)?;
        let settled = record::settle(&ns, ifindex, iface, record, live)?;
        let dir = settled
            .as_ref()
            .map_or_else(|| ns.pin_dir(ifindex, iface), |(r, _)| r.dir.clone());
        let owned = Owned::of(settled);
        let existing = pick_existing(&current, opts.mode);
        if let Some(existing) = existing {
            if !opts.force {
                let ours = owned.owns(&existing);
                return Err(AttachError::Busy {
                    iface: iface.to_owned(),
                    existing,
                    existing_name: program_name(existing.prog_id),
                    ours,
                    link_id: if ours {
                        None
                    } else {
                        holding_link(ifindex, existing.prog_id)
                    },
                });
            }
            if let Some(requested) = opts.mode.attached() {
                if requested != existing.mode {
                    return Err(AttachError::ModeChange {
                        iface: iface.to_owned(),
                        current: existing.mode,
                        requested,
                    });
                }
            }
        }
        dir.create()?;
        Ok(Self {
            iface: iface.to_owned(),
            ifindex,
            dir,
            existing,
            owned,
            _lock: lock,
        })
    }

    /// Attaches a loaded program: a new pinned link, or with `--force` an
    /// atomic swap of what is there.
    fn install(
        &self,
        program: &mut Xdp,
        mode: Mode,
        staging: &mut Staging<'_>,
    ) -> Result<Holder, AttachError> {
        match self.existing {
            None => attach_new(&self.iface, self.ifindex, mode, program, &self.dir, staging),
            Some(existing) => {
                let prog_fd = program
                    .fd()
                    .map_err(|e| refused(&self.iface, existing.mode.into(), &e))?
                    .as_fd();
                replace(
                    &self.iface,
                    self.ifindex,
                    existing,
                    prog_fd,
                    &self.owned,
                    &self.dir,
                    staging,
                )
            }
        }
    }

    /// Removes the pins a program attached before left behind (another
    /// object's maps, after `--force`), keeping `keep`.
    fn prune(&self, keep: &[PathBuf]) -> Result<(), AttachError> {
        let entries = fs::read_dir(self.dir.path()).map_err(|source| AttachError::Pin {
            path: self.dir.path().to_owned(),
            source,
        })?;
        for entry in entries.flatten() {
            if !keep.contains(&entry.path()) {
                remove_pin(&entry.path())?;
            }
        }
        Ok(())
    }

    /// What is attached now, as [`inspect`] reads it back.
    fn attached(&self) -> Result<Attachment, AttachError> {
        inspect(&self.iface)?.ok_or_else(|| AttachError::Vanished {
            iface: self.iface.clone(),
        })
    }
}

/// The pin that holds a program of this holder: the link, or the program.
fn holder_pin(dir: &PinDir, holder: Holder) -> PathBuf {
    match holder {
        Holder::Link => dir.link(),
        Holder::Netlink => dir.prog(),
    }
}

/// The program `--force` would replace: the one in the requested mode, or
/// the first one when the mode is `auto`.
fn pick_existing(current: &[AttachedProgram], mode: Mode) -> Option<AttachedProgram> {
    match mode.attached() {
        Some(m) => current
            .iter()
            .find(|p| p.mode == m)
            .or(current.first())
            .copied(),
        None => current.first().copied(),
    }
}

/// Whether the pinned counters map, if any, is one `layout` can keep using.
fn pinned_counters_fit(path: &Path, layout: Layout) -> bool {
    OpenMap::open(&MapRef::Pinned(path.to_owned())).is_ok_and(|map| {
        let info = &map.info;
        Layout::from_raw_map_type(info.map_type) == Some(layout)
            && info.key_size == 4
            && info.value_size as usize == Counters::SIZE
            && info.max_entries == 1
    })
}

fn attach_new(
    iface: &str,
    ifindex: u32,
    mode: Mode,
    program: &mut Xdp,
    dir: &PinDir,
    staging: &mut Staging<'_>,
) -> Result<Holder, AttachError> {
    let link_id = program
        .attach_to_if_index(ifindex, mode.xdp_mode())
        .map_err(|e| refused(iface, mode, &e))?;
    let link = program
        .take_link(link_id)
        .map_err(|e| refused(iface, mode, &e))?;
    match FdLink::try_from(link) {
        Ok(fd_link) => {
            let staged = staging.stage("link");
            fd_link.pin(&staged).map_err(|e| AttachError::Pin {
                path: staged.clone(),
                source: io::Error::other(e.to_string()),
            })?;
            staging.commit(&staged, &dir.link())?;
            Ok(Holder::Link)
        }
        // aya fell back to netlink (kernels before 5.9): the device holds
        // the program, so pin the program to mark it as ours.
        Err(_) => {
            let fd = program.fd().map_err(|e| refused(iface, mode, &e))?;
            let staged = staging.stage("prog");
            sys::obj_pin(fd.as_fd(), &staged)?;
            staging.commit(&staged, &dir.prog())?;
            Ok(Holder::Netlink)
        }
    }
}

/// `--force`: swaps the program on the interface for ours in one step, so
/// no frame goes uncounted or unprocessed.
///
/// A program held by netlink is swapped by netlink with
/// `XDP_FLAGS_REPLACE`. One held by a BPF link is swapped with
/// `BPF_LINK_UPDATE` on that link: our pinned one, or else the link that
/// runs that program on this ifindex. Link info carries no network
/// namespace, so netlink goes first: it answers `EBUSY` exactly when a link
/// holds the program here.
fn replace(
    iface: &str,
    ifindex: u32,
    existing: AttachedProgram,
    prog_fd: BorrowedFd<'_>,
    owned: &Owned,
    dir: &PinDir,
    staging: &mut Staging<'_>,
) -> Result<Holder, AttachError> {
    let old = sys::prog_fd_by_id(existing.prog_id).map_err(|e| match e.errno() {
        // Unloaded since xdpstat looked: something else replaced it.
        Some(libc::ENOENT) => AttachError::Raced {
            iface: iface.to_owned(),
        },
        _ => e.into(),
    })?;
    let ours = owned
        .link
        .as_ref()
        .filter(|(_, info)| info.xdp_ifindex == ifindex && info.prog_id == existing.prog_id);
    if ours.is_none() {
        // Pinned first, so that once the swap is done the program is
        // xdpstat's; if the swap fails, the staged pin goes.
        let staged = staging.stage("prog");
        sys::obj_pin(prog_fd, &staged)?;
        match netlink::set_xdp(
            ifindex,
            Some(prog_fd),
            Some(old.as_fd()),
            existing.mode.flag(),
        ) {
            Ok(()) => {
                staging.commit(&staged, &dir.prog())?;
                remove_pin(&dir.link())?;
                return Ok(Holder::Netlink);
            }
            Err(e) if e.errno() == Some(libc::EBUSY) => {}
            // XDP_FLAGS_REPLACE found another program than the expected one.
            Err(e) if e.errno() == Some(libc::EEXIST) => {
                return Err(AttachError::Raced {
                    iface: iface.to_owned(),
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
    let (link_fd, already_pinned) = match ours {
        Some((fd, _)) => (
            fd.try_clone().map_err(|source| AttachError::Pin {
                path: dir.link(),
                source,
            })?,
            true,
        ),
        None => {
            let mut candidates = sys::xdp_links_on(ifindex)?
                .into_iter()
                .filter(|(_, info)| info.prog_id == existing.prog_id);
            match (candidates.next(), candidates.next()) {
                (Some((fd, _)), None) => (fd, false),
                (None, _) => {
                    return Err(AttachError::Refused {
                        iface: iface.to_owned(),
                        mode: existing.mode.into(),
                        reason: format!(
                            "a BPF link holds prog id {} but it cannot be found",
                            existing.prog_id
                        ),
                    });
                }
                (Some(_), Some(_)) => {
                    return Err(AttachError::Refused {
                        iface: iface.to_owned(),
                        mode: existing.mode.into(),
                        reason: format!(
                            "prog id {} runs through several BPF links with ifindex {ifindex} (in several network namespaces); detach it first",
                            existing.prog_id
                        ),
                    });
                }
            }
        }
    };
    sys::link_update(link_fd.as_fd(), prog_fd, Some(old.as_fd())).map_err(|e| {
        // BPF_F_REPLACE: the link no longer runs the program it ran when
        // xdpstat looked (EPERM), or it was detached meanwhile (ENOLINK).
        match e.errno() {
            Some(libc::EPERM) | Some(libc::ENOLINK) => AttachError::Raced {
                iface: iface.to_owned(),
            },
            _ => e.into(),
        }
    })?;
    if !already_pinned {
        let staged = staging.stage("link");
        sys::obj_pin(link_fd.as_fd(), &staged)?;
        staging.commit(&staged, &dir.link())?;
    }
    remove_pin(&dir.prog())?;
    Ok(Holder::Link)
}

fn refused(iface: &str, mode: Mode, error: &ProgramError) -> AttachError {
    let errno = find_errno(error);
    let reason = match errno {
        Some(libc::EBUSY) | Some(libc::EEXIST) => {
            "another XDP program was attached meanwhile; try again".to_owned()
        }
        Some(libc::EOPNOTSUPP) if mode == Mode::Native => format!(
            "the {iface} driver has no native XDP support (use --mode generic)"
        ),
        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) if mode == Mode::Offload => format!(
            "{iface} cannot offload BPF programs (offload needs a NIC that does, e.g. Netronome; use --mode native or generic)"
        ),
        _ => xdpstat_analysis::error::chain(error),
    };
    AttachError::Refused {
        iface: iface.to_owned(),
        mode,
        reason,
    }
}

fn find_errno(error: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut current: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return io.raw_os_error();
        }
        if let Some(nl) = e.downcast_ref::<NetlinkError>() {
            return nl.errno();
        }
        current = e.source();
    }
    None
}

use self::record::remove_pin;

/// xdpstat's attachment on `iface` in this network namespace, if its
/// program runs there; its counters are those of the map that program
/// counts into, whatever the pins say.
///
/// # Errors
///
/// [`AttachError`] if the kernel or the pins cannot be read (`EACCES`
/// without root, for instance).
pub fn inspect(iface: &str) -> Result<Option<Attachment>, AttachError> {
    if !iface::is_valid_name(iface) {
        return Ok(None);
    }
    let Some(ifindex) = iface::index(iface) else {
        return Ok(None);
    };
    let Some(current) = netlink::interface(ifindex)? else {
        return Ok(None);
    };
    let ns = NsDir::current()?;
    let (record, live) = if current.xdp.is_empty() {
        // Only the interface's own directory can be there, stale.
        let own = ns.find(ifindex)?.map(Record::read).transpose()?;
        (own, None)
    } else {
        record::locate(&ns, ifindex, &current.xdp)?
    };
    let Some(record) = record else {
        return Ok(None);
    };
    let home = ns.pin_dir(ifindex, iface);
    let untidy = record.dir.path() != home.path()
        || record.pins.iter().any(|p| p.staged)
        || live.is_none_or(|l| l.held == Held::Unpinned);
    if !untidy {
        let Some(live) = live else { return Ok(None) };
        return describe_attachment(iface, ifindex, &record, live);
    }
    // Renamed, moved here, pinned by an older xdpstat, left midway by a
    // command that was killed, or stale: settled when that needs no
    // waiting and is allowed (root); else read as it is.
    drop(record);
    fs::create_dir_all(ns.path()).ok();
    if let Some(_lock) = ns.try_lock() {
        let (record, live) = record::locate(&ns, ifindex, &current.xdp)?;
        return match record::settle(&ns, ifindex, iface, record, live) {
            Ok(Some((record, live))) => describe_attachment(iface, ifindex, &record, live),
            Ok(None) => Ok(None),
            Err(_) => inspect_unsettled(iface),
        };
    }
    inspect_unsettled(iface)
}

/// The attachment a live record describes.
fn describe_attachment(
    iface: &str,
    ifindex: u32,
    record: &Record,
    live: Live,
) -> Result<Option<Attachment>, AttachError> {
    let holder = match live.held {
        Held::Link(_) => Holder::Link,
        Held::Prog(_) => Holder::Netlink,
        Held::Unpinned => match holding_link(ifindex, live.program.prog_id) {
            Some(_) => Holder::Link,
            None => Holder::Netlink,
        },
    };
    let prog_id = live.program.prog_id;
    // By id takes CAP_SYS_ADMIN; the counters' own pin, only CAP_BPF.
    let pinned = || {
        sys::obj_get(&record.dir.counters())
            .ok()
            .and_then(|fd| sys::maps::map_info(fd.as_fd()).ok())
    };
    let (map_id, map_type) = match record::counters_map_of(prog_id) {
        Some(id) => (
            Some(id),
            sys::maps::map_fd_by_id(id)
                .ok()
                .and_then(|fd| sys::maps::map_info(fd.as_fd()).ok())
                .or_else(pinned)
                .map(|info| info.map_type),
        ),
        None => pinned().map_or((None, None), |info| (Some(info.id), Some(info.map_type))),
    };
    let name = program_name(prog_id).unwrap_or_default();
    let layout =
        Layout::from_program_name(&name).or_else(|| map_type.and_then(Layout::from_raw_map_type));
    // Without CAP_SYS_ADMIN the program cannot be opened by id for its
    // name: the layout its counters have says which of xdpstat's it is.
    let name = match (name.is_empty(), layout) {
        (true, Some(layout)) => layout.program_name().to_owned(),
        _ => name,
    };
    Ok(Some(Attachment {
        interface: iface.to_owned(),
        ifindex,
        program: name,
        layout,
        mode: live.program.mode,
        prog_id,
        map_id: map_id.unwrap_or(0),
        holder,
        pin_dir: record.dir.path().to_owned(),
    }))
}

/// [`inspect`] without trying to tidy up again.
fn inspect_unsettled(iface: &str) -> Result<Option<Attachment>, AttachError> {
    let Some(ifindex) = iface::index(iface) else {
        return Ok(None);
    };
    let Some(current) = netlink::interface(ifindex)? else {
        return Ok(None);
    };
    let ns = NsDir::current()?;
    let (Some(record), Some(live)) = record::locate(&ns, ifindex, &current.xdp)? else {
        return Ok(None);
    };
    describe_attachment(iface, ifindex, &record, live)
}

/// xdpstat's attachments in this network namespace, by interface index.
///
/// # Errors
///
/// [`AttachError`] if the kernel or the pins cannot be read.
pub fn attachments() -> Result<Vec<Attachment>, AttachError> {
    let mut found = Vec::new();
    for i in netlink::interfaces()? {
        if i.xdp.is_empty() {
            continue;
        }
        if let Some(a) = inspect(&i.name)? {
            found.push(a);
        }
    }
    Ok(found)
}

/// Detaches xdpstat's program from `iface` and removes every pin xdpstat
/// made for it. When no interface has that name here any more, its record
/// is found by the name it had: the stale pins of a deleted interface are
/// removed, and one that was renamed or moved to another namespace is left
/// running, with an error that says where it went.
///
/// # Errors
///
/// [`AttachError::NotAttached`] when xdpstat has nothing on `iface`;
/// [`AttachError::UnknownInterface`] when there is neither a record nor
/// such an interface; [`AttachError::Renamed`], [`AttachError::Moved`].
pub fn detach(iface: &str) -> Result<Detached, AttachError> {
    privileges::require("xdpstat detach", &[Capability::Bpf, Capability::NetAdmin])?;
    let unknown = || AttachError::UnknownInterface {
        name: iface.to_owned(),
    };
    if !iface::is_valid_name(iface) {
        return Err(unknown());
    }
    let ifindex = iface::index(iface);
    let ns = NsDir::current()?;
    let not_attached = |foreign: Option<AttachedProgram>, ifindex: u32| AttachError::NotAttached {
        iface: iface.to_owned(),
        pin_dir: ns.pin_dir(ifindex, iface).path().to_owned(),
        foreign,
        link_id: foreign.and_then(|p| holding_link(ifindex, p.prog_id)),
    };
    if !bpffs::is_bpffs(Path::new(bpffs::MOUNT_POINT)).unwrap_or(false) {
        // No bpffs, so no pins.
        let Some(ifindex) = ifindex else {
            return Err(unknown());
        };
        let foreign = netlink::interface(ifindex)?.and_then(|i| i.xdp.first().copied());
        return Err(not_attached(foreign, ifindex));
    }
    let _lock = ns.lock()?;
    let Some(ifindex) = ifindex else {
        return detach_by_old_name(&ns, iface);
    };
    let current = netlink::interface(ifindex)?.map_or_else(Vec::new, |i| i.xdp);
    let (record, live) = record::locate(&ns, ifindex, &current)?;
    let Some(pin_dir) = record.as_ref().map(|r| r.dir.path().to_owned()) else {
        let result = Err(not_attached(current.first().copied(), ifindex));
        ns.pin_dir(ifindex, iface).remove_if_empty();
        return result;
    };
    let Some((record, live)) = record::settle(&ns, ifindex, iface, record, live)? else {
        return Ok(Detached {
            interface: iface.to_owned(),
            prog_id: None,
            interface_gone: false,
            pin_dir,
        });
    };
    let prog_id = take_off(&record, live, ifindex)?;
    record::remove_all(&record)?;
    Ok(Detached {
        interface: iface.to_owned(),
        prog_id,
        interface_gone: false,
        pin_dir: record.dir.path().to_owned(),
    })
}

/// `detach` of a name no interface here has: the records that name it.
fn detach_by_old_name(ns: &NsDir, iface: &str) -> Result<Detached, AttachError> {
    let named: Vec<PinDir> = ns
        .interfaces()?
        .into_iter()
        .chain(ns.elsewhere().into_iter().filter(|d| d.ifindex().is_none()))
        .filter(|d| d.name() == iface)
        .collect();
    let Some(first) = named.first() else {
        return Err(AttachError::UnknownInterface {
            name: iface.to_owned(),
        });
    };
    let pin_dir = first.path().to_owned();
    for dir in named {
        let record = Record::read(dir)?;
        if let Some(index) = record.dir.ifindex() {
            if let Some(now) = netlink::interface(index)? {
                if record.live(index, &now.xdp).is_some() {
                    return Err(AttachError::Renamed {
                        iface: iface.to_owned(),
                        now: now.name,
                    });
                }
            }
        }
        if let Some(link) = record.live_link() {
            return Err(AttachError::Moved {
                iface: iface.to_owned(),
                prog_id: link.prog_id,
            });
        }
        record::remove_all(&record)?;
    }
    Ok(Detached {
        interface: iface.to_owned(),
        prog_id: None,
        interface_gone: true,
        pin_dir,
    })
}

/// Takes xdpstat's running program off interface `ifindex`, through what
/// holds it, and returns its id.
fn take_off(record: &Record, live: Live, ifindex: u32) -> Result<Option<u32>, AttachError> {
    match live.held {
        Held::Link(i) => {
            // Detach now even if someone else also holds the link.
            match sys::link_detach(record.pins[i].fd.as_fd()) {
                Ok(()) => Ok(Some(live.program.prog_id)),
                Err(e) if e.errno() == Some(libc::ENOLINK) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        Held::Prog(i) => {
            // Only clear the program if it is still ours (XDP_FLAGS_REPLACE).
            netlink::set_xdp(
                ifindex,
                None,
                Some(record.pins[i].fd.as_fd()),
                live.program.mode.flag(),
            )?;
            Ok(Some(live.program.prog_id))
        }
        // `settle` pins the holder of every live record.
        Held::Unpinned => Ok(None),
    }
}

/// What `detach_program` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaving {
    /// The program was still there, and is detached now.
    Detached,
    /// Something replaced it meanwhile; that is left alone.
    Replaced {
        /// What runs there now, if anything.
        prog_id: Option<u32>,
    },
}

/// Detaches program `prog_id` from `iface` only if it is still the one
/// xdpstat runs there, for a command (`run`) that attached it and must not
/// take off what replaced it since.
///
/// # Errors
///
/// As [`detach`].
pub fn detach_program(iface: &str, prog_id: u32) -> Result<Leaving, AttachError> {
    let ns = NsDir::current()?;
    let _lock = ns.lock()?;
    let Some(ifindex) = iface::index(iface) else {
        return Ok(Leaving::Replaced { prog_id: None });
    };
    let current = netlink::interface(ifindex)?.map_or_else(Vec::new, |i| i.xdp);
    let (record, live) = record::locate(&ns, ifindex, &current)?;
    let settled = record::settle(&ns, ifindex, iface, record, live)?;
    match settled {
        Some((record, live)) if live.program.prog_id == prog_id => {
            take_off(&record, live, ifindex)?;
            record::remove_all(&record)?;
            Ok(Leaving::Detached)
        }
        _ => Ok(Leaving::Replaced {
            prog_id: current.first().map(|p| p.prog_id),
        }),
    }
}
