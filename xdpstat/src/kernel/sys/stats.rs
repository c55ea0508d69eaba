//! Run-time statistics and the facts about BPF objects that aya 0.14 does
//! not give: keeping `BPF_ENABLE_STATS` on for a while, a program's map ids
//! read through a descriptor already open, and what `/proc/self/fdinfo`
//! says of a BPF descriptor (which kind of object it is, its raw type
//! number, its memlock charge).
//!
//! aya's `ProgramInfo::map_ids` and `memory_locked` each open the program
//! again by id, and the latter parses into a `u32` with an `unwrap`;
//! `MapInfo` has no memlock at all; nor can aya say whether a pinned object
//! is a map, a program or a link.

use std::{
    fs::File,
    io::{self, Read},
    os::fd::{AsRawFd, BorrowedFd, OwnedFd},
};

use super::SyscallError;

/// Keeps the kernel's per-program run-time statistics (`run_time_ns`,
/// `run_cnt`) counting while it lives, as bpftop does: `BPF_ENABLE_STATS`
/// with `BPF_STATS_RUN_TIME` returns a file descriptor, and the statistics
/// stay on until every such descriptor is closed (or the
/// `kernel.bpf_stats_enabled` sysctl is also on).
///
/// Counting costs each program two clock reads per run, so it is kept on
/// only for as long as it is needed.
#[derive(Debug)]
pub struct RunTimeStats {
    _fd: OwnedFd,
}

impl RunTimeStats {
    /// Turns the statistics on (Linux 5.8+, `CAP_SYS_ADMIN`).
    ///
    /// # Errors
    ///
    /// `EPERM` without `CAP_SYS_ADMIN`; `EINVAL` on kernels before 5.8.
    pub fn enable() -> Result<Self, SyscallError> {
        aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .map(|fd| Self { _fd: fd })
            .map_err(|e| SyscallError {
                call: "BPF_ENABLE_STATS",
                source: e.io_error,
            })
    }
}

/// The kind of BPF object behind a file descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// A map.
    Map,
    /// A program.
    Program,
    /// A link.
    Link,
    /// Something else (a BTF object, or not a BPF object at all).
    Other,
}

impl ObjectKind {
    /// The kind's name, as bpftool says it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Map => "map",
            Self::Program => "program",
            Self::Link => "link",
            Self::Other => "object",
        }
    }
}

/// What `/proc/self/fdinfo/<fd>` says of a BPF object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdInfo {
    /// Map, program or link.
    pub kind: ObjectKind,
    /// `BPF_PROG_TYPE_*` or `BPF_MAP_TYPE_*` as a number; 0 for a link.
    /// Unlike aya's enums, this is right for types newer than aya.
    pub raw_type: u32,
    /// The object's id (`prog_id`, `map_id` or `link_id`).
    pub id: u32,
    /// Bytes charged to memlock (`memlock`); 0 for a link.
    pub memlock: u64,
    /// For a map, whether it is frozen (`frozen`): read-only to user space.
    pub frozen: bool,
}

/// Parses the text of a BPF object's fdinfo.
///
/// The kernel prints one `key:\tvalue` per line; the first BPF key tells the
/// kind (`map_type`, `prog_type`, `link_type`).
pub fn parse_fdinfo(text: &str) -> FdInfo {
    let mut info = FdInfo {
        kind: ObjectKind::Other,
        raw_type: 0,
        id: 0,
        memlock: 0,
        frozen: false,
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let number = || value.parse::<u64>().unwrap_or(0);
        match key {
            "map_type" => {
                info.kind = ObjectKind::Map;
                info.raw_type = number() as u32;
            }
            "prog_type" => {
                info.kind = ObjectKind::Program;
                info.raw_type = number() as u32;
            }
            "link_type" => info.kind = ObjectKind::Link,
            "map_id" | "prog_id" if info.kind != ObjectKind::Link => info.id = number() as u32,
            "link_id" => info.id = number() as u32,
            "memlock" => info.memlock = number(),
            "frozen" => info.frozen = number() != 0,
            _ => {}
        }
    }
    info
}

/// Reads and parses the fdinfo of `fd`.
///
/// # Errors
///
/// Reading `/proc/self/fdinfo` failed (e.g. `/proc` is not mounted).
pub fn fdinfo(fd: BorrowedFd<'_>) -> io::Result<FdInfo> {
    let mut file = File::open(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    // A BPF object's fdinfo is a few hundred bytes, and the kernel hands
    // all of it to one read that has room: this is one syscall where
    // `read_to_string` makes three, per object listed.
    let mut buf = [0u8; 2048];
    let n = file.read(&mut buf)?;
    let mut text = String::from_utf8_lossy(&buf[..n]).into_owned();
    if n == buf.len() {
        file.read_to_string(&mut text)?;
    }
    Ok(parse_fdinfo(&text))
}

/// The ids of the maps the program behind `fd` uses
/// (`BPF_OBJ_GET_INFO_BY_FD`, asking for `map_ids` only).
///
/// # Errors
///
/// `EINVAL` if `fd` is not a program.
pub fn prog_map_ids(fd: BorrowedFd<'_>) -> Result<Vec<u32>, SyscallError> {
    // Most programs use a handful of maps; ask again if this is too few.
    let mut ids = vec![0u32; 16];
    loop {
        let mut info = super::ProgInfoPrefix {
            nr_map_ids: ids.len() as u32,
            map_ids: ids.as_mut_ptr() as u64,
            ..super::ProgInfoPrefix::default()
        };
        super::info_by_fd(fd, &mut info)?;
        // The kernel sets `nr_map_ids` to the program's real count.
        let count = info.nr_map_ids as usize;
        if count <= ids.len() {
            ids.truncate(count);
            return Ok(ids);
        }
        ids = vec![0; count];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_fdinfo() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t2081\nmap_type:\t6\n\
                    key_size:\t4\nvalue_size:\t16\nmax_entries:\t1\nmap_flags:\t0x0\n\
                    map_extra:\t0x0\nmemlock:\t352\nmap_id:\t4165\nfrozen:\t0\n";
        assert_eq!(
            parse_fdinfo(text),
            FdInfo {
                kind: ObjectKind::Map,
                raw_type: 6,
                id: 4165,
                memlock: 352,
                frozen: false,
            }
        );
    }

    #[test]
    fn a_program_fdinfo() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t2081\nprog_type:\t6\n\
                    prog_jited:\t1\nprog_tag:\t5b7ca179fe07310a\nmemlock:\t4096\n\
                    prog_id:\t5561\nrun_time_ns:\t0\nrun_cnt:\t0\nrecursion_misses:\t0\n\
                    verified_insns:\t18\n";
        assert_eq!(
            parse_fdinfo(text),
            FdInfo {
                kind: ObjectKind::Program,
                raw_type: 6,
                id: 5561,
                memlock: 4096,
                frozen: false,
            }
        );
    }

    #[test]
    fn a_link_fdinfo_names_its_own_id_not_its_programs() {
        let text = "pos:\t0\nflags:\t02000000\nmnt_id:\t15\nino:\t2081\nlink_type:\txdp\n\
                    link_id:\t12\nprog_tag:\t5b7ca179fe07310a\nprog_id:\t5561\nifindex:\t3\n";
        let info = parse_fdinfo(text);
        assert_eq!(info.kind, ObjectKind::Link);
        assert_eq!(info.id, 12);
    }

    #[test]
    fn a_file_that_is_no_bpf_object() {
        let info = parse_fdinfo("pos:\t0\nflags:\t0100000\nmnt_id:\t24\n");
        assert_eq!(info.kind, ObjectKind::Other);
    }
}
