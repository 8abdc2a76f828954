#!/usr/bin/env python3
"""Generate crates/engine/src/text_clean/tables.rs: the data tables of the Rust port of
open_clip's text clean-up (ftfy 6.3.1 `fix_text`, Python's `html.unescape`, `str.isspace`)
and of open_clip's split regex (the `regex` module's character classes under IGNORECASE).

Everything is read from the installed packages of the reference environment, never typed in:

  - ftfy (Apache-2.0, (c) Robyn Speer / Luminoso): chardata.py, badness.py, fixes.py and the
    "sloppy" codecs of bad_codecs/ -- the charmap tables of the ten encodings ftfy tries, the
    UTF-8 clue classes of UTF8_DETECTOR_RE, the ligature / width / control-character maps, the
    upper-case HTML entities ftfy adds, and BADNESS_RE / ALTERED_UTF8_RE / LOSSY_UTF8_RE
    translated from Python's parse tree into `regex`-crate syntax (every class spelled out as
    code point ranges; Python's `\\s` and `\\w` expanded with Python 3.11's Unicode 14 tables);
  - Python 3.11: html.entities.html5, html's invalid character-reference tables, str.isspace,
    the `\\d` class (Unicode decimal digits), and the code points unassigned in Unicode 14.0;
  - regex 2026.11.15: which code points `[\\p{L}]`, `[\\p{N}]` and `\\s` match under IGNORECASE
    (open_clip compiles its split pattern with regex.IGNORECASE), and the case-insensitive
    equivalents of the letters in the pattern's literals.

Run from the repository root (the output is deterministic; --check compares only):

    .venv-reference/bin/python tests/reference/make_tokenizer_tables.py [--check]
"""

from __future__ import annotations

import argparse
import html
import html.entities
import re
import re._parser as sre_parse  # Python 3.11
import sys
import unicodedata
from pathlib import Path

import ftfy
import ftfy.bad_codecs  # registers the sloppy codecs
import regex
from ftfy import badness, chardata, fixes

OUT = Path("crates/engine/src/text_clean/tables.rs")
PINNED = {"ftfy": "6.3.1", "regex": "2026.11.15", "unicodedata": "14.0.0"}

ALL_CPS = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]


def check_versions() -> None:
    found = {"ftfy": ftfy.__version__, "regex": regex.__version__,
             "unicodedata": unicodedata.unidata_version}
    if found != PINNED:
        sys.exit(f"unexpected versions {found}, want {PINNED} (Python 3.11 reference venv)")


# ------------------------------------------------------------------------------------------
# Rust literal helpers
# ------------------------------------------------------------------------------------------


def rs_char(c: str) -> str:
    cp = ord(c)
    if c == "'":
        return "'\\''"
    if c == "\\":
        return "'\\\\'"
    if 0x20 <= cp < 0x7F:
        return f"'{c}'"
    return f"'\\u{{{cp:x}}}'"


def rs_str(s: str) -> str:
    out = []
    for c in s:
        cp = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif 0x20 <= cp < 0x7F:
            out.append(c)
        else:
            out.append(f"\\u{{{cp:x}}}")
    return '"' + "".join(out) + '"'


def rs_raw(s: str) -> str:
    assert s.isascii() and '"#' not in s
    return 'r#"' + s + '"#'


def ranges(cps) -> list[tuple[int, int]]:
    cps = sorted(set(cps))
    out: list[list[int]] = []
    for cp in cps:
        if out and out[-1][1] + 1 == cp:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return [(a, b) for a, b in out]


def rs_ranges(name: str, cps, doc: str) -> str:
    rs = ranges(cps)
    body = []
    line = "   "
    for a, b in rs:
        item = f" (0x{a:x}, 0x{b:x}),"
        if len(line) + len(item) > 98:
            body.append(line)
            line = "   "
        line += item
    if line.strip():
        body.append(line)
    return (f"/// {doc}\npub(crate) static {name}: &[(u32, u32)] = &[\n" + "\n".join(body)
            + "\n];\n")


def brute(pattern: str, flags=0, mod=re) -> list[int]:
    """Code points that the one-character pattern matches (surrogates excluded)."""
    p = mod.compile(pattern, flags)
    return [cp for cp in ALL_CPS if p.fullmatch(chr(cp))]


# ------------------------------------------------------------------------------------------
# Python parse tree -> regex-crate syntax
# ------------------------------------------------------------------------------------------

PY_SPACE = brute(r"\s")
PY_WORD = brute(r"\w")
PY_DIGIT = brute(r"\d")


def class_ranges_str(cps, is_bytes: bool) -> str:
    parts = []
    for a, b in ranges(cps):
        esc = (lambda v: f"\\x{v:02X}") if is_bytes else (lambda v: f"\\x{{{v:X}}}")
        parts.append(esc(a) if a == b else f"{esc(a)}-{esc(b)}")
    return "".join(parts)


def convert(tree, is_bytes: bool) -> str:
    out = []
    for op, av in tree:
        op = str(op)
        if op == "LITERAL":
            out.append(f"\\x{av:02X}" if is_bytes else f"\\x{{{av:X}}}")
        elif op == "IN":
            negate = False
            cps: set[int] = set()
            for o, a in av:
                o = str(o)
                if o == "NEGATE":
                    negate = True
                elif o == "LITERAL":
                    cps.add(a)
                elif o == "RANGE":
                    cps.update(range(a[0], a[1] + 1))
                elif o == "CATEGORY" and not is_bytes:
                    cat = str(a)
                    if cat == "CATEGORY_SPACE":
                        cps.update(PY_SPACE)
                    elif cat == "CATEGORY_WORD":
                        cps.update(PY_WORD)
                    else:
                        raise ValueError(f"category {cat}")
                else:
                    raise ValueError(f"class item {o} {a}")
            if is_bytes:
                assert all(c < 256 for c in cps)
            out.append("[" + ("^" if negate else "") + class_ranges_str(cps, is_bytes) + "]")
        elif op == "BRANCH":
            out.append("(?:" + "|".join(convert(s, is_bytes) for s in av[1]) + ")")
        elif op == "SUBPATTERN":
            group, add_flags, del_flags, sub = av
            assert not add_flags and not del_flags
            out.append("(?:" + convert(sub, is_bytes) + ")")
        elif op == "MAX_REPEAT":
            lo, hi, sub = av
            hi_s = "" if hi == sre_parse.MAXREPEAT else str(hi)
            out.append("(?:" + convert(sub, is_bytes) + ")" + "{" + f"{lo},{hi_s}" + "}")
        elif op == "ANY":
            out.append(".")  # Python without DOTALL and the regex crate without s: not \n
        elif op == "AT":
            if str(av) != "AT_BEGINNING":
                raise ValueError(f"anchor {av}")
            out.append("\\A")
        else:
            raise ValueError(f"op {op}")
    return "".join(out)


def rust_regex(py: re.Pattern) -> str:
    is_bytes = isinstance(py.pattern, bytes)
    flags = py.flags & ~(re.UNICODE | re.VERBOSE)
    assert flags == 0, py.flags
    tree = sre_parse.parse(py.pattern, py.flags)
    body = convert(tree, is_bytes)
    return ("(?-u)" if is_bytes else "") + body


# ------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------


def encodings_table() -> str:
    lines = ["/// ftfy's `CHARMAP_ENCODINGS`, in its order: the characters that bytes 0x80..=0xFF",
             "/// decode to, and what byte 0x1A decodes to (U+FFFD in the sloppy codecs).",
             "pub(crate) static CHARMAPS: &[Charmap] = &["]
    for enc in chardata.CHARMAP_ENCODINGS:
        hi = bytes(range(0x80, 0x100)).decode(enc)
        sub = bytes([0x1A]).decode(enc)
        full = bytes(range(256)).decode(enc)
        assert full[:0x80] == "".join(chr(i) for i in range(0x80)) or enc.startswith("sloppy")
        # encoding must be the exact inverse of decoding (no character from two bytes)
        assert len(set(full)) == 256, enc
        for i in range(256):
            assert full[i].encode(enc) == bytes([i]), (enc, i)
        # and possible_encoding's regex is exactly the set of decodable characters minus 0x1A
        # (the ASCII part) plus what 0x1A decodes to
        lines.append(f"    Charmap {{ name: {rs_str(enc)}, sloppy: {str(enc.startswith('sloppy')).lower()}, "
                     f"macroman: {str(enc == 'macroman').lower()}, sub: {rs_char(sub)},")
        lines.append("        high: [")
        row = "           "
        for c in hi:
            item = " " + rs_char(c) + ","
            if len(row) + len(item) > 98:
                lines.append(row)
                row = "           "
            row += item
        lines.append(row)
        lines.append("        ] },")
    lines.append("];")
    # windows-1252 (strict, Python's codec): None for the five undefined bytes
    strict = []
    for b in range(0x80, 0x100):
        try:
            strict.append(bytes([b]).decode("windows-1252"))
        except UnicodeDecodeError:
            strict.append(None)
    lines.append("/// Python's strict `windows-1252` decoding of bytes 0x80..=0xFF (None: undefined).")
    lines.append("pub(crate) static WINDOWS_1252: [Option<char>; 128] = [")
    row = "   "
    for c in strict:
        item = " None," if c is None else f" Some({rs_char(c)}),"
        if len(row) + len(item) > 98:
            lines.append(row)
            row = "   "
        row += item
    lines.append(row)
    lines.append("];")
    # check the Python regexes agree with "decodable"
    for enc in chardata.CHARMAP_ENCODINGS:
        full = set(bytes(range(256)).decode(enc))
        allowed = (full - {"\x1a"}) | set(bytes([0x1A]).decode(enc))
        for cp in list(range(0x200)) + [0xFFFD] + [ord(c) for c in full]:
            c = chr(cp)
            assert chardata.possible_encoding(c, enc) == (c in allowed), (enc, hex(cp))
    return "\n".join(lines) + "\n"


def map_table(name: str, mapping: dict[int, str], doc: str) -> str:
    lines = [f"/// {doc}", f"pub(crate) static {name}: &[(char, &str)] = &["]
    for cp in sorted(mapping):
        lines.append(f"    ({rs_char(chr(cp))}, {rs_str(mapping[cp])}),")
    lines.append("];")
    return "\n".join(lines) + "\n"


def str_map_table(name: str, mapping: dict[str, str], doc: str) -> str:
    lines = [f"/// {doc}", f"pub(crate) static {name}: &[(&str, &str)] = &["]
    for k in sorted(mapping, key=lambda s: s.encode("utf-8")):
        lines.append(f"    ({rs_str(k)}, {rs_str(mapping[k])}),")
    lines.append("];")
    return "\n".join(lines) + "\n"


def generate() -> str:
    check_versions()
    parts = [
        "// @generated by tests/reference/make_tokenizer_tables.py -- do not edit by hand.\n"
        f"// From ftfy {ftfy.__version__} (Apache-2.0, (c) Robyn Speer), Python "
        f"{sys.version_info[0]}.{sys.version_info[1]} (Unicode {unicodedata.unidata_version}) "
        f"and regex {regex.__version__}.\n"
        "#![allow(clippy::all)]\n\n"
        "/// One of the single-byte encodings that ftfy tries (`ftfy.chardata.CHARMAP_ENCODINGS`).\n"
        "pub(crate) struct Charmap {\n"
        "    /// the codec's name, for debugging and error messages\n"
        "    #[allow(dead_code)]\n"
        "    pub name: &'static str,\n"
        "    /// ftfy's \"sloppy-\" codecs (replace_lossy_sequences applies to them)\n"
        "    pub sloppy: bool,\n"
        "    /// restore_byte_a0 is skipped for macroman\n"
        "    pub macroman: bool,\n"
        "    /// what byte 0x1A decodes to\n"
        "    pub sub: char,\n"
        "    /// what bytes 0x80..=0xFF decode to\n"
        "    pub high: [char; 128],\n"
        "}\n\n"
    ]
    parts.append(encodings_table())

    # --- ftfy regexes
    parts.append("/// ftfy `badness.BADNESS_RE` in regex-crate syntax (only `is_match` is used).\n"
                 f"pub(crate) const BADNESS_RE: &str = {rs_raw(rust_regex(badness.BADNESS_RE))};\n")
    parts.append("/// ftfy `chardata.ALTERED_UTF8_RE` (bytes).\n"
                 f"pub(crate) const ALTERED_UTF8_RE: &str = {rs_raw(rust_regex(chardata.ALTERED_UTF8_RE))};\n")
    parts.append("/// ftfy `chardata.LOSSY_UTF8_RE` (bytes).\n"
                 f"pub(crate) const LOSSY_UTF8_RE: &str = {rs_raw(rust_regex(chardata.LOSSY_UTF8_RE))};\n")
    assert fixes.A_GRAVE_WORD_RE.pattern == b"\xc3 (?! |quele|quela|quilo|s )"
    assert chardata.HTML_ENTITY_RE.pattern == r"&#?[0-9A-Za-z]{1,24};"
    assert fixes.ANSI_RE.pattern == "\033\\[((?:\\d|;)*)([a-zA-Z])"
    assert chardata.C1_CONTROL_RE.pattern == r"[\x80-\x9f]"
    assert chardata.SINGLE_QUOTE_RE.pattern == "[\u02bc\u2018-\u201b]"
    assert chardata.DOUBLE_QUOTE_RE.pattern == "[\u201c-\u201f]"
    assert chardata.CHARMAP_ENCODINGS == ["latin-1", "sloppy-windows-1252", "sloppy-windows-1251",
                                          "sloppy-windows-1250", "sloppy-windows-1253",
                                          "sloppy-windows-1254", "sloppy-windows-1257",
                                          "iso-8859-2", "macroman", "cp437"]

    # --- UTF8_DETECTOR_RE's classes (the regex itself is matched by hand: lookbehind)
    for key, name in [("utf8_first_of_2", "UTF8_FIRST_OF_2"), ("utf8_first_of_3", "UTF8_FIRST_OF_3"),
                      ("utf8_first_of_4", "UTF8_FIRST_OF_4"), ("utf8_continuation", "UTF8_CONTINUATION"),
                      ("utf8_continuation_strict", "UTF8_CONTINUATION_STRICT")]:
        cps = brute("[" + chardata.UTF8_CLUES[key] + "]")
        parts.append(rs_ranges(name, cps, f"ftfy `UTF8_CLUES[{key!r}]`."))
    expected = """
    (?<! [{utf8_continuation_strict}])
    (
        [{utf8_first_of_2}] [{utf8_continuation}]
        |
        [{utf8_first_of_3}] [{utf8_continuation}]{{2}}
        |
        [{utf8_first_of_4}] [{utf8_continuation}]{{3}}
    )+
    """.format(**chardata.UTF8_CLUES)
    assert chardata.UTF8_DETECTOR_RE.pattern == expected, "UTF8_DETECTOR_RE changed"

    # --- translate maps
    parts.append(map_table("LIGATURES", {k: v for k, v in chardata.LIGATURES.items()},
                           "ftfy `chardata.LIGATURES`."))
    parts.append(map_table("WIDTH_MAP", dict(chardata.WIDTH_MAP), "ftfy `chardata.WIDTH_MAP`."))
    assert all(v is None for v in chardata.CONTROL_CHARS.values())
    parts.append(rs_ranges("CONTROL_CHARS", chardata.CONTROL_CHARS.keys(),
                           "ftfy `chardata.CONTROL_CHARS` (deleted)."))

    # --- HTML
    h5 = dict(html.entities.html5)
    parts.append(str_map_table("HTML5", h5, "Python's `html.entities.html5` (names without '&', "
                               "sorted bytewise)."))
    upper = {k: v for k, v in chardata.HTML_ENTITIES.items() if k[1:] not in h5}
    # everything else in HTML_ENTITIES is "&" + an html5 name ending in ';'
    for k, v in chardata.HTML_ENTITIES.items():
        if k[1:] in h5:
            assert k.endswith(";") and h5[k[1:]] == v
    assert all(k.endswith(";") for k in upper)
    parts.append(str_map_table("FTFY_UPPER_ENTITIES", upper,
                               "The entities ftfy's `HTML_ENTITIES` adds to the html5 names ending "
                               "in ';' (upper-cased names, with '&')."))
    inv = html._invalid_charrefs
    lines = ["/// Python's `html._invalid_charrefs`.",
             "pub(crate) static INVALID_CHARREFS: &[(u32, char)] = &["]
    for k in sorted(inv):
        lines.append(f"    (0x{k:x}, {rs_char(inv[k])}),")
    lines.append("];\n")
    parts.append("\n".join(lines))
    parts.append(rs_ranges("INVALID_CODEPOINTS", html._invalid_codepoints,
                           "Python's `html._invalid_codepoints` (numeric references to these are "
                           "deleted)."))

    # --- Python str predicates (Unicode 14)
    assert PY_SPACE == [cp for cp in ALL_CPS if chr(cp).isspace()]
    parts.append(rs_ranges("PY_SPACE", PY_SPACE, "Python 3.11 `str.isspace()` (= `re`'s `\\s`)."))
    parts.append(rs_ranges("PY_DECIMAL", PY_DIGIT, "Python 3.11 `re` `\\d` (Unicode decimal digits)."))
    parts.append(rs_ranges("UNASSIGNED_14", [cp for cp in ALL_CPS if unicodedata.category(chr(cp)) == "Cn"],
                           "Code points unassigned in Unicode 14.0 (Python 3.11's `unicodedata`)."))

    # --- open_clip split classes (regex module, IGNORECASE)
    F = regex.IGNORECASE
    L = brute(r"[\p{L}]", F, regex)
    N = brute(r"[\p{N}]", F, regex)
    O = brute(r"[^\s\p{L}\p{N}]", F, regex)
    S = brute(r"\s", F, regex)
    sets = [set(L), set(N), set(O), set(S)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not sets[i] & sets[j]
    none = set(ALL_CPS) - set().union(*sets)
    parts.append(rs_ranges("SPLIT_LETTER", L, "`[\\p{L}]` of open_clip's split pattern (regex, IGNORECASE)."))
    parts.append(rs_ranges("SPLIT_NUMBER", N, "`[\\p{N}]` of open_clip's split pattern (regex, IGNORECASE)."))
    parts.append(rs_ranges("SPLIT_SPACE", S, "`\\s` of the regex module (IGNORECASE)."))
    parts.append(rs_ranges("SPLIT_NONE", sorted(none),
                           "Code points no alternative of the split pattern matches (skipped); "
                           "everything not in SPLIT_LETTER, SPLIT_NUMBER, SPLIT_SPACE or here is "
                           "`[^\\s\\p{L}\\p{N}]`."))
    lits = sorted(set("<start_of_text><end_of_text>'s'tre've'm'll'd"))
    lines = ["/// Case-insensitive equivalents (regex, IGNORECASE) of the characters in the literals",
             "/// of open_clip's split pattern, other than the character itself.",
             "pub(crate) static LITERAL_FOLDS: &[(char, &[char])] = &["]
    for ch in lits:
        p = regex.compile(regex.escape(ch), F)
        eq = [chr(cp) for cp in ALL_CPS if p.fullmatch(chr(cp)) and chr(cp) != ch]
        lines.append(f"    ({rs_char(ch)}, &[{', '.join(rs_char(c) for c in eq)}]),")
    lines.append("];\n")
    parts.append("\n".join(lines))
    return "\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = generate()
    if args.check:
        old = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if old != text:
            sys.exit(f"{OUT} is out of date; rerun without --check")
        print(f"{OUT} is up to date ({len(text)} bytes)")
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(text)} bytes)")


if __name__ == "__main__":
    main()
