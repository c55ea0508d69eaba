//! `attach --observe`: xdpstat counts per verdict for an XDP program that
//! another loader attached, through fentry/fexit, without replacing it.
//!
//! The observed program is `fixtures/observe/verdicts.c`, built here by
//! clang, whose verdict depends only on the frame's length. This machine's
//! kernel refuses tracing programs, so the counting tests run in the 6.1
//! and 6.12 guests (`cargo xtask test --kernel`); where the kernel
//! refuses, they check the refusal instead.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use common::{assert_fails, have_tool, privileged, settle, Scratch, VethNs};
use serde_json::Value;

/// Builds the verdicts program into a directory of its own.
fn build(dir: &Path, redirect_ifindex: u32, btf: bool) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/observe/verdicts.c");
    let out = dir.join(if btf {
        "verdicts.o"
    } else {
        "verdicts-nobtf.o"
    });
    let mut cmd = Command::new("clang");
    cmd.args(["-O2", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu"])
        .arg(format!("-DREDIRECT_IFINDEX={redirect_ifindex}"));
    if btf {
        cmd.arg("-g");
    }
    let status = cmd
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "clang {}", src.display());
    out
}

/// A namespace whose `a` runs the verdicts program, attached in `mode`:
/// by `ip` (netlink) with `xdpgeneric` or `xdpdrv`, with `link` through a
/// BPF link (generic), pinned as a libbpf loader would, or with `load` by
/// `xdpstat load` (generic); and a second pair to redirect to.
fn with_verdicts(mode: &str, dir: &Path, btf: bool) -> (VethNs, u32) {
    let ns = VethNs::new();
    ns.ip(&[
        "link", "add", "rdc0", "type", "veth", "peer", "name", "rdd0",
    ]);
    ns.ip(&["link", "set", "rdc0", "up"]);
    ns.ip(&["link", "set", "rdd0", "up"]);
    let obj = build(dir, ns.ifindex("rdc0"), btf);
    if mode == "link" {
        ns.attach_link(&ns.a, &obj, "verdict_by_length");
    } else if mode == "load" {
        // xdpstat's loader: the user's program, observed like any other.
        let obj = obj.to_str().unwrap();
        ns.xdpstat_ok(&[
            "load", obj, "--dev", &ns.a, "--sec", "xdp", "--mode", "generic",
        ]);
    } else {
        let obj = obj.to_str().unwrap();
        ns.ip(&["link", "set", "dev", &ns.a, mode, "obj", obj, "sec", "xdp"]);
    }
    let ids = ns.xdp_on(&ns.a);
    assert_eq!(ids.len(), 1, "{ids:?}");
    (ns, ids[0].prog_id)
}

/// The ids of the programs on `iface`.
fn prog_ids(ns: &VethNs, iface: &str) -> Vec<u32> {
    ns.xdp_on(iface).iter().map(|p| p.prog_id).collect()
}

/// The mix each CPU sends, and what the program makes of it.
const MIX: [usize; 10] = [60, 60, 99, 333, 444, 555, 600, 1000, 100, 1514];

fn expected(senders: u64) -> Value {
    let per = |lens: &[usize]| {
        serde_json::json!({
            "packets": lens.len() as u64 * senders,
            "bytes": lens.iter().sum::<usize>() as u64 * senders,
        })
    };
    serde_json::json!({
        "aborted": per(&[333]),
        "drop": per(&[60, 60, 99]),
        "pass": per(&[600, 1000, 100, 1514]),
        "tx": per(&[444]),
        "redirect": per(&[555]),
        "other": per(&[]),
    })
}

fn show(ns: &VethNs) -> Value {
    let out = ns.xdpstat_ok(&["show", &ns.a, "--json"]);
    serde_json::from_str(&out).unwrap()
}

/// Whether this kernel loads the observers: they are refused here with
/// the one line the refusal test checks.
fn observe_or_refusal(ns: &VethNs) -> Option<Value> {
    let out = ns.xdpstat(&["attach", &ns.a, "--observe", "--json"]);
    if out.status.code() == Some(2)
        && common::stderr(&out).contains("refuses xdpstat's fentry/fexit observers")
    {
        return None;
    }
    assert!(out.status.success(), "{}", common::stderr(&out));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn counts_every_verdict_exactly(mode: &str) {
    let scratch = Scratch::new(mode);
    let (ns, prog_id) = with_verdicts(mode, &scratch.0, true);
    let Some(attached) = observe_or_refusal(&ns) else {
        // The refusal test covers this kernel.
        assert!(
            !common::required()
                || common::kernel_line() != "6.1" && common::kernel_line() != "6.12",
            "6.1 and 6.12 load the observers"
        );
        return;
    };
    assert_eq!(attached["source"], "observe");
    assert_eq!(attached["observed"]["prog_id"], prog_id);
    assert_eq!(attached["observed"]["name"], "verdict_by_length");
    let status: Value = serde_json::from_str(&ns.xdpstat_ok(&["status", "--json"])).unwrap();
    let entry = status
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["interface"] == ns.a.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["observed"], true, "{status}");
    // What `xdpstat load` attached is xdpstat's to detach.
    let owner = if mode == "load" { "xdpstat" } else { "other" };
    assert_eq!(entry["owner"], owner);
    assert!(ns
        .xdpstat_ok(&["status"])
        .contains(&format!("{owner}, observed by xdpstat")));

    std::thread::scope(|s| {
        for cpu in [0, 1] {
            let ns = &ns;
            s.spawn(move || ns.send_frames(MIX.to_vec(), Some(cpu)));
        }
    });
    let want = expected(2);
    let got = settle(&want, || show(&ns)["actions"].clone());
    assert_eq!(got, want, "{mode}");
    let json = show(&ns);
    let total: usize = MIX.iter().sum();
    assert_eq!(json["total"]["packets"], MIX.len() as u64 * 2);
    assert_eq!(json["total"]["bytes"], total as u64 * 2);
    assert_eq!(json["observed"]["prog_id"], prog_id);
    assert!(json["replaced_by"].is_null());
    assert_eq!(json["bytes_at"], "entry");
    let per_cpu: u64 = json["cpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["actions"]["drop"]["packets"].as_u64().unwrap())
        .sum();
    assert_eq!(per_cpu, 6, "the CPUs' drops add up");
    let metrics = scrape_export(&ns);
    for (action, want) in expected(2).as_object().unwrap() {
        let series = format!(
            "xdpstat_packets_total{{interface=\"{}\",action=\"{action}\"}} {}",
            ns.a, want["packets"]
        );
        assert!(
            metrics.lines().any(|l| l == series),
            "{series} in:\n{metrics}"
        );
    }
    assert!(
        metrics.contains(&format!("prog_id=\"{prog_id}\",name=\"verdict_by_length\"")),
        "{metrics}"
    );
    assert_eq!(
        prog_ids(&ns, &ns.a),
        vec![prog_id],
        "the program stays, same id"
    );

    let out = ns.xdpstat_ok(&["detach", &ns.a]);
    assert!(
        out.contains(&format!("prog id {prog_id} stays attached")),
        "{out}"
    );
    assert_eq!(
        prog_ids(&ns, &ns.a),
        vec![prog_id],
        "still attached after detach"
    );
    if mode == "xdpgeneric" {
        // It still drops what it drops: of a 60-byte and a 600-byte frame,
        // only the one it passes reaches a socket on the interface.
        assert_eq!(received_on_a(&ns, vec![60, 600]), vec![600]);
    }
    let observers: Vec<_> = std::fs::read_dir(ns.ns_dir().path())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        observers
            .iter()
            .all(|n| !n.to_string_lossy().starts_with("observe:")),
        "{observers:?}"
    );
}

/// The lengths of the frames that reach an AF_PACKET socket on `a` when
/// `b` sends `lengths` (XDP runs before the socket sees a frame).
fn received_on_a(ns: &VethNs, lengths: Vec<usize>) -> Vec<usize> {
    let ifindex = ns.ifindex(&ns.a);
    let a_sock = ns.run(move || {
        // SAFETY: plain socket calls on values we own; results are checked.
        unsafe {
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                i32::from((0x88b5u16).to_be()),
            );
            assert!(fd >= 0, "AF_PACKET socket");
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = 0x88b5u16.to_be();
            addr.sll_ifindex = ifindex as i32;
            let bound = libc::bind(
                fd,
                std::ptr::from_ref(&addr).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(bound, 0, "bind to a");
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 500_000,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::from_ref(&tv).cast(),
                size_of::<libc::timeval>() as u32,
            );
            fd
        }
    });
    ns.send_frames(lengths, None);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 2048];
    loop {
        // SAFETY: reading into a buffer we own.
        let n = unsafe { libc::recv(a_sock, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            break;
        }
        got.push(n as usize);
    }
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(a_sock) };
    got
}

/// Replaces `a`'s program with `obj`, as a user reloading theirs does:
/// `ip -force link set … xdpgeneric obj`.
fn replace_program(ns: &VethNs, obj: &Path) {
    let obj = obj.to_str().unwrap();
    ns.ip(&[
        "-force",
        "link",
        "set",
        "dev",
        &ns.a,
        "xdpgeneric",
        "obj",
        obj,
        "sec",
        "xdp",
    ]);
}

/// The first of at most 50 lines from `next` that `want` accepts, or
/// the 50th.
fn next_until(next: &mut impl FnMut() -> Value, want: impl Fn(&Value) -> bool) -> Value {
    let mut line = next();
    for _ in 0..50 {
        if want(&line) {
            break;
        }
        line = next();
    }
    line
}

/// One scrape of `xdpstat export` in the namespace (whose port 9435 is
/// its own).
fn scrape_export(ns: &VethNs) -> String {
    use std::io::{Read, Write};
    ns.ip(&["link", "set", "lo", "up"]);
    let mut export = ns
        .command(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["export", "--listen", "127.0.0.1:9435"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let body = ns.run(|| {
        let addr: std::net::SocketAddr = "127.0.0.1:9435".parse().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
                write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
                let mut raw = String::new();
                stream.read_to_string(&mut raw).unwrap();
                return raw;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "export never answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
    let _ = export.kill();
    let _ = export.wait();
    body
}

#[test]
fn every_verdict_is_counted_exactly_in_generic_mode() {
    if !privileged("every_verdict_is_counted_exactly_in_generic_mode") || !have_tool("clang") {
        return;
    }
    counts_every_verdict_exactly("xdpgeneric");
}

#[test]
fn every_verdict_is_counted_exactly_in_native_mode() {
    if !privileged("every_verdict_is_counted_exactly_in_native_mode") || !have_tool("clang") {
        return;
    }
    counts_every_verdict_exactly("xdpdrv");
}

#[test]
fn every_verdict_is_counted_exactly_under_a_bpf_link() {
    if !privileged("every_verdict_is_counted_exactly_under_a_bpf_link") || !have_tool("clang") {
        return;
    }
    counts_every_verdict_exactly("link");
}

#[test]
fn every_verdict_is_counted_exactly_for_what_xdpstat_load_attached() {
    if !privileged("every_verdict_is_counted_exactly_for_what_xdpstat_load_attached")
        || !have_tool("clang")
    {
        return;
    }
    counts_every_verdict_exactly("load");
}

#[test]
fn a_replaced_program_is_named_and_its_counts_are_not_shown_as_live() {
    if !privileged("a_replaced_program_is_named_and_its_counts_are_not_shown_as_live")
        || !have_tool("clang")
    {
        return;
    }
    let scratch = Scratch::new("replaced");
    let (ns, old) = with_verdicts("xdpgeneric", &scratch.0, true);
    if observe_or_refusal(&ns).is_none() {
        return;
    }
    ns.send_frames(vec![60, 600], None);
    let want = serde_json::json!({"packets": 1, "bytes": 600});
    assert_eq!(settle(&want, || show(&ns)["actions"]["pass"].clone()), want);
    // The user reloads theirs.
    let obj = scratch.0.join("verdicts.o");
    replace_program(&ns, &obj);
    let new = prog_ids(&ns, &ns.a);
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], old, "a new program");
    let json = show(&ns);
    assert_eq!(json["observed"]["prog_id"], old);
    assert_eq!(json["replaced_by"], new[0]);
    let text = ns.xdpstat_ok(&["show", &ns.a]);
    assert!(
        text.contains(&format!("now runs prog id {}", new[0])) && text.contains("frozen"),
        "{text}"
    );
    ns.xdpstat_ok(&["detach", &ns.a]);
    assert_eq!(prog_ids(&ns, &ns.a), new, "the new program stays");
}

#[test]
fn run_follows_a_replaced_program_and_counts_the_new_one_exactly() {
    if !privileged("run_follows_a_replaced_program_and_counts_the_new_one_exactly")
        || !have_tool("clang")
    {
        return;
    }
    use std::io::{BufRead, BufReader};
    let scratch = Scratch::new("run");
    let (ns, old) = with_verdicts("xdpgeneric", &scratch.0, true);
    let probe = ns.xdpstat(&["attach", &ns.a, "--observe"]);
    if !probe.status.success() {
        return; // The refusal test covers a kernel that refuses.
    }
    ns.xdpstat_ok(&["detach", &ns.a]);
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["run", &ns.a, "--observe", "--json", "--interval", "200ms"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let first = next();
    assert_eq!(first["observed"]["prog_id"], old);
    ns.send_frames(MIX.to_vec(), None);
    let line = next_until(&mut next, |l| l["actions"] == expected(1));
    assert_eq!(line["actions"], expected(1), "before the replacement");

    let obj = scratch.0.join("verdicts.o");
    replace_program(&ns, &obj);
    let new = prog_ids(&ns, &ns.a)[0];
    let line = next_until(&mut next, |l| l["notice"].is_string());
    let notice = line["notice"].as_str().unwrap_or_default().to_owned();
    assert!(
        notice.contains(&format!("now runs prog id {new}")),
        "{line}"
    );
    assert_eq!(line["observed"]["prog_id"], new);
    assert!(line["rates"].is_null(), "rates restart");
    ns.send_frames(MIX.to_vec(), None);
    let line = next_until(&mut next, |l| l["actions"] == expected(1));
    assert_eq!(line["actions"], expected(1), "the new program's own counts");
    assert_eq!(line["observed"]["prog_id"], new);

    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "run exits 0 on SIGTERM: {status}");
    assert_eq!(prog_ids(&ns, &ns.a), vec![new], "the program stays");
    let left: Vec<_> = std::fs::read_dir(ns.ns_dir().path())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "run removed its observers: {left:?}");
}

#[test]
fn a_kernel_that_refuses_tracing_gets_one_line_and_nothing_is_left() {
    if !privileged("a_kernel_that_refuses_tracing_gets_one_line_and_nothing_is_left")
        || !have_tool("clang")
    {
        return;
    }
    let scratch = Scratch::new("refused");
    let (ns, prog_id) = with_verdicts("xdpgeneric", &scratch.0, true);
    let out = ns.xdpstat(&["attach", &ns.a, "--observe"]);
    if out.status.success() {
        // This kernel observes (the counting tests cover it); undo.
        ns.xdpstat_ok(&["detach", &ns.a]);
        return;
    }
    assert_fails(
        &out,
        2,
        &[
            "refuses xdpstat's fentry/fexit observers",
            "errno",
            "prog list --stats",
        ],
    );
    assert_eq!(
        prog_ids(&ns, &ns.a),
        vec![prog_id],
        "the program is untouched"
    );
    assert!(
        !ns.ns_dir().path().exists(),
        "no pins: {:?}",
        std::fs::read_dir(ns.ns_dir().path()).map(|d| d.count())
    );
}

#[test]
fn what_cannot_be_observed_is_refused_in_one_line() {
    if !privileged("what_cannot_be_observed_is_refused_in_one_line") || !have_tool("clang") {
        return;
    }
    let scratch = Scratch::new("bad");
    // A program without BTF: fentry has no function to attach to.
    let (ns, prog_id) = with_verdicts("xdpgeneric", &scratch.0, false);
    let out = ns.xdpstat(&["attach", &ns.a, "--observe"]);
    assert_fails(
        &out,
        2,
        &[
            &prog_id.to_string(),
            "without BTF",
            "clang -g",
            "prog list --stats",
        ],
    );
    assert_eq!(prog_ids(&ns, &ns.a), vec![prog_id]);

    // Without --observe, attach names both ways.
    let out = ns.xdpstat(&["attach", &ns.a]);
    assert_fails(&out, 1, &["already runs", "--observe", "--force"]);

    // Nothing attached.
    let out = ns.xdpstat(&["attach", &ns.b, "--observe"]);
    assert_fails(&out, 2, &["runs no XDP program", "xdpstat attach"]);

    // No such interface.
    let out = ns.xdpstat(&["attach", "nosuch0", "--observe"]);
    assert_fails(&out, 2, &["no interface named 'nosuch0'"]);

    // xdpstat's own program.
    ns.xdpstat_ok(&["attach", &ns.b]);
    let out = ns.xdpstat(&["attach", &ns.b, "--observe"]);
    assert_fails(&out, 2, &["xdpstat's own program", "xdpstat show"]);
    ns.xdpstat_ok(&["detach", &ns.b]);
    assert!(
        std::fs::read_dir(ns.ns_dir().path()).map_or(true, |d| d.count() == 0),
        "nothing left behind"
    );
}

/// libxdp's programs on an interface, unloaded when the test ends, even
/// when it fails: libxdp's pins under `/sys/fs/bpf/xdp` outlive the
/// namespace otherwise.
struct Loaded<'a> {
    ns: &'a VethNs,
    iface: String,
    /// Whether libxdp's directory in bpffs is this test's to remove.
    made_dir: bool,
}

impl Drop for Loaded<'_> {
    fn drop(&mut self) {
        let _ = self
            .ns
            .command("xdp-loader")
            .args(["unload", &self.iface, "--all"])
            .output();
        if self.made_dir {
            // Only if empty: another user's dispatchers may be there now.
            let _ = std::fs::remove_dir(LIBXDP_DIR);
        }
    }
}

/// Where libxdp pins its dispatchers; it makes the directory even when
/// the kernel refuses them.
const LIBXDP_DIR: &str = "/sys/fs/bpf/xdp";

/// An Ethernet frame of `len` bytes carrying IPv4 UDP to port `dport`.
fn udp_frame(len: usize, dport: u16) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend([0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00]);
    let ip_len = (len - 14) as u16;
    f.extend([0x45, 0]);
    f.extend(ip_len.to_be_bytes());
    f.extend([0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend(1234u16.to_be_bytes());
    f.extend(dport.to_be_bytes());
    f.extend((ip_len - 20).to_be_bytes());
    f.extend([0, 0]);
    f.resize(len, 0);
    f
}

#[test]
fn a_libxdp_dispatcher_is_observed_per_component_and_overall() {
    if !privileged("a_libxdp_dispatcher_is_observed_per_component_and_overall")
        || !have_tool("clang")
        || !have_tool("xdp-loader")
    {
        return;
    }
    let scratch = Scratch::new("libxdp");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/observe");
    let objects: Vec<PathBuf> = ["drop_udp9", "pass_all"]
        .iter()
        .map(|name| {
            let out = scratch.0.join(format!("{name}.o"));
            let status = Command::new("clang")
                .args([
                    "-O2",
                    "-g",
                    "-target",
                    "bpf",
                    "-I/usr/include/x86_64-linux-gnu",
                ])
                .arg("-c")
                .arg(src.join(format!("{name}.c")))
                .arg("-o")
                .arg(&out)
                .status()
                .unwrap();
            assert!(status.success(), "clang {name}.c");
            out
        })
        .collect();
    let ns = VethNs::new();
    let made_dir = !Path::new(LIBXDP_DIR).exists();
    let load = ns
        .command("xdp-loader")
        .args(["load", "-m", "skb", &ns.a])
        .args(&objects)
        .output()
        .unwrap();
    let _loaded = Loaded {
        ns: &ns,
        iface: ns.a.clone(),
        made_dir,
    };
    if !load.status.success() {
        // This machine's kernel refuses freplace as it refuses tracing
        // programs; the guests' kernels load the dispatcher.
        let said = common::stderr(&load);
        assert!(
            !common::required()
                || common::kernel_line() != "6.1" && common::kernel_line() != "6.12",
            "6.1 and 6.12 load libxdp's dispatcher: {said}"
        );
        assert!(said.contains("dispatcher"), "{said}");
        eprintln!("note: this kernel cannot run libxdp's dispatcher: {said}");
        return;
    }
    let dispatcher = prog_ids(&ns, &ns.a);
    assert_eq!(dispatcher.len(), 1, "{dispatcher:?}");
    let Some(attached) = observe_or_refusal(&ns) else {
        return;
    };
    assert_eq!(attached["observed"]["prog_id"], dispatcher[0]);
    assert_eq!(attached["observed"]["name"], "xdp_dispatcher");
    let names: Vec<&str> = attached["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["drop_udp9", "pass_all"], "{attached}");

    // From each CPU: UDP to port 9 (dropped by the first program), UDP to
    // port 53 and frames that are not IPv4 (passed by both).
    let discard = [100, 100, 100, 300, 300];
    let other = [200, 200, 200, 200];
    let plain = [150, 1514];
    std::thread::scope(|s| {
        for cpu in [0, 1] {
            let ns = &ns;
            let mut frames: Vec<Vec<u8>> = discard.iter().map(|&l| udp_frame(l, 9)).collect();
            frames.extend(other.iter().map(|&l| udp_frame(l, 53)));
            frames.extend(plain.iter().map(|&l| common::frame(l)));
            s.spawn(move || ns.send_raw(frames, Some(cpu)));
        }
    });
    let count = |lens: &[usize]| {
        serde_json::json!({
            "packets": lens.len() as u64 * 2,
            "bytes": lens.iter().sum::<usize>() as u64 * 2,
        })
    };
    let passed: Vec<usize> = other.iter().chain(&plain).copied().collect();
    let verdicts = |drop: &[usize], pass: &[usize]| {
        let none = count(&[]);
        serde_json::json!({
            "aborted": none, "drop": count(drop), "pass": count(pass),
            "tx": none, "redirect": none, "other": none,
        })
    };
    let first = verdicts(&discard, &passed);
    let second = verdicts(&[], &passed);
    let want = serde_json::json!([first, first, second]);
    let got = settle(&want, || {
        let json = show(&ns);
        let parts = json["components"].as_array().unwrap();
        serde_json::json!([json["actions"], parts[0]["actions"], parts[1]["actions"]])
    });
    assert_eq!(got, want, "overall, then each component");
    let json = show(&ns);
    assert_eq!(json["components"][0]["slot"], 0);
    assert_eq!(json["components"][1]["total"], count(&passed));
    let all: Vec<usize> = discard.iter().chain(&passed).copied().collect();
    assert_eq!(json["total"], count(&all));

    let metrics = scrape_export(&ns);
    let series = format!(
        "xdpstat_component_packets_total{{interface=\"{}\",slot=\"0\",prog_id=\"{}\",name=\"drop_udp9\",action=\"drop\"}} 10",
        ns.a, json["components"][0]["prog_id"]
    );
    assert!(
        metrics.lines().any(|l| l == series),
        "{series} in:\n{metrics}"
    );
    let text = ns.xdpstat_ok(&["show", &ns.a]);
    assert!(text.contains("component 1: prog id"), "{text}");

    ns.xdpstat_ok(&["detach", &ns.a]);
    assert_eq!(prog_ids(&ns, &ns.a), dispatcher, "the dispatcher stays");
    let status = ns
        .command("xdp-loader")
        .args(["status", &ns.a])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("drop_udp9") && status.contains("pass_all"),
        "{status}"
    );
    assert!(
        std::fs::read_dir(ns.ns_dir().path()).map_or(true, |d| d.count() == 0),
        "no observers left"
    );
}

#[test]
fn watch_shows_the_verdicts_and_follows_a_replaced_program() {
    if !privileged("watch_shows_the_verdicts_and_follows_a_replaced_program") || !have_tool("clang")
    {
        return;
    }
    use std::io::{BufRead, BufReader};
    let scratch = Scratch::new("watch");
    let (ns, old) = with_verdicts("xdpgeneric", &scratch.0, true);
    if observe_or_refusal(&ns).is_none() {
        return; // The refusal test covers a kernel that refuses.
    }
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["watch", "--json", "--interval", "200ms"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let first = next();
    assert_eq!(
        first["interface"],
        ns.a.as_str(),
        "watch finds what is observed"
    );
    assert_eq!(first["source"], "observe");
    assert_eq!(first["observed"]["prog_id"], old);
    ns.send_frames(MIX.to_vec(), None);
    let line = next_until(&mut next, |l| l["actions"] == expected(1));
    assert_eq!(line["total"]["packets"], MIX.len());

    let obj = scratch.0.join("verdicts.o");
    replace_program(&ns, &obj);
    let new = prog_ids(&ns, &ns.a)[0];
    let line = next_until(&mut next, |l| l["notice"].is_string());
    assert!(
        line["notice"]
            .as_str()
            .unwrap()
            .contains(&format!("now runs prog id {new}")),
        "{line}"
    );
    assert!(line["rates"].is_null(), "rates restart");
    ns.send_frames(MIX.to_vec(), None);
    let line = next_until(&mut next, |l| l["actions"] == expected(1));
    assert_eq!(
        line["observed"]["prog_id"], new,
        "the new program's own counts"
    );

    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    // watch re-observed on the user's behalf; the observers stay until
    // detach, as `attach --observe` left them.
    let out = ns.xdpstat_ok(&["detach", &ns.a]);
    assert!(
        out.contains(&format!("prog id {new} stays attached")),
        "{out}"
    );
    assert!(
        std::fs::read_dir(ns.ns_dir().path()).map_or(true, |d| d.count() == 0),
        "no observers left"
    );
}
