//! `cargo xtask build-fixtures`: the verifier workbench's corpus of broken
//! XDP programs. `fixtures/expected.json` says what the kernel does with
//! each one.
//!
//! - `fixtures/c/*.c` and `fixtures/stats_kern/*.c` → clang →
//!   `fixtures/build/{c,stats_kern}/<name>.o`, skipped while the object is
//!   newer than its source and every header beside it.
//! - `fixtures/rust` (aya-ebpf, one `[[bin]]` per `src/<name>.rs`) → the
//!   same build as `build-ebpf` → `fixtures/build/rust/<name>.o`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::SystemTime,
};

use anyhow::{Context, Result};

use super::{cargo_build_bpf, root, run};

/// The C fixture directories, each built into `fixtures/build/<dir>/`.
const C_DIRS: [&str; 2] = ["c", "stats_kern"];

/// Builds every fixture object into `fixtures/build/`.
pub fn build() -> Result<()> {
    let fixtures = root().join("fixtures");
    let out = fixtures.join("build");
    for dir in C_DIRS {
        build_c(&fixtures.join(dir), &out.join(dir))?;
    }
    build_rust(&fixtures.join("rust"), &out.join("rust"))?;
    build_real(&fixtures.join("real"), &out.join("real"))
}

/// The real-world corpus (`fixtures/real`, issue 12): its own build
/// script, kept with the sources and their provenance, builds every object
/// with the flags its project uses. Rebuilt only when a source is newer.
fn build_real(src_dir: &Path, out_dir: &Path) -> Result<()> {
    let manifest = src_dir.join("manifest.json");
    let stamp = out_dir.join(".built");
    let newest_source = newest_mtime(&files_under(src_dir)?)?;
    let built = fs::metadata(&stamp).and_then(|m| m.modified()).ok();
    if built.is_some_and(|b| newest_source <= b) {
        println!("xtask: {}: up to date", out_dir.display());
        return Ok(());
    }
    let out = Command::new("sh")
        .arg(src_dir.join("build.sh"))
        .arg(out_dir)
        .output()
        .with_context(|| format!("running {}", src_dir.join("build.sh").display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with("FAILED")).collect();
    anyhow::ensure!(
        out.status.success() && failed.is_empty(),
        "building the real-world corpus ({}) failed:\n{}{}",
        manifest.display(),
        failed.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "xtask: {}: {}",
        out_dir.display(),
        text.lines().last().unwrap_or_default()
    );
    fs::write(&stamp, "").with_context(|| format!("writing {}", stamp.display()))
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                found.push(path);
            }
        }
    }
    Ok(found)
}

fn build_c(src_dir: &Path, out_dir: &Path) -> Result<()> {
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let headers = newest_mtime(&files_with_ext(src_dir, "h")?)?;
    let (mut built, mut fresh) = (0, 0);
    for source in files_with_ext(src_dir, "c")? {
        let stem = source
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("odd file name {}", source.display()))?;
        let object = out_dir.join(format!("{stem}.o"));
        let inputs = mtime(&source)
            .with_context(|| format!("reading {}", source.display()))?
            .max(headers);
        if mtime(&object).is_ok_and(|built_at| built_at > inputs) {
            fresh += 1;
            continue;
        }
        // Compile from the checkout's root with a relative path and
        // compilation directory, so line info names
        // `./fixtures/c/<name>.c` wherever the checkout is, and clang can
        // still read the file to put each line's text into BTF (which
        // `-fdebug-prefix-map` would lose).
        let relative = source.strip_prefix(root()).unwrap_or(&source);
        run(Command::new("clang")
            .current_dir(root())
            .args(["-O2", "-g", "-target", "bpf"])
            .args([
                "-I/usr/include/x86_64-linux-gnu",
                "-fdebug-compilation-dir=.",
            ])
            .arg("-c")
            .arg(relative)
            .arg("-o")
            .arg(&object))
        .with_context(|| {
            format!(
                "compiling {}; `cargo xtask deps` installs clang and libbpf-dev",
                source.display()
            )
        })?;
        built += 1;
    }
    println!(
        "xtask: {}: {built} built, {fresh} up to date",
        out_dir.display()
    );
    Ok(())
}

/// Builds the Rust fixture crate and copies each program's object; every
/// `src/<name>.rs` is the `[[bin]]` `<name>`.
fn build_rust(crate_dir: &Path, out_dir: &Path) -> Result<()> {
    let release = cargo_build_bpf(crate_dir).context(
        "building the Rust fixtures failed; `cargo xtask deps` installs the toolchain (Debian rustc-web, bpf-linker)",
    )?;
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let sources = files_with_ext(&crate_dir.join("src"), "rs")?;
    for source in &sources {
        let name = source
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("odd file name {}", source.display()))?;
        let (from, to) = (release.join(name), out_dir.join(format!("{name}.o")));
        fs::copy(&from, &to).with_context(|| {
            format!(
                "copying {} (is {} a [[bin]] in fixtures/rust/Cargo.toml?)",
                from.display(),
                source.display()
            )
        })?;
    }
    println!(
        "xtask: {}: {} objects copied",
        out_dir.display(),
        sources.len()
    );
    Ok(())
}

/// The files in `dir` whose name ends in `.ext`, sorted.
fn files_with_ext(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == ext) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn mtime(path: &Path) -> std::io::Result<SystemTime> {
    fs::metadata(path)?.modified()
}

/// The latest modification time among `paths` (the epoch for none).
fn newest_mtime(paths: &[PathBuf]) -> Result<SystemTime> {
    paths
        .iter()
        .try_fold(SystemTime::UNIX_EPOCH, |newest, path| {
            let t = mtime(path).with_context(|| format!("reading {}", path.display()))?;
            Ok(newest.max(t))
        })
}
