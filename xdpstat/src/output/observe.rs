//! `show` of an interface whose program xdpstat observes: the program, a
//! row per verdict and the total, per CPU on request, each component of a
//! dispatcher the same way, and JSON.

use std::io::{self, Write};

use serde::Serialize;
use xdpstat_common::ACTIONS;

use super::render::TotalJson;
use crate::model::counters::CpuCounters;
use crate::model::observe::{Counts, Observation, ProgRef, Rate, Rates, Step};

/// `show --json` of an observed interface: today's keys, and `source`,
/// `observed`, `actions` (also per CPU), `bytes_at`, `replaced_by`, and a
/// dispatcher's `components`.
#[derive(Serialize)]
pub struct ObservedJson<'a> {
    interface: &'a str,
    map: &'static str,
    source: &'static str,
    observed: &'a ProgRef,
    /// The program running there now, when it is not the observed one.
    replaced_by: Option<u32>,
    /// When the bytes are measured: on entry, as received.
    bytes_at: &'static str,
    #[serde(flatten)]
    counts: CountsJson,
    components: Vec<ComponentJson<'a>>,
}

/// One program's counts: per CPU, per action, and the total.
#[derive(Serialize)]
struct CountsJson {
    cpus: Vec<CpuJson>,
    actions: ActionsJson,
    total: TotalJson,
}

impl CountsJson {
    fn new(counts: &Counts) -> Self {
        let cpus =
            counts
                .cpus
                .iter()
                .enumerate()
                .map(|(i, c)| CpuJson {
                    cpu: c.cpu,
                    packets: c.packets,
                    bytes: c.bytes,
                    online: c.online,
                    actions: actions_json(counts.actions.iter().map(|(per_cpu, _)| {
                        per_cpu.get(i).map_or((0, 0), |p| (p.packets, p.bytes))
                    })),
                })
                .collect();
        Self {
            cpus,
            actions: actions_json(counts.actions.iter().map(|(_, s)| (s.packets, s.bytes))),
            total: TotalJson {
                packets: counts.total.packets,
                bytes: counts.total.bytes,
            },
        }
    }
}

/// A dispatcher's component: its slot, the program, and its counts.
#[derive(Serialize)]
struct ComponentJson<'a> {
    slot: u32,
    #[serde(flatten)]
    program: &'a ProgRef,
    #[serde(flatten)]
    counts: CountsJson,
}

#[derive(Serialize)]
struct CpuJson {
    cpu: u32,
    packets: u64,
    bytes: u64,
    online: bool,
    actions: ActionsJson,
}

/// The verdicts in the kernel's order (`ACTIONS`), each `{"packets",
/// "bytes"}`.
#[derive(Serialize)]
struct ActionsJson {
    aborted: TotalJson,
    drop: TotalJson,
    pass: TotalJson,
    tx: TotalJson,
    redirect: TotalJson,
    other: TotalJson,
}

fn actions_json(counts: impl Iterator<Item = (u64, u64)>) -> ActionsJson {
    let mut all = [TotalJson {
        packets: 0,
        bytes: 0,
    }; 6];
    for (slot, (packets, bytes)) in all.iter_mut().zip(counts) {
        *slot = TotalJson { packets, bytes };
    }
    let [aborted, drop, pass, tx, redirect, other] = all;
    ActionsJson {
        aborted,
        drop,
        pass,
        tx,
        redirect,
        other,
    }
}

impl<'a> ObservedJson<'a> {
    /// The JSON record of one reading.
    pub fn new(interface: &'a str, seen: &'a Observation) -> Self {
        Self {
            interface,
            map: "percpu",
            source: "observe",
            observed: &seen.observed,
            replaced_by: seen.replaced_by,
            bytes_at: "entry",
            counts: CountsJson::new(&seen.counts),
            components: seen
                .components
                .iter()
                .map(|c| ComponentJson {
                    slot: c.slot,
                    program: &c.program,
                    counts: CountsJson::new(&c.counts),
                })
                .collect(),
        }
    }
}

fn write_rows(
    out: &mut impl Write,
    indent: &str,
    rows: impl Iterator<Item = (&'static str, u64, u64)>,
) -> io::Result<()> {
    writeln!(
        out,
        "{indent}{:<9} {:>12} {:>16}",
        "ACTION", "PACKETS", "BYTES"
    )?;
    for (name, packets, bytes) in rows {
        writeln!(out, "{indent}{name:<9} {packets:>12} {bytes:>16}")?;
    }
    Ok(())
}

/// A row per verdict and the total, each CPU's first with `per_cpu`.
fn write_counts(
    out: &mut impl Write,
    indent: &str,
    counts: &Counts,
    per_cpu: bool,
) -> io::Result<()> {
    let inner = format!("{indent}\t");
    if per_cpu {
        for (i, cpu) in counts.cpus.iter().enumerate() {
            let offline = if cpu.online { "" } else { " (offline)" };
            writeln!(out, "{indent}CPU: {}{offline}", cpu.cpu)?;
            let rows = ACTIONS.iter().zip(&counts.actions).map(|(name, (per, _))| {
                let c = per.get(i).copied().unwrap_or(CpuCounters {
                    cpu: cpu.cpu,
                    packets: 0,
                    bytes: 0,
                    online: cpu.online,
                });
                (*name, c.packets, c.bytes)
            });
            write_rows(
                out,
                &inner,
                rows.chain(std::iter::once(("total", cpu.packets, cpu.bytes))),
            )?;
        }
        writeln!(out, "{indent}Overall:")?;
    }
    let rows = ACTIONS
        .iter()
        .zip(&counts.actions)
        .map(|(name, (_, sum))| (*name, sum.packets, sum.bytes));
    write_rows(
        out,
        if per_cpu { &inner } else { indent },
        rows.chain(std::iter::once((
            "total",
            counts.total.packets,
            counts.total.bytes,
        ))),
    )
}

/// The text of one reading: the interface's verdicts, then each
/// component's.
///
/// # Errors
///
/// Write errors.
pub fn write_observed(
    out: &mut impl Write,
    interface: &str,
    seen: &Observation,
    per_cpu: bool,
) -> io::Result<()> {
    let p = &seen.observed;
    writeln!(
        out,
        "{interface}: observing prog id {} ({}, tag {}); bytes as each frame arrived",
        p.prog_id, p.name, p.tag
    )?;
    if let Some(now) = seen.replaced_by {
        writeln!(
            out,
            "note: {interface} now runs prog id {now}, not the observed {}: these counts are frozen; `xdpstat detach {interface} && xdpstat attach {interface} --observe` follows the new one",
            p.prog_id
        )?;
    }
    write_counts(out, "", &seen.counts, per_cpu)?;
    for c in &seen.components {
        let q = &c.program;
        writeln!(
            out,
            "\ncomponent {}: prog id {} ({}, tag {})",
            c.slot, q.prog_id, q.name, q.tag
        )?;
        write_counts(out, "  ", &c.counts, per_cpu)?;
    }
    Ok(())
}

/// `label`, the total, then the count and rate of each verdict returned.
fn step_line(label: String, counts: &Counts, rates: Option<&Rates>) -> String {
    let rate = |r: Option<&Rate>| {
        r.map_or_else(
            || "-".to_owned(),
            |r| format!("{}pkt/s", super::render::si(r.pps)),
        )
    };
    let mut line = format!(
        "{label}: {} pkts {} bytes ({})",
        counts.total.packets,
        counts.total.bytes,
        rate(rates.map(|r| &r.total))
    );
    // The verdicts it returned at all; JSON has every one.
    for (i, (name, (_, sum))) in ACTIONS.iter().zip(&counts.actions).enumerate() {
        if sum.packets == 0 {
            continue;
        }
        let r = rates.and_then(|r| r.actions.get(i));
        line.push_str(&format!(" | {name} {} ({})", sum.packets, rate(r)));
    }
    line
}

/// `{"drop": {"pps", "bps"}, ...}`.
fn rates_json(rates: &Rates) -> serde_json::Map<String, serde_json::Value> {
    ACTIONS
        .iter()
        .zip(&rates.actions)
        .map(|(name, r)| ((*name).to_owned(), serde_json::json!(r)))
        .collect()
}

/// One line of `run --observe` per step: the total, then each verdict's
/// count and rate, and a line per component; or, with `json`, one object.
///
/// # Errors
///
/// Write errors.
pub fn write_step(
    out: &mut impl Write,
    interface: &str,
    step: &Step,
    json: bool,
) -> io::Result<()> {
    let seen = &step.observation;
    if json {
        #[derive(Serialize)]
        struct ComponentRates {
            slot: u32,
            rates: serde_json::Map<String, serde_json::Value>,
            total_rate: Rate,
        }
        #[derive(Serialize)]
        struct StepJson<'a> {
            #[serde(flatten)]
            show: ObservedJson<'a>,
            rates: Option<serde_json::Map<String, serde_json::Value>>,
            total_rate: Option<Rate>,
            component_rates: Option<Vec<ComponentRates>>,
            notice: Option<&'a str>,
        }
        let component_rates = step.component_rates.as_ref().map(|all| {
            seen.components
                .iter()
                .zip(all)
                .map(|(c, r)| ComponentRates {
                    slot: c.slot,
                    rates: rates_json(r),
                    total_rate: r.total,
                })
                .collect()
        });
        serde_json::to_writer(
            &mut *out,
            &StepJson {
                show: ObservedJson::new(interface, seen),
                rates: step.rates.as_ref().map(rates_json),
                total_rate: step.rates.as_ref().map(|r| r.total),
                component_rates,
                notice: step.notice.as_deref(),
            },
        )?;
        return writeln!(out);
    }
    if let Some(n) = &step.notice {
        writeln!(out, "notice: {n}")?;
    }
    let label = format!("{interface} prog {}", seen.observed.prog_id);
    writeln!(
        out,
        "{}",
        step_line(label, &seen.counts, step.rates.as_ref())
    )?;
    for (i, c) in seen.components.iter().enumerate() {
        let rates = step.component_rates.as_ref().and_then(|r| r.get(i));
        let label = format!(
            "  component {} prog {} ({})",
            c.slot, c.program.prog_id, c.program.name
        );
        writeln!(out, "{}", step_line(label, &c.counts, rates))?;
    }
    Ok(())
}
