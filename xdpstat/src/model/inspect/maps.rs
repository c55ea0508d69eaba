//! Loaded BPF maps, as `bpftool map list` reports them, with the programs
//! that use each one; and pinning a map by id, or removing a map's pin, as
//! `bpftool map pin id N PATH` and `rm PATH` do, with checks first.

use std::{
    collections::HashMap,
    fs, io,
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use crate::kernel::map::{MapError, MapRef, OpenMap};
use serde::{Serialize, Serializer};
use thiserror::Error;

use super::progs::{self, program_infos, InspectError};
use crate::kernel::bpffs;
use crate::kernel::privileges::{self, Capability, PrivilegeError};
use crate::kernel::sys::{
    self,
    stats::{self, ObjectKind},
    SyscallError,
};

pub use crate::kernel::map::MapType;

/// A program that uses a map. It serializes as its id alone, so that a
/// map's `programs` is a list of ids in JSON; the name is for text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgRef {
    /// Program id.
    pub id: u32,
    /// Program name.
    pub name: String,
}

impl Serialize for ProgRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.id)
    }
}

/// A loaded map. Field names follow `bpftool -j map show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Map {
    /// Map id.
    pub id: u32,
    /// Map type.
    #[serde(rename = "type")]
    pub map_type: MapType,
    /// Name (at most 15 bytes; empty if it was created without one).
    pub name: String,
    /// `BPF_F_*` creation flags.
    pub flags: u32,
    /// Key size in bytes.
    pub bytes_key: u32,
    /// Value size in bytes.
    pub bytes_value: u32,
    /// Capacity.
    pub max_entries: u32,
    /// Bytes charged to memlock.
    pub bytes_memlock: u64,
    /// The BTF object of its key and value types, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub btf_id: Option<u32>,
    /// 1 when frozen (read-only to user space, as `.rodata` is), as
    /// bpftool prints it.
    pub frozen: u8,
    /// The loaded programs that use it, in id order.
    pub programs: Vec<ProgRef>,
}

/// Inverts programs' map ids: for each map id, the programs that use it, in
/// the order given (a program listed twice for one map counts once).
pub fn users<'a>(
    programs: impl IntoIterator<Item = (&'a ProgRef, &'a [u32])>,
) -> HashMap<u32, Vec<ProgRef>> {
    let mut by_map: HashMap<u32, Vec<ProgRef>> = HashMap::new();
    for (program, map_ids) in programs {
        for &map_id in map_ids {
            let list = by_map.entry(map_id).or_default();
            if list.last().is_none_or(|last| last.id != program.id) {
                list.push(program.clone());
            }
        }
    }
    by_map
}

/// Whether opening a map said it went away.
fn gone_map(error: &MapError) -> bool {
    matches!(error, MapError::NoSuchId { .. })
}

/// Every program's id, name and map ids, in id order.
fn program_maps() -> Result<Vec<(ProgRef, Vec<u32>)>, InspectError> {
    let mut programs = Vec::new();
    for info in program_infos() {
        let info = info?;
        let Some(fd) = progs::open(&info)? else {
            continue;
        };
        let map_ids = progs::map_ids(&fd)?;
        let program = ProgRef {
            id: info.id(),
            name: String::from_utf8_lossy(info.name()).into_owned(),
        };
        programs.push((program, map_ids));
    }
    programs.sort_by_key(|(p, _)| p.id);
    Ok(programs)
}

/// Lists every loaded map, in id order, with the programs using it.
///
/// # Errors
///
/// [`InspectError`] if the kernel cannot be asked; callers check
/// privileges first (listing needs `CAP_SYS_ADMIN`).
pub fn list() -> Result<Vec<Map>, InspectError> {
    let programs = program_maps()?;
    let mut users = users(programs.iter().map(|(p, ids)| (p, ids.as_slice())));
    let mut maps = Vec::new();
    for id in sys::map_ids()? {
        let map = match OpenMap::open(&MapRef::Id(id)) {
            Ok(map) => map,
            Err(e) if gone_map(&e) => continue,
            Err(e) => return Err(InspectError::Maps(e)),
        };
        let fdinfo = stats::fdinfo(map.fd()).map_err(InspectError::FdInfo)?;
        let info = &map.info;
        maps.push(Map {
            id: info.id,
            map_type: MapType(fdinfo.raw_type),
            name: info.name.clone(),
            flags: info.map_flags,
            bytes_key: info.key_size,
            bytes_value: info.value_size,
            max_entries: info.max_entries,
            bytes_memlock: fdinfo.memlock,
            btf_id: (info.btf_id != 0).then_some(info.btf_id),
            frozen: u8::from(fdinfo.frozen),
            programs: users.remove(&info.id).unwrap_or_default(),
        });
    }
    maps.sort_by_key(|m| m.id);
    Ok(maps)
}

/// Pinning or unpinning failed.
#[derive(Debug, Error)]
pub enum PinError {
    /// No map has that id.
    #[error("no BPF map has id {id} (`xdpstat map list` shows them)")]
    NoSuchMap {
        /// The id given.
        id: u32,
    },
    /// Something is already at the path.
    #[error("{}", exists_message(.path, *.pinned))]
    Exists {
        /// The path given.
        path: PathBuf,
        /// The kind and id of the BPF object pinned there, if it is one.
        pinned: Option<(ObjectKind, u32)>,
    },
    /// The path is a directory on bpffs, where a new pin's path was wanted.
    #[error("{} is a directory; give a path for the new pin inside it, e.g. {}", .path.display(), .path.join("NAME").display())]
    IsDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The directory of the path does not exist, on bpffs.
    #[error("{} does not exist; create it with `mkdir -p {}`, or pin directly under {}", .dir.display(), .dir.display(), bpffs::MOUNT_POINT)]
    NoDirectory {
        /// The missing directory.
        dir: PathBuf,
    },
    /// Part of the path's directory is a file.
    #[error("{} is not a directory, so nothing can be pinned under it; choose a path in a directory on bpffs, e.g. {}/NAME", .path.display(), bpffs::MOUNT_POINT)]
    NotADirectory {
        /// The file that stands where a directory should.
        path: PathBuf,
    },
    /// The path is not on bpffs.
    #[error("{} is not on a BPF filesystem (bpffs); pins can only live on bpffs, e.g. under {}", .path.display(), bpffs::MOUNT_POINT)]
    NotBpffs {
        /// The path given.
        path: PathBuf,
    },
    /// bpffs refuses the name.
    #[error("{}: bpffs refuses names with a dot; choose another name", .path.display())]
    BadName {
        /// The path given.
        path: PathBuf,
    },
    /// Nothing is pinned at the path.
    #[error("{}: {what}", .path.display())]
    NotPinned {
        /// The path given.
        path: PathBuf,
        /// What is there instead.
        what: &'static str,
    },
    /// Something other than a map is pinned at the path.
    #[error("{} is a pinned BPF {}, not a map; `map unpin` removes only maps", .path.display(), .kind.name())]
    NotAMap {
        /// The path given.
        path: PathBuf,
        /// What it is.
        kind: ObjectKind,
    },
    /// The process lacks privileges.
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
    /// A bpf syscall failed.
    #[error(transparent)]
    Syscall(#[from] SyscallError),
    /// Reading the map failed.
    #[error("reading map {id}")]
    Map {
        /// The map id.
        id: u32,
        /// Why.
        #[source]
        source: MapError,
    },
    /// A file operation failed.
    #[error("{}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl PinError {
    /// Whether the error is the user's input rather than an operation that
    /// failed (exit code 2 rather than 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::NoSuchMap { .. }
                | Self::Exists { .. }
                | Self::IsDirectory { .. }
                | Self::NoDirectory { .. }
                | Self::NotADirectory { .. }
                | Self::NotBpffs { .. }
                | Self::BadName { .. }
                | Self::NotPinned { .. }
                | Self::NotAMap { .. }
        )
    }
}

/// A map that was pinned or unpinned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PinnedMap {
    /// Map id.
    pub id: u32,
    /// Map name.
    pub name: String,
    /// The pin.
    pub path: PathBuf,
}

/// The directory a pin goes in: the path's parent, or `.` for a bare name.
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// What [`PinError::Exists`] says: what is pinned there, if anything, and
/// how to go on.
fn exists_message(path: &Path, pinned: Option<(ObjectKind, u32)>) -> String {
    let path = path.display();
    match pinned {
        Some((ObjectKind::Map, id)) => format!(
            "{path} already holds a pinned BPF map (id {id}); xdpstat never replaces a pin: choose another path, or remove this one with `xdpstat map unpin {path}`"
        ),
        Some((kind, id)) => format!(
            "{path} already holds a pinned BPF {} (id {id}); xdpstat never replaces a pin: choose another path",
            kind.name()
        ),
        None => format!("{path} already exists; xdpstat never replaces it: choose another path"),
    }
}

/// The kind and id of the BPF object pinned at `path`, or `None` if it holds
/// none that can be opened.
fn pinned_at(path: &Path) -> Option<(ObjectKind, u32)> {
    let fd = sys::obj_get(path).ok()?;
    let info = stats::fdinfo(fd.as_fd()).ok()?;
    (info.kind != ObjectKind::Other).then_some((info.kind, info.id))
}

/// Checks that a new pin can be made at `path`: nothing is there, and its
/// directory exists on bpffs. Each refusal names what is wrong with the
/// path.
fn check_new_pin(path: &Path) -> Result<(), PinError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| PinError::Io { path, source }
    };
    let not_bpffs = || PinError::NotBpffs {
        path: path.to_owned(),
    };
    match path.symlink_metadata() {
        Ok(meta) => {
            // statfs of the path itself: a file reports the filesystem it
            // is on, and bpffs's own mount point reports bpffs.
            if !bpffs::is_bpffs(path).map_err(io_error(path))? {
                return Err(not_bpffs());
            }
            if meta.is_dir() {
                return Err(PinError::IsDirectory {
                    path: path.to_owned(),
                });
            }
            Err(PinError::Exists {
                path: path.to_owned(),
                pinned: pinned_at(path),
            })
        }
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            let dir = parent_of(path);
            if fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
                let on_bpffs = bpffs::is_bpffs(dir).map_err(io_error(dir))?;
                return if on_bpffs { Ok(()) } else { Err(not_bpffs()) };
            }
            // A file stands where the directory should be, or in the way
            // of it; or the directory is missing. The first part of it
            // that exists tells which.
            if fs::symlink_metadata(dir).is_ok() {
                return Err(PinError::NotADirectory {
                    path: dir.to_owned(),
                });
            }
            let existing = dir
                .ancestors()
                .skip(1)
                .map(|a| {
                    if a.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        a
                    }
                })
                .find_map(|a| fs::metadata(a).ok().map(|m| (a, m)));
            match existing {
                Some((a, meta)) if !meta.is_dir() => {
                    Err(PinError::NotADirectory { path: a.to_owned() })
                }
                // Creating the directory helps only where it would be on
                // bpffs.
                Some((a, _)) if bpffs::is_bpffs(a).unwrap_or(false) => Err(PinError::NoDirectory {
                    dir: dir.to_owned(),
                }),
                _ => Err(not_bpffs()),
            }
        }
        Err(source) => Err(io_error(path)(source)),
    }
}

/// Pins map `id` at `path` on bpffs. It never replaces anything already
/// at `path`.
///
/// # Errors
///
/// [`PinError`]: a usage error ([`PinError::is_usage`]) for no such map, a
/// path that exists (a directory, a pin or a file), a directory that does
/// not exist, or a path off bpffs.
pub fn pin(id: u32, path: &Path) -> Result<PinnedMap, PinError> {
    privileges::require("xdpstat map pin", &[Capability::SysAdmin])?;
    check_new_pin(path)?;
    if path
        .file_name()
        .is_some_and(|n| n.as_encoded_bytes().contains(&b'.'))
    {
        return Err(PinError::BadName {
            path: path.to_owned(),
        });
    }
    let map = match OpenMap::open(&MapRef::Id(id)) {
        Ok(map) => map,
        Err(e) if gone_map(&e) => return Err(PinError::NoSuchMap { id }),
        Err(source) => return Err(PinError::Map { id, source }),
    };
    match sys::obj_pin(map.fd(), path) {
        Ok(()) => {}
        // Made by someone else since the check above.
        Err(e) if e.errno() == Some(libc::EEXIST) => {
            return Err(PinError::Exists {
                path: path.to_owned(),
                pinned: pinned_at(path),
            })
        }
        Err(e) => return Err(e.into()),
    }
    Ok(PinnedMap {
        id,
        name: map.info.name.clone(),
        path: path.to_owned(),
    })
}

/// Removes the pin of a map at `path`. It refuses anything that is not a
/// pinned map: a missing path, a directory, a pinned program or link, or a
/// path off bpffs.
///
/// The map itself lives on while a program or a process still holds it.
///
/// # Errors
///
/// [`PinError`]: a usage error ([`PinError::is_usage`]) for anything that
/// is not a pinned map.
pub fn unpin(path: &Path) -> Result<PinnedMap, PinError> {
    privileges::require("xdpstat map unpin", &[Capability::Bpf])?;
    let not_pinned = |what| PinError::NotPinned {
        path: path.to_owned(),
        what,
    };
    let meta = match path.symlink_metadata() {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(not_pinned("no such file; nothing is pinned there"))
        }
        Err(source) => {
            return Err(PinError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    // statfs of the path itself: a file reports the filesystem it is on,
    // and bpffs's own mount point reports bpffs.
    let on_bpffs = bpffs::is_bpffs(path).map_err(|source| PinError::Io {
        path: path.to_owned(),
        source,
    })?;
    if !on_bpffs {
        return Err(PinError::NotBpffs {
            path: path.to_owned(),
        });
    }
    if meta.is_dir() {
        return Err(not_pinned("a directory, not a pin"));
    }
    let fd = match sys::obj_get(path) {
        Ok(fd) => fd,
        // bpffs says EACCES for a file that holds no BPF object, and
        // ENOENT for its own iterator files (`progs.debug`).
        Err(e) if matches!(e.errno(), Some(libc::EACCES | libc::EINVAL | libc::ENOENT)) => {
            return Err(not_pinned("not a pinned BPF object"))
        }
        Err(e) => return Err(e.into()),
    };
    let fdinfo = stats::fdinfo(fd.as_fd()).map_err(|source| PinError::Io {
        path: path.to_owned(),
        source,
    })?;
    if fdinfo.kind != ObjectKind::Map {
        return Err(PinError::NotAMap {
            path: path.to_owned(),
            kind: fdinfo.kind,
        });
    }
    let name = OpenMap::open(&MapRef::Pinned(path.to_owned()))
        .map(|map| map.info.name)
        .unwrap_or_default();
    fs::remove_file(path).map_err(|source| PinError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(PinnedMap {
        id: fdinfo.id,
        name,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prog(id: u32) -> ProgRef {
        ProgRef {
            id,
            name: format!("p{id}"),
        }
    }

    #[test]
    fn inverting_map_ids_gives_each_maps_programs() {
        let (a, b, c) = (prog(10), prog(11), prog(12));
        let progs = [(&a, &[1u32, 2][..]), (&b, &[2][..]), (&c, &[][..])];
        let users = users(progs);
        let ids = |m: u32| {
            users
                .get(&m)
                .map(|v| v.iter().map(|p| p.id).collect::<Vec<_>>())
        };
        assert_eq!(ids(1), Some(vec![10]));
        assert_eq!(ids(2), Some(vec![10, 11]));
        assert_eq!(ids(3), None);
    }

    #[test]
    fn a_program_naming_a_map_twice_counts_once() {
        let a = prog(7);
        let users = users([(&a, &[4u32, 4][..])]);
        assert_eq!(users[&4].len(), 1);
    }

    #[test]
    fn programs_serialize_as_ids() {
        assert_eq!(
            serde_json::to_string(&vec![prog(5), prog(9)]).unwrap(),
            "[5,9]"
        );
    }

    #[test]
    fn map_type_names_follow_bpftool() {
        assert_eq!(MapType(2).to_string(), "array");
        assert_eq!(MapType(6).to_string(), "percpu_array");
        assert_eq!(MapType(27).to_string(), "ringbuf");
        assert_eq!(MapType(33).to_string(), "arena");
        assert_eq!(MapType(200).to_string(), "type 200");
        assert_eq!(serde_json::to_string(&MapType(200)).unwrap(), "200");
    }

    #[test]
    fn a_bare_name_lives_in_the_current_directory() {
        assert_eq!(parent_of(Path::new("x")), Path::new("."));
        assert_eq!(
            parent_of(Path::new("/sys/fs/bpf/x")),
            Path::new("/sys/fs/bpf")
        );
    }

    #[test]
    fn path_errors_say_what_is_there_and_what_to_do() {
        let dir = PinError::IsDirectory {
            path: "/sys/fs/bpf".into(),
        };
        assert_eq!(
            dir.to_string(),
            "/sys/fs/bpf is a directory; give a path for the new pin inside it, e.g. /sys/fs/bpf/NAME"
        );
        let map = PinError::Exists {
            path: "/sys/fs/bpf/m".into(),
            pinned: Some((ObjectKind::Map, 12)),
        };
        assert!(map
            .to_string()
            .starts_with("/sys/fs/bpf/m already holds a pinned BPF map (id 12);"));
        assert!(map
            .to_string()
            .ends_with("`xdpstat map unpin /sys/fs/bpf/m`"));
        let link = PinError::Exists {
            path: "/sys/fs/bpf/l".into(),
            pinned: Some((ObjectKind::Link, 3)),
        };
        assert_eq!(
            link.to_string(),
            "/sys/fs/bpf/l already holds a pinned BPF link (id 3); xdpstat never replaces a pin: choose another path"
        );
        let file = PinError::Exists {
            path: "/sys/fs/bpf/progs.debug".into(),
            pinned: None,
        };
        assert!(file.to_string().contains("already exists"));
        for e in [dir, map, link, file] {
            assert!(e.is_usage(), "{e}");
        }
    }

    #[test]
    fn only_input_errors_are_usage_errors() {
        assert!(PinError::NoSuchMap { id: 1 }.is_usage());
        assert!(PinError::NotBpffs {
            path: "/tmp/x".into()
        }
        .is_usage());
        assert!(!PinError::Io {
            path: "/x".into(),
            source: io::Error::other("boom")
        }
        .is_usage());
    }
}
