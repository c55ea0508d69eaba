//! Types shared by the xdpstat XDP program (`xdpstat-ebpf`) and user space.
//!
//! Everything here is `#[repr(C)]` plain data: the kernel side writes it into
//! BPF maps and user space reads the same bytes back.
#![no_std]

/// The value stored in the counters map, one per CPU for the per-CPU layout.
///
/// The layout (two native-endian `u64`s, packets first) is the one the
/// xdp-tutorial's `stats_kern.c` uses, so maps made by other loaders with
/// this shape can be read too.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames seen.
    pub packets: u64,
    /// Bytes seen: the sum of `data_end - data` over the frames.
    pub bytes: u64,
}

impl Counters {
    /// Size of one value in the map, in bytes.
    pub const SIZE: usize = core::mem::size_of::<Self>();
}

// SAFETY: `Counters` is `repr(C)`, made of two `u64`s with no padding, and
// every bit pattern is a valid value.
#[cfg(feature = "user")]
unsafe impl aya::Pod for Counters {}

/// Name of the counters map in the embedded objects (and in the kernel).
pub const COUNTERS_MAP: &str = "counters";

/// The only key of the counters map.
pub const COUNTERS_KEY: u32 = 0;

/// Name of the observers' map: a per-CPU array of one [`ObserverSlot`].
pub const ACTIONS_MAP: &str = "actions";

/// The observers' value, one per CPU: the length of the frame the
/// observed program is running on (fentry writes it, fexit reads it), and
/// a `Counters` per verdict, by [`ACTIONS`]' index. One value, so that
/// each observer does one map lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObserverSlot {
    /// The frame in flight on this CPU, in bytes.
    pub inflight: u64,
    /// Per verdict.
    pub actions: [Counters; 6],
}

// SAFETY: `ObserverSlot` is `repr(C)`, made of `u64`s with no padding, and
// every bit pattern is a valid value.
#[cfg(feature = "user")]
unsafe impl aya::Pod for ObserverSlot {}

/// The verdicts the observers count, by key: the kernel's `XDP_ABORTED`
/// (0) to `XDP_REDIRECT` (4), then any other return value.
pub const ACTIONS: [&str; 6] = ["aborted", "drop", "pass", "tx", "redirect", "other"];

/// The key of [`ACTIONS`]' `other`.
pub const ACTION_OTHER: u32 = 5;

/// Offsets in the kernel's `struct xdp_buff` that the observers read:
/// `data` and `data_end`. Fixed in the object; user space checks them
/// against the running kernel's BTF before it loads the observers.
pub const XDP_BUFF_DATA: usize = 0;

/// See [`XDP_BUFF_DATA`].
pub const XDP_BUFF_DATA_END: usize = 8;
