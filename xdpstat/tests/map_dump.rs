//! `xdpstat map dump` against the real kernel, cross-checked with bpftool:
//! the same text and the same `-j` JSON, on xdpstat's own counters (BTF),
//! on maps of every common type made here without BTF, and on maps made
//! here with hand-written BTF covering every kind the formatter prints.
//!
//! Maps are created with raw `bpf(2)` calls, so that the test controls
//! their type, sizes, flags and BTF exactly; each is pinned under
//! `/sys/fs/bpf/xdpstat-test-…` and unpinned on drop, even on failure.

mod common;

use std::{
    io,
    mem::size_of,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::PathBuf,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use common::{bpf_object, have_tool, privileged, settle, xdpstat, VethNs};
use serde_json::Value;

// ---- bpf(2), as the test needs it -------------------------------------

fn bpf<T>(cmd: i32, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a live prefix of `union bpf_attr` for `cmd`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            size_of::<T>() as u32,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned(fd: i64) -> OwnedFd {
    // SAFETY: a descriptor the kernel just returned.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

const HASH: u32 = 1;
const ARRAY: u32 = 2;
const PROG_ARRAY: u32 = 3;
const PERCPU_HASH: u32 = 5;
const PERCPU_ARRAY: u32 = 6;
const LRU_HASH: u32 = 9;
const LRU_PERCPU_HASH: u32 = 10;
const SOCKMAP: u32 = 15;
const RINGBUF: u32 = 27;

/// A map this test made, pinned until drop.
struct TestMap {
    fd: OwnedFd,
    map_type: u32,
    value_size: usize,
    pin: PathBuf,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn pin_path(what: &str) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(format!(
        "/sys/fs/bpf/xdpstat-test-dump-{}-{n}-{what}",
        std::process::id()
    ))
}

/// What a map is created with.
struct Spec<'a> {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    /// BTF, key type id, value type id.
    btf: Option<(BorrowedFd<'a>, u32, u32)>,
}

impl Spec<'_> {
    const fn new(map_type: u32, key_size: u32, value_size: u32, max_entries: u32) -> Self {
        Self {
            map_type,
            key_size,
            value_size,
            max_entries,
            flags: 0,
            btf: None,
        }
    }
}

impl TestMap {
    fn create(what: &str, spec: &Spec<'_>) -> Self {
        use xdpstat::kernel::sys::maps::{map_create, MapCreate};
        let fd = map_create(&MapCreate {
            map_type: spec.map_type,
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries,
            map_flags: spec.flags,
            name: what,
            btf: spec.btf,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("BPF_MAP_CREATE {what}: {e}"));
        let pin = pin_path(what);
        xdpstat::kernel::sys::obj_pin(fd.as_fd(), &pin).expect("pin the test map");
        Self {
            fd,
            map_type: spec.map_type,
            value_size: spec.value_size as usize,
            pin,
        }
    }

    /// Sets one key; a per-CPU map gets `value` on every CPU, with the CPU
    /// number added to the first byte.
    fn set(&self, key: &[u8], value: &[u8]) {
        #[repr(C)]
        struct Attr {
            map_fd: u32,
            _pad: u32,
            key: u64,
            value: u64,
            flags: u64,
        }
        assert_eq!(value.len(), self.value_size);
        let buf = if matches!(self.map_type, PERCPU_ARRAY | PERCPU_HASH | LRU_PERCPU_HASH) {
            let stride = self.value_size.next_multiple_of(8);
            let mut buf = vec![0u8; stride * possible_cpus()];
            for cpu in 0..possible_cpus() {
                buf[cpu * stride..cpu * stride + value.len()].copy_from_slice(value);
                buf[cpu * stride] = buf[cpu * stride].wrapping_add(cpu as u8);
            }
            buf
        } else {
            value.to_vec()
        };
        let mut attr = Attr {
            map_fd: self.fd.as_raw_fd() as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value: buf.as_ptr() as u64,
            flags: 0,
        };
        bpf(2, &mut attr).expect("BPF_MAP_UPDATE_ELEM");
    }

    fn path(&self) -> &str {
        self.pin.to_str().unwrap()
    }
}

impl Drop for TestMap {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pin);
    }
}

/// A pin of something else (a program), removed on drop.
struct PinGuard(PathBuf);

impl Drop for PinGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn possible_cpus() -> usize {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap();
    xdpstat::kernel::map::parse_cpu_list(&text).unwrap().len()
}

/// Loads BTF (`BPF_BTF_LOAD`), with the kernel's log on failure.
fn btf_load(blob: &[u8]) -> OwnedFd {
    #[repr(C)]
    struct Attr {
        btf: u64,
        btf_log_buf: u64,
        btf_size: u32,
        btf_log_size: u32,
        btf_log_level: u32,
        // Spelled out (Linux 6.4+), not left as padding: older kernels
        // refuse the call with EINVAL unless the bytes past the fields
        // they know are zero, and padding is not zeroed.
        btf_log_true_size: u32,
    }
    let mut log = vec![0u8; 1 << 16];
    let mut attr = Attr {
        btf: blob.as_ptr() as u64,
        btf_log_buf: log.as_mut_ptr() as u64,
        btf_size: blob.len() as u32,
        btf_log_size: log.len() as u32,
        btf_log_level: 1,
        btf_log_true_size: 0,
    };
    match bpf(18, &mut attr) {
        Ok(fd) => owned(fd),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            panic!(
                "BPF_BTF_LOAD: {e}\n{}",
                String::from_utf8_lossy(&log[..end])
            );
        }
    }
}

use common::btf_writer::BtfWriter as Btf;

// ---- running the two tools --------------------------------------------

fn stdout_ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn ours(path: &str, extra: &[&str]) -> String {
    let mut args = vec!["map", "dump", path];
    args.extend(extra);
    stdout_ok(&xdpstat(&args), &format!("xdpstat {args:?}"))
}

fn bpftool(flags: &[&str], path: &str) -> String {
    let out = Command::new("bpftool")
        .args(flags)
        .args(["map", "dump", "pinned", path])
        .output()
        .expect("run bpftool");
    stdout_ok(&out, &format!("bpftool {flags:?} map dump pinned {path}"))
}

fn parse(text: &str, who: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{who}'s JSON: {e}\n{text}"))
}

/// `--json` equals `bpftool -j` (as JSON, and as text), and
/// `--json --pretty` equals `bpftool -jp`.
fn assert_json_like_bpftool(path: &str) -> Value {
    let mine = ours(path, &["--json"]);
    let theirs = bpftool(&["-j"], path);
    assert_eq!(parse(&mine, "xdpstat"), parse(&theirs, "bpftool"), "{path}");
    assert_eq!(mine, theirs, "{path}: byte for byte");
    assert_eq!(ours(path, &["--json", "--pretty"]), bpftool(&["-jp"], path));
    parse(&mine, "xdpstat")
}

fn found(n: usize) -> String {
    format!("Found {n} element{}\n", if n == 1 { "" } else { "s" })
}

/// The text equals bpftool's. For a map with BTF, bpftool prints no count
/// after its listing; xdpstat adds `Found N elements`.
fn assert_text_like_bpftool(path: &str, n: usize, btf: bool) -> String {
    let mine = ours(path, &[]);
    let theirs = bpftool(&[], path);
    assert!(mine.ends_with(&found(n)), "{path}: {mine}");
    if btf {
        assert_eq!(&mine[..mine.len() - found(n).len()], theirs, "{path}");
    } else {
        assert_eq!(mine, theirs, "{path}");
    }
    mine
}

/// Exit code `code`, nothing on stdout, and one line on stderr naming
/// every word of `says`.
fn assert_fails(out: &Output, code: i32, says: &[&str]) {
    common::assert_fails(out, code, says);
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

fn le32(v: u32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

// ---- the tests ---------------------------------------------------------

/// xdpstat's own per-CPU counters (`percpu_array`, BTF from the Rust
/// object): typed per-CPU values, same as bpftool.
#[test]
fn percpu_counters_with_btf_match_bpftool() {
    if !privileged("percpu_counters_with_btf_match_bpftool") || !have_tool("bpftool") {
        return;
    }
    let ns = VethNs::new();
    ns.xdpstat_ok(&["attach", &ns.a, "--map", "percpu"]);
    let lengths = vec![60, 64, 100, 1514, 42];
    let total: u64 = lengths.iter().map(|&l| l as u64).sum();
    ns.send_frames(lengths, Some(0));
    let pin = ns.pin_dir(&ns.a).counters().display().to_string();
    let json = settle(&(5, total), || {
        let v = parse(&ours(&pin, &["--json"]), "xdpstat");
        let sum = |field: &str| -> u64 {
            v[0]["formatted"]["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["value"][field].as_u64().unwrap())
                .sum()
        };
        (sum("packets"), sum("bytes"))
    });
    assert_eq!(json, (5, total));

    let v = assert_json_like_bpftool(&pin);
    let values = v[0]["values"].as_array().unwrap();
    assert_eq!(values.len(), possible_cpus());
    assert_eq!(values[0]["value"].as_array().unwrap().len(), 16);
    assert_eq!(v[0]["formatted"]["key"], 0);
    let text = assert_text_like_bpftool(&pin, 1, true);
    assert!(text.contains("\"packets\": "), "{text}");
    // --raw: bpftool's per-CPU hex layout.
    let raw = ours(&pin, &["--raw"]);
    assert!(
        raw.starts_with("key:\n00 00 00 00\nvalue (CPU 00): "),
        "{raw}"
    );
    assert!(raw.ends_with("Found 1 element\n"), "{raw}");
    ns.xdpstat_ok(&["detach", &ns.a]);
}

/// xdpstat's shared counters (`array` with BTF).
#[test]
fn shared_counters_with_btf_match_bpftool() {
    if !privileged("shared_counters_with_btf_match_bpftool") || !have_tool("bpftool") {
        return;
    }
    let ns = VethNs::new();
    ns.xdpstat_ok(&["attach", &ns.a, "--map", "shared"]);
    ns.send_frames(vec![100; 7], None);
    let pin = ns.pin_dir(&ns.a).counters().display().to_string();
    let got = settle(&(7, 700), || {
        let v = parse(&ours(&pin, &["--json"]), "xdpstat");
        let f = &v[0]["formatted"]["value"];
        (f["packets"].as_u64().unwrap(), f["bytes"].as_u64().unwrap())
    });
    assert_eq!(got, (7, 700));
    assert_json_like_bpftool(&pin);
    let text = assert_text_like_bpftool(&pin, 1, true);
    assert!(text.contains("\"packets\": 7,\n"), "{text}");
    ns.xdpstat_ok(&["detach", &ns.a]);
}

/// Maps without BTF, of each common type: bpftool's hex text exactly, and
/// its JSON exactly (no "formatted").
#[test]
fn maps_without_btf_match_bpftool() {
    if !privileged("maps_without_btf_match_bpftool") || !have_tool("bpftool") {
        return;
    }
    // A hash of several elements, 4-byte keys and 8-byte values.
    let hash = TestMap::create("hash", &Spec::new(HASH, 4, 8, 16));
    for k in [3u32, 1, 4, 1000, 0xdead_beef] {
        hash.set(&le32(k), &u64::from(k).wrapping_mul(0x0101).to_ne_bytes());
    }
    let text = assert_text_like_bpftool(hash.path(), 5, false);
    assert!(
        text.contains("key: 03 00 00 00  value: 03 03 00 00 00 00 00 00\n"),
        "{text}"
    );
    let v = assert_json_like_bpftool(hash.path());
    assert_eq!(v.as_array().unwrap().len(), 5);
    assert!(v[0].get("formatted").is_none());

    // Wide keys and values: names on their own lines, 16 bytes a line.
    let wide = TestMap::create("wide", &Spec::new(LRU_HASH, 20, 36, 8));
    wide.set(&[7; 20], &(0..36).collect::<Vec<u8>>());
    wide.set(&[9; 20], &[0xff; 36]);
    let text = assert_text_like_bpftool(wide.path(), 2, false);
    assert!(
        text.contains("value:\n00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f\n"),
        "{text}"
    );
    assert_json_like_bpftool(wide.path());

    // Key and value over 24 bytes together, neither over 16.
    let mid = TestMap::create("mid", &Spec::new(ARRAY, 4, 16, 3));
    mid.set(&le32(1), &[0xab; 16]);
    assert_text_like_bpftool(mid.path(), 3, false);
    assert_json_like_bpftool(mid.path());

    // Per-CPU maps: a value line per CPU.
    let pcpu = TestMap::create("pcpu", &Spec::new(PERCPU_ARRAY, 4, 12, 2));
    pcpu.set(&le32(1), &[0x10; 12]);
    let text = assert_text_like_bpftool(pcpu.path(), 2, false);
    assert!(
        text.starts_with("key:\n00 00 00 00\nvalue (CPU 00): 00 00 00"),
        "{text}"
    );
    assert!(
        text.contains("value (CPU 01): 11 10 10 10 10 10 10 10  10 10 10 10\n"),
        "{text}"
    );
    assert!(text.ends_with("Found 2 elements\n"), "{text}");
    let v = assert_json_like_bpftool(pcpu.path());
    assert_eq!(v[1]["values"][1]["cpu"], 1);

    let phash = TestMap::create("phash", &Spec::new(PERCPU_HASH, 8, 24, 4));
    phash.set(&[1; 8], &[2; 24]);
    phash.set(&[3; 8], &[4; 24]);
    let text = assert_text_like_bpftool(phash.path(), 2, false);
    assert!(
        text.contains("value (CPU 00):\n02 02"),
        "values over 16 bytes break: {text}"
    );
    assert_json_like_bpftool(phash.path());

    let lru = TestMap::create("lrupcpu", &Spec::new(LRU_PERCPU_HASH, 4, 8, 16));
    lru.set(&le32(5), &[5; 8]);
    assert_text_like_bpftool(lru.path(), 1, false);
    assert_json_like_bpftool(lru.path());

    // More entries than one batch read holds (1024), in hash buckets and
    // in an array: the same order as bpftool's key-by-key walk.
    let big = TestMap::create("bighash", &Spec::new(HASH, 4, 8, 4096));
    for k in 0..3000u32 {
        big.set(
            &le32(k.wrapping_mul(2_654_435_761)),
            &u64::from(k).to_ne_bytes(),
        );
    }
    assert_text_like_bpftool(big.path(), 3000, false);
    assert_json_like_bpftool(big.path());
    let big = TestMap::create("bigpcpu", &Spec::new(PERCPU_ARRAY, 4, 4, 2500));
    big.set(&le32(2222), &le32(7));
    assert_text_like_bpftool(big.path(), 2500, false);
    assert_json_like_bpftool(big.path());

    // Empty maps.
    let empty = TestMap::create("empty", &Spec::new(HASH, 4, 4, 4));
    assert_eq!(
        assert_text_like_bpftool(empty.path(), 0, false),
        "Found 0 elements\n"
    );
    assert_eq!(ours(empty.path(), &["--json"]), "[]\n");
    assert_json_like_bpftool(empty.path());
}

/// The same map by id as by pin.
#[test]
fn a_map_by_id() {
    if !privileged("a_map_by_id") {
        return;
    }
    let map = TestMap::create("byid", &Spec::new(HASH, 4, 4, 4));
    map.set(&le32(2), &le32(3));
    let info = xdpstat::kernel::sys::maps::map_info(map.fd.as_fd()).unwrap();
    assert_eq!(info.map_type, HASH);
    assert_eq!(info.name, "byid");
    assert_eq!(info.btf_id, 0);
    let by_id = ours(&info.id.to_string(), &[]);
    assert_eq!(
        by_id,
        "key: 02 00 00 00  value: 03 00 00 00\nFound 1 element\n"
    );
    assert_eq!(by_id, ours(map.path(), &[]));
    // The library's typed records, by id and by pin.
    use xdpstat::model::inspect::dump::{dump, Entry, MapRef, Values};
    let by_id = dump(&MapRef::Id(info.id)).unwrap();
    assert_eq!(by_id.info, info);
    assert!(!by_id.per_cpu && by_id.btf.is_none() && by_id.btf_error.is_none());
    assert_eq!(
        by_id.entries,
        vec![Entry {
            key: le32(2),
            values: Values::Single(le32(3)),
        }]
    );
    let by_pin = dump(&MapRef::parse(map.path()).unwrap()).unwrap();
    assert_eq!(by_pin.entries, by_id.entries);
    assert_eq!(
        ours(&info.id.to_string(), &["--json"]),
        "[{\"key\":[\"0x02\",\"0x00\",\"0x00\",\"0x00\"],\"value\":[\"0x03\",\"0x00\",\"0x00\",\"0x00\"]}]\n"
    );
}

/// Types with BTF covering every kind bpftool prints: signed and unsigned
/// ints of each size, bool, char (printable and not), char arrays as
/// strings, arrays of numbers, enums (named and not), enum64, bitfields,
/// unions, nested structs, typedef/const/volatile, pointers (null and
/// not), 128-bit ints; a typed struct key; and a `.bss`-like DATASEC value.
#[test]
fn rich_btf_matches_bpftool() {
    if !privileged("rich_btf_matches_bpftool") || !have_tool("bpftool") {
        return;
    }
    let mut b = Btf::new();
    let u8_t = b.int("unsigned char", 1, 0);
    let u16_t = b.int("unsigned short", 2, 0);
    let u32_t = b.int("unsigned int", 4, 0);
    let u64_t = b.int("unsigned long long", 8, 0);
    let s8_t = b.int("signed char", 1, 1);
    let s16_t = b.int("short", 2, 1);
    let s32_t = b.int("int", 4, 1);
    let s64_t = b.int("long long", 8, 1);
    let char_t = b.int("char", 1, 1);
    let chr_t = b.int("chr", 1, 2);
    let bool_t = b.int("_Bool", 1, 4);
    let u128_t = b.int("unsigned __int128", 16, 0);
    let (red, green, blue) = (b.s("RED"), b.s("GREEN"), b.s("BLUE"));
    let color = b.add(
        "color",
        6,
        3,
        false,
        4,
        &[red, 0, green, 1, blue, (-1i32) as u32],
    );
    let (small, huge) = (b.s("SMALL"), b.s("HUGE"));
    let wide = b.add("wide", 19, 2, false, 8, &[small, 1, 0, huge, 0, 1]);
    let td = b.add("u32_t", 8, 0, false, u32_t, &[]);
    let cst = b.add("", 10, 0, false, td, &[]);
    let vol = b.add("", 9, 0, false, u16_t, &[]);
    let void_ptr = b.add("", 2, 0, false, 0, &[]);
    let name_t = b.array(char_t, u32_t, 16);
    let raw_t = b.array(u8_t, u32_t, 2);
    let arr_t = b.array(u32_t, u32_t, 3);
    let bytes4 = b.array(u8_t, u32_t, 4);
    let un = b.record(
        5,
        "word",
        4,
        false,
        &[("as_u32", u32_t, 0, 0), ("bytes", bytes4, 0, 0)],
    );
    let inner = b.record(
        4,
        "point",
        4,
        false,
        &[("x", s16_t, 0, 0), ("y", s16_t, 16, 0)],
    );
    let value = b.record(
        4,
        "value",
        128,
        true,
        &[
            ("packets", u64_t, 0, 0),
            ("delta", s64_t, 64, 0),
            ("temp", s32_t, 128, 0),
            ("small", s16_t, 160, 0),
            ("tiny", s8_t, 176, 0),
            ("up", bool_t, 184, 0),
            ("name", name_t, 192, 0),
            ("grade", chr_t, 320, 0),
            ("bell", chr_t, 328, 0),
            ("raw", raw_t, 336, 0),
            ("c1", color, 352, 0),
            ("c2", color, 384, 0),
            ("ro", cst, 416, 0),
            ("ptr", void_ptr, 448, 0),
            ("hi", u32_t, 512, 4),
            ("lo", u32_t, 516, 12),
            ("mid", u32_t, 528, 16),
            ("un", un, 544, 0),
            ("pos", inner, 576, 0),
            ("arr", arr_t, 608, 0),
            ("big", u128_t, 768, 0),
            ("e64", wide, 896, 0),
            ("vol", vol, 960, 0),
            ("", inner, 992, 0),
        ],
    );
    let key = b.record(
        4,
        "flow",
        8,
        false,
        &[
            ("addr", u32_t, 0, 0),
            ("port", u16_t, 32, 0),
            ("proto", u8_t, 48, 0),
            ("pad", u8_t, 56, 0),
        ],
    );
    let hits = b.add("hits", 14, 0, false, u32_t, &[1]);
    let msg = b.add("msg", 14, 0, false, name_t, &[1]);
    let bss = b.add(".bss", 15, 2, false, 20, &[hits, 0, 4, msg, 4, 16]);
    let btf_fd = btf_load(&b.blob());

    let value_bytes = |n: u8| {
        let mut v = vec![0u8; 128];
        let mut put = |at: usize, bytes: &[u8]| v[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, &(1_000_000_000_000u64 + u64::from(n)).to_ne_bytes());
        put(8, &(-42i64 * i64::from(n)).to_ne_bytes());
        put(16, &(-7i32).to_ne_bytes());
        put(20, &(-300i16).to_ne_bytes());
        put(22, &[0x80]);
        put(23, &[n % 2]);
        let name: &[u8] = if n == 1 {
            b"eth0\0\0\0"
        } else {
            b"not\x01string"
        };
        put(24, name);
        put(40, b"A");
        put(41, &[7]);
        put(42, &[1, 255]);
        put(44, &0u32.to_ne_bytes());
        put(48, &(if n == 1 { u32::MAX } else { 7 }).to_ne_bytes());
        put(52, &123u32.to_ne_bytes());
        put(
            56,
            &(if n == 1 { 0u64 } else { 0xffff_8880_1234_5678 }).to_ne_bytes(),
        );
        // hi:4 = 0xb, lo:12 = 0x123, mid:16 = 0xbeef.
        put(64, &0xbeef_123bu32.to_ne_bytes());
        put(68, &0x0403_0201u32.to_ne_bytes());
        put(72, &[0xff, 0xff, 2, 0]);
        put(76, &[1u32, 2, 3].map(u32::to_ne_bytes).concat());
        put(96, &(u128::MAX - 1).to_ne_bytes());
        put(112, &(if n == 1 { 1u64 << 32 } else { 5 }).to_ne_bytes());
        put(120, &65535u16.to_ne_bytes());
        put(124, &[1, 0, 2, 0]);
        v
    };
    let flow = |addr: u32, port: u16| {
        [addr.to_ne_bytes().as_slice(), &port.to_ne_bytes(), &[6, 0]].concat()
    };

    let map = TestMap::create(
        "rich",
        &Spec {
            btf: Some((btf_fd.as_fd(), key, value)),
            ..Spec::new(HASH, 8, 128, 8)
        },
    );
    map.set(&flow(0x0a00_0001, 80), &value_bytes(1));
    map.set(&flow(0x0a00_0002, 443), &value_bytes(2));
    let v = assert_json_like_bpftool(map.path());
    let text = assert_text_like_bpftool(map.path(), 2, true);
    let one = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["formatted"])
        .find(|f| f["key"]["port"] == 80)
        .expect("the entry with port 80");
    assert_eq!(one["key"]["addr"], 0x0a00_0001);
    let f = &one["value"];
    assert_eq!(f["packets"], 1_000_000_000_001u64);
    assert_eq!(f["delta"], -42);
    assert_eq!(f["tiny"], -128);
    assert_eq!(f["up"], true);
    assert_eq!(f["name"], "eth0");
    assert_eq!(f["grade"], "A");
    assert_eq!(f["bell"], "\u{7}");
    assert_eq!(f["raw"], serde_json::json!([1, 255]));
    assert_eq!(f["c1"], "RED");
    assert_eq!(f["c2"], "BLUE");
    assert_eq!(f["ro"], 123);
    assert_eq!(f["ptr"], 0);
    assert_eq!(f["hi"], "0xb");
    assert_eq!(f["lo"], "0x123");
    assert_eq!(f["mid"], "0xbeef");
    assert_eq!(f["un"]["bytes"], serde_json::json!([1, 2, 3, 4]));
    assert_eq!(f["pos"], serde_json::json!({"x": -1, "y": 2}));
    assert_eq!(f["big"], "0xfffffffffffffffffffffffffffffffe");
    assert_eq!(f["e64"], "HUGE");
    assert_eq!(f["vol"], 65535);
    // Text mode prints pointers, bitfields and unprintable chars bare.
    assert!(text.contains("\"ptr\": (nil),"), "{text}");
    assert!(text.contains("\"ptr\": 0xffff888012345678,"), "{text}");
    assert!(text.contains("\"bell\": 0x7,"), "{text}");
    assert!(text.contains("\"hi\": 0xb,"), "{text}");
    assert!(text.contains("\"c2\": 7,"), "{text}");

    // A global-data-like array whose value is a DATASEC.
    let data = TestMap::create(
        "bss",
        &Spec {
            btf: Some((btf_fd.as_fd(), u32_t, bss)),
            ..Spec::new(ARRAY, 4, 20, 1)
        },
    );
    data.set(
        &le32(0),
        &[le32(9), b"hello\0\0\0\0\0\0\0\0\0\0\0".to_vec()].concat(),
    );
    let v = assert_json_like_bpftool(data.path());
    assert_eq!(
        v[0]["formatted"]["value"],
        serde_json::json!({".bss": [{"hits": 9}, {"msg": "hello"}]})
    );
    assert_text_like_bpftool(data.path(), 1, true);

    // A per-CPU hash with BTF.
    let pmap = TestMap::create(
        "richpcpu",
        &Spec {
            btf: Some((btf_fd.as_fd(), u32_t, inner)),
            ..Spec::new(PERCPU_HASH, 4, 4, 4)
        },
    );
    pmap.set(&le32(1), &[1, 0, 0xfe, 0xff]);
    let typed = xdpstat::model::inspect::dump::dump(
        &xdpstat::model::inspect::dump::MapRef::parse(pmap.path()).unwrap(),
    )
    .unwrap();
    let xdpstat::model::inspect::dump::Values::PerCpu(cpus) = &typed.entries[0].values else {
        panic!("per-CPU values");
    };
    assert_eq!(cpus.len(), possible_cpus());
    assert_eq!(cpus[0], (0, vec![1, 0, 0xfe, 0xff]));
    let btf = typed.btf.as_ref().expect("usable BTF");
    assert_eq!(
        btf.format_value(&cpus[0].1).unwrap().to_json(),
        serde_json::json!({"x": 1, "y": -2})
    );
    let v = assert_json_like_bpftool(pmap.path());
    assert_eq!(
        v[0]["formatted"]["values"][0]["value"],
        serde_json::json!({"x": 1, "y": -2})
    );
    assert_eq!(v[0]["formatted"]["values"][1]["value"]["x"], 2);
    assert_text_like_bpftool(pmap.path(), 1, true);
    // --raw prints bytes even with BTF, and --json --raw has no "formatted".
    assert!(ours(pmap.path(), &["--raw"]).contains("value (CPU 00): 01 00 fe ff\n"));
    assert!(!ours(pmap.path(), &["--json", "--raw"]).contains("formatted"));
}

/// Floats, which bpftool 7.1 cannot print, come out as numbers.
#[test]
fn floats_are_numbers() {
    if !privileged("floats_are_numbers") {
        return;
    }
    let mut b = Btf::new();
    let u32_t = b.int("unsigned int", 4, 0);
    let f32_t = b.add("float", 16, 0, false, 4, &[]);
    let f64_t = b.add("double", 16, 0, false, 8, &[]);
    let s = b.record(
        4,
        "reading",
        16,
        false,
        &[("celsius", f32_t, 0, 0), ("ratio", f64_t, 64, 0)],
    );
    let fd = btf_load(&b.blob());
    let map = TestMap::create(
        "floats",
        &Spec {
            btf: Some((fd.as_fd(), u32_t, s)),
            ..Spec::new(ARRAY, 4, 16, 1)
        },
    );
    map.set(
        &le32(0),
        &[
            21.5f32.to_ne_bytes().as_slice(),
            &[0; 4],
            &0.25f64.to_ne_bytes(),
        ]
        .concat(),
    );
    let v = parse(&ours(map.path(), &["--json"]), "xdpstat");
    assert_eq!(
        v[0]["formatted"]["value"],
        serde_json::json!({"celsius": 21.5, "ratio": 0.25})
    );
    assert!(ours(map.path(), &[]).contains("\"celsius\": 21.5,"));
}

/// Empty slots of a program array are left out, as bpftool leaves them;
/// a sockmap's empty slots are `<no entry>` lines, as in bpftool.
#[test]
fn empty_slots_like_bpftool() {
    if !privileged("empty_slots_like_bpftool") || !have_tool("bpftool") {
        return;
    }
    let progs = TestMap::create("progs", &Spec::new(PROG_ARRAY, 4, 4, 4));
    assert_eq!(
        assert_text_like_bpftool(progs.path(), 0, false),
        "Found 0 elements\n"
    );
    assert_json_like_bpftool(progs.path());

    let socks = TestMap::create("socks", &Spec::new(SOCKMAP, 4, 8, 2));
    let text = assert_text_like_bpftool(socks.path(), 0, false);
    assert!(
        text.starts_with("key: 00 00 00 00  value: <no entry>\n"),
        "{text}"
    );
    let v = assert_json_like_bpftool(socks.path());
    assert_eq!(v[1]["value"]["error"], "No such file or directory");
}

/// Bad input: one clear line, exit 2.
#[test]
fn bad_inputs_are_one_line_and_exit_2() {
    if !privileged("bad_inputs_are_one_line_and_exit_2") {
        return;
    }
    // Ids are allocated upwards from 1; this one is far ahead.
    assert_fails(
        &xdpstat(&["map", "dump", "4000000000"]),
        2,
        &["no map has id 4000000000"],
    );
    assert_fails(
        &xdpstat(&["map", "dump", "4294967296"]),
        2,
        &["not a map id"],
    );

    let missing = pin_path("missing");
    let missing = missing.to_str().unwrap();
    assert_fails(
        &xdpstat(&["map", "dump", missing]),
        2,
        &["nothing is pinned at", missing],
    );

    let outside = std::env::temp_dir().join(format!("xdpstat-test-dump-{}", std::process::id()));
    std::fs::write(&outside, b"not a map").unwrap();
    let _cleanup = PinGuard(outside.clone());
    let outside = outside.to_str().unwrap();
    assert_fails(
        &xdpstat(&["map", "dump", outside]),
        2,
        &[outside, "not on bpffs"],
    );

    assert_fails(
        &xdpstat(&["map", "dump", "/sys/fs/bpf"]),
        2,
        &["is a directory, not a pinned map"],
    );

    // A pinned program.
    let prog_pin = PinGuard(pin_path("prog"));
    let mut ebpf = aya::Ebpf::load_file(bpf_object("xdpstat_pass")).unwrap();
    let prog: &mut aya::programs::Xdp = ebpf
        .program_mut("xdpstat_pass")
        .unwrap()
        .try_into()
        .unwrap();
    prog.load().unwrap();
    prog.pin(&prog_pin.0).unwrap();
    let path = prog_pin.0.to_str().unwrap();
    let what = format!(
        "is a pinned BPF program (id {}), not a map",
        prog.info().unwrap().id()
    );
    assert_fails(&xdpstat(&["map", "dump", path]), 2, &[path, &what]);

    // A map whose values cannot be read by key.
    let ring = TestMap::create("ring", &Spec::new(RINGBUF, 0, 0, 4096));
    assert_fails(
        &xdpstat(&["map", "dump", ring.path()]),
        2,
        &["ringbuf map, which cannot be dumped"],
    );
}

#[test]
fn without_privileges_it_says_so() {
    if !privileged("without_privileges_it_says_so") || !have_tool("setpriv") {
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_xdpstat"))
        .args(["map", "dump", "1"])
        .output()
        .unwrap();
    assert_fails(&out, 1, &["xdpstat map dump needs root", "CAP_BPF"]);
}
