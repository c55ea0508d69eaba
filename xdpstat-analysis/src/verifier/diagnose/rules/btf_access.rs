//! `btf-access`: a read through a pointer the verifier types by the
//! kernel's BTF (a `struct bpf_map *`, a `task_struct *`) at a member or
//! offset that type does not allow.

use super::{Clues, Finding, Rule};
use crate::verifier::diagnose::{facts::Facts, Evidence, Kind};

/// The row.
pub const RULE: Rule = Rule {
    kind: Kind::BtfAccess,
    fits,
    explain,
};

fn fits(c: &Clues<'_>) -> bool {
    c.any(&[
        "cannot access ptr member",
        "access beyond struct",
        "access beyond the end of member",
        "is not a struct",
        "only read is supported",
        "invalid negative access",
        "is trying to access",
    ])
}

/// The word after `key` in `text` (`struct bpf_map` → `bpf_map`).
fn word_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let rest = &text[text.find(key)? + key.len()..];
    rest.split_whitespace().next()
}

fn explain(f: &mut Facts<'_>) -> Finding {
    let first = f.messages.first().to_owned();
    let ty = word_after(&first, "in struct ").or_else(|| word_after(&first, "struct "));
    let member = word_after(&first, "member ");
    let here = &f.here;
    let what = match (member, ty) {
        (Some(m), Some(t)) => format!("member {m} of struct {t}"),
        (None, Some(t)) => format!("struct {t}"),
        _ => "a kernel structure".to_owned(),
    };
    let summary = format!(
        "the read at {here} goes through a pointer the verifier types as {what}, at a member or offset that type does not allow ({first})"
    );
    let fix = if ty == Some("bpf_map") {
        "do not dereference a map pointer (`&my_map`): pass it to map helpers only; to read kernel memory use bpf_probe_read_kernel() or BPF_CORE_READ()".to_owned()
    } else {
        "read only members that exist in the kernel's type (check it with `bpftool btf dump file /sys/kernel/btf/vmlinux`), through BPF_CORE_READ() or bpf_probe_read_kernel() for pointers the verifier does not trust".to_owned()
    };
    let (origin, evidence) = match f.traced_origin() {
        Some(o) => (Some(o), Evidence::Path),
        None => (f.error_insn.map(|i| f.origin_at(i)), Evidence::FailingInsn),
    };
    Finding {
        summary,
        origin,
        fix,
        evidence,
    }
}
