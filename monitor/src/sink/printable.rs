//! Text output shows strings that processes control (comm, paths, context labels, host names,
//! summaries built from them). A newline in one would forge a line of output; an escape sequence
//! would rewrite the terminal; a bidirectional override would make a line read differently
//! from what it says. Each such character is shown as an escape (`\n`, `\u{1b}`).
use std::borrow::Cow;

/// `text` with control and invisible formatting characters escaped.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        || matches!(c,
            '\u{200b}'..='\u{200f}' // zero-width characters, left/right marks
            | '\u{202a}'..='\u{202e}' // bidirectional embeddings and overrides
            | '\u{2066}'..='\u{2069}' // bidirectional isolates
            | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_escaped_and_plain_text_is_not_copied() {
        assert!(matches!(printable("python3 task-1"), Cow::Borrowed(_)));
        assert_eq!(printable("x\nFINDING forged"), "x\\nFINDING forged");
        assert_eq!(printable("\u{1b}[2Jclear"), "\\u{1b}[2Jclear");
        assert_eq!(printable("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(
            printable("a\\nb"),
            "a\\\\nb",
            "a backslash cannot fake an escape"
        );
        assert_eq!(printable("ünïcode ok"), "ünïcode ok");
    }
}
