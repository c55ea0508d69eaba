//! The verifier workbench's kernel side: loading any object's XDP program
//! into the kernel with the verifier's log (prepared as aya would load it),
//! and reporting on it through [`xdpstat_analysis::report`].

mod maps;

use std::{
    io,
    os::fd::{AsFd, AsRawFd as _, OwnedFd},
    path::PathBuf,
};

pub use maps::Maps;
use thiserror::Error;
use xdpstat_analysis::{
    obj::{BpfObject, ObjectError, XdpProgram},
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
    /// A map the object pins by name is pinned already, with another
    /// shape: libbpf refuses to reuse it, and so does xdpstat.
    #[error("{} is pinned as {pinned}, but {object_path}'s map {map} is {wanted}; libbpf would refuse to reuse it too: remove the pin if it is stale (`rm {}`), or give the map another name", path.display(), path.display())]
    PinMismatch {
        /// The existing pin.
        path: PathBuf,
        /// The object.
        object_path: String,
        /// The map's name.
        map: String,
        /// What is pinned there.
        pinned: String,
        /// What the object declares.
        wanted: String,
    },
    /// A map has no size: its user space sets `max_entries` before
    /// loading (libbpf refuses to create it too).
    #[error("{object_path}: max_entries is 0 for {maps}: its own loader sizes them before loading, and the kernel refuses an empty map (libbpf too); give sizes with {options}")]
    UnsizedMap {
        /// The object.
        object_path: String,
        /// The maps, comma-separated.
        maps: String,
        /// The options that would size them.
        options: String,
    },
}

impl WorkbenchError {
    /// Whether it is the input's fault (exit 2): a malformed object, a
    /// pin in the way, an unsized map.
    pub fn is_usage(&self) -> bool {
        match self {
            Self::Object(e) => e.is_usage(),
            Self::PinMismatch { .. } | Self::UnsizedMap { .. } => true,
            Self::Prepare { .. } => false,
        }
    }
}

/// Where the maps that an object pins by name (`LIBBPF_PIN_BY_NAME`) go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinPlace {
    /// Nowhere: `check` creates them unpinned, so it never reuses (or
    /// leaves) a pin.
    Private,
    /// `/sys/fs/bpf/<name>`, as libbpf pins them, for `load`: an existing
    /// pin of the same shape is reused, one of another shape refused.
    Shared,
}

/// How `check` and `load` load an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Where maps pinned by name go.
    pub pins: PinPlace,
    /// Sizes for maps whose `max_entries` their user space sets (0 in the
    /// object), by map name.
    pub max_entries: Vec<(String, u32)>,
}

impl LoadOptions {
    /// `check`'s: nothing pinned that outlives it.
    pub fn check() -> Self {
        Self {
            pins: PinPlace::Private,
            max_entries: Vec::new(),
        }
    }
}

/// Map types whose size aya sets when the object leaves it 0.
const SIZED_BY_LOADER: [u32; 1] =
    [aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_PERF_EVENT_ARRAY as u32];

/// `percpu_array (key 4, value 16, 5 entries, flags 0x0)`.
fn shape(map_type: u32, key: u32, value: u32, entries: u32, flags: u32) -> String {
    let name = crate::kernel::map::MapType(map_type)
        .name()
        .map_or_else(|| format!("type {map_type}"), str::to_owned);
    format!("{name} (key {key}, value {value}, {entries} entries, flags {flags:#x})")
}

/// Checks an existing pin against the map the object declares, as libbpf
/// does before reusing it.
fn check_pin(
    obj: &BpfObject,
    name: &str,
    map: &aya_obj::Map,
    path: &std::path::Path,
) -> Result<(), WorkbenchError> {
    use std::os::fd::AsFd as _;
    let mismatch = |pinned: String| WorkbenchError::PinMismatch {
        path: path.to_owned(),
        object_path: obj.path().display().to_string(),
        map: name.to_owned(),
        pinned,
        wanted: shape(
            map.map_type(),
            map.key_size(),
            map.value_size(),
            map.max_entries(),
            map.map_flags(),
        ),
    };
    let fd = crate::kernel::sys::obj_get(path)
        .map_err(|e| mismatch(format!("something xdpstat cannot open ({e})")))?;
    let info = crate::kernel::sys::maps::map_info(fd.as_fd())
        .map_err(|_| mismatch("something that is not a map".to_owned()))?;
    // A map type whose size the loader sets (0 in the object) matches any.
    let entries_match = map.max_entries() == 0 || map.max_entries() == info.max_entries;
    if info.map_type == map.map_type()
        && info.key_size == map.key_size()
        && info.value_size == map.value_size()
        && entries_match
        && info.map_flags == map.map_flags()
    {
        Ok(())
    } else {
        Err(mismatch(shape(
            info.map_type,
            info.key_size,
            info.value_size,
            info.max_entries,
            info.map_flags,
        )))
    }
}

/// Removes the pins a load made, when it goes no further.
pub(crate) fn unpin_all(paths: &[PathBuf]) {
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}

/// The kernel's answer to one program.
pub enum Verdict {
    /// Accepted, and loaded: `load` attaches this very program.
    Accepted {
        /// The program, loaded.
        program: Loaded,
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

/// An accepted program, loaded, with the maps made for it.
#[derive(Debug)]
pub struct Loaded {
    /// The program.
    pub fd: OwnedFd,
    /// Its maps, and the pins by name this load made ([`PinPlace::Shared`]),
    /// for the caller to keep or remove.
    pub maps: Maps,
}

/// Loads one XDP program of `obj` and asks the verifier for its log at
/// `level` (the `BPF_LOG_*` bits).
///
/// The object is prepared as aya prepares it ([`BpfObject::prepare`]), its
/// maps made as aya makes them ([`maps::create_all`]), and the program
/// loaded through xdpstat's own `BPF_PROG_LOAD`, because aya 0.14 grows its
/// log buffer ten times over, re-verifying each time, and stops at 16 MiB:
/// the kernel then keeps only the log's tail. Here the buffer starts at
/// 64 MiB and, if that is short, grows once to the size the kernel reports.
///
/// # Errors
///
/// [`WorkbenchError`] when the object cannot be prepared.
pub fn load(
    obj: &BpfObject,
    program: &XdpProgram,
    level: u32,
    opts: &LoadOptions,
) -> Result<Verdict, WorkbenchError> {
    let prepare = |reason: String| WorkbenchError::Prepare {
        path: obj.path().display().to_string(),
        reason,
    };
    let kfuncs = crate::kernel::kfunc::resolve(&obj.kfuncs_of(program));
    let mut features = KernelFeatures::probe_for(obj.has_core_relocations());
    features.kfuncs = kfuncs.ids.clone();
    let prepared = obj.prepare(program, &features).map_err(|e| match e {
        ObjectError::Parse { reason, .. } => prepare(reason),
        e => WorkbenchError::Object(e),
    })?;
    let unsized_maps: Vec<&str> = prepared
        .maps()
        .iter()
        .filter(|(name, map)| {
            map.max_entries() == 0
                && !SIZED_BY_LOADER.contains(&map.map_type())
                && !opts.max_entries.iter().any(|(n, _)| n == name)
        })
        .map(|(name, _)| name.as_str())
        .collect();
    if !unsized_maps.is_empty() {
        return Err(WorkbenchError::UnsizedMap {
            object_path: obj.path().display().to_string(),
            maps: unsized_maps.join(", "),
            options: unsized_maps
                .iter()
                .map(|m| format!("--max-entries {m}=N"))
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
    // Without its BTF the kernel still verifies the program, only without
    // source annotations; aya proceeds the same way for XDP.
    let btf = prepared
        .btf()
        .and_then(|b| crate::kernel::sys::btf_load(b).ok());
    let maps = maps::create_all(
        obj,
        prepared.maps(),
        btf.as_ref().map(AsFd::as_fd),
        opts.pins,
        &opts.max_entries,
    )?;
    let fds = maps
        .fds
        .iter()
        .map(|(name, fd)| (name.clone(), fd.as_raw_fd()))
        .collect();
    let kernel = prepared.finish(&fds).map_err(|e| {
        maps.unpin();
        match e {
            ObjectError::Parse { reason, .. } => prepare(reason),
            e => WorkbenchError::Object(e),
        }
    })?;
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
            btf: btf.as_ref().map(AsFd::as_fd),
            func_info: (kernel.func_info.0, &kernel.func_info.1, kernel.func_info.2),
            line_info: (kernel.line_info.0, &kernel.line_info.1, kernel.line_info.2),
            fd_array: &kfuncs.fd_array,
        },
        level,
        // Statistics alone fit in a page. For a whole log: zeroed memory
        // is mapped lazily, so a big first buffer costs little and spares
        // most huge logs a second verification.
        if level == LOG_STATS { 1 << 16 } else { 1 << 26 },
    );
    let log = String::from_utf8_lossy(&log).into_owned();
    match result {
        Ok(fd) => Ok(Verdict::Accepted {
            program: Loaded { fd, maps },
            log,
        }),
        Err(e) => {
            maps.unpin();
            Ok(Verdict::Rejected {
                errno: e.source,
                log,
            })
        }
    }
}

/// Statistics only (`BPF_LOG_STATS`): what an accepted program needs, at
/// a fraction of a full log's cost.
const LOG_STATS: u32 = 4;
/// Log level 1, with statistics.
const LOG_LEVEL_1: u32 = 1 | 4;
/// Log level 2, with statistics.
const LOG_LEVEL_2: u32 = 2 | 1 | 4;

/// What [`check`] found: the report, and an accepted program, loaded.
pub struct Checked {
    /// The report.
    pub report: ProgramReport,
    /// The accepted program, loaded, with its maps.
    pub loaded: Option<Loaded>,
}

/// Loads `program` and reports on it. The verifier runs first with
/// statistics only (`BPF_LOG_STATS`), which is all an accepted program
/// needs; a rejected one is verified again with a level-1 log, and one
/// whose diagnosis lacks the state to find the origin at level 2.
///
/// # Errors
///
/// [`WorkbenchError`] when aya fails before the verifier runs.
pub fn check(
    obj: &BpfObject,
    program: &XdpProgram,
    src_dirs: &[PathBuf],
    opts: &LoadOptions,
) -> Result<Checked, WorkbenchError> {
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
    let first = load(obj, program, LOG_STATS, opts)?;
    let (errno, text) = match first {
        Verdict::Accepted { program, log } => {
            let parsed = log::parse_str(&log);
            let mut r = base(None);
            r.accepted = Some(true);
            if let Some(stats) = &parsed.stats {
                r.stats = StatsReport::from(stats);
            }
            return Ok(Checked {
                report: r,
                loaded: Some(program),
            });
        }
        Verdict::Rejected { errno, .. } => match load(obj, program, LOG_LEVEL_1, opts)? {
            Verdict::Rejected { errno, log } => (errno, log),
            // The verifier changed its mind: keep its first answer.
            Verdict::Accepted { log, program } => {
                program.maps.unpin();
                (errno, log)
            }
        },
    };
    let parsed = log::parse_str(&text);
    let mut r = base(Some(&parsed));
    let mut level = 1;
    let mut kept = text;
    let needs_more = r
        .diagnosis
        .as_ref()
        .is_some_and(|d| d.origin.is_none() && d.lacks_state());
    if needs_more {
        if let Ok(Verdict::Rejected { log: verbose, .. }) = load(obj, program, LOG_LEVEL_2, opts) {
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
    Ok(Checked {
        report: r,
        loaded: None,
    })
}

/// What the running kernel supports, as aya probes it, for preparing an
/// object the way aya would load it.
pub(crate) struct KernelFeatures;

impl KernelFeatures {
    pub(crate) fn probe() -> xdpstat_analysis::obj::KernelFeatures<'static> {
        Self::probe_for(true)
    }

    /// As [`KernelFeatures::probe`], with the kernel's BTF only when `core`
    /// says the object has CO-RE relocations to apply: parsed, it is most
    /// of what checking a program costs in memory.
    pub(crate) fn probe_for(core: bool) -> xdpstat_analysis::obj::KernelFeatures<'static> {
        xdpstat_analysis::obj::KernelFeatures {
            features: aya::features(),
            kernel_btf: core
                .then(|| aya_obj::btf::Btf::from_sys_fs().ok())
                .flatten(),
            kern_version: aya::util::KernelVersion::current()
                .map_or(0, aya::util::KernelVersion::code),
            kfuncs: std::collections::HashMap::new(),
        }
    }
}
