//! BPF instructions: decoding, and printing in the kernel verifier's syntax.
//!
//! [`Insn::decode_all`] turns the bytes of a program into instructions, each
//! with the slot index that the verifier uses. [`Insn::display`] prints one
//! instruction the way the verifier log does after its `N: (op) ` prefix
//! (`kernel/bpf/disasm.c`, `print_bpf_insn`). The other methods answer what a
//! control-flow or register analysis asks: where a jump goes, which registers
//! an instruction reads and writes, and which memory it touches.
//!
//! Where the kernel's text would say nothing useful, this module says more:
//! an unresolved map reference prints as `map[fd:N]` (bpftool's style; the
//! verifier prints `0x0` to hide the pointer), LLVM's `callx rN` has a form
//! of its own, and encodings the verifier rejects print as `BUG_<class>_<op>`
//! rather than as a garbled instruction.
//!
//! Instructions are little-endian, as in `bpfel` objects and in the kernel on
//! x86 and arm64. Everything here is pure code: no syscalls, and no panics on
//! any input.

use std::fmt;

mod helpers;

// Instruction classes (`code & 7`).
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const JMP32: u8 = 0x06;
const ALU64: u8 = 0x07;

// Load/store modes (`code & 0xe0`) and sizes (`code & 0x18`).
const MODE_IMM: u8 = 0x00;
const MODE_ABS: u8 = 0x20;
const MODE_IND: u8 = 0x40;
const MODE_MEM: u8 = 0x60;
const MODE_MEMSX: u8 = 0x80;
const MODE_ATOMIC: u8 = 0xc0;
const SIZE_DW: u8 = 0x18;

/// `code & 8`: the source is `src_reg` rather than `imm`.
const SRC_X: u8 = 0x08;

// ALU operations (`code & 0xf0`).
const OP_DIV: u8 = 0x30;
const OP_NEG: u8 = 0x80;
const OP_MOD: u8 = 0x90;
const OP_MOV: u8 = 0xb0;
const OP_END: u8 = 0xd0;

// Jump operations (`code & 0xf0`).
const OP_JA: u8 = 0x00;
const OP_CALL: u8 = 0x80;
const OP_EXIT: u8 = 0x90;
const OP_JCOND: u8 = 0xe0;

// `imm` of an atomic instruction.
const ATOMIC_FETCH: i32 = 0x01;
const ATOMIC_XCHG: i32 = 0xe1;
const ATOMIC_CMPXCHG: i32 = 0xf1;
const ATOMIC_LOAD_ACQ: i32 = 0x100;
const ATOMIC_STORE_REL: i32 = 0x110;

// `src_reg` of a call, and `off` of the special register moves.
const PSEUDO_CALL: u8 = 1;
const PSEUDO_KFUNC_CALL: u8 = 2;
const OFF_ADDR_SPACE_CAST: i16 = 1;
const OFF_PERCPU_ADDR: i16 = -1;

// `src_reg` of ld_imm64.
const PSEUDO_MAP_FD: u8 = 1;
const PSEUDO_MAP_VALUE: u8 = 2;
const PSEUDO_MAP_IDX: u8 = 5;
const PSEUDO_MAP_IDX_VALUE: u8 = 6;

/// The opcode of `ld_imm64`, the one instruction that takes two slots.
const LD_IMM64: u8 = LD | MODE_IMM | SIZE_DW;

/// r1-r5, which a call leaves unreadable.
const CALLER_SAVED: &[u8] = &[1, 2, 3, 4, 5];

/// One decoded instruction. For `ld_imm64` (opcode 0x18) the 16-byte pair is
/// one `Insn` with [`Insn::imm64`] set and [`Insn::width`]` == 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Opcode: class, size/mode or operation, source bit.
    pub code: u8,
    /// Destination register (low nibble of the second byte).
    pub dst: u8,
    /// Source register (high nibble of the second byte).
    pub src: u8,
    /// Signed 16-bit offset.
    pub off: i16,
    /// Signed 32-bit immediate (the low half of an `ld_imm64` value).
    pub imm: i32,
    /// The second slot's immediate for `ld_imm64` (the high half), else 0.
    pub imm_hi: i32,
}

/// Why [`Insn::decode_all`] rejected its input. Offsets are in bytes from the
/// start of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length is not a multiple of 8.
    #[error("{len} trailing bytes at byte offset {offset}: BPF instructions are 8 bytes long")]
    TrailingBytes {
        /// Where the incomplete instruction starts.
        offset: usize,
        /// How many bytes it has.
        len: usize,
    },
    /// An `ld_imm64` is the last slot, without its second half.
    #[error("ld_imm64 at byte offset {offset} lacks its second 8-byte slot")]
    TruncatedLdImm64 {
        /// Where the `ld_imm64` starts.
        offset: usize,
    },
    /// The second slot of an `ld_imm64` is not the bare immediate that the
    /// kernel requires (its code, registers and offset must be 0).
    #[error("ld_imm64 at byte offset {offset}: its second slot (byte offset {second}) must have code, registers and offset 0")]
    BadLdImm64 {
        /// Where the `ld_imm64` starts.
        offset: usize,
        /// Where its second slot starts.
        second: usize,
    },
}

/// One memory access: a load, a store or an atomic operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemAccess {
    /// The register holding the address.
    pub base: u8,
    /// Offset added to `base`.
    pub off: i16,
    /// Access size in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// What the access does.
    pub kind: AccessKind,
    /// The register whose value is stored (STX and atomics), if any.
    pub value_reg: Option<u8>,
}

/// The kind of a [`MemAccess`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    /// Reads memory (LDX, and the load-acquire atomic).
    Load,
    /// Writes memory (ST, STX, and the store-release atomic).
    Store,
    /// Reads and writes memory in one step (`lock` ops, fetch ops, xchg, cmpxchg).
    Atomic,
}

/// Names for what the raw instruction cannot say, like bpftool's
/// `bpf_insn_cbs`. Every method has a default, so an implementation overrides
/// only what it knows.
pub trait Resolver {
    /// The name of helper `id`, printed as `call NAME#id`. Without one the
    /// call prints as `call unknown#id`.
    fn helper_name(&self, id: i32) -> Option<String> {
        helper_name(id).map(str::to_owned)
    }

    /// Text for an ld_imm64 at `index`, e.g. a relocation's map name, so that
    /// the instruction prints as `r1 = map[counters]`.
    fn ld_imm64(&self, _index: usize, _insn: &Insn) -> Option<String> {
        None
    }

    /// The name of the kfunc that the call at `index` targets (its `imm` is a
    /// BTF id). Without one it prints as `call kernel-function#id`.
    fn kfunc_name(&self, _index: usize, _insn: &Insn) -> Option<String> {
        None
    }
}

/// A [`Resolver`] that knows only the kernel's helper names.
pub struct NoNames;

impl Resolver for NoNames {}

/// The kernel's name for helper `id` (`bpf_map_lookup_elem` for 1), from the
/// order of `___BPF_FUNC_MAPPER` in `include/uapi/linux/bpf.h`. Id 0 is
/// `bpf_unspec`, as the kernel prints it; ids past the table are `None`.
pub fn helper_name(id: i32) -> Option<&'static str> {
    usize::try_from(id)
        .ok()
        .and_then(|i| helpers::HELPERS.get(i))
        .copied()
}

/// What an instruction does, worked out once from its fields so that
/// printing and the predicates agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// Two-operand ALU op (`+=`, `=`, `s/=`, movsx, ...), `w` for ALU32,
    /// `x` for a register source.
    Alu {
        w: bool,
        x: bool,
    },
    Neg {
        w: bool,
    },
    /// ALU-class `BPF_END`: `be16`/`le32`/...
    Endian,
    /// ALU64-class `BPF_END`: `bswap16/32/64`.
    Bswap,
    AddrSpaceCast,
    PercpuAddr,
    Ldx,
    St,
    Stx,
    /// `lock` ops and their fetching forms.
    AtomicAlu {
        fetch: bool,
    },
    Xchg,
    Cmpxchg,
    LoadAcquire,
    StoreRelease,
    Nospec,
    LdImm64,
    LdAbs,
    LdInd,
    Ja,
    Gotol,
    Gotox,
    MayGoto,
    Cond {
        w: bool,
        x: bool,
    },
    Call,
    Callx,
    Exit,
    /// No valid instruction: printed as `BUG_<class>_<code>` like the
    /// kernel's own fallbacks.
    Bug(&'static str),
}

impl Insn {
    /// Decodes a whole program. Each instruction comes with its slot index as
    /// the verifier counts it: an `ld_imm64` takes two slots, so the index of
    /// the instruction after it is 2 more. Like the verifier, it rejects a
    /// length that is not a multiple of 8 and an `ld_imm64` whose second slot
    /// is missing or carries anything but the high immediate.
    pub fn decode_all(bytes: &[u8]) -> Result<Vec<(usize, Insn)>, DecodeError> {
        let whole = bytes.len() - bytes.len() % 8;
        if whole != bytes.len() {
            return Err(DecodeError::TrailingBytes {
                offset: whole,
                len: bytes.len() - whole,
            });
        }
        let slots: Vec<[u8; 8]> = bytes
            .chunks_exact(8)
            .map(|c| {
                let mut s = [0; 8];
                s.copy_from_slice(c);
                s
            })
            .collect();
        let mut out = Vec::with_capacity(slots.len());
        let mut i = 0;
        while let Some(slot) = slots.get(i) {
            let mut insn = Insn::from_slot(*slot);
            if insn.code == LD_IMM64 {
                let second = slots
                    .get(i + 1)
                    .ok_or(DecodeError::TruncatedLdImm64 { offset: i * 8 })?;
                let hi = Insn::from_slot(*second);
                if hi.code != 0 || hi.dst != 0 || hi.src != 0 || hi.off != 0 {
                    return Err(DecodeError::BadLdImm64 {
                        offset: i * 8,
                        second: (i + 1) * 8,
                    });
                }
                insn.imm_hi = hi.imm;
            }
            out.push((i, insn));
            i += insn.width();
        }
        Ok(out)
    }

    /// Decodes one 8-byte slot. For an `ld_imm64` this is only the first
    /// half, with `imm_hi` 0.
    pub fn from_slot(slot: [u8; 8]) -> Insn {
        let [code, regs, o0, o1, i0, i1, i2, i3] = slot;
        Insn {
            code,
            dst: regs & 0x0f,
            src: regs >> 4,
            off: i16::from_le_bytes([o0, o1]),
            imm: i32::from_le_bytes([i0, i1, i2, i3]),
            imm_hi: 0,
        }
    }

    /// Encodes the instruction back into its 8 or 16 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.push(self.code);
        out.push((self.src << 4) | (self.dst & 0x0f));
        out.extend_from_slice(&self.off.to_le_bytes());
        out.extend_from_slice(&self.imm.to_le_bytes());
        if self.width() == 2 {
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&self.imm_hi.to_le_bytes());
        }
        out
    }

    /// The instruction class, `code & 7` (`BPF_LD` .. `BPF_ALU64`).
    pub fn class(&self) -> u8 {
        self.code & 0x07
    }

    /// How many 8-byte slots the instruction takes: 2 for `ld_imm64`, else 1.
    pub fn width(&self) -> usize {
        if self.code == LD_IMM64 {
            2
        } else {
            1
        }
    }

    /// The 64-bit immediate of an `ld_imm64` (`imm_hi:imm`).
    pub fn imm64(&self) -> u64 {
        (u64::from(self.imm_hi as u32) << 32) | u64::from(self.imm as u32)
    }

    /// Whether this is `exit`.
    pub fn is_exit(&self) -> bool {
        self.form() == Form::Exit
    }

    /// The helper id of a helper call (`call` with `src_reg` 0).
    pub fn is_helper_call(&self) -> Option<i32> {
        (self.form() == Form::Call && self.src == 0).then_some(self.imm)
    }

    /// Whether this is a bpf-to-bpf call (`src_reg` 1, `BPF_PSEUDO_CALL`).
    pub fn is_pseudo_call(&self) -> bool {
        self.form() == Form::Call && self.src == PSEUDO_CALL
    }

    /// Whether this is a kfunc call (`src_reg` 2, `BPF_PSEUDO_KFUNC_CALL`);
    /// `imm` is then the function's BTF id.
    pub fn is_kfunc_call(&self) -> bool {
        self.form() == Form::Call && self.src == PSEUDO_KFUNC_CALL
    }

    /// The slot index of the function that a bpf-to-bpf call at `index`
    /// enters (`index + imm + 1`); `None` for anything else.
    pub fn call_target(&self, index: usize) -> Option<usize> {
        if self.is_pseudo_call() {
            relative(index, i64::from(self.imm))
        } else {
            None
        }
    }

    /// The absolute slot index that a jump at `index` may go to: `goto`,
    /// `gotol`, `may_goto` and conditional jumps. `None` for everything else,
    /// including calls (see [`Insn::call_target`]), `gotox` (its target is in
    /// a register) and targets before slot 0.
    pub fn jump_target(&self, index: usize) -> Option<usize> {
        match self.form() {
            Form::Ja | Form::MayGoto | Form::Cond { .. } => relative(index, i64::from(self.off)),
            Form::Gotol => relative(index, i64::from(self.imm)),
            _ => None,
        }
    }

    /// Whether the jump is taken only sometimes (`if ...` and `may_goto`).
    pub fn is_conditional_jump(&self) -> bool {
        matches!(self.form(), Form::Cond { .. } | Form::MayGoto)
    }

    /// Whether execution can continue with the next instruction: false for
    /// `exit` and the unconditional jumps (`goto`, `gotol`, `gotox`).
    pub fn falls_through(&self) -> bool {
        !matches!(
            self.form(),
            Form::Exit | Form::Ja | Form::Gotol | Form::Gotox
        )
    }

    /// The register the instruction writes: `dst` for ALU ops, loads and
    /// `ld_imm64`; `src` for the fetching atomics and xchg; r0 for cmpxchg,
    /// calls and the legacy packet loads. See also [`Insn::clobbers`].
    pub fn defined_reg(&self) -> Option<u8> {
        match self.form() {
            Form::Alu { .. }
            | Form::Neg { .. }
            | Form::Endian
            | Form::Bswap
            | Form::AddrSpaceCast
            | Form::PercpuAddr
            | Form::Ldx
            | Form::LdImm64
            | Form::LoadAcquire => Some(self.dst),
            Form::AtomicAlu { fetch: true } | Form::Xchg => Some(self.src),
            Form::Cmpxchg | Form::Call | Form::Callx | Form::LdAbs | Form::LdInd => Some(0),
            _ => None,
        }
    }

    /// Registers the instruction leaves unreadable besides
    /// [`Insn::defined_reg`]: r1-r5 for calls and the legacy packet loads
    /// (which call into the kernel), none otherwise.
    pub fn clobbers(&self) -> &'static [u8] {
        match self.form() {
            Form::Call | Form::Callx | Form::LdAbs | Form::LdInd => CALLER_SAVED,
            _ => &[],
        }
    }

    /// The registers the instruction reads, each once. Calls count as reading
    /// all of r1-r5, because the number of arguments is not in the
    /// instruction; `exit` reads r0; the legacy packet loads read the
    /// context in r6.
    pub fn used_regs(&self) -> Vec<u8> {
        let (d, s) = (self.dst, self.src);
        let regs: &[u8] = match self.form() {
            Form::Alu { x: false, .. } if self.code & 0xf0 == OP_MOV => &[],
            Form::Alu { x: false, .. } => &[d],
            Form::Alu { x: true, .. } if self.code & 0xf0 == OP_MOV => &[s],
            Form::Alu { x: true, .. } => &[d, s],
            Form::Neg { .. } | Form::Endian | Form::Bswap => &[d],
            Form::AddrSpaceCast | Form::PercpuAddr | Form::Ldx | Form::LoadAcquire => &[s],
            Form::St | Form::Gotox => &[d],
            Form::Cond { x: false, .. } => &[d],
            Form::Stx
            | Form::AtomicAlu { .. }
            | Form::Xchg
            | Form::StoreRelease
            | Form::Cond { x: true, .. } => &[d, s],
            Form::Cmpxchg => &[d, s, 0],
            Form::LdAbs => &[6],
            Form::LdInd => &[6, s],
            Form::Call => CALLER_SAVED,
            Form::Callx => &[d, 1, 2, 3, 4, 5],
            Form::Exit => &[0],
            Form::LdImm64
            | Form::Nospec
            | Form::Ja
            | Form::Gotol
            | Form::MayGoto
            | Form::Bug(_) => &[],
        };
        let mut out = Vec::with_capacity(regs.len());
        for &r in regs {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        out
    }

    /// The memory the instruction reads or writes through a register: LDX,
    /// ST, STX and the atomics. Load-acquire counts as a load and
    /// store-release as a store. The legacy packet loads (`skb[...]`) have no
    /// base register and give `None`.
    pub fn mem_access(&self) -> Option<MemAccess> {
        let (base, kind, value_reg) = match self.form() {
            Form::Ldx | Form::LoadAcquire => (self.src, AccessKind::Load, None),
            Form::St => (self.dst, AccessKind::Store, None),
            Form::Stx | Form::StoreRelease => (self.dst, AccessKind::Store, Some(self.src)),
            Form::AtomicAlu { .. } | Form::Xchg | Form::Cmpxchg => {
                (self.dst, AccessKind::Atomic, Some(self.src))
            }
            _ => return None,
        };
        Some(MemAccess {
            base,
            off: self.off,
            size: self.size_bytes(),
            kind,
            value_reg,
        })
    }

    /// The instruction in the verifier's syntax, e.g. `r1 = *(u32 *)(r2 +4)`.
    /// `index` is its slot index, which `names` may use to find a
    /// relocation.
    pub fn display<'a>(&'a self, index: usize, names: &'a dyn Resolver) -> impl fmt::Display + 'a {
        Disasm {
            insn: self,
            index,
            names,
        }
    }

    fn size_bytes(&self) -> u8 {
        match self.code & 0x18 {
            0x00 => 4,
            0x08 => 2,
            0x10 => 1,
            _ => 8,
        }
    }

    /// `u32`, `u16`, `u8` or `u64`, as in `*(u32 *)`.
    fn size_name(&self) -> &'static str {
        match self.code & 0x18 {
            0x00 => "u32",
            0x08 => "u16",
            0x10 => "u8",
            _ => "u64",
        }
    }

    fn form(&self) -> Form {
        let op = self.code & 0xf0;
        let mode = self.code & 0xe0;
        let x = self.code & SRC_X != 0;
        match self.class() {
            ALU | ALU64 => {
                let w = self.class() == ALU;
                match op {
                    OP_END if w => Form::Endian,
                    OP_END => Form::Bswap,
                    OP_NEG => Form::Neg { w },
                    0xe0 | 0xf0 => Form::Bug("BUG_alu_"),
                    _ if self.code == ALU64 | OP_MOV | SRC_X => match self.off {
                        OFF_ADDR_SPACE_CAST => Form::AddrSpaceCast,
                        OFF_PERCPU_ADDR => Form::PercpuAddr,
                        _ => Form::Alu { w, x },
                    },
                    _ => Form::Alu { w, x },
                }
            }
            LDX => match mode {
                MODE_MEM => Form::Ldx,
                MODE_MEMSX if self.code & 0x18 != SIZE_DW => Form::Ldx,
                _ => Form::Bug("BUG_ldx_"),
            },
            ST => match mode {
                MODE_MEM => Form::St,
                // BPF_NOSPEC, the kernel's internal speculation barrier.
                0xc0 => Form::Nospec,
                _ => Form::Bug("BUG_st_"),
            },
            STX => match mode {
                MODE_MEM => Form::Stx,
                MODE_ATOMIC => match self.imm {
                    0x00 | 0x40 | 0x50 | 0xa0 => Form::AtomicAlu { fetch: false },
                    0x01 | 0x41 | 0x51 | 0xa1 => Form::AtomicAlu { fetch: true },
                    ATOMIC_XCHG => Form::Xchg,
                    ATOMIC_CMPXCHG => Form::Cmpxchg,
                    ATOMIC_LOAD_ACQ => Form::LoadAcquire,
                    ATOMIC_STORE_REL => Form::StoreRelease,
                    _ => Form::Bug("BUG_"),
                },
                _ => Form::Bug("BUG_"),
            },
            LD => match mode {
                MODE_ABS => Form::LdAbs,
                MODE_IND => Form::LdInd,
                _ if self.code == LD_IMM64 => Form::LdImm64,
                _ => Form::Bug("BUG_ld_"),
            },
            JMP | JMP32 => {
                let jmp32 = self.class() == JMP32;
                match (op, jmp32, x) {
                    (OP_JA, false, false) => Form::Ja,
                    (OP_JA, false, true) => Form::Gotox,
                    (OP_JA, true, false) => Form::Gotol,
                    (OP_CALL, false, false) => Form::Call,
                    (OP_CALL, false, true) => Form::Callx,
                    (OP_EXIT, false, false) => Form::Exit,
                    // BPF_MAY_GOTO is src_reg 0 of BPF_JCOND.
                    (OP_JCOND, false, false) if self.src == 0 => Form::MayGoto,
                    (OP_JA | OP_CALL | OP_EXIT | OP_JCOND | 0xf0, _, _) => {
                        Form::Bug(if jmp32 { "BUG_jmp32_" } else { "BUG_jmp_" })
                    }
                    _ => Form::Cond { w: jmp32, x },
                }
            }
            // The class has 3 bits, all matched above.
            _ => Form::Bug("BUG_"),
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, index: usize, names: &dyn Resolver) -> fmt::Result {
        let (d, s, off, imm) = (self.dst, self.src, self.off, self.imm);
        let size = self.size_name();
        let op = self.code & 0xf0;
        match self.form() {
            Form::Alu { w, x } => {
                let r = reg_char(w);
                let signed = (op == OP_DIV || op == OP_MOD) && off == 1;
                let sym = alu_op(op, signed);
                if x {
                    let cast = match (op, off) {
                        (OP_MOV, 8) => "(s8)",
                        (OP_MOV, 16) => "(s16)",
                        (OP_MOV, 32) => "(s32)",
                        _ => "",
                    };
                    write!(f, "{r}{d} {sym} {cast}{r}{s}")
                } else {
                    write!(f, "{r}{d} {sym} {imm}")
                }
            }
            Form::Neg { w } => {
                let r = reg_char(w);
                write!(f, "{r}{d} = -{r}{d}")
            }
            Form::Endian => {
                let order = if self.code & SRC_X != 0 { "be" } else { "le" };
                write!(f, "r{d} = {order}{imm} r{d}")
            }
            Form::Bswap => write!(f, "r{d} = bswap{imm} r{d}"),
            Form::AddrSpaceCast => {
                let (to, from) = ((imm as u32) >> 16, imm as u16);
                write!(f, "r{d} = addr_space_cast(r{s}, {to}, {from})")
            }
            Form::PercpuAddr => write!(f, "r{d} = &(void __percpu *)(r{s})"),
            Form::Ldx => {
                let ty = if self.code & 0xe0 == MODE_MEMSX {
                    match size {
                        "u32" => "s32",
                        "u16" => "s16",
                        _ => "s8",
                    }
                } else {
                    size
                };
                write!(f, "r{d} = *({ty} *)(r{s} {off:+})")
            }
            Form::St => write!(f, "*({size} *)(r{d} {off:+}) = {imm}"),
            Form::Stx => write!(f, "*({size} *)(r{d} {off:+}) = r{s}"),
            Form::AtomicAlu { fetch: false } => {
                let sym = alu_op((imm & 0xf0) as u8, false);
                write!(f, "lock *({size} *)(r{d} {off:+}) {sym} r{s}")
            }
            Form::AtomicAlu { fetch: true } => {
                let name = match imm & !ATOMIC_FETCH {
                    0x00 => "add",
                    0x40 => "or",
                    0x50 => "and",
                    _ => "xor",
                };
                let bits = atomic_bits(size);
                write!(
                    f,
                    "r{s} = atomic{bits}_fetch_{name}(({size} *)(r{d} {off:+}), r{s})"
                )
            }
            Form::Xchg => {
                let bits = atomic_bits(size);
                write!(
                    f,
                    "r{s} = atomic{bits}_xchg(({size} *)(r{d} {off:+}), r{s})"
                )
            }
            Form::Cmpxchg => {
                let bits = atomic_bits(size);
                write!(
                    f,
                    "r0 = atomic{bits}_cmpxchg(({size} *)(r{d} {off:+}), r0, r{s})"
                )
            }
            Form::LoadAcquire => write!(f, "r{d} = load_acquire(({size} *)(r{s} {off:+}))"),
            Form::StoreRelease => write!(f, "store_release(({size} *)(r{d} {off:+}), r{s})"),
            Form::Nospec => f.write_str("nospec"),
            Form::LdAbs => write!(f, "r0 = *({size} *)skb[{imm}]"),
            Form::LdInd => write!(f, "r0 = *({size} *)skb[r{s} + {imm}]"),
            Form::LdImm64 => {
                write!(f, "r{d} = ")?;
                if let Some(text) = names.ld_imm64(index, self) {
                    return f.write_str(&text);
                }
                let hi = self.imm_hi as u32;
                match s {
                    PSEUDO_MAP_FD => write!(f, "map[fd:{imm}]"),
                    PSEUDO_MAP_VALUE => write!(f, "map[fd:{imm}]+{hi}"),
                    PSEUDO_MAP_IDX => write!(f, "map[idx:{imm}]"),
                    PSEUDO_MAP_IDX_VALUE => write!(f, "map[idx:{imm}]+{hi}"),
                    _ => write!(f, "{:#x}", self.imm64()),
                }
            }
            Form::Ja => write!(f, "goto pc{off:+}"),
            Form::Gotol => write!(f, "gotol pc{imm:+}"),
            Form::Gotox => write!(f, "gotox r{d}"),
            Form::MayGoto => write!(f, "may_goto pc{off:+}"),
            Form::Cond { w, x } => {
                let r = reg_char(w);
                let sym = jmp_op(op);
                if x {
                    write!(f, "if {r}{d} {sym} {r}{s} goto pc{off:+}")
                } else {
                    write!(f, "if {r}{d} {sym} {:#x} goto pc{off:+}", imm as u32)
                }
            }
            Form::Call => match s {
                PSEUDO_CALL => write!(f, "call pc{imm:+}"),
                PSEUDO_KFUNC_CALL => match names.kfunc_name(index, self) {
                    Some(name) => write!(f, "call {name}#{imm}"),
                    None => write!(f, "call kernel-function#{imm}"),
                },
                0 => match names.helper_name(imm) {
                    Some(name) => write!(f, "call {name}#{imm}"),
                    None => write!(f, "call unknown#{imm}"),
                },
                _ => write!(f, "call unknown#{imm}"),
            },
            // The kernel has no indirect call; this is LLVM's syntax.
            Form::Callx => write!(f, "callx r{d}"),
            Form::Exit => f.write_str("exit"),
            Form::Bug(prefix) => write!(f, "{prefix}{:02x}", self.code),
        }
    }
}

impl fmt::Display for Insn {
    /// The verifier's syntax with [`NoNames`]; see [`Insn::display`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0, &NoNames)
    }
}

/// What [`Insn::display`] returns.
struct Disasm<'a> {
    insn: &'a Insn,
    index: usize,
    names: &'a dyn Resolver,
}

impl fmt::Display for Disasm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.insn.write(f, self.index, self.names)
    }
}

/// `index + rel + 1`, if that is a slot index at all.
fn relative(index: usize, rel: i64) -> Option<usize> {
    let target = i64::try_from(index)
        .ok()?
        .checked_add(rel)?
        .checked_add(1)?;
    usize::try_from(target).ok()
}

fn reg_char(w: bool) -> char {
    if w {
        'w'
    } else {
        'r'
    }
}

/// `64` in `atomic64_fetch_add` for 8-byte operands, nothing otherwise.
fn atomic_bits(size: &str) -> &'static str {
    if size == "u64" {
        "64"
    } else {
        ""
    }
}

/// The assignment operator of ALU operation `op` (`code & 0xf0`).
fn alu_op(op: u8, signed: bool) -> &'static str {
    match op {
        0x00 => "+=",
        0x10 => "-=",
        0x20 => "*=",
        0x30 if signed => "s/=",
        0x30 => "/=",
        0x40 => "|=",
        0x50 => "&=",
        0x60 => "<<=",
        0x70 => ">>=",
        0x90 if signed => "s%=",
        0x90 => "%=",
        0xa0 => "^=",
        0xb0 => "=",
        0xc0 => "s>>=",
        // NEG and END have their own forms; 0xe0/0xf0 are BUG forms.
        _ => "?=",
    }
}

/// The comparison of conditional jump `op` (`code & 0xf0`).
fn jmp_op(op: u8) -> &'static str {
    match op {
        0x10 => "==",
        0x20 => ">",
        0x30 => ">=",
        0x40 => "&",
        0x50 => "!=",
        0x60 => "s>",
        0x70 => "s>=",
        0xa0 => "<",
        0xb0 => "<=",
        0xc0 => "s<",
        0xd0 => "s<=",
        // The rest are not conditions and have their own forms.
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
            imm_hi: 0,
        }
    }

    fn wide(dst: u8, src: u8, imm: i32, imm_hi: i32) -> Insn {
        Insn {
            imm_hi,
            ..ins(LD_IMM64, dst, src, 0, imm)
        }
    }

    fn show(insn: Insn) -> String {
        insn.display(0, &NoNames).to_string()
    }

    #[test]
    fn alu_forms() {
        let cases: &[(Insn, &str)] = &[
            (ins(0xb7, 1, 0, 0, 0), "r1 = 0"),
            (ins(0xbf, 2, 10, 0, 0), "r2 = r10"),
            (ins(0x07, 2, 0, 0, -4), "r2 += -4"),
            (ins(0x1f, 7, 6, 0, 0), "r7 -= r6"),
            (ins(0x67, 1, 0, 0, 3), "r1 <<= 3"),
            (ins(0x77, 1, 0, 0, 3), "r1 >>= 3"),
            (ins(0x2f, 1, 2, 0, 0), "r1 *= r2"),
            (ins(0x4f, 1, 2, 0, 0), "r1 |= r2"),
            (ins(0x57, 1, 0, 0, 255), "r1 &= 255"),
            (ins(0xa7, 1, 0, 0, -1), "r1 ^= -1"),
            (ins(0x37, 1, 0, 0, 7), "r1 /= 7"),
            (ins(0x9f, 1, 3, 0, 0), "r1 %= r3"),
            (ins(0x87, 0, 0, 0, 0), "r0 = -r0"),
            (ins(0xc7, 1, 0, 0, 2), "r1 s>>= 2"),
            (ins(0xcf, 1, 4, 0, 0), "r1 s>>= r4"),
            (ins(0xbf, 1, 2, 8, 0), "r1 = (s8)r2"),
            (ins(0xbf, 1, 2, 16, 0), "r1 = (s16)r2"),
            (ins(0xbf, 1, 2, 32, 0), "r1 = (s32)r2"),
            (ins(0xbc, 1, 2, 8, 0), "w1 = (s8)w2"),
            (ins(0x3f, 1, 2, 1, 0), "r1 s/= r2"),
            (ins(0x9f, 1, 2, 1, 0), "r1 s%= r2"),
            (ins(0x97, 1, 0, 1, -3), "r1 s%= -3"),
            (ins(0x34, 1, 0, 1, 7), "w1 s/= 7"),
            (ins(0xdc, 1, 0, 0, 16), "r1 = be16 r1"),
            (ins(0xd4, 1, 0, 0, 32), "r1 = le32 r1"),
            (ins(0xdc, 3, 0, 0, 64), "r3 = be64 r3"),
            (ins(0xd7, 1, 0, 0, 64), "r1 = bswap64 r1"),
            (ins(0xd7, 1, 0, 0, 16), "r1 = bswap16 r1"),
            (ins(0xb4, 0, 0, 0, 2), "w0 = 2"),
            (ins(0x0c, 1, 2, 0, 0), "w1 += w2"),
            (ins(0x84, 1, 0, 0, 0), "w1 = -w1"),
            (ins(0xc4, 0, 0, 0, 9), "w0 s>>= 9"),
            (ins(0xbc, 3, 4, 0, 0), "w3 = w4"),
            (ins(0xb7, 1, 0, 0, i32::MIN), "r1 = -2147483648"),
            (ins(0xbf, 1, 2, 1, 1), "r1 = addr_space_cast(r2, 0, 1)"),
            (
                ins(0xbf, 1, 2, 1, 0x0001_0000),
                "r1 = addr_space_cast(r2, 1, 0)",
            ),
            (ins(0xbf, 1, 2, -1, 0), "r1 = &(void __percpu *)(r2)"),
            (ins(0xe7, 1, 0, 0, 0), "BUG_alu_e7"),
        ];
        for (insn, want) in cases {
            assert_eq!(show(*insn), *want, "{insn:?}");
        }
    }

    #[test]
    fn memory_forms() {
        let cases: &[(Insn, &str)] = &[
            (ins(0x61, 6, 1, 0, 0), "r6 = *(u32 *)(r1 +0)"),
            (ins(0x69, 1, 2, 12, 0), "r1 = *(u16 *)(r2 +12)"),
            (ins(0x71, 1, 2, -1, 0), "r1 = *(u8 *)(r2 -1)"),
            (ins(0x79, 1, 10, -8, 0), "r1 = *(u64 *)(r10 -8)"),
            (ins(0x91, 1, 2, 0, 0), "r1 = *(s8 *)(r2 +0)"),
            (ins(0x89, 1, 2, -2, 0), "r1 = *(s16 *)(r2 -2)"),
            (ins(0x81, 1, 2, 4, 0), "r1 = *(s32 *)(r2 +4)"),
            (ins(0x99, 1, 2, 0, 0), "BUG_ldx_99"),
            (ins(0x63, 10, 1, -4, 0), "*(u32 *)(r10 -4) = r1"),
            (ins(0x6b, 9, 8, 2, 0), "*(u16 *)(r9 +2) = r8"),
            (ins(0x73, 9, 3, 0, 0), "*(u8 *)(r9 +0) = r3"),
            (ins(0x7b, 10, 1, -8, 0), "*(u64 *)(r10 -8) = r1"),
            (ins(0x7a, 10, 0, -8, 0), "*(u64 *)(r10 -8) = 0"),
            (ins(0x72, 10, 0, -1, -1), "*(u8 *)(r10 -1) = -1"),
            (
                ins(0x62, 10, 0, -8, i32::MIN),
                "*(u32 *)(r10 -8) = -2147483648",
            ),
            (ins(0xc2, 0, 0, 0, 0), "nospec"),
            (ins(0xe2, 0, 0, 0, 0), "BUG_st_e2"),
            (ins(0xdb, 0, 1, 0, 0x00), "lock *(u64 *)(r0 +0) += r1"),
            (ins(0xc3, 0, 1, 0, 0x00), "lock *(u32 *)(r0 +0) += r1"),
            (ins(0xdb, 1, 2, 8, 0x40), "lock *(u64 *)(r1 +8) |= r2"),
            (ins(0xdb, 1, 2, 0, 0x50), "lock *(u64 *)(r1 +0) &= r2"),
            (ins(0xc3, 1, 2, 0, 0xa0), "lock *(u32 *)(r1 +0) ^= r2"),
            (
                ins(0xdb, 0, 1, 0, 0x01),
                "r1 = atomic64_fetch_add((u64 *)(r0 +0), r1)",
            ),
            (
                ins(0xc3, 0, 1, 0, 0x01),
                "r1 = atomic_fetch_add((u32 *)(r0 +0), r1)",
            ),
            (
                ins(0xdb, 1, 3, 24, 0x41),
                "r3 = atomic64_fetch_or((u64 *)(r1 +24), r3)",
            ),
            (
                ins(0xc3, 1, 3, 16, 0x51),
                "r3 = atomic_fetch_and((u32 *)(r1 +16), r3)",
            ),
            (
                ins(0xdb, 1, 3, 0, 0xa1),
                "r3 = atomic64_fetch_xor((u64 *)(r1 +0), r3)",
            ),
            (
                ins(0xdb, 0, 1, 0, 0xe1),
                "r1 = atomic64_xchg((u64 *)(r0 +0), r1)",
            ),
            (
                ins(0xc3, 1, 2, 4, 0xe1),
                "r2 = atomic_xchg((u32 *)(r1 +4), r2)",
            ),
            (
                ins(0xdb, 1, 2, 0, 0xf1),
                "r0 = atomic64_cmpxchg((u64 *)(r1 +0), r0, r2)",
            ),
            (
                ins(0xc3, 1, 2, -8, 0xf1),
                "r0 = atomic_cmpxchg((u32 *)(r1 -8), r0, r2)",
            ),
            (
                ins(0xdb, 1, 2, 0, 0x100),
                "r1 = load_acquire((u64 *)(r2 +0))",
            ),
            (
                ins(0xd3, 1, 2, -1, 0x100),
                "r1 = load_acquire((u8 *)(r2 -1))",
            ),
            (
                ins(0xdb, 1, 2, 0, 0x110),
                "store_release((u64 *)(r1 +0), r2)",
            ),
            (
                ins(0xcb, 1, 2, 6, 0x110),
                "store_release((u16 *)(r1 +6), r2)",
            ),
            (ins(0xdb, 1, 2, 0, 0x02), "BUG_db"),
            (ins(0xe3, 1, 2, 0, 0), "BUG_e3"),
            (ins(0x30, 0, 0, 0, 12), "r0 = *(u8 *)skb[12]"),
            (ins(0x28, 0, 0, 0, -8), "r0 = *(u16 *)skb[-8]"),
            (ins(0x48, 0, 6, 0, 0), "r0 = *(u16 *)skb[r6 + 0]"),
            (ins(0x40, 0, 7, 0, 4), "r0 = *(u32 *)skb[r7 + 4]"),
            (ins(0x00, 0, 0, 0, 0), "BUG_ld_00"),
        ];
        for (insn, want) in cases {
            assert_eq!(show(*insn), *want, "{insn:?}");
        }
    }

    #[test]
    fn jump_and_call_forms() {
        let cases: &[(Insn, &str)] = &[
            (ins(0x05, 0, 0, 1, 0), "goto pc+1"),
            (ins(0x05, 0, 0, -5, 0), "goto pc-5"),
            (ins(0x05, 0, 0, 0, 0), "goto pc+0"),
            (ins(0x06, 0, 0, 0, 100), "gotol pc+100"),
            (ins(0x06, 0, 0, 0, -3), "gotol pc-3"),
            (ins(0x0d, 3, 0, 0, 0), "gotox r3"),
            (ins(0xe5, 0, 0, 2, 0), "may_goto pc+2"),
            (ins(0xe5, 0, 1, 2, 0), "BUG_jmp_e5"),
            (ins(0x55, 0, 0, 1, 0), "if r0 != 0x0 goto pc+1"),
            (ins(0x2d, 1, 2, 3, 0), "if r1 > r2 goto pc+3"),
            (ins(0xc5, 1, 0, 2, 5), "if r1 s< 0x5 goto pc+2"),
            (ins(0x45, 1, 0, 1, 4), "if r1 & 0x4 goto pc+1"),
            (ins(0x4d, 1, 2, -2, 0), "if r1 & r2 goto pc-2"),
            (ins(0x16, 0, 0, 1, 0), "if w0 == 0x0 goto pc+1"),
            (ins(0x55, 1, 0, 0, -1), "if r1 != 0xffffffff goto pc+0"),
            (ins(0x7e, 1, 2, 0, 0), "if w1 s>= w2 goto pc+0"),
            (ins(0xae, 1, 2, 0, 0), "if w1 < w2 goto pc+0"),
            (ins(0xb6, 1, 0, 0, 5), "if w1 <= 0x5 goto pc+0"),
            (ins(0x35, 1, 0, 0, 5), "if r1 >= 0x5 goto pc+0"),
            (ins(0x65, 1, 0, 0, 100), "if r1 s> 0x64 goto pc+0"),
            (ins(0xdd, 1, 2, 0, 0), "if r1 s<= r2 goto pc+0"),
            (ins(0x75, 1, 0, 0, -1), "if r1 s>= 0xffffffff goto pc+0"),
            (ins(0x85, 0, 0, 0, 1), "call bpf_map_lookup_elem#1"),
            (ins(0x85, 0, 0, 0, 211), "call bpf_cgrp_storage_delete#211"),
            (ins(0x85, 0, 0, 0, 212), "call unknown#212"),
            (ins(0x85, 0, 0, 0, -7), "call unknown#-7"),
            (ins(0x85, 0, 1, 0, 5), "call pc+5"),
            (ins(0x85, 0, 1, 0, -1), "call pc-1"),
            (ins(0x85, 0, 2, 0, 12345), "call kernel-function#12345"),
            (ins(0x8d, 3, 0, 0, 0), "callx r3"),
            (ins(0x95, 0, 0, 0, 0), "exit"),
            (ins(0x96, 0, 0, 0, 0), "BUG_jmp32_96"),
            (ins(0x0e, 0, 0, 0, 0), "BUG_jmp32_0e"),
            (ins(0xf5, 0, 0, 0, 0), "BUG_jmp_f5"),
        ];
        for (insn, want) in cases {
            assert_eq!(show(*insn), *want, "{insn:?}");
        }
    }

    #[test]
    fn helper_table() {
        assert_eq!(helper_name(1), Some("bpf_map_lookup_elem"));
        assert_eq!(helper_name(2), Some("bpf_map_update_elem"));
        assert_eq!(helper_name(5), Some("bpf_ktime_get_ns"));
        assert_eq!(helper_name(6), Some("bpf_trace_printk"));
        assert_eq!(helper_name(8), Some("bpf_get_smp_processor_id"));
        assert_eq!(helper_name(12), Some("bpf_tail_call"));
        assert_eq!(helper_name(23), Some("bpf_redirect"));
        assert_eq!(helper_name(44), Some("bpf_xdp_adjust_head"));
        assert_eq!(helper_name(51), Some("bpf_redirect_map"));
        assert_eq!(helper_name(130), Some("bpf_ringbuf_output"));
        assert_eq!(helper_name(181), Some("bpf_loop"));
        assert_eq!(helper_name(211), Some("bpf_cgrp_storage_delete"));
        assert_eq!(helper_name(0), Some("bpf_unspec"));
        assert_eq!(helper_name(212), None);
        assert_eq!(helper_name(-1), None);
        assert!(helpers::HELPERS
            .iter()
            .all(|n| n.starts_with("bpf_") && !n.contains(char::is_whitespace)));
    }

    /// Cross-checks the table with libbpf's generated header where it is
    /// installed (Debian's libbpf-dev): `static ... (*NAME)(...) = (void *) ID;`.
    #[test]
    fn helper_table_matches_libbpf_header() {
        let Ok(header) = std::fs::read_to_string("/usr/include/bpf/bpf_helper_defs.h") else {
            return;
        };
        let mut seen = 0;
        for line in header.lines().filter(|l| l.starts_with("static ")) {
            let Some((decl, id)) = line.rsplit_once("= (void *) ") else {
                continue;
            };
            let id: i32 = id.trim_end_matches(';').parse().unwrap();
            // Newer libbpf spells it `(* const NAME)`.
            let name = decl
                .split("(*")
                .nth(1)
                .and_then(|d| d.split(')').next())
                .map(|n| n.trim().trim_start_matches("const ").trim());
            assert_eq!(helper_name(id), name, "helper {id}");
            seen += 1;
        }
        assert!(seen >= 211, "only {seen} helpers in the header");
    }

    struct Maps;

    impl Resolver for Maps {
        fn ld_imm64(&self, index: usize, _insn: &Insn) -> Option<String> {
            (index == 4).then(|| "map[counters]".to_owned())
        }
        fn helper_name(&self, id: i32) -> Option<String> {
            (id == 999).then(|| "my_helper".to_owned())
        }
        fn kfunc_name(&self, _index: usize, insn: &Insn) -> Option<String> {
            (insn.imm == 7).then(|| "bpf_obj_new_impl".to_owned())
        }
    }

    #[test]
    fn ld_imm64_forms() {
        assert_eq!(show(wide(1, 0, 0x1234, 0)), "r1 = 0x1234");
        assert_eq!(show(wide(1, 0, 0, 0)), "r1 = 0x0");
        assert_eq!(show(wide(2, 0, -1, -1)), "r2 = 0xffffffffffffffff");
        assert_eq!(
            show(wide(1, 0, 0x5566_7788, 0x1122_3344)),
            "r1 = 0x1122334455667788"
        );
        assert_eq!(show(wide(1, 1, 5, 0)), "r1 = map[fd:5]");
        assert_eq!(show(wide(1, 2, 5, 16)), "r1 = map[fd:5]+16");
        assert_eq!(show(wide(1, 5, 0, 0)), "r1 = map[idx:0]");
        assert_eq!(show(wide(1, 6, 1, 8)), "r1 = map[idx:1]+8");
        let insn = wide(1, 0, 0, 0);
        assert_eq!(insn.display(4, &Maps).to_string(), "r1 = map[counters]");
        assert_eq!(insn.display(5, &Maps).to_string(), "r1 = 0x0");
        assert_eq!(
            ins(0x85, 0, 0, 0, 999).display(0, &Maps).to_string(),
            "call my_helper#999"
        );
        // A resolver that overrides helper names replaces the table.
        assert_eq!(
            ins(0x85, 0, 0, 0, 1).display(0, &Maps).to_string(),
            "call unknown#1"
        );
        assert_eq!(
            ins(0x85, 0, 2, 0, 7).display(0, &Maps).to_string(),
            "call bpf_obj_new_impl#7"
        );
        assert_eq!(insn.to_string(), "r1 = 0x0");
    }

    /// Bytes of instructions given as (code, regs, off, imm).
    fn bytes(insns: &[(u8, u8, i16, i32)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(code, regs, off, imm) in insns {
            out.push(code);
            out.push(regs);
            out.extend_from_slice(&off.to_le_bytes());
            out.extend_from_slice(&imm.to_le_bytes());
        }
        out
    }

    #[test]
    fn decode_all_counts_ld_imm64_as_two_slots() {
        let prog = bytes(&[
            (0xb7, 0x01, 0, 0),           // r1 = 0
            (0x18, 0x12, 0, 7),           // r2 = map[fd:7] ...
            (0x00, 0x00, 0, 0),           // ... second slot
            (0x18, 0x03, 0, 0x5566_7788), // r3 = 0x1122334455667788
            (0x00, 0x00, 0, 0x1122_3344), //
            (0x85, 0x00, 0, 1),           // call
            (0x95, 0x00, 0, 0),           // exit
        ]);
        let insns = Insn::decode_all(&prog).unwrap();
        let index: Vec<usize> = insns.iter().map(|(i, _)| *i).collect();
        assert_eq!(index, [0, 1, 3, 5, 6]);
        let (_, map) = insns[1];
        assert_eq!((map.dst, map.src, map.imm, map.width()), (2, 1, 7, 2));
        assert_eq!(insns[2].1.imm64(), 0x1122_3344_5566_7788);
        assert_eq!(insns[2].1.imm_hi, 0x1122_3344);
        let text: Vec<String> = insns
            .iter()
            .map(|(i, insn)| insn.display(*i, &NoNames).to_string())
            .collect();
        assert_eq!(
            text,
            [
                "r1 = 0",
                "r2 = map[fd:7]",
                "r3 = 0x1122334455667788",
                "call bpf_map_lookup_elem#1",
                "exit"
            ]
        );
        let again: Vec<u8> = insns.iter().flat_map(|(_, i)| i.to_bytes()).collect();
        assert_eq!(again, prog);
        assert_eq!(Insn::decode_all(&[]).unwrap(), Vec::new());
    }

    #[test]
    fn decode_all_rejects_truncated_input() {
        let mut prog = bytes(&[(0xb7, 0x01, 0, 0), (0x95, 0, 0, 0)]);
        prog.extend_from_slice(&[0x95, 0, 0]);
        let err = Insn::decode_all(&prog).unwrap_err();
        assert_eq!(err, DecodeError::TrailingBytes { offset: 16, len: 3 });
        assert!(err.to_string().contains("byte offset 16"), "{err}");
        assert!(Insn::decode_all(&[0x95]).is_err());

        let prog = bytes(&[(0xb7, 0x01, 0, 0), (0x18, 0x01, 0, 0)]);
        let err = Insn::decode_all(&prog).unwrap_err();
        assert_eq!(err, DecodeError::TruncatedLdImm64 { offset: 8 });
        assert!(err.to_string().contains("byte offset 8"), "{err}");

        let prog = bytes(&[(0x18, 0x01, 0, 0), (0x95, 0x00, 0, 0)]);
        let err = Insn::decode_all(&prog).unwrap_err();
        assert_eq!(
            err,
            DecodeError::BadLdImm64 {
                offset: 0,
                second: 8
            }
        );
        assert!(err.to_string().contains("byte offset 8"), "{err}");
    }

    #[test]
    fn control_flow() {
        let goto = ins(0x05, 0, 0, -5, 0);
        assert_eq!(goto.jump_target(10), Some(6));
        assert_eq!(goto.jump_target(3), None);
        assert!(!goto.falls_through() && !goto.is_conditional_jump());

        let cond = ins(0x55, 0, 0, 1, 0);
        assert_eq!(cond.jump_target(9), Some(11));
        assert!(cond.falls_through() && cond.is_conditional_jump());

        let gotol = ins(0x06, 0, 0, 0, 100);
        assert_eq!(gotol.jump_target(16), Some(117));
        assert!(!gotol.falls_through());

        let may_goto = ins(0xe5, 0, 0, 2, 0);
        assert_eq!(may_goto.jump_target(0), Some(3));
        assert!(may_goto.is_conditional_jump() && may_goto.falls_through());

        let gotox = ins(0x0d, 3, 0, 0, 0);
        assert_eq!(gotox.jump_target(0), None);
        assert!(!gotox.falls_through());

        let exit = ins(0x95, 0, 0, 0, 0);
        assert!(exit.is_exit() && !exit.falls_through());
        assert_eq!(exit.jump_target(0), None);
        assert_eq!(exit.used_regs(), [0]);

        let helper = ins(0x85, 0, 0, 0, 1);
        assert_eq!(helper.is_helper_call(), Some(1));
        assert!(!helper.is_pseudo_call() && helper.falls_through());
        assert_eq!(helper.jump_target(4), None);
        assert_eq!(helper.call_target(4), None);

        let call = ins(0x85, 0, 1, 0, 5);
        assert!(call.is_pseudo_call());
        assert_eq!(call.is_helper_call(), None);
        assert_eq!(call.call_target(10), Some(16));
        assert_eq!(ins(0x85, 0, 1, 0, -11).call_target(10), Some(0));
        assert_eq!(ins(0x85, 0, 1, 0, -12).call_target(10), None);

        let kfunc = ins(0x85, 0, 2, 0, 77);
        assert!(kfunc.is_kfunc_call() && !kfunc.is_pseudo_call());
        assert_eq!(kfunc.is_helper_call(), None);

        assert_eq!(ins(0xb7, 1, 0, 0, 0).jump_target(0), None);
        assert_eq!(ins(0x07, 1, 0, 0, 0).class(), ALU64);
        assert_eq!(ins(0x16, 1, 0, 0, 0).class(), JMP32);
    }

    #[test]
    fn registers() {
        let mov_imm = ins(0xb7, 1, 0, 0, 0);
        assert_eq!(mov_imm.defined_reg(), Some(1));
        assert_eq!(mov_imm.used_regs(), Vec::<u8>::new());
        let mov = ins(0xbf, 2, 10, 0, 0);
        assert_eq!((mov.defined_reg(), mov.used_regs()), (Some(2), vec![10]));
        let add = ins(0x0f, 7, 6, 0, 0);
        assert_eq!((add.defined_reg(), add.used_regs()), (Some(7), vec![7, 6]));
        let add_self = ins(0x0f, 7, 7, 0, 0);
        assert_eq!(add_self.used_regs(), [7]);
        assert_eq!(ins(0x07, 2, 0, 0, -4).used_regs(), [2]);
        assert_eq!(ins(0x87, 3, 0, 0, 0).used_regs(), [3]);
        assert_eq!(ins(0xdc, 3, 0, 0, 16).used_regs(), [3]);

        let load = ins(0x61, 6, 1, 4, 0);
        assert_eq!((load.defined_reg(), load.used_regs()), (Some(6), vec![1]));
        let store = ins(0x63, 10, 1, -4, 0);
        assert_eq!(
            (store.defined_reg(), store.used_regs()),
            (None, vec![10, 1])
        );
        assert_eq!(ins(0x7a, 10, 0, -8, 0).used_regs(), [10]);

        let lock_add = ins(0xdb, 0, 1, 0, 0x00);
        assert_eq!(lock_add.defined_reg(), None);
        assert_eq!(lock_add.used_regs(), [0, 1]);
        let fetch_add = ins(0xdb, 0, 1, 0, 0x01);
        assert_eq!(fetch_add.defined_reg(), Some(1));
        let xchg = ins(0xc3, 1, 2, 0, 0xe1);
        assert_eq!(xchg.defined_reg(), Some(2));
        let cmpxchg = ins(0xdb, 1, 2, 0, 0xf1);
        assert_eq!(cmpxchg.defined_reg(), Some(0));
        assert_eq!(cmpxchg.used_regs(), [1, 2, 0]);
        let acquire = ins(0xdb, 1, 2, 0, 0x100);
        assert_eq!(
            (acquire.defined_reg(), acquire.used_regs()),
            (Some(1), vec![2])
        );
        let release = ins(0xdb, 1, 2, 0, 0x110);
        assert_eq!(
            (release.defined_reg(), release.used_regs()),
            (None, vec![1, 2])
        );

        let ld = wide(4, 1, 3, 0);
        assert_eq!(
            (ld.defined_reg(), ld.used_regs()),
            (Some(4), Vec::<u8>::new())
        );

        let call = ins(0x85, 0, 0, 0, 1);
        assert_eq!(call.defined_reg(), Some(0));
        assert_eq!(call.clobbers(), [1, 2, 3, 4, 5]);
        assert_eq!(call.used_regs(), [1, 2, 3, 4, 5]);
        assert_eq!(ins(0xb7, 1, 0, 0, 0).clobbers(), &[] as &[u8]);

        let ld_ind = ins(0x48, 0, 7, 0, 0);
        assert_eq!(ld_ind.defined_reg(), Some(0));
        assert_eq!(ld_ind.used_regs(), [6, 7]);
        assert_eq!(ld_ind.clobbers(), [1, 2, 3, 4, 5]);

        let cond = ins(0x2d, 1, 2, 3, 0);
        assert_eq!((cond.defined_reg(), cond.used_regs()), (None, vec![1, 2]));
        assert_eq!(ins(0x55, 0, 0, 1, 0).used_regs(), [0]);
    }

    #[test]
    fn memory_accesses() {
        let load = ins(0x61, 6, 1, 4, 0).mem_access().unwrap();
        assert_eq!(
            load,
            MemAccess {
                base: 1,
                off: 4,
                size: 4,
                kind: AccessKind::Load,
                value_reg: None
            }
        );
        let store = ins(0x7b, 10, 1, -8, 0).mem_access().unwrap();
        assert_eq!(
            store,
            MemAccess {
                base: 10,
                off: -8,
                size: 8,
                kind: AccessKind::Store,
                value_reg: Some(1)
            }
        );
        let st = ins(0x72, 10, 0, -1, 5).mem_access().unwrap();
        assert_eq!(
            (st.base, st.size, st.kind, st.value_reg),
            (10, 1, AccessKind::Store, None)
        );
        let sx = ins(0x89, 1, 2, -2, 0).mem_access().unwrap();
        assert_eq!((sx.base, sx.off, sx.size), (2, -2, 2));
        let atomic = ins(0xc3, 0, 1, 16, 0x01).mem_access().unwrap();
        assert_eq!(
            atomic,
            MemAccess {
                base: 0,
                off: 16,
                size: 4,
                kind: AccessKind::Atomic,
                value_reg: Some(1)
            }
        );
        let acquire = ins(0xd3, 1, 2, 3, 0x100).mem_access().unwrap();
        assert_eq!(
            (acquire.base, acquire.size, acquire.kind),
            (2, 1, AccessKind::Load)
        );
        let release = ins(0xcb, 1, 2, 0, 0x110).mem_access().unwrap();
        assert_eq!(
            (release.base, release.size, release.kind),
            (1, 2, AccessKind::Store)
        );
        assert_eq!(ins(0x30, 0, 0, 0, 12).mem_access(), None);
        assert_eq!(ins(0x07, 1, 0, 0, 1).mem_access(), None);
        assert_eq!(wide(1, 0, 0, 0).mem_access(), None);
    }

    /// xorshift64*: a fixed, dependency-free source of arbitrary bytes.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    fn exercise(index: usize, insn: &Insn) {
        let text = insn.display(index, &NoNames).to_string();
        assert!(
            !text.is_empty() && !text.contains("?"),
            "{insn:?} -> {text}"
        );
        let _ = (insn.class(), insn.width(), insn.imm64(), insn.is_exit());
        let _ = (
            insn.is_helper_call(),
            insn.is_pseudo_call(),
            insn.falls_through(),
        );
        let _ = (insn.jump_target(index), insn.call_target(index));
        let _ = (insn.jump_target(usize::MAX), insn.call_target(usize::MAX));
        let _ = (insn.defined_reg(), insn.clobbers(), insn.used_regs());
        let _ = (insn.is_conditional_jump(), insn.mem_access());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // Every opcode with random operands.
        for code in 0..=u8::MAX {
            for _ in 0..64 {
                let mut slot = rng.next().to_le_bytes();
                slot[0] = code;
                let insn = Insn::from_slot(slot);
                exercise(0, &insn);
                exercise(
                    7,
                    &Insn {
                        imm_hi: rng.next() as i32,
                        ..insn
                    },
                );
            }
        }
        // Whole random programs of random lengths, with ld_imm64 common
        // enough to hit its error paths.
        for _ in 0..2000 {
            let len = (rng.next() % 200) as usize;
            let mut prog: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            for slot in prog.chunks_mut(8) {
                if rng.next() & 3 == 0 {
                    slot[0] = LD_IMM64;
                }
            }
            match Insn::decode_all(&prog) {
                Ok(insns) => {
                    for (i, insn) in &insns {
                        exercise(*i, insn);
                    }
                    let again: Vec<u8> = insns.iter().flat_map(|(_, i)| i.to_bytes()).collect();
                    assert_eq!(again, prog);
                }
                Err(e) => assert!(e.to_string().contains("byte offset"), "{e}"),
            }
        }
    }
}
