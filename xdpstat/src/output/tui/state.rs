//! The live view's state: what the sampler has seen, and what the keys
//! changed. No drawing and no terminal here.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::model::monitor::{Notice, Sample};

/// How much history the charts keep.
pub const HISTORY_SPAN: Duration = Duration::from_secs(300);

/// How long a notice stays highlighted (in the interface's row and in the
/// notices list) after it happened.
pub const NOTICE_FRESH: Duration = Duration::from_secs(10);

/// Notices kept for the list; older ones are dropped.
const MAX_EVENTS: usize = 100;

/// The last values of one rate, oldest first, with a gap (`None`) where
/// there was no rate: the first sample, a reset, a replaced map.
#[derive(Clone, Debug)]
pub struct History {
    pub(super) points: VecDeque<Option<f64>>,
    pub(super) capacity: usize,
    /// Values pushed since the start, so that the bins of [`History::fit`]
    /// stay put as new values arrive.
    pub(super) pushed: u64,
}

impl History {
    /// An empty history of at most `capacity` values.
    pub fn new(capacity: usize) -> Self {
        Self {
            points: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
            pushed: 0,
        }
    }

    /// Adds the newest value, dropping the oldest when full.
    pub fn push(&mut self, value: Option<f64>) {
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(value);
        self.pushed += 1;
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The highest value held.
    pub fn peak(&self) -> Option<f64> {
        self.points.iter().flatten().copied().reduce(f64::max)
    }

    /// How many values one column stands for when all the history there
    /// can be is drawn in `width` columns.
    pub fn per_column(&self, width: usize) -> usize {
        self.capacity.div_ceil(width.max(1))
    }

    /// The newest `width` values, one per column, newest last.
    pub fn recent(&self, width: usize) -> Vec<Option<f64>> {
        let skip = self.points.len().saturating_sub(width);
        self.points.iter().skip(skip).copied().collect()
    }

    /// All of it in at most `width` columns, newest last: the mean of
    /// [`History::per_column`] consecutive values per column (a gap only
    /// where all of them are gaps). The scale does not change as history
    /// fills up, and bins are aligned to the count of values ever pushed,
    /// so a column keeps its value once its bin is complete.
    pub fn fit(&self, width: usize) -> Vec<Option<f64>> {
        if width == 0 {
            return Vec::new();
        }
        let k = self.per_column(width) as u64;
        if k == 1 {
            return self.recent(width);
        }
        let len = self.points.len();
        let first = self.pushed - len as u64;
        let mut bins: Vec<(u64, f64, u32)> = Vec::new();
        for (i, point) in self.points.iter().enumerate() {
            let bin = (first + i as u64) / k;
            if bins.last().is_none_or(|b| b.0 != bin) {
                bins.push((bin, 0.0, 0));
            }
            if let (Some(v), Some(last)) = (point, bins.last_mut()) {
                last.1 += v;
                last.2 += 1;
            }
        }
        let skip = bins.len().saturating_sub(width);
        bins.into_iter()
            .skip(skip)
            .map(|(_, sum, n)| (n > 0).then(|| sum / f64::from(n)))
            .collect()
    }
}

/// How much a notice matters, for its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Good news: counting (again).
    Info,
    /// Rates restarted: a re-attach or a reset.
    Warning,
    /// The interface is gone, or reading failed.
    Alert,
}

/// What an interface's state column says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowState<'a> {
    /// No sample yet.
    Waiting,
    /// The interface is gone.
    Gone,
    /// xdpstat is not counting there.
    NotAttached,
    /// Reading failed.
    ReadError,
    /// Counting.
    Counting,
    /// None of the above.
    Unknown,
    /// A fresh event, shown over the lasting `Counting`.
    Event(&'a Event),
}

/// A notice as the view shows it: when, where, what.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The interface.
    pub iface: String,
    /// A sentence for the notices list.
    pub text: String,
    /// A few words for the interface's row.
    pub short: String,
    /// How much it matters.
    pub severity: Severity,
    /// When it was seen.
    pub at: Instant,
    /// The same, as local wall-clock time (`HH:MM:SS`).
    pub clock: String,
}

/// Turns the change from the previous sample to this one into an event,
/// if there is one worth telling. A re-attach or a reset is told each time;
/// a state (gone, not attached, read error) only when it starts, and the
/// end of one as "counting again".
pub(super) fn event_of(
    before: Option<&Sample>,
    now: &Sample,
) -> Option<(String, String, Severity)> {
    let lasting = |n: &Option<Notice>| {
        matches!(
            n,
            Some(Notice::InterfaceGone | Notice::NotCounting | Notice::ReadError { .. })
        )
    };
    match &now.notice {
        Some(n @ Notice::MapReplaced { .. }) => Some((
            n.text(),
            "re-attached, new map".to_owned(),
            Severity::Warning,
        )),
        Some(n @ Notice::CountersReset) => {
            Some((n.text(), "counters reset".to_owned(), Severity::Warning))
        }
        Some(n @ Notice::ProgramReplaced { .. }) => Some((
            n.text(),
            "re-observed, new prog".to_owned(),
            Severity::Warning,
        )),
        Some(n) if before.map(|b| &b.notice) != Some(&now.notice) => {
            let (short, severity) = match n {
                Notice::InterfaceGone => ("GONE", Severity::Alert),
                Notice::NotCounting => ("not attached", Severity::Warning),
                _ => ("read error", Severity::Alert),
            };
            Some((n.text(), short.to_owned(), severity))
        }
        Some(_) => None,
        None => match before {
            Some(b) if lasting(&b.notice) && now.snapshot.is_some() => {
                let text = match b.notice {
                    Some(Notice::InterfaceGone) => "interface is back; counting",
                    Some(Notice::NotCounting) => "attached; counting",
                    _ => "reading again",
                };
                Some((text.to_owned(), "counting again".to_owned(), Severity::Info))
            }
            _ => None,
        },
    }
}

/// One interface: its latest sample and the history of its rates.
#[derive(Clone, Debug)]
pub struct IfaceView {
    /// The interface.
    pub name: String,
    /// The latest sample, once there is one.
    pub sample: Option<Sample>,
    /// Packets per second.
    pub pps: History,
    /// Bits per second.
    pub bps: History,
    /// Packets per second, per CPU.
    pub cpu_pps: BTreeMap<u32, History>,
    /// For an observed program, packets per second per verdict, in
    /// [`ACTIONS`](xdpstat_common::ACTIONS)' order.
    pub verdict_pps: Vec<History>,
    /// The latest event on this interface.
    pub event: Option<Event>,
    pub(super) capacity: usize,
}

impl IfaceView {
    pub(super) fn new(name: &str, capacity: usize) -> Self {
        Self {
            name: name.to_owned(),
            sample: None,
            pps: History::new(capacity),
            bps: History::new(capacity),
            cpu_pps: BTreeMap::new(),
            verdict_pps: Vec::new(),
            event: None,
            capacity,
        }
    }

    pub(super) fn record(&mut self, sample: Sample, now: Instant, clock: &str) -> Option<Event> {
        self.pps.push(sample.rates.map(|r| r.pps));
        self.bps.push(sample.rates.map(|r| r.bps));
        for c in &sample.cpu_rates {
            let capacity = self.capacity;
            self.cpu_pps
                .entry(c.cpu)
                .or_insert_with(|| History::new(capacity));
        }
        if sample.observed.is_some() {
            let capacity = self.capacity;
            self.verdict_pps
                .resize_with(xdpstat_common::ACTIONS.len(), || History::new(capacity));
        }
        let verdict_rates = sample
            .observed
            .as_ref()
            .and_then(|s| s.rates.as_ref())
            .map(|r| &r.actions);
        for (i, history) in self.verdict_pps.iter_mut().enumerate() {
            history.push(verdict_rates.and_then(|r| r.get(i)).map(|r| r.pps));
        }
        // Every CPU's history moves on each tick, so that the columns of
        // all of them stay aligned in time.
        for (cpu, history) in &mut self.cpu_pps {
            let rate = sample
                .cpu_rates
                .iter()
                .find(|c| c.cpu == *cpu)
                .and_then(|c| c.rates.map(|r| r.pps));
            history.push(rate);
        }
        let event = event_of(self.sample.as_ref(), &sample).map(|(text, short, severity)| Event {
            iface: self.name.clone(),
            text,
            short,
            severity,
            at: now,
            clock: clock.to_owned(),
        });
        if event.is_some() {
            self.event.clone_from(&event);
        }
        self.sample = Some(sample);
        event
    }

    /// The state column: a fresh event, or the lasting state.
    pub(super) fn state(&self, now: Instant) -> RowState<'_> {
        let lasting = match self.sample.as_ref() {
            None => RowState::Waiting,
            Some(s) if !s.present => RowState::Gone,
            Some(s) => match &s.notice {
                Some(Notice::NotCounting) => RowState::NotAttached,
                Some(Notice::ReadError { .. }) => RowState::ReadError,
                _ if s.snapshot.is_some() => RowState::Counting,
                _ => RowState::Unknown,
            },
        };
        match &self.event {
            // A lasting state outranks an older event (gone after a reset).
            Some(e) if is_fresh(e, now) && lasting == RowState::Counting => RowState::Event(e),
            _ => lasting,
        }
    }
}

pub(super) fn is_fresh(event: &Event, now: Instant) -> bool {
    now.saturating_duration_since(event.at) < NOTICE_FRESH
}

/// What the sampler has seen: the part of the state that a pause freezes.
#[derive(Clone, Debug)]
pub(super) struct Live {
    pub(super) ifaces: Vec<IfaceView>,
    /// Newest last.
    pub(super) events: VecDeque<Event>,
    pub(super) now: Instant,
    pub(super) clock: String,
}

/// What [`App::on_key`] asks of the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Leave the view.
    Quit,
    /// The view changed: draw it again.
    Redraw,
    /// Nothing to do.
    Ignore,
}

/// The state of the live view.
#[derive(Clone, Debug)]
pub struct App {
    pub(super) interval: Duration,
    pub(super) live: Live,
    /// The view as it was when paused; sampling goes on into `live`.
    pub(super) frozen: Option<Live>,
    pub(super) selected: usize,
    pub(super) per_cpu: bool,
}

impl App {
    /// A view of `ifaces`, sampled every `interval`; it keeps
    /// [`HISTORY_SPAN`] of history.
    pub fn new(ifaces: &[String], interval: Duration, now: Instant) -> Self {
        let capacity = (HISTORY_SPAN.as_secs_f64() / interval.as_secs_f64().max(0.001)).ceil();
        let capacity = (capacity as usize).clamp(30, 3000);
        Self {
            interval,
            live: Live {
                ifaces: ifaces
                    .iter()
                    .map(|name| IfaceView::new(name, capacity))
                    .collect(),
                events: VecDeque::new(),
                now,
                clock: String::new(),
            },
            frozen: None,
            selected: 0,
            per_cpu: false,
        }
    }

    /// Takes one tick's samples (matched to interfaces by name), taken at
    /// `now`, local time `clock`.
    pub fn update(&mut self, samples: Vec<Sample>, now: Instant, clock: &str) {
        let live = &mut self.live;
        for sample in samples {
            let Some(view) = live.ifaces.iter_mut().find(|v| v.name == sample.iface) else {
                continue;
            };
            if let Some(event) = view.record(sample, now, clock) {
                if live.events.len() == MAX_EVENTS {
                    live.events.pop_front();
                }
                live.events.push_back(event);
            }
        }
        live.now = now;
        clock.clone_into(&mut live.clock);
    }

    /// Acts on a key: `q` or Ctrl-C quits, `c` toggles the per-CPU rows,
    /// up/down or `k`/`j` select an interface, `p` pauses and resumes.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::Ignore;
        }
        let last = self.live.ifaces.len().saturating_sub(1);
        match key.code {
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Action::Quit,
            KeyCode::Char('q' | 'Q') => Action::Quit,
            KeyCode::Char('c' | 'C') => {
                self.per_cpu = !self.per_cpu;
                Action::Redraw
            }
            KeyCode::Char('p' | 'P' | ' ') => {
                self.frozen = match self.frozen {
                    Some(_) => None,
                    None => Some(self.live.clone()),
                };
                Action::Redraw
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected = self.selected.saturating_sub(1);
                Action::Redraw
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(last);
                Action::Redraw
            }
            KeyCode::Home | KeyCode::Char('g') => {
                self.selected = 0;
                Action::Redraw
            }
            KeyCode::End | KeyCode::Char('G') => {
                self.selected = last;
                Action::Redraw
            }
            _ => Action::Ignore,
        }
    }

    /// The selected interface's position.
    pub fn selected(&self) -> usize {
        self.selected
    }

    /// Whether per-CPU rows are shown.
    pub fn per_cpu(&self) -> bool {
        self.per_cpu
    }

    /// Whether the display is frozen.
    pub fn paused(&self) -> bool {
        self.frozen.is_some()
    }

    /// The interfaces as shown (frozen while paused).
    pub fn ifaces(&self) -> &[IfaceView] {
        &self.shown().ifaces
    }

    /// The notices as shown, newest last.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.shown().events.iter()
    }

    pub(super) fn shown(&self) -> &Live {
        self.frozen.as_ref().unwrap_or(&self.live)
    }
}
