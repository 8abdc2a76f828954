#!/usr/bin/env python3
"""Reference fixtures for the MobileCLIP2 text tokenizer.

What this makes (all in tests/fixtures/tokenizer/):

  tokenizer.json          Equivalent of the Hugging Face `tokenizers` file that the
                          timm/MobileCLIP2-<V>-OpenCLIP repos ship (open_clip's push_to_hf_hub
                          saves the tokenizer of openai/clip-vit-large-patch14 for models that
                          use SimpleTokenizer).
                          It is rebuilt here, without any download, from open_clip's bundled
                          `bpe_simple_vocab_16e6.txt.gz`: vocab.json / merges.txt are written the
                          way SimpleTokenizer builds its encoder and converted with transformers'
                          CLIPTokenizer (the tokenizers-backed class; transformers 5 has no
                          separate CLIPTokenizerFast). Saved compact, merges as "a b" strings
                          (the legacy layout of the published files). Not byte-identical to the
                          published file (which could not be downloaded here); e.g. its added
                          tokens may say "normalized": true where transformers 5 writes false.
  corpus.jsonl            One JSON string per line: the test texts (deterministic, seed below).
                          Some contain U+0000, which PostgreSQL text cannot hold.
  cleaned.jsonl           One JSON string per line: open_clip's clean-up of the same line,
                          whitespace_clean(basic_clean(text)).lower(), i.e. exactly the string
                          that open_clip splits with its regex. For testing the clean-up alone.
  reference_ids.jsonl     One JSON list per line: open_clip's token ids for that line at context
                          length 77 ([49406, ..., 49407]); the zero padding after the final 49407
                          is left out (pad back to 77 with 0). Every list ends with 49407.
  reference_ids_untruncated.jsonl
                          {"line": i, "ids": [49406, ..., 49407]} for the lines whose ids are
                          longer than 77 before truncation (to check truncation keeps EOT).
  manifest.json           Versions, seed, file formats, and the corpus categories as
                          contiguous line ranges.

The reference tokenizer is `open_clip.get_tokenizer('MobileCLIP2-S0')` (the same for every
MobileCLIP2 variant): open_clip's SimpleTokenizer, clean='lower', context length 77.

It then prints how many lines the plain `tokenizers` package reproduces with tokenizer.json:
(i) on the raw text, (ii) on open_clip's cleaned text, (iii) on text cleaned without ftfy
(what is lost if ftfy is not ported), and (iv) with the pipeline recommended for the Rust side
(open_clip's cleaned text; U+0345 as a separator; open_clip's split regex, case-insensitive,
special literals first; exact "<start_of_text>"/"<end_of_text>" pieces -> 49406/49407; other
pieces -> ByteLevel -> the BPE model of tokenizer.json; no HF normalizer, added tokens or
post-processor), listing every line that still differs and why.

Run (from the repository root, after
`scripts/setup-bench-env .venv-reference`):

    .venv-reference/bin/python tests/reference/make_tokenizer_fixtures.py

Options: --out DIR (default: tests/fixtures/tokenizer),
--check (regenerate into a temporary directory and fail if any fixture differs byte for byte
from the files in --out; writes nothing). The output is deterministic for the pinned versions
(asserted at start-up; PYTHONHASHSEED does not matter).
"""

from __future__ import annotations

import argparse
import filecmp
import gzip
import html
import html.entities
import json
import os
import random
import sys
import tempfile
import unicodedata
from pathlib import Path

SEED = 20250607
CONTEXT_LENGTH = 77
SOT, EOT = 49406, 49407
PINNED = {
    "open_clip": "3.3.0",
    "ftfy": "6.3.1",
    "tokenizers": "0.23.3",
    "transformers": "5.23.0",
    "regex": "2026.11.15",
}

# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------


def check_versions() -> dict:
    import ftfy
    import open_clip
    import regex
    import tokenizers
    import transformers

    found = {
        "open_clip": open_clip.__version__,
        "ftfy": ftfy.__version__,
        "tokenizers": tokenizers.__version__,
        "transformers": transformers.__version__,
        "regex": regex.__version__,
    }
    bad = {k: (v, PINNED[k]) for k, v in found.items() if v != PINNED[k]}
    if bad:
        sys.exit(f"unexpected package versions (found, pinned): {bad}; "
                 "use the venv from scripts/setup-bench-env")
    # str.lower(), NFC and the Cn test below use Python's Unicode database: 14.0 in Python 3.11.
    if unicodedata.unidata_version != "14.0.0":
        sys.exit(f"Python {sys.version.split()[0]} has Unicode {unicodedata.unidata_version}; "
                 "the fixtures are made with Python 3.11 (Unicode 14.0.0)")
    found["python"] = "%d.%d" % sys.version_info[:2]
    found["python_unicodedata"] = unicodedata.unidata_version
    return found


# ---------------------------------------------------------------------------------------------
# tokenizer.json
# ---------------------------------------------------------------------------------------------


def clip_vocab_and_merges():
    """vocab (list, index = id) and merges exactly as open_clip's SimpleTokenizer builds them,
    with the special tokens spelled the Hugging Face way."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]  # line 0 is the "#version" header
    byte_syms = list(bytes_to_unicode().values())
    vocab = byte_syms + [s + "</w>" for s in byte_syms]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408, "vocabulary is not 49408 unique"
    assert vocab.index("<|startoftext|>") == SOT and vocab.index("<|endoftext|>") == EOT
    return vocab, merges


def build_tokenizer_json(path: Path) -> None:
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump({tok: i for i, tok in enumerate(vocab)}, f, ensure_ascii=False)
        with open(os.path.join(tmp, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
        hf = CLIPTokenizer.from_pretrained(tmp)
        assert len(hf) == 49408, len(hf)
        assert (hf.bos_token_id, hf.eos_token_id) == (SOT, EOT)
        spec = json.loads(hf.backend_tokenizer.to_str())

    # Merges as "left right" strings, like the published HF files (byte-level symbols never
    # contain a space, so this is unambiguous).
    spec["model"]["merges"] = [m if isinstance(m, str) else " ".join(m)
                               for m in spec["model"]["merges"]]
    assert spec["model"]["merges"] == merges

    # Cross-check against open_clip's own encoder: same ids for every non-special token.
    st = SimpleTokenizer()
    assert st.vocab_size == 49408 and (st.sot_token_id, st.eot_token_id) == (SOT, EOT)
    hv = spec["model"]["vocab"]
    assert len(hv) == 49408
    for tok, i in st.encoder.items():
        name = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}.get(tok, tok)
        assert hv[name] == i, (tok, i)

    text = json.dumps(spec, ensure_ascii=False, separators=(",", ":"))
    path.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------

NOUNS = ("cat dog bird horse car bicycle train boat airplane person woman man child girl boy "
         "tree flower mountain river beach city street house kitchen table chair sofa laptop "
         "phone pizza sandwich cake apple banana coffee cup bottle book clock umbrella "
         "skateboard surfboard giraffe elephant zebra bear sheep cow kite bench bridge").split()
ADJS = ("red blue green yellow black white small large old young happy sleepy fluffy wet dry "
        "wooden metal shiny dark bright empty crowded quiet busy tiny huge striped spotted "
        "vintage modern rusty colorful blurry").split()
VERBS = ("sitting standing running jumping sleeping eating playing walking flying swimming "
         "lying riding holding looking waiting parked floating hanging").split()
PLACES = ("on a sofa|in the park|on the beach|next to a window|in a kitchen|on a street|"
          "under a tree|in the snow|at night|in the rain|on a table|near the river|"
          "in a field|at the airport|on a boat|in front of a building|on the grass|"
          "in a living room|at sunset|in the mountains").split("|")
TEMPLATES = (
    "a photo of a {a} {n}",
    "a {a} {n} {v} {p}",
    "A {n} {v} {p}.",
    "two {n}s {v} {p}",
    "a close-up photo of the {a} {n}",
    "an image of a {n} and a {n2}",
    "There is a {a} {n} {v} {p}, next to a {a2} {n2}.",
    "{N} {v} {p}",
    "a blurry photo of a {n}",
    "a painting of a {a} {n} {p}",
    "the {n} is {a}",
    "itap of a {n}",
    "a bad photo of the {n}.",
    "a {a} {n}, a {a2} {n2} and a {n3}",
)

GREEK = ["Μια φωτογραφία μιας γάτας", "ΟΔΟΣ", "ΣΊΣΥΦΟΣ", "Ελληνικά", "ΣΑΣ ΣΑΣ", "Σ", "ΌΣΟΣ.",
         "αλφάβητο", "ΑΒΓΔΕΖΗΘ", "ΐ ΰ", "ϐ ϑ ϕ ϖ ϰ ϱ ϵ", "Ω Ω", "μ µ"]
CYRILLIC = ["Фотография кошки на диване", "ПРИВЕТ МИР", "ёжик в тумане", "Україна", "Ѣ ѣ Ѳ ѳ",
            "Ё Й й", "съешь же ещё этих мягких французских булок", "БЕЛАРУСЬ ЎЎ", "Ӂ ӂ",
            "Кошка"]
ARABIC = ["صورة قطة على الأريكة", "مَرْحَبًا بِكُمْ", "٠١٢٣٤٥٦٧٨٩", "۱۲۳۴", "العربية ـــ",
          "\u200fمرحبا\u200f", "قطة 3 قطط", "ﷲ ﷺ", "لا إله", "فارسی"]
HEBREW = ["תמונה של חתול", "שָׁלוֹם", "עברית 123", "ﬠ ﬡ"]
INDIC = ["बिल्ली की तस्वीर", "नमस्ते", "१२३", "ক্ষ বিড়াল", "பூனை", "పిల్లి", "ಬೆಕ್ಕು",
         "പൂച്ച", "ਬਿੱਲੀ", "બિલાડી", "ଓଡ଼ିଆ", "क़ ख़ ग़", "क\u093c"]
OTHER_SCRIPTS = ["รูปแมว", "ສະບາຍດີ", "ကြောင်", "ឆ្មា", "კატა", "Կատու ԿԱՏՈՒ", "ድመት",
                 "ᏣᎳᎩ", "ᠮᠣᠩᠭᠣᠯ", "ꦗꦮ", "𐌰𐌱𐌲", "ᚠᚢᚦ", "İstanbul ISPARTA ı", "Straße STRASSE ẞ",
                 "ǅ ǈ ǋ ǲ", "Ω Å K", "Ⅻ ⅻ Ⅰ", "Ǆungla", "ꙮ", "Ꭰ ꭰ"]
CJK = ["一只猫坐在沙发上", "一隻貓坐在沙發上", "猫がソファの上に座っている", "소파에 앉아 있는 고양이",
       "ｶﾀｶﾅ ﾃｽﾄ", "ＡＢＣ１２３！", "。、「」『』【】", "日本語のテキスト", "𠀀𠮷𩸽",
       "\uf900\uf901", "か\u3099き\u3099", "ㄅㄆㄇ", "한국어 텍스트", "中文，标点！",
       "東京タワー", "ｈｅｌｌｏ　ｗｏｒｌｄ", "ﾊﾟﾋﾟﾌﾟ", "〇一二三", "漢字かなカナ",
       "\u1100\u1161\u11a8", "㈱ ㍿ ㋿", "⺀⺁", "ㅋㅋㅋ", "あいうえお", "アイウエオ", "龍"]
EMOJI = ["😀", "👍", "👍🏽", "👍🏿", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "🧑🏿\u200d🚀",
         "🇺🇸", "🇯🇵🇫🇷🇩🇪", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
         "1️⃣", "#️⃣", "❤️", "☺︎", "❤", "🤷\u200d♀️", "👩🏻\u200d❤️\u200d💋\u200d👨🏼", "🐈\u200d⬛",
         "🫠", "🧋", "🦄", "🍕", "🍺", "🎉", "🔥", "💯", "✨", "🙏", "🤖", "👀", "🐶", "🌍",
         "🇦", "🏻", "\u200d", "\ufe0f", "©️", "™", "⌚", "☕", "🀄", "🃏"]
UNICODE_NEW = [
    "\U0001fae8 shaking face", "\U0001f6dc wireless", "\U0001fa77 pink heart", "\U0001fabc",
    "\U0001fae9", "\U0001f426\u200d\U0001f525 phoenix", "\U00011f04\U00011f05\U00011f06",
    "\U0001e4d0\U0001e4d1", "\U00031350\U00031351", "\U0002ebf0", "\U00010d50\U00010d51 garay",
    "\U00010d70\U00010d71", "\ua7cb\ua7cc\ua7cd", "\ua7dc", "\U00011380\U00011381",
    "\U000105c0\U000105c1", "\U0001df25", "\U0001e030", "\U0001d2c0\U0001d2c1",
    "\U00010d40\U00010d41", "\U0001ccf0\U0001ccf1", "\U00016d70\U00016d71", "\U00011bf0",
    "\U0001fa89 harp", "\U0001fadf splatter", "\U00010efd", "\U0001f1e6\U0001f1f6",
]
SPECIAL_BASE = ["<start_of_text>", "<end_of_text>", "<|startoftext|>", "<|endoftext|>",
                "<START_OF_TEXT>", "<End_Of_Text>", "<|ENDOFTEXT|>", "<|StartOfText|>",
                "<endoftext>", "<end_of_text", "end_of_text>", "< end_of_text >", "<</w>>",
                "</w>", "cat</w>", "<unk>", "[CLS]", "[SEP]", "<s>", "</s>", "<pad>", "<|im_end|>",
                "&lt;end_of_text&gt;", "&amp;lt;end_of_text&amp;gt;", "&lt;|endoftext|&gt;",
                "＜end_of_text＞", "＜|endoftext|＞", "<end_of_text><end_of_text>",
                "<start_of_text><end_of_text>", "<end_of_text>'s", "<end_of_text>123",
                "<end\u200b_of_text>", "<end_of_\ntext>", "< end _ of _ text >", "<end of text>",
                "<|endoftext|><|startoftext|>", "<|endoftext|>'s", "a<|endoftext|>b"]
WS_CHARS = [" ", "  ", "\t", "\n", "\r\n", "\r", "\x0b", "\x0c", "\u00a0", "\u1680", "\u2000",
            "\u2003", "\u2009", "\u200a", "\u202f", "\u205f", "\u3000", "\u2028", "\u2029",
            "\u0085", "\u180e", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\x1c", "\x1d",
            "\x1e", "\x1f", "\u00ad", "\u034f", "\u115f", "\u3164", "\uffa0"]
MOJIBAKE_SOURCES = ["café", "naïve", "“smart quotes”", "it’s", "señor", "Müller", "déjà vu",
                    "😀", "日本語", "a — b", "wait…", "€5", "Ελληνικά", "привет", "½ price",
                    "Zürich", "Crème brûlée", "résumé", "São Paulo", "Ångström", "don’t",
                    "‘single’", "Łódź", "Dvořák", "İstanbul", "👍🏽", "coöperate", "piñata",
                    "façade", "• bullet", "™ ©", "¿Qué?", "¡Olé!"]
MOJIBAKE_FIXED = ["cafÃ©", "â€™", "Ã¼ber", "ðŸ˜€", "â€œquotedâ€\x9d", "Ã©tÃ©", "ÃƒÂ©", "voilÃ le travail",
                  "Iâ€™m fine", "The cafÃ© is open", "SÃ£o Paulo", "â€”", "Ã¢â‚¬â„¢", "ÃƒÆ’Ã‚Â©",
                  "cafÃ?", "cafÃ\ufffd", "â€?", "Ã", "Ã ", "Ã©", "Ã©Ã©Ã©", "Â£100", "Â ", "Â",
                  "Ã¡Ã©Ã\xadÃ³Ãº", "Ð¿Ñ€Ð¸Ð²ÐµÑ‚", "æ—¥æœ¬èªž", "Ø§Ù„Ø¹Ø±Ø¨ÙŠØ©", "â€¦", "Ã¶"]
WORDS_LONG = ["Donaudampfschifffahrtsgesellschaftskapitän",
              "pneumonoultramicroscopicsilicovolcanoconiosis", "supercalifragilisticexpialidocious",
              "antidisestablishmentarianism", "getElementById", "XMLHttpRequest", "foo_bar_baz",
              "kebab-case-words", "snake_case_variable_name", "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
              "hippopotomonstrosesquippedaliophobia", "methionylthreonylthreonylglutaminylarginyl"]


def _escape_for_jsonl(s: str) -> str:
    """json.dumps with readable non-ASCII, but invisible / control / line-separator characters
    escaped, so each record stays on one line for any line splitter and stays reviewable."""
    out = []
    for ch in json.dumps(s, ensure_ascii=False):
        cat = unicodedata.category(ch)
        if (cat in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or (cat == "Zs" and ch != " ")):
            cp = ord(ch)
            if cp > 0xFFFF:
                cp -= 0x10000
                out.append("\\u%04x\\u%04x" % (0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)))
            else:
                out.append("\\u%04x" % cp)
        else:
            out.append(ch)
    text = "".join(out)
    assert json.loads(text) == s
    return text


def build_corpus() -> list[tuple[str, list[str]]]:
    """[(category, [texts])]; deterministic for SEED. Lines are unique across the corpus."""
    from ftfy import bad_codecs  # noqa: F401  (registers sloppy-windows-125x codecs)

    rng = random.Random(SEED)
    cats: list[tuple[str, list[str]]] = []

    def caption() -> str:
        n, n2, n3 = rng.sample(NOUNS, 3)
        a, a2 = rng.sample(ADJS, 2)
        t = rng.choice(TEMPLATES)
        return t.format(n=n, n2=n2, n3=n3, a=a, a2=a2, v=rng.choice(VERBS), p=rng.choice(PLACES),
                        N=n.capitalize())

    def add(name: str, items, target: int | None = None, gen=None):
        items = list(items)
        if target is not None and gen is not None:
            tries = 0
            seen = set(items)
            while len(items) < target and tries < target * 50:
                tries += 1
                s = gen()
                if s not in seen:
                    seen.add(s)
                    items.append(s)
        cats.append((name, items))

    # 1. plain English captions
    add("captions", [], 500, caption)

    # 2. mixed case
    def mixed_case():
        s = caption()
        mode = rng.randrange(4)
        if mode == 0:
            return s.upper()
        if mode == 1:
            return s.title()
        if mode == 2:
            return s.swapcase()
        return "".join(c.upper() if rng.random() < 0.5 else c for c in s)
    add("mixed_case", [], 150, mixed_case)

    # 3. contractions, straight and curly apostrophes
    contractions = ["don't", "it's", "we'll", "I'm", "you're", "they've", "he'd", "can't",
                    "won't", "shouldn't've", "y'all", "let's", "o'clock", "ma'am", "'twas",
                    "rock 'n' roll", "the cat's toy", "DON'T", "IT'S", "We'Ll", "I'D", "'S", "'t",
                    "it''s", "it 's", "dogs'", "James's", "'re'", "'ll've", "didn't"]
    apostrophes = ["'", "\u2019", "\u2018", "\u2032", "`", "\u02bc", "\uff07", "\u00b4", "\u201b"]

    def contraction():
        c = rng.choice(contractions).replace("'", rng.choice(apostrophes))
        return rng.choice(["{c}", "{c} {s}", "{s}, {c}.", "I think {c} {s}"]).format(
            c=c, s=caption())
    add("contractions", [c.replace("'", q) for c in contractions[:12] for q in apostrophes[:3]],
        170, contraction)

    # 4. punctuation runs
    punct = ["!", "?", ".", ",", ";", ":", "-", "_", "*", "#", "@", "$", "%", "^", "&", "(", ")",
             "[", "]", "{", "}", "<", ">", "/", "\\", "|", "~", "`", "'", '"', "+", "=", "…", "—",
             "–", "«", "»", "‹", "›", "„", "“", "”", "¿", "¡", "·", "•", "§", "¶", "†", "‡",
             "°", "‰", "′", "″", "※", "⁂", "、", "。", "‼", "⁉"]

    def punct_run():
        run = "".join(rng.choice(punct) for _ in range(rng.randint(1, 8)))
        return rng.choice(["{r}", "wow{r}", "{r}wow", "a {r} b", "{w}{r}{w}", "{r} {r}"]).format(
            r=run, w=rng.choice(NOUNS))
    add("punctuation", ["!!!", "?!?!", "...", "---", "***", "(((", "[[]]", "<<>>", '""', "''",
                        "``", "~~~", "@#$%^&*", "a,b,c", "x--y", "end.", "what?!", "wow!!!",
                        "'", "'s", "''s", "(a)", "a.b.c.", "e.g.", "i.e.,", "U.S.A.", "--help",
                        "->", "=>", "!=", "<=>", "::", "...!!!???"], 170, punct_run)

    # 5. numbers
    def number():
        k = rng.randrange(12)
        if k == 0:
            return str(rng.randint(0, 10 ** rng.randint(1, 12)))
        if k == 1:
            return f"{rng.uniform(-1000, 1000):.{rng.randint(1, 6)}f}"
        if k == 2:
            return f"{rng.randint(1, 9999999):,}"
        if k == 3:
            return f"{rng.randint(1900, 2099)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if k == 4:
            return f"{rng.randint(0, 23)}:{rng.randint(0, 59):02d}"
        if k == 5:
            return f"+1 ({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
        if k == 6:
            return f"${rng.randint(1, 99999):,}.{rng.randint(0, 99):02d}"
        if k == 7:
            return f"{rng.randint(1, 100)}% of {rng.randint(2, 9)} {rng.choice(NOUNS)}s"
        if k == 8:
            return f"{rng.randint(1, 31)}{rng.choice(['st', 'nd', 'rd', 'th'])} {rng.choice(NOUNS)}"
        if k == 9:
            return f"{rng.randint(1, 9)}/{rng.randint(2, 16)}"
        if k == 10:
            return f"{rng.randint(1, 9)}e{rng.randint(-20, 20)}"
        return f"{rng.randint(2, 12)} {rng.choice(ADJS)} {rng.choice(NOUNS)}s"
    add("numbers", ["0", "00", "007", "3.14159", "1e10", "0x1F", "-42", "1,000,000", "10-20",
                    "#1", "x²", "½", "¾", "H₂O", "１２３", "٣", "१२३", "Ⅻ", "①②③", "⑴", "𝟙𝟚𝟛",
                    "1st 2nd 3rd 4th", "v1.2.3", "COVID-19", "4K", "1080p", "24/7", "50%"],
        170, number)

    # 6. URLs and e-mail addresses
    tlds = ["com", "org", "net", "co.uk", "de", "io", "jp", "com.br"]

    def url():
        host = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10)))
        k = rng.randrange(6)
        if k == 0:
            return f"https://www.{host}.{rng.choice(tlds)}/{rng.choice(NOUNS)}?id={rng.randint(1, 9999)}&x=y#top"
        if k == 1:
            return f"http://{host}.{rng.choice(tlds)}/images/{rng.choice(NOUNS)}_{rng.randint(1, 99)}.jpg"
        if k == 2:
            return f"{rng.choice(['john', 'jane.doe', 'a.b+tag', 'x_y'])}@{host}.{rng.choice(tlds)}"
        if k == 3:
            return f"see {host}.{rng.choice(tlds)} for a {caption()}"
        if k == 4:
            return f"@{host} #{rng.choice(ADJS)}{rng.choice(NOUNS)} {caption()}"
        return f"mailto:{host}@example.{rng.choice(tlds)}"
    add("urls_emails", ["https://example.com", "http://例え.jp/パス", "ftp://ftp.example.org/pub/",
                        "www.example.com", "user@example.com", "C:\\Users\\Public\\cat.jpg",
                        "/usr/bin/env python3", "file:///tmp/x.png", "https://xn--bcher-kva.example/",
                        "https://a.b/c?d=e&amp;f=g", "<https://example.com>", "[link](http://x.y)"],
        160, url)

    # 7. HTML entities (ftfy unescapes once unless the line has '<', open_clip twice more)
    names = sorted(html.entities.html5)

    def entity():
        k = rng.randrange(8)
        if k == 0:
            e = "&" + rng.choice(names)
        elif k == 1:
            e = f"&#{rng.choice([rng.randint(32, 0x2FFF), rng.randint(0x1F300, 0x1FAFF), rng.randint(0, 40), rng.randint(0x80, 0x9F)])};"
        elif k == 2:
            e = f"&#x{rng.choice([rng.randint(32, 0x2FFF), rng.randint(0x1F300, 0x1FAFF), rng.randint(0xD800, 0xDFFF), rng.randint(0x80, 0x9F)]):X};"
        elif k == 3:
            e = "&amp;" + rng.choice(names)
        elif k == 4:
            e = "&amp;amp;" + rng.choice(names)
        elif k == 5:
            e = html.escape(caption() + rng.choice([" & co", " <b>", " \"q\"", " 'x'"]))
        elif k == 6:
            e = html.escape(html.escape(rng.choice(["<b>bold</b>", "a & b", "\"x\"", "it's"])))
        else:
            e = rng.choice(["&amp", "&lt", "&gt", "&copy", "&nbsp", "&quot", "&AMP;", "&LT;", "&Eacute;",
                            "&EACUTE;", "&foo;", "& amp;", "&;", "&#;", "&#x;", "&#0;", "&#x110000;"])
        return rng.choice(["{e}", "a {e} b", "{e}{e}", "{c} {e}", "{e} {c}"]).format(e=e, c=caption())
    add("html_entities", ["&amp;", "&amp;amp;", "&amp;amp;amp;", "&amp;amp;amp;amp;", "&lt;b&gt;bold&lt;/b&gt;",
                          "&#39;", "&#x27;", "&#x1F600;", "&#128512;", "&quot;hi&quot;", "&nbsp;",
                          "a&nbsp;b", "&#9;tab", "&#10;nl", "&zwj;", "&shy;", "e&#769;", "e&amp;#769;",
                          "&#x301;a", "&lt;end_of_text&gt;", "fish &amp; chips", "AT&amp;T", "AT&T",
                          "x < y &amp;amp;amp; z", "x &amp;amp;amp; y > z",
                          "x < y\n&amp;amp;amp; z", "&amp;amp;amp; z\nx < y", "&lt;&lt;&lt;",
                          "&#65;&#66;&#67;", "&#x41;&#X42;", "&copy 2024", "&copysomething",
                          "&notit;", "&notin;", "&frac12;", "&euro;5", "&hellip;", "&mdash;",
                          "&rsquo;s", "don&rsquo;t", "don&amp;rsquo;t", "&#8217;", "&#x2019;s",
                          "&#150;", "&#x80;", "&#1;", "&#11;", "&#x7F;", "&#xFEFF;x", "&#x202E;abc",
                          "&#xE9;", "&eacute;", "&Eacute;", "&#201;", "&lt;script&gt;alert(1)&lt;/script&gt;"],
        300, entity)

    # 8. mojibake (UTF-8 decoded as a legacy single-byte code page, sometimes twice)
    encs = ["latin-1", "cp1252", "sloppy-windows-1252", "mac_roman", "cp437", "sloppy-windows-1251",
            "iso-8859-2", "sloppy-windows-1250"]

    def mojibake():
        s = rng.choice(MOJIBAKE_SOURCES)
        enc = rng.choice(encs)
        bad = s.encode("utf-8").decode(enc, errors="replace")
        if rng.random() < 0.2:
            bad = bad.encode("utf-8").decode(rng.choice(encs[:3]), errors="replace")
        if rng.random() < 0.1:
            bad = bad.replace("\x9d", "?").replace("\x81", "?")
        return rng.choice(["{b}", "the {b} is here", "{b} {c}", "{c}: {b}", "{b}{b}"]).format(
            b=bad, c=caption())
    add("mojibake", MOJIBAKE_FIXED, 240, mojibake)

    # 9. accented Latin, NFC/NFD, combining marks
    latin = ["café", "naïve", "résumé", "Ångström", "Crème brûlée", "Tiếng Việt", "Đà Nẵng",
             "Łódź", "Dvořák", "São Paulo", "Ñandú", "Øresund", "œuvre", "Æsir", "þorn", "ðæt",
             "Ŀl", "ĳsvogel", "ǆ", "Ǳ", "ŉ", "ſ", "ﬅ", "ȷ", "ɐɔə", "ʃʒ", "ʔ", "ẞ", "ı", "İ"]

    def accented():
        s = rng.choice(latin)
        k = rng.randrange(5)
        if k == 0:
            s = unicodedata.normalize("NFD", s)
        elif k == 1:
            s = unicodedata.normalize("NFKD", s)
        elif k == 2:
            s = "".join(c + "".join(chr(rng.randint(0x300, 0x36F)) for _ in range(rng.randint(0, 3)))
                        for c in s)
        elif k == 3:
            s = s.upper()
        return rng.choice(["{s}", "a {s} {n}", "{s} {s}", "{n} {s}."]).format(s=s, n=rng.choice(NOUNS))
    add("latin_nfc_nfd_combining",
        ["e\u0301", "e\u0301\u0301", "\u0301", "\u0301e", "a\u0308\u0301", "A\u030a", "\u212b", "\u2126",
         "\u212a", "ﬁsh", "ﬂower", "oﬀice", "eﬃcient", "ﬄuﬀy", "Z̸̢̛̛̛̤̙̫̣̗̯͎̣͎̳a̶l̴g̵o̷", "ñ vs n\u0303",
         "Å vs A\u030a", "\u1e9b\u0323", "q\u0307\u0323", "\u0344", "\u0958", "\u2000\u0301"],
        210, accented)

    # 10. other scripts
    scripts = GREEK + CYRILLIC + ARABIC + HEBREW + INDIC + OTHER_SCRIPTS

    def script_text():
        s = rng.choice(scripts)
        k = rng.randrange(4)
        if k == 0:
            s = unicodedata.normalize("NFD", s)
        elif k == 1:
            s = s.upper()
        elif k == 2:
            s = s + " " + caption()
        return s
    add("scripts", scripts + [s.upper() for s in GREEK + CYRILLIC], 280, script_text)

    # 11. CJK
    def cjk():
        s = rng.choice(CJK)
        k = rng.randrange(4)
        if k == 0:
            s = unicodedata.normalize("NFD", s)
        elif k == 1:
            s = s + rng.choice(["", " ", "、", "。"]) + rng.choice(CJK)
        elif k == 2:
            s = caption() + " " + s
        else:
            s = "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(rng.randint(1, 12)))
        return s
    add("cjk", CJK, 230, cjk)

    # 12. emoji
    def emoji():
        k = rng.randrange(4)
        if k == 0:
            return "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 6)))
        if k == 1:
            return f"{caption()} {rng.choice(EMOJI)}"
        if k == 2:
            return rng.choice(EMOJI) * rng.randint(2, 5)
        base = rng.choice(["👋", "🧑", "👩", "👨", "✋", "🤝", "🏃"])
        return base + chr(rng.randint(0x1F3FB, 0x1F3FF)) + rng.choice(["", "\u200d♀️", "\u200d♂️", "\u200d🦰"])
    add("emoji", EMOJI + ["I love 🍕 and 🍺!", "🇺🇸🇺🇸", "🇺", "🏳️‍⚧️", "😀😀😀", "a😀b", "😀,😀"],
        270, emoji)

    # 13. characters assigned after Unicode 14.0 (Python 3.11's unicodedata): classification
    #     and case mapping may differ between Python, the regex module and Rust.
    add("unicode_new", UNICODE_NEW + [s.upper() for s in UNICODE_NEW[10:14]])

    # 14. special-token literals
    def special():
        t = rng.choice(SPECIAL_BASE)
        return rng.choice(["{t}", "a {t} b", "{c}{t}", "{t}{c}", "{c} {t} {c2}", "{t} {t}"]).format(
            t=t, c=caption(), c2=caption())
    add("special_tokens", SPECIAL_BASE, 150, special)

    # 15. whitespace, invisible characters, empty
    def whitespace():
        parts = []
        for _ in range(rng.randint(1, 5)):
            parts.append(rng.choice(WS_CHARS) * rng.randint(1, 3))
            if rng.random() < 0.6:
                parts.append(rng.choice(NOUNS))
        return "".join(parts)
    add("whitespace", ["", " ", "   ", "\t", "\n", "\r\n", " \t\n ", "\u00a0", "\u3000", "\u200b",
                       "\ufeff", "\u2028", "\u0085", "a\u00a0photo", "a\u200bphoto", "a\u200cphoto",
                       "a\u200dphoto", "\ufeffa photo", "a photo\ufeff", "a\tphoto\nof\r\na cat",
                       "  leading", "trailing  ", "  both  ", "a" + "\u2003" * 5 + "b",
                       "a\u180eb", "a\u00adb", "\u3164", "a\x1cb", "a\x1fb", "a\x0bb", "a\x0cb"] +
        [f"a{w}photo" for w in WS_CHARS] + [w for w in WS_CHARS], 180, whitespace)

    # 16. control and format characters
    ctrl = ([chr(c) for c in range(0, 32)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)] +
            ["\u202e", "\u202d", "\u2066", "\u2067", "\u2069", "\u200e", "\u200f", "\u061c",
             "\ufff9", "\ufffa", "\ufffb", "\u206a", "\u206f", "\ufffc", "\ufffd", "\ufffe", "\uffff",
             "\U0001fffe", "\ue000", "\uf8ff", "\U000f0000", "\U000e0001", "\U000e0041", "\ufe00",
             "\ufe0f", "\U000e0100", "\u0600", "\u06dd", "\U000110bd", "\U0001d173"])
    add("control_chars",
        [f"a{c}b" for c in ctrl] +
        ["\x1b[31mred\x1b[0m", "\x1b[1;32mgreen text\x1b[m", "\x1b]0;title\x07text", "\x1b", "bell\x07",
         "nul\x00byte", "\x00", "back\x08space", "\x7f", "\r", "a\rb", "cr\r\nlf", "\x85", "\x9b31m"])

    # 17. other ftfy fixes: ligatures, width, curly quotes, line breaks
    add("ftfy_other", ["ﬁ ﬂ ﬀ ﬃ ﬄ ﬅ ﬆ", "Ĳ ĳ Ŀ ŀ ŉ ǅ ǆ ǈ ǉ ǋ ǌ", "ＨＥＬＬＯ ｗｏｒｌｄ", "ｶﾞｷﾞｸﾞ", "ﾟﾞ",
                       "“double”", "‘single’", "„low“", "‚low‘", "‛reversed‟", "«guillemets»",
                       "″double prime″", "＂fullwidth＂", "〝quote〞", "line\u2028sep", "para\u2029sep",
                       "a\x85b", "a\r\nb\rc\nd", "ℌ𝔢𝔩𝔩𝔬", "𝐁𝐨𝐥𝐝", "𝒮𝒸𝓇𝒾𝓅𝓉", "ⓒⓘⓡⓒⓛⓔ", "🅰🅱",
                       "¹²³", "⁰ⁱ", "₀₁₂", "㎏ ㎞", "℃ ℉", "№", "℡", "…", "‥", "ﹰ", "︵",
                       "Ｔｈｅ ｃａｔ’ｓ ｔｏｙ", "ＦＩＳＨ ＆ ＣＨＩＰＳ", "“It’s”", "‘It’s’"])

    # 17b. case-insensitive matching in open_clip's split regex (re.IGNORECASE): U+017F 'ſ'
    #      folds to 's', and U+0345 matches neither [\p{L}] nor [^\s\p{L}\p{N}] (dropped).
    add("regex_case_folding", ["it'ſ", "IT'ſ", "'ſ", "'ſt", "ſ", "ſtart", "<ſtart_of_text>",
                               "a <ſtart_of_text> b", "it'\u212a", "K\u212a", "ﬅ", "'ﬆ", "a\u0345b",
                               ".\u0345.", "'\u0345s", "\u0345", "\u03b1\u0345", "\u0391\u0345",
                               "ᾳ ᾼ ῃ ῌ ῳ ῼ", "ΆΙ\u0345", "ὰ\u0345", "İ", "'İ", "ǅ'S", "'Ｓ", "'ſ'ſ"])

    # 18. BPE stress: repeats, long words, random letters, code
    def bpe_stress():
        k = rng.randrange(6)
        if k == 0:
            return rng.choice(["a", "ha", "ab", "!", ".", "z", "na", "lo", "xo", "é", "猫"]) * rng.randint(2, 40)
        if k == 1:
            return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(5, 30)))
        if k == 2:
            return " ".join("".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(rng.randint(2, 8)))
                            for _ in range(rng.randint(1, 5)))
        if k == 3:
            return rng.choice(WORDS_LONG) + rng.choice(["", "s", "'s", "!", " " + caption()])
        if k == 4:
            return rng.choice(["def f(x): return x**2", '{"a": 1, "b": [2, 3]}', "SELECT * FROM t;",
                               "for (int i = 0; i < n; ++i) {}", "<div class=\"x\">y</div>",
                               "$ ls -la | grep .py", "#include <stdio.h>", "a+=b*c/d-e%f",
                               "x = [i for i in range(10)]", "\\frac{a}{b}"]) + " " + str(rng.randint(0, 99))
        return "".join(rng.choice(NOUNS) for _ in range(rng.randint(2, 5)))
    add("bpe_stress", WORDS_LONG, 130, bpe_stress)

    # 19. random code points (no surrogates: they cannot be stored in UTF-8 / PostgreSQL text)
    ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x250, 0x2FF), (0x300, 0x36F), (0x370, 0x52F),
              (0x590, 0x6FF), (0x900, 0xDFF), (0x1100, 0x11FF), (0x1E00, 0x1FFF), (0x2000, 0x2BFF),
              (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xA000, 0xABFF), (0xAC00, 0xD7A3), (0xE000, 0xF8FF),
              (0xF900, 0xFFFF), (0x10000, 0x1FFFF), (0x1F300, 0x1FAFF), (0x20000, 0x2FFFF),
              (0xE0000, 0xE01EF), (0x30000, 0x10FFFF)]

    def random_cps():
        out = []
        for _ in range(rng.randint(1, 12)):
            lo, hi = rng.choice(ranges)
            cp = rng.randint(lo, hi)
            if 0xD800 <= cp <= 0xDFFF:
                cp = 0x20
            out.append(chr(cp))
        return "".join(out)
    add("random_codepoints", [], 220, random_cps)

    # 20. long texts (well over 77 tokens) and exact truncation boundaries
    def long_text():
        k = rng.randrange(6)
        if k == 0:
            return " ".join(caption() for _ in range(rng.randint(6, 30)))
        if k == 1:
            return ". ".join(caption() for _ in range(rng.randint(6, 20))) + "."
        if k == 2:
            return "".join(rng.choice(CJK) for _ in range(rng.randint(8, 30)))
        if k == 3:
            return " ".join(rng.choice(EMOJI) for _ in range(rng.randint(30, 90)))
        if k == 4:
            return " ".join(caption() for _ in range(rng.randint(5, 10))) + " <end_of_text> " + caption()
        return "\n".join(rng.choice(scripts) for _ in range(rng.randint(10, 30)))
    add("long", ["a " * 500, "a" * 2000, "word " * 1000, "!" * 300, "猫" * 200, "😀" * 100,
                 "&amp;" * 100, "https://example.com/" + "x" * 400, "café " * 200], 160, long_text)

    boundary = []
    for n in range(70, 81):
        boundary.append(" ".join(["a"] * n))
        boundary.append(" ".join(["a"] * n) + " supercalifragilisticexpialidocious")
        boundary.append(" ".join(["a"] * n) + " <end_of_text>")
        boundary.append(" ".join(["a"] * (n - 1)) + " <end_of_text> b")
    boundary += [" ".join(["a"] * 74) + " 😀", " ".join(["a"] * 75) + " 猫", "<end_of_text>" * 80,
                 "<start_of_text>" * 80, "a" + " 1" * 80]
    add("truncation_boundary", boundary)

    # 21. mixtures of everything above
    pool = [s for _, items in cats for s in items if len(s) < 300]

    def mixed():
        return rng.choice([" ", "", "\n", ", ", " - "]).join(rng.choice(pool) for _ in range(rng.randint(2, 4)))
    add("mixed", [], 320, mixed)

    # Unique across categories (first occurrence wins), order preserved.
    seen: set[str] = set()
    result = []
    for name, items in cats:
        kept = []
        for s in items:
            if s not in seen:
                seen.add(s)
                kept.append(s)
        result.append((name, kept))
    return result


# ---------------------------------------------------------------------------------------------
# Reference ids and comparisons
# ---------------------------------------------------------------------------------------------


def finalize(ids: list[int]) -> list[int]:
    """[SOT] + ids + [EOT] already included: cut to 77 keeping EOT last (no padding here)."""
    if len(ids) > CONTEXT_LENGTH:
        ids = ids[:CONTEXT_LENGTH]
        ids[-1] = EOT
    return ids


def trim_padding(row: list[int]) -> list[int]:
    last = max(i for i, t in enumerate(row) if t == EOT)
    assert all(t == 0 for t in row[last + 1:])
    return row[:last + 1]


def reference(texts: list[str]):
    import open_clip

    tok = open_clip.get_tokenizer("MobileCLIP2-S0")
    kind = f"{type(tok).__module__}.{type(tok).__name__}"
    for v in ("S2", "S3", "S4", "B", "L-14"):
        other = open_clip.get_tokenizer(f"MobileCLIP2-{v}")
        assert type(other) is type(tok) and other.context_length == tok.context_length
    assert type(tok).__name__ == "SimpleTokenizer" and tok.context_length == CONTEXT_LENGTH
    assert (tok.sot_token_id, tok.eot_token_id, tok.vocab_size) == (SOT, EOT, 49408)
    rows = tok(texts).tolist()
    ids = [trim_padding(r) for r in rows]
    full = [[SOT] + tok.encode(t) + [EOT] for t in texts]
    for a, b in zip(ids, full):
        assert a == finalize(list(b))
    cleaned = [tok.clean_fn(t) for t in texts]
    return kind, ids, full, cleaned, tok


def clean_without_ftfy(text: str) -> str:
    from open_clip.tokenizer import whitespace_clean
    return whitespace_clean(html.unescape(html.unescape(text)).strip()).lower()


def ftfy_steps(text: str) -> list[str]:
    """Names of the ftfy fixers that change `text`, following ftfy.fix_text's per-line segments
    (including its quirk: once a line contains '<', HTML unescaping stays off for the rest)."""
    import ftfy

    config = ftfy.TextFixerConfig(explain=True)
    names, out, pos = [], [], 0
    while pos < len(text):
        brk = text.find("\n", pos) + 1 or len(text)
        seg = text[pos:brk]
        if config.unescape_html == "auto" and "<" in seg:
            config = config._replace(unescape_html=False)
        fixed, expl = ftfy.fix_and_explain(seg, config)
        out.append(fixed)
        for step in expl or []:
            name = step.parameter if step.action in ("apply", "transcode", "normalize") else step.action
            if step.action in ("encode", "decode"):
                name = "fix_encoding"
            if name not in names:
                names.append(name)
        pos = brk
    assert "".join(out) == ftfy.fix_text(text)
    return names


def unicode_sensitive(text: str) -> bool:
    """True if the text has a code point unassigned in Python's Unicode database (14.0 for
    Python 3.11). open_clip's result for such text depends on Unicode versions: str.lower()
    uses Python's tables, the `regex` module its own newer ones (it already classifies many of
    these as letters or numbers), and a Rust implementation will use yet others."""
    return any(unicodedata.category(ch) == "Cn" for ch in text)


# open_clip's split regex (SimpleTokenizer.pat), as a `tokenizers`/Oniguruma pattern.
OPEN_CLIP_PATTERN = (r"""(?i)<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d"""
                     r"""|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""")


def compare(texts, cleaned, ref_ids, tokenizer_path: Path, categories: list[str]) -> None:
    import tokenizers
    from tokenizers import Regex, Tokenizer, pre_tokenizers

    hf = Tokenizer.from_file(str(tokenizer_path))

    def hf_encode(s: str) -> list[int]:
        return finalize(hf.encode(s).ids)

    # A pipeline that reproduces open_clip with `tokenizers` (what the Rust side should do):
    # open_clip's cleaned text; U+0345 turned into a separator (open_clip's case-insensitive
    # regex matches it with no alternative, so it splits pieces and is dropped); open_clip's
    # split regex, case-insensitive, with its special literals as the first alternatives;
    # pieces that are exactly "<start_of_text>" / "<end_of_text>" -> 49406 / 49407; every
    # other piece -> ByteLevel -> the BPE model of tokenizer.json. No HF normalizer, no HF
    # added tokens, no HF post-processor.
    splitter = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(OPEN_CLIP_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe = hf.model

    def recommended(c: str) -> list[int]:
        ids = [SOT]
        for piece, _ in splitter.pre_tokenize_str(c.replace("\u0345", " ")):
            if piece == "<start_of_text>":
                ids.append(SOT)
            elif piece == "<end_of_text>":
                ids.append(EOT)
            else:
                ids.extend(t.id for t in bpe.tokenize(piece))
        return finalize(ids + [EOT])

    variants = {
        "(i) raw text": lambda i: hf_encode(texts[i]),
        "(ii) open_clip clean-up first": lambda i: hf_encode(cleaned[i]),
        "(iii) clean-up without ftfy": lambda i: hf_encode(clean_without_ftfy(texts[i])),
        "(iv) recommended pipeline": lambda i: recommended(cleaned[i]),
    }
    n = len(texts)
    sensitive = {i for i in range(n) if unicode_sensitive(texts[i])}
    results = {}
    print(f"\nAgreement of `tokenizers` {tokenizers.__version__} + tokenizer.json with open_clip "
          f"over {n} lines ({len(sensitive)} of them Unicode-version sensitive):")
    for name, fn in variants.items():
        bad = [i for i in range(n) if fn(i) != ref_ids[i]]
        results[name] = bad
        bad_ns = [i for i in bad if i not in sensitive]
        print(f"  {name:32s} {n - len(bad):5d} / {n} identical; {len(bad):4d} differ "
              f"({len(bad_ns)} of them not Unicode-version sensitive)")

    def reasons(i: int) -> str:
        c = cleaned[i]
        why = []
        if "<start_of_text>" in c or "<end_of_text>" in c:
            why.append("open_clip special literal <start_of_text>/<end_of_text>")
        if "<|startoftext|>" in c or "<|endoftext|>" in c:
            why.append("HF special <|startoftext|>/<|endoftext|> (HF: 49406/49407 or one piece; "
                       "open_clip: plain text)")
        if not unicodedata.is_normalized("NFC", c):
            why.append("cleaned text not NFC (str.lower() or html.unescape after ftfy's NFC); "
                       "the HF normalizer re-applies NFC")
        if "\u0345" in c:
            why.append("U+0345 (dropped by open_clip's case-insensitive regex)")
        if "\u017f" in c:
            why.append("U+017F 'ſ' (case-folds to 's' in open_clip's case-insensitive regex)")
        if i in sensitive:
            why.append("code point unassigned in Unicode 14.0 (Unicode-version dependent: "
                       "case pairs and \\p{L}/\\p{N} tables differ between Python 3.11, the "
                       "regex module, Oniguruma and Rust)")
        return "; ".join(why) or "UNEXPLAINED"

    def show(i: int) -> str:
        r = texts[i] if len(texts[i]) <= 70 else texts[i][:67] + "..."
        return f"line {i:4d} [{categories[i]}] {r!r}"

    print("\n(ii) lines that differ even after open_clip's clean-up, by reason:")
    groups: dict[str, list[int]] = {}
    for i in results["(ii) open_clip clean-up first"]:
        groups.setdefault(reasons(i), []).append(i)
    for key, idx in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        print(f"  {len(idx):4d}  {key}")
        for i in idx[:4]:
            print(f"          e.g. {show(i)}  cleaned={cleaned[i][:50]!r}")

    print("\n(iii) lines that differ without ftfy but not with it, by the ftfy fixers that changed them:")
    by_fixer: dict[str, list[int]] = {}
    only3 = sorted(set(results["(iii) clean-up without ftfy"]) - set(results["(ii) open_clip clean-up first"]))
    for i in only3:
        key = ", ".join(sorted(ftfy_steps(texts[i]))) or "(ftfy changed nothing)"
        by_fixer.setdefault(key, []).append(i)
    for key, idx in sorted(by_fixer.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        cats = sorted({categories[i] for i in idx})
        print(f"  {len(idx):4d}  {key}   [{', '.join(cats)}]")
        for i in idx[:2]:
            print(f"          e.g. {show(i)}")

    print("\n(iv) lines that differ with the recommended pipeline:")
    for i in results["(iv) recommended pipeline"]:
        print(f"  {show(i)}\n      -> {reasons(i)}")
    if not results["(iv) recommended pipeline"]:
        print("  none")

    fixers_all: dict[str, int] = {}
    for t in texts:
        for step in ftfy_steps(t):
            fixers_all[step] = fixers_all.get(step, 0) + 1
    print("\nftfy fixers that change corpus lines (number of lines):")
    for k, v in sorted(fixers_all.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {v:5d}  {k}")


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def write_jsonl(path: Path, records) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(r + "\n")


def generate(out: Path, versions: dict, report: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer_json(out / "tokenizer.json")

    cats = build_corpus()
    texts = [s for _, items in cats for s in items]
    categories = [name for name, items in cats for _ in items]
    assert len(texts) == len(set(texts)) >= 3000

    kind, ids, full, cleaned, _ = reference(texts)
    write_jsonl(out / "corpus.jsonl", (_escape_for_jsonl(s) for s in texts))
    write_jsonl(out / "cleaned.jsonl", (_escape_for_jsonl(s) for s in cleaned))
    write_jsonl(out / "reference_ids.jsonl", (json.dumps(r, separators=(",", ":")) for r in ids))
    write_jsonl(out / "reference_ids_untruncated.jsonl",
                (json.dumps({"line": i, "ids": f}, separators=(",", ":"))
                 for i, f in enumerate(full) if len(f) > CONTEXT_LENGTH))

    ranges, start = [], 0
    for name, items in cats:
        ranges.append({"name": name, "first_line": start, "count": len(items)})
        start += len(items)
    manifest = {
        "generator": "tests/reference/make_tokenizer_fixtures.py",
        "seed": SEED,
        "reference": f"open_clip.get_tokenizer('MobileCLIP2-<V>') -> {kind} "
                     "(clean='lower', context_length=77; same for S0, S2, S3, S4, B, L-14)",
        "versions": versions,
        "context_length": CONTEXT_LENGTH,
        "sot": SOT,
        "eot": EOT,
        "pad": 0,
        "lines": len(texts),
        "lines_longer_than_context": sum(len(f) > CONTEXT_LENGTH for f in full),
        "files": {
            "tokenizer.json": "HF tokenizers file equivalent to the timm/MobileCLIP2-*-OpenCLIP one",
            "corpus.jsonl": "one JSON string per line (line numbers are 0-based below)",
            "cleaned.jsonl": "open_clip clean-up of each line: whitespace_clean(basic_clean(s)).lower()",
            "reference_ids.jsonl": "open_clip ids per line at context 77, trailing 0 padding removed; "
                                   "each list starts with 49406 and ends with 49407",
            "reference_ids_untruncated.jsonl": "{line, ids} before truncation, only lines longer than 77",
        },
        "categories": ranges,
        "unicode_version_sensitive_lines": [i for i, t in enumerate(texts) if unicode_sensitive(t)],
        "unicode_version_sensitive_note": "lines with a code point unassigned in Unicode 14.0 "
            "(Python 3.11's str.lower/NFC tables); open_clip's result there depends on the Unicode "
            "versions of Python and of the regex module, so an implementation with other tables "
            "may legitimately differ on these lines",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n",
                                       encoding="utf-8")

    if report:
        spec = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
        v = spec["model"]["vocab"]
        print(f"tokenizer.json: vocab {len(v)}, merges {len(spec['model']['merges'])}, "
              f"<|startoftext|>={v['<|startoftext|>']}, <|endoftext|>={v['<|endoftext|>']}")
        print(f"tokenizer used by open_clip for MobileCLIP2: {kind}")
        print(f"corpus: {len(texts)} lines, {manifest['lines_longer_than_context']} longer than 77 tokens")
        for r in ranges:
            print(f"  {r['name']:26s} {r['count']:5d}  (lines {r['first_line']}..{r['first_line'] + r['count'] - 1})")
        total = 0
        for p in sorted(out.iterdir()):
            total += p.stat().st_size
            print(f"  {p.name:34s} {p.stat().st_size:9d} bytes")
        print(f"  {'total':34s} {total:9d} bytes")
        compare(texts, cleaned, ids, out / "tokenizer.json", categories)


def main() -> None:
    here = Path(__file__).resolve()
    default_out = here.parents[1] / "fixtures" / "tokenizer"
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=default_out)
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temporary directory and compare with --out")
    args = ap.parse_args()
    versions = check_versions()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp), versions, report=False)
            names = sorted(p.name for p in Path(tmp).iterdir())
            _, mismatch, errors = filecmp.cmpfiles(tmp, args.out, names, shallow=False)
            if mismatch or errors:
                sys.exit(f"fixtures differ from a fresh generation: {mismatch + errors}")
            print(f"ok: {len(names)} fixture files in {args.out} match a fresh generation")
        return
    generate(args.out, versions, report=True)


if __name__ == "__main__":
    main()
