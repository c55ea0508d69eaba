//! The command line: argument definitions and what each command does with
//! the library.

use std::{
    io::{self, Write},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use crate::error::{Error, Result};
use clap::{Args, Parser, Subcommand};

mod complete;
mod export;
mod inspect;
mod mapdump;
mod values;
mod watch;
mod workbench;

pub use complete::VAR as COMPLETE_VAR;

use crate::model::attach::{self, AttachOptions, Attachment, Mode};
use crate::model::counters::CountersMap;
use crate::model::layout::Layout;
use crate::model::monitor::Watch;
use crate::output::render;

/// Count every packet and byte an interface receives, with XDP.
#[derive(Debug, Parser)]
#[command(name = "xdpstat", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// xdpstat's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach the counter program to an interface; it stays attached, and
    /// its counters pinned, after xdpstat exits.
    Attach(AttachArgs),
    /// Detach xdpstat's program from an interface and remove its pins.
    Detach(DetachArgs),
    /// Print an interface's counters, per CPU and overall.
    Show(ShowArgs),
    /// Attach if needed, then print totals and rates every interval;
    /// Ctrl-C detaches what this run attached.
    Run(RunArgs),
    /// Load an object's XDP program and attach it (`ip link set dev IFACE
    /// xdp obj OBJ sec NAME`); explain a rejection at source level.
    Load(workbench::LoadArgs),
    /// Load every XDP program of an object into the kernel without
    /// attaching it, and report the verifier's verdict and diagnosis.
    Check(workbench::CheckArgs),
    /// Diagnose a saved verifier log, with source lines from the object.
    Explain(workbench::ExplainArgs),
    /// Disassemble a program with its source lines, in the kernel's syntax
    /// and with the verifier's instruction indexes.
    Objdump(workbench::ObjdumpArgs),
    /// Every interface that runs an XDP program, and who attached it.
    Status(inspect::StatusArgs),
    /// Loaded BPF programs.
    #[command(subcommand)]
    Prog(inspect::ProgCommand),
    /// Loaded BPF maps: list, dump, pin by id, unpin.
    #[command(subcommand)]
    Map(MapCommand),
    /// A live view of packets and bits per second, per interface and CPU.
    Watch(watch::WatchArgs),
    /// Serve the counters as Prometheus metrics on /metrics.
    Export(export::ExportArgs),
    /// Print the shell's completion script: `source <(xdpstat completions
    /// bash)`. Interface names and map ids complete from the kernel.
    Completions(complete::CompletionsArgs),
}

/// `xdpstat map …`.
#[derive(Debug, Subcommand)]
pub enum MapCommand {
    /// List BPF maps and the programs using them.
    List(inspect::MapListArgs),
    /// Print a map's keys and values, as bpftool does.
    Dump(mapdump::DumpArgs),
    /// Pin a map by id to a path on bpffs.
    Pin(inspect::PinArgs),
    /// Remove a map's pin.
    Unpin(inspect::UnpinArgs),
}

/// `xdpstat attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The interface, e.g. eth0.
    #[arg(add = complete::interfaces())]
    pub iface: String,
    /// Where the program runs.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    /// How it counts: per-CPU values (fast, default) or one shared value
    /// with atomic adds.
    #[arg(long = "map", value_enum, default_value_t = Layout::Percpu)]
    pub layout: Layout,
    /// Replace a program already attached to the interface, atomically.
    #[arg(long, conflicts_with = "observe")]
    pub force: bool,
    /// Count for the program another loader attached, without replacing
    /// it: per verdict, through fentry/fexit observers attached to it.
    #[arg(long)]
    pub observe: bool,
    /// Print the attachment as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `xdpstat detach`.
#[derive(Debug, Args)]
pub struct DetachArgs {
    /// The interface.
    #[arg(add = complete::interfaces())]
    pub iface: String,
}

/// `xdpstat show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The interface whose counters to print.
    #[arg(
        required_unless_present = "map_path",
        conflicts_with = "map_path",
        add = complete::interfaces()
    )]
    pub iface: Option<String>,
    /// Read a counters map pinned by another loader instead: an ARRAY or
    /// PERCPU_ARRAY whose value starts with u64 packets, u64 bytes.
    #[arg(long, value_name = "PATH")]
    pub map_path: Option<std::path::PathBuf>,
    /// Print a block per CPU even for a shared map.
    #[arg(long)]
    pub per_cpu: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `xdpstat run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The interface.
    #[arg(add = complete::interfaces())]
    pub iface: String,
    /// Time between lines, e.g. 1s, 500ms, 2m.
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Where the program runs, if this run attaches it [default: auto].
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Counter layout, if this run attaches it [default: percpu].
    #[arg(long = "map", value_enum)]
    pub layout: Option<Layout>,
    /// Stop after this many intervals.
    #[arg(long)]
    pub count: Option<u64>,
    /// Print one JSON object per interval.
    #[arg(long)]
    pub json: bool,
    /// Count per verdict for the program another loader attached, through
    /// xdpstat's observers, and follow it when it is replaced.
    #[arg(long, conflicts_with_all = ["mode", "layout"])]
    pub observe: bool,
}

/// Parses an interval: `1s`, `250ms`, `2m`, or a plain number of seconds.
///
/// # Errors
///
/// A message for clap when the text is not a positive duration.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    const MIN: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(24 * 60 * 60);
    let duration = match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 => {
            Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
        }
        Ok(_) => return Err("the interval must be positive".to_owned()),
        Err(_) => humantime::parse_duration(text).map_err(|e| format!("{e} (try 1s or 500ms)"))?,
    };
    if duration < MIN {
        return Err("the interval must be at least 10ms".to_owned());
    }
    if duration > MAX {
        return Err("the interval must be at most 24h".to_owned());
    }
    Ok(duration)
}

/// Runs a parsed command line, and gives the exit code for an outcome that
/// is not an error (1 when a program was rejected).
///
/// # Errors
///
/// Whatever the command failed with; `main` prints it and picks the exit
/// code.
pub fn run(cli: Cli) -> Result<u8> {
    let done = |r: Result<()>| r.map(|()| 0);
    match cli.command {
        Command::Attach(args) => done(attach_cmd(&args)),
        Command::Detach(args) => done(detach_cmd(&args)),
        Command::Show(args) => done(show_cmd(&args)),
        Command::Run(args) => done(run_cmd(&args)),
        Command::Load(args) => workbench::load_cmd(&args),
        Command::Check(args) => workbench::check_cmd(&args),
        Command::Explain(args) => workbench::explain_cmd(&args),
        Command::Objdump(args) => done(workbench::objdump_cmd(&args)),
        Command::Status(args) => done(inspect::status_cmd(&args)),
        Command::Prog(cmd) => done(inspect::prog_cmd(&cmd)),
        Command::Map(MapCommand::List(args)) => done(inspect::map_list_cmd(&args)),
        Command::Map(MapCommand::Dump(args)) => done(mapdump::dump_cmd(&args)),
        Command::Map(MapCommand::Pin(args)) => done(inspect::map_pin_cmd(&args)),
        Command::Map(MapCommand::Unpin(args)) => done(inspect::map_unpin_cmd(&args)),
        Command::Watch(args) => done(watch::watch_cmd(&args)),
        Command::Export(args) => done(export::export_cmd(&args)),
        Command::Completions(args) => done(complete::completions_cmd(&args)),
    }
}

fn describe(a: &Attachment) -> String {
    let map = match a.layout {
        Some(layout) => format!(", {layout} map id {}", a.map_id),
        None => String::new(),
    };
    format!(
        "{} (prog id {}, {} mode{map})",
        a.program,
        a.prog_id,
        a.mode.name()
    )
}

fn attach_cmd(args: &AttachArgs) -> Result<()> {
    let opts = AttachOptions {
        mode: args.mode,
        layout: args.layout,
        force: args.force,
    };
    if args.observe {
        return observe_cmd(args);
    }
    let done = attach::attach(&args.iface, &opts)?;
    let a = &done.attachment;
    if args.json {
        println!("{}", serde_json::to_string(a)?);
        return Ok(());
    }
    let verb = match done.replaced {
        Some(old) => format!("replaced prog id {} with", old.prog_id),
        None => "attached".to_owned(),
    };
    println!("{}: {verb} {}", a.interface, describe(a));
    let kept = if done.counters_kept {
        " (counters kept from before)"
    } else {
        ""
    };
    println!("pinned under {}{kept}", a.pin_dir.display());
    Ok(())
}

fn observe_cmd(args: &AttachArgs) -> Result<()> {
    let done = crate::model::observe::observe(&args.iface)?;
    let p = &done.observed;
    if args.json {
        #[derive(serde::Serialize)]
        struct Component<'a> {
            slot: u32,
            #[serde(flatten)]
            program: &'a crate::model::observe::ProgRef,
        }
        #[derive(serde::Serialize)]
        struct Json<'a> {
            interface: &'a str,
            source: &'static str,
            observed: &'a crate::model::observe::ProgRef,
            components: Vec<Component<'a>>,
            pin_dir: &'a std::path::Path,
        }
        println!(
            "{}",
            serde_json::to_string(&Json {
                interface: &done.interface,
                source: "observe",
                observed: p,
                components: done
                    .components
                    .iter()
                    .map(|(slot, program)| Component {
                        slot: *slot,
                        program
                    })
                    .collect(),
                pin_dir: &done.pin_dir,
            })?
        );
        return Ok(());
    }
    println!(
        "{}: observing prog id {} ({}, tag {}), which stays attached; counting its verdicts",
        done.interface, p.prog_id, p.name, p.tag
    );
    for (slot, c) in &done.components {
        println!(
            "  and its component {slot}: prog id {} ({}, tag {})",
            c.prog_id, c.name, c.tag
        );
    }
    println!("pinned under {}", done.pin_dir.display());
    Ok(())
}

fn detach_cmd(args: &DetachArgs) -> Result<()> {
    if crate::model::observe::is_observed(&args.iface) {
        crate::kernel::privileges::require(
            "xdpstat detach",
            &[crate::kernel::privileges::Capability::Bpf],
        )?;
        let observed = crate::model::observe::unobserve(&args.iface)?;
        match observed {
            Some(id) => println!(
                "{}: removed xdpstat's observers; prog id {id} stays attached",
                args.iface
            ),
            None => println!("{}: removed xdpstat's observers", args.iface),
        }
        return Ok(());
    }
    let done = attach::detach(&args.iface)?;
    if done.interface_gone {
        println!(
            "{}: the interface no longer exists; removed xdpstat's stale pins under {}",
            done.interface,
            done.pin_dir.display()
        );
    } else {
        match done.prog_id {
            Some(id) => println!("{}: detached prog id {id}", done.interface),
            None => println!(
                "{}: xdpstat's program was no longer attached",
                done.interface
            ),
        }
        println!("removed {}", done.pin_dir.display());
    }
    Ok(())
}

/// Opens the counters of xdpstat's program on an interface of this
/// network namespace, saying what to do when there are none.
fn open_counters(iface: &str) -> Result<CountersMap> {
    let unknown = || attach::AttachError::UnknownInterface {
        name: iface.to_owned(),
    };
    if !crate::kernel::iface::is_valid_name(iface) || crate::kernel::iface::index(iface).is_none() {
        return Err(unknown().into());
    }
    match attach::inspect(iface)? {
        Some(a) if a.map_id != 0 => Ok(CountersMap::open_id_or_pin(
            a.map_id,
            &a.pin_dir.join(xdpstat_common::COUNTERS_MAP),
        )?),
        Some(a) => Err(Error::Failed(format!(
            "xdpstat's program on {iface} ({}, prog id {}) has no counters map",
            a.program,
            a.prog_id
        ))),
        // Not an input error: the interface exists, xdpstat just is not
        // counting there (exit 1).
        None => Err(Error::Failed(format!(
            "xdpstat is not counting on {iface} in this network namespace (start with `xdpstat attach {iface}`)"
        ))),
    }
}

fn show_cmd(args: &ShowArgs) -> Result<()> {
    crate::kernel::privileges::require(
        "xdpstat show",
        &[crate::kernel::privileges::Capability::Bpf],
    )?;
    if let Some(iface) = args.iface.as_deref() {
        if crate::model::observe::is_observed(iface) {
            let seen = crate::model::observe::read(iface)?;
            let mut out = io::stdout().lock();
            if args.json {
                serde_json::to_writer(
                    &mut out,
                    &crate::output::observe::ObservedJson::new(iface, &seen),
                )?;
                writeln!(out)?;
            } else {
                crate::output::observe::write_observed(&mut out, iface, &seen, args.per_cpu)?;
            }
            return Ok(());
        }
    }
    let map = match (&args.iface, &args.map_path) {
        (Some(iface), _) => open_counters(iface)?,
        (None, Some(path)) => CountersMap::open(path)?,
        (None, None) => unreachable!("clap requires one"),
    };
    let snapshot = map.read()?;
    let mut out = io::stdout().lock();
    if args.json {
        let mut json = render::ShowJson::new(args.iface.as_deref(), &snapshot);
        json.map_path = args.map_path.as_deref();
        serde_json::to_writer(&mut out, &json)?;
        writeln!(out)?;
    } else {
        render::write_show(&mut out, &snapshot, args.per_cpu)?;
    }
    Ok(())
}

/// Sets a flag on SIGINT and SIGTERM instead of dying, so that `run` can
/// detach what it attached.
pub(super) fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Error::from(e).context("installing a signal handler"))?;
    }
    Ok(stop)
}

/// Sleeps until `deadline`, waking early when `stop` is set. Returns
/// whether to go on.
pub(super) fn sleep_until(deadline: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

fn run_cmd(args: &RunArgs) -> Result<()> {
    // Handlers first, so that a Ctrl-C during the attach still detaches.
    let stop = stop_flag()?;
    if args.observe {
        return run_observe(args, &stop);
    }
    let attached_here = match attach::inspect(&args.iface)? {
        Some(a) => {
            if let Some(layout) = args.layout.filter(|&l| Some(l) != a.layout) {
                return Err(Error::Failed(format!(
                    "xdpstat already has {} on {}, not the {layout} counter program; drop --map, or `xdpstat detach {}` first",
                    a.program,
                    args.iface,
                    args.iface
                )));
            }
            eprintln!(
                "xdpstat: {} already counted by {}; leaving it attached on exit",
                args.iface,
                describe(&a)
            );
            None
        }
        None => {
            let opts = AttachOptions {
                mode: args.mode.unwrap_or_default(),
                layout: args.layout.unwrap_or_default(),
                force: false,
            };
            let done = attach::attach(&args.iface, &opts)?;
            eprintln!(
                "xdpstat: attached {} to {}; Ctrl-C detaches it",
                describe(&done.attachment),
                args.iface
            );
            Some(done.attachment.prog_id)
        }
    };
    // Detaches even if the loop panics.
    let guard = DetachOnDrop {
        iface: args.iface.clone(),
        prog_id: attached_here,
    };
    let result = report_loop(args, &stop);
    std::mem::forget(guard);
    if let Some(prog_id) = attached_here {
        match attach::detach_program(&args.iface, prog_id) {
            Ok(attach::Leaving::Detached) => eprintln!("xdpstat: detached from {}", args.iface),
            Ok(attach::Leaving::Replaced { prog_id: now }) => eprintln!(
                "xdpstat: {} no longer runs the program this run attached (prog id {prog_id}){}; leaving it as it is",
                args.iface,
                now.map_or_else(String::new, |id| format!(": something replaced it with prog id {id}"))
            ),
            Err(e) => {
                // Report the loop's error first if there was one.
                result?;
                return Err(e.into());
            }
        }
    }
    match result {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

/// Detaches what `run` attached when the loop unwinds; disarmed (forgotten)
/// on the normal path, which detaches and reports itself.
struct DetachOnDrop {
    iface: String,
    /// The program this run attached, if it attached one.
    prog_id: Option<u32>,
}

impl Drop for DetachOnDrop {
    fn drop(&mut self) {
        if let Some(prog_id) = self.prog_id {
            let _ = attach::detach_program(&self.iface, prog_id);
        }
    }
}

/// `run --observe`: observes (unless observed already), reports each
/// interval, and removes on exit the observers this run attached.
fn run_observe(args: &RunArgs, stop: &AtomicBool) -> Result<()> {
    use crate::model::observe;
    let ours = if observe::is_observed(&args.iface) {
        eprintln!(
            "xdpstat: {} observed already; leaving the observers on exit",
            args.iface
        );
        false
    } else {
        let done = observe::observe(&args.iface)?;
        eprintln!(
            "xdpstat: observing prog id {} ({}) on {}; Ctrl-C removes the observers",
            done.observed.prog_id, done.observed.name, args.iface
        );
        true
    };
    let result = (|| -> Result<()> {
        let mut follow = observe::Follow::new(&args.iface);
        follow.step()?;
        let mut out = io::stdout().lock();
        every_interval(args, Instant::now(), stop, || {
            let step = follow.step()?;
            crate::output::observe::write_step(&mut out, &args.iface, &step, args.json)?;
            Ok(out.flush()?)
        })
    })();
    if ours {
        match observe::unobserve(&args.iface) {
            Ok(_) => eprintln!("xdpstat: removed the observers from {}", args.iface),
            Err(e) => {
                result?;
                return Err(e.into());
            }
        }
    }
    match result {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

fn report_loop(args: &RunArgs, stop: &AtomicBool) -> Result<()> {
    let mut watch = Watch::new(&args.iface);
    let first = watch.sample();
    let Some(start) = first.snapshot.as_ref().map(|s| s.taken) else {
        let why = first.notice.map_or_else(String::new, |n| n.text());
        return Err(Error::Failed(format!(
            "cannot read the counters of {}: {why}",
            args.iface
        )));
    };
    let mut out = io::stdout().lock();
    every_interval(args, start, stop, || {
        render::write_sample(&mut out, &watch.sample(), args.json)?;
        Ok(out.flush()?)
    })
}

/// Calls `tick` every `--interval` after `start`, `--count` times or until
/// `stop` is set; the deadlines do not drift with the time `tick` takes.
fn every_interval(
    args: &RunArgs,
    start: Instant,
    stop: &AtomicBool,
    mut tick: impl FnMut() -> Result<()>,
) -> Result<()> {
    let mut n = 0u64;
    while args.count.is_none_or(|count| n < count) {
        n += 1;
        let Some(deadline) = u32::try_from(n)
            .ok()
            .and_then(|n| args.interval.checked_mul(n))
            .and_then(|d| start.checked_add(d))
        else {
            break;
        };
        if !sleep_until(deadline, stop) {
            break;
        }
        tick()?;
    }
    Ok(())
}

/// Whether an error is a closed stdout (`xdpstat run … | head`), which is
/// not a failure.
pub fn is_broken_pipe(error: &Error) -> bool {
    error.is_broken_pipe()
}

/// An error and its causes on one line, each cause once: a message that
/// already quotes its cause is not followed by it again.
pub fn message(error: &Error) -> String {
    crate::error::chain(error)
}

/// The exit code for an error: 2 for bad input, 1 for an operation that
/// failed.
pub fn exit_code(error: &Error) -> u8 {
    error.exit_code()
}
