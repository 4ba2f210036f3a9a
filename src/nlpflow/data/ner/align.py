"""Character spans (start, end, label) turned into BIO tags over tokens with character offsets.

    tags, problems = align_spans(text, tokens, starts, [Span(0, 8, "location")])

Every span that cannot be tagged exactly is a problem, returned as text with the span's offsets,
label and characters: an empty or reversed span, one past the text, one whose start or end
falls inside a token, overlapping (crossing, nested, repeated) spans, one whose stated text
differs from the text at its offsets. Problems are returned rather than raised so a reader
lists every bad span of a file in one DataSourceError, each with its line; the spans with a
problem are left out of `tags`, so a caller must not keep those tags when there are problems.
Whitespace at a span's edges is not a problem (annotation tools often take the space after a
word): the span is the tokens it covers.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import NamedTuple

from nlpflow.data.ner.schemes import bio_of


class Span(NamedTuple):
    """A labelled character range text[start:end]; `text`, when the source states it, is
    checked against the text at those offsets."""

    start: int
    end: int
    label: str
    text: str | None = None


def align_spans(
    text: str, tokens: Sequence[str], starts: Sequence[int], spans: Sequence[Span]
) -> tuple[list[str], list[str]]:
    """BIO tags of `tokens` (at character offsets `starts` in `text`) and the spans' problems."""
    problems: list[str] = []
    placed: list[tuple[int, int, Span]] = []  # trimmed character range, span
    for span in spans:
        problem = _span_problem(text, span)
        if problem:
            problems.append(problem)
            continue
        start, end = _trim(text, span.start, span.end)
        if start >= end:
            problems.append(f"span {_describe(text, span)} holds only whitespace")
            continue
        placed.append((start, end, span))
    tagged = _drop_overlaps(text, placed, problems)
    token_spans: list[tuple[int, int, str]] = []
    for start, end, span in tagged:
        found = _token_range(text, tokens, starts, start, end, span)
        if isinstance(found, str):
            problems.append(found)
        else:
            token_spans.append((*found, span.label))
    return bio_of(token_spans, len(tokens)), problems


def _span_problem(text: str, span: Span) -> str | None:
    start, end, label = span.start, span.end, span.label
    if not isinstance(label, str) or not label.strip() or any(ch.isspace() for ch in label):
        return f"span [{start}, {end}) has label {label!r}: a label is one word, not empty"
    if start == end:
        return f"span [{start}, {end}) {label} is empty"
    if end < start:
        return f"span [{start}, {end}) {label} ends before it starts"
    if start < 0 or end > len(text):
        return (
            f"span [{start}, {end}) {label} lies outside the text (length {len(text)})"
            f"{_utf16_hint(text, span)}"
        )
    if span.text is not None and text[start:end] != span.text:
        return (
            f"span [{start}, {end}) {label} says its text is {span.text!r} but the text there "
            f"is {text[start:end]!r}{_utf16_hint(text, span)}"
        )
    return None


def _utf16_hint(text: str, span: Span) -> str:
    """Browsers count offsets in UTF-16 units, where a character past U+FFFF (most emoji)
    counts twice: a tool that kept those offsets is off by one per such character."""
    astral = sum(ord(ch) > 0xFFFF for ch in text[: span.end])
    if not astral:
        return ""
    return (
        f"; the text holds {astral} character(s) past U+FFFF before it, so the offsets may "
        "count UTF-16 units: re-export them as offsets in characters (code points)"
    )


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _drop_overlaps(
    text: str, placed: list[tuple[int, int, Span]], problems: list[str]
) -> list[tuple[int, int, Span]]:
    """The spans that overlap no other; one problem per overlapping pair (BIO holds one
    entity per token, so which to keep is the annotator's call, not ours)."""
    placed = sorted(placed, key=lambda item: (item[0], item[1]))
    clashing: set[int] = set()
    for i, (_, end, span) in enumerate(placed):
        for j in range(i + 1, len(placed)):
            other_start, _, other = placed[j]
            if other_start >= end:
                break
            clashing.update((i, j))
            if (span.start, span.end, span.label) == (other.start, other.end, other.label):
                problems.append(f"span {_describe(text, span)} is listed twice")
            else:
                problems.append(
                    f"spans {_describe(text, span)} and {_describe(text, other)} overlap"
                )
    return [item for i, item in enumerate(placed) if i not in clashing]


def _token_range(
    text: str,
    tokens: Sequence[str],
    starts: Sequence[int],
    start: int,
    end: int,
    span: Span,
) -> tuple[int, int] | str:
    """(first token, token after the last) that characters [start, end) cover, or the
    problem: an edge inside a token, or no token there at all."""
    first = max(bisect_right(starts, start) - 1, 0)  # starts ascend: the last token at or before
    if first < len(tokens) and starts[first] + len(tokens[first]) <= start:
        first += 1  # that token ends before the span
    last = bisect_left(starts, end) - 1  # the last token that starts inside the span
    if first >= len(tokens) or last < first:
        return f"span {_describe(text, span)} covers no token"
    if starts[first] < start:
        return (
            f"span {_describe(text, span)} starts inside token {tokens[first]!r} "
            f"[{starts[first]}, {starts[first] + len(tokens[first])}): move its start to a "
            "token's start or end, or tokenize so that a token starts there"
        )
    if starts[last] + len(tokens[last]) > end:
        return (
            f"span {_describe(text, span)} ends inside token {tokens[last]!r} "
            f"[{starts[last]}, {starts[last] + len(tokens[last])}): move its end to a "
            "token's start or end, or tokenize so that a token ends there"
        )
    return first, last + 1


def _describe(text: str, span: Span) -> str:
    return f"[{span.start}, {span.end}) {span.label} {text[span.start : span.end]!r}"
