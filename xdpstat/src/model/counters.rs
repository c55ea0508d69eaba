//! Reading counters out of a pinned map into plain records, and the rate
//! arithmetic on those records. The one reader every renderer uses.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::Serialize;
use thiserror::Error;
use xdpstat_common::{Counters, COUNTERS_KEY};

pub use crate::kernel::map::Cpus;
use crate::kernel::map::{MapError, MapRef, MapType, OpenMap};
use crate::model::layout::Layout;

/// Reading counters failed.
#[derive(Debug, Error)]
pub enum CountersError {
    /// Nothing is pinned at the path.
    #[error("no counters map is pinned at {}", path.display())]
    NotPinned {
        /// The path.
        path: PathBuf,
    },
    /// The pin is not a map, or cannot be opened.
    #[error(transparent)]
    Open(MapError),
    /// The path is not on bpffs, so nothing can be pinned there.
    #[error("{} is not on a BPF filesystem (bpffs): only pinned maps can be read; pin one with `xdpstat map pin ID PATH` under /sys/fs/bpf", path.display())]
    NotBpffs {
        /// The path.
        path: PathBuf,
    },
    /// The map is not a counters map.
    #[error("{} is not a counters map: expected {expected}, found {found}", path.display())]
    WrongShape {
        /// The path.
        path: PathBuf,
        /// What a counters map looks like.
        expected: &'static str,
        /// What this map looks like.
        found: String,
    },
    /// A syscall failed.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The map's pin.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl CountersError {
    /// Whether it is the input's fault (exit 2): a path or map that holds
    /// no counters.
    pub fn is_usage(&self) -> bool {
        match self {
            Self::WrongShape { .. } | Self::NotBpffs { .. } | Self::NotPinned { .. } => true,
            Self::Open(e) => e.is_usage(),
            Self::Read { .. } => false,
        }
    }
}

/// One CPU's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuCounters {
    /// The CPU number (its id, not its position in the map's value).
    pub cpu: u32,
    /// Frames.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Whether the CPU is online now. Offline CPUs keep their counts.
    pub online: bool,
}

impl CpuCounters {
    /// Its packets and bytes.
    pub fn counters(&self) -> Counters {
        Counters {
            packets: self.packets,
            bytes: self.bytes,
        }
    }
}

/// The counters at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The map's layout.
    pub layout: Layout,
    /// The map's id; a new id means the map was replaced.
    pub map_id: u32,
    /// Per possible CPU, for a per-CPU map; empty for a shared one.
    pub cpus: Vec<CpuCounters>,
    /// The sums.
    pub total: Counters,
    /// When it was read.
    pub taken: Instant,
}

/// Turns a lookup's raw bytes into a snapshot. `raw` holds one value per
/// possible CPU for a per-CPU map, each `stride` bytes apart, or one value
/// for a shared map. Only the first 16 bytes of each value are read: two
/// native-endian u64s, packets then bytes.
pub fn decode(
    layout: Layout,
    raw: &[u8],
    stride: usize,
    cpus: &Cpus,
) -> (Vec<CpuCounters>, Counters) {
    let counters_at = |offset: usize| {
        let u64_at = |o: usize| {
            let bytes: [u8; 8] = raw[o..o + 8].try_into().expect("8 bytes");
            u64::from_ne_bytes(bytes)
        };
        Counters {
            packets: u64_at(offset),
            bytes: u64_at(offset + 8),
        }
    };
    match layout {
        Layout::Shared => (Vec::new(), counters_at(0)),
        Layout::Percpu => {
            let per_cpu: Vec<CpuCounters> = cpus
                .possible
                .iter()
                .enumerate()
                .map(|(slot, &cpu)| {
                    let c = counters_at(slot * stride);
                    CpuCounters {
                        cpu,
                        packets: c.packets,
                        bytes: c.bytes,
                        online: cpus.online.contains(&cpu),
                    }
                })
                .collect();
            let total = per_cpu.iter().fold(Counters::default(), |acc, c| Counters {
                packets: acc.packets.wrapping_add(c.packets),
                bytes: acc.bytes.wrapping_add(c.bytes),
            });
            (per_cpu, total)
        }
    }
}

/// An open counters map: an `ARRAY` or `PERCPU_ARRAY` with a u32 key and a
/// value that starts with two u64 counters.
#[derive(Debug)]
pub struct CountersMap {
    map: OpenMap,
    path: PathBuf,
    layout: Layout,
}

const EXPECTED_SHAPE: &str =
    "an array or percpu_array map with 4-byte keys and values of at least 16 bytes (u64 packets, u64 bytes)";

impl CountersMap {
    /// Opens the counters map pinned at `path`, checking its shape first so
    /// that a map of another shape is refused rather than read as garbage.
    ///
    /// # Errors
    ///
    /// [`CountersError::NotPinned`], [`CountersError::WrongShape`], or a
    /// failure to read the map's info.
    pub fn open(path: &Path) -> Result<Self, CountersError> {
        // One fd for both the shape check and the reads, so that they are
        // about the same object.
        let map = OpenMap::open(&MapRef::Pinned(path.to_owned())).map_err(|e| match e {
            MapError::NotPinned { .. } => CountersError::NotPinned {
                path: path.to_owned(),
            },
            MapError::NotBpffs { .. } => CountersError::NotBpffs {
                path: path.to_owned(),
            },
            e => CountersError::Open(e),
        })?;
        Self::checked(map, path)
    }

    /// Opens the counters map with id `id`, as the program that counts into
    /// it names it.
    ///
    /// # Errors
    ///
    /// As [`CountersMap::open`].
    pub fn open_id(id: u32) -> Result<Self, CountersError> {
        let map = OpenMap::open(&MapRef::Id(id)).map_err(CountersError::Open)?;
        Self::checked(map, Path::new(&format!("map id {id}")))
    }

    /// As [`CountersMap::open_id`], or through its pin at `pin` when the id
    /// cannot be opened: opening by id takes `CAP_SYS_ADMIN`, a pin only
    /// `CAP_BPF`, so a service bounded to `CAP_BPF` still reads its counters.
    ///
    /// # Errors
    ///
    /// What opening by id returned, when the pin is not that map either.
    pub fn open_id_or_pin(id: u32, pin: &Path) -> Result<Self, CountersError> {
        Self::open_id(id).or_else(|by_id| match Self::open(pin) {
            Ok(map) if map.map_id() == id => Ok(map),
            _ => Err(by_id),
        })
    }

    fn checked(map: OpenMap, path: &Path) -> Result<Self, CountersError> {
        let info = &map.info;
        let layout = Layout::from_raw_map_type(info.map_type);
        let (key_size, value_size) = (info.key_size, info.value_size);
        let Some(layout) = layout.filter(|_| key_size == 4 && value_size >= 16) else {
            return Err(CountersError::WrongShape {
                path: path.to_owned(),
                expected: EXPECTED_SHAPE,
                found: format!(
                    "{} with {key_size}-byte keys and {value_size}-byte values",
                    MapType(info.map_type)
                ),
            });
        };
        Ok(Self {
            map,
            path: path.to_owned(),
            layout,
        })
    }

    /// The map's layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The map's id.
    pub fn map_id(&self) -> u32 {
        self.map.info.id
    }

    /// Reads the counters now.
    ///
    /// # Errors
    ///
    /// [`CountersError::Read`] if the lookup fails.
    pub fn read(&self) -> Result<Snapshot, CountersError> {
        let raw =
            self.map
                .lookup(&COUNTERS_KEY.to_ne_bytes())
                .map_err(|e| CountersError::Read {
                    path: self.path.clone(),
                    source: e.into(),
                })?;
        let taken = Instant::now();
        let (cpus, total) = decode(self.layout, &raw, self.map.stride(), &self.map.cpus);
        Ok(Snapshot {
            layout: self.layout,
            map_id: self.map_id(),
            cpus,
            total,
            taken,
        })
    }
}

/// Rates over one interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Rates {
    /// Frames in the interval.
    pub packets: u64,
    /// Bytes in the interval.
    pub bytes: u64,
    /// The measured length of the interval, in seconds.
    pub seconds: f64,
    /// Frames per second.
    pub pps: f64,
    /// Bits per second.
    pub bps: f64,
}

impl Rates {
    /// The rates from `before` to `after`, divided by the measured period.
    /// `None` when there is no rate to give: a zero period, a replaced map,
    /// or counters that went down (a reset); the caller restarts from
    /// `after`.
    pub fn between(before: &Snapshot, after: &Snapshot) -> Option<Self> {
        if before.map_id != after.map_id {
            return None;
        }
        let period = after.taken.checked_duration_since(before.taken)?;
        Self::of(before.total, after.total, period)
    }

    /// The rates of going from `before` to `after` in `period`; `None` for
    /// a zero period or counters that went down.
    pub fn of(before: Counters, after: Counters, period: Duration) -> Option<Self> {
        if period == Duration::ZERO {
            return None;
        }
        let packets = after.packets.checked_sub(before.packets)?;
        let bytes = after.bytes.checked_sub(before.bytes)?;
        let seconds = period.as_secs_f64();
        Some(Self {
            packets,
            bytes,
            seconds,
            pps: packets as f64 / seconds,
            bps: bytes as f64 * 8.0 / seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus(possible: &[u32], online: &[u32]) -> Cpus {
        Cpus {
            possible: possible.to_vec(),
            online: online.to_vec(),
        }
    }

    fn value(packets: u64, bytes: u64, size: usize) -> Vec<u8> {
        let mut v = vec![0xee; size];
        v[..8].copy_from_slice(&packets.to_ne_bytes());
        v[8..16].copy_from_slice(&bytes.to_ne_bytes());
        v
    }

    #[test]
    fn per_cpu_slots_map_to_possible_cpu_ids_and_sum() {
        // Possible CPUs 0,1,4,5 (sparse), CPU 4 offline: slot 2 is CPU 4.
        let mut raw = Vec::new();
        for (p, b) in [(1, 100), (2, 200), (3, 300), (4, 400)] {
            raw.extend(value(p, b, 16));
        }
        let (per_cpu, total) = decode(Layout::Percpu, &raw, 16, &cpus(&[0, 1, 4, 5], &[0, 1, 5]));
        let ids: Vec<u32> = per_cpu.iter().map(|c| c.cpu).collect();
        assert_eq!(ids, vec![0, 1, 4, 5]);
        assert!(!per_cpu[2].online);
        assert_eq!(per_cpu[2].packets, 3);
        assert_eq!(
            total,
            Counters {
                packets: 10,
                bytes: 1000
            }
        );
    }

    #[test]
    fn wider_values_use_an_eight_byte_aligned_stride() {
        // A 20-byte value is laid out every 24 bytes per CPU.
        let mut raw = Vec::new();
        raw.extend(value(5, 50, 24));
        raw.extend(value(7, 70, 24));
        let (_, total) = decode(Layout::Percpu, &raw, 24, &cpus(&[0, 1], &[0, 1]));
        assert_eq!(
            total,
            Counters {
                packets: 12,
                bytes: 120
            }
        );
    }

    #[test]
    fn a_shared_map_has_no_per_cpu_rows() {
        let (per_cpu, total) = decode(
            Layout::Shared,
            &value(9, 90, 16),
            16,
            &cpus(&[0, 1], &[0, 1]),
        );
        assert!(per_cpu.is_empty());
        assert_eq!(
            total,
            Counters {
                packets: 9,
                bytes: 90
            }
        );
    }

    fn snap(map_id: u32, packets: u64, bytes: u64, taken: Instant) -> Snapshot {
        Snapshot {
            layout: Layout::Percpu,
            map_id,
            cpus: Vec::new(),
            total: Counters { packets, bytes },
            taken,
        }
    }

    #[test]
    fn rates_divide_by_the_measured_period() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(500);
        let r = Rates::between(&snap(1, 100, 1000, t0), &snap(1, 150, 1500, t1)).unwrap();
        assert_eq!((r.packets, r.bytes), (50, 500));
        assert!((r.pps - 100.0).abs() < 1e-9);
        assert!((r.bps - 8000.0).abs() < 1e-9);
    }

    #[test]
    fn no_rate_across_a_reset_a_new_map_or_a_zero_period() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        assert!(Rates::between(&snap(1, 100, 1000, t0), &snap(1, 5, 50, t1)).is_none());
        assert!(Rates::between(&snap(1, 100, 1000, t0), &snap(2, 200, 2000, t1)).is_none());
        assert!(Rates::between(&snap(1, 100, 1000, t0), &snap(1, 200, 2000, t0)).is_none());
    }
}
