//! xdpstat's one error type, [`Error`], which every module's error turns
//! into and which decides the exit code; and errors on one line.

use std::io;

use crate::kernel::{bpffs::BpffsError, map::MapError, privileges::PrivilegeError};
use crate::model::attach::AttachError;
use crate::model::counters::CountersError;
use crate::model::inspect::{dump::DumpError, maps::PinError, progs::InspectError};
use crate::model::workbench::WorkbenchError;
use xdpstat_analysis::obj::ObjectError;

/// Everything that can go wrong, by module, as aya's `EbpfError` gathers
/// its modules' errors. [`Error::is_usage`] asks the module's own error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Attaching, detaching or inspecting an attachment.
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// Reading counters.
    #[error(transparent)]
    Counters(#[from] CountersError),
    /// Opening a map.
    #[error(transparent)]
    Map(#[from] MapError),
    /// Dumping a map.
    #[error(transparent)]
    Dump(#[from] DumpError),
    /// Pinning or unpinning a map.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// Listing programs and maps.
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// Reading a BPF object.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// Loading an object for the verifier.
    #[error(transparent)]
    Workbench(#[from] WorkbenchError),
    /// bpffs.
    #[error(transparent)]
    Bpffs(#[from] BpffsError),
    /// Observing another loader's program.
    #[error(transparent)]
    Observe(#[from] crate::model::observe::ObserveError),
    /// Booting another kernel.
    #[error(transparent)]
    Vm(#[from] crate::vm::VmError),
    /// Missing privileges.
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
    /// Bad input that no module's error names (exit 2).
    #[error("{0}")]
    Usage(String),
    /// An operation that failed, in words (exit 1).
    #[error("{0}")]
    Failed(String),
    /// What was being done when `source` happened.
    #[error("{what}")]
    Context {
        /// What was being done.
        what: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
    /// Writing the output, or another I/O failure.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Writing JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Whether the error is the user's input rather than an operation that
    /// failed: exit code 2 rather than 1.
    pub fn is_usage(&self) -> bool {
        match self {
            Self::Attach(e) => e.is_usage(),
            Self::Counters(e) => e.is_usage(),
            Self::Map(e) => e.is_usage(),
            Self::Dump(e) => e.is_usage(),
            Self::Pin(e) => e.is_usage(),
            Self::Object(e) => e.is_usage(),
            Self::Workbench(e) => e.is_usage(),
            Self::Vm(e) => e.is_usage(),
            Self::Observe(e) => e.is_usage(),
            Self::Bpffs(e) => matches!(e, BpffsError::Ephemeral),
            Self::Usage(_) => true,
            Self::Context { source, .. } => source.is_usage(),
            Self::Inspect(_)
            | Self::Privilege(_)
            | Self::Failed(_)
            | Self::Io(_)
            | Self::Json(_) => false,
        }
    }

    /// The exit code: 2 for bad input, 1 for an operation that failed.
    pub fn exit_code(&self) -> u8 {
        if self.is_usage() {
            2
        } else {
            1
        }
    }

    /// Whether it is a closed stdout (`xdpstat run … | head`), which is not
    /// a failure.
    pub fn is_broken_pipe(&self) -> bool {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = current {
            if e.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            {
                return true;
            }
            current = e.source();
        }
        false
    }

    /// Wraps the error in what was being done.
    pub fn context(self, what: impl Into<String>) -> Self {
        Self::Context {
            what: what.into(),
            source: Box::new(self),
        }
    }
}

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use xdpstat_analysis::error::{chain, strerror};
