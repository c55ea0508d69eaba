//! The BPF filesystem: making sure it is mounted, and the directory where
//! xdpstat keeps an interface's pins.

use std::{
    ffi::CString,
    fs, io,
    path::{Path, PathBuf},
};

use thiserror::Error;

/// Where bpffs is mounted by convention.
pub const MOUNT_POINT: &str = "/sys/fs/bpf";
/// xdpstat's directory on bpffs.
pub const XDPSTAT_DIR: &str = "/sys/fs/bpf/xdpstat";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// A bpffs problem.
#[derive(Debug, Error)]
pub enum BpffsError {
    /// bpffs is not mounted and mounting it failed.
    #[error("bpffs is not mounted at {MOUNT_POINT} and mounting it failed: {0} (mount it with `mount -t bpf bpf {MOUNT_POINT}`)")]
    Mount(#[source] io::Error),
    /// bpffs is not mounted, and a bpffs xdpstat mounted would die with it:
    /// its mount namespace has no other process (as under `ip netns exec`,
    /// which makes one and remounts /sys in it).
    #[error("bpffs is not mounted at {MOUNT_POINT} in this mount namespace, and no other process shares it (as under `ip netns exec`, which remounts /sys), so pins made here would vanish when xdpstat exits; enter only the network namespace instead: `nsenter --net=/run/netns/NS xdpstat ...`")]
    Ephemeral,
    /// A path that must be on bpffs is not.
    #[error("{} is not on a BPF filesystem (bpffs); pins can only live on bpffs, e.g. under {MOUNT_POINT}", .0.display())]
    NotBpffs(PathBuf),
    /// xdpstat's pins cannot be read by this user.
    #[error("cannot read {}: permission denied (EACCES); xdpstat's pins belong to root, so run this as root (with sudo)", .0.display())]
    Denied(PathBuf),
    /// Creating or removing a pin directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
}

/// Whether `path` is on bpffs.
///
/// # Errors
///
/// `statfs` failing, e.g. `ENOENT`.
pub fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: an all-zero statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `st` is writable.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type == BPF_FS_MAGIC)
}

/// Mounts bpffs at [`MOUNT_POINT`] unless it already is.
///
/// # Errors
///
/// [`BpffsError::Mount`] if it is not mounted and cannot be.
pub fn ensure_mounted() -> Result<(), BpffsError> {
    let mount_point = Path::new(MOUNT_POINT);
    if is_bpffs(mount_point).unwrap_or(false) {
        return Ok(());
    }
    if !mount_namespace_shared() {
        return Err(BpffsError::Ephemeral);
    }
    fs::create_dir_all(mount_point).map_err(BpffsError::Mount)?;
    let target = CString::new(MOUNT_POINT).expect("no NUL in a constant");
    // SAFETY: every argument is a NUL-terminated string that outlives the call.
    let ret = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if ret != 0 {
        return Err(BpffsError::Mount(io::Error::last_os_error()));
    }
    Ok(())
}

/// Whether another process lives in this process's mount namespace, so
/// that a mount made in it outlives this process.
fn mount_namespace_shared() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(ours) = fs::metadata("/proc/self/ns/mnt") else {
        // Without /proc there is no telling; mount as before.
        return true;
    };
    let me = std::process::id().to_string();
    let Ok(procs) = fs::read_dir("/proc") else {
        return true;
    };
    procs.flatten().any(|p| {
        let name = p.file_name();
        let name = name.to_string_lossy();
        name != me.as_str()
            && name.bytes().all(|b| b.is_ascii_digit())
            && fs::metadata(p.path().join("ns/mnt"))
                .is_ok_and(|m| m.ino() == ours.ino() && m.dev() == ours.dev())
    })
}

/// The inode of this thread's network namespace: what `lsns -t net` and
/// `ls -l /proc/self/ns/net` show as `net:[N]`. It is unique among the
/// namespaces alive now; a dead namespace's number can come back, which is
/// why every pin is checked against the kernel before it is trusted.
///
/// # Errors
///
/// `stat` failing (no `/proc`).
pub fn netns_inode() -> io::Result<u64> {
    // thread-self, not self: a thread may have entered another namespace.
    fs::metadata("/proc/thread-self/ns/net").map(|m| std::os::unix::fs::MetadataExt::ino(&m))
}

/// The network namespaces that some process is in, or that a bind mount
/// in `/run/netns` keeps (`ip netns add`), by inode. A namespace kept only
/// by an open descriptor or a bind mount elsewhere is missed.
pub fn live_netns_inodes() -> std::collections::HashSet<u64> {
    let mut alive = std::collections::HashSet::new();
    let mut add = |path: PathBuf| {
        if let Ok(m) = fs::metadata(path) {
            alive.insert(std::os::unix::fs::MetadataExt::ino(&m));
        }
    };
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            add(entry.path().join("ns/net"));
        }
    }
    for entry in fs::read_dir("/run/netns").into_iter().flatten().flatten() {
        add(entry.path());
    }
    alive
}

/// The prefix of a namespace's directory under [`XDPSTAT_DIR`]. Interface
/// names cannot hold `:`, so these never collide with the directories of
/// the layout before namespaces (`/sys/fs/bpf/xdpstat/<iface>/`).
const NETNS_PREFIX: &str = "netns:";

/// The prefix of an observers' directory in a namespace's directory. Its
/// `observe` is no ifindex, so the interface directories' parser skips it.
const OBSERVE_PREFIX: &str = "observe:";

/// xdpstat's directory for one network namespace:
/// `/sys/fs/bpf/xdpstat/netns:<inode>/`, holding one [`PinDir`] per
/// interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsDir {
    path: PathBuf,
}

impl NsDir {
    /// The directory of this thread's network namespace.
    ///
    /// # Errors
    ///
    /// [`BpffsError::Io`] if the namespace cannot be named.
    pub fn current() -> Result<Self, BpffsError> {
        let inode = netns_inode().map_err(|source| BpffsError::Io {
            path: PathBuf::from("/proc/thread-self/ns/net"),
            source,
        })?;
        Ok(Self {
            path: Path::new(XDPSTAT_DIR).join(format!("{NETNS_PREFIX}{inode}")),
        })
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory for interface `ifindex`, named `name` now.
    pub fn pin_dir(&self, ifindex: u32, name: &str) -> PinDir {
        PinDir {
            path: self.path.join(format!("{ifindex}:{name}")),
            ifindex: Some(ifindex),
            name: name.to_owned(),
        }
    }

    /// The directory of the observers of interface `ifindex`'s program:
    /// `observe:<ifindex>:<name>`, beside the interface's own directory
    /// (which holds only what xdpstat attached itself).
    pub fn observe_dir(&self, ifindex: u32, name: &str) -> PathBuf {
        self.path.join(format!("{OBSERVE_PREFIX}{ifindex}:{name}"))
    }

    /// Every observers' directory in this namespace's directory: the
    /// ifindex, the name the interface had, and the path.
    pub fn observe_dirs(&self) -> Vec<(u32, String, PathBuf)> {
        subdirs(&self.path)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                let file = p.file_name()?.to_str()?;
                let (index, name) = file.strip_prefix(OBSERVE_PREFIX)?.split_once(':')?;
                Some((index.parse().ok()?, name.to_owned(), p.clone()))
            })
            .collect()
    }

    /// The observers' directory of interface `ifindex`, whatever name it
    /// was given, if there is one.
    pub fn find_observe(&self, ifindex: u32) -> Option<PathBuf> {
        self.observe_dirs()
            .into_iter()
            .find_map(|(i, _, path)| (i == ifindex).then_some(path))
    }

    /// Every interface directory in this namespace's directory (none when
    /// it does not exist).
    ///
    /// # Errors
    ///
    /// [`BpffsError::Io`] if it cannot be read, e.g. `EACCES` without root.
    pub fn interfaces(&self) -> Result<Vec<PinDir>, BpffsError> {
        let mut dirs: Vec<PinDir> = subdirs(&self.path)?
            .into_iter()
            .filter_map(PinDir::parse)
            .collect();
        dirs.sort_by_key(|d| d.ifindex);
        Ok(dirs)
    }

    /// The directory of interface `ifindex`, whatever name it was given.
    ///
    /// # Errors
    ///
    /// As [`NsDir::interfaces`].
    pub fn find(&self, ifindex: u32) -> Result<Option<PinDir>, BpffsError> {
        Ok(self
            .interfaces()?
            .into_iter()
            .find(|d| d.ifindex == Some(ifindex)))
    }

    /// Takes xdpstat's lock on this namespace, making the directory if
    /// needed. Commands that change pins hold it, so that two of them never
    /// interleave their steps on one interface.
    ///
    /// # Errors
    ///
    /// [`BpffsError::Io`] if the directory cannot be made or locked.
    pub fn lock(&self) -> Result<NsLock, BpffsError> {
        let io = |source| BpffsError::Io {
            path: self.path.clone(),
            source,
        };
        loop {
            fs::create_dir_all(&self.path).map_err(io)?;
            let dir = fs::File::open(&self.path).map_err(io)?;
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&dir), libc::LOCK_EX) } != 0 {
                return Err(io(io::Error::last_os_error()));
            }
            // The holder before us may have removed the directory (its last
            // interface went); then lock the new one.
            let same = match (dir.metadata(), fs::metadata(&self.path)) {
                (Ok(a), Ok(b)) => {
                    use std::os::unix::fs::MetadataExt;
                    a.ino() == b.ino() && a.dev() == b.dev()
                }
                _ => false,
            };
            if same {
                return Ok(NsLock {
                    _dir: dir,
                    path: self.path.clone(),
                });
            }
        }
    }

    /// Takes the lock only if nobody holds it, and only if the directory
    /// exists: for readers that tidy up when they can, and never wait.
    pub fn try_lock(&self) -> Option<NsLock> {
        let dir = fs::File::open(&self.path).ok()?;
        // SAFETY: flock on a descriptor we own.
        let ret = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&dir),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        (ret == 0).then(|| NsLock {
            _dir: dir,
            path: self.path.clone(),
        })
    }

    /// Every namespace directory but this one, and the interface
    /// directories of the layout before namespaces: where the pins of an
    /// interface that moved here, or that an older xdpstat attached, are.
    pub fn elsewhere(&self) -> Vec<PinDir> {
        let mut found = Vec::new();
        for path in subdirs(Path::new(XDPSTAT_DIR)).unwrap_or_default() {
            if path == self.path {
                continue;
            }
            let is_ns = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(NETNS_PREFIX));
            if is_ns {
                found.extend(
                    subdirs(&path)
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(PinDir::parse),
                );
            } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                found.push(PinDir {
                    name: name.to_owned(),
                    path: path.clone(),
                    ifindex: None,
                });
            }
        }
        found
    }
}

/// xdpstat's lock on a namespace's directory, released on drop.
#[derive(Debug)]
pub struct NsLock {
    _dir: fs::File,
    path: PathBuf,
}

impl NsLock {
    /// The locked directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for NsLock {
    fn drop(&mut self) {
        // Still locked: a waiter that finds the directory gone makes it anew.
        if fs::remove_dir(&self.path).is_ok() {
            remove_empty_parents(&self.path);
        }
    }
}

fn subdirs(path: &Path) -> Result<Vec<PathBuf>, BpffsError> {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(BpffsError::Denied(path.to_owned()))
        }
        Err(source) => {
            return Err(BpffsError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    Ok(entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect())
}

/// The directory of one interface's pins,
/// `/sys/fs/bpf/xdpstat/netns:<inode>/<ifindex>:<name>/`: keyed by the
/// interface's index, with the name it had when xdpstat last saw it (for
/// people, and to find it by name once it is gone). A directory of the
/// older layout, `/sys/fs/bpf/xdpstat/<name>/`, has no index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinDir {
    path: PathBuf,
    ifindex: Option<u32>,
    name: String,
}

impl PinDir {
    fn parse(path: PathBuf) -> Option<Self> {
        let file = path.file_name()?.to_str()?;
        let (index, name) = file.split_once(':')?;
        let ifindex = index.parse().ok()?;
        let name = name.to_owned();
        Some(Self {
            path,
            ifindex: Some(ifindex),
            name,
        })
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The inode of the network namespace whose directory holds this one,
    /// unless this is a directory of the older layout.
    pub fn netns(&self) -> Option<u64> {
        self.path
            .parent()?
            .file_name()?
            .to_str()?
            .strip_prefix(NETNS_PREFIX)?
            .parse()
            .ok()
    }

    /// The interface's index, unless this is a directory of the older
    /// layout.
    pub fn ifindex(&self) -> Option<u32> {
        self.ifindex
    }

    /// The interface's name when xdpstat last saw it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The counters map.
    pub fn counters(&self) -> PathBuf {
        self.path.join("counters")
    }

    /// The BPF link that keeps the program attached.
    pub fn link(&self) -> PathBuf {
        self.path.join("link")
    }

    /// The program, pinned when it is attached through netlink rather
    /// than a link (so that xdpstat can tell it is its own).
    pub fn prog(&self) -> PathBuf {
        self.path.join("prog")
    }

    /// A name for a pin that is being made, renamed over the real one once
    /// it is complete. (bpffs refuses names with a dot.)
    pub fn staging(&self, name: &str) -> PathBuf {
        self.path
            .join(format!("{name}{STAGING}{}", std::process::id()))
    }

    /// Whether the directory exists.
    pub fn exists(&self) -> bool {
        self.path.is_dir()
    }

    /// Every pin in the directory.
    ///
    /// # Errors
    ///
    /// [`BpffsError::Io`] if the directory cannot be read.
    pub fn pins(&self) -> Result<Vec<PathBuf>, BpffsError> {
        let entries = match fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(BpffsError::Denied(self.path.clone()))
            }
            Err(source) => {
                return Err(BpffsError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut pins: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        pins.sort();
        Ok(pins)
    }

    /// Creates the directory (bpffs must be mounted).
    ///
    /// # Errors
    ///
    /// [`BpffsError::Io`] if it cannot be made.
    pub fn create(&self) -> Result<(), BpffsError> {
        fs::create_dir_all(&self.path).map_err(|source| BpffsError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Moves the directory (and every pin in it) to `to`, which becomes
    /// this directory.
    ///
    /// # Errors
    ///
    /// [`BpffsError::Io`] if the rename fails.
    pub fn move_to(&mut self, to: PinDir) -> Result<(), BpffsError> {
        if let Some(parent) = to.path.parent() {
            fs::create_dir_all(parent).map_err(|source| BpffsError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        fs::rename(&self.path, &to.path).map_err(|source| BpffsError::Io {
            path: to.path.clone(),
            source,
        })?;
        let from = std::mem::replace(self, to);
        remove_empty_parents(&from.path);
        Ok(())
    }

    /// Removes the directory, then its namespace's directory and xdpstat's
    /// own once they are empty. Leaves each alone if it is not empty.
    pub fn remove_if_empty(&self) {
        if fs::remove_dir(&self.path).is_ok() {
            remove_empty_parents(&self.path);
        }
    }
}

/// Removes the empty directories above `path`, up to and with xdpstat's.
fn remove_empty_parents(path: &Path) {
    let root = Path::new(XDPSTAT_DIR);
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| d.starts_with(root)) {
        if fs::remove_dir(d).is_err() {
            return;
        }
        dir = d.parent();
    }
}

/// What a staging pin's name has between the pin's name and the PID of the
/// process that made it.
const STAGING: &str = "-staging-";

/// The pin's name without its staging suffix (`link-staging-42` is a
/// staged `link`), and whether it had one.
pub fn unstaged_name(pin: &Path) -> Option<(&str, bool)> {
    let file = pin.file_name()?.to_str()?;
    Some(match file.split_once(STAGING) {
        Some((name, _)) => (name, true),
        None => (file, false),
    })
}
