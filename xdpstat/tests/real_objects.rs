//! The real-world corpus (`fixtures/real`, built by `cargo xtask
//! build-fixtures` into `fixtures/build/real`): every XDP program of 102
//! objects from 12 public projects, checked by xdpstat and loaded by
//! libbpf (bpftool), which must agree on the verdict and on
//! `insns_processed` wherever libbpf gives one.
//!
//! libbpf runs in a mount namespace of its own, on a bpffs of its own, so
//! that what it pins (its programs, and the maps it pins by name) is gone
//! with it. Its count of processed instructions is the kernel's
//! `verified_insns` of each program it loaded.
//!
//! `objdump`'s source lines must equal `llvm-objdump -S`'s for every
//! program. What xdpstat cannot yet load is listed in [`KNOWN`], each with
//! the error it still gives, so that a fix shows up here.

mod common;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use common::{have_tool, privileged};
use serde_json::Value;

/// Objects (or `object:program`) xdpstat does not load, with (a part of)
/// the error it gives. libbpf loads none of them either.
const KNOWN: &[(&str, &str)] = &[
    // A kfunc of the nf_flow_table module (Linux 6.10+), which this
    // machine's kernel does not have.
    (
        "xdp-tools/xdp_flowtable.o",
        "which this kernel does not have",
    ),
    (
        "xdp-tools/xdp_flowtable_sample.o",
        "which this kernel does not have",
    ),
    // goebpf's own map definition, whose loader fills in the key and
    // value sizes of a perf event array or a program array (0 here).
    ("goebpf/itest_xdp1.o", "failed to create map"),
    ("goebpf/basic_firewall_xdp_fw.o", "failed to create map"),
    ("goebpf/xdp_dump.o", "failed to create map"),
    // cilium/ebpf's loader tests: a perf event array sized by its loader,
    // and a map made invalid on purpose.
    ("cilium-ebpf/loader.o", "failed to create map"),
    ("cilium-ebpf/invalid_map_static.o", "error parsing map"),
];

/// The size given to maps whose own loader sizes them (`max_entries` 0
/// in the object): the number such loaders use for per-CPU or per-queue
/// tables on a small machine.
const HAND_SIZE: u32 = 64;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// What libbpf made of one object: per program name, accepted and the
/// instructions the verifier processed; `None` when it loaded nothing.
fn libbpf(obj: &Path) -> Option<BTreeMap<String, (bool, u64)>> {
    // Forcing `type xdp` is needed for section names libbpf cannot type
    // (`xdp_fail1`, `prog`); it is tried second, since it also retypes
    // other programs of the object.
    for typed in [false, true] {
        if let Some(found) = libbpf_load(obj, typed) {
            return Some(found);
        }
    }
    None
}

/// One `bpftool prog loadall` in a private bpffs. While the shell waits on
/// its standard input, its pins keep the programs loaded and this process
/// reads their `verified_insns`.
fn libbpf_load(obj: &Path, typed: bool) -> Option<BTreeMap<String, (bool, u64)>> {
    let script = r#"
        mount -t bpf bpf /sys/fs/bpf || exit 9
        if bpftool prog loadall "$1" /sys/fs/bpf/p $2 2>/dev/null; then
            for f in /sys/fs/bpf/p/*; do bpftool prog show pinned "$f" -j; echo; done
        else
            bpftool -d prog loadall "$1" /sys/fs/bpf/q $2 2>&1 | sed 's/^/LOG /'
        fi
        echo END
        read _
    "#;
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(obj)
        .arg(if typed { "type xdp" } else { "" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare");
    let mut found = BTreeMap::new();
    let mut log = Vec::new();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        let line = line.unwrap();
        if line == "END" {
            break;
        }
        if let Some(l) = line.strip_prefix("LOG ") {
            log.push(l.to_owned());
            continue;
        }
        let Ok(p) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let (Some(id), Some(name)) = (p["id"].as_u64(), p["name"].as_str()) else {
            continue;
        };
        let fd = xdpstat::kernel::sys::prog_fd_by_id(id as u32).expect("the pinned program");
        let fdinfo = std::fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .unwrap();
        let insns = fdinfo
            .lines()
            .find_map(|l| l.strip_prefix("verified_insns:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("verified_insns in fdinfo");
        found.insert(name.to_owned(), (true, insns));
    }
    let _ = child.stdin.take().unwrap().write_all(b"\n");
    let _ = child.wait();
    if !found.is_empty() {
        return Some(found);
    }
    // A rejection: libbpf names the program and prints the verifier's
    // log, which ends with the count.
    let mut processed = None;
    for l in &log {
        if let Some(rest) = l.trim().strip_prefix("processed ") {
            processed = rest.split(' ').next().and_then(|n| n.parse().ok());
        }
        if let Some(rest) = l.strip_prefix("libbpf: prog '") {
            if rest.contains("failed to load") || rest.contains("load failed") {
                let name = rest.split('\'').next().unwrap_or_default().to_owned();
                if let Some(n) = processed {
                    found.insert(name, (false, n));
                }
            }
        }
    }
    (!found.is_empty()).then_some(found)
}

/// xdpstat's verdict on one program: accepted and processed instructions,
/// or its error line. Maps that their own loader sizes are sized by hand
/// ([`HAND_SIZE`]), as xdpstat's error asks: then it is the kernel's
/// verdict alone, since libbpf does not load such an object.
fn xdpstat_check(obj: &Path, program: &str) -> Result<(bool, u64), String> {
    let first = xdpstat_check_with(obj, program, &[]);
    let Err(e) = &first else { return first };
    let Some(maps) = e
        .split_once("max_entries is 0 for ")
        .and_then(|(_, rest)| rest.split_once(':'))
        .map(|(maps, _)| maps)
    else {
        return first;
    };
    let sizes: Vec<String> = maps
        .split(", ")
        .map(|m| format!("{m}={HAND_SIZE}"))
        .collect();
    xdpstat_check_with(obj, program, &sizes)
}

fn xdpstat_check_with(obj: &Path, program: &str, sizes: &[String]) -> Result<(bool, u64), String> {
    let mut args = vec!["check", obj.to_str().unwrap(), "--sec", program, "--json"];
    for size in sizes {
        args.extend(["--max-entries", size]);
    }
    let out = common::xdpstat(&args);
    let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) else {
        return Err(common::stderr(&out));
    };
    let p = &v["programs"][0];
    match (
        p["accepted"].as_bool(),
        p["stats"]["insns_processed"].as_u64(),
    ) {
        (Some(accepted), Some(insns)) => Ok((accepted, insns)),
        _ => Err(format!("{p}")),
    }
}

#[test]
fn xdpstat_and_libbpf_agree_on_every_real_program() {
    if !privileged("xdpstat_and_libbpf_agree_on_every_real_program")
        || !have_tool("bpftool")
        || !have_tool("unshare")
    {
        return;
    }
    // Its first object stands for the built corpus.
    let Some(first) = common::fixture("real/xdp-tutorial/basic01-xdp-pass_xdp_pass_kern.o") else {
        return;
    };
    let dir = first.parent().and_then(Path::parent).unwrap().to_owned();
    let manifest: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(corpus().join("real/manifest.json")).unwrap(),
    )
    .unwrap();
    let (mut compared, mut checked, mut known, mut alone) = (0, 0, 0, 0);
    let mut lines_compared = 0;
    let mut wrong = Vec::new();
    let mut alone_rejected = Vec::new();
    for entry in &manifest {
        let object = entry["object"].as_str().unwrap();
        let obj = dir.join(object);
        let theirs = if entry["libbpf_opens"] == true {
            libbpf(&obj)
        } else {
            None
        };
        for p in entry["programs"].as_array().unwrap() {
            if p["type"] != "xdp" {
                continue;
            }
            let name = p["name"].as_str().unwrap();
            let known_error = KNOWN
                .iter()
                .find(|(o, _)| *o == object || *o == format!("{object}:{name}"))
                .map(|(_, e)| *e);
            let ours = xdpstat_check(&obj, name);
            match (&ours, known_error) {
                (Err(e), Some(expected)) if e.contains(expected) => {
                    known += 1;
                    continue;
                }
                (Ok(_), Some(_)) => {
                    wrong.push(format!("{object} {name}: loads now; take it out of KNOWN"))
                }
                (Err(e), _) => {
                    wrong.push(format!("{object} {name}: xdpstat: {e}"));
                    continue;
                }
                (Ok(_), None) => {}
            }
            checked += 1;
            lines_compared += 1;
            wrong.extend(common::source_line_mismatches(
                &obj,
                p["section"].as_str().unwrap(),
                Some(name),
            ));
            let Some(got) = theirs.as_ref().and_then(|t| t.get(name)) else {
                // libbpf cannot open it (legacy `maps`) or create its maps
                // (sized by their loader): the kernel's verdict stands,
                // and these real programs are accepted ones.
                if ours.as_ref().is_ok_and(|(accepted, _)| !accepted) {
                    alone_rejected.push(format!("{object} {name}"));
                }
                alone += 1;
                continue;
            };
            compared += 1;
            if ours.as_ref().ok() != Some(got) {
                wrong.push(format!("{object} {name}: xdpstat {ours:?}, libbpf {got:?}"));
            }
        }
    }
    println!(
        "{checked} XDP programs checked: {compared} compared with libbpf, {alone} by the kernel alone ({} rejected: {alone_rejected:?}); {known} known gaps; source lines equal to llvm-objdump -S's for all {lines_compared}",
        alone_rejected.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        compared >= 90,
        "only {compared} programs compared with libbpf"
    );
}
