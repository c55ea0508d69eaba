//! The fixed names of what can go wrong.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The fixed names of what can go wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A possibly-NULL pointer used without a test.
    NullCheck,
    /// A packet access not proven inside `data_end`.
    PacketBounds,
    /// A packet pointer used after a helper that may move the packet.
    StalePacketPointer,
    /// A map value accessed outside its size.
    MapValueBounds,
    /// A bad access to the context (`struct xdp_md`).
    CtxAccess,
    /// A helper or kfunc this program may not call.
    HelperUnavailable,
    /// An acquired reference not released on some path.
    ReferenceLeak,
    /// Stack use beyond the 512-byte limit.
    StackLimit,
    /// Too many instructions or states, or a loop the verifier cannot bound.
    Complexity,
    /// An uninitialized register or stack slot.
    Uninit,
    /// A return value the program type does not allow.
    InvalidReturn,
    /// None of the above.
    Unknown,
}

impl Kind {
    /// The name JSON and the report use.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NullCheck => "null-check",
            Self::PacketBounds => "packet-bounds",
            Self::StalePacketPointer => "stale-packet-pointer",
            Self::MapValueBounds => "map-value-bounds",
            Self::CtxAccess => "ctx-access",
            Self::HelperUnavailable => "helper-unavailable",
            Self::ReferenceLeak => "reference-leak",
            Self::StackLimit => "stack-limit",
            Self::Complexity => "complexity",
            Self::Uninit => "uninit",
            Self::InvalidReturn => "invalid-return",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
