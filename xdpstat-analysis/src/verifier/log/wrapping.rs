//! What loaders, terminals and issue trackers wrap around a verifier log,
//! taken off one line at a time: libbpf's markers and `libbpf: prog 'x': `
//! prefixes, aya's `Verifier output:` and `Caused by:` chains, cilium/ebpf's
//! Go error header and tab indentation, bcc's `bpf: …` header, `HINT:` and
//! Python traceback, veristat's `VERIFIER LOG:`, iproute2's header,
//! bpftrace's `Error log:`, journald and ctest prefixes, markdown
//! indentation, quotes and fences, shell prompts and `...` gaps.

/// What one line is, once its wrapping is off.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Wrapped<'a> {
    /// Text of the log itself.
    Log(&'a str),
    /// A loader's line that introduces a log (`-- BEGIN PROG LOAD LOG --`,
    /// `Verifier output:`); log text may follow on the same line.
    Start(&'a str),
    /// A loader's or a shell's line after a log (a traceback, a hint, an
    /// END marker, a prompt): the error, if one was read, is complete.
    End,
    /// A line that says nothing about the log (a code fence, a gap, a
    /// loader's chatter before the log).
    Skip,
}

/// Takes the wrapping off lines; it learns a ctest prefix (`5: ` on every
/// line) from the first line that shows it.
#[derive(Debug, Default)]
pub(super) struct Unwrapper {
    ctest_prefix: Option<String>,
}

impl Unwrapper {
    /// The line without its wrapping, and what it is.
    pub(super) fn unwrap<'a>(&mut self, raw: &'a str) -> Wrapped<'a> {
        let mut line = raw.trim_end_matches(['\r', '\n']);
        if let Some(rest) = strip_journald(line) {
            line = rest;
        }
        line = self.strip_ctest(line);
        line = strip_quotes(line.trim_start());
        if let Some(rest) = line.strip_prefix("libbpf:") {
            return libbpf(rest.trim_start());
        }
        if let Some(rest) = log_start(line) {
            return Wrapped::Start(strip_quotes(rest.trim_start()));
        }
        if is_gap(line) || line.starts_with("```") || line.starts_with("~~~") {
            return Wrapped::Skip;
        }
        if is_trailer(line) || is_prompt(line) {
            return Wrapped::End;
        }
        Wrapped::Log(line)
    }

    /// `5: 0: (bf) r6 = r1` → `0: (bf) r6 = r1`, once the prefix is known.
    fn strip_ctest<'a>(&mut self, line: &'a str) -> &'a str {
        if self.ctest_prefix.is_none() {
            self.ctest_prefix = ctest_prefix(line.trim_start()).map(str::to_owned);
        }
        match &self.ctest_prefix {
            Some(prefix) => line
                .trim_start()
                .strip_prefix(prefix.as_str())
                .unwrap_or(line),
            None => line,
        }
    }
}

/// The prefix ctest puts on a test's output lines (`5: `), when `line`
/// shows it: a verifier line (`N: (op)`, `N: R…`) behind another index, or
/// ctest's own `N: Test command:`.
fn ctest_prefix(line: &str) -> Option<&str> {
    let (test, rest) = line.split_once(": ")?;
    if test.is_empty() || !test.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let inner = rest.split_once(": ").is_some_and(|(index, after)| {
        !index.is_empty()
            && index.bytes().all(|b| b.is_ascii_digit())
            && (after.starts_with('(') || after.starts_with('R') || after.starts_with("frame"))
    });
    (inner || rest.starts_with("Test command:")).then(|| &line[..test.len() + 2])
}

/// `Feb 17 12:31:04 host prog[444]: text` → `text`.
fn strip_journald(line: &str) -> Option<&str> {
    let (month, rest) = line.split_once(' ')?;
    if month.len() != 3 || !month.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let (day, rest) = rest.trim_start().split_once(' ')?;
    if day.is_empty() || day.len() > 2 || !day.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (time, rest) = rest.split_once(' ')?;
    let t = time.as_bytes();
    if t.len() < 8 || t[2] != b':' || t[5] != b':' {
        return None;
    }
    let (_host, rest) = rest.split_once(' ')?;
    let (ident, text) = rest.split_once(": ")?;
    (!ident.is_empty() && !ident.contains(' ')).then_some(text)
}

/// Markdown and mail quotes: `> text`.
fn strip_quotes(mut line: &str) -> &str {
    while let Some(rest) = line
        .strip_prefix("> ")
        .or_else(|| line.strip_prefix('>').filter(|r| r.is_empty()))
    {
        line = rest.trim_start();
    }
    line
}

/// A `libbpf:` line, without the prefix (and without `prog 'x': `).
fn libbpf(rest: &str) -> Wrapped<'_> {
    let rest = match rest
        .strip_prefix("prog '")
        .and_then(|r| r.split_once("': "))
    {
        Some((_, text)) => text,
        None => rest,
    };
    if rest.starts_with("-- BEGIN") {
        Wrapped::Start("")
    } else if rest.is_empty() {
        // Old libbpf prints `libbpf: ` alone right after its BEGIN marker.
        Wrapped::Skip
    } else {
        Wrapped::End
    }
}

/// The text after a marker that introduces a log, if `line` has one.
fn log_start(line: &str) -> Option<&str> {
    const WHOLE: &[&str] = &[
        "-- BEGIN PROG LOAD LOG --",
        "-- BEGIN DUMP LOG ---",
        "Verifier analysis:",
        "Error log:",
        "bpf: Failed to load program: ",
        "bpf: Permission denied",
        "bpf: Invalid argument",
        "bpf: Argument list too long",
    ];
    if WHOLE.iter().any(|m| line.starts_with(m)) {
        return Some("");
    }
    // aya: `… the BPF_PROG_LOAD syscall failed. Verifier output: 0: R1=…`,
    // veristat: `PROCESSING …, VERDICT: failure, VERIFIER LOG:`.
    let lower = line.to_ascii_lowercase();
    for marker in ["verifier output:", "verifier log:"] {
        if let Some(at) = lower.find(marker) {
            return line.get(at + marker.len()..);
        }
    }
    // cilium/ebpf's `%+v`: `…: load program: permission denied:`, then
    // the log on tab-indented lines.
    (lower.contains("load program: ") && line.ends_with(':')).then_some("")
}

/// The poster's elisions.
fn is_gap(line: &str) -> bool {
    matches!(
        line.trim(),
        "..." | "[...]" | "…" | "[…]" | "(...)" | "<snip>" | "[snip]" | "...."
    )
}

/// Loaders' and runtimes' lines that follow a log.
fn is_trailer(line: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "-- END",
        "Traceback (most recent call last)",
        "File \"",
        "Exception: ",
        "HINT: ",
        "Error fetching program/map!",
        "Error: ",
        "ERROR: ",
        "ERR: ",
        "Caused by:",
        "thread '",
        "panic: ",
        "goroutine ",
        "libscap: ",
        "libxdp: ",
        "bpftool: ",
        "| at ",
        "Couldn't ",
        "failed to load ",
        "Failed to load ",
    ];
    if PREFIXES.iter().any(|p| line.starts_with(p)) {
        return true;
    }
    // A timestamp: `2026-05-21 05:55:04.924820  ERROR …`, `2023/01/01 …`,
    // or glog's `E0510 12:00:00.000000 …`.
    let b = line.as_bytes();
    let dated = b.len() > 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && matches!(b[4], b'-' | b'/')
        && b[5..7].iter().all(u8::is_ascii_digit);
    let glog = b.len() > 6
        && matches!(b[0], b'E' | b'W' | b'I' | b'F')
        && b[1..5].iter().all(u8::is_ascii_digit)
        && b[5] == b' ';
    dated || glog
}

/// A shell prompt with its command: `$ sudo …`, `# ./prog`,
/// `[root@host dir]# …`, `host:/path # …`, `~ # …`.
fn is_prompt(line: &str) -> bool {
    if line.starts_with("$ ") || line.starts_with("# ") {
        return true;
    }
    let Some(at) = line.find(['#', '$']) else {
        return false;
    };
    let (head, tail) = line.split_at(at);
    let head = head.trim_end();
    let bracketed = head.starts_with('[') && head.ends_with(']');
    let bare = !head.is_empty()
        && !head.contains(' ')
        && (head.starts_with('~') || head.contains(":/") || head.ends_with(":~"));
    tail[1..].starts_with(' ') && (bracketed || bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unwrap(lines: &str) -> Vec<String> {
        let mut u = Unwrapper::default();
        lines
            .lines()
            .map(|l| match u.unwrap(l) {
                Wrapped::Log(t) => t.to_owned(),
                Wrapped::Start(t) => format!("<start>{t}"),
                Wrapped::End => "<end>".to_owned(),
                Wrapped::Skip => "<skip>".to_owned(),
            })
            .collect()
    }

    #[test]
    fn prefixes_come_off() {
        assert_eq!(
            unwrap(
                "Feb 17 12:31:04 host prog[444]: 0: (b7) r0 = 0\n\
                 Apr 01 10:41:53 localhost.localdomain sysmon[10491]:  R0_w=inv(id=0)\n\
                 \t1: (95) exit\n\
                 > > 2: (95) exit\n\
                 ```\n\
                 ...\n"
            ),
            [
                "0: (b7) r0 = 0",
                "R0_w=inv(id=0)",
                "1: (95) exit",
                "2: (95) exit",
                "<skip>",
                "<skip>"
            ]
        );
    }

    #[test]
    fn ctest_prefixes_are_learned() {
        assert_eq!(
            unwrap("5: Test command: /bin/t\n5: 0: (b7) r0 = 0\n5: R0 !read_ok\n6: other\n"),
            [
                "Test command: /bin/t",
                "0: (b7) r0 = 0",
                "R0 !read_ok",
                "6: other"
            ]
        );
        // A log of its own is left alone.
        assert_eq!(
            unwrap("0: (b7) r0 = 0\n1: R0=0\n"),
            ["0: (b7) r0 = 0", "1: R0=0"]
        );
    }

    #[test]
    fn loaders_markers() {
        assert_eq!(
            unwrap(
                "libbpf: prog 'x': -- BEGIN PROG LOAD LOG --\n\
                 libbpf: \n\
                 libbpf: prog 'x': failed to load: -13\n\
                 Error: the BPF_PROG_LOAD syscall failed. Verifier output: 0: R1=ctx() R10=fp0\n\
                 PROCESSING x.bpf.o/prog, DURATION US: 12, VERDICT: failure, VERIFIER LOG:\n\
                 couldn't init manager xxx verifier error:load program: permission denied:\n\
                 bpf: Failed to load program: Permission denied\n\
                 Verifier analysis:\n"
            ),
            [
                "<start>",
                "<skip>",
                "<end>",
                "<start>0: R1=ctx() R10=fp0",
                "<start>",
                "<start>",
                "<start>",
                "<start>"
            ]
        );
    }

    #[test]
    fn trailers_and_prompts() {
        for line in [
            "Traceback (most recent call last):",
            "HINT: The invalid mem access 'inv' error can happen if …",
            "2026-05-21 05:55:04.924820\tERROR\tFailed",
            "E0510 12:00:00.000000 1 main.go:1] failed to start",
            "$ sudo ./sockmap.py",
            "# ./tcpv4connect",
            "[root@fedora y]# uname -a",
            "raven:/data/local/tmp # ./myringbuffer",
            "~ # biosnoop",
            "Caused by:",
        ] {
            assert_eq!(unwrap(line), ["<end>"], "{line}");
        }
        for line in [
            "R1 invalid mem access 'inv'",
            "invalid access to packet, off=12 size=1, R2(id=0,off=12,r=12)",
            "combined stack size of 2 calls is 768. Too large",
            "; if (x # y) @ a.c:1",
        ] {
            assert_eq!(unwrap(line), [line], "{line}");
        }
    }
}
