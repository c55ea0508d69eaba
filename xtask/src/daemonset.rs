//! `cargo xtask daemonset`: the Kubernetes DaemonSet in
//! `deploy/daemonset.yaml` and in README, made from one template with the
//! capabilities of the systemd units (`xdpstat/systemd/`), so that the
//! two cannot drift: the attach init container gets
//! `xdpstat-attach@.service`'s bounding set, the export container
//! `xdpstat-export.service`'s.

use std::fs;

use anyhow::{bail, Context, Result};

use super::root;

/// The DaemonSet, with `{ATTACH_CAPS}` and `{EXPORT_CAPS}` to fill.
const TEMPLATE: &str = r#"# Made by `cargo xtask daemonset` from xdpstat/systemd/*.service: edit the
# template in xtask/src/daemonset.rs or the units, not this file.
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: xdpstat, namespace: monitoring}
spec:
  selector: {matchLabels: {app: xdpstat}}
  template:
    metadata: {labels: {app: xdpstat}}
    spec:
      hostNetwork: true                  # the node's interfaces, not the pod's
      dnsPolicy: ClusterFirstWithHostNet
      initContainers:
        - name: attach
          image: registry.example/xdpstat:0.1
          command: ["/bin/sh", "-c", "xdpstat attach eth0 || xdpstat show eth0 >/dev/null"]
          securityContext:
            capabilities: {drop: [ALL], add: [{ATTACH_CAPS}]}
          volumeMounts: [{name: bpffs, mountPath: /sys/fs/bpf}]
      containers:
        - name: export
          image: registry.example/xdpstat:0.1
          args: ["export", "--listen=$(NODE_IP):9435"]
          env:
            - name: NODE_IP
              valueFrom: {fieldRef: {fieldPath: status.hostIP}}
          ports: [{name: metrics, containerPort: 9435}]
          securityContext:
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL], add: [{EXPORT_CAPS}]}
          volumeMounts: [{name: bpffs, mountPath: /sys/fs/bpf}]
      volumes:
        - name: bpffs
          hostPath: {path: /sys/fs/bpf, type: DirectoryOrCreate}
"#;

/// A unit's `CapabilityBoundingSet=`, as Kubernetes spells capabilities
/// (`CAP_NET_ADMIN` is `NET_ADMIN`).
fn capabilities(unit: &str) -> Result<Vec<String>> {
    let path = root().join("xdpstat/systemd").join(unit);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let caps: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .flat_map(str::split_whitespace)
        .map(|c| c.trim_start_matches("CAP_").to_owned())
        .collect();
    if caps.is_empty() {
        bail!("{} has no CapabilityBoundingSet=", path.display());
    }
    Ok(caps)
}

/// The DaemonSet as the units say it.
pub fn daemonset() -> Result<String> {
    Ok(TEMPLATE
        .replace(
            "{ATTACH_CAPS}",
            &capabilities("xdpstat-attach@.service")?.join(", "),
        )
        .replace(
            "{EXPORT_CAPS}",
            &capabilities("xdpstat-export.service")?.join(", "),
        ))
}

/// README's copy: the YAML block that holds `kind: DaemonSet`, as a range.
fn readme_block(readme: &str) -> Result<std::ops::Range<usize>> {
    let at = readme
        .find("kind: DaemonSet")
        .context("README has no DaemonSet")?;
    let start = readme[..at]
        .rfind("```yaml\n")
        .context("README's DaemonSet is not in a yaml block")?
        + "```yaml\n".len();
    let end = at
        + readme[at..]
            .find("```")
            .context("README's yaml block does not end")?;
    Ok(start..end)
}

/// Writes `deploy/daemonset.yaml` and README's copy.
pub fn write() -> Result<()> {
    let yaml = daemonset()?;
    fs::write(root().join("deploy/daemonset.yaml"), &yaml)?;
    let path = root().join("README.md");
    let mut readme = fs::read_to_string(&path)?;
    let block = readme_block(&readme)?;
    readme.replace_range(block, &yaml);
    fs::write(&path, readme)?;
    println!("xtask: deploy/daemonset.yaml and README's copy written");
    Ok(())
}

/// The validator `cargo xtask deps` installs (PyPI's kubernetes-validate,
/// with the Kubernetes schemas inside it).
pub fn validator() -> std::path::PathBuf {
    root().join("target/venv/bin/kubernetes-validate")
}

/// PyPI's kubernetes-validate that [`validator`] is.
pub const VALIDATOR_VERSION: &str = "1.37.0";

/// Installs [`validator`] into a venv of its own under target/.
pub fn install_validator() -> Result<()> {
    if validator().is_file() {
        return Ok(());
    }
    let venv = root().join("target/venv");
    super::run(
        std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv),
    )?;
    super::run(
        std::process::Command::new(venv.join("bin/pip"))
            .args(["install", "-q"])
            .arg(format!("kubernetes-validate=={VALIDATOR_VERSION}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemonset_is_the_units_and_readme_shows_it() {
        let yaml = daemonset().unwrap();
        let committed = fs::read_to_string(root().join("deploy/daemonset.yaml")).unwrap();
        assert_eq!(committed, yaml, "run `cargo xtask daemonset`");
        let readme = fs::read_to_string(root().join("README.md")).unwrap();
        let block = readme_block(&readme).unwrap();
        assert_eq!(
            &readme[block], yaml,
            "README's copy: run `cargo xtask daemonset`"
        );
        assert!(
            yaml.contains("add: [BPF, NET_ADMIN, PERFMON, SYS_ADMIN]"),
            "{yaml}"
        );
        assert!(yaml.contains("add: [BPF]"), "{yaml}");
    }

    #[test]
    fn kubernetes_schemas_accept_the_daemonset() {
        if !validator().is_file() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true")
                    && std::env::var_os("XDPSTAT_REQUIRE_PRIVILEGED").is_none(),
                "{} is missing: `cargo xtask deps` installs it",
                validator().display()
            );
            eprintln!("SKIPPED: no kubernetes-validate (`cargo xtask deps`)");
            return;
        }
        let out = std::process::Command::new(validator())
            .arg("--strict")
            .arg(root().join("deploy/daemonset.yaml"))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.contains("passed"),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The validator rejects what it should: a port that is no number.
        let bad = daemonset()
            .unwrap()
            .replace("containerPort: 9435", "containerPort: x");
        let dir = std::env::temp_dir().join(format!("xdpstat-daemonset-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.yaml");
        fs::write(&path, bad).unwrap();
        let out = std::process::Command::new(validator())
            .arg("--strict")
            .arg(&path)
            .output()
            .unwrap();
        let _ = fs::remove_dir_all(&dir);
        assert!(!out.status.success(), "a bad port is refused");
    }
}
