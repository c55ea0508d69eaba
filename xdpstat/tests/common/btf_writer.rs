//! A small BTF writer for tests and benchmarks: each method adds a type
//! and returns its id; `blob` gives the bytes `BPF_BTF_LOAD` takes.
//! Shared by the unit tests of `inspect::btf`, `tests/map_dump.rs` and
//! `benches/map_dump.rs` through `#[path]`.
#![allow(dead_code, reason = "each user needs a different part")]

/// The BTF under construction.
pub struct BtfWriter {
    types: Vec<u8>,
    strings: Vec<u8>,
    next: u32,
}

impl BtfWriter {
    /// An empty BTF (type 0 is void).
    pub fn new() -> Self {
        Self {
            types: Vec::new(),
            strings: vec![0],
            next: 1,
        }
    }

    /// Adds a string; the empty name is offset 0.
    pub fn s(&mut self, name: &str) -> u32 {
        if name.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        off
    }

    /// Adds a type: `struct btf_type` followed by `extra` words.
    pub fn add(
        &mut self,
        name: &str,
        kind: u32,
        vlen: u32,
        kflag: bool,
        size_or_type: u32,
        extra: &[u32],
    ) -> u32 {
        let name = self.s(name);
        let info = (u32::from(kflag) << 31) | (kind << 24) | vlen;
        for w in [name, info, size_or_type].iter().chain(extra) {
            self.types.extend_from_slice(&w.to_ne_bytes());
        }
        self.next += 1;
        self.next - 1
    }

    /// An integer of `size` bytes using all its bits.
    pub fn int(&mut self, name: &str, size: u32, encoding: u32) -> u32 {
        self.int_bits(name, size, encoding, size * 8)
    }

    /// An integer of `size` bytes using `bits` of them.
    pub fn int_bits(&mut self, name: &str, size: u32, encoding: u32, bits: u32) -> u32 {
        self.add(name, 1, 0, false, size, &[(encoding << 24) | bits])
    }

    /// A struct (or union, kind 5) of (name, type, bit offset, bitfield
    /// size) members; bitfield sizes need `kflag`.
    pub fn record(
        &mut self,
        kind: u32,
        name: &str,
        size: u32,
        kflag: bool,
        members: &[(&str, u32, u32, u32)],
    ) -> u32 {
        let mut extra = Vec::new();
        for &(m, ty, off, bits) in members {
            extra.extend([self.s(m), ty, (bits << 24) | off]);
        }
        self.add(name, kind, members.len() as u32, kflag, size, &extra)
    }

    /// An array of `n` elements.
    pub fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
        self.add("", 3, 0, false, 0, &[elem, index, n])
    }

    /// The whole BTF: header, types, strings.
    pub fn blob(&self) -> Vec<u8> {
        let mut out = vec![];
        out.extend_from_slice(&0xeb9fu16.to_ne_bytes());
        out.extend_from_slice(&[1, 0]);
        let t = self.types.len() as u32;
        for w in [24u32, 0, t, t, self.strings.len() as u32] {
            out.extend_from_slice(&w.to_ne_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}
