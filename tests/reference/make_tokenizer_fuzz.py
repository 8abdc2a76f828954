#!/usr/bin/env python3
"""Random differential-test cases for the Rust port of open_clip's tokenizer (not committed
data: the output goes to a scratch file).

Writes JSONL rows {"text": ..., "cleaned": ..., "ids": [...]} where `cleaned` is open_clip's
`whitespace_clean(basic_clean(text)).lower()` and `ids` is `[49406] + tok.encode(text) + [49407]`
untruncated, for texts built to stress ftfy (mojibake in all of ftfy's encodings with the usual
damage: NBSP turned into a space, bytes lost to '?' / U+FFFD, double encoding, cut sequences,
mixed with clean text), HTML references (named, upper-case, numeric, without ';', with '<' on
other lines), terminal escapes, line breaks, control characters, random code points, and the
split pattern's corner cases (case-insensitive contractions and specials, U+0345).

    .venv-reference/bin/python tests/reference/make_tokenizer_fuzz.py [--n 40000] [--seed 1]
        [--out /tmp/mobileclip_tokenizer_fuzz.jsonl]
    MOBILECLIP_TOKENIZER_FUZZ=/tmp/mobileclip_tokenizer_fuzz.jsonl \\
        cargo test -p mobileclip-engine --test tokenizer_corpus -- --ignored --nocapture
"""

from __future__ import annotations

import argparse
import html.entities
import json
import random

import ftfy.bad_codecs  # noqa: F401  (registers the sloppy codecs)
from ftfy import chardata

WORDS = ("café naïve résumé Ångström crème brûlée Tiếng Việt Đà Nẵng Łódź Dvořák São Paulo Ñandú "
         "Øresund œuvre Æsir þorn ðæt straße Ελληνικά λόγος Москва привет Київ ĳs ǆ ﬁne "
         "日本語 東京 中文 한국어 ไทย עברית العربية हिन्दी ★ ✔ ♥ € £ ¥ © ® ™ ° ± × ÷ µ ¶ § "
         "… – — ‘ ’ “ ” • ‹ › « » ¡ ¿ 😀 👍🏽 🏴 👩‍❤️‍💋‍👨 🇫🇷 ½ ¼ ² ³ Ⅻ ⓐ ａｂｃ ｶﾀｶﾅ "
         "a cat dog photo of the on in is it's don't we're I'll you've he'd I'm").split()
ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"-_/()[]{}<>&#@%*+=~`^|\\$"
SPECIAL_CHARS = ["\u00a0", "\u00ad", "\u0345", "\u017f", "\u212a", "\u0130", "\u03a3", "\u1e9e", "\u00df",
                 "\u200b", "\u200d", "\ufeff", "\ufffd", "\u2028", "\u2029", "\u0085", "\r", "\n", "\t",
                 "\x0b", "\x0c", "\x1c", "\x1f", "\x1b", "\x00", "\x1a", "\x7f", "\u3000", "\u2060",
                 "\u206a", "\ufff9", "\U000e0067", "\U0001d173", "\u0300", "\u0301", "\u0308", "\u0323"]
ENCODINGS = chardata.CHARMAP_ENCODINGS + ["windows-1252", "windows-1251", "windows-1250",
                                          "windows-1253", "mac_roman", "cp850", "iso-8859-15"]
HTML5 = list(html.entities.html5)


def pool_chars() -> list[str]:
    chars = set(ASCII) | set(SPECIAL_CHARS)
    for enc in chardata.CHARMAP_ENCODINGS:
        chars |= set(bytes(range(0x80, 0x100)).decode(enc))
    chars |= set("".join(WORDS))
    return sorted(chars)


POOL = pool_chars()


def rand_text(rng: random.Random, n: int) -> str:
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.45:
            out.append(rng.choice(WORDS))
            out.append(" ")
        elif r < 0.9:
            out.append(rng.choice(POOL))
        else:
            out.append(rng.choice(ASCII))
    return "".join(out)


def cesu8(c: str) -> bytes:
    cp = ord(c)
    if cp == 0:
        return b"\xc0\x80"
    if cp < 0x10000:
        return c.encode("utf-8")
    v = cp - 0x10000
    hi, lo = 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)
    return chr(hi).encode("utf-8", "surrogatepass") + chr(lo).encode("utf-8", "surrogatepass")


def mojibake(rng: random.Random, s: str) -> str:
    b = s.encode("utf-8")
    if rng.random() < 0.1:  # CESU-8 and Java's null
        b = b"".join(cesu8(c) for c in s)
    if rng.random() < 0.1 and len(b) > 2:  # cut
        cut = rng.randrange(len(b))
        b = b[:cut] + b[cut + 1:]
    enc = rng.choice(ENCODINGS)
    t = b.decode(enc, errors=rng.choice(["replace", "ignore"]))
    if rng.random() < 0.3:
        t = t.replace("\u00a0", " ")
    if rng.random() < 0.15:
        t = "".join("?" if c in "\x81\x8d\x8f\x90\x9d" or (rng.random() < 0.05 and ord(c) > 127) else c
                    for c in t)
    if rng.random() < 0.2:  # twice
        enc2 = rng.choice(ENCODINGS[:4])
        t = t.encode("utf-8").decode(enc2, errors="replace")
    return t


def entity(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        name = rng.choice(HTML5)
        if rng.random() < 0.2:
            name = name.upper()
        if rng.random() < 0.2:
            name = name.rstrip(";")
        return "&" + name
    if r < 0.7:
        num = rng.choice([rng.randrange(0, 300), rng.randrange(0, 0x11000), rng.randrange(0xD700, 0xE000),
                          rng.randrange(0x10FF00, 0x110100), 10 ** rng.randrange(1, 30)])
        form = rng.choice(["&#{};", "&#x{:x};", "&#X{:X}", "&#{}", "&#x{:X}z;"])
        return form.format(num)
    return "&" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyzAMPLTGQU#;0123456789") for _ in range(rng.randrange(1, 40)))


def case(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:  # mojibake in context
        src = rand_text(rng, rng.randrange(1, 12))
        bad = mojibake(rng, src)
        return rng.choice(["{b}", "the {b} is here", "{b} {c}", "{c}: {b}", "{b}{b}", "{b}\n{c}"]).format(
            b=bad, c=rand_text(rng, 4))
    if kind == 1:  # pure mojibake of words
        return mojibake(rng, " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 6))))
    if kind == 2:  # entities
        parts = [rng.choice([entity(rng), rand_text(rng, 2), "<", "\n", " ", "&amp;", "&"])
                 for _ in range(rng.randrange(1, 10))]
        return "".join(parts)
    if kind == 3:  # terminal escapes, controls, line breaks
        parts = []
        for _ in range(rng.randrange(1, 8)):
            parts.append(rng.choice([
                "\x1b[" + "".join(rng.choice("0123456789;٣५") for _ in range(rng.randrange(0, 5)))
                + rng.choice("mKaZ1 ["),
                rng.choice(SPECIAL_CHARS), rand_text(rng, 2), "\r\n", mojibake(rng, rand_text(rng, 2))]))
        return "".join(parts)
    if kind == 4:  # random code points
        out = []
        for _ in range(rng.randrange(1, 20)):
            cp = rng.choice([rng.randrange(0x80, 0x800), rng.randrange(0x800, 0x10000), rng.randrange(0x10000, 0x110000),
                             rng.randrange(0, 0x80)])
            if 0xD800 <= cp <= 0xDFFF:
                cp = 0xFFFD
            out.append(chr(cp))
        return "".join(out)
    if kind == 5:  # split corner cases
        bits = ["'", "s", "S", "\u017f", "t", "re", "VE", "m", "LL", "d", "<start_of_text>", "<END_OF_TEXT>",
                "<\u017ftart_of_text>", "\u0345", " ", ".", "<", ">", "_", "1", "٣", "a", "ß", "İ", "\u212a",
                "<|endoftext|>", "\u03a3", "ΑΣ"]
        return "".join(rng.choice(bits) for _ in range(rng.randrange(1, 15)))
    if kind == 6:  # mixed everything, several lines
        return "\n".join(case(rng) for _ in range(rng.randrange(2, 4)))
    return rand_text(rng, rng.randrange(1, 30))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="/tmp/mobileclip_tokenizer_fuzz.jsonl")
    args = ap.parse_args()
    import open_clip

    tok = open_clip.get_tokenizer("MobileCLIP2-S0")
    rng = random.Random(args.seed)
    n = 0
    with open(args.out, "w", encoding="utf-8") as f:
        while n < args.n:
            text = case(rng)
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                continue
            cleaned = tok.clean_fn(text)
            ids = [49406] + tok.encode(text) + [49407]
            f.write(json.dumps({"text": text, "cleaned": cleaned, "ids": ids}, ensure_ascii=False) + "\n")
            n += 1
    print(f"wrote {n} cases to {args.out}")


if __name__ == "__main__":
    main()
