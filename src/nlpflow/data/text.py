"""Small text helpers shared by gather and preprocess."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[\W_]+")


def strip_accents(text: str) -> str:
    if text.isascii():  # nothing to strip; skips the per-character pass for most texts
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_text(text: str) -> str:
    """The key two texts share when they differ only in case, accents, spacing or punctuation."""
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
