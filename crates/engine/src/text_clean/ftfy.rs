//! A port of ftfy 6.3.1's `fix_text` with the default `TextFixerConfig` (the configuration
//! open_clip uses): `ftfy/__init__.py` (`fix_text`, `fix_and_explain`, `fix_encoding`,
//! `_fix_encoding_one_step_and_explain`), `ftfy/fixes.py`, `ftfy/chardata.py`,
//! `ftfy/badness.py` and the `utf-8-variants` / `sloppy-*` codecs of `ftfy/bad_codecs/`.
//!
//! ftfy is Copyright (C) Robyn Speer / Luminoso Technologies, licensed under the Apache
//! License, Version 2.0; this file follows its structure and comments function by function.
//! Its tables and regular expressions are not retyped: `tables.rs` is generated from the
//! installed ftfy by `tests/reference/make_tokenizer_tables.py`.
//!
//! Not ported, because it cannot happen to a Rust `&str`: `fix_surrogates` (UTF-16 surrogate
//! code points cannot be held in a `str`; nothing in this pipeline produces one either:
//! numeric HTML references to surrogates become U+FFFD as in Python, and the
//! `utf-8-variants` decoder combines CESU-8 pairs into one character).

use std::borrow::Cow;

use once_cell::sync::OnceCell;
use regex::bytes::Regex as BytesRegex;
use regex::Regex;

use super::html;
use super::in_ranges;
use super::tables::{
    ALTERED_UTF8_RE, BADNESS_RE, CHARMAPS, CONTROL_CHARS, FTFY_UPPER_ENTITIES, HTML5, LIGATURES, LOSSY_UTF8_RE, PY_DECIMAL,
    UTF8_CONTINUATION, UTF8_CONTINUATION_STRICT, UTF8_FIRST_OF_2, UTF8_FIRST_OF_3, UTF8_FIRST_OF_4, WIDTH_MAP, WINDOWS_1252,
};

/// `TextFixerConfig.max_decode_length`, in code points.
const MAX_DECODE_LENGTH: usize = 1_000_000;

struct Regexes {
    badness: Option<Regex>,
    altered_utf8: Option<BytesRegex>,
    lossy_utf8: Option<BytesRegex>,
}

fn regexes() -> &'static Regexes {
    static RE: OnceCell<Regexes> = OnceCell::new();
    RE.get_or_init(|| Regexes {
        badness: regex::RegexBuilder::new(BADNESS_RE).size_limit(64 << 20).build().ok(),
        altered_utf8: BytesRegex::new(ALTERED_UTF8_RE).ok(),
        lossy_utf8: BytesRegex::new(LOSSY_UTF8_RE).ok(),
    })
}

/// Whether the generated patterns compile (checked by a unit test; if one did not, the
/// corresponding fix would be skipped rather than panic).
#[cfg(test)]
pub(crate) fn patterns_ok() -> bool {
    let r = regexes();
    r.badness.is_some() && r.altered_utf8.is_some() && r.lossy_utf8.is_some()
}

// ---------------------------------------------------------------------------------------------
// ftfy/__init__.py
// ---------------------------------------------------------------------------------------------

/// `fix_text(text)`: fix the text in segments that end after each "\n" (at most
/// `max_decode_length` code points each). `unescape_html="auto"`: once a segment contains
/// '<', HTML unescaping stays off for it and every later segment.
pub(crate) fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape_html = true;
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        if let Some((i, _)) = rest[..end].char_indices().nth(MAX_DECODE_LENGTH) {
            end = i;
        }
        let segment = &rest[..end];
        if unescape_html && segment.contains('<') {
            unescape_html = false;
        }
        out.push_str(&fix_and_explain(segment, unescape_html));
        rest = &rest[end..];
    }
    out
}

/// `fix_and_explain(text, config)` without the explanation: apply every fixer until the
/// text stops changing.
fn fix_and_explain(segment: &str, unescape: bool) -> String {
    let unescape = unescape && !segment.contains('<');
    let mut text = segment.to_string();
    loop {
        let orig = text.clone();
        if unescape {
            apply(&mut text, unescape_html);
        }
        text = fix_encoding(&text);
        apply(&mut text, fix_c1_controls);
        apply(&mut text, fix_latin_ligatures);
        apply(&mut text, fix_character_width);
        apply(&mut text, uncurl_quotes);
        apply(&mut text, fix_line_breaks);
        // fix_surrogates: nothing to do on a Rust string (see the module comment)
        apply(&mut text, remove_terminal_escapes);
        apply(&mut text, remove_control_chars);
        apply(&mut text, super::py_nfc);
        if text == orig {
            return text;
        }
    }
}

fn apply(text: &mut String, fixer: fn(&str) -> Cow<'_, str>) {
    if let Cow::Owned(fixed) = fixer(text) {
        *text = fixed;
    }
}

/// `fix_encoding(text)`: repeat one step of mojibake repair until nothing changes.
pub(crate) fn fix_encoding(text: &str) -> String {
    let mut text = text.to_string();
    loop {
        match fix_encoding_one_step(&text) {
            Some(fixed) if fixed != text => text = fixed,
            _ => return text,
        }
    }
}

/// `_fix_encoding_one_step_and_explain`; None when the text is returned unchanged.
fn fix_encoding_one_step(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    // The first plan is to return ASCII text unchanged, as well as text that doesn't look
    // like it contains mojibake.
    if text.is_ascii() || !is_bad(text) {
        return None;
    }
    let mut possible_latin1 = false;
    // Suppose the text was supposed to be UTF-8, but it was decoded using a single-byte
    // encoding instead.
    for (i, cm) in CHARMAPS.iter().enumerate() {
        let Some(mut encoded) = encode(i, text) else { continue };
        if cm.name == "latin-1" {
            possible_latin1 = true;
        }
        // Check for sequences that would be UTF-8, except they have b' ' where b'\xa0'
        // would belong (not in macroman, where it would match an en dash and a space).
        if !cm.macroman {
            if let Some(re) = &regexes().altered_utf8 {
                if re.is_match(&encoded) {
                    encoded = restore_byte_a0(&encoded);
                }
            }
        }
        // Replace sequences where information has been lost
        if cm.sloppy {
            encoded = replace_lossy_sequences(&encoded);
        }
        let decoded = if encoded.contains(&0xED) || encoded.contains(&0xC0) {
            decode_utf8_variants(&encoded)
        } else {
            String::from_utf8(encoded).ok()
        };
        if let Some(fixed) = decoded {
            return Some(fixed);
        }
    }

    // Look for a-hat-euro sequences that remain, and fix them in isolation.
    if utf8_detector_find(&text.chars().collect::<Vec<_>>(), 0).is_some() {
        let fixed = decode_inconsistent_utf8(text);
        if fixed != text {
            return Some(fixed);
        }
    }

    // Latin-1 that was meant to be Windows-1252 ("windows-1252" itself is never among the
    // possible encodings -- ftfy's list has "sloppy-windows-1252" -- so the text is always
    // re-decoded; bytes that windows-1252 leaves undefined make that fail).
    if possible_latin1 {
        let mut fixed = String::with_capacity(text.len());
        let mut ok = true;
        for c in text.chars() {
            let cp = c as u32;
            if (0x80..0x100).contains(&cp) {
                match WINDOWS_1252[(cp - 0x80) as usize] {
                    Some(d) => fixed.push(d),
                    None => {
                        ok = false;
                        break;
                    }
                }
            } else {
                fixed.push(c);
            }
        }
        if ok && fixed != text {
            return Some(fixed);
        }
    }

    // Fix individual characters of Latin-1 with a less satisfying explanation
    if text.chars().any(is_c1) {
        return Some(fix_c1_controls(text).into_owned());
    }
    None
}

// ---------------------------------------------------------------------------------------------
// ftfy/badness.py
// ---------------------------------------------------------------------------------------------

/// `is_bad(text)`: whether BADNESS_RE matches anywhere.
fn is_bad(text: &str) -> bool {
    regexes().badness.as_ref().is_some_and(|re| re.is_match(text))
}

// ---------------------------------------------------------------------------------------------
// codecs: charmap encoding, utf-8-variants decoding
// ---------------------------------------------------------------------------------------------

/// For each of `CHARMAPS`: (character, byte) for bytes 0x80..=0xFF, sorted by character.
fn charmap_encoders() -> &'static [Vec<(char, u8)>] {
    static ENC: OnceCell<Vec<Vec<(char, u8)>>> = OnceCell::new();
    ENC.get_or_init(|| {
        CHARMAPS
            .iter()
            .map(|cm| {
                let mut v: Vec<(char, u8)> = cm.high.iter().enumerate().map(|(i, &c)| (c, 0x80 + i as u8)).collect();
                v.sort_unstable();
                v
            })
            .collect()
    })
}

/// `text.encode(encoding)` for `CHARMAPS[index]`, or None where
/// `chardata.possible_encoding(text, encoding)` is false.
fn encode(index: usize, text: &str) -> Option<Vec<u8>> {
    let cm = &CHARMAPS[index];
    let high = charmap_encoders().get(index)?;
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let cp = c as u32;
        if cp < 0x80 && cp != 0x1A {
            out.push(cp as u8);
        } else if let Ok(i) = high.binary_search_by(|&(h, _)| h.cmp(&c)) {
            out.push(high[i].1);
        } else if c == cm.sub {
            out.push(0x1A);
        } else {
            return None;
        }
    }
    Some(out)
}

/// ftfy's `utf-8-variants` codec (strict): UTF-8, plus CESU-8 surrogate pairs
/// (`ED A0-AF 80-BF ED B0-BF 80-BF`) and Java's `C0 80` for U+0000. None where Python raises
/// UnicodeDecodeError. Python's `$` (end, or before a final "\n") is kept in the patterns.
fn decode_utf8_variants(input: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(input.len());
    let mut pos = 0;
    while pos < input.len() {
        let rest = &input[pos..];
        let Some(cut) = (0..rest.len()).find(|&p| special_bytes_at(rest, p)) else {
            out.push_str(std::str::from_utf8(rest).ok()?);
            break;
        };
        if cut > 0 {
            out.push_str(std::str::from_utf8(&rest[..cut]).ok()?);
            pos += cut;
            continue;
        }
        if rest[0] == 0xC0 {
            if rest.len() > 1 {
                out.push('\0');
                pos += 2;
                continue;
            }
            return None;
        }
        // _buffer_decode_surrogates
        if rest.len() < 6 {
            out.push_str(std::str::from_utf8(rest).ok()?);
            break;
        }
        if !cesu8_at_start(rest) {
            return None; // UTF-8 rejects ED A0..BF
        }
        let cp = ((rest[1] as u32 & 0x0F) << 16)
            + ((rest[2] as u32 & 0x3F) << 10)
            + ((rest[4] as u32 & 0x0F) << 6)
            + (rest[5] as u32 & 0x3F)
            + 0x10000;
        out.push(char::from_u32(cp)?);
        pos += 6;
    }
    Some(out)
}

/// Python's `$` without MULTILINE: at the end, or before a "\n" that ends the input.
fn at_end(b: &[u8], pos: usize) -> bool {
    pos == b.len() || (pos + 1 == b.len() && b[pos] == b'\n')
}

/// `([lo-hi]|$)` at `pos`: the position after it.
fn class_or_end(b: &[u8], pos: usize, lo: u8, hi: u8) -> Option<usize> {
    if pos < b.len() && (lo..=hi).contains(&b[pos]) {
        Some(pos + 1)
    } else if at_end(b, pos) {
        Some(pos)
    } else {
        None
    }
}

/// Whether SPECIAL_BYTES_RE (NULL_EXPR | CESU8_EXPR | SURROGATE_EXPR) matches at `p`.
/// A CESU-8 match is always a surrogate match too, so two checks suffice.
fn special_bytes_at(b: &[u8], p: usize) -> bool {
    match b[p] {
        0xC0 => (p + 1 < b.len() && b[p + 1] == 0x80) || at_end(b, p + 1),
        0xED => class_or_end(b, p + 1, 0xA0, 0xBF).and_then(|q| class_or_end(b, q, 0x80, 0xBF)).is_some(),
        _ => false,
    }
}

/// CESU8_RE.match(b).
fn cesu8_at_start(b: &[u8]) -> bool {
    if b.first() != Some(&0xED) {
        return false;
    }
    let Some(q) = class_or_end(b, 1, 0xA0, 0xAF) else { return false };
    let Some(q) = class_or_end(b, q, 0x80, 0xBF) else { return false };
    let q = if q < b.len() && b[q] == 0xED {
        q + 1
    } else if at_end(b, q) {
        q
    } else {
        return false;
    };
    let Some(q) = class_or_end(b, q, 0xB0, 0xBF) else { return false };
    class_or_end(b, q, 0x80, 0xBF).is_some()
}

// ---------------------------------------------------------------------------------------------
// ftfy/fixes.py
// ---------------------------------------------------------------------------------------------

/// `unescape_html`: HTML_ENTITY_RE = `&#?[0-9A-Za-z]{1,24};`, replaced when it is an html5
/// name ending in ';', one of ftfy's upper-case names, or a numeric reference that
/// `html.unescape` decodes completely.
fn unescape_html(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'&' {
            i += 1;
            continue;
        }
        let start = if b.get(i + 1) == Some(&b'#') { i + 2 } else { i + 1 };
        let run = b[start..].iter().take_while(|c| c.is_ascii_alphanumeric()).count();
        let end = start + run; // index of the ';'
        if !(1..=24).contains(&run) || b.get(end) != Some(&b';') {
            i += 1;
            continue;
        }
        let entity = &text[i..=end];
        let replacement: Option<Cow<'_, str>> = if let Some(v) = lookup(HTML5, &entity[1..]) {
            Some(Cow::Borrowed(v))
        } else if let Some(v) = lookup(FTFY_UPPER_ENTITIES, entity) {
            Some(Cow::Borrowed(v))
        } else if entity.starts_with("&#") {
            let unescaped = html::unescape(entity);
            // If html.unescape only decoded part of the string, that's not what we want.
            (!unescaped.contains(';')).then_some(unescaped)
        } else {
            None
        };
        match replacement {
            Some(r) => {
                out.push_str(&text[copied..i]);
                out.push_str(&r);
                copied = end + 1;
                i = end + 1;
            }
            None => i += 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

fn lookup(table: &'static [(&'static str, &'static str)], key: &str) -> Option<&'static str> {
    table.binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes())).ok().map(|i| table[i].1)
}

/// `remove_terminal_escapes`: ANSI_RE = `\033\[((?:\d|;)*)([a-zA-Z])`, `\d` being any
/// Unicode decimal digit.
fn remove_terminal_escapes(text: &str) -> Cow<'_, str> {
    if !text.contains('\u{1b}') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(off) = text[search..].find('\u{1b}') {
        let esc = search + off;
        let mut chars = text[esc + 1..].char_indices();
        let mut matched_end = None;
        if let Some((_, '[')) = chars.next() {
            for (j, c) in chars {
                if c == ';' || in_ranges(PY_DECIMAL, c) {
                    continue;
                }
                if c.is_ascii_alphabetic() {
                    matched_end = Some(esc + 1 + j + 1);
                }
                break;
            }
        }
        match matched_end {
            Some(end) => {
                out.push_str(&text[copied..esc]);
                copied = end;
                search = end;
            }
            None => search = esc + 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// `uncurl_quotes`: [\u02bc\u2018-\u201b] -> "'", [\u201c-\u201f] -> '"'.
fn uncurl_quotes(text: &str) -> Cow<'_, str> {
    map_chars(text, |c| match c {
        '\u{02bc}' | '\u{2018}'..='\u{201b}' => Some("'"),
        '\u{201c}'..='\u{201f}' => Some("\""),
        _ => None,
    })
}

/// `fix_latin_ligatures`: `text.translate(LIGATURES)`.
fn fix_latin_ligatures(text: &str) -> Cow<'_, str> {
    map_chars(text, |c| translate(LIGATURES, c))
}

/// `fix_character_width`: `text.translate(WIDTH_MAP)`.
fn fix_character_width(text: &str) -> Cow<'_, str> {
    map_chars(text, |c| translate(WIDTH_MAP, c))
}

/// `fix_line_breaks`: CRLF, CR, U+2028, U+2029 and U+0085 -> "\n".
fn fix_line_breaks(text: &str) -> Cow<'_, str> {
    if !text.contains(['\r', '\u{2028}', '\u{2029}', '\u{85}']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push('\n'),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `remove_control_chars`: delete `CONTROL_CHARS`.
fn remove_control_chars(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| in_ranges(CONTROL_CHARS, c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().filter(|&c| !in_ranges(CONTROL_CHARS, c)).collect())
}

/// A_GRAVE_WORD_RE = b"\xc3 (?! |quele|quela|quilo|s )", replaced by b"\xc3\xa0 ".
fn a_grave_word(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + 4);
    let mut i = 0;
    while i < b.len() {
        if b[i] == 0xC3 && b.get(i + 1) == Some(&b' ') {
            let rest = &b[i + 2..];
            let excluded = [&b" "[..], b"quele", b"quela", b"quilo", b"s "].iter().any(|p| rest.starts_with(p));
            if !excluded {
                out.extend_from_slice(b"\xc3\xa0 ");
                i += 2;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// `restore_byte_a0(byts)`.
fn restore_byte_a0(b: &[u8]) -> Vec<u8> {
    let b = a_grave_word(b);
    match &regexes().altered_utf8 {
        Some(re) => re
            .replace_all(&b, |m: &regex::bytes::Captures<'_>| m[0].iter().map(|&x| if x == 0x20 { 0xA0 } else { x }).collect::<Vec<u8>>())
            .into_owned(),
        None => b,
    }
}

/// `replace_lossy_sequences(byts)`: LOSSY_UTF8_RE -> the UTF-8 of U+FFFD.
fn replace_lossy_sequences(b: &[u8]) -> Vec<u8> {
    match &regexes().lossy_utf8 {
        Some(re) => re.replace_all(b, &b"\xef\xbf\xbd"[..]).into_owned(),
        None => b.to_vec(),
    }
}

/// UTF8_DETECTOR_RE.search(chars, from start): the first match as a (start, end) range of
/// char indices.
///
/// ```text
/// (?<! [utf8_continuation_strict])
/// ( [utf8_first_of_2] [utf8_continuation]
/// | [utf8_first_of_3] [utf8_continuation]{2}
/// | [utf8_first_of_4] [utf8_continuation]{3} )+
/// ```
fn utf8_detector_find(chars: &[char], from: usize) -> Option<(usize, usize)> {
    let cont = |k: usize| chars.get(k).is_some_and(|&c| in_ranges(UTF8_CONTINUATION, c));
    let unit = |j: usize| -> Option<usize> {
        let c = *chars.get(j)?;
        if in_ranges(UTF8_FIRST_OF_2, c) && cont(j + 1) {
            return Some(j + 2);
        }
        if in_ranges(UTF8_FIRST_OF_3, c) && cont(j + 1) && cont(j + 2) {
            return Some(j + 3);
        }
        if in_ranges(UTF8_FIRST_OF_4, c) && cont(j + 1) && cont(j + 2) && cont(j + 3) {
            return Some(j + 4);
        }
        None
    };
    for i in from..chars.len() {
        if i > 0 && in_ranges(UTF8_CONTINUATION_STRICT, chars[i - 1]) {
            continue;
        }
        let mut j = i;
        while let Some(k) = unit(j) {
            j = k;
        }
        if j > i {
            return Some((i, j));
        }
    }
    None
}

/// `decode_inconsistent_utf8(text)`: fix each UTF8_DETECTOR_RE match that is shorter than
/// the text and looks bad, with `fix_encoding`.
fn decode_inconsistent_utf8(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    while let Some((s, e)) = utf8_detector_find(&chars, last) {
        out.extend(&chars[last..s]);
        let sub: String = chars[s..e].iter().collect();
        if e - s < chars.len() && is_bad(&sub) {
            out.push_str(&fix_encoding(&sub));
        } else {
            out.push_str(&sub);
        }
        last = e;
    }
    out.extend(&chars[last..]);
    out
}

fn is_c1(c: char) -> bool {
    ('\u{80}'..='\u{9f}').contains(&c)
}

/// `fix_c1_controls`: C1 controls as their sloppy-windows-1252 characters.
fn fix_c1_controls(text: &str) -> Cow<'_, str> {
    let sloppy_1252 = &CHARMAPS[1];
    if !text.chars().any(is_c1) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().map(|c| if is_c1(c) { sloppy_1252.high[(c as u32 - 0x80) as usize] } else { c }).collect())
}

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

fn translate(table: &'static [(char, &'static str)], c: char) -> Option<&'static str> {
    table.binary_search_by(|(k, _)| k.cmp(&c)).ok().map(|i| table[i].1)
}

fn map_chars(text: &str, f: impl Fn(char) -> Option<&'static str>) -> Cow<'_, str> {
    let Some(first) = text.char_indices().find(|&(_, c)| f(c).is_some()).map(|(i, _)| i) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        match f(c) {
            Some(s) => out.push_str(s),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_patterns_compile() {
        assert!(patterns_ok());
        assert_eq!(CHARMAPS[0].name, "latin-1");
        assert_eq!(CHARMAPS[1].name, "sloppy-windows-1252");
    }

    #[test]
    fn ftfy_docstring_examples() {
        let cases = [
            ("âœ” No problems", "✔ No problems"),
            ("&macr;\\_(ã\u{83}\u{84})_/&macr;", "¯\\_(ツ)_/¯"),
            ("Broken text&hellip; it&#x2019;s ﬂubberiﬁc!", "Broken text\u{2026} it's flubberific!"),
            ("ＬＯＵＤ　ＮＯＩＳＥＳ", "LOUD NOISES"),
            ("sÃ³", "só"),
            ("voilÃ le travail", "voilà le travail"),
            ("P&EACUTE;REZ", "PÉREZ"),
            ("BUNDESSTRA&SZLIG;E", "BUNDESSTRASSE"),
            ("&ntilde; &Ntilde; &NTILDE; &nTILDE;", "ñ Ñ Ñ &nTILDE;"),
            ("\u{1b}[36;44mI'm blue\u{1b}[0m", "I'm blue"),
            ("a\r\nb\rc\u{2028}d", "a\nb\nc\nd"),
            ("here comes a null! \u{c0}\u{80}", "here comes a null! "),
        ];
        for (input, want) in cases {
            assert_eq!(fix_text(input), want, "{input:?}");
        }
    }

    #[test]
    fn utf8_variants() {
        assert_eq!(decode_utf8_variants(b"a\xc0\x80b").as_deref(), Some("a\0b"));
        assert_eq!(decode_utf8_variants(b"\xed\xa0\xbd\xed\xb8\x8d").as_deref(), Some("\u{1F60D}"));
        assert_eq!(decode_utf8_variants(b"\xed\xa0\xbd"), None);
        assert_eq!(decode_utf8_variants(b"\xed\x95\x9c").as_deref(), Some("한"));
        assert_eq!(decode_utf8_variants(b"\xc0\n").as_deref(), Some("\0"));
    }
}
