//! The guest's initramfs: busybox-static, the modules the guest needs
//! (9p to reach the host's root, veth for tests), decompressed and in
//! dependency order, and a first-stage `/init`. Debian's packages carry no
//! `modules.dep` (depmod writes it on install), so dependencies come from
//! each module's `.modinfo`.

use std::{
    collections::{HashMap, HashSet},
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use object::{Object, ObjectSection};

use super::{image::Kernel, VmError};

/// Where busybox-static installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Writes the initramfs for `kernel` to `dest`: `/bin/busybox`, the given
/// modules with their dependencies as `/modules/NN-<name>.ko`, and `init`
/// as `/init`. Returns the module names in load order.
///
/// # Errors
///
/// [`VmError::NoBusybox`] without busybox, [`VmError::BadKernel`] when a
/// module is missing or unreadable, and [`VmError::Io`].
pub fn build(
    kernel: &Kernel,
    wanted: &[&str],
    init: &str,
    dest: &Path,
) -> Result<Vec<String>, VmError> {
    let modules = Modules::index(kernel)?;
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for name in wanted {
        modules.closure(&normalize(name), &mut seen, &mut order, kernel)?;
    }
    let mut cpio = Cpio::default();
    for dir in ["bin", "dev", "modules", "newroot", "proc", "sys"] {
        cpio.dir(dir);
    }
    // The kernel opens /dev/console for init before anything is mounted.
    cpio.char_dev("dev/console", 5, 1);
    cpio.char_dev("dev/null", 1, 3);
    let busybox = fs::read(BUSYBOX).map_err(|_| VmError::NoBusybox { path: BUSYBOX })?;
    cpio.file("bin/busybox", 0o755, &busybox);
    cpio.symlink("bin/sh", "busybox");
    let mut names = Vec::new();
    for (i, (name, bytes)) in order.iter().enumerate() {
        cpio.file(&format!("modules/{i:02}-{name}.ko"), 0o644, bytes);
        names.push(name.clone());
    }
    cpio.file("init", 0o755, init.as_bytes());
    fs::write(dest, cpio.finish()).map_err(VmError::io(format!("writing {}", dest.display())))?;
    Ok(names)
}

/// Module names use `_` and `-` interchangeably.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module files of a kernel, by name, and its built-in modules.
struct Modules {
    files: HashMap<String, PathBuf>,
    builtin: HashSet<String>,
}

impl Modules {
    fn index(kernel: &Kernel) -> Result<Self, VmError> {
        let mut files = HashMap::new();
        let mut stack = vec![kernel.modules.clone()];
        while let Some(dir) = stack.pop() {
            let entries =
                fs::read_dir(&dir).map_err(VmError::io(format!("reading {}", dir.display())))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Some(name) = module_name(&path) {
                    files.insert(name, path);
                }
            }
        }
        let builtin = fs::read_to_string(kernel.modules.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| module_name(Path::new(l)))
            .collect();
        Ok(Self { files, builtin })
    }

    /// Appends `name` to `order` after its dependencies, once.
    fn closure(
        &self,
        name: &str,
        seen: &mut HashSet<String>,
        order: &mut Vec<(String, Vec<u8>)>,
        kernel: &Kernel,
    ) -> Result<(), VmError> {
        if !seen.insert(name.to_owned()) || self.builtin.contains(name) {
            return Ok(());
        }
        let bad = |reason: String| VmError::BadKernel {
            spec: kernel.spec.clone(),
            reason,
        };
        let Some(path) = self.files.get(name) else {
            return Err(bad(format!(
                "module {name} is neither built in nor in {}",
                kernel.modules.display()
            )));
        };
        let bytes = decompress(path).map_err(&bad)?;
        for dep in depends(&bytes).map_err(|e| bad(format!("{}: {e}", path.display())))? {
            self.closure(&normalize(&dep), seen, order, kernel)?;
        }
        order.push((name.to_owned(), bytes));
        Ok(())
    }
}

/// `veth` for `.../veth.ko`, `.ko.xz`, `.ko.zst` or `.ko.gz`.
fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    Some(normalize(stem))
}

fn decompress(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("xz") => {
            let mut out = Vec::new();
            liblzma::read::XzDecoder::new(bytes.as_slice())
                .read_to_end(&mut out)
                .map_err(|e| format!("decompressing {}: {e}", path.display()))?;
            Ok(out)
        }
        Some("ko") => Ok(bytes),
        _ => Err(format!(
            "{} is compressed in a way xdpstat does not read (it reads .ko and .ko.xz)",
            path.display()
        )),
    }
}

/// The `depends=` entry of a module's `.modinfo` section.
fn depends(module: &[u8]) -> Result<Vec<String>, object::Error> {
    let elf = object::File::parse(module)?;
    let Some(modinfo) = elf.section_by_name(".modinfo") else {
        return Ok(Vec::new());
    };
    let data = modinfo.data()?;
    Ok(data
        .split(|&b| b == 0)
        .filter_map(|entry| entry.strip_prefix(b"depends="))
        .flat_map(|deps| {
            String::from_utf8_lossy(deps)
                .split(',')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|d| !d.is_empty())
        .collect())
}

/// A cpio archive in the "newc" format the kernel unpacks.
#[derive(Default)]
struct Cpio {
    buf: Vec<u8>,
    inode: u32,
}

impl Cpio {
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, 0, 0, &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | perm, 0, 0, data);
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120_777, 0, 0, target.as_bytes());
    }

    fn char_dev(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020_600, major, minor, &[]);
    }

    fn entry(&mut self, name: &str, mode: u32, rdev_major: u32, rdev_minor: u32, data: &[u8]) {
        self.inode += 1;
        let fields = [
            self.inode,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            u32::try_from(data.len()).expect("initramfs members are small"),
            0, // devmajor
            0, // devminor
            rdev_major,
            rdev_minor,
            u32::try_from(name.len() + 1).expect("short names"),
            0, // check
        ];
        self.buf.extend_from_slice(b"070701");
        for field in fields {
            self.buf
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 0, 0, &[]);
        self.buf
    }
}
