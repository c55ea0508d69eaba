//! `xdpstat export` against the real kernel: the exposition's lines and
//! format (checked by promtool), a real Prometheus server scraping it, a
//! failing interface next to a working one, where it listens, and that
//! hostile or slow clients cost only their own connections.
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
    http_get_within(ns, addr, path, accept, Duration::from_secs(10))
}

/// [`http_get`], giving up when the answer takes longer than `limit`.
fn http_get_within(
    ns: &VethNs,
    addr: SocketAddr,
    path: &str,
    accept: Option<&str>,
    limit: Duration,
) -> std::io::Result<Response> {
    let path = path.to_owned();
    let accept = accept.map(str::to_owned);
    ns.run(move || {
        let mut stream = TcpStream::connect_timeout(&addr, limit)?;
        stream.set_read_timeout(Some(limit))?;
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

/// The resident memory of a process, in KiB (`VmRSS` in its status).
fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// A TCP connection to `addr`, made in the namespace (a socket stays in
/// the namespace it was made in, whichever thread uses it later).
fn connect(ns: &VethNs, addr: SocketAddr) -> TcpStream {
    ns.run(move || TcpStream::connect_timeout(&addr, Duration::from_secs(2)))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// Sets `SO_RCVBUF`, which also stops the kernel from growing the buffer.
fn set_receive_buffer(stream: &TcpStream, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on an open socket, with an int option value.
    let ret = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_ref(&bytes).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
}

/// Reads from `stream` until the peer closes it (EOF or a reset), and
/// returns what it read and when it was closed; `None` for the time when
/// it is still open after `limit`.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Instant>) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 1 << 16];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, None);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (got, Some(Instant::now())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (got, Some(Instant::now()))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading: {e}"),
        }
    }
}

/// How many HTTP responses `bytes` holds (each starts with a status line).
fn responses(bytes: &[u8]) -> usize {
    bytes.windows(9).filter(|w| w == b"HTTP/1.1 ").count()
}

/// How long a scrape took, insisting that it succeeded and read `K` packets.
fn timed_scrape(ns: &VethNs, addr: SocketAddr, packets: &str, k: u64) -> Duration {
    let started = Instant::now();
    let r = http_get_within(ns, addr, "/metrics", None, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("GET /metrics failed after {:?}: {e}", started.elapsed()));
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(value(&r.body, packets), Some(k), "{}", r.body);
    took
}

// The exporter's limits, as `xdpstat::server::Limits::default()` sets them.
/// How long a request may take to arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests answered on one connection.
const MAX_REQUESTS: usize = 32;

#[test]
fn a_client_that_pipelines_and_never_reads_costs_only_its_connection() {
    if !common::privileged("a_client_that_pipelines_and_never_reads_costs_only_its_connection") {
        return;
    }
    let ns = namespace();
    // Ethernet's MTU, as a scraper across a network has: with loopback's
    // 64 KiB segments the kernel buffers megabytes of answers for a client
    // that reads nothing, which hides what the exporter does then.
    let out = Command::new("ip")
        .args(["-n", &ns.ns, "link", "set", "lo", "mtu", "1500"])
        .output()
        .expect("run ip");
    assert!(out.status.success(), "lo mtu: {out:?}");
    let dir = TempDir::new("pipeline");
    attach(&ns, &ns.a);
    let addr = localhost(9435);
    let export = start_export(&ns, &dir, addr, &[&ns.a]);
    const K: u64 = 100;
    let (lengths, _) = frames(K as usize);
    ns.send_frames(lengths, None);
    let packets = format!("xdpstat_packets_total{{interface=\"{}\"}}", ns.a);
    common::settle(&Some(K), || value(&scrape(&ns, addr), &packets));
    let rss_before = rss_kib(export.child.id());

    // 3000 requests in one write, and never a read. A small receive
    // buffer makes the exporter's writes block soon, whatever the
    // machine's TCP buffer sizes are.
    let mut hostile = connect(&ns, addr);
    set_receive_buffer(&hostile, 4096);
    let requests = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").repeat(3000);
    let mut writer = hostile.try_clone().unwrap();
    let writing = thread::spawn(move || {
        writer
            .set_write_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        // The exporter may close the connection before it has all of them.
        let _ = writer.write_all(requests.as_bytes());
    });
    // Time for the exporter to take them on.
    thread::sleep(Duration::from_millis(200));

    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let took = timed_scrape(&ns, addr, &packets, K);
        assert!(
            took < Duration::from_secs(1),
            "a scrape took {took:?} next to the pipelining client"
        );
        slowest = slowest.max(took);
    }
    let rss = rss_kib(export.child.id());
    eprintln!(
        "pipelining client: slowest of 5 scrapes {:.1} ms; exporter RSS {rss} KiB (before: {rss_before} KiB)",
        slowest.as_secs_f64() * 1e3
    );
    assert!(rss < 100 * 1024, "exporter RSS {rss} KiB");

    // Its own connection was answered at most MAX_REQUESTS times, then
    // closed.
    let (got, closed) = read_until_closed(&mut hostile, 2 * REQUEST_TIMEOUT);
    assert!(
        closed.is_some(),
        "the pipelining connection is still open, after {} responses",
        responses(&got)
    );
    assert!(
        responses(&got) <= MAX_REQUESTS,
        "{} responses",
        responses(&got)
    );
    writing.join().unwrap();
    assert!(rss_kib(export.child.id()) < 100 * 1024);
}

#[test]
fn a_silent_or_slow_connection_is_closed_after_the_time_limit() {
    if !common::privileged("a_silent_or_slow_connection_is_closed_after_the_time_limit") {
        return;
    }
    let ns = namespace();
    let dir = TempDir::new("slow");
    attach(&ns, &ns.a);
    let addr = localhost(9435);
    let _export = start_export(&ns, &dir, addr, &[&ns.a]);
    let packets = format!("xdpstat_packets_total{{interface=\"{}\"}}", ns.a);

    // One connection sends nothing; another sends a request head a line
    // at a time, never finishing it.
    let opened = Instant::now();
    let mut silent = connect(&ns, addr);
    let mut slow = connect(&ns, addr);
    let mut writer = slow.try_clone().unwrap();
    let trickling = thread::spawn(move || {
        if writer.write_all(b"GET /metrics HTTP/1.1\r\n").is_err() {
            return;
        }
        for i in 0..60 {
            thread::sleep(Duration::from_millis(250));
            if write!(writer, "X-Slow-{i}: 1\r\n").is_err() {
                return;
            }
        }
    });

    // Others are served meanwhile.
    for _ in 0..3 {
        let took = timed_scrape(&ns, addr, &packets, 0);
        assert!(took < Duration::from_secs(1), "a scrape took {took:?}");
        thread::sleep(Duration::from_millis(500));
    }

    let limit = REQUEST_TIMEOUT + Duration::from_secs(2);
    let (got, closed) = read_until_closed(&mut silent, limit);
    let closed = closed
        .unwrap_or_else(|| panic!("a silent connection is still open after {limit:?}"))
        - opened;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert!(
        closed >= REQUEST_TIMEOUT - Duration::from_millis(500),
        "closed after {closed:?}"
    );
    let (got, closed_slow) = read_until_closed(&mut slow, limit);
    let closed_slow = closed_slow
        .unwrap_or_else(|| panic!("a trickling connection is still open after {limit:?}"))
        - opened;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    eprintln!(
        "silent connection closed after {:.2} s, trickling one after {:.2} s",
        closed.as_secs_f64(),
        closed_slow.as_secs_f64()
    );
    trickling.join().unwrap();
    timed_scrape(&ns, addr, &packets, 0);
}

#[test]
fn two_hundred_concurrent_scrapes_all_succeed() {
    if !common::privileged("two_hundred_concurrent_scrapes_all_succeed") {
        return;
    }
    let ns = namespace();
    let dir = TempDir::new("concurrent");
    attach(&ns, &ns.a);
    let addr = localhost(9435);
    let _export = start_export(&ns, &dir, addr, &[&ns.a]);
    let packets = format!("xdpstat_packets_total{{interface=\"{}\"}}", ns.a);
    const N: usize = 200;
    let started = Instant::now();
    let results: Vec<Result<Response, String>> = ns.run(move || {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(N));
        // Threads made here are in the namespace too.
        let handles: Vec<_> = (0..N)
            .map(|_| {
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                        .map_err(|e| format!("connect: {e}"))?;
                    stream
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    write!(
                        stream,
                        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                    )
                    .map_err(|e| format!("write: {e}"))?;
                    let mut raw = String::new();
                    stream
                        .read_to_string(&mut raw)
                        .map_err(|e| format!("read: {e}"))?;
                    let (head, body) = raw.split_once("\r\n\r\n").ok_or(raw.clone())?;
                    let status = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .ok_or(head.to_owned())?;
                    Ok(Response {
                        status,
                        content_type: String::new(),
                        body: body.to_owned(),
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = started.elapsed();
    for r in &results {
        let r = r
            .as_ref()
            .unwrap_or_else(|e| panic!("a scrape failed: {e}"));
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(value(&r.body, &packets), Some(0), "{}", r.body);
    }
    eprintln!(
        "{N} concurrent scrapes in {:.0} ms",
        took.as_secs_f64() * 1e3
    );
}
