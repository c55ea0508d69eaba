//! The workbench's report model: what to say about a program and its
//! verifier log (the statistics, the error with its source line, the
//! diagnosis, the portability warnings of the static NULL-check pass), not
//! how to print it. [`explain`] turns a saved log into a report in one
//! call.

use std::{
    collections::BTreeMap,
    io::{self, BufRead},
    path::PathBuf,
};

use serde::{Deserialize, Serialize};

use crate::{
    obj::{BpfObject, LineTable, LinkedProgram, SourceFiles, XdpProgram},
    verifier::{
        diagnose::{self, Diagnosis, ErrorSite, Kind, SourceRef, Sources},
        log::{self, Annotation, LogError, ParsedLog, Stats},
        nullcheck,
    },
};

/// `BPF_PROG_TYPE_XDP`.
pub const PROG_TYPE_XDP: u32 = aya_obj::generated::bpf_prog_type::BPF_PROG_TYPE_XDP as u32;
/// The instruction limit iproute2 reports against (`BPF_MAXINSNS`).
pub const MAXINSNS: usize = 4096;

/// A warning: something the kernel accepted here that older kernels reject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// Its kind (`null-check`).
    pub kind: Kind,
    /// Where.
    pub insn: u32,
    /// The instruction there.
    pub text: String,
    /// Its source line.
    pub source: Option<SourceRef>,
    /// What could go wrong.
    pub summary: String,
    /// Where the value was born.
    pub origin: Option<WarningOrigin>,
    /// How to fix it.
    pub fix: String,
}

/// The origin of a warning's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarningOrigin {
    /// Verifier index.
    pub insn: u32,
    /// The instruction there.
    pub text: String,
    /// Its source line.
    pub source: Option<SourceRef>,
}

/// Everything known about one program's verification.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProgramReport {
    /// The ELF section.
    pub section: String,
    /// The program (function) name.
    pub name: String,
    /// The verdict; `null` when a log is truncated before it.
    pub accepted: Option<bool>,
    /// Whether the log ends early.
    pub truncated: bool,
    /// The errno of a rejection, e.g. `Permission denied (13)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// Program type (6 for XDP).
    pub prog_type: u32,
    /// Instruction slots in the program.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insn_count: Option<usize>,
    /// The license.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Verifier statistics.
    pub stats: StatsReport,
    /// The verifier log level the report comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<u32>,
    /// The failing instruction.
    pub error: Option<ErrorSite>,
    /// What went wrong.
    pub diagnosis: Option<Diagnosis>,
    /// Portability warnings.
    pub warnings: Vec<Warning>,
    /// The verifier log (not in JSON: it can be huge).
    #[serde(skip)]
    pub log: Option<String>,
}

/// Verifier statistics, for JSON.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StatsReport {
    /// Instructions the verifier processed.
    pub insns_processed: Option<u64>,
    /// Its limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insn_limit: Option<u64>,
    /// States in total.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_states: Option<u64>,
    /// Peak states.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_states: Option<u64>,
    /// Most states for one instruction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_states_per_insn: Option<u64>,
    /// Verification time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_time_usec: Option<u64>,
    /// Stack depth per subprogram.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stack_depth: Vec<u64>,
}

impl From<&Stats> for StatsReport {
    fn from(s: &Stats) -> Self {
        Self {
            insns_processed: Some(s.insns_processed),
            insn_limit: s.insn_limit,
            total_states: s.total_states,
            peak_states: s.peak_states,
            max_states_per_insn: s.max_states_per_insn,
            verification_time_usec: s.verification_time_usec,
            stack_depth: s.stack_depth.clone(),
        }
    }
}

/// Source lines for instruction indexes: from the object's line info when
/// there is an object, else from the kernel's own annotations in the log.
pub struct SourceMap<'a> {
    lines: Option<&'a LineTable>,
    program: Option<&'a LinkedProgram>,
    annotations: BTreeMap<u32, Annotation>,
    files: SourceFiles,
}

impl<'a> SourceMap<'a> {
    /// Builds the map; `src_dirs` are searched for source files.
    pub fn new(
        program: Option<&'a LinkedProgram>,
        log: Option<&ParsedLog>,
        src_dirs: Vec<PathBuf>,
    ) -> Self {
        let lines: Option<&LineTable> = program.map(|p| &p.lines);
        let annotations = log
            .map(|l| l.annotations.iter().map(|(i, a)| (*i, a.clone())).collect())
            .unwrap_or_default();
        Self {
            lines: lines.filter(|l| !l.is_empty()),
            program,
            annotations,
            files: SourceFiles::new(src_dirs),
        }
    }
}

impl Sources for SourceMap<'_> {
    fn source(&mut self, insn: u32) -> Option<SourceRef> {
        if let Some(lines) = self.lines {
            // Line 0 marks code the compiler made up; it has no source.
            let entry = lines.at(insn as usize).filter(|e| e.line != 0)?;
            // Inlined library code: the line in the program that called it.
            if crate::obj::dwarf::is_library_path(&entry.file) {
                if let Some(site) = self.program.and_then(|p| p.call_site(insn as usize)) {
                    let text = self.files.line(&site.file, site.line);
                    return Some(SourceRef {
                        file: site.file.clone(),
                        line: site.line,
                        text,
                    });
                }
            }
            let text = self
                .files
                .line(&entry.file, entry.line)
                .or_else(|| (!entry.text.is_empty()).then(|| entry.text.clone()));
            return Some(SourceRef {
                file: entry.file.clone(),
                line: entry.line,
                text,
            });
        }
        let (_, a) = self.annotations.range(..=insn).next_back()?;
        let file = a.file.clone()?;
        let line = a.line.filter(|&l| l != 0)?;
        let text = self
            .files
            .line(&file, line)
            .or_else(|| (!a.text.is_empty()).then(|| a.text.clone()));
        Some(SourceRef { file, line, text })
    }
}

/// Where to look for sources: `--src` first, then next to the object,
/// then the current directory.
pub fn source_dirs(obj: Option<&std::path::Path>, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = extra.to_vec();
    dirs.extend(
        obj.and_then(std::path::Path::parent)
            .map(std::path::Path::to_owned),
    );
    dirs.push(PathBuf::from("."));
    dirs
}

/// The portability warnings of a program: possibly-NULL pointers used
/// without a test, found without the kernel.
pub fn warnings(program: &LinkedProgram, sources: &mut dyn Sources) -> Vec<Warning> {
    let text_at = |i: u32| {
        program
            .insns
            .iter()
            .find(|(j, _)| *j == i as usize)
            .map(|(j, insn)| insn.display(*j, program).to_string())
            .unwrap_or_default()
    };
    nullcheck::find_unchecked(&program.insns, program)
        .into_iter()
        .map(|u| {
            let source = sources.source(u.insn);
            let origin_source = sources.source(u.origin);
            let origin_at = origin_source
                .as_ref()
                .map_or_else(|| format!("insn {}", u.origin), ToString::to_string);
            let var = origin_source
                .as_ref()
                .and_then(|s| s.text.as_deref())
                .and_then(|t| t.split(" = ").next().filter(|l| l.len() < t.len()))
                .and_then(|l| l.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).find(|w| !w.is_empty() && *w != "mut"))
                .unwrap_or("ptr")
                .to_owned();
            let rust = origin_source.as_ref().is_some_and(|s| s.file.ends_with(".rs"));
            let here = source.as_ref().map_or_else(|| format!("insn {}", u.insn), ToString::to_string);
            Warning {
                kind: Kind::NullCheck,
                insn: u.insn,
                summary: format!(
                    "R{} may be NULL at {here}: it holds the result of {} ({origin_at}) and is used without a NULL test; this kernel proves it non-NULL (a constant key into an array), but older kernels reject the program",
                    u.reg, u.helper
                ),
                fix: if rust {
                    format!("test the result after the lookup at {origin_at}: `let Some({var}) = … else {{ return xdp_action::XDP_ABORTED }};`")
                } else {
                    format!("add `if (!{var}) return XDP_ABORTED;` after the lookup at {origin_at}")
                },
                text: text_at(u.insn),
                source,
                origin: Some(WarningOrigin {
                    insn: u.origin,
                    text: text_at(u.origin),
                    source: origin_source,
                }),
            }
        })
        .collect()
}

/// How a report is put together.
pub struct ReportInput<'a> {
    /// The section the program is in.
    pub section: String,
    /// The program's name.
    pub name: String,
    /// The parsed log, when there is one.
    pub log: Option<&'a ParsedLog>,
    /// The program from its object, when there is one.
    pub program: Option<&'a LinkedProgram>,
    /// Source directories.
    pub src_dirs: Vec<PathBuf>,
}

/// Builds a report from a parsed log and, if given, the program's object.
pub fn report(input: ReportInput<'_>) -> ProgramReport {
    let ReportInput {
        section,
        name,
        log,
        program,
        src_dirs,
    } = input;
    let mut sources = SourceMap::new(program, log, src_dirs);
    let diagnosis = log.and_then(|l| {
        diagnose::diagnose(diagnose::Input {
            log: l,
            sources: &mut sources,
            program: program.map(|p| diagnose::Program {
                insns: &p.insns,
                names: p,
            }),
        })
    });
    let mut warnings = program
        .map(|p| warnings(p, &mut sources))
        .unwrap_or_default();
    if let Some((site, d)) = &diagnosis {
        // The rejection itself is not also a warning.
        warnings.retain(|w| {
            !(d.kind == w.kind
                && (Some(w.insn) == site.insn
                    || d.origin.as_ref().map(|o| o.insn) == w.origin.as_ref().map(|o| o.insn)))
        });
    }
    let (error, diagnosis) = match diagnosis {
        Some((site, d)) => (Some(site), Some(d)),
        None => (None, None),
    };
    ProgramReport {
        section,
        name,
        accepted: log.and_then(ParsedLog::accepted),
        truncated: log.is_some_and(|l| l.truncated),
        errno: None,
        prog_type: PROG_TYPE_XDP,
        insn_count: program.map(LinkedProgram::slot_count),
        license: program.map(|p| p.license.clone()),
        stats: log
            .and_then(|l| l.stats.as_ref())
            .map(StatsReport::from)
            .unwrap_or_default(),
        log_level: None,
        error,
        diagnosis,
        warnings,
        log: None,
    }
}

/// `Permission denied (13)`, as iproute2 prints it.
pub fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{} ({n})", crate::error::strerror(n)),
        None => e.to_string(),
    }
}

/// Reads a saved log (streaming) and reports on it, with the program from
/// `obj` when given.
///
/// # Errors
///
/// [`LogError`] for read errors and input that is not a verifier log.
pub fn explain(
    reader: impl BufRead,
    obj: Option<(&BpfObject, &XdpProgram)>,
    src_dirs: &[PathBuf],
) -> Result<(ProgramReport, ParsedLog), LogError> {
    let parsed = log::parse_reader(reader)?;
    let linked = obj.and_then(|(o, p)| o.linked(p).ok());
    let src = source_dirs(obj.map(|(o, _)| o.path()), src_dirs);
    let (section, name) = match obj {
        Some((_, p)) => (p.section.clone(), p.name.clone()),
        None => (
            parsed
                .header
                .as_ref()
                .and_then(|h| h.section.clone())
                .unwrap_or_default(),
            String::new(),
        ),
    };
    let mut r = report(ReportInput {
        section,
        name,
        log: Some(&parsed),
        program: linked.as_ref(),
        src_dirs: src,
    });
    if let Some(h) = &parsed.header {
        r.errno = h.error.clone();
        r.license = r.license.or_else(|| h.license.clone());
        r.insn_count = r.insn_count.or(h.insns.map(|n| n as usize));
    }
    Ok((r, parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `check --kernel` reads back the reports its guests write: every
    /// field JSON carries survives the trip.
    #[test]
    fn a_report_reads_back_from_its_json() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/logs");
        for log in [
            "stats_kern_hash.iproute2.log",
            "null_check_spill.level2.log",
        ] {
            let text = std::fs::read(dir.join(log)).unwrap();
            let (r, _) = explain(text.as_slice(), None, &[]).unwrap();
            assert!(r.diagnosis.is_some(), "{log} has a diagnosis");
            let json = serde_json::to_value(&r).unwrap();
            let back: ProgramReport = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(serde_json::to_value(&back).unwrap(), json, "{log}");
        }
    }
}
