//! The fuzz targets of `xdpstat::fuzz_targets` (the ones `cargo fuzz`
//! runs, see fuzz/), run here as a seeded mutation test under plain
//! `cargo test`: deterministic, so a failure reproduces.
//!
//! The seeds are the corpus: the fixture objects (fixtures/build, from
//! `cargo xtask build-fixtures`) and the committed ones (xdpstat/bpf), the
//! saved verifier logs (fixtures/logs) and a short log for each error
//! message of fixtures/expected.json, the objects' `.BTF` sections and
//! their instructions. Each case stacks a few mutations on one seed: bit
//! flips, random bytes, truncation, splices from another seed, deleted or
//! repeated ranges, and integer-boundary values written into the fields
//! parsers trust: the ELF header, section headers, symbols, relocations,
//! the `.BTF` and `.BTF.ext` headers and records; for logs, numbers in a
//! line and whole lines repeated, dropped or swapped.
//!
//! A panic fails the test with the target, case and mutations, and leaves
//! the input under `target/tmp/fuzz-failures/` (give it to `cargo fuzz run
//! <target> FILE`, or to `xdpstat objdump`/`explain --log`). So does an
//! input that takes more than [`MAX_PER_INPUT`] of CPU; one that has not
//! returned after [`HANG`] stops the whole run, with its input saved.
//!
//! `XDPSTAT_FUZZ_SEED` picks another seed and `XDPSTAT_FUZZ_SCALE`
//! multiplies the number of cases, for longer runs by hand;
//! `XDPSTAT_FUZZ_DEBUG` also saves the slowest input and those on which
//! aya-obj panicked (caught by `xdpstat_analysis::obj::guard`).

mod common;

use std::{
    fs,
    panic::{self, AssertUnwindSafe},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use object::{Object as _, ObjectSection as _, SectionKind};
use xdpstat::fuzz_targets;
use xdpstat_analysis::{btf::Btf, insn::Insn, obj::BpfObject, verifier::log};

/// Cases per target, at scale 1: 40,000 in all, about 30 s of CPU in a
/// debug build (CI needs 20,000 or more within three minutes).
const OBJECT_CASES: u64 = 8_000;
const LOG_CASES: u64 = 10_000;
const BTF_CASES: u64 = 12_000;
const INSN_CASES: u64 = 10_000;
/// The most CPU time one input may take. CPU time, not wall time: other
/// work on the machine must not fail the test.
const MAX_PER_INPUT: Duration = Duration::from_secs(10);
/// Wall time after which an input that has not returned is a hang.
const HANG: Duration = Duration::from_secs(60);
/// The most CPU time a whole target may take, at scale 1: four of them on
/// two idle cores then finish within 90 seconds, half the three minutes
/// CI gives this test.
const MAX_PER_TARGET: Duration = Duration::from_secs(45);

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// splitmix64: small, fast, and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A field a parser trusts: where it is, how wide (1, 2, 4 or 8 bytes),
/// and what it is, for the report.
#[derive(Clone, Debug)]
struct Field {
    at: usize,
    width: usize,
    name: String,
}

/// One seed: its bytes and the fields worth writing boundary values into.
struct Seed {
    name: String,
    bytes: Vec<u8>,
    fields: Vec<Field>,
}

/// A target: its name, body, seeds and how many cases it runs.
struct Target {
    name: &'static str,
    run: fn(&[u8]),
    seeds: Vec<Seed>,
    cases: u64,
    /// Line-level mutations (for logs).
    text: bool,
    /// Whether an input gets past the first checks into the parser's
    /// depths; asked of every eighth case, so that a mutator that only
    /// makes garbage fails the test instead of passing it.
    deep: fn(&[u8]) -> bool,
}

/// The least share of the sampled cases that must get deep.
const MIN_DEEP: f64 = 0.2;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

/// Every object of the corpus, by name.
fn objects() -> Vec<(String, Vec<u8>)> {
    let mut paths = Vec::new();
    // Fails under CI (or `cargo xtask test`) when the fixtures are not
    // built; otherwise says so and goes on with the committed objects.
    if common::fixture("c/null_check_hash.o").is_some() {
        files_under(&repo().join("fixtures/build"), "o", &mut paths);
    }
    files_under(&repo().join("xdpstat/bpf"), "o", &mut paths);
    paths.sort();
    // Of the real-world corpus, the first object of each project: its
    // shapes of ELF, BTF and maps, at a tenth of the time of all 102.
    let real = repo().join("fixtures/build/real");
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| !p.starts_with(&real) || seen.insert(p.parent().map(Path::to_path_buf)));
    paths
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(repo()).unwrap_or(&p).display().to_string();
            (name, fs::read(&p).unwrap())
        })
        .collect()
}

fn u32_le(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

/// The fields of an ELF object that its readers trust.
fn elf_fields(bytes: &[u8]) -> Vec<Field> {
    let mut fields = Vec::new();
    let mut add = |at: usize, width: usize, name: String| {
        if at + width <= bytes.len() {
            fields.push(Field { at, width, name });
        }
    };
    for (at, width, name) in [
        (16, 2, "e_type"),
        (18, 2, "e_machine"),
        (32, 8, "e_phoff"),
        (40, 8, "e_shoff"),
        (52, 2, "e_ehsize"),
        (56, 2, "e_phnum"),
        (58, 2, "e_shentsize"),
        (60, 2, "e_shnum"),
        (62, 2, "e_shstrndx"),
    ] {
        add(at, width, name.to_owned());
    }
    let Ok(file) = object::File::parse(bytes) else {
        return fields;
    };
    let shoff = u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize;
    for section in file.sections() {
        let name = section.name().unwrap_or("?").to_owned();
        let header = shoff + section.index().0 * 64;
        for (off, width, field) in [
            (0, 4, "sh_name"),
            (4, 4, "sh_type"),
            (8, 8, "sh_flags"),
            (16, 8, "sh_addr"),
            (24, 8, "sh_offset"),
            (32, 8, "sh_size"),
            (40, 4, "sh_link"),
            (44, 4, "sh_info"),
            (56, 8, "sh_entsize"),
        ] {
            add(header + off, width, format!("{name}.{field}"));
        }
        let Some((start, len)) = section.file_range() else {
            continue;
        };
        let (start, len) = (start as usize, len as usize);
        match section.kind() {
            // Symbols: st_name, st_info, st_shndx, st_value, st_size of
            // the first 64.
            _ if name == ".symtab" => {
                for (n, sym) in (start..start + len).step_by(24).take(64).enumerate() {
                    for (off, width, field) in [
                        (0, 4, "name"),
                        (4, 1, "info"),
                        (6, 2, "shndx"),
                        (8, 8, "value"),
                        (16, 8, "size"),
                    ] {
                        add(sym + off, width, format!("sym{n}.{field}"));
                    }
                }
            }
            _ if name.starts_with(".rel") => {
                for (n, rel) in (start..start + len).step_by(16).take(32).enumerate() {
                    add(rel, 8, format!("{name}[{n}].r_offset"));
                    add(rel + 8, 4, format!("{name}[{n}].r_type"));
                    add(rel + 12, 4, format!("{name}[{n}].r_sym"));
                }
            }
            _ if name == ".BTF" => btf_fields(bytes, start, len, &mut add),
            _ if name == ".BTF.ext" => {
                for (off, field) in [
                    (4, "hdr_len"),
                    (8, "func_info_off"),
                    (12, "func_info_len"),
                    (16, "line_info_off"),
                    (20, "line_info_len"),
                    (24, "core_relo_off"),
                    (28, "core_relo_len"),
                ] {
                    add(start + off, 4, format!(".BTF.ext.{field}"));
                }
                let hdr_len = u32_le(bytes, start + 4).unwrap_or(0);
                for (table, what) in [(8, "func_info"), (16, "line_info"), (24, "core_relo")] {
                    let Some(off) = u32_le(bytes, start + table) else {
                        continue;
                    };
                    // rec_size, then the first block's name and count,
                    // then its first records.
                    let at = start + hdr_len + off;
                    for word in 0..12 {
                        add(at + word * 4, 4, format!(".BTF.ext.{what}[{word}]"));
                    }
                }
            }
            _ => {}
        }
    }
    fields
}

/// The `.BTF` header and the first words of the type section.
fn btf_fields(bytes: &[u8], start: usize, len: usize, add: &mut impl FnMut(usize, usize, String)) {
    for (off, width, field) in [
        (0, 2, "magic"),
        (2, 1, "version"),
        (4, 4, "hdr_len"),
        (8, 4, "type_off"),
        (12, 4, "type_len"),
        (16, 4, "str_off"),
        (20, 4, "str_len"),
    ] {
        add(start + off, width, format!(".BTF.{field}"));
    }
    let types =
        start + u32_le(bytes, start + 4).unwrap_or(24) + u32_le(bytes, start + 8).unwrap_or(0);
    for word in 0..96 {
        if types + word * 4 + 4 <= start + len {
            add(types + word * 4, 4, format!(".BTF.type[{word}]"));
        }
    }
}

/// The object seeds, with their fields.
fn object_seeds(objects: &[(String, Vec<u8>)]) -> Vec<Seed> {
    objects
        .iter()
        .map(|(name, bytes)| Seed {
            name: name.clone(),
            fields: elf_fields(bytes),
            bytes: bytes.clone(),
        })
        .collect()
}

/// The saved logs, and a short log for each error message the fixture
/// manifest records, so that every diagnosis has a seed.
fn log_seeds() -> Vec<Seed> {
    let mut paths = Vec::new();
    files_under(&repo().join("fixtures/logs"), "log", &mut paths);
    paths.sort();
    assert!(paths.len() >= 10, "the saved logs in fixtures/logs");
    let mut seeds: Vec<Seed> = paths
        .into_iter()
        .map(|p| Seed {
            name: p.file_name().unwrap().to_string_lossy().into_owned(),
            bytes: fs::read(&p).unwrap(),
            fields: Vec::new(),
        })
        .collect();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(repo().join("fixtures/expected.json")).unwrap()).unwrap();
    let mut messages: Vec<&str> = manifest
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    messages.sort_unstable();
    messages.dedup();
    for message in messages {
        let log = format!(
            "func#0 @0\n0: R1=ctx() R10=fp0\n0: (61) r2 = *(u32 *)(r1 +0)          ; R1=ctx() R2_w=pkt(r=0)\n\
             1: (bf) r6 = r2                       ; R2_w=pkt(r=0) R6_w=pkt(r=0)\n\
             2: (85) call bpf_xdp_adjust_head#44   ; R0_w=scalar()\n\
             3: (85) call pc+2\n\
             4: (71) r3 = *(u8 *)(r6 +12)\n{message}\n\
             verification time 10 usec\nstack depth 16+320+304\n\
             processed 5 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n"
        );
        seeds.push(Seed {
            name: format!("synthetic: {message}"),
            bytes: log.into_bytes(),
            fields: Vec::new(),
        });
    }
    seeds
}

/// Each object's `.BTF`, as the BTF target reads it, with a value for
/// each of a few types.
fn btf_seeds(objects: &[(String, Vec<u8>)]) -> Vec<Seed> {
    let mut rng = Rng::new(0xb7f);
    let mut seeds = Vec::new();
    for (name, bytes) in objects {
        let Ok(file) = object::File::parse(&**bytes) else {
            continue;
        };
        let Some(blob) = file.section_by_name(".BTF").and_then(|s| s.data().ok()) else {
            continue;
        };
        // Types with a value to print, and values of their size.
        let Ok(types) = Btf::parse(blob.to_vec()) else {
            continue;
        };
        let sized: Vec<(u32, usize)> = (1..=types.len() as u32)
            .filter_map(|id| {
                let size = types.size_of(id).ok().filter(|s| (1..=4096).contains(s))?;
                types.format(id, &vec![0; size as usize]).ok()?;
                Some((id, size as usize))
            })
            .collect();
        if sized.is_empty() {
            continue;
        }
        for _ in 0..4 {
            let (id, size) = *rng.pick(&sized);
            let value: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
            let data = fuzz_targets::btf_input(id, blob, &value);
            let mut fields = vec![
                Field {
                    at: 0,
                    width: 4,
                    name: "type id".to_owned(),
                },
                Field {
                    at: 4,
                    width: 4,
                    name: "blob length".to_owned(),
                },
            ];
            btf_fields(&data, 8, blob.len(), &mut |at, width, name| {
                fields.push(Field { at, width, name });
            });
            seeds.push(Seed {
                name: format!("{name}:.BTF#{id}"),
                bytes: data,
                fields,
            });
        }
    }
    seeds
}

/// Every executable section of every object.
fn insn_seeds(objects: &[(String, Vec<u8>)]) -> Vec<Seed> {
    let mut seeds = Vec::new();
    for (name, bytes) in objects {
        let Ok(file) = object::File::parse(&**bytes) else {
            continue;
        };
        for section in file.sections() {
            if section.kind() != SectionKind::Text {
                continue;
            }
            let Ok(data) = section.data() else { continue };
            if data.is_empty() {
                continue;
            }
            // Each instruction's code, regs and offset bytes and its imm.
            let fields = (0..data.len() / 8)
                .flat_map(|i| {
                    [(0, 1, "code"), (1, 1, "regs"), (2, 2, "off"), (4, 4, "imm")].map(
                        |(off, width, f)| Field {
                            at: i * 8 + off,
                            width,
                            name: format!("insn{i}.{f}"),
                        },
                    )
                })
                .collect();
            seeds.push(Seed {
                name: format!("{name}:{}", section.name().unwrap_or("?")),
                bytes: data.to_vec(),
                fields,
            });
        }
    }
    seeds
}

/// Values at the edges of a field of `width` bytes, and around `current`.
fn boundary(rng: &mut Rng, width: usize, current: u64, len: usize) -> u64 {
    let max = if width == 8 {
        u64::MAX
    } else {
        (1u64 << (width * 8)) - 1
    };
    let candidates = [
        0,
        1,
        2,
        3,
        4,
        7,
        8,
        16,
        24,
        max,
        max - 1,
        max >> 1,
        (max >> 1) + 1,
        max >> 4,
        current.wrapping_add(1),
        current.wrapping_sub(1),
        current.wrapping_mul(2),
        current.wrapping_add(8),
        len as u64,
        len as u64 + 1,
        (len as u64).wrapping_sub(1),
        rng.next(),
    ];
    *rng.pick(&candidates) & max
}

fn read_le(b: &[u8], at: usize, width: usize) -> u64 {
    let mut raw = [0; 8];
    raw[..width].copy_from_slice(&b[at..at + width]);
    u64::from_le_bytes(raw)
}

/// The mutations.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// A boundary value into a trusted field (or anywhere, without any).
    Boundary,
    BitFlips,
    RandomByte,
    /// Another seed's bytes over this one's, the length kept.
    Overwrite,
    Truncate,
    /// Another seed's bytes in place of a range of this one's.
    Splice,
    Delete,
    Repeat,
    /// A line's numbers to boundary values.
    Numbers,
    /// Lines swapped, repeated or dropped.
    Lines,
}

/// How often each mutation is picked, for binary input: mostly ones that
/// keep the length, since a shifted section header table makes an ELF
/// file unreadable at its first step.
const BINARY_OPS: &[(Op, usize)] = &[
    (Op::Boundary, 16),
    (Op::BitFlips, 8),
    (Op::RandomByte, 4),
    (Op::Overwrite, 6),
    (Op::Truncate, 1),
    (Op::Splice, 1),
    (Op::Delete, 1),
    (Op::Repeat, 1),
];
/// For logs, which have no offsets to keep.
const TEXT_OPS: &[(Op, usize)] = &[
    (Op::BitFlips, 2),
    (Op::RandomByte, 1),
    (Op::Truncate, 1),
    (Op::Splice, 2),
    (Op::Delete, 1),
    (Op::Repeat, 1),
    (Op::Numbers, 4),
    (Op::Lines, 4),
];

fn pick_op(rng: &mut Rng, ops: &[(Op, usize)]) -> Op {
    let total: usize = ops.iter().map(|(_, w)| w).sum();
    let mut at = rng.below(total);
    for &(op, weight) in ops {
        if at < weight {
            return op;
        }
        at -= weight;
    }
    unreachable!("the weights add up to {total}")
}

/// Applies one mutation; returns what it did.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, seed: &Seed, others: &[Seed], text: bool) -> String {
    let len = data.len();
    match pick_op(rng, if text { TEXT_OPS } else { BINARY_OPS }) {
        Op::Boundary => {
            let field = if seed.fields.is_empty() {
                let width = *rng.pick(&[1, 2, 4, 8]);
                Field {
                    at: rng.below(len.saturating_sub(width).max(1)),
                    width,
                    name: "anywhere".to_owned(),
                }
            } else {
                rng.pick(&seed.fields).clone()
            };
            if field.at + field.width > len {
                return "boundary write past the end (skipped)".to_owned();
            }
            let current = read_le(data, field.at, field.width);
            let value = boundary(rng, field.width, current, len);
            data[field.at..field.at + field.width]
                .copy_from_slice(&value.to_le_bytes()[..field.width]);
            format!("{}={value:#x}", field.name)
        }
        Op::BitFlips => {
            let n = 1 + rng.below(8);
            for _ in 0..n {
                if !data.is_empty() {
                    let at = rng.below(data.len());
                    data[at] ^= 1 << rng.below(8);
                }
            }
            format!("{n} bit flips")
        }
        Op::RandomByte => {
            let at = rng.below(len.max(1));
            if let Some(b) = data.get_mut(at) {
                *b = rng.next() as u8;
            }
            format!("random byte at {at}")
        }
        Op::Truncate => {
            let at = rng.below(len + 1);
            data.truncate(at);
            format!("truncated to {at}")
        }
        Op::Overwrite => {
            let other = &rng.pick(others).bytes;
            let from = rng.below(other.len());
            let at = rng.below(len);
            let n = rng.below((other.len() - from).min(len - at).min(256) + 1);
            data[at..at + n].copy_from_slice(&other[from..from + n]);
            format!("overwrote {n} bytes at {at}")
        }
        Op::Splice => {
            let other = &rng.pick(others).bytes;
            let from = rng.below(other.len());
            let n = rng.below((other.len() - from).min(512) + 1);
            let at = rng.below(len + 1);
            let cut = rng.below((len - at).min(512) + 1);
            data.splice(at..at + cut, other[from..from + n].iter().copied());
            format!("splice {n} bytes over {cut} at {at}")
        }
        Op::Delete => {
            let at = rng.below(len + 1);
            let n = rng.below((len - at).min(256) + 1);
            data.drain(at..at + n);
            format!("deleted {n} at {at}")
        }
        Op::Repeat => {
            let at = rng.below(len + 1);
            let n = rng.below((len - at).min(256) + 1);
            let copy: Vec<u8> = data[at..at + n].to_vec();
            let to = rng.below(data.len() + 1);
            data.splice(to..to, copy);
            format!("repeated {n} from {at} at {to}")
        }
        Op::Numbers => {
            let text = String::from_utf8_lossy(data).into_owned();
            let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
            let i = rng.below(lines.len());
            let numbers = [
                "0",
                "-1",
                "2147483647",
                "-2147483648",
                "4294967295",
                "4294967296",
                "9223372036854775807",
                "-9223372036854775808",
                "18446744073709551615",
                "99999999999999999999999",
                "0x7fffffffffffffff",
                "0x8000000000000000",
                "0xffffffffffffffff",
                "",
            ];
            let replaced: String = {
                let line = &lines[i];
                let mut out = String::new();
                let mut in_number = false;
                for c in line.chars() {
                    if c.is_ascii_digit() {
                        if !in_number {
                            out.push_str(rng.pick::<&str>(&numbers));
                        }
                        in_number = true;
                    } else {
                        in_number = false;
                        out.push(c);
                    }
                }
                out
            };
            lines[i] = replaced;
            *data = lines.join("\n").into_bytes();
            format!("numbers of line {i} to boundaries")
        }
        Op::Lines => {
            let text = String::from_utf8_lossy(data).into_owned();
            let mut lines: Vec<&str> = text.split('\n').collect();
            let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
            let what = match rng.below(3) {
                0 => {
                    lines.swap(i, j);
                    "swapped"
                }
                1 => {
                    let line = lines[i];
                    for _ in 0..1 + rng.below(64) {
                        lines.insert(j, line);
                    }
                    "repeated"
                }
                _ => {
                    lines.remove(i);
                    "dropped"
                }
            };
            *data = lines.join("\n").into_bytes();
            format!("lines {i},{j} {what}")
        }
    }
}

/// The input of case `case`, and how it was made: a pure function of the
/// seed and the case number, so any case can be made again alone.
fn make_case(target: &Target, base: u64, case: u64) -> (Vec<u8>, String) {
    let mut rng = Rng::new(base ^ case.wrapping_mul(0xa076_1d64_78bd_642f));
    let seed = rng.pick(&target.seeds);
    let mut data = seed.bytes.clone();
    let mut steps = vec![format!("seed {}", seed.name)];
    for _ in 0..1 + rng.below(4) {
        steps.push(mutate(
            &mut rng,
            &mut data,
            seed,
            &target.seeds,
            target.text,
        ));
    }
    (data, steps.join(", "))
}

fn failure_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures")
}

fn save(target: &str, base: u64, case: u64, data: &[u8]) -> PathBuf {
    let dir = failure_dir();
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{target}-seed{base:x}-case{case}.bin"));
    fs::write(&path, data).unwrap();
    path
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Runs every case of `target`: a panic or a slow input fails the test
/// with its case and input saved, and a hang ends the run.
fn run(target: Target) {
    let target = Arc::new(target);
    let base = env_u64("XDPSTAT_FUZZ_SEED").unwrap_or(0x5eed_f022);
    let scale = env_u64("XDPSTAT_FUZZ_SCALE").unwrap_or(1).max(1);
    let cases = target.cases * scale;
    // The watchdog: a case still running after HANG never returns a
    // verdict, so it is saved and the run stopped.
    let current = Arc::new(AtomicU64::new(u64::MAX));
    let started = Arc::new(AtomicU64::new(0));
    let clock = Instant::now();
    {
        let (target, current, started) = (target.clone(), current.clone(), started.clone());
        thread::spawn(move || loop {
            thread::sleep(Duration::from_millis(500));
            let case = current.load(Ordering::SeqCst);
            if case == u64::MAX {
                continue;
            }
            let since = Duration::from_millis(started.load(Ordering::SeqCst));
            if clock.elapsed().saturating_sub(since) > HANG
                && current.load(Ordering::SeqCst) == case
            {
                let (data, how) = make_case(&target, base, case);
                let path = save(target.name, base, case, &data);
                eprintln!(
                    "fuzz {}: case {case} ({how}) runs longer than {HANG:?}; input in {}",
                    target.name,
                    path.display()
                );
                std::process::exit(101);
            }
        });
    }
    let (start, start_cpu) = (Instant::now(), thread_cpu());
    let mut slowest = (Duration::ZERO, 0);
    let mut slowest_wall = Duration::ZERO;
    let mut failures = Vec::new();
    // Cases in which aya-obj panicked and the guard caught it.
    let mut guarded = Vec::new();
    let (mut sampled, mut deep) = (0u64, 0u64);
    for case in 0..cases {
        let (data, how) = make_case(&target, base, case);
        started.store(clock.elapsed().as_millis() as u64, Ordering::SeqCst);
        current.store(case, Ordering::SeqCst);
        let (t, cpu) = (Instant::now(), thread_cpu());
        let _ = xdpstat_analysis::obj::guard::take_caught();
        let result = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&data)));
        let took = thread_cpu() - cpu;
        slowest_wall = slowest_wall.max(t.elapsed());
        if case % 8 == 0 {
            sampled += 1;
            deep += u64::from((target.deep)(&data));
        }
        for panic in xdpstat_analysis::obj::guard::take_caught() {
            // The guard is for aya's panics; one in xdpstat's code is a bug.
            if panic.location.starts_with("xdpstat") {
                let path = save(target.name, base, case, &data);
                failures.push(format!(
                    "case {case} ({how}): the guard caught a panic in xdpstat's own code: {panic}; input in {}",
                    path.display()
                ));
            }
            guarded.push(format!("case {case} ({how}): {panic}"));
            if std::env::var_os("XDPSTAT_FUZZ_DEBUG").is_some() {
                save(&format!("guarded-{}", target.name), base, case, &data);
            }
        }
        current.store(u64::MAX, Ordering::SeqCst);
        if took > slowest.0 {
            slowest = (took, case);
        }
        if let Err(payload) = result {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let path = save(target.name, base, case, &data);
            failures.push(format!(
                "case {case} ({how}): {message}; input in {}",
                path.display()
            ));
        } else if took > MAX_PER_INPUT {
            let path = save(target.name, base, case, &data);
            failures.push(format!(
                "case {case} ({how}) took {took:?}; input in {}",
                path.display()
            ));
        }
    }
    let (wall, cpu) = (start.elapsed(), thread_cpu() - start_cpu);
    if std::env::var_os("XDPSTAT_FUZZ_DEBUG").is_some() {
        let (data, how) = make_case(&target, base, slowest.1);
        eprintln!("slowest: {how}");
        save(&format!("slowest-{}", target.name), base, slowest.1, &data);
    }
    eprintln!(
        "fuzz {}: {cases} cases from {} seeds (seed {base:#x}) in {wall:.1?} ({cpu:.1?} CPU), {:.0}% deep, slowest {:.1?} CPU (case {}), {slowest_wall:.1?} wall, {} panics, {} aya-obj panics caught by the guard{}",
        target.name,
        target.seeds.len(),
        100.0 * deep as f64 / sampled.max(1) as f64,
        slowest.0,
        slowest.1,
        failures.len(),
        guarded.len(),
        guarded
            .iter()
            .take(5)
            .map(|g| format!("\n  guarded: {g}"))
            .collect::<String>(),
    );
    assert!(
        failures.is_empty(),
        "fuzz {}: {} of {cases} cases failed:\n{}",
        target.name,
        failures.len(),
        failures.join("\n")
    );
    assert!(slowest.0 < MAX_PER_INPUT);
    assert!(
        deep as f64 >= MIN_DEEP * sampled as f64,
        "fuzz {}: only {deep} of {sampled} sampled cases got past the first checks",
        target.name
    );
    if scale == 1 {
        assert!(
            cpu < MAX_PER_TARGET,
            "fuzz {}: {cases} cases took {cpu:?} of CPU, more than {MAX_PER_TARGET:?}",
            target.name
        );
    }
}

#[test]
fn fuzz_object() {
    let objects = objects();
    run(Target {
        name: "object",
        run: fuzz_targets::object,
        seeds: object_seeds(&objects),
        cases: OBJECT_CASES,
        text: false,
        deep: |data| BpfObject::from_bytes(Path::new("fuzz.o"), data.to_vec()).is_ok(),
    });
}

#[test]
fn fuzz_verifier_log() {
    run(Target {
        name: "verifier_log",
        run: fuzz_targets::verifier_log,
        seeds: log_seeds(),
        cases: LOG_CASES,
        text: true,
        deep: |data| log::parse_reader(data).is_ok(),
    });
}

#[test]
fn fuzz_btf() {
    let seeds = btf_seeds(&objects());
    assert!(!seeds.is_empty(), "objects with .BTF");
    run(Target {
        name: "btf",
        run: fuzz_targets::btf,
        seeds,
        cases: BTF_CASES,
        text: false,
        // The type the input names formats.
        deep: |data| {
            let (Some(id), Some(len)) = (u32_le(data, 0), u32_le(data, 4)) else {
                return false;
            };
            let (blob, value) = data[8..].split_at(len.min(data.len() - 8));
            Btf::parse(blob.to_vec()).is_ok_and(|b| b.format(id as u32, value).is_ok())
        },
    });
}

#[test]
fn fuzz_insns() {
    run(Target {
        name: "insns",
        run: fuzz_targets::insns,
        seeds: insn_seeds(&objects()),
        cases: INSN_CASES,
        text: false,
        deep: |data| Insn::decode_all(data).is_ok(),
    });
}

/// The mutator itself: deterministic per case, and it does change inputs.
#[test]
fn cases_are_deterministic_and_mutated() {
    let target = Target {
        name: "verifier_log",
        run: |_| {},
        seeds: log_seeds(),
        cases: 0,
        text: true,
        deep: |_| true,
    };
    let mut changed = 0;
    for case in 0..200 {
        let (a, how) = make_case(&target, 1, case);
        let (b, _) = make_case(&target, 1, case);
        assert_eq!(a, b, "case {case} ({how})");
        if !target.seeds.iter().any(|s| s.bytes == a) {
            changed += 1;
        }
    }
    assert!(
        changed > 150,
        "{changed} of 200 cases differ from every seed"
    );
}
