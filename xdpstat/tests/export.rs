//! `xdpstat export` against the real kernel: the exposition's lines and
//! format (checked by promtool), a real Prometheus server scraping it, a
//! failing interface next to a working one, and where it listens.
//!
//! Each test has its own network namespace, so the exporter's port is on
//! that namespace's loopback; the HTTP clients and Prometheus run there too.

mod common;

use std::{
    fs,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use common::VethNs;
use serde_json::Value;

/// A spawned process, killed and reaped on drop.
struct Spawned {
    child: Child,
    what: &'static str,
    log: PathBuf,
}

impl Spawned {
    /// Runs `cmd` with stdout and stderr going to `log`.
    fn new(mut cmd: Command, what: &'static str, log: PathBuf) -> Self {
        let out = fs::File::create(&log).expect("create log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Self { child, what, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the process has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited ({status}): {}", self.what, self.log());
        }
    }

    /// Sends SIGTERM and waits up to `limit` for the exit status.
    fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        let ret = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(ret, 0);
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} ignored SIGTERM for {limit:?}: {}",
                self.what,
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed, with what is in it, on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "xdpstat-export-{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A namespace of the test fixture, with its loopback up (a new namespace's
/// is down).
fn namespace() -> VethNs {
    let ns = VethNs::new();
    let out = Command::new("ip")
        .args(["-n", &ns.ns, "link", "set", "lo", "up"])
        .output()
        .expect("run ip");
    assert!(out.status.success(), "lo up: {out:?}");
    ns
}

/// An HTTP response, as far as the tests look at it.
#[derive(Debug)]
struct Response {
    status: u16,
    content_type: String,
    body: String,
}

/// One HTTP/1.0 request (so no chunked body) from inside the namespace.
fn http_get(
    ns: &VethNs,
    addr: SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> std::io::Result<Response> {
    let path = path.to_owned();
    let accept = accept.map(str::to_owned);
    ns.run(move || {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let accept = accept.map_or_else(String::new, |a| format!("Accept: {a}\r\n"));
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
        )?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw)?;
        let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let content_type = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        Ok(Response {
            status,
            content_type,
            body: body.to_owned(),
        })
    })
}

/// Starts `xdpstat export ARGS` in the namespace and waits until `addr`
/// answers.
fn start_export(ns: &VethNs, dir: &TempDir, addr: SocketAddr, args: &[&str]) -> Spawned {
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_xdpstat"));
    cmd.arg("export").args(args);
    let log = dir.path().join(format!("export-{}.log", addr.port()));
    let mut export = Spawned::new(cmd, "xdpstat export", log);
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(ns, addr, "/", None).is_err() {
        export.assert_running();
        assert!(
            Instant::now() < deadline,
            "xdpstat export never answered on {addr}: {}",
            export.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
    export
}

fn scrape(ns: &VethNs, addr: SocketAddr) -> String {
    let r = http_get(ns, addr, "/metrics", None).expect("GET /metrics");
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

/// The value of the sample line whose name and labels are exactly
/// `series`.
fn value(body: &str, series: &str) -> Option<u64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("an integer sample"))
}

/// K frame lengths from 42 to 1514 bytes, and their sum.
fn frames(k: usize) -> (Vec<usize>, u64) {
    let lengths: Vec<usize> = (0..k).map(|i| 42 + (i * 97) % 1473).collect();
    let bytes = lengths.iter().sum::<usize>() as u64;
    (lengths, bytes)
}

fn attach(ns: &VethNs, iface: &str) -> Value {
    serde_json::from_str(&ns.xdpstat_ok(&["attach", iface, "--json"])).expect("attach --json")
}

fn localhost(port: u16) -> SocketAddr {
    (Ipv4Addr::LOCALHOST, port).into()
}

#[test]
fn metrics_are_exact_and_pass_promtool() {
    if !common::privileged("metrics_are_exact_and_pass_promtool") {
        return;
    }
    let ns = namespace();
    let dir = TempDir::new("format");
    let a = attach(&ns, &ns.a);
    let (prog_id, map_id) = (
        a["prog_id"].as_u64().unwrap(),
        a["map_id"].as_u64().unwrap(),
    );
    let mode = a["mode"].as_str().unwrap().to_owned();
    assert_eq!(a["layout"], "percpu");

    let addr = localhost(9435);
    let per_cpu_addr = localhost(9436);
    let _export = start_export(&ns, &dir, addr, &[&ns.a]);
    let _per_cpu = start_export(
        &ns,
        &dir,
        per_cpu_addr,
        &[&ns.a, "--per-cpu", "--listen", &per_cpu_addr.to_string()],
    );

    const K: usize = 1000;
    let (lengths, bytes) = frames(K);
    ns.send_frames(lengths, None);
    let packets = format!("xdpstat_packets_total{{interface=\"{}\"}}", ns.a);
    let got = common::settle(&Some(K as u64), || value(&scrape(&ns, addr), &packets));
    assert_eq!(got, Some(K as u64));

    let body = scrape(&ns, addr);
    let lines: Vec<&str> = body.lines().collect();
    let bytes_line = format!("xdpstat_bytes_total{{interface=\"{}\"}} {bytes}", ns.a);
    assert!(lines.contains(&bytes_line.as_str()), "{body}");
    assert!(lines.contains(&"xdpstat_scrape_errors_total 0"), "{body}");
    let info_prefix = format!(
        "xdpstat_program_info{{interface=\"{}\",prog_id=\"{prog_id}\",tag=\"",
        ns.a
    );
    let info = lines
        .iter()
        .find(|l| l.starts_with(&info_prefix))
        .unwrap_or_else(|| panic!("no {info_prefix}… in {body}"));
    let tag = info[info_prefix.len()..].split('"').next().unwrap();
    assert_eq!(tag.len(), 16, "{info}");
    assert!(
        info.ends_with(&format!("\",mode=\"{mode}\",map=\"percpu\"}} 1")),
        "{info}"
    );
    // The map label names the layout; the id the reader used is the one
    // attach reported.
    assert_eq!(
        ns.show_json(&ns.a)["map_id"].as_u64(),
        Some(map_id),
        "the exported map is attach's"
    );
    if common::have_tool("bpftool") {
        let out = Command::new("bpftool")
            .args(["-j", "prog", "show", "id", &prog_id.to_string()])
            .output()
            .expect("run bpftool");
        let prog: Value = serde_json::from_slice(&out.stdout).expect("bpftool -j");
        assert_eq!(prog["tag"].as_str(), Some(tag), "bpftool's tag");
    }

    // With --per-cpu, one series per CPU, summing to the totals.
    let per_cpu = scrape(&ns, per_cpu_addr);
    let sum = |name: &str| -> u64 {
        let prefix = format!("{name}{{interface=\"{}\",cpu=\"", ns.a);
        per_cpu
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(sum("xdpstat_packets_total"), K as u64, "{per_cpu}");
    assert_eq!(sum("xdpstat_bytes_total"), bytes, "{per_cpu}");
    assert!(value(&per_cpu, &packets).is_none(), "no sum with --per-cpu");

    // Content types: the classic text by default, OpenMetrics when asked.
    let plain = http_get(&ns, addr, "/metrics", None).unwrap();
    assert_eq!(
        plain.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let om = http_get(
        &ns,
        addr,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .unwrap();
    assert_eq!(om.status, 200);
    assert_eq!(
        om.content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    assert!(om.body.contains(&format!("{packets} {K}\n")), "{}", om.body);

    if common::have_tool("promtool") {
        for (name, text) in [("plain", &body), ("per-cpu", &per_cpu)] {
            let file = dir.path().join(format!("{name}.prom"));
            fs::write(&file, text).unwrap();
            let out = Command::new("promtool")
                .args(["check", "metrics"])
                .stdin(fs::File::open(&file).unwrap())
                .output()
                .expect("run promtool");
            assert!(
                out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
                "promtool check metrics on {name} ({}): {}{}\n{text}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Prometheus's query API: the value of the one series `query` returns.
fn prometheus_value(ns: &VethNs, addr: SocketAddr, query: &str) -> Option<String> {
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let r = http_get(ns, addr, &format!("/api/v1/query?query={encoded}"), None).ok()?;
    let json: Value = serde_json::from_str(&r.body).ok()?;
    let result = json["data"]["result"].as_array()?;
    assert!(result.len() <= 1, "one series expected: {json}");
    result.first()?["value"][1].as_str().map(str::to_owned)
}

#[test]
fn prometheus_scrapes_exact_counts() {
    if !common::privileged("prometheus_scrapes_exact_counts") || !common::have_tool("prometheus") {
        return;
    }
    let started = Instant::now();
    let ns = namespace();
    let dir = TempDir::new("prometheus");
    attach(&ns, &ns.a);
    let export_addr = localhost(9435);
    let _export = start_export(&ns, &dir, export_addr, &[]);

    let config = dir.path().join("prometheus.yml");
    fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: xdpstat\n    scrape_interval: 1s\n    scrape_timeout: 1s\n\
             \x20   static_configs:\n      - targets: ['{export_addr}']\n"
        ),
    )
    .unwrap();
    let prom_addr = localhost(9090);
    let mut cmd = ns.command("prometheus");
    cmd.current_dir(dir.path()).args([
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address={prom_addr}"),
    ]);
    let mut prometheus = Spawned::new(cmd, "prometheus", dir.path().join("prometheus.log"));

    const K: usize = 777;
    let (lengths, bytes) = frames(K);
    ns.send_frames(lengths, None);

    let packets = format!("xdpstat_packets_total{{interface=\"{}\"}}", ns.a);
    let bytes_query = format!("xdpstat_bytes_total{{interface=\"{}\"}}", ns.a);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = None;
    while got.as_deref() != Some(K.to_string().as_str()) {
        prometheus.assert_running();
        assert!(
            Instant::now() < deadline,
            "Prometheus never had {packets} = {K} (last {got:?}): {}",
            prometheus.log()
        );
        thread::sleep(Duration::from_millis(250));
        got = prometheus_value(&ns, prom_addr, &packets);
    }
    // Exactly K, and it stays there over the next scrapes.
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        prometheus_value(&ns, prom_addr, &packets),
        Some(K.to_string())
    );
    assert_eq!(
        prometheus_value(&ns, prom_addr, &bytes_query),
        Some(bytes.to_string())
    );
    assert_eq!(
        prometheus_value(&ns, prom_addr, "up{job=\"xdpstat\"}"),
        Some("1".to_owned())
    );
    eprintln!(
        "prometheus_scrapes_exact_counts: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_failing_interface_does_not_break_the_scrape() {
    if !common::privileged("a_failing_interface_does_not_break_the_scrape") {
        return;
    }
    let ns = namespace();
    let dir = TempDir::new("failing");
    attach(&ns, &ns.a);
    let addr = localhost(9435);
    // b is not attached: every scrape fails to read it.
    let _export = start_export(&ns, &dir, addr, &[&ns.a, &ns.b]);

    const K: usize = 50;
    let (lengths, _) = frames(K);
    ns.send_frames(lengths, None);
    let packets_a = format!("xdpstat_packets_total{{interface=\"{}\"}}", ns.a);
    let packets_b = format!("xdpstat_packets_total{{interface=\"{}\"}}", ns.b);
    common::settle(&Some(K as u64), || value(&scrape(&ns, addr), &packets_a));

    let errors = |body: &str| value(body, "xdpstat_scrape_errors_total").expect("errors");
    let first = scrape(&ns, addr);
    let second = scrape(&ns, addr);
    assert_eq!(value(&second, &packets_a), Some(K as u64), "{second}");
    assert!(value(&second, &packets_b).is_none(), "{second}");
    assert!(errors(&first) >= 1, "{first}");
    assert_eq!(errors(&second), errors(&first) + 1, "{second}");

    // Attached now: b reads, and the errors stop growing.
    attach(&ns, &ns.b);
    let body = scrape(&ns, addr);
    assert_eq!(value(&body, &packets_b), Some(0), "{body}");
    assert_eq!(errors(&body), errors(&second), "{body}");
    assert!(body.contains(&format!("xdpstat_program_info{{interface=\"{}\",", ns.b)));

    // Detached mid-run (the map unpinned): b fails again, a goes on.
    ns.xdpstat_ok(&["detach", &ns.b]);
    let after = scrape(&ns, addr);
    assert_eq!(value(&after, &packets_a), Some(K as u64), "{after}");
    assert!(value(&after, &packets_b).is_none(), "{after}");
    assert_eq!(errors(&after), errors(&body) + 1, "{after}");
}

#[test]
fn interfaces_attached_later_appear() {
    if !common::privileged("interfaces_attached_later_appear") {
        return;
    }
    let ns = namespace();
    let dir = TempDir::new("later");
    let addr = localhost(9435);
    // No IFACE: whatever xdpstat counts on at scrape time. Other tests'
    // interfaces may show up too (bpffs is shared), so only ours is checked.
    let _export = start_export(&ns, &dir, addr, &[]);
    let packets = format!("xdpstat_packets_total{{interface=\"{}\"}}", ns.a);
    assert!(value(&scrape(&ns, addr), &packets).is_none());
    attach(&ns, &ns.a);
    let (lengths, _) = frames(10);
    ns.send_frames(lengths, None);
    let got = common::settle(&Some(10), || value(&scrape(&ns, addr), &packets));
    assert_eq!(got, Some(10));
    ns.xdpstat_ok(&["detach", &ns.a]);
    assert!(value(&scrape(&ns, addr), &packets).is_none());
}

#[test]
fn listens_on_loopback_by_default_and_stops_on_sigterm() {
    if !common::privileged("listens_on_loopback_by_default_and_stops_on_sigterm") {
        return;
    }
    let ns = namespace();
    let dir = TempDir::new("listen");
    let out = Command::new("ip")
        .args(["-n", &ns.ns, "addr", "add", "10.77.0.1/24", "dev", &ns.a])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let outside: SocketAddr = (Ipv4Addr::new(10, 77, 0, 1), 9435).into();

    // No --listen: 127.0.0.1:9435, and not the interface's address.
    let mut export = start_export(&ns, &dir, localhost(9435), &[]);
    let index = http_get(&ns, localhost(9435), "/", None).unwrap();
    assert_eq!(index.status, 200);
    assert!(index.content_type.starts_with("text/html"), "{index:?}");
    assert!(index.body.contains("/metrics"), "{index:?}");
    assert_eq!(
        http_get(&ns, localhost(9435), "/nope", None)
            .unwrap()
            .status,
        404
    );
    let refused = http_get(&ns, outside, "/metrics", None).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(!export.log().contains("not loopback"), "{}", export.log());

    // SIGTERM stops it cleanly, and frees the port.
    let status = export.terminate(Duration::from_secs(5));
    assert!(status.success(), "{status}: {}", export.log());
    assert!(export.log().contains("export stopped"), "{}", export.log());
    assert!(http_get(&ns, localhost(9435), "/", None).is_err());

    // Elsewhere only when asked, with a warning.
    let any: SocketAddr = (Ipv4Addr::UNSPECIFIED, 9436).into();
    let export = start_export(&ns, &dir, localhost(9436), &["--listen", &any.to_string()]);
    let outside: SocketAddr = (Ipv4Addr::new(10, 77, 0, 1), 9436).into();
    assert_eq!(
        http_get(&ns, outside, "/metrics", None).unwrap().status,
        200
    );
    assert!(export.log().contains("not loopback"), "{}", export.log());
}
