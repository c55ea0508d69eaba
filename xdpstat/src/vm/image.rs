//! A bootable kernel: its image and its modules, from a Debian line
//! (`6.1`, `6.12`), a kernel `.deb`, an unpacked tree, or an image inside
//! one.

use std::{
    env, fs,
    io::Read,
    path::{Path, PathBuf},
};

use super::{debian, VmError};

/// A kernel a guest can boot.
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

/// An exclusive lock on one entry of the kernel cache, so that two
/// xdpstats fetching the same kernel do not unpack it over each other;
/// released on drop.
pub(crate) struct CacheLock {
    _file: fs::File,
}

impl CacheLock {
    /// Waits for the lock on `dir`'s entry (`<dir>.lock` beside it).
    pub(crate) fn take(dir: &Path) -> Result<Self, VmError> {
        use std::os::fd::AsRawFd as _;
        let path = suffixed(dir, ".lock");
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(VmError::io(format!("creating {}", parent.display())))?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(VmError::io(format!("opening {}", path.display())))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(VmError::Io {
                what: format!("locking {}", path.display()),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Self { _file: file })
    }
}

/// `dir` with `suffix` appended to its last component (kernel releases
/// are full of dots, so no `with_extension`).
fn suffixed(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Where fetched kernels are unpacked: `$XDPSTAT_KERNEL_CACHE`, else
/// `$XDG_CACHE_HOME/xdpstat/kernels`, else `~/.cache/xdpstat/kernels`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = env::var_os("XDPSTAT_KERNEL_CACHE") {
        return PathBuf::from(dir);
    }
    let base = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("xdpstat/kernels")
}

/// `6.1` and `6.12` name Debian's lines: the newest image of the line is
/// fetched once and cached. Anything else is a path: an unpacked tree with
/// `boot/vmlinuz-*` and `lib/modules/*`, a `vmlinuz-*` inside such a tree,
/// or a kernel `.deb`, unpacked into the cache.
///
/// `progress` hears of downloads.
///
/// # Errors
///
/// [`VmError::BadKernel`] when the spec names no kernel, and
/// [`VmError::Fetch`] when a download fails.
pub fn resolve(spec: &str, progress: &mut dyn FnMut(&str)) -> Result<Kernel, VmError> {
    if let Some(line) = debian::line(spec) {
        let dir = debian::fetch(line, &cache_dir(), progress)?;
        return tree(spec, &dir);
    }
    let bad = |reason: String| VmError::BadKernel {
        spec: spec.to_owned(),
        reason,
    };
    let path = Path::new(spec);
    let meta = fs::metadata(path).map_err(|e| {
        bad(format!(
            "neither a kernel line xdpstat fetches ({}) nor a path it can read: {e}",
            debian::LINES.map(|l| l.name).join(", ")
        ))
    })?;
    if meta.is_dir() {
        return tree(spec, path);
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if let Some(release) = name.strip_prefix("vmlinuz-") {
        // boot/vmlinuz-R in a tree: its modules are ../lib/modules/R.
        let root = path
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| bad("a kernel image outside a tree".to_owned()))?;
        let found = tree(spec, root)?;
        if found.release != release {
            return Err(bad(format!(
                "its tree's only image is vmlinuz-{}",
                found.release
            )));
        }
        return Ok(found);
    }
    if name.ends_with(".deb") {
        let stem = name.trim_end_matches(".deb");
        let dir = cache_dir().join(stem);
        let _lock = CacheLock::take(&dir)?;
        if !dir.join(".unpacked").exists() {
            let bytes = fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
            unpack_deb(&bytes, &dir, &mut |member| {
                progress(&format!(
                    "unpacking {member} of {} into {}",
                    path.display(),
                    dir.display()
                ));
            })
            .map_err(|reason| bad(format!("not a kernel .deb: {reason}")))?;
        }
        return tree(spec, &dir);
    }
    Err(bad(
        "not a kernel: give a directory with boot/vmlinuz-* and lib/modules/*, its boot/vmlinuz-* file, or a kernel .deb".to_owned(),
    ))
}

/// A kernel in an unpacked tree: exactly one `boot/vmlinuz-*` and its
/// `lib/modules/<release>` (or `usr/lib/modules/<release>`).
fn tree(spec: &str, dir: &Path) -> Result<Kernel, VmError> {
    let bad = |reason: String| VmError::BadKernel {
        spec: spec.to_owned(),
        reason,
    };
    let boot = dir.join("boot");
    let images: Vec<String> = fs::read_dir(&boot)
        .map_err(|e| {
            bad(format!(
                "{} has no boot/ directory with a vmlinuz-* ({e})",
                dir.display()
            ))
        })?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("vmlinuz-")
                .map(str::to_owned)
        })
        .collect();
    let [release] = images.as_slice() else {
        return Err(bad(format!(
            "{} should hold exactly one vmlinuz-*, not {}",
            boot.display(),
            images.len()
        )));
    };
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|m| dir.join(m).join(release))
        .find(|m| m.is_dir())
        .ok_or_else(|| {
            bad(format!(
                "{} has no lib/modules/{release}: the guest needs the kernel's 9p and veth modules",
                dir.display()
            ))
        })?;
    let canonical =
        |p: PathBuf| fs::canonicalize(&p).map_err(|e| bad(format!("{}: {e}", p.display())));
    Ok(Kernel {
        spec: spec.to_owned(),
        release: release.clone(),
        vmlinuz: canonical(boot.join(format!("vmlinuz-{release}")))?,
        modules: canonical(modules)?,
    })
}

/// Unpacks the image and the modules of a kernel `.deb` into `dir`,
/// atomically: `dir/.unpacked` exists only once everything is there.
/// `unpacking` hears of the member once it is found.
pub(crate) fn unpack_deb(
    deb: &[u8],
    dir: &Path,
    unpacking: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let mut archive = ar::Archive::new(deb);
    let mut data = None;
    while let Some(entry) = archive.next_entry() {
        let mut entry = entry.map_err(|e| format!("a bad ar archive: {e}"))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        if name.starts_with("data.tar") {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| format!("reading {name}: {e}"))?;
            data = Some((name, bytes));
            break;
        }
    }
    let (name, bytes) = data.ok_or("no data.tar member")?;
    let reader: Box<dyn Read> = match name.as_str() {
        "data.tar.xz" => Box::new(liblzma::read::XzDecoder::new(bytes.as_slice())),
        "data.tar" => Box::new(bytes.as_slice()),
        other => {
            return Err(format!(
                "{other} is compressed in a way xdpstat does not read"
            ))
        }
    };
    unpacking(&name);
    let staging = suffixed(dir, &format!(".partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| format!("creating {}: {e}", staging.display()))?;
    let result = (|| {
        let mut tar = tar::Archive::new(reader);
        for entry in tar.entries().map_err(|e| format!("reading {name}: {e}"))? {
            let mut entry = entry.map_err(|e| format!("reading {name}: {e}"))?;
            let path = entry.path().map_err(|e| e.to_string())?.into_owned();
            let path = path.strip_prefix(".").unwrap_or(&path);
            let wanted = path.starts_with("boot")
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("vmlinuz-"))
                || path.starts_with("lib/modules")
                || path.starts_with("usr/lib/modules");
            if wanted {
                entry
                    .unpack_in(&staging)
                    .map_err(|e| format!("unpacking {}: {e}", path.display()))?;
            }
        }
        fs::write(staging.join(".unpacked"), b"")
            .map_err(|e| format!("writing {}: {e}", staging.display()))?;
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
        }
        fs::rename(&staging, dir).map_err(|e| format!("renaming into {}: {e}", dir.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}
