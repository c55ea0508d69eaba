//! The `bpf(2)` commands for reading any map and its BTF that aya 0.14 does
//! not expose: opening a map or a BTF object by id, walking a map's keys or
//! reading its entries in batches, the whole `struct bpf_map_info` (aya's
//! `MapInfo` hides the BTF ids), and a BTF object's raw bytes.
//!
//! As in [`super`], each attribute struct is the prefix of `union bpf_attr`
//! that its command reads.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd, OwnedFd},
};

use super::{bpf, fd_by_id, info_by_fd, ById, SyscallError};

use aya_obj::generated::bpf_cmd;

const BPF_MAP_GET_NEXT_KEY: i32 = bpf_cmd::BPF_MAP_GET_NEXT_KEY as i32;
const BPF_MAP_LOOKUP_BATCH: i32 = bpf_cmd::BPF_MAP_LOOKUP_BATCH as i32;

/// Opens a map by id (`BPF_MAP_GET_FD_BY_ID`).
///
/// # Errors
///
/// `ENOENT` when no map has that id.
pub fn map_fd_by_id(id: u32) -> Result<OwnedFd, SyscallError> {
    fd_by_id(ById::Map, id)
}

/// Opens a BTF object by id (`BPF_BTF_GET_FD_BY_ID`).
///
/// # Errors
///
/// `ENOENT` when no BTF object has that id.
pub fn btf_fd_by_id(id: u32) -> Result<OwnedFd, SyscallError> {
    fd_by_id(ById::Btf, id)
}

/// What the kernel says of a map (`struct bpf_map_info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapInfo {
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// The map's id.
    pub id: u32,
    /// Bytes per key.
    pub key_size: u32,
    /// Bytes per value (per CPU, for a per-CPU map).
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
    /// `BPF_F_*` creation flags.
    pub map_flags: u32,
    /// Up to 15 bytes of name.
    pub name: String,
    /// The BTF object describing key and value; 0 for none.
    pub btf_id: u32,
    /// The key's type in that BTF; 0 for none.
    pub btf_key_type_id: u32,
    /// The value's type in that BTF; 0 for none.
    pub btf_value_type_id: u32,
    /// For struct_ops maps: the value's type in the kernel's own BTF.
    pub btf_vmlinux_value_type_id: u32,
}

/// Reads a map's info (`BPF_OBJ_GET_INFO_BY_FD`).
///
/// # Errors
///
/// `EINVAL` or `EBADF` when `fd` is not a BPF object. A program or link fd
/// is not refused by the kernel (it fills in its own kind of info), so
/// check [`fd_kind`] first.
pub fn map_info(fd: BorrowedFd<'_>) -> Result<MapInfo, SyscallError> {
    // `struct bpf_map_info` up to `map_extra` (Linux 5.16); a shorter
    // buffer is fine, the kernel copies what fits.
    #[repr(C)]
    struct Raw {
        map_type: u32,
        id: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        name: [u8; 16],
        ifindex: u32,
        btf_vmlinux_value_type_id: u32,
        netns_dev: u64,
        netns_ino: u64,
        btf_id: u32,
        btf_key_type_id: u32,
        btf_value_type_id: u32,
        btf_vmlinux_id: u32,
        map_extra: u64,
    }
    // SAFETY: all-zero is a valid value of this plain-integer struct.
    let mut raw: Raw = unsafe { std::mem::zeroed() };
    info_by_fd(fd, &mut raw)?;
    let name_len = raw.name.iter().position(|&b| b == 0).unwrap_or(16);
    Ok(MapInfo {
        map_type: raw.map_type,
        id: raw.id,
        key_size: raw.key_size,
        value_size: raw.value_size,
        max_entries: raw.max_entries,
        map_flags: raw.map_flags,
        name: String::from_utf8_lossy(&raw.name[..name_len]).into_owned(),
        btf_id: raw.btf_id,
        btf_key_type_id: raw.btf_key_type_id,
        btf_value_type_id: raw.btf_value_type_id,
        btf_vmlinux_value_type_id: raw.btf_vmlinux_value_type_id,
    })
}

/// `struct bpf_btf_info`, which the kernel fills in for a BTF object.
#[repr(C)]
struct BtfInfo {
    btf: u64,
    btf_size: u32,
    id: u32,
    name: u64,
    name_len: u32,
    kernel_btf: u32,
}

/// Reads the raw bytes of a BTF object (header, types, strings), as it was
/// loaded (`BPF_OBJ_GET_INFO_BY_FD` with `struct bpf_btf_info`).
///
/// # Errors
///
/// `EINVAL` when `fd` is not a BTF object.
pub fn btf_data(fd: BorrowedFd<'_>) -> Result<Vec<u8>, SyscallError> {
    // Program BTF is usually a few KiB; the kernel says how much it has, so
    // a second call fetches a larger one whole.
    let mut data = vec![0u8; 16 << 10];
    loop {
        let mut raw = BtfInfo {
            btf: data.as_mut_ptr() as u64,
            btf_size: u32::try_from(data.len()).unwrap_or(u32::MAX),
            id: 0,
            name: 0,
            name_len: 0,
            kernel_btf: 0,
        };
        info_by_fd(fd, &mut raw)?;
        let size = raw.btf_size as usize;
        if size <= data.len() {
            data.truncate(size);
            return Ok(data);
        }
        data = vec![0u8; size];
    }
}

/// A BTF object's name and whether it is the kernel's own (vmlinux's or
/// a module's), from `struct bpf_btf_info`.
///
/// # Errors
///
/// `EINVAL` when `fd` is not a BTF object.
pub fn btf_name(fd: BorrowedFd<'_>) -> Result<(String, bool), SyscallError> {
    let mut name = [0u8; 64];
    let mut raw = BtfInfo {
        btf: 0,
        btf_size: 0,
        id: 0,
        name: name.as_mut_ptr() as u64,
        name_len: name.len() as u32,
        kernel_btf: 0,
    };
    info_by_fd(fd, &mut raw)?;
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok((
        String::from_utf8_lossy(&name[..end]).into_owned(),
        raw.kernel_btf != 0,
    ))
}

/// Puts the key after `prev` into `next` (`BPF_MAP_GET_NEXT_KEY`); with no
/// `prev`, or a `prev` no longer in the map, the first key. Returns false
/// when `prev` was the last key.
///
/// # Errors
///
/// Any error but the `ENOENT` that ends the walk, e.g. `ENOTSUPP` (524) for
/// maps without keys to walk (ring buffers, storage maps).
///
/// # Safety
///
/// `prev` and `next` must each hold the map's key size in bytes.
pub(crate) unsafe fn map_next_key(
    map: BorrowedFd<'_>,
    prev: Option<&[u8]>,
    next: &mut [u8],
) -> Result<bool, SyscallError> {
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        next_key: u64,
    }
    let mut attr = Attr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: prev.map_or(0, |k| k.as_ptr() as u64),
        next_key: next.as_mut_ptr() as u64,
    };
    match bpf(BPF_MAP_GET_NEXT_KEY, "BPF_MAP_GET_NEXT_KEY", &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Where a batch lookup stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch {
    /// Entries were read and more may follow; pass the token back.
    More(u32),
    /// The last entries were read (possibly none).
    Done(u32),
}

/// Reads up to `count` entries in one call (`BPF_MAP_LOOKUP_BATCH`): keys
/// into `keys`, values into `values`, from where `in_batch` left off (the
/// start without it); `out_batch` receives the position to go on from.
/// Entries come in the order `BPF_MAP_GET_NEXT_KEY` walks them.
///
/// # Errors
///
/// `ENOTSUPP` (524) for map types without batch operations; `ENOSPC` when
/// not even one hash bucket fits in `count`.
///
/// # Safety
///
/// `in_batch` and `out_batch` must hold the map's key size and at least 8
/// bytes; `keys` must hold `count` keys and `values` `count` values (for
/// a per-CPU map, `round_up(value_size, 8)` bytes per possible CPU each).
pub(crate) unsafe fn map_lookup_batch(
    map: BorrowedFd<'_>,
    in_batch: Option<&[u8]>,
    out_batch: &mut [u8],
    keys: &mut [u8],
    values: &mut [u8],
    count: u32,
) -> Result<Batch, SyscallError> {
    #[repr(C)]
    struct Attr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    let mut attr = Attr {
        in_batch: in_batch.map_or(0, |b| b.as_ptr() as u64),
        out_batch: out_batch.as_mut_ptr() as u64,
        keys: keys.as_mut_ptr() as u64,
        values: values.as_mut_ptr() as u64,
        count,
        map_fd: map.as_raw_fd() as u32,
        elem_flags: 0,
        flags: 0,
    };
    match bpf(BPF_MAP_LOOKUP_BATCH, "BPF_MAP_LOOKUP_BATCH", &mut attr) {
        Ok(_) => Ok(Batch::More(attr.count)),
        // The end; the kernel still reports what it copied.
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(Batch::Done(attr.count)),
        Err(e) => Err(e),
    }
}

/// What kind of BPF object a descriptor refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// A map.
    Map,
    /// A program.
    Prog,
    /// A link.
    Link,
    /// A BTF object.
    Btf,
    /// Something else (not a BPF object, or a kind this code does not know).
    Other,
}

impl FdKind {
    /// The kind in words, e.g. "a program".
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Map => "a map",
            Self::Prog => "a program",
            Self::Link => "a link",
            Self::Btf => "a BTF object",
            Self::Other => "not a BPF object",
        }
    }
}

/// What `fd` is, from its anonymous inode's name in `/proc/self/fd` (as
/// libbpf and bpftool tell them apart: `BPF_OBJ_GET_INFO_BY_FD` succeeds on
/// any of them, with a different struct).
///
/// # Errors
///
/// `readlink` failing (no `/proc`).
pub fn fd_kind(fd: BorrowedFd<'_>) -> io::Result<FdKind> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    Ok(match link.as_os_str().as_encoded_bytes() {
        b"anon_inode:bpf-map" => FdKind::Map,
        b"anon_inode:bpf-prog" => FdKind::Prog,
        // "bpf_link" when created, "bpf-link" when opened from a pin.
        b"anon_inode:bpf_link" | b"anon_inode:bpf-link" => FdKind::Link,
        b"anon_inode:btf" => FdKind::Btf,
        _ => FdKind::Other,
    })
}

/// What `BPF_MAP_CREATE` needs of a map.
#[derive(Clone, Copy, Debug, Default)]
pub struct MapCreate<'a> {
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Bytes per key.
    pub key_size: u32,
    /// Bytes per value.
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
    /// `BPF_F_*` creation flags.
    pub map_flags: u32,
    /// For a map of maps: a map of the shape its values have.
    pub inner_map: Option<BorrowedFd<'a>>,
    /// The name (cut to 15 bytes).
    pub name: &'a str,
    /// The BTF that types key and value, with their type ids.
    pub btf: Option<(BorrowedFd<'a>, u32, u32)>,
    /// `map_extra` (a bloom filter's hash count).
    pub map_extra: u64,
}

/// Creates a map (`BPF_MAP_CREATE`).
///
/// # Errors
///
/// The kernel's refusal: `EINVAL` for a shape it does not take, `EPERM`
/// without `CAP_BPF`.
pub fn map_create(map: &MapCreate<'_>) -> Result<OwnedFd, SyscallError> {
    const BPF_MAP_CREATE: i32 = bpf_cmd::BPF_MAP_CREATE as i32;
    // `union bpf_attr`'s map-creation prefix, up to `map_extra` (5.16);
    // older kernels take it as long as the fields they do not know are 0.
    #[repr(C)]
    struct Attr {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        inner_map_fd: u32,
        numa_node: u32,
        map_name: [u8; 16],
        map_ifindex: u32,
        btf_fd: u32,
        btf_key_type_id: u32,
        btf_value_type_id: u32,
        btf_vmlinux_value_type_id: u32,
        map_extra: u64,
    }
    let map_name = super::object_name(map.name);
    let (btf_fd, key_id, value_id) = map
        .btf
        .map_or((0, 0, 0), |(fd, k, v)| (fd.as_raw_fd() as u32, k, v));
    let mut attr = Attr {
        map_type: map.map_type,
        key_size: map.key_size,
        value_size: map.value_size,
        max_entries: map.max_entries,
        map_flags: map.map_flags,
        inner_map_fd: map.inner_map.map_or(0, |fd| fd.as_raw_fd() as u32),
        numa_node: 0,
        map_name,
        map_ifindex: 0,
        btf_fd,
        btf_key_type_id: key_id,
        btf_value_type_id: value_id,
        btf_vmlinux_value_type_id: 0,
        map_extra: map.map_extra,
    };
    // SAFETY: BPF_MAP_CREATE returns a new descriptor.
    unsafe { super::bpf_fd(BPF_MAP_CREATE, "BPF_MAP_CREATE", &mut attr) }
}

/// Sets the value at key 0 of an array map (`BPF_MAP_UPDATE_ELEM`), as a
/// loader fills a global-data section's map.
///
/// # Errors
///
/// The kernel's refusal, `EINVAL` when `value` is not the value's size.
pub fn map_set_first(map: BorrowedFd<'_>, value: &[u8]) -> Result<(), SyscallError> {
    const BPF_MAP_UPDATE_ELEM: i32 = bpf_cmd::BPF_MAP_UPDATE_ELEM as i32;
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let key = 0u32;
    let mut attr = Attr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: std::ptr::from_ref(&key) as u64,
        value: value.as_ptr() as u64,
        flags: 0,
    };
    bpf(BPF_MAP_UPDATE_ELEM, "BPF_MAP_UPDATE_ELEM", &mut attr).map(drop)
}

/// Makes a map read-only to user space (`BPF_MAP_FREEZE`), as a loader
/// does with `.rodata` so that the verifier may trust its values.
///
/// # Errors
///
/// The kernel's refusal.
pub fn map_freeze(map: BorrowedFd<'_>) -> Result<(), SyscallError> {
    const BPF_MAP_FREEZE: i32 = bpf_cmd::BPF_MAP_FREEZE as i32;
    #[repr(C)]
    struct Attr {
        map_fd: u32,
    }
    let mut attr = Attr {
        map_fd: map.as_raw_fd() as u32,
    };
    bpf(BPF_MAP_FREEZE, "BPF_MAP_FREEZE", &mut attr).map(drop)
}
