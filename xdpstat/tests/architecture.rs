//! The seams ARCHITECTURE.md promises, checked on the source: no module
//! cycle inside xdpstat, `kernel/` uses neither `model` nor `output`, and
//! `output/` makes no syscall (it uses nothing of `kernel` but plain data
//! types). No kernel needed.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// `model::attach` for `src/model/attach/record.rs`: modules at depth two
/// under the three layers, one level elsewhere.
fn module_of(rel: &str) -> String {
    let rel = rel.trim_end_matches(".rs").trim_end_matches("/mod");
    let parts: Vec<&str> = rel.split('/').collect();
    let depth = if matches!(parts[0], "model" | "kernel" | "output" | "cli") {
        2
    } else {
        1
    };
    parts[..depth.min(parts.len())].join("::")
}

/// Every `crate::…` module each module names, outside tests and comments.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.clone()];
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    while let Some(dir) = files.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if !rel.ends_with(".rs") {
                continue;
            }
            let from = module_of(&rel);
            let text = fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (at, _) in line.match_indices("crate::") {
                    let rest = &line[at + "crate::".len()..];
                    let path: Vec<&str> = rest
                        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                        .next()
                        .unwrap()
                        .split("::")
                        .filter(|s| {
                            !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        })
                        .collect();
                    let Some(first) = path.first() else { continue };
                    let to = if matches!(*first, "model" | "kernel" | "output" | "cli")
                        && path.len() > 1
                    {
                        format!("{first}::{}", path[1])
                    } else {
                        (*first).to_owned()
                    };
                    if to != from && !from.starts_with(&format!("{to}::")) {
                        edges.entry(from.clone()).or_default().insert(to);
                    }
                }
            }
        }
    }
    edges
}

fn reaches(edges: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_owned()];
    while let Some(m) = todo.pop() {
        for next in edges.get(&m).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn no_module_reaches_itself() {
    let edges = edges();
    assert!(edges.len() > 10, "read the modules: {edges:?}");
    let cycles: Vec<&String> = edges.keys().filter(|m| reaches(&edges, m, m)).collect();
    assert!(
        cycles.is_empty(),
        "module cycles through {cycles:?}: {edges:#?}"
    );
}

#[test]
fn the_kernel_layer_uses_no_model_or_output_and_output_no_syscalls() {
    for (from, to) in edges() {
        for to in to {
            if from.starts_with("kernel::") {
                assert!(
                    !to.starts_with("model::") && !to.starts_with("output::"),
                    "{from} uses {to}"
                );
            }
            if from.starts_with("output::") {
                assert!(
                    !matches!(
                        to.as_str(),
                        "kernel::sys" | "kernel::netlink" | "kernel::bpffs"
                    ),
                    "{from} uses {to}"
                );
            }
        }
    }
}
