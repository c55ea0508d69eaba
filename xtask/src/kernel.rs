//! The kernels the guest runs boot: Debian bookworm-security's newest 6.1
//! or 6.12 image, downloaded with `apt-get download` and unpacked with
//! `dpkg-deb -x` into `target/kernels/<package>_<version>/` (never
//! installed: that would pull in initramfs-tools and a systemd upgrade), or
//! a tree someone else unpacked.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, ensure, Context, Result};

use super::{output, root, run};

/// A bootable kernel: its image and its modules.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// What the user asked for (`6.1`, `6.12` or a path), for messages.
    pub spec: String,
    /// `uname -r` in the guest: the name of its modules directory.
    pub release: String,
    /// `boot/vmlinuz-<release>`.
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>`.
    pub modules: PathBuf,
}

impl Kernel {
    /// Whether the release (`6.1.0-57-amd64`: 6.1) is older than
    /// `major.minor`; an unreadable release counts as new.
    pub fn older_than(&self, major: u32, minor: u32) -> bool {
        let mut parts = self
            .release
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(a), Some(b)) => (a, b) < (major, minor),
            _ => false,
        }
    }
}

/// A Debian kernel line: package names `<prefix><N><suffix>`, N a number.
struct Line {
    prefix: &'static str,
    suffix: &'static str,
}

const LINES: [(&str, Line); 2] = [
    (
        "6.1",
        Line {
            prefix: "linux-image-6.1.0-",
            suffix: "-amd64",
        },
    ),
    (
        "6.12",
        Line {
            prefix: "linux-image-6.12.",
            suffix: "+deb12-amd64",
        },
    ),
];

/// Where downloaded kernels are unpacked: `target/kernels/`, or
/// `$XDPSTAT_KERNEL_CACHE`.
pub fn cache_dir() -> PathBuf {
    env::var_os("XDPSTAT_KERNEL_CACHE").map_or_else(|| target_dir().join("kernels"), PathBuf::from)
}

/// Cargo's target directory.
pub fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// `6.1` and `6.12` name Debian's lines (the newest image of each is
/// fetched once and cached); anything else is a path: an unpacked tree
/// with `boot/vmlinuz-*` and `lib/modules/*`, or a `.deb` to unpack.
pub fn resolve(spec: &str) -> Result<Kernel> {
    if let Some((_, line)) = LINES.iter().find(|(name, _)| *name == spec) {
        return debian(spec, line);
    }
    let path = Path::new(spec);
    ensure!(
        path.exists(),
        "--kernel {spec}: neither a Debian line ({}) nor an existing path",
        LINES.map(|(n, _)| n).join(", ")
    );
    if path.is_file() {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("odd file name {}", path.display()))?;
        let dir = cache_dir().join(stem);
        if !dir.join(".unpacked").exists() {
            unpack(path, &dir)?;
        }
        return tree(spec, &dir);
    }
    tree(spec, path)
}

fn debian(spec: &str, line: &Line) -> Result<Kernel> {
    let package = match newest(line)? {
        Some(p) => p,
        None => {
            // Package lists may be stale or absent on a fresh machine.
            run(Command::new("apt-get").args(["update", "-q"]))?;
            newest(line)?.with_context(|| {
                format!(
                    "no {}N{} package in the apt lists (is bookworm-security in sources.list?)",
                    line.prefix, line.suffix
                )
            })?
        }
    };
    let version = candidate_version(&package)?;
    let dir = cache_dir().join(format!("{package}_{}", version.replace(':', "%")));
    if !dir.join(".unpacked").exists() {
        let download = cache_dir().join(format!(".download-{}", std::process::id()));
        fs::create_dir_all(&download)
            .with_context(|| format!("creating {}", download.display()))?;
        println!(
            "xtask: downloading {package} {version} into {}",
            dir.display()
        );
        run(Command::new("apt-get")
            .current_dir(&download)
            // The cache may be where the _apt user cannot write.
            .args(["-q", "-o", "APT::Sandbox::User=root", "download"])
            .arg(format!("{package}={version}")))?;
        let deb = fs::read_dir(&download)?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .context("apt-get download left no .deb")?;
        unpack(&deb, &dir)?;
        fs::remove_dir_all(&download)?;
    }
    tree(spec, &dir)
}

/// The newest package of a line that the apt lists know.
fn newest(line: &Line) -> Result<Option<String>> {
    let names = output(Command::new("apt-cache").args(["pkgnames", line.prefix]))
        .context("running apt-cache pkgnames")?;
    Ok(names
        .lines()
        .filter_map(|name| {
            let n: u32 = name
                .strip_prefix(line.prefix)?
                .strip_suffix(line.suffix)?
                .parse()
                .ok()?;
            Some((n, name.to_owned()))
        })
        .max()
        .map(|(_, name)| name))
}

fn candidate_version(package: &str) -> Result<String> {
    let show = output(Command::new("apt-cache").args(["show", "--no-all-versions", package]))
        .with_context(|| format!("running apt-cache show {package}"))?;
    show.lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .map(str::to_owned)
        .with_context(|| format!("apt-cache show {package} names no version"))
}

/// Unpacks a kernel .deb into `dir`, atomically: `dir/.unpacked` exists
/// only once everything is there.
fn unpack(deb: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir))?;
    fs::write(dir.join(".unpacked"), deb.display().to_string())?;
    Ok(())
}

/// A kernel in an unpacked tree: exactly one `boot/vmlinuz-*` and its
/// `lib/modules/<release>` (or `usr/lib/modules/<release>`).
fn tree(spec: &str, dir: &Path) -> Result<Kernel> {
    let boot = dir.join("boot");
    let images: Vec<String> = fs::read_dir(&boot)
        .with_context(|| format!("{} has no boot/ directory", dir.display()))?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("vmlinuz-")
                .map(str::to_owned)
        })
        .collect();
    let [release] = images.as_slice() else {
        bail!(
            "{} should hold exactly one vmlinuz-*, not {images:?}",
            boot.display()
        );
    };
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|m| dir.join(m).join(release))
        .find(|m| m.is_dir())
        .with_context(|| format!("{} has no lib/modules/{release}", dir.display()))?;
    let dir = fs::canonicalize(dir)?;
    Ok(Kernel {
        spec: spec.to_owned(),
        release: release.clone(),
        vmlinuz: dir.join("boot").join(format!("vmlinuz-{release}")),
        modules: fs::canonicalize(modules)?,
    })
}
