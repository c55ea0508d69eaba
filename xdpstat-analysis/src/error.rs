//! Errors on one line.

/// An error and its causes on one line, each cause once: a message that
/// already quotes its cause is not followed by it again.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        let part = e.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        current = e.source();
    }
    text
}

/// The text of an errno without Rust's ` (os error N)` suffix, e.g.
/// `Permission denied`.
pub fn strerror(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_are_not_repeated() {
        // EPERM.
        let e = Outer(std::io::Error::from_raw_os_error(1));
        assert_eq!(chain(&e), "outer: Operation not permitted (os error 1)");
        assert_eq!(strerror(1), "Operation not permitted");
    }
}
