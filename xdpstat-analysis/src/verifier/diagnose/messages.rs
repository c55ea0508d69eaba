//! The verifier's error message: the lines after the last instruction,
//! which the rules look into.

use crate::verifier::helpers::helper_name;

/// The lines of the error, joined once.
#[derive(Clone, Debug, Default)]
pub struct Messages {
    first: String,
    all: String,
}

impl Messages {
    /// The error lines as the log parser kept them.
    pub fn new(lines: &[String]) -> Self {
        Self {
            first: lines.first().cloned().unwrap_or_default(),
            all: lines.join("\n"),
        }
    }

    /// The first line: the verifier's message proper.
    pub fn first(&self) -> &str {
        &self.first
    }

    /// Whether some line contains `text`.
    pub fn has(&self, text: &str) -> bool {
        self.all.contains(text)
    }

    /// Whether some line contains one of `texts`.
    pub fn any(&self, texts: &[&str]) -> bool {
        texts.iter().any(|t| self.has(t))
    }

    /// The number after `key`, where `key` starts a word (so `size=` does
    /// not match inside `value_size=`).
    pub fn number(&self, key: &str) -> Option<i64> {
        let text = &self.all;
        let start = text
            .match_indices(key)
            .find(|(i, _)| {
                *i == 0 || !text[..*i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            })?
            .0;
        let rest = &text[start + key.len()..];
        let s: String = rest
            .chars()
            .skip_while(|c| *c == ' ')
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        s.parse().ok()
    }

    /// The first `Rn` the error names.
    pub fn named_reg(&self) -> Option<u8> {
        self.all
            .split(|c: char| !c.is_ascii_alphanumeric())
            .find_map(|w| {
                let n = w.strip_prefix('R')?;
                let n: u8 = n.parse().ok()?;
                (n <= 10).then_some(n)
            })
    }

    /// The first word that names a helper (`bpf_…`, without its `#id`),
    /// else the helper whose number a word gives (`unknown#182`).
    pub fn helper(&self) -> Option<String> {
        let words = || self.all.split_whitespace();
        words()
            .find(|w| w.starts_with("bpf_"))
            .map(|w| w.split('#').next().unwrap_or(w).to_owned())
            .or_else(|| {
                words().find_map(|w| {
                    let (_, id) = w.rsplit_once('#')?;
                    let id: i64 = id.trim_end_matches([',', '.', ')']).parse().ok()?;
                    helper_name(id).map(str::to_owned)
                })
            })
    }

    /// The helper number a message gives (`unknown#182`, `func#14`).
    pub fn helper_id(&self) -> Option<i64> {
        self.all.split_whitespace().find_map(|w| {
            let (_, id) = w.rsplit_once('#')?;
            id.trim_end_matches([',', '.', ')']).parse().ok()
        })
    }
}
