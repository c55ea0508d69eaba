//! Turning counter records into text and JSON. Nothing here talks to the
//! kernel.

use std::io::{self, Write};

use serde::Serialize;

use crate::model::counters::{CpuCounters, Rates, Snapshot};
use crate::model::layout::Layout;
use crate::model::monitor::{CpuRates, Notice, Sample};

/// `show --json`: `{"interface", "map", "cpus": [...], "total": {...}}`.
#[derive(Debug, Serialize)]
pub struct ShowJson<'a> {
    /// The interface, or `null` for `show --map-path`.
    pub interface: Option<&'a str>,
    /// The pin read by `show --map-path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_path: Option<&'a std::path::Path>,
    /// `percpu` or `shared`.
    pub map: Layout,
    /// `own`: xdpstat's own program counts (`observe` for the observers
    /// of another loader's program, in `output::observe`).
    pub source: &'static str,
    /// The map's id.
    pub map_id: u32,
    /// Per CPU; empty for a shared map.
    pub cpus: &'a [CpuCounters],
    /// Sums.
    pub total: TotalJson,
}

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct TotalJson {
    /// Frames.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

impl<'a> ShowJson<'a> {
    /// The JSON record of a snapshot.
    pub fn new(interface: Option<&'a str>, snapshot: &'a Snapshot) -> Self {
        Self {
            interface,
            map_path: None,
            map: snapshot.layout,
            source: "own",
            map_id: snapshot.map_id,
            cpus: &snapshot.cpus,
            total: TotalJson {
                packets: snapshot.total.packets,
                bytes: snapshot.total.bytes,
            },
        }
    }
}

/// Writes what the tutorial's `stats_user` prints: a block per CPU (for a
/// per-CPU map, or with `per_cpu`), then `Overall:`.
///
/// # Errors
///
/// Any write error.
pub fn write_show(out: &mut impl Write, snapshot: &Snapshot, per_cpu: bool) -> io::Result<()> {
    if per_cpu || snapshot.layout == Layout::Percpu {
        for cpu in &snapshot.cpus {
            let offline = if cpu.online { "" } else { " (offline)" };
            writeln!(out, "CPU: {}{offline}", cpu.cpu)?;
            writeln!(out, "\tPackets: {}", cpu.packets)?;
            writeln!(out, "\tBytes:   {} Bytes", cpu.bytes)?;
        }
        if per_cpu && snapshot.layout == Layout::Shared {
            writeln!(
                out,
                "(shared map: all CPUs update one value, so there is no per-CPU split)"
            )?;
        }
    }
    writeln!(out, "Overall:")?;
    writeln!(out, "\tPackets: {}", snapshot.total.packets)?;
    writeln!(out, "\tBytes:   {} Bytes", snapshot.total.bytes)?;
    Ok(())
}

/// A count with SI prefixes (k, M, G, T), as `1.50 M`.
pub fn si(value: f64) -> String {
    const PREFIXES: [&str; 5] = ["", "k", "M", "G", "T"];
    let mut v = value;
    let mut i = 0;
    while v.abs() >= 1000.0 && i + 1 < PREFIXES.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} ")
    } else {
        format!("{v:.2} {}", PREFIXES[i])
    }
}

/// One line of `run` (and `watch --plain`): totals and the rates over the
/// last interval, or `-` where there is no rate yet or the counters were
/// reset.
pub fn run_line(interface: &str, snapshot: &Snapshot, rates: Option<&Rates>) -> String {
    let (pps, bps) = match rates {
        Some(r) => (format!("{}pkt/s", si(r.pps)), format!("{}bit/s", si(r.bps))),
        None => ("- pkt/s".to_owned(), "- bit/s".to_owned()),
    };
    format!(
        "{interface:<15} packets {:>12}  bytes {:>15}  {pps:>14}  {bps:>14}",
        snapshot.total.packets, snapshot.total.bytes
    )
}

/// One JSON line of `run --json` and `watch --plain --json`.
#[derive(Debug, Serialize)]
pub struct RunJson<'a> {
    /// Interface name.
    pub interface: &'a str,
    /// Layout, when the counters could be read.
    pub map: Option<Layout>,
    /// Cumulative counters.
    pub total: Option<TotalJson>,
    /// Per CPU, for a per-CPU map.
    pub cpus: &'a [CpuCounters],
    /// Rates over the interval; `null` for the first line or after a reset.
    pub rates: Option<&'a Rates>,
    /// Per-CPU rates.
    pub cpu_rates: &'a [CpuRates],
    /// What changed, if anything.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub notice: Option<&'a Notice>,
}

/// Writes one sample as `run` prints it: a line of totals and rates (or
/// JSON), followed by the notice, if any, in brackets.
///
/// # Errors
///
/// Write errors.
pub fn write_sample(out: &mut impl Write, sample: &Sample, json: bool) -> io::Result<()> {
    // The step carries its own notice of a re-observe.
    if let Some(step) = &sample.observed {
        return super::observe::write_step(out, &sample.iface, step, json);
    }
    if json {
        let line = RunJson {
            interface: &sample.iface,
            map: sample.snapshot.as_ref().map(|s| s.layout),
            total: sample.snapshot.as_ref().map(|s| TotalJson {
                packets: s.total.packets,
                bytes: s.total.bytes,
            }),
            cpus: sample.snapshot.as_ref().map_or(&[], |s| &s.cpus),
            rates: sample.rates.as_ref(),
            cpu_rates: &sample.cpu_rates,
            notice: sample.notice.as_ref(),
        };
        serde_json::to_writer(&mut *out, &line)?;
        return writeln!(out);
    }
    let notice = sample
        .notice
        .as_ref()
        .map(|n| format!("  [{}]", n.text()))
        .unwrap_or_default();
    match &sample.snapshot {
        Some(s) => writeln!(
            out,
            "{}{notice}",
            run_line(&sample.iface, s, sample.rates.as_ref())
        ),
        None => writeln!(out, "{:<15} -{notice}", sample.iface),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use xdpstat_common::Counters;

    use super::*;

    fn snapshot(layout: Layout) -> Snapshot {
        let cpus = match layout {
            Layout::Percpu => vec![
                CpuCounters {
                    cpu: 0,
                    packets: 3,
                    bytes: 180,
                    online: true,
                },
                CpuCounters {
                    cpu: 1,
                    packets: 1,
                    bytes: 60,
                    online: false,
                },
            ],
            Layout::Shared => Vec::new(),
        };
        Snapshot {
            layout,
            map_id: 7,
            cpus,
            total: Counters {
                packets: 4,
                bytes: 240,
            },
            taken: Instant::now(),
        }
    }

    fn show(layout: Layout, per_cpu: bool) -> String {
        let mut out = Vec::new();
        write_show(&mut out, &snapshot(layout), per_cpu).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn percpu_show_reads_like_stats_user() {
        assert_eq!(
            show(Layout::Percpu, false),
            "CPU: 0\n\tPackets: 3\n\tBytes:   180 Bytes\n\
             CPU: 1 (offline)\n\tPackets: 1\n\tBytes:   60 Bytes\n\
             Overall:\n\tPackets: 4\n\tBytes:   240 Bytes\n"
        );
    }

    #[test]
    fn shared_show_has_only_the_overall_block() {
        assert_eq!(
            show(Layout::Shared, false),
            "Overall:\n\tPackets: 4\n\tBytes:   240 Bytes\n"
        );
    }

    #[test]
    fn show_json_has_the_documented_shape() {
        let snap = snapshot(Layout::Percpu);
        let json = serde_json::to_value(ShowJson::new(Some("veth0"), &snap)).unwrap();
        assert_eq!(json["interface"], "veth0");
        assert_eq!(json["map"], "percpu");
        assert_eq!(json["cpus"][1]["cpu"], 1);
        assert_eq!(json["cpus"][1]["packets"], 1);
        assert_eq!(json["cpus"][1]["bytes"], 60);
        assert_eq!(json["total"]["packets"], 4);
        assert_eq!(json["total"]["bytes"], 240);
        let shared = snapshot(Layout::Shared);
        let json = serde_json::to_value(ShowJson::new(Some("veth0"), &shared)).unwrap();
        assert_eq!(json["cpus"], serde_json::json!([]));
        assert_eq!(json["map"], "shared");
    }

    #[test]
    fn si_prefixes() {
        assert_eq!(si(0.0), "0 ");
        assert_eq!(si(999.0), "999 ");
        assert_eq!(si(1500.0), "1.50 k");
        assert_eq!(si(2_500_000_000.0), "2.50 G");
    }
}
