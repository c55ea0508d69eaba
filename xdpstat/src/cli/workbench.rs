//! `load`, `check`, `explain` and `objdump`: the verifier workbench's
//! commands.

use std::{
    io::{self, BufRead, BufReader, Write},
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use crate::error::{Error, Result};
use clap::Args;
use serde::Serialize;

use crate::kernel::privileges::{self, Capability};
use crate::model::attach::{AttachError, AttachOptions, Loaded, LoadedXdp, Mode};
use crate::model::kernels::{self, KernelCheck};
use crate::model::workbench;
use crate::output::kernels as kernels_out;
use crate::output::report;
use xdpstat_analysis::input::{self, InputError};
use xdpstat_analysis::obj::{BpfObject, SourceFiles};
use xdpstat_analysis::report::{self as analysis, ProgramReport, SourceMap};
use xdpstat_analysis::verifier::log::{self, LogError, LogLines};

/// `xdpstat load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The BPF object file (.o).
    pub obj: PathBuf,
    /// The interface to attach to.
    #[arg(long, add = super::complete::interfaces())]
    pub dev: String,
    /// The section (or program name) to load; needed when the object has
    /// several XDP programs.
    #[arg(long)]
    pub sec: Option<String>,
    /// Where the program runs.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    /// Replace a program already attached to the interface, atomically.
    #[arg(long)]
    pub force: bool,
    /// Directories to search for source files.
    #[arg(long = "src", value_name = "DIR")]
    pub src: Vec<PathBuf>,
    /// The size of a map whose own loader sets it (`max_entries` 0 in the
    /// object), as `NAME=N`. Repeat for more.
    #[arg(long = "max-entries", value_name = "NAME=N", value_parser = parse_max_entries)]
    pub max_entries: Vec<(String, u32)>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `xdpstat check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The BPF object file (.o).
    pub obj: PathBuf,
    /// Only this section (or program name).
    #[arg(long)]
    pub sec: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 on warnings too.
    #[arg(long)]
    pub strict: bool,
    /// Also print the verifier log of rejected programs, with source lines.
    #[arg(long)]
    pub log: bool,
    /// Directories to search for source files.
    #[arg(long = "src", value_name = "DIR")]
    pub src: Vec<PathBuf>,
    /// The size of a map whose own loader sets it (`max_entries` 0 in the
    /// object), as `NAME=N`. Repeat for more.
    #[arg(long = "max-entries", value_name = "NAME=N", value_parser = parse_max_entries)]
    pub max_entries: Vec<(String, u32)>,
    /// Also verify on this kernel, booted under qemu (slow: tens of
    /// seconds per kernel): `6.1` or `6.12` (Debian's newest image of that
    /// line, fetched once), or a path to an unpacked kernel (boot/vmlinuz-*
    /// and lib/modules/*), its vmlinuz, or a kernel .deb. Repeat for more.
    #[arg(long = "kernel", value_name = "6.1|6.12|PATH")]
    pub kernels: Vec<String>,
    /// With --kernel: seconds each guest may take once it is up.
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    pub kernel_timeout: u64,
    /// Inside a `--kernel` guest: write the reports and logs here.
    #[arg(long, value_name = "DIR", hide = true, conflicts_with = "kernels")]
    pub guest_out: Option<PathBuf>,
}

/// `xdpstat explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The saved verifier log (`-` reads standard input).
    #[arg(long = "log", value_name = "FILE")]
    pub log: PathBuf,
    /// The object the log is from, for source lines and warnings.
    #[arg(long)]
    pub obj: Option<PathBuf>,
    /// The section (or program name) in the object the log is about.
    #[arg(long)]
    pub sec: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Directories to search for source files.
    #[arg(long = "src", value_name = "DIR")]
    pub src: Vec<PathBuf>,
}

/// `xdpstat objdump`.
#[derive(Debug, Args)]
pub struct ObjdumpArgs {
    /// The BPF object file (.o).
    pub obj: PathBuf,
    /// Only this section (or program name).
    #[arg(long)]
    pub sec: Option<String>,
    /// Directories to search for source files.
    #[arg(long = "src", value_name = "DIR")]
    pub src: Vec<PathBuf>,
}

/// `{"programs": [...]}`.
#[derive(Serialize)]
struct ProgramsJson<'a> {
    programs: &'a [ProgramReport],
}

fn src_dirs(obj: &Path, extra: &[PathBuf]) -> Vec<PathBuf> {
    analysis::source_dirs(Some(obj), extra)
}

/// The full rejection report: header, annotated log, diagnosis, warnings.
fn write_rejection(
    out: &mut dyn Write,
    r: &ProgramReport,
    obj: &BpfObject,
    src: &[PathBuf],
) -> io::Result<()> {
    report::write_header(out, r)?;
    writeln!(out)?;
    writeln!(out, "Verifier analysis:")?;
    writeln!(out)?;
    let linked = obj
        .programs()
        .iter()
        .find(|p| p.name == r.name)
        .and_then(|p| obj.linked(p).ok());
    let mut sources = SourceMap::new(linked.as_ref(), None, src_dirs(obj.path(), src));
    let log = r.log.as_deref().unwrap_or_default();
    report::write_annotated_log(out, log.lines().map(str::to_owned), &mut sources)?;
    writeln!(out)?;
    if r.log_level == Some(2) {
        writeln!(
            out,
            "(log level 2: level 1 lacked the state to find the origin)"
        )?;
    }
    report::write_summary(out, r)
}

pub(super) fn load_cmd(args: &LoadArgs) -> Result<u8> {
    // The same checks as attach, before anything is loaded.
    crate::model::attach::resolve(&args.dev)?;
    let obj = BpfObject::open(&args.obj)?;
    let program = obj.single(args.sec.as_deref())?.clone();
    privileges::require("xdpstat load", &[Capability::Bpf, Capability::NetAdmin])?;
    // Maps pinned by name go in bpffs, as attach's pins do.
    crate::kernel::bpffs::ensure_mounted().map_err(AttachError::from)?;
    let checked = workbench::check(
        &obj,
        &program,
        &args.src,
        &workbench::LoadOptions {
            pins: workbench::PinPlace::Shared,
            max_entries: args.max_entries.clone(),
        },
    )?;
    let r = checked.report;
    let mut out = io::stdout().lock();
    let Some(loaded) = checked.loaded else {
        if args.json {
            serde_json::to_writer(&mut out, &ProgramsJson { programs: &[r] })?;
            writeln!(out)?;
        } else {
            write_rejection(&mut out, &r, &obj, &args.src)?;
        }
        return Ok(1);
    };
    let opts = AttachOptions {
        mode: args.mode,
        layout: Default::default(),
        force: args.force,
    };
    // The pins by name this load made, which detach removes with the
    // rest; a pin that was there before is only reused, and stays.
    let made = |name: &str| {
        loaded.maps.pinned.iter().any(|p| {
            p.file_name()
                .is_some_and(|f| f == std::ffi::OsStr::new(name))
        })
    };
    let attached = crate::model::attach::attach_with(&args.dev, &opts, "xdpstat load", |pins| {
        for (map_name, fd) in &loaded.maps.fds {
            let mut pin = |name: String| {
                let path = pins.stage(&name);
                crate::kernel::sys::obj_pin(fd.as_fd(), &path).map_err(|e| AttachError::Load {
                    what: format!("pinning map {map_name}"),
                    source: e.into(),
                })
            };
            pin(pin_name(map_name))?;
            if made(map_name) {
                pin(format!(
                    "{}{}",
                    crate::model::attach::BY_NAME_PREFIX,
                    pin_name(map_name)
                ))?;
            }
        }
        // The very program the verifier accepted above is attached.
        Ok(Loaded {
            program: LoadedXdp::Program(Box::new(pins.adopt(loaded.fd.as_fd())?)),
            counters_kept: false,
        })
    });
    let attached = match attached {
        Ok(a) => a,
        Err(e) => {
            loaded.maps.unpin();
            return Err(e.into());
        }
    };
    let a = attached.attachment;
    if args.json {
        #[derive(Serialize)]
        struct Loaded<'a> {
            attachment: &'a crate::model::attach::Attachment,
            programs: &'a [ProgramReport],
        }
        serde_json::to_writer(
            &mut out,
            &Loaded {
                attachment: &a,
                programs: std::slice::from_ref(&r),
            },
        )?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{}: attached {} from {} section '{}' (prog id {}, {} mode); {}",
            a.interface,
            program.name,
            obj.path().display(),
            program.section,
            a.prog_id,
            a.mode.name(),
            report::stats_line(&r)
        )?;
        writeln!(
            out,
            "pinned under {}; `xdpstat detach {}` removes it",
            a.pin_dir.display(),
            a.interface
        )?;
        for w in &r.warnings {
            report::write_warning(&mut out, w)?;
        }
    }
    Ok(0)
}

/// A bpffs-safe pin name for a map (bpffs refuses dots).
/// `NAME=N`, for `--max-entries`.
fn parse_max_entries(text: &str) -> std::result::Result<(String, u32), String> {
    let (name, size) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' is not NAME=N"))?;
    let size: u32 = size
        .parse()
        .map_err(|_| format!("'{size}' is not a number of entries"))?;
    if name.is_empty() || size == 0 {
        return Err(format!("'{text}' needs a map name and a size above 0"));
    }
    Ok((name.to_owned(), size))
}

fn pin_name(map: &str) -> String {
    let name: String = map
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match name.as_str() {
        "link" | "prog" | "" => format!("map_{name}"),
        _ => name,
    }
}

pub(super) fn check_cmd(args: &CheckArgs) -> Result<u8> {
    let obj = BpfObject::open(&args.obj)?;
    let programs: Vec<_> = obj
        .select(args.sec.as_deref())?
        .into_iter()
        .cloned()
        .collect();
    privileges::require("xdpstat check", &[Capability::Bpf])?;
    let guests = if args.kernels.is_empty() {
        Vec::new()
    } else {
        let kernels = kernels::prepare(&args.kernels, &mut |spec, msg| {
            eprintln!("xdpstat: [{spec}] {msg}");
        })?;
        eprintln!(
            "xdpstat: checking on {} more kernel(s) under qemu's emulator, without KVM: tens of seconds per kernel, minutes for a large program",
            args.kernels.len()
        );
        kernels
    };
    let mut reports = Vec::new();
    for program in &programs {
        // Each program is loaded alone and unloaded when its object
        // drops; check pins nothing that outlives it.
        let checked = workbench::check(
            &obj,
            program,
            &args.src,
            &workbench::LoadOptions {
                max_entries: args.max_entries.clone(),
                ..workbench::LoadOptions::check()
            },
        )?;
        reports.push(checked.report);
    }
    if let Some(dir) = &args.guest_out {
        kernels::write_results(dir, &reports).map_err(|e| {
            Error::Failed(format!("writing the report into {}: {e}", dir.display()))
        })?;
    }
    if !guests.is_empty() {
        return check_on_kernels(args, &obj, reports, &guests);
    }
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &ProgramsJson { programs: &reports })?;
        writeln!(out)?;
    } else {
        for r in &reports {
            if r.accepted == Some(false) && args.log {
                write_rejection(&mut out, r, &obj, &args.src)?;
            } else {
                report::write_summary(&mut out, r)?;
            }
        }
    }
    let rejected = reports.iter().any(|r| r.accepted != Some(true));
    let warned = reports.iter().any(|r| !r.warnings.is_empty());
    Ok(u8::from(rejected || (args.strict && warned)))
}

/// `check --kernel`: the host's reports beside each guest's.
fn check_on_kernels(
    args: &CheckArgs,
    obj: &BpfObject,
    host: Vec<ProgramReport>,
    guests: &[crate::vm::image::Kernel],
) -> Result<u8> {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let req = kernels::Request {
        obj: absolute(obj.path()),
        sec: args.sec.clone(),
        src: args.src.iter().map(|p| absolute(p)).collect(),
        timeout: std::time::Duration::from_secs(args.kernel_timeout),
    };
    let mut checks = vec![KernelCheck {
        kernel: crate::kernel::sys::uname_release(),
        host: true,
        programs: host,
    }];
    checks.extend(kernels::check(guests, &req, &|spec, msg| {
        eprintln!("xdpstat: [{spec}] {msg}");
    })?);
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &kernels_out::KernelsJson::new(&checks))?;
        writeln!(out)?;
    } else {
        kernels_out::write_table(&mut out, &checks)?;
        for check in &checks {
            for r in &check.programs {
                if r.accepted == Some(true) {
                    continue;
                }
                writeln!(out)?;
                writeln!(out, "── {} on {} ──", r.name, kernels_out::label(check))?;
                if args.log {
                    write_rejection(&mut out, r, obj, &args.src)?;
                } else {
                    report::write_summary_without_warnings(&mut out, r)?;
                }
            }
        }
        kernels_out::write_checked_warnings(&mut out, &checks)?;
    }
    let rejected = checks
        .iter()
        .flat_map(|c| &c.programs)
        .any(|r| r.accepted != Some(true));
    let warned = checks
        .iter()
        .flat_map(|c| &c.programs)
        .any(|r| !r.warnings.is_empty());
    Ok(u8::from(rejected || (args.strict && warned)))
}

pub(super) fn explain_cmd(args: &ExplainArgs) -> Result<u8> {
    let obj = args.obj.as_deref().map(BpfObject::open).transpose()?;
    let program = match &obj {
        Some(o) => Some(o.single(args.sec.as_deref())?.clone()),
        None => None,
    };
    let stdin = args.log.as_os_str() == "-";
    let name = if stdin {
        "standard input".to_owned()
    } else {
        args.log.display().to_string()
    };
    let open = || -> Result<Box<dyn BufRead>> {
        if stdin {
            return Ok(Box::new(BufReader::new(io::stdin())));
        }
        let (file, _) = input::open(&args.log, log::MAX_LOG_BYTES).map_err(|e| match e {
            InputError::Open { source, .. } => {
                Error::Usage(format!("cannot read the log {name}: {source}"))
            }
            InputError::NotAFile { kind, .. } => Error::Usage(format!(
                "cannot read the log {name}: it is {kind}, not a regular file; pipe it in with --log - instead"
            )),
            InputError::TooLarge { size, .. } => Error::Usage(format!(
                "the log {name} is {}, more than the {} a verifier log can be (the kernel writes at most 1 GiB); give one log",
                input::size_text(size),
                input::size_text(log::MAX_LOG_BYTES)
            )),
        })?;
        Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
    };
    let pair = obj.as_ref().zip(program.as_ref());
    let (r, parsed) = analysis::explain(open()?, pair, &args.src).map_err(|e| match e {
        LogError::Read(e) => Error::Usage(format!("cannot read the log {name}: {e}")),
        LogError::NotALog(why) => Error::Usage(format!(
            "{name} is not a verifier log ({why}); give the text the kernel's verifier wrote (bpftool prog load -d, or the log your loader printed)"
        )),
        LogError::TooLong => Error::Usage(format!(
            "{name} is longer than the {} a verifier log can be (the kernel writes at most 1 GiB); give one log",
            input::size_text(log::MAX_LOG_BYTES)
        )),
    })?;
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(
            &mut out,
            &ProgramsJson {
                programs: std::slice::from_ref(&r),
            },
        )?;
        writeln!(out)?;
    } else {
        if r.accepted == Some(false) {
            report::write_header(&mut out, &r)?;
            writeln!(out)?;
        }
        // The log again, annotated: streamed from the file a second time
        // (it can be hundreds of MB); stdin cannot be read twice.
        if args.log.as_os_str() != "-" {
            writeln!(out, "Verifier analysis:")?;
            writeln!(out)?;
            let linked = pair.and_then(|(o, p)| o.linked(p).ok());
            let dirs = match &obj {
                Some(o) => src_dirs(o.path(), &args.src),
                None => args.src.clone(),
            };
            let mut sources = SourceMap::new(linked.as_ref(), Some(&parsed), dirs);
            // Read as the parser read it: the same lines, bounded, lossy.
            let mut reader = LogLines::new(open()?);
            let lines =
                std::iter::from_fn(move || reader.next_line().ok().flatten().map(|l| l.text));
            report::write_annotated_log(&mut out, lines, &mut sources)?;
            writeln!(out)?;
        }
        report::write_summary(&mut out, &r)?;
    }
    Ok(match r.accepted {
        Some(true) => 0,
        _ => 1,
    })
}

pub(super) fn objdump_cmd(args: &ObjdumpArgs) -> Result<()> {
    let obj = BpfObject::open(&args.obj)?;
    let programs = obj.select(args.sec.as_deref())?;
    let mut files = SourceFiles::new(src_dirs(obj.path(), &args.src));
    let mut out = io::stdout().lock();
    for (n, program) in programs.into_iter().enumerate() {
        if n > 0 {
            writeln!(out)?;
        }
        let linked = obj.linked(program)?;
        report::write_objdump(&mut out, &linked, &mut files)?;
    }
    Ok(())
}
