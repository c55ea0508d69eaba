//! `cargo xtask`: install the BPF toolchain, build the XDP objects that
//! xdpstat embeds, prove the committed objects match their source, and run
//! every test, on this machine's kernel or inside other kernels under qemu.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::Duration,
};

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand};
use object::{Object, ObjectSection};

mod daemonset;
mod fixtures;
mod guest_tests;
mod vm;

/// The objects `xdpstat-ebpf` builds, by binary name. The committed copies
/// live in `xdpstat/bpf/<name>.o`.
const OBJECTS: [&str; 5] = [
    "xdpstat_percpu",
    "xdpstat_shared",
    "xdpstat_pass",
    "xdpstat_observe",
    "xdpstat_observe_floor",
];
const BPF_LINKER_VERSION: &str = "0.13.0";
/// The cargo-deb that `cargo xtask deb` builds the package with.
const CARGO_DEB_VERSION: &str = "3.8.0";

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the build and the tests need and this machine lacks
    /// (Debian packages, bpf-linker).
    Deps,
    /// Build the XDP objects and copy them into xdpstat/bpf/.
    BuildEbpf,
    /// Build the XDP objects and fail unless they are byte-identical to the
    /// committed ones.
    CheckEbpf,
    /// Build the verifier workbench's broken test programs (fixtures/, C
    /// and Rust) into fixtures/build/.
    BuildFixtures,
    /// Write the manual pages, made from the command line's definitions,
    /// to man/ (xdpstat.8 and a page per command).
    Man,
    /// Write deploy/daemonset.yaml and README's copy of it, with the
    /// capabilities of the systemd units.
    Daemonset,
    /// Build the Debian package (cargo-deb) into target/debian/: the
    /// binary in /usr/sbin, the manual pages, the completions, the systemd
    /// units, the copyright.
    Deb,
    /// Install what is missing, check the objects and the lints, then run
    /// every test (as root: they load programs and make namespaces).
    ///
    /// With `--kernel`, run instead the kernel-facing test binaries inside
    /// that kernel, booted under qemu's emulator (see README, "Kernels
    /// tested").
    Test {
        /// `6.1` or `6.12` (Debian bookworm-security's newest image of that
        /// line, fetched into target/kernels/), or a path: an unpacked tree
        /// with boot/vmlinuz-* and lib/modules/*, or a kernel .deb.
        /// Repeat to run several kernels.
        #[arg(long, value_name = "6.1|6.12|PATH")]
        kernel: Vec<String>,
        /// With --kernel: a test binary to run (tests/NAME.rs); repeat for
        /// several. Default: the subset in README, "Kernels tested".
        #[arg(long = "test", value_name = "NAME", requires = "kernel")]
        tests: Vec<String>,
        /// With --kernel: seconds each test binary may take in the guest.
        #[arg(long, default_value_t = 1200, requires = "kernel")]
        timeout: u64,
        /// With --kernel: the guest's CPUs.
        #[arg(long, default_value_t = 2, requires = "kernel")]
        cpus: u32,
        /// With several --kernel: boot their guests at the same time.
        #[arg(long, requires = "kernel")]
        parallel: bool,
        /// Extra arguments for `cargo test`; with --kernel, for each test
        /// binary (filters, `--test-threads`, `--nocapture`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run the per-packet cost benchmarks (BPF_PROG_TEST_RUN).
    ///
    /// With `--kernel`, run instead the observers' benchmark inside that
    /// kernel under qemu (this machine's kernel refuses tracing programs).
    Bench {
        #[arg(long, value_name = "6.1|6.12|PATH")]
        kernel: Vec<String>,
    },
    /// Boot a kernel under qemu as `test --kernel` does and run one shell
    /// command in it, as root on the host's files, read-only (a tmpfs on
    /// /tmp, /run, /var, /root; bpffs on /sys/fs/bpf).
    Guest {
        #[arg(long, value_name = "6.1|6.12|PATH", required = true)]
        kernel: Vec<String>,
        /// Seconds the command may take.
        #[arg(long, default_value_t = 1200)]
        timeout: u64,
        #[arg(long, default_value_t = 2)]
        cpus: u32,
        /// The command, for `sh -c`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

fn main() -> Result<ExitCode> {
    // Kernels fetched for the guests, and for the tests of `check
    // --kernel`, are kept with the build's other downloads.
    if env::var_os("XDPSTAT_KERNEL_CACHE").is_none() {
        let target =
            env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
        env::set_var("XDPSTAT_KERNEL_CACHE", target.join("kernels"));
    }
    let done = |result: Result<()>| result.map(|()| ExitCode::SUCCESS);
    match Cli::parse().command {
        Cmd::Deps => done(deps()),
        Cmd::BuildEbpf => done(write_ebpf()),
        Cmd::CheckEbpf => done(check_ebpf()),
        Cmd::BuildFixtures => done(fixtures::build()),
        Cmd::Man => done(write_man()),
        Cmd::Daemonset => done(daemonset::write()),
        Cmd::Deb => done(deps().and_then(|()| deb()).map(|path| {
            println!("xtask: {}", path.display());
        })),
        Cmd::Test { kernel, args, .. } if kernel.is_empty() => done(host_test(&args)),
        Cmd::Test {
            kernel,
            tests,
            timeout,
            cpus,
            parallel,
            args,
        } => guest_tests::run(&guest_tests::Request {
            kernels: kernel,
            tests,
            args,
            command: None,
            timeout: Duration::from_secs(timeout),
            cpus,
            parallel,
        }),
        Cmd::Guest {
            kernel,
            timeout,
            cpus,
            command,
        } => guest_tests::run(&guest_tests::Request {
            kernels: kernel,
            tests: Vec::new(),
            args: Vec::new(),
            command: Some(command.join(" ")),
            timeout: Duration::from_secs(timeout),
            cpus,
            parallel: false,
        }),
        Cmd::Bench { kernel } if kernel.is_empty() => done(bench()),
        Cmd::Bench { kernel } => {
            let exe = bench_binary("observe_cost")?;
            guest_tests::run(&guest_tests::Request {
                kernels: kernel,
                tests: Vec::new(),
                args: Vec::new(),
                command: Some(format!("{} --bench", exe.display())),
                timeout: Duration::from_secs(1800),
                cpus: 2,
                parallel: false,
            })
        }
    }
}

fn write_ebpf() -> Result<()> {
    for (name, bytes) in build_ebpf()? {
        let dest = root().join("xdpstat/bpf").join(format!("{name}.o"));
        fs::write(&dest, bytes).with_context(|| format!("writing {}", dest.display()))?;
        println!("wrote {}", dest.display());
    }
    Ok(())
}

/// `cargo xtask test` on this machine's kernel.
fn host_test(args: &[String]) -> Result<()> {
    deps()?;
    check_ebpf()?;
    run(Command::new(cargo())
        .current_dir(root())
        .args(["fmt", "--all", "--check"]))?;
    run(Command::new(cargo()).current_dir(root()).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    fixtures::build()?;
    // The package's install test (tests/deb.rs) installs this one.
    let package = deb()?;
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root())
        .env("XDPSTAT_DEB", &package)
        // Every binary runs even after one failed, so one run reports all.
        .args(["test", "--workspace", "--all-targets", "--no-fail-fast"])
        .args(args)
        // Privileged tests fail rather than skip when this is set.
        .env("XDPSTAT_REQUIRE_PRIVILEGED", "1");
    run(&mut cmd)
}

fn bench() -> Result<()> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root()).args(["bench", "-p", "xdpstat"]);
    // observe_cost needs tracing programs: `cargo xtask bench --kernel 6.12`.
    for bench in [
        "prog_cost",
        "explain_log",
        "map_dump",
        "prog_list",
        "check_cost",
    ] {
        cmd.args(["--bench", bench]);
    }
    run(&mut cmd)
}

/// Builds one benchmark of the xdpstat package and returns its executable.
fn bench_binary(name: &str) -> Result<PathBuf> {
    let out = Command::new(cargo())
        .current_dir(root())
        .args([
            "bench",
            "-p",
            "xdpstat",
            "--no-run",
            "--message-format=json-render-diagnostics",
            "--bench",
            name,
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo bench --no-run")?;
    ensure!(out.status.success(), "building the benchmark {name} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|m| m["target"]["name"] == name && m["executable"].is_string())
        .and_then(|m| m["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("cargo built no benchmark {name}"))
}

/// `cargo xtask man`: every page of [`xdpstat::man::pages`] into man/,
/// and no page of a command that is gone.
fn write_man() -> Result<()> {
    let dir = root().join("man");
    std::fs::create_dir_all(&dir)?;
    let pages = xdpstat::man::pages();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let stale = path.extension().is_some_and(|e| e == "8")
            && !pages
                .iter()
                .any(|p| path.file_name().is_some_and(|f| f == p.file_name.as_str()));
        if stale {
            std::fs::remove_file(&path)?;
        }
    }
    for page in &pages {
        std::fs::write(dir.join(&page.file_name), &page.roff)?;
    }
    println!("xtask: {} manual pages in {}", pages.len(), dir.display());
    Ok(())
}

/// `cargo xtask deb`: the binary (`deb` profile), the completion scripts it makes,
/// then cargo-deb, which takes the rest from xdpstat's Cargo.toml.
fn deb() -> Result<PathBuf> {
    run(Command::new(cargo()).current_dir(root()).args([
        "build",
        "--profile",
        "deb",
        "-p",
        "xdpstat",
    ]))?;
    let bin = root().join("target/deb/xdpstat");
    let dir = root().join("target/completions");
    fs::create_dir_all(&dir)?;
    for (shell, file) in [
        ("bash", "xdpstat"),
        ("zsh", "_xdpstat"),
        ("fish", "xdpstat.fish"),
    ] {
        let script = output(Command::new(&bin).args(["completions", shell]))
            .with_context(|| format!("xdpstat completions {shell}"))?;
        fs::write(dir.join(file), script)?;
    }
    let out = root().join("target/debian");
    fs::create_dir_all(&out)?;
    let listing = output(
        Command::new(cargo())
            .current_dir(root())
            .args([
                "deb",
                "-p",
                "xdpstat",
                "--profile",
                "deb",
                "--no-build",
                "--output",
            ])
            .arg(&out),
    )
    .context("cargo deb failed; `cargo xtask deps` installs cargo-deb")?;
    let path = listing
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with(".deb"))
        .map(|l| PathBuf::from(l.trim()))
        .context("cargo deb named no package")?;
    Ok(path)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn cargo() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    ensure!(status.success(), "{cmd:?} failed: {status}");
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn package_installed(name: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", name]))
        .is_some_and(|s| s.contains("install ok installed"))
}

fn apt_install(packages: &[String]) -> Result<()> {
    let missing: Vec<&String> = packages.iter().filter(|p| !package_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("xtask: installing {missing:?}");
    let install = |update: bool| -> Result<()> {
        if update {
            run(Command::new("apt-get").args(["update", "-q"]))?;
        }
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    // Package lists may be stale or absent on a fresh machine.
    install(false).or_else(|_| install(true))
}

/// The LLVM major version of Debian's rustc, which bpf-linker must match.
fn rustc_llvm_major() -> Result<u32> {
    let version =
        output(Command::new("/usr/bin/rustc").arg("-vV")).context("running /usr/bin/rustc -vV")?;
    let llvm = version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("/usr/bin/rustc -vV names no LLVM version")?;
    llvm.split('.')
        .next()
        .and_then(|m| m.trim().parse().ok())
        .with_context(|| format!("cannot read LLVM version {llvm:?}"))
}

fn deps() -> Result<()> {
    // Debian's rustc 1.96 with a prebuilt libcore for bpfel-unknown-none,
    // so that no nightly and no build-std are needed; bpftool and clang are
    // for the tests' cross-checks and C fixtures; qemu and busybox-static
    // boot the other kernels (`check --kernel`, `test --kernel`); xdp-tools
    // is libxdp's loader, whose dispatcher the observer's tests observe.
    let base: Vec<String> = [
        "rustc-web",
        "libstd-rust-web-dev-bpf",
        "bpftool",
        "iproute2",
        "clang",
        "llvm",
        "libbpf-dev",
        "tmux",
        "prometheus",
        "qemu-system-x86",
        "busybox-static",
        "xdp-tools",
        // For the real-world corpus (fixtures/real/build.sh): xdp-tools'
        // programs include libxdp's headers, and some projects' headers
        // include glibc's 32-bit stubs.
        "libxdp-dev",
        "libc6-dev-i386",
        // `man -l` renders the manual pages in their test; lintian checks
        // the Debian package; systemd-analyze verifies its units.
        "man-db",
        "groff-base",
        "lintian",
        "systemd",
        // A venv for PyPI's kubernetes-validate, which checks the
        // DaemonSet against Kubernetes' schemas.
        "python3-venv",
    ]
    .map(String::from)
    .to_vec();
    apt_install(&base)?;
    let major = rustc_llvm_major()?;
    apt_install(&[format!("llvm-{major}-dev")])?;
    let have = output(Command::new("bpf-linker").arg("--version")).unwrap_or_default();
    if !have.contains(BPF_LINKER_VERSION) {
        println!("xtask: installing bpf-linker {BPF_LINKER_VERSION} for LLVM {major}");
        run(Command::new(cargo())
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--locked",
            ])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .env("LLVM_PREFIX", format!("/usr/lib/llvm-{major}")))?;
    }
    daemonset::install_validator()?;
    let have = output(Command::new(cargo()).args(["deb", "--version"])).unwrap_or_default();
    if !have.contains(CARGO_DEB_VERSION) {
        println!("xtask: installing cargo-deb {CARGO_DEB_VERSION}");
        run(Command::new(cargo()).args([
            "install",
            "cargo-deb",
            "--version",
            CARGO_DEB_VERSION,
            "--locked",
        ]))?;
    }
    Ok(())
}

/// Builds the objects and returns their bytes.
fn build_ebpf() -> Result<Vec<(&'static str, Vec<u8>)>> {
    let out = cargo_build_bpf(&root().join("xdpstat-ebpf")).context(
        "building the XDP objects failed; `cargo xtask deps` installs the toolchain (Debian rustc-web, bpf-linker)",
    )?;
    OBJECTS
        .iter()
        .map(|name| {
            let path = out.join(name);
            let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok((*name, bytes))
        })
        .collect()
}

/// Runs `cargo build --release --locked` in a bpfel-unknown-none crate of
/// this repository (its own `.cargo/config.toml` picks Debian's rustc and
/// bpf-linker) and returns the directory that holds the linked objects.
///
/// Debug info and BTF line info carry source paths. They are remapped to
/// fixed prefixes (`/xdpstat`, `/cargo`), so BTF, line info and code do not
/// depend on where the checkout or the cargo home is.
fn cargo_build_bpf(crate_dir: &Path) -> Result<PathBuf> {
    let cargo_home = env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| env::var("HOME").map(|h| Path::new(&h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let flags = format!(
        "build.rustflags=[\"--remap-path-prefix={}=/xdpstat\", \"--remap-path-prefix={}=/cargo\"]",
        root().display(),
        cargo_home.display()
    );
    let mut cmd = Command::new(cargo());
    cmd.current_dir(crate_dir)
        .args(["build", "--release", "--locked", "--config", &flags])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR");
    run(&mut cmd)?;
    Ok(crate_dir.join("target/bpfel-unknown-none/release"))
}

fn check_ebpf() -> Result<()> {
    let mut stale = Vec::new();
    for (name, built) in build_ebpf()? {
        let path = root().join("xdpstat/bpf").join(format!("{name}.o"));
        let committed = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        match differing_sections(&committed, &built) {
            None => println!(
                "xtask: {} matches its source ({} bytes; every section but DWARF byte-identical)",
                path.display(),
                built.len()
            ),
            Some(why) => stale.push(format!("{name}.o ({why})")),
        }
    }
    if !stale.is_empty() {
        bail!(
            "the committed BPF objects are not what the source builds today: {}; run `cargo xtask build-ebpf` and commit xdpstat/bpf/",
            stale.join(", ")
        );
    }
    Ok(())
}

/// Compares two objects section by section and names what differs, or
/// `None` when they match.
///
/// Every section must be byte-identical (code, `.maps`, `license`, `.BTF`,
/// `.BTF.ext` with its line info, relocations, symbols) except the DWARF
/// `.debug_*` sections and their relocations. Those embed rustc's crate
/// hash, which cargo derives from the rustflags, and the flags hold the
/// checkout's absolute path for `--remap-path-prefix`; so DWARF differs
/// between two clones while the program does not. xdpstat reads line info
/// from `.BTF.ext`, which is compared.
fn differing_sections(a: &[u8], b: &[u8]) -> Option<String> {
    let (Ok(a), Ok(b)) = (object::File::parse(a), object::File::parse(b)) else {
        return Some("not a readable ELF file".to_owned());
    };
    let is_dwarf = |name: &str| name.starts_with(".debug_") || name.starts_with(".rel.debug_");
    let names = |f: &object::File<'_>| -> Vec<String> {
        f.sections()
            .filter_map(|s| s.name().ok().map(str::to_owned))
            .collect()
    };
    let (names_a, names_b) = (names(&a), names(&b));
    if names_a != names_b {
        return Some(format!("section lists differ: {names_a:?} vs {names_b:?}"));
    }
    let differ: Vec<&str> = names_a
        .iter()
        .map(String::as_str)
        .filter(|name| !is_dwarf(name))
        .filter(|name| {
            let data = |f: &object::File<'_>| {
                f.section_by_name(name)
                    .and_then(|s| s.data().ok().map(<[u8]>::to_vec))
            };
            data(&a) != data(&b)
        })
        .collect();
    (!differ.is_empty()).then(|| format!("sections differ: {}", differ.join(" ")))
}
