//! Counters over time: the one reader behind `run`, `watch` and `export`.
//!
//! A [`Watch`] follows one interface's pinned counters map. Each
//! [`Watch::sample`] reads it once and gives the totals, the rates since
//! the previous sample (over the measured period), and a notice when
//! something changed underneath: the map was replaced by a re-attach, the
//! counters went down, the interface went away. Rates restart from the new
//! base then; they are never negative or huge.

use std::time::Instant;

use serde::Serialize;

use crate::kernel::iface;
use crate::model::attach::{self, AttachError};
use crate::model::counters::{CountersMap, Rates, Snapshot};
use crate::model::observe;
use xdpstat_common::COUNTERS_MAP;

/// Something the reader noticed, worth telling the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "notice", rename_all = "kebab-case")]
pub enum Notice {
    /// The pinned map is another map now (a re-attach): rates restart.
    MapReplaced {
        /// The map read before.
        old_id: u32,
        /// The map read now.
        new_id: u32,
    },
    /// The counters went down (the map was reset): rates restart.
    CountersReset,
    /// The interface no longer exists.
    InterfaceGone,
    /// xdpstat's counters are not pinned for this interface (any more).
    NotCounting,
    /// Reading failed.
    ReadError {
        /// Why.
        message: String,
    },
    /// The observed program was replaced, and the new one is observed now:
    /// rates restart.
    ProgramReplaced {
        /// The program observed before.
        old_id: u32,
        /// The program observed now.
        new_id: u32,
    },
}

impl Notice {
    /// A short sentence for people.
    pub fn text(&self) -> String {
        match self {
            Self::MapReplaced { old_id, new_id } => {
                format!(
                    "counters map replaced (id {old_id} -> {new_id}, re-attached); rates restart"
                )
            }
            Self::CountersReset => "counters went down (reset); rates restart".to_owned(),
            Self::InterfaceGone => "interface gone".to_owned(),
            Self::NotCounting => "xdpstat is not counting here (not attached)".to_owned(),
            Self::ReadError { message } => format!("read failed: {message}"),
            Self::ProgramReplaced { old_id, new_id } => format!(
                "observed program replaced (prog id {old_id} -> {new_id}); observing the new one; rates restart"
            ),
        }
    }
}

/// One CPU's rates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CpuRates {
    /// The CPU.
    pub cpu: u32,
    /// Its rates over the interval, when there are any.
    pub rates: Option<Rates>,
}

/// One reading of one interface.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The interface.
    pub iface: String,
    /// The counters, when they could be read.
    pub snapshot: Option<Snapshot>,
    /// Total rates since the previous sample.
    pub rates: Option<Rates>,
    /// Per-CPU rates, for a per-CPU map.
    pub cpu_rates: Vec<CpuRates>,
    /// What changed, if anything.
    pub notice: Option<Notice>,
    /// Whether the interface still exists.
    pub present: bool,
    /// For an interface whose program xdpstat observes, the verdicts:
    /// `snapshot` then holds their sums.
    pub observed: Option<Box<observe::Step>>,
}

/// Follows the counters of xdpstat's program on one interface.
#[derive(Debug)]
pub struct Watch {
    iface: String,
    map: Option<CountersMap>,
    last: Option<Snapshot>,
    follow: Option<observe::Follow>,
}

impl Watch {
    /// Watches the counters of xdpstat's program on `iface`, in this
    /// network namespace: the map that program counts into, found anew at
    /// every sample, so that a re-attach or a repair is followed.
    pub fn new(iface: &str) -> Self {
        Self {
            iface: iface.to_owned(),
            map: None,
            last: None,
            follow: None,
        }
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Reads the counters now.
    pub fn sample(&mut self) -> Sample {
        let present = iface::index(&self.iface).is_some();
        let mut sample = Sample {
            iface: self.iface.clone(),
            snapshot: None,
            rates: None,
            cpu_rates: Vec::new(),
            notice: (!present).then_some(Notice::InterfaceGone),
            present,
            observed: None,
        };
        if present && observe::is_observed(&self.iface) {
            self.map = None;
            return self.sample_observed(sample);
        }
        if self.follow.take().is_some() {
            self.last = None;
        }
        let (pinned_id, pin) = match attach::inspect(&self.iface) {
            Ok(Some(a)) if a.map_id != 0 => (a.map_id, a.pin_dir.join(COUNTERS_MAP)),
            Ok(_) => {
                self.map = None;
                self.last = None;
                sample.notice.get_or_insert(Notice::NotCounting);
                return sample;
            }
            Err(e) => {
                self.map = None;
                self.last = None;
                sample.notice.get_or_insert(Notice::ReadError {
                    message: xdpstat_analysis::error::chain(&e),
                });
                return sample;
            }
        };
        let open_id = self.map.as_ref().map(CountersMap::map_id);
        if open_id != Some(pinned_id) {
            match CountersMap::open_id_or_pin(pinned_id, &pin) {
                Ok(map) => {
                    if let Some(old_id) = open_id {
                        sample.notice.get_or_insert(Notice::MapReplaced {
                            old_id,
                            new_id: map.map_id(),
                        });
                    }
                    self.map = Some(map);
                    self.last = None;
                }
                Err(e) => {
                    self.map = None;
                    self.last = None;
                    sample.notice.get_or_insert(Notice::ReadError {
                        message: e.to_string(),
                    });
                    return sample;
                }
            }
        }
        let Some(map) = &self.map else { return sample };
        let snapshot = match map.read() {
            Ok(s) => s,
            Err(e) => {
                sample.notice.get_or_insert(Notice::ReadError {
                    message: e.to_string(),
                });
                return sample;
            }
        };
        self.rate(sample, snapshot)
    }

    /// Reads the observers of the program on the interface, which another
    /// loader attached; observes anew a program that replaced it.
    fn sample_observed(&mut self, mut sample: Sample) -> Sample {
        let follow = self
            .follow
            .get_or_insert_with(|| observe::Follow::new(&self.iface));
        let before = follow.observed_prog_id();
        let step = match follow.step() {
            Ok(step) => step,
            Err(e) => {
                self.last = None;
                sample.notice = Some(Notice::ReadError {
                    message: xdpstat_analysis::error::chain(&e),
                });
                return sample;
            }
        };
        let now = step.observation.observed.prog_id;
        if let Some(old_id) = before.filter(|&old| old != now) {
            sample.notice = Some(Notice::ProgramReplaced {
                old_id,
                new_id: now,
            });
            self.last = None;
        }
        let counts = &step.observation.counts;
        let snapshot = Snapshot {
            layout: crate::model::layout::Layout::Percpu,
            map_id: 0,
            cpus: counts.cpus.clone(),
            total: counts.total,
            taken: Instant::now(),
        };
        sample.observed = Some(Box::new(step));
        self.rate(sample, snapshot)
    }

    /// Fills in the rates from the last snapshot to this one, and keeps it.
    fn rate(&mut self, mut sample: Sample, snapshot: Snapshot) -> Sample {
        if let Some(last) = &self.last {
            sample.rates = Rates::between(last, &snapshot);
            let went_down = snapshot.total.packets < last.total.packets
                || snapshot.total.bytes < last.total.bytes;
            if went_down {
                sample.notice.get_or_insert(Notice::CountersReset);
            }
            let period = snapshot.taken.saturating_duration_since(last.taken);
            sample.cpu_rates = snapshot
                .cpus
                .iter()
                .map(|now| CpuRates {
                    cpu: now.cpu,
                    rates: last
                        .cpus
                        .iter()
                        .find(|c| c.cpu == now.cpu)
                        .and_then(|before| Rates::of(before.counters(), now.counters(), period)),
                })
                .collect();
        } else {
            sample.cpu_rates = snapshot
                .cpus
                .iter()
                .map(|c| CpuRates {
                    cpu: c.cpu,
                    rates: None,
                })
                .collect();
        }
        self.last = Some(snapshot.clone());
        sample.snapshot = Some(snapshot);
        sample
    }

    /// When the last reading was taken.
    pub fn last_taken(&self) -> Option<Instant> {
        self.last.as_ref().map(|s| s.taken)
    }
}

/// The interfaces of this network namespace that xdpstat counts on, sorted
/// by name.
///
/// # Errors
///
/// [`AttachError`] if the kernel or the pins cannot be read, e.g.
/// `EACCES` for a user who is not root.
pub fn counted_interfaces() -> Result<Vec<String>, AttachError> {
    let mut names: Vec<String> = attach::attachments()?
        .into_iter()
        .map(|a| a.interface)
        .collect();
    names.sort();
    Ok(names)
}

/// The interfaces that xdpstat counts on or observes, sorted by name.
///
/// # Errors
///
/// As [`counted_interfaces`].
pub fn watched_interfaces() -> Result<Vec<String>, AttachError> {
    let mut names = counted_interfaces()?;
    names.extend(observe::observed_interfaces());
    names.sort();
    names.dedup();
    Ok(names)
}
