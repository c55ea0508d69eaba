//! Drawing an [`App`] into a ratatui [`Frame`], and nothing else, so that a
//! `TestBackend` shows exactly what a terminal would.

use std::{collections::BTreeMap, time::Duration};

use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Paragraph, RenderDirection, Sparkline},
    Frame,
};

use super::state::*;
use crate::model::layout::Layout as MapLayout;
use crate::model::observe::Step;
use crate::output::render::si;

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
pub(super) fn span_text(d: Duration) -> String {
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
                map: if sample.is_some_and(|s| s.observed.is_some()) {
                    "observe".to_owned()
                } else {
                    snapshot.map_or_else(|| "-".to_owned(), |s| s.layout.to_string())
                },
                pps: rate_text(rates.map(|r| r.pps), "pkt/s"),
                bps: rate_text(rates.map(|r| r.bps), "bit/s"),
                share: String::new(),
                packets: snapshot.map_or_else(|| "-".to_owned(), |s| s.total.packets.to_string()),
                bytes: snapshot.map_or_else(|| "-".to_owned(), |s| s.total.bytes.to_string()),
                state: state_text(view.state(live.now)),
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
    let observed = view.sample.as_ref().and_then(|s| s.observed.as_deref());
    match (snapshot, observed) {
        (Some(s), Some(step)) => {
            let p = &step.observation.observed;
            title.push(Span::raw(format!(
                "· observing prog id {} ({}) · {} packets · {} bytes ",
                p.prog_id, p.name, s.total.packets, s.total.bytes
            )));
        }
        (Some(s), None) => title.push(Span::raw(format!(
            "· {} map id {} · {} packets · {} bytes ",
            s.layout, s.map_id, s.total.packets, s.total.bytes
        ))),
        _ => {}
    }
    let row_state = view.state(live.now);
    let (state, state_style) = state_text(row_state);
    let block = Block::new()
        .borders(Borders::ALL)
        .title(Line::from(title))
        .title(Line::from(Span::styled(format!(" {state} "), state_style)).right_aligned())
        .border_style(if row_state == RowState::Gone {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        });
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rates = view.sample.as_ref().and_then(|s| s.rates);
    if let Some(step) = observed {
        let mix = verdict_lines(view, step, usize::from(inner.width));
        let height = u16::try_from(mix.len()).unwrap_or(u16::MAX);
        let [mix_area, pps_area] =
            Layout::vertical([Constraint::Length(height), Constraint::Fill(1)]).areas(inner);
        frame.render_widget(Paragraph::new(mix), mix_area);
        chart(
            frame,
            app,
            &view.pps,
            rates.map(|r| r.pps),
            "packets/s, all verdicts",
            "pkt/s",
            Color::Green,
            pps_area,
        );
        return;
    }
    let [pps_area, bps_area] =
        Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(inner);
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

/// The verdict mix of an observed program at a glance: a row per verdict
/// with its share of the packets now (of the last interval's rate, or of
/// the counts before there is one), its rate, its counts and its history;
/// then a line per component of a dispatcher with its shares.
fn verdict_lines(view: &IfaceView, step: &Step, width: usize) -> Vec<Line<'static>> {
    const W_NAME: usize = 9;
    // The columns and the spaces between them.
    let fixed = W_NAME + W_SHARE + W_PPS + W_PACKETS + W_BYTES + 6;
    let history_width = width.saturating_sub(fixed).min(120);
    let counts = &step.observation.counts;
    let rates = step.rates.as_ref();
    let total_pps = rates.map(|r| r.total.pps);
    let mut lines = vec![Line::styled(
        format!(
            "{:<W_NAME$} {:<W_SHARE$} {:>W_PPS$} {:>W_PACKETS$} {:>W_BYTES$}  {}",
            "VERDICT",
            "SHARE",
            "PKT/S",
            "PACKETS",
            "BYTES",
            if history_width >= 8 {
                "PKT/S HISTORY"
            } else {
                ""
            }
        ),
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
    )];
    // One scale for all verdicts, so that their bars compare.
    let recent: Vec<Vec<Option<f64>>> = view
        .verdict_pps
        .iter()
        .map(|h| h.recent(history_width))
        .collect();
    let max = recent
        .iter()
        .flatten()
        .flatten()
        .copied()
        .fold(0.0, f64::max);
    for (i, name) in xdpstat_common::ACTIONS.iter().enumerate() {
        let Some((_, sum)) = counts.actions.get(i) else {
            continue;
        };
        let pps = rates.and_then(|r| r.actions.get(i)).map(|r| r.pps);
        let share = match (pps, total_pps) {
            (Some(p), Some(t)) => share_text(Some(p), Some(t)),
            _ => share_text(Some(sum.packets as f64), Some(counts.total.packets as f64)),
        };
        let color = verdict_color(name);
        let mut spans = vec![
            Span::styled(
                format!("{name:<W_NAME$} "),
                Style::new().fg(color).add_modifier(Modifier::BOLD),
            ),
            Span::styled(format!("{share:<W_SHARE$}"), Style::new().fg(color)),
            Span::raw(format!(
                " {:>W_PPS$} {:>W_PACKETS$} {:>W_BYTES$}  ",
                rate_text(pps, "pkt/s"),
                sum.packets,
                sum.bytes
            )),
        ];
        if history_width >= 8 {
            let points = recent.get(i).map_or(&[][..], Vec::as_slice);
            spans.push(Span::styled(
                format!("{:>history_width$}", spark_text(points, max)),
                Style::new().fg(color),
            ));
        }
        lines.push(Line::from(spans));
    }
    for c in &step.observation.components {
        let shares: Vec<String> = xdpstat_common::ACTIONS
            .iter()
            .zip(&c.counts.actions)
            .filter(|(_, (_, sum))| sum.packets > 0)
            .map(|(name, (_, sum))| {
                let share = sum.packets as f64 / c.counts.total.packets.max(1) as f64;
                format!("{name} {:.0}%", share * 100.0)
            })
            .collect();
        lines.push(Line::styled(
            format!(
                "component {} prog {} ({}): {} packets{}{}",
                c.slot,
                c.program.prog_id,
                c.program.name,
                c.counts.total.packets,
                if shares.is_empty() { "" } else { ": " },
                shares.join(", ")
            ),
            Style::new().fg(Color::Gray),
        ));
    }
    lines
}

/// Each verdict's colour in the mix.
fn verdict_color(name: &str) -> Color {
    match name {
        "pass" => Color::Green,
        "drop" => Color::Yellow,
        "aborted" => Color::Red,
        "tx" => Color::Cyan,
        "redirect" => Color::Blue,
        _ => Color::Magenta,
    }
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

/// A severity's colour.
fn color(severity: Severity) -> Color {
    match severity {
        Severity::Info => Color::Green,
        Severity::Warning => Color::Yellow,
        Severity::Alert => Color::Red,
    }
}

/// The style of something of this severity: its colour, bold.
fn alert(severity: Severity) -> Style {
    Style::new()
        .fg(color(severity))
        .add_modifier(Modifier::BOLD)
}

/// The state column's text and style.
fn state_text(state: RowState<'_>) -> (String, Style) {
    match state {
        RowState::Waiting => ("waiting".to_owned(), Style::new().fg(Color::DarkGray)),
        RowState::Gone => ("GONE".to_owned(), alert(Severity::Alert)),
        RowState::NotAttached => ("not attached".to_owned(), alert(Severity::Warning)),
        RowState::ReadError => ("read error".to_owned(), alert(Severity::Alert)),
        RowState::Counting => ("counting".to_owned(), Style::new().fg(Color::Green)),
        RowState::Unknown => ("-".to_owned(), Style::new()),
        RowState::Event(e) => (e.short.clone(), alert(e.severity)),
    }
}
