//! A register's value as the verifier log prints it, parsed once: the
//! `map_value_or_null(id=1,map=counters,ks=4,vs=16)` of `R0=…`, a stack
//! pointer `fp-8`, a constant `0`.
//!
//! The kernel prints a state with `print_reg_state()`
//! (`kernel/bpf/log.c`): the type (`reg_type_str()`: a base name such as
//! `map_value`, with prefixes such as `rdonly_` and `ringbuf_` and the
//! suffix `_or_null`), then in parentheses `id=`, `ref_obj_id=`, the map,
//! `off=`, `r=` for packet pointers, and the scalar bounds.

/// What kind of value a register holds, as far as the diagnoses tell
/// kinds apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegKind {
    /// A number: `scalar(…)`, a constant (`0`, `P1`), or `inv` from old
    /// kernels.
    Scalar,
    /// The program's context (`ctx`).
    Ctx,
    /// A pointer into the stack frame (`fp-8`).
    Stack,
    /// A pointer into the packet (`pkt`).
    Packet,
    /// The end of the packet (`pkt_end`).
    PacketEnd,
    /// The packet's metadata (`pkt_meta`).
    PacketMeta,
    /// A map (`map_ptr`).
    MapPtr,
    /// A map value (`map_value`).
    MapValue,
    /// Other memory the verifier sized: `mem`, `rdonly_mem`, `ringbuf_mem`…
    Mem,
    /// Anything else (`ptr_task_struct`, `sock`, `dynptr_ptr`…); its name
    /// is in [`RegState::name`].
    Other,
}

/// The memory a pointer points into, for messages that name only the
/// register (`R0 min value is negative`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Region {
    /// The packet, its end or its metadata.
    Packet,
    /// A map value, or other memory the verifier sized.
    MapValue,
    /// The stack.
    Stack,
    /// The context.
    Ctx,
}

impl RegKind {
    /// The region a pointer of this kind points into.
    pub fn region(self) -> Option<Region> {
        match self {
            Self::Packet | Self::PacketEnd | Self::PacketMeta => Some(Region::Packet),
            Self::MapValue | Self::Mem => Some(Region::MapValue),
            Self::Stack => Some(Region::Stack),
            Self::Ctx => Some(Region::Ctx),
            Self::Scalar | Self::MapPtr | Self::Other => None,
        }
    }

    fn of(name: &str) -> Self {
        let number = |s: &str| {
            s.trim_start_matches("inv")
                .trim_start_matches("imm")
                .trim_start_matches('P')
                .parse::<i64>()
        };
        match name {
            _ if name.starts_with("fp") => Self::Stack,
            _ if name.starts_with("pkt_end") => Self::PacketEnd,
            _ if name.starts_with("pkt_meta") => Self::PacketMeta,
            _ if name.starts_with("pkt") => Self::Packet,
            _ if name.starts_with("ctx") => Self::Ctx,
            _ if name.starts_with("map_value") => Self::MapValue,
            _ if name.starts_with("map_ptr") => Self::MapPtr,
            "scalar" | "inv" | "invP" | "imm" => Self::Scalar,
            _ if number(name).is_ok() => Self::Scalar,
            _ if name.contains("mem") => Self::Mem,
            _ => Self::Other,
        }
    }
}

/// One register's value in a state line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegState {
    /// The type as the verifier names it (`map_value_or_null`, `fp-8`,
    /// `scalar`, `0`): for the reader, and for what [`RegKind::Other`]
    /// does not say.
    pub name: String,
    /// Its kind.
    pub kind: RegKind,
    /// Whether it may be NULL (`_or_null`).
    pub or_null: bool,
    /// `id=`: the verifier's id for the value, shared by its copies.
    pub id: Option<u32>,
    /// `ref_obj_id=`: the reference it holds.
    pub ref_obj_id: Option<u32>,
    /// The offset: `off=`, or the frame offset of `fp-8`.
    pub off: Option<i32>,
    /// `r=`: the bytes of a packet pointer proven inside the packet.
    pub range: Option<u32>,
    /// `map=`: the map's name.
    pub map: Option<String>,
    /// The value of a constant scalar.
    pub value: Option<i64>,
}

impl RegState {
    /// Parses the text after `Rn=` (`R0_w=…`) in a state line. Anything
    /// it does not know is left out; it never fails.
    pub fn parse(text: &str) -> Self {
        // Kernels before 4.14 list the bounds after commas, without
        // parentheses: `inv60,min_value=0,max_value=15`; `R10=fp0,call_-1`.
        let (name, args) = match text.find(['(', ',']) {
            Some(at) => (&text[..at], &text[at + 1..]),
            None => (text, ""),
        };
        let mut state = Self {
            name: name.to_owned(),
            kind: RegKind::of(name),
            or_null: name.contains("or_null"),
            id: None,
            ref_obj_id: None,
            off: None,
            range: None,
            map: None,
            value: None,
        };
        match state.kind {
            RegKind::Stack => state.off = name.trim_start_matches("fp").parse().ok(),
            RegKind::Scalar => {
                let digits = name
                    .trim_start_matches("inv")
                    .trim_start_matches("imm")
                    .trim_start_matches('P');
                state.value = digits.parse().ok();
            }
            _ => {}
        }
        for arg in args.split([',', ')']) {
            state.note_arg(arg);
        }
        state
    }

    fn note_arg(&mut self, arg: &str) {
        let Some((key, value)) = arg.split_once('=') else {
            return;
        };
        // `id=3+4`: a scalar's id with the constant added to it.
        let leading = |v: &str| {
            let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
            v[..end].parse().ok()
        };
        match key {
            "id" if self.id.is_none() => self.id = leading(value),
            "ref_obj_id" if self.ref_obj_id.is_none() => self.ref_obj_id = value.parse().ok(),
            "off" => self.off = value.parse().ok(),
            "r" => self.range = value.parse().ok(),
            "map" => self.map = Some(value.to_owned()),
            _ => {}
        }
    }

    /// The id the verifier follows the value by: `id=`, else
    /// `ref_obj_id=` (a reference the verifier has proven non-NULL keeps
    /// only that).
    pub fn identity(&self) -> Option<u32> {
        self.id.or(self.ref_obj_id)
    }

    /// Whether the value is one whose birth the log parser records: it may
    /// be NULL or holds a reference.
    pub fn is_tracked(&self) -> bool {
        self.or_null || self.ref_obj_id.is_some() || self.name.contains("ringbuf")
    }

    /// The region a pointer with this value points into.
    pub fn region(&self) -> Option<Region> {
        self.kind.region()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_as_the_kernel_prints_them() {
        let s = RegState::parse("map_value_or_null(id=1,map=counters,ks=4,vs=16)");
        assert_eq!(
            (s.kind, s.or_null, s.id, s.map.as_deref()),
            (RegKind::MapValue, true, Some(1), Some("counters"))
        );
        assert_eq!(s.identity(), Some(1));
        assert!(s.is_tracked());
        let s = RegState::parse("ringbuf_mem(ref_obj_id=2,sz=8)");
        assert_eq!((s.kind, s.identity()), (RegKind::Mem, Some(2)));
        assert!(s.is_tracked());
        let s = RegState::parse("pkt(off=14,r=14)");
        assert_eq!(
            (s.kind, s.off, s.range),
            (RegKind::Packet, Some(14), Some(14))
        );
        assert_eq!(s.region(), Some(Region::Packet));
        assert_eq!(RegState::parse("pkt_end()").region(), Some(Region::Packet));
        let s = RegState::parse("fp-8");
        assert_eq!((s.kind, s.off), (RegKind::Stack, Some(-8)));
        let s = RegState::parse("P0");
        assert_eq!((s.kind, s.value), (RegKind::Scalar, Some(0)));
        let s = RegState::parse("scalar(id=3+4,smin=0,smax=umax=0xffffffff,var_off=(0x0;");
        assert_eq!(
            (s.kind, s.id, s.off, s.region()),
            (RegKind::Scalar, Some(3), None, None)
        );
        assert!(!s.is_tracked());
        assert_eq!(RegState::parse("ctx()").region(), Some(Region::Ctx));
        assert_eq!(
            RegState::parse("ptr_or_null_task_struct(id=5)").kind,
            RegKind::Other
        );
        assert!(RegState::parse("ptr_or_null_task_struct(id=5)").or_null);
    }

    #[test]
    fn states_as_old_kernels_print_them() {
        for (text, kind, value) in [
            ("inv", RegKind::Scalar, None),
            ("inv0", RegKind::Scalar, Some(0)),
            ("invP64", RegKind::Scalar, Some(64)),
            (
                "invP(id=43,smin_value=-4095,smax_value=4096)",
                RegKind::Scalar,
                None,
            ),
            ("imm5000", RegKind::Scalar, Some(5000)),
            ("imm2,min_value=2,max_value=2", RegKind::Scalar, Some(2)),
            ("inv60,min_value=0,max_value=15", RegKind::Scalar, Some(60)),
            (
                "inv(id=0,umax_value=255,var_off=(0x0; 0xff))",
                RegKind::Scalar,
                None,
            ),
        ] {
            let s = RegState::parse(text);
            assert_eq!((s.kind, s.value), (kind, value), "{text}");
        }
        let s = RegState::parse("fp");
        assert_eq!(s.region(), Some(Region::Stack));
        let s = RegState::parse("fp0,call_-1");
        assert_eq!((s.kind, s.off), (RegKind::Stack, Some(0)));
        assert_eq!(RegState::parse("pkt_end").region(), Some(Region::Packet));
        assert_eq!(RegState::parse("ctx").kind, RegKind::Ctx);
        let s = RegState::parse("map_value(ks=8,vs=8)");
        assert_eq!(s.kind, RegKind::MapValue);
    }
}
