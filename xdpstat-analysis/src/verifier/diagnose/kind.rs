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
    /// A stack access outside the frame (`invalid stack off=-520`), or a
    /// stack pointer moved by a value with no proven bound.
    StackBounds,
    /// Stack bytes read (directly or by a helper) that nothing wrote, or
    /// that hold a spilled register rather than data.
    UninitStack,
    /// A bad access to the context (`struct xdp_md`).
    CtxAccess,
    /// A helper or kfunc this program may not call.
    HelperUnavailable,
    /// A helper or kfunc argument of the wrong type (`R3 type=inv
    /// expected=fp`).
    HelperArgType,
    /// A helper's size argument without proven bounds (`R2 min value is
    /// negative, either use unsigned or 'var &= const'`).
    HelperSizeArg,
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
    /// A plain number used as a pointer (`invalid mem access 'scalar'`,
    /// `'inv'` on old kernels).
    ScalarDeref,
    /// Arithmetic the verifier does not allow on a pointer.
    PointerArith,
    /// An access not aligned to its size where alignment is required.
    Misaligned,
    /// A read through a BTF (kernel-typed) pointer that does not match the
    /// kernel's type.
    BtfAccess,
    /// A CO-RE relocation the loader could not resolve, poisoned
    /// (`call unknown#195896080`).
    CoreRelocation,
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
            Self::StackBounds => "stack-bounds",
            Self::UninitStack => "uninit-stack",
            Self::CtxAccess => "ctx-access",
            Self::HelperUnavailable => "helper-unavailable",
            Self::HelperArgType => "helper-arg-type",
            Self::HelperSizeArg => "helper-size-arg",
            Self::ReferenceLeak => "reference-leak",
            Self::StackLimit => "stack-limit",
            Self::Complexity => "complexity",
            Self::Uninit => "uninit",
            Self::InvalidReturn => "invalid-return",
            Self::ScalarDeref => "scalar-deref",
            Self::PointerArith => "pointer-arith",
            Self::Misaligned => "misaligned",
            Self::BtfAccess => "btf-access",
            Self::CoreRelocation => "core-relocation",
            Self::Unknown => "unknown",
        }
    }
}

impl Kind {
    /// Every kind, in the order the report lists them.
    pub const ALL: [Self; 21] = [
        Self::NullCheck,
        Self::PacketBounds,
        Self::StalePacketPointer,
        Self::MapValueBounds,
        Self::StackBounds,
        Self::UninitStack,
        Self::CtxAccess,
        Self::HelperUnavailable,
        Self::HelperArgType,
        Self::HelperSizeArg,
        Self::ReferenceLeak,
        Self::StackLimit,
        Self::Complexity,
        Self::Uninit,
        Self::InvalidReturn,
        Self::ScalarDeref,
        Self::PointerArith,
        Self::Misaligned,
        Self::BtfAccess,
        Self::CoreRelocation,
        Self::Unknown,
    ];
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serialized_names() {
        for kind in Kind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.name(), "{kind:?}");
            let back: Kind = serde_json::from_value(json).unwrap();
            assert_eq!(back, kind);
        }
    }
}
