//! Creating an object's maps as aya creates them, without aya's loader:
//! `EbpfLoader::new` parses the kernel's whole BTF whatever the object,
//! which was most of what `check` cost in memory (17 of 25 MB on
//! Katran's balancer).
//!
//! The rules are aya 0.14's (`EbpfLoader::load`, `MapData::create`), so
//! that a program is verified against the same maps as before: sizes
//! the loader sets (perf event arrays, ring buffers), the value sizes aya
//! sets for CPU and device maps, BTF key and value types except for the
//! map types that take none, inner maps for maps of maps, global-data
//! contents, `.rodata` frozen.

use std::{
    os::fd::{AsFd as _, OwnedFd},
    path::{Path, PathBuf},
};

use aya_obj::{generated::bpf_map_type::*, maps::PinningType, EbpfSectionKind};

use super::{check_pin, unpin_all, PinPlace, WorkbenchError};
use crate::kernel::sys::{self, maps::MapCreate};
use xdpstat_analysis::obj::BpfObject;

/// The maps of one load, by name, and the pins by name it made.
#[derive(Debug, Default)]
pub struct Maps {
    /// Each map's name and descriptor.
    pub fds: Vec<(String, OwnedFd)>,
    /// Pins this load made ([`PinPlace::Shared`]); a reused pin is not here.
    pub pinned: Vec<PathBuf>,
}

impl Maps {
    /// Removes the pins this load made: it goes no further.
    pub fn unpin(&self) {
        unpin_all(&self.pinned);
    }
}

/// Map types whose key and value the kernel refuses to have typed by BTF
/// (libbpf leaves them untyped too).
const UNTYPED: [u32; 14] = [
    BPF_MAP_TYPE_PERF_EVENT_ARRAY as u32,
    BPF_MAP_TYPE_CGROUP_ARRAY as u32,
    BPF_MAP_TYPE_STACK_TRACE as u32,
    BPF_MAP_TYPE_ARRAY_OF_MAPS as u32,
    BPF_MAP_TYPE_HASH_OF_MAPS as u32,
    BPF_MAP_TYPE_DEVMAP as u32,
    BPF_MAP_TYPE_DEVMAP_HASH as u32,
    BPF_MAP_TYPE_CPUMAP as u32,
    BPF_MAP_TYPE_XSKMAP as u32,
    BPF_MAP_TYPE_SOCKMAP as u32,
    BPF_MAP_TYPE_SOCKHASH as u32,
    BPF_MAP_TYPE_QUEUE as u32,
    BPF_MAP_TYPE_STACK as u32,
    BPF_MAP_TYPE_RINGBUF as u32,
];

/// A ring buffer's size, rounded up to a power-of-two number of pages, as
/// libbpf and aya round it (0 stays 0, for the kernel to refuse).
fn ring_size(bytes: u32) -> u32 {
    // SAFETY: sysconf has no preconditions.
    let page = u32::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    if bytes == 0 {
        return 0;
    }
    page * bytes.div_ceil(page).next_power_of_two()
}

/// The map as `BPF_MAP_CREATE` gets it: sizes the loader sets, set.
fn sized(map: &aya_obj::Map, max_entries: Option<u32>) -> aya_obj::Map {
    let features = aya::features();
    let mut map = map.clone();
    let nr_cpus = aya::util::nr_cpus().map_or(1, |n| n as u32);
    let ty = map.map_type();
    if let Some(n) = max_entries {
        map.set_max_entries(n);
    }
    if ty == BPF_MAP_TYPE_PERF_EVENT_ARRAY as u32
        && (map.max_entries() == 0 || map.max_entries() > nr_cpus)
    {
        map.set_max_entries(nr_cpus);
    }
    if ty == BPF_MAP_TYPE_RINGBUF as u32 {
        map.set_max_entries(ring_size(map.max_entries()));
        map.set_value_size(0);
    }
    if ty == BPF_MAP_TYPE_CPUMAP as u32 {
        map.set_value_size(if features.cpumap_prog_id() { 8 } else { 4 });
    }
    if ty == BPF_MAP_TYPE_DEVMAP as u32 || ty == BPF_MAP_TYPE_DEVMAP_HASH as u32 {
        map.set_value_size(if features.devmap_prog_id() { 8 } else { 4 });
    }
    map
}

fn is_map_of_maps(ty: u32) -> bool {
    ty == BPF_MAP_TYPE_ARRAY_OF_MAPS as u32 || ty == BPF_MAP_TYPE_HASH_OF_MAPS as u32
}

/// Creates one map, its inner map first for a map of maps.
fn create(
    name: &str,
    map: &aya_obj::Map,
    btf: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<OwnedFd, String> {
    let ty = map.map_type();
    let inner = if is_map_of_maps(ty) {
        let inner = map
            .inner()
            .ok_or_else(|| format!("failed to create map `{name}`: it is a map of maps, and the object does not define its inner map (`__array(values, …)`)"))?;
        Some(create(&format!("{name}.inner"), &sized(&inner, None), btf)?)
    } else {
        None
    };
    let typed = match (map, btf) {
        (aya_obj::Map::Btf(m), Some(fd)) if !UNTYPED.contains(&ty) => {
            let key = if ty == BPF_MAP_TYPE_BLOOM_FILTER as u32 {
                0
            } else {
                m.def.btf_key_type_id
            };
            Some((fd, key, m.def.btf_value_type_id))
        }
        _ => None,
    };
    sys::maps::map_create(&MapCreate {
        map_type: ty,
        key_size: map.key_size(),
        value_size: map.value_size(),
        max_entries: map.max_entries(),
        map_flags: map.map_flags(),
        inner_map: inner.as_ref().map(|fd| fd.as_fd()),
        name,
        btf: typed,
        map_extra: map.map_extra(),
    })
    .map_err(|e| format!("failed to create map `{name}`: {}", e.source))
}

/// Fills a global-data section's map and freezes `.rodata`.
fn finalize(name: &str, map: &aya_obj::Map, fd: &OwnedFd) -> Result<(), String> {
    if !map.data().is_empty() {
        sys::maps::map_set_first(fd.as_fd(), map.data())
            .map_err(|e| format!("filling map {name} failed: {e}"))?;
    }
    if map.section_kind() == EbpfSectionKind::Rodata {
        sys::maps::map_freeze(fd.as_fd())
            .map_err(|e| format!("freezing map {name} failed: {e}"))?;
    }
    Ok(())
}

/// Creates `maps` for one load. Maps pinned by name are created unpinned
/// for [`PinPlace::Private`]; for [`PinPlace::Shared`] an existing pin of
/// the same shape is reused and a new map pinned in bpffs' root, as libbpf
/// does. On failure nothing this made stays pinned.
///
/// # Errors
///
/// [`WorkbenchError::PinMismatch`] for a pin of another shape,
/// [`WorkbenchError::Prepare`] for the kernel's refusal.
pub fn create_all(
    obj: &BpfObject,
    maps: &[(String, aya_obj::Map)],
    btf: Option<std::os::fd::BorrowedFd<'_>>,
    place: PinPlace,
    max_entries: &[(String, u32)],
) -> Result<Maps, WorkbenchError> {
    let global_data = aya::features().bpf_global_data();
    let mut made = Maps::default();
    let fail = |made: &Maps, reason: String| {
        made.unpin();
        WorkbenchError::Prepare {
            path: obj.path().display().to_string(),
            reason,
        }
    };
    // Maps of maps last, as aya creates them, and otherwise by name, so
    // that the first map the kernel refuses is always the same one.
    let mut ordered: Vec<&(String, aya_obj::Map)> = maps.iter().collect();
    ordered.sort_by_key(|(name, map)| (is_map_of_maps(map.map_type()), name.as_str()));
    for (name, map) in ordered {
        if !global_data
            && matches!(
                map.section_kind(),
                EbpfSectionKind::Bss | EbpfSectionKind::Data | EbpfSectionKind::Rodata
            )
        {
            continue;
        }
        let size = max_entries.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
        let map = sized(map, size);
        let pin = (place == PinPlace::Shared && map.pinning() == PinningType::ByName)
            .then(|| Path::new(crate::kernel::bpffs::MOUNT_POINT).join(name));
        if let Some(path) = pin.as_ref().filter(|p| p.exists()) {
            if let Err(e) = check_pin(obj, name, &map, path) {
                made.unpin();
                return Err(e);
            }
            let fd = sys::obj_get(path)
                .map_err(|e| fail(&made, format!("opening {}: {e}", path.display())))?;
            made.fds.push((name.clone(), fd));
            continue;
        }
        let fd = create(name, &map, btf).map_err(|e| fail(&made, e))?;
        finalize(name, &map, &fd).map_err(|e| fail(&made, e))?;
        if let Some(path) = pin {
            sys::obj_pin(fd.as_fd(), &path).map_err(|e| {
                fail(
                    &made,
                    format!("pinning map {name} at {}: {e}", path.display()),
                )
            })?;
            made.pinned.push(path);
        }
        made.fds.push((name.clone(), fd));
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_buffers_are_rounded_to_a_power_of_two_pages() {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u32;
        assert_eq!(ring_size(0), 0);
        assert_eq!(ring_size(1), page);
        assert_eq!(ring_size(page), page);
        assert_eq!(ring_size(page + 1), 2 * page);
        assert_eq!(ring_size(3 * page), 4 * page);
    }
}
