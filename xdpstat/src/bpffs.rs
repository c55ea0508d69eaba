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
    /// A path that must be on bpffs is not.
    #[error("{} is not on a BPF filesystem (bpffs); pins can only live on bpffs, e.g. under {MOUNT_POINT}", .0.display())]
    NotBpffs(PathBuf),
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

/// The directory of an interface's pins: `/sys/fs/bpf/xdpstat/<iface>/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinDir {
    path: PathBuf,
}

impl PinDir {
    /// The pin directory for `iface` (which need not exist).
    pub fn new(iface: &str) -> Self {
        Self {
            path: Path::new(XDPSTAT_DIR).join(iface),
        }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
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
            .join(format!("{name}-staging-{}", std::process::id()))
    }

    /// Whether anything of ours is pinned here.
    pub fn exists(&self) -> bool {
        self.path.is_dir()
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

    /// Removes the directory, and xdpstat's own directory too once no
    /// interface has pins left. Leaves both alone if they are not empty.
    pub fn remove_if_empty(&self) {
        for dir in [self.path.as_path(), Path::new(XDPSTAT_DIR)] {
            if fs::remove_dir(dir).is_err() {
                return;
            }
        }
    }
}
