//! xdpstat's record of one interface: the pins in its [`PinDir`], read and
//! checked against what the kernel runs on the interface now.
//!
//! The kernel is the truth. A pin is only xdpstat's attachment while the
//! program it holds runs on that interface, in this network namespace;
//! everything else in the directory is either a step of a command that was
//! killed (a staged pin), or left over. [`settle`] turns any such state
//! back into the plain one (`link` or `prog`, and `counters` naming the map
//! the running program counts into), keeping every count.

use std::{
    collections::HashSet,
    fs, io,
    os::fd::{AsFd, OwnedFd},
    path::{Path, PathBuf},
};

use xdpstat_common::{Counters, COUNTERS_MAP};

use super::AttachError;
use crate::kernel::bpffs::{self, NsDir, PinDir};
use crate::kernel::netlink::AttachedProgram;
use crate::kernel::sys::{self, maps::FdKind};

/// What a pin holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PinKind {
    /// A BPF link.
    Link(sys::LinkInfo),
    /// A program, by id.
    Prog(u32),
    /// A map, by id.
    Map(u32),
    /// Something else (BTF), or nothing readable.
    Other,
}

/// One pin in an interface's directory.
#[derive(Debug)]
pub(crate) struct Pin {
    /// Where it is.
    pub(crate) path: PathBuf,
    /// Its name without a staging suffix.
    pub(crate) name: String,
    /// Whether it is a staged pin (a command was making it).
    pub(crate) staged: bool,
    /// The object, open.
    pub(crate) fd: OwnedFd,
    /// What the object is.
    pub(crate) kind: PinKind,
}

/// How xdpstat's program is held on its interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Held {
    /// Through the link pinned at this index of [`Record::pins`].
    Link(usize),
    /// Through netlink, with the program pinned at this index.
    Prog(usize),
    /// A command was killed after swapping its program into someone else's
    /// link and before pinning that link: only its maps are pinned.
    Unpinned,
}

/// xdpstat's program, running on the interface now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Live {
    /// It, as netlink reports it.
    pub(crate) program: AttachedProgram,
    /// Which pin holds it.
    pub(crate) held: Held,
}

/// The pins of one interface's directory.
#[derive(Debug)]
pub(crate) struct Record {
    /// The directory.
    pub(crate) dir: PinDir,
    /// Its pins.
    pub(crate) pins: Vec<Pin>,
}

impl Record {
    /// Reads every pin in `dir`.
    pub(crate) fn read(dir: PinDir) -> Result<Self, AttachError> {
        let mut pins = Vec::new();
        for path in dir.pins()? {
            let Some((name, staged)) = bpffs::unstaged_name(&path) else {
                continue;
            };
            let name = name.to_owned();
            let fd = match sys::obj_get(&path) {
                Ok(fd) => fd,
                // Removed meanwhile.
                Err(e) if e.errno() == Some(libc::ENOENT) => continue,
                Err(e) if e.errno() == Some(libc::EACCES) => {
                    return Err(bpffs::BpffsError::Denied(path).into())
                }
                Err(e) => return Err(e.into()),
            };
            let kind = match sys::maps::fd_kind(fd.as_fd()) {
                Ok(FdKind::Link) => PinKind::Link(sys::link_info(fd.as_fd())?),
                Ok(FdKind::Prog) => PinKind::Prog(sys::prog_id(fd.as_fd())?),
                Ok(FdKind::Map) => PinKind::Map(sys::maps::map_info(fd.as_fd())?.id),
                _ => PinKind::Other,
            };
            pins.push(Pin {
                path,
                name,
                staged,
                fd,
                kind,
            });
        }
        Ok(Self { dir, pins })
    }

    /// xdpstat's program among `current`, the programs that run on
    /// interface `ifindex` of this namespace.
    pub(crate) fn live(&self, ifindex: u32, current: &[AttachedProgram]) -> Option<Live> {
        let running = |id: u32| current.iter().find(|p| p.prog_id == id).copied();
        // Final pins before staged ones, links before programs.
        let mut order: Vec<usize> = (0..self.pins.len()).collect();
        order.sort_by_key(|&i| self.pins[i].staged);
        for &i in &order {
            match self.pins[i].kind {
                PinKind::Link(info)
                    if info.link_type == sys::LINK_TYPE_XDP && info.xdp_ifindex == ifindex =>
                {
                    if let Some(program) = running(info.prog_id) {
                        return Some(Live {
                            program,
                            held: Held::Link(i),
                        });
                    }
                }
                _ => {}
            }
        }
        for &i in &order {
            if let PinKind::Prog(id) = self.pins[i].kind {
                if let Some(program) = running(id) {
                    return Some(Live {
                        program,
                        held: Held::Prog(i),
                    });
                }
            }
        }
        // A program that counts into a map of ours, with no pin holding it.
        let maps: Vec<u32> = self.map_ids().collect();
        if maps.is_empty() {
            return None;
        }
        current
            .iter()
            .find(|p| {
                sys::prog_fd_by_id(p.prog_id)
                    .and_then(|fd| sys::stats::prog_map_ids(fd.as_fd()))
                    .is_ok_and(|ids| ids.iter().any(|id| maps.contains(id)))
            })
            .map(|&program| Live {
                program,
                held: Held::Unpinned,
            })
    }

    fn map_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.pins.iter().filter_map(|p| match p.kind {
            PinKind::Map(id) => Some(id),
            _ => None,
        })
    }

    /// Whether a pin here holds program `prog_id` on interface `ifindex`.
    fn holds(&self, ifindex: u32, prog_id: u32) -> bool {
        self.pins.iter().any(|p| match p.kind {
            PinKind::Link(info) => info.prog_id == prog_id && info.xdp_ifindex == ifindex,
            PinKind::Prog(id) => id == prog_id,
            _ => false,
        })
    }

    /// Whether nothing here can ever run again: every link pinned here is
    /// defunct (its interface is gone, with its namespace perhaps), and no
    /// program is pinned (a netlink attachment may still run somewhere).
    fn is_dead(&self) -> bool {
        let mut links = self.pins.iter().filter_map(|p| match p.kind {
            PinKind::Link(info) => Some(info),
            _ => None,
        });
        let any_link = links.clone().next().is_some();
        any_link
            && links.all(|info| info.xdp_ifindex == 0)
            && !self.pins.iter().any(|p| matches!(p.kind, PinKind::Prog(_)))
    }

    /// A link pinned here that still runs on some interface: in another
    /// namespace, if it does not run on this one's.
    pub(crate) fn live_link(&self) -> Option<sys::LinkInfo> {
        self.pins.iter().find_map(|p| match p.kind {
            PinKind::Link(info) if info.xdp_ifindex != 0 => Some(info),
            _ => None,
        })
    }
}

/// xdpstat's record for interface `ifindex` of this namespace, and its
/// program if that is running: from the namespace's own directory, or else
/// from wherever the program's pins are. Those are elsewhere when the
/// interface moved here from another namespace, or when an xdpstat from
/// before namespaces attached it (`/sys/fs/bpf/xdpstat/<iface>/`).
///
/// # Errors
///
/// A directory or pin that cannot be read.
pub(crate) fn locate(
    ns: &NsDir,
    ifindex: u32,
    current: &[AttachedProgram],
) -> Result<(Option<Record>, Option<Live>), AttachError> {
    let own = match ns.find(ifindex)? {
        Some(dir) => Some(Record::read(dir)?),
        None => None,
    };
    if let Some(live) = own.as_ref().and_then(|r| r.live(ifindex, current)) {
        return Ok((own, Some(live)));
    }
    if !current.is_empty() {
        let mut alive = None;
        let own_path = own.as_ref().map(|r| r.dir.path().to_owned());
        for dir in ns.elsewhere() {
            if Some(dir.path()) == own_path.as_deref() {
                continue;
            }
            // Unreadable directories are other users' business.
            let Ok(record) = Record::read(dir) else {
                continue;
            };
            if record.is_dead() {
                // Its interface is gone for good (often with its whole
                // namespace); nothing else would ever remove it.
                if sweepable(ns, &record, &mut alive) {
                    let _ = remove_all(&record);
                }
                continue;
            }
            if current.iter().any(|p| record.holds(ifindex, p.prog_id)) {
                if let Some(live) = record.live(ifindex, current) {
                    return Ok((Some(record), Some(live)));
                }
            }
        }
    }
    Ok((own, None))
}

/// Removes the records, in any namespace's directory, whose links are all
/// defunct: their interfaces are gone for good, often with their whole
/// namespace, and nothing else would ever remove them.
pub(crate) fn remove_dead(ns: &NsDir) {
    let own = ns.interfaces().unwrap_or_default();
    let mut alive = None;
    for dir in own.into_iter().chain(ns.elsewhere()) {
        if let Ok(record) = Record::read(dir) {
            if record.is_dead() && sweepable(ns, &record, &mut alive) {
                let _ = remove_all(&record);
            }
        }
    }
}

/// Whether a dead record is this namespace's to remove: its own, one of
/// the layout before namespaces, or one of a namespace that is gone. A
/// living namespace's stale pins are left to its own `detach`, which says
/// what became of the interface.
fn sweepable(ns: &NsDir, record: &Record, alive: &mut Option<HashSet<u64>>) -> bool {
    if record.dir.path().parent() == Some(ns.path()) {
        return true;
    }
    match record.dir.netns() {
        None => true,
        Some(inode) => !alive
            .get_or_insert_with(bpffs::live_netns_inodes)
            .contains(&inode),
    }
}

/// The counters map the program `prog_id` counts into: its map named
/// `counters` with a counters map's shape, else its only map of that shape.
pub(crate) fn counters_map_of(prog_id: u32) -> Option<u32> {
    let fd = sys::prog_fd_by_id(prog_id).ok()?;
    let mut fitting = Vec::new();
    for id in sys::stats::prog_map_ids(fd.as_fd()).ok()? {
        let Ok(map) = sys::maps::map_fd_by_id(id) else {
            continue;
        };
        let Ok(info) = sys::maps::map_info(map.as_fd()) else {
            continue;
        };
        if fits_counters(&info) {
            if info.name == COUNTERS_MAP {
                return Some(id);
            }
            fitting.push(id);
        }
    }
    (fitting.len() == 1).then(|| fitting[0])
}

/// Whether a map is shaped like xdpstat's counters: an array or per-CPU
/// array with a u32 key and a value that starts with two u64s.
fn fits_counters(info: &sys::maps::MapInfo) -> bool {
    use aya_obj::generated::bpf_map_type::{BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY};
    (info.map_type == BPF_MAP_TYPE_ARRAY as u32
        || info.map_type == BPF_MAP_TYPE_PERCPU_ARRAY as u32)
        && info.key_size == 4
        && info.value_size as usize >= Counters::SIZE
}

/// Brings a record whose program runs into its plain state, under the
/// namespace's lock: the directory in this namespace's, named after the
/// interface; the holder pinned as `link` or `prog`; `counters` naming the
/// map the running program counts into; nothing else. A record whose
/// program no longer runs here is removed, unless its link still runs
/// elsewhere (the interface moved to another namespace), which is left for
/// that namespace to take over.
///
/// Returns the record in its new place, or `None` when nothing of
/// xdpstat's is left for the interface.
///
/// # Errors
///
/// A pin that cannot be renamed, made or removed.
pub(crate) fn settle(
    ns: &NsDir,
    ifindex: u32,
    iface: &str,
    record: Option<Record>,
    live: Option<Live>,
) -> Result<Option<(Record, Live)>, AttachError> {
    let Some(mut record) = record else {
        return Ok(None);
    };
    let Some(live) = live else {
        if record.live_link().is_some() {
            // Its program runs on an interface of another namespace, which
            // takes it over; out of this namespace's way meanwhile.
            if record.dir.ifindex() == Some(ifindex) {
                let parked = ns.pin_dir(0, &format!("{}-moved", record.dir.name()));
                if !parked.exists() {
                    record.dir.move_to(parked)?;
                }
            }
        } else {
            remove_all(&record)?;
        }
        return Ok(None);
    };
    let home = ns.pin_dir(ifindex, iface);
    if record.dir.path() != home.path() {
        if let Some(stale) = ns.find(ifindex)?.filter(|d| d.path() != record.dir.path()) {
            // A stale directory of this index (its program is not running)
            // makes way; `locate` found the live one elsewhere.
            let stale = Record::read(stale)?;
            settle(ns, ifindex, iface, Some(stale), None)?;
        }
        record.dir.move_to(home)?;
        for pin in &mut record.pins {
            pin.path = record
                .dir
                .path()
                .join(pin.path.file_name().unwrap_or_default());
        }
    }
    let mut keep: Vec<PathBuf> = Vec::new();
    // The holder, under its plain name.
    match live.held {
        Held::Link(i) | Held::Prog(i) => {
            let plain = match live.held {
                Held::Link(_) => record.dir.link(),
                _ => record.dir.prog(),
            };
            let pin = &mut record.pins[i];
            if pin.path != plain {
                rename(&pin.path, &plain)?;
                pin.path = plain.clone();
                pin.staged = false;
            }
            keep.push(plain);
        }
        Held::Unpinned => {
            // Find the link that runs it here, or else it runs through
            // netlink; pin whichever holds it.
            let mut links = sys::xdp_links_on(ifindex)?
                .into_iter()
                .filter(|(_, info)| info.prog_id == live.program.prog_id);
            let (fd, path) = match (links.next(), links.next()) {
                (Some((fd, _)), None) => (fd, record.dir.link()),
                _ => (sys::prog_fd_by_id(live.program.prog_id)?, record.dir.prog()),
            };
            let staged = record.dir.staging("holder");
            sys::obj_pin(fd.as_fd(), &staged)?;
            rename(&staged, &path)?;
            keep.push(path);
        }
    }
    // The maps the program uses stay; `counters` names its counters map.
    let used = sys::prog_fd_by_id(live.program.prog_id)
        .and_then(|fd| sys::stats::prog_map_ids(fd.as_fd()))
        .unwrap_or_default();
    if let Some(counters_id) = counters_map_of(live.program.prog_id) {
        let counters = record.dir.counters();
        let right = record
            .pins
            .iter()
            .find(|p| p.path == counters)
            .is_some_and(|p| p.kind == PinKind::Map(counters_id));
        if !right {
            match record
                .pins
                .iter()
                .find(|p| p.kind == PinKind::Map(counters_id))
            {
                Some(pin) => rename(&pin.path, &counters)?,
                None => {
                    let fd = sys::maps::map_fd_by_id(counters_id)?;
                    let staged = record.dir.staging("counters");
                    sys::obj_pin(fd.as_fd(), &staged)?;
                    rename(&staged, &counters)?;
                }
            }
        }
        keep.push(counters);
    }
    for pin in &record.pins {
        let used_map = matches!(pin.kind, PinKind::Map(id) if used.contains(&id));
        if used_map && !pin.staged && !keep.contains(&pin.path) {
            keep.push(pin.path.clone());
        } else if used_map && pin.staged {
            // A staged map pin of the running program: its plain name.
            let plain = record.dir.path().join(&pin.name);
            if !keep.contains(&plain) {
                rename(&pin.path, &plain)?;
                keep.push(plain);
            }
        }
    }
    for path in record.dir.pins()? {
        if !keep.contains(&path) {
            remove_pin(&path)?;
        }
    }
    // Read back, so that the caller sees the plain state.
    let record = Record::read(record.dir)?;
    let current = [live.program];
    let live = record
        .live(ifindex, &current)
        .ok_or_else(|| AttachError::Refused {
            iface: iface.to_owned(),
            mode: live.program.mode.into(),
            reason: "xdpstat's program stopped running while its pins were being repaired"
                .to_owned(),
        })?;
    Ok(Some((record, live)))
}

/// Removes every pin of a record, and its directory.
pub(crate) fn remove_all(record: &Record) -> Result<(), AttachError> {
    // What `load` pinned by name in bpffs' root, as libbpf would: still
    // the same map there, it goes with the rest.
    for pin in &record.pins {
        let (Some(map), PinKind::Map(id)) =
            (pin.name.strip_prefix(super::BY_NAME_PREFIX), &pin.kind)
        else {
            continue;
        };
        let shared = Path::new(bpffs::MOUNT_POINT).join(map);
        let same = sys::obj_get(&shared)
            .ok()
            .and_then(|fd| sys::maps::map_info(fd.as_fd()).ok())
            .is_some_and(|info| info.id == *id);
        if same {
            remove_pin(&shared)?;
        }
    }
    for path in record.dir.pins()? {
        remove_pin(&path)?;
    }
    record.dir.remove_if_empty();
    if record.dir.exists() {
        return Err(AttachError::Pin {
            path: record.dir.path().to_owned(),
            source: io::Error::other("directory not empty after removing xdpstat's pins"),
        });
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<(), AttachError> {
    fs::rename(from, to).map_err(|source| AttachError::Pin {
        path: to.to_owned(),
        source,
    })
}

/// Removes one pin; one that is already gone is fine.
pub(crate) fn remove_pin(path: &Path) -> Result<(), AttachError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(AttachError::Pin {
            path: path.to_owned(),
            source,
        }),
    }
}
