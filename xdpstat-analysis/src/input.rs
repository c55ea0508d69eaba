//! Files named on the command line (objects, logs) and the source files
//! line info names: only regular files, only up to a size, so that
//! `/dev/zero`, a FIFO or a huge sparse file is refused at once instead of
//! read forever.
//!
//! The type is checked on the path before it is opened (opening some
//! devices has effects of its own), and again on the open file, which is
//! opened with `O_NONBLOCK` so that a path swapped for a FIFO in between
//! cannot block the open.

use std::{
    fs::{self, File, Metadata, OpenOptions},
    io::{self, Read},
    os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use thiserror::Error;

/// Linux's `O_NONBLOCK`, whose number depends on the architecture (this
/// crate does without libc; xdpstat's tests check it against libc's).
pub const O_NONBLOCK: i32 = if cfg!(any(target_arch = "mips", target_arch = "mips64")) {
    0o200
} else if cfg!(any(target_arch = "sparc", target_arch = "sparc64")) {
    0x4000
} else {
    0o4000
};

/// The largest object file xdpstat reads. BPF objects are kilobytes to a
/// few megabytes (with DWARF); a BPF program has at most a million
/// instructions, 8 MiB.
pub const MAX_OBJECT_BYTES: u64 = 256 << 20;
/// The largest source file a listing shows lines of.
pub const MAX_SOURCE_BYTES: u64 = 64 << 20;

/// A file that cannot be an input.
#[derive(Debug, Error)]
pub enum InputError {
    /// It cannot be opened or examined.
    #[error("cannot read {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A device, FIFO, socket or directory.
    #[error("{} is {kind}, not a regular file", path.display())]
    NotAFile {
        /// The file.
        path: PathBuf,
        /// What it is: `a character device`, `a FIFO`, …
        kind: &'static str,
    },
    /// Bigger than the limit for its kind.
    #[error("{} is {}, more than the {} limit", path.display(), size_text(*size), size_text(*limit))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

impl InputError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Open { path, .. } | Self::NotAFile { path, .. } | Self::TooLarge { path, .. } => {
                path
            }
        }
    }
}

/// `2.0 GiB`, `256 MiB`, `12 bytes`.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit {
            return if bytes.is_multiple_of(unit) {
                format!("{} {name}", bytes / unit)
            } else {
                format!("{:.1} {name}", bytes as f64 / unit as f64)
            };
        }
    }
    format!("{bytes} bytes")
}

fn kind(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    Some(if t.is_file() {
        return None;
    } else if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    })
}

/// Opens a regular file of at most `limit` bytes; gives the file and its
/// size.
///
/// # Errors
///
/// [`InputError`] for a missing or unreadable file, anything but a regular
/// file, or one over `limit`.
pub fn open(path: &Path, limit: u64) -> Result<(File, u64), InputError> {
    let open_error = |source| InputError::Open {
        path: path.to_owned(),
        source,
    };
    let checked = |meta: &Metadata| match kind(meta) {
        Some(kind) => Err(InputError::NotAFile {
            path: path.to_owned(),
            kind,
        }),
        None if meta.len() > limit => Err(InputError::TooLarge {
            path: path.to_owned(),
            size: meta.len(),
            limit,
        }),
        None => Ok(meta.len()),
    };
    checked(&fs::metadata(path).map_err(open_error)?)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(open_error)?;
    let size = checked(&file.metadata().map_err(open_error)?)?;
    Ok((file, size))
}

/// Reads up to `n` bytes from the start of `file` (fewer only at its end).
///
/// # Errors
///
/// Read errors.
pub fn read_prefix(file: &mut File, n: usize) -> io::Result<Vec<u8>> {
    let mut prefix = Vec::with_capacity(n);
    file.by_ref().take(n as u64).read_to_end(&mut prefix)?;
    Ok(prefix)
}

/// Reads the rest of `file` after `prefix` into one buffer, refusing more
/// than `limit` bytes in all (the file may have grown since it was opened).
///
/// # Errors
///
/// [`InputError::Open`] for read errors, [`InputError::TooLarge`] past
/// `limit`.
pub fn read_rest(
    path: &Path,
    mut file: File,
    size: u64,
    mut prefix: Vec<u8>,
    limit: u64,
) -> Result<Vec<u8>, InputError> {
    prefix.reserve(
        usize::try_from(size)
            .unwrap_or(0)
            .saturating_sub(prefix.len()),
    );
    let room = (limit + 1).saturating_sub(prefix.len() as u64);
    file.by_ref()
        .take(room)
        .read_to_end(&mut prefix)
        .map_err(|source| InputError::Open {
            path: path.to_owned(),
            source,
        })?;
    if prefix.len() as u64 > limit {
        return Err(InputError::TooLarge {
            path: path.to_owned(),
            size: prefix.len() as u64,
            limit,
        });
    }
    Ok(prefix)
}

/// Reads a whole regular file of at most `limit` bytes.
///
/// # Errors
///
/// As [`open`] and [`read_rest`].
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let (file, size) = open(path, limit)?;
    read_rest(path, file, size, Vec::new(), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_directories_are_refused_by_kind() {
        let dir = std::env::temp_dir().join(format!("xdpstat-input-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo {}", fifo.display());
        for (path, kind) in [
            (Path::new("/dev/zero"), "a character device"),
            (fifo.as_path(), "a FIFO"),
            (dir.as_path(), "a directory"),
        ] {
            match open(path, 1 << 20) {
                Err(InputError::NotAFile { kind: k, .. }) => assert_eq!(k, kind),
                other => panic!("{}: {other:?}", path.display()),
            }
        }
        let big = dir.join("big");
        fs::write(&big, [7u8; 100]).unwrap();
        assert!(matches!(
            read(&big, 99),
            Err(InputError::TooLarge { size: 100, .. })
        ));
        assert_eq!(read(&big, 100).unwrap().len(), 100);
        let (mut file, _) = open(&big, 100).unwrap();
        assert_eq!(read_prefix(&mut file, 4).unwrap(), [7; 4]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sizes_read_as_units() {
        assert_eq!(size_text(256 << 20), "256 MiB");
        assert_eq!(size_text(2_000_000_000), "1.9 GiB");
        assert_eq!(size_text(12), "12 bytes");
    }
}
