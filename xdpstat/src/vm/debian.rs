//! Debian's LTS kernel lines, fetched from bookworm-security over HTTP:
//! the release file names the package index's SHA-256, the index names
//! the package's. Only the image and its modules are unpacked, into
//! `<cache>/<package>_<version>/`; nothing is installed.
//!
//! The release file's OpenPGP signature is not checked (that needs an
//! OpenPGP implementation and Debian's keyring). Where that matters, fetch
//! the `.deb` with apt, which checks it, and give its path to `--kernel`.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    time::Duration,
};

use sha2::{Digest, Sha256};

use super::{image, VmError};

/// A Debian kernel line: packages `<prefix><N><suffix>`.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    /// What `--kernel` calls it.
    pub name: &'static str,
    /// The package names' start, before the number.
    pub prefix: &'static str,
    /// Their end, after it.
    pub suffix: &'static str,
}

/// The lines xdpstat fetches: bookworm-security's two.
pub const LINES: [Line; 2] = [
    Line {
        name: "6.1",
        prefix: "linux-image-6.1.0-",
        suffix: "-amd64",
    },
    Line {
        name: "6.12",
        prefix: "linux-image-6.12.",
        suffix: "+deb12-amd64",
    },
];

/// The mirror: `$XDPSTAT_DEBIAN_MIRROR`, else deb.debian.org's
/// debian-security.
fn mirror() -> String {
    std::env::var("XDPSTAT_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian-security".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

const SUITE: &str = "bookworm-security";
const INDEX: &str = "main/binary-amd64/Packages.xz";

/// The line a `--kernel` value names, if it names one.
pub fn line(spec: &str) -> Option<&'static Line> {
    LINES.iter().find(|l| l.name == spec)
}

/// One package of the index.
#[derive(Debug)]
struct Package {
    name: String,
    number: u32,
    version: String,
    filename: String,
    sha256: String,
}

/// The unpacked tree of the newest image of `line`, fetched unless the
/// cache has it. Without the network, the newest cached image of the line
/// serves, and `progress` says so.
///
/// # Errors
///
/// [`VmError::Fetch`] when neither the mirror nor the cache has it.
pub fn fetch(
    line: &Line,
    cache: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, VmError> {
    let newest = match newest(line) {
        Ok(p) => p,
        Err(e) => {
            if let Some(dir) = cached(line, cache) {
                progress(&format!(
                    "{e}; using the cached {}",
                    dir.file_name().unwrap_or_default().to_string_lossy()
                ));
                return Ok(dir);
            }
            return Err(e);
        }
    };
    let dir = cache.join(format!(
        "{}_{}",
        newest.name,
        newest.version.replace(':', "%")
    ));
    // Another xdpstat may be fetching it right now: wait for it.
    let _lock = image::CacheLock::take(&dir)?;
    if dir.join(".unpacked").exists() {
        return Ok(dir);
    }
    let url = format!("{}/{}", mirror(), newest.filename);
    progress(&format!(
        "downloading {} {} (about 100 MB, once) into {}",
        newest.name,
        newest.version,
        dir.display()
    ));
    let fail = |reason: String| VmError::Fetch {
        line: line.name.to_owned(),
        url: url.clone(),
        reason,
    };
    let deb = get(&url, 1 << 30).map_err(fail)?;
    let sum = hex(&Sha256::digest(&deb));
    if sum != newest.sha256 {
        return Err(fail(format!(
            "its SHA-256 is {sum}, the index says {}",
            newest.sha256
        )));
    }
    fs::create_dir_all(cache).map_err(VmError::io(format!("creating {}", cache.display())))?;
    image::unpack_deb(&deb, &dir, &mut |member| {
        progress(&format!("unpacking {member} of {}", newest.name));
    })
    .map_err(fail)?;
    Ok(dir)
}

/// The newest package of `line` in the mirror's index.
fn newest(line: &Line) -> Result<Package, VmError> {
    let release_url = format!("{}/dists/{SUITE}/InRelease", mirror());
    let fail = |url: &str, reason: String| VmError::Fetch {
        line: line.name.to_owned(),
        url: url.to_owned(),
        reason,
    };
    let release = get(&release_url, 1 << 20).map_err(|r| fail(&release_url, r))?;
    let release = String::from_utf8_lossy(&release);
    let want = release_sha256(&release, INDEX)
        .ok_or_else(|| fail(&release_url, format!("it names no SHA-256 for {INDEX}")))?;
    let index_url = format!("{}/dists/{SUITE}/{INDEX}", mirror());
    let packed = get(&index_url, 64 << 20).map_err(|r| fail(&index_url, r))?;
    let sum = hex(&Sha256::digest(&packed));
    if sum != want {
        return Err(fail(
            &index_url,
            format!("its SHA-256 is {sum}, the release file says {want}"),
        ));
    }
    let mut text = String::new();
    liblzma::read::XzDecoder::new(packed.as_slice())
        .read_to_string(&mut text)
        .map_err(|e| fail(&index_url, format!("cannot decompress it: {e}")))?;
    packages(&text, line)
        .into_iter()
        .max_by(|a, b| (a.number, &a.version).cmp(&(b.number, &b.version)))
        .ok_or_else(|| {
            fail(
                &index_url,
                format!("it has no {}N{} package", line.prefix, line.suffix),
            )
        })
}

/// `<hash>` of ` <hash> <size> <path>` in the release file's SHA256 list.
fn release_sha256(release: &str, path: &str) -> Option<String> {
    let mut in_sha256 = false;
    for l in release.lines() {
        if !l.starts_with(' ') {
            in_sha256 = l.trim_end() == "SHA256:";
            continue;
        }
        if in_sha256 {
            let mut words = l.split_whitespace();
            let (hash, _size, name) = (words.next()?, words.next()?, words.next()?);
            if name == path {
                return Some(hash.to_owned());
            }
        }
    }
    None
}

/// The index's packages of `line`.
fn packages(index: &str, line: &Line) -> Vec<Package> {
    index
        .split("\n\n")
        .filter_map(|stanza| {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
                    .map(str::to_owned)
            };
            let name = field("Package")?;
            let number = name
                .strip_prefix(line.prefix)?
                .strip_suffix(line.suffix)?
                .parse()
                .ok()?;
            Some(Package {
                number,
                version: field("Version")?,
                filename: field("Filename")?,
                sha256: field("SHA256")?,
                name,
            })
        })
        .collect()
}

/// The newest image of `line` already in the cache.
fn cached(line: &Line, cache: &Path) -> Option<PathBuf> {
    fs::read_dir(cache)
        .ok()?
        .flatten()
        .filter(|e| e.path().join(".unpacked").exists())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (package, _) = name.split_once('_')?;
            let n: u32 = package
                .strip_prefix(line.prefix)?
                .strip_suffix(line.suffix)?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .max()
        .map(|(_, p)| p)
}

fn get(url: &str, limit: u64) -> Result<Vec<u8>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_global(Some(Duration::from_secs(900)))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_file_and_index_are_read() {
        let release = "Origin: Debian\nMD5Sum:\n 00 1 main/binary-amd64/Packages.xz\nSHA256:\n aa 10 main/binary-amd64/Packages\n bb 20 main/binary-amd64/Packages.xz\n";
        assert_eq!(release_sha256(release, INDEX).as_deref(), Some("bb"));
        let index = "Package: linux-image-6.1.0-9-amd64\nVersion: 6.1.1-1\nFilename: pool/a.deb\nSHA256: 11\n\nPackage: linux-image-6.1.0-57-amd64\nVersion: 6.1.192-3\nFilename: pool/b.deb\nSHA256: 22\n\nPackage: linux-image-6.1.0-57-cloud-amd64\nVersion: 6.1.192-3\nFilename: pool/c.deb\nSHA256: 33\n";
        let found = packages(index, &LINES[0]);
        assert_eq!(found.len(), 2);
        let newest = found.into_iter().max_by_key(|p| p.number).unwrap();
        assert_eq!(newest.filename, "pool/b.deb");
        assert!(packages(index, &LINES[1]).is_empty());
    }
}
