//! The full-screen view of `xdpstat watch`.
//!
//! The pieces are kept apart so that everything but the terminal itself can
//! be tested without one:
//!
//! - [`App`] is the state: one [`IfaceView`] per interface (its latest
//!   [`Sample`] and the history of its rates, total and per CPU), the
//!   notices seen so far, the selection, the per-CPU toggle and the pause.
//!   [`App::update`] takes the samples of one tick from
//!   [`monitor::Watch`](crate::monitor::Watch), the one reader of counters;
//!   [`App::on_key`] takes a key.
//! - [`render`] draws an [`App`] into a ratatui [`Frame`] and does nothing
//!   else, so a `TestBackend` shows exactly what a terminal would.
//! - [`TerminalGuard`] owns the real terminal (raw mode, alternate screen)
//!   and gives it back on drop and on panic.

use std::{
    collections::{BTreeMap, VecDeque},
    io::{self, Stdout},
    panic,
    sync::{
        atomic::{AtomicBool, Ordering},
        Once,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use ratatui::{
    backend::CrosstermBackend,
    crossterm::{
        cursor::{Hide, Show},
        event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers},
        execute,
        terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen},
    },
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Paragraph, RenderDirection, Sparkline},
    Frame, Terminal,
};

use crate::{
    layout::Layout as MapLayout,
    monitor::{Notice, Sample},
    render::si,
};

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
    points: VecDeque<Option<f64>>,
    capacity: usize,
    /// Values pushed since the start, so that the bins of [`History::fit`]
    /// stay put as new values arrive.
    pushed: u64,
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

impl Severity {
    fn color(self) -> Color {
        match self {
            Self::Info => Color::Green,
            Self::Warning => Color::Yellow,
            Self::Alert => Color::Red,
        }
    }
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
fn event_of(before: Option<&Sample>, now: &Sample) -> Option<(String, String, Severity)> {
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
    /// The latest event on this interface.
    pub event: Option<Event>,
    capacity: usize,
}

impl IfaceView {
    fn new(name: &str, capacity: usize) -> Self {
        Self {
            name: name.to_owned(),
            sample: None,
            pps: History::new(capacity),
            bps: History::new(capacity),
            cpu_pps: BTreeMap::new(),
            event: None,
            capacity,
        }
    }

    fn record(&mut self, sample: Sample, now: Instant, clock: &str) -> Option<Event> {
        self.pps.push(sample.rates.map(|r| r.pps));
        self.bps.push(sample.rates.map(|r| r.bps));
        for c in &sample.cpu_rates {
            let capacity = self.capacity;
            self.cpu_pps
                .entry(c.cpu)
                .or_insert_with(|| History::new(capacity));
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
    fn state(&self, now: Instant) -> (String, Style) {
        let lasting = match self.sample.as_ref() {
            None => ("waiting".to_owned(), Style::new().fg(Color::DarkGray)),
            Some(s) if !s.present => ("GONE".to_owned(), alert(Severity::Alert)),
            Some(s) => match &s.notice {
                Some(Notice::NotCounting) => ("not attached".to_owned(), alert(Severity::Warning)),
                Some(Notice::ReadError { .. }) => ("read error".to_owned(), alert(Severity::Alert)),
                _ if s.snapshot.is_some() => ("counting".to_owned(), Style::new().fg(Color::Green)),
                _ => ("-".to_owned(), Style::new()),
            },
        };
        match &self.event {
            // A lasting state outranks an older event (gone after a reset).
            Some(e) if is_fresh(e, now) && lasting.0 == "counting" => {
                (e.short.clone(), alert(e.severity))
            }
            _ => lasting,
        }
    }
}

fn alert(severity: Severity) -> Style {
    Style::new()
        .fg(severity.color())
        .add_modifier(Modifier::BOLD)
}

fn is_fresh(event: &Event, now: Instant) -> bool {
    now.saturating_duration_since(event.at) < NOTICE_FRESH
}

/// What the sampler has seen: the part of the state that a pause freezes.
#[derive(Clone, Debug)]
struct Live {
    ifaces: Vec<IfaceView>,
    /// Newest last.
    events: VecDeque<Event>,
    now: Instant,
    clock: String,
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
    interval: Duration,
    live: Live,
    /// The view as it was when paused; sampling goes on into `live`.
    frozen: Option<Live>,
    selected: usize,
    per_cpu: bool,
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

    fn shown(&self) -> &Live {
        self.frozen.as_ref().unwrap_or(&self.live)
    }
}

/// A rate as `run` writes it: `16.40 kpkt/s`, or `- pkt/s` when there is
/// none.
pub fn rate_text(rate: Option<f64>, unit: &str) -> String {
    match rate {
        Some(r) => format!("{}{unit}", si(r)),
        None => format!("- {unit}"),
    }
}

/// A one-line sparkline of `points` scaled to `max`: `▁` for zero, up to
/// `█` for `max`, a space for a gap.
pub fn spark_text(points: &[Option<f64>], max: f64) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    points
        .iter()
        .map(|p| match *p {
            None => ' ',
            Some(v) if v <= 0.0 || max <= 0.0 => BARS[0],
            // Any traffic at all shows above the zero line.
            Some(v) => BARS[((v / max * 7.0).ceil() as usize).clamp(1, 7)],
        })
        .collect()
}

/// A CPU's share of its interface's packets: `62% ███▏ `, ten columns.
pub fn share_text(part: Option<f64>, total: Option<f64>) -> String {
    const EIGHTHS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];
    const CELLS: usize = 5;
    let (Some(part), Some(total)) = (part, total) else {
        return format!("{:>10}", "-");
    };
    if total <= 0.0 {
        return format!("{:>10}", "-");
    }
    let share = (part / total).clamp(0.0, 1.0);
    let eighths = (share * (CELLS * 8) as f64).round() as usize;
    let mut bar: String = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        bar.push(EIGHTHS[eighths % 8 - 1]);
    }
    format!("{:>3.0}% {bar:<CELLS$}", share * 100.0)
}

/// `2m30s`, `45s`, `1.5s`: a span for captions.
fn span_text(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        let (m, s) = (secs / 60, secs % 60);
        if s == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{s:02}s")
        }
    } else if d.subsec_millis() == 0 {
        format!("{secs}s")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Local wall-clock time, `HH:MM:SS`, for notices.
pub fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let t = secs as libc::time_t;
    // SAFETY: an all-zero tm is valid; localtime_r writes only into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        let day = secs % 86_400;
        return format!("{:02}:{:02}:{:02}Z", day / 3600, day % 3600 / 60, day % 60);
    }
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

// Column widths of the interface table.
const W_MARK: usize = 2;
const W_IFACE: usize = 15;
const W_MAP: usize = 6;
const W_PPS: usize = 13;
const W_BPS: usize = 13;
const W_SHARE: usize = 10;
const W_PACKETS: usize = 14;
const W_BYTES: usize = 16;
const W_STATE: usize = 20;
/// Everything but the history column, with the spaces between columns.
const W_FIXED: usize =
    W_MARK + W_IFACE + W_MAP + W_PPS + W_BPS + W_SHARE + W_PACKETS + W_BYTES + W_STATE + 9;

/// The cells of one table row, before the history column.
struct RowCells {
    mark: &'static str,
    name: String,
    map: String,
    pps: String,
    bps: String,
    share: String,
    packets: String,
    bytes: String,
    state: (String, Style),
}

impl RowCells {
    fn line(self, name_style: Style, history: Option<Span<'static>>) -> Line<'static> {
        let mut spans = vec![
            Span::styled(format!("{:<W_MARK$}", self.mark), name_style),
            Span::styled(format!("{:<W_IFACE$.W_IFACE$}", self.name), name_style),
            Span::raw(format!(" {:<W_MAP$} ", self.map)),
            Span::styled(
                format!("{:>W_PPS$}", self.pps),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!(" {:>W_BPS$}  ", self.bps)),
            Span::styled(
                format!("{:<W_SHARE$}", self.share),
                Style::new().fg(Color::Cyan),
            ),
            Span::raw(format!(
                " {:>W_PACKETS$} {:>W_BYTES$} ",
                self.packets, self.bytes
            )),
            Span::styled(format!("{:<W_STATE$.W_STATE$}", self.state.0), self.state.1),
        ];
        if let Some(history) = history {
            spans.push(Span::raw(" "));
            spans.push(history);
        }
        Line::from(spans)
    }
}

/// The table: a header line, then a row per interface, each followed by
/// its CPUs' rows when they are on. Gives the lines and, for each
/// interface, the index of its row.
fn table_lines(app: &App, history_width: usize) -> (Line<'static>, Vec<Line<'static>>, Vec<usize>) {
    let live = app.shown();
    let header = RowCells {
        mark: "",
        name: "IFACE".to_owned(),
        map: "MAP".to_owned(),
        pps: "PKT/S".to_owned(),
        bps: "BIT/S".to_owned(),
        share: "CPU SHARE".to_owned(),
        packets: "PACKETS".to_owned(),
        bytes: "BYTES".to_owned(),
        state: ("STATE".to_owned(), Style::new()),
    }
    .line(
        Style::new(),
        (history_width > 0).then(|| {
            Span::raw(format!(
                "PKT/S, LAST {}",
                span_text(app.interval.mul_f64(history_width as f64))
            ))
        }),
    )
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let mut lines = Vec::new();
    let mut rows = Vec::new();
    for (i, view) in live.ifaces.iter().enumerate() {
        rows.push(lines.len());
        let selected = i == app.selected;
        let sample = view.sample.as_ref();
        let snapshot = sample.and_then(|s| s.snapshot.as_ref());
        let rates = sample.and_then(|s| s.rates);
        let history = (history_width > 0).then(|| {
            let points = view.pps.recent(history_width);
            let max = points.iter().flatten().copied().fold(0.0, f64::max);
            Span::styled(
                format!("{:>history_width$}", spark_text(&points, max)),
                Style::new().fg(Color::Green),
            )
        });
        let name_style = if selected {
            Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        };
        lines.push(
            RowCells {
                mark: if selected { "▶" } else { "" },
                name: view.name.clone(),
                map: snapshot.map_or_else(|| "-".to_owned(), |s| s.layout.to_string()),
                pps: rate_text(rates.map(|r| r.pps), "pkt/s"),
                bps: rate_text(rates.map(|r| r.bps), "bit/s"),
                share: String::new(),
                packets: snapshot.map_or_else(|| "-".to_owned(), |s| s.total.packets.to_string()),
                bytes: snapshot.map_or_else(|| "-".to_owned(), |s| s.total.bytes.to_string()),
                state: view.state(live.now),
            }
            .line(name_style, history),
        );
        if !app.per_cpu {
            continue;
        }
        let Some((sample, snapshot)) = sample.zip(snapshot) else {
            continue;
        };
        if snapshot.layout == MapLayout::Shared {
            lines.push(Line::styled(
                format!(
                    "{:W_MARK$}  (shared map: one counter for all CPUs, no per-CPU split)",
                    ""
                ),
                Style::new().fg(Color::DarkGray),
            ));
            continue;
        }
        // One scale for all of an interface's CPUs, so that the spread
        // shows in the bars' heights.
        let fitted: BTreeMap<u32, Vec<Option<f64>>> = view
            .cpu_pps
            .iter()
            .map(|(&cpu, h)| (cpu, h.recent(history_width)))
            .collect();
        let max = fitted
            .values()
            .flatten()
            .flatten()
            .copied()
            .fold(0.0, f64::max);
        for cpu in &snapshot.cpus {
            let rates = sample
                .cpu_rates
                .iter()
                .find(|c| c.cpu == cpu.cpu)
                .and_then(|c| c.rates);
            let label = if cpu.online {
                format!("  cpu {}", cpu.cpu)
            } else {
                format!("  cpu {} (off)", cpu.cpu)
            };
            let history = (history_width > 0).then(|| {
                let points = fitted.get(&cpu.cpu).map_or(&[][..], Vec::as_slice);
                // Right-aligned: the newest value is in the same column on
                // every row, however long each history is.
                Span::styled(
                    format!("{:>history_width$}", spark_text(points, max)),
                    Style::new().fg(Color::Cyan),
                )
            });
            lines.push(
                RowCells {
                    mark: "",
                    name: label,
                    map: String::new(),
                    pps: rate_text(rates.map(|r| r.pps), "pkt/s"),
                    bps: rate_text(rates.map(|r| r.bps), "bit/s"),
                    share: share_text(rates.map(|r| r.pps), sample.rates.map(|r| r.pps)),
                    packets: cpu.packets.to_string(),
                    bytes: cpu.bytes.to_string(),
                    state: (String::new(), Style::new()),
                }
                .line(Style::new().fg(Color::Gray), history),
            );
        }
    }
    (header, lines, rows)
}

/// Draws the whole view.
pub fn render(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let live = app.shown();
    let history_width = usize::from(area.width.saturating_sub(2))
        .saturating_sub(W_FIXED + 1)
        .min(120);
    let history_width = if history_width < 8 { 0 } else { history_width };
    let (header, lines, rows) = table_lines(app, history_width);
    let events_shown = live.events.len().clamp(1, 6);
    let notices_height = events_shown as u16 + 2;
    // The table gets its rows if it can, leaving the charts at least 8 lines.
    let want_table = u16::try_from(lines.len())
        .unwrap_or(u16::MAX)
        .saturating_add(3);
    let room = area.height.saturating_sub(2 + notices_height + 8).max(4);
    let [top, table_area, charts, notices, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(want_table.min(room)),
        Constraint::Min(0),
        Constraint::Length(notices_height),
        Constraint::Length(1),
    ])
    .areas(area);
    render_top(frame, app, top);
    render_table(frame, app, table_area, header, lines, &rows);
    if let Some(view) = live.ifaces.get(app.selected) {
        render_charts(frame, app, view, charts);
    }
    render_notices(frame, live, notices, events_shown);
    render_keys(frame, app, bottom);
}

fn render_top(frame: &mut Frame, app: &App, area: Rect) {
    let live = app.shown();
    let n = live.ifaces.len();
    let mut spans = vec![
        Span::styled("xdpstat watch", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            "  {n} interface{}  every {}",
            if n == 1 { "" } else { "s" },
            span_text(app.interval)
        )),
    ];
    if !live.clock.is_empty() {
        spans.push(Span::raw(format!("  updated {}", live.clock)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    if app.paused() {
        let badge = Span::styled(
            " PAUSED: display frozen, sampling goes on (p resumes) ",
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        );
        frame.render_widget(Paragraph::new(Line::from(badge).right_aligned()), area);
    }
}

fn render_table(
    frame: &mut Frame,
    app: &App,
    area: Rect,
    header: Line<'static>,
    lines: Vec<Line<'static>>,
    rows: &[usize],
) {
    let block = Block::new().borders(Borders::ALL).title(" interfaces ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 {
        return;
    }
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    frame.render_widget(Paragraph::new(header), head);
    // Scroll so that the selected interface, and its CPUs if they fit, are
    // in view.
    let height = usize::from(body.height);
    let start = rows.get(app.selected).copied().unwrap_or(0);
    let end = rows.get(app.selected + 1).copied().unwrap_or(lines.len());
    let offset = end.saturating_sub(height).min(start);
    let shown: Vec<Line> = lines.into_iter().skip(offset).take(height).collect();
    frame.render_widget(Paragraph::new(shown), body);
}

fn render_charts(frame: &mut Frame, app: &App, view: &IfaceView, area: Rect) {
    let live = app.shown();
    let snapshot = view.sample.as_ref().and_then(|s| s.snapshot.as_ref());
    let mut title = vec![Span::styled(
        format!(" {} ", view.name),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if let Some(s) = snapshot {
        title.push(Span::raw(format!(
            "· {} map id {} · {} packets · {} bytes ",
            s.layout, s.map_id, s.total.packets, s.total.bytes
        )));
    }
    let (state, state_style) = view.state(live.now);
    let block = Block::new()
        .borders(Borders::ALL)
        .title(Line::from(title))
        .title(Line::from(Span::styled(format!(" {state} "), state_style)).right_aligned())
        .border_style(if state == "GONE" {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        });
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [pps_area, bps_area] =
        Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(inner);
    let rates = view.sample.as_ref().and_then(|s| s.rates);
    chart(
        frame,
        app,
        &view.pps,
        rates.map(|r| r.pps),
        "packets/s",
        "pkt/s",
        Color::Green,
        pps_area,
    );
    chart(
        frame,
        app,
        &view.bps,
        rates.map(|r| r.bps),
        "bits/s",
        "bit/s",
        Color::Magenta,
        bps_area,
    );
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call per chart, all different"
)]
fn chart(
    frame: &mut Frame,
    app: &App,
    history: &History,
    now: Option<f64>,
    what: &str,
    unit: &str,
    color: Color,
    area: Rect,
) {
    if area.height == 0 {
        return;
    }
    let [caption, plot] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let width = usize::from(plot.width);
    let points = history.fit(width);
    let per_column = history.per_column(width);
    let shown = history.len().min(points.len() * per_column);
    let mut text = format!(
        "{what}  now {}  peak {}  over the last {}",
        rate_text(now, unit),
        rate_text(history.peak(), unit),
        span_text(app.interval.mul_f64(shown as f64))
    );
    if per_column > 1 {
        text.push_str(&format!(
            " ({} a column)",
            span_text(app.interval.mul_f64(per_column as f64))
        ));
    }
    frame.render_widget(
        Paragraph::new(Line::from(vec![Span::styled(
            text,
            Style::new().fg(color).add_modifier(Modifier::BOLD),
        )])),
        caption,
    );
    // Newest at the right edge: the data newest first, drawn right to left.
    let data: Vec<Option<u64>> = points
        .iter()
        .rev()
        .map(|p| p.map(|v| v.round() as u64))
        .collect();
    let max = data.iter().flatten().copied().max().unwrap_or(0).max(1);
    frame.render_widget(
        Sparkline::default()
            .data(data)
            .max(max)
            .direction(RenderDirection::RightToLeft)
            .style(Style::new().fg(color)),
        plot,
    );
}

fn render_notices(frame: &mut Frame, live: &Live, area: Rect, shown: usize) {
    let block = Block::new().borders(Borders::ALL).title(" notices ");
    let lines: Vec<Line> = if live.events.is_empty() {
        vec![Line::styled(
            "none: a re-attach, a reset or a vanished interface shows here",
            Style::new().fg(Color::DarkGray),
        )]
    } else {
        live.events
            .iter()
            .rev()
            .take(shown)
            .map(|e| {
                let style = if is_fresh(e, live.now) {
                    alert(e.severity)
                } else {
                    Style::new().fg(Color::DarkGray)
                };
                Line::styled(format!("{}  {:<15} {}", e.clock, e.iface, e.text), style)
            })
            .collect()
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn render_keys(frame: &mut Frame, app: &App, area: Rect) {
    let key = |k: &'static str| Span::styled(k, Style::new().add_modifier(Modifier::BOLD));
    let on_off = |b: bool| if b { "on" } else { "off" };
    let line = Line::from(vec![
        key(" q"),
        Span::raw(" quit  "),
        key("c"),
        Span::raw(format!(" per-CPU rows ({})  ", on_off(app.per_cpu))),
        key("↑↓ j k"),
        Span::raw(" select  "),
        key("p"),
        Span::raw(if app.paused() { " resume" } else { " pause" }),
    ]);
    frame.render_widget(
        Paragraph::new(line).style(Style::new().fg(Color::Gray)),
        area,
    );
}

/// Whether a [`TerminalGuard`] holds the terminal now: the panic hook and
/// `Drop` both restore it, and whichever runs first does.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();

/// The terminal in raw mode on the alternate screen, for as long as this
/// lives. Dropping it, or a panic anywhere, puts the terminal back as it
/// was (before the panic message is printed, so that the message is seen).
pub struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    /// Takes over the terminal on stdout.
    ///
    /// # Errors
    ///
    /// When the terminal cannot be set up; it is restored first.
    pub fn enter() -> io::Result<Self> {
        PANIC_HOOK.call_once(|| {
            let previous = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                if ACTIVE.swap(false, Ordering::SeqCst) {
                    let _ = restore();
                }
                previous(info);
            }));
        });
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let setup = execute!(io::stdout(), EnterAlternateScreen, Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match setup {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                if ACTIVE.swap(false, Ordering::SeqCst) {
                    let _ = restore();
                }
                Err(e)
            }
        }
    }

    /// The terminal to draw on.
    pub fn terminal(&mut self) -> &mut Terminal<CrosstermBackend<Stdout>> {
        &mut self.terminal
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if ACTIVE.swap(false, Ordering::SeqCst) {
            let _ = restore();
        }
    }
}

/// Leaves the alternate screen, shows the cursor, and ends raw mode; tries
/// all three even when one fails.
fn restore() -> io::Result<()> {
    let screen = execute!(io::stdout(), LeaveAlternateScreen, Show);
    let raw = disable_raw_mode();
    screen.and(raw)
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use xdpstat_common::Counters;

    use super::*;
    use crate::{
        counters::{CpuCounters, Rates, Snapshot},
        monitor::CpuRates,
    };

    const SEC: Duration = Duration::from_secs(1);

    fn rates(pps: f64) -> Rates {
        Rates {
            packets: pps as u64,
            bytes: pps as u64 * 100,
            seconds: 1.0,
            pps,
            bps: pps * 800.0,
        }
    }

    /// A per-CPU sample: `cpus` holds each CPU's (packets so far, pps).
    fn sample(iface: &str, map_id: u32, cpus: &[(u64, Option<f64>)]) -> Sample {
        let cpu_counters: Vec<CpuCounters> = cpus
            .iter()
            .enumerate()
            .map(|(i, &(packets, _))| CpuCounters {
                cpu: i as u32,
                packets,
                bytes: packets * 100,
                online: true,
            })
            .collect();
        let total: u64 = cpus.iter().map(|c| c.0).sum();
        let pps: Option<f64> = cpus.iter().map(|c| c.1).sum();
        Sample {
            iface: iface.to_owned(),
            snapshot: Some(Snapshot {
                layout: MapLayout::Percpu,
                map_id,
                cpus: cpu_counters,
                total: Counters {
                    packets: total,
                    bytes: total * 100,
                },
                taken: Instant::now(),
            }),
            rates: pps.map(rates),
            cpu_rates: cpus
                .iter()
                .enumerate()
                .map(|(i, c)| CpuRates {
                    cpu: i as u32,
                    rates: c.1.map(rates),
                })
                .collect(),
            notice: None,
            present: true,
        }
    }

    fn gone(iface: &str) -> Sample {
        Sample {
            iface: iface.to_owned(),
            snapshot: None,
            rates: None,
            cpu_rates: Vec::new(),
            notice: Some(Notice::InterfaceGone),
            present: false,
        }
    }

    fn screen(app: &App, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| render(f, app)).unwrap();
        let buffer = terminal.backend().buffer();
        let mut text = String::new();
        for y in 0..buffer.area.height {
            for x in 0..buffer.area.width {
                text.push_str(buffer[(x, y)].symbol());
            }
            text.push('\n');
        }
        text
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    /// Two interfaces: veth0 busy on CPU 1, veth1 quiet; three ticks.
    fn busy_app() -> (App, Instant) {
        let t0 = Instant::now();
        let names = ["veth0".to_owned(), "veth1".to_owned()];
        let mut app = App::new(&names, SEC, t0);
        app.update(
            vec![
                sample("veth0", 7, &[(0, None), (0, None)]),
                sample("veth1", 8, &[(0, None)]),
            ],
            t0,
            "12:00:00",
        );
        for (i, (p0, p1)) in [(1000.0, 3000.0), (1000.0, 15000.0)].iter().enumerate() {
            let t = t0 + SEC * (i as u32 + 1);
            app.update(
                vec![
                    sample("veth0", 7, &[(1000, Some(*p0)), (18000, Some(*p1))]),
                    sample("veth1", 8, &[(0, Some(0.0))]),
                ],
                t,
                "12:00:01",
            );
        }
        (app, t0)
    }

    #[test]
    fn history_keeps_the_newest_values() {
        let mut h = History::new(3);
        for v in [1.0, 2.0, 3.0, 4.0] {
            h.push(Some(v));
        }
        assert_eq!(h.fit(10), vec![Some(2.0), Some(3.0), Some(4.0)]);
        assert_eq!(h.peak(), Some(4.0));
        h.push(None);
        assert_eq!(h.fit(10), vec![Some(3.0), Some(4.0), None]);
    }

    #[test]
    fn history_bins_into_the_width_and_bins_stay_put() {
        let mut h = History::new(12);
        for v in 0..10 {
            h.push(Some(f64::from(v)));
        }
        // Room for 12 values in 4 columns: bins of 3, aligned to the count
        // pushed, the newest one partial.
        assert_eq!(h.fit(4), vec![Some(1.0), Some(4.0), Some(7.0), Some(9.0)]);
        h.push(Some(10.0));
        assert_eq!(h.fit(4), vec![Some(1.0), Some(4.0), Some(7.0), Some(9.5)]);
        // A bin of gaps only is a gap; one with a value is its mean.
        let mut g = History::new(4);
        for v in [None, None, Some(6.0), None] {
            g.push(v);
        }
        assert_eq!(g.fit(2), vec![None, Some(6.0)]);
        assert!(g.fit(0).is_empty());
        // The table's column: the newest values, one each.
        assert_eq!(h.recent(2), vec![Some(9.0), Some(10.0)]);
        assert_eq!(g.recent(9).len(), 4);
    }

    #[test]
    fn spark_and_share_text() {
        assert_eq!(
            spark_text(
                &[None, Some(0.0), Some(1.0), Some(50.0), Some(100.0)],
                100.0
            ),
            " ▁▂▅█"
        );
        assert_eq!(spark_text(&[Some(0.0), Some(0.0)], 0.0), "▁▁");
        assert_eq!(share_text(Some(1.0), Some(4.0)), " 25% █▎   ");
        assert_eq!(share_text(Some(4.0), Some(4.0)), "100% █████");
        assert_eq!(share_text(Some(0.0), Some(0.0)), "         -");
        assert_eq!(share_text(None, Some(1.0)), "         -");
        assert_eq!(share_text(Some(1.0), Some(4.0)).chars().count(), 10);
    }

    #[test]
    fn rates_read_like_run() {
        assert_eq!(rate_text(Some(16_400.0), "pkt/s"), "16.40 kpkt/s");
        assert_eq!(rate_text(Some(0.0), "bit/s"), "0 bit/s");
        assert_eq!(rate_text(None, "pkt/s"), "- pkt/s");
        assert_eq!(span_text(Duration::from_secs(150)), "2m30s");
        assert_eq!(span_text(Duration::from_millis(500)), "0.5s");
        assert_eq!(span_text(Duration::from_secs(300)), "5m");
    }

    #[test]
    fn keys_quit_toggle_select_and_pause() {
        let (mut app, _) = busy_app();
        assert_eq!(app.on_key(key(KeyCode::Char('c'))), Action::Redraw);
        assert!(app.per_cpu());
        assert_eq!(app.on_key(key(KeyCode::Down)), Action::Redraw);
        assert_eq!(app.on_key(key(KeyCode::Char('j'))), Action::Redraw);
        assert_eq!(app.selected(), 1, "selection stops at the last interface");
        app.on_key(key(KeyCode::Char('k')));
        assert_eq!(app.selected(), 0);
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.selected(), 0);
        assert_eq!(app.on_key(key(KeyCode::Char('x'))), Action::Ignore);
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.on_key(ctrl_c), Action::Quit);
        assert!(app.per_cpu(), "Ctrl-C does not toggle");
    }

    #[test]
    fn pause_freezes_the_display_while_sampling_goes_on() {
        let (mut app, t0) = busy_app();
        app.on_key(key(KeyCode::Char('p')));
        assert!(app.paused());
        app.update(
            vec![sample(
                "veth0",
                7,
                &[(99_000, Some(80_000.0)), (18000, Some(0.0))],
            )],
            t0 + SEC * 3,
            "12:00:03",
        );
        let frozen = screen(&app, 160, 40);
        assert!(frozen.contains("PAUSED"), "{frozen}");
        assert!(frozen.contains("16.00 kpkt/s"), "{frozen}");
        assert!(!frozen.contains("80.00 kpkt/s"), "{frozen}");
        app.on_key(key(KeyCode::Char('p')));
        let live = screen(&app, 160, 40);
        assert!(!live.contains("PAUSED"), "{live}");
        assert!(live.contains("80.00 kpkt/s"), "{live}");
        assert_eq!(app.ifaces()[0].pps.len(), 4, "no sample was lost");
    }

    #[test]
    fn the_view_shows_rates_totals_layout_and_per_cpu_rows() {
        let (mut app, _) = busy_app();
        let text = screen(&app, 160, 40);
        assert!(text.contains("veth0"), "{text}");
        assert!(text.contains("16.00 kpkt/s"), "{text}");
        assert!(text.contains("12.80 Mbit/s"), "{text}");
        assert!(text.contains("19000"), "cumulative packets\n{text}");
        assert!(text.contains("percpu"), "{text}");
        assert!(!text.contains("cpu 1"), "per-CPU rows are off\n{text}");
        app.on_key(key(KeyCode::Char('c')));
        let text = screen(&app, 160, 40);
        let cpu1 = text.lines().find(|l| l.contains("cpu 1")).expect(&text);
        assert!(cpu1.contains("15.00 kpkt/s"), "{cpu1}");
        assert!(cpu1.contains(" 94% "), "{cpu1}");
        assert!(cpu1.contains("18000"), "{cpu1}");
        let cpu0 = text.lines().find(|l| l.contains("cpu 0")).expect(&text);
        assert!(cpu0.contains("  6% "), "{cpu0}");
        assert!(text.contains("per-CPU rows (on)"), "{text}");
        // A small terminal still draws, without panicking.
        let small = screen(&app, 40, 10);
        assert!(small.contains("veth0"), "{small}");
    }

    #[test]
    fn histories_line_up_at_the_newest_column() {
        let t0 = Instant::now();
        let mut app = App::new(&["veth0".to_owned()], SEC, t0);
        // CPUs show up two ticks after the total (a new per-CPU map).
        let mut no_cpus = sample("veth0", 1, &[(0, Some(5.0))]);
        no_cpus.cpu_rates.clear();
        for i in 0..3 {
            app.update(vec![no_cpus.clone()], t0 + SEC * i, "");
        }
        app.update(
            vec![sample("veth0", 1, &[(10, Some(5.0))])],
            t0 + SEC * 3,
            "",
        );
        app.on_key(key(KeyCode::Char('c')));
        let text = screen(&app, 160, 30);
        let end = |needle: &str| {
            let line = text.lines().find(|l| l.contains(needle)).expect(&text);
            line.trim_end_matches(['│', ' ']).chars().count()
        };
        assert_eq!(end("▶ veth0"), end("cpu 0"), "{text}");
    }

    #[test]
    fn a_vanished_interface_is_marked_and_noticed_once() {
        let (mut app, t0) = busy_app();
        for i in 3..6 {
            app.update(
                vec![
                    sample("veth0", 7, &[(2000, Some(10.0)), (18000, Some(0.0))]),
                    gone("veth1"),
                ],
                t0 + SEC * i,
                "12:00:05",
            );
        }
        let events: Vec<&Event> = app.events().collect();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].iface, "veth1");
        assert_eq!(events[0].severity, Severity::Alert);
        let text = screen(&app, 160, 40);
        let row = text.lines().find(|l| l.contains("veth1")).expect(&text);
        assert!(row.contains("GONE"), "{row}");
        assert!(row.contains("- pkt/s"), "{row}");
        let row = text.lines().find(|l| l.contains("veth0")).expect(&text);
        assert!(row.contains("10 pkt/s"), "{row}");
        assert!(
            text.contains("12:00:05  veth1           interface gone"),
            "{text}"
        );
    }

    #[test]
    fn a_replaced_map_shows_a_short_notice_then_counting() {
        let (mut app, t0) = busy_app();
        let mut replaced = sample("veth0", 9, &[(5, None), (0, None)]);
        replaced.notice = Some(Notice::MapReplaced {
            old_id: 7,
            new_id: 9,
        });
        app.update(vec![replaced], t0 + SEC * 3, "12:00:03");
        let text = screen(&app, 160, 40);
        let row = text.lines().find(|l| l.contains("veth0")).expect(&text);
        assert!(row.contains("re-attached, new map"), "{row}");
        assert!(row.contains("- pkt/s"), "no rate across the replace\n{row}");
        assert!(text.contains("counters map replaced (id 7 -> 9"), "{text}");
        // Still there a few seconds on, gone from the row after NOTICE_FRESH.
        let later = t0 + SEC * 3 + NOTICE_FRESH;
        app.update(
            vec![sample("veth0", 9, &[(50, Some(45.0)), (0, Some(0.0))])],
            later,
            "12:00:13",
        );
        let text = screen(&app, 160, 40);
        let row = text.lines().find(|l| l.contains("veth0")).expect(&text);
        assert!(row.contains("counting"), "{row}");
        assert!(row.contains("45 pkt/s"), "{row}");
        assert!(
            text.contains("counters map replaced"),
            "still listed\n{text}"
        );
    }

    #[test]
    fn events_for_states_start_and_end() {
        let s = sample("veth0", 1, &[(0, None)]);
        let mut not_counting = s.clone();
        not_counting.snapshot = None;
        not_counting.notice = Some(Notice::NotCounting);
        assert!(event_of(None, &s).is_none());
        assert_eq!(event_of(None, &not_counting).unwrap().1, "not attached");
        assert!(event_of(Some(&not_counting), &not_counting).is_none());
        assert_eq!(
            event_of(Some(&not_counting), &s).unwrap().0,
            "attached; counting"
        );
        let mut reset = s.clone();
        reset.notice = Some(Notice::CountersReset);
        assert_eq!(event_of(Some(&reset), &reset).unwrap().1, "counters reset");
        assert!(event_of(Some(&reset), &s).is_none());
    }
}
