//! Any BPF object file: checking that it is one, finding its XDP programs,
//! and reading each program as the verifier will see it (linked
//! instructions, map names, BTF line info). Syscall-free.
//!
//! Like `ip link set dev IFACE xdp obj OBJ sec NAME`, xdpstat loads a
//! section whose name is not a known program type (the tutorial's
//! `SEC("stats")`) as XDP. aya only knows sections by their conventional
//! names, so such sections are renamed to `xdp` in a copy of the object,
//! together with the BTF.ext records that name them, before aya sees it.

use std::{
    collections::{HashMap, HashSet},
    io,
    path::{Path, PathBuf},
};

use aya_obj::generated::bpf_insn;
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, SectionKind};
use thiserror::Error;

use crate::{
    input::{self, InputError},
    insn::{DecodeError, Insn, Resolver},
};
use guard::AyaPanic;

pub mod dwarf;
pub mod guard;
mod validate;

/// `EM_BPF`.
const EM_BPF: u16 = 247;
/// What every ELF file starts with.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// A problem with the object file itself.
#[derive(Debug, Error)]
pub enum ObjectError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A device, FIFO or directory, or a file too big to be an object.
    #[error("{source}; give the .o file that clang -target bpf or bpf-linker produced")]
    Unusable {
        /// What is wrong with it.
        #[source]
        source: InputError,
    },
    /// Not an ELF file, or a truncated or corrupt one.
    #[error("{} is not a valid ELF object ({reason}); give the .o file that clang -target bpf or bpf-linker produced", path.display())]
    NotElf {
        /// The file.
        path: PathBuf,
        /// What the ELF reader said.
        reason: String,
    },
    /// An ELF file for another machine.
    #[error("{} is an ELF object for {machine}, not BPF; build it with clang -target bpf (or rustc --target bpfel-unknown-none)", path.display())]
    NotBpf {
        /// The file.
        path: PathBuf,
        /// The machine it is for.
        machine: String,
    },
    /// No section holds an XDP program.
    #[error("{} has no XDP program (its program sections: {})", path.display(), if sections.is_empty() { "none".to_owned() } else { sections.join(", ") })]
    NoXdp {
        /// The file.
        path: PathBuf,
        /// Its executable sections.
        sections: Vec<String>,
    },
    /// Sections hold code, but their functions have no type (older clang
    /// wrote `STT_NOTYPE` symbols), so no loader can tell the programs.
    #[error("{}: the functions in {} have no symbol type (STT_NOTYPE, as clang before 10 wrote them), so neither xdpstat nor libbpf can find its programs; rebuild it with a newer clang", path.display(), sections.join(", "))]
    UntypedFunctions {
        /// The file.
        path: PathBuf,
        /// The sections.
        sections: Vec<String>,
    },
    /// The program calls a function the object does not define.
    #[error("{}: {program} calls {callee}, which the object does not define and no loader can resolve (libbpf refuses it too); was its header missing when it was built? Define {callee}, or make it a macro or a static inline function", path.display())]
    UndefinedCall {
        /// The file.
        path: PathBuf,
        /// The program.
        program: String,
        /// The function it calls.
        callee: String,
    },
    /// The program calls a kernel function (kfunc) this kernel lacks.
    #[error("{}: {program} calls the kernel function {kfunc} (an `extern … __ksym`), which this kernel does not have: neither vmlinux's BTF nor a loaded module's has it; load the module that provides it (`modprobe`), or check on a kernel that has it", path.display())]
    MissingKfunc {
        /// The file.
        path: PathBuf,
        /// The program.
        program: String,
        /// The kfunc.
        kfunc: String,
    },
    /// `--sec` names no section of the object.
    #[error("{} has no section '{name}' (its XDP sections: {})", path.display(), available.join(", "))]
    NoSuchSection {
        /// The file.
        path: PathBuf,
        /// The section asked for.
        name: String,
        /// The XDP sections there are.
        available: Vec<String>,
    },
    /// Several XDP programs and no `--sec` to choose.
    #[error("{} has several XDP programs; choose one with --sec: {}", path.display(), choices.join(", "))]
    Ambiguous {
        /// The file.
        path: PathBuf,
        /// `section (function)` for each.
        choices: Vec<String>,
    },
    /// The ELF structure is inconsistent in a way that would crash aya-obj,
    /// or aya-obj failed on it.
    #[error("{} is malformed: {reason}; rebuild it with clang -target bpf or bpf-linker", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is inconsistent.
        reason: String,
    },
    /// aya-obj could not make sense of the object.
    #[error("{}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The instructions do not decode.
    #[error("{}: {source}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: DecodeError,
    },
}

impl ObjectError {
    /// Whether it is the input's fault (exit 2). Every kind is, today:
    /// the file, its ELF, or the section asked for. A new kind must say.
    pub fn is_usage(&self) -> bool {
        match self {
            Self::Read { .. }
            | Self::Unusable { .. }
            | Self::NotElf { .. }
            | Self::NotBpf { .. }
            | Self::NoXdp { .. }
            | Self::UntypedFunctions { .. }
            | Self::UndefinedCall { .. }
            | Self::NoSuchSection { .. }
            | Self::Ambiguous { .. }
            | Self::Malformed { .. }
            | Self::Parse { .. }
            | Self::Decode { .. } => true,
            // The kernel's lack, not the input's fault.
            Self::MissingKfunc { .. } => false,
        }
    }
}

/// How a section came to be treated as XDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpBy {
    /// Its name says so (`xdp`, `xdp.frags`, `xdp/…`).
    Name,
    /// Its name is no known program type, so it is taken as XDP, as
    /// `ip link … xdp obj … sec NAME` does.
    Assumed,
}

/// One XDP program: a function in an executable section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpProgram {
    /// The ELF section, as named in the file.
    pub section: String,
    /// The function (the program's name).
    pub name: String,
    /// Why it counts as XDP.
    pub by: XdpBy,
}

/// A BPF object file, read and checked.
#[derive(Debug)]
pub struct BpfObject {
    path: PathBuf,
    bytes: Vec<u8>,
    programs: Vec<XdpProgram>,
    license: String,
    /// The bytes aya is given for the programs of each section: `bytes`
    /// with only that section left as a program section, named as aya
    /// parses XDP ([`aya_view`]).
    for_aya: HashMap<String, Vec<u8>>,
    /// The functions each program calls that the object does not define,
    /// by program name.
    externs: HashMap<String, Vec<String>>,
    /// The kfunc calls of every executable section, which the kernel's
    /// BTF ids resolve ([`KernelFeatures::kfuncs`]).
    kfunc_calls: Vec<KfuncCall>,
    /// Whether `.BTF.ext` has CO-RE relocations.
    core_relocations: bool,
    /// Each program's own instruction slots (its symbol's size / 8), by
    /// program name.
    slots: HashMap<String, usize>,
    /// The maps of each section's view, by name, as aya-obj parsed them.
    maps: HashMap<String, Vec<(String, aya_obj::Map)>>,
}

/// A call of a kernel function (kfunc): the instruction clang left as
/// `call -1`, with a relocation against the extern.
#[derive(Clone, Debug)]
struct KfuncCall {
    /// The section it is in.
    section: String,
    /// The call instruction's offset in the file.
    file_offset: usize,
    /// The kfunc.
    name: String,
}

fn section_is_xdp_by_name(name: &str) -> bool {
    let kind = name.split('/').next().unwrap_or(name);
    (kind == "xdp" || kind == "xdp.frags")
        && matches!(name.split('/').nth(1), None | Some("cpumap" | "devmap"))
}

/// Section name prefixes of other program types, which xdpstat leaves alone.
fn section_is_other_type(name: &str) -> bool {
    const OTHER: &[&str] = &[
        "kprobe",
        "kretprobe",
        "uprobe",
        "uretprobe",
        "tp_btf",
        "tracepoint",
        "tp",
        "raw_tp",
        "raw_tracepoint",
        "socket",
        "sk_msg",
        "sk_skb",
        "sockops",
        "classifier",
        "tc",
        "tcx",
        "cgroup",
        "cgroup_skb",
        "lirc_mode2",
        "perf_event",
        "fentry",
        "fexit",
        "freplace",
        "lsm",
        "iter",
        "sk_lookup",
        "sk_reuseport",
        "flow_dissector",
        "struct_ops",
        "syscall",
        "netfilter",
        "action",
        "uprobe.s",
        "fentry.s",
        "fexit.s",
        "lsm.s",
        "iter.s",
        "ksyscall",
        "kretsyscall",
        "usdt",
        "kprobe.multi",
        "kretprobe.multi",
    ];
    let kind = name.split(['/', '.']).next().unwrap_or(name);
    OTHER.contains(&kind) || name.starts_with("cgroup/")
}

impl BpfObject {
    /// Reads and checks an object file.
    ///
    /// # Errors
    ///
    /// [`ObjectError`] for a missing, non-ELF, truncated or non-BPF file,
    /// or one without XDP programs.
    pub fn open(path: &Path) -> Result<Self, ObjectError> {
        let input_error = |e: InputError| match e {
            InputError::Open { path, source } => ObjectError::Read { path, source },
            e => ObjectError::Unusable { source: e },
        };
        let (mut file, size) = input::open(path, input::MAX_OBJECT_BYTES).map_err(input_error)?;
        // The magic first: a big file that is no object is not read.
        let magic =
            input::read_prefix(&mut file, ELF_MAGIC.len()).map_err(|source| ObjectError::Read {
                path: path.to_owned(),
                source,
            })?;
        if magic != ELF_MAGIC {
            return Err(ObjectError::NotElf {
                path: path.to_owned(),
                reason: "no ELF magic at its start".to_owned(),
            });
        }
        let bytes = input::read_rest(path, file, size, magic, input::MAX_OBJECT_BYTES)
            .map_err(input_error)?;
        Self::from_bytes(path, bytes)
    }

    /// Checks object bytes that came from `path`.
    ///
    /// # Errors
    ///
    /// As [`BpfObject::open`].
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, ObjectError> {
        let not_elf = |reason: String| ObjectError::NotElf {
            path: path.to_owned(),
            reason,
        };
        if !bytes.starts_with(ELF_MAGIC) {
            return Err(not_elf("no ELF magic at its start".to_owned()));
        }
        let file =
            object::File::parse(&*bytes).map_err(|e| not_elf(format!("{e}; is it truncated?")))?;
        let machine = elf_machine(&bytes);
        if machine != Some(EM_BPF) {
            return Err(ObjectError::NotBpf {
                path: path.to_owned(),
                machine: format!("{:?}", file.architecture()).to_lowercase(),
            });
        }
        // Section data must lie inside the file: a truncated object fails
        // here rather than deep inside aya.
        for section in file.sections() {
            if section.kind() != SectionKind::UninitializedData && section.data().is_err() {
                return Err(not_elf(format!(
                    "section {} extends past the end of the file; is it truncated?",
                    section.name().unwrap_or("?")
                )));
            }
        }
        let malformed = |reason: String| ObjectError::Malformed {
            path: path.to_owned(),
            reason,
        };
        validate::check(&file).map_err(malformed)?;
        let mut programs = Vec::new();
        let mut slots = HashMap::new();
        let mut executable = Vec::new();
        for section in file.sections() {
            let Ok(name) = section.name() else { continue };
            if section.kind() != SectionKind::Text || name == ".text" || name.is_empty() {
                continue;
            }
            executable.push(name.to_owned());
            let by = if section_is_xdp_by_name(name) {
                XdpBy::Name
            } else if section_is_other_type(name) {
                continue;
            } else {
                XdpBy::Assumed
            };
            for symbol in file.symbols() {
                if symbol.section_index() == Some(section.index())
                    && symbol.kind() == object::SymbolKind::Text
                    && symbol.is_global()
                {
                    if let Ok(function) = symbol.name() {
                        slots.insert(function.to_owned(), (symbol.size() / 8) as usize);
                        programs.push(XdpProgram {
                            section: name.to_owned(),
                            name: function.to_owned(),
                            by,
                        });
                    }
                }
            }
        }
        if programs.is_empty() {
            let untyped: Vec<String> = file
                .sections()
                .filter(|s| {
                    s.name().is_ok_and(|n| executable.iter().any(|e| e == n)) && s.size() > 0
                })
                .filter(|s| {
                    file.symbols().any(|sym| {
                        sym.section_index() == Some(s.index())
                            && sym.kind() == object::SymbolKind::Unknown
                            && sym.is_global()
                    })
                })
                .filter_map(|s| s.name().ok().map(str::to_owned))
                .collect();
            if !untyped.is_empty() {
                return Err(ObjectError::UntypedFunctions {
                    path: path.to_owned(),
                    sections: untyped,
                });
            }
            return Err(ObjectError::NoXdp {
                path: path.to_owned(),
                sections: executable,
            });
        }
        let btf = file.section_by_name(".BTF").and_then(|s| s.data().ok());
        // kfunc externs are described in BTF's `.ksyms` section.
        let ksym_funcs: HashSet<String> = btf
            .and_then(|b| crate::btf::Btf::parse(b.to_vec()).ok())
            .map(|b| b.ksym_funcs().into_iter().collect())
            .unwrap_or_default();
        let externs = undefined_calls(&file, &programs, &ksym_funcs);
        let kfunc_calls = kfunc_calls(&file, &ksym_funcs);
        let core_relocations = file
            .section_by_name(".BTF.ext")
            .and_then(|s| s.data().ok())
            .is_some_and(has_core_relocations);
        let license = file
            .section_by_name("license")
            .and_then(|s| s.data().ok())
            .map(|d| String::from_utf8_lossy(d.split(|&b| b == 0).next().unwrap_or(d)).into_owned())
            .unwrap_or_default();
        // Each section's programs get a view of their own, so that no two
        // sections share a name in aya's eyes (their BTF.ext records are
        // found by section name), and no other section, XDP or not, can
        // stop aya from parsing the object.
        let mut for_aya = HashMap::new();
        let mut maps = HashMap::new();
        for program in &programs {
            if maps.contains_key(&program.section) {
                continue;
            }
            let others: HashSet<&str> = executable
                .iter()
                .map(String::as_str)
                .filter(|s| *s != program.section)
                .collect();
            let rename = program.by == XdpBy::Assumed;
            // An object of one program section that aya takes by its name
            // is its own view: no copy of it is kept.
            let ksyms = !ksym_funcs.is_empty();
            let view = if others.is_empty() && !rename && !ksyms {
                None
            } else {
                Some(
                    aya_view(&bytes, &program.section, rename, &others, ksyms).map_err(
                        |reason| ObjectError::Parse {
                            path: path.to_owned(),
                            reason,
                        },
                    )?,
                )
            };
            // What aya-obj cannot parse fails here, for every command alike,
            // rather than in whichever later step parses it first.
            match guard::aya(|| aya_obj::Object::parse(view.as_deref().unwrap_or(&bytes))) {
                Err(panic) => return Err(malformed(panic.to_string())),
                Ok(Err(e)) => {
                    return Err(ObjectError::Parse {
                        path: path.to_owned(),
                        reason: format!(
                            "aya-obj cannot parse section {}: {}",
                            program.section,
                            crate::error::chain(&e)
                        ),
                    })
                }
                Ok(Ok(parsed)) => {
                    let mut section_maps: Vec<(String, aya_obj::Map)> =
                        parsed.maps.into_iter().collect();
                    section_maps.sort_by(|a, b| a.0.cmp(&b.0));
                    maps.insert(program.section.clone(), section_maps);
                }
            }
            if let Some(view) = view {
                for_aya.insert(program.section.clone(), view);
            }
        }
        Ok(Self {
            path: path.to_owned(),
            bytes,
            programs,
            license,
            for_aya,
            externs,
            kfunc_calls,
            core_relocations,
            slots,
            maps,
        })
    }

    /// Refuses a program that calls a function the object does not define,
    /// naming it, as libbpf does (aya says only "function 0x60 not found").
    ///
    /// # Errors
    ///
    /// [`ObjectError::UndefinedCall`].
    pub fn check_calls(&self, program: &XdpProgram) -> Result<(), ObjectError> {
        let Some(callee) = self.externs.get(&program.name).and_then(|c| c.first()) else {
            return Ok(());
        };
        Err(ObjectError::UndefinedCall {
            path: self.path.clone(),
            program: program.name.clone(),
            callee: callee.clone(),
        })
    }

    /// The kfuncs that `program`'s code calls (its section's, and the
    /// subprograms' in sections that hold no XDP program), for the caller
    /// to resolve in the kernel's BTF ([`KernelFeatures::kfuncs`]).
    pub fn kfuncs_of(&self, program: &XdpProgram) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .kfunc_calls
            .iter()
            .filter(|c| self.reaches(program, &c.section))
            .map(|c| c.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Every kfunc the object calls, in name order: a call's stand-in BTF
    /// id, away from a kernel, is its index here.
    fn kfunc_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.kfunc_calls.iter().map(|c| c.name.clone()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    fn kfunc_stand_ins(&self) -> std::collections::HashMap<String, (u32, i16)> {
        self.kfunc_names()
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, (i as u32, 0)))
            .collect()
    }

    /// Whether code in `section` is `program`'s: its own section, or one
    /// of subprograms only.
    fn reaches(&self, program: &XdpProgram, section: &str) -> bool {
        section == program.section || !self.programs.iter().any(|p| p.section == section)
    }

    /// The view aya is given for `program`, with its kfunc calls pointed at
    /// the kernel's functions, as libbpf points them: `BPF_PSEUDO_KFUNC_CALL`,
    /// the function's BTF id, and the index in `fd_array` of the module's
    /// BTF (0 for vmlinux).
    fn bytes_with_kfuncs<'a>(
        &'a self,
        program: &XdpProgram,
        kfuncs: &std::collections::HashMap<String, (u32, i16)>,
    ) -> Result<std::borrow::Cow<'a, [u8]>, ObjectError> {
        let view = self.bytes_for_aya(program);
        let calls: Vec<&KfuncCall> = self
            .kfunc_calls
            .iter()
            .filter(|c| self.reaches(program, &c.section))
            .collect();
        if calls.is_empty() {
            return Ok(std::borrow::Cow::Borrowed(view));
        }
        let mut patched = view.to_vec();
        for call in calls {
            let &(btf_id, fd_index) =
                kfuncs
                    .get(&call.name)
                    .ok_or_else(|| ObjectError::MissingKfunc {
                        path: self.path.clone(),
                        program: program.name.clone(),
                        kfunc: call.name.clone(),
                    })?;
            let insn = patched
                .get_mut(call.file_offset..call.file_offset + 8)
                .ok_or_else(|| ObjectError::Parse {
                    path: self.path.clone(),
                    reason: format!("the call of {} lies past the end of the file", call.name),
                })?;
            // dst 0, src BPF_PSEUDO_KFUNC_CALL (little-endian nibbles).
            insn[1] = 2 << 4;
            insn[2..4].copy_from_slice(&fd_index.to_le_bytes());
            insn[4..8].copy_from_slice(&btf_id.to_le_bytes());
        }
        Ok(std::borrow::Cow::Owned(patched))
    }

    /// Whether the object has CO-RE relocations, which need the kernel's
    /// own BTF (tens of megabytes once parsed) to apply.
    pub fn has_core_relocations(&self) -> bool {
        self.core_relocations
    }

    /// The maps of `program`'s view of the object, by name, as aya-obj
    /// parsed them (their definitions: `max_entries`, pinning).
    pub fn maps_of(&self, program: &XdpProgram) -> &[(String, aya_obj::Map)] {
        self.maps.get(&program.section).map_or(&[], Vec::as_slice)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The object's bytes, as read.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes to give aya for `program`: its section is the object's
    /// only program section, named `xdp` if aya would not take its name.
    pub fn bytes_for_aya(&self, program: &XdpProgram) -> &[u8] {
        self.for_aya
            .get(&program.section)
            .map_or(&self.bytes, Vec::as_slice)
    }

    /// Every XDP program, in file order.
    pub fn programs(&self) -> &[XdpProgram] {
        &self.programs
    }

    /// The `license` section's string.
    pub fn license(&self) -> &str {
        &self.license
    }

    /// The programs `--sec` selects: all in that section, or all.
    ///
    /// # Errors
    ///
    /// [`ObjectError::NoSuchSection`] when no section has that name.
    pub fn select(&self, section: Option<&str>) -> Result<Vec<&XdpProgram>, ObjectError> {
        match section {
            None => Ok(self.programs.iter().collect()),
            Some(wanted) => {
                let found: Vec<&XdpProgram> = self
                    .programs
                    .iter()
                    .filter(|p| p.section == wanted || p.name == wanted)
                    .collect();
                if found.is_empty() {
                    let mut available: Vec<String> =
                        self.programs.iter().map(|p| p.section.clone()).collect();
                    available.dedup();
                    return Err(ObjectError::NoSuchSection {
                        path: self.path.clone(),
                        name: wanted.to_owned(),
                        available,
                    });
                }
                Ok(found)
            }
        }
    }

    /// The one program `load` attaches: the one `--sec` names, or the
    /// only one there is.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Ambiguous`] listing the choices when there are several.
    pub fn single(&self, section: Option<&str>) -> Result<&XdpProgram, ObjectError> {
        let found = self.select(section)?;
        match found.as_slice() {
            [one] => Ok(one),
            many => Err(ObjectError::Ambiguous {
                path: self.path.clone(),
                choices: many
                    .iter()
                    .map(|p| format!("{} ({})", p.section, p.name))
                    .collect(),
            }),
        }
    }

    /// The program as the verifier sees it: its function followed by the
    /// functions it calls, with map references and line info.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Parse`] or [`ObjectError::Decode`] for an object
    /// aya-obj cannot link.
    pub fn linked(&self, program: &XdpProgram) -> Result<LinkedProgram, ObjectError> {
        self.check_calls(program)?;
        // Map references get stand-in "fds" that index `map_names`, so the
        // disassembly can name them.
        let mut map_names = Vec::new();
        let function = self.link(program, |index, name| {
            if map_names.len() <= index {
                map_names.resize(index + 1, String::new());
            }
            map_names[index] = name.to_owned();
            index as i32
        })?;
        let raw: Vec<u8> = function.instructions.iter().flat_map(insn_bytes).collect();
        let insns = Insn::decode_all(&raw).map_err(|source| ObjectError::Decode {
            path: self.path.clone(),
            source,
        })?;
        let strings = btf_strings(self.bytes_for_aya(program));
        let lines: Vec<LineEntry> = function
            .line_info
            .line_info
            .iter()
            .map(|l| LineEntry {
                insn: l.insn_off as usize,
                file: strings.get(l.file_name_off),
                line: l.line_col >> 10,
                column: l.line_col & 0x3ff,
                text: strings.get(l.line_off).trim().to_owned(),
            })
            .collect();
        let rows = self::dwarf::line_rows(&self.bytes, &program.name);
        let dwarf_span = self.slots.get(&program.name).copied().unwrap_or(0);
        let dwarf_lines = LineTable::new(
            rows.into_iter()
                .map(|r| {
                    let insn = (r.offset / 8) as usize;
                    // The text BTF recorded for the same line, for when
                    // the source file cannot be found.
                    let text = lines
                        .iter()
                        .find(|l: &&LineEntry| {
                            l.line == r.line
                                && r.file.ends_with(l.file.rsplit('/').next().unwrap_or(""))
                        })
                        .map(|l| l.text.clone())
                        .unwrap_or_default();
                    LineEntry {
                        insn,
                        file: r.file,
                        line: r.line,
                        column: 0,
                        text,
                    }
                })
                .collect(),
        );
        Ok(LinkedProgram {
            program: program.clone(),
            insns,
            lines: LineTable::new(lines),
            call_sites: self::dwarf::call_sites(&self.bytes, &program.name),
            dwarf_lines,
            dwarf_span,
            map_names,
            kfunc_names: self.kfunc_names(),
            license: self.license.clone(),
        })
    }
}

impl BpfObject {
    /// The program prepared as aya prepares it for `BPF_PROG_LOAD`: BTF
    /// fixed up for this kernel, CO-RE relocations applied, map references
    /// pointing at `fds` (by map name), subprograms linked, helpers the
    /// kernel lacks swapped. xdpstat loads it itself when it needs the
    /// verifier's whole log, which aya does not give.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Parse`] when a map has no fd or the object cannot be
    /// prepared.
    pub fn for_kernel(
        &self,
        program: &XdpProgram,
        fds: &std::collections::HashMap<String, i32>,
        kernel: &KernelFeatures<'_>,
    ) -> Result<KernelProgram, ObjectError> {
        self.prepare(program, kernel)?.finish(fds)
    }

    /// The first half of [`BpfObject::for_kernel`], for a loader that
    /// creates the maps itself: the BTF fixed up and CO-RE applied, with
    /// the BTF and the maps to create from it before
    /// [`Prepared::finish`] points the program at them.
    ///
    /// # Errors
    ///
    /// As [`BpfObject::for_kernel`].
    pub fn prepare<'a>(
        &self,
        program: &XdpProgram,
        kernel: &KernelFeatures<'a>,
    ) -> Result<Prepared<'a>, ObjectError> {
        self.check_calls(program)?;
        let bytes = self.bytes_with_kfuncs(program, &kernel.kfuncs)?;
        prepare(&self.path, &bytes, &program.name, kernel)
    }
}

/// Any program of any object prepared as [`BpfObject::for_kernel`]
/// prepares an XDP program: for objects of other program types, such as
/// xdpstat's own observers (fentry and fexit). The caller sets the attach
/// type it loads the program with.
///
/// # Errors
///
/// As [`BpfObject::for_kernel`].
pub fn prepare_program(
    path: &Path,
    bytes: &[u8],
    name: &str,
    fds: &std::collections::HashMap<String, i32>,
    kernel: &KernelFeatures<'_>,
) -> Result<KernelProgram, ObjectError> {
    prepare(path, bytes, name, kernel)?.finish(fds)
}

/// The panic aya-obj raised on malformed input, as an input error.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, ObjectError>) -> Result<T, ObjectError> {
    guard::aya(f).map_err(|panic| ObjectError::Malformed {
        path: path.to_owned(),
        reason: panic.to_string(),
    })?
}

fn parse_error(path: &Path) -> impl Fn(String) -> ObjectError + '_ {
    move |reason| ObjectError::Parse {
        path: path.to_owned(),
        reason,
    }
}

/// As [`BpfObject::prepare`], for any object's program by name.
///
/// # Errors
///
/// As [`BpfObject::for_kernel`].
pub fn prepare<'a>(
    path: &Path,
    bytes: &[u8],
    name: &str,
    kernel: &KernelFeatures<'a>,
) -> Result<Prepared<'a>, ObjectError> {
    guarded(path, || {
        let parse_error = parse_error(path);
        let mut obj =
            aya_obj::Object::parse(bytes).map_err(|e| parse_error(crate::error::chain(&e)))?;
        let btf = match kernel.features.btf() {
            Some(btf_features) => obj
                .fixup_and_sanitize_btf(btf_features)
                .map_err(|e| parse_error(crate::error::chain(&e)))?
                .map(aya_obj::btf::Btf::to_bytes),
            None => None,
        };
        if btf.is_some() {
            if let Some(kernel_btf) = &kernel.kernel_btf {
                obj.relocate_btf(kernel_btf)
                    .map_err(|e| parse_error(crate::error::chain(&e)))?;
            }
        }
        let maps = obj
            .maps
            .iter()
            .map(|(n, m)| (n.clone(), m.clone()))
            .collect();
        Ok(Prepared {
            path: path.to_owned(),
            name: name.to_owned(),
            obj,
            btf,
            maps,
            features: kernel.features,
            kern_version: kernel.kern_version,
        })
    })
}

/// A program half prepared ([`BpfObject::prepare`]): its object's BTF is
/// ready for `BPF_BTF_LOAD`, and its maps for `BPF_MAP_CREATE`.
#[derive(Debug)]
pub struct Prepared<'a> {
    path: PathBuf,
    name: String,
    obj: aya_obj::Object,
    btf: Option<Vec<u8>>,
    maps: Vec<(String, aya_obj::Map)>,
    features: &'a aya_obj::Features,
    kern_version: u32,
}

impl Prepared<'_> {
    /// The object's BTF, fixed up for the kernel.
    pub fn btf(&self) -> Option<&[u8]> {
        self.btf.as_deref()
    }

    /// The maps the program's object declares, by name, as aya-obj read
    /// them (global-data sections' maps with their initial contents).
    pub fn maps(&self) -> &[(String, aya_obj::Map)] {
        &self.maps
    }

    /// Points the program's map references at `fds` (by map name), links
    /// its subprograms and swaps the helpers the kernel lacks.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Parse`] when a map has no fd or a relocation fails.
    pub fn finish(
        self,
        fds: &std::collections::HashMap<String, i32>,
    ) -> Result<KernelProgram, ObjectError> {
        let path = self.path.clone();
        guarded(&path, || self.finish_unguarded(fds))
    }

    fn finish_unguarded(
        self,
        fds: &std::collections::HashMap<String, i32>,
    ) -> Result<KernelProgram, ObjectError> {
        let Self {
            path,
            name,
            mut obj,
            btf,
            maps,
            features,
            kern_version,
        } = self;
        let parse_error = parse_error(&path);
        let text_sections: HashSet<usize> =
            obj.functions.keys().map(|(section, _)| *section).collect();
        let mut missing = None;
        let with_fds: Vec<(&str, i32, &aya_obj::Map)> = maps
            .iter()
            .map(|(n, m)| {
                let fd = fds.get(n).copied().unwrap_or_else(|| {
                    missing = Some(n.clone());
                    -1
                });
                (n.as_str(), fd, m)
            })
            .collect();
        if let Some(name) = missing {
            return Err(parse_error(format!("map {name} was not created")));
        }
        obj.relocate_maps(with_fds.into_iter(), &text_sections)
            .map_err(|e| parse_error(crate::error::chain(&e)))?;
        obj.relocate_calls(&text_sections)
            .map_err(|e| parse_error(crate::error::chain(&e)))?;
        obj.sanitize_functions(features);
        let prog = obj
            .programs
            .get(&name)
            .ok_or_else(|| parse_error(format!("aya-obj found no program '{name}'")))?;
        let (attach_type, frags) = match &prog.section {
            aya_obj::ProgramSection::Xdp { frags, attach_type } => (*attach_type, *frags),
            _ => (aya_obj::programs::XdpAttachType::Interface, false),
        };
        let kern_version = prog.kernel_version.unwrap_or(kern_version);
        let function = obj
            .functions
            .get(&prog.function_key())
            .ok_or_else(|| parse_error(format!("no function for program '{name}'")))?;
        Ok(KernelProgram {
            name: name.clone(),
            insns: function.instructions.iter().flat_map(insn_bytes).collect(),
            license: prog.license.clone(),
            kern_version,
            expected_attach_type: aya_obj::generated::bpf_attach_type::from(attach_type) as u32,
            flags: if frags {
                aya_obj::generated::BPF_F_XDP_HAS_FRAGS
            } else {
                0
            },
            btf,
            func_info: (
                function.func_info_rec_size as u32,
                function.func_info.func_info_bytes(),
                function.func_info.len() as u32,
            ),
            line_info: (
                function.line_info_rec_size as u32,
                function.line_info.line_info_bytes(),
                function.line_info.len() as u32,
            ),
        })
    }
}

/// What the kernel a program is prepared for supports, as the caller probed
/// it: aya's feature probes, the kernel's own BTF for CO-RE, its version.
#[derive(Debug)]
pub struct KernelFeatures<'a> {
    /// aya's probes of the kernel (`aya::features()`).
    pub features: &'a aya_obj::Features,
    /// The kernel's BTF (`/sys/kernel/btf/vmlinux`), if it has one.
    pub kernel_btf: Option<aya_obj::btf::Btf>,
    /// `KERNEL_VERSION` of the running kernel, for programs that ask.
    pub kern_version: u32,
    /// The kfuncs the program calls ([`BpfObject::kfuncs_of`]) that the
    /// kernel has: each one's BTF id, and the index in `fd_array` of the
    /// module BTF it is in (0 for vmlinux).
    pub kfuncs: std::collections::HashMap<String, (u32, i16)>,
}

/// A program as `BPF_PROG_LOAD` takes it.
#[derive(Clone, Debug)]
pub struct KernelProgram {
    /// The program's name.
    pub name: String,
    /// Its instructions.
    pub insns: Vec<u8>,
    /// Its license.
    pub license: std::ffi::CString,
    /// `kern_version`.
    pub kern_version: u32,
    /// `expected_attach_type` (`BPF_XDP`, `BPF_XDP_DEVMAP`, `BPF_XDP_CPUMAP`).
    pub expected_attach_type: u32,
    /// `prog_flags` (`BPF_F_XDP_HAS_FRAGS`).
    pub flags: u32,
    /// The object's BTF, ready for `BPF_BTF_LOAD`.
    pub btf: Option<Vec<u8>>,
    /// `func_info`: record size, records, count.
    pub func_info: (u32, Vec<u8>, u32),
    /// `line_info`: record size, records, count.
    pub line_info: (u32, Vec<u8>, u32),
}

impl BpfObject {
    /// Parses the object with aya-obj, relocates map references with the fd
    /// `fd_of(index, name)` gives, links the calls, and returns the program's
    /// function.
    fn link(
        &self,
        program: &XdpProgram,
        fd_of: impl FnMut(usize, &str) -> i32,
    ) -> Result<aya_obj::Function, ObjectError> {
        guard::aya(|| self.link_unguarded(program, fd_of))
            .map_err(|panic| self.malformed(&panic))?
    }

    fn malformed(&self, panic: &AyaPanic) -> ObjectError {
        ObjectError::Malformed {
            path: self.path.clone(),
            reason: panic.to_string(),
        }
    }

    fn link_unguarded(
        &self,
        program: &XdpProgram,
        mut fd_of: impl FnMut(usize, &str) -> i32,
    ) -> Result<aya_obj::Function, ObjectError> {
        let parse_error = |reason: String| ObjectError::Parse {
            path: self.path.clone(),
            reason,
        };
        let bytes = self.bytes_with_kfuncs(program, &self.kfunc_stand_ins())?;
        let mut obj =
            aya_obj::Object::parse(&bytes).map_err(|e| parse_error(crate::error::chain(&e)))?;
        let text_sections: HashSet<usize> =
            obj.functions.keys().map(|(section, _)| *section).collect();
        let mut maps: Vec<(String, aya_obj::Map)> = obj
            .maps
            .iter()
            .map(|(n, m)| (n.clone(), m.clone()))
            .collect();
        maps.sort_by(|a, b| a.0.cmp(&b.0));
        let fds: Vec<i32> = maps
            .iter()
            .enumerate()
            .map(|(i, (n, _))| fd_of(i, n))
            .collect();
        obj.relocate_maps(
            maps.iter()
                .zip(&fds)
                .map(|((n, m), fd)| (n.as_str(), *fd, m)),
            &text_sections,
        )
        .map_err(|e| parse_error(crate::error::chain(&e)))?;
        obj.relocate_calls(&text_sections)
            .map_err(|e| parse_error(crate::error::chain(&e)))?;
        let prog = obj
            .programs
            .get(&program.name)
            .ok_or_else(|| parse_error(format!("aya-obj found no program '{}'", program.name)))?;
        obj.functions
            .remove(&prog.function_key())
            .ok_or_else(|| parse_error(format!("no function for program '{}'", program.name)))
    }
}

/// Whether a `.BTF.ext` section has CO-RE relocations: a `core_relo`
/// part (in a header of 32 bytes or more) longer than its record size.
fn has_core_relocations(ext: &[u8]) -> bool {
    let u32_at = |o: usize| {
        ext.get(o..o + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    u32_at(4).is_some_and(|hdr_len| hdr_len >= 32) && u32_at(28).is_some_and(|len| len > 4)
}

fn elf_machine(bytes: &[u8]) -> Option<u16> {
    let raw: [u8; 2] = bytes.get(18..20)?.try_into().ok()?;
    // EI_DATA: 1 little-endian, 2 big-endian.
    Some(match bytes.get(5) {
        Some(2) => u16::from_be_bytes(raw),
        _ => u16::from_le_bytes(raw),
    })
}

fn insn_bytes(insn: &bpf_insn) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = insn.code;
    b[1] = (insn.dst_reg() & 0xf) | (insn.src_reg() << 4);
    b[2..4].copy_from_slice(&insn.off.to_le_bytes());
    b[4..8].copy_from_slice(&insn.imm.to_le_bytes());
    b
}

/// A program ready to disassemble and analyse.
#[derive(Clone, Debug)]
pub struct LinkedProgram {
    /// Which program.
    pub program: XdpProgram,
    /// Its instructions, by verifier index.
    pub insns: Vec<(usize, Insn)>,
    /// Its BTF line info, by verifier index.
    pub lines: LineTable,
    /// DWARF's inlined call sites in the program's own function.
    pub call_sites: Vec<self::dwarf::CallSite>,
    /// DWARF's line table for the program's own function, by verifier
    /// index: the lines `llvm-objdump -S` shows (empty without DWARF). It
    /// covers the indexes below [`LinkedProgram::dwarf_span`].
    pub dwarf_lines: LineTable,
    /// How many instruction slots the program's own function has (its
    /// subprograms follow).
    pub dwarf_span: usize,
    /// Map names, by the stand-in fd in `ld_imm64` map references.
    pub map_names: Vec<String>,
    /// The kfuncs called: a kfunc call's `imm` indexes them (away from a
    /// kernel, which has BTF ids for them).
    pub kfunc_names: Vec<String>,
    /// The object's license.
    pub license: String,
}

impl LinkedProgram {
    /// Instruction slots, as the kernel counts them ("Instructions: 15").
    pub fn slot_count(&self) -> usize {
        self.insns.last().map_or(0, |(i, insn)| i + insn.width())
    }

    /// The line in the program's own function that instruction `index`
    /// belongs to, when BTF puts it in inlined library code.
    pub fn call_site(&self, index: usize) -> Option<&self::dwarf::CallSite> {
        self::dwarf::user_call_site(&self.call_sites, index as u64 * 8)
    }

    /// The instruction at verifier index `index`.
    pub fn insn_at(&self, index: usize) -> Option<&Insn> {
        self.insns
            .binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .map(|pos| &self.insns[pos].1)
    }
}

impl Resolver for LinkedProgram {
    fn kfunc_name(&self, _index: usize, insn: &Insn) -> Option<String> {
        self.kfunc_names
            .get(usize::try_from(insn.imm).ok()?)
            .cloned()
    }

    fn ld_imm64(&self, _index: usize, insn: &Insn) -> Option<String> {
        // BPF_PSEUDO_MAP_FD / BPF_PSEUDO_MAP_VALUE with a stand-in fd.
        match insn.src {
            1 => self
                .map_names
                .get(usize::try_from(insn.imm).ok()?)
                .map(|n| format!("map[{n}]")),
            2 => self
                .map_names
                .get(usize::try_from(insn.imm).ok()?)
                .map(|n| format!("map[{n}]+{}", insn.imm_hi)),
            _ => None,
        }
    }
}

/// One BTF line-info record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineEntry {
    /// First verifier index it covers.
    pub insn: usize,
    /// Source file, as the compiler recorded it.
    pub file: String,
    /// Line number (1-based; 0 for compiler-made code).
    pub line: u32,
    /// Column.
    pub column: u32,
    /// The line's text, as the compiler recorded it (may be empty).
    pub text: String,
}

/// Line info of one program, by verifier index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineTable {
    entries: Vec<LineEntry>,
}

impl LineTable {
    /// A table from records in any order.
    pub fn new(mut entries: Vec<LineEntry>) -> Self {
        entries.sort_by_key(|e| e.insn);
        Self { entries }
    }

    /// Whether the object had no line info for this program.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The source line that instruction `index` belongs to: the last record
    /// at or before it.
    pub fn at(&self, index: usize) -> Option<&LineEntry> {
        let pos = self.entries.partition_point(|e| e.insn <= index);
        pos.checked_sub(1).map(|p| &self.entries[p])
    }

    /// The record that starts exactly at `index` (where `objdump -S`
    /// prints a source line).
    pub fn starting_at(&self, index: usize) -> Option<&LineEntry> {
        self.entries
            .binary_search_by_key(&index, |e| e.insn)
            .ok()
            .map(|p| &self.entries[p])
    }
}

/// The `.BTF` string table.
struct BtfStrings<'a>(&'a [u8]);

impl BtfStrings<'_> {
    fn get(&self, offset: u32) -> String {
        let tail = self.0.get(offset as usize..).unwrap_or_default();
        let s = tail.split(|&b| b == 0).next().unwrap_or_default();
        String::from_utf8_lossy(s).into_owned()
    }
}

fn btf_strings(bytes: &[u8]) -> BtfStrings<'_> {
    let strings = (|| {
        let file = object::File::parse(bytes).ok()?;
        let btf = file.section_by_name(".BTF")?.data().ok()?;
        let header = BtfHeader::parse(btf)?;
        btf.get(header.str_start()..header.str_start() + header.str_len as usize)
    })();
    BtfStrings(strings.unwrap_or_default())
}

/// The `.BTF` header fields xdpstat needs.
struct BtfHeader {
    hdr_len: u32,
    str_off: u32,
    str_len: u32,
}

impl BtfHeader {
    fn parse(btf: &[u8]) -> Option<Self> {
        let u32_at = |o: usize| Some(u32::from_le_bytes(btf.get(o..o + 4)?.try_into().ok()?));
        if btf.get(..2)? != [0x9f, 0xeb] {
            return None;
        }
        let header = Self {
            hdr_len: u32_at(4)?,
            str_off: u32_at(16)?,
            str_len: u32_at(20)?,
        };
        // The string table must lie inside the section.
        let end = (header.hdr_len as usize)
            .checked_add(header.str_off as usize)?
            .checked_add(header.str_len as usize)?;
        (end <= btf.len()).then_some(header)
    }

    fn str_start(&self) -> usize {
        self.hdr_len as usize + self.str_off as usize
    }
}

/// For each program, the functions it calls (`R_BPF_64_32` relocations
/// in its bytes) that no section of the object defines.
fn undefined_calls(
    file: &object::File<'_>,
    programs: &[XdpProgram],
    kfuncs: &HashSet<String>,
) -> HashMap<String, Vec<String>> {
    const R_BPF_64_32: u32 = 10;
    let mut found: HashMap<String, Vec<String>> = HashMap::new();
    for program in programs {
        let Some(symbol) = file.symbols().find(|s| {
            s.name() == Ok(program.name.as_str()) && s.kind() == object::SymbolKind::Text
        }) else {
            continue;
        };
        let Some(section) = symbol
            .section_index()
            .and_then(|i| file.section_by_index(i).ok())
        else {
            continue;
        };
        let range = symbol.address()..symbol.address() + symbol.size();
        for (offset, reloc) in section.relocations() {
            let object::RelocationFlags::Elf { r_type } = reloc.flags() else {
                continue;
            };
            let object::RelocationTarget::Symbol(index) = reloc.target() else {
                continue;
            };
            if r_type != R_BPF_64_32 || !range.contains(&offset) {
                continue;
            }
            let Ok(callee) = file.symbol_by_index(index) else {
                continue;
            };
            if callee.is_undefined() {
                if let Some(name) = callee.name().ok().filter(|n| !kfuncs.contains(*n)) {
                    let list = found.entry(program.name.clone()).or_default();
                    if !list.iter().any(|n| n == name) {
                        list.push(name.to_owned());
                    }
                }
            }
        }
    }
    found
}

/// Every call of a kfunc in the object's executable sections.
fn kfunc_calls(file: &object::File<'_>, kfuncs: &HashSet<String>) -> Vec<KfuncCall> {
    const R_BPF_64_32: u32 = 10;
    if kfuncs.is_empty() {
        return Vec::new();
    }
    let mut found = Vec::new();
    for section in file.sections() {
        if section.kind() != SectionKind::Text {
            continue;
        }
        let (Ok(name), Some((file_start, _))) = (section.name(), section.file_range()) else {
            continue;
        };
        for (offset, reloc) in section.relocations() {
            let (
                object::RelocationFlags::Elf {
                    r_type: R_BPF_64_32,
                },
                object::RelocationTarget::Symbol(index),
            ) = (reloc.flags(), reloc.target())
            else {
                continue;
            };
            let Some(callee) = file
                .symbol_by_index(index)
                .ok()
                .filter(object::ObjectSymbol::is_undefined)
                .and_then(|s| s.name().ok().map(str::to_owned))
                .filter(|n| kfuncs.contains(n))
            else {
                continue;
            };
            found.push(KfuncCall {
                section: name.to_owned(),
                file_offset: (file_start + offset) as usize,
                name: callee,
            });
        }
    }
    found
}

/// A copy of the object as aya must see it to load the programs of section
/// `keep`:
/// - the sections in `hide` are no longer executable, so aya-obj ignores
///   them (it refuses section names it does not know, such as `tc`, and
///   keys BTF.ext records by section name);
/// - with `rename`, `keep` is named `xdp`, for a name aya would refuse
///   (`stats`, `xdp_prog`, `2/N`);
/// - the BTF.ext records of `keep` follow it to its new name, and those of
///   hidden sections name none;
/// - with `ksyms`, the BTF's `.ksyms` section is made one the kernel takes
///   ([`crate::btf::Btf::with_ksyms_as_vars`]).
///
/// Nothing is renamed in place, since clang shares one string between a
/// section's name and a symbol's (`xdp_fail1` is the tail of
/// `_xdp_fail1`): the new names are appended to copies of the string
/// tables at the end of the file, and the headers point at those copies.
fn aya_view(
    bytes: &[u8],
    keep: &str,
    rename: bool,
    hide: &HashSet<&str>,
    ksyms: bool,
) -> Result<Vec<u8>, String> {
    use object::read::elf::{ElfFile64, FileHeader as _, SectionHeader as _};

    let elf = ElfFile64::<object::Endianness>::parse(bytes).map_err(|e| e.to_string())?;
    let endian = elf.endian();
    let little = bytes.get(5) == Some(&1);
    let header = elf.elf_header();
    let shoff = header.e_shoff(endian) as usize;
    let shentsize = header.e_shentsize(endian) as usize;
    let shstrndx = header.e_shstrndx(endian) as usize;
    let table = elf.elf_section_table();
    let section_name = |h: &object::elf::SectionHeader64<object::Endianness>| {
        table
            .section_name(endian, h)
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default()
    };
    let mut out = bytes.to_vec();
    let put = |out: &mut Vec<u8>, at: usize, value: u64, width: usize| -> Result<(), String> {
        let slot = out
            .get_mut(at..at + width)
            .ok_or("a section header runs past the end of the file")?;
        let raw = if little {
            value.to_le_bytes()
        } else {
            value.to_be_bytes()
        };
        if little {
            slot.copy_from_slice(&raw[..width]);
        } else {
            slot.copy_from_slice(&raw[8 - width..]);
        }
        Ok(())
    };
    // ELF64 section header fields: sh_name at 0, sh_flags at 8,
    // sh_offset at 24, sh_size at 32.
    let header_at = |index: usize| shoff + index * shentsize;
    let mut keep_index = None;
    let mut btf_index = None;
    let mut btf_ext_index = None;
    for (index, h) in table.iter().enumerate() {
        let name = section_name(h);
        if name == keep && h.sh_type(endian) == object::elf::SHT_PROGBITS {
            keep_index = Some(index);
        } else if name == ".BTF" {
            btf_index = Some(index);
        } else if name == ".BTF.ext" {
            btf_ext_index = Some(index);
        } else if hide.contains(name.as_str()) {
            let flags = h.sh_flags(endian) & !u64::from(object::elf::SHF_EXECINSTR);
            put(&mut out, header_at(index) + 8, flags, 8)?;
        }
    }
    let keep_index = keep_index.ok_or_else(|| format!("no section '{keep}'"))?;
    let append = |out: &mut Vec<u8>, data: &[u8]| -> usize {
        out.resize(out.len().next_multiple_of(8), 0);
        let at = out.len();
        out.extend_from_slice(data);
        at
    };
    if rename {
        let strtab = table
            .section(object::SectionIndex(shstrndx))
            .map_err(|e| e.to_string())?;
        let mut names = strtab
            .data(endian, bytes)
            .map_err(|e| e.to_string())?
            .to_vec();
        let xdp_at = names.len();
        names.extend_from_slice(b"xdp\0");
        let at = append(&mut out, &names);
        put(&mut out, header_at(shstrndx) + 24, at as u64, 8)?;
        put(&mut out, header_at(shstrndx) + 32, names.len() as u64, 8)?;
        put(&mut out, header_at(keep_index), xdp_at as u64, 4)?;
    }
    let (Some(btf_index), Some(ext_index)) = (btf_index, btf_ext_index) else {
        return Ok(out);
    };
    let u32_in = |data: &[u8], at: usize| -> Option<u32> {
        let raw: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        })
    };
    let btf_header = table
        .section(object::SectionIndex(btf_index))
        .map_err(|e| e.to_string())?;
    let btf = btf_header.data(endian, bytes).map_err(|e| e.to_string())?;
    let parsed = BtfHeader::parse(btf).ok_or("malformed .BTF header")?;
    let strings = btf
        .get(parsed.str_start()..parsed.str_start() + parsed.str_len as usize)
        .ok_or("malformed .BTF strings")?;
    let string_at = |off: u32| -> &[u8] {
        let tail = strings.get(off as usize..).unwrap_or_default();
        &tail[..tail.iter().position(|&b| b == 0).unwrap_or(tail.len())]
    };
    // Where `keep`'s records will point: an `xdp` string, appended to the
    // BTF strings when the section is renamed (only possible when they
    // end the section, as clang writes it).
    let mut xdp_string = None;
    let mut new_btf = None;
    if rename && parsed.str_start() + parsed.str_len as usize == btf.len() {
        let mut grown = btf.to_vec();
        grown.extend_from_slice(b"xdp\0");
        let str_len = parsed.str_len + 4;
        let raw = if little {
            str_len.to_le_bytes()
        } else {
            str_len.to_be_bytes()
        };
        grown[20..24].copy_from_slice(&raw);
        new_btf = Some(grown);
        xdp_string = Some(parsed.str_len);
    }
    // The kernel refuses `.ksyms` as clang writes it; strings are only
    // appended, so `xdp_string` stays where it is.
    if ksyms && little == cfg!(target_endian = "little") {
        let current = new_btf.clone().unwrap_or_else(|| btf.to_vec());
        if let Some(fixed) = crate::btf::Btf::parse(current)
            .ok()
            .and_then(|b| b.with_ksyms_as_vars())
        {
            new_btf = Some(fixed);
        }
    }
    if let Some(new_btf) = new_btf {
        let at = append(&mut out, &new_btf);
        put(&mut out, header_at(btf_index) + 24, at as u64, 8)?;
        put(&mut out, header_at(btf_index) + 32, new_btf.len() as u64, 8)?;
    }
    let ext_header = table
        .section(object::SectionIndex(ext_index))
        .map_err(|e| e.to_string())?;
    let ext = ext_header.data(endian, bytes).map_err(|e| e.to_string())?;
    let hdr_len = u32_in(ext, 4).ok_or("malformed .BTF.ext header")? as usize;
    let word = |value: u32| {
        if little {
            value.to_le_bytes()
        } else {
            value.to_be_bytes()
        }
    };
    // func_info, line_info, and (in a longer header) core_relo: each an
    // (offset, length) pair after the header, of a record size followed by
    // blocks of (section name, count, records). The copy keeps the blocks
    // of every section but the hidden ones, whose CO-RE records aya would
    // otherwise look for a section to apply to.
    let mut fields = vec![8, 16];
    if hdr_len >= 32 {
        fields.push(24);
    }
    let mut grown = ext
        .get(..hdr_len)
        .ok_or("malformed .BTF.ext header")?
        .to_vec();
    let mut body = Vec::new();
    for field in fields {
        let (Some(off), Some(len)) = (u32_in(ext, field), u32_in(ext, field + 4)) else {
            continue;
        };
        let start = hdr_len + off as usize;
        let end = (start + len as usize).min(ext.len());
        let new_off = body.len() as u32;
        let Some(rec_size) = u32_in(ext, start) else {
            grown[field..field + 4].copy_from_slice(&word(new_off));
            grown[field + 4..field + 8].copy_from_slice(&word(0));
            continue;
        };
        body.extend_from_slice(&word(rec_size));
        let mut at = start + 4;
        while at + 8 <= end {
            let (Some(name_off), Some(count)) = (u32_in(ext, at), u32_in(ext, at + 4)) else {
                break;
            };
            let next = at + 8 + count as usize * rec_size as usize;
            let name = string_at(name_off);
            let records = ext.get(at + 8..next.min(end)).unwrap_or_default();
            at = next;
            if hide.contains(String::from_utf8_lossy(name).as_ref()) {
                continue;
            }
            let name_off = match xdp_string {
                Some(xdp) if name == keep.as_bytes() => xdp,
                _ => name_off,
            };
            body.extend_from_slice(&word(name_off));
            body.extend_from_slice(&word(count));
            body.extend_from_slice(records);
        }
        grown[field..field + 4].copy_from_slice(&word(new_off));
        grown[field + 4..field + 8].copy_from_slice(&word(body.len() as u32 - new_off));
    }
    grown.extend_from_slice(&body);
    let at = append(&mut out, &grown);
    put(&mut out, header_at(ext_index) + 24, at as u64, 8)?;
    put(&mut out, header_at(ext_index) + 32, grown.len() as u64, 8)?;
    Ok(out)
}

/// Finds source files named by line info: as recorded, next to the object,
/// or under `--src` directories, trying ever shorter tails of the recorded
/// path (so `/xdpstat/xdpstat-ebpf/src/main.rs` is found as
/// `DIR/src/main.rs`).
#[derive(Debug, Default)]
pub struct SourceFiles {
    dirs: Vec<PathBuf>,
    cache: std::collections::HashMap<String, Option<Vec<String>>>,
}

impl SourceFiles {
    /// Searches `dirs` in order (put the object's directory first), then
    /// the cargo home, where crates' sources live (xdpstat's own objects
    /// record them as `/cargo/registry/…`).
    pub fn new(mut dirs: Vec<PathBuf>) -> Self {
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
        dirs.extend(cargo_home);
        Self {
            dirs,
            cache: Default::default(),
        }
    }

    fn find(&self, recorded: &str) -> Option<PathBuf> {
        let recorded_path = Path::new(recorded);
        if recorded_path.is_absolute() && recorded_path.is_file() {
            return Some(recorded_path.to_owned());
        }
        let parts: Vec<&str> = recorded
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        for dir in &self.dirs {
            for start in 0..parts.len() {
                let candidate = parts[start..]
                    .iter()
                    .fold(dir.clone(), |p, part| p.join(part));
                if candidate.is_file() {
                    return Some(candidate);
                }
            }
        }
        None
    }

    /// The text of `line` in `file`, if the file can be found.
    pub fn line(&mut self, file: &str, line: u32) -> Option<String> {
        if line == 0 {
            return None;
        }
        if !self.cache.contains_key(file) {
            let lines = self
                .find(file)
                .and_then(|p| input::read(&p, input::MAX_SOURCE_BYTES).ok())
                .map(|bytes| {
                    String::from_utf8_lossy(&bytes)
                        .lines()
                        .map(str::to_owned)
                        .collect()
                });
            self.cache.insert(file.to_owned(), lines);
        }
        self.cache
            .get(file)
            .and_then(|lines| lines.as_ref())
            .and_then(|lines| lines.get(line as usize - 1))
            .map(|l| l.trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdp_section_names() {
        for name in ["xdp", "xdp.frags", "xdp/devmap", "xdp/cpumap"] {
            assert!(section_is_xdp_by_name(name), "{name}");
        }
        for name in ["stats", "xdp_stats1", "prog", "xdp/foo"] {
            assert!(!section_is_xdp_by_name(name), "{name}");
        }
        for name in [
            "kprobe/sys_open",
            "tc",
            "classifier",
            "cgroup/skb",
            "tracepoint/x/y",
            "socket",
        ] {
            assert!(section_is_other_type(name), "{name}");
        }
        assert!(!section_is_other_type("stats"));
    }

    #[test]
    fn garbage_is_not_an_object() {
        let path = Path::new("x.o");
        for bytes in [
            Vec::new(),
            b"hello world".to_vec(),
            b"\x7fELF".to_vec(),
            b"\x7fELF\x02\x01\x01".to_vec(),
        ] {
            let err = BpfObject::from_bytes(path, bytes).unwrap_err();
            assert!(matches!(err, ObjectError::NotElf { .. }), "{err}");
        }
    }

    #[test]
    fn a_truncated_embedded_object_is_refused_at_every_cut() {
        // xdpstat's own embedded object, aligned for the ELF reader.
        #[repr(C, align(8))]
        struct Aligned<B: ?Sized>(B);
        static OBJECT: &Aligned<[u8]> =
            &Aligned(*include_bytes!("../../../xdpstat/bpf/xdpstat_percpu.o"));
        let whole = &OBJECT.0;
        assert!(BpfObject::from_bytes(Path::new("percpu.o"), whole.to_vec()).is_ok());
        for cut in [16, 64, 200, whole.len() / 2, whole.len() - 1] {
            let err = BpfObject::from_bytes(Path::new("percpu.o"), whole[..cut].to_vec());
            assert!(err.is_err(), "cut at {cut} accepted");
        }
    }

    #[test]
    fn line_table_lookup() {
        let e = |insn, line| LineEntry {
            insn,
            file: "a.c".into(),
            line,
            column: 0,
            text: String::new(),
        };
        let t = LineTable::new(vec![e(3, 30), e(0, 10), e(8, 80)]);
        assert_eq!(t.at(0).unwrap().line, 10);
        assert_eq!(t.at(2).unwrap().line, 10);
        assert_eq!(t.at(3).unwrap().line, 30);
        assert_eq!(t.at(100).unwrap().line, 80);
        assert_eq!(t.starting_at(8).unwrap().line, 80);
        assert!(t.starting_at(7).is_none());
    }
}
