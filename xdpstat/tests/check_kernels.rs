//! `check --kernel`: the same object verified on this kernel and, booted
//! under qemu, on Debian's 6.1 and 6.12, side by side; and its refusals.
//!
//! Each guest run boots real kernels (fetched once into the kernel cache:
//! `cargo xtask test` points `XDPSTAT_KERNEL_CACHE` at target/kernels).

mod common;

use std::{path::Path, process::Command};

use common::{assert_fails, fixture, have_tool, privileged, repo, xdpstat};
use serde_json::Value;

fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap()
        .trim()
        .to_owned()
}

/// Whether the guests can run here; under CI they must.
fn can_boot(test: &str) -> bool {
    privileged(test) && have_tool("qemu-system-x86_64") && Path::new("/bin/busybox").exists()
}

#[test]
fn the_tutorial_program_is_accepted_here_and_rejected_by_6_1_and_6_12() {
    if !can_boot("the_tutorial_program_is_accepted_here_and_rejected_by_6_1_and_6_12") {
        return;
    }
    let Some(obj) = fixture("stats_kern/stats_kern.o") else {
        return;
    };
    let out = xdpstat(&[
        "check",
        obj.to_str().unwrap(),
        "--kernel",
        "6.1",
        "--kernel",
        "6.12",
        "--json",
        "--src",
        &repo(),
    ]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "rejected somewhere: {err}");
    assert!(
        err.contains("tens of seconds") && err.contains("up after"),
        "says it is slow and shows the boot: {err}"
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kernels = json["kernels"].as_array().unwrap();
    assert_eq!(kernels.len(), 3, "{json}");

    let host = &kernels[0];
    assert_eq!(host["kernel"], release().as_str());
    assert_eq!(host["host"], true);
    let expected = common::expected_entry("stats_kern/stats_kern.o", "stats_fn");
    assert_eq!(host["programs"][0]["accepted"], expected["accepted"]);

    for (entry, line) in kernels[1..].iter().zip(["6.1.", "6.12."]) {
        let kernel = entry["kernel"].as_str().unwrap();
        assert!(kernel.starts_with(line), "{kernel} is the {line} guest");
        assert_eq!(entry["host"], false);
        let p = &entry["programs"][0];
        assert_eq!(p["name"], "stats_fn", "{kernel}");
        assert_eq!(p["accepted"], false, "{kernel} rejects it");
        assert!(p["stats"]["insns_processed"].as_u64().unwrap() > 0);
        assert_eq!(
            p["error"]["message"], "R0 invalid mem access 'map_value_or_null'",
            "{kernel}"
        );
        assert_eq!(p["error"]["source"]["line"], 26, "{kernel}");
        assert_eq!(p["diagnosis"]["kind"], "null-check", "{kernel}");
        assert_eq!(p["diagnosis"]["origin"]["insn"], 8, "{kernel}");
        assert_eq!(p["diagnosis"]["origin"]["source"]["line"], 24, "{kernel}");
        assert!(p["diagnosis"]["fix"]
            .as_str()
            .unwrap()
            .contains("if (!cnt) return XDP_ABORTED;"));
    }
}

#[test]
fn a_program_accepted_everywhere_gets_one_row_per_kernel() {
    if !can_boot("a_program_accepted_everywhere_gets_one_row_per_kernel") {
        return;
    }
    let Some(obj) = fixture("stats_kern/stats_kern_fixed.o") else {
        return;
    };
    let out = xdpstat(&[
        "check",
        obj.to_str().unwrap(),
        "--kernel",
        "6.12",
        "--kernel",
        "6.1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", common::stderr(&out));
    let rows: Vec<&str> = text.lines().collect();
    assert!(rows[0].starts_with("KERNEL"), "{text}");
    assert!(
        rows[1].starts_with(&format!("{} (host)", release())),
        "{text}"
    );
    assert!(rows[2].starts_with("6.12."), "{text}");
    assert!(rows[3].starts_with("6.1."), "{text}");
    for row in &rows[1..4] {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert!(
            cells.contains(&"stats_fn") && cells.contains(&"accepted"),
            "{row}"
        );
        let insns: u64 = cells[cells.len() - 2].parse().expect("insns processed");
        assert!(insns > 0, "{row}");
    }
    assert_eq!(rows.len(), 4, "no reports, no warnings: {text}");
}

#[test]
fn kernels_that_cannot_be_had_are_one_line_and_exit_2() {
    if !privileged("kernels_that_cannot_be_had_are_one_line_and_exit_2") {
        return;
    }
    let Some(obj) = fixture("stats_kern/stats_kern_fixed.o") else {
        return;
    };
    let obj = obj.to_str().unwrap();
    let scratch =
        Scratch(std::env::temp_dir().join(format!("xdpstat-check-kernels-{}", std::process::id())));
    let dir = &scratch.0;
    std::fs::create_dir_all(dir).unwrap();
    let check = |kernel: &str| xdpstat(&["check", obj, "--kernel", kernel]);

    let missing = dir.join("vmlinuz-6.6.0");
    let out = check(missing.to_str().unwrap());
    assert_fails(
        &out,
        2,
        &["--kernel", "vmlinuz-6.6.0", "6.1, 6.12", "No such file"],
    );

    let out = check("5.10");
    assert_fails(&out, 2, &["--kernel 5.10", "neither a kernel line"]);

    let out = check(dir.to_str().unwrap());
    assert_fails(&out, 2, &["has no boot/ directory"]);

    let out = check(obj);
    assert_fails(&out, 2, &["not a kernel", "boot/vmlinuz-*"]);

    let fake_deb = dir.join("linux-image-fake.deb");
    std::fs::write(&fake_deb, b"!<arch>\nthis is no package").unwrap();
    let out = check(fake_deb.to_str().unwrap());
    assert_fails(&out, 2, &["not a kernel .deb"]);

    let no_qemu = Command::new(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["check", obj, "--kernel", "6.1"])
        .env("PATH", dir)
        .output()
        .unwrap();
    assert_fails(
        &no_qemu,
        2,
        &[
            "qemu-system-x86_64 is not installed",
            "apt-get install qemu-system-x86",
        ],
    );
}

/// A directory of the test's, removed even when it fails.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_guest_that_hangs_is_a_failure_with_its_console_log() {
    if !can_boot("a_guest_that_hangs_is_a_failure_with_its_console_log") {
        return;
    }
    let Some(obj) = fixture("stats_kern/stats_kern_fixed.o") else {
        return;
    };
    // Up, then no result at once: the host kills the guest.
    let out = xdpstat(&[
        "check",
        obj.to_str().unwrap(),
        "--kernel",
        "6.12",
        "--kernel-timeout",
        "0",
    ]);
    let err = common::stderr(&out);
    let console = err
        .split_whitespace()
        .find(|w| w.ends_with("console.log:"))
        .map(|w| Path::new(w.trim_end_matches(':')).to_owned());
    let _kept = console
        .as_ref()
        .and_then(|c| c.parent())
        .map(|d| Scratch(d.to_owned()));
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "no verdict without the guest's");
    assert!(err.contains("guest hung: no result in 0 s"), "{err}");
    assert!(err.contains("xdpstat-init:"), "the console's tail: {err}");
    let console = console.expect("names the console log");
    assert!(console.is_file(), "{} is kept", console.display());
}
