//! bpftool-style text of the inspection records: `status`'s table, `prog
//! list` and `map list` entries, and pins.

use crate::model::inspect::{
    maps::{Map, PinnedMap},
    progs::{self, Program},
    status::XdpStatus,
};

pub fn describe(map: &PinnedMap) -> String {
    if map.name.is_empty() {
        format!("map {}", map.id)
    } else {
        format!("map {} ({})", map.id, map.name)
    }
}

/// A table with a header row, its columns padded to their widest cell and
/// two spaces apart; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header: Vec<String> = header.iter().map(|&h| h.to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

pub fn status_table(found: &[XdpStatus]) -> String {
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|s| {
            let held_by = match s.link_id {
                Some(id) => format!("link {id}"),
                None => "netlink".to_owned(),
            };
            vec![
                s.interface.clone(),
                s.ifindex.to_string(),
                s.mode.name().to_owned(),
                s.prog_id.to_string(),
                s.name.clone(),
                s.tag.map(|t| t.to_string()).unwrap_or_default(),
                if s.observed {
                    format!("{}, observed by xdpstat", s.owner.name())
                } else {
                    s.owner.name().to_owned()
                },
                held_by,
            ]
        })
        .collect();
    table(
        &[
            "INTERFACE",
            "IFINDEX",
            "MODE",
            "PROG ID",
            "NAME",
            "TAG",
            "OWNER",
            "HELD BY",
        ],
        &rows,
    )
}

/// `secs` since the epoch as bpftool prints it (`%FT%T%z`), at `offset`
/// seconds east of UTC: `2019-05-17T14:33:49+0000`.
pub fn format_time(secs: u64, offset: i64) -> String {
    let local = secs as i64 + offset;
    let (days, rem) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let sign = if offset < 0 { '-' } else { '+' };
    let off = offset.unsigned_abs() / 60;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{sign}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        off / 60,
        off % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A program in `bpftool prog list`'s layout, with xdpstat's `attached`
/// and sampling window lines.
pub fn program_text(text: &mut String, p: &Program, offset: impl Fn(u64) -> i64) {
    use std::fmt::Write as _;
    let _ = write!(text, "{}: {}  ", p.id, p.prog_type);
    if !p.name.is_empty() {
        let _ = write!(text, "name {}  ", p.name);
    }
    let _ = write!(text, "tag {}", p.tag);
    if p.gpl_compatible {
        text.push_str("  gpl");
    }
    if p.run_time_ns > 0 {
        let _ = write!(text, " run_time_ns {} run_cnt {}", p.run_time_ns, p.run_cnt);
        if let Some(avg) = progs::ns_per_run(p.run_time_ns, p.run_cnt) {
            let _ = write!(text, " ({avg:.1} ns/run)");
        }
    }
    text.push('\n');
    if let Some(at) = p.loaded_at {
        let _ = write!(text, "\tloaded_at {}", format_time(at, offset(at)));
        if let Some(uid) = p.uid {
            let _ = write!(text, "  uid {uid}");
        }
        text.push('\n');
    }
    let _ = write!(text, "\txlated {}B", p.bytes_xlated);
    if p.jited {
        let _ = write!(text, "  jited {}B", p.bytes_jited);
    } else {
        text.push_str("  not jited");
    }
    let _ = write!(text, "  memlock {}B", p.bytes_memlock);
    if !p.map_ids.is_empty() {
        let _ = write!(text, "  map_ids {}", join(&p.map_ids));
    }
    text.push('\n');
    if let Some(btf) = p.btf_id {
        let _ = writeln!(text, "\tbtf_id {btf}");
    }
    if !p.attached.is_empty() {
        let on: Vec<String> = p
            .attached
            .iter()
            .map(|a| format!("{}({}) {}", a.interface, a.ifindex, a.mode.name()))
            .collect();
        let _ = writeln!(text, "\tattached {}", on.join(", "));
    }
    if let Some(w) = &p.window {
        let _ = write!(
            text,
            "\tstats over {:.2}s: run_cnt {}  run_time_ns {}",
            w.seconds, w.run_cnt, w.run_time_ns
        );
        if let Some(avg) = w.ns_per_run {
            let _ = write!(text, "  {avg:.1} ns/run");
        }
        text.push('\n');
    }
}

/// A map in `bpftool map list`'s layout, with the programs that use it.
pub fn map_text(text: &mut String, m: &Map) {
    use std::fmt::Write as _;
    let _ = write!(text, "{}: {}  ", m.id, m.map_type);
    if !m.name.is_empty() {
        let _ = write!(text, "name {}  ", m.name);
    }
    let _ = writeln!(text, "flags 0x{:x}", m.flags);
    let _ = writeln!(
        text,
        "\tkey {}B  value {}B  max_entries {}  memlock {}B",
        m.bytes_key, m.bytes_value, m.max_entries, m.bytes_memlock
    );
    if !m.programs.is_empty() {
        let users: Vec<String> = m
            .programs
            .iter()
            .map(|p| {
                if p.name.is_empty() {
                    p.id.to_string()
                } else {
                    format!("{}({})", p.name, p.id)
                }
            })
            .collect();
        let _ = writeln!(text, "\tprograms {}", users.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::netlink::AttachedMode;
    use crate::model::attach::Holder;
    use crate::model::inspect::{
        maps::{MapType, ProgRef},
        progs::{AttachPoint, ProgType, Tag, Window},
        status::Owner,
    };

    #[test]
    fn times_print_as_bpftool_does() {
        assert_eq!(format_time(0, 0), "1970-01-01T00:00:00+0000");
        assert_eq!(format_time(1_558_103_629, 0), "2019-05-17T14:33:49+0000");
        assert_eq!(format_time(1_558_103_629, 7200), "2019-05-17T16:33:49+0200");
        assert_eq!(
            format_time(1_558_103_629, -16_200),
            "2019-05-17T10:03:49-0430"
        );
        // A leap day, and the turn of a year in a zone behind UTC.
        assert_eq!(format_time(1_709_208_000, 0), "2024-02-29T12:00:00+0000");
        assert_eq!(
            format_time(1_704_067_200, -3600),
            "2023-12-31T23:00:00-0100"
        );
    }

    fn program() -> Program {
        Program {
            id: 77,
            prog_type: ProgType(6),
            name: "xdp_stats".into(),
            tag: Tag(0x8e35_1ef4_8840_bc7c),
            gpl_compatible: true,
            loaded_at: Some(1_558_103_629),
            uid: Some(0),
            bytes_xlated: 184,
            jited: true,
            bytes_jited: 148,
            bytes_memlock: 4096,
            map_ids: vec![57, 58],
            btf_id: None,
            run_time_ns: 0,
            run_cnt: 0,
            attached: vec![AttachPoint {
                interface: "veth0".into(),
                ifindex: 12,
                mode: AttachedMode::Native,
            }],
            window: None,
        }
    }

    fn utc(_: u64) -> i64 {
        0
    }

    #[test]
    fn a_program_prints_in_bpftools_layout() {
        let mut text = String::new();
        let p = program();
        program_text(&mut text, &p, utc);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "77: xdp  name xdp_stats  tag 8e351ef48840bc7c  gpl"
        );
        assert_eq!(lines[1], "\tloaded_at 2019-05-17T14:33:49+0000  uid 0");
        assert_eq!(
            lines[2],
            "\txlated 184B  jited 148B  memlock 4096B  map_ids 57,58"
        );
        assert_eq!(lines[3], "\tattached veth0(12) native");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn run_time_statistics_and_the_window_print_when_there() {
        let mut p = program();
        p.run_time_ns = 2_500;
        p.run_cnt = 100;
        p.jited = false;
        p.bytes_jited = 0;
        p.window = Some(Window::between((500, 20), (2_500, 100), 1.0));
        let mut text = String::new();
        program_text(&mut text, &p, utc);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "77: xdp  name xdp_stats  tag 8e351ef48840bc7c  gpl run_time_ns 2500 run_cnt 100 (25.0 ns/run)"
        );
        assert!(lines[2].starts_with("\txlated 184B  not jited  memlock"));
        assert_eq!(
            lines[4],
            "\tstats over 1.00s: run_cnt 80  run_time_ns 2000  25.0 ns/run"
        );
    }

    #[test]
    fn a_map_prints_in_bpftools_layout_with_its_programs() {
        let m = Map {
            id: 57,
            map_type: MapType(2),
            name: "counters".into(),
            flags: 0,
            bytes_key: 4,
            bytes_value: 16,
            max_entries: 1,
            bytes_memlock: 4096,
            btf_id: None,
            frozen: 0,
            programs: vec![
                ProgRef {
                    id: 77,
                    name: "xdp_stats".into(),
                },
                ProgRef {
                    id: 78,
                    name: String::new(),
                },
            ],
        };
        let mut text = String::new();
        map_text(&mut text, &m);
        assert_eq!(
            text,
            "57: array  name counters  flags 0x0\n\
             \tkey 4B  value 16B  max_entries 1  memlock 4096B\n\
             \tprograms xdp_stats(77), 78\n"
        );
    }

    #[test]
    fn the_status_table_lines_up() {
        let row = |iface: &str, id: u32, owner, link_id: Option<u32>| XdpStatus {
            interface: iface.into(),
            ifindex: 3,
            mode: AttachedMode::Native,
            prog_id: id,
            name: "xdpstat_percpu".into(),
            tag: Some(Tag(0x5b7c_a179_fe07_310a)),
            owner,
            held_by: if link_id.is_some() {
                Holder::Link
            } else {
                Holder::Netlink
            },
            link_id,
            pin_dir: None,
            observed: false,
        };
        let text = status_table(&[
            row("veth0", 5561, Owner::Xdpstat, Some(12)),
            row("a-longer-name", 7, Owner::Other, None),
        ]);
        assert_eq!(
            text,
            "INTERFACE      IFINDEX  MODE    PROG ID  NAME            TAG               OWNER    HELD BY\n\
             veth0          3        native  5561     xdpstat_percpu  5b7ca179fe07310a  xdpstat  link 12\n\
             a-longer-name  3        native  7        xdpstat_percpu  5b7ca179fe07310a  other    netlink\n"
        );
    }
}
