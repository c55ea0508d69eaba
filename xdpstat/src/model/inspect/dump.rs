//! Reading every key and value of any map, by id or pin, into typed
//! records: what `bpftool map dump` reads, with no formatting. The CLI
//! renders them as bpftool's text or JSON, entry by entry as
//! [`MapReader::entries`] reads them; [`dump`] collects a [`MapDump`].
//!
//! Entries are read with `BPF_MAP_LOOKUP_BATCH` where the map type has it,
//! else by walking the keys with `BPF_MAP_GET_NEXT_KEY` and reading each
//! value with `BPF_MAP_LOOKUP_ELEM`, as bpftool does. Both give the order
//! bpftool prints (the kernel's batch walks buckets and keys just as
//! `GET_NEXT_KEY` does), and a batch costs one call for many entries. A
//! per-CPU map gives one value per possible CPU.
//!
//! Some maps have no values a lookup can read back: ring buffers, queues,
//! stacks, bloom filters and arenas have no keys to walk; perf event,
//! cgroup and XSK arrays hold kernel objects that user space cannot read;
//! socket, inode, task and cgroup storage is keyed by file descriptors.
//! For those, opening fails up front with [`DumpError::NotDumpable`],
//! where bpftool prints an error line per slot or nothing. An empty slot of
//! a program array or map-of-maps is skipped, as bpftool skips it; any
//! other lookup that fails is kept as [`Values::Unreadable`] with its errno.

use std::{
    collections::VecDeque,
    os::fd::{AsFd, OwnedFd},
    path::Path,
};

use thiserror::Error;

pub use crate::kernel::map::MapRef;
use crate::kernel::{
    map::{open_fd, MapError, MapInfo, MapType, OpenMap},
    sys::{maps as sysmaps, SyscallError},
};
use xdpstat_analysis::btf::{Btf, BtfError, BtfValue, VMLINUX_BTF};

/// Why a map could not be dumped.
#[derive(Debug, Error)]
pub enum DumpError {
    /// The map could not be opened: a bad id or path, or not a map.
    #[error(transparent)]
    Map(#[from] MapError),
    /// The map's type has no values a lookup can read.
    #[error("map {id} is a {type_name} map, which cannot be dumped: {why}")]
    NotDumpable {
        /// The map's id.
        id: u32,
        /// Its type.
        type_name: String,
        /// Why not.
        why: &'static str,
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
    /// Keys kept changing under the walk (a hash map under heavy churn
    /// restarts `GET_NEXT_KEY` from the top when its key is deleted).
    #[error("map {id} changed too fast to dump: stopped after {steps} keys")]
    Unstable {
        /// The map's id.
        id: u32,
        /// Keys read before giving up.
        steps: u64,
    },
}

impl DumpError {
    /// Whether the error is in the input (exit code 2) rather than a
    /// failed operation: a bad id or path, or a map that cannot be dumped.
    pub const fn is_usage(&self) -> bool {
        match self {
            Self::Map(e) => e.is_usage(),
            Self::NotDumpable { .. } => true,
            Self::Syscall { .. } | Self::Unstable { .. } => false,
        }
    }
}

fn syscall(what: impl Into<String>) -> impl FnOnce(SyscallError) -> DumpError {
    let what = what.into();
    move |source| DumpError::Syscall { what, source }
}

/// A map type's name as libbpf spells it, e.g. `percpu_array`.
pub fn type_name(map_type: u32) -> Option<&'static str> {
    MapType(map_type).name()
}

/// Why a map of this type cannot be dumped, if it cannot.
fn not_dumpable(map_type: u32) -> Option<&'static str> {
    use aya_obj::generated::bpf_map_type::{self as t, *};
    let Ok(map_type) = t::try_from(map_type) else {
        return None;
    };
    Some(match map_type {
        BPF_MAP_TYPE_PERF_EVENT_ARRAY => {
            "its slots hold perf event file descriptors, which user space cannot read back"
        }
        BPF_MAP_TYPE_CGROUP_ARRAY => {
            "its slots hold cgroup file descriptors, which user space cannot read back"
        }
        BPF_MAP_TYPE_XSKMAP => "its slots hold AF_XDP sockets, which user space cannot read back",
        BPF_MAP_TYPE_QUEUE | BPF_MAP_TYPE_STACK => {
            "it has no keys; its elements can only be popped"
        }
        BPF_MAP_TYPE_RINGBUF | BPF_MAP_TYPE_USER_RINGBUF => {
            "a ring buffer has no keys; read it with a consumer"
        }
        BPF_MAP_TYPE_BLOOM_FILTER => {
            "a bloom filter has no keys; it can only be queried for a value"
        }
        BPF_MAP_TYPE_SK_STORAGE
        | BPF_MAP_TYPE_INODE_STORAGE
        | BPF_MAP_TYPE_TASK_STORAGE
        | BPF_MAP_TYPE_CGRP_STORAGE => {
            "its keys are file descriptors of the objects it is attached to"
        }
        BPF_MAP_TYPE_ARENA => "an arena is memory to mmap, not keys and values",
        _ => return None,
    })
}

/// One key and what a lookup returned for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key's bytes.
    pub key: Vec<u8>,
    /// The value or values.
    pub values: Values,
}

/// What a lookup of one key gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Values {
    /// The value of a map with one value per key.
    Single(Vec<u8>),
    /// One value per possible CPU, with the CPU's number, in the kernel's
    /// order; each `value_size` bytes (the kernel's 8-byte padding between
    /// them is dropped).
    PerCpu(Vec<(u32, Vec<u8>)>),
    /// The lookup failed with this errno (bpftool prints `<no entry>` for
    /// `ENOENT`, the error's text otherwise).
    Unreadable(i32),
}

/// A map's BTF, checked against its key and value sizes.
#[derive(Clone, Debug)]
pub struct MapBtf {
    /// The BTF object (the map's, or the kernel's for struct_ops maps).
    pub btf: Btf,
    /// The key's type, when the map names one.
    pub key_type_id: Option<u32>,
    /// The value's type.
    pub value_type_id: u32,
}

impl MapBtf {
    /// Checks that the types exist, match the map's sizes and can be
    /// printed (by formatting zeros, since what can fail does not depend on
    /// the bytes).
    ///
    /// # Errors
    ///
    /// The first problem found.
    pub fn new(btf: Btf, info: &MapInfo) -> Result<Self, BtfError> {
        let key_type_id = (info.btf_key_type_id != 0).then_some(info.btf_key_type_id);
        let value_type_id = if info.btf_vmlinux_value_type_id != 0 {
            info.btf_vmlinux_value_type_id
        } else {
            info.btf_value_type_id
        };
        if let Some(id) = key_type_id {
            btf.check_size(id, info.key_size, "key")?;
            btf.format(id, &vec![0; info.key_size as usize])?;
        }
        btf.check_size(value_type_id, info.value_size, "value")?;
        btf.format(value_type_id, &vec![0; info.value_size as usize])?;
        Ok(Self {
            btf,
            key_type_id,
            value_type_id,
        })
    }

    /// The key by its type, when the map names one.
    ///
    /// # Errors
    ///
    /// Only on bytes shorter than the type.
    pub fn format_key(&self, key: &[u8]) -> Option<Result<BtfValue, BtfError>> {
        self.key_type_id.map(|id| self.btf.format(id, key))
    }

    /// A value by its type.
    ///
    /// # Errors
    ///
    /// Only on bytes shorter than the type.
    pub fn format_value(&self, value: &[u8]) -> Result<BtfValue, BtfError> {
        self.btf.format(self.value_type_id, value)
    }
}

/// Everything in a map, as read.
#[derive(Debug)]
pub struct MapDump {
    /// What the kernel says of the map.
    pub info: MapInfo,
    /// Whether values come one per CPU.
    pub per_cpu: bool,
    /// Every key, in `GET_NEXT_KEY` order.
    pub entries: Vec<Entry>,
    /// The map's BTF, if it has usable BTF.
    pub btf: Option<MapBtf>,
    /// Why the map's BTF is not used, when it has some.
    pub btf_error: Option<String>,
}

impl MapDump {
    /// The map's type name, e.g. `percpu_array`, or `type 42`.
    pub fn type_name(&self) -> String {
        describe_type(self.info.map_type)
    }

    /// Entries whose lookup succeeded (bpftool's "Found N elements").
    pub fn readable(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| !matches!(e.values, Values::Unreadable(_)))
            .count()
    }
}

fn describe_type(map_type: u32) -> String {
    MapType(map_type).to_string()
}

/// Dumps a map by id or pin into memory. (The CLI streams instead, with
/// [`MapReader::entries`].)
///
/// # Errors
///
/// See [`MapReader::open`] and [`Entries`].
pub fn dump(map: &MapRef) -> Result<MapDump, DumpError> {
    MapReader::open(map)?.read_all()
}

/// An open map, with what is needed to read it: its info, the possible
/// CPUs for a per-CPU map, and its BTF.
#[derive(Debug)]
pub struct MapReader {
    map: OpenMap,
    /// What the kernel says of the map.
    pub info: MapInfo,
    /// Whether values come one per CPU.
    pub per_cpu: bool,
    /// For a per-CPU map, the possible CPUs, in the kernel's order.
    pub cpus: Vec<u32>,
    /// The map's BTF, if it has usable BTF.
    pub btf: Option<MapBtf>,
    /// Why the map's BTF is not used, when it has some.
    pub btf_error: Option<String>,
}

impl MapReader {
    /// Opens a map by id or pin, and reads its info and BTF.
    ///
    /// # Errors
    ///
    /// See [`open_fd`] and [`MapReader::from_fd`].
    pub fn open(map: &MapRef) -> Result<Self, DumpError> {
        Self::from_fd(open_fd(map)?)
    }

    /// Reads an open map's info and BTF.
    ///
    /// # Errors
    ///
    /// [`DumpError::NotDumpable`] for the types the module doc lists; a
    /// failed syscall; an unreadable list of CPUs.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, DumpError> {
        let info = sysmaps::map_info(fd.as_fd()).map_err(syscall("reading the map's info"))?;
        if let Some(why) = not_dumpable(info.map_type) {
            return Err(DumpError::NotDumpable {
                id: info.id,
                type_name: describe_type(info.map_type),
                why,
            });
        }
        let map = OpenMap::from_fd(fd)?;
        let per_cpu = map.map_type().is_per_cpu();
        let cpus = map.cpus.possible.clone();
        let (btf, btf_error) = match load_btf(&info) {
            Ok(btf) => (btf, None),
            Err(e) => (None, Some(e)),
        };
        Ok(Self {
            map,
            info,
            per_cpu,
            cpus,
            btf,
            btf_error,
        })
    }

    /// Walks the map, one entry at a time.
    pub fn entries(&self) -> Entries<'_> {
        let value_size = self.info.value_size as usize;
        // Per-CPU values come padded to 8 bytes each, for every possible
        // CPU.
        let stride = if self.per_cpu {
            value_size.next_multiple_of(8)
        } else {
            value_size
        };
        Entries {
            map: self,
            stride,
            walk: Walk::Batch {
                token: None,
                count: first_batch(&self.info, stride * self.cpus.len().max(1)),
            },
            pending: VecDeque::new(),
            key: None,
            value: Vec::new(),
            steps: 0,
            done: false,
        }
    }

    /// Reads every entry into a [`MapDump`].
    ///
    /// # Errors
    ///
    /// The first error of the walk.
    pub fn read_all(self) -> Result<MapDump, DumpError> {
        let entries = self.entries().collect::<Result<Vec<_>, _>>()?;
        Ok(MapDump {
            info: self.info,
            per_cpu: self.per_cpu,
            entries,
            btf: self.btf,
            btf_error: self.btf_error,
        })
    }
}

/// The number of keys after which a walk is taken to be going round in
/// circles: a map cannot hold more than `max_entries` keys at once, but a
/// hash map under churn can hand some out twice.
fn walk_limit(info: &MapInfo) -> u64 {
    u64::from(info.max_entries) * 4 + 1024
}

/// Entries per `BPF_MAP_LOOKUP_BATCH` call, at most at first.
const BATCH: u32 = 1024;
/// Bytes of keys and values a batch may take, at first and at most: maps
/// with large values read fewer entries a call.
const BATCH_BYTES: usize = 4 << 20;
const BATCH_BYTES_MAX: usize = 64 << 20;

/// Entries for the first batch: as many as fit `BATCH_BYTES`, at least 1.
fn first_batch(info: &MapInfo, value_len: usize) -> u32 {
    let entry = (info.key_size as usize + value_len).max(1);
    let fit = u32::try_from(BATCH_BYTES / entry).unwrap_or(u32::MAX);
    BATCH.min(info.max_entries).min(fit).max(1)
}

/// How the entries are read.
#[derive(Debug)]
enum Walk {
    /// `BPF_MAP_LOOKUP_BATCH`, many entries a call, where the map type has
    /// it; `token` is where the last call left off.
    Batch { token: Option<Vec<u8>>, count: u32 },
    /// The last batch came back.
    BatchDone,
    /// `BPF_MAP_GET_NEXT_KEY` and `BPF_MAP_LOOKUP_ELEM`, two calls an
    /// entry, as bpftool does.
    Keys,
}

/// The entries of a map, in `GET_NEXT_KEY` order, read as the walk goes:
/// in batches where the map type allows it (the kernel walks them in the
/// same order), else key by key. A failed lookup in a key-by-key walk is
/// an entry with [`Values::Unreadable`] (a batch leaves out keys deleted
/// meanwhile).
///
/// An item is an error when a call fails (the walk then ends), or
/// [`DumpError::Unstable`] when the keys change faster than they can be
/// walked.
#[derive(Debug)]
pub struct Entries<'a> {
    map: &'a MapReader,
    stride: usize,
    walk: Walk,
    pending: VecDeque<Entry>,
    /// The last key read: the key-by-key walk's position.
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    steps: u64,
    done: bool,
}

impl Entries<'_> {
    /// Splits one lookup's value buffer into the entry's values.
    fn values(&self, raw: &[u8]) -> Values {
        let map = self.map;
        if !map.per_cpu {
            return Values::Single(raw.to_vec());
        }
        let size = map.info.value_size as usize;
        Values::PerCpu(
            map.cpus
                .iter()
                .enumerate()
                .map(|(slot, &cpu)| {
                    let at = slot * self.stride;
                    (cpu, raw[at..at + size].to_vec())
                })
                .collect(),
        )
    }

    fn count(&mut self, n: u64) -> Result<(), DumpError> {
        self.steps += n;
        if self.steps > walk_limit(&self.map.info) {
            return Err(DumpError::Unstable {
                id: self.map.info.id,
                steps: self.steps,
            });
        }
        Ok(())
    }

    /// Reads the next batch into `pending`; falls back to the key-by-key
    /// walk when the map type has no batch lookup.
    fn batch(&mut self) -> Result<(), DumpError> {
        let Walk::Batch { token, count } = &mut self.walk else {
            return Ok(());
        };
        let map = self.map;
        let key_size = map.info.key_size as usize;
        let value_len = map.map.value_len();
        let result = map.map.lookup_batch(token.as_deref(), *count);
        let read = match result {
            Ok(read) => read,
            // A hash bucket larger than the batch: try a larger batch, or
            // go on key by key from the last key read.
            Err(e) if e.errno() == Some(libc::ENOSPC) => {
                let bytes = (key_size + value_len).saturating_mul(*count as usize);
                if bytes.saturating_mul(2) <= BATCH_BYTES_MAX {
                    *count *= 2;
                } else {
                    self.walk = Walk::Keys;
                }
                return Ok(());
            }
            // No batch lookup for this map type: walk key by key.
            Err(e)
                if token.is_none()
                    && matches!(e.errno(), Some(libc::EINVAL | libc::EOPNOTSUPP | 524)) =>
            {
                self.walk = Walk::Keys;
                return Ok(());
            }
            Err(e) => {
                return Err(syscall(format!(
                    "reading the entries of map {}",
                    map.info.id
                ))(e))
            }
        };
        let n = read.keys.len() / key_size.max(1);
        *token = Some(read.token);
        if !read.more {
            self.walk = Walk::BatchDone;
        }
        let (keys, values) = (read.keys, read.values);
        self.count(n as u64)?;
        for i in 0..n {
            let entry = Entry {
                key: keys[i * key_size..(i + 1) * key_size].to_vec(),
                values: self.values(&values[i * value_len..(i + 1) * value_len]),
            };
            self.pending.push_back(entry);
        }
        if let Some(last) = self.pending.back() {
            // Where a key-by-key walk would go on from.
            self.key = Some(last.key.clone());
        }
        Ok(())
    }

    /// The next entry of the key-by-key walk.
    fn step(&mut self) -> Result<Option<Entry>, DumpError> {
        let map = self.map;
        loop {
            let Some(next) = map
                .map
                .next_key(self.key.as_deref())
                .map_err(syscall(format!("walking the keys of map {}", map.info.id)))?
            else {
                return Ok(None);
            };
            self.key = Some(next.clone());
            self.count(1)?;
            let values = match map.map.lookup_into(&next, &mut self.value) {
                Ok(()) => self.values(&self.value),
                Err(e) => match e.errno() {
                    Some(libc::ENOENT) if map.map.map_type().skips_empty_slots() => continue,
                    errno => Values::Unreadable(errno.unwrap_or(libc::EIO)),
                },
            };
            return Ok(Some(Entry { key: next, values }));
        }
    }

    fn advance(&mut self) -> Result<Option<Entry>, DumpError> {
        loop {
            if let Some(entry) = self.pending.pop_front() {
                return Ok(Some(entry));
            }
            match self.walk {
                Walk::Batch { .. } => self.batch()?,
                Walk::BatchDone => return Ok(None),
                Walk::Keys => return self.step(),
            }
        }
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<Entry, DumpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.advance().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// The map's BTF, if it names any: its own object by id, or the kernel's
/// for a struct_ops value.
fn load_btf(info: &MapInfo) -> Result<Option<MapBtf>, String> {
    let btf = if info.btf_vmlinux_value_type_id != 0 {
        Btf::from_file(Path::new(VMLINUX_BTF)).map_err(|e| e.to_string())?
    } else if info.btf_id != 0 && info.btf_value_type_id != 0 {
        let fd = sysmaps::btf_fd_by_id(info.btf_id)
            .map_err(|e| format!("opening BTF {}: {e}", info.btf_id))?;
        let data = sysmaps::btf_data(fd.as_fd())
            .map_err(|e| format!("reading BTF {}: {e}", info.btf_id))?;
        Btf::parse(data).map_err(|e| format!("BTF {}: {e}", info.btf_id))?
    } else {
        return Ok(None);
    };
    MapBtf::new(btf, info)
        .map(Some)
        .map_err(|e| format!("BTF {}: {e}", info.btf_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_shrink_for_large_values() {
        let info = |key_size, max_entries| MapInfo {
            key_size,
            max_entries,
            ..MapInfo::default()
        };
        assert_eq!(first_batch(&info(4, 100_000), 16), BATCH);
        assert_eq!(first_batch(&info(4, 10), 16), 10);
        assert_eq!(first_batch(&info(4, 100_000), 64 << 10), 63);
        assert_eq!(first_batch(&info(4, 100_000), 8 << 20), 1);
        assert_eq!(first_batch(&info(0, 0), 0), 1);
    }

    #[test]
    fn map_types() {
        assert_eq!(type_name(6), Some("percpu_array"));
        assert_eq!(type_name(33), Some("arena"));
        assert_eq!(type_name(1000), None);
        let per_cpu = |t| MapType(t).is_per_cpu();
        assert!(per_cpu(6) && per_cpu(5) && per_cpu(10) && !per_cpu(2));
        assert!(not_dumpable(27).is_some());
        assert!(not_dumpable(1).is_none() && not_dumpable(3).is_none());
    }
}
