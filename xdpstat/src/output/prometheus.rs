//! Prometheus metrics: a [`prometheus_client`] collector over the counters,
//! encoded from the [`Reading`]s of [`crate::model::scrape`]; the HTTP
//! server behind `xdpstat export` is [`crate::server`].
//!
//! Every scrape reads the counters once, through the same [`Watch`] reader
//! that `run` and `watch` use; there is no background polling, so the
//! numbers are as fresh as the scrape. The series are:
//!
//! - `xdpstat_packets_total{interface[,cpu]}` and
//!   `xdpstat_bytes_total{interface[,cpu]}`: counters, the sums over CPUs
//!   (as ebpf_exporter exports them), or one series per possible CPU with
//!   `--per-cpu`;
//! - for an interface whose program xdpstat observes (`attach --observe`),
//!   the same two families with an `action` label (`aborted`, `drop`,
//!   `pass`, `tx`, `redirect`, `other`), so that `sum by (interface)` is
//!   the total; dropped once the program is replaced;
//! - for each component of an observed libxdp dispatcher,
//!   `xdpstat_component_packets_total` and `xdpstat_component_bytes_total`
//!   `{interface,slot,prog_id,name,action[,cpu]}`: what it saw and returned
//!   (families of their own, so that the interface's sums stay its total);
//! - `xdpstat_program_info{interface,prog_id,tag,mode,map}`: 1 for the
//!   program xdpstat has attached;
//! - `xdpstat_observed_program_info{interface,prog_id,name,tag,state}`: 1
//!   for an observed program, `state` `live` or `replaced`;
//! - `xdpstat_scrape_errors_total`: interfaces whose counters could not be
//!   read, summed over scrapes. One failing interface never fails the scrape.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, PoisonError,
    },
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
    registry::Registry,
};
use xdpstat_common::Counters;

use crate::model::scrape::{Reading, Source};

/// The content type of the OpenMetrics text that
/// [`prometheus_client::encoding::text`] writes.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The collector: on each scrape it reads its [`Source`] once and encodes
/// what it read.
#[derive(Debug)]
pub struct XdpstatCollector<S> {
    source: S,
    per_cpu: bool,
    scrape_errors: AtomicU64,
    /// Each failing interface's last failure, so that the log says when an
    /// interface starts or stops failing rather than on every scrape.
    failing: Mutex<BTreeMap<String, String>>,
}

impl<S: Source> XdpstatCollector<S> {
    /// A collector over `source`; `per_cpu` adds a `cpu` label and one
    /// series per CPU instead of the sums.
    pub fn new(source: S, per_cpu: bool) -> Self {
        Self {
            source,
            per_cpu,
            scrape_errors: AtomicU64::new(0),
            failing: Mutex::default(),
        }
    }

    /// Counts and logs this scrape's failures, and returns the total count.
    fn note_failures(&self, readings: &[Reading]) -> u64 {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        let mut failed = 0;
        for reading in readings {
            let iface = &reading.sample.iface;
            match reading.failure() {
                Some(why) => {
                    failed += 1;
                    if failing.get(iface) != Some(&why) {
                        eprintln!("xdpstat: export: {iface}: {why}");
                        failing.insert(iface.clone(), why);
                    }
                }
                None => {
                    if failing.remove(iface).is_some() {
                        eprintln!("xdpstat: export: {iface}: reading again");
                    }
                }
            }
        }
        // Interfaces no longer exported are no longer failing either.
        failing.retain(|iface, _| readings.iter().any(|r| &r.sample.iface == iface));
        self.scrape_errors.fetch_add(failed, Ordering::Relaxed) + failed
    }
}

impl<S: Source> Collector for XdpstatCollector<S> {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let readings = self.source.read();
        let errors = self.note_failures(&readings);
        encode_readings(encoder, &readings, self.per_cpu, errors)
    }
}

type Labels = Vec<(&'static str, String)>;

/// The counter series of one reading: the sum, or one per CPU.
fn counter_series(reading: &Reading, per_cpu: bool) -> Vec<(Labels, Counters)> {
    if let Some(seen) = &reading.observed {
        return observed_series(&reading.sample.iface, seen, per_cpu);
    }
    let Some(snapshot) = &reading.sample.snapshot else {
        return Vec::new();
    };
    let iface = || ("interface", reading.sample.iface.clone());
    // A shared map has no per-CPU values; its one series keeps no `cpu`
    // label, so that a sum over the family is still the total.
    if per_cpu && !snapshot.cpus.is_empty() {
        // Offline CPUs too: they keep their counts, and a counter that lost
        // a series would look like a reset.
        snapshot
            .cpus
            .iter()
            .map(|c| (vec![iface(), ("cpu", c.cpu.to_string())], c.counters()))
            .collect()
    } else {
        vec![(vec![iface()], snapshot.total)]
    }
}

/// An observed program's series: one per verdict (`action`), and per CPU
/// with `per_cpu`, so that `sum by (interface)` is the interface's total.
/// None once the program was replaced: its counts are frozen, and
/// `xdpstat_observed_program_info` says `state="replaced"`.
fn observed_series(
    iface: &str,
    seen: &crate::model::observe::Observation,
    per_cpu: bool,
) -> Vec<(Labels, Counters)> {
    if seen.replaced_by.is_some() {
        return Vec::new();
    }
    action_series(&[("interface", iface.to_owned())], &seen.counts, per_cpu)
}

/// The series of an observed dispatcher's components, labelled with their
/// slot and program: none once the dispatcher was replaced.
fn component_series(reading: &Reading, per_cpu: bool) -> Vec<(Labels, Counters)> {
    let Some(seen) = reading
        .observed
        .as_ref()
        .filter(|s| s.replaced_by.is_none())
    else {
        return Vec::new();
    };
    seen.components
        .iter()
        .flat_map(|c| {
            let base = [
                ("interface", reading.sample.iface.clone()),
                ("slot", c.slot.to_string()),
                ("prog_id", c.program.prog_id.to_string()),
                ("name", c.program.name.clone()),
            ];
            action_series(&base, &c.counts, per_cpu)
        })
        .collect()
}

/// A series per verdict of `counts`, with `base` and `action` labels, and
/// per CPU with `per_cpu`.
fn action_series(
    base: &[(&'static str, String)],
    counts: &crate::model::observe::Counts,
    per_cpu: bool,
) -> Vec<(Labels, Counters)> {
    let mut series = Vec::new();
    for (action, (cpus, sum)) in xdpstat_common::ACTIONS.iter().zip(&counts.actions) {
        let labels = || {
            let mut l = base.to_vec();
            l.push(("action", (*action).to_owned()));
            l
        };
        if per_cpu {
            for c in cpus {
                let mut l = labels();
                l.push(("cpu", c.cpu.to_string()));
                series.push((l, c.counters()));
            }
        } else {
            series.push((labels(), *sum));
        }
    }
    series
}

/// A counter family, and which of the counters it carries.
struct CounterFamily {
    name: &'static str,
    help: &'static str,
    value: fn(&Counters) -> u64,
}

const COMPONENT_FAMILIES: [CounterFamily; 2] = [
    CounterFamily {
        name: "xdpstat_component_packets",
        help: "Frames a component of an observed XDP dispatcher (libxdp) saw, by the verdict it returned.",
        value: |c| c.packets,
    },
    CounterFamily {
        name: "xdpstat_component_bytes",
        help: "Bytes of the frames a component of an observed XDP dispatcher (libxdp) saw, as they reached it, by its verdict.",
        value: |c| c.bytes,
    },
];

const COUNTER_FAMILIES: [CounterFamily; 2] = [
    CounterFamily {
        name: "xdpstat_packets",
        help: "Frames the interface received, counted by xdpstat's XDP program.",
        value: |c| c.packets,
    },
    CounterFamily {
        name: "xdpstat_bytes",
        help: "Bytes of the frames the interface received, counted by xdpstat's XDP program.",
        value: |c| c.bytes,
    },
];

/// Encodes `series` into each of `families`.
fn encode_counters(
    encoder: &mut DescriptorEncoder,
    families: &[CounterFamily],
    series: &[(Labels, Counters)],
) -> Result<(), fmt::Error> {
    for f in families {
        let mut family = encoder.encode_descriptor(f.name, f.help, None, MetricType::Counter)?;
        for (labels, c) in series {
            family
                .encode_family(labels)?
                .encode_counter::<NoLabelSet, _, u64>(&(f.value)(c), None)?;
        }
    }
    Ok(())
}

/// Encodes one scrape's readings, and the scrape error count.
///
/// # Errors
///
/// Only the encoder's own (a failed write).
pub fn encode_readings(
    mut encoder: DescriptorEncoder,
    readings: &[Reading],
    per_cpu: bool,
    scrape_errors: u64,
) -> Result<(), fmt::Error> {
    let series: Vec<(Labels, Counters)> = readings
        .iter()
        .flat_map(|r| counter_series(r, per_cpu))
        .collect();
    let components: Vec<(Labels, Counters)> = readings
        .iter()
        .flat_map(|r| component_series(r, per_cpu))
        .collect();
    encode_counters(&mut encoder, &COUNTER_FAMILIES, &series)?;
    if !components.is_empty() {
        encode_counters(&mut encoder, &COMPONENT_FAMILIES, &components)?;
    }

    let mut info = encoder.encode_descriptor(
        "xdpstat_program_info",
        "The XDP program xdpstat has attached to the interface; always 1.",
        None,
        MetricType::Gauge,
    )?;
    for reading in readings {
        let Some(p) = &reading.program else { continue };
        let labels: Labels = vec![
            ("interface", reading.sample.iface.clone()),
            ("prog_id", p.prog_id.to_string()),
            ("tag", p.tag.clone()),
            ("mode", p.mode.to_owned()),
            ("map", p.map.to_owned()),
        ];
        info.encode_family(&labels)?.encode_gauge(&1i64)?;
    }

    let mut observed = encoder.encode_descriptor(
        "xdpstat_observed_program_info",
        "Another loader's XDP program whose verdicts xdpstat observes; always 1. state=replaced once the interface runs another program, whose series are then dropped.",
        None,
        MetricType::Gauge,
    )?;
    for reading in readings {
        let Some(seen) = &reading.observed else {
            continue;
        };
        let labels: Labels = vec![
            ("interface", reading.sample.iface.clone()),
            ("prog_id", seen.observed.prog_id.to_string()),
            ("name", seen.observed.name.clone()),
            ("tag", seen.observed.tag.clone()),
            (
                "state",
                if seen.replaced_by.is_some() {
                    "replaced"
                } else {
                    "live"
                }
                .to_owned(),
            ),
        ];
        observed.encode_family(&labels)?.encode_gauge(&1i64)?;
    }

    encoder
        .encode_descriptor(
            "xdpstat_scrape_errors",
            "Interfaces whose counters could not be read, summed over scrapes.",
            None,
            MetricType::Counter,
        )?
        .encode_counter::<NoLabelSet, _, u64>(&scrape_errors, None)
}

/// An exposition format prometheus-client writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, which Prometheus asks for first.
    OpenMetrics,
    /// The Prometheus text format 0.0.4: for clients that do not ask for
    /// OpenMetrics (curl, promtool, older scrapers).
    PrometheusText,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it is
    /// acceptable and not less preferred than `text/plain`, the classic text
    /// otherwise.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::PrometheusText;
        };
        let quality = |wanted: &str| {
            accept
                .split(',')
                .filter_map(|range| {
                    let mut params = range.split(';').map(str::trim);
                    let media = params.next()?;
                    if !media.eq_ignore_ascii_case(wanted) {
                        return None;
                    }
                    let q = params
                        .find_map(|p| p.strip_prefix("q="))
                        .map_or(Some(1.0), |q| q.parse::<f32>().ok())?;
                    Some(q)
                })
                .fold(None, |best: Option<f32>, q| {
                    Some(best.map_or(q, |b| b.max(q)))
                })
        };
        match (
            quality("application/openmetrics-text"),
            quality("text/plain"),
        ) {
            (Some(om), text) if om > 0.0 && text.is_none_or(|t| om >= t) => Self::OpenMetrics,
            _ => Self::PrometheusText,
        }
    }

    /// Its `Content-Type`.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Self::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The registry behind `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// A registry holding one [`XdpstatCollector`] over `source`.
    pub fn new(source: impl Source, per_cpu: bool) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(XdpstatCollector::new(source, per_cpu)));
        Self { registry }
    }

    /// Scrapes: reads the counters and encodes them in `format`.
    ///
    /// # Errors
    ///
    /// Only the encoder's own; a failing interface is counted, not an error.
    pub fn encode(&self, format: Format) -> Result<String, fmt::Error> {
        let mut body = String::new();
        match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut body, &self.registry)?
            }
            Format::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(&mut body, &self.registry)?;
            }
        }
        Ok(body)
    }
}

/// An HTTP answer, before it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

const INDEX: &str = "<!DOCTYPE html>\n<html><head><title>xdpstat exporter</title></head>\n<body><h1>xdpstat exporter</h1><p>Metrics are at <a href=\"/metrics\">/metrics</a>.</p></body></html>\n";

/// Answers one request: `GET /metrics` scrapes, `GET /` points there.
pub fn route(metrics: &Metrics, method: &str, url: &str, accept: Option<&str>) -> Reply {
    let text = |status, body: &str| Reply {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.to_owned(),
    };
    let path = url.split_once('?').map_or(url, |(path, _)| path);
    let readable = method == "GET" || method == "HEAD";
    match path {
        "/metrics" | "/" if !readable => text(405, "only GET and HEAD are served\n"),
        "/metrics" => {
            let format = Format::negotiate(accept);
            match metrics.encode(format) {
                Ok(body) => Reply {
                    status: 200,
                    content_type: format.content_type(),
                    body,
                },
                Err(fmt::Error) => text(500, "encoding the metrics failed\n"),
            }
        }
        "/" => Reply {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: INDEX.to_owned(),
        },
        _ => text(404, "not found; metrics are at /metrics\n"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::model::{
        counters::{CpuCounters, Snapshot},
        layout::Layout,
        monitor::{Notice, Sample},
        scrape::ProgramLabels,
    };

    #[derive(Debug)]
    struct Fixed(Vec<Reading>);

    impl Source for Fixed {
        fn read(&self) -> Vec<Reading> {
            self.0.clone()
        }
    }

    fn sample(iface: &str, snapshot: Option<Snapshot>, notice: Option<Notice>) -> Sample {
        Sample {
            iface: iface.to_owned(),
            snapshot,
            rates: None,
            cpu_rates: Vec::new(),
            notice,
            present: true,
            observed: None,
        }
    }

    fn percpu(cpus: &[(u64, u64)]) -> Snapshot {
        let cpus: Vec<CpuCounters> = cpus
            .iter()
            .enumerate()
            .map(|(cpu, &(packets, bytes))| CpuCounters {
                cpu: cpu as u32,
                packets,
                bytes,
                online: cpu != 1,
            })
            .collect();
        Snapshot {
            layout: Layout::Percpu,
            map_id: 7,
            total: Counters {
                packets: cpus.iter().map(|c| c.packets).sum(),
                bytes: cpus.iter().map(|c| c.bytes).sum(),
            },
            cpus,
            taken: Instant::now(),
        }
    }

    fn readings() -> Vec<Reading> {
        vec![
            Reading {
                sample: sample("veth0", Some(percpu(&[(900, 57600), (100, 151400)])), None),
                program: Some(ProgramLabels {
                    prog_id: 2341,
                    tag: "0123456789abcdef".to_owned(),
                    mode: "native",
                    map: "percpu",
                }),
                program_error: None,
                observed: None,
            },
            Reading {
                sample: sample(
                    "veth1",
                    Some(Snapshot {
                        layout: Layout::Shared,
                        map_id: 8,
                        cpus: Vec::new(),
                        total: Counters {
                            packets: 3,
                            bytes: 180,
                        },
                        taken: Instant::now(),
                    }),
                    None,
                ),
                program: None,
                program_error: None,
                observed: None,
            },
            Reading {
                sample: sample("veth2", None, Some(Notice::NotCounting)),
                program: None,
                program_error: None,
                observed: None,
            },
        ]
    }

    fn lines(body: &str) -> Vec<&str> {
        body.lines().collect()
    }

    #[test]
    fn sums_carry_no_cpu_label() {
        let metrics = Metrics::new(Fixed(readings()), false);
        let body = metrics.encode(Format::PrometheusText).unwrap();
        let want = [
            "# HELP xdpstat_packets_total Frames the interface received, counted by xdpstat's XDP program.",
            "# TYPE xdpstat_packets_total counter",
            "xdpstat_packets_total{interface=\"veth0\"} 1000",
            "xdpstat_packets_total{interface=\"veth1\"} 3",
            "# HELP xdpstat_bytes_total Bytes of the frames the interface received, counted by xdpstat's XDP program.",
            "# TYPE xdpstat_bytes_total counter",
            "xdpstat_bytes_total{interface=\"veth0\"} 209000",
            "xdpstat_bytes_total{interface=\"veth1\"} 180",
            "# HELP xdpstat_program_info The XDP program xdpstat has attached to the interface; always 1.",
            "# TYPE xdpstat_program_info gauge",
            "xdpstat_program_info{interface=\"veth0\",prog_id=\"2341\",tag=\"0123456789abcdef\",mode=\"native\",map=\"percpu\"} 1",
            "# HELP xdpstat_observed_program_info Another loader's XDP program whose verdicts xdpstat observes; always 1. state=replaced once the interface runs another program, whose series are then dropped.",
            "# TYPE xdpstat_observed_program_info gauge",
            "# HELP xdpstat_scrape_errors_total Interfaces whose counters could not be read, summed over scrapes.",
            "# TYPE xdpstat_scrape_errors_total counter",
            "xdpstat_scrape_errors_total 1",
        ];
        assert_eq!(lines(&body), want, "{body}");
    }

    fn observed(replaced_by: Option<u32>) -> Reading {
        use crate::model::observe::{Counts, Observation, ProgRef};
        let cpu = |cpu: u32, packets: u64, bytes: u64| CpuCounters {
            cpu,
            packets,
            bytes,
            online: true,
        };
        let action = |a: (u64, u64), b: (u64, u64)| {
            (
                vec![cpu(0, a.0, a.1), cpu(1, b.0, b.1)],
                Counters {
                    packets: a.0 + b.0,
                    bytes: a.1 + b.1,
                },
            )
        };
        let actions = vec![
            action((0, 0), (1, 333)),
            action((3, 180), (1, 60)),
            action((2, 1200), (0, 0)),
            action((0, 0), (0, 0)),
            action((0, 0), (0, 0)),
            action((0, 0), (0, 0)),
        ];
        Reading {
            sample: sample("obs0", None, None),
            program: None,
            program_error: None,
            observed: Some(Observation {
                observed: ProgRef {
                    prog_id: 77,
                    name: "verdict_by_length".to_owned(),
                    tag: "00112233445566ff".to_owned(),
                },
                replaced_by,
                counts: Counts {
                    cpus: vec![cpu(0, 5, 1380), cpu(1, 2, 393)],
                    total: Counters {
                        packets: 7,
                        bytes: 1773,
                    },
                    actions,
                },
                components: Vec::new(),
            }),
        }
    }

    #[test]
    fn an_observed_program_has_a_series_per_action_that_sum_to_the_total() {
        let metrics = Metrics::new(Fixed(vec![observed(None)]), false);
        let body = metrics.encode(Format::PrometheusText).unwrap();
        let packets: Vec<&str> = lines(&body)
            .into_iter()
            .filter(|l| l.starts_with("xdpstat_packets_total{"))
            .collect();
        assert_eq!(packets.len(), 6, "{body}");
        assert!(packets.contains(&"xdpstat_packets_total{interface=\"obs0\",action=\"drop\"} 4"));
        let sum: u64 = packets
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(sum, 7, "sum by (interface) is the total");
        assert!(body.contains("xdpstat_observed_program_info{interface=\"obs0\",prog_id=\"77\",name=\"verdict_by_length\",tag=\"00112233445566ff\",state=\"live\"} 1"), "{body}");
        assert!(
            !body.contains("xdpstat_scrape_errors_total 1"),
            "no failure: {body}"
        );

        let per_cpu = Metrics::new(Fixed(vec![observed(None)]), true);
        let body = per_cpu.encode(Format::PrometheusText).unwrap();
        assert!(
            body.contains(
                "xdpstat_bytes_total{interface=\"obs0\",action=\"aborted\",cpu=\"1\"} 333"
            ),
            "{body}"
        );
    }

    #[test]
    fn a_replaced_observed_program_drops_its_series() {
        let metrics = Metrics::new(Fixed(vec![observed(Some(78))]), false);
        let body = metrics.encode(Format::PrometheusText).unwrap();
        assert!(!body.contains("xdpstat_packets_total{"), "{body}");
        assert!(body.contains("state=\"replaced\"} 1"), "{body}");
    }

    #[test]
    fn per_cpu_series_cover_every_possible_cpu() {
        let metrics = Metrics::new(Fixed(readings()), true);
        let body = metrics.encode(Format::PrometheusText).unwrap();
        let body = lines(&body);
        for want in [
            "xdpstat_packets_total{interface=\"veth0\",cpu=\"0\"} 900",
            // CPU 1 is offline in the fixture, and keeps its series.
            "xdpstat_packets_total{interface=\"veth0\",cpu=\"1\"} 100",
            "xdpstat_bytes_total{interface=\"veth0\",cpu=\"0\"} 57600",
            "xdpstat_bytes_total{interface=\"veth0\",cpu=\"1\"} 151400",
            // A shared map has only the sum.
            "xdpstat_packets_total{interface=\"veth1\"} 3",
            "xdpstat_bytes_total{interface=\"veth1\"} 180",
        ] {
            assert!(body.contains(&want), "{want} missing from {body:#?}");
        }
        assert!(!body.contains(&"xdpstat_packets_total{interface=\"veth0\"} 1000"));
    }

    #[test]
    fn scrape_errors_add_up_over_scrapes() {
        let metrics = Metrics::new(Fixed(readings()), false);
        for n in 1..=3 {
            let body = metrics.encode(Format::PrometheusText).unwrap();
            let want = format!("xdpstat_scrape_errors_total {n}");
            assert!(lines(&body).contains(&want.as_str()), "{body}");
        }
    }

    #[test]
    fn openmetrics_names_families_without_total_and_ends_with_eof() {
        let metrics = Metrics::new(Fixed(readings()), false);
        let body = metrics.encode(Format::OpenMetrics).unwrap();
        let body = lines(&body);
        for want in [
            "# TYPE xdpstat_packets counter",
            "xdpstat_packets_total{interface=\"veth0\"} 1000",
            "# TYPE xdpstat_scrape_errors counter",
            "xdpstat_scrape_errors_total 1",
        ] {
            assert!(body.contains(&want), "{want} missing from {body:#?}");
        }
        assert_eq!(body.last(), Some(&"# EOF"));
    }

    #[test]
    fn nothing_to_export_still_describes_the_families() {
        let metrics = Metrics::new(Fixed(Vec::new()), false);
        let body = metrics.encode(Format::PrometheusText).unwrap();
        assert!(body.contains("# TYPE xdpstat_packets_total counter\n"));
        assert!(body.ends_with("xdpstat_scrape_errors_total 0\n"), "{body}");
    }

    #[test]
    fn a_failed_inspection_counts_as_an_error_but_keeps_the_counters() {
        let mut r = readings();
        r.truncate(1);
        r[0].program = None;
        r[0].program_error = Some("netlink: EPERM".to_owned());
        let metrics = Metrics::new(Fixed(r), false);
        let body = metrics.encode(Format::PrometheusText).unwrap();
        let body = lines(&body);
        assert!(body.contains(&"xdpstat_packets_total{interface=\"veth0\"} 1000"));
        assert!(body.contains(&"xdpstat_scrape_errors_total 1"));
        assert!(!body.iter().any(|l| l.starts_with("xdpstat_program_info{")));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut r = readings();
        r.truncate(1);
        r[0].sample.iface = "a\"b\\c".to_owned();
        let metrics = Metrics::new(Fixed(r), false);
        let body = metrics.encode(Format::PrometheusText).unwrap();
        assert!(
            body.contains("xdpstat_packets_total{interface=\"a\\\"b\\\\c\"} 1000\n"),
            "{body}"
        );
    }

    #[test]
    fn prometheus_gets_openmetrics_and_curl_gets_text() {
        // What Prometheus 2.x sends.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
        assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(
            Format::negotiate(Some("text/plain, application/openmetrics-text;q=0.5")),
            Format::PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0")),
            Format::PrometheusText
        );
        assert_eq!(
            Format::OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(
            Format::PrometheusText.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }

    #[test]
    fn routes() {
        let metrics = Metrics::new(Fixed(readings()), false);
        let reply = route(&metrics, "GET", "/metrics", None);
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.content_type,
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert!(reply
            .body
            .contains("xdpstat_packets_total{interface=\"veth0\"} 1000\n"));
        assert_eq!(route(&metrics, "GET", "/metrics?x=1", None).status, 200);
        let index = route(&metrics, "GET", "/", None);
        assert_eq!(index.status, 200);
        assert!(index.body.contains("href=\"/metrics\""));
        assert_eq!(route(&metrics, "GET", "/favicon.ico", None).status, 404);
        assert_eq!(route(&metrics, "POST", "/metrics", None).status, 405);
    }
}
