"""The perturbations of invariance tests and the transforms of directional tests.

add_typos("the parcel never arrived", seed=13)   # "the parcel nveer arrived"
"""

from __future__ import annotations

import random
import re

from nlpflow.evaluation.behavioural_suite import DirectionalTest, InvarianceTest

# Each depends on the text and the seed only (random.Random seeds a string through SHA-512),
# so a rerun perturbs the same texts the same way on any machine.


def _rng(seed: int, text: str) -> random.Random:
    return random.Random(f"{seed}\x00{text}")


_INNER = re.compile(r"[^\W\d_]{4,}")  # words of 4+ letters: swaps inside keep them readable


def add_typos(text: str, *, seed: int, swaps: int = 1) -> str:
    """Swap `swaps` pairs of adjacent, different letters inside words, never a word's first or
    last letter (people read past those typos; the model should too)."""
    spots = [
        i
        for m in _INNER.finditer(text)
        for i in range(m.start() + 1, m.end() - 2)
        if text[i] != text[i + 1]
    ]
    rng, chars = _rng(seed, text), list(text)
    for _ in range(swaps):
        if not spots:
            break
        i = rng.choice(spots)
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
        spots = [s for s in spots if abs(s - i) > 1]  # never undo or overlap a swap
    return "".join(chars)


# First names from several languages. Left out on purpose: names that are also common English
# words (Will, May, Bill, Mark, Grace, Rose, Jack), which would change meaning, not a name.
FIRST_NAMES = (
    "Ahmed", "Aisha", "Anna", "Björn", "Carlos", "Chloé", "Daniel", "David", "Emma", "Fatima",
    "Hannah", "James", "John", "José", "Julia", "Karen", "Kenji", "Laura", "Liam", "Linda",
    "Lucia", "Lucy", "Maria", "Mary", "Mei", "Michael", "Noémie", "Olivia", "Omar", "Paul",
    "Peter", "Priya", "René", "Robert", "Sarah", "Sofia", "Steven", "Thomas", "Tom", "Wei", "Zoë",
)  # fmt: skip
_NAMES = re.compile(rf"\b(?:{'|'.join(FIRST_NAMES)})\b", re.IGNORECASE)


def swap_names(text: str, *, seed: int) -> str:
    """Replace each first name of FIRST_NAMES found in the text (any case) by another one,
    written in the same case; the same name gets the same replacement throughout."""
    rng, chosen = _rng(seed, text), {}
    for found in sorted({m.group(0).lower() for m in _NAMES.finditer(text)}):
        chosen[found] = rng.choice([n for n in FIRST_NAMES if n.lower() != found])

    def replace(match: re.Match[str]) -> str:
        new, old = chosen[match.group(0).lower()], match.group(0)
        return new.lower() if old.islower() else new.upper() if old.isupper() else new

    return _NAMES.sub(replace, text)


_TRAILING = re.compile(r"\s*[.!?]+\s*$")


def toggle_punctuation(text: str, *, seed: int) -> str:
    """Strip the closing punctuation, or add a full stop or exclamation mark where there is none."""
    if _TRAILING.search(text):
        return _TRAILING.sub("", text)
    return text.rstrip() + _rng(seed, text).choice([".", "!"])


# Words that are nearly always auxiliaries in front of a verb or adjective; do/have are left out
# because as main verbs ("I have a refund") a "not" after them reads wrong.
_AUXILIARY = re.compile(
    r"\b(?:is|are|was|were|am|can|could|will|would|should|must|might|did)\b"
    r"(?!\s*n?['’]t\b)(?!\s+not\b)",  # not negated yet: isn't, is n't, can't, is not
    re.IGNORECASE,
)


def add_negation(text: str) -> str:
    """Insert "not" after the first auxiliary that is not negated yet ("it was fun" -> "it was
    not fun"); without one, prefix "It is not true that "."""
    match = _AUXILIARY.search(text)
    if match is not None:
        return f"{text[: match.end()]} not{text[match.end() :]}"
    keep_case = text[:2] == "I " or (text[:1].isupper() and text[1:2].isupper())  # I, acronyms
    return "It is not true that " + (text if keep_case else text[:1].lower() + text[1:])


def perturb(test: InvarianceTest, text: str, *, seed: int) -> str:
    if test.perturbation == "typos":
        return add_typos(text, seed=seed, swaps=test.typos)
    if test.perturbation == "person_names":
        return swap_names(text, seed=seed)
    return toggle_punctuation(text, seed=seed)


def transform(test: DirectionalTest, text: str) -> str:
    if test.append is not None:
        return f"{text.rstrip()} {test.append}"
    if test.prepend is not None:
        return f"{test.prepend} {text.lstrip()}"
    return add_negation(text)
