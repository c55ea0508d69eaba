//! Interface names: validating them and resolving them to indexes.

use std::ffi::CString;

/// Resolves an interface name to its index in this network namespace, or
/// `None` if there is no such interface (or the name cannot be one).
pub fn index(name: &str) -> Option<u32> {
    if !is_valid_name(name) {
        return None;
    }
    let c_name = CString::new(name).ok()?;
    // SAFETY: `c_name` is NUL-terminated and outlives the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    (index != 0).then_some(index)
}

/// The names of this network namespace's interfaces (`if_nameindex(3)`,
/// which asks the kernel over netlink), in index order.
pub fn names() -> Vec<String> {
    // SAFETY: if_nameindex has no preconditions; it returns NULL or an
    // array ended by an entry of index 0, freed below.
    let list = unsafe { libc::if_nameindex() };
    if list.is_null() {
        return Vec::new();
    }
    let mut names = Vec::new();
    let mut at = list;
    // SAFETY: each entry up to the terminating one is valid, with a
    // NUL-terminated name.
    unsafe {
        while (*at).if_index != 0 {
            names.push(
                std::ffi::CStr::from_ptr((*at).if_name)
                    .to_string_lossy()
                    .into_owned(),
            );
            at = at.add(1);
        }
        libc::if_freenameindex(list);
    }
    names
}

/// Whether `name` could name an interface: 1 to 15 bytes, no `/`, no
/// whitespace, not `.` or `..` (the kernel's `dev_valid_name`). xdpstat
/// builds pin paths from names, so this also keeps them inside its directory.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_interfaces_are_refused() {
        assert!(is_valid_name("veth0"));
        assert!(is_valid_name("a-very-long-nam"));
        for bad in ["", ".", "..", "../../etc", "a b", "sixteen-chars-xx", "x:y"] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_interface_has_no_index() {
        assert_eq!(index("xdpstat-nope0"), None);
        assert_eq!(index("../x"), None);
        assert!(index("lo").is_some());
    }
}
