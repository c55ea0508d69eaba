//! The one way xdpstat opens and reads a BPF map: by id or pin
//! ([`MapRef`]), into an [`OpenMap`] that holds the descriptor, what the
//! kernel says of the map, and for a per-CPU map the possible CPUs, whose
//! number sizes every lookup. Lookups are safe and length-checked here, so
//! no caller argues buffer sizes.

use std::{
    fmt, fs, io,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    path::{Path, PathBuf},
};

use aya_obj::generated::bpf_map_type as t;
use serde::{Serialize, Serializer};
use thiserror::Error;

pub use super::sys::maps::{Batch, MapInfo};
use super::{
    bpffs,
    sys::{
        self,
        maps::{self as sysmaps, FdKind},
        stats, SyscallError,
    },
};

/// A map type (`BPF_MAP_TYPE_*`). It prints and serializes as bpftool's
/// name, or as the bare number for a type newer than xdpstat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MapType(pub u32);

/// bpftool's names of the map types, by number.
const MAP_TYPE_NAMES: &[&str] = &[
    "unspec",
    "hash",
    "array",
    "prog_array",
    "perf_event_array",
    "percpu_hash",
    "percpu_array",
    "stack_trace",
    "cgroup_array",
    "lru_hash",
    "lru_percpu_hash",
    "lpm_trie",
    "array_of_maps",
    "hash_of_maps",
    "devmap",
    "sockmap",
    "cpumap",
    "xskmap",
    "sockhash",
    "cgroup_storage",
    "reuseport_sockarray",
    "percpu_cgroup_storage",
    "queue",
    "stack",
    "sk_storage",
    "devmap_hash",
    "struct_ops",
    "ringbuf",
    "inode_storage",
    "task_storage",
    "bloom_filter",
    "user_ringbuf",
    "cgrp_storage",
    "arena",
];

impl MapType {
    /// `BPF_MAP_TYPE_ARRAY`.
    pub const ARRAY: Self = Self(t::BPF_MAP_TYPE_ARRAY as u32);
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    pub const PERCPU_ARRAY: Self = Self(t::BPF_MAP_TYPE_PERCPU_ARRAY as u32);

    /// bpftool's name for the type, if xdpstat knows it.
    pub fn name(self) -> Option<&'static str> {
        MAP_TYPE_NAMES.get(self.0 as usize).copied()
    }

    /// Whether a lookup gives one value per possible CPU.
    pub const fn is_per_cpu(self) -> bool {
        matches!(
            self.0,
            x if x == t::BPF_MAP_TYPE_PERCPU_HASH as u32
                || x == t::BPF_MAP_TYPE_PERCPU_ARRAY as u32
                || x == t::BPF_MAP_TYPE_LRU_PERCPU_HASH as u32
                || x == t::BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE as u32
        )
    }

    /// Whether a lookup of an empty slot says `ENOENT`: program arrays and
    /// maps of maps. bpftool leaves those slots out.
    pub const fn skips_empty_slots(self) -> bool {
        matches!(
            self.0,
            x if x == t::BPF_MAP_TYPE_PROG_ARRAY as u32
                || x == t::BPF_MAP_TYPE_ARRAY_OF_MAPS as u32
                || x == t::BPF_MAP_TYPE_HASH_OF_MAPS as u32
        )
    }
}

impl fmt::Display for MapType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "type {}", self.0),
        }
    }
}

impl Serialize for MapType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(name) => s.serialize_str(name),
            None => s.serialize_u32(self.0),
        }
    }
}

/// Parses a kernel CPU list such as `0-3,5,7-8`.
///
/// # Errors
///
/// `InvalidData` for text that is not a CPU list.
pub fn parse_cpu_list(text: &str) -> io::Result<Vec<u32>> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a CPU list: {text:?}"),
        )
    };
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo, hi),
            None => (part, part),
        };
        let lo: u32 = lo.parse().map_err(|_| bad())?;
        let hi: u32 = hi.parse().map_err(|_| bad())?;
        if hi < lo {
            return Err(bad());
        }
        cpus.extend(lo..=hi);
    }
    Ok(cpus)
}

/// The CPUs a per-CPU map has a slot for (`possible`), in the order the
/// kernel lays the slots out, and which of them are online.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cpus {
    /// Possible CPUs: the kernel copies one value per possible CPU, offline
    /// or not, so the value buffer is sized by these and not by the online
    /// ones.
    pub possible: Vec<u32>,
    /// Online CPUs.
    pub online: Vec<u32>,
}

/// sysfs's list of possible CPUs.
pub const POSSIBLE_CPUS: &str = "/sys/devices/system/cpu/possible";
/// sysfs's list of online CPUs.
pub const ONLINE_CPUS: &str = "/sys/devices/system/cpu/online";

impl Cpus {
    /// Reads both lists from sysfs.
    ///
    /// # Errors
    ///
    /// [`MapError::Cpus`] if sysfs cannot be read.
    pub fn read() -> Result<Self, MapError> {
        let read = |path: &'static str| {
            fs::read_to_string(path)
                .and_then(|text| parse_cpu_list(&text))
                .map_err(|source| MapError::Cpus { path, source })
        };
        Ok(Self {
            possible: read(POSSIBLE_CPUS)?,
            online: read(ONLINE_CPUS)?,
        })
    }
}

/// Which map: an id, or a path on bpffs where it is pinned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapRef {
    /// `BPF_MAP_GET_FD_BY_ID`.
    Id(u32),
    /// `BPF_OBJ_GET`.
    Pinned(PathBuf),
}

impl MapRef {
    /// Reads a command-line argument: all digits is an id, anything else a
    /// path (write `./42` for a file named 42).
    ///
    /// # Errors
    ///
    /// [`MapError::BadId`] for digits beyond `u32`, or an empty argument.
    pub fn parse(arg: &str) -> Result<Self, MapError> {
        if arg.is_empty() {
            return Err(MapError::BadId {
                arg: arg.to_owned(),
            });
        }
        if arg.bytes().all(|b| b.is_ascii_digit()) {
            return arg.parse().map(Self::Id).map_err(|_| MapError::BadId {
                arg: arg.to_owned(),
            });
        }
        Ok(Self::Pinned(PathBuf::from(arg)))
    }
}

/// Why a map could not be opened or read.
#[derive(Debug, Error)]
pub enum MapError {
    /// The argument is all digits but no map id.
    #[error("{arg:?} is not a map id (ids are 1 to 4294967295) or a pinned path")]
    BadId {
        /// The argument.
        arg: String,
    },
    /// No map has this id.
    #[error("no map has id {id}")]
    NoSuchId {
        /// The id.
        id: u32,
    },
    /// Nothing exists at the path.
    #[error("nothing is pinned at {}", path.display())]
    NotPinned {
        /// The path.
        path: PathBuf,
    },
    /// The path is not on a BPF filesystem.
    #[error("{} is not on bpffs: maps are pinned on a BPF filesystem, such as /sys/fs/bpf", path.display())]
    NotBpffs {
        /// The path.
        path: PathBuf,
    },
    /// The path is a directory on bpffs.
    #[error("{} is a directory, not a pinned map", path.display())]
    IsDirectory {
        /// The path.
        path: PathBuf,
    },
    /// Something other than a map is pinned there.
    #[error(
        "{}; `xdpstat map list` shows the maps, and `xdpstat map pin ID PATH` pins one",
        not_a_map(path, *kind, *id)
    )]
    NotAMap {
        /// The path.
        path: PathBuf,
        /// What is pinned there: [`FdKind::Other`] for a file on bpffs
        /// that holds no BPF object that can be opened.
        kind: FdKind,
        /// The object's id, when it could be read.
        id: Option<u32>,
    },
    /// The list of CPUs could not be read.
    #[error("cannot read {path}: {source}")]
    Cpus {
        /// The sysfs file.
        path: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A `bpf(2)` command failed.
    #[error("{what}")]
    Syscall {
        /// What xdpstat was doing.
        what: String,
        /// The failure.
        #[source]
        source: SyscallError,
    },
    /// Another I/O failure on the path.
    #[error("{what}")]
    Io {
        /// What xdpstat was doing.
        what: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
}

impl MapError {
    /// Whether the error is in the input (exit code 2) rather than a
    /// failed operation: a bad id or path.
    pub const fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::BadId { .. }
                | Self::NoSuchId { .. }
                | Self::NotPinned { .. }
                | Self::NotBpffs { .. }
                | Self::IsDirectory { .. }
                | Self::NotAMap { .. }
        )
    }
}

/// What is at `path` instead of a map, e.g. "/sys/fs/bpf/p is a pinned BPF
/// program (id 42), not a map".
fn not_a_map(path: &Path, kind: FdKind, id: Option<u32>) -> String {
    let path = path.display();
    let what = match kind {
        FdKind::Map => "map",
        FdKind::Prog => "program",
        FdKind::Link => "link",
        FdKind::Btf => "BTF object",
        FdKind::Other => return format!("{path} holds no BPF object, so it is not a map's pin"),
    };
    match id {
        Some(id) => format!("{path} is a pinned BPF {what} (id {id}), not a map"),
        None => format!("{path} is a pinned BPF {what}, not a map"),
    }
}

fn syscall(what: impl Into<String>) -> impl FnOnce(SyscallError) -> MapError {
    let what = what.into();
    move |source| MapError::Syscall { what, source }
}

/// Opens a map by id or pin, refusing a pin of anything but a map.
///
/// # Errors
///
/// [`MapError`]: no such id or pin, not bpffs, a directory, not a map.
pub fn open_fd(map: &MapRef) -> Result<OwnedFd, MapError> {
    match map {
        MapRef::Id(id) => sysmaps::map_fd_by_id(*id).map_err(|e| {
            if e.errno() == Some(libc::ENOENT) {
                MapError::NoSuchId { id: *id }
            } else {
                syscall(format!("opening map {id}"))(e)
            }
        }),
        MapRef::Pinned(path) => open_pinned(path),
    }
}

fn open_pinned(path: &Path) -> Result<OwnedFd, MapError> {
    let io_err = |source: io::Error| MapError::Io {
        what: format!("reading {}", path.display()),
        source,
    };
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(MapError::NotPinned {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(io_err(e)),
    };
    if !bpffs::is_bpffs(path).map_err(io_err)? {
        return Err(MapError::NotBpffs {
            path: path.to_owned(),
        });
    }
    if meta.is_dir() {
        return Err(MapError::IsDirectory {
            path: path.to_owned(),
        });
    }
    let no_object = || MapError::NotAMap {
        path: path.to_owned(),
        kind: FdKind::Other,
        id: None,
    };
    let fd = sys::obj_get(path).map_err(|e| match e.errno() {
        // Unpinned since the check above, or a file that holds nothing,
        // such as bpffs's own `progs.debug` when its iterator is gone.
        Some(libc::ENOENT) if path.symlink_metadata().is_err() => MapError::NotPinned {
            path: path.to_owned(),
        },
        Some(libc::ENOENT) => no_object(),
        // BPF_OBJ_GET of a bpffs inode that is no pin.
        Some(libc::EACCES) => no_object(),
        _ => syscall(format!("opening {}", path.display()))(e),
    })?;
    match sysmaps::fd_kind(fd.as_fd()).map_err(io_err)? {
        FdKind::Map => Ok(fd),
        kind => Err(MapError::NotAMap {
            path: path.to_owned(),
            kind,
            // One read of /proc/self/fdinfo; the message does without it.
            id: stats::fdinfo(fd.as_fd())
                .ok()
                .map(|info| info.id)
                .filter(|&id| id != 0),
        }),
    }
}

/// An open map: its descriptor, what the kernel says of it, and the CPUs a
/// per-CPU map has slots for.
#[derive(Debug)]
pub struct OpenMap {
    fd: OwnedFd,
    /// What the kernel says of the map.
    pub info: MapInfo,
    /// The CPUs, read for a per-CPU map (empty lists otherwise).
    pub cpus: Cpus,
}

impl OpenMap {
    /// Opens a map by id or pin.
    ///
    /// # Errors
    ///
    /// See [`open_fd`] and [`OpenMap::from_fd`].
    pub fn open(map: &MapRef) -> Result<Self, MapError> {
        Self::from_fd(open_fd(map)?)
    }

    /// Reads an open map's info, and the CPUs for a per-CPU map.
    ///
    /// # Errors
    ///
    /// A failed syscall, or an unreadable list of CPUs.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, MapError> {
        let info = sysmaps::map_info(fd.as_fd()).map_err(syscall("reading the map's info"))?;
        let cpus = if MapType(info.map_type).is_per_cpu() {
            Cpus::read()?
        } else {
            Cpus::default()
        };
        Ok(Self { fd, info, cpus })
    }

    /// The descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The map's type.
    pub fn map_type(&self) -> MapType {
        MapType(self.info.map_type)
    }

    /// Bytes from one CPU's value to the next in a lookup's buffer: the
    /// kernel pads per-CPU values to 8 bytes.
    pub fn stride(&self) -> usize {
        let size = self.info.value_size as usize;
        if self.map_type().is_per_cpu() {
            size.next_multiple_of(8)
        } else {
            size
        }
    }

    /// Bytes of one lookup's value: one padded value per possible CPU for
    /// a per-CPU map, else one value.
    pub fn value_len(&self) -> usize {
        if self.map_type().is_per_cpu() {
            self.stride() * self.cpus.possible.len()
        } else {
            self.info.value_size as usize
        }
    }

    fn check_key(&self, key: &[u8], call: &'static str) -> Result<(), SyscallError> {
        if key.len() == self.info.key_size as usize {
            return Ok(());
        }
        Err(SyscallError {
            call,
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {}-byte key for a map with {}-byte keys",
                    key.len(),
                    self.info.key_size
                ),
            ),
        })
    }

    /// Reads the value of `key` into `value`, resized to
    /// [`OpenMap::value_len`] (`BPF_MAP_LOOKUP_ELEM`).
    ///
    /// # Errors
    ///
    /// `EINVAL` for a key of the wrong size; `ENOENT` for a missing key.
    pub fn lookup_into(&self, key: &[u8], value: &mut Vec<u8>) -> Result<(), SyscallError> {
        self.check_key(key, "BPF_MAP_LOOKUP_ELEM")?;
        value.resize(self.value_len(), 0);
        // SAFETY: the key is the map's key size, checked above, and `value`
        // holds what the kernel writes for this map, as value_len computes.
        unsafe { sys::map_lookup(self.fd(), key, value) }
    }

    /// The value of `key` (`BPF_MAP_LOOKUP_ELEM`).
    ///
    /// # Errors
    ///
    /// As [`OpenMap::lookup_into`].
    pub fn lookup(&self, key: &[u8]) -> Result<Vec<u8>, SyscallError> {
        let mut value = Vec::new();
        self.lookup_into(key, &mut value)?;
        Ok(value)
    }

    /// The key after `prev`, or the first with none; `None` after the last
    /// (`BPF_MAP_GET_NEXT_KEY`).
    ///
    /// # Errors
    ///
    /// A `prev` of the wrong size; any error but the `ENOENT` that ends the
    /// walk.
    pub fn next_key(&self, prev: Option<&[u8]>) -> Result<Option<Vec<u8>>, SyscallError> {
        if let Some(prev) = prev {
            self.check_key(prev, "BPF_MAP_GET_NEXT_KEY")?;
        }
        let mut next = vec![0u8; self.info.key_size as usize];
        // SAFETY: both keys are the map's key size.
        let more = unsafe { sysmaps::map_next_key(self.fd(), prev, &mut next) }?;
        Ok(more.then_some(next))
    }

    /// Reads up to `count` entries from where `token` left off (the start
    /// without it) (`BPF_MAP_LOOKUP_BATCH`). Returns the keys, the values
    /// ([`OpenMap::value_len`] bytes each), the token to go on from, and
    /// whether more may follow.
    ///
    /// # Errors
    ///
    /// `ENOTSUPP` (524) for map types without batch operations; `ENOSPC`
    /// when not even one hash bucket fits in `count`; a token of the wrong
    /// size.
    pub fn lookup_batch(
        &self,
        token: Option<&[u8]>,
        count: u32,
    ) -> Result<BatchRead, SyscallError> {
        let key_size = self.info.key_size as usize;
        let token_len = key_size.max(8);
        if token.is_some_and(|t| t.len() != token_len) {
            return Err(SyscallError {
                call: "BPF_MAP_LOOKUP_BATCH",
                source: io::Error::from(io::ErrorKind::InvalidInput),
            });
        }
        let value_len = self.value_len();
        let mut out_token = vec![0u8; token_len];
        let mut keys = vec![0u8; key_size * count as usize];
        let mut values = vec![0u8; value_len * count as usize];
        // SAFETY: tokens are the key size and at least 8 bytes; the key and
        // value buffers hold `count` entries each, values as value_len says.
        let batch = unsafe {
            sysmaps::map_lookup_batch(
                self.fd(),
                token,
                &mut out_token,
                &mut keys,
                &mut values,
                count,
            )
        }?;
        let (n, more) = match batch {
            Batch::More(n) => (n, true),
            Batch::Done(n) => (n, false),
        };
        let n = (n as usize).min(count as usize);
        keys.truncate(n * key_size);
        values.truncate(n * value_len);
        Ok(BatchRead {
            keys,
            values,
            token: out_token,
            more,
        })
    }
}

/// What one batch lookup read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRead {
    /// The keys, back to back.
    pub keys: Vec<u8>,
    /// Their values, [`OpenMap::value_len`] bytes each.
    pub values: Vec<u8>,
    /// Where the next batch goes on from.
    pub token: Vec<u8>,
    /// Whether more entries may follow.
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_like_sysfs_writes_them() {
        assert_eq!(parse_cpu_list("0-3\n").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_cpu_list("0,2-3,7").unwrap(), vec![0, 2, 3, 7]);
        assert_eq!(parse_cpu_list("0").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list("\n").unwrap(), Vec::<u32>::new());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
    }

    #[test]
    fn per_cpu_types_are_the_four_the_kernel_has() {
        let per_cpu: Vec<&str> = (0..MAP_TYPE_NAMES.len() as u32)
            .map(MapType)
            .filter(|t| t.is_per_cpu())
            .filter_map(MapType::name)
            .collect();
        assert_eq!(
            per_cpu,
            [
                "percpu_hash",
                "percpu_array",
                "lru_percpu_hash",
                "percpu_cgroup_storage"
            ]
        );
        assert_eq!(MapType::ARRAY.name(), Some("array"));
        assert_eq!(MapType::PERCPU_ARRAY.name(), Some("percpu_array"));
    }

    #[test]
    fn arguments() {
        assert_eq!(MapRef::parse("42").unwrap(), MapRef::Id(42));
        assert_eq!(
            MapRef::parse("/sys/fs/bpf/x").unwrap(),
            MapRef::Pinned(PathBuf::from("/sys/fs/bpf/x"))
        );
        assert_eq!(
            MapRef::parse("./42").unwrap(),
            MapRef::Pinned(PathBuf::from("./42"))
        );
        let err = MapRef::parse("99999999999").unwrap_err();
        assert!(err.is_usage());
        assert!(err.to_string().contains("not a map id"), "{err}");
        assert!(MapRef::parse("").unwrap_err().is_usage());
    }

    #[test]
    fn a_pin_of_something_else_says_what_it_is() {
        let prog = MapError::NotAMap {
            path: "/sys/fs/bpf/p".into(),
            kind: FdKind::Prog,
            id: Some(42),
        };
        assert_eq!(
            prog.to_string(),
            "/sys/fs/bpf/p is a pinned BPF program (id 42), not a map; `xdpstat map list` shows the maps, and `xdpstat map pin ID PATH` pins one"
        );
        let link = MapError::NotAMap {
            path: "/sys/fs/bpf/l".into(),
            kind: FdKind::Link,
            id: None,
        };
        assert!(link
            .to_string()
            .starts_with("/sys/fs/bpf/l is a pinned BPF link, not a map;"));
        let nothing = MapError::NotAMap {
            path: "/sys/fs/bpf/progs.debug".into(),
            kind: FdKind::Other,
            id: None,
        };
        assert!(nothing.to_string().contains("holds no BPF object"));
        assert!(prog.is_usage() && link.is_usage() && nothing.is_usage());
    }
}
