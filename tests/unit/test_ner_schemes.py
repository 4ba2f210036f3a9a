"""Tag schemes of token classification: detection, violations, exact conversion both ways.

.venv/bin/pytest -q tests/unit/test_ner_schemes.py -p no:cacheprovider
"""

from __future__ import annotations

import itertools

import pytest

from nlpflow.data.ner.schemes import (
    SCHEMES,
    bio_of,
    detect_scheme,
    from_bio,
    normalize_scheme,
    spans_of,
    to_bio,
    violations,
)

# The same three entities, PER PER (adjacent) and LOC, in each scheme.
SAME = {
    "BIO": ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "I-LOC", "I-LOC"],
    "IOB1": ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-LOC", "I-LOC"],
    "BIOES": ["B-PER", "E-PER", "S-PER", "O", "B-LOC", "I-LOC", "E-LOC"],
}
SPANS = [(0, 2, "PER"), (2, 3, "PER"), (4, 7, "LOC")]


def _valid_bio(length: int) -> list[list[str]]:
    """Every BIO sequence of `length` tags over types X and Y that follows BIO."""
    tags = ["O", "B-X", "I-X", "B-Y", "I-Y"]
    every = (list(seq) for seq in itertools.product(tags, repeat=length))
    return [seq for seq in every if not violations(seq, "BIO")]


def _valid_in(scheme: str, letters: str, length: int) -> list[list[str]]:
    tags = ["O"] + [f"{letter}-{kind}" for letter in letters for kind in "XY"]
    every = (list(seq) for seq in itertools.product(tags, repeat=length))
    return [seq for seq in every if not violations(seq, scheme)]


@pytest.mark.parametrize("scheme", ["BIO", "IOB1", "BIOES"])
def test_each_scheme_converts_to_the_same_bio_and_spans(scheme: str) -> None:
    assert to_bio(SAME[scheme], scheme) == SAME["BIO"]
    assert from_bio(SAME["BIO"], scheme) == SAME[scheme]
    assert spans_of(to_bio(SAME[scheme], scheme)) == SPANS


def test_bilou_letters_read_as_bioes() -> None:
    bilou = ["B-PER", "L-PER", "U-PER", "O", "B-LOC", "I-LOC", "L-LOC"]
    assert detect_scheme([bilou]) == "BIOES"
    assert to_bio(bilou, "BILOU") == SAME["BIO"]
    assert from_bio(SAME["BIO"], "BILOU") == SAME["BIOES"]  # written back with E-/S-


def test_io_merges_what_it_cannot_separate_and_refuses_to_write_it() -> None:
    assert to_bio(["I-PER", "I-PER", "O", "I-LOC", "I-PER"], "IO") == [
        "B-PER", "I-PER", "O", "B-LOC", "B-PER",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="two adjacent PER entities that meet at token 2"):
        from_bio(SAME["BIO"], "IO")


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("scheme", ["BIO", "IOB1", "BIOES", "IO"])
def test_bio_to_scheme_and_back_is_exact(scheme: str, length: int) -> None:
    checked = 0
    for bio in _valid_bio(length):
        spans = spans_of(bio)
        adjacent = any(a[1] == b[0] and a[2] == b[2] for a, b in itertools.pairwise(spans))
        if scheme == "IO" and adjacent:
            with pytest.raises(ValueError):
                from_bio(bio, scheme)
            continue
        written = from_bio(bio, scheme)
        assert violations(written, scheme) == [], (bio, written)
        assert to_bio(written, scheme) == bio, (bio, written)
        assert bio_of(spans, length) == bio
        checked += 1
    assert checked > 0


@pytest.mark.parametrize(
    ("scheme", "letters"), [("BIO", "BI"), ("IOB1", "BI"), ("BIOES", "BIES"), ("IO", "I")]
)
def test_scheme_to_bio_and_back_is_exact(scheme: str, letters: str) -> None:
    sequences = _valid_in(scheme, letters, 4)
    assert len(sequences) > 10
    for tags in sequences:
        assert from_bio(to_bio(tags, scheme), scheme) == tags


def test_detection_tells_iob1_from_bio_by_where_b_stands() -> None:
    assert detect_scheme([SAME["BIO"]]) == "BIO"
    assert detect_scheme([SAME["IOB1"]]) == "IOB1"
    assert detect_scheme([SAME["BIOES"]]) == "BIOES"
    # B- only right after its own type, in every sentence: IOB1; one B- after O: BIO.
    assert detect_scheme([["I-X", "B-X"], ["O", "I-Y"]]) == "IOB1"
    assert detect_scheme([["I-X", "B-X"], ["O", "B-Y"]]) == "BIO"
    assert detect_scheme([["I-X", "I-X", "O"]]) == "IO"  # IOB1 without a B- reads the same
    assert detect_scheme([["O", "O"], []]) == "BIO"


def test_mixed_schemes_are_detected_as_one_and_their_other_tags_reported() -> None:
    mixed = [["B-PER", "I-PER", "O"], ["O", "I-LOC", "I-LOC"]]  # BIO, then IOB1
    scheme = detect_scheme(mixed)
    assert scheme == "BIO"
    assert violations(mixed[0], scheme) == []
    assert violations(mixed[1], scheme) == [
        "I-LOC after O at token 1 (BIO opens an entity with B-LOC)"
    ]
    bio_and_bioes = [["B-X", "I-X"], ["S-Y", "B-X", "E-X"]]
    assert detect_scheme(bio_and_bioes) == "BIOES"
    assert violations(bio_and_bioes[0], "BIOES") == [
        "entity X left open at token 1 (BIOES closes it with E-X)"
    ]


def test_violations_name_the_tag_its_neighbour_and_the_rule() -> None:
    assert violations(["I-X", "O"], "BIO") == [
        "I-X opening the sentence at token 0 (BIO opens an entity with B-X)"
    ]
    assert violations(["B-X", "I-Y"], "BIO") == [
        "I-Y after B-X at token 1 (BIO opens an entity with B-Y)"
    ]
    assert violations(["O", "B-X"], "IOB1") == [
        "B-X after O at token 1 (IOB1 writes B-X only right after a X entity; it opens with I-X)"
    ]
    assert violations(["B-X", "O", "E-Y", "S-Z"], "BIOES") == [
        "O after B-X at token 1 (BIOES closes X with E-X first)",
        "E-Y after O at token 2 (BIOES opens an entity with B- or S-, not E-)",
    ]
    assert violations(["B-X", "I-Y", "E-Y"], "BIOES") == [
        "I-Y after B-X at token 1 (BIOES closes X with E-X first)"
    ]
    assert violations(["S-X"], "BIO") == ["S-X at token 0 (BIO has no S- tags)"]
    assert violations(["B-X"], "IO") == ["B-X at token 0 (IO has no B- tags)"]
    assert violations(["PER", "b-X", "B-"], "BIO") == [
        f"bad tag {tag!r} at token {i} (expected O, or B-, I-, E-, S- and a type)"
        for i, tag in enumerate(["PER", "b-X", "B-"])
    ]
    for scheme in SCHEMES:
        assert violations(["O", "O"], scheme) == []


def test_types_with_hyphens_keep_them() -> None:
    tags = ["B-creative-work", "I-creative-work", "B-person"]
    assert spans_of(tags) == [(0, 2, "creative-work"), (2, 3, "person")]
    assert to_bio(["I-creative-work", "B-creative-work"], "IOB1") == [
        "B-creative-work", "B-creative-work",
    ]  # fmt: skip


def test_conversion_refuses_tags_that_break_the_scheme() -> None:
    with pytest.raises(ValueError, match=r"tags do not follow BIO: I-X after O at token 1"):
        to_bio(["O", "I-X"], "BIO")
    with pytest.raises(ValueError, match=r"do not follow BIO"):
        spans_of(["O", "I-X"])
    with pytest.raises(ValueError, match="left open"):
        to_bio(["B-X", "I-X"], "BIOES")


def test_bio_of_refuses_spans_bio_cannot_hold() -> None:
    assert bio_of([], 2) == ["O", "O"]
    assert bio_of([(1, 2, "X"), (0, 1, "X")], 3) == ["B-X", "B-X", "O"]  # any order
    with pytest.raises(ValueError, match="overlaps"):
        bio_of([(0, 2, "X"), (1, 3, "Y")], 3)
    with pytest.raises(ValueError, match="empty or outside"):
        bio_of([(1, 1, "X")], 3)
    with pytest.raises(ValueError, match="empty or outside"):
        bio_of([(2, 4, "X")], 3)
    with pytest.raises(ValueError, match="one word"):
        bio_of([(0, 1, "two words")], 3)


def test_scheme_names() -> None:
    assert [normalize_scheme(n) for n in ("bio", "IOB2", "bilou", "iobes", "iob1", "io")] == [
        "BIO", "BIO", "BIOES", "BIOES", "IOB1", "IO",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown tag scheme 'BMES'"):
        normalize_scheme("BMES")
