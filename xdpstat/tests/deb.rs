//! The Debian package, for real: `cargo xtask test` builds it (`cargo
//! xtask deb`) and names it in `XDPSTAT_DEB`; this test installs it with
//! dpkg, uses what it installed (the binary on a veth, the manual pages,
//! the completions, the systemd units under systemd-analyze, lintian on the
//! package), then purges it and checks that nothing is left.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use common::{have_tool, privileged, VethNs};

const BIN: &str = "/usr/sbin/xdpstat";

fn sh(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap()
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = sh(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        common::stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed() -> bool {
    sh("dpkg-query", &["-W", "-f", "${Status}", "xdpstat"])
        .stdout
        .starts_with(b"install ok installed")
}

/// Purges the package when the test ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = sh("dpkg", &["--purge", "xdpstat"]);
    }
}

#[test]
fn the_package_installs_works_and_purges_without_a_trace() {
    if !privileged("the_package_installs_works_and_purges_without_a_trace")
        || !have_tool("dpkg")
        || !have_tool("lintian")
        || !have_tool("systemd-analyze")
        || !have_tool("man")
    {
        return;
    }
    let Some(deb) = std::env::var_os("XDPSTAT_DEB").map(PathBuf::from) else {
        assert!(
            std::env::var_os("XDPSTAT_REQUIRE_PRIVILEGED").is_none()
                && std::env::var("CI").as_deref() != Ok("true"),
            "XDPSTAT_DEB is not set: `cargo xtask test` builds the package and sets it"
        );
        eprintln!("SKIPPED: no XDPSTAT_DEB (run through `cargo xtask test`)");
        return;
    };
    assert!(deb.is_file(), "{} is missing", deb.display());
    assert!(
        !installed(),
        "xdpstat is installed on this machine already; this test would replace and purge it"
    );

    // lintian: no errors (README lists the warnings accepted).
    let lint = sh(
        "lintian",
        &["--tag-display-limit", "0", deb.to_str().unwrap()],
    );
    let report = String::from_utf8_lossy(&lint.stdout);
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian: {report}");

    let files: Vec<PathBuf> = ok("dpkg-deb", &["-c", deb.to_str().unwrap()])
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| !p.ends_with('/'))
        .map(|p| Path::new("/").join(p.trim_start_matches("./")))
        .collect();
    assert!(files.contains(&PathBuf::from(BIN)), "{files:?}");

    let _purge = Installed;
    ok("dpkg", &["-i", deb.to_str().unwrap()]);
    assert!(installed());
    assert_eq!(
        ok(BIN, &["--version"]).trim(),
        format!("xdpstat {}", env!("CARGO_PKG_VERSION"))
    );
    for page in ["xdpstat", "xdpstat-attach", "xdpstat-map-dump"] {
        let at = ok("man", &["-w", page]);
        assert_eq!(at.trim(), format!("/usr/share/man/man8/{page}.8.gz"));
    }
    let completion = ok(
        "bash",
        &[
            "-c",
            "source /usr/share/bash-completion/completions/xdpstat && complete -p xdpstat",
        ],
    );
    assert!(
        completion.contains("_clap_complete_xdpstat"),
        "{completion}"
    );

    // The units as installed, with their manual pages there to be found.
    let verify = sh(
        "systemd-analyze",
        &[
            "verify",
            "xdpstat-attach@lo.service",
            "xdpstat-export.service",
        ],
    );
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        common::stderr(&verify)
    );

    // The installed binary counts on a veth.
    let ns = VethNs::new();
    let run = |args: &[&str]| {
        let out = ns.command(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", common::stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["attach", &ns.a, "--mode", "generic"]);
    let lengths = vec![60, 128, 1514];
    let bytes: usize = lengths.iter().sum();
    ns.send_frames(lengths, None);
    let shown: serde_json::Value = serde_json::from_str(&run(&["show", &ns.a, "--json"])).unwrap();
    assert_eq!(shown["total"]["packets"], 3, "{shown}");
    assert_eq!(shown["total"]["bytes"], bytes, "{shown}");
    run(&["detach", &ns.a]);

    drop(_purge);
    assert!(!installed(), "purged");
    let left: Vec<&PathBuf> = files.iter().filter(|f| f.exists()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    for dir in ["/usr/share/doc/xdpstat", "/etc/xdpstat"] {
        assert!(!Path::new(dir).exists(), "{dir} left behind");
    }
}
