//! Text for the verifier workbench: the rejection report (as iproute2
//! starts it), the verifier log with a source line on every instruction,
//! the diagnosis and the warnings, and the `objdump` listing. Formatting
//! only; the records come from [`xdpstat_analysis::report`].

use std::io::{self, Write};

use xdpstat_analysis::obj::{LinkedProgram, SourceFiles};
use xdpstat_analysis::report::{ProgramReport, Warning, MAXINSNS};
use xdpstat_analysis::verifier::diagnose::{Diagnosis, ErrorSite, SourceRef, Sources};

fn source_text(s: &SourceRef) -> String {
    match &s.text {
        Some(text) => format!("{s}: {text}"),
        None => s.to_string(),
    }
}

/// The header iproute2 prints for a rejected program.
///
/// # Errors
///
/// Write errors.
pub fn write_header(out: &mut dyn Write, r: &ProgramReport) -> io::Result<()> {
    let what = if r.section.is_empty() {
        "Program".to_owned()
    } else {
        format!("Prog section '{}'", r.section)
    };
    match r.errno.as_deref() {
        Some(errno) => writeln!(out, "{what} rejected: {errno}!")?,
        None => writeln!(out, "{what} rejected!")?,
    }
    writeln!(out, " - Type:         {}", r.prog_type)?;
    match r.insn_count {
        Some(n) => writeln!(
            out,
            " - Instructions: {n} ({} over limit)",
            n.saturating_sub(MAXINSNS)
        )?,
        None => writeln!(out, " - Instructions: unknown (no object given)")?,
    }
    writeln!(
        out,
        " - License:      {}",
        r.license.as_deref().unwrap_or("unknown")
    )
}

/// The verifier log with each instruction line followed, on the same line,
/// by its source line. The kernel's own `; … @ file:line` lines are left
/// out, since every instruction now carries its line.
///
/// # Errors
///
/// Write errors.
pub fn write_annotated_log(
    out: &mut dyn Write,
    lines: impl Iterator<Item = String>,
    sources: &mut dyn Sources,
) -> io::Result<()> {
    for line in lines {
        let line = line.trim_end_matches(['\n', '\r']);
        if line.starts_with("; ") && line.contains(" @ ") || line.starts_with("libbpf: ") {
            continue;
        }
        let index = line.split_once(": (").and_then(|(n, rest)| {
            rest.get(2..4)
                .filter(|p| p.starts_with(')'))
                .and(n.parse::<u32>().ok())
        });
        match index.and_then(|i| sources.source(i)) {
            Some(s) => writeln!(out, "{line:<48} // {}", source_text(&s))?,
            None => writeln!(out, "{line}")?,
        }
    }
    Ok(())
}

fn write_site(
    out: &mut dyn Write,
    label: &str,
    insn: Option<u32>,
    text: Option<&str>,
    source: Option<&SourceRef>,
) -> io::Result<()> {
    match insn {
        Some(i) => writeln!(out, "  {label:<8}insn {i}: {}", text.unwrap_or(""))?,
        // The log names no instruction (a limit, a truncated log).
        None => writeln!(out, "  {label:<8}no instruction named in the log")?,
    }
    if let Some(s) = source {
        writeln!(out, "          {}", source_text(s))?;
    }
    Ok(())
}

/// The diagnosis block.
///
/// # Errors
///
/// Write errors.
pub fn write_diagnosis(out: &mut dyn Write, site: &ErrorSite, d: &Diagnosis) -> io::Result<()> {
    writeln!(out, "Diagnosis: {}", d.kind)?;
    writeln!(out, "  {}", d.summary)?;
    write_site(
        out,
        "error:",
        site.insn,
        site.text.as_deref(),
        site.source.as_ref(),
    )?;
    writeln!(out, "          {}", site.message)?;
    match &d.origin {
        Some(o) => {
            write_site(
                out,
                "origin:",
                Some(o.insn),
                Some(&o.text),
                o.source.as_ref(),
            )?;
            if !o.path.is_empty() {
                writeln!(out, "          via {}", o.path.join(", "))?;
            }
        }
        None => writeln!(out, "  origin: not found")?,
    }
    writeln!(out, "  fix:    {}", d.fix)?;
    writeln!(out, "  evidence: {}", d.evidence)
}

/// One portability warning.
///
/// # Errors
///
/// Write errors.
pub fn write_warning(out: &mut dyn Write, w: &Warning) -> io::Result<()> {
    writeln!(out, "Warning: {} (portability)", w.kind)?;
    writeln!(out, "  {}", w.summary)?;
    write_site(out, "at:", Some(w.insn), Some(&w.text), w.source.as_ref())?;
    if let Some(o) = &w.origin {
        write_site(
            out,
            "origin:",
            Some(o.insn),
            Some(&o.text),
            o.source.as_ref(),
        )?;
    }
    writeln!(out, "  fix:    {}", w.fix)
}

/// The statistics line.
pub fn stats_line(r: &ProgramReport) -> String {
    let s = &r.stats;
    let mut parts = Vec::new();
    if let Some(n) = s.insns_processed {
        parts.push(format!(
            "{n} insns processed{}",
            s.insn_limit
                .map(|l| format!(" (limit {l})"))
                .unwrap_or_default()
        ));
    }
    if let Some(n) = s.total_states {
        parts.push(format!(
            "{n} states ({} peak, {} max per insn)",
            s.peak_states.unwrap_or(0),
            s.max_states_per_insn.unwrap_or(0)
        ));
    }
    if let Some(t) = s.verification_time_usec {
        parts.push(format!("{t} us"));
    }
    if !s.stack_depth.is_empty() {
        parts.push(format!(
            "stack {} bytes",
            s.stack_depth
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("+")
        ));
    }
    if parts.is_empty() {
        "no statistics".to_owned()
    } else {
        parts.join(", ")
    }
}

/// A report without its log: verdict, statistics, diagnosis, warnings.
///
/// # Errors
///
/// Write errors.
pub fn write_summary(out: &mut dyn Write, r: &ProgramReport) -> io::Result<()> {
    write_summary_without_warnings(out, r)?;
    for w in &r.warnings {
        write_warning(out, w)?;
    }
    Ok(())
}

/// The verdict line and the diagnosis, without the portability warnings.
///
/// # Errors
///
/// Write errors.
pub fn write_summary_without_warnings(out: &mut dyn Write, r: &ProgramReport) -> io::Result<()> {
    let verdict = match r.accepted {
        Some(true) => "accepted",
        Some(false) => "REJECTED",
        None => "unknown (the log is truncated before the verifier's verdict)",
    };
    let name = if r.name.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.name)
    };
    writeln!(out, "{}{name}: {verdict}; {}", r.section, stats_line(r))?;
    if r.truncated && r.accepted.is_some() {
        writeln!(out, "  note: the log is truncated")?;
    }
    if let (Some(site), Some(d)) = (&r.error, &r.diagnosis) {
        write_diagnosis(out, site, d)?;
    }
    Ok(())
}

/// The `objdump` listing of a program: the source line where it changes,
/// then `index: instruction` in the kernel's syntax.
///
/// # Errors
///
/// Write errors.
pub fn write_objdump(
    out: &mut dyn Write,
    program: &LinkedProgram,
    files: &mut SourceFiles,
) -> io::Result<()> {
    writeln!(
        out,
        "Disassembly of section {} ({}):",
        program.program.section, program.program.name
    )?;
    writeln!(out, "{}:", program.program.name)?;
    let mut last: Option<(String, u32)> = None;
    for (index, insn) in &program.insns {
        // Line 0 marks code the compiler made up; it has no source.
        // DWARF's lines for the program's own function, as llvm-objdump
        // shows them; BTF's for the subprograms after it, or without DWARF.
        let table = if *index < program.dwarf_span && !program.dwarf_lines.is_empty() {
            &program.dwarf_lines
        } else {
            &program.lines
        };
        if let Some(entry) = table.starting_at(*index).filter(|e| e.line != 0) {
            let key = (entry.file.clone(), entry.line);
            if last.as_ref() != Some(&key) {
                let text = files
                    .line(&entry.file, entry.line)
                    .or_else(|| (!entry.text.is_empty()).then(|| entry.text.clone()));
                let file = entry.file.rsplit('/').next().unwrap_or(&entry.file);
                match text {
                    Some(t) => writeln!(out, "; {t} @ {file}:{}", entry.line)?,
                    None => writeln!(out, "; @ {file}:{}", entry.line)?,
                }
                last = Some(key);
            }
        }
        writeln!(out, "{index:>5}: {}", insn.display(*index, program))?;
    }
    Ok(())
}
