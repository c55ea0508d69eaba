//! `show` of an interface whose program xdpstat observes: the program, a
//! row per verdict and the total, per CPU on request, and JSON.

use std::io::{self, Write};

use serde::Serialize;
use xdpstat_common::ACTIONS;

use super::render::TotalJson;
use crate::model::counters::CpuCounters;
use crate::model::observe::{Observation, ProgRef};

/// `show --json` of an observed interface: today's keys, and `source`,
/// `observed`, `actions` (also per CPU), `bytes_at`, `replaced_by`.
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
    cpus: Vec<CpuJson>,
    actions: ActionsJson,
    total: TotalJson,
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
        let cpus =
            seen.cpus
                .iter()
                .enumerate()
                .map(|(i, c)| CpuJson {
                    cpu: c.cpu,
                    packets: c.packets,
                    bytes: c.bytes,
                    online: c.online,
                    actions: actions_json(seen.actions.iter().map(|(per_cpu, _)| {
                        per_cpu.get(i).map_or((0, 0), |p| (p.packets, p.bytes))
                    })),
                })
                .collect();
        Self {
            interface,
            map: "percpu",
            source: "observe",
            observed: &seen.observed,
            replaced_by: seen.replaced_by,
            bytes_at: "entry",
            cpus,
            actions: actions_json(seen.actions.iter().map(|(_, s)| (s.packets, s.bytes))),
            total: TotalJson {
                packets: seen.total.packets,
                bytes: seen.total.bytes,
            },
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

/// The text of one reading.
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
    if per_cpu {
        for (i, cpu) in seen.cpus.iter().enumerate() {
            let offline = if cpu.online { "" } else { " (offline)" };
            writeln!(out, "CPU: {}{offline}", cpu.cpu)?;
            let rows = ACTIONS.iter().zip(&seen.actions).map(|(name, (per, _))| {
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
                "\t",
                rows.chain(std::iter::once(("total", cpu.packets, cpu.bytes))),
            )?;
        }
        writeln!(out, "Overall:")?;
    }
    let rows = ACTIONS
        .iter()
        .zip(&seen.actions)
        .map(|(name, (_, sum))| (*name, sum.packets, sum.bytes));
    write_rows(
        out,
        if per_cpu { "\t" } else { "" },
        rows.chain(std::iter::once((
            "total",
            seen.total.packets,
            seen.total.bytes,
        ))),
    )
}

/// One line of `run --observe` per step: the total, then each verdict's
/// count and rate; or, with `json`, one object.
///
/// # Errors
///
/// Write errors.
pub fn write_step(
    out: &mut impl Write,
    interface: &str,
    step: &crate::model::observe::Step,
    json: bool,
) -> io::Result<()> {
    let seen = &step.observation;
    if json {
        #[derive(Serialize)]
        struct StepJson<'a> {
            #[serde(flatten)]
            show: ObservedJson<'a>,
            rates: Option<serde_json::Map<String, serde_json::Value>>,
            total_rate: Option<crate::model::observe::Rate>,
            notice: Option<&'a str>,
        }
        let rates = step.rates.as_ref().map(|rates| {
            ACTIONS
                .iter()
                .zip(rates)
                .map(|(name, r)| ((*name).to_owned(), serde_json::json!(r)))
                .collect()
        });
        serde_json::to_writer(
            &mut *out,
            &StepJson {
                show: ObservedJson::new(interface, seen),
                rates,
                total_rate: step.total_rate,
                notice: step.notice.as_deref(),
            },
        )?;
        return writeln!(out);
    }
    if let Some(n) = &step.notice {
        writeln!(out, "notice: {n}")?;
    }
    let rate = |r: Option<&crate::model::observe::Rate>| {
        r.map_or_else(
            || "-".to_owned(),
            |r| format!("{} pps", super::render::si(r.pps)),
        )
    };
    let mut line = format!(
        "{interface} prog {}: {} pkts {} bytes ({})",
        seen.observed.prog_id,
        seen.total.packets,
        seen.total.bytes,
        rate(step.total_rate.as_ref())
    );
    for (i, (name, (_, sum))) in ACTIONS.iter().zip(&seen.actions).enumerate() {
        let r = step.rates.as_ref().and_then(|r| r.get(i));
        line.push_str(&format!(" | {name} {} ({})", sum.packets, rate(r)));
    }
    writeln!(out, "{line}")
}
