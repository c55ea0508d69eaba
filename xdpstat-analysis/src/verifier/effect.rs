//! What an instruction does to registers and the stack, read from its
//! text in the kernel's syntax (`r2 = r10`, `*(u64 *)(r10 -8) = r1`,
//! `call bpf_map_lookup_elem#1`). The verifier log prints exactly this
//! syntax, and so does [`crate::insn`], so one reader serves both.

/// A place a value can live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    /// A register, r0–r10.
    Reg(u8),
    /// A stack slot, by its offset from r10.
    Stack(i32),
}

/// What one instruction does, as far as value flow goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// `rD = rS` (also `wD = wS`).
    Move {
        /// Destination.
        dst: u8,
        /// Source.
        src: u8,
    },
    /// `rD = *(uN *)(rB +off)`.
    Load {
        /// Destination.
        dst: u8,
        /// Base register.
        base: u8,
        /// Offset.
        off: i32,
    },
    /// `*(uN *)(rB +off) = rS`.
    Store {
        /// Base register.
        base: u8,
        /// Offset.
        off: i32,
        /// The stored register, `None` for an immediate.
        src: Option<u8>,
    },
    /// `lock *(uN *)(rB +off) += rS` and friends (no register written).
    Atomic {
        /// Base register.
        base: u8,
        /// Offset.
        off: i32,
    },
    /// `rD op= …` (the value stays derived from `rD`'s old value).
    Alu {
        /// Destination (also a source).
        dst: u8,
        /// Another source register, if any.
        src: Option<u8>,
    },
    /// `rD = constant`, `rD = map[…]`, `rD = 0xffff…`.
    Const {
        /// Destination.
        dst: u8,
    },
    /// A helper call: writes r0, clobbers r1–r5.
    Call {
        /// Helper name, e.g. `bpf_map_lookup_elem`.
        name: String,
        /// Helper id.
        id: Option<i32>,
    },
    /// A call to a BPF subprogram (`call pc+N`).
    SubCall,
    /// A conditional jump.
    Branch {
        /// The register tested.
        reg: u8,
        /// The other register, if it compares two.
        other: Option<u8>,
        /// The operator, e.g. `==`.
        op: String,
        /// The immediate compared with, if any.
        imm: Option<i64>,
    },
    /// `goto`.
    Goto,
    /// `exit`.
    Exit,
    /// Anything else that writes `dst` from scratch (a fetch atomic, a
    /// byte swap, a sign extension…).
    Def {
        /// Destination.
        dst: u8,
    },
    /// Not understood.
    Other,
}

fn reg(token: &str) -> Option<u8> {
    let t = token
        .trim()
        .trim_start_matches('(')
        .trim_end_matches([')', ',']);
    let n = t.strip_prefix('r').or_else(|| t.strip_prefix('w'))?;
    let n: u8 = n.parse().ok()?;
    (n <= 10).then_some(n)
}

/// `*(u32 *)(r10 -4)` → (base, off).
fn mem(text: &str) -> Option<(u8, i32)> {
    let start = text.find("*)(")? + 3;
    let inner = &text[start..];
    let end = inner.find(')')?;
    let inner = inner[..end].trim();
    let (base, off) = match inner.split_once(' ') {
        Some((b, o)) => (b, o.replace(' ', "")),
        None => (inner, "+0".to_owned()),
    };
    Some((reg(base)?, off.trim_start_matches('+').parse().ok()?))
}

fn imm(token: &str) -> Option<i64> {
    let t = token.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let v = match t.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16)
            .ok()
            .or_else(|| u64::from_str_radix(hex, 16).ok().map(|v| v as i64))?,
        None => t.parse().ok()?,
    };
    if neg {
        v.checked_neg()
    } else {
        Some(v)
    }
}

impl Effect {
    /// Reads an instruction in the kernel's syntax.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        if text == "exit" {
            return Self::Exit;
        }
        if let Some(rest) = text.strip_prefix("call ") {
            if rest.starts_with("pc") {
                return Self::SubCall;
            }
            let (name, id) = match rest.rsplit_once('#') {
                Some((name, id)) => (name, id.trim().parse().ok()),
                None => (rest, None),
            };
            return Self::Call {
                name: name.trim().to_owned(),
                id,
            };
        }
        if text.starts_with("goto") {
            return Self::Goto;
        }
        if let Some(rest) = text.strip_prefix("if ") {
            let cond = rest.split(" goto").next().unwrap_or(rest);
            let mut parts = cond.split_whitespace();
            let (Some(a), Some(op), Some(b)) = (parts.next(), parts.next(), parts.next()) else {
                return Self::Other;
            };
            let Some(a) = reg(a) else { return Self::Other };
            return Self::Branch {
                reg: a,
                other: reg(b),
                op: op.to_owned(),
                imm: imm(b),
            };
        }
        if let Some(rest) = text.strip_prefix("lock ") {
            return mem(rest).map_or(Self::Other, |(base, off)| Self::Atomic { base, off });
        }
        if text.starts_with("*(") {
            let Some((base, off)) = mem(text) else {
                return Self::Other;
            };
            let src = text.rsplit_once(" = ").and_then(|(_, v)| reg(v));
            return Self::Store { base, off, src };
        }
        if let Some(rest) = text.strip_prefix("store_release(") {
            return mem(rest).map_or(Self::Other, |(base, off)| Self::Atomic { base, off });
        }
        let Some((lhs, rhs)) = text.split_once(' ') else {
            return Self::Other;
        };
        let Some(dst) = reg(lhs) else {
            return Self::Other;
        };
        let rhs = rhs.trim();
        let Some((op, value)) = rhs.split_once(' ') else {
            return Self::Other;
        };
        let value = value.trim();
        if op == "=" {
            if value.starts_with("*(") {
                return mem(value).map_or(Self::Other, |(base, off)| Self::Load { dst, base, off });
            }
            if let Some(src) = reg(value) {
                return Self::Move { dst, src };
            }
            if imm(value.trim_end_matches(" ll")).is_some()
                || value.starts_with("map[")
                || value.starts_with("0x")
            {
                return Self::Const { dst };
            }
            return Self::Def { dst };
        }
        if op.ends_with('=') {
            return Self::Alu {
                dst,
                src: reg(value),
            };
        }
        Self::Other
    }

    /// The register this instruction writes, if any.
    pub fn defines(&self) -> Option<u8> {
        match self {
            Self::Move { dst, .. }
            | Self::Load { dst, .. }
            | Self::Alu { dst, .. }
            | Self::Const { dst }
            | Self::Def { dst } => Some(*dst),
            Self::Call { .. } | Self::SubCall => Some(0),
            _ => None,
        }
    }

    /// The base register of a memory access, if this is one.
    pub fn deref_base(&self) -> Option<u8> {
        match self {
            Self::Load { base, .. } | Self::Store { base, .. } | Self::Atomic { base, .. } => {
                Some(*base)
            }
            _ => None,
        }
    }
}

/// Helpers whose result may be NULL and must be tested before use.
pub fn returns_or_null(helper: &str) -> bool {
    matches!(
        helper,
        "bpf_map_lookup_elem"
            | "bpf_map_lookup_percpu_elem"
            | "bpf_ringbuf_reserve"
            | "bpf_sk_lookup_tcp"
            | "bpf_sk_lookup_udp"
            | "bpf_skc_lookup_tcp"
            | "bpf_sk_fullsock"
            | "bpf_tcp_sock"
            | "bpf_get_listener_sock"
            | "bpf_sk_storage_get"
            | "bpf_task_storage_get"
            | "bpf_inode_storage_get"
            | "bpf_cgrp_storage_get"
            | "bpf_dynptr_data"
            | "bpf_skc_to_tcp_sock"
            | "bpf_skc_to_tcp6_sock"
            | "bpf_skc_to_udp6_sock"
            | "bpf_skc_to_unix_sock"
    )
}

/// Helpers that may change packet data, after which the verifier forgets
/// every packet pointer.
pub fn changes_packet_data(helper: &str) -> bool {
    matches!(
        helper,
        "bpf_xdp_adjust_head"
            | "bpf_xdp_adjust_tail"
            | "bpf_xdp_adjust_meta"
            | "bpf_skb_store_bytes"
            | "bpf_skb_pull_data"
            | "bpf_skb_change_head"
            | "bpf_skb_change_tail"
            | "bpf_skb_change_proto"
            | "bpf_skb_adjust_room"
            | "bpf_skb_vlan_push"
            | "bpf_skb_vlan_pop"
            | "bpf_l3_csum_replace"
            | "bpf_l4_csum_replace"
            | "bpf_clone_redirect"
            | "bpf_msg_pull_data"
            | "bpf_lwt_push_encap"
            | "bpf_xdp_store_bytes"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediates_that_do_not_fit_are_none() {
        assert_eq!(imm("-0x8000000000000000"), None);
        assert_eq!(imm("-0x7fffffffffffffff"), Some(-i64::MAX));
        assert_eq!(imm("0xffffffffffffffff"), Some(-1));
        let _ = Effect::parse("r1 = -0x8000000000000000");
    }

    #[test]
    fn kernel_syntax() {
        use Effect::*;
        let cases = [
            (
                "r6 = *(u32 *)(r1 +0)",
                Load {
                    dst: 6,
                    base: 1,
                    off: 0,
                },
            ),
            (
                "w6 = *(u32 *)(r1 +4)",
                Load {
                    dst: 6,
                    base: 1,
                    off: 4,
                },
            ),
            (
                "*(u32 *)(r10 -4) = r1",
                Store {
                    base: 10,
                    off: -4,
                    src: Some(1),
                },
            ),
            (
                "*(u64 *)(r10 -8) = 0",
                Store {
                    base: 10,
                    off: -8,
                    src: None,
                },
            ),
            ("r2 = r10", Move { dst: 2, src: 10 }),
            ("r2 += -4", Alu { dst: 2, src: None }),
            (
                "r7 -= r6",
                Alu {
                    dst: 7,
                    src: Some(6),
                },
            ),
            ("r1 = 0xffff9c97f6e41a00", Const { dst: 1 }),
            ("r1 = map[counters]", Const { dst: 1 }),
            ("r1 = 0", Const { dst: 1 }),
            (
                "call bpf_map_lookup_elem#1",
                Call {
                    name: "bpf_map_lookup_elem".into(),
                    id: Some(1),
                },
            ),
            ("call pc+5", SubCall),
            ("lock *(u64 *)(r0 +8) += r7", Atomic { base: 0, off: 8 }),
            (
                "if r0 != 0x0 goto pc+1",
                Branch {
                    reg: 0,
                    other: None,
                    op: "!=".into(),
                    imm: Some(0),
                },
            ),
            (
                "if r1 > r2 goto pc+3",
                Branch {
                    reg: 1,
                    other: Some(2),
                    op: ">".into(),
                    imm: None,
                },
            ),
            ("goto pc-5", Goto),
            ("exit", Exit),
            (
                "r1 = atomic64_fetch_add((u64 *)(r0 +0), r1)",
                Def { dst: 1 },
            ),
            ("r1 = be16 r1", Def { dst: 1 }),
        ];
        for (text, want) in cases {
            assert_eq!(Effect::parse(text), want, "{text}");
        }
    }
}
