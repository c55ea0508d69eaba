//! BTF: reading a BTF object's raw bytes (as the kernel hands them out by
//! id), and formatting a map key's or value's bytes by their BTF type, the
//! way bpftool's `btf_dumper` does.
//!
//! The parser follows the kernel's `Documentation/bpf/btf.rst`: a header,
//! then a type section (type id 1, 2, … in order; 0 is `void`) and a string
//! section, their offsets counted from the end of the header. Every read is
//! bounds-checked, so malformed BTF gives a [`BtfError`], never a panic; the
//! formatter also caps its recursion depth and its output size, so a cycle
//! or a huge array of empty structs cannot exhaust the stack or memory.
//!
//! Formatting gives a [`BtfValue`] tree, in member order; the CLI renders
//! it as bpftool's plain text or `-j` JSON, which differ in a few leaves
//! (pointers, bitfields, unprintable chars); [`BtfValue::to_json`] gives a
//! `serde_json::Value`.

use std::{fs, path::Path};

use thiserror::Error;

const MAGIC: u16 = 0xeb9f;
const HEADER_MIN: usize = 24;
/// As libbpf's `MAX_RESOLVE_DEPTH`: typedef/modifier chains longer than
/// this are taken for cycles.
const MAX_RESOLVE_DEPTH: usize = 32;
/// Nesting of structs and arrays, far beyond any real type.
const MAX_NESTING: usize = 128;
/// Where the kernel publishes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Malformed BTF, a type the formatter cannot print, or bytes that do not
/// fit their type.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BtfError {
    /// The blob is not BTF, or is cut short.
    #[error("malformed BTF: {0}")]
    Malformed(String),
    /// A type id beyond the last type.
    #[error("BTF has no type id {0}")]
    NoSuchType(u32),
    /// A kind that cannot hold data (function, forward declaration…).
    #[error("BTF type {id} is a {kind}, which has no value to print")]
    Unsupported {
        /// The type id.
        id: u32,
        /// Its kind.
        kind: &'static str,
    },
    /// Data shorter than its type.
    #[error("{have} bytes of data for a BTF type {id} that needs {need}")]
    DataTooShort {
        /// The type id.
        id: u32,
        /// Bytes the type needs.
        need: u64,
        /// Bytes there were.
        have: usize,
    },
    /// The type's size is not the map's key or value size.
    #[error("BTF type {id} is {type_size} bytes, but the map's {what} is {size}")]
    SizeMismatch {
        /// The type id.
        id: u32,
        /// "key" or "value".
        what: &'static str,
        /// The type's size.
        type_size: u64,
        /// The map's size.
        size: u32,
    },
    /// A cycle, or nesting deeper than any real type.
    #[error("BTF type {0} nests too deeply (a cycle?)")]
    TooDeep(u32),
    /// Formatting would print more than the data can justify (arrays of
    /// zero-sized elements).
    #[error("BTF type {0} would print too many elements")]
    TooLarge(u32),
}

fn malformed(what: impl Into<String>) -> BtfError {
    BtfError::Malformed(what.into())
}

/// A BTF kind (`BTF_KIND_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `BTF_KIND_INT`.
    Int,
    /// `BTF_KIND_PTR`.
    Ptr,
    /// `BTF_KIND_ARRAY`.
    Array,
    /// `BTF_KIND_STRUCT`.
    Struct,
    /// `BTF_KIND_UNION`.
    Union,
    /// `BTF_KIND_ENUM`.
    Enum,
    /// `BTF_KIND_FWD`.
    Fwd,
    /// `BTF_KIND_TYPEDEF`.
    Typedef,
    /// `BTF_KIND_VOLATILE`.
    Volatile,
    /// `BTF_KIND_CONST`.
    Const,
    /// `BTF_KIND_RESTRICT`.
    Restrict,
    /// `BTF_KIND_FUNC`.
    Func,
    /// `BTF_KIND_FUNC_PROTO`.
    FuncProto,
    /// `BTF_KIND_VAR`.
    Var,
    /// `BTF_KIND_DATASEC`.
    Datasec,
    /// `BTF_KIND_FLOAT`.
    Float,
    /// `BTF_KIND_DECL_TAG`.
    DeclTag,
    /// `BTF_KIND_TYPE_TAG`.
    TypeTag,
    /// `BTF_KIND_ENUM64`.
    Enum64,
}

impl Kind {
    fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => Self::Int,
            2 => Self::Ptr,
            3 => Self::Array,
            4 => Self::Struct,
            5 => Self::Union,
            6 => Self::Enum,
            7 => Self::Fwd,
            8 => Self::Typedef,
            9 => Self::Volatile,
            10 => Self::Const,
            11 => Self::Restrict,
            12 => Self::Func,
            13 => Self::FuncProto,
            14 => Self::Var,
            15 => Self::Datasec,
            16 => Self::Float,
            17 => Self::DeclTag,
            18 => Self::TypeTag,
            19 => Self::Enum64,
            _ => return None,
        })
    }

    /// The kind's name, as `bpftool btf dump` spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Int => "INT",
            Self::Ptr => "PTR",
            Self::Array => "ARRAY",
            Self::Struct => "STRUCT",
            Self::Union => "UNION",
            Self::Enum => "ENUM",
            Self::Fwd => "FWD",
            Self::Typedef => "TYPEDEF",
            Self::Volatile => "VOLATILE",
            Self::Const => "CONST",
            Self::Restrict => "RESTRICT",
            Self::Func => "FUNC",
            Self::FuncProto => "FUNC_PROTO",
            Self::Var => "VAR",
            Self::Datasec => "DATASEC",
            Self::Float => "FLOAT",
            Self::DeclTag => "DECL_TAG",
            Self::TypeTag => "TYPE_TAG",
            Self::Enum64 => "ENUM64",
        }
    }

    /// Bytes of kind-specific data after the 12-byte common header.
    fn extra_len(self, vlen: usize) -> Option<usize> {
        Some(match self {
            Self::Int | Self::Var | Self::DeclTag => 4,
            Self::Array => 12,
            Self::Struct | Self::Union | Self::Datasec | Self::Enum64 => vlen.checked_mul(12)?,
            Self::Enum | Self::FuncProto => vlen.checked_mul(8)?,
            Self::Ptr
            | Self::Fwd
            | Self::Typedef
            | Self::Volatile
            | Self::Const
            | Self::Restrict
            | Self::Func
            | Self::Float
            | Self::TypeTag => 0,
        })
    }

    /// Qualifiers and tags, which a value's printing looks through (as
    /// libbpf's `btf_is_mod`); typedefs are resolved too, but apart.
    const fn is_modifier(self) -> bool {
        matches!(
            self,
            Self::Volatile | Self::Const | Self::Restrict | Self::TypeTag
        )
    }
}

/// One type: its common header and the bytes of its kind-specific part.
#[derive(Clone, Copy, Debug)]
pub struct Type<'a> {
    /// Its id.
    pub id: u32,
    /// Its kind.
    pub kind: Kind,
    /// Offset of its name in the string section.
    pub name_off: u32,
    /// Number of members, enumerators, parameters or variables.
    pub vlen: u16,
    /// Kind-specific flag: bitfield offsets in structs, signedness of enums.
    pub kind_flag: bool,
    /// Size in bytes, or a referenced type id, depending on the kind.
    pub size_or_type: u32,
    extra: &'a [u8],
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let b = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

impl Type<'_> {
    fn word(&self, index: usize) -> u32 {
        // The parser checked the kind-specific part's length.
        u32_at(self.extra, index * 4).unwrap_or(0)
    }
}

/// A member of a struct or union.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Offset of its name.
    pub name_off: u32,
    /// Its type.
    pub type_id: u32,
    /// Offset from the start of the struct, in bits.
    pub bit_offset: u32,
    /// For a bitfield (with the struct's kind flag), its width; else 0.
    pub bitfield_size: u32,
}

/// Parsed BTF: the raw bytes and where each type starts.
#[derive(Clone, Debug)]
pub struct Btf {
    data: Vec<u8>,
    strings: std::ops::Range<usize>,
    /// Byte offset in `data` of type id `i + 1`.
    offsets: Vec<usize>,
}

impl Btf {
    /// Parses raw BTF (header, types, strings) in this machine's byte
    /// order, as the kernel gives it.
    ///
    /// # Errors
    ///
    /// [`BtfError::Malformed`] when the header or a type does not fit, or a
    /// kind is unknown.
    pub fn parse(data: Vec<u8>) -> Result<Self, BtfError> {
        let header = data
            .get(..HEADER_MIN)
            .ok_or_else(|| malformed(format!("{} bytes is too short", data.len())))?;
        let magic = u16::from_ne_bytes([header[0], header[1]]);
        if magic != MAGIC {
            return Err(if magic.swap_bytes() == MAGIC {
                malformed("the other byte order")
            } else {
                malformed(format!("bad magic {magic:#06x}"))
            });
        }
        if header[2] != 1 {
            return Err(malformed(format!("version {}", header[2])));
        }
        let word = |i: usize| u32_at(header, i).unwrap_or(0) as usize;
        let (hdr_len, type_off, type_len, str_off, str_len) =
            (word(4), word(8), word(12), word(16), word(20));
        if hdr_len < HEADER_MIN {
            return Err(malformed(format!("header length {hdr_len}")));
        }
        let section = |off: usize, len: usize, what: &str| {
            let start = hdr_len.checked_add(off);
            let end = start.and_then(|s| s.checked_add(len));
            match (start, end) {
                (Some(start), Some(end)) if end <= data.len() => Ok(start..end),
                _ => Err(malformed(format!("{what} section out of bounds"))),
            }
        };
        let types = section(type_off, type_len, "type")?;
        let strings = section(str_off, str_len, "string")?;
        let mut offsets = Vec::new();
        let mut at = types.start;
        while at < types.end {
            let common = data
                .get(at..at + 12)
                .filter(|_| at + 12 <= types.end)
                .ok_or_else(|| malformed(format!("type {} is cut short", offsets.len() + 1)))?;
            let info = u32_at(common, 4).unwrap_or(0);
            let raw_kind = (info >> 24) & 0x1f;
            let kind = Kind::from_raw(raw_kind).ok_or_else(|| {
                malformed(format!(
                    "type {} has unknown kind {raw_kind}",
                    offsets.len() + 1
                ))
            })?;
            let extra = kind
                .extra_len((info & 0xffff) as usize)
                .unwrap_or(usize::MAX);
            let next = at
                .checked_add(12)
                .and_then(|a| a.checked_add(extra))
                .filter(|&n| n <= types.end)
                .ok_or_else(|| malformed(format!("type {} is cut short", offsets.len() + 1)))?;
            offsets.push(at);
            at = next;
        }
        if u32::try_from(offsets.len()).is_err() {
            return Err(malformed("too many types"));
        }
        Ok(Self {
            data,
            strings,
            offsets,
        })
    }

    /// Reads and parses a BTF file, e.g. [`VMLINUX_BTF`].
    ///
    /// # Errors
    ///
    /// An unreadable file is [`BtfError::Malformed`] with the I/O error.
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data =
            fs::read(path).map_err(|e| malformed(format!("reading {}: {e}", path.display())))?;
        Self::parse(data)
    }

    /// The number of types (the last type id).
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether there are no types at all.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The type with id `id` (1-based; 0 is `void`, which has no entry).
    ///
    /// # Errors
    ///
    /// [`BtfError::NoSuchType`] for 0 or an id past the end.
    pub fn type_by_id(&self, id: u32) -> Result<Type<'_>, BtfError> {
        let at = *id
            .checked_sub(1)
            .and_then(|i| self.offsets.get(i as usize))
            .ok_or(BtfError::NoSuchType(id))?;
        let bytes = &self.data[at..];
        let info = u32_at(bytes, 4).unwrap_or(0);
        // The parser checked the kind and the length.
        let kind = Kind::from_raw((info >> 24) & 0x1f).ok_or(BtfError::NoSuchType(id))?;
        let vlen = (info & 0xffff) as u16;
        let extra_len = kind.extra_len(vlen as usize).unwrap_or(0);
        Ok(Type {
            id,
            kind,
            name_off: u32_at(bytes, 0).unwrap_or(0),
            vlen,
            kind_flag: info >> 31 != 0,
            size_or_type: u32_at(bytes, 8).unwrap_or(0),
            extra: bytes.get(12..12 + extra_len).unwrap_or(&[]),
        })
    }

    /// The string at `offset` in the string section.
    ///
    /// # Errors
    ///
    /// [`BtfError::Malformed`] for an offset outside the section, a string
    /// without its NUL, or one that is not UTF-8.
    pub fn name(&self, offset: u32) -> Result<&str, BtfError> {
        let section = &self.data[self.strings.clone()];
        let tail = section
            .get(offset as usize..)
            .ok_or_else(|| malformed(format!("string offset {offset} out of bounds")))?;
        let end = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed(format!("string at {offset} has no NUL")))?;
        std::str::from_utf8(&tail[..end])
            .map_err(|_| malformed(format!("string at {offset} is not UTF-8")))
    }

    /// The byte offset of each of `members` in the struct named `name`
    /// (the first of that name), or `None` for a member it lacks or a
    /// bitfield; `None` altogether without such a struct.
    pub fn struct_offsets(&self, name: &str, members: &[&str]) -> Option<Vec<Option<u32>>> {
        let t = (1..=self.len() as u32)
            .filter_map(|id| self.type_by_id(id).ok())
            .find(|t| t.kind == Kind::Struct && self.name(t.name_off).ok() == Some(name))?;
        let found: Vec<(String, Member)> = self
            .members(&t)
            .filter_map(|m| Some((self.name(m.name_off).ok()?.to_owned(), m)))
            .collect();
        Some(
            members
                .iter()
                .map(|want| {
                    found
                        .iter()
                        .find(|(n, m)| n == want && m.bitfield_size == 0 && m.bit_offset % 8 == 0)
                        .map(|(_, m)| m.bit_offset / 8)
                })
                .collect(),
        )
    }

    /// The members of a struct or union.
    pub fn members<'a>(&self, t: &Type<'a>) -> impl Iterator<Item = Member> + 'a {
        let (extra, kflag) = (t.extra, t.kind_flag);
        (0..t.extra.len() / 12).map(move |i| {
            let offset = u32_at(extra, i * 12 + 8).unwrap_or(0);
            Member {
                name_off: u32_at(extra, i * 12).unwrap_or(0),
                type_id: u32_at(extra, i * 12 + 4).unwrap_or(0),
                bit_offset: if kflag { offset & 0x00ff_ffff } else { offset },
                bitfield_size: if kflag { offset >> 24 } else { 0 },
            }
        })
    }

    /// Every string offset a type holds: its name, and the names of its
    /// members, enumerators or parameters.
    pub fn name_offsets<'a>(&self, t: &Type<'a>) -> impl Iterator<Item = u32> + 'a {
        let stride = match t.kind {
            Kind::Struct | Kind::Union | Kind::Enum64 => 12,
            Kind::Enum | Kind::FuncProto => 8,
            _ => 0,
        };
        let extra = t.extra;
        let entries = extra.len().checked_div(stride).unwrap_or(0);
        std::iter::once(t.name_off)
            .chain((0..entries).map(move |i| u32_at(extra, i * stride).unwrap_or(0)))
    }

    /// Follows typedefs, qualifiers and type tags to the type they name
    /// (libbpf's `btf__resolve_type`); 0 for `void`.
    ///
    /// # Errors
    ///
    /// A missing type, or a chain longer than 32 (a cycle).
    pub fn resolve(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..=MAX_RESOLVE_DEPTH {
            if id == 0 {
                return Ok(0);
            }
            let t = self.type_by_id(id)?;
            if !(t.kind.is_modifier() || t.kind == Kind::Typedef) {
                return Ok(id);
            }
            id = t.size_or_type;
        }
        Err(BtfError::TooDeep(id))
    }

    /// The size of a type in bytes (libbpf's `btf__resolve_size`).
    ///
    /// # Errors
    ///
    /// A missing type, a kind without a size (function, `void`…), or a
    /// size that overflows.
    pub fn size_of(&self, id: u32) -> Result<u64, BtfError> {
        let mut id = id;
        let mut multiplier: u64 = 1;
        for _ in 0..=MAX_RESOLVE_DEPTH {
            let t = self.type_by_id(id)?;
            let size = match t.kind {
                Kind::Int
                | Kind::Struct
                | Kind::Union
                | Kind::Enum
                | Kind::Enum64
                | Kind::Datasec
                | Kind::Float => u64::from(t.size_or_type),
                Kind::Ptr => 8,
                Kind::Typedef
                | Kind::Volatile
                | Kind::Const
                | Kind::Restrict
                | Kind::TypeTag
                | Kind::Var => {
                    id = t.size_or_type;
                    continue;
                }
                Kind::Array => {
                    multiplier = multiplier
                        .checked_mul(u64::from(t.word(2)))
                        .ok_or(BtfError::TooLarge(t.id))?;
                    id = t.word(0);
                    continue;
                }
                Kind::Fwd | Kind::Func | Kind::FuncProto | Kind::DeclTag => {
                    return Err(BtfError::Unsupported {
                        id: t.id,
                        kind: t.kind.name(),
                    })
                }
            };
            return size.checked_mul(multiplier).ok_or(BtfError::TooLarge(t.id));
        }
        Err(BtfError::TooDeep(id))
    }

    /// Checks that type `id` is `size` bytes, as a map's key or value.
    ///
    /// # Errors
    ///
    /// [`BtfError::SizeMismatch`], or whatever [`Btf::size_of`] says.
    pub fn check_size(&self, id: u32, size: u32, what: &'static str) -> Result<(), BtfError> {
        let type_size = self.size_of(id)?;
        if type_size == u64::from(size) {
            Ok(())
        } else {
            Err(BtfError::SizeMismatch {
                id,
                what,
                type_size,
                size,
            })
        }
    }
    /// The id of the function (`FUNC`) named `name`. For a kernel
    /// module's split BTF, `base` is vmlinux's: the module's ids follow
    /// vmlinux's, and its names may be vmlinux's strings.
    pub fn func_id(&self, name: &str, base: Option<&Self>) -> Option<u32> {
        let (first_id, base_str_len) =
            base.map_or((1, 0), |b| (b.len() as u32 + 1, b.strings.len() as u32));
        (1..=self.len() as u32).find_map(|local| {
            let t = self.type_by_id(local).ok()?;
            if t.kind != Kind::Func {
                return None;
            }
            let found = match base {
                Some(b) if t.name_off < base_str_len => b.name(t.name_off).ok(),
                _ => self.name(t.name_off - base_str_len).ok(),
            };
            (found == Some(name)).then_some(local + first_id - 1)
        })
    }

    /// The `.ksyms` section's functions: the kfuncs an object declares
    /// (`extern … __ksym`).
    pub fn ksym_funcs(&self) -> Vec<String> {
        let Some(sec) = self.ksyms() else {
            return Vec::new();
        };
        sec.extra
            .chunks_exact(12)
            .filter_map(|e| {
                let t = self.type_by_id(u32_at(e, 0)?).ok()?;
                (t.kind == Kind::Func).then(|| self.name(t.name_off).ok().map(str::to_owned))?
            })
            .collect()
    }

    fn ksyms(&self) -> Option<Type<'_>> {
        (1..=self.len() as u32).find_map(|id| {
            let t = self.type_by_id(id).ok()?;
            (t.kind == Kind::Datasec && self.name(t.name_off).ok()? == ".ksyms").then_some(t)
        })
    }

    /// This BTF as libbpf hands an object's BTF to the kernel when the
    /// object declares kfuncs, or `None` when it declares none. The kernel
    /// refuses the `.ksyms` section clang writes (its entries are
    /// functions, of extern linkage, and it has no size), so, as libbpf
    /// does, each entry becomes a 4-byte variable of a type appended for
    /// them, the section gets their size, and the functions global
    /// linkage. Only the bytes change: no type id moves.
    pub fn with_ksyms_as_vars(&self) -> Option<Vec<u8>> {
        let sec = self.ksyms()?;
        let header_len = u32_at(&self.data, 4)? as usize;
        let type_start = header_len + u32_at(&self.data, 8)? as usize;
        let type_end = type_start + u32_at(&self.data, 12)? as usize;
        // Strings after types, as clang and the kernel write them.
        if self.strings.start != type_end {
            return None;
        }
        let mut types = self.data[type_start..type_end].to_vec();
        let mut strings = self.data[self.strings.clone()].to_vec();
        let put = |buf: &mut Vec<u8>, at: usize, v: u32| {
            buf[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        };
        let int_name = strings.len() as u32;
        strings.extend_from_slice(b"__xdpstat_ksym_int\0");
        let var_name = strings.len() as u32;
        strings.extend_from_slice(b"__xdpstat_ksym\0");
        let int_id = self.len() as u32 + 1;
        let var_id = int_id + 1;
        for word in [int_name, 1 << 24, 4, (1 << 24) | 32] {
            types.extend_from_slice(&word.to_ne_bytes());
        }
        for word in [var_name, 14 << 24, int_id, 1] {
            types.extend_from_slice(&word.to_ne_bytes());
        }
        let sec_at = self.offsets[sec.id as usize - 1] - type_start;
        put(&mut types, sec_at + 8, 4 * u32::from(sec.vlen));
        for (i, entry) in sec.extra.chunks_exact(12).enumerate() {
            let target = u32_at(entry, 0)?;
            if let Ok(t) = self.type_by_id(target) {
                if t.kind == Kind::Func {
                    let at = self.offsets[target as usize - 1] - type_start;
                    let info = u32_at(&types, at + 4)?;
                    put(&mut types, at + 4, (info & !0xffff) | 1);
                }
            }
            let at = sec_at + 12 + 12 * i;
            put(&mut types, at, var_id);
            put(&mut types, at + 4, 4 * i as u32);
            put(&mut types, at + 8, 4);
        }
        let mut out = self.data[..header_len].to_vec();
        put(&mut out, 8, 0);
        put(&mut out, 12, types.len() as u32);
        put(&mut out, 16, types.len() as u32);
        put(&mut out, 20, strings.len() as u32);
        out.extend_from_slice(&types);
        out.extend_from_slice(&strings);
        Some(out)
    }

    /// Formats `data` as a value of type `id`, as bpftool's `btf_dumper`
    /// does: structs by member name in order, enums by enumerator name (or
    /// the number when none matches), `char` arrays holding a printable
    /// NUL-terminated string as that string, bitfields and 128-bit integers
    /// as hex, pointers as their address.
    ///
    /// Unlike bpftool 7.1, floats are printed (as numbers; `long double` as
    /// the hex of its bytes).
    ///
    /// # Errors
    ///
    /// Data shorter than the type, a type that holds no value, or malformed
    /// BTF.
    pub fn format(&self, id: u32, data: &[u8]) -> Result<BtfValue, BtfError> {
        let mut f = Formatter {
            btf: self,
            // Each element printed consumes data, except zero-sized ones;
            // this bound only stops pathological types.
            budget: data.len().saturating_mul(4).saturating_add(1 << 16),
        };
        f.value(id, 0, data, 0)
    }
}

/// A formatted key or value: bpftool's `btf_dumper` output as a tree.
#[derive(Clone, Debug, PartialEq)]
pub enum BtfValue {
    /// `bool`.
    Bool(bool),
    /// A signed integer, or an enum value no enumerator names.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A float (`NaN` and infinities become JSON `null`).
    Float(f64),
    /// A string: a printable `char`, a `char` array, an enumerator's name.
    Str(String),
    /// Hex digits with `0x`: bitfields, 128-bit integers, odd-sized
    /// floats. bpftool prints them bare in text and quoted in JSON.
    Hex(String),
    /// An unprintable `char`: bare `0x1f` in text, `"\u001f"` in JSON.
    Char(u8),
    /// A pointer: `0x…` (or `(nil)`) in text, a number in JSON.
    Pointer(u64),
    /// Array elements.
    Array(Vec<BtfValue>),
    /// Struct or union members, variables, in order; names may repeat
    /// (anonymous members are named "").
    Object(Vec<(String, BtfValue)>),
}

impl BtfValue {
    /// The value as JSON, the way `bpftool -j` prints it. A repeated member
    /// name keeps only its last value, since a JSON object's keys are
    /// unique; write the tree yourself to keep both.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Self::Bool(b) => Value::Bool(*b),
            Self::Int(i) => Value::from(*i),
            Self::UInt(u) | Self::Pointer(u) => Value::from(*u),
            Self::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Self::Str(s) | Self::Hex(s) => Value::String(s.clone()),
            Self::Char(c) => Value::String(char::from(*c).to_string()),
            Self::Array(items) => Value::Array(items.iter().map(Self::to_json).collect()),
            Self::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

struct Formatter<'a> {
    btf: &'a Btf,
    budget: usize,
}

fn bytes(data: &[u8], id: u32, need: usize) -> Result<&[u8], BtfError> {
    data.get(..need).ok_or(BtfError::DataTooShort {
        id,
        need: need as u64,
        have: data.len(),
    })
}

/// `need` bytes of `data` as a zero-extended native-endian integer.
fn uint(data: &[u8], id: u32, need: usize) -> Result<u128, BtfError> {
    if need > 16 {
        return Err(malformed(format!("type {id}: a {need}-byte integer")));
    }
    let b = bytes(data, id, need)?;
    let mut buf = [0u8; 16];
    if cfg!(target_endian = "little") {
        buf[..need].copy_from_slice(b);
        Ok(u128::from_le_bytes(buf))
    } else {
        buf[16 - need..].copy_from_slice(b);
        Ok(u128::from_be_bytes(buf))
    }
}

fn sign_extend(value: u128, bytes: usize) -> i64 {
    let bits = bytes * 8;
    if bits == 0 || bits >= 64 {
        return value as u64 as i64;
    }
    let shift = 64 - bits;
    ((value as u64) << shift) as i64 >> shift
}

fn hex(value: u128) -> BtfValue {
    BtfValue::Hex(format!("{value:#x}"))
}

/// The `nr_bits` bits `bit_offset` bits into `data`, as the compiler lays
/// bitfields out on this machine.
fn bitfield(data: &[u8], id: u32, bit_offset: u32, nr_bits: u32) -> Result<BtfValue, BtfError> {
    let total = bit_offset + nr_bits;
    if nr_bits == 0 || nr_bits > 128 || total > 128 {
        return Err(malformed(format!(
            "type {id}: a {nr_bits}-bit field at bit {bit_offset}"
        )));
    }
    let need = total.div_ceil(8) as usize;
    let b = bytes(data, id, need)?;
    let mut buf = [0u8; 16];
    buf[..need].copy_from_slice(b);
    let value = if cfg!(target_endian = "little") {
        let v = u128::from_le_bytes(buf) >> bit_offset;
        if nr_bits == 128 {
            v
        } else {
            v & ((1u128 << nr_bits) - 1)
        }
    } else {
        (u128::from_be_bytes(buf) << bit_offset) >> (128 - nr_bits)
    };
    Ok(hex(value))
}

impl Formatter<'_> {
    fn spend(&mut self, id: u32) -> Result<(), BtfError> {
        self.budget = self.budget.checked_sub(1).ok_or(BtfError::TooLarge(id))?;
        Ok(())
    }

    fn value(
        &mut self,
        id: u32,
        bit_offset: u32,
        data: &[u8],
        depth: usize,
    ) -> Result<BtfValue, BtfError> {
        if depth > MAX_NESTING {
            return Err(BtfError::TooDeep(id));
        }
        self.spend(id)?;
        let t = self.btf.type_by_id(id)?;
        match t.kind {
            Kind::Int => int(&t, bit_offset, data),
            Kind::Struct | Kind::Union => self.members(&t, data, depth),
            Kind::Array => self.array(&t, data, depth),
            Kind::Enum => self.enumeration(&t, data),
            Kind::Enum64 => self.enumeration64(&t, data),
            Kind::Ptr => Ok(BtfValue::Pointer(uint(data, id, 8)? as u64)),
            Kind::Float => float(&t, data),
            Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag => {
                match self.btf.resolve(id)? {
                    0 => Err(BtfError::Unsupported { id, kind: "void" }),
                    target => self.value(target, bit_offset, data, depth + 1),
                }
            }
            Kind::Var => {
                let name = self.btf.name(t.name_off)?.to_owned();
                let v = self.value(t.size_or_type, bit_offset, data, depth + 1)?;
                Ok(BtfValue::Object(vec![(name, v)]))
            }
            Kind::Datasec => {
                let mut vars = Vec::with_capacity(usize::from(t.vlen));
                for i in 0..usize::from(t.vlen) {
                    let (var, offset) = (t.word(i * 3), t.word(i * 3 + 1) as usize);
                    let rest = data.get(offset..).ok_or(BtfError::DataTooShort {
                        id,
                        need: offset as u64,
                        have: data.len(),
                    })?;
                    vars.push(self.value(var, 0, rest, depth + 1)?);
                }
                let name = self.btf.name(t.name_off)?.to_owned();
                Ok(BtfValue::Object(vec![(name, BtfValue::Array(vars))]))
            }
            Kind::Fwd | Kind::Func | Kind::FuncProto | Kind::DeclTag => {
                Err(BtfError::Unsupported {
                    id,
                    kind: t.kind.name(),
                })
            }
        }
    }

    fn members(&mut self, t: &Type<'_>, data: &[u8], depth: usize) -> Result<BtfValue, BtfError> {
        let mut out = Vec::with_capacity(usize::from(t.vlen));
        for m in self.btf.members(t) {
            let name = self.btf.name(m.name_off)?.to_owned();
            let byte = (m.bit_offset / 8) as usize;
            let rest = data.get(byte..).ok_or(BtfError::DataTooShort {
                id: t.id,
                need: byte as u64,
                have: data.len(),
            })?;
            let v = if m.bitfield_size != 0 {
                self.spend(t.id)?;
                bitfield(rest, t.id, m.bit_offset % 8, m.bitfield_size)?
            } else {
                self.value(m.type_id, m.bit_offset % 8, rest, depth + 1)?
            };
            out.push((name, v));
        }
        Ok(BtfValue::Object(out))
    }

    fn array(&mut self, t: &Type<'_>, data: &[u8], depth: usize) -> Result<BtfValue, BtfError> {
        let (elem, nelems) = (t.word(0), t.word(2));
        if let Some(s) = self.str_array(elem, nelems, data)? {
            return Ok(BtfValue::Str(s));
        }
        let elem_size = self.btf.size_of(elem)?;
        let mut items = Vec::new();
        for i in 0..u64::from(nelems) {
            let at = i
                .checked_mul(elem_size)
                .and_then(|a| usize::try_from(a).ok())
                .ok_or(BtfError::TooLarge(t.id))?;
            let rest = data.get(at..).ok_or(BtfError::DataTooShort {
                id: t.id,
                need: elem_size.saturating_mul(u64::from(nelems)),
                have: data.len(),
            })?;
            items.push(self.value(elem, 0, rest, depth + 1)?);
        }
        Ok(BtfValue::Array(items))
    }

    /// bpftool's `is_str_array`: an array of `char` (qualifiers allowed, not
    /// typedefs) whose bytes up to a NUL are all printable is a string.
    fn str_array(&self, elem: u32, nelems: u32, data: &[u8]) -> Result<Option<String>, BtfError> {
        if nelems == 0 {
            return Ok(None);
        }
        let mut id = elem;
        let mut t = self.btf.type_by_id(id)?;
        for _ in 0..MAX_RESOLVE_DEPTH {
            if !t.kind.is_modifier() {
                break;
            }
            id = t.size_or_type;
            t = match self.btf.type_by_id(id) {
                Ok(t) => t,
                Err(_) => return Ok(None),
            };
        }
        if t.kind != Kind::Int || t.size_or_type != 1 {
            return Ok(None);
        }
        let encoding = (t.word(0) >> 24) & 0xf;
        if encoding != INT_CHAR && self.btf.name(t.name_off)? != "char" {
            return Ok(None);
        }
        let Some(chars) = data.get(..nelems as usize) else {
            return Ok(None);
        };
        for (i, &c) in chars.iter().enumerate() {
            if c == 0 {
                return Ok(Some(String::from_utf8_lossy(&chars[..i]).into_owned()));
            }
            if !(0x20..0x7f).contains(&c) {
                return Ok(None);
            }
        }
        Ok(None)
    }

    fn enumeration(&self, t: &Type<'_>, data: &[u8]) -> Result<BtfValue, BtfError> {
        let size = enum_size(t)?;
        let value = sign_extend(uint(data, t.id, size)?, size);
        for i in 0..usize::from(t.vlen) {
            // bpftool compares with the enumerator as a signed 32-bit value.
            if value == i64::from(t.word(i * 2 + 1) as i32) {
                return Ok(BtfValue::Str(self.btf.name(t.word(i * 2))?.to_owned()));
            }
        }
        Ok(BtfValue::Int(value))
    }

    fn enumeration64(&self, t: &Type<'_>, data: &[u8]) -> Result<BtfValue, BtfError> {
        let size = enum_size(t)?;
        let value = uint(data, t.id, size)? as u64;
        for i in 0..usize::from(t.vlen) {
            let v = u64::from(t.word(i * 3 + 1)) | u64::from(t.word(i * 3 + 2)) << 32;
            if value == v {
                return Ok(BtfValue::Str(self.btf.name(t.word(i * 3))?.to_owned()));
            }
        }
        // bpftool prints the unmatched value as a signed 64-bit number.
        Ok(BtfValue::Int(value as i64))
    }
}

const INT_SIGNED: u32 = 1;
const INT_CHAR: u32 = 2;
const INT_BOOL: u32 = 4;

fn enum_size(t: &Type<'_>) -> Result<usize, BtfError> {
    match t.size_or_type {
        s @ (1 | 2 | 4 | 8) => Ok(s as usize),
        s => Err(malformed(format!("enum type {} of size {s}", t.id))),
    }
}

fn int(t: &Type<'_>, bit_offset: u32, data: &[u8]) -> Result<BtfValue, BtfError> {
    let word = t.word(0);
    let (encoding, offset, bits) = ((word >> 24) & 0xf, (word >> 16) & 0xff, word & 0xff);
    if bits > 128 {
        return Err(malformed(format!("int type {} of {bits} bits", t.id)));
    }
    if bit_offset != 0 || offset != 0 || bits % 8 != 0 {
        let total = bit_offset + offset;
        let rest = data.get((total / 8) as usize..).unwrap_or(&[]);
        return bitfield(rest, t.id, total % 8, bits);
    }
    if bits == 128 {
        return Ok(hex(uint(data, t.id, 16)?));
    }
    let n = (bits / 8) as usize;
    match encoding {
        0 | INT_SIGNED if !matches!(bits, 8 | 16 | 32 | 64) => bitfield(data, t.id, 0, bits),
        0 => Ok(BtfValue::UInt(uint(data, t.id, n)? as u64)),
        INT_SIGNED => Ok(BtfValue::Int(sign_extend(uint(data, t.id, n)?, n))),
        INT_CHAR => {
            let c = bytes(data, t.id, 1)?[0];
            Ok(if (0x20..0x7f).contains(&c) {
                BtfValue::Str(char::from(c).to_string())
            } else {
                BtfValue::Char(c)
            })
        }
        INT_BOOL => Ok(BtfValue::Bool(bytes(data, t.id, 1)?[0] != 0)),
        other => Err(malformed(format!("int type {} has encoding {other}", t.id))),
    }
}

fn float(t: &Type<'_>, data: &[u8]) -> Result<BtfValue, BtfError> {
    let size = t.size_or_type as usize;
    let b = bytes(data, t.id, size)?;
    Ok(match size {
        2 => BtfValue::Float(f16_to_f64(u16::from_ne_bytes([b[0], b[1]]))),
        4 => BtfValue::Float(f64::from(f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))),
        8 => BtfValue::Float(f64::from_ne_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ])),
        1..=16 => hex(uint(data, t.id, size)?),
        _ => return Err(malformed(format!("float type {} of size {size}", t.id))),
    })
}

/// IEEE 754 half precision to double, exactly.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f64::from(h & 0x3ff);
    sign * match exp {
        0 => mant * 2f64.powi(-24),
        0x1f if mant == 0.0 => f64::INFINITY,
        0x1f => f64::NAN,
        _ => (1.0 + mant / 1024.0) * 2f64.powi(exp - 15),
    }
}

/// The tests' BTF writer, shared with the integration tests.
#[cfg(test)]
#[path = "../../../xdpstat/tests/common/btf_writer.rs"]
mod btf_writer;

#[cfg(test)]
mod tests {
    use super::*;

    use super::btf_writer::BtfWriter as Builder;

    fn ne64(v: u64) -> Vec<u8> {
        v.to_ne_bytes().to_vec()
    }

    #[test]
    fn struct_of_counters() {
        let mut b = Builder::new();
        let u64_t = b.int_bits("long long unsigned int", 8, 0, 64);
        let packets = b.s("packets");
        let bytes_ = b.s("bytes");
        let s = b.add(
            "counters",
            4,
            2,
            false,
            16,
            &[packets, u64_t, 0, bytes_, u64_t, 64],
        );
        let btf = Btf::parse(b.blob()).unwrap();
        assert_eq!(btf.size_of(s).unwrap(), 16);
        let mut data = ne64(12);
        data.extend(ne64(3000));
        let v = btf.format(s, &data).unwrap();
        assert_eq!(
            v,
            BtfValue::Object(vec![
                ("packets".into(), BtfValue::UInt(12)),
                ("bytes".into(), BtfValue::UInt(3000)),
            ])
        );
        assert_eq!(
            v.to_json(),
            serde_json::json!({"packets": 12, "bytes": 3000})
        );
        assert!(matches!(
            btf.format(s, &data[..15]),
            Err(BtfError::DataTooShort { .. })
        ));
    }

    #[test]
    fn ints_of_every_kind() {
        let mut b = Builder::new();
        let s8 = b.int_bits("signed char", 1, INT_SIGNED, 8);
        let s16 = b.int_bits("short", 2, INT_SIGNED, 16);
        let s32 = b.int_bits("int", 4, INT_SIGNED, 32);
        let s64 = b.int_bits("long", 8, INT_SIGNED, 64);
        let u8_ = b.int_bits("unsigned char", 1, 0, 8);
        let u16_ = b.int_bits("unsigned short", 2, 0, 16);
        let u128_ = b.int_bits("unsigned __int128", 16, 0, 128);
        let ch = b.int_bits("char", 1, INT_CHAR, 8);
        let bo = b.int_bits("_Bool", 1, INT_BOOL, 8);
        let btf = Btf::parse(b.blob()).unwrap();
        let f = |id, data: &[u8]| btf.format(id, data).unwrap();
        assert_eq!(f(s8, &[0xff]), BtfValue::Int(-1));
        assert_eq!(f(s16, &(-300i16).to_ne_bytes()), BtfValue::Int(-300));
        assert_eq!(
            f(s32, &i32::MIN.to_ne_bytes()),
            BtfValue::Int(i64::from(i32::MIN))
        );
        assert_eq!(f(s64, &(-5i64).to_ne_bytes()), BtfValue::Int(-5));
        assert_eq!(f(u8_, &[0xff]), BtfValue::UInt(255));
        assert_eq!(f(u16_, &65535u16.to_ne_bytes()), BtfValue::UInt(65535));
        assert_eq!(f(u128_, &[0; 16]), BtfValue::Hex("0x0".into()));
        let big = (1u128 << 64 | 0xab).to_ne_bytes();
        assert_eq!(f(u128_, &big), BtfValue::Hex("0x100000000000000ab".into()));
        assert_eq!(f(ch, b"A"), BtfValue::Str("A".into()));
        assert_eq!(f(ch, &[7]), BtfValue::Char(7));
        assert_eq!(f(bo, &[2]), BtfValue::Bool(true));
        assert_eq!(f(bo, &[0]), BtfValue::Bool(false));
    }

    #[test]
    fn typedefs_qualifiers_enums_pointers_floats() {
        let mut b = Builder::new();
        let u32_t = b.int_bits("unsigned int", 4, 0, 32);
        let td = b.add("__u32", 8, 0, false, u32_t, &[]);
        let cst = b.add("", 10, 0, false, td, &[]);
        let vol = b.add("", 9, 0, false, cst, &[]);
        let (red, green) = (b.s("RED"), b.s("GREEN"));
        let en = b.add("color", 6, 2, false, 4, &[red, 0, green, (-1i32) as u32]);
        let big = b.s("BIG");
        let en64 = b.add("wide", 19, 1, false, 8, &[big, 0, 1]);
        let ptr = b.add("", 2, 0, false, u32_t, &[]);
        let f32_t = b.add("float", 16, 0, false, 4, &[]);
        let f16_t = b.add("_Float16", 16, 0, false, 2, &[]);
        let btf = Btf::parse(b.blob()).unwrap();
        assert_eq!(btf.resolve(vol).unwrap(), u32_t);
        assert_eq!(btf.size_of(vol).unwrap(), 4);
        let f = |id, data: &[u8]| btf.format(id, data).unwrap();
        assert_eq!(f(vol, &7u32.to_ne_bytes()), BtfValue::UInt(7));
        assert_eq!(f(en, &0u32.to_ne_bytes()), BtfValue::Str("RED".into()));
        assert_eq!(
            f(en, &u32::MAX.to_ne_bytes()),
            BtfValue::Str("GREEN".into())
        );
        assert_eq!(f(en, &5u32.to_ne_bytes()), BtfValue::Int(5));
        assert_eq!(
            f(en64, &(1u64 << 32).to_ne_bytes()),
            BtfValue::Str("BIG".into())
        );
        assert_eq!(f(en64, &u64::MAX.to_ne_bytes()), BtfValue::Int(-1));
        assert_eq!(f(ptr, &ne64(0xdead)), BtfValue::Pointer(0xdead));
        assert_eq!(f(f32_t, &1.5f32.to_ne_bytes()), BtfValue::Float(1.5));
        assert_eq!(f(f16_t, &0x3e00u16.to_ne_bytes()), BtfValue::Float(1.5));
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert!(f16_to_f64(0x7c00).is_infinite());
    }

    #[test]
    fn arrays_and_strings() {
        let mut b = Builder::new();
        let ch = b.int_bits("char", 1, 0, 8);
        let u32_t = b.int_bits("unsigned int", 4, 0, 32);
        let idx = u32_t;
        let name = b.add("", 3, 0, false, 0, &[ch, idx, 8]);
        let cch = b.add("", 10, 0, false, ch, &[]);
        let cname = b.add("", 3, 0, false, 0, &[cch, idx, 4]);
        let nums = b.add("", 3, 0, false, 0, &[u32_t, idx, 3]);
        let grid = b.add("", 3, 0, false, 0, &[nums, idx, 2]);
        let btf = Btf::parse(b.blob()).unwrap();
        let f = |id, data: &[u8]| btf.format(id, data).unwrap();
        assert_eq!(f(name, b"eth0\0\0\0\0"), BtfValue::Str("eth0".into()));
        assert_eq!(f(name, &[0; 8]), BtfValue::Str(String::new()));
        assert_eq!(f(cname, b"ab\0z"), BtfValue::Str("ab".into()));
        // No NUL, or an unprintable byte: an array of numbers (char here is
        // unsigned, encoding 0).
        assert_eq!(
            f(name, b"abcdefgh"),
            BtfValue::Array(
                b"abcdefgh"
                    .iter()
                    .map(|&c| BtfValue::UInt(c.into()))
                    .collect()
            )
        );
        assert!(matches!(f(name, b"a\x01\0\0\0\0\0\0"), BtfValue::Array(_)));
        let data: Vec<u8> = (1u32..=6).flat_map(u32::to_ne_bytes).collect();
        assert_eq!(
            f(grid, &data).to_json(),
            serde_json::json!([[1, 2, 3], [4, 5, 6]])
        );
        assert_eq!(btf.size_of(grid).unwrap(), 24);
    }

    #[test]
    fn bitfields_both_encodings() {
        let mut b = Builder::new();
        let u32_t = b.int_bits("unsigned int", 4, 0, 32);
        let (a, c, d) = (b.s("a"), b.s("c"), b.s("d"));
        // struct { u32 a:3; u32 c:5; u32 d:24; } with the kind flag.
        let kf = b.add(
            "flags",
            4,
            3,
            true,
            4,
            &[
                a,
                u32_t,
                3 << 24,
                c,
                u32_t,
                (5 << 24) | 3,
                d,
                u32_t,
                (24 << 24) | 8,
            ],
        );
        // The old encoding: the int type carries offset and width.
        let i3 = b.add("", 1, 0, false, 4, &[3]);
        let i5 = b.add("", 1, 0, false, 4, &[5]);
        let old = b.add("old", 4, 2, false, 4, &[a, i3, 0, c, i5, 3]);
        let u24 = b.int_bits("u24", 4, 0, 24);
        let btf = Btf::parse(b.blob()).unwrap();
        let word: u32 = 0b101 | (0b10011 << 3) | (0xabcdef << 8);
        let v = btf.format(kf, &word.to_ne_bytes()).unwrap();
        assert_eq!(
            v.to_json(),
            serde_json::json!({"a": "0x5", "c": "0x13", "d": "0xabcdef"})
        );
        let v = btf.format(old, &word.to_ne_bytes()).unwrap();
        assert_eq!(v.to_json(), serde_json::json!({"a": "0x5", "c": "0x13"}));
        assert_eq!(
            btf.format(u24, &0x00ff_fffeu32.to_ne_bytes()).unwrap(),
            BtfValue::Hex("0xfffffe".into())
        );
    }

    #[test]
    fn datasec_and_var() {
        let mut b = Builder::new();
        let u32_t = b.int_bits("unsigned int", 4, 0, 32);
        let v1 = b.add("hits", 14, 0, false, u32_t, &[1]);
        let v2 = b.add("misses", 14, 0, false, u32_t, &[1]);
        let sec = b.add(".bss", 15, 2, false, 8, &[v1, 0, 4, v2, 4, 4]);
        let btf = Btf::parse(b.blob()).unwrap();
        let data: Vec<u8> = [5u32, 9].iter().flat_map(|v| v.to_ne_bytes()).collect();
        assert_eq!(
            btf.format(sec, &data).unwrap().to_json(),
            serde_json::json!({".bss": [{"hits": 5}, {"misses": 9}]})
        );
    }

    #[test]
    fn unions_keep_repeated_anonymous_names() {
        let mut b = Builder::new();
        let u8_t = b.int_bits("u8", 1, 0, 8);
        let x = b.s("x");
        let inner = b.add("", 5, 1, false, 1, &[x, u8_t, 0]);
        let outer = b.add("s", 4, 2, false, 2, &[0, inner, 0, 0, inner, 8]);
        let btf = Btf::parse(b.blob()).unwrap();
        let BtfValue::Object(members) = btf.format(outer, &[1, 2]).unwrap() else {
            panic!("an object");
        };
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].0, "");
        assert_eq!(
            members[1].1,
            BtfValue::Object(vec![("x".into(), BtfValue::UInt(2))])
        );
    }

    #[test]
    fn cycles_and_unsupported_kinds_are_errors() {
        let mut b = Builder::new();
        // Type 1 is a typedef of itself; 2 is a const of 3, 3 a const of 2.
        let td = b.add("loop", 8, 0, false, 1, &[]);
        let c1 = b.add("", 10, 0, false, 3, &[]);
        let _c2 = b.add("", 10, 0, false, 2, &[]);
        let fwd = b.add("opaque", 7, 0, false, 0, &[]);
        let u32_t = b.int_bits("unsigned int", 4, 0, 32);
        // A struct containing itself.
        let x = b.s("x");
        let selfish = b.add("selfish", 4, 1, false, 4, &[x, 6, 0]);
        // An array of 2^32-1 zero-sized structs.
        let empty = b.add("empty", 4, 0, false, 0, &[]);
        let huge = b.add("", 3, 0, false, 0, &[empty, u32_t, u32::MAX]);
        let btf = Btf::parse(b.blob()).unwrap();
        assert!(matches!(btf.resolve(td), Err(BtfError::TooDeep(_))));
        assert!(matches!(btf.format(c1, &[0; 4]), Err(BtfError::TooDeep(_))));
        assert!(matches!(
            btf.format(fwd, &[0; 4]),
            Err(BtfError::Unsupported { .. })
        ));
        assert!(matches!(
            btf.format(selfish, &[0; 4]),
            Err(BtfError::TooDeep(_))
        ));
        assert!(matches!(btf.format(huge, &[]), Err(BtfError::TooLarge(_))));
        assert!(matches!(btf.format(0, &[]), Err(BtfError::NoSuchType(0))));
        assert!(matches!(btf.format(99, &[]), Err(BtfError::NoSuchType(99))));
        assert!(matches!(
            btf.check_size(u32_t, 8, "value"),
            Err(BtfError::SizeMismatch { type_size: 4, .. })
        ));
    }

    #[test]
    fn malformed_blobs_never_panic() {
        let mut b = Builder::new();
        let u32_t = b.int_bits("unsigned int", 4, 0, 32);
        let x = b.s("x");
        let y = b.s("y");
        b.add("s", 4, 2, true, 8, &[x, u32_t, 3 << 24, y, 6, 32]);
        b.add("", 3, 0, false, 0, &[u32_t, u32_t, 4]);
        b.add("e", 6, 1, false, 4, &[x, 1]);
        b.add("t", 8, 0, false, 3, &[]);
        b.add("", 2, 0, false, 0, &[]);
        b.add("float", 16, 0, false, 4, &[]);
        let v = b.add("v", 14, 0, false, u32_t, &[1]);
        b.add(".data", 15, 1, false, 4, &[v, 0, 4]);
        b.add("w", 19, 1, false, 8, &[y, 1, 2]);
        b.int_bits("char", 1, INT_CHAR, 8);
        let good = b.blob();
        let ids = 0..=13;
        let exercise = |btf: &Btf| {
            for id in ids.clone() {
                let _ = btf.size_of(id);
                let _ = btf.resolve(id);
                let _ = btf.format(id, &[0xab; 40]);
                let _ = btf.format(id, &[0; 3]);
                let _ = btf.format(id, &[]);
            }
        };
        exercise(&Btf::parse(good.clone()).unwrap());
        // Every truncation, every single-byte corruption, and many random
        // multi-byte ones parse or fail cleanly, and what parses formats or
        // fails cleanly.
        for len in 0..good.len() {
            if let Ok(btf) = Btf::parse(good[..len].to_vec()) {
                exercise(&btf);
            }
        }
        for i in 0..good.len() {
            for v in [0u8, 0x01, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] = v;
                if let Ok(btf) = Btf::parse(bad) {
                    exercise(&btf);
                }
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut bad = good.clone();
            for _ in 0..1 + rand() % 4 {
                let i = (rand() % bad.len() as u64) as usize;
                bad[i] = rand() as u8;
            }
            if let Ok(btf) = Btf::parse(bad) {
                exercise(&btf);
            }
        }
        assert!(Btf::parse(vec![0x9f, 0xeb, 1, 0]).is_err());
        let mut swapped = good.clone();
        swapped.swap(0, 1);
        assert!(
            matches!(Btf::parse(swapped), Err(BtfError::Malformed(m)) if m.contains("byte order"))
        );
        let mut unknown = good;
        // The first type's info word: kind 31.
        unknown[24 + 4 + 3] = 31;
        assert!(Btf::parse(unknown).is_err());
    }
}
