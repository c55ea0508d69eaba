//! Inlined call sites from DWARF: for an instruction that BTF line info
//! places in library code (an aya-ebpf map getter, a libbpf header), the
//! line in the program's own function that called it.
//!
//! BTF line info gives only the innermost line. In a Rust program every
//! helper call sits in an inlined aya-ebpf wrapper, so its BTF line is
//! `helpers.rs:10`; DWARF's `DW_TAG_inlined_subroutine` records the call
//! site (`DW_AT_call_file`, `DW_AT_call_line`) in the user's function.
//!
//! BPF objects are relocatable, with REL relocations: the addend is in the
//! field itself, so unrelocated DWARF already reads section offsets and
//! string offsets. Addresses of different sections overlap, which is why
//! the search starts from the program's own `DW_TAG_subprogram`, by name.

use std::{borrow::Cow, ops::Range};

use gimli::{AttributeValue, EndianSlice, LittleEndian};
use object::{Object as _, ObjectSection as _};

/// A call site: where an inlined call covering some instructions was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSite {
    /// How deep the inlined call is nested (1 for one made in the
    /// program's own function).
    pub depth: u32,
    /// Byte offsets in the program's function that the inlined call covers.
    pub range: Range<u64>,
    /// The file of the call.
    pub file: String,
    /// The line of the call.
    pub line: u32,
}

type R<'a> = EndianSlice<'a, LittleEndian>;

/// The DWARF sections of a (little-endian) object, as read, for
/// [`gimli::Dwarf`] to borrow.
struct Sections<'a>(Vec<(gimli::SectionId, Cow<'a, [u8]>)>);

impl<'a> Sections<'a> {
    fn read(elf: &'a [u8]) -> Option<Self> {
        let file = object::File::parse(elf).ok()?;
        if !file.is_little_endian() {
            return None;
        }
        let ids = [
            gimli::SectionId::DebugAbbrev,
            gimli::SectionId::DebugAddr,
            gimli::SectionId::DebugInfo,
            gimli::SectionId::DebugLine,
            gimli::SectionId::DebugLineStr,
            gimli::SectionId::DebugRanges,
            gimli::SectionId::DebugRngLists,
            gimli::SectionId::DebugStr,
            gimli::SectionId::DebugStrOffsets,
        ];
        Some(Self(
            ids.into_iter()
                .map(|id| {
                    let data = file
                        .section_by_name(id.name())
                        .and_then(|s| s.uncompressed_data().ok())
                        .unwrap_or(Cow::Borrowed(&[][..]));
                    (id, data)
                })
                .collect(),
        ))
    }

    fn dwarf(&self) -> Option<gimli::Dwarf<R<'_>>> {
        gimli::Dwarf::load(|id| -> Result<R<'_>, gimli::Error> {
            let data = self
                .0
                .iter()
                .find(|(s, _)| *s == id)
                .map_or(&[][..], |(_, d)| d.as_ref());
            Ok(EndianSlice::new(data, LittleEndian))
        })
        .ok()
    }
}

/// Every inlined call in `function`, with the byte offsets it covers
/// (relative to the function's start) and how deeply it is nested. Empty
/// when the object has no DWARF, or no subprogram of that name.
pub fn call_sites(elf: &[u8], function: &str) -> Vec<CallSite> {
    read(elf, function).unwrap_or_default()
}

fn read(elf: &[u8], function: &str) -> Option<Vec<CallSite>> {
    let sections = Sections::read(elf)?;
    let dwarf = sections.dwarf()?;
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        if let Some(sites) = sites_in_unit(&dwarf, &unit, function) {
            return Some(sites);
        }
    }
    None
}

fn attr_str(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    value: AttributeValue<R<'_>>,
) -> Option<String> {
    let s = dwarf.attr_string(unit, value).ok()?;
    Some(s.to_string_lossy().into_owned())
}

fn file_name(dwarf: &gimli::Dwarf<R<'_>>, unit: &gimli::Unit<R<'_>>, index: u64) -> Option<String> {
    let program = unit.line_program.as_ref()?;
    let header = program.header();
    let entry = header.file(index)?;
    let name = attr_str(dwarf, unit, entry.path_name())?;
    if name.starts_with('/') {
        return Some(name);
    }
    let dir = entry
        .directory(header)
        .and_then(|d| attr_str(dwarf, unit, d))
        .unwrap_or_default();
    let joined = if dir.is_empty() {
        name
    } else {
        format!("{}/{name}", dir.trim_end_matches('/'))
    };
    if joined.starts_with('/') {
        return Some(joined);
    }
    // Relative to the compilation directory.
    match unit.comp_dir.map(|d| d.to_string_lossy().into_owned()) {
        Some(comp) if !comp.is_empty() => Some(format!("{}/{joined}", comp.trim_end_matches('/'))),
        _ => Some(joined),
    }
}

fn sites_in_unit(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    function: &str,
) -> Option<Vec<CallSite>> {
    let mut cursor = unit.entries();
    let mut target: Option<(isize, u64)> = None;
    let mut sites = Vec::new();
    while let Ok(Some(entry)) = cursor.next_dfs() {
        let depth = entry.depth();
        if let Some((target_depth, _)) = target {
            if depth <= target_depth {
                break;
            }
        }

        match entry.tag() {
            gimli::DW_TAG_subprogram if target.is_none() => {
                let name = entry
                    .attr_value(gimli::DW_AT_name)
                    .and_then(|v| attr_str(dwarf, unit, v));
                let linkage = entry
                    .attr_value(gimli::DW_AT_linkage_name)
                    .and_then(|v| attr_str(dwarf, unit, v));
                let is_it =
                    name.as_deref() == Some(function) || linkage.as_deref() == Some(function);
                let has_code = entry.attr_value(gimli::DW_AT_low_pc).is_some()
                    || entry.attr_value(gimli::DW_AT_ranges).is_some();
                if is_it && has_code {
                    let start = dwarf
                        .die_ranges(unit, entry)
                        .ok()
                        .and_then(|mut r| r.next().ok().flatten())
                        .map(|r| r.begin)?;
                    target = Some((depth, start));
                }
            }
            gimli::DW_TAG_inlined_subroutine => {
                let Some((target_depth, start)) = target else {
                    continue;
                };
                let line = match entry.attr_value(gimli::DW_AT_call_line) {
                    Some(AttributeValue::Udata(l)) => l as u32,
                    Some(v) => v.udata_value().unwrap_or(0) as u32,
                    None => 0,
                };
                let file = entry
                    .attr_value(gimli::DW_AT_call_file)
                    .and_then(|v| match v {
                        AttributeValue::FileIndex(i) => Some(i),
                        v => v.udata_value(),
                    })
                    .and_then(|i| file_name(dwarf, unit, i));
                let (Some(file), true) = (file, line != 0) else {
                    continue;
                };
                if let Ok(mut ranges) = dwarf.die_ranges(unit, entry) {
                    while let Ok(Some(r)) = ranges.next() {
                        sites.push(CallSite {
                            depth: u32::try_from(depth - target_depth).unwrap_or(0),
                            range: r.begin.saturating_sub(start)..r.end.saturating_sub(start),
                            file: file.clone(),
                            line,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    target.map(|_| sites)
}

/// For the instruction at byte `offset`, the innermost inlined call that
/// was made from the program's own source: walking out from the library
/// code BTF names (`helpers.rs`), the first call site in a file of the
/// program's (`let cnt = MAP.get_ptr_mut(0)`).
pub fn user_call_site(sites: &[CallSite], offset: u64) -> Option<&CallSite> {
    sites
        .iter()
        .filter(|s| s.range.contains(&offset) && !is_library_path(&s.file))
        .max_by_key(|s| s.depth)
}

/// Whether a path is library code rather than the program's own source:
/// crates from the cargo registry, Rust's core library, system headers.
pub fn is_library_path(path: &str) -> bool {
    path.starts_with("/cargo/")
        || path.starts_with("/rustc/")
        || path.starts_with("/usr/")
        || path.contains("/registry/src/")
        || path.contains("/.cargo/")
        || path.contains("/rustlib/")
        || path.contains("library/core/src")
        || path.contains("library/alloc/src")
        || path.contains("compiler-builtins")
}

/// A row of DWARF's line table in the program's own function: the byte
/// offset (relative to the function's start) from which it holds, and
/// the source line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineRow {
    /// Byte offset in the function.
    pub offset: u64,
    /// The file, as DWARF names it (joined with its directory).
    pub file: String,
    /// The line; 0 for code the compiler made up.
    pub line: u32,
}

/// DWARF's line table for `function`, the source lines `llvm-objdump -S`
/// prints; empty without DWARF. BTF's line info places a function's first
/// instructions on its signature, DWARF on its opening brace or first
/// statement.
///
/// In a relocatable object the line table's addresses are section
/// offsets, so several sections' sequences overlap. Of the sequences that
/// cover the function, the one whose first line there is nearest the
/// function's `DW_AT_decl_file` and `DW_AT_decl_line` is its own.
pub fn line_rows(elf: &[u8], function: &str) -> Vec<LineRow> {
    read_rows(elf, function).unwrap_or_default()
}

fn read_rows(elf: &[u8], function: &str) -> Option<Vec<LineRow>> {
    let sections = Sections::read(elf)?;
    let dwarf = sections.dwarf()?;
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let Some((range, decl_file, decl_line)) = function_range(&dwarf, &unit, function) else {
            continue;
        };
        let program = unit.line_program.clone()?;
        let mut rows = program.rows();
        let mut sequences: Vec<Vec<(u64, u64, u32)>> = vec![Vec::new()];
        while let Ok(Some((_, row))) = rows.next_row() {
            let line = row.line().map_or(0, |l| l.get() as u32);
            if let Some(current) = sequences.last_mut() {
                current.push((row.address(), row.file_index(), line));
            }
            if row.end_sequence() {
                sequences.push(Vec::new());
            }
        }
        let best = sequences
            .iter()
            .filter_map(|seq| {
                let first = seq.iter().find(|(a, _, l)| range.contains(a) && *l != 0)?;
                // The function's own file first, then the nearest line.
                Some(((first.1 != decl_file, first.2.abs_diff(decl_line)), seq))
            })
            .min_by_key(|(distance, _)| *distance)?
            .1;
        let mut out = Vec::new();
        for &(address, file_index, line) in best {
            if !range.contains(&address) {
                continue;
            }
            let file = file_name(&dwarf, &unit, file_index).unwrap_or_default();
            out.push(LineRow {
                offset: address - range.start,
                file,
                line,
            });
        }
        return Some(out);
    }
    None
}

/// The byte range, declaration file index and declaration line of
/// `function`'s subprogram.
fn function_range(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    function: &str,
) -> Option<(Range<u64>, u64, u32)> {
    let mut cursor = unit.entries();
    while let Ok(Some(entry)) = cursor.next_dfs() {
        if entry.tag() != gimli::DW_TAG_subprogram {
            continue;
        }
        let name = entry
            .attr_value(gimli::DW_AT_name)
            .and_then(|v| attr_str(dwarf, unit, v));
        if name.as_deref() != Some(function) {
            continue;
        }
        let Some(range) = dwarf
            .die_ranges(unit, entry)
            .ok()
            .and_then(|mut r| r.next().ok().flatten())
        else {
            continue;
        };
        let decl_line = entry
            .attr_value(gimli::DW_AT_decl_line)
            .and_then(|v| v.udata_value())
            .unwrap_or(0) as u32;
        let decl_file = match entry.attr_value(gimli::DW_AT_decl_file) {
            Some(AttributeValue::FileIndex(i)) => i,
            Some(v) => v.udata_value().unwrap_or(0),
            None => 0,
        };
        return Some((range.begin..range.end, decl_file, decl_line));
    }
    None
}
