//! Issue 12's defects F1 to F8: what real-world objects showed xdpstat's
//! workbench getting wrong before the verifier ever ran. Each fixture in
//! `fixtures/defects/` is built here by clang, in the shape the real
//! objects have (the issue names them).

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use common::{assert_fails, have_tool, privileged, Scratch, VethNs};
use serde_json::Value;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/defects")
}

/// Builds `fixtures/defects/<name>.c` with `extra` flags.
fn build(scratch: &Scratch, name: &str, extra: &[&str]) -> PathBuf {
    let out = scratch.0.join(format!("{name}.o"));
    let status = Command::new("clang")
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
        ])
        .args(extra)
        .arg("-c")
        .arg(src_dir().join(format!("{name}.c")))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "clang {name}.c");
    out
}

fn xdpstat(args: &[&str]) -> std::process::Output {
    common::xdpstat(args)
}

fn check_json(obj: &Path) -> Vec<Value> {
    let out = xdpstat(&["check", obj.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "check {}: {}",
        obj.display(),
        common::stderr(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["programs"].as_array().cloned().unwrap_or_else(|| vec![v])
}

#[test]
fn f1_each_section_keeps_its_own_line_and_func_info() {
    if !privileged("f1_each_section_keeps_its_own_line_and_func_info") || !have_tool("clang") {
        return;
    }
    let scratch = Scratch::new("f1");
    let obj = build(&scratch, "multi_sections", &[]);
    let programs = check_json(&obj);
    let verdicts: Vec<(String, bool)> = programs
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["accepted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("pass_first".to_owned(), true),
            ("hooked".to_owned(), true),
            ("not_hooked".to_owned(), true),
            ("numbered".to_owned(), true)
        ],
        "{programs:?}"
    );
    for section in ["xdp_pass_first", "xdp/hook", "xdp/nohook", "2/N"] {
        common::assert_source_lines_agree(&obj, section, None);
    }

    // The kernel records the loaded program's own function: bpftool
    // names it from the program's func_info.
    let ns = VethNs::new();
    let out = ns.xdpstat(&[
        "load",
        obj.to_str().unwrap(),
        "--dev",
        &ns.a,
        "--sec",
        "xdp/hook",
        "--mode",
        "generic",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let id = ns.xdp_on(&ns.a)[0].prog_id;
    let shown = Command::new("bpftool")
        .args(["prog", "show", "id", &id.to_string(), "-j"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["name"], "hooked", "{shown}");
    ns.xdpstat_ok(&["detach", &ns.a]);
}

#[test]
fn f3_kfunc_externs_are_resolved_in_the_kernels_btf() {
    if !privileged("f3_kfunc_externs_are_resolved_in_the_kernels_btf")
        || !have_tool("clang")
        || !have_tool("bpftool")
    {
        return;
    }
    let scratch = Scratch::new("f3");
    let obj = build(&scratch, "kfuncs", &[]);
    let programs = check_json(&obj);
    assert_eq!(programs[0]["accepted"], true, "{programs:?}");
    assert!(programs[0]["stats"]["insns_processed"].as_u64() > Some(0));
    let listing = xdpstat(&["objdump", obj.to_str().unwrap()]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    for kfunc in ["call bpf_xdp_ct_lookup#", "call bpf_ct_release#"] {
        assert!(listing.contains(kfunc), "objdump names {kfunc}: {listing}");
    }
    // Loaded, each call is bound to the kernel's own function: bpftool
    // names the target of each call from the kernel's symbols.
    let ns = VethNs::new();
    ns.xdpstat_ok(&[
        "load",
        obj.to_str().unwrap(),
        "--dev",
        &ns.a,
        "--mode",
        "generic",
    ]);
    let id = ns.xdp_on(&ns.a)[0].prog_id;
    let xlated = bpftool(&["prog", "dump", "xlated", "id", &id.to_string()]);
    for kfunc in ["bpf_xdp_ct_lookup", "bpf_ct_release"] {
        assert!(
            xlated.contains(&format!("call {kfunc}#")),
            "{kfunc}: {xlated}"
        );
    }
    ns.xdpstat_ok(&["detach", &ns.a]);
    // A kfunc this kernel lacks is named; the kernel's lack, exit 1.
    let missing = build(&scratch, "kfuncs", &["-DMISSING"]);
    for cmd in ["check", "load"] {
        let mut args = vec![cmd, missing.to_str().unwrap()];
        if cmd == "load" {
            args.extend(["--dev", ns.a.as_str()]);
        }
        let out = ns.xdpstat(&args);
        assert_fails(
            &out,
            1,
            &[
                "bpf_xdpstat_no_such_kfunc",
                "this kernel does not have",
                "modprobe",
            ],
        );
    }
    assert!(
        ns.xdp_on(&ns.a).is_empty(),
        "a refused load attaches nothing"
    );
}

#[test]
fn f2_a_section_name_inside_a_symbol_name_loads() {
    if !privileged("f2_a_section_name_inside_a_symbol_name_loads") || !have_tool("clang") {
        return;
    }
    let scratch = Scratch::new("f2");
    let obj = build(&scratch, "name_in_symbol", &[]);
    let symbols = Command::new(common::llvm_objdump())
        .args(["-t", "-h"])
        .arg(&obj)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&symbols.stdout);
    assert!(
        listing.contains("xdp_fail1") && listing.contains("_xdp_fail1"),
        "{listing}"
    );
    let programs = check_json(&obj);
    assert_eq!(programs.len(), 2);
    for p in &programs {
        assert_eq!(p["accepted"], true, "{p}");
    }
    common::assert_source_lines_agree(&obj, "xdp_fail1", None);
}

#[test]
fn f4_programs_of_other_types_do_not_block_the_xdp_one() {
    if !privileged("f4_programs_of_other_types_do_not_block_the_xdp_one") || !have_tool("clang") {
        return;
    }
    let scratch = Scratch::new("f4");
    let obj = build(&scratch, "mixed_types", &[]);
    let programs = check_json(&obj);
    assert_eq!(programs.len(), 1, "only the XDP program: {programs:?}");
    assert_eq!(programs[0]["name"], "xdp_ingress");
    assert_eq!(programs[0]["accepted"], true);
    let out = xdpstat(&["check", obj.to_str().unwrap(), "--sec", "xdp"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    // Naming the tc program says what it is.
    let out = xdpstat(&["check", obj.to_str().unwrap(), "--sec", "tc"]);
    assert_fails(&out, 2, &["no section 'tc'", "xdp"]);
}

/// A pin at `/sys/fs/bpf/<name>` that this test made or expects, removed
/// when the test ends.
struct OwnPin(PathBuf);

impl Drop for OwnPin {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `xdpstat-check-*` directories in bpffs' root: check's private ones.
fn check_dirs() -> Vec<String> {
    std::fs::read_dir("/sys/fs/bpf")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("xdpstat-check-"))
                .collect()
        })
        .unwrap_or_default()
}

fn bpftool(args: &[&str]) -> String {
    let out = Command::new("bpftool").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "bpftool {args:?}: {}",
        common::stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn f5_f6_maps_pinned_by_name_are_checked_and_cleaned_up() {
    if !privileged("f5_f6_maps_pinned_by_name_are_checked_and_cleaned_up")
        || !have_tool("clang")
        || !have_tool("bpftool")
    {
        return;
    }
    let scratch = Scratch::new("f6");
    let map = format!("xdpstat_f6_{}", std::process::id());
    let define = format!("-DMAP_NAME={map}");
    let obj = build(&scratch, "pinned_maps", &[&define]);
    let obj_s = obj.to_str().unwrap();
    let pin = OwnPin(PathBuf::from("/sys/fs/bpf").join(&map));
    let before = check_dirs();

    // check pins nothing that outlives it.
    let programs = check_json(&obj);
    assert_eq!(programs[0]["accepted"], true, "{programs:?}");
    assert!(!pin.0.exists(), "check left {}", pin.0.display());
    assert_eq!(check_dirs(), before, "check left its directory");

    // load pins it as libbpf does, and detach removes what load pinned.
    let ns = VethNs::new();
    let load = |ns: &VethNs| ns.xdpstat(&["load", obj_s, "--dev", &ns.a, "--mode", "generic"]);
    let out = load(&ns);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(pin.0.exists(), "load pins {map} by name");
    ns.xdpstat_ok(&["detach", &ns.a]);
    assert!(!pin.0.exists(), "detach removes the pin load made");

    // A pin of another shape is refused, and left as it was.
    let pin_s = pin.0.to_str().unwrap();
    bpftool(&[
        "map", "create", pin_s, "type", "hash", "key", "4", "value", "8", "entries", "16", "name",
        "other",
    ]);
    let id_before = bpftool(&["map", "show", "pinned", pin_s]);
    let out = load(&ns);
    assert_fails(
        &out,
        2,
        &[
            pin_s,
            "hash (key 4, value 8, 16 entries",
            "percpu_array (key 4, value 8, 4 entries",
            "libbpf",
        ],
    );
    assert!(ns.xdp_on(&ns.a).is_empty(), "nothing attached");
    assert_eq!(bpftool(&["map", "show", "pinned", pin_s]), id_before);
    // check does not reuse it: its own map, no bogus diagnosis.
    assert_eq!(check_json(&obj)[0]["accepted"], true);
    std::fs::remove_file(&pin.0).unwrap();

    // A pin of the same shape is reused, and stays after detach.
    bpftool(&[
        "map",
        "create",
        pin_s,
        "type",
        "percpu_array",
        "key",
        "4",
        "value",
        "8",
        "entries",
        "4",
        "name",
        "same",
    ]);
    let out = load(&ns);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let pinned: Value =
        serde_json::from_str(&bpftool(&["map", "show", "pinned", pin_s, "-j"])).unwrap();
    let prog = ns.xdp_on(&ns.a)[0].prog_id;
    let prog: Value =
        serde_json::from_str(&bpftool(&["prog", "show", "id", &prog.to_string(), "-j"])).unwrap();
    assert_eq!(
        prog["map_ids"][0], pinned["id"],
        "the program uses the pinned map"
    );
    ns.xdpstat_ok(&["detach", &ns.a]);
    assert!(pin.0.exists(), "a reused pin stays");
    std::fs::remove_file(&pin.0).unwrap();

    // A rejected load leaves no pin.
    let rejected = build(&scratch, "pinned_maps", &[&define, "-DREJECT"]);
    let out = ns.xdpstat(&[
        "load",
        rejected.to_str().unwrap(),
        "--dev",
        &ns.a,
        "--mode",
        "generic",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    assert!(!pin.0.exists(), "a rejected load left {}", pin.0.display());
    assert_eq!(check_dirs(), before);
}

#[test]
fn f8_names_and_map_fields_follow_bpftool() {
    if !privileged("f8_names_and_map_fields_follow_bpftool")
        || !have_tool("clang")
        || !have_tool("bpftool")
    {
        return;
    }
    let scratch = Scratch::new("f8");
    let obj = build(&scratch, "long_name", &[]);
    let ns = VethNs::new();
    let out = ns.xdpstat(&[
        "load",
        obj.to_str().unwrap(),
        "--dev",
        &ns.a,
        "--mode",
        "generic",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let id = ns.xdp_on(&ns.a)[0].prog_id;
    let theirs: Value =
        serde_json::from_str(&bpftool(&["prog", "show", "id", &id.to_string(), "-j"])).unwrap();
    assert_eq!(theirs["name"], "count_with_a_long_function_name");
    let ours: Value = serde_json::from_slice(&xdpstat(&["prog", "list", "--json"]).stdout).unwrap();
    let ours = ours
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
        .unwrap();
    assert_eq!(ours["name"], theirs["name"]);

    let maps: Value = serde_json::from_slice(&xdpstat(&["map", "list", "--json"]).stdout).unwrap();
    let mut seen_frozen = false;
    for map_id in theirs["map_ids"].as_array().unwrap() {
        let ours = maps
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == *map_id)
            .cloned()
            .unwrap();
        let theirs: Value =
            serde_json::from_str(&bpftool(&["map", "show", "id", &map_id.to_string(), "-j"]))
                .unwrap();
        assert_eq!(ours["btf_id"], theirs["btf_id"], "{ours} {theirs}");
        assert_eq!(ours["frozen"], theirs["frozen"], "{ours} {theirs}");
        seen_frozen |= ours["frozen"] == 1;
    }
    assert!(seen_frozen, ".rodata is frozen");
    ns.xdpstat_ok(&["detach", &ns.a]);
}

/// Sets the type of every global function symbol of an ELF64 little-endian
/// object to `STT_NOTYPE`, as clang before 10 wrote them.
fn untype_functions(obj: &Path) {
    use object::{Object, ObjectSection};
    let mut bytes = std::fs::read(obj).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let symtab = file.section_by_name(".symtab").unwrap();
    let (start, size) = symtab.file_range().unwrap();
    drop(file);
    // Elf64_Sym: st_name (4), st_info (1), …; 24 bytes each.
    for at in (start as usize..(start + size) as usize).step_by(24) {
        let info = bytes[at + 4];
        if info == 0x12 {
            // STB_GLOBAL << 4 | STT_FUNC → STB_GLOBAL << 4 | STT_NOTYPE
            bytes[at + 4] = 0x10;
        }
    }
    std::fs::write(obj, bytes).unwrap();
}

#[test]
fn f7_old_and_unlinkable_objects_get_one_clear_line() {
    if !have_tool("clang") {
        return;
    }
    let scratch = Scratch::new("f7");
    // A call to a function declared but defined nowhere.
    let obj = build(
        &scratch,
        "undefined_call",
        &["-Wno-implicit-function-declaration"],
    );
    for cmd in ["check", "objdump"] {
        let out = xdpstat(&[cmd, obj.to_str().unwrap()]);
        assert_fails(
            &out,
            2,
            &["calls checksum_fold", "does not define", "static inline"],
        );
    }
    // Functions without a symbol type, as older clang wrote them.
    let old = build(&scratch, "name_in_symbol", &[]);
    untype_functions(&old);
    let out = xdpstat(&["check", old.to_str().unwrap()]);
    assert_fails(&out, 2, &["no symbol type", "STT_NOTYPE", "newer clang"]);
}

#[test]
fn f7_explain_names_what_it_can_and_never_prints_a_question_mark() {
    let scratch = Scratch::new("f7-logs");
    let unknown = scratch.0.join("unknown-helper.log");
    std::fs::write(
        &unknown,
        "0: (85) call unknown#666\ninvalid func unknown#666\n\
         processed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n",
    )
    .unwrap();
    let out = xdpstat(&["explain", "--log", unknown.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["programs"][0]["diagnosis"]["kind"], "helper-unavailable",
        "{v}"
    );
    let text =
        String::from_utf8_lossy(&xdpstat(&["explain", "--log", unknown.to_str().unwrap()]).stdout)
            .into_owned();
    assert!(text.contains("does not know helper #666"), "{text}");

    let limit = scratch.0.join("limit.log");
    std::fs::write(
        &limit,
        "BPF program is too large. Processed 1000001 insn\n\
         processed 1000001 insns (limit 1000000) max_states_per_insn 4 total_states 9 peak_states 9 mark_read 1\n",
    )
    .unwrap();
    let text =
        String::from_utf8_lossy(&xdpstat(&["explain", "--log", limit.to_str().unwrap()]).stdout)
            .into_owned();
    assert!(text.contains("Diagnosis: complexity"), "{text}");
    assert!(!text.contains("insn ?"), "{text}");
    assert!(text.contains("no instruction named in the log"), "{text}");
}
