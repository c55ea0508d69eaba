//! `check --kernel`: the verifier's verdicts on kernels other than the
//! running one. Each kernel boots in a throwaway guest ([`crate::vm`])
//! that runs this same xdpstat's `check` on the host's files and leaves
//! its reports (`programs.json`) and logs (`N.log`) in a directory of the
//! host's; here they become [`ProgramReport`]s again.

use std::{
    fs,
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use xdpstat_analysis::report::ProgramReport;

use crate::vm::{
    image::{self, Kernel},
    qemu::{self, quote},
    VmError,
};

/// One kernel's reports.
#[derive(Debug, Clone)]
pub struct KernelCheck {
    /// `uname -r` of the kernel that checked.
    pub kernel: String,
    /// Whether it is the running kernel rather than a guest's.
    pub host: bool,
    /// One per program, in the object's order.
    pub programs: Vec<ProgramReport>,
}

/// What to check in each guest.
#[derive(Debug, Clone)]
pub struct Request {
    /// The object, absolute.
    pub obj: PathBuf,
    /// `--sec`.
    pub sec: Option<String>,
    /// `--src`, absolute.
    pub src: Vec<PathBuf>,
    /// How long one guest may take once up.
    pub timeout: Duration,
}

/// Where each guest's files go while it runs; removed after a guest that
/// finished, kept (with its console log) after one that broke.
fn run_dir(release: &str) -> Result<PathBuf, VmError> {
    let dir = std::env::temp_dir().join(format!(
        "xdpstat-check-{}-{}",
        std::process::id(),
        release.replace('/', "_")
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(VmError::io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// Resolves every `--kernel` (fetching what the cache lacks) and checks
/// that the host can run that many guests at once.
///
/// # Errors
///
/// [`VmError`] for a kernel that cannot be had, or a missing requirement.
pub fn prepare(
    specs: &[String],
    progress: &mut dyn FnMut(&str, &str),
) -> Result<Vec<Kernel>, VmError> {
    qemu::require(specs.len())?;
    specs
        .iter()
        .map(|spec| image::resolve(spec, &mut |msg| progress(spec, msg)))
        .collect()
}

/// Runs `req` in a guest of each kernel, all at once (each guest takes one
/// host thread), and returns their reports in the order given.
///
/// # Errors
///
/// The first kernel's [`VmError`] that broke: a guest that died or hung,
/// or an xdpstat in it that could not check.
pub fn check(
    kernels: &[Kernel],
    req: &Request,
    progress: &(dyn Fn(&str, &str) + Sync),
) -> Result<Vec<KernelCheck>, VmError> {
    thread::scope(|s| {
        let handles: Vec<_> = kernels
            .iter()
            .map(|k| s.spawn(move || check_one(k, req, progress)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

fn check_one(
    kernel: &Kernel,
    req: &Request,
    progress: &(dyn Fn(&str, &str) + Sync),
) -> Result<KernelCheck, VmError> {
    let dir = run_dir(&kernel.release)?;
    let exe = std::env::current_exe().map_err(VmError::io("finding xdpstat's own binary"))?;
    let mut command = format!(
        "{} check {} --guest-out \"$OUT\"",
        quote(&exe.display().to_string()),
        quote(&req.obj.display().to_string())
    );
    if let Some(sec) = &req.sec {
        command.push_str(&format!(" --sec {}", quote(sec)));
    }
    for src in &req.src {
        command.push_str(&format!(" --src {}", quote(&src.display().to_string())));
    }
    let body =
        format!("cd / && {command} > \"$OUT/stdout\" 2> \"$OUT/stderr\"\necho $? > \"$OUT/rc\"\n");
    let script = qemu::script(&dir, &[], &body);
    let label = kernel.spec.as_str();
    progress(label, &format!("booting {}", kernel.release));
    let ran = qemu::run(
        kernel,
        &dir,
        &script,
        2,
        &["/run"],
        req.timeout,
        &mut |msg| {
            progress(label, &format!("{msg}, checking"));
        },
    );
    if let Err(e) = ran {
        // A guest that broke keeps its console log; nothing else is worth
        // keeping.
        if !matches!(e, VmError::Guest { .. }) {
            let _ = fs::remove_dir_all(&dir);
        }
        return Err(e);
    }
    let result = read_results(kernel, &dir);
    if result.is_ok() {
        let _ = fs::remove_dir_all(&dir);
    }
    result
}

/// The guest's `programs.json` and logs; when its xdpstat found no
/// programs to report, what it said.
fn read_results(kernel: &Kernel, dir: &Path) -> Result<KernelCheck, VmError> {
    let broke = |how: String| VmError::Guest {
        release: kernel.release.clone(),
        how,
        console: dir.join("console.log"),
        excerpt: fs::read_to_string(dir.join("stderr")).unwrap_or_default(),
    };
    let uname = fs::read_to_string(dir.join("uname"))
        .map(|u| u.trim().to_owned())
        .unwrap_or_else(|_| kernel.release.clone());
    let json = fs::read(dir.join("programs.json")).map_err(|_| {
        let rc = fs::read_to_string(dir.join("rc")).unwrap_or_default();
        broke(format!(
            "ran xdpstat check, which exited {} without a report; it said",
            rc.trim()
        ))
    })?;
    #[derive(serde::Deserialize)]
    struct Programs {
        programs: Vec<ProgramReport>,
    }
    let mut programs = serde_json::from_slice::<Programs>(&json)
        .map_err(|e| broke(format!("wrote a report xdpstat cannot read ({e})")))?
        .programs;
    for (i, r) in programs.iter_mut().enumerate() {
        r.log = fs::read_to_string(dir.join(format!("{i}.log"))).ok();
    }
    Ok(KernelCheck {
        kernel: uname,
        host: false,
        programs,
    })
}

/// What the guest side writes: the reports and each program's log.
///
/// # Errors
///
/// I/O errors writing into `dir`.
pub fn write_results(dir: &Path, programs: &[ProgramReport]) -> std::io::Result<()> {
    #[derive(serde::Serialize)]
    struct Programs<'a> {
        programs: &'a [ProgramReport],
    }
    for (i, r) in programs.iter().enumerate() {
        if let Some(log) = &r.log {
            fs::write(dir.join(format!("{i}.log")), log)?;
        }
    }
    let tmp = dir.join("programs.json.tmp");
    fs::write(&tmp, serde_json::to_vec(&Programs { programs })?)?;
    fs::rename(tmp, dir.join("programs.json"))
}
