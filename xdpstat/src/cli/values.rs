//! How `--mode` and `--map` spell the library's [`Mode`] and [`Layout`]:
//! the command line's business, so it lives here and not on the types.

use clap::{builder::PossibleValue, ValueEnum};

use crate::model::attach::Mode;
use crate::model::layout::Layout;

impl ValueEnum for Mode {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Auto, Self::Native, Self::Generic, Self::Offload]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Self::Auto => PossibleValue::new("auto")
                .help("Native if the driver supports it, else generic (the kernel decides)"),
            Self::Native => {
                PossibleValue::new("native").help("In the driver (`XDP_FLAGS_DRV_MODE`)")
            }
            Self::Generic => PossibleValue::new("generic")
                .help("In the generic, skb-based path (`XDP_FLAGS_SKB_MODE`)"),
            Self::Offload => PossibleValue::new("offload")
                .help("On the NIC (`XDP_FLAGS_HW_MODE`); needs a NIC that offloads BPF"),
        })
    }
}

impl ValueEnum for Layout {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Percpu, Self::Shared]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Self::Percpu => PossibleValue::new("percpu").help(
                "`BPF_MAP_TYPE_PERCPU_ARRAY` with plain increments; user space sums the CPUs. No shared cache line, so it is the faster one",
            ),
            Self::Shared => PossibleValue::new("shared")
                .help("`BPF_MAP_TYPE_ARRAY` with atomic adds shared by every CPU"),
        })
    }
}
