//! The verifier workbench's kernel side: loading any object's XDP program
//! into the kernel with the verifier's log (prepared as aya would load it),
//! and reporting on it through [`xdpstat_analysis::report`].

use std::{io, path::PathBuf};

use aya::{Ebpf, EbpfLoader, VerifierLogLevel};
use thiserror::Error;
use xdpstat_analysis::{
    obj::{guard, BpfObject, ObjectError, XdpProgram},
    report::{errno_text, report, source_dirs, ProgramReport, ReportInput, StatsReport},
    verifier::log::{self, ParsedLog},
};

/// Loading failed before the verifier could say anything.
#[derive(Debug, Error)]
pub enum WorkbenchError {
    /// aya could not prepare the object (maps, BTF, relocations).
    #[error("preparing {path} for the kernel failed: {reason}")]
    Prepare {
        /// The object.
        path: String,
        /// Why.
        reason: String,
    },
    /// The object is malformed in a way aya only found while preparing
    /// it (an input error, exit 2, like the other [`ObjectError`]s).
    #[error("{0}")]
    Object(#[source] ObjectError),
}

impl WorkbenchError {
    /// Whether it is the input's fault (exit 2): a malformed object.
    pub fn is_usage(&self) -> bool {
        match self {
            Self::Object(e) => e.is_usage(),
            Self::Prepare { .. } => false,
        }
    }
}

/// The kernel's answer to one program.
pub enum Verdict {
    /// Accepted. aya has created the object's maps in `ebpf`; its
    /// program is not loaded yet (`load` loads it through aya to attach it).
    Accepted {
        /// The object, maps created.
        ebpf: Ebpf,
        /// The verifier's log.
        log: String,
    },
    /// Rejected, with the errno and the verifier's log.
    Rejected {
        /// What `BPF_PROG_LOAD` returned.
        errno: io::Error,
        /// The log.
        log: String,
    },
}

/// Loads one XDP program of `obj` and asks the verifier for its log at
/// `level` (the `BPF_LOG_*` bits).
///
/// aya creates the maps and loads the object's BTF as usual; the program
/// itself goes through xdpstat's own `BPF_PROG_LOAD`, prepared exactly as
/// aya prepares it ([`BpfObject::for_kernel`]), because aya 0.14 grows its
/// log buffer ten times over, re-verifying each time, and stops at 16 MiB:
/// the kernel then keeps only the log's tail. Here the buffer starts at
/// 64 MiB and, if that is short, grows once to the size the kernel reports.
///
/// # Errors
///
/// [`WorkbenchError`] when the object cannot be prepared.
pub fn load(obj: &BpfObject, program: &XdpProgram, level: u32) -> Result<Verdict, WorkbenchError> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    let prepare = |reason: String| WorkbenchError::Prepare {
        path: obj.path().display().to_string(),
        reason,
    };
    let ebpf = guard::aya(|| {
        EbpfLoader::new()
            .verifier_log_level(VerifierLogLevel::DISABLE)
            .load(obj.bytes_for_aya(program))
    })
    .map_err(|panic| {
        WorkbenchError::Object(ObjectError::Malformed {
            path: obj.path().to_owned(),
            reason: panic.to_string(),
        })
    })?
    .map_err(|e| prepare(xdpstat_analysis::error::chain(&e)))?;
    let fds = ebpf
        .maps()
        .map(|(name, map)| (name.to_owned(), map_data(map).fd().as_fd().as_raw_fd()))
        .collect();
    let kernel = obj
        .for_kernel(program, &fds, &KernelFeatures::probe())
        .map_err(|e| match e {
            ObjectError::Malformed { .. } => WorkbenchError::Object(e),
            e => prepare(e.to_string()),
        })?;
    // Without its BTF the kernel still verifies the program, only without
    // source annotations; aya proceeds the same way for XDP.
    let btf = kernel
        .btf
        .as_deref()
        .and_then(|b| crate::kernel::sys::btf_load(b).ok());
    let (result, log) = crate::kernel::sys::prog_load_with_log(
        &crate::kernel::sys::ProgLoad {
            prog_type: crate::kernel::sys::PROG_TYPE_XDP,
            attach: None,
            insns: &kernel.insns,
            license: &kernel.license,
            name: &kernel.name,
            kern_version: kernel.kern_version,
            expected_attach_type: kernel.expected_attach_type,
            flags: kernel.flags,
            btf: btf.as_ref().map(|fd| fd.as_fd()),
            func_info: (kernel.func_info.0, &kernel.func_info.1, kernel.func_info.2),
            line_info: (kernel.line_info.0, &kernel.line_info.1, kernel.line_info.2),
        },
        level,
        // Zeroed memory is mapped lazily, so a big first buffer costs
        // little and spares most huge logs a second verification.
        1 << 26,
    );
    let log = String::from_utf8_lossy(&log).into_owned();
    match result {
        // The program is freed with its fd; `load` loads it again
        // through aya to attach it.
        Ok(_fd) => Ok(Verdict::Accepted { ebpf, log }),
        Err(e) => Ok(Verdict::Rejected {
            errno: e.source,
            log,
        }),
    }
}

/// The map behind any kind of aya map (every kind wraps one).
fn map_data(map: &aya::maps::Map) -> &aya::maps::MapData {
    use aya::maps::Map;
    match map {
        Map::Array(d)
        | Map::ArrayOfMaps(d)
        | Map::BloomFilter(d)
        | Map::CgroupArray(d)
        | Map::CgroupStorage(d)
        | Map::CgrpStorage(d)
        | Map::CpuMap(d)
        | Map::DevMap(d)
        | Map::DevMapHash(d)
        | Map::HashMap(d)
        | Map::HashOfMaps(d)
        | Map::InodeStorage(d)
        | Map::LpmTrie(d)
        | Map::LruHashMap(d)
        | Map::PerCpuArray(d)
        | Map::PerCpuCgroupStorage(d)
        | Map::PerCpuHashMap(d)
        | Map::PerCpuLruHashMap(d)
        | Map::PerfEventArray(d)
        | Map::ProgramArray(d)
        | Map::Queue(d)
        | Map::ReusePortSockArray(d)
        | Map::RingBuf(d)
        | Map::SockHash(d)
        | Map::SockMap(d)
        | Map::SkStorage(d)
        | Map::Stack(d)
        | Map::StackTraceMap(d)
        | Map::Unsupported(d)
        | Map::XskMap(d) => d,
    }
}

/// Log level 1, with statistics.
const LOG_LEVEL_1: u32 = 1 | 4;
/// Log level 2, with statistics.
const LOG_LEVEL_2: u32 = 2 | 1 | 4;

/// Loads `program` and reports on it. A rejection whose diagnosis lacks the
/// state to find the origin is loaded again at log level 2.
///
/// # Errors
///
/// [`WorkbenchError`] when aya fails before the verifier runs.
pub fn check(
    obj: &BpfObject,
    program: &XdpProgram,
    src_dirs: &[PathBuf],
) -> Result<(ProgramReport, Option<Ebpf>), WorkbenchError> {
    let linked = obj.linked(program).ok();
    let src = source_dirs(Some(obj.path()), src_dirs);
    let base = |log: Option<&ParsedLog>| {
        report(ReportInput {
            section: program.section.clone(),
            name: program.name.clone(),
            log,
            program: linked.as_ref(),
            src_dirs: src.clone(),
        })
    };
    match load(obj, program, LOG_LEVEL_1)? {
        Verdict::Accepted { ebpf, log: text } => {
            let parsed = log::parse_str(&text);
            let mut r = base(None);
            r.accepted = Some(true);
            if let Some(stats) = &parsed.stats {
                r.stats = StatsReport::from(stats);
            }
            Ok((r, Some(ebpf)))
        }
        Verdict::Rejected { errno, log: text } => {
            let parsed = log::parse_str(&text);
            let mut r = base(Some(&parsed));
            let mut level = 1;
            let mut kept = text;
            let needs_more = r
                .diagnosis
                .as_ref()
                .is_some_and(|d| d.origin.is_none() && d.lacks_state());
            if needs_more {
                if let Ok(Verdict::Rejected { log: verbose, .. }) = load(obj, program, LOG_LEVEL_2)
                {
                    let parsed2 = log::parse_str(&verbose);
                    let r2 = base(Some(&parsed2));
                    if r2.diagnosis.as_ref().is_some_and(|d| d.origin.is_some()) {
                        r = r2;
                        level = 2;
                        kept = verbose;
                    }
                }
            }
            r.accepted = Some(false);
            r.errno = Some(errno_text(&errno));
            r.log_level = Some(level);
            r.log = Some(kept);
            Ok((r, None))
        }
    }
}

/// What the running kernel supports, as aya probes it, for preparing an
/// object the way aya would load it.
pub(crate) struct KernelFeatures;

impl KernelFeatures {
    pub(crate) fn probe() -> xdpstat_analysis::obj::KernelFeatures<'static> {
        xdpstat_analysis::obj::KernelFeatures {
            features: aya::features(),
            kernel_btf: aya_obj::btf::Btf::from_sys_fs().ok(),
            kern_version: aya::util::KernelVersion::current()
                .map_or(0, aya::util::KernelVersion::code),
        }
    }
}
