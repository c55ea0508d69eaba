//! `xdpstat_analysis::insn` against `llvm-objdump -d`, instruction by instruction.
//!
//! Objects: the committed `xdpstat/bpf/*.o`, every `*.o` under
//! `fixtures/build/`, and what this test builds itself from
//! `fixtures/insn/insn_mix.c` (clang, `-mcpu=v3`; and through LLVM IR and
//! `llc -mcpu=v4`) and from the assembly in [`FORMS_ASM`] (`llvm-mc`,
//! `-mcpu=v4`). For every executable section both disassemblers must list
//! the same slot indexes, and each pair of lines must agree after both are
//! rewritten into one canonical token form: registers, sizes, operators,
//! immediates, offsets, jump distances and relocation targets all count.
//!
//! llvm-objdump is `$XDPSTAT_LLVM_OBJDUMP`, else `llvm-objdump-22`, else
//! `llvm-objdump`. Without it or clang the test fails under `CI=true` or
//! `XDPSTAT_REQUIRE_PRIVILEGED=1`, and otherwise prints SKIPPED.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use object::{
    Architecture, Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget,
    SectionKind, SymbolKind,
};
use xdpstat_analysis::insn::{Insn, Resolver};

/// `R_BPF_64_64`: the relocation of an ld_imm64 (a map, or data in a section).
const R_BPF_64_64: u32 = 1;

/// What clang cannot be made to emit from C, in LLVM's assembler syntax.
const FORMS_ASM: &str = "
	.text
	.globl	forms
	.type	forms,@function
forms:
	r0 = *(u8 *)skb[12]
	r0 = *(u16 *)skb[r6]
	r0 = *(u32 *)skb[r7]
	r0 = *(u32 *)skb[-8]
	if r1 & 0x4 goto +1
	if r1 & r2 goto +1
	if w1 & 0x8 goto +1
	if w1 & w3 goto -2
	if r1 != 0xffffffff goto +0
	if r1 s<= r2 goto +0
	if r1 s>= -1 goto +0
	if w1 s>= w2 goto +0
	if w1 < w2 goto +0
	if w1 <= 5 goto +0
	if w1 >= 5 goto +0
	if w1 != w2 goto +0
	gotol +100
	gotol -3
	goto +0
	r1 = load_acquire((u64 *)(r2 + 0))
	w1 = load_acquire((u32 *)(r2 + 8))
	w1 = load_acquire((u16 *)(r2 + 2))
	w1 = load_acquire((u8 *)(r2 - 1))
	store_release((u64 *)(r1 + 0), r2)
	store_release((u32 *)(r1 + 4), w2)
	store_release((u16 *)(r1 + 6), w2)
	store_release((u8 *)(r1 - 7), w2)
	may_goto +2
	r1 = addr_space_cast(r2, 0, 1)
	r1 = addr_space_cast(r2, 1, 0)
	r1 = bswap16 r1
	r1 = bswap32 r1
	r1 = bswap64 r1
	r1 = le16 r1
	r1 = le32 r1
	r1 = le64 r1
	r1 = be16 r1
	w1 = -w1
	r1 = -r1
	r1 = (s8)r2
	r1 = (s16)r2
	r1 = (s32)r2
	w1 = (s8)w2
	w1 = (s16)w2
	r1 s/= r3
	r1 s%= -3
	w1 s/= 7
	w1 s%= w2
	r1 = *(s8 *)(r2 + 0)
	r1 = *(s16 *)(r2 - 2)
	r1 = *(s32 *)(r2 + 4)
	*(u8 *)(r10 - 1) = -1
	*(u16 *)(r10 - 2) = 65535
	*(u32 *)(r10 - 8) = -2147483648
	*(u64 *)(r10 - 16) = 2147483647
	lock *(u32 *)(r1 + 4) += w2
	lock *(u64 *)(r1 - 32768) ^= r2
	w2 = atomic_fetch_add((u32 *)(r1 + 4), w2)
	r2 = atomic_fetch_and((u64 *)(r1 + 32767), r2)
	w0 = cmpxchg32_32(r1 + 4, w0, w2)
	r0 = cmpxchg_64(r1 - 8, r0, r2)
	w2 = xchg32_32(r1 + 4, w2)
	r2 = xchg_64(r1 + 8, r2)
	r1 = 0xffffffffffffffff ll
	r1 = 0x8000000000000000 ll
	r1 = 0 ll
	callx r3
	gotox r3
	call 0x7fffffff
	call 212
	call 0
	r1 = r10
	w1 = 2147483647
	r1 = -2147483648
	r1 += -1
	r1 /= 7
	r1 %= r3
	w1 -= -7
	w1 <<= w2
	w1 s>>= 31
	exit
";

/// Whether a missing tool must fail the test rather than skip it.
fn required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
        || std::env::var_os("XDPSTAT_REQUIRE_PRIVILEGED").is_some()
}

/// `tool --version`, if the tool runs.
fn version(tool: &str) -> Option<String> {
    let out = Command::new(tool).arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The major version in `LLVM version 22.1.8` or `clang version 14.0.6`.
fn major(version_text: &str) -> Option<u32> {
    let at = version_text.find("version ")? + "version ".len();
    version_text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn run(cmd: &mut Command) -> Result<Vec<u8>, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn objects_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            objects_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "o") {
            out.push(path);
        }
    }
}

/// An LLVM tool of the same major version as llvm-objdump: `NAME-MAJOR`, or
/// plain `NAME` if it is that version.
fn llvm_tool(name: &str, major_version: u32) -> Option<String> {
    [format!("{name}-{major_version}"), name.to_owned()]
        .into_iter()
        .find(|tool| version(tool).and_then(|v| major(&v)) == Some(major_version))
}

/// Builds the test's own objects into a scratch directory. Returns them and
/// notes on what could not be built for lack of a tool.
fn build_fixtures(clang: &str, objdump_major: u32) -> (Vec<PathBuf>, Vec<String>) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("objdump_agreement");
    fs::create_dir_all(&dir).expect("create scratch directory");
    let source = workspace().join("fixtures/insn/insn_mix.c");
    let multiarch = Path::new("/usr/include/x86_64-linux-gnu");
    let clang_args = |extra: &[&str], out: &Path| {
        let mut cmd = Command::new(clang);
        cmd.args(["-O2", "-g", "-target", "bpf", "-mcpu=v3"]);
        if multiarch.is_dir() {
            cmd.arg("-I").arg(multiarch);
        }
        cmd.args(extra).arg("-c").arg(&source).arg("-o").arg(out);
        cmd
    };
    let mut objects = Vec::new();
    let mut notes = Vec::new();

    let v3 = dir.join("insn_mix.v3.o");
    run(&mut clang_args(&[], &v3)).unwrap_or_else(|e| panic!("{e}"));
    objects.push(v3);

    // cpu v4 (signed division, sign-extending loads, bswap) came in LLVM 18.
    match llvm_tool("llc", objdump_major).filter(|_| objdump_major >= 18) {
        Some(llc) => {
            let bitcode = dir.join("insn_mix.v4.bc");
            let v4 = dir.join("insn_mix.v4.o");
            run(&mut clang_args(&["-DINSN_MIX_V4", "-emit-llvm"], &bitcode))
                .unwrap_or_else(|e| panic!("{e}"));
            run(Command::new(&llc)
                .args(["-march=bpfel", "-mcpu=v4", "-filetype=obj", "-o"])
                .arg(&v4)
                .arg(&bitcode))
            .unwrap_or_else(|e| panic!("{e}"));
            objects.push(v4);
        }
        None => notes.push(format!(
            "insn_mix.c for cpu v4 not built: needs llc 18 or later of the same version as llvm-objdump ({objdump_major})"
        )),
    }

    // gotox, load_acquire, store_release and friends: checked with LLVM 22.
    match llvm_tool("llvm-mc", objdump_major).filter(|_| objdump_major >= 22) {
        Some(mc) => {
            let asm = dir.join("forms.s");
            let obj = dir.join("forms.o");
            fs::write(&asm, FORMS_ASM).expect("write forms.s");
            run(Command::new(&mc)
                .args(["-triple", "bpfel", "-mcpu=v4", "-filetype=obj", "-o"])
                .arg(&obj)
                .arg(&asm))
            .unwrap_or_else(|e| panic!("{e}"));
            objects.push(obj);
        }
        None => notes.push(format!(
            "forms.s not assembled: needs llvm-mc 22 or later of the same version as llvm-objdump ({objdump_major})"
        )),
    }
    (objects, notes)
}

/// One instruction line of llvm-objdump.
#[derive(Debug)]
struct DumpLine {
    text: String,
    /// `R_BPF_...` type and symbol of a relocation at this instruction.
    reloc: Option<(String, String)>,
}

/// Instruction lines by slot index.
type Listing = BTreeMap<usize, DumpLine>;

/// The instruction lines of `llvm-objdump -d -r`, by section.
fn parse_objdump(out: &str) -> Result<Vec<(String, Listing)>, String> {
    let mut sections: Vec<(String, Listing)> = Vec::new();
    let mut last: Option<usize> = None;
    for line in out.lines() {
        if let Some(name) = line
            .strip_prefix("Disassembly of section ")
            .and_then(|l| l.strip_suffix(':'))
        {
            sections.push((name.to_owned(), BTreeMap::new()));
            last = None;
            continue;
        }
        let Some((_, lines)) = sections.last_mut() else {
            continue;
        };
        let trimmed = line.trim_start();
        if line.starts_with('\t') && trimmed.contains("R_BPF_") {
            // "\t\t00000000000000f8:  R_BPF_64_64\tcounters"
            let (offset, rest) = trimmed
                .split_once(':')
                .ok_or_else(|| format!("odd relocation line {line:?}"))?;
            let offset = usize::from_str_radix(offset, 16)
                .map_err(|e| format!("relocation offset in {line:?}: {e}"))?;
            let mut words = rest.split_whitespace();
            let kind = words.next().unwrap_or_default().to_owned();
            let symbol = words.collect::<Vec<_>>().join(" ");
            let index =
                last.ok_or_else(|| format!("relocation before any instruction: {line:?}"))?;
            if offset / 8 != index {
                return Err(format!(
                    "relocation at byte {offset:#x} does not belong to instruction {index}"
                ));
            }
            if let Some(insn) = lines.get_mut(&index) {
                insn.reloc = Some((kind, symbol));
            }
            continue;
        }
        // "      31:\tr1 = 0x0 ll"
        let Some((index, text)) = trimmed.split_once(":\t") else {
            continue;
        };
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) || line == trimmed {
            continue;
        }
        let index: usize = index.parse().map_err(|e| format!("{line:?}: {e}"))?;
        lines.insert(
            index,
            DumpLine {
                text: text.trim().to_owned(),
                reloc: None,
            },
        );
        last = Some(index);
    }
    Ok(sections)
}

/// Names ld_imm64 relocations the way the objdump side is rewritten:
/// `map[SYMBOL]`, plus `+N` for an offset into the target.
struct Relocations(BTreeMap<usize, String>);

impl Resolver for Relocations {
    fn ld_imm64(&self, index: usize, insn: &Insn) -> Option<String> {
        let name = self.0.get(&index)?;
        Some(match insn.imm64() {
            0 => format!("map[{name}]"),
            off => format!("map[{name}]+{off}"),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Num(i128),
    Punct(String),
}

/// One instruction in canonical form: whether it is an ld_imm64 (numbers
/// are then 64-bit) and its tokens.
type Canon = (bool, Vec<Tok>);

/// Splits text into words, numbers and operators. A `+` or `-` directly
/// before a number (spaces allowed) is its sign, so `(r1 + 0x8)`,
/// `(r1 +8)` and `pc+8` all carry the number +8. Numbers are reduced to the
/// field they came from: 64 bits for ld_imm64, 32 bits otherwise (no other
/// field is wider), so that `0xffffffff` and `-0x1` agree as a 32-bit
/// immediate.
fn tokens(text: &str, wide: bool) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let number_at = |mut j: usize| {
        while chars.get(j) == Some(&' ') {
            j += 1;
        }
        chars.get(j).is_some_and(char::is_ascii_digit).then_some(j)
    };
    while let Some(&c) = chars.get(i) {
        let sign_then_digit = matches!(c, '+' | '-').then(|| number_at(i + 1)).flatten();
        if c == ' ' {
            i += 1;
        } else if c.is_ascii_digit() || sign_then_digit.is_some() {
            let negative = c == '-';
            let start = sign_then_digit.unwrap_or(i);
            let mut end = start;
            while chars.get(end).is_some_and(|c| c.is_ascii_alphanumeric()) {
                end += 1;
            }
            let digits: String = chars[start..end].iter().collect();
            let magnitude = match digits.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => digits.parse(),
            }
            .map_err(|e| format!("number {digits:?} in {text:?}: {e}"))?;
            let value = if negative {
                -i128::from(magnitude)
            } else {
                i128::from(magnitude)
            };
            let value = if wide {
                i128::from(value as u64)
            } else {
                i128::from(value as i32)
            };
            out.push(Tok::Num(value));
            i = end;
        } else if c.is_ascii_alphabetic() || c == '_' || c == '.' {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
            {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else if "+-*/%<>=!&|^~".contains(c) {
            let start = i;
            while chars.get(i).is_some_and(|c| "+-*/%<>=!&|^~".contains(*c)) {
                i += 1;
            }
            out.push(Tok::Punct(chars[start..i].iter().collect()));
        } else {
            out.push(Tok::Punct(c.to_string()));
            i += 1;
        }
    }
    Ok(out)
}

/// Rewrites that hold for both syntaxes, on tokens: `pc` before a jump or
/// call distance goes, and memory operations name their value registers
/// `rN` (a load, store or atomic encodes only the access size, so LLVM's
/// `w1` and the kernel's `r1` are the same register field).
fn common(mut toks: Vec<Tok>) -> Vec<Tok> {
    let memory = toks.windows(2).any(|w| {
        w == [Tok::Punct("*".into()), Tok::Punct(")".into())] || w[0] == Tok::Word("skb".into())
    });
    if memory {
        for tok in &mut toks {
            if let Tok::Word(w) = tok {
                if let Some(n) = w.strip_prefix('w') {
                    if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                        *w = format!("r{n}");
                    }
                }
            }
        }
    }
    let mut out = Vec::with_capacity(toks.len());
    for (i, tok) in toks.iter().enumerate() {
        let before_number = matches!(toks.get(i + 1), Some(Tok::Num(_)));
        if *tok == Tok::Word("pc".into()) && before_number {
            continue;
        }
        out.push(tok.clone());
    }
    out
}

/// The kernel syntax in canonical form. Only `call NAME#ID` changes: LLVM
/// prints the bare id, so the name goes.
fn canon_kernel(text: &str, wide: bool) -> Result<Canon, String> {
    let text = match text.strip_prefix("call ").and_then(|t| t.rsplit_once('#')) {
        Some((_, id)) => format!("call {id}"),
        None => text.to_owned(),
    };
    Ok((wide, common(tokens(&text, wide)?)))
}

/// llvm-objdump's syntax in canonical form: labels go, ld_imm64 loses its
/// `ll` and takes its relocation's symbol, LLVM's atomic spellings become
/// the kernel's, and `skb[rN]` shows its (always 0) immediate.
fn canon_llvm(line: &DumpLine) -> Result<Canon, String> {
    let mut text = line.text.clone();
    if text.ends_with('>') {
        if let Some(at) = text.rfind(" <") {
            text.truncate(at);
        }
    }
    let wide = text.ends_with(" ll");
    if wide {
        text.truncate(text.len() - 3);
        if let Some((kind, symbol)) = &line.reloc {
            if kind != "R_BPF_64_64" {
                return Err(format!("ld_imm64 with a {kind} relocation"));
            }
            let (lhs, value) = text
                .split_once(" = ")
                .ok_or_else(|| format!("odd ld_imm64 {text:?}"))?;
            let value = match tokens(value, true)?.as_slice() {
                [Tok::Num(0)] => String::new(),
                [Tok::Num(n)] => format!("+{n}"),
                other => return Err(format!("odd ld_imm64 value {other:?}")),
            };
            text = format!("{lhs} = map[{symbol}]{value}");
        }
    }
    // `r0 = cmpxchg_64(r1 + 0x8, r0, r2)` and `w2 = xchg32_32(r1 + 0x4, w2)`
    // take the kernel's `atomic64_cmpxchg((u64 *)(r1 +8), r0, r2)` shape.
    for (llvm, kernel, size) in [
        ("cmpxchg_64(", "atomic64_cmpxchg(", "u64"),
        ("cmpxchg32_32(", "atomic_cmpxchg(", "u32"),
        ("xchg_64(", "atomic64_xchg(", "u64"),
        ("xchg32_32(", "atomic_xchg(", "u32"),
    ] {
        if let Some(at) = text.find(llvm) {
            let args = &text[at + llvm.len()..];
            let (addr, rest) = args
                .split_once(',')
                .ok_or_else(|| format!("odd atomic {text:?}"))?;
            text = format!("{}{kernel}({size} *)({addr}),{rest}", &text[..at]);
            break;
        }
    }
    // The 64-bit fetch ops are atomic64_fetch_* in the kernel.
    if text.contains("(u64 *)") {
        text = text.replace("atomic_fetch_", "atomic64_fetch_");
    }
    if let Some(at) = text.find("skb[r") {
        if !text[at..].contains('+') {
            text = text.replacen(']', " + 0]", 1);
        }
    }
    Ok((wide, common(tokens(&text, wide)?)))
}

#[derive(Default)]
struct Tally {
    objects: usize,
    sections: usize,
    insns: usize,
    mismatches: Vec<String>,
    /// Kernel-syntax text of every instruction of the test's own objects.
    fixture_text: Vec<String>,
}

/// Compares one object. Errors are for objects that are not BPF at all.
fn compare_object(
    objdump: (&str, u32),
    path: &Path,
    tally: &mut Tally,
    is_fixture: bool,
) -> Result<(), String> {
    let data = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = object::File::parse(&*data).map_err(|e| format!("{}: {e}", path.display()))?;
    if file.architecture() != Architecture::Bpf || !file.is_little_endian() {
        return Err(format!(
            "{}: not a little-endian BPF object",
            path.display()
        ));
    }
    let mut cmd = Command::new(objdump.0);
    cmd.args(["-d", "-r", "--no-show-raw-insn"]);
    if objdump.1 < 15 {
        // Older llvm-objdump decodes the 32-bit atomics only with alu32 on.
        cmd.arg("--mattr=+alu32");
    }
    let dump = run(cmd.arg(path)).unwrap_or_else(|e| panic!("{e}"));
    let dumped = parse_objdump(&String::from_utf8_lossy(&dump))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut dumped: BTreeMap<String, Listing> = dumped.into_iter().collect();
    tally.objects += 1;
    let where_ = path.display();

    for section in file.sections() {
        if section.kind() != SectionKind::Text {
            continue;
        }
        let name = section.name().map_err(|e| e.to_string())?.to_owned();
        let bytes = section.data().map_err(|e| e.to_string())?;
        let lines = dumped.remove(&name).unwrap_or_default();
        if bytes.is_empty() && lines.is_empty() {
            continue;
        }
        tally.sections += 1;
        let mut relocs = BTreeMap::new();
        for (offset, reloc) in section.relocations() {
            let (RelocationFlags::Elf { r_type }, RelocationTarget::Symbol(sym)) =
                (reloc.flags(), reloc.target())
            else {
                continue;
            };
            if r_type != R_BPF_64_64 {
                continue;
            }
            let symbol = file.symbol_by_index(sym).map_err(|e| e.to_string())?;
            let target = if symbol.kind() == SymbolKind::Section {
                let index = symbol
                    .section_index()
                    .ok_or("section symbol without section")?;
                let section = file.section_by_index(index).map_err(|e| e.to_string())?;
                section.name().map_err(|e| e.to_string())?.to_owned()
            } else {
                symbol.name().map_err(|e| e.to_string())?.to_owned()
            };
            relocs.insert(usize::try_from(offset / 8).unwrap_or(usize::MAX), target);
        }
        let names = Relocations(relocs);

        let insns = match Insn::decode_all(bytes) {
            Ok(insns) => insns,
            Err(e) => {
                tally.mismatches.push(format!("{where_} {name}: {e}"));
                continue;
            }
        };
        let ours: BTreeSet<usize> = insns.iter().map(|(i, _)| *i).collect();
        let theirs: BTreeSet<usize> = lines.keys().copied().collect();
        if ours != theirs {
            tally.mismatches.push(format!(
                "{where_} {name}: slot indexes differ: only insn has {:?}, only llvm-objdump has {:?}",
                ours.difference(&theirs).collect::<Vec<_>>(),
                theirs.difference(&ours).collect::<Vec<_>>()
            ));
        }
        for (index, insn) in &insns {
            tally.insns += 1;
            let text = insn.display(*index, &names).to_string();
            if is_fixture {
                tally.fixture_text.push(text.clone());
            }
            let Some(line) = lines.get(index) else {
                continue;
            };
            let ours = canon_kernel(&text, insn.width() == 2);
            let theirs = canon_llvm(line);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) if a == b => {}
                _ => tally.mismatches.push(format!(
                    "{where_} {name} {index}: insn `{text}` vs llvm-objdump `{}`\n    {ours:?}\n    {theirs:?}",
                    line.text
                )),
            }
        }
    }
    for (name, lines) in dumped {
        if !lines.is_empty() {
            tally.mismatches.push(format!(
                "{where_}: llvm-objdump disassembled section {name}, which is not executable"
            ));
        }
    }
    Ok(())
}

/// What the test's own objects must contain, so that a compiler that
/// optimises a form away cannot make the comparison silently weaker.
const MUST_SEE_V3: &[&str] = &[
    "r1 = map[counters]",
    "map[flows]",
    "map[.rodata]+",
    "call bpf_map_lookup_elem#1",
    "call bpf_map_update_elem#2",
    "call pc",
    "lock *(u64 *)",
    "lock *(u32 *)",
    ") |= r",
    ") &= r",
    ") ^= r",
    "atomic64_fetch_add(",
    "atomic64_fetch_or(",
    "atomic64_fetch_and(",
    "atomic64_fetch_xor(",
    "= atomic_fetch_add((u32",
    "= atomic_fetch_xor((u32",
    "atomic64_cmpxchg(",
    "= atomic_cmpxchg((u32",
    "atomic64_xchg(",
    "= atomic_xchg((u32",
    "= be16 ",
    "= be32 ",
    "= be64 ",
    "*(u8 *)",
    "*(u16 *)",
    "*(u32 *)",
    "*(u64 *)",
    " s>>= ",
    " /= ",
    "if w",
    " s< ",
    " s> ",
    "if r1 > r",
    "goto pc-",
    "exit",
];

const MUST_SEE_V4: &[&str] = &[
    " %= ",
    " s/= ",
    " s%= ",
    "= bswap64 ",
    "= (s8)",
    "= *(s8 *)",
    "= *(s16 *)",
];

#[test]
fn normalizer_is_strict() {
    let k = |s: &str| canon_kernel(s, false).unwrap();
    let l = |s: &str| {
        canon_llvm(&DumpLine {
            text: s.to_owned(),
            reloc: None,
        })
        .unwrap()
    };
    // Same instructions, two syntaxes.
    assert_eq!(k("r6 = *(u32 *)(r1 +0)"), l("w6 = *(u32 *)(r1 + 0x0)"));
    assert_eq!(k("*(u32 *)(r10 -4) = r1"), l("*(u32 *)(r10 - 0x4) = w1"));
    assert_eq!(k("goto pc+1"), l("goto +0x1 <LBB0_3>"));
    assert_eq!(
        k("if r1 != 0xffffffff goto pc-2"),
        l("if r1 != -0x1 goto -0x2 <x+0x8>")
    );
    assert_eq!(k("call bpf_map_lookup_elem#1"), l("call 0x1"));
    assert_eq!(k("call pc-1"), l("call -0x1"));
    assert_eq!(
        k("r0 = atomic64_cmpxchg((u64 *)(r1 +24), r0, r3)"),
        l("r0 = cmpxchg_64(r1 + 0x18, r0, r3)")
    );
    assert_eq!(
        k("r2 = atomic_xchg((u32 *)(r1 +20), r2)"),
        l("w2 = xchg32_32(r1 + 0x14, w2)")
    );
    assert_eq!(
        k("r3 = atomic64_fetch_add((u64 *)(r1 +24), r3)"),
        l("r3 = atomic_fetch_add((u64 *)(r1 + 0x18), r3)")
    );
    assert_eq!(k("r0 = *(u16 *)skb[r6 + 0]"), l("r0 = *(u16 *)skb[r6]"));
    assert_eq!(
        canon_kernel("r1 = 0xffffffffffffffff", true).unwrap(),
        l("r1 = -0x1 ll")
    );
    assert_eq!(
        canon_kernel("r1 = map[.rodata]+4", true).unwrap(),
        canon_llvm(&DumpLine {
            text: "r1 = 0x4 ll".into(),
            reloc: Some(("R_BPF_64_64".into(), ".rodata".into())),
        })
        .unwrap()
    );
    // Anything that differs in the encoding must differ here too.
    assert_ne!(k("w1 += w2"), l("r1 += r2"));
    assert_ne!(k("if w1 > w2 goto pc+1"), l("if r1 > r2 goto +0x1"));
    assert_ne!(k("r1 = *(u32 *)(r2 +4)"), l("r1 = *(u32 *)(r2 + 0x8)"));
    assert_ne!(k("r1 = *(u32 *)(r2 +4)"), l("r1 = *(u16 *)(r2 + 0x4)"));
    assert_ne!(k("r1 = *(u32 *)(r2 +4)"), l("r1 = *(u32 *)(r3 + 0x4)"));
    assert_ne!(k("r1 = *(u32 *)(r2 +4)"), l("r1 = *(u32 *)(r2 - 0x4)"));
    assert_ne!(k("r1 s>>= 3"), l("r1 >>= 0x3"));
    assert_ne!(k("goto pc+1"), l("goto +0x2 <x>"));
    assert_ne!(k("call bpf_map_lookup_elem#1"), l("call 0x2"));
    assert_ne!(k("if r1 s< 0x5 goto pc+2"), l("if r1 < 0x5 goto +0x2 <x>"));
    assert_ne!(
        k("lock *(u64 *)(r1 +0) |= r2"),
        l("lock *(u64 *)(r1 + 0x0) &= r2")
    );
    assert_ne!(
        canon_kernel("r1 = 0x1", true).unwrap(),
        l("r1 = 0x100000001 ll")
    );
    assert_ne!(k("r1 = 0x0"), l("r1 = 0x0 ll"));
    assert_ne!(
        canon_kernel("r1 = map[counters]", true).unwrap(),
        canon_llvm(&DumpLine {
            text: "r1 = 0x0 ll".into(),
            reloc: Some(("R_BPF_64_64".into(), "flows".into())),
        })
        .unwrap()
    );
}

#[test]
fn objdump_agreement() {
    let objdump = std::env::var("XDPSTAT_LLVM_OBJDUMP")
        .ok()
        .into_iter()
        .chain(["llvm-objdump-22".to_owned(), "llvm-objdump".to_owned()])
        .find_map(|tool| version(&tool).map(|v| (tool, v)));
    let clang = version("clang").map(|v| ("clang", v));
    let (Some((objdump, objdump_version)), Some((clang, clang_version))) = (objdump, clang) else {
        assert!(
            !required(),
            "llvm-objdump and clang are needed (CI=true or XDPSTAT_REQUIRE_PRIVILEGED is set, so this test may not skip)"
        );
        eprintln!("SKIPPED objdump_agreement: llvm-objdump or clang is not installed");
        return;
    };
    let objdump_major = major(&objdump_version).expect("llvm-objdump version");
    let first_line = |v: &str| {
        v.lines()
            .find(|l| l.contains("version"))
            .unwrap_or(v)
            .trim()
            .to_owned()
    };

    let mut committed = Vec::new();
    objects_under(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("bpf"),
        &mut committed,
    );
    assert!(!committed.is_empty(), "no committed objects in xdpstat/bpf");
    let mut corpus = Vec::new();
    objects_under(&workspace().join("fixtures/build"), &mut corpus);
    let (built, notes) = build_fixtures(clang, objdump_major);

    let mut tally = Tally::default();
    let mut skipped = Vec::new();
    for path in committed.iter().chain(&corpus) {
        if let Err(e) = compare_object((&objdump, objdump_major), path, &mut tally, false) {
            skipped.push(e);
        }
    }
    for path in &built {
        compare_object((&objdump, objdump_major), path, &mut tally, true)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    eprintln!(
        "objdump_agreement: {} ({}), fixtures built by {}",
        objdump,
        first_line(&objdump_version),
        first_line(&clang_version)
    );
    eprintln!(
        "objdump_agreement: compared {} instructions in {} sections of {} objects ({} committed, {} found under fixtures/build, {} built here)",
        tally.insns,
        tally.sections,
        tally.objects,
        committed.len(),
        corpus.len(),
        built.len()
    );
    for note in notes.iter().chain(&skipped) {
        eprintln!("objdump_agreement: note: {note}");
    }

    let text = tally.fixture_text.join("\n");
    let mut must_see = MUST_SEE_V3.to_vec();
    if built.iter().any(|p| p.ends_with("insn_mix.v4.o")) {
        must_see.extend_from_slice(MUST_SEE_V4);
    }
    let missing: Vec<&str> = must_see.into_iter().filter(|s| !text.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "the built fixtures lack these forms, so the comparison covers less than it should: {missing:?}"
    );

    let shown: Vec<&String> = tally.mismatches.iter().take(40).collect();
    assert!(
        tally.mismatches.is_empty(),
        "{} disagreements with {objdump}, the first {}:\n{}",
        tally.mismatches.len(),
        shown.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
