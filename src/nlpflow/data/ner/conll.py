"""CoNLL-style token files parsed into sentences: one token per line, its tag in a column.

    sentences = parse_conll(text, source="data/train.conll")   # [TokenSentence, ...]

Columns are separated by tabs (when the first token line holds one, as in WNUT-17) or by
spaces (CoNLL-2003: token POS chunk NER); the tag is the last column unless `columns` says
otherwise. A sentence ends at a line that is empty or holds only whitespace (WNUT-17's
files end sentences with a line holding a tab). `-DOCSTART-` lines are document breaks, not
tokens. Layout errors stop the reading at the first one, with the file:line and the fix:
they are seldom alone, and the lines after one are misread.
"""

from __future__ import annotations

from typing import NamedTuple

from nlpflow.errors import DataSourceError

DOCSTART = "-DOCSTART-"


class TokenSentence(NamedTuple):
    """One sentence as written: its tokens and tags (any scheme) and where it came from."""

    tokens: list[str]
    tags: list[str]
    source: str  # the file, or a name for a dataset
    line: int  # 1-based: the sentence's first line, or its record number
    token_lines: list[int] | None = None  # each token's own line, when it has one
    split: str | None = None

    def where(self, token: int | None = None) -> str:
        """file:line of the sentence (or of one of its tokens), or record N of a dataset."""
        if self.token_lines is not None:
            line = self.line if token is None else self.token_lines[token]
            return f"{self.source}:{line}"
        at = "" if token is None else f", token {token}"
        return f"{self.source} record {self.line}{at}"


def parse_conll(
    text: str, *, source: str, columns: tuple[int, int] | None = None
) -> list[TokenSentence]:
    """The sentences of a CoNLL text; `columns` = (token column, tag column), 0-based,
    negative counting from the end; default (0, -1)."""
    token_col, tag_col = columns if columns is not None else (0, -1)
    tabs: bool | None = None  # decided by the first token line
    width = 0
    sentences: list[TokenSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []

    def close() -> None:
        if tokens:
            sentences.append(
                TokenSentence(tokens.copy(), tags.copy(), source, lines[0], lines.copy())
            )
        tokens.clear()
        tags.clear()
        lines.clear()

    # Split on \n only (CRLF's \r is stripped below): str.splitlines would also break lines
    # at \x1c, \x85 or U+2028, characters that tweets do hold inside tokens.
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            close()
            continue
        if tabs is None:
            tabs = "\t" in line
        fields = [field.strip() for field in line.rstrip().split("\t")] if tabs else line.split()
        where = f"{source}:{number}"
        if fields[0] == DOCSTART:  # CoNLL-2003's document break, before any column check
            close()
            continue
        if len(fields) == 1:
            raise DataSourceError(_one_column(where, line, tabs=tabs))
        if not width:
            width = len(fields)
            _check_columns(where, width, token_col, tag_col)
        elif len(fields) != width:
            raise DataSourceError(
                f"{where}: {len(fields)} columns {fields}, where the lines before have {width}. "
                "Every token line needs the same columns; a token that holds a space splits "
                "into two columns here: replace the space (e.g. with '_') or use tabs between columns."
            )
        token, tag = fields[token_col], fields[tag_col]
        _check_field(where, "token", token, tabs=tabs)
        _check_field(where, "tag", tag, tabs=tabs)
        tokens.append(token)
        tags.append(tag)
        lines.append(number)
    close()
    return sentences


def _one_column(where: str, line: str, *, tabs: bool) -> str:
    separator = "a tab (this file's first token line uses tabs)" if tabs else "spaces or a tab"
    return (
        f"{where}: one column ({line.strip()!r}): each line needs a token and its tag, "
        f"separated by {separator}, and sentences end at a blank line. Add the missing tag "
        "or token, or remove the line."
    )


def _check_columns(where: str, width: int, token_col: int, tag_col: int) -> None:
    for name, col in (("token", token_col), ("tag", tag_col)):
        if not -width <= col < width:
            raise DataSourceError(
                f"{where}: the {name} column is {col} (columns=({token_col}, {tag_col})), but "
                f"the lines have {width} columns: pass columns=(token, tag) within 0..{width - 1}."
            )
    if token_col % width == tag_col % width:
        raise DataSourceError(
            f"{where}: columns=({token_col}, {tag_col}) names one column for token and tag: "
            "pass two different columns."
        )


def _check_field(where: str, name: str, value: str, *, tabs: bool) -> None:
    if not value:
        raise DataSourceError(
            f"{where}: the {name} is empty: write the {name}, or remove the line "
            "(a blank line ends the sentence)."
        )
    if tabs and any(ch.isspace() for ch in value):
        fix = (
            "put each word on a line of its own, tagged so the entity stays whole, or "
            "replace the space, e.g. with '_'"
            if name == "token"
            else "a tag is one word, e.g. B-person"
        )
        raise DataSourceError(
            f"{where}: the {name} {value!r} holds a space; the sentence's text is its tokens "
            f"joined by spaces, so a token is one word: {fix}."
        )
