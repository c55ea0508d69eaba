//! The manual pages in man/ are the ones the command line makes now
//! (`cargo xtask man` writes them), and `man` renders each without a
//! warning.

mod common;

use std::{path::Path, process::Command};

use common::have_tool;

fn man_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../man")
}

#[test]
fn the_committed_pages_are_the_current_ones() {
    let pages = xdpstat::man::pages();
    let mut stale = Vec::new();
    for page in &pages {
        let committed = std::fs::read(man_dir().join(&page.file_name)).unwrap_or_default();
        if committed != page.roff {
            stale.push(page.file_name.clone());
        }
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(man_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".8"))
        .collect();
    on_disk.sort();
    let mut made: Vec<String> = pages.iter().map(|p| p.file_name.clone()).collect();
    made.sort();
    assert_eq!(on_disk, made, "man/ has other pages: run `cargo xtask man`");
    assert!(
        stale.is_empty(),
        "stale pages {stale:?}: run `cargo xtask man`"
    );
}

#[test]
fn man_renders_every_page_without_warnings() {
    if !have_tool("man") {
        return;
    }
    for page in xdpstat::man::pages() {
        let path = man_dir().join(&page.file_name);
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {warnings}", page.file_name);
        assert!(warnings.trim().is_empty(), "{}: {warnings}", page.file_name);
        // grotty's bold is overstrike (`N\x08N`) when not on a terminal.
        let mut text = String::new();
        for c in String::from_utf8_lossy(&out.stdout).chars() {
            if c == '\x08' {
                text.pop();
            } else {
                text.push(c);
            }
        }
        for section in ["NAME", "SYNOPSIS", "EXIT STATUS", "FILES"] {
            assert!(text.contains(section), "{} lacks {section}", page.file_name);
        }
    }
}
