//! `xdpstat watch` against the kernel: the plain lines, a re-attach and a
//! vanished interface under traffic, and the full-screen view driven for
//! real inside tmux.

mod common;

use std::{
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use common::{have_tool, privileged, VethNs};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_xdpstat");

/// Starts `xdpstat ARGS` in the namespace with stdout and stderr piped.
fn spawn(ns: &VethNs, args: &[&str]) -> Child {
    ns.command(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xdpstat")
}

fn finish(child: Child) -> Output {
    let out = child.wait_with_output().expect("wait for xdpstat");
    assert!(
        out.status.success(),
        "xdpstat failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stop_on_drop(flag: &AtomicBool) -> impl Drop + '_ {
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    Stop(flag)
}

/// Runs `f` while a thread sends 100-byte frames from `b` to `a`, about
/// 5000 a second, and stops the sender when `f` returns or panics.
fn with_traffic<T>(ns: &VethNs, f: impl FnOnce() -> T) -> T {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                ns.send_frames(vec![100; 50], None);
                thread::sleep(Duration::from_millis(10));
            }
        });
        let _stop = stop_on_drop(&stop);
        f()
    })
}

/// One of `run`'s text lines, taken apart.
#[derive(Debug)]
struct RunLine {
    packets: u64,
    bytes: u64,
    /// `None` for `- pkt/s`.
    pps: Option<f64>,
    bps: Option<f64>,
}

/// A rate cell: `16.40 kpkt/s`, `999 pkt/s` or `- pkt/s`, in `si`'s form.
fn rate(number: &str, unit: &str, base: &str) -> Option<f64> {
    let prefix = unit
        .strip_suffix(base)
        .unwrap_or_else(|| panic!("{unit:?} is not a {base} unit"));
    assert!(["", "k", "M", "G", "T"].contains(&prefix), "unit {unit:?}");
    if number == "-" {
        return None;
    }
    let value: f64 = number.parse().unwrap_or_else(|_| panic!("rate {number:?}"));
    assert!(value >= 0.0, "negative rate {number} {unit}");
    // si: whole numbers below 1000, two decimals with a prefix.
    let decimals = number.split_once('.').map_or(0, |(_, d)| d.len());
    assert_eq!(
        decimals,
        if prefix.is_empty() { 0 } else { 2 },
        "{number} {unit}"
    );
    Some(value)
}

/// Parses a line and checks that it is exactly `run_line`'s layout, by
/// writing it again from its parts with `run`'s format.
fn parse_run_line(line: &str, iface: &str) -> RunLine {
    let t: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(t.len(), 9, "{line:?}");
    assert_eq!((t[0], t[1], t[3]), (iface, "packets", "bytes"), "{line:?}");
    let parsed = RunLine {
        packets: t[2].parse().expect("packets"),
        bytes: t[4].parse().expect("bytes"),
        pps: rate(t[5], t[6], "pkt/s"),
        bps: rate(t[7], t[8], "bit/s"),
    };
    let (pps, bps) = (format!("{} {}", t[5], t[6]), format!("{} {}", t[7], t[8]));
    let again = format!(
        "{iface:<15} packets {:>12}  bytes {:>15}  {pps:>14}  {bps:>14}",
        parsed.packets, parsed.bytes
    );
    assert_eq!(line, again, "run's column layout");
    parsed
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// Rates in a JSON line, total and per CPU, are absent or sane: never
/// negative, never more than a veth can carry.
fn assert_sane_rates(line: &Value) {
    let mut all = vec![&line["rates"]];
    all.extend(
        line["cpu_rates"]
            .as_array()
            .expect("cpu_rates")
            .iter()
            .map(|c| &c["rates"]),
    );
    for r in all {
        if r.is_null() {
            continue;
        }
        let pps = r["pps"].as_f64().expect("pps");
        let bps = r["bps"].as_f64().expect("bps");
        assert!((0.0..1e8).contains(&pps), "pps {pps} in {line}");
        assert!((0.0..1e12).contains(&bps), "bps {bps} in {line}");
        assert!(r["seconds"].as_f64().unwrap() > 0.0, "{line}");
    }
}

fn total_packets(line: &Value) -> u64 {
    line["total"]["packets"].as_u64().expect("total packets")
}

#[test]
fn plain_watch_prints_runs_lines_and_counts_exactly() {
    if !privileged("plain_watch_prints_runs_lines_and_counts_exactly") {
        return;
    }
    let ns = VethNs::new();
    ns.xdpstat_ok(&["attach", &ns.a]);
    let child = spawn(
        &ns,
        &[
            "watch",
            &ns.a,
            "--plain",
            "--interval",
            "200ms",
            "--count",
            "15",
        ],
    );
    thread::sleep(Duration::from_millis(300));
    // K frames of 42 to 1514 bytes, in bursts spread over a few intervals.
    let lengths: Vec<usize> = (0..1500).map(|i| 42 + (i * 37) % 1473).collect();
    for burst in lengths.chunks(300) {
        ns.send_frames(burst.to_vec(), None);
        thread::sleep(Duration::from_millis(150));
    }
    let out = finish(child);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<RunLine> = text.lines().map(|l| parse_run_line(l, &ns.a)).collect();
    assert_eq!(lines.len(), 15, "one line per interval:\n{text}");
    assert!(
        lines.windows(2).all(|w| w[0].packets <= w[1].packets),
        "{text}"
    );
    assert!(
        lines.iter().all(|l| l.pps.is_some() && l.bps.is_some()),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.pps.unwrap() > 0.0),
        "some interval saw traffic:\n{text}"
    );
    let last = lines.last().unwrap();
    assert_eq!(last.packets, lengths.len() as u64, "{text}");
    assert_eq!(last.bytes, lengths.iter().sum::<usize>() as u64, "{text}");

    // `run` on the same interface prints lines of the same layout and
    // totals.
    let run = ns.xdpstat_ok(&["run", &ns.a, "--interval", "100ms", "--count", "2"]);
    for line in run.lines() {
        let parsed = parse_run_line(line, &ns.a);
        assert_eq!(parsed.packets, last.packets, "{run}");
    }
}

#[test]
fn a_re_attach_during_watch_restarts_rates_without_a_bad_one() {
    if !privileged("a_re_attach_during_watch_restarts_rates_without_a_bad_one") {
        return;
    }
    let ns = VethNs::new();
    ns.xdpstat_ok(&["attach", &ns.a]);
    let out = with_traffic(&ns, || {
        let child = spawn(
            &ns,
            &[
                "watch",
                &ns.a,
                "--plain",
                "--json",
                "--interval",
                "200ms",
                "--count",
                "20",
            ],
        );
        thread::sleep(Duration::from_millis(1500));
        // A different layout, so a new map replaces the pinned one.
        ns.xdpstat_ok(&["attach", &ns.a, "--force", "--map", "shared"]);
        finish(child)
    });
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 20);
    for line in &lines {
        assert_eq!(line["interface"], ns.a.as_str());
        assert_sane_rates(line);
    }
    let replaced: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i]["notice"] == "map-replaced")
        .collect();
    assert_eq!(replaced.len(), 1, "one map-replaced notice: {lines:#?}");
    let at = replaced[0];
    let notice = &lines[at];
    assert!(notice["rates"].is_null(), "no rate across maps: {notice}");
    assert_ne!(notice["old_id"], notice["new_id"], "{notice}");
    assert!(at >= 2 && at + 3 < lines.len(), "mid-run: line {at}");
    assert!(lines[..at].iter().all(|l| l["map"] == "percpu"));
    assert!(lines[at..].iter().all(|l| l["map"] == "shared"));
    assert!(
        lines[1..at]
            .iter()
            .any(|l| l["rates"]["pps"].as_f64() > Some(0.0)),
        "traffic counted before: {lines:#?}"
    );
    // The new map starts from zero, and counting goes on from it.
    assert!(
        total_packets(notice) < total_packets(&lines[at - 1]),
        "{notice}"
    );
    let after = &lines[at + 1..];
    assert!(after.iter().all(|l| !l["rates"].is_null()), "{after:#?}");
    assert!(
        total_packets(after.last().unwrap()) > total_packets(notice),
        "{after:#?}"
    );
    assert!(
        after.iter().any(|l| l["rates"]["pps"].as_f64() > Some(0.0)),
        "{after:#?}"
    );
}

/// Removes an extra interface's pins, however the test ends.
struct ExtraPins<'a> {
    ns: &'a VethNs,
    iface: String,
}

impl Drop for ExtraPins<'_> {
    fn drop(&mut self) {
        // Whatever detach leaves, the namespace's own teardown removes.
        let _ = self.ns.xdpstat(&["detach", &self.iface]);
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_vanished_interface_is_marked_gone_and_the_others_keep_counting() {
    if !privileged("a_vanished_interface_is_marked_gone_and_the_others_keep_counting") {
        return;
    }
    let ns = VethNs::new();
    // A second pair in the same namespace, named like the first.
    let c = format!("xsc{}", &ns.a[3..]);
    let d = format!("xsd{}", &ns.a[3..]);
    ip(&[
        "-n", &ns.ns, "link", "add", &c, "type", "veth", "peer", "name", &d,
    ]);
    ip(&["-n", &ns.ns, "link", "set", &c, "up"]);
    ip(&["-n", &ns.ns, "link", "set", &d, "up"]);
    let _pins = ExtraPins {
        ns: &ns,
        iface: c.clone(),
    };
    ns.xdpstat_ok(&["attach", &ns.a]);
    ns.xdpstat_ok(&["attach", &c]);
    let out = with_traffic(&ns, || {
        let child = spawn(
            &ns,
            &[
                "watch",
                &ns.a,
                &c,
                "--json",
                "--interval",
                "200ms",
                "--count",
                "16",
            ],
        );
        thread::sleep(Duration::from_millis(1300));
        ns.delete(&c);
        finish(child)
    });
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 32, "two lines per interval");
    let (mut a_lines, mut c_lines) = (Vec::new(), Vec::new());
    for pair in lines.chunks(2) {
        assert_eq!(pair[0]["interface"], ns.a.as_str(), "the order given");
        assert_eq!(pair[1]["interface"], c.as_str());
        assert_sane_rates(&pair[0]);
        assert_sane_rates(&pair[1]);
        a_lines.push(&pair[0]);
        c_lines.push(&pair[1]);
    }
    let gone_at = c_lines
        .iter()
        .position(|l| l["notice"] == "interface-gone")
        .unwrap_or_else(|| panic!("{c} marked gone: {c_lines:#?}"));
    assert!(gone_at >= 2 && gone_at + 3 < c_lines.len(), "mid-run");
    assert!(
        c_lines[gone_at..]
            .iter()
            .all(|l| l["notice"] == "interface-gone"),
        "stays marked gone: {c_lines:#?}"
    );
    assert!(c_lines[..gone_at].iter().all(|l| l.get("notice").is_none()));
    // The other interface did not notice, and kept counting.
    assert!(
        a_lines.iter().all(|l| l.get("notice").is_none()),
        "{a_lines:#?}"
    );
    assert!(a_lines[1..].iter().all(|l| !l["rates"].is_null()));
    assert!(
        total_packets(a_lines.last().unwrap()) > total_packets(a_lines[gone_at]),
        "{a_lines:#?}"
    );
}

#[test]
fn watch_refuses_a_missing_interface_and_waits_for_an_unattached_one() {
    if !privileged("watch_refuses_a_missing_interface_and_waits_for_an_unattached_one") {
        return;
    }
    let ns = VethNs::new();
    let out = ns.xdpstat(&["watch", "xsnosuchif0", "--plain", "--count", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("xsnosuchif0"), "{err}");

    // Not attached yet: watched anyway, with the notice.
    let text = ns.xdpstat_ok(&[
        "watch",
        &ns.a,
        "--plain",
        "--interval",
        "100ms",
        "--count",
        "2",
    ]);
    assert_eq!(text.lines().count(), 2, "{text}");
    for line in text.lines() {
        assert!(line.starts_with(&format!("{:<15} -", ns.a)), "{line}");
        assert!(line.contains("[xdpstat is not counting here"), "{line}");
    }
}

/// A tmux server of its own (so that nothing else's sessions are touched),
/// killed on drop, its socket removed.
struct Tmux {
    socket: PathBuf,
    session: String,
}

impl Tmux {
    fn start(name: &str, width: u16, height: u16, command: &str) -> Self {
        let this = Self {
            socket: std::env::temp_dir().join(format!("xdpstat-tmux-{name}")),
            session: name.to_owned(),
        };
        let (w, h) = (width.to_string(), height.to_string());
        this.tmux(&["new-session", "-d", "-s", name, "-x", &w, "-y", &h, command]);
        this
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-f", "/dev/null", "-S"])
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn capture(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.session])
    }

    fn alternate_screen(&self) -> bool {
        self.tmux(&[
            "display-message",
            "-p",
            "-t",
            &self.session,
            "#{alternate_on}",
        ])
        .trim()
            == "1"
    }

    fn keys(&self, keys: &str) {
        self.tmux(&["send-keys", "-t", &self.session, keys]);
    }

    /// Captures the pane until `done` holds, for up to `secs` seconds.
    fn wait_for(&self, secs: u64, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.capture();
            if done(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "{what}; the screen:\n{screen}");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The packets-per-second figure in a screen line: the number before the
/// first `…pkt/s` unit.
fn pps_in(line: &str) -> Option<f64> {
    let t: Vec<&str> = line.split_whitespace().collect();
    let i = t.iter().position(|w| w.ends_with("pkt/s"))?;
    let scale = match t[i].strip_suffix("pkt/s")? {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        _ => return None,
    };
    Some(t.get(i.checked_sub(1)?)?.parse::<f64>().ok()? * scale)
}

#[test]
fn the_live_view_runs_in_a_real_terminal() {
    if !privileged("the_live_view_runs_in_a_real_terminal")
        || !have_tool("tmux")
        || !have_tool("nsenter")
    {
        return;
    }
    let ns = VethNs::new();
    ns.xdpstat_ok(&["attach", &ns.a]);
    // After xdpstat exits, the shell prints its status and the terminal's
    // modes: raw mode would show as -icanon -echo.
    let command = format!(
        "nsenter --net=/run/netns/{} {BIN} watch {} --interval 500ms; echo \"exit=$?\"; stty -a; sleep 600",
        ns.ns, ns.a
    );
    let tmux = Tmux::start(&ns.ns, 160, 50, &command);
    with_traffic(&ns, || {
        let iface_row = |screen: &str| {
            screen
                .lines()
                .find(|l| l.contains(&ns.a) && l.contains("pkt/s"))
                .map(str::to_owned)
        };
        let screen = tmux.wait_for(10, "a non-zero packets/s rate", |s| {
            iface_row(s)
                .and_then(|row| pps_in(&row))
                .is_some_and(|pps| pps > 0.0)
        });
        assert!(tmux.alternate_screen(), "full screen:\n{screen}");
        assert!(screen.contains("xdpstat watch"), "{screen}");
        assert!(screen.contains("percpu"), "the map layout\n{screen}");
        assert!(screen.contains("packets/s  now"), "the chart\n{screen}");
        assert!(
            !screen.contains("cpu 0"),
            "per-CPU rows start off\n{screen}"
        );

        tmux.keys("c");
        let screen = tmux.wait_for(5, "per-CPU rows", |s| s.contains("cpu 0"));
        let cpu_rows: Vec<&str> = screen
            .lines()
            .filter(|l| l.trim_start_matches('│').trim_start().starts_with("cpu "))
            .collect();
        assert!(!cpu_rows.is_empty(), "{screen}");
        let cpu_pps: Vec<f64> = cpu_rows.iter().filter_map(|l| pps_in(l)).collect();
        assert_eq!(cpu_pps.len(), cpu_rows.len(), "{screen}");
        tmux.wait_for(5, "a CPU with traffic", |s| {
            s.lines()
                .filter(|l| l.contains("cpu "))
                .filter_map(pps_in)
                .any(|pps| pps > 0.0)
        });

        tmux.keys("p");
        tmux.wait_for(5, "the pause shown", |s| s.contains("PAUSED"));
        tmux.keys("p");
        tmux.wait_for(5, "the pause lifted", |s| !s.contains("PAUSED"));
    });

    tmux.keys("q");
    // stty prints `icanon` or `-icanon`; either way it has printed.
    let screen = tmux.wait_for(5, "xdpstat to exit, then stty", |s| {
        s.contains("exit=") && s.contains("icanon")
    });
    assert!(screen.contains("exit=0"), "{screen}");
    assert!(!tmux.alternate_screen(), "left the alternate screen");
    let modes: Vec<&str> = screen.split([' ', ';', '\n']).collect();
    assert!(
        modes.contains(&"icanon") && modes.contains(&"echo"),
        "raw mode ended:\n{screen}"
    );
    assert!(
        !modes.contains(&"-icanon") && !modes.contains(&"-echo"),
        "{screen}"
    );
    assert!(!screen.contains("PKT/S"), "the view is gone:\n{screen}");
}
