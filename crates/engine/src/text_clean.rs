//! open_clip's text clean-up before tokenizing (`tokenizer.py`: `basic_clean`,
//! `whitespace_clean`, then `lower()`), reproduced exactly:
//!
//!   ftfy.fix_text(text) -> html.unescape(html.unescape(.)) -> strip
//!   -> " ".join(text.split()) -> strip -> lower()
//!
//! - [`fix_text`] is a port of ftfy 6.3.1's `fix_text` with its default configuration
//!   (submodule `ftfy`; ftfy is Apache-2.0, (c) Robyn Speer).
//! - [`html_unescape`] is Python's `html.unescape` (submodule `html`).
//! - Whitespace is Python's `str.isspace()`; `lower()` and the NFC step of ftfy behave like
//!   Python 3.11 (Unicode 14.0): code points unassigned in Unicode 14 are left alone by both,
//!   as Python does, instead of following the newer tables of the Rust standard library and
//!   of `unicode-normalization`.
//!
//! The data tables (`tables.rs`) are generated from the reference environment by
//! `tests/reference/make_tokenizer_tables.py`.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

mod ftfy;
mod html;
#[rustfmt::skip]
pub(crate) mod tables;

/// open_clip's `whitespace_clean(basic_clean(text)).lower()`.
pub fn clean(text: &str) -> String {
    let fixed = fix_text(text);
    let once = html_unescape(&fixed);
    let twice = html_unescape(&once);
    let collapsed = py_split_join(&twice);
    py_lower(&collapsed)
}

/// ftfy 6.3.1 `fix_text(text)` with the default `TextFixerConfig`.
pub fn fix_text(text: &str) -> String {
    ftfy::fix_text(text)
}

/// Python's `html.unescape` (html5 named references, with and without `;`, longest-prefix
/// matching of the legacy names, numeric references with Python's replacements).
pub fn html_unescape(s: &str) -> Cow<'_, str> {
    html::unescape(s)
}

/// Python's `str.isspace()` (Unicode 14; includes the separators U+001C..U+001F).
pub fn py_is_space(c: char) -> bool {
    in_ranges(tables::PY_SPACE, c)
}

/// `" ".join(s.split())` (which also does what `strip()` would).
pub fn py_split_join(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(py_is_space).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Python 3.11's `str.lower()`: full lower-case mapping with the Final_Sigma rule. Code points
/// unassigned in Unicode 14 are kept as they are (Python's tables do not know them); they are
/// neither cased nor case-ignorable there, so they end a Final_Sigma context, which is what
/// lower-casing the runs between them separately gives.
pub fn py_lower(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(s.len());
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if unassigned_14(c) {
            out.push_str(&s[start..i].to_lowercase());
            out.push(c);
            start = i + c.len_utf8();
        }
    }
    out.push_str(&s[start..].to_lowercase());
    out
}

/// Python 3.11's `unicodedata.normalize("NFC", s)`. Code points unassigned in Unicode 14 are
/// starters that compose with nothing there, so the text between them is normalised piece by
/// piece and they are kept as they are.
pub(crate) fn py_nfc(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if unassigned_14(c) {
            out.extend(s[start..i].nfc());
            out.push(c);
            start = i + c.len_utf8();
        }
    }
    out.extend(s[start..].nfc());
    if out == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

fn unassigned_14(c: char) -> bool {
    (c as u32) >= 0x0378 && in_ranges(tables::UNASSIGNED_14, c)
}

/// Whether `c` lies in one of the sorted, disjoint, inclusive ranges.
pub(crate) fn in_ranges(ranges: &[(u32, u32)], c: char) -> bool {
    let cp = c as u32;
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace() {
        for c in ['\u{1c}', '\u{1f}', '\u{85}', '\u{a0}', '\u{3000}', '\t', '\u{b}'] {
            assert!(py_is_space(c), "{c:?}");
        }
        for c in ['\u{200b}', '\u{180e}', 'a', '\u{feff}'] {
            assert!(!py_is_space(c), "{c:?}");
        }
        assert_eq!(py_split_join("\u{1c} a\u{a0}\u{a0}b \n"), "a b");
    }

    #[test]
    fn lower_like_python() {
        assert_eq!(py_lower("ΑΣ ΣΑ"), "ας σα");
        assert_eq!(py_lower("İ"), "i\u{307}");
        assert_eq!(py_lower("ABC"), "abc");
    }

    #[test]
    fn clean_examples() {
        assert_eq!(clean("  A  Photo\tof &amp;amp; a CAT  "), "a photo of & a cat");
        assert_eq!(clean("cafÃ©"), "café");
        assert_eq!(clean("&lt;b&gt;"), "<b>");
        assert_eq!(clean("ﬂuﬃeﬆ"), "fluffiest");
    }
}
