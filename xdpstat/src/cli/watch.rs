//! `xdpstat watch`: the live view.
//!
//! Every interface is read through its own [`Watch`], the reader that
//! `run` uses too. On a terminal the samples feed the full-screen view of
//! [`crate::output::tui`]; otherwise (or with `--plain`) each sample is one line of
//! [`render::write_sample`], exactly as `run` prints it.

use std::{
    io::{self, IsTerminal, Write},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::error::{Error, Result};
use clap::Args;
use ratatui::crossterm::event::{self, Event};

use crate::kernel::iface;
use crate::kernel::privileges::{self, Capability};
use crate::model::attach::AttachError;
use crate::model::monitor::{self, Sample, Watch};
use crate::output::render;
use crate::output::tui::{self, Action, App, TerminalGuard};

/// `xdpstat watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Interfaces to watch; all that xdpstat counts on when none is given.
    #[arg(add = super::complete::interfaces())]
    pub ifaces: Vec<String>,
    /// Time between updates, e.g. 1s, 500ms.
    #[arg(long, default_value = "1s", value_parser = super::parse_interval)]
    pub interval: Duration,
    /// One line per interval per interface instead of the full-screen view
    /// (also what happens when stdout is not a terminal).
    #[arg(long)]
    pub plain: bool,
    /// One JSON object per line (implies --plain).
    #[arg(long)]
    pub json: bool,
    /// Stop after this many intervals.
    #[arg(long)]
    pub count: Option<u64>,
}

pub(super) fn watch_cmd(args: &WatchArgs) -> Result<()> {
    privileges::require("xdpstat watch", &[Capability::Bpf])?;
    let names = interfaces(&args.ifaces)?;
    // Handlers first: SIGTERM (and SIGINT outside raw mode) end the loop
    // rather than the process, so that the terminal is restored.
    let stop = super::stop_flag()?;
    let mut watches: Vec<Watch> = names.iter().map(|name| Watch::new(name)).collect();
    if args.plain || args.json || !io::stdout().is_terminal() {
        plain(&mut watches, args, &stop)
    } else {
        live(&mut watches, &names, args, &stop)
    }
}

/// The interfaces to watch: those given (each once), or all that xdpstat
/// counts on. A given interface that exists but is not counted yet is
/// watched anyway, since it may be attached later; one that does not
/// exist in this network namespace is an input error.
fn interfaces(given: &[String]) -> Result<Vec<String>> {
    if given.is_empty() {
        let counted = monitor::watched_interfaces()?;
        if counted.is_empty() {
            return Err(Error::Failed("xdpstat is not counting on any interface; attach first (`xdpstat attach IFACE`, or `--observe` for the program already there), or name the interfaces to watch".to_owned()));
        }
        return Ok(counted);
    }
    let mut names: Vec<String> = Vec::new();
    for name in given {
        let known = iface::index(name).is_some();
        if !known {
            return Err(AttachError::UnknownInterface { name: name.clone() }.into());
        }
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    Ok(names)
}

fn sample_all(watches: &mut [Watch]) -> Vec<Sample> {
    watches.iter_mut().map(Watch::sample).collect()
}

/// `run`'s lines: a first reading as the base, then one line per interface
/// per interval.
fn plain(watches: &mut [Watch], args: &WatchArgs, stop: &AtomicBool) -> Result<()> {
    sample_all(watches);
    let start = Instant::now();
    let mut out = io::stdout().lock();
    let mut n = 0u64;
    while args.count.is_none_or(|count| n < count) {
        n += 1;
        if !super::sleep_until(start + args.interval.mul_f64(n as f64), stop) {
            break;
        }
        for watch in watches.iter_mut() {
            render::write_sample(&mut out, &watch.sample(), args.json)?;
        }
        out.flush()?;
    }
    Ok(())
}

/// The full-screen view: samples on the interval's beat, keys in between.
fn live(
    watches: &mut [Watch],
    names: &[String],
    args: &WatchArgs,
    stop: &AtomicBool,
) -> Result<()> {
    let mut app = App::new(names, args.interval, Instant::now());
    app.update(sample_all(watches), Instant::now(), &clock());
    let mut guard = TerminalGuard::enter()?;
    let start = Instant::now();
    let mut n = 0u64;
    let mut dirty = true;
    // Keys are looked at at least this often, and the stop flag with them.
    let tick = Duration::from_millis(100);
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if dirty {
            guard.terminal().draw(|frame| tui::render(frame, &app))?;
            dirty = false;
        }
        let deadline = start + args.interval.mul_f64((n + 1) as f64);
        let now = Instant::now();
        if now >= deadline {
            app.update(sample_all(watches), now, &clock());
            dirty = true;
            n += 1;
            if args.count.is_some_and(|count| n >= count) {
                guard.terminal().draw(|frame| tui::render(frame, &app))?;
                return Ok(());
            }
            // After a stall (a suspended terminal), go on from now rather
            // than sampling in a burst to catch up.
            let behind = now.saturating_duration_since(deadline);
            if behind > args.interval {
                n += (behind.as_secs_f64() / args.interval.as_secs_f64()) as u64;
            }
            continue;
        }
        if event::poll((deadline - now).min(tick))? {
            match event::read()? {
                Event::Key(key) => match app.on_key(key) {
                    Action::Quit => return Ok(()),
                    Action::Redraw => dirty = true,
                    Action::Ignore => {}
                },
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
}

/// Local wall-clock time, `HH:MM:SS`, for notices (UTC, marked `Z`, when
/// the local time is unknown).
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match crate::kernel::sys::time::local_hms(secs) {
        Some((h, m, s)) => format!("{h:02}:{m:02}:{s:02}"),
        None => {
            let day = secs % 86_400;
            format!("{:02}:{:02}:{:02}Z", day / 3600, day % 3600 / 60, day % 60)
        }
    }
}
