//! The few `bpf(2)` commands aya 0.14 does not expose: updating or
//! detaching a link that xdpstat did not create in this process, opening
//! objects by id, and reading an XDP link's interface.
//!
//! Each attribute struct is the prefix of `union bpf_attr` that its command
//! reads; the kernel zero-extends a shorter `attr`.

use std::{
    ffi::CString,
    io,
    mem::size_of,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::Path,
};

use thiserror::Error;

pub mod maps;
pub mod stats;
pub mod time;

use aya_obj::generated::{bpf_cmd, bpf_link_type, bpf_prog_type, BPF_F_REPLACE};

const BPF_PROG_GET_FD_BY_ID: i32 = bpf_cmd::BPF_PROG_GET_FD_BY_ID as i32;
const BPF_OBJ_GET_INFO_BY_FD: i32 = bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as i32;
const BPF_LINK_UPDATE: i32 = bpf_cmd::BPF_LINK_UPDATE as i32;
const BPF_LINK_GET_FD_BY_ID: i32 = bpf_cmd::BPF_LINK_GET_FD_BY_ID as i32;
const BPF_LINK_GET_NEXT_ID: i32 = bpf_cmd::BPF_LINK_GET_NEXT_ID as i32;
const BPF_LINK_DETACH: i32 = bpf_cmd::BPF_LINK_DETACH as i32;
const BPF_MAP_LOOKUP_ELEM: i32 = bpf_cmd::BPF_MAP_LOOKUP_ELEM as i32;
const BPF_OBJ_PIN: i32 = bpf_cmd::BPF_OBJ_PIN as i32;
const BPF_OBJ_GET: i32 = bpf_cmd::BPF_OBJ_GET as i32;
/// `BPF_LINK_TYPE_XDP`.
pub const LINK_TYPE_XDP: u32 = bpf_link_type::BPF_LINK_TYPE_XDP as u32;
/// `BPF_PROG_TYPE_XDP`.
pub const PROG_TYPE_XDP: u32 = bpf_prog_type::BPF_PROG_TYPE_XDP as u32;

/// `BPF_PROG_TYPE_TRACING` (fentry, fexit).
pub const PROG_TYPE_TRACING: u32 = bpf_prog_type::BPF_PROG_TYPE_TRACING as u32;

/// `BPF_PROG_TYPE_EXT` (freplace: libxdp's dispatcher runs its components
/// so).
pub const PROG_TYPE_EXT: u32 = bpf_prog_type::BPF_PROG_TYPE_EXT as u32;

/// `BPF_TRACE_FENTRY`, an `expected_attach_type`.
pub const TRACE_FENTRY: u32 = 24;

/// `BPF_TRACE_FEXIT`, an `expected_attach_type`.
pub const TRACE_FEXIT: u32 = 25;

/// A failed `bpf(2)` command, named.
#[derive(Debug, Error)]
#[error("bpf({call}) failed: {source}")]
pub struct SyscallError {
    /// The command, e.g. `BPF_LINK_UPDATE`.
    pub call: &'static str,
    /// What the kernel said.
    #[source]
    pub source: io::Error,
}

impl SyscallError {
    /// The errno, if any.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

pub(crate) fn bpf<T>(cmd: i32, call: &'static str, attr: &mut T) -> Result<i64, SyscallError> {
    // SAFETY: `attr` is a live, properly sized prefix of `union bpf_attr`
    // for `cmd`; the kernel reads and writes only `size_of::<T>()` bytes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            size_of::<T>() as u32,
        )
    };
    if ret < 0 {
        Err(SyscallError {
            call,
            source: io::Error::last_os_error(),
        })
    } else {
        Ok(ret)
    }
}

/// A program's or map's name as `bpf_attr` holds it: cut to 15 bytes,
/// NUL-terminated.
fn object_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let len = name.len().min(15);
    out[..len].copy_from_slice(&name.as_bytes()[..len]);
    out
}

/// Runs a `bpf(2)` command that returns a new file descriptor, and owns it.
///
/// # Safety
///
/// `cmd` must be a command whose success value is a new descriptor
/// (`BPF_OBJ_GET`, `BPF_*_GET_FD_BY_ID`, `BPF_BTF_LOAD`, `BPF_PROG_LOAD`),
/// and `attr` as [`bpf`] requires.
unsafe fn bpf_fd<T>(cmd: i32, call: &'static str, attr: &mut T) -> Result<OwnedFd, SyscallError> {
    let fd = bpf(cmd, call, attr)?;
    // SAFETY: the command returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[repr(C)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

fn c_path(path: &Path, call: &'static str) -> Result<CString, SyscallError> {
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| SyscallError {
        call,
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })
}

/// Pins the object behind `fd` at `path` on bpffs (`BPF_OBJ_PIN`).
///
/// # Errors
///
/// `EEXIST` if something is pinned there already; `EPERM` off bpffs.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> Result<(), SyscallError> {
    let c_path = c_path(path, "BPF_OBJ_PIN")?;
    let mut attr = ObjAttr {
        pathname: c_path.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        file_flags: 0,
    };
    bpf(BPF_OBJ_PIN, "BPF_OBJ_PIN", &mut attr).map(drop)
}

/// Opens the object pinned at `path` (`BPF_OBJ_GET`).
///
/// # Errors
///
/// `ENOENT` when nothing is pinned there.
pub fn obj_get(path: &Path) -> Result<OwnedFd, SyscallError> {
    let c_path = c_path(path, "BPF_OBJ_GET")?;
    let mut attr = ObjAttr {
        pathname: c_path.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    // SAFETY: BPF_OBJ_GET returns a new descriptor.
    unsafe { bpf_fd(BPF_OBJ_GET, "BPF_OBJ_GET", &mut attr) }
}

#[repr(C)]
struct GetFdById {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The kinds of object that can be opened by id.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ById {
    Prog,
    Map,
    Link,
    Btf,
}

/// Opens an object by id (`BPF_*_GET_FD_BY_ID`).
pub(crate) fn fd_by_id(kind: ById, id: u32) -> Result<OwnedFd, SyscallError> {
    let (cmd, call) = match kind {
        ById::Prog => (BPF_PROG_GET_FD_BY_ID, "BPF_PROG_GET_FD_BY_ID"),
        ById::Map => (bpf_cmd::BPF_MAP_GET_FD_BY_ID as i32, "BPF_MAP_GET_FD_BY_ID"),
        ById::Link => (BPF_LINK_GET_FD_BY_ID, "BPF_LINK_GET_FD_BY_ID"),
        ById::Btf => (bpf_cmd::BPF_BTF_GET_FD_BY_ID as i32, "BPF_BTF_GET_FD_BY_ID"),
    };
    let mut attr = GetFdById {
        id,
        next_id: 0,
        open_flags: 0,
    };
    // SAFETY: every `BPF_*_GET_FD_BY_ID` returns a new descriptor.
    unsafe { bpf_fd(cmd, call, &mut attr) }
}

/// Reads an object's info into `info` (`BPF_OBJ_GET_INFO_BY_FD`); `T` is
/// a prefix of the kernel's `bpf_*_info` for that kind of object.
pub(crate) fn info_by_fd<T>(fd: BorrowedFd<'_>, info: &mut T) -> Result<(), SyscallError> {
    #[repr(C)]
    struct Attr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut attr = Attr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<T>() as u32,
        info: std::ptr::from_mut(info) as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, "BPF_OBJ_GET_INFO_BY_FD", &mut attr).map(drop)
}

/// Opens a loaded program by id (`BPF_PROG_GET_FD_BY_ID`).
///
/// # Errors
///
/// `ENOENT` when no such program is loaded.
pub fn prog_fd_by_id(id: u32) -> Result<OwnedFd, SyscallError> {
    fd_by_id(ById::Prog, id)
}

/// The id of the program behind `fd`.
///
/// # Errors
///
/// `EINVAL` if `fd` is not a BPF object.
pub fn prog_id(fd: BorrowedFd<'_>) -> Result<u32, SyscallError> {
    #[repr(C)]
    struct Prefix {
        prog_type: u32,
        id: u32,
    }
    let mut info = Prefix {
        prog_type: 0,
        id: 0,
    };
    info_by_fd(fd, &mut info)?;
    Ok(info.id)
}

/// Opens a link by id (`BPF_LINK_GET_FD_BY_ID`).
///
/// # Errors
///
/// `ENOENT` when no such link exists.
pub fn link_fd_by_id(id: u32) -> Result<OwnedFd, SyscallError> {
    fd_by_id(ById::Link, id)
}

/// The ids of every link in the system, in order.
///
/// # Errors
///
/// Any error but the `ENOENT` that ends the walk.
pub fn link_ids() -> Result<Vec<u32>, SyscallError> {
    ids(BPF_LINK_GET_NEXT_ID, "BPF_LINK_GET_NEXT_ID")
}

/// The ids of every map in the system, in order.
///
/// # Errors
///
/// Any error but the `ENOENT` that ends the walk.
pub fn map_ids() -> Result<Vec<u32>, SyscallError> {
    ids(bpf_cmd::BPF_MAP_GET_NEXT_ID as i32, "BPF_MAP_GET_NEXT_ID")
}

/// Every BTF object's id (`BPF_BTF_GET_NEXT_ID`): vmlinux's, modules',
/// programs'.
///
/// # Errors
///
/// `EPERM` without `CAP_SYS_ADMIN`.
pub fn btf_ids() -> Result<Vec<u32>, SyscallError> {
    ids(bpf_cmd::BPF_BTF_GET_NEXT_ID as i32, "BPF_BTF_GET_NEXT_ID")
}

/// Walks the ids of one kind of object with its `BPF_*_GET_NEXT_ID`.
fn ids(cmd: i32, call: &'static str) -> Result<Vec<u32>, SyscallError> {
    let mut ids = Vec::new();
    let mut attr = GetFdById {
        id: 0,
        next_id: 0,
        open_flags: 0,
    };
    loop {
        match bpf(cmd, call, &mut attr) {
            Ok(_) => {
                ids.push(attr.next_id);
                attr.id = attr.next_id;
            }
            Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(ids),
            Err(e) => return Err(e),
        }
    }
}

/// What the kernel says of a link (`struct bpf_link_info`, the XDP part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// `BPF_LINK_TYPE_*`.
    pub link_type: u32,
    /// The link's id.
    pub id: u32,
    /// The program it runs.
    pub prog_id: u32,
    /// For an XDP link, the interface; 0 once the interface is gone.
    pub xdp_ifindex: u32,
    /// For a tracing link to a program (fentry, fexit, freplace), that
    /// program's id; else 0.
    pub target_prog_id: u32,
    /// For a tracing link to a program, the BTF id (in that program's BTF)
    /// of the function it attaches to; else 0.
    pub target_btf_id: u32,
}

/// Reads a link's info (`BPF_OBJ_GET_INFO_BY_FD`).
///
/// # Errors
///
/// `EINVAL` when `fd` is not a link.
pub fn link_info(fd: BorrowedFd<'_>) -> Result<LinkInfo, SyscallError> {
    // The union of per-type parts starts at offset 16 and is at most 48
    // bytes on current kernels; 64 leaves room.
    #[repr(C)]
    struct Raw {
        link_type: u32,
        id: u32,
        prog_id: u32,
        _pad: u32,
        xdp_ifindex: u32,
        _rest: [u32; 15],
    }
    let mut raw = Raw {
        link_type: 0,
        id: 0,
        prog_id: 0,
        _pad: 0,
        xdp_ifindex: 0,
        _rest: [0; 15],
    };
    info_by_fd(fd, &mut raw)?;
    Ok(LinkInfo {
        link_type: raw.link_type,
        id: raw.id,
        prog_id: raw.prog_id,
        xdp_ifindex: if raw.link_type == LINK_TYPE_XDP {
            raw.xdp_ifindex
        } else {
            0
        },
        // `tracing.target_obj_id`, after `tracing.attach_type`.
        target_prog_id: if raw.link_type == LINK_TYPE_TRACING {
            raw._rest[0]
        } else {
            0
        },
        target_btf_id: if raw.link_type == LINK_TYPE_TRACING {
            raw._rest[1]
        } else {
            0
        },
    })
}

/// `BPF_LINK_TYPE_TRACING`.
pub const LINK_TYPE_TRACING: u32 = bpf_link_type::BPF_LINK_TYPE_TRACING as u32;

/// Who a program is, and what a tracing program attaching to it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgIdentity {
    /// Its id.
    pub id: u32,
    /// `BPF_PROG_TYPE_*`.
    pub prog_type: u32,
    /// Its name (the kernel keeps 15 bytes).
    pub name: String,
    /// Its tag, as bpftool prints it (the 8 bytes read big-endian).
    pub tag: u64,
    /// The BTF id of its own function in its BTF (`attach_btf_id` for a
    /// tracing program attaching to it): the type of its first
    /// `func_info` record. `None` for a program loaded without BTF.
    pub func_btf_id: Option<u32>,
    /// The id of its BTF object, 0 without.
    pub btf_id: u32,
}

/// `struct bpf_prog_info` up to `nr_line_info`: what xdpstat reads of a
/// program; the kernel fills in only as much as `info_len` says.
#[repr(C)]
#[derive(Default)]
pub(crate) struct ProgInfoPrefix {
    pub(crate) prog_type: u32,
    pub(crate) id: u32,
    pub(crate) tag: [u8; 8],
    pub(crate) jited_prog_len: u32,
    pub(crate) xlated_prog_len: u32,
    pub(crate) jited_prog_insns: u64,
    pub(crate) xlated_prog_insns: u64,
    pub(crate) load_time: u64,
    pub(crate) created_by_uid: u32,
    pub(crate) nr_map_ids: u32,
    pub(crate) map_ids: u64,
    pub(crate) name: [u8; 16],
    pub(crate) ifindex: u32,
    pub(crate) gpl_compatible: u32,
    pub(crate) netns_dev: u64,
    pub(crate) netns_ino: u64,
    pub(crate) nr_jited_ksyms: u32,
    pub(crate) nr_jited_func_lens: u32,
    pub(crate) jited_ksyms: u64,
    pub(crate) jited_func_lens: u64,
    pub(crate) btf_id: u32,
    pub(crate) func_info_rec_size: u32,
    pub(crate) func_info: u64,
    pub(crate) nr_func_info: u32,
    pub(crate) nr_line_info: u32,
}

/// Reads a program's [`ProgIdentity`] (`BPF_OBJ_GET_INFO_BY_FD`).
///
/// # Errors
///
/// `EINVAL` when `fd` is not a program.
pub fn prog_identity(fd: BorrowedFd<'_>) -> Result<ProgIdentity, SyscallError> {
    // `struct bpf_func_info`: insn_off, type_id.
    let mut record = [0u32; 2];
    let mut info = ProgInfoPrefix {
        func_info_rec_size: 8,
        func_info: record.as_mut_ptr() as u64,
        nr_func_info: 1,
        ..ProgInfoPrefix::default()
    };
    info_by_fd(fd, &mut info)?;
    let name_len = info.name.iter().position(|&b| b == 0).unwrap_or(16);
    Ok(ProgIdentity {
        id: info.id,
        prog_type: info.prog_type,
        name: String::from_utf8_lossy(&info.name[..name_len]).into_owned(),
        tag: u64::from_be_bytes(info.tag),
        func_btf_id: (info.btf_id != 0 && info.nr_func_info > 0).then_some(record[1]),
        btf_id: info.btf_id,
    })
}

/// Attaches a loaded fentry or fexit program where it was loaded to
/// attach (`BPF_RAW_TRACEPOINT_OPEN` without a name): the link.
///
/// # Errors
///
/// The kernel's refusal.
pub fn tracing_attach(prog: BorrowedFd<'_>) -> Result<OwnedFd, SyscallError> {
    const BPF_RAW_TRACEPOINT_OPEN: i32 = 17;
    #[repr(C)]
    struct Attr {
        name: u64,
        prog_fd: u32,
        // Spelled out: kernels before 6.10 refuse nonzero bytes here.
        _pad: u32,
    }
    let mut attr = Attr {
        name: 0,
        prog_fd: prog.as_raw_fd() as u32,
        _pad: 0,
    };
    // SAFETY: BPF_RAW_TRACEPOINT_OPEN returns a new descriptor.
    unsafe {
        bpf_fd(
            BPF_RAW_TRACEPOINT_OPEN,
            "BPF_RAW_TRACEPOINT_OPEN",
            &mut attr,
        )
    }
}

/// Atomically swaps the program a link runs (`BPF_LINK_UPDATE`). With
/// `expected`, the swap only happens if the link still runs that program.
///
/// # Errors
///
/// `EPERM` if `expected` no longer runs there; `ENOLINK` if the link is
/// defunct.
pub fn link_update(
    link: BorrowedFd<'_>,
    new_prog: BorrowedFd<'_>,
    expected: Option<BorrowedFd<'_>>,
) -> Result<(), SyscallError> {
    #[repr(C)]
    struct Attr {
        link_fd: u32,
        new_prog_fd: u32,
        flags: u32,
        old_prog_fd: u32,
    }
    let mut attr = Attr {
        link_fd: link.as_raw_fd() as u32,
        new_prog_fd: new_prog.as_raw_fd() as u32,
        flags: if expected.is_some() { BPF_F_REPLACE } else { 0 },
        old_prog_fd: expected.map_or(0, |fd| fd.as_raw_fd() as u32),
    };
    bpf(BPF_LINK_UPDATE, "BPF_LINK_UPDATE", &mut attr).map(drop)
}

/// Detaches a link from its hook now, whoever else still holds it
/// (`BPF_LINK_DETACH`). The link object lives on, defunct, until its last
/// reference goes.
///
/// # Errors
///
/// `ENOLINK` if it was already detached (e.g. the interface went away).
pub fn link_detach(link: BorrowedFd<'_>) -> Result<(), SyscallError> {
    #[repr(C)]
    struct Attr {
        link_fd: u32,
    }
    let mut attr = Attr {
        link_fd: link.as_raw_fd() as u32,
    };
    bpf(BPF_LINK_DETACH, "BPF_LINK_DETACH", &mut attr).map(drop)
}

/// Every live XDP link in the system (on some interface), with its info.
/// Link info names no network namespace, so links of every namespace are
/// here.
///
/// # Errors
///
/// A failure to walk or open the links.
pub fn xdp_links() -> Result<Vec<(OwnedFd, LinkInfo)>, SyscallError> {
    links_where(|info| info.link_type == LINK_TYPE_XDP && info.xdp_ifindex != 0)
}

/// Every tracing link attached to program `target` (fentry, fexit,
/// freplace), with its info.
///
/// # Errors
///
/// A failure to walk or open the links.
pub fn links_to_prog(target: u32) -> Result<Vec<(OwnedFd, LinkInfo)>, SyscallError> {
    links_where(|info| info.link_type == LINK_TYPE_TRACING && info.target_prog_id == target)
}

/// Every link whose info passes `keep`.
fn links_where(keep: impl Fn(&LinkInfo) -> bool) -> Result<Vec<(OwnedFd, LinkInfo)>, SyscallError> {
    let mut found = Vec::new();
    for id in link_ids()? {
        let fd = match link_fd_by_id(id) {
            Ok(fd) => fd,
            // It went away between the walk and the open (ENOENT), or is
            // still being made by its loader (EAGAIN).
            Err(e) if matches!(e.errno(), Some(libc::ENOENT | libc::EAGAIN)) => continue,
            Err(e) => return Err(e),
        };
        let info = link_info(std::os::fd::AsFd::as_fd(&fd))?;
        if keep(&info) {
            found.push((fd, info));
        }
    }
    Ok(found)
}

/// Every XDP link on interface index `ifindex`, in any namespace (see
/// [`xdp_links`]).
///
/// # Errors
///
/// A failure to walk or open the links.
pub fn xdp_links_on(ifindex: u32) -> Result<Vec<(OwnedFd, LinkInfo)>, SyscallError> {
    let mut found = xdp_links()?;
    found.retain(|(_, info)| info.xdp_ifindex == ifindex);
    Ok(found)
}

/// Reads the value of `key` into `value` (`BPF_MAP_LOOKUP_ELEM`).
///
/// # Errors
///
/// `ENOENT` for a missing key.
///
/// # Safety
///
/// `key` must be the map's key size, and `value` must hold what the kernel
/// writes: `value_size` bytes, or for a per-CPU map `round_up(value_size, 8)`
/// bytes for every possible CPU.
pub(crate) unsafe fn map_lookup(
    map: BorrowedFd<'_>,
    key: &[u8],
    value: &mut [u8],
) -> Result<(), SyscallError> {
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let mut attr = Attr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        flags: 0,
    };
    bpf(BPF_MAP_LOOKUP_ELEM, "BPF_MAP_LOOKUP_ELEM", &mut attr).map(drop)
}

/// What `BPF_PROG_LOAD` needs of a program: an XDP program, or a tracing
/// program that attaches to another program.
#[derive(Clone, Copy, Debug)]
pub struct ProgLoad<'a> {
    /// `prog_type` ([`PROG_TYPE_XDP`], [`PROG_TYPE_TRACING`]).
    pub prog_type: u32,
    /// For a tracing program: the program it attaches to, and the BTF id
    /// of that program's function in that program's BTF.
    pub attach: Option<(BorrowedFd<'a>, u32)>,
    /// Instructions, 8 bytes each.
    pub insns: &'a [u8],
    /// License.
    pub license: &'a std::ffi::CStr,
    /// The program's name (cut to 15 bytes).
    pub name: &'a str,
    /// `kern_version`.
    pub kern_version: u32,
    /// `expected_attach_type`.
    pub expected_attach_type: u32,
    /// `prog_flags`.
    pub flags: u32,
    /// The object's BTF, loaded.
    pub btf: Option<BorrowedFd<'a>>,
    /// `func_info`: record size, records, count.
    pub func_info: (u32, &'a [u8], u32),
    /// `line_info`: record size, records, count.
    pub line_info: (u32, &'a [u8], u32),
    /// `fd_array`: the module BTF that kfunc calls name by index (empty
    /// for none).
    pub fd_array: &'a [i32],
}

/// Loads BTF (`BPF_BTF_LOAD`).
///
/// # Errors
///
/// The kernel's refusal.
pub fn btf_load(btf: &[u8]) -> Result<OwnedFd, SyscallError> {
    const BPF_BTF_LOAD: i32 = 18;
    #[repr(C)]
    struct Attr {
        btf: u64,
        btf_log_buf: u64,
        btf_size: u32,
        btf_log_size: u32,
        btf_log_level: u32,
        // Spelled out (Linux 6.4+), not left as padding: older kernels
        // refuse the call with EINVAL unless the bytes past the fields
        // they know are zero, and padding is not zeroed.
        btf_log_true_size: u32,
    }
    let mut attr = Attr {
        btf: btf.as_ptr() as u64,
        btf_log_buf: 0,
        btf_size: btf.len() as u32,
        btf_log_size: 0,
        btf_log_level: 0,
        btf_log_true_size: 0,
    };
    // SAFETY: BPF_BTF_LOAD returns a new descriptor.
    unsafe { bpf_fd(BPF_BTF_LOAD, "BPF_BTF_LOAD", &mut attr) }
}

/// `BPF_PROG_LOAD` with the verifier's log, all of it:
/// on `ENOSPC` it retries once with the size the kernel says it needs
/// (`log_true_size`, Linux 6.4+), or, on older kernels, which do not say,
/// with the largest buffer a kernel takes (1 GiB, mapped only as the
/// kernel writes it). aya caps its log buffer at 16 MiB and
/// the kernel then keeps only the log's tail.
pub fn prog_load_with_log(
    prog: &ProgLoad<'_>,
    log_level: u32,
    first_log_size: u32,
) -> (Result<OwnedFd, SyscallError>, Vec<u8>) {
    const BPF_PROG_LOAD: i32 = 5;
    /// The kernel refuses log buffers over `UINT_MAX >> 2`.
    const MAX_LOG: u32 = u32::MAX >> 2;
    #[repr(C)]
    struct Attr {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
        prog_btf_fd: u32,
        func_info_rec_size: u32,
        func_info: u64,
        func_info_cnt: u32,
        line_info_rec_size: u32,
        line_info: u64,
        line_info_cnt: u32,
        attach_btf_id: u32,
        attach_prog_fd: u32,
        core_relo_cnt: u32,
        fd_array: u64,
        core_relos: u64,
        core_relo_rec_size: u32,
        log_true_size: u32,
    }
    let prog_name = object_name(prog.name);
    let (with_btf, btf_fd) = match prog.btf {
        Some(fd) => (true, fd.as_raw_fd() as u32),
        None => (false, 0),
    };
    let mut size = first_log_size.clamp(1 << 16, MAX_LOG);
    loop {
        let mut log = vec![0u8; size as usize];
        let mut attr = Attr {
            prog_type: prog.prog_type,
            insn_cnt: (prog.insns.len() / 8) as u32,
            insns: prog.insns.as_ptr() as u64,
            license: prog.license.as_ptr() as u64,
            log_level,
            log_size: size,
            log_buf: log.as_mut_ptr() as u64,
            kern_version: prog.kern_version,
            prog_flags: prog.flags,
            prog_name,
            prog_ifindex: 0,
            expected_attach_type: prog.expected_attach_type,
            prog_btf_fd: btf_fd,
            func_info_rec_size: if with_btf { prog.func_info.0 } else { 0 },
            func_info: if with_btf {
                prog.func_info.1.as_ptr() as u64
            } else {
                0
            },
            func_info_cnt: if with_btf { prog.func_info.2 } else { 0 },
            line_info_rec_size: if with_btf { prog.line_info.0 } else { 0 },
            line_info: if with_btf {
                prog.line_info.1.as_ptr() as u64
            } else {
                0
            },
            line_info_cnt: if with_btf { prog.line_info.2 } else { 0 },
            attach_btf_id: prog.attach.map_or(0, |(_, id)| id),
            attach_prog_fd: prog.attach.map_or(0, |(fd, _)| fd.as_raw_fd() as u32),
            core_relo_cnt: 0,
            fd_array: if prog.fd_array.is_empty() {
                0
            } else {
                prog.fd_array.as_ptr() as u64
            },
            core_relos: 0,
            core_relo_rec_size: 0,
            log_true_size: 0,
        };
        // SAFETY: BPF_PROG_LOAD returns a new descriptor.
        let result = unsafe { bpf_fd(BPF_PROG_LOAD, "BPF_PROG_LOAD", &mut attr) };
        let needed = attr.log_true_size;
        let truncated = matches!(&result, Err(e) if e.errno() == Some(libc::ENOSPC));
        if truncated && size < MAX_LOG {
            // Before 6.4 there is no log_true_size (it stays 0) and the
            // buffer keeps the log's head, without the verdict: retry once
            // with the largest buffer the kernel takes.
            size = if needed > size {
                needed.min(MAX_LOG)
            } else {
                MAX_LOG
            };
            continue;
        }
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        log.truncate(end);
        return (result, log);
    }
}

/// `uname -r`: the running kernel's release.
pub fn uname_release() -> String {
    // SAFETY: utsname is plain data, filled by uname(2).
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".to_owned();
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
