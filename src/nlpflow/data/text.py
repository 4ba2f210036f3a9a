"""Small text helpers shared by gather and preprocess."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import pandas as pd

_NON_WORD = re.compile(r"[\W_]+")
# For ASCII text, in one byte table: letters lower-cased, digits kept, anything else a space;
# then words joined by one space is `_NON_WORD.sub(" ", text.casefold()).strip()`
# (tests/unit/test_text_keys.py), several times faster: validate and gather key every row by it
_ASCII_KEY = bytes(
    (ord(chr(c).lower()) if chr(c).isalnum() else 32) if c < 128 else c for c in range(256)
)


def strip_accents(text: str) -> str:
    if text.isascii():  # nothing to strip; skips the per-character pass for most texts
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_text(text: str) -> str:
    """The key two texts share when they differ only in case, accents, spacing or punctuation."""
    if text.isascii():
        return b" ".join(text.encode("ascii").translate(_ASCII_KEY).split()).decode("ascii")
    return _NON_WORD.sub(" ", strip_accents(text.casefold())).strip()


def normalized_or_none(text: object) -> str | None:
    """normalize_text of a text; None for a missing value (NaN, None) in a column."""
    return normalize_text(text) if isinstance(text, str) else None


def label_key(label: str) -> str:
    """The key two labels share when they differ only in case, Unicode form (NFKC), spacing
    or control characters: "Billing", "billing " and "billing\\nteam" vs "billing team". Kept
    stricter than normalize_text: accents and punctuation may tell classes apart."""
    text = " ".join(unicodedata.normalize("NFKC", label).split())  # line breaks are spacing
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf"))
    return unicodedata.normalize("NFKC", text.casefold()).strip()


def join_fields(values: Iterable[object]) -> str | None:
    """One text from the fields of a row, as gather builds data.text_column [title, body]:
    the present values (null and NaN left out) as text, joined by a space; None when none is
    present. One field: its value as text (validate judges blanks). Batch inference and the
    served model join a trained model's fields with this very function, so a row is scored as
    the text it was trained on."""
    parts = [str(v) for v in values if not pd.isna(v)]
    return " ".join(parts) if parts else None
