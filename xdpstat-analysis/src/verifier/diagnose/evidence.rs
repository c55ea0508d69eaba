//! How a diagnosis found the origin of the offending value, or why it
//! could not.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How the origin was found, or why it could not be. It serializes (and
/// prints) as its sentence, [`Evidence::text`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Evidence {
    /// The value's `id` in the verifier's state, and the backward walk
    /// along the path, both lead to the origin.
    IdAndPath,
    /// The value's `id` in the verifier's state leads to the origin.
    Id,
    /// The backward walk along the path, through moves and spills.
    PathThroughSpills,
    /// The walk back to the packet pointer's load from ctx.
    PathToPacketLoad,
    /// The walk crossed a helper call that may move the packet.
    PathCrossesPacketChange,
    /// The map value's id, or the walk back to its lookup.
    MapValueIdOrPath,
    /// The backward walk along the path.
    Path,
    /// The walk reached the start of the path without a write.
    PathNeverWrites,
    /// The error is about the failing instruction itself.
    FailingInsn,
    /// The error is about the failing call itself.
    FailingCall,
    /// The verifier's `alloc_insn` of an unreleased reference.
    AllocInsn,
    /// The conditional jump the log walks most often.
    HottestBranch,
    /// No origin: the log lacks the state (no ids, and the path it shows
    /// does not reach the birth). A log-level-2 log may have it.
    LacksState,
    /// No rule knows the message.
    NoRule,
}

impl Evidence {
    /// Every kind of evidence, for reading a report back.
    pub const ALL: [Self; 14] = [
        Self::IdAndPath,
        Self::Id,
        Self::PathThroughSpills,
        Self::PathToPacketLoad,
        Self::PathCrossesPacketChange,
        Self::MapValueIdOrPath,
        Self::Path,
        Self::PathNeverWrites,
        Self::FailingInsn,
        Self::FailingCall,
        Self::AllocInsn,
        Self::HottestBranch,
        Self::LacksState,
        Self::NoRule,
    ];

    /// The sentence the report prints.
    pub const fn text(self) -> &'static str {
        match self {
            Self::IdAndPath => "the value's id in the verifier's state, and the path it walked",
            Self::Id => "the value's id in the verifier's state",
            Self::PathThroughSpills => {
                "the path the verifier walked (through moves and stack spills)"
            }
            Self::PathToPacketLoad => {
                "the path the verifier walked, back to the packet pointer's load from ctx"
            }
            Self::PathCrossesPacketChange => "the path the verifier walked crosses the packet-changing call between the pointer's load and its use",
            Self::MapValueIdOrPath => "the map value's id or the path back to its lookup",
            Self::Path => "the path the verifier walked",
            Self::PathNeverWrites => "the path the verifier walked never writes it",
            Self::FailingInsn => "the failing instruction itself",
            Self::FailingCall => "the failing call itself",
            Self::AllocInsn => "the verifier's alloc_insn for the reference",
            Self::HottestBranch => "the branch the verifier walked most often in the log",
            Self::LacksState => "the log lacks the state needed to find where the value came from (no register ids, and the path it shows does not reach the value's birth); load it with log level 2 to get more",
            Self::NoRule => "no rule for this message",
        }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl Serialize for Evidence {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.text())
    }
}

impl<'de> Deserialize<'de> for Evidence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::ALL
            .into_iter()
            .find(|e| e.text() == text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown evidence {text:?}")))
    }
}
