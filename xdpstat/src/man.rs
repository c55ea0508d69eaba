//! Manual pages, made from the command line's own definitions by
//! clap_mangen, so that they cannot drift from `--help`: `xdpstat(8)`, and
//! a page per command (`xdpstat-attach(8)`, `xdpstat-map-dump(8)` …).
//! Each page ends with the exit codes, the pin layout, and examples taken
//! from README's real runs. `cargo xtask man` writes them to `man/`.

use clap::CommandFactory as _;
use roff::{bold, roman, Roff};

use crate::cli::Cli;

/// One page: its file name (`xdpstat-attach.8`) and its roff source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// `xdpstat-attach.8`.
    pub file_name: String,
    /// The page, in roff.
    pub roff: Vec<u8>,
}

/// Examples by page, as (what it does, the command): README's real runs.
const EXAMPLES: &[(&str, &[(&str, &str)])] = &[
    (
        "xdpstat",
        &[
            (
                "Count what v0 receives, then read it",
                "xdpstat attach v0\nxdpstat show v0",
            ),
            (
                "Check an object against the verifier",
                "xdpstat check xdp_prog_kern.o",
            ),
        ],
    ),
    (
        "xdpstat-attach",
        &[
            (
                "Count with per-CPU counters (the default), in native mode",
                "xdpstat attach v0 --mode native",
            ),
            (
                "Count for the program already attached to v0, per verdict",
                "xdpstat attach v0 --observe",
            ),
        ],
    ),
    (
        "xdpstat-detach",
        &[("Detach and remove the pins", "xdpstat detach v0")],
    ),
    (
        "xdpstat-show",
        &[
            ("Totals, then one line per CPU", "xdpstat show v0 --per-cpu"),
            ("The same, for a program", "xdpstat show v0 --json"),
        ],
    ),
    (
        "xdpstat-run",
        &[(
            "Print rates every second, five times",
            "xdpstat run v0 --interval 1s --count 5",
        )],
    ),
    (
        "xdpstat-load",
        &[(
            "Load the xdp-tutorial's stats program and attach it",
            "xdpstat load stats_kern_percpu.o --dev v0 --sec stats",
        )],
    ),
    (
        "xdpstat-check",
        &[
            (
                "The verdict and the statistics of every XDP program",
                "xdpstat check balancer_full.o",
            ),
            (
                "A rejection, with the annotated log",
                "xdpstat check xdp_prog_kern.o --sec xdp --log",
            ),
            (
                "The same check in Debian's LTS kernels",
                "xdpstat check xdp_prog_kern.o --kernel 6.1 --kernel 6.12",
            ),
        ],
    ),
    (
        "xdpstat-explain",
        &[(
            "Diagnose a pasted log, with source lines from its object",
            "xdpstat explain --log verifier.log --obj xdp_prog_kern.o",
        )],
    ),
    (
        "xdpstat-objdump",
        &[(
            "Disassemble with source lines",
            "xdpstat objdump xdp_prog_kern.o --sec xdp",
        )],
    ),
    (
        "xdpstat-status",
        &[("Every XDP program in this namespace", "xdpstat status")],
    ),
    (
        "xdpstat-prog",
        &[(
            "Programs, with run-time statistics",
            "xdpstat prog list --stats",
        )],
    ),
    (
        "xdpstat-prog-list",
        &[(
            "Programs, with run-time statistics",
            "xdpstat prog list --stats",
        )],
    ),
    ("xdpstat-map", &[("A map's entries", "xdpstat map dump 4")]),
    ("xdpstat-map-list", &[("Every map, with the programs that use it", "xdpstat map list")]),
    (
        "xdpstat-map-pin",
        &[(
            "Pin map 4 so that show --map-path can read it",
            "xdpstat map pin 4 /sys/fs/bpf/xdp_stats_map\nxdpstat show --map-path /sys/fs/bpf/xdp_stats_map",
        )],
    ),
    (
        "xdpstat-map-unpin",
        &[("Remove that pin", "xdpstat map unpin /sys/fs/bpf/xdp_stats_map")],
    ),
    (
        "xdpstat-map-dump",
        &[("A map's entries, by id", "xdpstat map dump 4")],
    ),
    (
        "xdpstat-watch",
        &[(
            "Five lines of rates, for scripts",
            "xdpstat watch v0 --plain --count 5 --interval 1s",
        )],
    ),
    (
        "xdpstat-completions",
        &[(
            "Complete commands, flags, interface names and map ids in bash",
            "source <(xdpstat completions bash)",
        )],
    ),
    (
        "xdpstat-export",
        &[(
            "Serve every interface's counters to Prometheus",
            "xdpstat export --listen 127.0.0.1:9435",
        )],
    ),
];

/// Every page, the main one first.
pub fn pages() -> Vec<Page> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = Vec::new();
    collect(&cmd, "xdpstat", &mut out);
    out
}

fn collect(cmd: &clap::Command, name: &str, out: &mut Vec<Page>) {
    let page = cmd.clone().name(name.to_owned());
    let mut roff = Vec::new();
    render(page, name, &mut roff);
    out.push(Page {
        file_name: format!("{name}.8"),
        roff,
    });
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        collect(sub, &format!("{name}-{}", sub.get_name()), out);
    }
}

fn render(cmd: clap::Command, name: &str, w: &mut Vec<u8>) {
    let man = clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .section("8")
        .manual("System Administration")
        .source(format!("xdpstat {}", env!("CARGO_PKG_VERSION")));
    // Writing to a Vec cannot fail.
    let _ = man.render_title(w);
    let _ = man.render_name_section(w);
    let _ = man.render_synopsis_section(w);
    let _ = man.render_description_section(w);
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        let _ = man.render_options_section(w);
    }
    if cmd.has_subcommands() {
        let _ = man.render_subcommands_section(w);
    }
    let mut extra = Roff::new();
    extra.control("SH", ["EXIT STATUS"]);
    for (code, what) in [
        ("0", "Success: for check, every program accepted."),
        (
            "1",
            "The operation failed: a program was rejected, the kernel refused, or a kfunc is missing.",
        ),
        (
            "2",
            "Usage or input error: bad arguments, a missing interface, a malformed object or log, no root.",
        ),
    ] {
        extra.control("TP", []).text([bold(code)]).text([roman(what)]);
    }
    extra.control("SH", ["FILES"]);
    extra
        .control("TP", [])
        .text([bold("/sys/fs/bpf/xdpstat/netns:INODE/IFINDEX:IFACE/")])
        .text([roman(
            "The pins of xdpstat's counting program on IFACE: the program's link and its counters. INODE is the network namespace's inode, so an interface name that repeats in another namespace never meets these pins. bpffs is mounted at /sys/fs/bpf when it is not.",
        )]);
    extra
        .control("TP", [])
        .text([bold("/sys/fs/bpf/xdpstat/netns:INODE/observe:IFINDEX:IFACE/")])
        .text([roman(
            "The observers of the program another loader attached to IFACE (attach --observe). See README, \"Pins and network namespaces\".",
        )]);
    if let Some((_, examples)) = EXAMPLES.iter().find(|(page, _)| *page == name) {
        extra.control("SH", ["EXAMPLES"]);
        for (what, command) in *examples {
            extra.control("TP", []).text([roman(*what)]);
            extra.control("nf", []);
            for line in command.lines() {
                extra.text([bold(line)]);
            }
            extra.control("fi", []);
        }
    }
    extra.control("SH", ["SEE ALSO"]);
    let see: Vec<String> = if name == "xdpstat" {
        vec![
            "bpftool(8)".to_owned(),
            "ip-link(8)".to_owned(),
            "xdp-loader(8)".to_owned(),
        ]
    } else {
        vec!["xdpstat(8)".to_owned()]
    };
    extra.text([roman(see.join(", "))]);
    let _ = extra.to_writer(w);
    let _ = man.render_version_section(w);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_page_and_examples() {
        let pages = pages();
        let names: Vec<&str> = pages.iter().map(|p| p.file_name.as_str()).collect();
        for want in [
            "xdpstat.8",
            "xdpstat-attach.8",
            "xdpstat-map-dump.8",
            "xdpstat-check.8",
        ] {
            assert!(names.contains(&want), "{want} in {names:?}");
        }
        for (page, _) in EXAMPLES {
            assert!(
                names.contains(&format!("{page}.8").as_str()),
                "examples for {page}, which has no page"
            );
        }
        for page in &pages {
            let name = page.file_name.trim_end_matches(".8");
            assert!(
                EXAMPLES.iter().any(|(p, _)| *p == name),
                "{name} has no examples"
            );
        }
        let attach = String::from_utf8(pages[1].roff.clone()).unwrap();
        assert!(attach.contains("EXIT STATUS") && attach.contains("/sys/fs/bpf/xdpstat/"));
    }
}
