//! Python's `html.unescape` (Lib/html/__init__.py, Python 3.11):
//!
//! ```text
//! _charref = re.compile(r'&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)')
//! ```
//!
//! Numeric references go through `_invalid_charrefs` (e.g. `&#150;` is an en dash), surrogates
//! and values above U+10FFFF become U+FFFD, and `_invalid_codepoints` are deleted. Named
//! references are looked up in `html.entities.html5` (which holds the legacy names without
//! `;` too); a name that is not known whole is matched by its longest known prefix of at
//! least two characters (`&ampxyz` -> `&xyz`, `&notit;` -> `¬it;`).

use std::borrow::Cow;

use super::tables::{HTML5, INVALID_CHARREFS, INVALID_CODEPOINTS};

pub(crate) fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut copied = 0; // bytes of `s` already in `out`
    let mut search = 0;
    while let Some(off) = s[search..].find('&') {
        let amp = search + off;
        let body = &s[amp + 1..];
        match charref(body) {
            Some((len, replacement)) => {
                out.push_str(&s[copied..amp]);
                out.push_str(&replacement);
                copied = amp + 1 + len;
                search = copied;
            }
            None => search = amp + 1,
        }
    }
    out.push_str(&s[copied..]);
    Cow::Owned(out)
}

/// Match `_charref` (without the `&`) at the start of `body`: the byte length of the matched
/// group and its replacement.
fn charref(body: &str) -> Option<(usize, String)> {
    let b = body.as_bytes();
    if b.first() == Some(&b'#') {
        // '#[0-9]+;?' then '#[xX][0-9a-fA-F]+;?'
        let (start, radix) = match b.get(1) {
            Some(c) if c.is_ascii_digit() => (1, 10),
            Some(b'x') | Some(b'X') if b.get(2).is_some_and(|c| c.is_ascii_hexdigit()) => (2, 16),
            _ => return None,
        };
        let digits = b[start..].iter().take_while(|c| if radix == 10 { c.is_ascii_digit() } else { c.is_ascii_hexdigit() }).count();
        let mut len = start + digits;
        if b.get(len) == Some(&b';') {
            len += 1;
        }
        let num = parse_saturating(&body[start..start + digits], radix);
        return Some((len, numeric(num)));
    }
    // '[^\t\n\f <&#;]{1,32};?' -- 32 code points
    let mut end = 0;
    for (n, (i, c)) in body.char_indices().enumerate() {
        if n == 32 || matches!(c, '\t' | '\n' | '\u{c}' | ' ' | '<' | '&' | '#' | ';') {
            break;
        }
        end = i + c.len_utf8();
    }
    if end == 0 {
        return None;
    }
    let len = if b.get(end) == Some(&b';') { end + 1 } else { end };
    let name = &body[..len];
    if let Some(v) = html5(name) {
        return Some((len, v.to_string()));
    }
    // longest prefix of x code points, x = len(name)-1 down to 2
    let bounds: Vec<usize> = name.char_indices().map(|(i, _)| i).skip(2).collect();
    for &cut in bounds.iter().rev() {
        if let Some(v) = html5(&name[..cut]) {
            return Some((len, format!("{v}{}", &name[cut..])));
        }
    }
    Some((len, format!("&{name}")))
}

fn html5(name: &str) -> Option<&'static str> {
    HTML5.binary_search_by(|(k, _)| k.as_bytes().cmp(name.as_bytes())).ok().map(|i| HTML5[i].1)
}

/// Value of a run of digits; anything above U+10FFFF behaves the same, so saturate.
fn parse_saturating(digits: &str, radix: u32) -> u64 {
    let mut v: u64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(radix).unwrap_or(0) as u64;
        v = v.saturating_mul(radix as u64).saturating_add(d);
        if v > 0x10_FFFF {
            return u64::MAX;
        }
    }
    v
}

fn numeric(num: u64) -> String {
    if let Ok(i) = INVALID_CHARREFS.binary_search_by(|&(k, _)| (k as u64).cmp(&num)) {
        return INVALID_CHARREFS[i].1.to_string();
    }
    if (0xD800..=0xDFFF).contains(&num) || num > 0x10_FFFF {
        return "\u{FFFD}".to_string();
    }
    let Some(c) = char::from_u32(num as u32) else {
        return "\u{FFFD}".to_string();
    };
    if super::in_ranges(INVALID_CODEPOINTS, c) {
        return String::new();
    }
    c.to_string()
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn like_python() {
        let cases = [
            ("&amp;amp;", "&amp;"),
            ("&lt;b&gt;", "<b>"),
            ("&ampxyz", "&xyz"),
            ("&notit;", "¬it;"),
            ("&notin;", "∉"),
            ("&#65;&#x42;&#X43", "ABC"),
            ("&#150;", "\u{2013}"),
            ("&#0;", "\u{FFFD}"),
            ("&#xD800;", "\u{FFFD}"),
            ("&#99999999999999999999;", "\u{FFFD}"),
            ("&#1;x", "x"),
            ("&#13;", "\r"),
            ("&#x;", "&#x;"),
            ("& amp;", "& amp;"),
            ("&unknown;", "&unknown;"),
            ("&a", "&a"),
            ("a&&b", "a&&b"),
        ];
        for (input, want) in cases {
            assert_eq!(unescape(input), want, "{input:?}");
        }
    }
}
