//! What one scrape reads: the counters and program of each interface
//! xdpstat counts on, as typed [`Reading`]s, from the kernel
//! ([`KernelSource`]) or from fixed samples in tests. The series they make
//! are [`crate::output::prometheus`]'s.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{Mutex, PoisonError},
};

use crate::model::{
    attach,
    layout::Layout,
    monitor::{self, Sample, Watch},
};

/// The program behind an interface's counters, as `xdpstat_program_info`
/// labels it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramLabels {
    /// The kernel's program id.
    pub prog_id: u32,
    /// The program's tag (a hash of its instructions), 16 hex digits as
    /// bpftool prints it; empty when it could not be read.
    pub tag: String,
    /// Where it runs: `native`, `generic` or `offload`.
    pub mode: &'static str,
    /// The counters layout, as `--map` spells it (`percpu`, `shared`), or
    /// `unknown`.
    pub map: &'static str,
}

/// What one scrape read on one interface.
#[derive(Clone, Debug)]
pub struct Reading {
    /// The counters reader's sample; its `snapshot` is `None` when the
    /// counters could not be read, and its `notice` then says why.
    pub sample: Sample,
    /// xdpstat's program on the interface, if it has one attached.
    pub program: Option<ProgramLabels>,
    /// Why the program could not be inspected, if it could not.
    pub program_error: Option<String>,
    /// For an interface whose program xdpstat observes rather than counts
    /// itself: the observers' reading (`sample` then has no snapshot).
    pub observed: Option<crate::model::observe::Observation>,
}

impl Reading {
    /// The reading of a scrape that could not even list the interfaces
    /// xdpstat counts on (`EACCES` without root, say).
    fn unlisted(error: &attach::AttachError) -> Self {
        Self {
            sample: Sample {
                iface: "*".to_owned(),
                snapshot: None,
                rates: None,
                cpu_rates: Vec::new(),
                notice: Some(monitor::Notice::ReadError {
                    message: format!(
                        "listing xdpstat's attachments: {}",
                        xdpstat_analysis::error::chain(error)
                    ),
                }),
                present: false,
                observed: None,
            },
            program: None,
            program_error: None,
            observed: None,
        }
    }

    /// Why this interface failed this scrape, or `None` if it did not.
    pub fn failure(&self) -> Option<String> {
        if self.observed.is_some() {
            return None;
        }
        if self.sample.snapshot.is_none() {
            let why = self
                .sample
                .notice
                .as_ref()
                .map_or_else(|| "the counters could not be read".to_owned(), |n| n.text());
            return Some(why);
        }
        self.program_error
            .as_ref()
            .map(|e| format!("inspecting its program: {e}"))
    }
}

/// Where a scrape's readings come from: the kernel in `xdpstat export`,
/// fixed samples in tests.
pub trait Source: fmt::Debug + Send + Sync + 'static {
    /// Reads every exported interface, now.
    fn read(&self) -> Vec<Reading>;
}

/// Readings from the kernel: xdpstat's pinned counters, through
/// [`Watch`], and its attachments, through [`attach::inspect`].
#[derive(Debug)]
pub struct KernelSource {
    /// The interfaces named on the command line; `None` follows whatever
    /// xdpstat counts on at each scrape.
    ifaces: Option<Vec<String>>,
    state: Mutex<KernelState>,
}

#[derive(Debug, Default)]
struct KernelState {
    /// One reader per interface, kept across scrapes so that the map stays
    /// open.
    watches: BTreeMap<String, Watch>,
    /// Program tags by id; an id is not reused while its program lives, and
    /// a tag never changes, so one lookup per program is enough.
    tags: HashMap<u32, String>,
}

impl KernelSource {
    /// Reads `ifaces`, or, when it is empty, every interface xdpstat counts
    /// on at the time of each scrape (so interfaces attached later appear).
    pub fn new(ifaces: &[String]) -> Self {
        Self {
            ifaces: (!ifaces.is_empty()).then(|| ifaces.to_vec()),
            state: Mutex::default(),
        }
    }
}

impl Source for KernelSource {
    fn read(&self) -> Vec<Reading> {
        let (names, observed) = match &self.ifaces {
            Some(names) => names
                .iter()
                .cloned()
                .partition(|n| !crate::model::observe::is_observed(n)),
            None => match monitor::counted_interfaces() {
                Ok(names) => (names, crate::model::observe::observed_interfaces()),
                // Nothing can be read: one failed reading says why.
                Err(e) => return vec![Reading::unlisted(&e)],
            },
        };
        let observed: Vec<Reading> = observed.iter().map(|n| observed_reading(n)).collect();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let KernelState { watches, tags } = &mut *state;
        if self.ifaces.is_none() {
            watches.retain(|name, _| names.contains(name));
        }
        let readings: Vec<Reading> = names
            .iter()
            .map(|name| {
                let watch = watches
                    .entry(name.clone())
                    .or_insert_with(|| Watch::new(name));
                let sample = watch.sample();
                let (program, program_error) = match attach::inspect(name) {
                    Ok(Some(a)) => {
                        let tag = match tags.get(&a.prog_id) {
                            Some(tag) => tag.clone(),
                            None => {
                                let tag = program_tag(a.prog_id);
                                if let Some(tag) = &tag {
                                    tags.insert(a.prog_id, tag.clone());
                                }
                                tag.unwrap_or_default()
                            }
                        };
                        let labels = ProgramLabels {
                            prog_id: a.prog_id,
                            tag,
                            mode: a.mode.name(),
                            map: a.layout.map_or("unknown", Layout::name),
                        };
                        (Some(labels), None)
                    }
                    Ok(None) => (None, None),
                    Err(e) => (None, Some(e.to_string())),
                };
                Reading {
                    sample,
                    program,
                    program_error,
                    observed: None,
                }
            })
            .collect();
        tags.retain(|id, _| {
            readings
                .iter()
                .any(|r| r.program.as_ref().is_some_and(|p| p.prog_id == *id))
        });
        let mut readings = readings;
        readings.extend(observed);
        readings
    }
}

/// The reading of an interface whose program xdpstat observes.
fn observed_reading(iface: &str) -> Reading {
    let (observed, program_error) = match crate::model::observe::read(iface) {
        Ok(o) => (Some(o), None),
        Err(e) => (None, Some(xdpstat_analysis::error::chain(&e))),
    };
    Reading {
        sample: Sample {
            iface: iface.to_owned(),
            snapshot: None,
            rates: None,
            cpu_rates: Vec::new(),
            notice: program_error
                .clone()
                .map(|message| monitor::Notice::ReadError { message }),
            present: true,
            observed: None,
        },
        program: None,
        program_error: None,
        observed,
    }
}

/// A loaded program's tag, as bpftool prints it.
fn program_tag(prog_id: u32) -> Option<String> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|info| info.id() == prog_id)
        // aya reads the kernel's 8 tag bytes as a big-endian u64, so its
        // hex digits are the bytes in order.
        .map(|info| format!("{:016x}", info.tag()))
}
