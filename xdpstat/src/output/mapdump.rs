//! A map's keys and values in bpftool's formats, for `map dump`.
//!
//! - **Text, no BTF** (or `--raw`): bpftool's `print_entry_plain`, hex bytes
//!   grouped by 8, and `Found N elements`.
//! - **Text, with BTF:** bpftool's pretty JSON-like listing of typed keys
//!   and values, then `Found N elements` (bpftool 7.1 leaves that line out
//!   for BTF maps; xdpstat always counts).
//! - **`--json`:** bpftool's `-j map dump`, byte for byte: hex arrays, and
//!   `formatted` when the map has BTF. `--pretty` is bpftool's `-p`.
//!
//! The writer below reproduces bpftool's `json_writer`, whose whitespace
//! differs from serde_json's (`[{` on one line, 4-space indents, no newline
//! between array items), so that both outputs match bpftool's exactly.

use std::io::{self, Write};

use crate::error::Result;

use crate::kernel::map::MapInfo;
use crate::model::inspect::dump::{DumpError, Entry, MapBtf, Values};
use xdpstat_analysis::btf::BtfValue;

/// bpftool's `json_writer`: the same separators and indentation.
struct JsonWriter<W> {
    out: W,
    depth: usize,
    pretty: bool,
    /// Whether the next item needs a comma before it.
    sep: bool,
}

impl<W: Write> JsonWriter<W> {
    const fn new(out: W, pretty: bool) -> Self {
        Self {
            out,
            depth: 0,
            pretty,
            sep: false,
        }
    }

    fn eol(&mut self) -> io::Result<()> {
        if self.pretty {
            self.out.write_all(b"\n")?;
            for _ in 0..self.depth {
                self.out.write_all(b"    ")?;
            }
        }
        Ok(())
    }

    fn eor(&mut self) -> io::Result<()> {
        if self.sep {
            self.out.write_all(b",")?;
        }
        self.sep = true;
        Ok(())
    }

    fn begin(&mut self, c: u8) -> io::Result<()> {
        self.eor()?;
        self.out.write_all(&[c])?;
        self.depth += 1;
        self.sep = false;
        Ok(())
    }

    fn end(&mut self, c: u8) -> io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        if self.sep {
            self.eol()?;
        }
        self.out.write_all(&[c])?;
        self.sep = true;
        Ok(())
    }

    fn start_object(&mut self) -> io::Result<()> {
        self.begin(b'{')
    }

    fn end_object(&mut self) -> io::Result<()> {
        self.end(b'}')
    }

    fn start_array(&mut self) -> io::Result<()> {
        self.begin(b'[')
    }

    fn end_array(&mut self) -> io::Result<()> {
        self.end(b']')
    }

    fn name(&mut self, name: &str) -> io::Result<()> {
        self.eor()?;
        self.eol()?;
        self.sep = false;
        write_quoted(&mut self.out, name)?;
        self.out.write_all(if self.pretty { b": " } else { b":" })
    }

    /// A value printed as is: a number, `true`, bpftool's bare hex.
    fn raw(&mut self, text: &str) -> io::Result<()> {
        self.eor()?;
        self.out.write_all(text.as_bytes())
    }

    fn string(&mut self, s: &str) -> io::Result<()> {
        self.eor()?;
        write_quoted(&mut self.out, s)
    }

    /// bytes as `["0x00","0x01",…]`, bpftool's `print_hex_data_json`.
    fn hex_array(&mut self, data: &[u8]) -> io::Result<()> {
        self.start_array()?;
        // By hand rather than with write!: this is most of a dump's output.
        let mut buf = Vec::with_capacity(data.len() * 7);
        for (i, &b) in data.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            let [hi, lo] = hex_digits(b);
            buf.extend_from_slice(&[b'"', b'0', b'x', hi, lo, b'"']);
        }
        self.out.write_all(&buf)?;
        self.sep = !data.is_empty();
        self.end_array()
    }

    /// A formatted value: `plain` for bpftool's text mode, whose pointers,
    /// bitfields and unprintable chars are bare; JSON otherwise.
    fn btf_value(&mut self, v: &BtfValue, plain: bool) -> io::Result<()> {
        match v {
            BtfValue::Bool(b) => self.raw(if *b { "true" } else { "false" }),
            BtfValue::Int(i) => self.raw(&i.to_string()),
            BtfValue::UInt(u) => self.raw(&u.to_string()),
            BtfValue::Float(f) => self.raw(
                &serde_json::Number::from_f64(*f)
                    .map_or_else(|| "null".to_owned(), |n| n.to_string()),
            ),
            BtfValue::Str(s) => self.string(s),
            BtfValue::Hex(h) if plain => self.raw(h),
            BtfValue::Hex(h) => self.string(h),
            BtfValue::Char(c) if plain => self.raw(&format!("{c:#x}")),
            BtfValue::Char(c) => self.raw(&format!("\"\\u00{c:02x}\"")),
            BtfValue::Pointer(0) if plain => self.raw("(nil)"),
            BtfValue::Pointer(p) if plain => self.raw(&format!("{p:#x}")),
            BtfValue::Pointer(p) => self.raw(&p.to_string()),
            BtfValue::Array(items) => {
                self.start_array()?;
                for item in items {
                    self.btf_value(item, plain)?;
                }
                self.end_array()
            }
            BtfValue::Object(members) => {
                self.start_object()?;
                for (name, value) in members {
                    self.name(name)?;
                    self.btf_value(value, plain)?;
                }
                self.end_object()
            }
        }
    }

    /// A formatted value, or the error in its place.
    fn btf_result(
        &mut self,
        v: Result<BtfValue, xdpstat_analysis::btf::BtfError>,
        plain: bool,
    ) -> io::Result<()> {
        match v {
            Ok(v) => self.btf_value(&v, plain),
            Err(e) => self.string(&format!("<{e}>")),
        }
    }

    /// bpftool's `do_dump_btf`: `{"key": …, "value": …}`, or `"values"`
    /// with one `{"cpu", "value"}` per CPU.
    fn formatted(&mut self, btf: &MapBtf, entry: &Entry, plain: bool) -> io::Result<()> {
        self.start_object()?;
        if let Some(key) = btf.format_key(&entry.key) {
            self.name("key")?;
            self.btf_result(key, plain)?;
        }
        match &entry.values {
            Values::Single(v) => {
                self.name("value")?;
                self.btf_result(btf.format_value(v), plain)?;
            }
            Values::PerCpu(values) => {
                self.name("values")?;
                self.start_array()?;
                for (cpu, v) in values {
                    self.start_object()?;
                    self.name("cpu")?;
                    self.raw(&cpu.to_string())?;
                    self.name("value")?;
                    self.btf_result(btf.format_value(v), plain)?;
                    self.end_object()?;
                }
                self.end_array()?;
            }
            Values::Unreadable(errno) => self.lookup_error(*errno)?,
        }
        self.end_object()
    }

    /// bpftool's JSON for a failed lookup: `"value": {"error": "…"}`.
    fn lookup_error(&mut self, errno: i32) -> io::Result<()> {
        self.name("value")?;
        self.start_object()?;
        self.name("error")?;
        self.string(&crate::error::strerror(errno))?;
        self.end_object()
    }
}

/// A JSON string. (bpftool's own escaping turns `\` into `\n` and `'` into
/// the invalid `\'`; this is plain JSON.)
fn write_quoted(out: &mut impl Write, s: &str) -> io::Result<()> {
    out.write_all(b"\"")?;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\t' => Some("\\t"),
            '\r' => Some("\\r"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            c if u32::from(c) < 0x20 => None,
            _ => continue,
        };
        out.write_all(&s.as_bytes()[start..i])?;
        match escape {
            Some(e) => out.write_all(e.as_bytes())?,
            None => write!(out, "\\u{:04x}", u32::from(c))?,
        }
        start = i + c.len_utf8();
    }
    out.write_all(&s.as_bytes()[start..])?;
    out.write_all(b"\"")
}

/// The entries a renderer writes: as read from the kernel, or made up in
/// tests.
pub trait EntryStream: Iterator<Item = Result<Entry, DumpError>> {}

impl<I: Iterator<Item = Result<Entry, DumpError>>> EntryStream for I {}

/// bpftool `-j map dump`: `[{"key": [hex], "value": [hex], "formatted":
/// {…}}]`, per-CPU maps with `"values": [{"cpu", "value"}]`.
pub fn write_json(
    out: &mut impl Write,
    btf: Option<&MapBtf>,
    entries: impl EntryStream,
    pretty: bool,
) -> Result<()> {
    let mut w = JsonWriter::new(out, pretty);
    w.start_array()?;
    for entry in entries {
        let entry = entry?;
        w.start_object()?;
        w.name("key")?;
        w.hex_array(&entry.key)?;
        match &entry.values {
            Values::Unreadable(errno) => {
                w.lookup_error(*errno)?;
                w.end_object()?;
                continue;
            }
            Values::Single(v) => {
                w.name("value")?;
                w.hex_array(v)?;
            }
            Values::PerCpu(values) => {
                w.name("values")?;
                w.start_array()?;
                for (cpu, v) in values {
                    w.start_object()?;
                    w.name("cpu")?;
                    w.raw(&cpu.to_string())?;
                    w.name("value")?;
                    w.hex_array(v)?;
                    w.end_object()?;
                }
                w.end_array()?;
            }
        }
        if let Some(btf) = btf {
            w.name("formatted")?;
            w.formatted(btf, &entry, false)?;
        }
        w.end_object()?;
    }
    w.end_array()?;
    w.out.write_all(b"\n")?;
    Ok(())
}

/// bpftool's text for a map with BTF: a pretty JSON-like array of typed
/// entries. A failed lookup shows as `"value": {"error": …}` with the key
/// in hex (bpftool prints its plain error line in the middle instead).
pub fn write_btf_text(out: &mut impl Write, btf: &MapBtf, entries: impl EntryStream) -> Result<()> {
    let mut w = JsonWriter::new(&mut *out, true);
    let mut found = 0;
    w.start_array()?;
    for entry in entries {
        let entry = entry?;
        if let Values::Unreadable(errno) = entry.values {
            w.start_object()?;
            w.name("key")?;
            w.hex_array(&entry.key)?;
            w.lookup_error(errno)?;
            w.end_object()?;
        } else {
            found += 1;
            w.formatted(btf, &entry, true)?;
        }
    }
    w.end_array()?;
    out.write_all(b"\n")?;
    write_found(out, found)
}

fn write_found(out: &mut impl Write, n: usize) -> Result<()> {
    writeln!(out, "Found {n} element{}", if n == 1 { "" } else { "s" })?;
    Ok(())
}

/// bpftool's `print_entry_plain` (and `print_entry_error_msg`) for every
/// entry, then the count.
pub fn write_plain(out: &mut impl Write, info: &MapInfo, entries: impl EntryStream) -> Result<()> {
    let key_size = info.key_size as usize;
    let value_size = info.value_size as usize;
    let mut found = 0;
    for entry in entries {
        let entry = entry?;
        if !matches!(entry.values, Values::Unreadable(_)) {
            found += 1;
        }
        let key = hex_bytes(&entry.key);
        match &entry.values {
            Values::Single(v) => {
                let break_names = key_size > 16 || value_size > 16;
                let single_line = key_size + value_size <= 24 && !break_names;
                let sep = if break_names { '\n' } else { ' ' };
                if key_size > 0 {
                    let after = if single_line { "  " } else { "\n" };
                    write!(out, "key:{sep}{key}{after}")?;
                }
                if value_size > 0 {
                    write!(out, "value:{sep}{}", hex_bytes(v))?;
                }
                writeln!(out)?;
            }
            Values::PerCpu(values) => {
                if key_size > 0 {
                    writeln!(out, "key:\n{key}")?;
                }
                if value_size > 0 {
                    let sep = if value_size > 16 { '\n' } else { ' ' };
                    for (cpu, v) in values {
                        writeln!(out, "value (CPU {cpu:02}):{sep}{}", hex_bytes(v))?;
                    }
                }
            }
            Values::Unreadable(errno) => {
                let msg = match *errno {
                    libc::ENOENT => "<no entry>".to_owned(),
                    // BPF_MAP_TYPE_REUSEPORT_SOCKARRAY with a 4-byte value.
                    libc::ENOSPC if info.map_type == 20 => "<cannot read>".to_owned(),
                    e => crate::error::strerror(e),
                };
                let break_names = key_size > 16 || msg.len() > 16;
                let single_line = key_size + msg.len() <= 24 && !break_names;
                let sep = if break_names { '\n' } else { ' ' };
                let after = if single_line { "  " } else { "\n" };
                writeln!(out, "key:{sep}{key}{after}value:{sep}{msg}")?;
            }
        }
    }
    write_found(out, found)
}

/// Bytes as bpftool's plain text prints them (`fprint_hex`): two hex
/// digits each, a space between, two after every 8th, a newline after
/// every 16th.
fn hex_bytes(data: &[u8]) -> String {
    let mut out = Vec::with_capacity(data.len() * 3);
    for (i, &b) in data.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(if i % 16 == 0 {
                b"\n"
            } else if i % 8 == 0 {
                b"  "
            } else {
                b" "
            });
        }
        out.extend_from_slice(&hex_digits(b));
    }
    // Only ASCII was pushed.
    String::from_utf8(out).unwrap_or_default()
}

/// A byte's two lowercase hex digits.
const fn hex_digits(b: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    [DIGITS[(b >> 4) as usize], DIGITS[(b & 0xf) as usize]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::map::MapInfo;
    use xdpstat_analysis::btf::Btf;

    fn info(map_type: u32, key_size: u32, value_size: u32) -> MapInfo {
        MapInfo {
            map_type,
            id: 7,
            key_size,
            value_size,
            max_entries: 4,
            ..MapInfo::default()
        }
    }

    /// A map's info and entries, as a renderer gets them.
    fn dump(info: MapInfo, entries: Vec<Entry>) -> (MapInfo, Vec<Entry>) {
        (info, entries)
    }

    fn ok(entries: &[Entry]) -> impl Iterator<Item = Result<Entry, DumpError>> + '_ {
        entries.iter().cloned().map(Ok)
    }

    fn text<E: std::fmt::Debug>(f: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> String {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hex_bytes_groups_like_bpftool() {
        assert_eq!(hex_bytes(&[]), "");
        assert_eq!(hex_bytes(&[0, 1, 0xab]), "00 01 ab");
        let twenty: Vec<u8> = (0..20).collect();
        assert_eq!(
            hex_bytes(&twenty),
            "00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f\n10 11 12 13"
        );
    }

    #[test]
    fn plain_single_line_and_broken_names() {
        let d = dump(
            info(2, 4, 16),
            vec![Entry {
                key: vec![0; 4],
                values: Values::Single((0..16).collect()),
            }],
        );
        assert_eq!(
            text(|o| write_plain(o, &d.0, ok(&d.1))),
            "key: 00 00 00 00  value: 00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f\nFound 1 element\n"
        );
        // key + value over 24 bytes: the value goes on its own line.
        let d = dump(
            info(1, 12, 16),
            vec![Entry {
                key: vec![1; 12],
                values: Values::Single(vec![2; 16]),
            }],
        );
        assert_eq!(
            text(|o| write_plain(o, &d.0, ok(&d.1))),
            "key: 01 01 01 01 01 01 01 01  01 01 01 01\nvalue: 02 02 02 02 02 02 02 02  02 02 02 02 02 02 02 02\nFound 1 element\n"
        );
        // Over 16 bytes: names on their own lines, 16 bytes a line.
        let d = dump(
            info(1, 4, 20),
            vec![
                Entry {
                    key: vec![0; 4],
                    values: Values::Single(vec![3; 20]),
                },
                Entry {
                    key: vec![1, 0, 0, 0],
                    values: Values::Unreadable(libc::ENOENT),
                },
            ],
        );
        assert_eq!(
            text(|o| write_plain(o, &d.0, ok(&d.1))),
            "key:\n00 00 00 00\nvalue:\n03 03 03 03 03 03 03 03  03 03 03 03 03 03 03 03\n03 03 03 03\n\
             key: 01 00 00 00  value: <no entry>\nFound 1 element\n"
        );
    }

    #[test]
    fn plain_per_cpu() {
        let d = dump(
            info(6, 4, 12),
            vec![Entry {
                key: vec![0; 4],
                values: Values::PerCpu(vec![(0, vec![1; 12]), (1, vec![2; 12])]),
            }],
        );
        assert_eq!(
            text(|o| write_plain(o, &d.0, ok(&d.1))),
            "key:\n00 00 00 00\nvalue (CPU 00): 01 01 01 01 01 01 01 01  01 01 01 01\n\
             value (CPU 01): 02 02 02 02 02 02 02 02  02 02 02 02\nFound 1 element\n"
        );
        let empty = dump(info(6, 4, 8), vec![]);
        assert_eq!(
            text(|o| write_plain(o, &empty.0, ok(&empty.1))),
            "Found 0 elements\n"
        );
    }

    fn counters_btf(i: &MapInfo) -> MapBtf {
        // u32 key; struct counters { u64 packets; u64 bytes; }.
        let mut types = Vec::new();
        let mut strings = b"\0unsigned int\0u64\0counters\0packets\0bytes\0".to_vec();
        let words: &[u32] = &[
            1,
            1 << 24,
            4,
            32, // [1] unsigned int
            14,
            1 << 24,
            8,
            64, // [2] u64
            18,
            (4 << 24) | 2,
            16,
            27,
            2,
            0,
            35,
            2,
            64, // [3] struct counters
        ];
        for w in words {
            types.extend_from_slice(&w.to_ne_bytes());
        }
        let mut blob = vec![0x9f, 0xeb, 1, 0];
        if cfg!(target_endian = "big") {
            blob = vec![0xeb, 0x9f, 1, 0];
        }
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            blob.extend_from_slice(&w.to_ne_bytes());
        }
        blob.extend(types);
        blob.append(&mut strings);
        let mut i = i.clone();
        i.btf_key_type_id = 1;
        i.btf_value_type_id = 3;
        MapBtf::new(Btf::parse(blob).unwrap(), &i).unwrap()
    }

    #[test]
    fn btf_text_and_json_like_bpftool() {
        let i = info(6, 4, 16);
        let btf = counters_btf(&i);
        let value = |p: u64, b: u64| [p.to_ne_bytes(), b.to_ne_bytes()].concat();
        let d = dump(
            i,
            vec![Entry {
                key: vec![0; 4],
                values: Values::PerCpu(vec![(0, value(1, 90)), (1, value(0, 0))]),
            }],
        );
        let expected = "[{\n        \"key\": 0,\n        \"values\": [{\n                \"cpu\": 0,\n                \"value\": {\n                    \"packets\": 1,\n                    \"bytes\": 90\n                }\n            },{\n                \"cpu\": 1,\n                \"value\": {\n                    \"packets\": 0,\n                    \"bytes\": 0\n                }\n            }\n        ]\n    }\n]\nFound 1 element\n";
        assert_eq!(text(|o| write_btf_text(o, &btf, ok(&d.1))), expected);
        let json = text(|o| write_json(o, Some(&btf), ok(&d.1), false));
        assert!(json.starts_with("[{\"key\":[\"0x00\",\"0x00\",\"0x00\",\"0x00\"],\"values\":[{\"cpu\":0,\"value\":[\"0x01\","), "{json}");
        assert!(json.ends_with(",\"formatted\":{\"key\":0,\"values\":[{\"cpu\":0,\"value\":{\"packets\":1,\"bytes\":90}},{\"cpu\":1,\"value\":{\"packets\":0,\"bytes\":0}}]}}]\n"), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["values"][1]["value"].as_array().unwrap().len(), 16);
        assert_eq!(text(|o| write_json(o, None, ok(&[]), false)), "[]\n");
    }

    #[test]
    fn leaves_in_both_modes() {
        let cases = [
            (BtfValue::Pointer(0), "(nil)", "0"),
            (BtfValue::Pointer(0x1234), "0x1234", "4660"),
            (BtfValue::Hex("0x5".into()), "0x5", "\"0x5\""),
            (BtfValue::Char(7), "0x7", "\"\\u0007\""),
            (BtfValue::Char(0xff), "0xff", "\"\\u00ff\""),
            (
                BtfValue::Str("a\"b\\".into()),
                "\"a\\\"b\\\\\"",
                "\"a\\\"b\\\\\"",
            ),
            (BtfValue::Float(1.5), "1.5", "1.5"),
            (BtfValue::Float(f64::NAN), "null", "null"),
            (BtfValue::Int(-3), "-3", "-3"),
            (BtfValue::Bool(true), "true", "true"),
        ];
        for (v, plain, json) in cases {
            for (mode, want) in [(true, plain), (false, json)] {
                let got = text(|o| JsonWriter::new(o, false).btf_value(&v, mode));
                assert_eq!(got, want, "{v:?} plain={mode}");
            }
            // What JSON mode writes parses back to what to_json gives.
            let got = text(|o| JsonWriter::new(o, false).btf_value(&v, false));
            let parsed: serde_json::Value = serde_json::from_str(&got).unwrap();
            assert_eq!(parsed, v.to_json());
        }
        assert_eq!(
            crate::error::strerror(libc::ENOENT),
            "No such file or directory"
        );
        assert_eq!(text(|o| write_quoted(o, "\u{1}x\ty")), "\"\\u0001x\\ty\"");
    }
}
