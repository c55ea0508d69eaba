//! BTF of maps: parsing and value formatting.

pub mod btf;
pub use crate::model::inspect::{dump, maps, progs, status};
