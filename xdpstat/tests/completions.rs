//! Shell completion, for real: bash sources `xdpstat completions bash` in
//! a network namespace of the test's own and runs the completion function
//! as bash does on <Tab>; interface names must be that namespace's, and
//! map ids the kernel's. zsh and fish speak the same protocol to xdpstat.

mod common;

use std::{
    os::fd::{AsFd as _, OwnedFd},
    path::Path,
    process::Command,
};

use common::{have_tool, privileged, VethNs};

/// What bash completes for the words `line` (the last one being typed),
/// run inside `ns` with this build's xdpstat first on PATH.
fn bash_completes(ns: &VethNs, line: &[&str]) -> Vec<String> {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_xdpstat")).parent().unwrap();
    let script = r#"
source <(xdpstat completions bash) || exit 3
COMP_WORDS=("$@")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMP_TYPE=9
_clap_complete_xdpstat xdpstat "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let out = ns
        .command("bash")
        .args(["-c", script, "bash"])
        .args(line)
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash {line:?}: {}",
        common::stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A map of the test's own, held open: the kernel's id for it.
fn own_map() -> (OwnedFd, u32) {
    let fd = xdpstat::kernel::sys::maps::map_create(&xdpstat::kernel::sys::maps::MapCreate {
        map_type: 2, // BPF_MAP_TYPE_ARRAY
        key_size: 4,
        value_size: 8,
        max_entries: 1,
        name: "xdpstat_compl",
        ..Default::default()
    })
    .unwrap();
    let id = xdpstat::kernel::sys::maps::map_info(fd.as_fd()).unwrap().id;
    (fd, id)
}

#[test]
fn bash_completes_commands_flags_interfaces_and_map_ids() {
    if !privileged("bash_completes_commands_flags_interfaces_and_map_ids") || !have_tool("bash") {
        return;
    }
    let ns = VethNs::new();
    assert_eq!(bash_completes(&ns, &["xdpstat", "at"]), ["attach"]);
    assert_eq!(bash_completes(&ns, &["xdpstat", "map", "du"]), ["dump"]);
    assert_eq!(
        bash_completes(&ns, &["xdpstat", "attach", "--mo"]),
        ["--mode"]
    );
    assert_eq!(
        bash_completes(&ns, &["xdpstat", "attach", "v0", "--mode", "ge"]),
        ["generic"]
    );
    // Exactly the namespace's interfaces, wherever one is expected.
    let mut want = vec!["lo".to_owned(), ns.a.clone(), ns.b.clone()];
    want.sort();
    for line in [
        &["xdpstat", "detach", ""][..],
        &["xdpstat", "show", ""],
        &["xdpstat", "load", "x.o", "--dev", ""],
        &["xdpstat", "watch", ""],
    ] {
        let mut got: Vec<String> = bash_completes(&ns, line)
            .into_iter()
            .filter(|c| !c.starts_with('-'))
            .collect();
        got.sort();
        assert_eq!(got, want, "{line:?}");
    }
    assert_eq!(
        bash_completes(&ns, &["xdpstat", "detach", &ns.a[..ns.a.len() - 1]]),
        std::slice::from_ref(&ns.a)
    );
    // Map ids come from the kernel.
    let (_map, id) = own_map();
    let ids = bash_completes(&ns, &["xdpstat", "map", "dump", ""]);
    assert!(ids.contains(&id.to_string()), "map {id} in {ids:?}");
}

#[test]
fn zsh_and_fish_scripts_and_their_protocol() {
    if !privileged("zsh_and_fish_scripts_and_their_protocol") {
        return;
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = common::xdpstat(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", common::stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("COMPLETE=") || script.contains("COMPLETE\""),
            "{shell}: {script}"
        );
        assert!(script.contains("xdpstat"), "{shell}: {script}");
    }
    // What the zsh and fish scripts run on <Tab>.
    let ns = VethNs::new();
    for shell in ["zsh", "fish"] {
        let out = ns
            .command(env!("CARGO_BIN_EXE_xdpstat"))
            .args(["--", "xdpstat", "detach", ""])
            .env("COMPLETE", shell)
            .env("_CLAP_COMPLETE_INDEX", "2")
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", common::stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        for iface in ["lo", ns.a.as_str(), ns.b.as_str()] {
            assert!(
                text.split(|c: char| c.is_whitespace() || c == '\u{b}' || c == ':')
                    .any(|w| w == iface),
                "{shell} offers {iface}: {text:?}"
            );
        }
    }
    // A bad shell is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
