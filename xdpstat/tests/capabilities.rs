//! What each command needs, checked by running the binary under `setpriv`
//! with exactly a bounding set (root's capabilities are then that set):
//! the sets the systemd units in `xdpstat/systemd/` grant. With them the
//! commands count exactly; with one capability less each fails with one
//! line that names it.

mod common;

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::{have_tool, privileged, VethNs};

/// `xdpstat ARGS` in the namespace, bounded to `caps` (`+bpf,+net_admin`).
fn bounded(ns: &VethNs, caps: &str, args: &[&str]) -> Command {
    let mut cmd = ns.command("setpriv");
    cmd.args([
        "--bounding-set",
        &format!("-all,{caps}"),
        "--inh-caps",
        "-all",
        "--",
        env!("CARGO_BIN_EXE_xdpstat"),
    ])
    .args(args);
    cmd
}

fn run(ns: &VethNs, caps: &str, args: &[&str]) -> Output {
    bounded(ns, caps, args).output().unwrap()
}

fn ok(ns: &VethNs, caps: &str, args: &[&str]) -> String {
    let out = run(ns, caps, args);
    assert!(
        out.status.success(),
        "{caps} xdpstat {args:?}: {}",
        common::stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails, in one line that names `missing`.
fn refused(ns: &VethNs, caps: &str, args: &[&str], missing: &str) {
    let out = run(ns, caps, args);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{caps} {args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{caps} {args:?}: {err}");
    assert!(
        err.contains(missing),
        "{caps} {args:?} names {missing}: {err}"
    );
}

/// The sets the units grant (`xdpstat/systemd/*.service`): attach needs
/// the attach unit's set but `CAP_SYS_ADMIN`, which the unit keeps for a
/// bpffs mount and for observing.
const ATTACH: &str = "+bpf,+net_admin,+perfmon";
const ATTACH_UNIT: &str = "+bpf,+net_admin,+perfmon,+sys_admin";
const READ: &str = "+bpf";

#[test]
fn each_command_works_with_its_units_capabilities_and_names_what_it_lacks() {
    if !privileged("each_command_works_with_its_units_capabilities_and_names_what_it_lacks")
        || !have_tool("setpriv")
    {
        return;
    }
    let ns = VethNs::new();
    let up = Command::new("ip")
        .args(["-n", &ns.ns, "link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(up.success());
    // attach: CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON.
    refused(&ns, "+bpf,+net_admin", &["attach", &ns.a], "CAP_PERFMON");
    refused(&ns, "+bpf,+perfmon", &["attach", &ns.a], "CAP_NET_ADMIN");
    assert!(
        ns.xdp_on(&ns.a).is_empty(),
        "a refused attach attaches nothing"
    );
    ok(&ns, ATTACH, &["attach", &ns.a, "--mode", "generic"]);
    // Replacing a program opens it by id: CAP_SYS_ADMIN too.
    refused(&ns, ATTACH, &["attach", &ns.a, "--force"], "CAP_SYS_ADMIN");

    let (k, mut bytes) = (7, 0);
    let lengths: Vec<usize> = (0..k).map(|i| 60 + 100 * i).collect();
    for l in &lengths {
        bytes += *l as u64;
    }
    ns.send_frames(lengths, None);

    // show and export: CAP_BPF alone, through the counters' pin.
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&ns, READ, &["show", &ns.a, "--json"])).unwrap();
    assert_eq!(shown["total"]["packets"], k, "{shown}");
    assert_eq!(shown["total"]["bytes"], bytes, "{shown}");
    refused(&ns, "+net_admin", &["show", &ns.a], "CAP_BPF");

    let port = 19000 + (std::process::id() % 1000) as u16;
    let addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
    let mut export = bounded(&ns, READ, &["export", "--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let body = scrape_within(&ns, addr, Duration::from_secs(10));
    let _ = export.kill();
    let _ = export.wait();
    let body = body.expect("export answered");
    let series = format!("xdpstat_packets_total{{interface=\"{}\"}} {k}", ns.a);
    assert!(body.contains(&series), "{series} in {body}");
    assert!(body.contains("xdpstat_scrape_errors_total 0"), "{body}");
    refused(
        &ns,
        "+net_admin",
        &["export", "--listen", &addr.to_string()],
        "CAP_BPF",
    );

    // detach: CAP_BPF and CAP_NET_ADMIN.
    refused(&ns, READ, &["detach", &ns.a], "CAP_NET_ADMIN");
    ok(&ns, "+bpf,+net_admin", &["detach", &ns.a]);
    assert!(ns.xdp_on(&ns.a).is_empty());

    // observe: the attach unit's whole set. The observed program is
    // another loader's, opened by id (CAP_SYS_ADMIN), and traced
    // (CAP_PERFMON, which CAP_SYS_ADMIN implies in the kernel).
    ns.attach_foreign(&ns.a, xdpstat::kernel::netlink::XDP_FLAGS_SKB_MODE);
    let observe = ["attach", ns.a.as_str(), "--observe"];
    refused(&ns, "+bpf,+net_admin", &observe, "CAP_PERFMON");
    refused(&ns, ATTACH, &observe, "CAP_SYS_ADMIN");
    let out = run(&ns, ATTACH_UNIT, &observe);
    if out.status.success() {
        let lengths = vec![64, 200, 700];
        let bytes: usize = lengths.iter().sum();
        ns.send_frames(lengths, None);
        let seen: serde_json::Value =
            serde_json::from_str(&ok(&ns, READ, &["show", &ns.a, "--json"])).unwrap();
        assert_eq!(seen["total"]["packets"], 3, "{seen}");
        assert_eq!(seen["total"]["bytes"], bytes, "{seen}");
        ok(&ns, "+bpf,+net_admin", &["detach", &ns.a]);
    } else {
        // This machine's 6.18 refuses tracing programs even to root: the
        // guests (`cargo xtask test --kernel`) run the counting half.
        let err = common::stderr(&out);
        assert!(
            err.contains("refuses xdpstat's fentry/fexit observers"),
            "{err}"
        );
        let root = ns.xdpstat(&["attach", &ns.a, "--observe"]);
        assert!(
            !root.status.success(),
            "root observes where the attach set may not"
        );
    }
}

/// GET /metrics from inside the namespace, retrying until it answers.
fn scrape_within(ns: &VethNs, addr: SocketAddr, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let got = ns.run(move || -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
            let mut raw = String::new();
            s.read_to_string(&mut raw)?;
            Ok(raw)
        });
        if let Ok(raw) = got {
            return Some(raw);
        }
        thread::sleep(Duration::from_millis(50));
    }
    None
}
