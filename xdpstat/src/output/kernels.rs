//! `check --kernel`'s output: one row per kernel and program, the
//! portability warnings with the kernels that bore them out, and JSON.

use std::io::{self, Write};

use serde::Serialize;
use xdpstat_analysis::report::ProgramReport;

use super::report::write_warning;
use crate::model::kernels::KernelCheck;

/// `{"kernels": [{"kernel": …, "host": …, "programs": [...]}]}`, each
/// `programs` as plain `check --json` prints it.
#[derive(Serialize)]
pub struct KernelsJson<'a> {
    kernels: Vec<KernelJson<'a>>,
}

#[derive(Serialize)]
struct KernelJson<'a> {
    kernel: &'a str,
    host: bool,
    programs: &'a [ProgramReport],
}

impl<'a> KernelsJson<'a> {
    /// The JSON of `checks`.
    pub fn new(checks: &'a [KernelCheck]) -> Self {
        Self {
            kernels: checks
                .iter()
                .map(|c| KernelJson {
                    kernel: &c.kernel,
                    host: c.host,
                    programs: &c.programs,
                })
                .collect(),
        }
    }
}

/// `6.1.0-57-amd64`, or `6.18.0 (host)`.
pub fn label(check: &KernelCheck) -> String {
    if check.host {
        format!("{} (host)", check.kernel)
    } else {
        check.kernel.clone()
    }
}

fn verdict(r: &ProgramReport) -> &'static str {
    match r.accepted {
        Some(true) => "accepted",
        Some(false) => "REJECTED",
        None => "unknown",
    }
}

/// The diagnosis in a cell: kind, source line, message, and the origin's
/// line.
fn diagnosis_cell(r: &ProgramReport) -> String {
    let Some(d) = &r.diagnosis else {
        return if r.accepted == Some(true) {
            "-".to_owned()
        } else {
            r.error
                .as_ref()
                .map_or_else(|| "-".to_owned(), |e| e.message.clone())
        };
    };
    let mut cell = d.kind.to_string();
    if let Some(site) = &r.error {
        if let Some(src) = &site.source {
            cell.push_str(&format!(" at {src}"));
        }
        cell.push_str(&format!(": {}", site.message));
    }
    if let Some(src) = d.origin.as_ref().and_then(|o| o.source.as_ref()) {
        cell.push_str(&format!(" (value from {src})"));
    }
    cell
}

/// One row per kernel and program: kernel, program, verdict, instructions
/// processed, diagnosis.
///
/// # Errors
///
/// Write errors.
pub fn write_table(out: &mut dyn Write, checks: &[KernelCheck]) -> io::Result<()> {
    let header = ["KERNEL", "PROGRAM", "VERDICT", "INSNS", "DIAGNOSIS"];
    let rows: Vec<[String; 5]> = checks
        .iter()
        .flat_map(|c| {
            c.programs.iter().map(move |r| {
                [
                    label(c),
                    r.name.clone(),
                    verdict(r).to_owned(),
                    r.stats
                        .insns_processed
                        .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                    diagnosis_cell(r),
                ]
            })
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            match i {
                0 => s.push_str(&format!("{cell}{}", " ".repeat(pad))),
                // Numbers right-aligned.
                3 => s.push_str(&format!("  {}{cell}", " ".repeat(pad))),
                4 => s.push_str(&format!("  {cell}")),
                _ => s.push_str(&format!("  {cell}{}", " ".repeat(pad))),
            }
        }
        s.trim_end().to_owned()
    };
    writeln!(out, "{}", line(header))?;
    for row in &rows {
        writeln!(out, "{}", line(row.each_ref().map(String::as_str)))?;
    }
    Ok(())
}

/// Each program's portability warnings, once, each followed by what the
/// kernels checked made of the program.
///
/// # Errors
///
/// Write errors.
pub fn write_checked_warnings(out: &mut dyn Write, checks: &[KernelCheck]) -> io::Result<()> {
    let Some(first) = checks.first() else {
        return Ok(());
    };
    for r in &first.programs {
        if r.warnings.is_empty() {
            continue;
        }
        let mut rejected = Vec::new();
        let mut accepted = Vec::new();
        for c in checks {
            let Some(same) = c.programs.iter().find(|p| p.name == r.name) else {
                continue;
            };
            match same.accepted {
                Some(true) => accepted.push(label(c)),
                _ => rejected.push(label(c)),
            }
        }
        writeln!(out)?;
        for w in &r.warnings {
            write_warning(out, w)?;
        }
        let mut said = Vec::new();
        if !rejected.is_empty() {
            said.push(format!("rejected by {}", rejected.join(", ")));
        }
        if !accepted.is_empty() {
            said.push(format!("accepted by {}", accepted.join(", ")));
        }
        writeln!(
            out,
            "  checked: {} on {} kernel(s): {}",
            r.name,
            checks.len(),
            said.join("; ")
        )?;
    }
    Ok(())
}
