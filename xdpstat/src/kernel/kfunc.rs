//! Finding kernel functions (kfuncs) in the running kernel's BTF, as
//! libbpf does for an object's `extern … __ksym` functions: vmlinux's
//! BTF first, then each loaded module's, whose BTF the program then names
//! through `fd_array`.

use std::{
    collections::HashMap,
    os::fd::{AsFd as _, AsRawFd as _, OwnedFd},
    path::Path,
};

use xdpstat_analysis::btf::{Btf, VMLINUX_BTF};

use super::sys;

/// The kfuncs found: each one's BTF id and `fd_array` index, and the
/// module BTF descriptors the indices name, held open for the load.
#[derive(Debug, Default)]
pub struct Kfuncs {
    /// By name: the BTF id, and the index in [`Kfuncs::fd_array`] of the
    /// module BTF it is in (0 for vmlinux).
    pub ids: HashMap<String, (u32, i16)>,
    /// `BPF_PROG_LOAD`'s `fd_array`: empty, or slot 0 unused and a module
    /// BTF descriptor in each further slot.
    pub fd_array: Vec<i32>,
    modules: Vec<OwnedFd>,
}

/// Looks `names` up in the running kernel's BTF. A name the kernel lacks
/// is left out; the caller says so for the program that calls it.
pub fn resolve(names: &[&str]) -> Kfuncs {
    let mut found = Kfuncs::default();
    if names.is_empty() {
        return found;
    }
    let Ok(vmlinux) = Btf::from_file(Path::new(VMLINUX_BTF)) else {
        return found;
    };
    let mut missing = Vec::new();
    for name in names {
        match vmlinux.func_id(name, None) {
            Some(id) => {
                found.ids.insert((*name).to_owned(), (id, 0));
            }
            None => missing.push(*name),
        }
    }
    if missing.is_empty() {
        return found;
    }
    for id in sys::btf_ids().unwrap_or_default() {
        let Ok(fd) = sys::maps::btf_fd_by_id(id) else {
            continue;
        };
        let Ok((module, true)) = sys::maps::btf_name(fd.as_fd()) else {
            continue;
        };
        if module == "vmlinux" {
            continue;
        }
        let Some(btf) = sys::maps::btf_data(fd.as_fd())
            .ok()
            .and_then(|data| Btf::parse(data).ok())
        else {
            continue;
        };
        let mut used = false;
        missing.retain(|name| match btf.func_id(name, Some(&vmlinux)) {
            Some(id) => {
                let index = i16::try_from(found.modules.len() + 1).unwrap_or(i16::MAX);
                found.ids.insert((*name).to_owned(), (id, index));
                used = true;
                false
            }
            None => true,
        });
        if used {
            found.modules.push(fd);
        }
        if missing.is_empty() {
            break;
        }
    }
    if !found.modules.is_empty() {
        found.fd_array = std::iter::once(0)
            .chain(found.modules.iter().map(|fd| fd.as_raw_fd()))
            .collect();
    }
    found
}
