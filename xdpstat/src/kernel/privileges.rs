//! Checks, before touching the kernel, that the process may do what it asks,
//! so that a missing capability is one clear line rather than an EPERM from
//! deep inside a syscall.

use std::fs;

use thiserror::Error;

/// A Linux capability xdpstat may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// `CAP_NET_ADMIN`: attach XDP programs to interfaces.
    NetAdmin = 12,
    /// `CAP_SYS_ADMIN`: mount bpffs; also implies `CAP_BPF` on old kernels.
    SysAdmin = 21,
    /// `CAP_PERFMON`: pointer arithmetic the verifier otherwise refuses
    /// (the counter program's `data_end - data`), and tracing programs
    /// (the observers).
    Perfmon = 38,
    /// `CAP_BPF`: load programs, create and read maps.
    Bpf = 39,
}

impl Capability {
    const fn name(self) -> &'static str {
        match self {
            Self::NetAdmin => "CAP_NET_ADMIN",
            Self::SysAdmin => "CAP_SYS_ADMIN",
            Self::Bpf => "CAP_BPF",
            Self::Perfmon => "CAP_PERFMON",
        }
    }
}

/// The process lacks capabilities a command needs.
#[derive(Debug, Error)]
#[error("{what} needs root: this process lacks {missing} (run it with sudo, or grant those capabilities)")]
pub struct PrivilegeError {
    what: String,
    missing: String,
}

/// The effective capability set of this process.
fn effective() -> u64 {
    // If /proc is unreadable, assume everything and let the kernel answer.
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return u64::MAX;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(u64::MAX)
}

/// Fails unless the process has every capability in `needed`. `CAP_BPF` and
/// `CAP_PERFMON` are also satisfied by `CAP_SYS_ADMIN`, as the kernel
/// allows.
///
/// # Errors
///
/// [`PrivilegeError`] naming `what` and the missing capabilities.
pub fn require(what: &str, needed: &[Capability]) -> Result<(), PrivilegeError> {
    let eff = effective();
    let has = |cap: Capability| eff & (1u64 << cap as u32) != 0;
    let missing: Vec<&str> = needed
        .iter()
        .filter(|&&cap| {
            let implied =
                matches!(cap, Capability::Bpf | Capability::Perfmon) && has(Capability::SysAdmin);
            !(has(cap) || implied)
        })
        .map(|cap| cap.name())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PrivilegeError {
            what: what.to_owned(),
            missing: missing.join(" and "),
        })
    }
}
