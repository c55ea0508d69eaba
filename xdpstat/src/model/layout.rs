//! The two counter layouts of the embedded XDP program, and the objects
//! that implement them.

use std::fmt;

use aya::maps::MapType;
use serde::Serialize;

/// How the XDP program stores its counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `BPF_MAP_TYPE_PERCPU_ARRAY` with plain increments; user space sums the
    /// CPUs. No shared cache line, so it is the faster one.
    #[default]
    Percpu,
    /// `BPF_MAP_TYPE_ARRAY` with atomic adds shared by every CPU.
    Shared,
}

impl Layout {
    /// The name the layout has on the command line and in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Percpu => "percpu",
            Self::Shared => "shared",
        }
    }

    /// The kernel map type that holds the counters.
    pub const fn map_type(self) -> MapType {
        match self {
            Self::Percpu => MapType::PerCpuArray,
            Self::Shared => MapType::Array,
        }
    }

    /// The layout a counters map of this type has, if any.
    pub fn from_map_type(map_type: MapType) -> Option<Self> {
        match map_type {
            MapType::PerCpuArray => Some(Self::Percpu),
            MapType::Array => Some(Self::Shared),
            _ => None,
        }
    }

    /// The layout a counters map of this `BPF_MAP_TYPE_*` has, if any.
    pub fn from_raw_map_type(map_type: u32) -> Option<Self> {
        use aya_obj::generated::bpf_map_type::{BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY};
        match map_type {
            t if t == BPF_MAP_TYPE_PERCPU_ARRAY as u32 => Some(Self::Percpu),
            t if t == BPF_MAP_TYPE_ARRAY as u32 => Some(Self::Shared),
            _ => None,
        }
    }

    /// The XDP program's name in the embedded object (and in the kernel).
    pub const fn program_name(self) -> &'static str {
        match self {
            Self::Percpu => "xdpstat_percpu",
            Self::Shared => "xdpstat_shared",
        }
    }

    /// The layout of an embedded program, by its kernel name.
    pub fn from_program_name(name: &str) -> Option<Self> {
        [Self::Percpu, Self::Shared]
            .into_iter()
            .find(|layout| layout.program_name() == name)
    }

    /// The embedded BPF object (an ELF file built from `xdpstat-ebpf`).
    pub fn object(self) -> &'static [u8] {
        match self {
            Self::Percpu => &PERCPU_OBJECT.0,
            Self::Shared => &SHARED_OBJECT.0,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// ELF parsers read 8-byte fields in place, so the embedded bytes must be
/// aligned; `include_bytes!` alone only guarantees alignment 1.
#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

static PERCPU_OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!("../../bpf/xdpstat_percpu.o"));
static SHARED_OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!("../../bpf/xdpstat_shared.o"));
static OBSERVE_OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!("../../bpf/xdpstat_observe.o"));

/// The embedded observers (`xdpstat_observe_entry`, a fentry program, and
/// `xdpstat_observe_exit`, fexit), which count another program's verdicts.
pub fn observe_object() -> &'static [u8] {
    &OBSERVE_OBJECT.0
}
