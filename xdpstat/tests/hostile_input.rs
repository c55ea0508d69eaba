//! Inputs that are not what they claim to be, through the real binary:
//! objects that would crash aya-obj, and paths that are no file at all
//! (`/dev/zero`, a FIFO) or far too big. Each command must answer within a
//! second with one line and exit 2. No kernel needed: all of these fail
//! before anything is loaded.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

const TIMEOUT: Duration = Duration::from_secs(1);
/// For objects that take parsing (not refused by their kind or size): the
/// fuzz tests' bound on one input, so that a loaded machine is no failure.
const PARSE_TIMEOUT: Duration = Duration::from_secs(10);

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("xdpstat-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn good_log() -> String {
    manifest_dir()
        .join("../fixtures/logs/stats_kern_hash.level1.log")
        .display()
        .to_string()
}

/// Runs xdpstat, killing it if it has not finished within [`TIMEOUT`].
fn run_bounded(args: &[&str], stdin: Stdio) -> Output {
    run_within(args, stdin, TIMEOUT)
}

/// Runs xdpstat, killing it if it has not finished within `timeout`.
fn run_within(args: &[&str], stdin: Stdio, timeout: Duration) -> Output {
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_xdpstat"))
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > timeout {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "xdpstat {args:?} did not answer within {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

/// Exit 2, one line on stderr that mentions each of `says`, nothing on
/// stdout, no panic.
fn assert_refused(args: &[&str], out: &Output, says: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: exit 2; stderr: {err}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: one line: {err}"
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    for word in says {
        assert!(
            err.contains(word),
            "{args:?}: {err:?} should mention {word:?}"
        );
    }
    assert!(
        out.stdout.is_empty(),
        "{args:?}: nothing on stdout, got {} bytes",
        out.stdout.len()
    );
}

/// Every command that reads an object, on `obj`.
fn object_commands<'a>(obj: &'a str, log: &'a str) -> Vec<Vec<&'a str>> {
    vec![
        vec!["check", obj],
        vec!["objdump", obj],
        vec!["load", obj, "--dev", "lo"],
        vec!["explain", "--log", log, "--obj", obj],
    ]
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn devices_fifos_and_huge_files_are_refused_within_a_second() {
    let dir = TempDir::new("hostile-files");
    let fifo = dir.0.join("fifo");
    mkfifo(&fifo);
    let sparse = dir.0.join("sparse.o");
    File::create(&sparse).unwrap().set_len(2 << 30).unwrap();
    let log = good_log();
    let cases = [
        ("/dev/zero".to_owned(), "a character device"),
        (fifo.display().to_string(), "a FIFO"),
        (sparse.display().to_string(), "more than the 256 MiB limit"),
    ];
    for (path, why) in &cases {
        for args in object_commands(path, &log) {
            assert_refused(&args, &run_bounded(&args, Stdio::null()), &[path, why]);
        }
    }
    // As a log: devices and FIFOs are refused by kind, the sparse file
    // (2 GiB of NULs, under the log limit) as binary content.
    for (path, why) in [
        (cases[0].0.as_str(), "a character device"),
        (cases[1].0.as_str(), "a FIFO"),
        (cases[2].0.as_str(), "not a verifier log"),
    ] {
        let args = ["explain", "--log", path];
        assert_refused(&args, &run_bounded(&args, Stdio::null()), &[path, why]);
    }
    // Standard input that never ends.
    let args = ["explain", "--log", "-"];
    let zero = File::open("/dev/zero").unwrap();
    assert_refused(
        &args,
        &run_bounded(&args, zero.into()),
        &["standard input is not a verifier log", "binary"],
    );
}

#[test]
fn binary_input_is_not_a_verifier_log() {
    let dir = TempDir::new("hostile-logs");
    // 1.8 MB of noise from a fixed seed (splitmix64).
    let mut state = 0x5eed_u64;
    let noise: Vec<u8> = (0..1_800_000 / 8)
        .flat_map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)).to_le_bytes()
        })
        .collect();
    let random = dir.0.join("random.log");
    fs::write(&random, &noise).unwrap();
    let text = dir.0.join("prose.txt");
    fs::write(&text, "Dear reader,\nthis is a letter.\n").unwrap();
    let object = manifest_dir().join("bpf/xdpstat_pass.o");
    for (path, why) in [
        (random.as_path(), "binary content"),
        (object.as_path(), "binary content"),
        (text.as_path(), "no line looks like a verifier"),
    ] {
        let path = path.to_str().unwrap();
        for json in [false, true] {
            let mut args = vec!["explain", "--log", path];
            if json {
                args.push("--json");
            }
            let out = run_bounded(&args, Stdio::null());
            assert_refused(&args, &out, &["is not a verifier log", why]);
            assert!(!String::from_utf8_lossy(&out.stderr).contains("truncated"));
        }
    }
}

/// A copy of a committed object with one field changed, and what the
/// checks must say about it.
struct Mutant {
    name: &'static str,
    bytes: Vec<u8>,
    reason: &'static str,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Objects that panicked aya-obj 0.3 (in `check` and `load`), each in one
/// field, of the kinds the seeded mutation of the fixture corpus found.
fn mutants() -> Vec<Mutant> {
    let base = fs::read(manifest_dir().join("bpf/xdpstat_percpu.o")).unwrap();
    let file = object::File::parse(&*base).unwrap();
    let symtab = file
        .section_by_name(".symtab")
        .unwrap()
        .file_range()
        .unwrap()
        .0 as usize;
    let symbol = |name: &str| {
        let index = file
            .symbols()
            .find(|s| s.name() == Ok(name))
            .unwrap()
            .index()
            .0;
        symtab + index * 24
    };
    let e_shoff = u64::from_le_bytes(base[0x28..0x30].try_into().unwrap()) as usize;
    let xdp = file.section_by_name("xdp").unwrap().index().0;
    let ext = file
        .section_by_name(".BTF.ext")
        .unwrap()
        .file_range()
        .unwrap()
        .0 as usize;
    let hdr_len = u32_at(&base, ext + 4) as usize;
    let func_info = ext + hdr_len + u32_at(&base, ext + 8) as usize;
    let line_info = ext + hdr_len + u32_at(&base, ext + 16) as usize;
    let relxdp = file
        .section_by_name(".relxdp")
        .unwrap()
        .file_range()
        .unwrap()
        .0 as usize;
    let xdp_symbol = file
        .symbols()
        .find(|s| {
            s.kind() == object::SymbolKind::Section && s.section_index().map(|i| i.0) == Some(xdp)
        })
        .unwrap()
        .index()
        .0 as u64;
    let btf = file
        .section_by_name(".BTF")
        .unwrap()
        .file_range()
        .unwrap()
        .0 as usize;
    let first_type = btf + u32_at(&base, btf + 4) as usize + u32_at(&base, btf + 8) as usize;
    let patch = |name, at: usize, value: &[u8], reason| {
        let mut bytes = base.clone();
        bytes[at..at + value.len()].copy_from_slice(value);
        Mutant {
            name,
            bytes,
            reason,
        }
    };
    vec![
        // st_size of the program: aya-obj slices the section with it.
        patch(
            "program-past-its-section",
            symbol("xdpstat_percpu") + 16,
            &(1u64 << 40).to_le_bytes(),
            "runs past the end of its section xdp",
        ),
        // st_size of a .text function.
        patch(
            "function-past-text",
            symbol("memmove") + 16,
            &0x6bc8u64.to_le_bytes(),
            "runs past the end of its section .text",
        ),
        // sh_addr of the program's section: aya-obj subtracts it from the
        // symbol's value.
        patch(
            "section-address",
            e_shoff + xdp * 64 + 16,
            &0x100u64.to_le_bytes(),
            "lies before the start of its section xdp",
        ),
        // num_info of the first line_info block.
        patch(
            "line-info-count",
            line_info + 8,
            &0x0100_0000u32.to_le_bytes(),
            "records of 16 bytes run past the section",
        ),
        // The first func_info block's section name: aya-obj unwraps it.
        patch(
            "func-info-section-name",
            func_info + 4,
            &0xdead_beefu32.to_le_bytes(),
            "string offset 3735928559, which .BTF does not have",
        ),
        // The first line of the program after its third: aya-obj rebases
        // the lines on the first one, and underflows.
        patch(
            "line-info-order",
            line_info + 12,
            &96u32.to_le_bytes(),
            "line_info is out of order",
        ),
        // The map reference made a reference into the program's own code,
        // of a relocation type aya-obj has no case for (`todo!()`).
        patch(
            "relocation-type",
            relxdp + 8,
            &((xdp_symbol << 32) | 8).to_le_bytes(),
            "neither a call nor a code address",
        ),
        // The first type's name: past the string section, inside the
        // bounds aya-obj checks.
        patch(
            "type-name-offset",
            first_type,
            &(u32_at(&base, btf + 20) + 4).to_le_bytes(),
            ".BTF type 1 names string offset",
        ),
    ]
}

#[test]
fn objects_that_crashed_aya_obj_are_refused_by_every_command() {
    let dir = TempDir::new("hostile-objects");
    let log = good_log();
    for m in mutants() {
        let path = dir.0.join(format!("{}.o", m.name));
        fs::write(&path, &m.bytes).unwrap();
        let path = path.display().to_string();
        for args in object_commands(&path, &log) {
            let out = run_within(&args, Stdio::null(), PARSE_TIMEOUT);
            // Refused by xdpstat's checks, before aya-obj sees it.
            assert_refused(
                &args,
                &out,
                &[&path, "is malformed", m.reason, "rebuild it"],
            );
        }
    }
}
