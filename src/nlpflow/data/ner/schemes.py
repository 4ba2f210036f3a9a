"""Tag schemes of token classification, and exact conversion to and from BIO, the internal one.

    scheme = detect_scheme(sentences_tags)                 # "IOB1", "BIO", "BIOES" or "IO"
    to_bio(["I-PER", "I-PER", "B-PER"], "IOB1")            # ["B-PER", "I-PER", "B-PER"]
    spans_of(["B-PER", "I-PER", "B-PER"])                  # [(0, 2, "PER"), (2, 3, "PER")]
    violations(["O", "I-PER"], "BIO")                      # ["I-PER after O at token 1"]

A tag is `O` or LETTER-TYPE; the type may hold hyphens (B-creative-work). The schemes:
- BIO (IOB2): an entity is B- then I-*.
- IOB1: an entity is I-+; its first tag is B- only right after an entity of the same type.
- BIOES: B- I-* E- for two tokens or more, S- for one; BILOU's L- and U- are read as E- and S-.
- IO: I- only, so two adjacent entities of one type read as one (from_bio refuses to write them).
Token positions are 0-based (token 3 is tags[3]). Conversion never guesses: to_bio raises on
tags that break their scheme (violations lists them), so BIO -> X -> BIO and X -> BIO -> X
give back the same tags wherever X can write them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

SCHEMES = ("IOB1", "BIO", "BIOES", "IO")
_ALIASES = {"IOB2": "BIO", "BILOU": "BIOES", "IOBES": "BIOES"}
_CANONICAL = {"B": "B", "I": "I", "E": "E", "S": "S", "L": "E", "U": "S"}  # BILOU's L, U
_LETTERS = {"BIO": "BI", "IOB1": "BI", "IO": "I", "BIOES": "BIES"}
_TAG = re.compile(r"([BIESLU])-(\S+)")


class Violation(NamedTuple):
    """One tag that breaks its scheme: tags[token], what is wrong, and why that is wrong."""

    token: int
    message: str
    why: str = ""

    def __str__(self) -> str:
        return f"{self.message} at token {self.token}" + (f" ({self.why})" if self.why else "")


def normalize_scheme(name: str) -> str:
    """The scheme's name in SCHEMES (IOB2 is BIO; BILOU and IOBES are BIOES); case-insensitive."""
    upper = name.strip().upper()
    upper = _ALIASES.get(upper, upper)
    if upper not in SCHEMES:
        raise ValueError(
            f"unknown tag scheme {name!r}; known: {', '.join(SCHEMES)} (or IOB2, BILOU, IOBES)"
        )
    return upper


def parse_tag(tag: str) -> tuple[str, str] | None:
    """(letter as written, type) of a tag, ("O", "") for O, None for a tag of no scheme."""
    if tag == "O":
        return "O", ""
    match = _TAG.fullmatch(tag)
    return (match.group(1), match.group(2)) if match else None


def detect_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """The scheme the tags are written in, from the letters and where B- appears.

    E-, S-, L- or U- anywhere: BIOES. B- anywhere: BIO or IOB1, told apart by where B- stands.
    In BIO every entity opens with B-, so some B- follows O, the start or another type; in
    IOB1 B- only ever follows a tag of its own type. So: every B- right after its own type is
    IOB1, any other B- is BIO. I- and O only: IO (IOB1 with no adjacent entities of one type
    reads the same). O only: BIO (every scheme writes it alike). Tags that fit no scheme
    (mixed schemes, bad tags) are left to `violations` against the scheme returned.
    """
    letters: set[str] = set()
    b_opens = False  # a B- after O, the start or another type: BIO's, never IOB1's
    for tags in sequences:
        previous = ""
        for tag in tags:
            parsed = parse_tag(tag)
            letter, kind = parsed if parsed else ("?", "")
            letters.add(letter)
            if letter == "B" and previous != kind:
                b_opens = True
            previous = kind
    if letters & set("ESLU"):
        return "BIOES"
    if "B" in letters:
        return "BIO" if b_opens else "IOB1"
    return "IO" if "I" in letters else "BIO"


def find_violations(tags: Sequence[str], scheme: str) -> list[Violation]:
    """Every tag of `tags` that breaks `scheme`, in order."""
    scheme = normalize_scheme(scheme)
    found: list[Violation] = []
    previous_tag, previous_type = "", ""
    open_type = ""  # BIOES: the entity opened (B-, I-) and not yet closed (E-)
    for i, tag in enumerate(tags):
        parsed = parse_tag(tag)
        if parsed is None:
            found.append(
                Violation(i, f"bad tag {tag!r}", "expected O, or B-, I-, E-, S- and a type")
            )
            previous_tag, previous_type, open_type = tag, "", ""
            continue
        letter, kind = parsed
        after = f"after {previous_tag}" if previous_tag else "opening the sentence"
        canonical = _CANONICAL.get(letter, "O")
        if letter != "O" and canonical not in _LETTERS[scheme]:
            found.append(Violation(i, f"{tag}", f"{scheme} has no {letter}- tags"))
        elif scheme == "BIOES":
            if open_type and (canonical in "BSO" or open_type != kind):
                why = f"BIOES closes {open_type} with E-{open_type} first"
                found.append(Violation(i, f"{tag} {after}", why))
            elif not open_type and canonical in "IE":
                why = f"BIOES opens an entity with B- or S-, not {letter}-"
                found.append(Violation(i, f"{tag} {after}", why))
            open_type = kind if canonical in "BI" else ""
        elif scheme == "BIO" and letter == "I" and previous_type != kind:
            found.append(Violation(i, f"{tag} {after}", f"BIO opens an entity with B-{kind}"))
        elif scheme == "IOB1" and letter == "B" and previous_type != kind:
            why = f"IOB1 writes B-{kind} only right after a {kind} entity; it opens with I-{kind}"
            found.append(Violation(i, f"{tag} {after}", why))
        previous_tag, previous_type = tag, kind
    if open_type:
        why = f"BIOES closes it with E-{open_type}"
        found.append(Violation(len(tags) - 1, f"entity {open_type} left open", why))
    return found


def violations(tags: Sequence[str], scheme: str) -> list[str]:
    """Every tag that breaks `scheme`, as text: "I-X after O at token 3 (BIO opens ...)"."""
    return [str(found) for found in find_violations(tags, scheme)]


def to_bio(tags: Sequence[str], scheme: str) -> list[str]:
    """`tags` (in `scheme`) as BIO; ValueError listing the violations if they break it."""
    scheme = normalize_scheme(scheme)
    _refuse_violations(tags, scheme)
    bio: list[str] = []
    previous_type = ""
    for tag in tags:
        letter, kind = parse_tag(tag) or ("O", "")
        if letter == "O":
            bio.append("O")
        else:  # valid tags: an entity opens at B-/S-, or where the type changes (IOB1, IO)
            opens = _CANONICAL[letter] in "BS" or previous_type != kind
            bio.append(f"{'B' if opens else 'I'}-{kind}")
        previous_type = kind
    return bio


def from_bio(bio_tags: Sequence[str], scheme: str) -> list[str]:
    """BIO tags written in `scheme`; ValueError for IO and two adjacent entities of one type
    (IO cannot tell them from one entity) and for tags that break BIO."""
    scheme = normalize_scheme(scheme)
    spans = spans_of(bio_tags)
    if scheme == "BIO":
        return list(bio_tags)
    tags = ["O"] * len(bio_tags)
    previous_end, previous_type = -1, ""
    for start, end, kind in spans:
        if scheme == "BIOES":
            inner = [f"I-{kind}"] * (end - start - 2)
            tags[start:end] = (
                [f"S-{kind}"] if end - start == 1 else [f"B-{kind}", *inner, f"E-{kind}"]
            )
        else:
            adjacent = start == previous_end and kind == previous_type
            if adjacent and scheme == "IO":
                raise ValueError(
                    f"IO cannot write the two adjacent {kind} entities that meet at token "
                    f"{start}: they would read as one; keep BIO (or IOB1, BIOES)"
                )
            tags[start:end] = [f"{'B' if adjacent else 'I'}-{kind}"] + [f"I-{kind}"] * (
                end - start - 1
            )
        previous_end, previous_type = end, kind
    return tags


def spans_of(bio_tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """The entities of BIO tags: (first token, token after the last, type), in order."""
    _refuse_violations(bio_tags, "BIO")
    spans: list[tuple[int, int, str]] = []
    for i, tag in enumerate(bio_tags):
        if tag.startswith("B-"):
            spans.append((i, i + 1, tag[2:]))
        elif tag.startswith("I-"):
            start, _, kind = spans[-1]
            spans[-1] = (start, i + 1, kind)
    return spans


def bio_of(spans: Iterable[tuple[int, int, str]], n_tokens: int) -> list[str]:
    """BIO tags of `n_tokens` tokens holding `spans` (first token, token after the last, type);
    ValueError for an empty, out-of-range or overlapping span or a type with whitespace."""
    tags = ["O"] * n_tokens
    for start, end, kind in sorted(spans):
        if not 0 <= start < end <= n_tokens:
            raise ValueError(f"span ({start}, {end}, {kind!r}) is empty or outside 0..{n_tokens}")
        if not kind or any(ch.isspace() for ch in kind):
            raise ValueError(f"span ({start}, {end}, {kind!r}): a type is one word, not empty")
        if any(tag != "O" for tag in tags[start:end]):
            raise ValueError(f"span ({start}, {end}, {kind!r}) overlaps another span")
        tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
    return tags


def _refuse_violations(tags: Sequence[str], scheme: str) -> None:
    found = find_violations(tags, scheme)
    if found:
        listed = "; ".join(str(violation) for violation in found[:5])
        more = f"; and {len(found) - 5} more" if len(found) > 5 else ""
        raise ValueError(f"tags do not follow {scheme}: {listed}{more}")
