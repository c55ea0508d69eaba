//! Checks on an object's structure that aya-obj 0.3 relies on without
//! making them, so that a malformed object gets a reason instead of a
//! panic inside aya-obj: symbols inside their sections (aya-obj slices the
//! section with the symbol's value and size), a `.bss` of a size that can
//! be allocated, relocations in code that point at a function or at the
//! section with an address that can be computed, `.BTF` whose names are in
//! its string section and whose sizes fit in 32 bits, and `.BTF.ext`
//! records inside their section, of a size that can hold them, in
//! instruction order, naming strings `.BTF` has.
//!
//! Every object clang or bpf-linker writes keeps these rules, and the BTF
//! ones are the kernel's own (it refuses such BTF, and such line info), so
//! no object that could load is refused here.
//!
//! Each check reads the fields as aya-obj does (the ELF's byte order; the
//! record count of a `.BTF.ext` section in the host's, as aya-obj reads
//! it), so that what passes here is what aya-obj will see.

use object::{Object as _, ObjectSection as _, ObjectSymbol as _, SectionKind, SymbolKind};

/// `struct btf_header`.
const BTF_HEADER_LEN: usize = 24;
/// `struct bpf_func_info`, `struct bpf_line_info`, `struct bpf_core_relo`.
const FUNC_INFO_LEN: usize = 8;
const LINE_INFO_LEN: usize = 16;
const CORE_RELO_LEN: usize = 16;
/// The largest `.bss` aya-obj is let allocate (it zero-fills one of the
/// section's size); as large as any object may be.
const MAX_BSS: u64 = crate::input::MAX_OBJECT_BYTES;

/// Checks what aya-obj takes on trust; the reason when something is off.
pub(super) fn check(file: &object::File<'_>) -> Result<(), String> {
    symbols(file)?;
    relocations(file)?;
    let big_endian = !file.is_little_endian();
    let Some(btf) = file.section_by_name(".BTF") else {
        return Ok(());
    };
    let btf = btf.data().map_err(|e| format!(".BTF: {e}"))?;
    let strings = btf_strings(btf, big_endian)?;
    // xdpstat's own BTF reader reads this machine's byte order.
    if big_endian == cfg!(target_endian = "big") {
        btf_types(btf, strings)?;
    }
    if let Some(ext) = file.section_by_name(".BTF.ext") {
        btf_ext(
            ext.data().map_err(|e| format!(".BTF.ext: {e}"))?,
            big_endian,
            strings,
        )?;
    }
    Ok(())
}

fn symbols(file: &object::File<'_>) -> Result<(), String> {
    for section in file.sections() {
        if section.kind() == SectionKind::UninitializedData && section.size() > MAX_BSS {
            return Err(format!(
                "section {} claims {} bytes",
                section.name().unwrap_or("?"),
                section.size()
            ));
        }
    }
    for symbol in file.symbols() {
        let Some(index) = symbol.section_index() else {
            continue;
        };
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        let (start, size) = (symbol.address(), symbol.size());
        let symbol_name = match symbol.name() {
            Ok(name) if !name.is_empty() => name.to_owned(),
            _ => format!("#{}", symbol.index().0),
        };
        let section_name = section.name().unwrap_or("?");
        // aya-obj slices the data of legacy map sections by their symbols,
        // even of a `maps` section without any (`SHT_NOBITS`).
        let room = if section.kind() == SectionKind::UninitializedData
            && !section_name.starts_with("maps")
        {
            section.size()
        } else {
            section.data().map_or(0, |d| d.len() as u64)
        };
        if start < section.address() {
            return Err(format!(
                "symbol {symbol_name} (at {start:#x}) lies before the start of its section {section_name} (at {:#x})",
                section.address()
            ));
        }
        if start.checked_add(size).is_none_or(|end| end > room) {
            return Err(format!(
                "symbol {symbol_name} ({size} bytes at {start:#x}) runs past the end of its section {section_name} ({room} bytes)"
            ));
        }
    }
    Ok(())
}

/// Calls and code addresses resolve through their relocation's symbol: one
/// that lies in code must be a function or the section itself (with a
/// relocation type aya-obj knows), and a function must have a section.
fn relocations(file: &object::File<'_>) -> Result<(), String> {
    for section in file.sections() {
        if section.kind() != SectionKind::Text {
            continue;
        }
        for (offset, rel) in section.relocations() {
            let object::RelocationTarget::Symbol(index) = rel.target() else {
                continue;
            };
            let Ok(symbol) = file.symbol_by_index(index) else {
                continue;
            };
            let target = symbol
                .section_index()
                .and_then(|i| file.section_by_index(i).ok());
            let in_code = target
                .as_ref()
                .is_some_and(|s| s.kind() == SectionKind::Text);
            let at = format!(
                "the relocation at {offset:#x} in section {}",
                section.name().unwrap_or("?")
            );
            let problem = match symbol.kind() {
                SymbolKind::Text if target.is_none() => {
                    format!("refers to function #{} outside any section", index.0)
                }
                // A call (32 bits) or a code address (64), by the
                // relocation's type.
                SymbolKind::Section if in_code && !code_address_fits(&section, offset, rel.size()) => {
                    "points at code with an immediate that over- or underflows the address".to_owned()
                }
                SymbolKind::Section if in_code && !matches!(rel.size(), 32 | 64) => {
                    format!("has a type that is neither a call nor a code address ({:?})", rel.flags())
                }
                SymbolKind::Text | SymbolKind::Section => continue,
                kind if in_code => format!(
                    "refers to symbol #{} ({kind:?}) in code, which is neither a function nor the section",
                    index.0
                ),
                _ => continue,
            };
            return Err(format!("{at} {problem}"));
        }
    }
    Ok(())
}

/// Whether the instruction at `offset` that a relocation of `size` bits
/// points into its own code section gives an address aya-obj can compute:
/// a call's `imm` counts instructions from the next one, an ld_imm64's
/// `imm` bytes from the section's start.
fn code_address_fits(section: &object::Section<'_, '_>, offset: u64, size: u8) -> bool {
    let imm = section
        .data()
        .ok()
        .and_then(|d| {
            d.get(usize::try_from(offset).ok()?.checked_add(4)?..)?
                .get(..4)
        })
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_le_bytes);
    match (size, imm) {
        (32, Some(imm)) => (-1..i32::MAX).contains(&imm),
        (64, Some(imm)) => imm >= 0,
        _ => true,
    }
}

/// Every name a type holds is a string of the section, and every size
/// fits in the 32 bits aya-obj multiplies it in.
fn btf_types(btf: &[u8], strings: &[u8]) -> Result<(), String> {
    use crate::btf::{Btf, BtfError};
    // What this reader refuses, the kernel refuses too (kind 0, say, which
    // aya-obj takes).
    let types = Btf::parse(btf.to_vec()).map_err(|e| format!(".BTF: {e}"))?;
    for id in 1..=u32::try_from(types.len()).unwrap_or(u32::MAX) {
        let Ok(t) = types.type_by_id(id) else {
            continue;
        };
        if let Some(off) = types
            .name_offsets(&t)
            .find(|&off| !has_string(strings, off))
        {
            return Err(format!(
                ".BTF type {id} names string offset {off}, which .BTF does not have"
            ));
        }
        match types.size_of(id) {
            Ok(size) if size > u64::from(u32::MAX) => {
                return Err(format!(".BTF type {id} is {size} bytes"))
            }
            Err(BtfError::TooLarge(_)) => {
                return Err(format!(".BTF type {id} has a size that overflows"))
            }
            _ => {}
        }
    }
    Ok(())
}

fn u32_at(data: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let raw: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    })
}

/// The string section of `.BTF`, as aya-obj cuts it out.
fn btf_strings(btf: &[u8], big_endian: bool) -> Result<&[u8], String> {
    let field = |at| u32_at(btf, at, big_endian).map(|v| v as usize);
    if btf.len() < BTF_HEADER_LEN {
        return Err(format!(
            ".BTF is {} bytes, shorter than its header",
            btf.len()
        ));
    }
    let (hdr_len, str_off, str_len) = (field(4), field(16), field(20));
    let (Some(hdr_len), Some(str_off), Some(str_len)) = (hdr_len, str_off, str_len) else {
        return Err(".BTF header is cut short".to_owned());
    };
    let start = hdr_len + str_off;
    btf.get(start..start + str_len)
        .ok_or_else(|| format!(".BTF strings ({str_len} bytes at {start}) run past the section"))
}

/// A string aya-obj's `Btf::string_at` finds: inside the string section,
/// NUL-terminated there.
fn has_string(strings: &[u8], offset: u32) -> bool {
    strings
        .get(offset as usize..)
        .is_some_and(|tail| tail.contains(&0))
}

fn btf_ext(ext: &[u8], big_endian: bool, strings: &[u8]) -> Result<(), String> {
    let field = |at| u32_at(ext, at, big_endian).unwrap_or(0) as usize;
    if ext.len() < 8 {
        return Err(format!(
            ".BTF.ext is {} bytes, shorter than its header",
            ext.len()
        ));
    }
    let hdr_len = field(4);
    // 24 bytes without CO-RE relocations (older LLVM), 32 with.
    if hdr_len < 24 || hdr_len > ext.len() {
        return Err(format!(
            ".BTF.ext header claims {hdr_len} bytes of {}",
            ext.len()
        ));
    }
    // Fields past hdr_len read as 0, as in aya-obj.
    let header_field = |at: usize| if at + 4 <= hdr_len { field(at) } else { 0 };
    let tables = [
        ("func_info", 8, FUNC_INFO_LEN),
        ("line_info", 16, LINE_INFO_LEN),
        ("core_relo", 24, CORE_RELO_LEN),
    ];
    for (what, at, min_rec) in tables {
        let (line_info, core_relo) = (what == "line_info", what == "core_relo");
        let (off, len) = (hdr_len + header_field(at), header_field(at + 4));
        if (len > 0 && len < 4) || off + len > ext.len() {
            return Err(format!(
                ".BTF.ext {what} ({len} bytes at {off}) runs past the section"
            ));
        }
        if len == 0 {
            continue;
        }
        let rec_size = field(off);
        if rec_size < min_rec {
            return Err(format!(
                ".BTF.ext {what} records are {rec_size} bytes, less than {min_rec}"
            ));
        }
        // The per-section blocks, walked as aya-obj's `SecInfoIter` does.
        let data = &ext[off + 4..off + len];
        let mut pos = 0;
        while pos + 8 < data.len() {
            let name = u32_at(data, pos, big_endian).unwrap_or(0);
            let raw: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap_or_default();
            let num_info = u32::from_ne_bytes(raw) as usize;
            pos += 8;
            let end = num_info
                .checked_mul(rec_size)
                .and_then(|n| n.checked_add(pos))
                .filter(|&end| end <= data.len());
            let Some(end) = end else {
                return Err(format!(
                    ".BTF.ext {what}: {num_info} records of {rec_size} bytes run past the section"
                ));
            };
            if !has_string(strings, name) {
                return Err(format!(
                    ".BTF.ext {what} names its section by string offset {name}, which .BTF does not have"
                ));
            }
            let records = data[pos..end].chunks_exact(rec_size);
            let field_at = |rec: &[u8], at: usize| u32_at(rec, at, big_endian).unwrap_or(0);
            if line_info {
                // aya-obj rebases a function's lines on its first one.
                let offs: Vec<u32> = records.map(|r| field_at(r, 0)).collect();
                if let Some(w) = offs.windows(2).find(|w| w[1] < w[0]) {
                    return Err(format!(
                        ".BTF.ext line_info is out of order (insn offset {} after {})",
                        w[1], w[0]
                    ));
                }
            } else if core_relo {
                // The access string of each relocation.
                if let Some(off) = records
                    .map(|r| field_at(r, 8))
                    .find(|&o| !has_string(strings, o))
                {
                    return Err(format!(
                        ".BTF.ext core_relo has access string offset {off}, which .BTF does not have"
                    ));
                }
            }
            pos = end;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(hdr: &[u32], body: &[u32]) -> Vec<u8> {
        hdr.iter()
            .chain(body)
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    #[test]
    fn btf_ext_records_must_fit_and_name_a_string() {
        let strings = b"\0xdp\0";
        // magic/version/flags, hdr_len 32, func_info at 0 (len 4+8+8),
        // line_info empty.
        let good = ext(&[0x0001_eb9f, 32, 0, 20, 20, 0, 0, 0], &[8, 1, 1, 0, 7]);
        assert_eq!(btf_ext(&good, false, strings), Ok(()));
        let bad_name = ext(&[0x0001_eb9f, 32, 0, 20, 20, 0, 0, 0], &[8, 9, 1, 0, 7]);
        assert!(btf_ext(&bad_name, false, strings)
            .unwrap_err()
            .contains("string offset 9"));
        let too_many = ext(
            &[0x0001_eb9f, 32, 0, 20, 20, 0, 0, 0],
            &[8, 1, 0x4000_0000, 0, 7],
        );
        assert!(btf_ext(&too_many, false, strings)
            .unwrap_err()
            .contains("run past"));
        let zero_rec = ext(&[0x0001_eb9f, 32, 0, 20, 20, 0, 0, 0], &[0, 1, 1, 0, 7]);
        assert!(btf_ext(&zero_rec, false, strings)
            .unwrap_err()
            .contains("0 bytes"));
        // line_info (rec_size 16, one block of two records) out of order,
        // then in order.
        let lines = |first: u32| {
            ext(
                &[0x0001_eb9f, 32, 0, 0, 0, 44, 0, 0],
                &[16, 1, 2, first, 1, 0, 0, 8, 1, 0, 0],
            )
        };
        assert!(btf_ext(&lines(16), false, strings)
            .unwrap_err()
            .contains("out of order (insn offset 8 after 16)"));
        assert_eq!(btf_ext(&lines(0), false, strings), Ok(()));
        let past_end = ext(&[0x0001_eb9f, 32, 0, 200, 20, 0, 0, 0], &[8, 1, 1, 0, 7]);
        assert!(btf_ext(&past_end, false, strings).is_err());
        assert!(btf_ext(&good[..6], false, strings).is_err());
    }

    #[test]
    fn btf_strings_must_lie_in_the_section() {
        let mut btf = ext(&[0x0001_eb9f, 24, 0, 0, 0, 3], &[]);
        btf.extend_from_slice(b"\0a\0");
        assert_eq!(btf_strings(&btf, false), Ok(&b"\0a\0"[..]));
        btf.truncate(26);
        assert!(btf_strings(&btf, false).is_err());
        assert!(has_string(b"\0a\0", 1));
        assert!(!has_string(b"\0a", 1));
        assert!(!has_string(b"\0a\0", 3));
    }
}
