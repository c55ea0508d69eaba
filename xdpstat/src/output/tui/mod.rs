//! The full-screen view of `xdpstat watch`.
//!
//! The pieces are kept apart so that everything but the terminal itself can
//! be tested without one:
//!
//! - [`App`] ([`state`]) is the state: one [`IfaceView`] per interface (its latest
//!   [`Sample`] and the history of its rates, total and per CPU), the
//!   notices seen so far, the selection, the per-CPU toggle and the pause.
//!   [`App::update`] takes the samples of one tick from
//!   [`monitor::Watch`](crate::model::monitor::Watch), the one reader of counters;
//!   [`App::on_key`] takes a key.
//! - [`render`] ([`view`]) draws an [`App`] into a ratatui [`Frame`] and does nothing
//!   else, so a `TestBackend` shows exactly what a terminal would.
//! - [`TerminalGuard`] ([`terminal`]) owns the real terminal (raw mode, alternate screen)
//!   and gives it back on drop and on panic.

mod state;
mod terminal;
mod view;

pub use state::*;
pub use terminal::TerminalGuard;
pub use view::*;

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use xdpstat_common::Counters;

    use std::time::{Duration, Instant};

    use ratatui::{
        crossterm::event::{KeyCode, KeyEvent, KeyModifiers},
        Terminal,
    };

    use super::{state::event_of, view::span_text, *};
    use crate::model::{
        counters::{CpuCounters, Rates, Snapshot},
        layout::Layout as MapLayout,
        monitor::{CpuRates, Notice, Sample},
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
            observed: None,
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
            observed: None,
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

    /// An observed interface: the sums of `per_verdict` (packets, pps),
    /// with rates once `pps` is given.
    fn observed(iface: &str, prog_id: u32, per_verdict: [(u64, Option<f64>); 6]) -> Sample {
        use crate::model::observe::{Counts, Observation, ProgRef, Rate, Rates, Step};
        let total: u64 = per_verdict.iter().map(|v| v.0).sum();
        let all = Counters {
            packets: total,
            bytes: total * 100,
        };
        let cpus = vec![CpuCounters {
            cpu: 0,
            packets: total,
            bytes: total * 100,
            online: true,
        }];
        let counts = Counts {
            actions: per_verdict
                .iter()
                .map(|&(p, _)| {
                    let c = Counters {
                        packets: p,
                        bytes: p * 100,
                    };
                    (
                        vec![CpuCounters {
                            cpu: 0,
                            packets: p,
                            bytes: p * 100,
                            online: true,
                        }],
                        c,
                    )
                })
                .collect(),
            cpus: cpus.clone(),
            total: all,
        };
        let verdict_rates = per_verdict[0].1.map(|_| Rates {
            actions: per_verdict
                .iter()
                .map(|v| Rate {
                    pps: v.1.unwrap_or(0.0),
                    bps: 0.0,
                })
                .collect(),
            total: Rate {
                pps: per_verdict.iter().filter_map(|v| v.1).sum(),
                bps: 0.0,
            },
        });
        let pps: Option<f64> = verdict_rates.as_ref().map(|r| r.total.pps);
        Sample {
            iface: iface.to_owned(),
            snapshot: Some(Snapshot {
                layout: MapLayout::Percpu,
                map_id: 0,
                cpus,
                total: all,
                taken: Instant::now(),
            }),
            rates: pps.map(rates),
            cpu_rates: Vec::new(),
            notice: None,
            present: true,
            observed: Some(Box::new(Step {
                observation: Observation {
                    observed: ProgRef {
                        prog_id,
                        name: "verdict_by_length".to_owned(),
                        tag: "00112233445566ff".to_owned(),
                    },
                    replaced_by: None,
                    counts,
                    components: Vec::new(),
                },
                rates: verdict_rates,
                component_rates: None,
                notice: None,
            })),
        }
    }

    #[test]
    fn an_observed_interface_shows_its_verdict_mix_with_shares_and_history() {
        let t0 = Instant::now();
        let mut app = App::new(&["obs0".to_owned()], SEC, t0);
        app.update(
            vec![observed(
                "obs0",
                42,
                [
                    (0, None),
                    (10, None),
                    (30, None),
                    (0, None),
                    (0, None),
                    (0, None),
                ],
            )],
            t0,
            "12:00:00",
        );
        for i in 1..=3u32 {
            let n = u64::from(i) * 100;
            app.update(
                vec![observed(
                    "obs0",
                    42,
                    [
                        (0, Some(0.0)),
                        (10 + n, Some(25.0)),
                        (30 + 3 * n, Some(75.0)),
                        (0, Some(0.0)),
                        (0, Some(0.0)),
                        (0, Some(0.0)),
                    ],
                )],
                t0 + SEC * i,
                "12:00:01",
            );
        }
        let text = screen(&app, 150, 40);
        assert!(
            text.contains("observing prog id 42 (verdict_by_length)"),
            "{text}"
        );
        assert!(text.contains("observe"), "{text}");
        let row = |name: &str| {
            text.lines()
                .find(|l| {
                    l.trim_start_matches(['│', ' '])
                        .starts_with(&format!("{name} "))
                })
                .unwrap_or_else(|| panic!("no {name} row in\n{text}"))
                .to_owned()
        };
        let drop = row("drop");
        assert!(drop.contains(" 25% █▎"), "{drop}");
        assert!(drop.contains(" 25 pkt/s"), "{drop}");
        assert!(drop.contains(" 310 "), "{drop}");
        let pass = row("pass");
        assert!(pass.contains(" 75% ███▊"), "{pass}");
        // The history: a gap for the first tick, then three bars, pass's at
        // the top of the shared scale and drop's a third of it.
        assert!(pass.trim_end_matches('│').ends_with(" ███"), "{pass}");
        assert!(drop.trim_end_matches('│').ends_with(" ▄▄▄"), "{drop}");
        let aborted = row("aborted");
        assert!(aborted.contains("  0% "), "{aborted}");
    }
}
