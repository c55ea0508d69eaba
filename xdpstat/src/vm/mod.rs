//! Other kernels, booted under qemu's emulator: the images ([`image`]),
//! fetched from Debian when asked by line ([`debian`]), the guest's first
//! stage ([`initramfs`]) and the machine itself ([`qemu`]).
//!
//! A guest sees the host's root over 9p, read-only, with tmpfs over the
//! writable directories, bpffs on `/sys/fs/bpf`, and one writable
//! directory of the host's at the same path, where it leaves its results.
//! So the guest runs the host's own binaries on the host's own files, and
//! nothing is copied in but busybox and the kernel's modules.
//!
//! qemu is the one program xdpstat starts: running another kernel is its
//! job. Busybox runs inside the guest, as its init.

pub mod debian;
pub mod image;
pub mod initramfs;
pub mod qemu;

use std::{io, path::PathBuf};

/// What can stop a guest from booting or finishing.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// No qemu on `PATH`.
    #[error("{binary} is not installed; booting another kernel needs qemu's emulator: apt-get install qemu-system-x86")]
    NoQemu {
        /// The binary looked for.
        binary: &'static str,
    },
    /// No static busybox for the guest's init.
    #[error(
        "{path} is missing; the guest's init is a static busybox: apt-get install busybox-static"
    )]
    NoBusybox {
        /// Where it was looked for.
        path: &'static str,
    },
    /// Too little memory for the guests.
    #[error("{guests} guest(s) need {need_mib} MiB of memory and {available_mib} MiB are available; free some, or give fewer --kernel")]
    Memory {
        /// Guests at once.
        guests: usize,
        /// What they need.
        need_mib: u64,
        /// `MemAvailable`.
        available_mib: u64,
    },
    /// A `--kernel` that names no kernel.
    #[error("--kernel {spec}: {reason}")]
    BadKernel {
        /// As given.
        spec: String,
        /// Why it is no kernel.
        reason: String,
    },
    /// Downloading a kernel failed.
    #[error("cannot fetch the {line} kernel from {url}: {reason}; check the network, or give --kernel a path to an unpacked kernel (boot/vmlinuz-* and lib/modules/*)")]
    Fetch {
        /// The Debian line.
        line: String,
        /// What was being fetched.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The guest died, hung or never reached its command.
    #[error("the {release} guest {how}; its console log is {}:\n{excerpt}", console.display())]
    Guest {
        /// The kernel's release.
        release: String,
        /// `died (qemu: exit status: 0)`, `hung`, …
        how: String,
        /// The whole console log.
        console: PathBuf,
        /// Its telling part.
        excerpt: String,
    },
    /// An I/O error, with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
}

impl VmError {
    /// Whether the user can fix it by changing the command or installing
    /// something (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::NoQemu { .. }
                | Self::NoBusybox { .. }
                | Self::Memory { .. }
                | Self::BadKernel { .. }
        )
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
