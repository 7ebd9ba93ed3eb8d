//! Showing stored text to a person: what a report or a terminal line may print of names and
//! values that came from data.

use std::borrow::Cow;

/// `text` with every character escaped that would change how the surrounding output reads,
/// the rest unchanged.
///
/// Stored names and values may hold anything. Printed raw, a newline splits one row of a report
/// into two, an escape sequence drives the terminal, and a Unicode line separator or a
/// bidirectional override reorders what follows it on the line. These are escaped the way Rust
/// writes them in string literals (`\n`, `\t`, `\u{1b}`, `\u{2028}`, `\u{202e}`):
/// - control characters (Unicode category Cc);
/// - the line and paragraph separators U+2028 and U+2029;
/// - the bidirectional formatting characters: the marks U+200E, U+200F and U+061C, the
///   embeddings and overrides U+202A–U+202E, and the isolates U+2066–U+2069;
/// - the characters that print as nothing (Unicode's default-ignorable code points), so two
///   names that differ only by one of them do not look the same: the soft hyphen U+00AD,
///   U+034F, U+115F–U+1160, U+17B4–U+17B5, U+180E, the zero-width space U+200B, U+2060–U+206F,
///   U+3164, U+FEFF (a byte-order mark), U+FFA0, the tag characters U+E0000–U+E007F (which
///   can carry hidden text) with the reserved U+E0080–U+E0FFF and U+FFF0–U+FFF8, and the other
///   format characters that print as nothing: the interlinear annotation marks U+FFF9–U+FFFB, the Egyptian hieroglyph format controls
///   U+13430–U+1343F, the shorthand format controls U+1BCA0–U+1BCA3 and the musical symbol
///   format characters U+1D173–U+1D17A. The zero-width joiner and non-joiner (U+200C, U+200D) and the
///   variation selectors print as they are: emoji sequences and several scripts need them.
///
/// Every other character, including a backslash, prints as it is, so text without these
/// characters is returned borrowed and unchanged.
///
/// # Examples
/// ```
/// use store::text::visible;
/// assert_eq!(visible("plain über"), "plain über");
/// assert_eq!(visible("two\nlines"), "two\\nlines");
/// assert_eq!(visible("\u{1b}[31mred"), "\\u{1b}[31mred");
/// assert_eq!(visible("abc\u{202e}fed"), "abc\\u{202e}fed");
/// assert_eq!(visible("a\u{2028}b"), "a\\u{2028}b");
/// assert_eq!(visible("a\u{200b}b"), "a\\u{200b}b");
/// ```
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else if needs_escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{00ad}'
                | '\u{034f}'
                | '\u{115f}'..='\u{1160}'
                | '\u{17b4}'..='\u{17b5}'
                | '\u{180e}'
                | '\u{200b}'
                | '\u{2060}'..='\u{206f}'
                | '\u{3164}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{e0000}'..='\u{e0fff}'
                | '\u{fff0}'..='\u{fffb}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
        )
}

#[cfg(test)]
mod tests {
    use super::visible;
    use std::borrow::Cow;

    #[test]
    fn text_without_special_characters_is_borrowed() {
        assert!(matches!(visible("a\\b \"q\" émoji 🦀"), Cow::Borrowed(_)));
    }

    #[test]
    fn every_listed_character_is_escaped_and_its_neighbours_kept() {
        for c in [
            '\u{7f}',
            '\u{85}',
            '\u{2029}',
            '\u{061c}',
            '\u{200e}',
            '\u{200f}',
            '\u{202a}',
            '\u{2066}',
            '\u{2069}',
            '\u{200b}',
            '\u{2060}',
            '\u{2064}',
            '\u{feff}',
            '\u{ad}',
            '\u{34f}',
            '\u{115f}',
            '\u{17b4}',
            '\u{180e}',
            '\u{206a}',
            '\u{206f}',
            '\u{3164}',
            '\u{ffa0}',
            '\u{e0001}',
            '\u{e0041}',
            '\u{fff0}',
            '\u{e0fff}',
            '\u{fff9}',
            '\u{fffb}',
            '\u{13430}',
            '\u{1343f}',
            '\u{1bca0}',
            '\u{1bca3}',
            '\u{1d173}',
            '\u{1d17a}',
        ] {
            let shown = visible(&format!("x{c}y")).into_owned();
            assert!(!shown.contains(c), "{c:?} was printed raw: {shown:?}");
            assert!(shown.starts_with('x') && shown.ends_with('y'), "{shown:?}");
        }
        assert_eq!(visible("\r\t"), "\\r\\t");
    }

    #[test]
    fn joiners_that_scripts_and_emoji_need_print_as_they_are() {
        for text in ["👩\u{200d}💻", "می\u{200c}خواهم", "\u{2764}\u{fe0f}"] {
            assert!(matches!(visible(text), Cow::Borrowed(_)), "{text:?}");
        }
    }
}
