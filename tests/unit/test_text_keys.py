"""normalize_text's fast path for ASCII text gives the regex's key, character for character:
validate and gather key every row by it, so the fast path must not move a single key.

    .venv/bin/python -m pytest tests/unit/test_text_keys.py -q
"""

from __future__ import annotations

import random

from nlpflow.data.text import _NON_WORD, normalize_text, strip_accents


def _by_regex(text: str) -> str:
    return _NON_WORD.sub(" ", strip_accents(text.casefold())).strip()


def test_ascii_keys_equal_the_regex_keys_on_every_ascii_character() -> None:
    rng = random.Random(0)
    alphabet = [chr(c) for c in range(128)]  # controls, \x1c-\x1f, _, punctuation, digits
    texts = ["".join(rng.choices(alphabet, k=rng.randint(0, 40))) for _ in range(20_000)]
    texts += ["", " ", "__", "Hello,  World!", "a_b", "\x1fx\x1cy", "\tTab\vvt\x0bff\x0c"]
    for text in texts:
        assert normalize_text(text) == _by_regex(text), repr(text)


def test_other_text_keeps_the_regex_path() -> None:
    for text in ("Café  Crème!", "ÄÖÜ_straße", "naïve\u2028line", "İstanbul", "ﬁne"):
        assert normalize_text(text) == _by_regex(text)
    assert normalize_text("Café, crème!") == normalize_text("cafe creme")
